//! The Nix store: a `Store` trait and the local store backend, which keeps
//! CppNix's SQLite schema and locking protocol so that CppNix and nivis can share
//! one store.
//!
//! Open a store from a URI with [`open_store`] (`local`, `local?root=DIR`, `DIR`,
//! `dummy://`); everything else goes through the object-safe [`Store`] trait.
//! Closures, topological order and the export format work on any `dyn Store`.

mod closure;
mod config;
mod db;
mod dummy;
mod error;
mod export;
mod gc;
mod hash_part;
mod local;
mod locks;
mod nar;
mod roots;
mod store;

pub use closure::{ClosureOptions, compute_closure, topo_sort_paths};
pub use config::{LocalStoreConfig, StoreSettings, StoreUri};
pub use dummy::DummyStore;
pub use error::StoreError;
pub use export::export_paths;
pub use gc::{CENSORED, GcAction, GcOptions, GcResults, Roots, show_bytes};
pub use local::LocalStore;
pub use locks::{LockType, PathLock};
pub use roots::canon_path;
pub use nar::{delete_path, dump_path, restore_path, restore_path_plain};
pub use nivis_formats::ContentAddress;
pub use store::{Store, ValidPathInfo, VerifyReport};

/// The schema version this crate reads and writes (CppNix 2.8's).
pub use db::SCHEMA_VERSION;

/// Opens the store named by `uri` (a `--store` / `NIX_REMOTE` value; empty means
/// `auto`, i.e. the local store) with locations from `settings`.
pub fn open_store(uri: &str, settings: &StoreSettings) -> Result<Box<dyn Store>, StoreError> {
    match StoreUri::parse(uri, settings)? {
        StoreUri::Local(config) => Ok(Box::new(LocalStore::open(config)?)),
        StoreUri::Dummy => {
            let store_dir = nivis_formats::StoreDir::new(&settings.store_dir)
                .map_err(|e| StoreError::BadPath(e.to_string()))?;
            Ok(Box::new(DummyStore::new(store_dir)))
        }
        StoreUri::Unsupported(uri) => Err(StoreError::UnsupportedStore(uri)),
    }
}
