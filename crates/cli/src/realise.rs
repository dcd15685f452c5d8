//! Building from the command line, shared by `nix-store --realise`,
//! `nix-build`, `nix build`, `nix-store --read-log` and `nix log`: the build
//! flags every command accepts (`-j`, `--cores`, `-k`, `-K`, `-L`, `-Q`,
//! `--option NAME VALUE`, ...) resolved against `nix.conf` into
//! [`BuildSettings`], offering missing outputs to the configured binary caches
//! (`substituters`) before building, running the scheduler, rendering its failures as
//! CppNix does, `result` symlinks with their GC roots, and reading logs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use nivis_build::{BuildSettings, DerivedPath, RealiseResult, SandboxPath};
use nivis_formats::StorePath;
use nivis_store::Store;

/// Build flags as given on the command line (raw), before `nix.conf`.
#[derive(Default, Debug, Clone)]
pub struct BuildFlags {
    /// `--option NAME VALUE` and the flags that are settings in disguise
    /// (`-j` is `max-jobs`, `--cores` is `cores`, ...), in order.
    pub options: Vec<(String, String)>,
    pub print_build_logs: Option<bool>,
    pub dry_run: bool,
    pub store: Option<String>,
    /// `--check` (`nix build --rebuild`): rebuild and compare.
    pub check: bool,
    /// `--repair`: rebuild outputs whose contents are corrupted.
    pub repair: bool,
    /// `--impure` (new CLI): evaluate without `pure-eval`.
    pub impure: bool,
    /// `--show-trace`, for the commands that evaluate.
    pub show_trace: bool,
}

impl BuildFlags {
    /// Consumes one flag at `args[*i]` if it is a build flag; `Ok(false)`
    /// if it is not one of ours.
    pub fn parse_flag(&mut self, args: &[String], i: &mut usize) -> anyhow::Result<bool> {
        let flag = args[*i].as_str();
        let value = |i: &mut usize| -> anyhow::Result<String> {
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"))
        };
        let setting = |name: &str| -> Option<&'static str> {
            Some(match name {
                "-j" | "--max-jobs" => "max-jobs",
                "--cores" => "cores",
                "--timeout" => "timeout",
                "--max-silent-time" => "max-silent-time",
                "--builders" => "builders",
                "--substituters" => "substituters",
                "--extra-substituters" => "extra-substituters",
                "--system" => "system",
                _ => return None,
            })
        };
        if let Some(name) = setting(flag) {
            let v = value(i)?;
            self.options.push((name.to_string(), v));
            return Ok(true);
        }
        match flag {
            "--option" => {
                let name = value(i)?;
                let v = value(i)?;
                self.options.push((name, v));
            }
            "-k" | "--keep-going" => self.options.push(("keep-going".into(), "true".into())),
            "-K" | "--keep-failed" => self.options.push(("keep-failed".into(), "true".into())),
            "-L" | "--print-build-logs" => self.print_build_logs = Some(true),
            "-Q" | "--no-build-output" => self.print_build_logs = Some(false),
            "--dry-run" => self.dry_run = true,
            // CppNix: no substituters, and downloaded files count as fresh.
            "--offline" => {
                self.options.push(("substitute".into(), "false".into()));
                self.options.push(("tarball-ttl".into(), u32::MAX.to_string()));
            }
            "--store" => self.store = Some(value(i)?),
            "--check" => self.check = true,
            "--repair" => self.repair = true,
            "--fallback" => self.options.push(("fallback".into(), "true".into())),
            "--no-fallback" => self.options.push(("fallback".into(), "false".into())),
            "--impure" => self.impure = true,
            "--show-trace" => self.show_trace = true,
            "-v" | "--verbose" | "--quiet" | "--no-gc-warning" => {}
            s if s.starts_with("-j") && s.len() > 2 && s[2..].chars().all(|c| c.is_ascii_digit()) => {
                self.options.push(("max-jobs".into(), s[2..].to_string()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `nix.conf` with these flags applied on top.
    fn config(&self) -> anyhow::Result<nivis_config::Config> {
        let mut config = nivis_config::Config::load()?;
        for (name, value) in &self.options {
            config.set(name, value);
        }
        Ok(config)
    }

    /// The binary caches to substitute from (`substituters`, `trusted-public-keys`,
    /// `require-sigs`). Caches nivis cannot open are skipped; the warning is
    /// printed only when the user configured substituters, so the default
    /// (cache.nixos.org) stays quiet on a machine without network.
    ///
    /// `substituters` and `extra-substituters` are taken from the command line
    /// (`--option`, `--substituters`) as from `nix.conf`: nivis has no daemon,
    /// and the store it writes is the caller's own, as for CppNix's local
    /// stores. A daemon would take a client's substituters only when each is
    /// in its own `substituters` or `trusted-substituters`, or the client is a
    /// trusted user; `trusted-substituters` is read as a setting (default
    /// empty) and checks nothing here. HTTP caches get `connect-timeout`,
    /// `stalled-download-timeout` and `download-attempts` from this
    /// configuration.
    pub fn substituters(&self) -> anyhow::Result<ConfiguredSubstituters> {
        let config = self.config()?;
        let mut network = nivis_substitute::NetworkSettings::from_config(&config);
        if !config.is_set("substituters") {
            // The default cache on a machine without network: retried and
            // disabled as usual, but quietly (see above).
            network.warn = std::sync::Arc::new(|_| {});
        }
        nivis_substitute::configure_network(network);
        let settings = nivis_store::StoreSettings::from_env();
        let (set, warnings) = nivis_substitute::SubstituterSet::from_config(&config, &settings)?;
        if config.is_set("substituters") {
            for warning in warnings {
                eprintln!("warning: {warning}");
            }
        }
        Ok(ConfiguredSubstituters(set))
    }

    /// The settings: built-in defaults, then `nix.conf`, then these flags.
    /// `legacy` commands print build logs unless `-Q`; `nix build` only with `-L`.
    pub fn settings(&self, legacy: bool) -> anyhow::Result<BuildSettings> {
        let config = self.config()?;
        let mut settings = BuildSettings { max_jobs: config.max_jobs()? as usize, ..BuildSettings::default() };
        settings.cores = config.get_u64("cores")?.unwrap_or(0) as u32;
        let seconds = |name: &str| -> anyhow::Result<Option<Duration>> {
            Ok(config.get_u64(name)?.filter(|s| *s > 0).map(Duration::from_secs))
        };
        settings.timeout = seconds("timeout")?;
        settings.max_silent_time = seconds("max-silent-time")?;
        settings.max_log_size = config.get_u64("max-build-log-size")?.filter(|s| *s > 0);
        settings.keep_going = config.get_bool("keep-going").unwrap_or(false);
        settings.keep_failed = config.get_bool("keep-failed").unwrap_or(false);
        settings.fallback = config.get_bool("fallback")?;
        settings.check = self.check;
        settings.repair = self.repair;
        settings.sandbox = !matches!(config.get("sandbox").as_deref(), Some("false"));
        settings.keep_build_log = config.get("keep-build-log").as_deref() != Some("false");
        let mut sandbox_paths = config.get_list("sandbox-paths");
        sandbox_paths.extend(config.get_list("extra-sandbox-paths"));
        settings.sandbox_paths = SandboxPath::parse_list(&sandbox_paths.join(" "))?;
        if let Some(dir) = config.get("build-dir").filter(|d| !d.is_empty()) {
            settings.tmp_root = PathBuf::from(dir);
        }
        settings.build_users_group = config.get("build-users-group").filter(|g| !g.is_empty());
        settings.print_build_logs = self.print_build_logs.unwrap_or(legacy);
        settings.prefix_log_lines = !legacy;
        // What this machine can build: `system`, `extra-platforms` and
        // `system-features` (CppNix's defaults unless set).
        if let Some(system) = config.get("system").filter(|s| !s.is_empty()) {
            settings.system = system;
        }
        if config.is_set("extra-platforms") {
            settings.extra_platforms = config.get_list("extra-platforms").into_iter().collect();
        }
        if config.is_set("system-features") {
            settings.system_features = config.get_list("system-features").into_iter().collect();
        }
        settings.system_features.extend(config.get_list("extra-system-features"));
        Ok(settings)
    }
}

/// Parses `DRV[!out1,out2]` (also `^` as in newer CppNix).
pub fn parse_derived_path(store: &dyn Store, arg: &str) -> anyhow::Result<(StorePath, Option<BTreeSet<String>>)> {
    let (path, outputs) = match arg.split_once(['!', '^']) {
        Some((path, outputs)) if outputs != "*" => {
            (path, Some(outputs.split(',').map(str::to_string).collect::<BTreeSet<String>>()))
        }
        Some((path, _)) => (path, None),
        None => (arg, None),
    };
    let store_path = crate::store_args::follow_links_to_store_path(store, path)?;
    Ok((store_path, outputs))
}

/// Prints failures as CppNix does and returns the exit status.
pub fn report_failures(result: &RealiseResult) -> u8 {
    for failure in &result.failures {
        if failure.kind != nivis_build::FailureKind::DependencyFailed {
            eprintln!("error: {}", failure.message);
        }
    }
    for failure in &result.failures {
        if failure.kind == nivis_build::FailureKind::DependencyFailed {
            eprintln!("error: {}", failure.message);
        }
    }
    result.exit_status()
}

/// "these N derivations will be built:" on stderr, as CppNix's `printMissing`.
pub fn print_missing(store: &dyn Store, targets: &[DerivedPath], substituters: &ConfiguredSubstituters) -> anyhow::Result<()> {
    let missing = nivis_build::query_missing(store, targets, Some(substituters))?;
    if !missing.will_build.is_empty() {
        if missing.will_build.len() == 1 {
            eprintln!("this derivation will be built:");
        } else {
            eprintln!("these {} derivations will be built:", missing.will_build.len());
        }
        for path in &missing.will_build {
            eprintln!("  {}", store.print_store_path(path));
        }
    }
    print_will_fetch(store, &missing.will_substitute, missing.download_size, missing.nar_size);
    Ok(())
}

/// "these N paths will be fetched (X MiB download, Y MiB unpacked):" on
/// stderr, as CppNix's `printMissing`; nothing when `paths` is empty.
fn print_will_fetch(store: &dyn Store, paths: &nivis_formats::StorePathSet, download_size: u64, nar_size: u64) {
    if paths.is_empty() {
        return;
    }
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    let sizes = format!("{:.2} MiB download, {:.2} MiB unpacked", mib(download_size), mib(nar_size));
    if paths.len() == 1 {
        eprintln!("this path will be fetched ({sizes}):");
    } else {
        eprintln!("these {} paths will be fetched ({sizes}):", paths.len());
    }
    for path in paths {
        eprintln!("  {}", store.print_store_path(path));
    }
}

/// The configured binary caches, as the scheduler's substitution hook: every
/// output that is missing is offered to them before anything is built.
pub struct ConfiguredSubstituters(nivis_substitute::SubstituterSet);

impl nivis_build::Substituter for ConfiguredSubstituters {
    fn substitute(&self, store: &dyn Store, paths: &nivis_formats::StorePathSet) -> Result<nivis_formats::StorePathSet, String> {
        let mut progress = crate::progress::copy_progress(store.store_dir().as_str().to_string(), true);
        self.0.substitute(store, paths, &mut progress).map_err(|error| error.to_string())
    }

    /// Prints why each failed substitute failed (`error: ...`, as CppNix
    /// does with or without `--fallback`).
    fn substitute_outcome(
        &self,
        store: &dyn Store,
        paths: &nivis_formats::StorePathSet,
    ) -> Result<nivis_build::SubstituteOutcome, String> {
        let mut progress = crate::progress::copy_progress(store.store_dir().as_str().to_string(), true);
        let report = self.0.substitute_report(store, paths, &mut progress).map_err(|error| error.to_string())?;
        for (path, error) in &report.failed {
            if report.substitutes_failed.contains(path) {
                eprintln!("error: {error}");
            }
        }
        Ok(nivis_build::SubstituteOutcome {
            substituted: report.substituted.into_iter().collect(),
            failed: report.substitutes_failed,
        })
    }

    fn query_substitutable(
        &self,
        store: &dyn Store,
        paths: &nivis_formats::StorePathSet,
    ) -> Result<BTreeMap<StorePath, nivis_build::SubstitutablePath>, String> {
        let offered = self.0.query_substitutable(store, paths).map_err(|error| error.to_string())?;
        Ok(offered
            .into_iter()
            .map(|(path, info)| {
                let info = nivis_build::SubstitutablePath {
                    references: info.references,
                    download_size: info.download_size,
                    nar_size: info.nar_size,
                };
                (path, info)
            })
            .collect())
    }
}

/// Realises derivations and plain store paths (which must be valid),
/// substituting what the binary caches have before building the rest.
/// Returns the scheduler's result, or the exit status on failure.
pub fn realise(
    store: &dyn Store,
    targets: &[DerivedPath],
    settings: &BuildSettings,
    substituters: &ConfiguredSubstituters,
    dry_run: bool,
) -> anyhow::Result<Result<RealiseResult, u8>> {
    print_missing(store, targets, substituters)?;
    if dry_run {
        return Ok(Ok(RealiseResult::default()));
    }
    let result = nivis_build::realise(store, targets, settings, Some(substituters))?;
    if !result.failures.is_empty() {
        return Ok(Err(report_failures(&result)));
    }
    Ok(Ok(result))
}

/// `nix-store --realise` / `-r` (and `--read-log` / `-l`), if the
/// arguments ask for them; otherwise `None` and nix-store handles them.
pub fn intercept_nix_store(args: &[OsString]) -> Option<crate::CommandResult> {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let is = |names: &[&str], letter: char| {
        args.iter().any(|a| {
            names.contains(&a.as_str())
                || (a.starts_with('-') && !a.starts_with("--") && a.len() > 2 && a[1..].chars().all(|c| c.is_ascii_alphabetic()) && a.contains(letter))
        })
    };
    if is(&["--realise", "--realize", "-r"], 'r') {
        return Some(nix_store_realise(&args));
    }
    if is(&["--read-log", "-l"], 'l') {
        return Some(nix_store_read_log(&args));
    }
    // These rebuild, so they take the build flags (`--option sandbox-paths`...).
    if args.iter().any(|a| a == "--repair-path") {
        return Some(nix_store_repair_paths(&args));
    }
    if args.iter().any(|a| a == "--verify") && args.iter().any(|a| a == "--repair") {
        return Some(nix_store_verify_repair(&args));
    }
    None
}

/// Splits the arguments of a `nix-store` operation into build flags and the
/// rest (operation flags and operands), with the operation's own flags named.
fn parse_operation(args: &[String], own_flags: &[&str]) -> anyhow::Result<(BuildFlags, Vec<String>)> {
    let args = split_compound(args);
    let mut flags = BuildFlags::default();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if own_flags.contains(&arg) {
            rest.push(arg.to_string());
        } else if !flags.parse_flag(&args, &mut i)? {
            if arg.starts_with('-') && arg.len() > 1 {
                bail!("unknown flag '{arg}'\nTry 'nix-store --help' for more information.");
            }
            rest.push(arg.to_string());
        }
        i += 1;
    }
    Ok((flags, rest))
}

/// `nix-store --repair-path PATH...`.
fn nix_store_repair_paths(args: &[String]) -> crate::CommandResult {
    let (flags, rest) = parse_operation(args, &["--repair-path"])?;
    let store = crate::store_args::open_store(flags.store.as_deref())?;
    let settings = BuildSettings { repair: true, ..flags.settings(true)? };
    let substituters = flags.substituters()?;
    for arg in rest.iter().filter(|a| *a != "--repair-path") {
        let path = crate::store_args::follow_links_to_store_path(store.as_ref(), arg)?;
        let status = repair_path(store.as_ref(), &path, &settings, &substituters)?;
        if status != 0 {
            return Ok(ExitCode::from(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `nix-store --verify [--check-contents] --repair`: the store's own check
/// (which reports and invalidates), then [`repair_path`] for every path whose
/// contents differ from its NAR hash and every vanished path that is still
/// referred to, as CppNix's `verifyStore` with `repair`.
fn nix_store_verify_repair(args: &[String]) -> crate::CommandResult {
    let (flags, rest) = parse_operation(args, &["--verify", "--check-contents", "--repair"])?;
    if let Some(extra) = rest.iter().find(|a| !matches!(a.as_str(), "--verify" | "--check-contents" | "--repair")) {
        bail!("no arguments expected, got '{extra}'\nTry 'nix-store --help' for more information.");
    }
    let check_contents = rest.iter().any(|a| a == "--check-contents");
    let store = crate::store_args::open_store(flags.store.as_deref())?;
    let settings = BuildSettings { repair: true, ..flags.settings(true)? };
    let substituters = flags.substituters()?;
    let report = store.verify_store(check_contents, false)?;
    // Errors other than the ones repaired below (unreadable paths) stay errors.
    let mut errors = report.errors && report.hash_mismatches.is_empty() && report.missing.is_empty();
    let broken = report.missing.iter().chain(report.hash_mismatches.iter().map(|(path, _, _)| path));
    for printed in broken {
        let path = store.parse_store_path(printed)?;
        if repair_path(store.as_ref(), &path, &settings, &substituters)? != 0 {
            errors = true;
        }
    }
    if errors {
        eprintln!("warning: not all store errors were fixed");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// CppNix's `repairPath`: a valid path whose contents are corrupted (or
/// gone) is rebuilt through its deriver in repair mode, which rebuilds the
/// corrupted outputs in the sandbox and swaps them in. Returns the exit status
/// (0 when the path is good, or was repaired). Re-fetching from a binary cache
/// is not tried yet: a path without a valid deriver "cannot be repaired".
pub fn repair_path(
    store: &dyn Store,
    path: &StorePath,
    settings: &BuildSettings,
    substituters: &ConfiguredSubstituters,
) -> anyhow::Result<u8> {
    let printed = store.print_store_path(path);
    let info = store.query_path_info(path)?.ok_or_else(|| anyhow::anyhow!("path '{printed}' is not valid"))?;
    let deriver = match info.deriver {
        Some(deriver) if store.is_valid_path(&deriver)? => deriver,
        _ => {
            eprintln!("error: cannot repair path '{printed}'");
            return Ok(1);
        }
    };
    let settings = BuildSettings { repair: true, ..settings.clone() };
    let result = nivis_build::realise(store, &[DerivedPath { drv_path: deriver, outputs: None }], &settings, Some(substituters))?;
    if !result.failures.is_empty() {
        return Ok(report_failures(&result));
    }
    Ok(0)
}

fn split_compound(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        if arg.starts_with('-') && !arg.starts_with("--") && arg.len() > 2 && arg[1..].chars().all(|c| c.is_ascii_alphabetic()) {
            out.extend(arg[1..].chars().map(|c| format!("-{c}")));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

fn nix_store_realise(args: &[String]) -> crate::CommandResult {
    const OWN_FLAGS: &[&str] = &["--realise", "--realize", "-r", "--ignore-unknown", "--add-root", "--indirect"];
    let (flags, rest) = parse_operation(args, OWN_FLAGS)?;
    if rest.iter().any(|a| a == "--add-root") {
        bail!(crate::NotImplemented("nix-store --realise --add-root".into()));
    }
    let paths: Vec<&String> = rest.iter().filter(|a| !OWN_FLAGS.contains(&a.as_str())).collect();
    let store = crate::store_args::open_store(flags.store.as_deref())?;
    let settings = flags.settings(true)?;
    let mut targets = Vec::new();
    let mut plain = Vec::new();
    for arg in &paths {
        let (path, outputs) = parse_derived_path(store.as_ref(), arg)?;
        if path.is_derivation() {
            targets.push(DerivedPath { drv_path: path, outputs });
        } else {
            plain.push(path);
        }
    }
    // Paths that are not derivations can only be fetched: from the
    // substituters (content-addressed ones need no signature), else an error.
    let substituters = flags.substituters()?;
    let mut missing = nivis_formats::StorePathSet::new();
    for path in &plain {
        if !store.is_valid_path(path)? {
            missing.insert(path.clone());
        }
    }
    let mut fetchable = nivis_formats::StorePathSet::new();
    if !missing.is_empty() {
        let answer = nivis_build::Substituter::query_substitutable(&substituters, store.as_ref(), &missing)
            .map_err(|error| anyhow::anyhow!(error))?;
        fetchable = answer.keys().cloned().collect();
        let download_size = answer.values().map(|p| p.download_size).sum();
        let nar_size = answer.values().map(|p| p.nar_size).sum();
        print_will_fetch(store.as_ref(), &fetchable, download_size, nar_size);
        if !flags.dry_run
            && let Err(error) = nivis_build::Substituter::substitute(&substituters, store.as_ref(), &missing)
        {
            eprintln!("warning: {error}");
        }
    }
    let mut unknown = Vec::new();
    for path in &missing {
        let available = if flags.dry_run { fetchable.contains(path) } else { store.is_valid_path(path)? };
        if !available {
            unknown.push(store.print_store_path(path));
        }
    }
    if let Some(first) = unknown.first() {
        // CppNix's printMissing names them first; the error is current CppNix's.
        eprintln!("don't know how to build these paths:");
        for path in &unknown {
            eprintln!("  {path}");
        }
        bail!("path '{first}' is required, but there is no substituter that can build it");
    }
    let result = match realise(store.as_ref(), &targets, &settings, &substituters, flags.dry_run)? {
        Ok(result) => result,
        Err(status) => return Ok(ExitCode::from(status)),
    };
    if flags.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Arguments in order: a derivation prints its outputs, a path itself.
    for arg in &paths {
        let (path, _) = parse_derived_path(store.as_ref(), arg)?;
        if let Some(outputs) = result.outputs.get(&path) {
            for output in outputs.values() {
                writeln!(out, "{}", store.print_store_path(output))?;
            }
        } else if !path.is_derivation() {
            writeln!(out, "{}", store.print_store_path(&path))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn nix_store_read_log(args: &[String]) -> crate::CommandResult {
    let args = split_compound(args);
    let mut flags = BuildFlags::default();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if !matches!(arg, "--read-log" | "-l") && !flags.parse_flag(&args, &mut i)? {
            paths.push(arg.to_string());
        }
        i += 1;
    }
    let store = crate::store_args::open_store(flags.store.as_deref())?;
    for arg in &paths {
        let path = crate::store_args::follow_links_to_store_path(store.as_ref(), arg)?;
        let log = read_log(store.as_ref(), &path)?;
        std::io::stdout().write_all(&log)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The build log of `path` (a `.drv`, or an output whose deriver is known).
pub fn read_log(store: &dyn Store, path: &StorePath) -> anyhow::Result<Vec<u8>> {
    let local = store.as_local().context("this store keeps no build logs")?;
    let log_dir = &local.config().log_dir;
    let drv_path = if path.is_derivation() {
        Some(path.clone())
    } else {
        store.query_path_info(path)?.and_then(|info| info.deriver)
    };
    if let Some(drv_path) = drv_path
        && let Some(log) = nivis_build::read_build_log(log_dir, &drv_path)?
    {
        return Ok(log);
    }
    bail!("build log of '{}' is not available", store.print_store_path(path))
}

/// Creates the `result` symlink of a build. On a local store it is a
/// permanent GC root (`LocalStore::add_perm_root`: an indirect root under
/// `gcroots/auto`, and an existing link is only replaced if it points into the
/// store, as CppNix's `addPermRoot`); on other stores just a symlink.
pub fn create_out_link(store: &dyn Store, link: &Path, target: &StorePath) -> anyhow::Result<PathBuf> {
    let link = crate::store_args::absolute_path(&link.to_string_lossy())?;
    if let Some(local) = store.as_local() {
        return Ok(local.add_perm_root(target, &link)?);
    }
    // Replace an existing link atomically, as CppNix's `replaceSymlink`.
    let temp = link.with_file_name(format!(
        ".{}.tmp-{}",
        link.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&temp);
    std::os::unix::fs::symlink(store.print_store_path(target), &temp)
        .with_context(|| format!("creating symlink '{}'", temp.display()))?;
    std::fs::rename(&temp, &link).with_context(|| format!("creating symlink '{}'", link.display()))?;
    Ok(link)
}

/// The `result` link names of CppNix's nix-build: derivation `index` (0
/// first) and output name: `result`, `result-dev`, `result-2`, `result-2-dev`.
pub fn out_link_name(base: &str, index: usize, output: &str) -> String {
    let mut name = base.to_string();
    if index > 0 {
        name.push_str(&format!("-{}", index + 1));
    }
    if output != "out" {
        name.push_str(&format!("-{output}"));
    }
    name
}

/// Groups `(drv, output)` pairs by derivation, keeping first-seen order.
pub fn group_targets(store: &dyn Store, pairs: &[(String, String)]) -> anyhow::Result<Vec<DerivedPath>> {
    let mut order: Vec<StorePath> = Vec::new();
    let mut outputs: BTreeMap<StorePath, BTreeSet<String>> = BTreeMap::new();
    for (drv, output) in pairs {
        let path = store.parse_store_path(drv)?;
        if !outputs.contains_key(&path) {
            order.push(path.clone());
        }
        outputs.entry(path).or_default().insert(output.clone());
    }
    Ok(order.into_iter().map(|p| DerivedPath { outputs: Some(outputs[&p].clone()), drv_path: p }).collect())
}
