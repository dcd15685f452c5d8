//! NAR (Nix ARchive): the canonical serialisation of a file system object, the
//! thing a store path's `narHash` is a hash of.
//!
//! The format is a sequence of strings, each a little-endian `u64` length, the
//! bytes and zero padding to a multiple of 8:
//!
//! ```text
//! nar       = "nix-archive-1" node
//! node      = "(" "type" ( regular | symlink | directory ) ")"
//! regular   = "regular" [ "executable" "" ] "contents" <contents>
//! symlink   = "symlink" "target" <target>
//! directory = "directory" { "entry" "(" "name" <name> "node" node ")" }
//! ```
//!
//! Directory entries are sorted by the bytes of their names, and a file is
//! executable when its owner-execute bit is set; nothing else about the file
//! system (times, owners, other mode bits) enters the archive. These rules make
//! the NAR of a tree unique, which is what lets its hash name content.
//!
//! * [`dump_path`] serialises a path, reading files on one thread while the caller's
//!   thread consumes the bytes (hashing, writing); [`hash_path`] is its common use.
//! * [`NarWriter`] builds a NAR from events, for archives that do not come from disk.
//! * [`parse`] reads a NAR as a stream, checks it strictly and hands each entry to a
//!   [`NarVisitor`]; [`restore_path`] is the visitor that writes it to disk, leaving
//!   nothing behind when the archive turns out to be bad.
//!
//! Assumes a Unix file system: names are bytes, symlink targets are bytes.

mod dump;
mod reader;
mod restore;
mod writer;

use std::io;
use std::path::PathBuf;

use thiserror::Error;

pub use dump::{dump_path, dump_path_with_low_water, hash_path};
pub use reader::{NarVisitor, parse};
pub use restore::restore_path;
pub use writer::NarWriter;

/// The string every NAR starts with.
pub const NAR_MAGIC: &[u8] = b"nix-archive-1";

/// The longest entry name accepted (Linux's `NAME_MAX`); longer names could not be
/// restored anyway.
pub const MAX_NAME_LEN: usize = 255;

/// The longest symlink target accepted (Linux's `PATH_MAX` minus the NUL).
pub const MAX_TARGET_LEN: usize = 4095;

/// Why a NAR could not be written, read or restored.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NarError {
    /// A file system operation failed; `path` says on what. The message is
    /// CppNix's (`getting status of '/x': No such file or directory`).
    #[error("{action} '{}': {}", path.display(), IoMessage(error))]
    Io { action: &'static str, path: PathBuf, error: io::Error },
    /// Reading the archive stream or writing the output stream failed.
    #[error("{}", IoMessage(.0))]
    Stream(io::Error),
    #[error("file '{0}' has an unsupported type")]
    UnsupportedFileType(PathBuf),
    #[error("file '{path}' changed size while it was being archived (expected {expected} bytes)")]
    FileChanged { path: PathBuf, expected: u64 },
    #[error("input is not a Nix archive (bad magic)")]
    BadMagic,
    #[error("NAR ends unexpectedly")]
    Truncated,
    #[error("bad NAR: expected {expected}, found {found:?}")]
    UnexpectedToken { expected: &'static str, found: String },
    #[error("bad NAR: string of {0} bytes is longer than allowed here")]
    StringTooLong(u64),
    #[error("bad NAR: non-zero padding")]
    BadPadding,
    #[error("NAR contains invalid file name {0:?}")]
    InvalidName(String),
    #[error("NAR contains an invalid symlink target {0:?}")]
    InvalidTarget(String),
    #[error("NAR directory is not sorted: {name:?} follows {previous:?}")]
    UnsortedEntries { previous: String, name: String },
    #[error("NAR writer used out of order: {0}")]
    Misuse(&'static str),
    #[error("cannot restore to '{0}': it already exists")]
    AlreadyExists(PathBuf),
}

impl NarError {
    fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> NarError {
        let path = path.into();
        move |error| NarError::Io { action, path, error }
    }

    /// An error of the input stream: running out of bytes is [`NarError::Truncated`].
    fn stream(error: io::Error) -> NarError {
        if error.kind() == io::ErrorKind::UnexpectedEof { NarError::Truncated } else { NarError::Stream(error) }
    }
}

/// Shows an I/O error as CppNix does: the system's message without Rust's
/// ` (os error N)` suffix.
struct IoMessage<'a>(&'a io::Error);

impl std::fmt::Display for IoMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        match text.rfind(" (os error ") {
            Some(at) if text.ends_with(')') => f.write_str(&text[..at]),
            _ => f.write_str(&text),
        }
    }
}

/// Padding after a string of `len` bytes.
fn padding_len(len: u64) -> usize {
    ((8 - len % 8) % 8) as usize
}

/// Appends one NAR string (length, bytes, padding) to `out`.
fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&[0u8; 8][..padding_len(bytes.len() as u64)]);
}

/// Whether `name` may be a directory entry: not empty, `.` or `..`, and without
/// `/` or NUL.
fn is_valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}
