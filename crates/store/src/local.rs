//! The local store: files under a (possibly relocated) store directory, metadata in
//! CppNix's SQLite database, CppNix's locks. CppNix 2.8 and nivis can open the same
//! store at the same time.
//!
//! Adding a path (from the file system, a NAR stream or text) always goes:
//! 1. write the contents under a temporary name in the real store directory
//!    (`<random hash>-nivis-tmp-<pid>`, recorded as a temporary GC root first, so
//!    CppNix's collector spares it), with canonical metadata;
//! 2. compute the hashes from what was written, hence the store path;
//! 3. record a temporary GC root, take `<path>.lock`, and if the path became valid
//!    meanwhile throw the temporary copy away (a valid path is never rewritten);
//! 4. rename into place, make the contents durable (`fsync` of a lone file,
//!    `syncfs` for a tree) and the name (the store directory's fsync, where
//!    the first sync did not already carry it);
//! 5. register path info and references in ONE SQLite transaction.
//!
//! A crash before 5 leaves at most an unregistered (invalid) directory entry; a
//! crash during 5 rolls the transaction back.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};

use nivis_formats::{
    FileIngestionMethod, Hash, HashAlgorithm, HashEncoding, Hasher, StoreDir, StorePath, StorePathSet,
};
use rusqlite::Connection;

use crate::config::LocalStoreConfig;
use crate::db::{self, NewPathRow};
use crate::error::StoreError;
use crate::locks::{self, LockType, PathLock, TempRoots};
use crate::nar;
use crate::store::{Store, ValidPathInfo, VerifyReport};
use nivis_formats::ContentAddress;

/// Marks temporary entries in the store directory: `<hash>-nivis-tmp-<pid>`.
const TEMP_MARKER: &str = "nivis-tmp-";

/// Bytes CppNix keeps in `db/reserved` so a full disk can still be collected.
const RESERVED_SIZE: u64 = 8 * 1024 * 1024;

/// A store on the local file system.
pub struct LocalStore {
    config: LocalStoreConfig,
    store_dir: StoreDir,
    db: Mutex<Connection>,
    /// Shared `flock` on `db/big-lock`, held while the store is open.
    _big_lock: Option<File>,
    temp_roots: Arc<Mutex<TempRoots>>,
    temp_counter: AtomicU64,
}

/// Reads the info of a path whose NAR was just read (given its hash and size),
/// from what follows it in the stream.
pub(crate) type ReadInfo<'a> = dyn FnMut(&mut dyn Read, Hash, u64) -> Result<ValidPathInfo, StoreError> + 'a;

/// A temporary directory entry in the store that is removed unless handed over.
struct TempEntry {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if !self.keep {
            let _ = nar::delete_path(&self.path);
        }
    }
}

/// Writes to two sinks at once (the NAR hash and a content-address hash).
struct Tee<'a>(&'a mut dyn Write, &'a mut dyn Write);

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads from a source while hashing everything read.
struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hasher: Hasher,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let context = context.into();
    move |e| StoreError::io(context, e)
}

fn create_dirs(path: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(path).map_err(io_err(format!("creating directory '{}'", path.display())))
}

/// The current user's name, as CppNix's `getUserName` (`$USER` first).
fn user_name() -> Option<String> {
    if let Ok(user) = std::env::var("USER")
        && !user.is_empty() {
            return Some(user);
        }
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy
    // the name out immediately and this library is not used across threads here.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned())
    }
}

/// The gid of the `nixbld` build users group, if it exists.
fn build_users_gid() -> Option<libc::gid_t> {
    let name = std::ffi::CString::new("nixbld").ok()?;
    // SAFETY: as for getpwuid above.
    unsafe {
        let gr = libc::getgrnam(name.as_ptr());
        if gr.is_null() { None } else { Some((*gr).gr_gid) }
    }
}

impl LocalStore {
    /// Opens (creating on first use) the store described by `config`.
    pub fn open(config: LocalStoreConfig) -> Result<LocalStore, StoreError> {
        let store_dir =
            StoreDir::new(&config.store_dir).map_err(|e| StoreError::BadPath(e.to_string()))?;
        let db_dir = config.db_dir();
        if !config.read_only {
            Self::create_layout(&config)?;
        }
        let big_lock = if config.read_only {
            None
        } else {
            let file = locks::open_lock_file(&db_dir.join("big-lock"))?;
            if !locks::lock_file(&file, LockType::Read, false)? {
                eprintln!("waiting for the big Nix store lock...");
                locks::lock_file(&file, LockType::Read, true)?;
            }
            Some(file)
        };
        let schema_path = db_dir.join("schema");
        let current_schema = match fs::read_to_string(&schema_path) {
            Ok(s) => s.trim().parse::<u32>().map_err(|_| {
                StoreError::BadInput(format!("'{}' is corrupt", schema_path.display()))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(StoreError::io(format!("reading '{}'", schema_path.display()), e)),
        };
        let db_path = db_dir.join("db.sqlite");
        let conn = if current_schema > db::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current_schema,
                supported: db::SCHEMA_VERSION,
            });
        } else if current_schema == 0 {
            if config.read_only {
                return Err(StoreError::BadInput(format!(
                    "the store database at '{}' does not exist and the store is read-only",
                    db_path.display()
                )));
            }
            let conn = db::open(&db_path, true, false)?;
            // Written without a newline, as CppNix writes it.
            fs::write(&schema_path, db::SCHEMA_VERSION.to_string())
                .map_err(io_err(format!("writing '{}'", schema_path.display())))?;
            conn
        } else if current_schema < db::SCHEMA_VERSION {
            return Err(StoreError::SchemaTooOld(current_schema));
        } else {
            db::open(&db_path, false, config.read_only)?
        };
        Ok(LocalStore {
            temp_roots: locks::shared_temp_roots(&config.state_dir),
            store_dir,
            config,
            db: Mutex::new(conn),
            _big_lock: big_lock,
            temp_counter: AtomicU64::new(0),
        })
    }

    /// The directories and files CppNix's LocalStore constructor creates.
    fn create_layout(config: &LocalStoreConfig) -> Result<(), StoreError> {
        let state = &config.state_dir;
        create_dirs(&config.real_store_dir)?;
        create_dirs(&config.real_store_dir.join(".links"))?;
        let profiles = state.join("profiles");
        create_dirs(&profiles)?;
        create_dirs(&state.join("temproots"))?;
        create_dirs(&config.db_dir())?;
        let gcroots = state.join("gcroots");
        if !gcroots.exists() {
            create_dirs(&gcroots)?;
            std::os::unix::fs::symlink(&profiles, gcroots.join("profiles"))
                .map_err(io_err(format!("creating symlink in '{}'", gcroots.display())))?;
        }
        for per_user in [profiles.join("per-user"), gcroots.join("per-user")] {
            create_dirs(&per_user)?;
            let _ = fs::set_permissions(&per_user, fs::Permissions::from_mode(0o755));
            if let Some(user) = user_name() {
                let dir = per_user.join(user);
                create_dirs(&dir)?;
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
            }
        }
        // A multi-user store when root and the build group exists: root:nixbld 1775.
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0
            && let Some(gid) = build_users_gid() {
                use std::os::unix::fs::MetadataExt;
                let metadata = fs::metadata(&config.real_store_dir)
                    .map_err(io_err(format!("statting '{}'", config.real_store_dir.display())))?;
                if metadata.uid() != 0 || metadata.gid() != gid || metadata.mode() & 0o7777 != 0o1775 {
                    let _ = std::os::unix::fs::chown(&config.real_store_dir, Some(0), Some(gid));
                    let _ = fs::set_permissions(
                        &config.real_store_dir,
                        fs::Permissions::from_mode(0o1775),
                    );
                }
            }
        // Space to free before a GC when the disk is full; errors do not matter.
        let reserved = config.db_dir().join("reserved");
        if fs::metadata(&reserved).map(|m| m.len()).ok() != Some(RESERVED_SIZE)
            && let Ok(file) = fs::OpenOptions::new().write(true).create(true).truncate(false).open(&reserved) {
                use std::os::fd::AsRawFd;
                let _ = fs::set_permissions(&reserved, fs::Permissions::from_mode(0o600));
                // Really allocated (a sparse file would reserve nothing).
                // SAFETY: posix_fallocate on a descriptor we own.
                let allocated = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, RESERVED_SIZE as libc::off_t) } == 0;
                if !allocated {
                    let _ = file.set_len(RESERVED_SIZE);
                }
            }
        Ok(())
    }

    pub fn config(&self) -> &LocalStoreConfig {
        &self.config
    }

    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave the connection half-updated
        // (transactions roll back on drop), so a poisoned lock is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn to_real_path(&self, path: &StorePath) -> PathBuf {
        self.config.real_store_dir.join(path.base_name())
    }

    pub(crate) fn printed(&self, path: &StorePath) -> String {
        self.store_dir.print_path(path)
    }

    fn parse_printed(&self, printed: &str) -> Result<StorePath, StoreError> {
        self.store_dir.parse_path(printed).map_err(|e| {
            StoreError::BadInput(format!("the store database holds a bad path '{printed}': {e}"))
        })
    }

    /// A fresh temporary name in the real store directory, shaped like a store
    /// path (`<random hash>-nivis-tmp-<pid>`) and recorded as a temporary root
    /// before anything is written there: CppNix's collector deletes every entry
    /// of the store directory that is not a live store path, and temporary roots
    /// (matched by hash part) are what it spares.
    fn new_temp_entry(&self) -> Result<TempEntry, StoreError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let mut seed = [0u8; 20];
        let random = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
        if random.is_err() {
            // Unique enough without randomness: pid, counter and time.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let text = format!("{}-{n}-{nanos}", std::process::id());
            seed.copy_from_slice(&Hash::of_bytes(HashAlgorithm::Sha256, text.as_bytes()).digest()[..20]);
        }
        let base_name = format!("{}-{TEMP_MARKER}{}", nivis_formats::nixbase32::encode(&seed), std::process::id());
        let temp_path = StorePath::from_base_name(&base_name).map_err(|e| StoreError::BadPath(e.to_string()))?;
        self.add_temp_root(&temp_path)?;
        Ok(TempEntry { path: self.config.real_store_dir.join(base_name), keep: false })
    }

    /// Records `path` as a temporary GC root of this process.
    pub fn add_temp_root(&self, path: &StorePath) -> Result<(), StoreError> {
        if self.config.read_only {
            return Ok(());
        }
        let printed = self.printed(path);
        self.temp_roots.lock().unwrap_or_else(|p| p.into_inner()).add(&printed)
    }

    pub(crate) fn check_writable(&self, operation: &str) -> Result<(), StoreError> {
        if self.config.read_only {
            return Err(StoreError::Unsupported {
                operation: operation.to_string(),
                store: self.uri(),
            });
        }
        Ok(())
    }

    /// Computes SHA-256 NAR hash and size of a file system object.
    fn nar_hash_of(&self, real: &Path) -> Result<(Hash, u64), StoreError> {
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        nar::dump_path(real, &mut hasher)?;
        let size = hasher.bytes_hashed();
        Ok((hasher.finish(), size))
    }

    /// Steps 3 to 5 of adding a path (see the module comment): `temp` holds the
    /// finished contents of `info.path`.
    fn move_into_place(&self, mut temp: TempEntry, info: ValidPathInfo, repair: bool) -> Result<(), StoreError> {
        self.add_temp_root(&info.path)?;
        if !repair && self.is_valid_path(&info.path)? {
            return Ok(());
        }
        let real = self.to_real_path(&info.path);
        let printed = self.printed(&info.path);
        let _lock = PathLock::lock(&real, || {
            eprintln!("waiting for lock on '{printed}'...");
        })?;
        if !repair && self.is_valid_path(&info.path)? {
            return Ok(());
        }
        // Whatever is at the final name is not a valid path (or is being
        // repaired): a leftover of a crashed process, safe to remove under the lock.
        nar::delete_path(&real)?;
        fs::rename(&temp.path, &real)
            .map_err(io_err(format!("moving '{}' into place", real.display())))?;
        temp.keep = true;
        // The contents and the name must be on disk before the database row
        // says they are there. Syncing after the rename is as safe as before
        // it (until the row is written the name is an invalid leftover) and
        // lets one sync carry both where the file system allows
        // (`sync_new_entry`): one disk flush per small path instead of two or
        // three.
        let synced = nar::sync_new_entry(&real, &self.config.real_store_dir);
        if let Err(e) = synced {
            if !self.is_valid_path(&info.path).unwrap_or(true) {
                let _ = nar::delete_path(&real);
            }
            return Err(e);
        }
        if let Err(e) = self.register_valid_paths_in_db(std::slice::from_ref(&info)) {
            // Never leave unregistered contents under a store path name.
            if !self.is_valid_path(&info.path).unwrap_or(true) {
                let _ = nar::delete_path(&real);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Takes `<path>.lock` for a store path (waiting, with a message, if another
    /// process holds it), as CppNix does before writing a path.
    pub fn lock_path(&self, path: &StorePath) -> Result<PathLock, StoreError> {
        let printed = self.printed(path);
        PathLock::lock(&self.to_real_path(path), || eprintln!("waiting for lock on '{printed}'..."))
    }

    /// Registers paths (info and references) in one transaction. Existing
    /// rows are updated. References must be valid or among `infos`.
    fn register_valid_paths_in_db(&self, infos: &[ValidPathInfo]) -> Result<(), StoreError> {
        self.check_writable("registerValidPaths")?;
        let mut conn = self.db();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Database { context: "starting a transaction".into(), error: e })?;
        let mut ids = BTreeMap::new();
        for info in infos {
            let printed = self.printed(&info.path);
            let nar_hash = info.nar_hash.encode(HashEncoding::Base16, true);
            let deriver = info.deriver.as_ref().map(|d| self.printed(d));
            let sigs: Vec<String> = info.sigs.iter().cloned().collect();
            let ca = info.ca.as_ref().map(ContentAddress::to_string);
            let row = NewPathRow {
                path: &printed,
                hash: &nar_hash,
                registration_time: info.registration_time,
                deriver: deriver.as_deref(),
                nar_size: info.nar_size,
                ultimate: info.ultimate,
                sigs: &sigs,
                ca: ca.as_deref(),
            };
            let id = match db::path_id(&tx, &printed)? {
                Some(id) => {
                    db::update_path(&tx, &row)?;
                    id
                }
                None => {
                    let id = db::insert_path(&tx, &row)?;
                    if info.path.is_derivation() {
                        self.register_derivation_outputs(&tx, id, &info.path)?;
                    }
                    id
                }
            };
            ids.insert(info.path.clone(), id);
        }
        for info in infos {
            let referrer = ids[&info.path];
            for reference in &info.references {
                let reference_id = match ids.get(reference) {
                    Some(id) => *id,
                    None => db::path_id(&tx, &self.printed(reference))?.ok_or_else(|| {
                        StoreError::BadInput(format!(
                            "cannot register path '{}' because its reference '{}' is not valid",
                            self.printed(&info.path),
                            self.printed(reference)
                        ))
                    })?,
                };
                db::insert_reference(&tx, referrer, reference_id)?;
            }
        }
        // Refuse reference cycles among the new paths (self-references are fine).
        crate::closure::topo_sort_with(infos.iter().map(|i| i.path.clone()).collect(), |p| {
            Ok(infos
                .iter()
                .find(|i| &i.path == p)
                .map(|i| i.references.clone())
                .unwrap_or_default())
        }, &self.store_dir)?;
        tx.commit()
            .map_err(|e| StoreError::Database { context: "committing path registration".into(), error: e })
    }

    /// Fills `DerivationOutputs` for a `.drv` just registered, as CppNix does,
    /// by reading its output paths from the file.
    fn register_derivation_outputs(
        &self,
        conn: &Connection,
        drv_id: i64,
        drv_path: &StorePath,
    ) -> Result<(), StoreError> {
        let real = self.to_real_path(drv_path);
        let bytes = fs::read(&real).map_err(io_err(format!("reading derivation '{}'", real.display())))?;
        let derivation = nivis_formats::Derivation::parse(&self.store_dir, &bytes).map_err(|e| {
            StoreError::BadInput(format!("error parsing derivation '{}': {e}", self.printed(drv_path)))
        })?;
        for (output_name, output) in &derivation.outputs {
            if let Some(output_path) = output.path() {
                db::insert_derivation_output(conn, drv_id, output_name, &self.printed(output_path))?;
            }
        }
        Ok(())
    }

    fn row_to_info(&self, conn: &Connection, row: db::PathRow) -> Result<ValidPathInfo, StoreError> {
        let path = self.parse_printed(&row.path)?;
        let nar_hash = Hash::parse_any(&row.hash, Some(HashAlgorithm::Sha256)).map_err(|e| {
            StoreError::BadInput(format!("bad hash '{}' of path '{}' in the database: {e}", row.hash, row.path))
        })?;
        let references = db::references(conn, row.id)?
            .iter()
            .map(|r| self.parse_printed(r))
            .collect::<Result<StorePathSet, _>>()?;
        let deriver = match &row.deriver {
            Some(d) => Some(self.parse_printed(d)?),
            None => None,
        };
        let ca = match &row.ca {
            Some(ca) => Some(ContentAddress::parse(ca).map_err(|e| {
                StoreError::BadInput(format!("bad content address of '{}' in the database: {e}", row.path))
            })?),
            None => None,
        };
        Ok(ValidPathInfo {
            path,
            deriver,
            nar_hash,
            references,
            registration_time: row.registration_time,
            nar_size: row.nar_size.unwrap_or(0),
            ultimate: row.ultimate,
            sigs: row.sigs.into_iter().collect(),
            ca,
        })
    }

    /// Restores a NAR stream into a fresh temporary entry, returning its SHA-256
    /// and size as read.
    fn restore_to_temp(&self, nar_stream: &mut dyn Read) -> Result<(TempEntry, Hash, u64), StoreError> {
        let temp = self.new_temp_entry()?;
        let mut reader = HashingReader { inner: nar_stream, hasher: Hasher::new(HashAlgorithm::Sha256) };
        nar::restore_path(&mut reader, &temp.path)?;
        let size = reader.hasher.bytes_hashed();
        Ok((temp, reader.hasher.finish(), size))
    }

    /// Checks that the contents at `real` match `info.ca` and `info.path`.
    /// Checks that `info.ca` describes the contents at `real`. `nar_hash` is
    /// the SHA-256 of the NAR just restored there, which is already the
    /// content hash of a recursive SHA-256 path: no need to read it back.
    fn check_content_address(&self, real: &Path, info: &ValidPathInfo, nar_hash: &Hash) -> Result<(), StoreError> {
        let Some(ca) = &info.ca else { return Ok(()) };
        let actual = match ca {
            ContentAddress::Fixed(FileIngestionMethod::Recursive, hash)
                if hash.algorithm() == HashAlgorithm::Sha256 && nar_hash.algorithm() == HashAlgorithm::Sha256 =>
            {
                nar_hash.clone()
            }
            ContentAddress::Text(_) | ContentAddress::Fixed(FileIngestionMethod::Flat, _) => {
                let mut hasher = Hasher::new(ca.hash().algorithm());
                let mut file = File::open(real).map_err(io_err(format!("opening '{}'", real.display())))?;
                io::copy(&mut file, &mut hasher).map_err(io_err(format!("reading '{}'", real.display())))?;
                hasher.finish()
            }
            ContentAddress::Fixed(FileIngestionMethod::Recursive, hash) => {
                let mut hasher = Hasher::new(hash.algorithm());
                nar::dump_path(real, &mut hasher)?;
                hasher.finish()
            }
        };
        let expected_path = ca
            .store_path(&self.store_dir, info.path.name(), &info.references, Some(&info.path))
            .map_err(|e| StoreError::BadPath(e.to_string()))?;
        if &actual != ca.hash() || expected_path != info.path {
            return Err(StoreError::BadInput(format!(
                "ca hash mismatch importing path '{}';\n  specified: {}\n  got:       {}",
                self.printed(&info.path),
                ca.hash().encode(HashEncoding::Nix32, true),
                actual.encode(HashEncoding::Nix32, true)
            )));
        }
        Ok(())
    }

    /// Imports one NAR whose info is only known after it was read (the export
    /// format puts the NAR first): restore, then ask `read_info` for the info.
    pub(crate) fn import_one(
        &self,
        nar_stream: &mut dyn Read,
        read_info: &mut ReadInfo<'_>,
    ) -> Result<StorePath, StoreError> {
        self.check_writable("importPaths")?;
        let (temp, nar_hash, nar_size) = self.restore_to_temp(nar_stream)?;
        let info = read_info(nar_stream, nar_hash, nar_size)?;
        let path = info.path.clone();
        self.move_into_place(temp, info, false)?;
        Ok(path)
    }

    /// Removes temporary entries (`<hash>-nivis-tmp-<pid>`) left in the store
    /// directory by processes that died mid-add; returns how many were removed.
    /// Entries of live processes are left alone.
    pub fn remove_stale_temporaries(&self) -> Result<usize, StoreError> {
        self.check_writable("removeStaleTemporaries")?;
        let mut removed = 0;
        let entries = fs::read_dir(&self.config.real_store_dir)
            .map_err(io_err(format!("reading '{}'", self.config.real_store_dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((_, pid)) = name.split_once(&format!("-{TEMP_MARKER}")) else { continue };
            let Ok(pid) = pid.parse::<libc::pid_t>() else { continue };
            // SAFETY: kill with signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive {
                nar::delete_path(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Store for LocalStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn uri(&self) -> String {
        match &self.config.root {
            Some(root) => format!("local?root={}", root.display()),
            None => "local".to_string(),
        }
    }

    fn real_path(&self, path: &StorePath) -> Option<PathBuf> {
        Some(self.to_real_path(path))
    }

    fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError> {
        let conn = self.db();
        match db::query_path(&conn, &self.printed(path))? {
            Some(row) => Ok(Some(self.row_to_info(&conn, row)?)),
            None => Ok(None),
        }
    }

    fn is_valid_path(&self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(db::path_id(&self.db(), &self.printed(path))?.is_some())
    }

    fn query_referrers(&self, path: &StorePath) -> Result<StorePathSet, StoreError> {
        db::referrers(&self.db(), &self.printed(path))?
            .iter()
            .map(|p| self.parse_printed(p))
            .collect()
    }

    fn query_valid_derivers(&self, path: &StorePath) -> Result<StorePathSet, StoreError> {
        db::valid_derivers(&self.db(), &self.printed(path))?
            .iter()
            .map(|p| self.parse_printed(p))
            .collect()
    }

    fn query_derivation_outputs(&self, drv_path: &StorePath) -> Result<BTreeMap<String, StorePath>, StoreError> {
        let conn = self.db();
        let Some(id) = db::path_id(&conn, &self.printed(drv_path))? else {
            return Err(StoreError::InvalidPath(self.printed(drv_path)));
        };
        db::derivation_outputs(&conn, id)?
            .into_iter()
            .map(|(name, path)| Ok((name, self.parse_printed(&path)?)))
            .collect()
    }

    fn query_all_valid_paths(&self) -> Result<StorePathSet, StoreError> {
        db::all_paths(&self.db())?.iter().map(|p| self.parse_printed(p)).collect()
    }

    fn add_to_store(
        &self,
        name: &str,
        source: &Path,
        method: FileIngestionMethod,
        hash_algo: HashAlgorithm,
        references: &StorePathSet,
        repair: bool,
    ) -> Result<StorePath, StoreError> {
        self.check_writable("addToStore")?;
        nivis_formats::check_name(name, name).map_err(|e| StoreError::BadPath(e.to_string()))?;
        let metadata = fs::symlink_metadata(source)
            .map_err(io_err(format!("getting status of '{}'", source.display())))?;
        if method == FileIngestionMethod::Flat && !metadata.is_file() {
            return Err(StoreError::BadInput(format!(
                "file '{}' is not a regular file; add it recursively",
                source.display()
            )));
        }
        let temp = self.new_temp_entry()?;
        nar::copy_canonical(source, &temp.path)?;
        let mut nar_hasher = Hasher::new(HashAlgorithm::Sha256);
        let ca_hash = match method {
            FileIngestionMethod::Recursive if hash_algo == HashAlgorithm::Sha256 => {
                nar::dump_path(&temp.path, &mut nar_hasher)?;
                None
            }
            FileIngestionMethod::Recursive => {
                let mut ca_hasher = Hasher::new(hash_algo);
                nar::dump_path(&temp.path, &mut Tee(&mut nar_hasher, &mut ca_hasher))?;
                Some(ca_hasher.finish())
            }
            FileIngestionMethod::Flat => {
                let mut ca_hasher = Hasher::new(hash_algo);
                let mut file = File::open(&temp.path).map_err(io_err("reading the new path"))?;
                io::copy(&mut file, &mut ca_hasher).map_err(io_err("reading the new path"))?;
                nar::dump_path(&temp.path, &mut nar_hasher)?;
                Some(ca_hasher.finish())
            }
        };
        let nar_size = nar_hasher.bytes_hashed();
        let nar_hash = nar_hasher.finish();
        let ca_hash = ca_hash.unwrap_or(nar_hash);
        let ca = ContentAddress::Fixed(method, ca_hash);
        let path = ca
            .store_path(&self.store_dir, name, references, None)
            .map_err(|e| StoreError::BadPath(e.to_string()))?;
        let mut info = ValidPathInfo::new(path.clone(), nar_hash, nar_size);
        info.references = references.clone();
        info.ca = Some(ca);
        self.move_into_place(temp, info, repair)?;
        Ok(path)
    }

    fn add_text_to_store(
        &self,
        name: &str,
        contents: &[u8],
        references: &StorePathSet,
        repair: bool,
    ) -> Result<StorePath, StoreError> {
        self.check_writable("addTextToStore")?;
        let hash = Hash::of_bytes(HashAlgorithm::Sha256, contents);
        let path = self
            .store_dir
            .make_text_path(name, &hash, references)
            .map_err(|e| StoreError::BadPath(e.to_string()))?;
        if !repair && self.is_valid_path(&path)? {
            self.add_temp_root(&path)?;
            return Ok(path);
        }
        let temp = self.new_temp_entry()?;
        {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp.path)
                .map_err(io_err(format!("creating '{}'", temp.path.display())))?;
            file.write_all(contents).map_err(io_err("writing text to the store"))?;
        }
        fs::set_permissions(&temp.path, fs::Permissions::from_mode(0o444))
            .map_err(io_err("setting permissions"))?;
        nar::set_mtime_one(&temp.path)?;
        let (nar_hash, nar_size) = self.nar_hash_of(&temp.path)?;
        let mut info = ValidPathInfo::new(path.clone(), nar_hash, nar_size);
        info.references = references.clone();
        info.ca = Some(ContentAddress::Text(hash));
        self.move_into_place(temp, info, repair)?;
        Ok(path)
    }

    fn add_nar(&self, info: &ValidPathInfo, nar_stream: &mut dyn Read, repair: bool) -> Result<(), StoreError> {
        self.check_writable("addToStore")?;
        // A valid path is never rewritten (the stream is left unread, as CppNix does).
        self.add_temp_root(&info.path)?;
        if !repair && self.is_valid_path(&info.path)? {
            return Ok(());
        }
        let (temp, nar_hash, nar_size) = self.restore_to_temp(nar_stream)?;
        if nar_hash != info.nar_hash {
            return Err(StoreError::HashMismatch {
                path: self.printed(&info.path),
                expected: info.nar_hash.encode(HashEncoding::Nix32, true),
                actual: nar_hash.encode(HashEncoding::Nix32, true),
            });
        }
        if info.nar_size != 0 && nar_size != info.nar_size {
            return Err(StoreError::BadInput(format!(
                "size mismatch importing path '{}';\n  specified: {}\n  got:       {}",
                self.printed(&info.path),
                info.nar_size,
                nar_size
            )));
        }
        self.check_content_address(&temp.path, info, &nar_hash)?;
        let mut info = info.clone();
        info.nar_size = nar_size;
        self.move_into_place(temp, info, repair)
    }

    fn nar_from_path(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        if !self.is_valid_path(path)? {
            return Err(StoreError::InvalidPath(self.printed(path)));
        }
        nar::dump_path(&self.to_real_path(path), sink)
    }

    fn import_paths(&self, source: &mut dyn Read) -> Result<Vec<StorePath>, StoreError> {
        crate::export::import_into_local(self, source)
    }

    fn register_valid_paths(&self, infos: &[ValidPathInfo]) -> Result<(), StoreError> {
        self.register_valid_paths_in_db(infos)
    }

    fn as_local(&self) -> Option<&LocalStore> {
        Some(self)
    }

    fn add_signatures(&self, path: &StorePath, sigs: &[String]) -> Result<(), StoreError> {
        self.check_writable("addSignatures")?;
        let mut conn = self.db();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| StoreError::Database { context: "starting a transaction".into(), error: e })?;
        let printed = self.printed(path);
        let row = db::query_path(&tx, &printed)?.ok_or_else(|| StoreError::InvalidPath(printed.clone()))?;
        let mut all: BTreeSet<String> = row.sigs.into_iter().collect();
        all.extend(sigs.iter().cloned());
        db::set_sigs(&tx, &printed, &all.into_iter().collect::<Vec<_>>())?;
        tx.commit()
            .map_err(|e| StoreError::Database { context: "committing signatures".into(), error: e })
    }

    fn delete_paths(&self, paths: &StorePathSet) -> Result<(Vec<StorePath>, u64), StoreError> {
        // The collector does the work (roots, temporary roots, referrers first,
        // invalid before gone); see `gc.rs`.
        let options = crate::gc::GcOptions {
            action: crate::gc::GcAction::DeleteSpecific,
            paths_to_delete: paths.clone(),
            ..crate::gc::GcOptions::default()
        };
        let mut results = crate::gc::GcResults::default();
        self.collect_garbage(&options, &mut results)?;
        let deleted = results
            .paths
            .iter()
            .filter_map(|printed| self.store_dir.parse_path(printed).ok())
            .collect();
        Ok((deleted, results.bytes_freed))
    }

    fn verify_store(&self, check_contents: bool, repair: bool) -> Result<VerifyReport, StoreError> {
        self.check_writable("verifyStore")?;
        let mut report = VerifyReport::default();
        self.remove_stale_temporaries()?;
        eprintln!("reading the Nix store...");
        let on_disk: BTreeSet<String> = fs::read_dir(&self.config.real_store_dir)
            .map_err(io_err(format!("reading '{}'", self.config.real_store_dir.display())))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        eprintln!("checking path existence...");
        let all = self.query_all_valid_paths()?;
        let mut existing = StorePathSet::new();
        // Invalidate vanished paths referrers-first; a vanished path that a
        // present path still refers to cannot be invalidated.
        let order = crate::closure::topo_sort_paths(self, &all)?;
        let mut invalidated = StorePathSet::new();
        for path in &order {
            if on_disk.contains(path.base_name()) {
                existing.insert(path.clone());
                continue;
            }
            let referrers = self.query_referrers(path)?;
            let blocked = referrers.iter().any(|r| r != path && !invalidated.contains(r));
            let printed = self.printed(path);
            if blocked {
                eprintln!("path '{printed}' disappeared, but it still has valid referrers!");
                report.missing.push(printed);
                report.errors = true;
            } else {
                eprintln!("path '{printed}' disappeared, removing from database...");
                let conn = self.db();
                db::delete_path(&conn, &printed)?;
                invalidated.insert(path.clone());
                report.repaired.push(printed);
            }
        }
        if check_contents {
            eprintln!("checking store hashes...");
            for path in &existing {
                let Some(info) = self.query_path_info(path)? else { continue };
                let printed = self.printed(path);
                let (actual, size) = match self.nar_hash_of(&self.to_real_path(path)) {
                    Ok(result) => result,
                    Err(e) => {
                        eprintln!("error: {e}");
                        report.errors = true;
                        continue;
                    }
                };
                if actual != info.nar_hash {
                    eprintln!(
                        "path '{printed}' was modified! expected hash '{}', got '{}'",
                        info.nar_hash.encode(HashEncoding::Nix32, true),
                        actual.encode(HashEncoding::Nix32, true)
                    );
                    report.hash_mismatches.push((
                        printed.clone(),
                        info.nar_hash.encode(HashEncoding::Nix32, true),
                        actual.encode(HashEncoding::Nix32, true),
                    ));
                    // Repairing needs a substituter to fetch the right contents
                    // from; without one the path stays broken.
                    if repair {
                        eprintln!("error: cannot repair path '{printed}'");
                    }
                    report.errors = true;
                } else if info.nar_size == 0 {
                    eprintln!("updating size field on '{printed}' to {size}");
                    db::update_hash(&self.db(), &printed, &actual.encode(HashEncoding::Base16, true), size)?;
                    report.repaired.push(printed);
                }
            }
        }
        Ok(report)
    }
}
