//! The one crate that joins the evaluator to the store. It implements
//! [`nivis_eval::EvalIO`] over a [`nivis_store::Store`]: `derivationStrict` builds a
//! [`nivis_formats::Derivation`], computes its output paths with
//! `hashDerivationModulo` and writes the `.drv`; path coercion, `builtins.path` and
//! `filterSource` copy files into the store; `toFile` writes text files.
//!
//! Assumptions: one [`StoreEvalIO`] serves one evaluation on one thread (the
//! evaluator is `Rc`-based). In read-only mode (`nix-instantiate --eval`, `nix
//! eval`), paths are computed exactly as they would be written, but nothing is
//! written; derivations computed in this evaluation are remembered in memory so
//! that derivations depending on them hash correctly without a `.drv` on disk.

mod derivation;
mod fetch;
mod path_import;

pub use fetch::{format_last_modified_date, set_thread_fetch_settings};
pub use nivis_fetch::FetchSettings;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use nivis_eval::io::{DerivationRequest, DerivationResult, FetchValue, FileType, PathFilter};
use nivis_eval::{EvalIO, FsIO, IoError};
use nivis_formats::{Derivation, DrvHashCache, StoreDir, StorePath, StorePathSet};
use nivis_store::Store;

/// An [`EvalIO`] over a store: the real file system for reading, the store for
/// everything that creates store paths.
pub struct StoreEvalIO {
    store: Box<dyn Store>,
    read_only: bool,
    fs: FsIO,
    /// Hash modulo of every derivation met so far (CppNix's `drvHashes`).
    drv_hashes: RefCell<DrvHashCache>,
    /// Derivations computed in this evaluation, by path, for read-only mode.
    computed_derivations: RefCell<HashMap<StorePath, Derivation>>,
}

impl StoreEvalIO {
    /// `read_only`: compute store paths without writing anything to the store.
    pub fn new(store: Box<dyn Store>, read_only: bool) -> StoreEvalIO {
        StoreEvalIO {
            store,
            read_only,
            fs: FsIO,
            drv_hashes: RefCell::new(DrvHashCache::new()),
            computed_derivations: RefCell::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    fn store_dir(&self) -> &StoreDir {
        self.store.store_dir()
    }

    fn parse_path(&self, printed: &str) -> Result<StorePath, IoError> {
        self.store_dir()
            .parse_path(printed)
            .map_err(|e| IoError::Message(format!("path '{printed}' is not a valid store path: {e}")))
    }

    fn parse_references(&self, references: &[String]) -> Result<StorePathSet, IoError> {
        references.iter().map(|r| self.parse_path(r)).collect()
    }
}

fn store_error(error: nivis_store::StoreError) -> IoError {
    IoError::Message(error.to_string())
}

impl EvalIO for StoreEvalIO {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, IoError> {
        self.fs.read_file(path)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, FileType)>, IoError> {
        self.fs.read_dir(path)
    }
    fn path_exists(&self, path: &Path) -> Result<bool, IoError> {
        self.fs.path_exists(path)
    }
    fn file_type(&self, path: &Path) -> Result<FileType, IoError> {
        self.fs.file_type(path)
    }
    fn is_directory(&self, path: &Path) -> Result<bool, IoError> {
        self.fs.is_directory(path)
    }
    fn store_dir(&self) -> String {
        self.store_dir().as_str().to_string()
    }

    fn add_to_store(
        &self,
        path: &Path,
        name: &str,
        recursive: bool,
        filter: Option<&mut PathFilter<'_>>,
    ) -> Result<String, IoError> {
        let store_path = path_import::add_path(self, path, name, recursive, filter)?;
        Ok(self.store_dir().print_path(&store_path))
    }

    fn to_file(&self, name: &str, contents: &[u8], references: &[String]) -> Result<String, IoError> {
        let references = self.parse_references(references)?;
        let path = if self.read_only {
            self.store_dir().compute_text_path(name, contents, &references)
                .map_err(|e| IoError::Message(e.to_string()))?
        } else {
            self.store.add_text_to_store(name, contents, &references, false).map_err(store_error)?
        };
        Ok(self.store_dir().print_path(&path))
    }

    fn derivation_strict(&self, request: &DerivationRequest) -> Result<DerivationResult, IoError> {
        derivation::derivation_strict(self, request)
    }

    fn is_valid_store_path(&self, store_path: &str) -> Result<bool, IoError> {
        let path = self.parse_path(store_path)?;
        self.store.is_valid_path(&path).map_err(store_error)
    }

    fn fetch(&self, kind: &str, args: &[(String, FetchValue)]) -> Result<Vec<(String, FetchValue)>, IoError> {
        fetch::fetch(&*self.store, kind, args)
    }
}
