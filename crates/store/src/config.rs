//! Where a store lives: the settings CppNix reads from the environment
//! (`NIX_STORE_DIR`, `NIX_STATE_DIR`, `NIX_LOG_DIR`, `NIX_CONF_DIR`) and the store
//! URI syntaxes of `--store` / `NIX_REMOTE` (`local`, `local?root=DIR`, a bare
//! absolute `DIR`, `dummy://`, `auto`).
//!
//! The *logical* store directory (what store paths start with, and what their
//! hashes are computed over) is independent of the *physical* one (where the files
//! are on disk): `local?root=/tmp/r` keeps `/nix/store/...` paths under
//! `/tmp/r/nix/store`, exactly as CppNix does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

/// The global, environment-derived settings that decide default locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// The logical store directory, `/nix/store` unless `NIX_STORE_DIR` says otherwise.
    pub store_dir: String,
    /// `/nix/var/nix` unless `NIX_STATE_DIR` says otherwise.
    pub state_dir: PathBuf,
    /// `/nix/var/log/nix` unless `NIX_LOG_DIR` says otherwise.
    pub log_dir: PathBuf,
    /// `/etc/nix` unless `NIX_CONF_DIR` says otherwise.
    pub conf_dir: PathBuf,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            store_dir: "/nix/store".to_string(),
            state_dir: PathBuf::from("/nix/var/nix"),
            log_dir: PathBuf::from("/nix/var/log/nix"),
            conf_dir: PathBuf::from("/etc/nix"),
        }
    }
}

impl StoreSettings {
    /// Reads the settings from the process environment, as CppNix does at start-up.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (an environment stand-in, for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = StoreSettings::default();
        let non_empty = |name: &str| lookup(name).filter(|v| !v.is_empty());
        StoreSettings {
            // CppNix also honours the older `NIX_STORE` spelling.
            store_dir: non_empty("NIX_STORE_DIR")
                .or_else(|| non_empty("NIX_STORE"))
                .map(|d| canonical_dir_string(&d))
                .unwrap_or(defaults.store_dir),
            state_dir: non_empty("NIX_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or(defaults.state_dir),
            log_dir: non_empty("NIX_LOG_DIR")
                .map(PathBuf::from)
                .unwrap_or(defaults.log_dir),
            conf_dir: non_empty("NIX_CONF_DIR")
                .map(PathBuf::from)
                .unwrap_or(defaults.conf_dir),
        }
    }
}

/// Drops trailing slashes so that `/nix/store/` and `/nix/store` are one store.
fn canonical_dir_string(dir: &str) -> String {
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_string() } else { trimmed.to_string() }
}

/// The physical locations of a local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStoreConfig {
    /// The logical store directory (store paths begin with it).
    pub store_dir: String,
    /// `root` parameter, if any: everything else lives below it.
    pub root: Option<PathBuf>,
    /// Where the store's files really are (`ROOT/nix/store` for a rooted store).
    pub real_store_dir: PathBuf,
    /// `ROOT/nix/var/nix`: `db/`, `gcroots/`, `profiles/`, `temproots/`.
    pub state_dir: PathBuf,
    /// `ROOT/nix/var/log/nix`: build logs.
    pub log_dir: PathBuf,
    /// Open the store read-only (no locks taken for writing, no database creation).
    pub read_only: bool,
}

impl LocalStoreConfig {
    /// The store CppNix's `local` means: everything at the settings' locations.
    pub fn from_settings(settings: &StoreSettings) -> Self {
        LocalStoreConfig {
            store_dir: settings.store_dir.clone(),
            root: None,
            real_store_dir: PathBuf::from(&settings.store_dir),
            state_dir: settings.state_dir.clone(),
            log_dir: settings.log_dir.clone(),
            read_only: false,
        }
    }

    /// `local?root=ROOT`: the store at `ROOT<store_dir>`, state at `ROOT/nix/var/nix`
    /// and logs at `ROOT/nix/var/log/nix` (CppNix ignores `NIX_STATE_DIR` then).
    pub fn with_root(settings: &StoreSettings, root: &Path) -> Self {
        let rooted = |p: &str| PathBuf::from(format!("{}{}", root.display(), p));
        LocalStoreConfig {
            store_dir: settings.store_dir.clone(),
            root: Some(root.to_path_buf()),
            real_store_dir: rooted(&settings.store_dir),
            state_dir: rooted("/nix/var/nix"),
            log_dir: rooted("/nix/var/log/nix"),
            read_only: false,
        }
    }

    /// `STATE/db`: the SQLite database, its `schema` file and `big-lock`.
    pub fn db_dir(&self) -> PathBuf {
        self.state_dir.join("db")
    }
}

/// A parsed store URI: which backend, and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUri {
    /// A local store (`local`, `local?root=...`, `/abs/dir`, `auto` without a daemon).
    Local(LocalStoreConfig),
    /// `dummy://`: answers every query with "nothing", refuses to add.
    Dummy,
    /// A backend nivis knows by name but does not implement yet (`daemon`,
    /// `ssh://`, `file://`, `https://`, ...): the URI is kept to say so.
    Unsupported(String),
}

/// Splits `scheme-and-path?k=v&k2=v2` into the part before `?` and its parameters.
fn split_params(uri: &str) -> Result<(&str, BTreeMap<String, String>), StoreError> {
    let (base, query) = match uri.split_once('?') {
        Some((base, query)) => (base, query),
        None => (uri, ""),
    };
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| StoreError::BadStoreUri {
            uri: uri.to_string(),
            reason: format!("parameter '{pair}' is not of the form NAME=VALUE"),
        })?;
        params.insert(percent_decode(key), percent_decode(value));
    }
    Ok((base, params))
}

/// Decodes `%XX` escapes the way CppNix's `decodeQuery` does (bad escapes stay as is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl StoreUri {
    /// Parses a `--store` / `NIX_REMOTE` value. An empty string means `auto`.
    pub fn parse(uri: &str, settings: &StoreSettings) -> Result<StoreUri, StoreError> {
        let (base, params) = split_params(uri)?;
        let local_from_params = |root: Option<PathBuf>| -> Result<StoreUri, StoreError> {
            let root = match params.get("root") {
                Some(r) => Some(absolute(uri, r)?),
                None => root,
            };
            let mut config = match &root {
                Some(root) => LocalStoreConfig::with_root(settings, root),
                None => LocalStoreConfig::from_settings(settings),
            };
            // CppNix's per-store overrides of each location.
            if let Some(store) = params.get("store") {
                config.store_dir = canonical_dir_string(store);
                config.real_store_dir = match &root {
                    Some(root) => PathBuf::from(format!("{}{}", root.display(), config.store_dir)),
                    None => PathBuf::from(&config.store_dir),
                };
            }
            if let Some(real) = params.get("real") {
                config.real_store_dir = absolute(uri, real)?;
            }
            if let Some(state) = params.get("state") {
                config.state_dir = absolute(uri, state)?;
            }
            if let Some(log) = params.get("log") {
                config.log_dir = absolute(uri, log)?;
            }
            if let Some(read_only) = params.get("read-only") {
                config.read_only = read_only == "true" || read_only == "1";
            }
            for key in params.keys() {
                if !["root", "store", "real", "state", "log", "read-only"].contains(&key.as_str()) {
                    return Err(StoreError::BadStoreUri {
                        uri: uri.to_string(),
                        reason: format!("unknown setting '{key}' for a local store"),
                    });
                }
            }
            Ok(StoreUri::Local(config))
        };
        match base {
            "" | "auto" if params.is_empty() => Ok(StoreUri::Local(auto_local_config(settings))),
            "" | "auto" | "local" => local_from_params(None),
            "dummy://" | "dummy" => Ok(StoreUri::Dummy),
            _ if base.starts_with('/') || base.starts_with("./") => {
                local_from_params(Some(absolute(uri, base)?))
            }
            _ if base.starts_with("local://") => {
                let rest = &base["local://".len()..];
                local_from_params(if rest.is_empty() { None } else { Some(absolute(uri, rest)?) })
            }
            _ if base == "daemon"
                || base.contains("://")
                || base.starts_with("unix:") =>
            {
                Ok(StoreUri::Unsupported(uri.to_string()))
            }
            _ => Err(StoreError::BadStoreUri {
                uri: uri.to_string(),
                reason: "don't know how to open this store".to_string(),
            }),
        }
    }
}

/// `auto`: the local store at the settings' locations when this user may write
/// there (or create it), otherwise a rooted store under
/// `$XDG_DATA_HOME/nivis/root` (`~/.local/share/nivis/root`), so that nivis works
/// without root and without a daemon.
fn auto_local_config(settings: &StoreSettings) -> LocalStoreConfig {
    let default = LocalStoreConfig::from_settings(settings);
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } == 0 || writable_or_creatable(&default.state_dir) {
        return default;
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")));
    match data_home {
        Some(data_home) => LocalStoreConfig::with_root(settings, &data_home.join("nivis/root")),
        None => default,
    }
}

/// Whether `dir` is writable, or could be created by us (its nearest existing
/// ancestor is writable).
fn writable_or_creatable(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut candidate = dir;
    loop {
        if candidate.exists() {
            let Ok(c_path) = std::ffi::CString::new(candidate.as_os_str().as_bytes()) else { return false };
            // SAFETY: c_path is a valid NUL-terminated string.
            return unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0;
        }
        match candidate.parent() {
            Some(parent) => candidate = parent,
            None => return false,
        }
    }
}

/// Makes `p` absolute relative to the current directory (CppNix's `absPath`).
fn absolute(uri: &str, p: &str) -> Result<PathBuf, StoreError> {
    let path = Path::new(p);
    if path.is_absolute() {
        return Ok(normalise(path));
    }
    let cwd = std::env::current_dir().map_err(|e| StoreError::BadStoreUri {
        uri: uri.to_string(),
        reason: format!("cannot resolve relative path '{p}': {e}"),
    })?;
    Ok(normalise(&cwd.join(path)))
}

/// Removes `.` components, resolves `..` lexically and drops trailing slashes.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(c) => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> StoreSettings {
        StoreSettings::default()
    }

    #[test]
    fn rooted_store_locations() {
        let StoreUri::Local(c) = StoreUri::parse("local?root=/tmp/r", &settings()).unwrap() else {
            panic!("not local")
        };
        assert_eq!(c.store_dir, "/nix/store");
        assert_eq!(c.real_store_dir, PathBuf::from("/tmp/r/nix/store"));
        assert_eq!(c.state_dir, PathBuf::from("/tmp/r/nix/var/nix"));
        assert_eq!(c.log_dir, PathBuf::from("/tmp/r/nix/var/log/nix"));
        assert_eq!(StoreUri::parse("/tmp/r/", &settings()).unwrap(), StoreUri::Local(c));
    }

    #[test]
    fn plain_local_follows_the_environment() {
        let s = StoreSettings::from_lookup(|k| match k {
            "NIX_STATE_DIR" => Some("/s".into()),
            "NIX_LOG_DIR" => Some("/l".into()),
            "NIX_STORE_DIR" => Some("/my/store/".into()),
            _ => None,
        });
        let StoreUri::Local(c) = StoreUri::parse("local", &s).unwrap() else { panic!() };
        assert_eq!(c.store_dir, "/my/store");
        assert_eq!(c.real_store_dir, PathBuf::from("/my/store"));
        assert_eq!(c.state_dir, PathBuf::from("/s"));
        assert_eq!(c.log_dir, PathBuf::from("/l"));
    }

    #[test]
    fn other_schemes() {
        assert_eq!(StoreUri::parse("dummy://", &settings()).unwrap(), StoreUri::Dummy);
        assert!(matches!(
            StoreUri::parse("ssh://host", &settings()).unwrap(),
            StoreUri::Unsupported(_)
        ));
        assert!(StoreUri::parse("local?bogus=1", &settings()).is_err());
        assert!(StoreUri::parse("what", &settings()).is_err());
    }
}
