//! A streaming NAR parser that checks the archive is canonical and hands every
//! entry to a [`NarVisitor`].
//!
//! It reads from a [`BufRead`] and consumes exactly the archive's bytes, so a NAR
//! embedded in a longer stream (the daemon protocol) leaves the rest unread. It
//! keeps its own stack instead of recursing, so a maliciously deep archive cannot
//! overflow the thread's stack, and it never allocates more than the bounded
//! name and target sizes: file contents are streamed to the visitor.

use std::ffi::OsStr;
use std::io::{self, BufRead, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{MAX_NAME_LEN, MAX_TARGET_LEN, NAR_MAGIC, NarError, is_valid_name, padding_len};

/// Receives the entries of a NAR as [`parse`] reads them. Paths are relative to
/// the archive's root, which is the empty path.
pub trait NarVisitor {
    /// A directory starts; its entries follow, in sorted order.
    fn directory(&mut self, path: &Path) -> Result<(), NarError>;

    /// All entries of the directory at `path` have been visited.
    fn end_directory(&mut self, _path: &Path) -> Result<(), NarError> {
        Ok(())
    }

    /// A regular file of `size` bytes. `contents` yields exactly those bytes; what
    /// the visitor leaves unread is skipped.
    fn regular_file(&mut self, path: &Path, executable: bool, size: u64, contents: &mut dyn Read)
    -> Result<(), NarError>;

    /// A symbolic link (the target is not checked to exist or be relative).
    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError>;
}

/// Longest tag the grammar has ("nix-archive-1", "executable", ...).
const MAX_TAG_LEN: usize = 16;

struct Parser<'r, R: BufRead + ?Sized> {
    reader: &'r mut R,
    token: Vec<u8>,
}

impl<R: BufRead + ?Sized> Parser<'_, R> {
    fn read_u64(&mut self) -> Result<u64, NarError> {
        let mut bytes = [0u8; 8];
        self.reader.read_exact(&mut bytes).map_err(NarError::stream)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn read_padding(&mut self, len: u64) -> Result<(), NarError> {
        let padding = padding_len(len);
        let mut bytes = [0u8; 8];
        self.reader.read_exact(&mut bytes[..padding]).map_err(NarError::stream)?;
        if bytes[..padding].iter().any(|&b| b != 0) {
            return Err(NarError::BadPadding);
        }
        Ok(())
    }

    /// Reads a string of at most `max` bytes into `self.token`.
    fn read_string(&mut self, max: usize) -> Result<&[u8], NarError> {
        let len = self.read_u64()?;
        if len > max as u64 {
            return Err(NarError::StringTooLong(len));
        }
        self.token.resize(len as usize, 0);
        self.reader.read_exact(&mut self.token).map_err(NarError::stream)?;
        self.read_padding(len)?;
        Ok(&self.token)
    }

    fn read_tag(&mut self) -> Result<&[u8], NarError> {
        self.read_string(MAX_TAG_LEN)
    }

    fn expect(&mut self, tag: &'static str) -> Result<(), NarError> {
        let found = self.read_tag()?;
        if found == tag.as_bytes() {
            Ok(())
        } else {
            Err(unexpected(tag, found))
        }
    }
}

fn unexpected(expected: &'static str, found: &[u8]) -> NarError {
    NarError::UnexpectedToken { expected, found: String::from_utf8_lossy(found).into_owned() }
}

/// The bytes of one regular file, read through from the archive.
struct Contents<'r, R: BufRead + ?Sized> {
    reader: &'r mut R,
    remaining: u64,
    /// Set when the archive ended inside the file, so that the parser reports a
    /// truncated NAR even if the visitor turned the read error into its own.
    truncated: bool,
}

impl<R: BufRead + ?Sized> Read for Contents<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let read = self.reader.read(&mut buf[..want])?;
        if read == 0 {
            self.truncated = true;
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "NAR ends inside a file"));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

impl<R: BufRead + ?Sized> Contents<'_, R> {
    /// Skips what the visitor did not read.
    fn skip_rest(&mut self) -> Result<(), NarError> {
        while self.remaining > 0 {
            let available = self.reader.fill_buf().map_err(NarError::stream)?;
            if available.is_empty() {
                return Err(NarError::Truncated);
            }
            let n = available.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            self.reader.consume(n);
            self.remaining -= n as u64;
        }
        Ok(())
    }
}

/// One open directory.
struct Frame {
    /// Length of the path buffer at the directory itself.
    path_len: usize,
    previous_name: Vec<u8>,
    has_previous: bool,
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// Parses the NAR at the front of `reader`, calling `visitor` for each entry, and
/// stops right after its last byte.
///
/// The archive must be canonical, as `nix-store --dump` writes it: correct magic,
/// fields in order, zero padding, entry names valid (not empty, `.`, `..`, and
/// without `/` or NUL) and strictly increasing. Anything else is a [`NarError`];
/// the visitor may have seen a prefix of the archive by then.
pub fn parse<R, V>(reader: &mut R, visitor: &mut V) -> Result<(), NarError>
where
    R: BufRead + ?Sized,
    V: NarVisitor + ?Sized,
{
    let mut parser = Parser { reader, token: Vec::with_capacity(64) };
    match parser.read_string(NAR_MAGIC.len()) {
        Ok(magic) if magic == NAR_MAGIC => {}
        Ok(_) | Err(NarError::StringTooLong(_) | NarError::Truncated | NarError::BadPadding) => {
            return Err(NarError::BadMagic);
        }
        Err(other) => return Err(other),
    }

    let mut path: Vec<u8> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        // A node starts at `path`.
        parser.expect("(")?;
        parser.expect("type")?;
        let node_type = parser.read_tag()?;
        let opened_directory = match node_type {
            b"regular" => {
                let mut executable = false;
                let mut tag = parser.read_tag()?;
                if tag == b"executable" {
                    executable = true;
                    parser.expect("")?;
                    tag = parser.read_tag()?;
                }
                if tag != b"contents" {
                    return Err(unexpected("contents", tag));
                }
                let size = parser.read_u64()?;
                let mut contents = Contents { reader: &mut *parser.reader, remaining: size, truncated: false };
                let visited = visitor.regular_file(as_path(&path), executable, size, &mut contents);
                if contents.truncated {
                    return Err(NarError::Truncated);
                }
                visited?;
                contents.skip_rest()?;
                parser.read_padding(size)?;
                parser.expect(")")?;
                false
            }
            b"symlink" => {
                parser.expect("target")?;
                let target = parser.read_string(MAX_TARGET_LEN)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(NarError::InvalidTarget(String::from_utf8_lossy(target).into_owned()));
                }
                visitor.symlink(as_path(&path), target)?;
                parser.expect(")")?;
                false
            }
            b"directory" => {
                visitor.directory(as_path(&path))?;
                stack.push(Frame { path_len: path.len(), previous_name: Vec::new(), has_previous: false });
                true
            }
            other => return Err(unexpected("regular, symlink or directory", other)),
        };

        // The node is complete unless it opened a directory. Close finished
        // directories and their entries until the next entry or the end.
        let mut in_fresh_directory = opened_directory;
        loop {
            let Some(frame) = stack.last_mut() else {
                return Ok(());
            };
            if !in_fresh_directory {
                // The node of an entry of `frame` is complete: close the entry.
                parser.expect(")")?;
                path.truncate(frame.path_len);
            }
            in_fresh_directory = false;
            let tag = parser.read_tag()?;
            if tag == b")" {
                visitor.end_directory(as_path(&path))?;
                stack.pop();
                continue;
            }
            if tag != b"entry" {
                return Err(unexpected("entry or )", tag));
            }
            parser.expect("(")?;
            parser.expect("name")?;
            let name = parser.read_string(MAX_NAME_LEN)?;
            if !is_valid_name(name) {
                return Err(NarError::InvalidName(String::from_utf8_lossy(name).into_owned()));
            }
            let frame = stack.last_mut().expect("checked above");
            if frame.has_previous && frame.previous_name.as_slice() >= name {
                return Err(NarError::UnsortedEntries {
                    previous: String::from_utf8_lossy(&frame.previous_name).into_owned(),
                    name: String::from_utf8_lossy(name).into_owned(),
                });
            }
            frame.previous_name.clear();
            frame.previous_name.extend_from_slice(name);
            frame.has_previous = true;
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name);
            parser.expect("node")?;
            break;
        }
    }
}
