//! `nix profile`: profiles whose generations carry a `manifest.json`, as
//! CppNix 2.8's `src/nix/profile.cc`. One file per subcommand, its help text
//! beside it; this file holds what they share: flags, the profile's location,
//! reading a generation's manifest (`manifest.json`, or nix-env's
//! `manifest.nix`, converted as CppNix 2.8 converts it), element matchers, and
//! making a new generation.
//!
//! A new generation is made as CppNix's `ProfileManifest::build` makes it: the
//! symlink tree of the active elements (`builtin:buildenv`'s algorithm, every
//! package at priority 5) plus `manifest.json`, added to the store as the
//! recursive SHA-256 content-addressed path `profile` whose references are every
//! element's store paths; then the generation link (a GC root) is made and the
//! profile link is renamed over. So a crash leaves the old generation or the
//! new one, complete. Unlike CppNix 2.8 we hold the profile's lock
//! (`<profile>.lock`) from reading the manifest to switching, so two
//! concurrent installs cannot lose each other's elements.

mod diff_closures;
mod history;
mod install;
mod list;
mod remove;
mod rollback;
mod upgrade;
mod wipe_history;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_eval::support::posix_regex::{CompiledRegex, RegexError};
use nivis_formats::{FileIngestionMethod, HashAlgorithm, StorePath};
use nivis_profile::{ProfileElement, ProfileManifest};
use nivis_store::{LocalStore, Store};

use crate::eval_io::AutoArg;
use crate::realise::BuildFlags;

const HELP: &str = "\
Usage: nix profile COMMAND [FLAGS...] [ARGS...]

Manage Nix profiles.

Commands:
  diff-closures  show the closure difference between each version of a profile
  history        show all versions of a profile
  install        install a package into a profile
  list           list installed packages
  remove         remove packages from a profile
  rollback       roll back to the previous version or a specified version of a profile
  upgrade        upgrade packages using their most recent flake
  wipe-history   delete non-current versions of a profile

Common flags:
  --profile PATH   the profile to operate on (default: ~/.nix-profile's target)
  --store URI      the Nix store to use
";

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    // The subcommand is the first word that is not a flag or a flag's value.
    let mut position = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        match arg {
            "--store" | "--profile" | "--extra-experimental-features" | "--experimental-features" => i += 2,
            "--option" => i += 3,
            "--help" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            _ if arg.starts_with('-') => i += 1,
            _ => {
                position = Some(i);
                break;
            }
        }
    }
    let Some(position) = position else {
        eprintln!("error: 'nix profile' requires a sub-command.");
        eprint!("{HELP}");
        return Ok(ExitCode::from(1));
    };
    let mut rest = args.clone();
    let subcommand = rest.remove(position);
    match subcommand.as_str() {
        "install" => install::run(&rest),
        "remove" => remove::run(&rest),
        "upgrade" => upgrade::run(&rest),
        "list" => list::run(&rest),
        "rollback" => rollback::run(&rest),
        "history" => history::run(&rest),
        "diff-closures" => diff_closures::run(&rest),
        "wipe-history" => wipe_history::run(&rest),
        other => {
            bail!("'{other}' is not a recognised command\nTry 'nix --help' for more information.")
        }
    }
}

/// Which flags a subcommand takes besides `--profile`, `--store` and `--help`.
#[derive(Clone, Copy, Default)]
struct Accepts {
    /// `-f`/`--file`, `--expr`, `--arg`, `--argstr`, `-I`.
    eval: bool,
    /// The build flags of [`BuildFlags`] (`-j`, `--option`, `-L`, ...).
    build: bool,
    dry_run: bool,
    to: bool,
    older_than: bool,
    /// `--all` and `--regex PATTERN` (current CppNix's element selectors).
    matchers: bool,
}

/// The command line of one subcommand.
#[derive(Default)]
struct Options {
    profile: Option<String>,
    dry_run: bool,
    build: BuildFlags,
    file: Option<String>,
    expr: Option<String>,
    auto_args: Vec<(String, AutoArg)>,
    include: Vec<String>,
    to: Option<u64>,
    older_than: Option<String>,
    all: bool,
    regexes: Vec<String>,
    positional: Vec<String>,
}

impl Options {
    /// Parses `args`; `Ok(None)` when `--help` printed `help`.
    fn parse(args: &[String], accepts: Accepts, help: &str) -> anyhow::Result<Option<Options>> {
        let mut o = Options::default();
        let mut i = 0;
        while i < args.len() {
            let a = args[i].clone();
            let next = |i: &mut usize| -> anyhow::Result<String> {
                *i += 1;
                args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{a}' requires an argument"))
            };
            if accepts.eval && crate::eval_io::parse_eval_flag(args, &mut i, &mut o.auto_args, &mut o.include)? {
                i += 1;
                continue;
            }
            match a.as_str() {
                "--help" => {
                    print!("{help}");
                    return Ok(None);
                }
                "--profile" => o.profile = Some(next(&mut i)?),
                "--extra-experimental-features" | "--experimental-features" => {
                    next(&mut i)?;
                }
                "--dry-run" if accepts.dry_run => o.dry_run = true,
                "--to" if accepts.to => {
                    let value = next(&mut i)?;
                    o.to = Some(value.parse().map_err(|_| anyhow::anyhow!("invalid integer '{value}'"))?);
                }
                "--older-than" if accepts.older_than => o.older_than = Some(next(&mut i)?),
                "--all" if accepts.matchers => o.all = true,
                "--regex" if accepts.matchers => o.regexes.push(next(&mut i)?),
                "-f" | "--file" if accepts.eval => o.file = Some(next(&mut i)?),
                "--expr" if accepts.eval => o.expr = Some(next(&mut i)?),
                "--impure" if accepts.eval => o.build.impure = true,
                "--store" if !accepts.build => o.build.store = Some(next(&mut i)?),
                "--option" if !accepts.build => {
                    next(&mut i)?;
                    next(&mut i)?;
                }
                _ => {
                    if !(accepts.build && o.build.parse_flag(args, &mut i)?) {
                        if a.starts_with('-') && a.len() > 1 {
                            bail!("unrecognised flag '{a}'\nTry 'nix --help' for more information.");
                        }
                        o.positional.push(a);
                    }
                }
            }
            i += 1;
        }
        if o.build.dry_run {
            o.dry_run = true;
        }
        Ok(Some(o))
    }

    /// The profile: `--profile` made absolute (without resolving symlinks,
    /// as CppNix's `absPath`), else the user's default profile.
    fn profile_path(&self) -> anyhow::Result<PathBuf> {
        match &self.profile {
            Some(path) => crate::store_args::absolute_path(path),
            None => Ok(nivis_profile::default_profile(&nivis_store::StoreSettings::from_env().state_dir)),
        }
    }

    fn open_store(&self) -> anyhow::Result<Box<dyn Store>> {
        crate::store_args::open_store(self.build.store.as_deref())
    }

    /// For the subcommands that take no arguments besides flags.
    fn no_positional_arguments(&self) -> anyhow::Result<()> {
        if let Some(extra) = self.positional.first() {
            anyhow::bail!("unexpected argument '{extra}'\nTry 'nix --help' for more information.");
        }
        Ok(())
    }
}

/// The local store behind `store`, which profiles need (their generation
/// links are GC roots in its state directory).
fn local_store(store: &dyn Store) -> anyhow::Result<&LocalStore> {
    store.as_local().ok_or_else(|| anyhow::anyhow!("'--profile' is not supported for this Nix store"))
}

/// Where the file named by `logical` (a path in the logical store directory)
/// really is.
fn real_file(store: &dyn Store, logical: &Path) -> Option<PathBuf> {
    let store_dir = store.store_dir().as_str();
    let rest = logical.strip_prefix(store_dir).ok()?;
    let mut components = rest.components();
    let base = components.next()?.as_os_str().to_string_lossy().into_owned();
    let store_path = StorePath::from_base_name(&base).ok()?;
    let real = store.real_path(&store_path)?;
    let rest = components.as_path();
    Some(if rest.as_os_str().is_empty() { real } else { real.join(rest) })
}

/// The manifest of a profile or generation link (an empty one if the link
/// does not exist): its `manifest.json`, or, for a profile nix-env made, its
/// `manifest.nix`, each installed derivation becoming an element with its
/// `outPath` (as CppNix 2.8 converts it).
fn read_manifest(store: &dyn Store, link: &Path) -> anyhow::Result<ProfileManifest> {
    if std::fs::symlink_metadata(link).is_err() {
        return Ok(ProfileManifest::default());
    }
    let store_path = crate::store_args::follow_links_to_store_path(store, &link.to_string_lossy())?;
    let real = store
        .real_path(&store_path)
        .with_context(|| format!("profile '{}' is not in a local store", link.display()))?;
    let json = real.join("manifest.json");
    if json.exists() {
        let text = std::fs::read(&json).with_context(|| format!("reading file '{}'", json.display()))?;
        // Named through the link, as CppNix names it (`<profile>/manifest.json`).
        return Ok(ProfileManifest::parse(&text, store.store_dir(), &link.join("manifest.json"))?);
    }
    let nix = real.join("manifest.nix");
    if std::fs::symlink_metadata(&nix).is_ok() {
        // The user environment's `manifest.nix` is a link into the store.
        let target = match std::fs::read_link(&nix) {
            Ok(target) => real_file(store, &target).unwrap_or(target),
            Err(_) => nix.clone(),
        };
        let mut manifest = ProfileManifest::default();
        for out_path in installed_out_paths(&target)? {
            let path = store.parse_store_path(&out_path)?;
            manifest.elements.push(ProfileElement::from_paths([path].into_iter().collect()));
        }
        return Ok(manifest);
    }
    Ok(ProfileManifest::default())
}

/// The `outPath` of each derivation in a nix-env `manifest.nix` (a list of
/// attribute sets), in order.
fn installed_out_paths(manifest_nix: &Path) -> anyhow::Result<Vec<String>> {
    let file = manifest_nix.to_path_buf();
    let result = nivis_eval::run_with_big_stack(crate::eval_io::EVAL_STACK_BYTES, move || {
        use nivis_eval::{Pos, Sym, Value};
        let io: std::rc::Rc<dyn nivis_eval::EvalIO> = std::rc::Rc::new(nivis_eval::FsIO);
        let mut ev = crate::eval_io::new_eval(&[], false, io);
        let evaluated = (|| -> nivis_eval::error::Result<Vec<String>> {
            let expr = ev.parse_file(&file)?;
            let value = ev.eval_expr(expr)?;
            let list = ev.force_list(&value, Pos::NONE)?;
            let mut paths = Vec::new();
            for item in list.iter() {
                let item = ev.force(item, Pos::NONE)?;
                let Value::Attrs(attrs) = item else { continue };
                if let Some(out_path) = attrs.get(Sym::from_str("outPath")).cloned() {
                    paths.push(ev.force_string(&out_path, Pos::NONE)?.to_str_lossy().into_owned());
                }
            }
            Ok(paths)
        })();
        evaluated.map_err(|e| e.render(false))
    });
    result.map_err(|message| anyhow::anyhow!("{}", message.strip_prefix("error: ").unwrap_or(&message)))
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        let base = std::env::var_os("TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        for n in 0u32.. {
            let path = base.join(format!("nix-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating directory '{}'", path.display())),
            }
        }
        unreachable!("some temporary name is free")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = make_writable_and_remove(&self.0);
    }
}

fn make_writable_and_remove(path: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(path)
}

/// Adds the profile path for `manifest` to the store, as CppNix's
/// `ProfileManifest::build`: returns the store path `<hash>-profile`.
fn build_profile_path(local: &LocalStore, manifest: &ProfileManifest) -> anyhow::Result<StorePath> {
    let store_dir = local.store_dir().clone();
    let (packages, references) = manifest.packages_and_references();
    // The packages must survive until the profile refers to them.
    for path in &references {
        local.add_temp_root(path)?;
        if !local.is_valid_path(path)? {
            bail!("path '{}' is not valid", store_dir.print_path(path));
        }
    }
    let temp = TempDir::new()?;
    let tree = temp.0.join("profile");
    let location = nivis_build::StoreLocation {
        logical: PathBuf::from(store_dir.as_str()),
        real: local.config().real_store_dir.clone(),
        visible: None,
    };
    let packages = packages.iter().map(|p| nivis_build::Package::new(store_dir.print_path(p), true, 5)).collect();
    let stats = nivis_build::build_profile_in(&location, &tree, packages)?;
    for warning in stats.warnings {
        eprintln!("warning: {warning}");
    }
    let manifest_file = tree.join("manifest.json");
    std::fs::write(&manifest_file, manifest.to_json(&store_dir))
        .with_context(|| format!("writing file '{}'", manifest_file.display()))?;
    let path = local.add_to_store(
        "profile",
        &tree,
        FileIngestionMethod::Recursive,
        HashAlgorithm::Sha256,
        &references,
        false,
    )?;
    Ok(path)
}

/// Makes `manifest` the profile's new generation and switches to it
/// (CppNix's `updateProfile`): the profile path is complete and valid, the
/// generation link a GC root, before the profile link is renamed over.
fn update_profile(local: &LocalStore, profile: &Path, manifest: &ProfileManifest) -> anyhow::Result<()> {
    let path = build_profile_path(local, manifest)?;
    let link = nivis_profile::create_generation(local, profile, &path)?;
    nivis_profile::switch_link(profile, &link)?;
    Ok(())
}

/// Takes the profile's lock, saying so when another process holds it.
fn lock_profile(profile: &Path) -> anyhow::Result<nivis_profile::ProfileLock> {
    Ok(nivis_profile::lock_profile(profile, || {
        eprintln!("waiting for lock on profile '{}'", profile.display());
    })?)
}

/// How `remove` and `upgrade` select elements (CppNix's
/// `MixProfileElementMatchers`): a number is an index, a store path matches
/// elements that contain it, anything else is a POSIX extended regex matched
/// case-insensitively against the whole of a flake element's attribute path.
/// CppNix 2.8 never matches a regex against an element without a flake
/// source; we match it against such an element's package names (current
/// CppNix matches element names), since nivis installs only such elements.
/// `--regex PATTERN` and `--all` are current CppNix's explicit forms.
enum Matcher {
    All,
    Index(usize),
    Path(StorePath, String),
    Regex(String, CompiledRegex),
}

fn matchers(store: &dyn Store, options: &Options) -> anyhow::Result<Vec<Matcher>> {
    let regex = |pattern: &String| -> anyhow::Result<Matcher> {
        let compiled = nivis_eval::support::posix_regex::compile(pattern.to_ascii_lowercase().as_bytes())
            .map_err(|e| anyhow::anyhow!("{}", regex_error_message(pattern, &e)))?;
        Ok(Matcher::Regex(pattern.clone(), compiled))
    };
    let mut matchers = Vec::new();
    if options.all {
        matchers.push(Matcher::All);
    }
    for pattern in &options.regexes {
        matchers.push(regex(pattern)?);
    }
    for arg in &options.positional {
        if !arg.is_empty()
            && arg.bytes().all(|b| b.is_ascii_digit())
            && let Ok(index) = arg.parse::<usize>()
        {
            matchers.push(Matcher::Index(index));
        } else if let Ok(path) = store.parse_store_path(arg) {
            matchers.push(Matcher::Path(path, arg.clone()));
        } else {
            matchers.push(regex(arg)?);
        }
    }
    Ok(matchers)
}

/// libstdc++'s words for a bad pattern, which CppNix prints.
fn regex_error_message(pattern: &str, error: &RegexError) -> &'static str {
    match error {
        RegexError::Invalid { reason, .. } => match *reason {
            "invalid escape" if pattern.ends_with('\\') => "Invalid escape at end of regular expression",
            "invalid escape" => "Invalid escape in regular expression",
            "bad brace" | "bad brace range" => "Invalid range in '{}' in regular expression",
            "unterminated bracket" => "Unexpected character within '[...]' in regular expression",
            "unterminated bracket element" => "Invalid collating element in regular expression",
            "invalid collating element" => "Invalid collate element.",
            "invalid range" | "invalid range end" => "Invalid range in bracket expression.",
            "invalid character class" => "Invalid character class.",
            _ => "Mismatched '(' and ')' in regular expression",
        },
        RegexError::TooLarge { .. } => {
            "Number of NFA states exceeds limit. Please use shorter regex string, or use smaller brace expression, or make _GLIBCXX_REGEX_STATE_LIMIT larger."
        }
        RegexError::TooComplex { .. } => "Complexity of regex match exceeded implementation limits",
    }
}

fn matches(matchers: &[Matcher], element: &ProfileElement, index: usize) -> bool {
    matchers.iter().any(|matcher| match matcher {
        Matcher::All => true,
        Matcher::Index(n) => *n == index,
        Matcher::Path(path, _) => element.store_paths.contains(path),
        Matcher::Regex(_, regex) => {
            let full = |text: &str| regex.full_match(text.to_ascii_lowercase().as_bytes()).ok().flatten().is_some();
            match &element.source {
                Some(source) => full(&source.attr_path),
                None => element.names().iter().any(|name| full(name)),
            }
        }
    })
}

/// The warnings CppNix prints when `remove` or `upgrade` selected nothing.
fn warn_unmatched(matchers: &[Matcher]) {
    for matcher in matchers {
        match matcher {
            Matcher::All => {}
            Matcher::Index(n) => eprintln!("warning: '{n}' is not a valid index"),
            Matcher::Path(_, printed) => eprintln!("warning: '{printed}' does not match any paths"),
            Matcher::Regex(pattern, _) => eprintln!("warning: '{pattern}' does not match any packages"),
        }
    }
    eprintln!("warning: Use 'nix profile list' to see the current profile.");
}

/// Whether to colour standard output: a terminal that is not `dumb`, and no
/// `NO_COLOR` (CppNix 2.8 colours `history` even into pipes; we follow
/// current CppNix's rule).
fn colour_stdout() -> bool {
    std::io::stdout().is_terminal()
        && std::env::var("TERM").map(|t| t != "dumb").unwrap_or(true)
        && std::env::var_os("NO_COLOR").is_none()
}

/// `YYYY-MM-DD` of a time in seconds since the epoch, in UTC (CppNix prints
/// `std::gmtime` with `%Y-%m-%d`).
fn utc_date(seconds: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let days = seconds.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_795_749_021), "2026-11-27");
    }
}
