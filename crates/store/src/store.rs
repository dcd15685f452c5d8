//! The `Store` trait: what every backend (local, dummy; later binary caches and the
//! daemon client) answers, plus the value types that cross it.
//!
//! The trait is object-safe and synchronous: callers hold a `Box<dyn Store>` made
//! by [`crate::open_store`] from a URI, and byte streams pass as `&mut dyn Read` /
//! `&mut dyn Write`. Operations a backend cannot do return
//! [`StoreError::Unsupported`], never a silent empty answer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use nivis_formats::{ContentAddress, FileIngestionMethod, Hash, HashAlgorithm, StoreDir, StorePath, StorePathSet};

use crate::error::StoreError;

/// Everything the store knows about a valid path (CppNix's `ValidPathInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPathInfo {
    pub path: StorePath,
    pub deriver: Option<StorePath>,
    /// SHA-256 of the path's NAR serialisation.
    pub nar_hash: Hash,
    pub references: StorePathSet,
    /// Seconds since the epoch.
    pub registration_time: i64,
    pub nar_size: u64,
    /// Built locally (trusted without signatures).
    pub ultimate: bool,
    /// `keyname:base64sig` strings.
    pub sigs: BTreeSet<String>,
    pub ca: Option<ContentAddress>,
}

impl ValidPathInfo {
    /// A fresh info with no deriver, signatures or CA, registered now.
    pub fn new(path: StorePath, nar_hash: Hash, nar_size: u64) -> Self {
        ValidPathInfo {
            path,
            deriver: None,
            nar_hash,
            references: StorePathSet::new(),
            registration_time: now(),
            nar_size,
            ultimate: false,
            sigs: BTreeSet::new(),
            ca: None,
        }
    }
}

/// Seconds since the epoch (registration times).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The outcome of a verification pass over the whole store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Paths registered as valid whose contents are missing from disk.
    pub missing: Vec<String>,
    /// Paths whose NAR hash differs from the recorded one: (path, recorded, actual).
    pub hash_mismatches: Vec<(String, String, String)>,
    /// Paths fixed by `--repair` (hash or size updated, or invalidated).
    pub repaired: Vec<String>,
    /// Whether errors remain (CppNix then exits 1 from `--verify`).
    pub errors: bool,
}

/// One backend. Every method is synchronous and may block on locks.
pub trait Store {
    /// The logical store directory paths are printed under (`/nix/store`).
    fn store_dir(&self) -> &StoreDir;

    /// The URI this store was opened from, for messages.
    fn uri(&self) -> String;

    /// Where the files of a store path are on disk, for stores that have them.
    fn real_path(&self, path: &StorePath) -> Option<PathBuf> {
        let _ = path;
        None
    }

    /// The info of a valid path, or `None` if the path is not valid.
    fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError>;

    fn is_valid_path(&self, path: &StorePath) -> Result<bool, StoreError> {
        Ok(self.query_path_info(path)?.is_some())
    }

    // The operations below have defaults that say the store does not support
    // them, as most stores other than the local one (binary caches, ssh://)
    // do not: CppNix's `unsupported(...)` for each.

    /// Valid paths that have `path` among their references.
    fn query_referrers(&self, path: &StorePath) -> Result<StorePathSet, StoreError> {
        let _ = path;
        Err(unsupported(self.uri(), "queryReferrers"))
    }

    /// Valid `.drv` paths that list `path` as one of their outputs.
    fn query_valid_derivers(&self, path: &StorePath) -> Result<StorePathSet, StoreError> {
        let _ = path;
        Err(unsupported(self.uri(), "queryValidDerivers"))
    }

    /// Output name to output path, for a valid input-addressed derivation.
    fn query_derivation_outputs(&self, drv_path: &StorePath) -> Result<BTreeMap<String, StorePath>, StoreError> {
        let _ = drv_path;
        Err(unsupported(self.uri(), "queryDerivationOutputs"))
    }

    fn query_all_valid_paths(&self) -> Result<StorePathSet, StoreError> {
        Err(unsupported(self.uri(), "queryAllValidPaths"))
    }

    /// The valid path whose hash part (the 32 nix32 characters of its base
    /// name) is `hash_part`, as CppNix's `queryPathFromHashPart`: one indexed
    /// query, never a scan of every path. The local store answers it
    /// (`hash_part.rs`); other stores say it is unsupported.
    fn query_path_from_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError> {
        match self.as_local() {
            Some(local) => local.query_path_from_hash_part(hash_part),
            None => Err(StoreError::Unsupported { operation: "queryPathFromHashPart".into(), store: self.uri() }),
        }
    }

    /// How many bytes fetching `path` from this store downloads (a binary
    /// cache's compressed NAR), if the store knows; for the "will be fetched" summary.
    fn download_size(&self, _path: &StorePath) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    /// Adds a file system object by content (`nix-store --add`, `--add-fixed`,
    /// `builtins.path`): `Recursive` hashes its NAR, `Flat` the bytes of a regular
    /// file, with `hash_algo` (store path types `source` or `fixed:out`).
    fn add_to_store(
        &self,
        name: &str,
        source: &Path,
        method: FileIngestionMethod,
        hash_algo: HashAlgorithm,
        references: &StorePathSet,
        repair: bool,
    ) -> Result<StorePath, StoreError> {
        let _ = (name, source, method, hash_algo, references, repair);
        Err(unsupported(self.uri(), "addToStore"))
    }

    /// Adds a text file (`builtins.toFile`, `.drv` files).
    fn add_text_to_store(
        &self,
        name: &str,
        contents: &[u8],
        references: &StorePathSet,
        repair: bool,
    ) -> Result<StorePath, StoreError> {
        let _ = (name, contents, references, repair);
        Err(unsupported(self.uri(), "addTextToStore"))
    }

    /// Adds `info.path` from a NAR stream (imports, substitution, copying). The
    /// stream's SHA-256 and size must equal `info.nar_hash` and `info.nar_size`
    /// (when non-zero); otherwise nothing is registered.
    fn add_nar(&self, info: &ValidPathInfo, nar: &mut dyn Read, repair: bool) -> Result<(), StoreError>;

    /// Writes the NAR serialisation of a valid path.
    fn nar_from_path(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError>;

    /// [`Store::nar_from_path`] for a consumer that itself checks the NAR
    /// against the `nar_hash` this store's `query_path_info` gives (a local
    /// store's `add_nar` does): a store that hashes the NAR it sends to check
    /// it (a binary cache) may leave that to the consumer and save hashing it
    /// twice. Every other check still happens here.
    fn nar_from_path_for_checking_consumer(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        self.nar_from_path(path, sink)
    }

    /// Adds signatures (`keyname:sig`) to a valid path's info.
    fn add_signatures(&self, path: &StorePath, sigs: &[String]) -> Result<(), StoreError> {
        let _ = (path, sigs);
        Err(unsupported(self.uri(), "addSignatures"))
    }

    /// Deletes the given paths, refusing any that another valid path (outside the
    /// set) still refers to or that a GC root keeps alive. Returns what was deleted
    /// and the number of bytes freed.
    fn delete_paths(&self, paths: &StorePathSet) -> Result<(Vec<StorePath>, u64), StoreError> {
        let _ = paths;
        Err(StoreError::Unsupported { operation: "deletePaths".into(), store: self.uri() })
    }

    /// Checks that every valid path exists (and, with `check_contents`, that its
    /// NAR hash matches); `repair` fixes the database where it can.
    fn verify_store(&self, check_contents: bool, repair: bool) -> Result<VerifyReport, StoreError> {
        let _ = (check_contents, repair);
        Err(StoreError::Unsupported { operation: "verifyStore".into(), store: self.uri() })
    }

    /// Reads a `nix-store --export` stream and adds every path in it; returns
    /// the imported paths in stream order.
    fn import_paths(&self, source: &mut dyn Read) -> Result<Vec<StorePath>, StoreError> {
        let _ = source;
        Err(StoreError::Unsupported { operation: "importPaths".into(), store: self.uri() })
    }

    /// Registers paths whose contents are already complete at their real
    /// location (a build's outputs), info and references in one transaction.
    /// The caller holds the paths' locks while writing them.
    fn register_valid_paths(&self, infos: &[ValidPathInfo]) -> Result<(), StoreError> {
        let _ = infos;
        Err(StoreError::Unsupported { operation: "registerValidPaths".into(), store: self.uri() })
    }

    /// The local backend behind this store, for callers that need its file
    /// system side (path locks, temporary roots).
    fn as_local(&self) -> Option<&crate::LocalStore> {
        None
    }

    /// This store as one that several threads may use at once (for parallel
    /// copies), if it is one; a local store is reachable through
    /// [`Store::as_local`] already.
    fn as_shared(&self) -> Option<&(dyn Store + Sync)> {
        None
    }

    /// Parses a printed path (`/nix/store/<hash>-<name>`) of this store.
    fn parse_store_path(&self, printed: &str) -> Result<StorePath, StoreError> {
        self.store_dir()
            .parse_path(printed)
            .map_err(|e| StoreError::BadPath(e.to_string()))
    }

    fn print_store_path(&self, path: &StorePath) -> String {
        self.store_dir().print_path(path)
    }
}

/// The error of an operation a store does not support.
fn unsupported(store: String, operation: &str) -> StoreError {
    StoreError::Unsupported { operation: operation.to_string(), store }
}
