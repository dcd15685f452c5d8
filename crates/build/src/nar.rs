//! Serialising a finished output as a NAR into a byte sink, to hash it and scan it
//! for references in one pass. Only the writing direction, straight from the
//! file system; `nivis-formats` owns the full NAR reader/writer and this module
//! should give way to it once its streaming writer is available.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::BuildError;

fn write_bytes(sink: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    sink.write_all(&(bytes.len() as u64).to_le_bytes())?;
    sink.write_all(bytes)?;
    write_padding(sink, bytes.len() as u64)
}

fn write_padding(sink: &mut dyn Write, len: u64) -> io::Result<()> {
    let padding = (8 - len % 8) % 8;
    sink.write_all(&[0u8; 8][..padding as usize])
}

/// Writes the NAR serialisation of `path` to `sink`.
pub fn dump_path(path: &Path, sink: &mut dyn Write) -> Result<(), BuildError> {
    let io_error = |source| BuildError::io("serialising", path, source);
    write_bytes(sink, b"nix-archive-1").map_err(io_error)?;
    dump_node(path, sink)
}

fn dump_node(path: &Path, sink: &mut dyn Write) -> Result<(), BuildError> {
    let metadata = fs::symlink_metadata(path).map_err(|e| BuildError::io("getting status of", path, e))?;
    let write_error = |source| BuildError::io("serialising", path, source);
    write_bytes(sink, b"(").map_err(write_error)?;
    write_bytes(sink, b"type").map_err(write_error)?;
    let file_type = metadata.file_type();
    if file_type.is_file() {
        write_bytes(sink, b"regular").map_err(write_error)?;
        if metadata.permissions().mode() & 0o100 != 0 {
            write_bytes(sink, b"executable").map_err(write_error)?;
            write_bytes(sink, b"").map_err(write_error)?;
        }
        write_bytes(sink, b"contents").map_err(write_error)?;
        let mut file = fs::File::open(path).map_err(|e| BuildError::io("opening", path, e))?;
        let size = metadata.len();
        sink.write_all(&size.to_le_bytes()).map_err(write_error)?;
        let mut remaining = size;
        let mut buffer = vec![0u8; 64 * 1024];
        while remaining > 0 {
            let want = buffer.len().min(remaining as usize);
            let got = file.read(&mut buffer[..want]).map_err(|e| BuildError::io("reading", path, e))?;
            if got == 0 {
                return Err(BuildError::io("reading", path, io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being read")));
            }
            sink.write_all(&buffer[..got]).map_err(write_error)?;
            remaining -= got as u64;
        }
        write_padding(sink, size).map_err(write_error)?;
    } else if file_type.is_symlink() {
        write_bytes(sink, b"symlink").map_err(write_error)?;
        write_bytes(sink, b"target").map_err(write_error)?;
        let target = fs::read_link(path).map_err(|e| BuildError::io("reading symlink", path, e))?;
        write_bytes(sink, target.as_os_str().as_bytes()).map_err(write_error)?;
    } else if file_type.is_dir() {
        write_bytes(sink, b"directory").map_err(write_error)?;
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| BuildError::io("reading directory", path, e))? {
            let entry = entry.map_err(|e| BuildError::io("reading directory", path, e))?;
            names.push(entry.file_name());
        }
        // NAR entries are in byte order of their names.
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            write_bytes(sink, b"entry").map_err(write_error)?;
            write_bytes(sink, b"(").map_err(write_error)?;
            write_bytes(sink, b"name").map_err(write_error)?;
            write_bytes(sink, name.as_bytes()).map_err(write_error)?;
            write_bytes(sink, b"node").map_err(write_error)?;
            dump_node(&path.join(&name), sink)?;
            write_bytes(sink, b")").map_err(write_error)?;
        }
    } else {
        return Err(BuildError::UnsupportedFileType(path.to_path_buf()));
    }
    write_bytes(sink, b")").map_err(write_error)
}
