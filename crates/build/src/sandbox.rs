//! The Linux sandbox: a child in new user, mount, pid, ipc, uts (and, except for
//! fixed-output derivations, network) namespaces, whose root is a chroot that
//! holds only the input closure, the build directory, a minimal `/dev`, `/proc`
//! and the configured sandbox paths. The layout follows CppNix 2.8's
//! `LocalDerivationGoal::startBuilder`, checked by building the same derivations
//! with both and comparing what the builder sees.
//!
//! How it works:
//! 1. The parent prepares everything on disk: the build directory, the chroot
//!    tree with `/etc/passwd`, `/etc/group`, `/etc/hosts`, mount points and
//!    symlinks (within one `realise`, the skeleton of an earlier build's
//!    chroot, see [`ChrootReuse`]), and a list of mount operations with every
//!    path already a `CString`.
//! 2. It clones the child with all namespace flags at once (`clone` is allowed
//!    in a multi-threaded process, unlike `unshare(CLONE_NEWUSER)`), sharing
//!    its memory until exec (`CLONE_VM` on a stack of its own, like `vfork`:
//!    no page tables of this large process to copy per build), then writes
//!    the child's uid/gid maps (sandbox uid 1000 and gid 100 map to the build
//!    user's host ids) and releases it through a pipe.
//! 3. The child, pid 1 of its pid namespace, performs the mounts, pivots into the
//!    chroot, drops to uid 1000/gid 100 and execs the builder with stdout and
//!    stderr on a pseudo-terminal (CppNix 2.8 also uses a pty, in raw mode).
//!    Between clone and exec the child must not allocate (the allocator is the
//!    parent's, shared), so it only makes system calls on data prepared in
//!    step 1 (see `spawn_sharing_memory`). Failures are reported to the
//!    parent as (step, errno) on a close-on-exec pipe: EOF there means the exec
//!    succeeded.
//! 4. The parent streams the pty to the log sink and enforces the time and log
//!    limits by killing pid 1 of the namespace, which makes the kernel kill every
//!    other process in it.
//!
//! Input store paths are bind-mounted read-only (CppNix relies on them being
//! owned by root; in a rootless store they are owned by the very uid the builder
//! maps to, so only the mount flag protects them). For the same reason, when
//! the builder maps to the caller the chroot's `/` is remounted read-only after
//! `pivot_root`; `/tmp`, the store and `/build` are mounts of their own and stay
//! writable. Before exec the child also disables address-space randomisation
//! (and sets the 32-bit personality for i686 builds), sets `no_new_privs` and
//! installs the system-call filter of `seccomp.rs`, all as CppNix does.
//!
//! Deliberate differences from CppNix 2.8, all invisible to well-behaved
//! builders: inputs are bind mounts (read-only) rather than hard links for
//! files; in rootless builds `/tmp` is its own mount and `/` is read-only.
//!
//! `sandbox = false` ([`run_unsandboxed`]) skips all of this: a plain fork, an
//! optional switch to the build user, the host build directory as the working
//! directory, and the same stdio, personality and filter.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::env::builder_environment;
use crate::error::BuildError;
use crate::request::{BuildRequest, BuildStatus, BuildUser, SANDBOX_GID, SANDBOX_UID};

/// What `run_build` hands back: how the builder ended, and where its outputs
/// are. The chroot (with any outputs not yet moved) and the build directory are
/// removed when this is dropped.
#[derive(Debug)]
pub struct BuildOutcome {
    pub status: BuildStatus,
    /// Wall-clock time from starting the builder to its end.
    pub duration: Duration,
    /// Bytes the builder wrote to stdout and stderr.
    pub log_size: u64,
    /// Output name to logical store path, as requested.
    pub outputs: BTreeMap<String, String>,
    /// The host path of the chroot's store directory, where the outputs are
    /// until [`BuildOutcome::move_outputs_to_store`] (the real store directory
    /// itself for an unsandboxed build).
    pub chroot_store_dir: PathBuf,
    real_store_dir: PathBuf,
    cleanup: Cleanup,
}

impl BuildOutcome {
    /// The outcome of a builder that ran in this process (`builtin:`
    /// builders), which wrote its outputs straight into the real store.
    pub(crate) fn in_process(request: &BuildRequest, status: BuildStatus, duration: Duration, log_size: u64) -> BuildOutcome {
        BuildOutcome {
            status,
            duration,
            log_size,
            outputs: request.outputs.clone(),
            chroot_store_dir: request.real_store_dir.clone(),
            real_store_dir: request.real_store_dir.clone(),
            cleanup: Cleanup {
                chroot_root: None,
                skeleton_key: None,
                chroot_store_dir: PathBuf::new(),
                builder_owns_chroot: false,
                build_dir: PathBuf::new(),
                keep_build_dir: true,
            },
        }
    }

    /// The host directory the builder saw as `/build`, if it is being kept.
    pub fn build_dir(&self) -> &Path {
        &self.cleanup.build_dir
    }

    /// Where output `name` currently is on the host.
    pub fn output_location(&self, name: &str) -> Option<PathBuf> {
        let path = self.outputs.get(name)?;
        Some(self.chroot_store_dir.join(base_name(path)))
    }

    /// Moves every output from the chroot into the real store directory and
    /// returns name to final host path. Whatever is already at a destination is
    /// deleted first (the caller holds the output locks and has checked the path
    /// is not valid, as CppNix does). Fails with `MissingOutput` if the builder
    /// did not create an output.
    pub fn move_outputs_to_store(&mut self) -> Result<BTreeMap<String, PathBuf>, BuildError> {
        let mut moved = BTreeMap::new();
        for (name, path) in &self.outputs {
            let base = base_name(path);
            let source = self.chroot_store_dir.join(base);
            let destination = self.real_store_dir.join(base);
            if fs::symlink_metadata(&source).is_err() {
                if moved_already(&destination, &moved) {
                    continue;
                }
                return Err(BuildError::MissingOutput { output: name.clone(), path: PathBuf::from(path) });
            }
            if source == destination {
                // Unsandboxed: the builder wrote into the store itself.
                moved.insert(name.clone(), destination);
                continue;
            }
            if fs::symlink_metadata(&destination).is_ok() {
                remove_tree(&destination)?;
            }
            move_path(&source, &destination)?;
            moved.insert(name.clone(), destination);
        }
        Ok(moved)
    }
}

/// One output after [`BuildOutcome::finish_outputs`]: in the store, canonical,
/// with what registering it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedOutput {
    /// The logical store path.
    pub path: String,
    /// Where it is on the host.
    pub real_path: PathBuf,
    pub info: crate::outputs::OutputInfo,
}

impl BuildOutcome {
    /// The after-build steps for every output, in CppNix's order: move it into
    /// the store, canonicalise it (owned by `owner` when given), then hash it
    /// and scan it for references to the input closure and to the
    /// derivation's own outputs (CppNix's candidate set). Call only for a
    /// successful build of `request`.
    pub fn finish_outputs(
        &mut self,
        request: &BuildRequest,
        owner: Option<(u32, u32)>,
    ) -> Result<BTreeMap<String, FinishedOutput>, BuildError> {
        let moved = self.move_outputs_to_store()?;
        let candidates: Vec<&String> = request.input_paths.iter().chain(request.outputs.values()).collect();
        let mut finished = BTreeMap::new();
        for (name, real_path) in moved {
            crate::outputs::canonicalise_path_metadata(&real_path, owner)?;
            let info = crate::outputs::scan_and_hash_output(&real_path, &candidates)?;
            let path = request.outputs[&name].clone();
            finished.insert(name, FinishedOutput { path, real_path, info });
        }
        Ok(finished)
    }
}

fn moved_already(destination: &Path, moved: &BTreeMap<String, PathBuf>) -> bool {
    moved.values().any(|path| path == destination)
}

/// Renames `source` to `destination`; a directory must be writable for rename
/// to update its `..` entry, so it is made writable for the move if needed.
fn move_path(source: &Path, destination: &Path) -> Result<(), BuildError> {
    let metadata = fs::symlink_metadata(source).map_err(|e| BuildError::io("getting status of", source, e))?;
    let made_writable = metadata.is_dir() && metadata.permissions().mode() & 0o200 == 0;
    if made_writable {
        let mode = metadata.permissions().mode() | 0o200;
        fs::set_permissions(source, fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io("making writable", source, e))?;
    }
    fs::rename(source, destination).map_err(|e| BuildError::io("moving output to", destination, e))?;
    if made_writable {
        fs::set_permissions(destination, fs::Permissions::from_mode(metadata.permissions().mode()))
            .map_err(|e| BuildError::io("restoring permissions of", destination, e))?;
    }
    Ok(())
}

/// Removes the chroot and the build directory when the build is over (or
/// hands the chroot's skeleton back to the [`ChrootReuse`] pool).
#[derive(Debug)]
struct Cleanup {
    /// `None` for an unsandboxed build.
    chroot_root: Option<PathBuf>,
    /// The skeleton's key when the chroot may go back to the pool.
    skeleton_key: Option<String>,
    /// The chroot's store directory, emptied before the skeleton is reused.
    chroot_store_dir: PathBuf,
    /// The builder ran as the chroot's owner (a rootless build).
    builder_owns_chroot: bool,
    build_dir: PathBuf,
    keep_build_dir: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(chroot_root) = &self.chroot_root {
            let kept = self.skeleton_key.take().is_some_and(|key| {
                ChrootReuse::give_back(key, chroot_root, &self.chroot_store_dir, self.builder_owns_chroot)
            });
            if !kept {
                let _ = remove_tree(chroot_root);
            }
        }
        if !self.keep_build_dir {
            let _ = remove_tree(&self.build_dir);
        }
    }
}

/// Reusing chroot skeletons between the builds of one realisation.
///
/// Most of a chroot is the same for every build: `/etc` and its files,
/// `/dev` with its device mount points and symlinks, `/proc`, `/build`,
/// the sandbox paths' mount points. Creating and deleting those ~30 inodes
/// per build was a quarter of the CPU time of building 50 trivial
/// derivations (ext4 inode allocation churn). While a [`ChrootReuse`] guard
/// is alive, a finished build's chroot is emptied of what the builder may
/// have left in `/tmp` and the store directory (the only places a builder
/// can write: in a root build everything else belongs to root, in a
/// rootless one it is read-only), keeping only empty directories there (the
/// input mount points), and waits, under a name of its own, for the next
/// build with the same key, which renames it to its own `<drv>.chroot`,
/// restores the modes of `/tmp` and the store directory and removes the
/// mount points it does not need. (A rootless builder owns `/tmp` and the
/// store directory, so there those two are deleted and made anew.) Mounts are made in
/// each build's own mount namespace, so the host-side skeleton stays a tree
/// of empty mount points. The last guard to go deletes what is left, so no
/// skeleton outlives the realisation (a killed process leaves its chroots
/// behind as before; they are not store paths and are deleted by the next
/// build of the same derivation or the garbage collector).
pub(crate) struct ChrootReuse {
    _private: (),
}

static CHROOT_REUSERS: std::sync::Mutex<(usize, Vec<(String, PathBuf)>)> = std::sync::Mutex::new((0, Vec::new()));

impl ChrootReuse {
    /// Lets builds reuse chroot skeletons until the guard is dropped.
    pub(crate) fn enable() -> ChrootReuse {
        CHROOT_REUSERS.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
        ChrootReuse { _private: () }
    }

    fn enabled() -> bool {
        CHROOT_REUSERS.lock().unwrap_or_else(|p| p.into_inner()).0 > 0
    }

    /// A pooled skeleton with this key, if any, renamed to `chroot_root`.
    fn take(key: &str, chroot_root: &Path) -> bool {
        let skeleton = {
            let mut pool = CHROOT_REUSERS.lock().unwrap_or_else(|p| p.into_inner());
            let Some(index) = pool.1.iter().position(|(k, _)| k == key) else { return false };
            pool.1.swap_remove(index).1
        };
        if fs::rename(&skeleton, chroot_root).is_ok() {
            return true;
        }
        let _ = remove_tree(&skeleton);
        false
    }

    /// Empties the per-build parts of a finished chroot and pools it; false
    /// (the caller deletes it) when reuse is off or emptying failed.
    fn give_back(key: String, chroot_root: &Path, chroot_store_dir: &Path, builder_owned: bool) -> bool {
        if !Self::enabled() {
            return false;
        }
        // `/tmp` is emptied; in the store directory only empty directories
        // (the input mount points, which the next build may use again) stay,
        // and the next build removes those it does not need. Directories
        // kept rather than recreated: creating inodes is what costs here.
        // A rootless builder owns those two directories and could leave
        // attributes on them (a default ACL) that would shape the next
        // build: then they are deleted and made anew.
        let emptied = if builder_owned {
            remove_tree(&chroot_root.join("tmp")).is_ok() && remove_tree(chroot_store_dir).is_ok()
        } else {
            empty_directory(&chroot_root.join("tmp"), |_| false)
                && empty_directory(chroot_store_dir, |entry| is_empty_directory(&entry.path()))
        };
        if !emptied {
            return false;
        }
        // A name of its own while pooled: another process building the same
        // derivation deletes `<drv>.chroot` first, and must not find ours.
        static POOLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let number = POOLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pooled_name = chroot_root.as_os_str().to_owned();
        pooled_name.push(format!("-pooled-{}-{number}", std::process::id()));
        let pooled = PathBuf::from(pooled_name);
        if fs::rename(chroot_root, &pooled).is_err() {
            return false;
        }
        let mut pool = CHROOT_REUSERS.lock().unwrap_or_else(|p| p.into_inner());
        if pool.0 == 0 {
            drop(pool);
            let _ = remove_tree(&pooled);
            return true;
        }
        pool.1.push((key, pooled));
        true
    }
}

/// Removes every entry of `directory` except those `keep` accepts; false if
/// something could not be removed.
fn empty_directory(directory: &Path, keep: impl Fn(&fs::DirEntry) -> bool) -> bool {
    let Ok(entries) = fs::read_dir(directory) else { return false };
    for entry in entries {
        let Ok(entry) = entry else { return false };
        if !keep(&entry) && remove_tree(&entry.path()).is_err() {
            return false;
        }
    }
    true
}

fn is_empty_directory(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        && fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

impl Drop for ChrootReuse {
    fn drop(&mut self) {
        let leftovers = {
            let mut pool = CHROOT_REUSERS.lock().unwrap_or_else(|p| p.into_inner());
            pool.0 -= 1;
            if pool.0 > 0 {
                return;
            }
            std::mem::take(&mut pool.1)
        };
        for (_, skeleton) in leftovers {
            let _ = remove_tree(&skeleton);
        }
    }
}

/// Deletes a tree, making directories writable as needed (outputs are
/// canonicalised read-only) and never crossing into another file system, so a
/// bind mount that somehow outlived its namespace is left alone rather than
/// emptied.
pub(crate) fn remove_tree(path: &Path) -> Result<(), BuildError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BuildError::io("getting status of", path, e)),
    };
    use std::os::unix::fs::MetadataExt;
    remove_tree_on_device(path, metadata.dev())
}

fn remove_tree_on_device(path: &Path, device: u64) -> Result<(), BuildError> {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::symlink_metadata(path).map_err(|e| BuildError::io("getting status of", path, e))?;
    if metadata.dev() != device {
        return Err(BuildError::io("deleting", path, io::Error::other("refusing to delete across a mount point")));
    }
    if metadata.is_dir() {
        if metadata.permissions().mode() & 0o700 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(metadata.permissions().mode() | 0o700))
                .map_err(|e| BuildError::io("making writable", path, e))?;
        }
        for entry in fs::read_dir(path).map_err(|e| BuildError::io("reading directory", path, e))? {
            let entry = entry.map_err(|e| BuildError::io("reading directory", path, e))?;
            remove_tree_on_device(&entry.path(), device)?;
        }
        fs::remove_dir(path).map_err(|e| BuildError::io("deleting", path, e))
    } else {
        fs::remove_file(path).map_err(|e| BuildError::io("deleting", path, e))
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn cstring(bytes: impl AsRef<[u8]>, what: &str) -> Result<CString, BuildError> {
    CString::new(bytes.as_ref()).map_err(|_| BuildError::InvalidRequest(format!("{what} contains a NUL byte")))
}

fn path_cstring(path: &Path) -> Result<CString, BuildError> {
    cstring(path.as_os_str().as_bytes(), "path")
}

/// Joins an absolute in-sandbox path below the chroot root.
fn in_chroot(chroot_root: &Path, absolute: &Path) -> PathBuf {
    let relative = absolute.strip_prefix("/").unwrap_or(absolute);
    chroot_root.join(relative)
}

/// One mount the child performs, all paths on the host side (before pivot_root).
#[derive(Debug)]
enum MountOp {
    Bind {
        source: CString,
        target: CString,
        read_only: bool,
    },
    Proc {
        target: CString,
    },
    Tmpfs {
        target: CString,
        data: CString,
    },
    /// A private devpts instance; if the kernel refuses (EINVAL), the host's
    /// `/dev/pts` is bound instead, as CppNix does.
    Devpts {
        target: CString,
        ptmx: CString,
        host_pts: CString,
    },
}

impl MountOp {
    fn describe(&self) -> String {
        match self {
            MountOp::Bind { source, target, read_only } => format!(
                "bind-mounting '{}' to '{}'{}",
                source.to_string_lossy(),
                target.to_string_lossy(),
                if *read_only { " read-only" } else { "" }
            ),
            MountOp::Proc { target } => format!("mounting /proc at '{}'", target.to_string_lossy()),
            MountOp::Tmpfs { target, .. } => format!("mounting tmpfs at '{}'", target.to_string_lossy()),
            MountOp::Devpts { target, .. } => format!("mounting devpts at '{}'", target.to_string_lossy()),
        }
    }
}

/// Child steps other than the mount list, numbered above any mount index.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
enum Step {
    Hostname = 1_000_000,
    Domainname,
    Loopback,
    MakePrivate,
    BindRoot,
    BindStore,
    ChdirRoot,
    PivotRoot,
    ChrootDot,
    UnmountOldRoot,
    ReadOnlyRoot,
    ChdirBuild,
    Setgid,
    Setuid,
    Setsid,
    Personality,
    Seccomp,
    Stdio,
    Exec,
}

const STEP_NAMES: [&str; 19] = [
    "setting the host name",
    "setting the domain name",
    "bringing up the loopback interface",
    "making / private",
    "bind-mounting the chroot onto itself",
    "bind-mounting the chroot's store onto itself",
    "entering the chroot directory",
    "pivot_root",
    "chroot",
    "unmounting the old root",
    "making / read-only",
    "entering the build directory",
    "setgid",
    "setuid",
    "setsid",
    "setting the personality",
    "installing the system-call filter",
    "setting up stdin/stdout/stderr",
    "executing the builder",
];

/// Everything the child needs, prepared by the parent so the child does not
/// allocate.
struct ChildPlan {
    /// The builder owns the chroot skeleton (rootless): make `/` read-only.
    read_only_root: bool,
    chroot_root: CString,
    chroot_store_dir: CString,
    build_dir_in_sandbox: CString,
    ops: Vec<MountOp>,
    private_network: bool,
    builder: CString,
    argv: Vec<CString>,
    argv_pointers: Vec<*const libc::c_char>,
    envp: Vec<CString>,
    envp_pointers: Vec<*const libc::c_char>,
    /// `Some` to install CppNix's system-call filter before exec.
    seccomp_filter: Option<Vec<crate::seccomp::Instruction>>,
    no_new_privileges: bool,
    /// Run with the 32-bit personality (an i686 build on x86_64).
    linux32: bool,
    sync_read: RawFd,
    error_write: RawFd,
    stdin_fd: RawFd,
    log_fd: RawFd,
}

/// Runs the builder of `request` in the sandbox (or, with `sandbox = false`,
/// without one), streaming its stdout and stderr to `log`, and waits for it.
/// A builder that fails is an `Ok` outcome with a failed [`BuildStatus`];
/// errors mean the builder could not be run at all.
pub fn run_build(request: &BuildRequest, log: &mut dyn Write) -> Result<BuildOutcome, BuildError> {
    validate(request)?;
    if let Some(name) = request.builder.strip_prefix("builtin:") {
        return crate::builtins::run_builtin(name, request, log);
    }
    let build_user = request.build_user.unwrap_or_else(BuildUser::default_for_caller);
    let current = BuildUser::current();

    let drv_base = base_name(&request.drv_path);
    let drv_name = drv_base.get(33..).filter(|_| drv_base.len() > 33).unwrap_or(drv_base);
    let build_dir = create_build_dir(&request.tmp_root, drv_name)?;
    let chroot_root = request.real_store_dir.join(format!("{drv_base}.chroot"));
    // From here on the directories are removed on every exit path.
    let mut cleanup = Cleanup {
        chroot_root: request.sandbox.then(|| chroot_root.clone()),
        skeleton_key: None,
        chroot_store_dir: in_chroot(&chroot_root, &request.store_dir),
        builder_owns_chroot: build_user == current,
        build_dir: build_dir.clone(),
        keep_build_dir: request.keep_build_dir,
    };
    let environment = if request.sandbox {
        builder_environment(request)?
    } else {
        crate::env::builder_environment_at(request, &build_dir.to_string_lossy())?
    };
    if !request.sandbox {
        return run_unsandboxed(request, log, build_user, current, &environment, build_dir, cleanup);
    }

    for (name, contents) in &environment.files {
        let path = build_dir.join(name);
        fs::write(&path, contents).map_err(|e| BuildError::io("writing", &path, e))?;
        chown_if_needed(&path, build_user, current)?;
    }
    chown_if_needed(&build_dir, build_user, current)?;

    remove_tree(&chroot_root)?;
    let skeleton_key = ChrootReuse::enabled().then(|| skeleton_key(request, build_user, current)).flatten();
    let reused = skeleton_key.as_deref().is_some_and(|key| ChrootReuse::take(key, &chroot_root));
    let ops = prepare_chroot(request, &chroot_root, &build_dir, build_user, current, !reused)?;
    cleanup.skeleton_key = skeleton_key;
    let chroot_store_dir = in_chroot(&chroot_root, &request.store_dir);

    let argv: Vec<CString> = std::iter::once(cstring(base_name(&request.builder), "builder")?)
        .chain(request.args.iter().map(|arg| cstring(arg, "builder argument")).collect::<Result<Vec<_>, _>>()?)
        .collect();
    let envp: Vec<CString> = environment
        .vars
        .iter()
        .map(|(name, value)| cstring(format!("{name}={value}"), "environment variable"))
        .collect::<Result<_, _>>()?;

    let pty = Pty::open()?;
    let stdin = open_dev_null()?;
    let (sync_read, sync_write) = pipe()?;
    let (error_read, error_write) = pipe()?;

    let mut plan = ChildPlan {
        read_only_root: build_user == current,
        chroot_root: path_cstring(&chroot_root)?,
        chroot_store_dir: path_cstring(&chroot_store_dir)?,
        build_dir_in_sandbox: path_cstring(&request.sandbox_build_dir)?,
        ops,
        private_network: !request.fixed_output,
        builder: cstring(&request.builder, "builder")?,
        argv_pointers: Vec::new(),
        argv,
        envp_pointers: Vec::new(),
        envp,
        seccomp_filter: request.filter_syscalls.then(crate::seccomp::filter),
        no_new_privileges: request.filter_syscalls && !request.allow_new_privileges,
        linux32: request.system == "i686-linux" && cfg!(target_arch = "x86_64"),
        sync_read: sync_read.as_raw_fd(),
        error_write: error_write.as_raw_fd(),
        stdin_fd: stdin.as_raw_fd(),
        log_fd: pty.slave.as_raw_fd(),
    };
    plan.argv_pointers = plan.argv.iter().map(|arg| arg.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    plan.envp_pointers = plan.envp.iter().map(|var| var.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();

    let mut flags =
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if plan.private_network {
        flags |= libc::CLONE_NEWNET;
    }
    // The child shares our memory (CLONE_VM) until it execs: copying the page
    // tables of this large process for every build, tearing the copy down at
    // exec and the copy-on-write faults that follow were about a sixth of the
    // CPU time of bench/build.sh. Not CLONE_VFORK: we must write its id maps
    // while it waits. See `spawn_sharing_memory` for what the child may do.
    let stack = ChildStack::new()?;
    // SAFETY: `child_entry` only runs `child_main`, which makes system calls on
    // `plan` and its own stack; `plan` and `stack` outlive the child's use of
    // our memory (it ends at exec or exit, which `read_child_error` or the
    // guard's reap waits for, and both are dropped after them).
    let pid = unsafe { spawn_sharing_memory(&stack, flags, child_entry, &plan as *const ChildPlan as *mut libc::c_void) };
    if pid < 0 {
        let error = io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EINVAL) | Some(libc::ENOSPC) | Some(libc::EUSERS) => {
                BuildError::NamespacesUnavailable(error)
            }
            _ => BuildError::Sandbox { step: "cloning the builder process".to_string(), source: error },
        });
    }
    let pid = pid as libc::pid_t;
    let child = ChildGuard { pid, reaped: false, process_group: false };

    // The parent's copies of the child's ends.
    drop(sync_read);
    drop(error_write);
    drop(stdin);
    let Pty { master, slave } = pty;
    drop(slave);

    write_id_maps(pid, build_user)?;
    write_all_fd(sync_write.as_raw_fd(), b"x")
        .map_err(|e| BuildError::Sandbox { step: "releasing the child".to_string(), source: e })?;
    drop(sync_write);
    if let Some((step, errno)) = read_child_error(error_read.as_raw_fd()) {
        let source = io::Error::from_raw_os_error(errno);
        let mut child = child;
        child.reap();
        if step == Step::Exec as u32 {
            return Err(BuildError::Exec { builder: request.builder.clone(), source });
        }
        let step = if step >= Step::Hostname as u32 {
            STEP_NAMES.get((step - Step::Hostname as u32) as usize).map_or("setup", |name| name).to_string()
        } else {
            plan.ops.get(step as usize).map_or_else(|| "setup".to_string(), MountOp::describe)
        };
        return Err(BuildError::Sandbox { step, source });
    }

    let started = Instant::now();
    let (status, log_size) = monitor(child, master, request, log, started)?;
    Ok(BuildOutcome {
        status,
        duration: started.elapsed(),
        log_size,
        outputs: request.outputs.clone(),
        chroot_store_dir,
        real_store_dir: request.real_store_dir.clone(),
        cleanup,
    })
}

/// `sandbox = false`: fork, switch to the build user if it is not us, and exec
/// in the host's world.
fn run_unsandboxed(
    request: &BuildRequest,
    log: &mut dyn Write,
    build_user: BuildUser,
    current: BuildUser,
    environment: &crate::env::BuilderEnvironment,
    build_dir: PathBuf,
    cleanup: Cleanup,
) -> Result<BuildOutcome, BuildError> {
    if request.real_store_dir != request.store_dir {
        return Err(BuildError::InvalidRequest(format!(
            "building without a sandbox needs the store at its logical location {}, not at {}",
            request.store_dir.display(),
            request.real_store_dir.display()
        )));
    }
    for (name, contents) in &environment.files {
        let path = build_dir.join(name);
        fs::write(&path, contents).map_err(|e| BuildError::io("writing", &path, e))?;
        chown_if_needed(&path, build_user, current)?;
    }
    chown_if_needed(&build_dir, build_user, current)?;

    let argv: Vec<CString> = std::iter::once(cstring(base_name(&request.builder), "builder")?)
        .chain(request.args.iter().map(|arg| cstring(arg, "builder argument")).collect::<Result<Vec<_>, _>>()?)
        .collect();
    let envp: Vec<CString> = environment
        .vars
        .iter()
        .map(|(name, value)| cstring(format!("{name}={value}"), "environment variable"))
        .collect::<Result<_, _>>()?;
    let pty = Pty::open()?;
    let stdin = open_dev_null()?;
    let (error_read, error_write) = pipe()?;
    let mut plan = UnsandboxedPlan {
        switch_to: (build_user != current).then_some(build_user),
        build_dir: path_cstring(&build_dir)?,
        builder: cstring(&request.builder, "builder")?,
        argv_pointers: Vec::new(),
        argv,
        envp_pointers: Vec::new(),
        envp,
        seccomp_filter: request.filter_syscalls.then(crate::seccomp::filter),
        no_new_privileges: request.filter_syscalls && !request.allow_new_privileges,
        linux32: request.system == "i686-linux" && cfg!(target_arch = "x86_64"),
        error_write: error_write.as_raw_fd(),
        stdin_fd: stdin.as_raw_fd(),
        log_fd: pty.slave.as_raw_fd(),
    };
    plan.argv_pointers = plan.argv.iter().map(|arg| arg.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    plan.envp_pointers = plan.envp.iter().map(|var| var.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();

    // As in `run_build`, the child shares our memory; here nothing needs to
    // happen between clone and exec on our side, so this thread also waits
    // for the exec (CLONE_VFORK), as posix_spawn does.
    let stack = ChildStack::new()?;
    // SAFETY: the child only runs `unsandboxed_child_main` on `plan` and its
    // own stack, and this thread is suspended until it has exec'd or exited.
    let pid = unsafe {
        spawn_sharing_memory(
            &stack,
            libc::CLONE_VFORK,
            unsandboxed_child_entry,
            &plan as *const UnsandboxedPlan as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(BuildError::Sandbox {
            step: "forking the builder".to_string(),
            source: io::Error::last_os_error(),
        });
    }
    let child = ChildGuard { pid: pid as libc::pid_t, reaped: false, process_group: true };
    drop(error_write);
    drop(stdin);
    let Pty { master, slave } = pty;
    drop(slave);
    if let Some((step, errno)) = read_child_error(error_read.as_raw_fd()) {
        let source = io::Error::from_raw_os_error(errno);
        let mut child = child;
        child.reap();
        if step == Step::Exec as u32 {
            return Err(BuildError::Exec { builder: request.builder.clone(), source });
        }
        let step = STEP_NAMES.get(step.wrapping_sub(Step::Hostname as u32) as usize).map_or("setup", |name| name);
        return Err(BuildError::Sandbox { step: step.to_string(), source });
    }
    let started = Instant::now();
    let (status, log_size) = monitor(child, master, request, log, started)?;
    Ok(BuildOutcome {
        status,
        duration: started.elapsed(),
        log_size,
        outputs: request.outputs.clone(),
        chroot_store_dir: request.real_store_dir.clone(),
        real_store_dir: request.real_store_dir.clone(),
        cleanup,
    })
}

struct UnsandboxedPlan {
    switch_to: Option<BuildUser>,
    build_dir: CString,
    builder: CString,
    argv: Vec<CString>,
    argv_pointers: Vec<*const libc::c_char>,
    envp: Vec<CString>,
    envp_pointers: Vec<*const libc::c_char>,
    seccomp_filter: Option<Vec<crate::seccomp::Instruction>>,
    no_new_privileges: bool,
    linux32: bool,
    error_write: RawFd,
    stdin_fd: RawFd,
    log_fd: RawFd,
}

/// The unsandboxed child between fork and exec; same rules as `child_main`.
///
/// # Safety
/// Must only be called in the forked child, with `plan` fully prepared.
unsafe fn unsandboxed_child_main(plan: &UnsandboxedPlan) -> ! {
    unsafe {
        let fail = |step: Step| -> ! { child_fail(plan.error_write, step as u32) };
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        if let Some(user) = plan.switch_to {
            if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0 {
                fail(Step::Setgid);
            }
            if libc::syscall(libc::SYS_setgid, user.gid as libc::c_long) != 0 {
                fail(Step::Setgid);
            }
            if libc::syscall(libc::SYS_setuid, user.uid as libc::c_long) != 0 {
                fail(Step::Setuid);
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        }
        if libc::chdir(plan.build_dir.as_ptr()) != 0 {
            fail(Step::ChdirBuild);
        }
        finish_child_and_exec(
            plan.error_write,
            plan.linux32,
            plan.no_new_privileges,
            plan.seccomp_filter.as_deref(),
            plan.stdin_fd,
            plan.log_fd,
            &plan.builder,
            &plan.argv_pointers,
            &plan.envp_pointers,
        )
    }
}

fn validate(request: &BuildRequest) -> Result<(), BuildError> {
    for (what, path) in [
        ("store_dir", &request.store_dir),
        ("real_store_dir", &request.real_store_dir),
        ("tmp_root", &request.tmp_root),
        ("sandbox_build_dir", &request.sandbox_build_dir),
    ] {
        if !path.is_absolute() {
            return Err(BuildError::InvalidRequest(format!("{what} '{}' is not absolute", path.display())));
        }
    }
    let store_prefix = format!("{}/", request.store_dir.display());
    for path in request.input_paths.iter().chain(request.outputs.values()).chain(std::iter::once(&request.drv_path)) {
        let Some(base) = path.strip_prefix(&store_prefix) else {
            return Err(BuildError::InvalidRequest(format!(
                "'{path}' is not in the store directory {}",
                request.store_dir.display()
            )));
        };
        if base.is_empty() || base.contains('/') || base == "." || base == ".." {
            return Err(BuildError::InvalidRequest(format!("'{path}' is not a store path")));
        }
    }
    Ok(())
}

/// `<tmp_root>/nix-build-<name>.drv-<n>` with the first free `n`, mode 0700.
fn create_build_dir(tmp_root: &Path, drv_name: &str) -> Result<PathBuf, BuildError> {
    for counter in 0.. {
        let path = tmp_root.join(format!("nix-build-{drv_name}-{counter}"));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(BuildError::io("creating build directory", &path, e)),
        }
    }
    unreachable!("an unbounded counter always finds a free name or fails")
}

fn chown_if_needed(path: &Path, build_user: BuildUser, current: BuildUser) -> Result<(), BuildError> {
    if build_user != current {
        std::os::unix::fs::lchown(path, Some(build_user.uid), Some(build_user.gid))
            .map_err(|e| BuildError::io("changing ownership of", path, e))?;
    }
    Ok(())
}

/// What decides the shape of a chroot's skeleton (everything but `/tmp` and
/// the store directory), or `None` when a skeleton must not be reused
/// because a mount point of its own lies in a per-build part.
fn skeleton_key(request: &BuildRequest, build_user: BuildUser, current: BuildUser) -> Option<String> {
    let per_build = |target: &Path| target.starts_with("/tmp") || target.starts_with(&request.store_dir);
    if per_build(&request.sandbox_build_dir) || request.sandbox_paths.iter().any(|p| per_build(&p.target)) {
        return None;
    }
    Some(format!(
        "{}|{}|{}|{}|{}|{}|{}|{:?}|{:?}",
        request.real_store_dir.display(),
        request.store_dir.display(),
        request.sandbox_build_dir.display(),
        request.fixed_output,
        request.kvm,
        build_user.uid,
        build_user.gid,
        current,
        request.sandbox_paths,
    ))
}

/// Creates the chroot tree and returns the mounts the child must perform.
/// With `fresh` false the chroot is a reused skeleton (see [`ChrootReuse`]):
/// `/tmp` and the store directory get their modes (and owners) back, the
/// store directory loses the mount points this build does not use, and
/// mount points are created only where missing.
fn prepare_chroot(
    request: &BuildRequest,
    chroot_root: &Path,
    build_dir: &Path,
    build_user: BuildUser,
    current: BuildUser,
    fresh: bool,
) -> Result<Vec<MountOp>, BuildError> {
    let mkdir = |path: &Path, mode: u32| -> Result<(), BuildError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| BuildError::io("creating directory", path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| BuildError::io("changing mode of", path, e))
    };
    // Parts of the skeleton: made only in a fresh chroot.
    let skeleton_dir = |path: &Path, mode: u32| if fresh { mkdir(path, mode) } else { Ok(()) };
    let write_file = |path: &Path, contents: &str| -> Result<(), BuildError> {
        if !fresh {
            return Ok(());
        }
        fs::write(path, contents).map_err(|e| BuildError::io("writing", path, e))
    };
    let make_symlink = |target: &str, link: &Path| -> Result<(), BuildError> {
        if !fresh {
            return Ok(());
        }
        symlink(target, link).map_err(|e| BuildError::io("creating symlink", link, e))
    };

    if fresh {
        fs::DirBuilder::new()
            .mode(0o750)
            .create(chroot_root)
            .map_err(|e| BuildError::io("creating directory", chroot_root, e))?;
        if build_user != current {
            // The builder's group must be able to enter the chroot root (0750).
            std::os::unix::fs::lchown(chroot_root, Some(current.uid), Some(build_user.gid))
                .map_err(|e| BuildError::io("changing ownership of", chroot_root, e))?;
        }
    }
    // A writable /tmp: many builders need one even though they should use $TMPDIR.
    mkdir(&chroot_root.join("tmp"), 0o1777)?;
    let mut ops = Vec::new();
    if build_user == current {
        // `/` will be read-only; /tmp stays writable as a mount of its own.
        let tmp = path_cstring(&chroot_root.join("tmp"))?;
        ops.push(MountOp::Bind { source: tmp.clone(), target: tmp, read_only: false });
    }

    let etc = chroot_root.join("etc");
    skeleton_dir(&etc, 0o755)?;
    let build_top = request.sandbox_build_dir.display();
    write_file(
        &etc.join("passwd"),
        &format!(
            "root:x:0:0:Nix build user:{build_top}:/noshell\n\
             nixbld:x:{SANDBOX_UID}:{SANDBOX_GID}:Nix build user:{build_top}:/noshell\n\
             nobody:x:65534:65534:Nobody:/:/noshell\n"
        ),
    )?;
    write_file(&etc.join("group"), &format!("root:x:0:\nnixbld:!:{SANDBOX_GID}:\nnogroup:x:65534:\n"))?;

    // Target (inside the sandbox) to (host source, read-only). Sorted, so a
    // parent directory is mounted before anything below it. The input closure
    // is mounted first, then the rest: the order CppNix 2.8's mount table shows.
    let mut input_binds: BTreeMap<PathBuf, (PathBuf, bool)> = BTreeMap::new();
    let mut binds: BTreeMap<PathBuf, (PathBuf, bool)> = BTreeMap::new();
    if request.fixed_output {
        // Fixed-output derivations may use the network: give them name
        // resolution, restricted to files and DNS.
        write_file(&etc.join("nsswitch.conf"), "hosts: files dns\nservices: files\n")?;
        for path in ["/etc/resolv.conf", "/etc/services", "/etc/hosts"] {
            if Path::new(path).exists() {
                binds.insert(PathBuf::from(path), (PathBuf::from(path), false));
            }
        }
    } else {
        write_file(&etc.join("hosts"), "127.0.0.1 localhost\n::1 localhost\n")?;
    }

    // The store: writable by the builder (outputs are created here), sticky.
    let chroot_store_dir = in_chroot(chroot_root, &request.store_dir);
    mkdir(&chroot_store_dir, 0o1775)?;
    if build_user != current {
        std::os::unix::fs::lchown(&chroot_store_dir, Some(current.uid), Some(build_user.gid))
            .map_err(|e| BuildError::io("changing ownership of", &chroot_store_dir, e))?;
    }
    let mut symlink_inputs = Vec::new();
    for input in &request.input_paths {
        let base = base_name(input);
        let source = request.real_store_dir.join(base);
        let metadata =
            fs::symlink_metadata(&source).map_err(|e| BuildError::io("getting status of input", &source, e))?;
        if metadata.file_type().is_symlink() {
            symlink_inputs.push((base, source));
        } else {
            input_binds.insert(request.store_dir.join(base), (source, true));
        }
    }
    if !fresh {
        // The previous build's mount points that this one does not mount on.
        for entry in fs::read_dir(&chroot_store_dir).map_err(|e| BuildError::io("reading directory", &chroot_store_dir, e))? {
            let entry = entry.map_err(|e| BuildError::io("reading directory", &chroot_store_dir, e))?;
            if !input_binds.contains_key(&request.store_dir.join(entry.file_name())) {
                remove_tree(&entry.path())?;
            }
        }
    }
    for (base, source) in symlink_inputs {
        // A symlink store path is immutable and cannot be bind-mounted (mount
        // follows it): a copy behaves the same.
        let target = fs::read_link(&source).map_err(|e| BuildError::io("reading symlink", &source, e))?;
        let link = chroot_store_dir.join(base);
        symlink(&target, &link).map_err(|e| BuildError::io("creating symlink", &link, e))?;
    }

    binds.insert(request.sandbox_build_dir.clone(), (build_dir.to_path_buf(), false));

    let dev = chroot_root.join("dev");
    skeleton_dir(&dev, 0o755)?;
    let mut devices = vec!["/dev/full", "/dev/null", "/dev/random", "/dev/tty", "/dev/urandom", "/dev/zero"];
    if request.kvm && Path::new("/dev/kvm").exists() {
        devices.push("/dev/kvm");
    }
    for device in devices {
        binds.insert(PathBuf::from(device), (PathBuf::from(device), false));
    }
    make_symlink("/proc/self/fd", &dev.join("fd"))?;
    make_symlink("/proc/self/fd/0", &dev.join("stdin"))?;
    make_symlink("/proc/self/fd/1", &dev.join("stdout"))?;
    make_symlink("/proc/self/fd/2", &dev.join("stderr"))?;

    for sandbox_path in &request.sandbox_paths {
        if !sandbox_path.source.exists() {
            if sandbox_path.optional {
                continue;
            }
            return Err(BuildError::MissingSandboxPath(sandbox_path.source.clone()));
        }
        binds.insert(sandbox_path.target.clone(), (sandbox_path.source.clone(), false));
    }

    for (target, (source, read_only)) in input_binds.iter().chain(&binds) {
        let host_target = in_chroot(chroot_root, target);
        let is_dir = fs::metadata(source).map_err(|e| BuildError::io("getting status of", source, e))?.is_dir();
        if is_dir {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&host_target)
                .map_err(|e| BuildError::io("creating directory", &host_target, e))?;
        } else {
            if let Some(parent) = host_target.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| BuildError::io("creating directory", parent, e))?;
            }
            if fs::symlink_metadata(&host_target).is_err() {
                fs::File::create(&host_target).map_err(|e| BuildError::io("creating mount point", &host_target, e))?;
            }
        }
        ops.push(MountOp::Bind {
            source: path_cstring(source)?,
            target: path_cstring(&host_target)?,
            read_only: *read_only,
        });
    }

    let proc_dir = chroot_root.join("proc");
    skeleton_dir(&proc_dir, 0o555)?;
    ops.push(MountOp::Proc { target: path_cstring(&proc_dir)? });
    if Path::new("/dev/shm").exists() {
        let shm = dev.join("shm");
        skeleton_dir(&shm, 0o755)?;
        ops.push(MountOp::Tmpfs {
            target: path_cstring(&shm)?,
            data: cstring(format!("size={}", request.dev_shm_size), "dev-shm-size")?,
        });
    }
    if Path::new("/dev/pts/ptmx").exists() && !binds.contains_key(Path::new("/dev/pts")) {
        let pts = dev.join("pts");
        skeleton_dir(&pts, 0o755)?;
        make_symlink("/dev/pts/ptmx", &dev.join("ptmx"))?;
        ops.push(MountOp::Devpts {
            target: path_cstring(&pts)?,
            ptmx: path_cstring(&pts.join("ptmx"))?,
            host_pts: cstring("/dev/pts", "path")?,
        });
    }
    Ok(ops)
}

/// The sandbox uid 1000 and gid 100 map to the build user's host ids; nothing
/// else is mapped (files of other owners appear as nobody/nogroup).
fn write_id_maps(pid: libc::pid_t, build_user: BuildUser) -> Result<(), BuildError> {
    let write = |file: &str, contents: String| -> Result<(), BuildError> {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, contents).map_err(|e| BuildError::Sandbox { step: format!("writing {path}"), source: e })
    };
    write("setgroups", "deny".to_string())?;
    write("uid_map", format!("{SANDBOX_UID} {} 1", build_user.uid))?;
    write("gid_map", format!("{SANDBOX_GID} {} 1", build_user.gid))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), BuildError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(BuildError::Sandbox { step: "creating a pipe".to_string(), source: io::Error::last_os_error() });
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

fn open_dev_null() -> Result<OwnedFd, BuildError> {
    let file = fs::File::open("/dev/null").map_err(|e| BuildError::io("opening", "/dev/null", e))?;
    Ok(file.into())
}

fn write_all_fd(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writing from a live slice to a descriptor we own.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

/// Reads the child's (step, errno) report; `None` when the pipe closed without
/// one, which means the builder was executed.
fn read_child_error(fd: RawFd) -> Option<(u32, i32)> {
    let mut buffer = [0u8; 8];
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: reading into the unfilled part of a local buffer.
        let got = unsafe { libc::read(fd, buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled) };
        if got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if got <= 0 {
            break;
        }
        filled += got as usize;
    }
    (filled == buffer.len()).then(|| {
        (
            u32::from_le_bytes(buffer[..4].try_into().expect("four bytes")),
            i32::from_le_bytes(buffer[4..].try_into().expect("four bytes")),
        )
    })
}

/// A pseudo-terminal for the builder's output.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Result<Pty, BuildError> {
        let error = |step: &str| BuildError::Sandbox { step: step.to_string(), source: io::Error::last_os_error() };
        // SAFETY: plain libc calls on descriptors this function owns; ptsname_r
        // writes a NUL-terminated name into our buffer.
        unsafe {
            let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if master < 0 {
                return Err(error("opening a pseudo-terminal"));
            }
            let master = OwnedFd::from_raw_fd(master);
            if libc::grantpt(master.as_raw_fd()) != 0 || libc::unlockpt(master.as_raw_fd()) != 0 {
                return Err(error("unlocking the pseudo-terminal"));
            }
            let mut name = [0 as libc::c_char; 128];
            if libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) != 0 {
                return Err(error("naming the pseudo-terminal"));
            }
            let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if slave < 0 {
                return Err(error("opening the pseudo-terminal's slave"));
            }
            let slave = OwnedFd::from_raw_fd(slave);
            // Raw mode: no "\n" to "\r\n" translation, no echo.
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(slave.as_raw_fd(), &mut term) != 0 {
                return Err(error("reading the pseudo-terminal's attributes"));
            }
            libc::cfmakeraw(&mut term);
            if libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &term) != 0 {
                return Err(error("putting the pseudo-terminal into raw mode"));
            }
            Ok(Pty { master, slave })
        }
    }
}

/// Kills (the whole pid namespace of) the child and reaps it if the build is
/// abandoned on an error path.
struct ChildGuard {
    pid: libc::pid_t,
    reaped: bool,
    /// Unsandboxed: there is no pid namespace to take everything down with
    /// the builder, so its whole process group (its session) is killed.
    process_group: bool,
}

impl ChildGuard {
    fn kill(&self) {
        // SAFETY: the pid is our unreaped child, so it (and, while it lives,
        // its process group) cannot have been reused.
        unsafe {
            if self.process_group {
                libc::kill(-self.pid, libc::SIGKILL);
            }
            libc::kill(self.pid, libc::SIGKILL);
        }
    }

    /// Waits for the child and returns its wait status.
    fn reap(&mut self) -> i32 {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child into a local.
            let result = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if result == self.pid {
                break;
            }
            if result < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        self.reaped = true;
        status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            self.reap();
        }
    }
}

fn monitor(
    mut child: ChildGuard,
    master: OwnedFd,
    request: &BuildRequest,
    log: &mut dyn Write,
    started: Instant,
) -> Result<(BuildStatus, u64), BuildError> {
    // SAFETY: pidfd_open on our own unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.pid, 0) };
    let pidfd = if pidfd >= 0 {
        // SAFETY: a fresh descriptor owned by nobody else.
        Some(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) })
    } else {
        None
    };
    let mut buffer = vec![0u8; 64 * 1024];
    let mut log_size = 0u64;
    let mut last_output = Instant::now();
    let mut killed_because: Option<BuildStatus> = None;
    let mut output_open = true;
    let mut exited = false;
    let mut exited_at: Option<Instant> = None;
    let kill_for = |child: &ChildGuard, reason: BuildStatus, killed_because: &mut Option<BuildStatus>| {
        if killed_because.is_none() {
            *killed_because = Some(reason);
        }
        child.kill();
    };

    while output_open || !exited {
        let now = Instant::now();
        let mut wait = Duration::from_secs(3600);
        if killed_because.is_none() {
            if let Some(timeout) = request.timeout {
                let deadline = started + timeout;
                if now >= deadline {
                    kill_for(&child, BuildStatus::TimedOut(timeout), &mut killed_because);
                } else {
                    wait = wait.min(deadline - now);
                }
            }
            if let Some(silence) = request.max_silent_time {
                let deadline = last_output + silence;
                if now >= deadline {
                    kill_for(&child, BuildStatus::SilentTooLong(silence), &mut killed_because);
                } else {
                    wait = wait.min(deadline - now);
                }
            }
        }
        if pidfd.is_none() && !exited {
            // Without pidfds (Linux < 5.3), poll for the child's exit.
            wait = wait.min(Duration::from_millis(50));
        }
        if exited {
            // The namespace is gone, so the pty's slave side is closing; do not
            // wait forever for data that cannot come.
            let since_exit = exited_at.map_or(Duration::ZERO, |at| at.elapsed());
            if since_exit > Duration::from_secs(2) {
                break;
            }
            wait = wait.min(Duration::from_millis(100));
        }

        let mut fds = [
            libc::pollfd { fd: if output_open { master.as_raw_fd() } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd {
                fd: match (&pidfd, exited) {
                    (Some(fd), false) => fd.as_raw_fd(),
                    _ => -1,
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout_ms = wait.as_millis().min(i32::MAX as u128) as i32 + 1;
        // SAFETY: polling a local array of two pollfds.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(BuildError::Monitor(error));
        }

        if fds[0].revents != 0 {
            // SAFETY: reading into our buffer from the pty master we own.
            let got = unsafe { libc::read(master.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if got > 0 {
                let chunk = &buffer[..got as usize];
                last_output = Instant::now();
                log_size += chunk.len() as u64;
                if let Err(error) = log.write_all(chunk) {
                    return Err(BuildError::Monitor(error));
                }
                if let Some(limit) = request.max_log_size
                    && log_size > limit
                {
                    kill_for(&child, BuildStatus::LogLimitExceeded(limit), &mut killed_because);
                }
            } else {
                let error = io::Error::last_os_error();
                if got < 0 && matches!(error.kind(), io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock) {
                    continue;
                }
                // EIO: every slave descriptor is closed.
                output_open = false;
            }
        }

        if !exited {
            let pid_ready = fds[1].revents != 0;
            if pid_ready || pidfd.is_none() {
                // SAFETY: non-blocking check on our own child. We only peek
                // (WNOWAIT) so the final reap below gets the status.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                let result = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        child.pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
                    )
                };
                // SAFETY: si_pid is valid for a waitid result.
                if result == 0 && unsafe { info.si_pid() } == child.pid {
                    exited = true;
                    exited_at = Some(Instant::now());
                    if child.process_group {
                        // What the builder left running in its session goes
                        // too (the kernel does this for a pid namespace). The
                        // child is not reaped yet, so its group id is still ours.
                        // SAFETY: signalling our own unreaped child's group.
                        unsafe { libc::kill(-child.pid, libc::SIGKILL) };
                    }
                }
            }
        }
    }
    let _ = log.flush();
    let status = child.reap();
    let status = match killed_because {
        Some(reason) => reason,
        None if libc::WIFEXITED(status) => BuildStatus::Exited(libc::WEXITSTATUS(status)),
        None if libc::WIFSIGNALED(status) => BuildStatus::Signaled(libc::WTERMSIG(status)),
        None => BuildStatus::Exited(-1),
    };
    Ok((status, log_size))
}

/// The stack of a child that shares our memory until it execs (the child
/// cannot use the stack of the thread that cloned it, which goes on running).
/// A guard page below it turns an overflow into a crash of the child alone.
struct ChildStack {
    base: *mut libc::c_void,
    size: usize,
}

impl ChildStack {
    /// The child runs a few frames of system calls; 256 KiB is generous, and
    /// only the pages it touches are ever allocated.
    const SIZE: usize = 256 * 1024;
    const GUARD: usize = 4096;

    fn new() -> Result<ChildStack, BuildError> {
        let size = Self::SIZE + Self::GUARD;
        // SAFETY: an anonymous private mapping owned by the returned value.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(BuildError::Sandbox {
                step: "allocating the child's stack".to_string(),
                source: io::Error::last_os_error(),
            });
        }
        let stack = ChildStack { base, size };
        // SAFETY: the lowest page of our own mapping.
        if unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) } != 0 {
            return Err(BuildError::Sandbox {
                step: "protecting the child's stack".to_string(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(stack)
    }

    /// The initial stack pointer (stacks grow down on every Linux target we build for).
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our mapping, 16-byte aligned (page aligned).
        unsafe { self.base.cast::<u8>().add(self.size).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping this value owns; the child has exec'd or
        // exited by now (see `spawn_sharing_memory`).
        unsafe { libc::munmap(self.base, self.size) };
    }
}

/// `clone(CLONE_VM | extra_flags | SIGCHLD)` running `entry(argument)` on
/// `stack`: a child that shares this process's memory (no page tables to copy,
/// no copy-on-write faults afterwards), as `vfork` and `posix_spawn` make.
/// Returns the child's pid, or -1 with errno set.
///
/// What the child may do until it execs or exits: only system calls on data
/// prepared beforehand, and writes to its own stack. It must not allocate
/// (the allocator's state is ours, and its thread-local parts are those of the
/// calling thread), lock anything, or return. `read`, `write` and `close` go
/// through `syscall`: glibc's wrappers of those cancellation points flip a
/// flag in the calling thread's descriptor, which the child shares. It also shares the calling
/// thread's thread-local `errno`, so the calling thread must make no failing
/// system call that it then relies on until the child is past exec: here it
/// only writes the id maps, releases the child and blocks reading the error
/// pipe (an error in those ends the child anyway).
///
/// # Safety
/// `argument` must stay valid, and `stack` mapped, until the child has
/// exec'd or exited: EOF on a close-on-exec pipe whose write end only the
/// child holds, or reaping it, proves that (a process's memory is released
/// before its descriptors are closed).
unsafe fn spawn_sharing_memory(
    stack: &ChildStack,
    extra_flags: libc::c_int,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    argument: *mut libc::c_void,
) -> libc::c_long {
    // SAFETY: see above; glibc's clone switches to `stack` before calling `entry`.
    unsafe { libc::clone(entry, stack.top(), libc::CLONE_VM | extra_flags | libc::SIGCHLD, argument) as libc::c_long }
}

extern "C" fn child_entry(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `run_build` passes its `ChildPlan`, alive until we exec or exit.
    unsafe { child_main(&*(plan as *const ChildPlan)) }
}

extern "C" fn unsandboxed_child_entry(plan: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `run_unsandboxed` passes its `UnsandboxedPlan`, alive until we exec or exit.
    unsafe { unsandboxed_child_main(&*(plan as *const UnsandboxedPlan)) }
}

/// The child between clone and exec. It never returns and never allocates.
///
/// # Safety
/// Must only be called in the child of `clone`, with `plan` fully prepared.
unsafe fn child_main(plan: &ChildPlan) -> ! {
    unsafe {
        let fail = |step: u32| -> ! { child_fail(plan.error_write, step) };
        let check = |result: libc::c_int, step: Step| {
            if result != 0 {
                fail(step as u32);
            }
        };

        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        // Wait until the parent has written our uid/gid maps.
        let mut byte = 0u8;
        if libc::syscall(libc::SYS_read, plan.sync_read as libc::c_long, &mut byte as *mut u8, 1usize) != 1 {
            libc::_exit(1);
        }

        check(libc::sethostname(c"localhost".as_ptr(), 9), Step::Hostname);
        check(libc::setdomainname(c"(none)".as_ptr(), 6), Step::Domainname);
        if plan.private_network {
            bring_up_loopback(plan.error_write);
        }

        check(
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_PRIVATE | libc::MS_REC,
                std::ptr::null(),
            ),
            Step::MakePrivate,
        );
        // pivot_root needs the new root to be a mount point.
        check(
            libc::mount(
                plan.chroot_root.as_ptr(),
                plan.chroot_root.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ),
            Step::BindRoot,
        );
        // The store is a mount of its own, as in CppNix (which needs that to add
        // paths to a running sandbox); the builder sees the same mount table.
        check(
            libc::mount(
                plan.chroot_store_dir.as_ptr(),
                plan.chroot_store_dir.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ),
            Step::BindStore,
        );
        for (index, op) in plan.ops.iter().enumerate() {
            let step = index as u32;
            match op {
                MountOp::Bind { source, target, read_only } => {
                    if libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ) != 0
                    {
                        fail(step);
                    }
                    if *read_only {
                        remount_read_only(target, step, plan.error_write);
                    }
                }
                MountOp::Proc { target } => {
                    if libc::mount(c"none".as_ptr(), target.as_ptr(), c"proc".as_ptr(), 0, std::ptr::null()) != 0 {
                        fail(step);
                    }
                }
                MountOp::Tmpfs { target, data } => {
                    if libc::mount(c"none".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, data.as_ptr().cast()) != 0 {
                        fail(step);
                    }
                }
                MountOp::Devpts { target, ptmx, host_pts } => {
                    let data = c"newinstance,mode=0620";
                    if libc::mount(c"none".as_ptr(), target.as_ptr(), c"devpts".as_ptr(), 0, data.as_ptr().cast()) == 0
                    {
                        // Some kernels create ptmx with mode 0; where the
                        // namespace may not change it the default stays.
                        libc::chmod(ptmx.as_ptr(), 0o666);
                    } else if *libc::__errno_location() == libc::EINVAL {
                        if libc::mount(
                            host_pts.as_ptr(),
                            target.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ) != 0
                        {
                            fail(step);
                        }
                    } else {
                        fail(step);
                    }
                }
            }
        }

        // pivot_root(".", ".") stacks the old root on the new one, and
        // unmounting "." then takes it away (pivot_root(2)): no directory to
        // create in the chroot and remove again for the old root.
        check(libc::chdir(plan.chroot_root.as_ptr()), Step::ChdirRoot);
        if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
            fail(Step::PivotRoot as u32);
        }
        check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH), Step::UnmountOldRoot);
        check(libc::chroot(c".".as_ptr()), Step::ChrootDot);
        if plan.read_only_root {
            remount_read_only(c"/", Step::ReadOnlyRoot as u32, plan.error_write);
        }
        check(libc::chdir(plan.build_dir_in_sandbox.as_ptr()), Step::ChdirBuild);

        // Drop to the build user inside the namespace; as it is not uid 0, the
        // capabilities we had for setting up are gone after exec. Raw system
        // calls: glibc's wrappers would try to change the credentials of every
        // thread it believes exists, and the threads of the parent it still
        // knows about are not here to answer (a hang).
        if libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) != 0
            && *libc::__errno_location() != libc::EPERM
        {
            fail(Step::Setgid as u32);
        }
        if libc::syscall(libc::SYS_setgid, SANDBOX_GID as libc::c_long) != 0 {
            fail(Step::Setgid as u32);
        }
        if libc::syscall(libc::SYS_setuid, SANDBOX_UID as libc::c_long) != 0 {
            fail(Step::Setuid as u32);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);

        finish_child_and_exec(
            plan.error_write,
            plan.linux32,
            plan.no_new_privileges,
            plan.seccomp_filter.as_deref(),
            plan.stdin_fd,
            plan.log_fd,
            &plan.builder,
            &plan.argv_pointers,
            &plan.envp_pointers,
        )
    }
}

/// The common end of both children: resource limits, umask, personality,
/// session, system-call filter, stdio, exec.
///
/// # Safety
/// Only in a child between fork/clone and exec; the pointers are
/// NUL-terminated arrays prepared by the parent.
#[allow(clippy::too_many_arguments)]
unsafe fn finish_child_and_exec(
    error_write: RawFd,
    linux32: bool,
    no_new_privileges: bool,
    seccomp_filter: Option<&[crate::seccomp::Instruction]>,
    stdin_fd: RawFd,
    log_fd: RawFd,
    builder: &CStr,
    argv_pointers: &[*const libc::c_char],
    envp_pointers: &[*const libc::c_char],
) -> ! {
    let fail = |step: u32| -> ! { child_fail(error_write, step) };
    unsafe {
        // No core dumps (CppNix's default `enable-core-dumps = false`).
        let no_core = libc::rlimit { rlim_cur: 0, rlim_max: libc::RLIM_INFINITY };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::umask(0o022);
        // Address-space randomisation off for more deterministic builds, and
        // 32-bit `uname` for 32-bit builds, as CppNix does.
        let current = libc::personality(0xffff_ffff);
        if current != -1 {
            let mut persona = (current | libc::ADDR_NO_RANDOMIZE) as libc::c_ulong;
            if linux32 {
                persona = (persona & !0xff) | PER_LINUX32;
            }
            if libc::personality(persona) == -1 {
                fail(Step::Personality as u32);
            }
        }
        if libc::setsid() < 0 {
            fail(Step::Setsid as u32);
        }
        if no_new_privileges && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
            fail(Step::Seccomp as u32);
        }
        if let Some(filter) = seccomp_filter {
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &program as *const libc::sock_fprog,
            ) != 0
            {
                fail(Step::Seccomp as u32);
            }
        }
        if libc::dup2(stdin_fd, 0) < 0 || libc::dup2(log_fd, 1) < 0 || libc::dup2(log_fd, 2) < 0 {
            fail(Step::Stdio as u32);
        }
        // Nothing of the parent's leaks into the builder, whatever other threads
        // opened without O_CLOEXEC. Best effort: close_range is Linux 5.11+.
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        libc::execve(builder.as_ptr(), argv_pointers.as_ptr(), envp_pointers.as_ptr());
        fail(Step::Exec as u32)
    }
}

/// `PER_LINUX32` from `<sys/personality.h>`.
const PER_LINUX32: libc::c_ulong = 0x0008;

/// Reports (step, errno) to the parent and exits; the child's only way out
/// besides exec.
fn child_fail(error_fd: RawFd, step: u32) -> ! {
    // SAFETY: reading errno and writing a local array to our own pipe.
    unsafe {
        let errno = *libc::__errno_location();
        let mut report = [0u8; 8];
        report[..4].copy_from_slice(&step.to_le_bytes());
        report[4..].copy_from_slice(&errno.to_le_bytes());
        libc::syscall(libc::SYS_write, error_fd as libc::c_long, report.as_ptr(), report.len());
        libc::_exit(1)
    }
}

/// Remounts a fresh bind mount read-only, keeping the flags the kernel locks
/// for mounts inherited into a user namespace (nosuid, nodev, noexec, atime
/// flags); dropping any of those would make the remount fail with EPERM.
unsafe fn remount_read_only(target: &CStr, step: u32, error_fd: RawFd) {
    let fail = |step: u32| -> ! { child_fail(error_fd, step) };
    unsafe {
        // The raw statfs system call, not glibc's statvfs, which may read
        // /proc/mounts through stdio (and so allocate).
        let mut stat: KernelStatfs = std::mem::zeroed();
        if libc::syscall(libc::SYS_statfs, target.as_ptr(), &mut stat as *mut KernelStatfs) != 0 {
            fail(step);
        }
        let mut flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
        for (statvfs_flag, mount_flag) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if stat.flags as libc::c_ulong & statvfs_flag != 0 {
                flags |= mount_flag;
            }
        }
        if libc::mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
            fail(step);
        }
    }
}

/// The kernel's `struct statfs` on 64-bit Linux, whose `f_flags` libc's
/// binding does not expose.
#[repr(C)]
struct KernelStatfs {
    counts: [i64; 7],
    fsid: [i32; 2],
    name_len: i64,
    fragment_size: i64,
    flags: i64,
    spare: [i64; 4],
}

/// `struct ifreq` with the flags member of its union, as SIOCSIFFLAGS reads it.
#[repr(C)]
struct InterfaceFlagsRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _padding: [u8; 22],
}

unsafe fn bring_up_loopback(error_fd: RawFd) {
    let fail = |step: u32| -> ! { child_fail(error_fd, step) };
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::IPPROTO_IP);
        if socket < 0 {
            fail(Step::Loopback as u32);
        }
        let mut request = InterfaceFlagsRequest { name: [0; libc::IFNAMSIZ], flags: 0, _padding: [0; 22] };
        request.name[..2].copy_from_slice(b"lo");
        request.flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket, libc::SIOCSIFFLAGS, &request) != 0 {
            fail(Step::Loopback as u32);
        }
        libc::syscall(libc::SYS_close, socket as libc::c_long);
    }
}
