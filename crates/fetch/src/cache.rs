//! The fetcher cache, CppNix's `fetchers::Cache`: maps the attributes of an
//! input (`{type = "file"; url = ...; name = ...}`) to information about it
//! (`etag`, `rev`, `lastModified`, ...) and a store path, with a time stamp and
//! an `immutable` flag. Entries for mutable inputs expire after `tarball-ttl`
//! seconds; an entry whose store path is no longer valid is ignored.
//!
//! Each entry is one small JSON file under `<cache dir>/fetcher-cache-v1/`,
//! named by the SHA-256 of its input attributes, written through a temporary
//! file and a rename so that concurrent evaluations never see half an entry.
//! (CppNix keeps the same table in SQLite, `~/.cache/nix/fetcher-cache-v1.sqlite`;
//! ours lives beside it under `~/.cache/nivis` and is not shared.)

use std::path::PathBuf;

use nivis_formats::{Hash, HashAlgorithm, StorePath};
use nivis_store::Store;

use crate::FetchSettings;
use crate::input::{Attrs, attrs_from_json, attrs_to_json};

pub struct Cache {
    dir: PathBuf,
}

/// A cache hit.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub info: Attrs,
    pub store_path: StorePath,
    /// Older than `tarball-ttl` (never for immutable entries).
    pub expired: bool,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Cache {
    pub fn new(settings: &FetchSettings) -> Cache {
        Cache {
            dir: settings.cache_dir.join("fetcher-cache-v1"),
        }
    }

    fn entry_file(&self, input: &Attrs) -> PathBuf {
        let key = attrs_to_json(input).to_string();
        let hash = Hash::of_bytes(HashAlgorithm::Sha256, key.as_bytes());
        self.dir.join(format!("{}.json", hash.to_nix32()))
    }

    /// Records `input` -> (`info`, `store_path`). Failures to write the cache
    /// are not errors: the cache only saves work.
    pub fn add(&self, store: &dyn Store, input: &Attrs, info: &Attrs, store_path: &StorePath, immutable: bool) {
        let entry = serde_json::json!({
            "input": attrs_to_json(input),
            "info": attrs_to_json(info),
            "path": store.print_store_path(store_path),
            "immutable": immutable,
            "timestamp": now(),
        });
        let target = self.entry_file(input);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(&self.dir)?;
            std::io::Write::write_all(temp.as_file_mut(), entry.to_string().as_bytes())?;
            temp.persist(&target).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }

    /// The entry for `input`, expired or not.
    pub fn lookup_expired(&self, store: &dyn Store, input: &Attrs, tarball_ttl: u64) -> Option<CacheEntry> {
        let text = std::fs::read_to_string(self.entry_file(input)).ok()?;
        let entry: serde_json::Value = serde_json::from_str(&text).ok()?;
        // A hash collision or a stale format: not ours.
        if entry.get("input")? != &attrs_to_json(input) {
            return None;
        }
        let info = attrs_from_json(entry.get("info")?)?;
        let printed = entry.get("path")?.as_str()?;
        let store_path = store.store_dir().parse_path(printed).ok()?;
        if !store.is_valid_path(&store_path).unwrap_or(false) {
            return None;
        }
        let immutable = entry.get("immutable")?.as_bool()?;
        let timestamp = entry.get("timestamp")?.as_i64()?;
        let expired = !immutable && (tarball_ttl == 0 || timestamp + (tarball_ttl as i64) < now());
        Some(CacheEntry {
            info,
            store_path,
            expired,
        })
    }

    /// The entry for `input` if it has not expired.
    pub fn lookup(&self, store: &dyn Store, input: &Attrs, tarball_ttl: u64) -> Option<CacheEntry> {
        self.lookup_expired(store, input, tarball_ttl)
            .filter(|entry| !entry.expired)
    }
}
