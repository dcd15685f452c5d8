//! [`NarWriter`]: builds a NAR from a sequence of events, checking that they form
//! a canonical archive (entries sorted, names valid, every directory closed).

use std::io::{Read, Write};

use super::{NAR_MAGIC, NarError, is_valid_name, padding_len, put_string};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A node must come next (the root, or the node of an entry just opened).
    ExpectNode,
    /// Inside a directory: another entry or its end.
    ExpectEntryOrEnd,
    /// The root node is complete.
    Done,
}

/// Writes a NAR event by event:
///
/// ```
/// # use nivis_formats::nar::NarWriter;
/// let mut writer = NarWriter::new(Vec::new()).unwrap();
/// writer.begin_directory().unwrap();
/// writer.entry(b"hello").unwrap();
/// writer.regular_file_from_bytes(false, b"hi\n").unwrap();
/// writer.entry(b"link").unwrap();
/// writer.symlink(b"hello").unwrap();
/// writer.end_directory().unwrap();
/// let nar: Vec<u8> = writer.finish().unwrap();
/// # assert!(nar.len() > 0);
/// ```
pub struct NarWriter<W: Write> {
    out: W,
    state: State,
    /// One element per open directory: the name of its last entry.
    previous_names: Vec<Option<Vec<u8>>>,
    scratch: Vec<u8>,
}

impl<W: Write> NarWriter<W> {
    /// Starts an archive (writes the magic).
    pub fn new(mut out: W) -> Result<NarWriter<W>, NarError> {
        let mut scratch = Vec::with_capacity(256);
        put_string(&mut scratch, NAR_MAGIC);
        out.write_all(&scratch).map_err(NarError::Stream)?;
        Ok(NarWriter { out, state: State::ExpectNode, previous_names: Vec::new(), scratch })
    }

    fn expect(&self, state: State, what: &'static str) -> Result<(), NarError> {
        if self.state == state { Ok(()) } else { Err(NarError::Misuse(what)) }
    }

    fn emit(&mut self, tokens: &[&[u8]]) -> Result<(), NarError> {
        self.scratch.clear();
        for token in tokens {
            put_string(&mut self.scratch, token);
        }
        self.out.write_all(&self.scratch).map_err(NarError::Stream)
    }

    /// Called after a node's closing `)`: closes the entry that held it, if any.
    fn node_done(&mut self) -> Result<(), NarError> {
        if self.previous_names.is_empty() {
            self.state = State::Done;
            Ok(())
        } else {
            self.state = State::ExpectEntryOrEnd;
            self.emit(&[b")"])
        }
    }

    /// A regular file of exactly `size` bytes read from `contents`.
    pub fn regular_file(&mut self, executable: bool, size: u64, contents: &mut dyn Read) -> Result<(), NarError> {
        self.expect(State::ExpectNode, "a regular file where no node may start")?;
        if executable {
            self.emit(&[b"(", b"type", b"regular", b"executable", b"", b"contents"])?;
        } else {
            self.emit(&[b"(", b"type", b"regular", b"contents"])?;
        }
        self.out.write_all(&size.to_le_bytes()).map_err(NarError::Stream)?;
        let copied = std::io::copy(&mut contents.take(size), &mut self.out).map_err(NarError::Stream)?;
        if copied != size {
            return Err(NarError::Truncated);
        }
        self.out.write_all(&[0u8; 8][..padding_len(size)]).map_err(NarError::Stream)?;
        self.emit(&[b")"])?;
        self.node_done()
    }

    /// A regular file with the given contents.
    pub fn regular_file_from_bytes(&mut self, executable: bool, contents: &[u8]) -> Result<(), NarError> {
        self.regular_file(executable, contents.len() as u64, &mut &contents[..])
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, target: &[u8]) -> Result<(), NarError> {
        self.expect(State::ExpectNode, "a symlink where no node may start")?;
        if target.is_empty() || target.len() > super::MAX_TARGET_LEN || target.contains(&0) {
            return Err(NarError::InvalidTarget(String::from_utf8_lossy(target).into_owned()));
        }
        self.emit(&[b"(", b"type", b"symlink", b"target", target, b")"])?;
        self.node_done()
    }

    /// Opens a directory; follow with [`entry`](Self::entry)/node pairs and
    /// [`end_directory`](Self::end_directory).
    pub fn begin_directory(&mut self) -> Result<(), NarError> {
        self.expect(State::ExpectNode, "a directory where no node may start")?;
        self.emit(&[b"(", b"type", b"directory"])?;
        self.previous_names.push(None);
        self.state = State::ExpectEntryOrEnd;
        Ok(())
    }

    /// Opens an entry of the current directory; names must come in strictly
    /// increasing byte order. The entry's node comes next.
    pub fn entry(&mut self, name: &[u8]) -> Result<(), NarError> {
        self.expect(State::ExpectEntryOrEnd, "an entry outside a directory")?;
        if !is_valid_name(name) || name.len() > super::MAX_NAME_LEN {
            return Err(NarError::InvalidName(String::from_utf8_lossy(name).into_owned()));
        }
        let previous = self.previous_names.last_mut().expect("inside a directory");
        if let Some(previous) = previous.as_deref()
            && previous >= name
        {
            return Err(NarError::UnsortedEntries {
                previous: String::from_utf8_lossy(previous).into_owned(),
                name: String::from_utf8_lossy(name).into_owned(),
            });
        }
        *previous = Some(name.to_vec());
        self.emit(&[b"entry", b"(", b"name", name, b"node"])?;
        self.state = State::ExpectNode;
        Ok(())
    }

    /// Closes the current directory.
    pub fn end_directory(&mut self) -> Result<(), NarError> {
        self.expect(State::ExpectEntryOrEnd, "end of a directory that is not open")?;
        self.previous_names.pop();
        self.emit(&[b")"])?;
        self.node_done()
    }

    /// Checks the archive is complete and returns the writer.
    pub fn finish(self) -> Result<W, NarError> {
        self.expect(State::Done, "finish before the root node is complete")?;
        Ok(self.out)
    }
}
