//! The Git fetcher, CppNix 2.8's `GitInputScheme::fetch`, running the `git`
//! command as CppNix does (the same commands, so the same trees: `git archive`
//! honours `export-ignore`, submodules come from `git submodule update`).
//!
//! - A local working tree (`url` a path or `file://` to a non-bare repository)
//!   without `ref`/`rev` that has uncommitted changes is copied as it is, tracked
//!   files only, with the warning `Git tree '...' is dirty`; no `rev`/`revCount`.
//! - Otherwise `ref` defaults to the local `HEAD` branch (or `master` for remote
//!   repositories, as in 2.8) and `rev` to the commit it names. Remote
//!   repositories are fetched into a bare clone under `<cache dir>/gitv3/`, at
//!   most once per `tarball-ttl` for a ref (always when a wanted `rev` is missing).
//! - The tree of `rev` (with submodules if asked) is added as `name` (default
//!   `source`); `revCount` and `lastModified` come from `git rev-list --count` and
//!   the committer date; the fetcher cache maps the locked input to the path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, StorePath, StorePathSet};
use nivis_store::Store;

use crate::cache::Cache;
use crate::input::{Attr, Attrs, Input, maybe_bool};
use crate::{FetchError, FetchSettings};

/// The branch name our scratch repositories start on, as CppNix's.
const GIT_INITIAL_BRANCH: &str = "__nix_dummy_branch";

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("failed with exit code {code}"),
        (None, Some(signal)) => format!("failed due to signal {signal}"),
        _ => "failed".to_string(),
    }
}

/// Runs `git ARGS`, with its stderr going to ours (as CppNix's `runProgram`);
/// returns stdout.
fn git(args: &[&str]) -> Result<String, FetchError> {
    let output = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| FetchError::io("running 'git'", e))?;
    if !output.status.success() {
        return Err(FetchError::msg(format!(
            "program 'git' {}",
            describe_status(output.status)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `git ARGS` quietly; returns the exit code (`None` for a signal).
fn git_status(args: &[&str]) -> Result<Option<i32>, FetchError> {
    let status = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| FetchError::io("running 'git'", e))?;
    Ok(status.code())
}

fn chomp(text: String) -> String {
    text.trim_end_matches(['\n', '\r', ' ', '\t']).to_string()
}

fn parse_rev(text: &str) -> Result<Hash, FetchError> {
    Hash::parse_any(text.trim(), Some(HashAlgorithm::Sha1)).map_err(|e| FetchError::msg(e.to_string()))
}

fn parse_u64(text: &str, what: &str) -> Result<u64, FetchError> {
    text.trim()
        .parse()
        .map_err(|_| FetchError::msg(format!("'git' printed '{}' for {what}", text.trim())))
}

/// `file://` URLs (and paths) name local repositories; a repository without a
/// `.git` (bare) is cloned like a remote one. Returns (is_local, the URL or
/// path handed to git).
fn actual_url(url: &str) -> (bool, String) {
    if let Some(rest) = url.strip_prefix("file://") {
        let path = rest.split(['?', '#']).next().unwrap_or("");
        let force_http = std::env::var("_NIX_FORCE_HTTP").as_deref() == Ok("1");
        let bare = !Path::new(path).join(".git").exists();
        let local = !force_http && !bare;
        return (
            local,
            if local {
                path.to_string()
            } else {
                format!("file://{path}")
            },
        );
    }
    (false, url.split(['?', '#']).next().unwrap_or(url).to_string())
}

fn string(value: &str) -> Attr {
    Attr::String(value.to_string())
}

fn int_attr(info: &Attrs, name: &str) -> Option<u64> {
    match info.get(name) {
        Some(Attr::Int(n)) => Some(*n),
        _ => None,
    }
}

/// Copies the tracked files of a dirty working tree (directories containing
/// tracked files, and nothing else) to `target`.
fn copy_tracked(
    source: &Path,
    relative: &str,
    files: &std::collections::BTreeSet<String>,
    target: &Path,
) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &str, path: &Path, e| FetchError::io(format!("{what} '{}'", path.display()), e);
    let entries = std::fs::read_dir(source).map_err(|e| io("opening directory", source, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("reading directory", source, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if relative.is_empty() {
            name.clone()
        } else {
            format!("{relative}/{name}")
        };
        let path = entry.path();
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| io("getting status of", &path, e))?;
        let destination = target.join(&name);
        if metadata.is_dir() {
            let prefix = format!("{rel}/");
            let wanted = files
                .range(prefix.clone()..)
                .next()
                .is_some_and(|f| f.starts_with(&prefix));
            if wanted {
                std::fs::create_dir(&destination).map_err(|e| io("creating directory", &destination, e))?;
                copy_tracked(&path, &rel, files, &destination)?;
            }
        } else if files.contains(&rel) {
            if metadata.file_type().is_symlink() {
                let link = std::fs::read_link(&path).map_err(|e| io("reading symlink", &path, e))?;
                std::os::unix::fs::symlink(link, &destination).map_err(|e| io("creating symlink", &destination, e))?;
            } else if metadata.is_file() {
                std::fs::copy(&path, &destination).map_err(|e| io("copying", &path, e))?;
                let mode = if metadata.permissions().mode() & 0o100 != 0 {
                    0o755
                } else {
                    0o644
                };
                std::fs::set_permissions(&destination, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io("setting permissions of", &destination, e))?;
            }
        }
    }
    Ok(())
}

/// Copies `source` to `target` without any `.git` entry (CppNix's
/// `isNotDotGitDirectory` filter for checkouts with submodules).
fn copy_without_dot_git(source: &Path, target: &Path) -> Result<(), FetchError> {
    let io = |what: &str, path: &Path, e| FetchError::io(format!("{what} '{}'", path.display()), e);
    std::fs::create_dir(target).map_err(|e| io("creating directory", target, e))?;
    for entry in std::fs::read_dir(source).map_err(|e| io("opening directory", source, e))? {
        let entry = entry.map_err(|e| io("reading directory", source, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        let destination = target.join(entry.file_name());
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| io("getting status of", &path, e))?;
        if metadata.is_dir() {
            copy_without_dot_git(&path, &destination)?;
        } else if metadata.file_type().is_symlink() {
            let link = std::fs::read_link(&path).map_err(|e| io("reading symlink", &path, e))?;
            std::os::unix::fs::symlink(link, &destination).map_err(|e| io("creating symlink", &destination, e))?;
        } else if metadata.is_file() {
            std::fs::copy(&path, &destination).map_err(|e| io("copying", &path, e))?;
        }
    }
    Ok(())
}

fn add_tree(store: &dyn Store, name: &str, path: &Path) -> Result<StorePath, FetchError> {
    Ok(store.add_to_store(
        name,
        path,
        FileIngestionMethod::Recursive,
        HashAlgorithm::Sha256,
        &StorePathSet::new(),
        false,
    )?)
}

/// A held `flock` on a file, released when dropped.
struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    fn acquire(path: &Path) -> Result<FileLock, FetchError> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| FetchError::io(format!("opening lock file '{}'", path.display()), e))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(FetchError::io(
                format!("acquiring lock '{}'", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(FileLock { _file: file })
    }
}

/// `fetchGit`/`fetchTree { type = "git"; }`: returns the store path and the
/// input with `ref`, `rev`, `revCount` and `lastModified` filled in.
pub(crate) fn fetch_git(
    store: &dyn Store,
    settings: &FetchSettings,
    original: &Input,
) -> Result<(StorePath, Input), FetchError> {
    let mut input = original.clone();
    let name = input.name()?;
    let shallow = maybe_bool(&input.attrs, "shallow")?.unwrap_or(false);
    let submodules = maybe_bool(&input.attrs, "submodules")?.unwrap_or(false);
    let all_refs = maybe_bool(&input.attrs, "allRefs")?.unwrap_or(false);
    let mut cache_type = "git".to_string();
    if shallow {
        cache_type.push_str("-shallow");
    }
    if submodules {
        cache_type.push_str("-submodules");
    }
    if all_refs {
        cache_type.push_str("-all-refs");
    }
    let cache = Cache::new(settings);
    let locked_attrs = |rev: &Hash| -> Attrs {
        [
            ("type", cache_type.as_str()),
            ("name", name.as_str()),
            ("rev", rev.to_base16().as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), string(v)))
        .collect()
    };
    let make_result = |mut input: Input, info: &Attrs, store_path: StorePath| -> (StorePath, Input) {
        if !shallow && let Some(count) = int_attr(info, "revCount") {
            input.attrs.insert("revCount".into(), Attr::Int(count));
        }
        if let Some(time) = int_attr(info, "lastModified") {
            input.attrs.insert("lastModified".into(), Attr::Int(time));
        }
        (store_path, input)
    };

    if let Some(rev) = input.rev()?
        && let Some(hit) = cache.lookup(store, &locked_attrs(&rev), settings.tarball_ttl)
    {
        return Ok(make_result(input, &hit.info, hit.store_path));
    }

    let url = crate::input::get_str(&input.attrs, "url")?.to_string();
    let (is_local, actual_url) = actual_url(&url);

    // A local working tree without ref or rev may be used with uncommitted changes.
    if input.reference().is_none()
        && input.rev()?.is_none()
        && is_local
        && let Some(result) = fetch_dirty_tree(store, settings, &mut input, &actual_url, &name, submodules)?
    {
        return Ok(result);
    }

    if input.reference().is_none() {
        let head = if is_local {
            chomp(git(&["-C", &actual_url, "rev-parse", "--abbrev-ref", "HEAD"])?)
        } else {
            "master".into()
        };
        input.attrs.insert("ref".into(), Attr::String(head));
    }
    let reference = input.reference().unwrap_or("master").to_string();
    let unlocked_attrs: Attrs = [
        ("type", cache_type.as_str()),
        ("name", name.as_str()),
        ("url", actual_url.as_str()),
        ("ref", reference.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), string(v)))
    .collect();

    let repo_dir: PathBuf = if is_local {
        if input.rev()?.is_none() {
            let rev = parse_rev(&git(&["-C", &actual_url, "rev-parse", &reference])?)?;
            input.attrs.insert("rev".into(), Attr::String(rev.to_base16()));
        }
        PathBuf::from(&actual_url)
    } else {
        if let Some(hit) = cache.lookup(store, &unlocked_attrs, settings.tarball_ttl)
            && let Some(Attr::String(cached_rev)) = hit.info.get("rev")
        {
            let cached_rev = parse_rev(cached_rev)?;
            if input.rev()?.is_none_or(|rev| rev == cached_rev) {
                input.attrs.insert("rev".into(), Attr::String(cached_rev.to_base16()));
                return Ok(make_result(input, &hit.info, hit.store_path));
            }
        }
        let (clone_dir, fetched_rev) = fetch_into_cache_clone(settings, &input, &actual_url, &reference, all_refs)?;
        if let Some(rev) = fetched_rev {
            input.attrs.insert("rev".into(), Attr::String(rev.to_base16()));
        }
        clone_dir
    };
    let repo = repo_dir.to_string_lossy().into_owned();

    let is_shallow = chomp(git(&["-C", &repo, "rev-parse", "--is-shallow-repository"])?) == "true";
    if is_shallow && !shallow {
        return Err(FetchError::msg(format!(
            "'{actual_url}' is a shallow Git repository, but a non-shallow repository is needed"
        )));
    }
    let rev = input.rev()?.ok_or_else(|| FetchError::msg("no revision"))?;
    let rev_text = rev.to_base16();

    if let Some(hit) = cache.lookup(store, &locked_attrs(&rev), settings.tarball_ttl) {
        return Ok(make_result(input, &hit.info, hit.store_path));
    }

    // A missing commit: CppNix's explanation rather than git's.
    let check = Command::new("git")
        .args(["-C", &repo, "cat-file", "commit", &rev_text])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FetchError::io("running 'git'", e))?;
    let check_text = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    if check.status.code() == Some(128) && check_text.contains("bad file") {
        return Err(FetchError::msg(format!(
            "Cannot find Git revision '{rev_text}' in ref '{reference}' of repository '{actual_url}'! Please make sure that the rev exists on the ref you've specified or add allRefs = true; to fetchGit."
        )));
    }

    let temp = crate::tarball::temp_dir()?;
    let tree = temp.path().join("tree");
    let store_path = if submodules {
        let git_dir = temp.path().join("git");
        let tree_text = tree.to_string_lossy().into_owned();
        let git_dir_text = git_dir.to_string_lossy().into_owned();
        git(&[
            "-c",
            &format!("init.defaultBranch={GIT_INITIAL_BRANCH}"),
            "init",
            "--quiet",
            &tree_text,
            "--separate-git-dir",
            &git_dir_text,
        ])?;
        git(&[
            "-C",
            &tree_text,
            "fetch",
            "--quiet",
            "--force",
            "--update-head-ok",
            "--",
            &repo,
            "refs/*:refs/*",
        ])?;
        git(&["-C", &tree_text, "checkout", "--quiet", &rev_text])?;
        git(&["-C", &tree_text, "remote", "add", "origin", &actual_url])?;
        git(&[
            "-C",
            &tree_text,
            "submodule",
            "--quiet",
            "update",
            "--init",
            "--recursive",
        ])?;
        let filtered = temp.path().join("filtered");
        copy_without_dot_git(&tree, &filtered)?;
        add_tree(store, &name, &filtered)?
    } else {
        std::fs::create_dir(&tree)
            .map_err(|e| FetchError::io(format!("creating directory '{}'", tree.display()), e))?;
        let mut child = Command::new("git")
            .args(["-C", &repo, "archive", &rev_text])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| FetchError::io("running 'git'", e))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| FetchError::msg("git archive has no output"))?;
        let unpacked = crate::unpack::unpack_tar_stream(Box::new(stdout), &tree);
        let status = child.wait().map_err(|e| FetchError::io("waiting for 'git'", e))?;
        if !status.success() {
            return Err(FetchError::msg(format!("program 'git' {}", describe_status(status))));
        }
        unpacked?;
        add_tree(store, &name, &tree)?
    };

    let last_modified = parse_u64(
        &git(&[
            "-C",
            &repo,
            "log",
            "-1",
            "--format=%ct",
            "--no-show-signature",
            &rev_text,
        ])?,
        "the commit time",
    )?;
    let mut info = Attrs::new();
    info.insert("rev".into(), string(&rev_text));
    info.insert("lastModified".into(), Attr::Int(last_modified));
    if !shallow {
        let count = parse_u64(
            &git(&["-C", &repo, "rev-list", "--count", &rev_text])?,
            "the revision count",
        )?;
        info.insert("revCount".into(), Attr::Int(count));
    }
    if original.rev()?.is_none() {
        cache.add(store, &unlocked_attrs, &info, &store_path, false);
    }
    cache.add(store, &locked_attrs(&rev), &info, &store_path, true);
    Ok(make_result(input, &info, store_path))
}

/// The working-tree case: `None` if the tree is clean (then it is fetched
/// like any other local repository).
fn fetch_dirty_tree(
    store: &dyn Store,
    settings: &FetchSettings,
    input: &mut Input,
    actual_url: &str,
    name: &str,
    submodules: bool,
) -> Result<Option<(StorePath, Input)>, FetchError> {
    let common_dir = chomp(git(&["-C", actual_url, "rev-parse", "--git-common-dir"])?);
    let git_dir = if common_dir != ".git" {
        PathBuf::from(&common_dir)
    } else {
        Path::new(actual_url).join(".git")
    };
    let git_dir = if git_dir.is_relative() {
        Path::new(actual_url).join(git_dir)
    } else {
        git_dir
    };
    // As CppNix: a repository "has commits" if refs/heads has an entry.
    let have_commits = std::fs::read_dir(git_dir.join("refs/heads"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    let mut clean = false;
    if have_commits {
        match git_status(&["-C", actual_url, "diff-index", "--quiet", "HEAD", "--"])? {
            Some(0) => clean = true,
            Some(1) => {}
            _ => return Err(FetchError::msg("program 'git' failed with exit code 128")),
        }
    }
    if clean {
        return Ok(None);
    }
    if !settings.allow_dirty {
        return Err(FetchError::msg(format!("Git tree '{actual_url}' is dirty")));
    }
    if settings.warn_dirty {
        (settings.warn)(&format!("Git tree '{actual_url}' is dirty"));
    }
    let mut args = vec!["-C", actual_url, "ls-files", "-z"];
    if submodules {
        args.push("--recurse-submodules");
    }
    let listing = git(&args)?;
    let files: std::collections::BTreeSet<String> = listing
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let temp = crate::tarball::temp_dir()?;
    let copy = temp.path().join("tree");
    std::fs::create_dir(&copy).map_err(|e| FetchError::io(format!("creating directory '{}'", copy.display()), e))?;
    copy_tracked(Path::new(actual_url), "", &files, &copy)?;
    let store_path = add_tree(store, name, &copy)?;
    let last_modified = if have_commits {
        parse_u64(
            &git(&[
                "-C",
                actual_url,
                "log",
                "-1",
                "--format=%ct",
                "--no-show-signature",
                "HEAD",
            ])?,
            "the commit time",
        )?
    } else {
        0
    };
    input.attrs.insert("lastModified".into(), Attr::Int(last_modified));
    Ok(Some((store_path, input.clone())))
}

/// Brings the bare clone of a remote repository up to date as needed and
/// returns its directory; sets `rev` from the fetched ref if it was not given.
fn fetch_into_cache_clone(
    settings: &FetchSettings,
    input: &Input,
    actual_url: &str,
    reference: &str,
    all_refs: bool,
) -> Result<(PathBuf, Option<Hash>), FetchError> {
    let key = Hash::of_bytes(HashAlgorithm::Sha256, actual_url.as_bytes()).to_nix32();
    let cache_dir = settings.cache_dir.join("gitv3").join(&key);
    let parent = settings.cache_dir.join("gitv3");
    std::fs::create_dir_all(&parent)
        .map_err(|e| FetchError::io(format!("creating directory '{}'", parent.display()), e))?;
    let _lock = FileLock::acquire(&parent.join(format!("{key}.lock")))?;
    let repo = cache_dir.to_string_lossy().into_owned();
    if !cache_dir.exists() {
        git(&[
            "-c",
            &format!("init.defaultBranch={GIT_INITIAL_BRANCH}"),
            "init",
            "--quiet",
            "--bare",
            &repo,
        ])?;
    }
    let local_ref_file = if reference.starts_with("refs/") {
        cache_dir.join(reference)
    } else {
        cache_dir.join("refs/heads").join(reference)
    };
    let now = crate::cache::now();
    let do_fetch = if let Some(rev) = input.rev()? {
        match git_status(&["-C", &repo, "cat-file", "-e", &rev.to_base16()])? {
            Some(0) => false,
            Some(_) => true,
            None => return Err(FetchError::msg("program 'git' failed due to a signal")),
        }
    } else if all_refs {
        true
    } else {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&local_ref_file) {
            Ok(metadata) => metadata.mtime() + (settings.tarball_ttl as i64) <= now,
            Err(_) => true,
        }
    };
    if do_fetch {
        let fetch_ref = if all_refs {
            "refs/*".to_string()
        } else if reference.starts_with("refs/") || reference == "HEAD" {
            reference.to_string()
        } else {
            format!("refs/heads/{reference}")
        };
        let refspec = format!("{fetch_ref}:{fetch_ref}");
        if let Err(error) = git(&["-C", &repo, "fetch", "--quiet", "--force", "--", actual_url, &refspec]) {
            if !local_ref_file.exists() {
                return Err(error);
            }
            (settings.warn)(&format!(
                "could not update local clone of Git repository '{actual_url}'; continuing with the most recent version"
            ));
        }
        touch(&local_ref_file, now);
    }
    let fetched_rev = if input.rev()?.is_none() {
        let text = std::fs::read_to_string(&local_ref_file)
            .map_err(|e| FetchError::io(format!("reading '{}'", local_ref_file.display()), e))?;
        Some(parse_rev(&text)?)
    } else {
        None
    };
    Ok((cache_dir, fetched_rev))
}

fn touch(path: &Path, time: i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let times = [libc::timespec {
        tv_sec: time as libc::time_t,
        tv_nsec: 0,
    }; 2];
    // SAFETY: a valid path and two timespecs.
    unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), 0) };
}
