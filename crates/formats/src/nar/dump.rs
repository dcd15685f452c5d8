//! Serialising a path on disk as a NAR, with the reading and the consuming of the
//! bytes (usually hashing) on two threads.
//!
//! A walker thread traverses the tree and fills fixed-size buffers with the
//! archive bytes, reading file contents straight into them; the calling thread
//! hands each full buffer to the sink and sends it back for reuse. Buffers are
//! allocated once per dump, so the walk does no per-file allocation beyond the
//! entry names of each directory, which must be collected to be sorted.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};

use super::{NAR_MAGIC, NarError, padding_len};
use crate::hash::{Hash, HashAlgorithm, Hasher};

/// Size of one buffer: big enough that the channel costs nothing, small enough
/// that a buffer is still in the shared cache when the other core hashes it.
const BUFFER_SIZE: usize = 512 * 1024;
/// Buffers in flight between the threads.
const BUFFER_COUNT: usize = 4;

struct Chunk {
    data: Box<[u8]>,
    len: usize,
}

/// The walker's end of the pipeline.
struct Producer {
    current: Chunk,
    full: SyncSender<Chunk>,
    empty: Receiver<Chunk>,
}

/// The walker stops with this when the consumer has gone away; the consumer's
/// own error is what the caller sees.
fn hung_up() -> NarError {
    NarError::Stream(io::Error::new(io::ErrorKind::BrokenPipe, "NAR consumer stopped"))
}

impl Producer {
    /// Sends the current buffer and takes an empty one.
    fn flush(&mut self) -> Result<(), NarError> {
        let mut next = self.empty.recv().map_err(|_| hung_up())?;
        next.len = 0;
        let full = std::mem::replace(&mut self.current, next);
        self.full.send(full).map_err(|_| hung_up())
    }

    fn put(&mut self, mut bytes: &[u8]) -> Result<(), NarError> {
        while !bytes.is_empty() {
            if self.current.len == BUFFER_SIZE {
                self.flush()?;
            }
            let n = bytes.len().min(BUFFER_SIZE - self.current.len);
            self.current.data[self.current.len..self.current.len + n].copy_from_slice(&bytes[..n]);
            self.current.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn put_string(&mut self, bytes: &[u8]) -> Result<(), NarError> {
        self.put(&(bytes.len() as u64).to_le_bytes())?;
        self.put(bytes)?;
        self.put(&[0u8; 8][..padding_len(bytes.len() as u64)])
    }

    fn put_strings(&mut self, tokens: &[&[u8]]) -> Result<(), NarError> {
        tokens.iter().try_for_each(|token| self.put_string(token))
    }

    /// Reads exactly `size` bytes of `file` straight into the buffers.
    fn put_file_contents(&mut self, file: &mut File, size: u64, path: &Path) -> Result<(), NarError> {
        let mut remaining = size;
        while remaining > 0 {
            if self.current.len == BUFFER_SIZE {
                self.flush()?;
            }
            let space = (BUFFER_SIZE - self.current.len).min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let read = match file.read(&mut self.current.data[self.current.len..self.current.len + space]) {
                Ok(0) => return Err(NarError::FileChanged { path: path.to_path_buf(), expected: size }),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NarError::io("reading file", path)(e)),
            };
            self.current.len += read;
            remaining -= read as u64;
        }
        self.put(&[0u8; 8][..padding_len(size)])
    }

    /// Dumps the object at `path`, whose type (from `lstat` or `d_type`) is `file_type`.
    fn dump(&mut self, path: &mut PathBuf, file_type: fs::FileType) -> Result<(), NarError> {
        if file_type.is_file() {
            self.dump_regular(path)
        } else if file_type.is_dir() {
            self.dump_directory(path)
        } else if file_type.is_symlink() {
            let target = fs::read_link(&*path).map_err(NarError::io("reading symbolic link", &*path))?;
            self.put_strings(&[b"(", b"type", b"symlink", b"target", target.as_os_str().as_bytes(), b")"])
        } else {
            Err(NarError::UnsupportedFileType(path.clone()))
        }
    }

    fn dump_regular(&mut self, path: &Path) -> Result<(), NarError> {
        // O_NOFOLLOW: if the file was swapped for a symlink since we listed it,
        // fail instead of archiving whatever it points to.
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(NarError::io("opening file", path))?;
        let metadata = file.metadata().map_err(NarError::io("getting status of", path))?;
        if !metadata.is_file() {
            return Err(NarError::FileChanged { path: path.to_path_buf(), expected: metadata.len() });
        }
        // CppNix looks at the owner's execute bit only.
        if metadata.mode() & 0o100 != 0 {
            self.put_strings(&[b"(", b"type", b"regular", b"executable", b"", b"contents"])?;
        } else {
            self.put_strings(&[b"(", b"type", b"regular", b"contents"])?;
        }
        let size = metadata.len();
        self.put(&size.to_le_bytes())?;
        self.put_file_contents(&mut file, size, path)?;
        self.put_string(b")")
    }

    fn dump_directory(&mut self, path: &mut PathBuf) -> Result<(), NarError> {
        let mut entries: Vec<(OsString, fs::FileType)> = Vec::new();
        for entry in fs::read_dir(&*path).map_err(NarError::io("opening directory", &*path))? {
            let entry = entry.map_err(NarError::io("reading directory", &*path))?;
            let file_type = entry.file_type().map_err(NarError::io("getting status of", entry.path()))?;
            entries.push((entry.file_name(), file_type));
        }
        // Byte order, as CppNix's std::map<std::string, ...>.
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        self.put_strings(&[b"(", b"type", b"directory"])?;
        for (name, file_type) in &entries {
            self.put_strings(&[b"entry", b"(", b"name", name.as_bytes(), b"node"])?;
            path.push(name);
            let result = self.dump(path, *file_type);
            path.pop();
            result?;
            self.put_string(b")")?;
        }
        self.put_string(b")")
    }

    /// Sends the last, partly filled buffer.
    fn finish(mut self) -> Result<(), NarError> {
        if self.current.len > 0 {
            let last = std::mem::replace(&mut self.current, Chunk { data: Box::new([]), len: 0 });
            self.full.send(last).map_err(|_| hung_up())?;
        }
        Ok(())
    }
}

fn new_chunk() -> Chunk {
    Chunk { data: vec![0u8; BUFFER_SIZE].into_boxed_slice(), len: 0 }
}

/// Writes the NAR serialisation of `path` (not following a symlink at `path`
/// itself) to `sink`, returning the number of bytes written.
///
/// The output is byte-identical to `nix-store --dump`. Fails on file types NAR
/// cannot represent (sockets, devices, FIFOs) and on files that change size
/// while being read.
pub fn dump_path<W: Write + ?Sized>(path: &Path, sink: &mut W) -> Result<u64, NarError> {
    let root_type = fs::symlink_metadata(path).map_err(NarError::io("getting status of", path))?.file_type();
    let (full_sender, full_receiver) = sync_channel::<Chunk>(BUFFER_COUNT);
    let (empty_sender, empty_receiver) = channel::<Chunk>();
    for _ in 0..BUFFER_COUNT {
        empty_sender.send(new_chunk()).expect("receiver is alive");
    }
    std::thread::scope(|scope| {
        let walker = scope.spawn(move || {
            let mut producer = Producer { current: new_chunk(), full: full_sender, empty: empty_receiver };
            producer.put_string(NAR_MAGIC)?;
            producer.dump(&mut path.to_path_buf(), root_type)?;
            producer.finish()
        });
        let mut written = 0u64;
        let mut sink_error = None;
        for chunk in &full_receiver {
            if let Err(error) = sink.write_all(&chunk.data[..chunk.len]) {
                sink_error = Some(error);
                break;
            }
            written += chunk.len as u64;
            // The walker may have finished and dropped its receiver: fine.
            let _ = empty_sender.send(chunk);
        }
        // Unblock a walker waiting on either channel.
        drop(full_receiver);
        drop(empty_sender);
        let walked = walker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(error) = sink_error {
            return Err(NarError::Stream(error));
        }
        walked.map(|()| written)
    })
}

/// The hash of the NAR serialisation of `path` and the NAR's size: what
/// `nix-hash --type <algorithm> <path>` prints and what a store records as
/// `narHash` and `narSize`. Nothing is buffered beyond the pipeline's buffers.
pub fn hash_path(path: &Path, algorithm: HashAlgorithm) -> Result<(Hash, u64), NarError> {
    let mut hasher = Hasher::new(algorithm);
    let size = dump_path(path, &mut hasher)?;
    Ok((hasher.finish(), size))
}
