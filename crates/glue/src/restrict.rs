//! What an evaluation may touch: CppNix's `restrict-eval`, `pure-eval`,
//! `allowed-uris` and `allow-import-from-derivation`, enforced where the evaluator
//! reaches the outside world (every file read, every fetch, every realised
//! string context goes through [`crate::StoreEvalIO`]).
//!
//! In restricted or pure mode only paths under an allowed prefix may be read: the
//! search-path entries, `<nix/...>` (the built-in corepkgs), and store paths the
//! evaluation itself produced or realised (fetch results, realised contexts), as
//! CppNix 2.8's `checkSourcePath`/`allowPath`. URIs are checked against
//! `allowed-uris` in restricted mode (`checkURI`); local paths and `file://` URIs
//! fall back to the path check. The messages are CppNix 2.8's, word for word.

use std::path::{Component, Path, PathBuf};

use nivis_eval::IoError;

/// The restrictions in force for one evaluation. The default restricts nothing.
#[derive(Debug, Clone)]
pub struct EvalRestrictions {
    /// `Some` in restricted or pure mode: the directories (and files) that may be
    /// read. Grows while evaluating (fetched and realised store paths).
    pub allowed_paths: Option<Vec<PathBuf>>,
    /// `pure-eval`: only changes the wording of the errors here (the evaluator
    /// hides `currentTime` and friends itself).
    pub pure_eval: bool,
    /// `restrict-eval`: URIs must start with one of `allowed_uris`.
    pub restrict_eval: bool,
    pub allowed_uris: Vec<String>,
    /// `allow-import-from-derivation`: whether reading a derivation output may
    /// build it.
    pub allow_import_from_derivation: bool,
}

impl Default for EvalRestrictions {
    fn default() -> EvalRestrictions {
        EvalRestrictions {
            allowed_paths: None,
            pure_eval: false,
            restrict_eval: false,
            allowed_uris: Vec::new(),
            allow_import_from_derivation: true,
        }
    }
}

/// The built-in `<nix/...>` files live under this pseudo-directory; they are
/// always readable.
const COREPKGS_PREFIX: &str = "/__corepkgs__/";

/// `canonPath` without resolving symlinks: `.` and `..` removed lexically, so an
/// allowed prefix followed by `../..` cannot escape.
pub(crate) fn lexical_canon(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// CppNix's `isDirOrInDir`: `path` is `dir` or below it.
fn is_dir_or_in_dir(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

impl EvalRestrictions {
    fn mode_text(&self) -> &'static str {
        if self.pure_eval { "in pure eval mode (use '--impure' to override)" } else { "in restricted mode" }
    }

    fn is_allowed(allowed: &[PathBuf], path: &Path) -> bool {
        allowed.iter().any(|dir| is_dir_or_in_dir(path, dir))
    }

    /// CppNix's `checkSourcePath`: the path to read, or the error that forbids it.
    pub fn check_source_path(&self, path: &Path) -> Result<PathBuf, IoError> {
        let Some(allowed) = &self.allowed_paths else { return Ok(path.to_path_buf()) };
        let absolute = lexical_canon(path);
        if absolute.to_string_lossy().starts_with(COREPKGS_PREFIX) {
            return Ok(absolute);
        }
        if !Self::is_allowed(allowed, &absolute) {
            return Err(IoError::Forbidden(format!(
                "access to absolute path '{}' is forbidden {}",
                absolute.display(),
                self.mode_text()
            )));
        }
        // A symlink under an allowed directory must not lead out of it.
        let resolved = std::fs::canonicalize(&absolute).unwrap_or_else(|_| absolute.clone());
        if !Self::is_allowed(allowed, &resolved) {
            return Err(IoError::Forbidden(format!(
                "access to canonical path '{}' is forbidden {}",
                resolved.display(),
                self.mode_text()
            )));
        }
        Ok(absolute)
    }

    /// CppNix's `checkURI`, for the URL a fetcher was given.
    pub fn check_uri(&self, uri: &str) -> Result<(), IoError> {
        if !self.restrict_eval {
            return Ok(());
        }
        // The URI must equal a prefix or continue it at a `/`.
        for prefix in &self.allowed_uris {
            if uri == prefix
                || (!prefix.is_empty()
                    && uri.len() > prefix.len()
                    && uri.starts_with(prefix.as_str())
                    && (prefix.ends_with('/') || uri.as_bytes()[prefix.len()] == b'/'))
            {
                return Ok(());
            }
        }
        if uri.starts_with('/') {
            return self.check_source_path(Path::new(uri)).map(|_| ());
        }
        if let Some(path) = uri.strip_prefix("file://") {
            return self.check_source_path(Path::new(path)).map(|_| ());
        }
        Err(IoError::Forbidden(format!("access to URI '{uri}' is forbidden in restricted mode")))
    }

    /// CppNix's `allowPath`: makes `path` (and what is below it) readable.
    pub fn allow_path(&mut self, path: &Path) {
        if let Some(allowed) = &mut self.allowed_paths {
            allowed.push(path.to_path_buf());
        }
    }
}
