//! `builtin:buildenv`: the symlink tree of a user environment (a profile), as
//! CppNix 2.8's `buildProfile` makes it.
//!
//! The rules, which decide the bytes of every profile and so must not drift:
//! - Packages are processed by ascending priority number (a lower number wins),
//!   ties by path; inactive packages are skipped.
//! - Each package's top directory is merged into the output: a name absent from
//!   the output becomes a symlink to the package's entry (directories too);
//!   a directory meeting a directory (or a symlink to one) is merged
//!   recursively, the symlink being replaced by a real directory holding links
//!   to the old target's entries first.
//! - Two non-directories at one name: the lower priority number keeps it; equal
//!   priorities are an error ("packages '...' and '...' have the same priority"),
//!   even when both files are identical.
//! - Names starting with `.` are not linked, nor are entries whose path ends in
//!   `/propagated-build-inputs`, `/nix-support`, `/perllocal.pod`, `/info/dir`,
//!   `/log`, `/manifest.nix` or `/manifest.json`. Dangling symlinks are skipped
//!   with a warning; a package that is not a directory is skipped with one.
//! - Every package's `nix-support/propagated-user-env-packages` (paths separated
//!   by spaces or newlines) adds those packages afterwards, round by round, with
//!   priorities 1000, 1001, ... in path order within a round.
//!
//! Symlinks point to logical store paths (`/nix/store/...`). The store may live
//! elsewhere on this machine (a `local?root=` store): [`StoreLocation`] maps a
//! logical path to where its files really are, for reading; nothing is written
//! outside the output directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// One package to link into a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The (logical) store path of one output of the package.
    pub path: String,
    /// Inactive packages are recorded in the manifest but not linked.
    pub active: bool,
    /// Lower numbers win collisions; nix-env's default is 5.
    pub priority: i64,
}

impl Package {
    pub fn new(path: impl Into<String>, active: bool, priority: i64) -> Package {
        Package { path: path.into(), active, priority }
    }
}

/// What [`build_profile`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildEnvStats {
    /// Symlinks created (CppNix's debug message "created N symlinks in user
    /// environment").
    pub symlinks: u64,
    /// Warnings in CppNix's words, without the `warning: ` prefix.
    pub warnings: Vec<String>,
}

/// Why a profile could not be built; the texts are CppNix 2.8's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildEnvError {
    #[error(
        "packages '{new}' and '{existing}' have the same priority {priority}; use 'nix-env --set-flag priority NUMBER INSTALLED_PKGNAME' to change the priority of one of the conflicting packages (0 being the highest priority)"
    )]
    SamePriority { new: String, existing: String, priority: i64 },
    #[error("collision between '{source_path}' and non-directory '{target}'")]
    DirectoryOverFile { source_path: String, target: String },
    #[error("collision between non-directory '{source_path}' and directory '{target}'")]
    FileOverDirectory { source_path: String, target: String },
    #[error("{action} '{path}': {source}")]
    Io { action: &'static str, path: String, source: io::Error },
    #[error("attribute '{0}' missing")]
    MissingAttribute(String),
    #[error("malformed 'derivations' attribute of a buildenv derivation: {0}")]
    BadDerivations(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BuildEnvError + use<> {
    let path = path.display().to_string();
    move |source| BuildEnvError::Io { action, path, source: plain_os_error(source) }
}

/// An OS error whose text is `strerror`'s alone, as CppNix's `SysError`
/// prints it (Rust appends " (os error N)").
fn plain_os_error(error: io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => {
            // SAFETY: strerror returns a pointer to a static or thread-local
            // string, copied out at once.
            let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }.to_string_lossy().into_owned();
            io::Error::new(error.kind(), text)
        }
        None => error,
    }
}

/// Where the store's files are: paths under `logical` are read at the same
/// place under `real`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreLocation {
    pub logical: PathBuf,
    pub real: PathBuf,
    /// When set, only these store entries (base names) exist for the builder:
    /// CppNix runs `builtin:buildenv` in the sandbox, which holds only the
    /// derivation's input closure and outputs, so a propagated package
    /// outside that closure is missing there, and must be here too.
    pub visible: Option<BTreeSet<String>>,
}

impl StoreLocation {
    /// A store whose files are where their paths say, all of them visible.
    pub fn identity() -> StoreLocation {
        StoreLocation { logical: PathBuf::new(), real: PathBuf::new(), visible: None }
    }

    /// Whether the logical `path` is hidden by [`StoreLocation::visible`].
    fn hidden(&self, path: &Path) -> bool {
        let Some(visible) = &self.visible else { return false };
        match path.strip_prefix(&self.logical) {
            Ok(rest) => match rest.components().next() {
                Some(std::path::Component::Normal(name)) => !visible.contains(&*name.to_string_lossy()),
                _ => false,
            },
            Err(_) => false,
        }
    }

    /// Where the file named by logical path `path` really is (the path
    /// itself, if it is not in the store).
    pub fn real_path(&self, path: &Path) -> PathBuf {
        if self.logical.as_os_str().is_empty() || self.logical == self.real {
            return path.to_path_buf();
        }
        match path.strip_prefix(&self.logical) {
            Ok(rest) => self.real.join(rest),
            Err(_) => path.to_path_buf(),
        }
    }

    /// The logical path with every symlink resolved (CppNix's
    /// `canonPath(path, true)`), following links through the mapping, so an
    /// absolute link to `/nix/store/...` is read in the real store.
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        let mut pending: Vec<std::ffi::OsString> = path.components().rev().filter_map(component_name).collect();
        let mut resolved = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&name);
            if self.hidden(&candidate) {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            let real = self.real_path(&candidate);
            match fs::symlink_metadata(&real) {
                Ok(metadata) if metadata.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 1024 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = fs::read_link(&real)?;
                    if target.is_absolute() {
                        resolved = PathBuf::from("/");
                    }
                    pending.extend(target.components().rev().filter_map(component_name));
                }
                Ok(_) => resolved = candidate,
                Err(e) => return Err(e),
            }
        }
        Ok(resolved)
    }

    /// `stat(2)` of a logical path (symlinks followed).
    fn stat(&self, path: &Path) -> io::Result<fs::Metadata> {
        fs::metadata(self.real_path(&self.resolve(path)?))
    }
}

fn component_name(component: std::path::Component<'_>) -> Option<std::ffi::OsString> {
    match component {
        std::path::Component::Normal(name) => Some(name.to_os_string()),
        std::path::Component::ParentDir => Some("..".into()),
        _ => None,
    }
}

/// Entries whose source path ends like this are never linked.
const IGNORED_SUFFIXES: [&str; 7] = [
    "/propagated-build-inputs",
    "/nix-support",
    "/perllocal.pod",
    "/info/dir",
    "/log",
    "/manifest.nix",
    "/manifest.json",
];

struct State<'a> {
    location: &'a StoreLocation,
    /// The output directory as named in messages (logical) and where it
    /// really is (the same unless the store is elsewhere).
    out: PathBuf,
    out_real: PathBuf,
    /// Priority of each symlink made, by its path under the output.
    priorities: BTreeMap<PathBuf, i64>,
    stats: BuildEnvStats,
}

impl State<'_> {
    /// Links the entries of `source_dir` (logical) into `dest_dir` (relative
    /// to the output; empty for the top).
    fn create_links(&mut self, source_dir: &Path, dest_dir: &Path, priority: i64) -> Result<(), BuildEnvError> {
        let real_source = match self.location.resolve(source_dir) {
            Ok(resolved) => self.location.real_path(&resolved),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                self.not_a_directory(source_dir);
                return Ok(());
            }
            Err(e) => return Err(io_error("opening directory", source_dir)(e)),
        };
        let entries = match fs::read_dir(&real_source) {
            Ok(entries) => entries,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                self.not_a_directory(source_dir);
                return Ok(());
            }
            Err(e) => return Err(io_error("opening directory", source_dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            names.push(entry.map_err(io_error("reading directory", source_dir))?.file_name());
        }
        // readdir order, as CppNix's readDirectory: it decides nothing but
        // which of two collisions is reported, and that must be CppNix's.
        for name in names {
            if name.as_encoded_bytes().first() == Some(&b'.') {
                continue;
            }
            let source = source_dir.join(&name);
            let dest = dest_dir.join(&name);
            let dest_real = self.out_real.join(&dest);
            let source_metadata = match self.location.stat(&source) {
                Ok(metadata) => metadata,
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                    self.stats.warnings.push(format!("skipping dangling symlink '{}'", self.out.join(&dest).display()));
                    continue;
                }
                Err(e) => return Err(io_error("getting status of", &source)(e)),
            };
            let source_text = source.to_string_lossy();
            if IGNORED_SUFFIXES.iter().any(|suffix| source_text.ends_with(suffix)) {
                continue;
            }
            let existing = match fs::symlink_metadata(&dest_real) {
                Ok(metadata) => Some(metadata),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_error("getting status of", &dest_real)(e)),
            };
            if source_metadata.is_dir() {
                if let Some(existing) = existing {
                    if existing.is_dir() {
                        self.create_links(&source, &dest, priority)?;
                        continue;
                    }
                    if existing.file_type().is_symlink() {
                        // A directory linked whole by an earlier package
                        // becomes a real directory holding both.
                        let link_target = fs::read_link(&dest_real).map_err(io_error("reading link", &dest_real))?;
                        let target =
                            self.location.resolve(&link_target).map_err(io_error("getting status of", &link_target))?;
                        let target_is_dir = fs::symlink_metadata(self.location.real_path(&target))
                            .map_err(io_error("getting status of", &target))?
                            .is_dir();
                        if !target_is_dir {
                            return Err(BuildEnvError::DirectoryOverFile {
                                source_path: source_text.into_owned(),
                                target: target.display().to_string(),
                            });
                        }
                        fs::remove_file(&dest_real).map_err(io_error("unlinking", &dest_real))?;
                        fs::DirBuilder::new()
                            .mode(0o755)
                            .create(&dest_real)
                            .map_err(io_error("creating directory", &dest_real))?;
                        let old_priority = self.priorities.get(&dest).copied().unwrap_or(0);
                        self.create_links(&target, &dest, old_priority)?;
                        self.create_links(&source, &dest, priority)?;
                        continue;
                    }
                }
            } else if let Some(existing) = existing {
                if existing.file_type().is_symlink() {
                    let previous = self.priorities.get(&dest).copied().unwrap_or(0);
                    if previous == priority {
                        let existing_target =
                            fs::read_link(&dest_real).map_err(io_error("reading symbolic link", &dest_real))?;
                        return Err(BuildEnvError::SamePriority {
                            new: source_text.into_owned(),
                            existing: existing_target.display().to_string(),
                            priority,
                        });
                    }
                    if previous < priority {
                        continue;
                    }
                    fs::remove_file(&dest_real).map_err(io_error("unlinking", &dest_real))?;
                } else if existing.is_dir() {
                    return Err(BuildEnvError::FileOverDirectory {
                        source_path: source_text.into_owned(),
                        target: self.out.join(&dest).display().to_string(),
                    });
                }
            }
            std::os::unix::fs::symlink(&source, &dest_real).map_err(io_error("creating symlink to", &dest_real))?;
            self.priorities.insert(dest, priority);
            self.stats.symlinks += 1;
        }
        Ok(())
    }

    fn not_a_directory(&mut self, path: &Path) {
        self.stats
            .warnings
            .push(format!("not including '{}' in the user environment because it's not a directory", path.display()));
    }
}

/// Builds the symlink tree of `packages` in `out` (created if missing), for a
/// store whose files are where their paths say. See the module comment.
pub fn build_profile(out: &Path, packages: Vec<Package>) -> Result<BuildEnvStats, BuildEnvError> {
    build_profile_in(&StoreLocation::identity(), out, packages)
}

/// [`build_profile`] for a store whose files may be elsewhere: `out` and the
/// package paths are logical, read and written through `location`.
pub fn build_profile_in(
    location: &StoreLocation,
    out: &Path,
    mut packages: Vec<Package>,
) -> Result<BuildEnvStats, BuildEnvError> {
    let out_real = location.real_path(out);
    fs::create_dir_all(&out_real).map_err(io_error("creating directory", out))?;
    let mut state = State {
        location,
        out: out.to_path_buf(),
        out_real,
        priorities: BTreeMap::new(),
        stats: BuildEnvStats::default(),
    };
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut postponed: BTreeSet<String> = BTreeSet::new();

    let mut add_package = |state: &mut State<'_>,
                           postponed: &mut BTreeSet<String>,
                           path: &str,
                           priority: i64|
     -> Result<(), BuildEnvError> {
        if !done.insert(path.to_string()) {
            return Ok(());
        }
        state.create_links(Path::new(path), Path::new(""), priority)?;
        let propagated = Path::new(path).join("nix-support/propagated-user-env-packages");
        let real = location.resolve(&propagated).map(|p| location.real_path(&p));
        match real.and_then(fs::read) {
            Ok(contents) => {
                let text = String::from_utf8_lossy(&contents);
                for item in text.split([' ', '\n']).filter(|s| !s.is_empty()) {
                    if !done.contains(item) {
                        postponed.insert(item.to_string());
                    }
                }
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {}
            Err(e) => return Err(io_error("reading file", &propagated)(e)),
        }
        Ok(())
    };

    packages.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.path.cmp(&b.path)));
    for package in packages.iter().filter(|p| p.active) {
        add_package(&mut state, &mut postponed, &package.path, package.priority)?;
    }
    // Propagated packages come after, so they lose every collision.
    let mut priority_counter = 1000;
    while !postponed.is_empty() {
        let round = std::mem::take(&mut postponed);
        for path in round {
            add_package(&mut state, &mut postponed, &path, priority_counter)?;
            priority_counter += 1;
        }
    }
    Ok(state.stats)
}

/// The packages encoded in a buildenv derivation's `derivations` attribute:
/// groups of `active priority count path...`, whitespace-separated, where
/// `active` is anything but `false` for an active package.
pub fn parse_derivations_attribute(value: &str) -> Result<Vec<Package>, BuildEnvError> {
    let mut tokens = value.split([' ', '\t', '\n', '\r']).filter(|s| !s.is_empty());
    let mut packages = Vec::new();
    let bad = |what: &str| BuildEnvError::BadDerivations(what.to_string());
    while let Some(active) = tokens.next() {
        let priority = tokens.next().ok_or_else(|| bad("missing priority"))?;
        let priority = parse_leading_int(priority).ok_or_else(|| bad(&format!("bad priority '{priority}'")))?;
        let count = tokens.next().ok_or_else(|| bad("missing output count"))?;
        let count = parse_leading_int(count).ok_or_else(|| bad(&format!("bad output count '{count}'")))?;
        for _ in 0..count.max(0) {
            let path = tokens.next().ok_or_else(|| bad("missing output path"))?;
            packages.push(Package::new(path, active != "false", priority));
        }
    }
    Ok(packages)
}

/// `std::stoi`: leading whitespace, a sign, digits; trailing junk ignored.
fn parse_leading_int(text: &str) -> Option<i64> {
    let text = text.trim_start();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let value: i64 = digits[..end].parse().ok()?;
    if value > i64::from(i32::MAX) + 1 {
        return None;
    }
    Some(sign * value)
}

/// The builder itself: reads `out`, `derivations` and `manifest` from the
/// derivation's environment, builds the tree at `out` (through `location`)
/// and links `manifest.nix` to the manifest.
pub fn builtin_buildenv(
    env: &BTreeMap<String, String>,
    location: &StoreLocation,
) -> Result<BuildEnvStats, BuildEnvError> {
    let attribute = |name: &str| env.get(name).ok_or_else(|| BuildEnvError::MissingAttribute(name.to_string()));
    let out = Path::new(attribute("out")?);
    let packages = parse_derivations_attribute(attribute("derivations")?)?;
    let manifest = attribute("manifest")?;
    let stats = build_profile_in(location, out, packages)?;
    let link = location.real_path(out).join("manifest.nix");
    std::os::unix::fs::symlink(manifest, &link).map_err(io_error("creating symlink to", &link))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_attribute_parses_as_cppnix() {
        let packages = parse_derivations_attribute("1 5 1 /s/a  false 10 2 /s/b /s/c\n").unwrap();
        assert_eq!(
            packages,
            vec![Package::new("/s/a", true, 5), Package::new("/s/b", false, 10), Package::new("/s/c", false, 10)]
        );
        assert!(parse_derivations_attribute("1 x 1 /s/a").is_err());
        assert!(parse_derivations_attribute("1 5 2 /s/a").is_err());
        assert_eq!(parse_leading_int("-3x"), Some(-3));
    }
}
