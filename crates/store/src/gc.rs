//! The garbage collector of the local store, with CppNix 2.8's semantics and
//! protocol, so that CppNix and nivis can collect and work on one store at once.
//!
//! Roots ([`LocalStore::find_roots`]):
//! - symlinks (and regular files named like store paths) anywhere under
//!   `gcroots/` and `profiles/`; a link that points outside the store is an
//!   indirect root when its target is itself a symlink into the store; a link
//!   under `gcroots/auto/` whose target vanished is removed, as CppNix does;
//! - runtime roots: what processes use, read from `/proc/<pid>/{exe,cwd,fd/*}`,
//!   `/proc/<pid>/maps`, store paths in `/proc/<pid>/environ`, and
//!   `/proc/sys/kernel/{modprobe,fbsplash,poweroff_cmd}`;
//! - temporary roots: `temproots/<pid>` files of live processes (a file whose
//!   owner died is unlocked; it is removed).
//!
//! The protocol: the collector holds `gc.lock` exclusively for its whole run, so no
//! process can append to its temporary-roots file meanwhile; such a process
//! (CppNix's or ours) connects to `gc-socket/socket` instead, sends
//! `<store path>\n` and waits for the byte `1`. The collector's socket server
//! (a thread) records the hash part and answers at once, unless that path is in
//! the batch being deleted right now: then it answers after the batch is gone,
//! so the client never sees a path that is about to disappear.
//!
//! Speed: the whole reference graph is read in one snapshot and liveness is
//! computed in memory; dead paths are invalidated in transactions of a few
//! hundred (CppNix uses one transaction per path), referrers before references,
//! and their contents removed with `*at` system calls relative to the store
//! directory.
//!
//! **Invariant:** a path's contents are removed only after the transaction that
//! invalidated it committed, and SQLite's `on delete restrict` on `Refs`
//! refuses to invalidate a path that a valid path still refers to. A kill at
//! any instant leaves every valid path complete and `Refs` closed; what remains
//! is at worst invalid debris the next collection removes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use nivis_formats::{StorePath, StorePathSet};
use rusqlite::Connection;

use crate::error::StoreError;
use crate::local::LocalStore;
use crate::locks::{self, LockType};
use crate::store::Store;

/// What the collector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcAction {
    /// Report the live paths (`--print-live`).
    ReturnLive,
    /// Report the dead paths (`--print-dead`, `nix store gc --dry-run`).
    ReturnDead,
    /// Delete every dead path (`--gc`), up to `max_freed` bytes.
    DeleteDead,
    /// Delete `paths_to_delete` (`--delete`); fails if one of them is alive.
    DeleteSpecific,
}

/// The collector's options, CppNix's `GCOptions` plus the two settings it reads.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub action: GcAction,
    pub paths_to_delete: StorePathSet,
    /// Ignore permanent and runtime roots (not temporary ones), `--ignore-liveness`.
    pub ignore_liveness: bool,
    /// Stop once more than this many bytes were freed.
    pub max_freed: u64,
    /// `keep-outputs`: a live derivation keeps its valid outputs alive.
    pub keep_outputs: bool,
    /// `keep-derivations`: a live output keeps its deriver alive.
    pub keep_derivations: bool,
}

impl Default for GcOptions {
    /// CppNix's defaults: delete dead paths, no limit, `keep-derivations = true`,
    /// `keep-outputs = false`.
    fn default() -> Self {
        GcOptions {
            action: GcAction::DeleteDead,
            paths_to_delete: StorePathSet::new(),
            ignore_liveness: false,
            max_freed: u64::MAX,
            keep_outputs: false,
            keep_derivations: true,
        }
    }
}

/// What the collector did or found: printed store paths (deleted, live or dead,
/// after the action) and the bytes freed.
#[derive(Debug, Clone, Default)]
pub struct GcResults {
    pub paths: BTreeSet<String>,
    pub bytes_freed: u64,
}

/// Roots: each rooted store path with the links (files, `/proc` entries,
/// `{temp:PID}`, or `{censored}`) that root it.
pub type Roots = BTreeMap<StorePath, BTreeSet<String>>;

/// What a runtime root's link is replaced with when censoring.
pub const CENSORED: &str = "{censored}";

/// Dead paths invalidated per transaction.
const BATCH_SIZE: usize = 256;

/// Threads removing the contents of one batch (bench/gc.sh, 20,000 paths on
/// ext4: 16 threads 13 s, 64 threads 6.5 s; they wait on the journal, not the CPU).
const DELETE_THREADS: usize = 64;

/// State shared between the collector and its socket server.
#[derive(Default)]
struct Shared {
    state: Mutex<SharedState>,
    wakeup: Condvar,
}

#[derive(Default)]
struct SharedState {
    /// Hash parts of temporary roots (read from files, or sent to the socket).
    temp_roots: HashSet<String>,
    /// Hash parts of the paths being deleted right now.
    pending: HashSet<String>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |e| StoreError::io(context, e)
}

fn db_err(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database { context: context.to_string(), error: e }
}

/// The socket server that receives temporary roots from other processes while
/// the collector holds `gc.lock`. Stopped (and every client thread joined) on drop.
struct RootsServer {
    shutdown_write: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl RootsServer {
    fn start(socket_path: &Path, store_dir: String, shared: Arc<Shared>) -> Result<RootsServer, StoreError> {
        if let Some(dir) = socket_path.parent() {
            fs::create_dir_all(dir).map_err(io_err(format!("creating directory '{}'", dir.display())))?;
        }
        // A socket left by an earlier collector: nobody listens on it (we hold gc.lock).
        let _ = fs::remove_file(socket_path);
        let listener = UnixListener::bind(socket_path)
            .map_err(io_err(format!("binding to socket '{}'", socket_path.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(socket_path, fs::Permissions::from_mode(0o666))
                .map_err(io_err(format!("changing permissions of '{}'", socket_path.display())))?;
        }
        listener.set_nonblocking(true).map_err(io_err("making the GC socket non-blocking"))?;
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(StoreError::io("creating a pipe".into(), io::Error::last_os_error()));
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read_side, write_side) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gc-roots-server".into())
            .spawn(move || serve_roots(listener, read_side, store_dir, thread_shared))
            .map_err(io_err("starting the GC roots server"))?;
        Ok(RootsServer { shutdown_write: Some(write_side), thread: Some(thread), shared })
    }
}

impl Drop for RootsServer {
    fn drop(&mut self) {
        if let Some(write_side) = self.shutdown_write.take() {
            let _ = File::from(write_side).write_all(b"x");
        }
        self.shared.lock().pending.clear();
        self.shared.wakeup.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The server thread: accepts clients until the shutdown pipe becomes readable,
/// then shuts every client connection down and joins its thread.
fn serve_roots(listener: UnixListener, shutdown: OwnedFd, store_dir: String, shared: Arc<Shared>) {
    let mut clients: Vec<(UnixStream, JoinHandle<()>)> = Vec::new();
    loop {
        let mut fds = [
            libc::pollfd { fd: shutdown.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: poll on two descriptors that outlive the call.
        let count = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if count == -1 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if fds[0].revents != 0 {
            break;
        }
        if fds[1].revents != 0 {
            let Ok((stream, _)) = listener.accept() else { continue };
            let _ = stream.set_nonblocking(false);
            let Ok(handle) = stream.try_clone() else { continue };
            let store_dir = store_dir.clone();
            let shared = shared.clone();
            if let Ok(thread) = std::thread::Builder::new()
                .name("gc-roots-client".into())
                .spawn(move || serve_client(stream, &store_dir, &shared))
            {
                clients.push((handle, thread));
            }
        }
    }
    for (stream, thread) in clients {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = thread.join();
    }
}

/// One client: each line is a store path to record as a temporary root; each
/// is acknowledged with `1` (after the path's deletion finished, if it was
/// being deleted).
fn serve_client(stream: UnixStream, store_dir: &str, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else {
            // End of stream in the middle of a line: the client is gone.
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let hash_part = text
            .strip_prefix(store_dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|base| !base.contains('/'))
            .and_then(|base| StorePath::from_base_name(base).ok())
            .map(|path| path.hash_part().to_string());
        match hash_part {
            Some(hash_part) => {
                let mut state = shared.lock();
                state.temp_roots.insert(hash_part.clone());
                while state.pending.contains(&hash_part) {
                    state = shared.wakeup.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            }
            None => eprintln!("error: received garbage instead of a root from client"),
        }
        if writer.write_all(b"1").is_err() {
            return;
        }
    }
}

/// The reference graph of every valid path, read in one snapshot, with the
/// extra edges `keep-outputs` / `keep-derivations` add.
struct Graph {
    /// Printed path of each valid path, by index.
    printed: Vec<String>,
    /// Base name to index.
    index: HashMap<String, u32>,
    nar_size: Vec<u64>,
    /// What each path keeps alive: its references (self excluded) and the
    /// extra edges of the keep settings.
    keeps: Vec<Vec<u32>>,
    /// The reverse of `keeps`.
    kept_by: Vec<Vec<u32>>,
    /// Number of referrers of each path, self excluded (for the deletion order).
    referrer_count: Vec<u32>,
    /// References of each path, self excluded.
    references: Vec<Vec<u32>>,
}

impl Graph {
    fn load(conn: &mut Connection, store_dir: &str, keep_outputs: bool, keep_derivations: bool) -> Result<Graph, StoreError> {
        let tx = conn.transaction().map_err(db_err("starting a transaction"))?;
        let mut printed = Vec::new();
        let mut index = HashMap::new();
        let mut nar_size = Vec::new();
        let mut deriver = Vec::new();
        let mut by_id: HashMap<i64, u32> = HashMap::new();
        let prefix_len = store_dir.len() + 1;
        {
            let mut stmt = tx
                .prepare("select id, path, narSize, deriver from ValidPaths")
                .map_err(db_err("reading valid paths"))?;
            let mut rows = stmt.query([]).map_err(db_err("reading valid paths"))?;
            while let Some(row) = rows.next().map_err(db_err("reading valid paths"))? {
                let id: i64 = row.get(0).map_err(db_err("reading valid paths"))?;
                let path: String = row.get(1).map_err(db_err("reading valid paths"))?;
                let size: Option<i64> = row.get(2).map_err(db_err("reading valid paths"))?;
                let drv: Option<String> = row.get(3).map_err(db_err("reading valid paths"))?;
                let i = printed.len() as u32;
                by_id.insert(id, i);
                if path.len() > prefix_len {
                    index.insert(path[prefix_len..].to_string(), i);
                }
                printed.push(path);
                nar_size.push(size.unwrap_or(0).max(0) as u64);
                deriver.push(drv.filter(|d| !d.is_empty()));
            }
        }
        let n = printed.len();
        let mut keeps: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut references: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut referrer_count = vec![0u32; n];
        {
            let mut stmt = tx
                .prepare("select referrer, reference from Refs")
                .map_err(db_err("reading references"))?;
            let mut rows = stmt.query([]).map_err(db_err("reading references"))?;
            while let Some(row) = rows.next().map_err(db_err("reading references"))? {
                let referrer: i64 = row.get(0).map_err(db_err("reading references"))?;
                let reference: i64 = row.get(1).map_err(db_err("reading references"))?;
                let (Some(&a), Some(&b)) = (by_id.get(&referrer), by_id.get(&reference)) else { continue };
                if a != b {
                    keeps[a as usize].push(b);
                    references[a as usize].push(b);
                    referrer_count[b as usize] += 1;
                }
            }
        }
        if keep_outputs || keep_derivations {
            let mut stmt = tx
                .prepare("select drv, path from DerivationOutputs")
                .map_err(db_err("reading derivation outputs"))?;
            let mut rows = stmt.query([]).map_err(db_err("reading derivation outputs"))?;
            while let Some(row) = rows.next().map_err(db_err("reading derivation outputs"))? {
                let drv_id: i64 = row.get(0).map_err(db_err("reading derivation outputs"))?;
                let output: String = row.get(1).map_err(db_err("reading derivation outputs"))?;
                let Some(&drv) = by_id.get(&drv_id) else { continue };
                let Some(&out) = output.get(prefix_len..).and_then(|base| index.get(base)) else { continue };
                if keep_outputs {
                    keeps[drv as usize].push(out);
                }
                // As CppNix: only an output whose recorded deriver is this
                // derivation keeps it alive.
                if keep_derivations && deriver[out as usize].as_deref() == Some(printed[drv as usize].as_str()) {
                    keeps[out as usize].push(drv);
                }
            }
        }
        tx.commit().map_err(db_err("reading the store database"))?;
        let mut kept_by: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (from, targets) in keeps.iter().enumerate() {
            for &to in targets {
                kept_by[to as usize].push(from as u32);
            }
        }
        Ok(Graph { printed, index, nar_size, keeps, kept_by, referrer_count, references })
    }

    /// Marks everything `start` keeps alive (itself included).
    fn mark(&self, alive: &mut [bool], start: impl IntoIterator<Item = u32>) {
        let mut stack: Vec<u32> = start.into_iter().filter(|&i| !alive[i as usize]).collect();
        for &i in &stack {
            alive[i as usize] = true;
        }
        while let Some(i) = stack.pop() {
            for &next in &self.keeps[i as usize] {
                if !alive[next as usize] {
                    alive[next as usize] = true;
                    stack.push(next);
                }
            }
        }
    }

    /// Orders `set` so that every path comes before its references (Kahn's
    /// algorithm; `set` must be closed under referrers).
    fn referrers_first(&self, set: &[u32]) -> Vec<u32> {
        let mut in_set = vec![false; self.printed.len()];
        for &i in set {
            in_set[i as usize] = true;
        }
        let mut remaining: HashMap<u32, u32> = HashMap::with_capacity(set.len());
        let mut ready = VecDeque::new();
        for &i in set {
            let count = self.referrer_count[i as usize];
            if count == 0 {
                ready.push_back(i);
            } else {
                remaining.insert(i, count);
            }
        }
        let mut order = Vec::with_capacity(set.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &r in &self.references[i as usize] {
                if !in_set[r as usize] {
                    continue;
                }
                if let Some(count) = remaining.get_mut(&r) {
                    *count -= 1;
                    if *count == 0 {
                        remaining.remove(&r);
                        ready.push_back(r);
                    }
                }
            }
        }
        // Paths whose referrers lie outside the set (not expected) go last;
        // the database refuses to invalidate them if those referrers are valid.
        let mut rest: Vec<u32> = remaining.into_keys().collect();
        rest.sort_unstable();
        order.extend(rest);
        order
    }
}

/// A batch whose contents a background thread is removing.
type InFlight<'v, 'scope> = Option<(Vec<&'v Victim>, std::thread::ScopedJoinHandle<'scope, Result<u64, StoreError>>)>;

/// One entry of the store directory to delete.
struct Victim {
    /// The directory entry's name.
    name: String,
    /// The hash part, for entries named like store paths.
    hash_part: Option<String>,
    /// The index in the graph, for valid paths.
    valid: Option<u32>,
}

/// Removes `name` in the directory `dir_fd` (recursively), adding to `freed`
/// the sizes of the regular files and symlinks whose last link it removed.
/// Directories without write permission (store directories are read-only) are
/// made writable first. A missing entry is not an error.
fn delete_entry(dir_fd: RawFd, name: &CStr, freed: &mut u64) -> io::Result<()> {
    // SAFETY: fstatat writes into a zeroed stat buffer we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dir_fd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        let err = io::Error::last_os_error();
        return if err.raw_os_error() == Some(libc::ENOENT) { Ok(()) } else { Err(err) };
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        if st.st_nlink == 1 {
            *freed += st.st_size as u64;
        }
        // SAFETY: unlinkat with a descriptor and a NUL-terminated name.
        if unsafe { libc::unlinkat(dir_fd, name.as_ptr(), 0) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ENOENT) {
                return Err(err);
            }
        }
        return Ok(());
    }
    let wanted = libc::S_IRUSR | libc::S_IWUSR | libc::S_IXUSR;
    if st.st_mode & wanted != wanted {
        // SAFETY: fchmodat with a descriptor and a NUL-terminated name.
        if unsafe { libc::fchmodat(dir_fd, name.as_ptr(), (st.st_mode | wanted) & 0o7777, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: openat returns a new descriptor or -1.
    let fd = unsafe {
        libc::openat(dir_fd, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh directory descriptor; fdopendir takes ownership of it.
    let dir = unsafe { libc::fdopendir(fd) };
    if dir.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    // Names first, then deletions: removing entries while reading the
    // directory may make readdir skip some.
    let mut children = Vec::new();
    loop {
        // SAFETY: readdir on an open DIR; the entry is copied out before the next call.
        let entry = unsafe { libc::readdir(dir) };
        if entry.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated inside the entry.
        let child = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
        let bytes = child.to_bytes();
        if bytes != b"." && bytes != b".." {
            children.push(child.to_owned());
        }
    }
    let mut result = Ok(());
    // SAFETY: dirfd of the open DIR stays valid until closedir.
    let child_dir_fd = unsafe { libc::dirfd(dir) };
    for child in &children {
        if let Err(e) = delete_entry(child_dir_fd, child, freed) {
            result = Err(e);
            break;
        }
    }
    // SAFETY: closes the DIR (and fd) exactly once.
    unsafe { libc::closedir(dir) };
    result?;
    // SAFETY: unlinkat with a descriptor and a NUL-terminated name.
    if unsafe { libc::unlinkat(dir_fd, name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOENT) {
            return Err(err);
        }
    }
    Ok(())
}

/// Reads the target of a `/proc` link; only absolute targets count.
fn read_proc_link(file: String, unchecked: &mut HashMap<String, BTreeSet<String>>) {
    if let Ok(target) = fs::read_link(&file) {
        let target = target.to_string_lossy().into_owned();
        if target.starts_with('/') {
            unchecked.entry(target).or_default().insert(file);
        }
    }
}

/// The store paths named in `text`: CppNix's `<store dir>/[0-9a-z]+[0-9a-zA-Z+\-._?=]*`.
fn store_paths_in(text: &[u8], prefix: &str, mut found: impl FnMut(String)) {
    let prefix = format!("{prefix}/");
    let pattern = prefix.as_bytes();
    let mut at = 0;
    while at + pattern.len() <= text.len() {
        let Some(offset) = text[at..].windows(pattern.len()).position(|w| w == pattern) else { break };
        let start = at + offset;
        let mut end = start + pattern.len();
        let first = end;
        while end < text.len() && (text[end].is_ascii_digit() || text[end].is_ascii_lowercase()) {
            end += 1;
        }
        if end == first {
            at = start + 1;
            continue;
        }
        while end < text.len()
            && (text[end].is_ascii_alphanumeric() || b"+-._?=".contains(&text[end]))
        {
            end += 1;
        }
        found(String::from_utf8_lossy(&text[start..end]).into_owned());
        at = end;
    }
}

impl LocalStore {
    /// The store path a file-system path (or link target) names, if it is in
    /// the store: below the logical store directory, or below the physical one
    /// of a relocated store (which is where running processes see it).
    fn store_path_of(&self, target: &str) -> Option<StorePath> {
        if let Ok((path, _)) = self.store_dir().split_path(target) {
            return Some(path);
        }
        let real = self.config().real_store_dir.to_string_lossy();
        if real.as_ref() != self.store_dir().as_str() {
            let rest = target.strip_prefix(real.as_ref())?.strip_prefix('/')?;
            let base = rest.split('/').next()?;
            return StorePath::from_base_name(base).ok();
        }
        None
    }

    /// Every root: permanent (`gcroots/`, `profiles/`), runtime (`/proc`) and
    /// temporary ones. With `censor`, runtime and temporary roots are listed as
    /// `{censored}` instead of the `/proc` file or `{temp:PID}` that holds them.
    pub fn find_roots(&self, censor: bool) -> Result<Roots, StoreError> {
        let mut roots = Roots::new();
        self.find_roots_no_temp(&mut roots, censor)?;
        self.find_temp_roots(&mut roots, censor)?;
        Ok(roots)
    }

    fn find_roots_no_temp(&self, roots: &mut Roots, censor: bool) -> Result<(), StoreError> {
        let state_dir = self.config().state_dir.clone();
        self.find_roots_in(&state_dir.join("gcroots"), None, roots)?;
        self.find_roots_in(&state_dir.join("profiles"), None, roots)?;
        self.find_runtime_roots(roots, censor)
    }

    fn found_root(&self, roots: &mut Roots, link: &Path, target: &str) -> Result<(), StoreError> {
        let Some(path) = self.store_path_of(target) else { return Ok(()) };
        if self.is_valid_path(&path)? {
            roots.entry(path).or_default().insert(link.to_string_lossy().into_owned());
        } else {
            eprintln!("skipping invalid root from '{}' to '{}'", link.display(), target);
        }
        Ok(())
    }

    /// CppNix's `findRoots(path, type, roots)`: directories recursively,
    /// symlinks into the store, indirect symlinks, and regular files named
    /// like valid store paths.
    fn find_roots_in(&self, path: &Path, file_type: Option<fs::FileType>, roots: &mut Roots) -> Result<(), StoreError> {
        match self.find_roots_in_inner(path, file_type, roots) {
            Ok(()) => Ok(()),
            Err(StoreError::Io { error, context }) => match error.raw_os_error() {
                Some(libc::EACCES) | Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
                    eprintln!("cannot read potential root '{}'", path.display());
                    Ok(())
                }
                _ => Err(StoreError::Io { error, context }),
            },
            Err(e) => Err(e),
        }
    }

    fn find_roots_in_inner(&self, path: &Path, file_type: Option<fs::FileType>, roots: &mut Roots) -> Result<(), StoreError> {
        let file_type = match file_type {
            Some(t) => t,
            None => fs::symlink_metadata(path).map_err(io_err(format!("getting status of '{}'", path.display())))?.file_type(),
        };
        if file_type.is_dir() {
            let entries = fs::read_dir(path).map_err(io_err(format!("reading directory '{}'", path.display())))?;
            let mut children = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err(format!("reading directory '{}'", path.display())))?;
                children.push((entry.path(), entry.file_type().ok()));
            }
            for (child, child_type) in children {
                self.find_roots_in(&child, child_type, roots)?;
            }
        } else if file_type.is_symlink() {
            let target = fs::read_link(path).map_err(io_err(format!("reading symbolic link '{}'", path.display())))?;
            let target_text = target.to_string_lossy().into_owned();
            if self.store_dir().is_in_store(&target_text) || self.store_path_of(&target_text).is_some() {
                self.found_root(roots, path, &target_text)?;
            } else {
                // An indirect root: a link to a link into the store.
                let parent = path.parent().unwrap_or(Path::new("/"));
                let target = crate::roots::canon_path(&parent.join(&target));
                match fs::symlink_metadata(&target) {
                    Err(_) => {
                        let auto_dir = self.config().state_dir.join("gcroots").join("auto");
                        if path.starts_with(&auto_dir) {
                            eprintln!("removing stale link from '{}' to '{}'", path.display(), target.display());
                            let _ = fs::remove_file(path);
                        }
                    }
                    Ok(metadata) => {
                        if !metadata.file_type().is_symlink() {
                            return Ok(());
                        }
                        let target2 = fs::read_link(&target)
                            .map_err(io_err(format!("reading symbolic link '{}'", target.display())))?;
                        let target2 = target2.to_string_lossy().into_owned();
                        if self.store_path_of(&target2).is_some() {
                            self.found_root(roots, &target, &target2)?;
                        }
                    }
                }
            }
        } else if file_type.is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
            && let Ok(store_path) = StorePath::from_base_name(name)
            && self.is_valid_path(&store_path)?
        {
            roots.entry(store_path).or_default().insert(path.to_string_lossy().into_owned());
        }
        Ok(())
    }

    /// What running processes use, as CppNix 2.8 finds it on Linux.
    fn find_runtime_roots(&self, roots: &mut Roots, censor: bool) -> Result<(), StoreError> {
        let mut unchecked: HashMap<String, BTreeSet<String>> = HashMap::new();
        let real_store = self.config().real_store_dir.to_string_lossy().into_owned();
        let mut prefixes = vec![self.store_dir().as_str().to_string()];
        if real_store != prefixes[0] {
            prefixes.push(real_store);
        }
        if let Ok(proc_dir) = fs::read_dir("/proc") {
            for entry in proc_dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name.to_str().filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) else {
                    continue;
                };
                read_proc_link(format!("/proc/{pid}/exe"), &mut unchecked);
                read_proc_link(format!("/proc/{pid}/cwd"), &mut unchecked);
                let fd_dir = format!("/proc/{pid}/fd");
                let Ok(fds) = fs::read_dir(&fd_dir) else { continue };
                for fd in fds.flatten() {
                    let fd_name = fd.file_name();
                    if fd_name.as_bytes().first() != Some(&b'.') {
                        read_proc_link(format!("{fd_dir}/{}", fd_name.to_string_lossy()), &mut unchecked);
                    }
                }
                let map_file = format!("/proc/{pid}/maps");
                if let Ok(maps) = fs::read(&map_file) {
                    for line in maps.split(|b| *b == b'\n') {
                        // Six fields, the last an absolute path without spaces.
                        let fields: Vec<&[u8]> = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty()).collect();
                        if fields.len() == 6 && fields[5].first() == Some(&b'/') {
                            let target = String::from_utf8_lossy(fields[5]).into_owned();
                            unchecked.entry(target).or_default().insert(map_file.clone());
                        }
                    }
                }
                let env_file = format!("/proc/{pid}/environ");
                if let Ok(environ) = fs::read(&env_file) {
                    for prefix in &prefixes {
                        store_paths_in(&environ, prefix, |found| {
                            unchecked.entry(found).or_default().insert(env_file.clone());
                        });
                    }
                }
            }
        }
        for file in ["/proc/sys/kernel/modprobe", "/proc/sys/kernel/fbsplash", "/proc/sys/kernel/poweroff_cmd"] {
            if let Ok(contents) = fs::read_to_string(file) {
                let target = contents.trim_end_matches('\n').to_string();
                unchecked.entry(target).or_default().insert(file.to_string());
            }
        }
        let mut checked: HashMap<StorePath, bool> = HashMap::new();
        for (target, links) in unchecked {
            let Some(path) = self.store_path_of(&target) else { continue };
            let valid = match checked.get(&path) {
                Some(v) => *v,
                None => {
                    let v = self.is_valid_path(&path)?;
                    checked.insert(path.clone(), v);
                    v
                }
            };
            if !valid {
                continue;
            }
            let entry = roots.entry(path).or_default();
            if censor {
                entry.insert(CENSORED.to_string());
            } else {
                entry.extend(links);
            }
        }
        Ok(())
    }

    /// Temporary roots of live processes (`temproots/<pid>` files that are
    /// locked). A file nobody holds belongs to a dead process: it is removed,
    /// marked stale for anyone who still opens it, as CppNix does.
    fn find_temp_roots(&self, roots: &mut Roots, censor: bool) -> Result<(), StoreError> {
        let dir = self.config().state_dir.join("temproots");
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(format!("reading directory '{}'", dir.display()), e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading directory '{}'", dir.display())))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let mut file = match fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(format!("opening temporary roots file '{}'", path.display()), e)),
            };
            if locks::lock_file(&file, LockType::Write, false)? {
                eprintln!("removing stale temporary roots file '{}'", path.display());
                let _ = fs::remove_file(&path);
                let _ = file.write_all(b"d");
                continue;
            }
            let mut contents = Vec::new();
            file.read_to_end(&mut contents)
                .map_err(io_err(format!("reading temporary roots file '{}'", path.display())))?;
            for root in contents.split(|b| *b == 0) {
                if root.is_empty() {
                    continue;
                }
                let text = String::from_utf8_lossy(root);
                let Some(store_path) = self.store_path_of(&text) else { continue };
                let link = if censor { CENSORED.to_string() } else { format!("{{temp:{name}}}") };
                roots.entry(store_path).or_default().insert(link);
            }
        }
        Ok(())
    }

    /// Runs the collector, CppNix's `collectGarbage`. `results` is filled as
    /// work is done, so after an error it still says what was deleted.
    pub fn collect_garbage(&self, options: &GcOptions, results: &mut GcResults) -> Result<(), StoreError> {
        self.check_writable("collectGarbage")?;
        let action = options.action;
        let should_delete = matches!(action, GcAction::DeleteDead | GcAction::DeleteSpecific);
        // With --ignore-liveness, following outputs or derivers would delete
        // more than asked for; CppNix turns both off.
        let (keep_outputs, keep_derivations) = if action == GcAction::DeleteSpecific && options.ignore_liveness {
            (false, false)
        } else {
            (options.keep_outputs, options.keep_derivations)
        };
        let config = self.config().clone();
        if should_delete {
            let _ = fs::remove_file(config.db_dir().join("reserved"));
        }

        let gc_lock = locks::open_lock_file(&config.state_dir.join("gc.lock"))?;
        if !locks::lock_file(&gc_lock, LockType::Write, false)? {
            eprintln!("waiting for the big garbage collector lock...");
            locks::lock_file(&gc_lock, LockType::Write, true)?;
        }
        let shared = Arc::new(Shared::default());
        let server = RootsServer::start(
            &config.state_dir.join("gc-socket").join("socket"),
            self.store_dir().as_str().to_string(),
            shared.clone(),
        )?;

        eprintln!("finding garbage collector roots...");
        let mut permanent = Roots::new();
        if !options.ignore_liveness {
            self.find_roots_no_temp(&mut permanent, true)?;
        }
        // Temporary roots made before we took the lock; later ones come
        // through the socket.
        let mut temporary = Roots::new();
        self.find_temp_roots(&mut temporary, true)?;
        {
            let mut state = shared.lock();
            for path in temporary.keys() {
                state.temp_roots.insert(path.hash_part().to_string());
            }
        }

        let result = self.collect_locked(options, keep_outputs, keep_derivations, &permanent, &temporary, &shared, results);
        drop(server);
        drop(gc_lock);
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn collect_locked(
        &self,
        options: &GcOptions,
        keep_outputs: bool,
        keep_derivations: bool,
        permanent: &Roots,
        temporary: &Roots,
        shared: &Shared,
        results: &mut GcResults,
    ) -> Result<(), StoreError> {
        let action = options.action;
        let store_dir = self.store_dir().as_str().to_string();
        let real_store_dir = self.config().real_store_dir.clone();

        // A synchronisation point for tests, as CppNix's: block reading this
        // file (a FIFO) with the lock held and the socket server running.
        if let Some(sync_file) = std::env::var_os("_NIX_TEST_GC_SYNC") {
            let _ = fs::read(sync_file);
        }
        let scan = action != GcAction::DeleteSpecific && options.max_freed > 0;
        if scan {
            eprintln!("{}", if action == GcAction::DeleteDead { "deleting garbage..." } else { "determining live/dead paths..." });
        }
        // The directory is read before the database snapshot: an entry that is
        // valid by then is in the snapshot; one that becomes valid later was
        // made by a process that holds a temporary root for it.
        let mut entries = Vec::new();
        if scan {
            let dir = fs::read_dir(&real_store_dir).map_err(io_err(format!("opening directory '{}'", real_store_dir.display())))?;
            for entry in dir {
                let entry = entry.map_err(io_err(format!("reading directory '{}'", real_store_dir.display())))?;
                let name = entry.file_name();
                if name.as_bytes() == b".links" {
                    continue;
                }
                entries.push(name.to_string_lossy().into_owned());
            }
        }
        let graph = {
            let mut conn = self.db();
            Graph::load(&mut conn, &store_dir, keep_outputs, keep_derivations)?
        };
        let n = graph.printed.len();
        let root_indices = |roots: &Roots| -> Vec<u32> {
            roots.keys().filter_map(|p| graph.index.get(p.base_name()).copied()).collect()
        };
        let mut alive = vec![false; n];
        graph.mark(&mut alive, root_indices(permanent));
        graph.mark(&mut alive, root_indices(temporary));

        let mut victims: Vec<Victim>;
        let mut specific_error = None;
        match action {
            GcAction::ReturnLive | GcAction::ReturnDead | GcAction::DeleteDead => {
                let temp_roots = shared.lock().temp_roots.clone();
                let mut invalid = Vec::new();
                let mut dead_valid = Vec::new();
                for name in entries {
                    match StorePath::from_base_name(&name) {
                        Ok(path) => match graph.index.get(&name) {
                            Some(&i) if alive[i as usize] => {}
                            Some(&i) => dead_valid.push(i),
                            None => {
                                if temp_roots.contains(path.hash_part()) {
                                    if action == GcAction::ReturnLive {
                                        results.paths.insert(format!("{store_dir}/{name}"));
                                    }
                                    continue;
                                }
                                invalid.push(Victim { hash_part: Some(path.hash_part().to_string()), name, valid: None });
                            }
                        },
                        // Not a store path at all: CppNix deletes these outright.
                        Err(_) => invalid.push(Victim { name, hash_part: None, valid: None }),
                    }
                }
                match action {
                    GcAction::ReturnLive => {
                        for (i, &live) in alive.iter().enumerate() {
                            if live {
                                results.paths.insert(graph.printed[i].clone());
                            }
                        }
                        return Ok(());
                    }
                    GcAction::ReturnDead => {
                        // Unlike CppNix 2.8, which deletes entries that are not
                        // store paths even here, a dry run deletes nothing.
                        for victim in &invalid {
                            results.paths.insert(format!("{store_dir}/{}", victim.name));
                        }
                        for &i in &dead_valid {
                            results.paths.insert(graph.printed[i as usize].clone());
                        }
                        return Ok(());
                    }
                    _ => {}
                }
                victims = invalid;
                for i in graph.referrers_first(&dead_valid) {
                    let name = graph.printed[i as usize][store_dir.len() + 1..].to_string();
                    let hash_part = name.get(..32).map(str::to_string);
                    victims.push(Victim { name, hash_part, valid: Some(i) });
                }
            }
            GcAction::DeleteSpecific => {
                // Blocked: whatever a root, a temporary root or a valid path
                // not asked for keeps alive.
                let mut blocked = alive.clone();
                let requested: HashSet<&str> = options.paths_to_delete.iter().map(|p| p.base_name()).collect();
                let others: Vec<u32> = (0..n as u32)
                    .filter(|&i| !requested.contains(&graph.printed[i as usize][store_dir.len() + 1..]))
                    .collect();
                graph.mark(&mut blocked, others);
                let temp_roots = shared.lock().temp_roots.clone();
                let mut chosen = vec![false; n];
                let mut chosen_list = Vec::new();
                let mut invalid = Vec::new();
                for path in &options.paths_to_delete {
                    match graph.index.get(path.base_name()) {
                        Some(&i) if blocked[i as usize] => {
                            specific_error = Some(StoreError::StillAlive { path: self.printed(path) });
                            break;
                        }
                        Some(&i) => {
                            // Everything that keeps it alive goes first.
                            let mut stack = vec![i];
                            while let Some(j) = stack.pop() {
                                if chosen[j as usize] {
                                    continue;
                                }
                                chosen[j as usize] = true;
                                chosen_list.push(j);
                                stack.extend(graph.kept_by[j as usize].iter().copied());
                            }
                        }
                        None => {
                            if temp_roots.contains(path.hash_part()) {
                                specific_error = Some(StoreError::StillAlive { path: self.printed(path) });
                                break;
                            }
                            invalid.push(Victim {
                                name: path.base_name().to_string(),
                                hash_part: Some(path.hash_part().to_string()),
                                valid: None,
                            });
                        }
                    }
                }
                victims = invalid;
                for i in graph.referrers_first(&chosen_list) {
                    let name = graph.printed[i as usize][store_dir.len() + 1..].to_string();
                    let hash_part = name.get(..32).map(str::to_string);
                    victims.push(Victim { name, hash_part, valid: Some(i) });
                }
            }
        }

        self.delete_victims(&victims, &graph, &mut alive, shared, options.max_freed, results)?;
        if let Some(error) = specific_error {
            return Err(error);
        }
        self.delete_unused_links(results)
    }

    /// Deletes `victims` in order, in batches: under the shared lock, drop
    /// those that became temporary roots meanwhile (and what they keep alive)
    /// and mark the rest pending; invalidate the batch in one transaction;
    /// remove the contents; clear its pending marks. Without a byte limit the
    /// contents of one batch are removed (by a pool of threads) while the next
    /// batch is invalidated; with one, batches go one at a time so the
    /// collector can stop right after passing it.
    fn delete_victims(
        &self,
        victims: &[Victim],
        graph: &Graph,
        alive: &mut [bool],
        shared: &Shared,
        max_freed: u64,
        results: &mut GcResults,
    ) -> Result<(), StoreError> {
        if victims.is_empty() {
            return Ok(());
        }
        let store_dir = self.store_dir().as_str().to_string();
        let real_store_dir = &self.config().real_store_dir;
        let store_fd = File::open(real_store_dir).map_err(io_err(format!("opening directory '{}'", real_store_dir.display())))?;
        let stderr = io::stderr();
        let mut log = io::BufWriter::with_capacity(1 << 16, stderr.lock());
        let limited = max_freed != u64::MAX;
        let mut next = 0;
        // Takes the next batch off `victims`: those still to delete, now pending.
        let mut next_batch = |alive: &mut [bool], bytes_freed: u64| -> Option<Vec<&Victim>> {
            if next >= victims.len() {
                return None;
            }
            // Up to BATCH_SIZE entries; with a byte limit, no more than the
            // recorded sizes say are needed to reach it.
            let mut end = next;
            let mut expected: u64 = 0;
            let budget = max_freed.saturating_sub(bytes_freed);
            while end < victims.len() && end - next < BATCH_SIZE {
                if let Some(i) = victims[end].valid {
                    expected = expected.saturating_add(graph.nar_size[i as usize]);
                }
                end += 1;
                if limited && expected > budget {
                    break;
                }
            }
            let batch = &victims[next..end];
            next = end;
            let mut todo: Vec<&Victim> = Vec::with_capacity(batch.len());
            let mut state = shared.lock();
            for victim in batch {
                if let Some(i) = victim.valid
                    && alive[i as usize]
                {
                    continue;
                }
                if let Some(hash_part) = &victim.hash_part {
                    if state.temp_roots.contains(hash_part) {
                        if let Some(i) = victim.valid {
                            graph.mark(alive, [i]);
                        }
                        continue;
                    }
                    state.pending.insert(hash_part.clone());
                }
                todo.push(victim);
            }
            Some(todo)
        };
        let release = |batch: &[&Victim]| {
            let mut state = shared.lock();
            for victim in batch {
                if let Some(hash_part) = &victim.hash_part {
                    state.pending.remove(hash_part);
                }
            }
            drop(state);
            shared.wakeup.notify_all();
        };

        if limited {
            while let Some(todo) = next_batch(alive, results.bytes_freed) {
                let outcome = self.invalidate_batch(&todo, graph, alive, &store_dir).and_then(|removed| {
                    self.remove_serially(&removed, &store_dir, &store_fd, max_freed, results, &mut log)
                });
                let _ = log.flush();
                release(&todo);
                if outcome? {
                    break;
                }
            }
            return Ok(());
        }

        std::thread::scope(|scope| -> Result<(), StoreError> {
            // The batch whose contents are being removed, and its removal.
            let mut in_flight: InFlight<'_, '_> = None;
            let store_fd = &store_fd;
            let finish = |in_flight: &mut InFlight<'_, '_>, results: &mut GcResults| -> Result<(), StoreError> {
                if let Some((batch, job)) = in_flight.take() {
                    let outcome = job.join().unwrap_or_else(|_| Err(StoreError::BadInput("a deleting thread panicked".into())));
                    release(&batch);
                    results.bytes_freed += outcome?;
                }
                Ok(())
            };
            while let Some(todo) = next_batch(alive, results.bytes_freed) {
                let removed = match self.invalidate_batch(&todo, graph, alive, &store_dir) {
                    Ok(removed) => removed,
                    Err(e) => {
                        release(&todo);
                        finish(&mut in_flight, results)?;
                        return Err(e);
                    }
                };
                let mut names = Vec::with_capacity(removed.len());
                for victim in &removed {
                    let printed = format!("{store_dir}/{}", victim.name);
                    let _ = writeln!(log, "deleting '{printed}'");
                    results.paths.insert(printed);
                    names.push(
                        CString::new(victim.name.as_bytes())
                            .map_err(|_| StoreError::BadPath(format!("bad store entry '{}'", victim.name)))?,
                    );
                }
                let _ = log.flush();
                // The previous batch's contents must be gone before its pending
                // marks are lifted; then this batch's contents go, in the
                // background, while the next batch is invalidated.
                finish(&mut in_flight, results)?;
                let job = scope.spawn(move || self.remove_in_parallel(&names, store_fd));
                // Entries dropped by invalidate_batch (spared) are released now.
                if removed.len() != todo.len() {
                    let spared: Vec<&Victim> =
                        todo.iter().filter(|v| !removed.iter().any(|r| std::ptr::eq(*r, **v))).copied().collect();
                    release(&spared);
                }
                in_flight = Some((removed, job));
            }
            finish(&mut in_flight, results)
        })
    }

    /// Invalidates a batch in one transaction (or, if a path registered
    /// after the snapshot refers to one of them, one by one, sparing what is
    /// still referred to). Returns the entries whose contents may now go.
    fn invalidate_batch<'v>(
        &self,
        todo: &[&'v Victim],
        graph: &Graph,
        alive: &mut [bool],
        store_dir: &str,
    ) -> Result<Vec<&'v Victim>, StoreError> {
        let mut removed: Vec<&Victim> = Vec::with_capacity(todo.len());
        let mut conn = self.db();
        // Store-path-shaped entries that were invalid in the snapshot are
        // deleted by name too, in case they became valid since.
        let fast = (|| -> Result<(), rusqlite::Error> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached("delete from ValidPaths where path = ?")?;
                for victim in todo {
                    if victim.hash_part.is_some() {
                        stmt.execute([format!("{store_dir}/{}", victim.name)])?;
                    }
                }
            }
            tx.commit()
        })();
        match fast {
            Ok(()) => removed.extend(todo.iter().copied()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                for victim in todo {
                    if let Some(i) = victim.valid
                        && alive[i as usize]
                    {
                        continue;
                    }
                    if victim.hash_part.is_none() {
                        removed.push(victim);
                        continue;
                    }
                    let printed = format!("{store_dir}/{}", victim.name);
                    let tx = conn
                        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                        .map_err(db_err("starting a transaction"))?;
                    let referrers: i64 = tx
                        .query_row(
                            "select count(*) from Refs join ValidPaths v on referrer = v.id \
                             where reference = (select id from ValidPaths where path = ?1) and v.path != ?1",
                            [&printed],
                            |r| r.get(0),
                        )
                        .map_err(db_err("querying referrers"))?;
                    if referrers > 0 {
                        drop(tx);
                        if let Some(i) = victim.valid {
                            graph.mark(alive, [i]);
                        }
                        continue;
                    }
                    tx.execute("delete from ValidPaths where path = ?", [&printed])
                        .map_err(db_err("invalidating a path"))?;
                    tx.commit().map_err(db_err("invalidating a path"))?;
                    removed.push(victim);
                }
            }
            Err(e) => return Err(StoreError::Database { context: "invalidating paths".into(), error: e }),
        }
        Ok(removed)
    }

    fn deletion_error(&self, name: &[u8], error: io::Error) -> StoreError {
        let real = self.config().real_store_dir.join(std::ffi::OsStr::from_bytes(name));
        StoreError::io(format!("deleting '{}'", real.display()), error)
    }

    /// Removes invalidated entries one after the other, stopping right after
    /// passing `max_freed`. Returns true when it stopped.
    fn remove_serially(
        &self,
        removed: &[&Victim],
        store_dir: &str,
        store_fd: &File,
        max_freed: u64,
        results: &mut GcResults,
        log: &mut dyn Write,
    ) -> Result<bool, StoreError> {
        for victim in removed {
            let printed = format!("{store_dir}/{}", victim.name);
            let _ = writeln!(log, "deleting '{printed}'");
            results.paths.insert(printed);
            let name = CString::new(victim.name.as_bytes())
                .map_err(|_| StoreError::BadPath(format!("bad store entry '{}'", victim.name)))?;
            let mut freed = 0;
            delete_entry(store_fd.as_raw_fd(), &name, &mut freed).map_err(|e| self.deletion_error(name.as_bytes(), e))?;
            results.bytes_freed += freed;
            if results.bytes_freed > max_freed {
                let _ = writeln!(log, "deleted more than {max_freed} bytes; stopping");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes invalidated entries with a pool of threads: unlinking waits on
    /// the file system's journal far more than on the CPU, so many threads
    /// overlap those waits. Returns the bytes freed.
    fn remove_in_parallel(&self, names: &[CString], store_fd: &File) -> Result<u64, StoreError> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let freed = std::sync::atomic::AtomicU64::new(0);
        let failure: Mutex<Option<(usize, io::Error)>> = Mutex::new(None);
        let threads = DELETE_THREADS.min(names.len());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut mine = 0;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= names.len() {
                            break;
                        }
                        if let Err(e) = delete_entry(store_fd.as_raw_fd(), &names[i], &mut mine) {
                            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert((i, e));
                            break;
                        }
                    }
                    freed.fetch_add(mine, std::sync::atomic::Ordering::Relaxed);
                });
            }
        });
        if let Some((i, e)) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(self.deletion_error(names[i].as_bytes(), e));
        }
        Ok(freed.into_inner())
    }

    /// Removes files in `.links` that nothing else links to (left by store
    /// optimisation), as CppNix does after every deleting run.
    fn delete_unused_links(&self, results: &mut GcResults) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        eprintln!("deleting unused links...");
        let links_dir = self.config().real_store_dir.join(".links");
        let entries = match fs::read_dir(&links_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(format!("opening directory '{}'", links_dir.display()), e)),
        };
        let (mut actual_size, mut unshared_size) = (0i64, 0i64);
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
            if metadata.nlink() != 1 {
                actual_size += metadata.size() as i64;
                unshared_size += (metadata.nlink() as i64 - 1) * metadata.size() as i64;
                continue;
            }
            fs::remove_file(&path).map_err(io_err(format!("deleting '{}'", path.display())))?;
            results.bytes_freed += metadata.size();
        }
        let overhead = fs::metadata(&links_dir).map(|m| m.blocks() as i64 * 512).unwrap_or(0);
        eprintln!(
            "note: currently hard linking saves {:.2} MiB",
            (unshared_size - actual_size - overhead) as f64 / (1024.0 * 1024.0)
        );
        Ok(())
    }
}

/// A byte count as CppNix's `showBytes`: `%.2f MiB`.
pub fn show_bytes(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_paths_in_environment_text() {
        let text = b"PATH=/nix/store/abc-foo/bin:/usr/bin\0X=/nix/store/\0Y=/nix/store/Zz\0Z=/nix/store/0a1-b+c.d?e=f_g h";
        let mut found = Vec::new();
        store_paths_in(text, "/nix/store", |p| found.push(p));
        assert_eq!(found, vec!["/nix/store/abc-foo", "/nix/store/0a1-b+c.d?e=f_g"]);
    }

    #[test]
    fn a_referrer_registered_after_the_snapshot_spares_its_reference() {
        use crate::{LocalStoreConfig, StoreSettings};
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let open = || LocalStore::open(LocalStoreConfig::with_root(&StoreSettings::default(), &root)).unwrap();
        let store = open();
        let other = store.add_text_to_store("other", b"o", &StorePathSet::new(), false).unwrap();
        let target = store.add_text_to_store("target", b"t", &StorePathSet::new(), false).unwrap();
        drop(store);
        let store = open();
        let graph = Graph::load(&mut store.db(), "/nix/store", false, true).unwrap();
        let mut alive = vec![false; graph.printed.len()];
        // After the snapshot, a new path refers to `target`.
        let late = store.add_text_to_store("late", b"l", &StorePathSet::from([target.clone()]), false).unwrap();
        let victims: Vec<Victim> = [&other, &target]
            .iter()
            .map(|p| Victim {
                name: p.base_name().to_string(),
                hash_part: Some(p.hash_part().to_string()),
                valid: graph.index.get(p.base_name()).copied(),
            })
            .collect();
        let todo: Vec<&Victim> = victims.iter().collect();
        let removed = store.invalidate_batch(&todo, &graph, &mut alive, "/nix/store").unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].name, other.base_name());
        assert!(alive[graph.index[target.base_name()] as usize]);
        assert!(!store.is_valid_path(&other).unwrap());
        assert!(store.is_valid_path(&target).unwrap() && store.is_valid_path(&late).unwrap());
    }

    #[test]
    fn delete_entry_removes_read_only_trees_and_counts_bytes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("sub/a"), b"12345").unwrap();
        fs::write(tree.join("b"), b"123").unwrap();
        std::os::unix::fs::symlink("b", tree.join("link")).unwrap();
        fs::set_permissions(tree.join("sub"), fs::Permissions::from_mode(0o555)).unwrap();
        fs::set_permissions(&tree, fs::Permissions::from_mode(0o555)).unwrap();
        let dir_fd = File::open(dir.path()).unwrap();
        let mut freed = 0;
        delete_entry(dir_fd.as_raw_fd(), &CString::new("tree").unwrap(), &mut freed).unwrap();
        assert!(!tree.exists());
        // 5 + 3 bytes of files and the symlink's 1-byte target.
        assert_eq!(freed, 9);
        // Missing entries are fine.
        delete_entry(dir_fd.as_raw_fd(), &CString::new("tree").unwrap(), &mut freed).unwrap();
    }
}
