//! The serve protocol's server side: what `nix-store --serve [--write]` does
//! on the remote machine, over any store. The client sends a magic word and
//! its version, then commands; each command's answer follows it at once. The
//! session ends when the client closes the stream.
//!
//! Build commands (`cmdBuildPaths`, `cmdBuildDerivation`) are not served yet;
//! asking for one ends the session with a clear error, as any failure does
//! (the protocol has no error frames: CppNix's server also just exits).

use std::io::{BufRead, Read, Write};

use nivis_formats::{ContentAddress, Hash, HashAlgorithm, StorePathSet};
use nivis_store::{ClosureOptions, Store, ValidPathInfo};

use crate::RemoteError;
use crate::wire;

pub const MAGIC_1: u64 = 0x390c_9deb;
pub const MAGIC_2: u64 = 0x5452_eecb;
/// Protocol 2.6, what CppNix 2.8 speaks.
pub const PROTOCOL_VERSION: u64 = 0x206;
/// `"NIXE"`, after each NAR of an export stream.
pub const EXPORT_MAGIC: u64 = 0x4558_494e;

/// The serve protocol's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Command {
    QueryValidPaths = 1,
    QueryPathInfos = 2,
    DumpStorePath = 3,
    ImportPaths = 4,
    ExportPaths = 5,
    BuildPaths = 6,
    QueryClosure = 7,
    BuildDerivation = 8,
    AddToStoreNar = 9,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RemoteError {
    RemoteError::io(format!("serving the store ({what})"))
}

fn read_paths(store: &dyn Store, input: &mut dyn Read) -> Result<StorePathSet, RemoteError> {
    let mut paths = StorePathSet::new();
    for printed in wire::read_strings(input).map_err(io("reading paths"))? {
        paths.insert(store.parse_store_path(&printed)?);
    }
    Ok(paths)
}

fn write_paths(store: &dyn Store, output: &mut dyn Write, paths: &StorePathSet) -> Result<(), RemoteError> {
    let printed: Vec<String> = paths.iter().map(|p| store.print_store_path(p)).collect();
    wire::write_strings(output, printed.iter().map(String::as_str)).map_err(io("writing paths"))
}

/// Serves `store` on `input`/`output` until the client hangs up. Without
/// `write_allowed` (`--write`), commands that add paths are refused.
pub fn serve(
    store: &dyn Store,
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    write_allowed: bool,
) -> Result<(), RemoteError> {
    if wire::read_u64(input).map_err(io("handshake"))? != MAGIC_1 {
        return Err(RemoteError::Protocol("protocol mismatch".into()));
    }
    wire::write_u64(output, MAGIC_2).map_err(io("handshake"))?;
    wire::write_u64(output, PROTOCOL_VERSION).map_err(io("handshake"))?;
    output.flush().map_err(io("handshake"))?;
    let client_version = wire::read_u64(input).map_err(io("handshake"))?;
    let client_minor = client_version & 0xff;

    loop {
        // A clean end of the stream between commands ends the session.
        if input.fill_buf().map_err(io("reading a command"))?.is_empty() {
            return Ok(());
        }
        let command = wire::read_u64(input).map_err(io("reading a command"))?;
        match command {
            1 => {
                let _lock = wire::read_bool(input).map_err(io("reading"))?;
                let _substitute = wire::read_bool(input).map_err(io("reading"))?;
                let paths = read_paths(store, input)?;
                let mut valid = StorePathSet::new();
                for path in paths {
                    if store.is_valid_path(&path)? {
                        valid.insert(path);
                    }
                }
                write_paths(store, output, &valid)?;
            }
            2 => {
                for path in read_paths(store, input)? {
                    let Some(info) = store.query_path_info(&path)? else { continue };
                    write_path_info(store, output, &info, client_minor)?;
                }
                wire::write_string(output, "").map_err(io("writing"))?;
            }
            3 => {
                let printed = wire::read_string(input).map_err(io("reading"))?;
                let path = store.parse_store_path(&printed)?;
                store.nar_from_path(&path, output)?;
            }
            4 => {
                if !write_allowed {
                    return Err(RemoteError::Protocol("importing paths is not allowed".into()));
                }
                store.import_paths(input)?;
                wire::write_u64(output, 1).map_err(io("writing"))?;
            }
            5 => {
                let _obsolete = wire::read_u64(input).map_err(io("reading"))?;
                let paths = read_paths(store, input)?;
                nivis_store::export_paths(store, &paths, output)?;
            }
            7 => {
                let include_outputs = wire::read_bool(input).map_err(io("reading"))?;
                let paths = read_paths(store, input)?;
                let options = ClosureOptions { include_outputs, ..ClosureOptions::default() };
                let closure = nivis_store::compute_closure(store, &paths, options)?;
                write_paths(store, output, &closure)?;
            }
            9 => {
                if !write_allowed {
                    return Err(RemoteError::Protocol("importing paths is not allowed".into()));
                }
                add_to_store_nar(store, input)?;
                wire::write_u64(output, 1).map_err(io("writing"))?;
            }
            6 | 8 => {
                return Err(RemoteError::Protocol(
                    "building on this machine through 'nix-store --serve' is not supported by nivis yet".into(),
                ));
            }
            other => return Err(RemoteError::Protocol(format!("unknown serve command {other}"))),
        }
        output.flush().map_err(io("writing"))?;
    }
}

fn write_path_info(
    store: &dyn Store,
    output: &mut dyn Write,
    info: &ValidPathInfo,
    client_minor: u64,
) -> Result<(), RemoteError> {
    let w = io("writing path info");
    let deriver = info.deriver.as_ref().map(|d| store.print_store_path(d)).unwrap_or_default();
    let references: Vec<String> = info.references.iter().map(|r| store.print_store_path(r)).collect();
    let result = (|| {
        wire::write_string(output, &store.print_store_path(&info.path))?;
        wire::write_string(output, &deriver)?;
        wire::write_strings(output, references.iter().map(String::as_str))?;
        // The download size is the NAR size: nothing is compressed here.
        wire::write_u64(output, info.nar_size)?;
        wire::write_u64(output, info.nar_size)?;
        if client_minor >= 4 {
            wire::write_string(output, &format!("sha256:{}", info.nar_hash.to_nix32()))?;
            wire::write_string(output, &info.ca.as_ref().map(ToString::to_string).unwrap_or_default())?;
            wire::write_strings(output, info.sigs.iter().map(String::as_str))?;
        }
        Ok(())
    })();
    result.map_err(w)
}

fn add_to_store_nar(store: &dyn Store, input: &mut dyn BufRead) -> Result<(), RemoteError> {
    let r = |what| io(what);
    let path = store.parse_store_path(&wire::read_string(input).map_err(r("reading"))?)?;
    let deriver = wire::read_string(input).map_err(r("reading"))?;
    let nar_hash = wire::read_string(input).map_err(r("reading"))?;
    let nar_hash = Hash::parse_any(&nar_hash, Some(HashAlgorithm::Sha256))
        .map_err(|e| RemoteError::Protocol(format!("bad NAR hash '{nar_hash}': {e}")))?;
    let references = read_paths(store, input)?;
    let registration_time = wire::read_u64(input).map_err(r("reading"))?;
    let nar_size = wire::read_u64(input).map_err(r("reading"))?;
    let ultimate = wire::read_bool(input).map_err(r("reading"))?;
    let sigs = wire::read_strings(input).map_err(r("reading"))?;
    let ca = wire::read_string(input).map_err(r("reading"))?;
    let mut info = ValidPathInfo::new(path, nar_hash, nar_size);
    if !deriver.is_empty() {
        info.deriver = Some(store.parse_store_path(&deriver)?);
    }
    info.references = references;
    info.registration_time = registration_time as i64;
    info.ultimate = ultimate;
    info.sigs = sigs.into_iter().collect();
    info.ca = ContentAddress::parse_opt(&ca).map_err(|e| RemoteError::Protocol(format!("bad content address '{ca}': {e}")))?;
    if nar_size == 0 {
        return Err(RemoteError::Protocol("narInfo is too old and missing the narSize field".into()));
    }
    let mut nar = input.take(nar_size);
    let added = store.add_nar(&info, &mut nar, false);
    // Keep the stream in step even when the path was refused.
    std::io::copy(&mut nar, &mut std::io::sink()).map_err(r("reading the NAR"))?;
    added?;
    Ok(())
}
