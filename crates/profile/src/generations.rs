//! Generations of a profile: `<profile>-<N>-link` symlinks beside the profile
//! symlink, which names the current one by its base name.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nivis_formats::StorePath;
use nivis_store::{LocalStore, PathLock, Store};

use crate::ProfileError;

/// One generation of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub number: u64,
    /// The generation link, `<profile>-<number>-link`.
    pub link: PathBuf,
    /// The link's own modification time (seconds since the epoch), which is when
    /// the generation was made: CppNix's `creationTime`.
    pub creation_time: i64,
}

/// The link name of generation `number` of `profile`.
pub fn generation_link(profile: &Path, number: u64) -> PathBuf {
    let mut name = profile.as_os_str().to_os_string();
    name.push(format!("-{number}-link"));
    PathBuf::from(name)
}

/// The generation number in a link name `<profile name>-<N>-link` (or a
/// path ending in one), as CppNix's `parseName`: anything after `-link` is
/// tolerated, a number that does not parse is not a generation.
fn parse_generation_name(profile_name: &str, name: &str) -> Option<u64> {
    let rest = name.strip_prefix(profile_name)?.strip_prefix('-')?;
    let end = rest.find("-link")?;
    rest[..end].parse::<u32>().ok().map(u64::from)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The generations of `profile`, oldest first, and the current one's number
/// (none if the profile link is missing or does not name a generation).
pub fn find_generations(profile: &Path) -> Result<(Vec<Generation>, Option<u64>), ProfileError> {
    let dir = parent(profile);
    let profile_name = file_name(profile);
    let mut generations = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((generations, None)),
        Err(e) => return Err(ProfileError::io(format!("reading directory '{}'", dir.display()))(e)),
    };
    for entry in entries {
        let entry = entry.map_err(ProfileError::io(format!("reading directory '{}'", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(number) = parse_generation_name(&profile_name, &name) else { continue };
        let link = dir.join(&name);
        let metadata =
            fs::symlink_metadata(&link).map_err(ProfileError::io(format!("getting status of '{}'", link.display())))?;
        generations.push(Generation { number, link, creation_time: metadata.mtime() });
    }
    generations.sort_by_key(|g| g.number);
    let current = match fs::read_link(profile) {
        Ok(target) => parse_generation_name(&profile_name, &target.to_string_lossy()),
        Err(_) => None,
    };
    Ok((generations, current))
}

/// Replaces (or creates) the symlink `link` so it points to `target`, atomically:
/// a temporary link is written beside it and renamed over it, as CppNix's
/// `replaceSymlink`. The directory is synced so the switch survives a crash.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<(), ProfileError> {
    let dir = parent(link);
    let base = file_name(link);
    for n in 0u32.. {
        let temp = dir.join(format!(".{n}_{base}"));
        match std::os::unix::fs::symlink(target, &temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(ProfileError::io(format!("creating symlink '{}'", temp.display()))(e)),
        }
        if let Err(e) = fs::rename(&temp, link) {
            let _ = fs::remove_file(&temp);
            return Err(ProfileError::io(format!("renaming '{}' to '{}'", temp.display(), link.display()))(e));
        }
        break;
    }
    sync_dir(&dir);
    Ok(())
}

/// Makes the rename durable. Failing to sync is not an error (some file
/// systems refuse to fsync directories); the rename itself already happened.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Points `link` at `target`, relative when both are in the same directory (so a
/// profile names its generation by base name, as CppNix's `switchLink`).
pub fn switch_link(link: &Path, target: &Path) -> Result<(), ProfileError> {
    let target = if parent(target) == parent(link) { PathBuf::from(file_name(target)) } else { target.to_path_buf() };
    replace_symlink(&target, link)
}

/// The lock that serialises changes to one profile: `<profile>.lock`.
pub struct ProfileLock {
    _lock: PathLock,
}

/// Takes the profile's lock, waiting for other processes (nivis or CppNix) that
/// hold it; `on_wait` runs once if we have to wait.
pub fn lock_profile(profile: &Path, on_wait: impl FnMut()) -> Result<ProfileLock, ProfileError> {
    let dir = parent(profile);
    fs::create_dir_all(&dir).map_err(ProfileError::io(format!("creating directory '{}'", dir.display())))?;
    Ok(ProfileLock { _lock: PathLock::lock(profile, on_wait)? })
}

/// Makes `out_path` the newest generation of `profile` and returns its link;
/// the profile link itself is not switched (call [`switch_link`] after). If
/// the newest generation already points to `out_path`, it is returned and no
/// new one is made, as CppNix does. The link is a permanent GC root: it is
/// registered as a temporary root first and as an indirect root after.
pub fn create_generation(store: &LocalStore, profile: &Path, out_path: &StorePath) -> Result<PathBuf, ProfileError> {
    let (generations, _) = find_generations(profile)?;
    let printed = store.store_dir().print_path(out_path);
    let number = match generations.last() {
        Some(last) => {
            if fs::read_link(&last.link).is_ok_and(|t| t.as_os_str() == printed.as_str()) {
                return Ok(last.link.clone());
            }
            last.number + 1
        }
        None => 1,
    };
    let link = generation_link(profile, number);
    store.add_perm_root(out_path, &link)?;
    Ok(link)
}

/// Switches `profile` to generation `number`, or with `None` to the newest one
/// older than the current. Returns `(from, to)`; with `dry_run` nothing moves.
pub fn switch_generation(profile: &Path, number: Option<u64>, dry_run: bool) -> Result<(u64, u64), ProfileError> {
    let _lock = lock_profile(profile, || {})?;
    let (generations, current) = find_generations(profile)?;
    let target = generations
        .iter()
        .filter(|g| match number {
            Some(n) => g.number == n,
            None => current.is_some_and(|c| g.number < c),
        })
        .next_back();
    let Some(target) = target else {
        return Err(match number {
            Some(n) => ProfileError::NoSuchGeneration(n),
            None => ProfileError::NoOlderGeneration(current.unwrap_or(0)),
        });
    };
    if !dry_run {
        switch_link(profile, &target.link)?;
    }
    Ok((current.unwrap_or(0), target.number))
}

/// `--rollback`: back to the newest generation older than the current one.
pub fn rollback(profile: &Path, dry_run: bool) -> Result<(u64, u64), ProfileError> {
    switch_generation(profile, None, dry_run)
}

fn remove_generations(
    profile: &Path,
    generations: &[Generation],
    dry_run: bool,
    doomed: impl Fn(&Generation) -> bool,
) -> Result<Vec<u64>, ProfileError> {
    let mut removed = Vec::new();
    for generation in generations.iter().filter(|g| doomed(g)) {
        if !dry_run {
            fs::remove_file(&generation.link)
                .map_err(ProfileError::io(format!("cannot unlink '{}'", generation.link.display())))?;
        }
        removed.push(generation.number);
    }
    if !dry_run && !removed.is_empty() {
        sync_dir(&parent(profile));
    }
    Ok(removed)
}

/// Deletes the listed generations; the current one may not be listed.
/// Returns the numbers removed (or that would be, with `dry_run`).
pub fn delete_generations(profile: &Path, numbers: &BTreeSet<u64>, dry_run: bool) -> Result<Vec<u64>, ProfileError> {
    let _lock = lock_profile(profile, || {})?;
    let (generations, current) = find_generations(profile)?;
    if let Some(current) = current
        && numbers.contains(&current)
    {
        return Err(ProfileError::DeleteCurrent(profile.to_path_buf()));
    }
    remove_generations(profile, &generations, dry_run, |g| numbers.contains(&g.number))
}

/// `+N`: keeps the current generation and the `keep - 1` before it, deletes
/// the older ones. Generations newer than the current one are kept.
pub fn delete_generations_greater_than(profile: &Path, keep: u64, dry_run: bool) -> Result<Vec<u64>, ProfileError> {
    let _lock = lock_profile(profile, || {})?;
    let (generations, current) = find_generations(profile)?;
    let mut doomed = BTreeSet::new();
    let mut left = keep;
    let mut past_current = false;
    for g in generations.iter().rev() {
        if Some(g.number) == current {
            past_current = true;
            left = left.saturating_sub(1);
        } else if past_current {
            if left > 0 {
                left -= 1;
            } else {
                doomed.insert(g.number);
            }
        }
    }
    remove_generations(profile, &generations, dry_run, |g| doomed.contains(&g.number))
}

/// `old`: deletes every generation but the current one.
pub fn delete_old_generations(profile: &Path, dry_run: bool) -> Result<Vec<u64>, ProfileError> {
    let _lock = lock_profile(profile, || {})?;
    let (generations, current) = find_generations(profile)?;
    remove_generations(profile, &generations, dry_run, |g| Some(g.number) != current)
}

/// Deletes generations made before `cutoff` (seconds since the epoch), except
/// the newest of them, which was the one in use at `cutoff`, and the current one.
pub fn delete_generations_older_than(profile: &Path, cutoff: i64, dry_run: bool) -> Result<Vec<u64>, ProfileError> {
    let _lock = lock_profile(profile, || {})?;
    let (generations, current) = find_generations(profile)?;
    let mut doomed = BTreeSet::new();
    let mut can_delete = false;
    for g in generations.iter().rev() {
        if can_delete {
            if Some(g.number) != current {
                doomed.insert(g.number);
            }
        } else if g.creation_time < cutoff {
            can_delete = true;
        }
    }
    remove_generations(profile, &generations, dry_run, |g| doomed.contains(&g.number))
}

/// Parses a time spec like `14d` into the cutoff time (now minus that many days).
pub fn parse_older_than(spec: &str) -> Result<i64, ProfileError> {
    let Some(days) = spec.strip_suffix('d') else {
        return Err(ProfileError::BadDays(spec.to_string()));
    };
    match days.parse::<i32>() {
        Ok(days) if days >= 1 => Ok(now() - i64::from(days) * 24 * 3600),
        _ => Err(ProfileError::BadDays(spec.to_string())),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// What `--delete-generations` takes: numbers, `+N`, `Nd` or `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteSpec {
    Numbers(BTreeSet<u64>),
    KeepLast(u64),
    OlderThan(i64),
    Old,
}

impl DeleteSpec {
    /// Parses nix-env's arguments: `old`, a single `Nd` or `+N`, or numbers.
    pub fn parse(args: &[String]) -> Result<DeleteSpec, ProfileError> {
        if args.len() == 1 {
            let arg = &args[0];
            if arg == "old" {
                return Ok(DeleteSpec::Old);
            }
            if arg.ends_with('d') {
                return Ok(DeleteSpec::OlderThan(parse_older_than(arg)?));
            }
            if let Some(n) = arg.strip_prefix('+') {
                return match n.parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(DeleteSpec::KeepLast(n)),
                    _ => Err(ProfileError::BadSpec(arg.clone())),
                };
            }
        }
        let mut numbers = BTreeSet::new();
        for arg in args {
            match arg.parse::<u32>() {
                Ok(n) => numbers.insert(u64::from(n)),
                Err(_) => return Err(ProfileError::BadSpec(arg.clone())),
            };
        }
        Ok(DeleteSpec::Numbers(numbers))
    }

    /// Applies the spec to `profile`; returns the generations removed.
    pub fn apply(&self, profile: &Path, dry_run: bool) -> Result<Vec<u64>, ProfileError> {
        match self {
            DeleteSpec::Numbers(numbers) => delete_generations(profile, numbers, dry_run),
            DeleteSpec::KeepLast(n) => delete_generations_greater_than(profile, *n, dry_run),
            DeleteSpec::OlderThan(cutoff) => delete_generations_older_than(profile, *cutoff, dry_run),
            DeleteSpec::Old => delete_old_generations(profile, dry_run),
        }
    }
}

/// `<state>/profiles`, where profiles live by default.
pub fn profiles_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("profiles")
}

fn user_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return Some(std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned());
        }
    }
    std::env::var("USER").ok().filter(|u| !u.is_empty())
}

/// The user's profile, as CppNix 2.8's `getDefaultProfile`: `~/.nix-profile`
/// is made to point to `<state>/profiles/default` (root) or
/// `<state>/profiles/per-user/<user>/profile` if it does not exist yet, and
/// its target is returned. If the link cannot be made, the link itself is.
pub fn default_profile(state_dir: &Path) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    let link = home.join(".nix-profile");
    let make = || -> Result<PathBuf, ProfileError> {
        if fs::symlink_metadata(&link).is_err() {
            // SAFETY: getuid has no preconditions.
            let target = if unsafe { libc::getuid() } == 0 {
                profiles_dir(state_dir).join("default")
            } else {
                let user = user_name().ok_or_else(|| ProfileError::BadSpec("cannot figure out user name".into()))?;
                profiles_dir(state_dir).join("per-user").join(user).join("profile")
            };
            replace_symlink(&target, &link)?;
        }
        let target = fs::read_link(&link).map_err(ProfileError::io(format!("reading link '{}'", link.display())))?;
        Ok(if target.is_absolute() { target } else { home.join(target) })
    };
    make().unwrap_or(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_names_parse_as_cppnix() {
        assert_eq!(parse_generation_name("profile", "profile-12-link"), Some(12));
        assert_eq!(parse_generation_name("profile", "profile-12-linkfoo"), Some(12));
        assert_eq!(parse_generation_name("profile", "profile-x-link"), None);
        assert_eq!(parse_generation_name("profile", "profile-12"), None);
        assert_eq!(parse_generation_name("profile", "other-1-link"), None);
        assert_eq!(parse_generation_name("profile", "profile-4294967296-link"), None);
    }

    #[test]
    fn delete_specs_parse() {
        let s = |v: &[&str]| DeleteSpec::parse(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&["old"]).unwrap(), DeleteSpec::Old);
        assert_eq!(s(&["+3"]).unwrap(), DeleteSpec::KeepLast(3));
        assert!(matches!(s(&["3d"]).unwrap(), DeleteSpec::OlderThan(_)));
        assert_eq!(s(&["1", "4"]).unwrap(), DeleteSpec::Numbers([1, 4].into_iter().collect()));
        assert!(s(&["+0"]).is_err());
        assert!(s(&["0d"]).is_err());
        assert!(s(&["x"]).is_err());
    }
}
