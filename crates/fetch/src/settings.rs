//! The settings the fetchers read, with CppNix's names and defaults.

use std::path::PathBuf;

/// Settings for one fetching session.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// `tarball-ttl`: seconds a cached download of a mutable URL (or a Git ref)
    /// stays fresh. CppNix's default is one hour.
    pub tarball_ttl: u64,
    /// `download-attempts`: tries for transient failures (connection refused,
    /// timeouts, HTTP 5xx); CppNix's default is 5.
    pub download_attempts: u32,
    /// `connect-timeout` in seconds (0: the system's).
    pub connect_timeout: u64,
    /// `allow-dirty` and `warn-dirty` for local Git working trees.
    pub allow_dirty: bool,
    pub warn_dirty: bool,
    /// Where the fetcher cache and Git clones live (CppNix: `~/.cache/nix`).
    pub cache_dir: PathBuf,
    /// `hashed-mirrors`: tried first by `builtin:fetchurl` for flat outputs.
    pub hashed_mirrors: Vec<String>,
    /// Where warnings go (CppNix's `warn`); stderr by default.
    pub warn: fn(&str),
    /// `(from, to)`: forge URLs (`github:` & co.) starting with `from` are
    /// fetched from `to` + the rest instead. For tests, which cannot reach the
    /// forges; no configuration setting sets it.
    pub archive_url_rewrite: Option<(String, String)>,
}

fn warn_to_stderr(message: &str) {
    eprintln!("warning: {message}");
}

/// `$XDG_CACHE_HOME`, else `~/.cache`, as CppNix's `getCacheDir`.
fn user_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".cache")
}

impl Default for FetchSettings {
    fn default() -> FetchSettings {
        FetchSettings {
            tarball_ttl: 3600,
            download_attempts: 5,
            connect_timeout: 0,
            allow_dirty: true,
            warn_dirty: true,
            cache_dir: user_cache_dir().join("nivis"),
            hashed_mirrors: Vec::new(),
            warn: warn_to_stderr,
            archive_url_rewrite: None,
        }
    }
}

impl FetchSettings {
    /// The defaults overridden by `nix.conf`/`NIX_CONFIG` settings.
    pub fn from_config(config: &nivis_config::Config) -> FetchSettings {
        let mut settings = FetchSettings::default();
        if let Ok(Some(ttl)) = config.get_u64("tarball-ttl") {
            settings.tarball_ttl = ttl;
        }
        if let Ok(Some(attempts)) = config.get_u64("download-attempts") {
            settings.download_attempts = attempts.max(1) as u32;
        }
        if let Ok(Some(timeout)) = config.get_u64("connect-timeout") {
            settings.connect_timeout = timeout;
        }
        settings.hashed_mirrors = config.get_list("hashed-mirrors");
        if config.is_set("allow-dirty") {
            settings.allow_dirty = config.get_bool("allow-dirty").unwrap_or(true);
        }
        if config.is_set("warn-dirty") {
            settings.warn_dirty = config.get_bool("warn-dirty").unwrap_or(true);
        }
        settings
    }

    /// Settings from the user's configuration files and `NIX_CONFIG`, or the
    /// defaults if they cannot be read.
    pub fn load() -> FetchSettings {
        match nivis_config::Config::load() {
            Ok(config) => FetchSettings::from_config(&config),
            Err(_) => FetchSettings::default(),
        }
    }
}
