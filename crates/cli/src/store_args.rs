//! Opening the store the way every command does: `--store URI`, else
//! `NIX_REMOTE`, else `auto` (the local store), with locations from
//! `NIX_STORE_DIR`, `NIX_STATE_DIR`, `NIX_LOG_DIR`; and turning command-line
//! arguments into store paths as CppNix's `followLinksToStorePath` does.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nivis_formats::StorePath;
use nivis_store::{Store, StoreSettings};

/// The store URI to use: the flag, else `NIX_REMOTE`, else `auto`.
pub fn store_uri(flag: Option<&str>) -> String {
    match flag {
        Some(uri) => uri.to_string(),
        None => std::env::var("NIX_REMOTE").unwrap_or_default(),
    }
}

/// Opens the store named by `flag` / `NIX_REMOTE`.
pub fn open_store(flag: Option<&str>) -> anyhow::Result<Box<dyn Store>> {
    let uri = store_uri(flag);
    let settings = StoreSettings::from_env();
    // Binary caches (file://, http://) are opened by nivis-substitute.
    Ok(nivis_substitute::open_store(&uri, &settings)?)
}

/// Makes `path` absolute and removes `.`, `..` and repeated slashes, without
/// resolving symlinks (CppNix's `absPath`).
pub fn absolute_path(path: &str) -> anyhow::Result<PathBuf> {
    let joined = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        std::env::current_dir().context("getting the current directory")?.join(path)
    };
    Ok(nivis_store::canon_path(&joined))
}

/// The store path named by a command-line argument: a store path, a path inside
/// one, or a symlink (chain) leading into the store.
pub fn follow_links_to_store_path(store: &dyn Store, arg: &str) -> anyhow::Result<StorePath> {
    let store_dir = store.store_dir();
    let mut path = absolute_path(arg)?;
    for _ in 0..1024 {
        let printed = path.to_string_lossy().into_owned();
        // Below the store directory: a store path (or a bad one, said so).
        if printed.strip_prefix(store_dir.as_str()).is_some_and(|rest| rest.starts_with('/') && rest.len() > 1) {
            let (store_path, _) = store_dir.split_path(&printed)?;
            return Ok(store_path);
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)
                    .with_context(|| format!("reading symbolic link '{}'", path.display()))?;
                let parent = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
                path = nivis_store::canon_path(&parent.join(target));
            }
            _ => break,
        }
    }
    bail!("path '{}' is not in the Nix store", path.display())
}

/// For `nix [global flags] <subcommand> ...`: moves the global flags CppNix
/// accepts before the subcommand (`--store URI`) after it, drops those that only
/// switch features on (`--extra-experimental-features X`), and hands settings
/// (`--option N V`) on: after the name to the subcommands that parse them, to
/// the others through `NIX_CONFIG`, which each one's configuration reads last.
/// Each subcommand sees its name first.
///
/// Call this before any thread starts: it sets an environment variable.
pub fn hoist_global_flags(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut leading = Vec::new();
    let mut iter = args.into_iter();
    let mut rest = Vec::new();
    let mut settings = Vec::new();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("--store") => {
                leading.push(arg);
                leading.extend(iter.next());
            }
            Some("--extra-experimental-features" | "--experimental-features") => {
                iter.next();
            }
            Some("--option") => {
                let (Some(name), Some(value)) = (iter.next(), iter.next()) else { break };
                settings.push((name, value));
            }
            _ => {
                rest.push(arg);
                break;
            }
        }
    }
    // Subcommands that take `--option` themselves get it as if given after
    // their name, so it counts as a command-line option (`nix build --expr` is
    // pure unless `--option pure-eval false`, which NIX_CONFIG cannot undo).
    let takes_options = matches!(rest.first().and_then(|a| a.to_str()), Some("eval" | "build" | "copy"));
    if takes_options {
        for (name, value) in settings {
            leading.extend([std::ffi::OsString::from("--option"), name, value]);
        }
    } else if !settings.is_empty() {
        let mut nix_config = std::env::var("NIX_CONFIG").unwrap_or_default();
        if !nix_config.is_empty() && !nix_config.ends_with('\n') {
            nix_config.push('\n');
        }
        for (name, value) in settings {
            nix_config.push_str(&format!("{} = {}\n", name.to_string_lossy(), value.to_string_lossy()));
        }
        // SAFETY: called from `main` before any thread exists (see above).
        unsafe { std::env::set_var("NIX_CONFIG", nix_config) };
    }
    rest.extend(iter);
    if rest.is_empty() {
        return leading;
    }
    let mut out = vec![rest.remove(0)];
    out.extend(leading);
    out.extend(rest);
    out
}
