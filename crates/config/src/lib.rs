//! `nix.conf`: CppNix's configuration syntax and the order in which CppNix reads it.
//!
//! Settings come, later overriding earlier, from `$NIX_CONF_DIR/nix.conf` (default
//! `/etc/nix/nix.conf`), then the user files (`$NIX_USER_CONF_FILES`, else
//! `nix/nix.conf` under each of `$XDG_CONFIG_DIRS` and `$XDG_CONFIG_HOME`), then the
//! contents of `$NIX_CONFIG`, then command-line `--option NAME VALUE`. A setting named
//! `extra-NAME` appends to the list-valued setting `NAME` instead of replacing it.
//!
//! The crate stores every value as the text CppNix would store, and converts on
//! lookup: this keeps unknown settings (which CppNix warns about but accepts) and lets
//! each consumer own the type of the settings it reads. Defaults live in
//! [`defaults`], one table, so `nivis show-config` and the consumers agree.

mod defaults;
mod parse;

pub use defaults::{DEFAULTS, default_value};
pub use parse::parse_config_text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An error reading or interpreting configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file '{path}': {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{origin}:{line}: syntax error in configuration line '{text}'")]
    Syntax { origin: String, line: usize, text: String },
    #[error("{origin}:{line}: included file '{path}' does not exist")]
    MissingInclude { origin: String, line: usize, path: PathBuf },
    #[error("setting '{name}' has invalid value '{value}': expected {expected}")]
    InvalidValue { name: String, value: String, expected: &'static str },
}

/// The effective configuration: every setting that was set anywhere, by name.
///
/// Values are kept as CppNix keeps them: the whitespace-separated tokens of the
/// right-hand side, joined by single spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// An empty configuration: every lookup falls back to the built-in default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the configuration from the places and in the order CppNix reads it,
    /// using the given environment lookup (a parameter so tests need not touch the
    /// process environment).
    pub fn load_with_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut config = Config::new();
        let conf_dir = env("NIX_CONF_DIR").unwrap_or_else(|| "/etc/nix".to_string());
        config.apply_file_if_exists(&Path::new(&conf_dir).join("nix.conf"))?;
        for file in user_config_files(env) {
            config.apply_file_if_exists(&file)?;
        }
        if let Some(text) = env("NIX_CONFIG") {
            config.apply_text(&text, "NIX_CONFIG", None)?;
        }
        Ok(config)
    }

    /// Reads the configuration of the running process's environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with_env(&|name| std::env::var(name).ok())
    }

    /// Applies one file if it exists; a missing top-level file is not an error,
    /// as in CppNix.
    pub fn apply_file_if_exists(&mut self, path: &Path) -> Result<(), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => self.apply_text(&text, &path.display().to_string(), path.parent()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Applies configuration text; `origin` names it in errors and `base_dir`
    /// resolves relative `include`s.
    pub fn apply_text(
        &mut self,
        text: &str,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), ConfigError> {
        for assignment in parse_config_text(text, origin, base_dir)? {
            self.set(&assignment.name, &assignment.value);
        }
        Ok(())
    }

    /// Sets one setting as `--option NAME VALUE` does: `extra-NAME` appends.
    pub fn set(&mut self, name: &str, value: &str) {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        // `extra-platforms` is a setting of its own, not an append to `platforms`.
        if let Some(base) = name.strip_prefix("extra-").filter(|_| default_value(name).is_none()) {
            let current = self.get(base).unwrap_or_default();
            let joined = match (current.is_empty(), value.is_empty()) {
                (true, _) => value,
                (false, true) => current,
                (false, false) => format!("{current} {value}"),
            };
            self.values.insert(base.to_string(), joined);
        } else {
            self.values.insert(name.to_string(), value);
        }
    }

    /// The value of a setting: what was set, or CppNix's default, or `None` for a
    /// setting nobody set and that has no default.
    pub fn get(&self, name: &str) -> Option<String> {
        self.values
            .get(name)
            .cloned()
            .or_else(|| default_value(name).map(str::to_string))
    }

    /// Whether the setting was set explicitly (not left at its default).
    pub fn is_set(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// A boolean setting (`true`/`false`, as CppNix accepts them).
    pub fn get_bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            Some("true") => Ok(true),
            Some("false") | None => Ok(false),
            Some(other) => Err(invalid(name, other, "'true' or 'false'")),
        }
    }

    /// An unsigned integer setting; `None` when it is unset and has no default.
    pub fn get_u64(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => text
                .parse::<u64>()
                .map(Some)
                .map_err(|_| invalid(name, &text, "a non-negative integer")),
        }
    }

    /// A list setting: whitespace-separated items.
    pub fn get_list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// `max-jobs`: a number, or `auto` for the number of cores.
    pub fn max_jobs(&self) -> Result<u64, ConfigError> {
        match self.get("max-jobs").as_deref() {
            Some("auto") => Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u64)),
            _ => Ok(self.get_u64("max-jobs")?.unwrap_or(1)),
        }
    }

    /// Every setting that was set explicitly, in name order.
    pub fn explicit_settings(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn invalid(name: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::InvalidValue { name: name.to_string(), value: value.to_string(), expected }
}

/// The user configuration files in the order CppNix applies them.
fn user_config_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    if let Some(files) = env("NIX_USER_CONF_FILES") {
        // CppNix loads these "in reverse order" so that the first one wins.
        let mut list: Vec<PathBuf> =
            files.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        list.reverse();
        return list;
    }
    let mut dirs: Vec<PathBuf> = env("XDG_CONFIG_DIRS")
        .unwrap_or_else(|| "/etc/xdg".to_string())
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    // XDG_CONFIG_DIRS lists the most important directory first; applying it last
    // lets it win.
    dirs.reverse();
    let home_config = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".config")));
    dirs.extend(home_config);
    dirs.into_iter().map(|d| d.join("nix").join("nix.conf")).collect()
}
