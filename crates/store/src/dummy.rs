//! `dummy://`: a store with nothing in it, for evaluation without a store.
//! Queries answer "not valid"; anything that would add fails clearly.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use nivis_formats::{FileIngestionMethod, HashAlgorithm, StoreDir, StorePath, StorePathSet};

use crate::error::StoreError;
use crate::store::{Store, ValidPathInfo};

pub struct DummyStore {
    store_dir: StoreDir,
}

impl DummyStore {
    pub fn new(store_dir: StoreDir) -> Self {
        DummyStore { store_dir }
    }

    fn unsupported<T>(&self, operation: &str) -> Result<T, StoreError> {
        Err(StoreError::Unsupported { operation: operation.to_string(), store: "dummy".to_string() })
    }
}

impl Store for DummyStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }
    fn uri(&self) -> String {
        "dummy".to_string()
    }
    fn query_path_info(&self, _path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError> {
        Ok(None)
    }
    fn query_referrers(&self, _path: &StorePath) -> Result<StorePathSet, StoreError> {
        Ok(StorePathSet::new())
    }
    fn query_valid_derivers(&self, _path: &StorePath) -> Result<StorePathSet, StoreError> {
        Ok(StorePathSet::new())
    }
    fn query_derivation_outputs(&self, _drv: &StorePath) -> Result<BTreeMap<String, StorePath>, StoreError> {
        Ok(BTreeMap::new())
    }
    fn query_all_valid_paths(&self) -> Result<StorePathSet, StoreError> {
        Ok(StorePathSet::new())
    }
    fn add_to_store(
        &self,
        _name: &str,
        _source: &Path,
        _method: FileIngestionMethod,
        _hash_algo: HashAlgorithm,
        _references: &StorePathSet,
        _repair: bool,
    ) -> Result<StorePath, StoreError> {
        self.unsupported("addToStoreFromDump")
    }
    fn add_text_to_store(
        &self,
        _name: &str,
        _contents: &[u8],
        _references: &StorePathSet,
        _repair: bool,
    ) -> Result<StorePath, StoreError> {
        self.unsupported("addTextToStore")
    }
    fn add_nar(&self, _info: &ValidPathInfo, _nar: &mut dyn Read, _repair: bool) -> Result<(), StoreError> {
        self.unsupported("addToStore")
    }
    fn nar_from_path(&self, path: &StorePath, _sink: &mut dyn Write) -> Result<(), StoreError> {
        Err(StoreError::InvalidPath(self.store_dir.print_path(path)))
    }
    fn add_signatures(&self, _path: &StorePath, _sigs: &[String]) -> Result<(), StoreError> {
        self.unsupported("addSignatures")
    }
}
