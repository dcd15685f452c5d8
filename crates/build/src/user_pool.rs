//! Build users taken from the `build-users-group` setting, as CppNix does when
//! it runs as root: each build runs as a member of that group that no other
//! build is using, with the group's gid. A member is taken by holding an
//! exclusive `flock` on `<state dir>/userpool/<uid>` for the build's duration,
//! the same file and lock CppNix takes, so nivis and CppNix sharing a store
//! never hand one uid to two builds. `flock` locks belong to the open file
//! description, so two builds in this process exclude each other too.
//!
//! Members are the group's member list in the group database (`/etc/group`),
//! not the users whose primary group it is, as in CppNix.

use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{BuildError, BuildUser};

/// The members of a build users group and where their locks live.
#[derive(Debug)]
pub struct UserPool {
    group: String,
    gid: u32,
    /// The members' uids, in the group's order (CppNix tries them in order).
    uids: Vec<u32>,
    lock_dir: PathBuf,
}

/// A build user taken from a [`UserPool`]; dropping it frees the user.
#[derive(Debug)]
pub struct UserLock {
    pub user: BuildUser,
    _file: File,
}

impl UserPool {
    /// Resolves `group` and its members; the locks go to
    /// `<state_dir>/userpool`. Errors are CppNix's.
    pub fn open(group: &str, state_dir: &Path) -> Result<UserPool, BuildError> {
        let (gid, members) = lookup_group(group)?.ok_or_else(|| {
            BuildError::BuildUsers(format!("the group '{group}' specified in 'build-users-group' does not exist"))
        })?;
        if members.is_empty() {
            return Err(BuildError::BuildUsers(format!("the build users group '{group}' has no members")));
        }
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let mut uids = Vec::new();
        for member in &members {
            let uid = lookup_user(member)?.ok_or_else(|| {
                BuildError::BuildUsers(format!("the user '{member}' in the group '{group}' does not exist"))
            })?;
            if uid == me {
                return Err(BuildError::BuildUsers(format!("the Nix user should not be a member of '{group}'")));
            }
            uids.push(uid);
        }
        let lock_dir = state_dir.join("userpool");
        fs::create_dir_all(&lock_dir).map_err(|source| BuildError::Io {
            action: "creating directory",
            path: lock_dir.clone(),
            source,
        })?;
        Ok(UserPool { group: group.to_string(), gid, uids, lock_dir })
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Takes a free member, or `None` when every member is in use.
    pub fn try_acquire(&self) -> Result<Option<UserLock>, BuildError> {
        for &uid in &self.uids {
            let path = self.lock_dir.join(uid.to_string());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|source| BuildError::Io { action: "opening lock file", path: path.clone(), source })?;
            // SAFETY: the descriptor is open for the duration of the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(Some(UserLock { user: BuildUser { uid, gid: self.gid }, _file: file }));
            }
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(BuildError::Io { action: "locking", path, source: error });
            }
        }
        Ok(None)
    }

    /// Takes a free member, waiting for one when all are in use (CppNix
    /// waits too). `waiting` is called once, before the first wait.
    pub fn acquire(&self, waiting: impl FnOnce()) -> Result<UserLock, BuildError> {
        let mut waiting = Some(waiting);
        loop {
            if let Some(lock) = self.try_acquire()? {
                return Ok(lock);
            }
            if let Some(announce) = waiting.take() {
                announce();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl UserLock {
    /// Kills every process running as this build user (CppNix's `killUser`,
    /// done before and after each build): a previous unsandboxed builder may
    /// have left some, and they must not see or touch the next build. A child
    /// takes the uid and signals everything it may (`kill(-1)` skips itself).
    pub fn kill_processes(&self) -> Result<(), BuildError> {
        let uid = self.user.uid;
        if uid == 0 {
            return Ok(());
        }
        // SAFETY: between fork and _exit the child only makes raw system
        // calls, which are async-signal-safe (this process has threads).
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(BuildError::Sandbox {
                step: format!("killing the processes of uid {uid}"),
                source: std::io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            unsafe {
                if libc::syscall(libc::SYS_setuid, uid as libc::c_long) != 0 {
                    libc::_exit(1);
                }
                loop {
                    // Success means every such process was signalled (a
                    // repeat could spin on zombies nobody has reaped yet).
                    if libc::kill(-1, libc::SIGKILL) == 0 {
                        libc::_exit(0);
                    }
                    let errno = *libc::__errno_location();
                    if errno == libc::ESRCH || errno == libc::EPERM {
                        libc::_exit(0);
                    }
                    if errno != libc::EINTR {
                        libc::_exit(1);
                    }
                }
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(BuildError::Sandbox { step: format!("killing the processes of uid {uid}"), source: error });
            }
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            return Err(BuildError::Sandbox {
                step: format!("killing the processes of uid {uid}"),
                source: std::io::Error::other("the killing process failed"),
            });
        }
        Ok(())
    }
}

/// Calls a reentrant `get*_r` function with a growing buffer.
fn with_buffer<T>(mut call: impl FnMut(&mut [u8]) -> Result<Option<T>, i32>) -> Result<Option<T>, BuildError> {
    let mut size = 16 * 1024;
    loop {
        let mut buffer = vec![0u8; size];
        match call(&mut buffer) {
            Ok(found) => return Ok(found),
            Err(libc::ERANGE) if size < (1 << 24) => size *= 4,
            Err(code) => {
                return Err(BuildError::Sandbox {
                    step: "reading the user and group databases".to_string(),
                    source: std::io::Error::from_raw_os_error(code),
                });
            }
        }
    }
}

/// The gid and member names of `name`, or `None` when there is no such group.
fn lookup_group(name: &str) -> Result<Option<(u32, Vec<String>)>, BuildError> {
    let Ok(c_name) = CString::new(name) else { return Ok(None) };
    with_buffer(|buffer| {
        // SAFETY: zeroed `group` is a valid out-parameter; the buffer outlives
        // every pointer read below, which point into it.
        unsafe {
            let mut group: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let code =
                libc::getgrnam_r(c_name.as_ptr(), &mut group, buffer.as_mut_ptr().cast(), buffer.len(), &mut result);
            if code != 0 {
                return Err(code);
            }
            if result.is_null() {
                return Ok(None);
            }
            let mut members = Vec::new();
            let mut member = group.gr_mem;
            while !member.is_null() && !(*member).is_null() {
                members.push(CStr::from_ptr(*member).to_string_lossy().into_owned());
                member = member.add(1);
            }
            Ok(Some((group.gr_gid, members)))
        }
    })
}

/// The uid of user `name`, or `None` when there is no such user.
fn lookup_user(name: &str) -> Result<Option<u32>, BuildError> {
    let Ok(c_name) = CString::new(name) else { return Ok(None) };
    with_buffer(|buffer| {
        // SAFETY: as in lookup_group.
        unsafe {
            let mut passwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let code =
                libc::getpwnam_r(c_name.as_ptr(), &mut passwd, buffer.as_mut_ptr().cast(), buffer.len(), &mut result);
            if code != 0 {
                return Err(code);
            }
            Ok(if result.is_null() { None } else { Some(passwd.pw_uid) })
        }
    })
}
