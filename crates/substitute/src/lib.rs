//! Binary caches and moving store paths between stores.
//!
//! - [`BinaryCacheStore`]: the `Store` trait over CppNix's binary cache layout
//!   in a directory (`file://DIR`) or behind HTTP (`http://HOST:PORT/PATH`; PUT
//!   to write). Reads check `FileHash`/`FileSize` when present and
//!   `NarHash`/`NarSize` always, while streaming.
//! - [`substitute_paths`]: make paths valid in a local store from substituters
//!   in priority order, falling back to the next one on any error.
//! - [`copy_paths`] / [`copy_paths_shared`]: `nix copy` between any two stores.
//! - [`serve`]: a binary cache HTTP server over a store (`nivis serve`).
//!
//! `nivis-store` does not know this crate: callers open binary caches with
//! [`open_store`], which falls back to `nivis_store::open_store` for every
//! other URI. Everything is synchronous (threads, no async runtime).

mod binary_cache;
mod compression;
mod error;
pub mod narinfo_cache;
pub mod serve;
mod substitute;
mod transport;
mod verify;

pub use binary_cache::{BinaryCacheStore, DEFAULT_PRIORITY, is_binary_cache_uri, narinfo_to_path_info};
pub use compression::Compression;
pub use error::SubstituteError;
pub use substitute::{
    CopyOptions, CopyReport, Progress, ProgressFn, SubstitutablePath, SubstituteReport, Substituter, SubstituterSet, check_signatures, copy_paths,
    copy_paths_shared, default_copy_jobs, open_substituters, substitute_paths, substitute_paths_with_jobs, trusted_keyring,
    DEFAULT_SUBSTITUTION_JOBS,
};
pub use verify::VerifyingNarReader;
pub use transport::{NetworkSettings, configure_network};

use nivis_store::{Store, StoreError, StoreSettings};

/// Opens any store URI: binary caches here, `ssh://` through nivis-remote,
/// everything else through `nivis_store::open_store`.
pub fn open_store(uri: &str, settings: &StoreSettings) -> Result<Box<dyn Store>, StoreError> {
    if is_binary_cache_uri(uri) {
        return Ok(Box::new(BinaryCacheStore::open(uri, settings).map_err(SubstituteError::into_store_error)?));
    }
    if nivis_remote::is_ssh_uri(uri) {
        let store = nivis_remote::LegacySshStore::open(uri, settings).map_err(nivis_remote::RemoteError::into_store_error)?;
        return Ok(Box::new(store));
    }
    nivis_store::open_store(uri, settings)
}

/// Seconds since the epoch (registration times of substituted paths).
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
