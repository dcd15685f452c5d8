//! Finding a valid path by its hash part, as CppNix's `queryPathFromHashPart`:
//! one indexed range query on `ValidPaths.path` (the table's unique index),
//! `path >= '<storedir>/<hashpart>' limit 1`, then a prefix check. Binary cache
//! servers answer `<hashpart>.narinfo` with it.
//!
//! Assumes the database's paths are printed with this store's logical store
//! directory, as every other query of the local store does.

use nivis_formats::StorePath;
use rusqlite::OptionalExtension;

use crate::{LocalStore, StoreError};

impl LocalStore {
    /// The valid path whose hash part is `hash_part`, if any. A string that is
    /// not a hash part (wrong length, characters outside nix32) finds nothing.
    pub fn query_path_from_hash_part(&self, hash_part: &str) -> Result<Option<StorePath>, StoreError> {
        if hash_part.len() != 32 || !hash_part.bytes().all(nivis_formats::nixbase32::is_nix32_char) {
            return Ok(None);
        }
        let prefix = format!("{}/{hash_part}", crate::Store::store_dir(self).as_str());
        let found: Option<String> = {
            let conn = self.db();
            conn.prepare_cached("select path from ValidPaths where path >= ? limit 1")
                .and_then(|mut statement| statement.query_row([&prefix], |row| row.get(0)).optional())
                .map_err(|error| StoreError::Database {
                    context: format!("querying the path with hash part '{hash_part}'"),
                    error,
                })?
        };
        match found {
            // The path right after the prefix in the index's order either
            // begins with it (`<prefix>-<name>`) or belongs to another hash.
            Some(path) if path.as_bytes().get(prefix.len()) == Some(&b'-') && path.starts_with(&prefix) => {
                let store_dir = crate::Store::store_dir(self);
                store_dir.parse_path(&path).map(Some).map_err(|e| {
                    StoreError::BadInput(format!("the store database holds a bad path '{path}': {e}"))
                })
            }
            _ => Ok(None),
        }
    }
}
