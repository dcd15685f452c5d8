//! `nix-collect-garbage` (`-d`/`--delete-old`, `--delete-older-than PERIOD`,
//! `--max-freed SIZE`, `--dry-run`), and the pieces every garbage-collecting
//! command shares (`nix-store --gc`/`--delete`/`--query --roots`, `nix store
//! gc`/`delete`): the
//! collector's options from `nix.conf`, CppNix's size arguments, and the
//! "N store paths deleted, X MiB freed" line, printed even when the collector
//! fails halfway, as CppNix's `PrintFreed` does.
//!
//! As CppNix 2.8: `-d` walks the profiles directory recursively and, for every
//! symlink whose target contains `link` (a profile), deletes its old
//! generations; `--dry-run` only says which generations would go and runs no
//! collection. The profiles directory is the one of the store's state
//! directory (`<root>/nix/var/nix/profiles` for a relocated store).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_store::{GcAction, GcOptions, GcResults, LocalStore, Store};

use crate::store_args::open_store;

/// The collector's options for `action`, with `keep-outputs` and
/// `keep-derivations` from the configuration (CppNix's defaults otherwise).
pub(crate) fn gc_options(action: GcAction) -> anyhow::Result<GcOptions> {
    let config = nivis_config::Config::load()?;
    Ok(GcOptions {
        action,
        keep_outputs: config.get_bool("keep-outputs")?,
        keep_derivations: config.get_bool("keep-derivations")?,
        ..GcOptions::default()
    })
}

/// CppNix's `getIntArg` with units: an integer with an optional `K`, `M`, `G`
/// or `T` suffix (powers of 1024); negative values count as 0. Errors are
/// CppNix's usage-error texts.
pub(crate) fn parse_size(value: &str) -> Result<u64, String> {
    let mut text = value;
    let mut multiplier: i128 = 1;
    if let Some(last) = text.chars().last()
        && last.is_ascii_alphabetic()
    {
        multiplier = match last.to_ascii_uppercase() {
            'K' => 1 << 10,
            'M' => 1 << 20,
            'G' => 1 << 30,
            'T' => 1 << 40,
            other => return Err(format!("invalid unit specifier '{other}'")),
        };
        text = &text[..text.len() - 1];
    }
    let Ok(number) = text.parse::<i64>() else {
        return Err(format!("'{text}' is not an integer"));
    };
    let bytes = (number as i128 * multiplier).max(0);
    Ok(u64::try_from(bytes).unwrap_or(u64::MAX))
}

/// The local store behind `store`, or CppNix's error for stores that cannot collect.
pub(crate) fn local_store(store: &dyn Store) -> anyhow::Result<&LocalStore> {
    match store.as_local() {
        Some(local) => Ok(local),
        None => bail!("operation 'collectGarbage' is not supported by store '{}'", store.uri()),
    }
}

/// Runs the collector; with `print_freed`, prints CppNix's summary line on
/// `out` afterwards, whether or not the collector succeeded.
pub(crate) fn collect(
    store: &LocalStore,
    options: &GcOptions,
    print_freed: bool,
    out: &mut dyn Write,
) -> anyhow::Result<GcResults> {
    let mut results = GcResults::default();
    let outcome = store.collect_garbage(options, &mut results);
    if print_freed {
        writeln!(
            out,
            "{} store paths deleted, {} freed",
            results.paths.len(),
            nivis_store::show_bytes(results.bytes_freed)
        )?;
    }
    outcome?;
    Ok(results)
}

/// `nix-store --delete [--ignore-liveness] PATHS` and `nix store delete`.
pub(crate) fn delete_specific(
    store: &dyn Store,
    paths: nivis_formats::StorePathSet,
    ignore_liveness: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let local = local_store(store)?;
    let mut options = gc_options(GcAction::DeleteSpecific)?;
    options.paths_to_delete = paths;
    options.ignore_liveness = ignore_liveness;
    collect(local, &options, true, out)?;
    Ok(())
}

/// `nix-store --gc` with its flags (`--max-freed`'s value follows it in `flags`).
pub(crate) fn nix_store_gc(store: &dyn Store, flags: &[String], args: &[String], out: &mut dyn Write) -> crate::CommandResult {
    let mut print_roots = false;
    let mut options = gc_options(GcAction::DeleteDead)?;
    let mut iter = flags.iter();
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "--print-roots" => print_roots = true,
            "--print-live" => options.action = GcAction::ReturnLive,
            "--print-dead" => options.action = GcAction::ReturnDead,
            "--max-freed" => {
                let Some(value) = iter.next() else {
                    return Err(crate::legacy::nix_store::UsageError("flag '--max-freed' requires an argument".into()).into());
                };
                options.max_freed = parse_size(value).map_err(crate::legacy::nix_store::UsageError)?;
            }
            other => {
                return Err(crate::legacy::nix_store::UsageError(format!("bad sub-operation '{other}' in GC")).into());
            }
        }
    }
    if !args.is_empty() {
        return Err(crate::legacy::nix_store::UsageError("no arguments expected".into()).into());
    }
    let local = local_store(store)?;
    if print_roots {
        let roots = local.find_roots(false)?;
        // Sorted by link, then target, as CppNix prints them.
        let mut lines = std::collections::BTreeSet::new();
        for (target, links) in &roots {
            for link in links {
                lines.insert((link.clone(), store.print_store_path(target)));
            }
        }
        for (link, target) in lines {
            writeln!(out, "{link} -> {target}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let results = collect(local, &options, options.action == GcAction::DeleteDead, out)?;
    if options.action != GcAction::DeleteDead {
        for path in &results.paths {
            writeln!(out, "{path}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `nix-store --query --roots`: the roots that keep any of `start` alive, i.e.
/// that lie in the referrers closure of `start` (with the edges
/// `keep-outputs` and `keep-derivations` add), as `link -> target` lines.
pub(crate) fn print_roots_of(store: &dyn Store, start: &nivis_formats::StorePathSet, out: &mut dyn Write) -> anyhow::Result<()> {
    let local = local_store(store)?;
    let options = gc_options(GcAction::ReturnLive)?;
    let mut keepers = nivis_formats::StorePathSet::new();
    let mut pending: Vec<_> = start.iter().cloned().collect();
    while let Some(path) = pending.pop() {
        if !keepers.insert(path.clone()) {
            continue;
        }
        let mut next = store.query_referrers(&path)?;
        if options.keep_outputs {
            next.extend(store.query_valid_derivers(&path)?);
        }
        if options.keep_derivations && path.is_derivation() && store.is_valid_path(&path)? {
            for output in store.query_derivation_outputs(&path)?.into_values() {
                if store.is_valid_path(&output)? {
                    next.insert(output);
                }
            }
        }
        pending.extend(next.into_iter().filter(|p| !keepers.contains(p)));
    }
    for (target, links) in local.find_roots(false)? {
        if keepers.contains(&target) {
            for link in links {
                writeln!(out, "{link} -> {}", store.print_store_path(&target))?;
            }
        }
    }
    Ok(())
}

/// Deletes old generations of every profile under `dir`, recursively, as
/// CppNix's `removeOldGenerations`.
fn remove_old_generations(dir: &Path, older_than: Option<i64>, dry_run: bool) -> anyhow::Result<()> {
    let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return Ok(()) };
    // SAFETY: access with a NUL-terminated path.
    if unsafe { libc::access(c_dir.as_ptr(), libc::R_OK) } != 0 {
        return Ok(());
    }
    // SAFETY: as above.
    let can_write = unsafe { libc::access(c_dir.as_ptr(), libc::W_OK) } == 0;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading directory '{}'", dir.display()))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else { continue };
        if file_type.is_symlink() && can_write {
            let link = match std::fs::read_link(&path) {
                Ok(link) => link,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("reading symbolic link '{}'", path.display())),
            };
            if link.to_string_lossy().contains("link") {
                eprintln!("removing old generations of profile {}", path.display());
                let removed = match older_than {
                    Some(cutoff) => nivis_profile::delete_generations_older_than(&path, cutoff, dry_run)?,
                    None => nivis_profile::delete_old_generations(&path, dry_run)?,
                };
                for number in removed {
                    eprintln!("{} profile version {number}", if dry_run { "would remove" } else { "removing" });
                }
            }
        } else if file_type.is_dir() {
            remove_old_generations(&path, older_than, dry_run)?;
        }
    }
    Ok(())
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into_string().map_err(|a| anyhow::anyhow!("argument {a:?} is not valid UTF-8")))
        .collect::<Result<_, _>>()?;
    let mut remove_old = false;
    let mut older_than = None;
    let mut dry_run = false;
    let mut max_freed = None;
    let mut store_flag = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| -> anyhow::Result<String> {
            iter.next().ok_or_else(|| anyhow::anyhow!("flag '{name}' requires an argument\nTry 'nix-collect-garbage --help' for more information."))
        };
        match arg.as_str() {
            "--help" => {
                println!("Usage: nix-collect-garbage [--delete-old | -d] [--delete-older-than PERIOD] [--max-freed SIZE] [--dry-run]");
                return Ok(ExitCode::SUCCESS);
            }
            "--version" => {
                println!("nix-collect-garbage (Nix) 2.8.0");
                return Ok(ExitCode::SUCCESS);
            }
            "--delete-old" | "-d" => remove_old = true,
            "--delete-older-than" => {
                remove_old = true;
                older_than = Some(value("--delete-older-than")?);
            }
            "--dry-run" => dry_run = true,
            "--max-freed" => {
                let size = parse_size(&value("--max-freed")?)
                    .map_err(|e| anyhow::anyhow!("{e}\nTry 'nix-collect-garbage --help' for more information."))?;
                max_freed = Some(size);
            }
            "--store" => store_flag = Some(value("--store")?),
            "--option" => {
                value("--option")?;
                value("--option")?;
            }
            "--verbose" | "-v" | "--quiet" | "--show-trace" | "--no-gc-warning" => {}
            other => bail!("unrecognised flag '{other}'\nTry 'nix-collect-garbage --help' for more information."),
        }
    }
    let store = open_store(store_flag.as_deref())?;
    let local = local_store(store.as_ref())?;
    if remove_old {
        let cutoff = match &older_than {
            Some(spec) => Some(nivis_profile::parse_older_than(spec)?),
            None => None,
        };
        let profiles = local.config().state_dir.join("profiles");
        remove_old_generations(&profiles, cutoff, dry_run)?;
    }
    if !dry_run {
        let mut options = gc_options(GcAction::DeleteDead)?;
        if let Some(max) = max_freed {
            options.max_freed = max;
        }
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        collect(local, &options, true, &mut out)?;
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_units_and_negative_is_zero() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2K").unwrap(), 2048);
        assert_eq!(parse_size("3m").unwrap(), 3 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("-5").unwrap(), 0);
        // CppNix 2.8's words.
        assert_eq!(parse_size("lots").unwrap_err(), "invalid unit specifier 'S'");
        assert_eq!(parse_size("1.5").unwrap_err(), "'1.5' is not an integer");
    }
}
