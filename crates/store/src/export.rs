//! `nix-store --export` / `--import` serialisation, byte-identical to CppNix's:
//! for each path (dependencies first) the word 1, the path's NAR, the magic word
//! `NIXE`, the path, its references, its deriver (or ""), the word 0 (no legacy
//! signature); then the word 0. Words are u64 little-endian; strings are a length
//! word and the bytes, zero-padded to 8.

use std::io::{self, Read, Write};

use nivis_formats::{StorePath, StorePathSet};

use crate::error::StoreError;
use crate::local::LocalStore;
use crate::store::{Store, ValidPathInfo, now};

/// `"NIXE"` read as a little-endian word, after each exported NAR.
const EXPORT_MAGIC: u64 = 0x4558_494e;
const MAX_STRING: u64 = 4096;
const MAX_REFERENCES: u64 = 1 << 20;

fn write_u64(sink: &mut dyn Write, n: u64) -> io::Result<()> {
    sink.write_all(&n.to_le_bytes())
}

fn write_string(sink: &mut dyn Write, s: &[u8]) -> io::Result<()> {
    write_u64(sink, s.len() as u64)?;
    sink.write_all(s)?;
    sink.write_all(&[0u8; 8][..(8 - s.len() % 8) % 8])
}

fn bad_import(msg: &str) -> StoreError {
    StoreError::BadArchive(msg.to_string())
}

fn read_u64(source: &mut dyn Read) -> Result<u64, StoreError> {
    let mut buf = [0u8; 8];
    source.read_exact(&mut buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad_import("unexpected end of export stream")
        } else {
            StoreError::io("reading the export stream".into(), e)
        }
    })?;
    Ok(u64::from_le_bytes(buf))
}

fn read_string(source: &mut dyn Read) -> Result<String, StoreError> {
    let len = read_u64(source)?;
    if len > MAX_STRING {
        return Err(bad_import("string in the export stream is too long"));
    }
    let padded = len.div_ceil(8) * 8;
    let mut buf = vec![0u8; padded as usize];
    source.read_exact(&mut buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad_import("unexpected end of export stream")
        } else {
            StoreError::io("reading the export stream".into(), e)
        }
    })?;
    if buf[len as usize..].iter().any(|b| *b != 0) {
        return Err(bad_import("non-zero padding in the export stream"));
    }
    buf.truncate(len as usize);
    String::from_utf8(buf).map_err(|_| bad_import("string in the export stream is not UTF-8"))
}

/// Writes `paths` (all valid) in export format, dependencies before dependents.
pub fn export_paths(store: &dyn Store, paths: &StorePathSet, sink: &mut dyn Write) -> Result<(), StoreError> {
    let wrap = |e: io::Error| StoreError::io("writing the export stream".into(), e);
    let mut sorted = crate::closure::topo_sort_paths(store, paths)?;
    sorted.reverse();
    for path in &sorted {
        // CppNix writes the marker before it finds out the path is invalid.
        write_u64(sink, 1).map_err(wrap)?;
        let info = store
            .query_path_info(path)?
            .ok_or_else(|| StoreError::InvalidPath(store.print_store_path(path)))?;
        store.nar_from_path(path, sink)?;
        write_u64(sink, EXPORT_MAGIC).map_err(wrap)?;
        write_string(sink, store.print_store_path(path).as_bytes()).map_err(wrap)?;
        write_u64(sink, info.references.len() as u64).map_err(wrap)?;
        for reference in &info.references {
            write_string(sink, store.print_store_path(reference).as_bytes()).map_err(wrap)?;
        }
        let deriver = info.deriver.as_ref().map(|d| store.print_store_path(d)).unwrap_or_default();
        write_string(sink, deriver.as_bytes()).map_err(wrap)?;
        write_u64(sink, 0).map_err(wrap)?;
    }
    write_u64(sink, 0).map_err(wrap)?;
    sink.flush().map_err(wrap)
}

/// Reads an export stream into a local store; returns the imported paths in order.
/// Each path is registered as soon as it is complete; a bad stream stops the
/// import with an error, leaving the paths before it valid and nothing of the
/// bad one.
pub(crate) fn import_into_local(store: &LocalStore, source: &mut dyn Read) -> Result<Vec<StorePath>, StoreError> {
    let mut imported = Vec::new();
    loop {
        match read_u64(source)? {
            0 => return Ok(imported),
            1 => {}
            _ => {
                return Err(bad_import(
                    "input doesn't look like something created by 'nix-store --export'",
                ));
            }
        }
        let mut trailer = |source: &mut dyn Read, nar_hash, nar_size| -> Result<ValidPathInfo, StoreError> {
            if read_u64(&mut *source)? != EXPORT_MAGIC {
                return Err(bad_import("Nix archive cannot be imported; wrong format"));
            }
            let path = store.parse_store_path(&read_string(&mut *source)?)?;
            let count = read_u64(&mut *source)?;
            if count > MAX_REFERENCES {
                return Err(bad_import("too many references in the export stream"));
            }
            let mut references = StorePathSet::new();
            for _ in 0..count {
                references.insert(store.parse_store_path(&read_string(&mut *source)?)?);
            }
            let deriver = read_string(&mut *source)?;
            // A legacy signature may follow; it is ignored, as CppNix does.
            if read_u64(&mut *source)? == 1 {
                read_string(&mut *source)?;
            }
            let mut info = ValidPathInfo::new(path, nar_hash, nar_size);
            info.references = references;
            info.registration_time = now();
            if !deriver.is_empty() {
                info.deriver = Some(store.parse_store_path(&deriver)?);
            }
            Ok(info)
        };
        let path = store.import_one(&mut *source, &mut trailer)?;
        imported.push(path);
    }
}
