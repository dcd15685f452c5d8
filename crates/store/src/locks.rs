//! CppNix's locking protocol, so that CppNix and nivis can work on one store at once.
//!
//! CppNix 2.8 takes all its own locks with `flock(2)` (not `fcntl`; checked with
//! strace on `nix-store --add`: `flock(fd, LOCK_SH|LOCK_NB)` on `db/big-lock`,
//! `LOCK_EX` on `<storepath>.lock` and `temproots/<pid>`, `LOCK_SH` on `gc.lock`).
//! The `fcntl` locks seen on the database files are SQLite's own.
//!
//! - `db/big-lock`: held shared by every process that has the store open, taken
//!   exclusively only for a schema upgrade.
//! - `<storepath>.lock` (a [`PathLock`]): exclusive while a path is being created.
//!   When released the file is unlinked and a byte is written to it, so a process
//!   that was waiting on the old inode sees a non-empty file, knows the lock is
//!   stale and retries on a fresh file.
//! - `temproots/<pid>` + `gc.lock`: temporary GC roots, see [`TempRoots`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::error::StoreError;

/// Shared or exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockType {
    Read,
    Write,
}

/// Opens (creating if needed, mode 0600) a lock file, as CppNix's `openLockFile`.
pub fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| StoreError::io(format!("opening lock file '{}'", path.display()), e))
}

/// Takes a `flock` on `file`. Returns false if `wait` is false and the lock is held.
pub fn lock_file(file: &File, lock_type: LockType, wait: bool) -> Result<bool, StoreError> {
    let mut op = match lock_type {
        LockType::Read => libc::LOCK_SH,
        LockType::Write => libc::LOCK_EX,
    };
    if !wait {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(StoreError::io("acquiring a lock".to_string(), err)),
        }
    }
}

/// An exclusive lock on `<path>.lock`, CppNix's `PathLocks` for one path.
/// Dropping it deletes the lock file (marking it stale for waiters).
#[derive(Debug)]
pub struct PathLock {
    file: Option<File>,
    lock_path: PathBuf,
}

impl PathLock {
    /// Locks the physical path `path` (its `path.lock` sibling), waiting if
    /// another process holds it. `on_wait` runs once if we have to wait.
    pub fn lock(path: &Path, mut on_wait: impl FnMut()) -> Result<PathLock, StoreError> {
        let mut lock_path = path.as_os_str().to_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        loop {
            let file = open_lock_file(&lock_path)?;
            if !lock_file(&file, LockType::Write, false)? {
                on_wait();
                lock_file(&file, LockType::Write, true)?;
            }
            let metadata = file
                .metadata()
                .map_err(|e| StoreError::io(format!("statting '{}'", lock_path.display()), e))?;
            // A non-empty lock file was unlinked by its previous holder: another
            // process may already hold a fresh one at the same name. Retry.
            if metadata.len() == 0 {
                return Ok(PathLock { file: Some(file), lock_path });
            }
        }
    }
}

impl Drop for PathLock {
    fn drop(&mut self) {
        if let Some(mut file) = self.file.take() {
            // Unlink first, then mark stale; both failures are harmless (the lock
            // file is an optimisation, the flock is released when `file` closes).
            let _ = std::fs::remove_file(&self.lock_path);
            let _ = file.write_all(b"d");
        }
    }
}

/// This process's temporary GC roots: `STATE/temproots/<pid>`, locked
/// exclusively for the process's lifetime, holding NUL-terminated store paths.
/// A path is recorded while holding `gc.lock` shared; if the collector holds it
/// exclusively, the path is sent to the collector's socket instead, as CppNix does.
#[derive(Debug)]
pub struct TempRoots {
    state_dir: PathBuf,
    file: Option<File>,
}

impl TempRoots {
    pub fn new(state_dir: &Path) -> Self {
        TempRoots { state_dir: state_dir.to_path_buf(), file: None }
    }

    fn roots_file(&mut self) -> Result<&mut File, StoreError> {
        if self.file.is_none() {
            let dir = self.state_dir.join("temproots");
            let path = dir.join(std::process::id().to_string());
            let file = loop {
                // A file with our pid must be stale: no two live processes share one.
                let _ = std::fs::remove_file(&path);
                let file = open_lock_file(&path)?;
                lock_file(&file, LockType::Write, true)?;
                let len = file
                    .metadata()
                    .map_err(|e| StoreError::io(format!("statting '{}'", path.display()), e))?
                    .len();
                // The collector deletes stale roots files and writes to them first;
                // if it got ours between open and lock, start again.
                if len == 0 {
                    break file;
                }
            };
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("just set"))
    }

    /// Records `printed_path` (`/nix/store/...`) as a temporary root.
    pub fn add(&mut self, printed_path: &str) -> Result<(), StoreError> {
        let gc_lock = open_lock_file(&self.state_dir.join("gc.lock"))?;
        let roots_path = self.state_dir.join("temproots").join(std::process::id().to_string());
        if !lock_file(&gc_lock, LockType::Read, false)? {
            // The collector is running. CppNix's listens on a socket: tell it
            // directly and wait for its ack. A collector without a socket (nivis's
            // short `--delete`) is waited for instead.
            let socket_path = self.state_dir.join("gc-socket").join("socket");
            match UnixStream::connect(&socket_path) {
                Ok(mut stream) => {
                    stream
                        .write_all(format!("{printed_path}\n").as_bytes())
                        .map_err(|e| StoreError::io("talking to the garbage collector".into(), e))?;
                    let mut ack = [0u8; 1];
                    stream
                        .read_exact(&mut ack)
                        .map_err(|e| StoreError::io("talking to the garbage collector".into(), e))?;
                }
                Err(_) => {
                    lock_file(&gc_lock, LockType::Read, true)?;
                }
            }
        }
        let file = self.roots_file()?;
        let mut record = printed_path.as_bytes().to_vec();
        record.push(0);
        file.write_all(&record)
            .map_err(|e| StoreError::io(format!("writing '{}'", roots_path.display()), e))?;
        drop(gc_lock);
        Ok(())
    }
}

/// The process's one `TempRoots` for `state_dir`, shared by every store opened
/// on it: the roots file is named after the pid, so two owners would delete
/// each other's file. It is removed when the last store using it is dropped.
pub fn shared_temp_roots(state_dir: &Path) -> Arc<Mutex<TempRoots>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<TempRoots>>>>> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| Mutex::new(HashMap::new()));
    let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = registry.get(state_dir).and_then(Weak::upgrade) {
        return existing;
    }
    let roots = Arc::new(Mutex::new(TempRoots::new(state_dir)));
    registry.insert(state_dir.to_path_buf(), Arc::downgrade(&roots));
    roots
}

impl Drop for TempRoots {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let path = self.state_dir.join("temproots").join(std::process::id().to_string());
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_lock_is_exclusive_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("abc-x");
        let lock = PathLock::lock(&target, || {}).unwrap();
        let lock_path = dir.path().join("abc-x.lock");
        assert!(lock_path.exists());
        // A second open file description cannot take the lock while we hold it.
        let other = open_lock_file(&lock_path).unwrap();
        assert!(!lock_file(&other, LockType::Write, false).unwrap());
        drop(lock);
        assert!(!lock_path.exists());
        // The waiter's inode is now marked stale.
        assert!(lock_file(&other, LockType::Write, false).unwrap());
        assert_eq!(other.metadata().unwrap().len(), 1);
    }
}
