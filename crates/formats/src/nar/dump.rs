//! Serialising a path on disk as a NAR, with the reading and the consuming of the
//! bytes (usually hashing) on two threads.
//!
//! A walker thread traverses the tree and fills fixed-size buffers with the
//! archive bytes, reading file contents straight into them; the calling thread
//! hands each full buffer to the sink and sends it back for reuse. Up to
//! `BUFFER_LIMIT` buffers exist, created on demand, so the walker can run well
//! ahead of the consumer (on a busy machine every wait is a scheduler round
//! trip).
//!
//! The two halves do not cost the same: hashing runs at a fixed rate per byte,
//! while the walker pays several system calls per file, so in stretches of
//! small files the consumer would starve. When fewer than `CONSUMER_LOW_WATER`
//! bytes wait for it, the walker hands it work instead of doing it: a whole
//! regular-file entry (the consumer opens, stats and reads the file itself) or
//! a segment of a large file. The archive order is kept because every piece
//! travels through one channel.
//!
//! The walker works on file descriptors (`openat` relative to the open parent
//! directory, `fstat`, `getdents64`, `pread`), so the kernel never walks a
//! full path again, and it keeps entry names in per-depth arenas reused across
//! directories. Entry types come from `d_type`; only a file system that does
//! not report it costs an extra `fstatat`.
//!
//! Why file contents are copied with `pread` and not hashed from a mapping
//! (tried on 2026-11-27, branch `narspeed-mmap`, hashing `/usr/share`: 45,000
//! files, 564 MB of NAR, ext4, Linux 6.18, 2 vCPUs): mapping the files of 64
//! KiB and more (400 MB of the 564) in 8 MiB windows and hashing straight from
//! the page cache removes the copy, but the page tables cost as much as the
//! copy did. The walker alone (bytes thrown away) took 0.44-0.49 s of CPU with
//! `pread`, 0.39-0.40 s with the mappings made but never touched, 0.45-0.46 s
//! with their page tables filled by touching one byte per 64 KiB
//! (fault-around), and 0.49 s with `MAP_POPULATE` (which walks every page);
//! unmapping adds its own TLB shootdowns. Hashing runs no faster from a
//! mapping, and the whole `nix-hash` came out within the noise (0.875 against
//! 0.890 s of CPU in one series, 0.871 against 0.842 s in another). So a
//! mapping buys next to nothing here, while it needs a process-wide SIGBUS
//! handler to survive a file truncated under it (the branch has one that maps
//! zero pages over the lost range and reports the file as changed). Nor is
//! there a faster SHA-256: `sha2` uses SHA-NI and runs at 1.54 GB/s on one
//! core here, as `ring` and OpenSSL do. What bounds this dump is the walk:
//! opening, stating, listing and closing 48,000 objects costs about as much
//! CPU (0.35-0.40 s) as SHA-256 of the whole NAR (0.365 s), which is why the
//! walker hands work over when the consumer runs short, and why two cores
//! cannot bring the dump down to the time of the hashing alone.

use std::ffi::CStr;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use super::{NAR_MAGIC, NarError, padding_len};
use crate::hash::{Hash, HashAlgorithm, Hasher};

/// Size of one buffer: big enough that the channel costs nothing, small enough
/// that a buffer is still in the shared cache when the other core hashes it.
const BUFFER_SIZE: usize = 256 * 1024;
/// At most this many buffers exist per dump (16 MiB).
const BUFFER_LIMIT: usize = 64;

/// Files are cut into segments of this size when deciding which thread reads them.
const SEGMENT_SIZE: u64 = 1024 * 1024;
/// Files smaller than this are always read by the walker.
const HANDOFF_MIN_FILE_SIZE: u64 = 128 * 1024;
/// The walker hands work to the consumer when fewer bytes than this are
/// waiting for it: the consumer is about to run dry.
const CONSUMER_LOW_WATER: u64 = 512 * 1024;
/// What a handed-over file entry counts for in the consumer's queue before its
/// size is known.
const FILE_ENTRY_WEIGHT: u64 = 16 * 1024;
/// Most file entries handed over in one piece.
const FILE_ENTRY_BATCH: usize = 16;
// CONSUMER_LOW_WATER / FILE_ENTRY_WEIGHT must stay well below the channel's
// capacity (2 * BUFFER_LIMIT pieces): with a 2 MiB low water the walker ended
// up blocked on a full channel of handed-over files while the consumer did all
// the work, at half the speed.

/// Thin wrappers over the system calls the walker uses.
mod sys {
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};

    fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
    }

    pub fn open_at(dir: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
        loop {
            // SAFETY: `name` is NUL-terminated; the result is a fresh descriptor we own.
            let rc = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NOCTTY) };
            match check(rc) {
                Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn fstat(fd: RawFd) -> io::Result<libc::stat> {
        // SAFETY: `stat` is plain data, fully written by a successful fstat.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstat(fd, &mut stat) })?;
        Ok(stat)
    }

    pub fn fstat_at(dir: RawFd, name: &CStr) -> io::Result<libc::stat> {
        // SAFETY: as above; `name` is NUL-terminated.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        check(unsafe { libc::fstatat(dir, name.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) })?;
        Ok(stat)
    }

    pub fn pread(fd: RawFd, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer`.
            let rc = unsafe { libc::pread(fd, buffer.as_mut_ptr().cast(), buffer.len(), offset as libc::off_t) };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                return Err(error);
            }
        }
    }

    /// Reads a symlink's target into `target` (cleared first).
    pub fn read_link_at(dir: RawFd, name: &CStr, target: &mut Vec<u8>) -> io::Result<()> {
        target.clear();
        target.resize(libc::PATH_MAX as usize + 1, 0);
        // SAFETY: the kernel writes at most `target.len()` bytes.
        let rc = unsafe { libc::readlinkat(dir, name.as_ptr(), target.as_mut_ptr().cast(), target.len()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        target.truncate(rc as usize);
        Ok(())
    }

    /// Reads directory entries (`struct linux_dirent64` records) into `buffer`.
    pub fn getdents(fd: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the kernel writes at most `buffer.len()` bytes of records.
        let rc = unsafe { libc::syscall(libc::SYS_getdents64, fd, buffer.as_mut_ptr(), buffer.len()) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as usize) }
    }
}

struct Chunk {
    data: Box<[u8]>,
    len: usize,
}

/// What travels from the walker to the consumer, in archive order.
enum Piece {
    /// Archive bytes.
    Bytes(Chunk),
    /// A segment of a large file, for the consumer to read itself. Handing
    /// segments over while the consumer is short of work balances the two
    /// threads: in stretches of many small files the walker is busy with
    /// system calls and the consumer would otherwise wait.
    /// `size` is the whole file's, for the error if it turns out shorter.
    Segment { file: Arc<OwnedFd>, offset: u64, len: u64, size: u64, path: Arc<PathBuf> },
    /// Consecutive directory entries for regular files, each `entry ( name
    /// <name> node ( type regular ... ) )`, for the consumer to open, stat and
    /// read itself. Handed over when the consumer is about to run dry, which
    /// happens in stretches of small files: there the walker's system calls are
    /// the bottleneck, and this moves some of them to the idle thread. They
    /// travel in batches so that the consumer is not woken once per file.
    FileEntries { directory: Arc<OwnedFd>, names: Vec<std::ffi::CString>, directory_path: Vec<u8> },
}

/// What kind of object an entry is, from `d_type` or `st_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Regular,
    Directory,
    Symlink,
    Other,
}

impl Kind {
    fn from_mode(mode: libc::mode_t) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::Regular,
            libc::S_IFDIR => Kind::Directory,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// One directory entry: its name (with the NUL) at `start..start+len` of the
/// level's name arena.
#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    len: u32,
    /// `None` when the file system did not say (`DT_UNKNOWN`).
    kind: Option<Kind>,
}

/// The reusable storage for listing the directories at one depth.
#[derive(Default)]
struct Level {
    names: Vec<u8>,
    entries: Vec<Entry>,
}

impl Level {
    /// The entry's name including its terminating NUL.
    fn c_name(&self, entry: &Entry) -> &CStr {
        let bytes = &self.names[entry.start as usize..(entry.start + entry.len) as usize];
        CStr::from_bytes_with_nul(bytes).expect("names are stored with one NUL")
    }
}

/// The walker's end of the pipeline.
struct Producer {
    current: Chunk,
    full: SyncSender<Piece>,
    empty: Receiver<Chunk>,
    /// The path being visited, for error messages only.
    path: Vec<u8>,
    levels: Vec<Level>,
    dirent_buffer: Vec<u8>,
    link_target: Vec<u8>,
    /// Buffers created so far.
    allocated: usize,
    /// Bytes sent to the consumer and not yet consumed.
    queued: Arc<AtomicU64>,
    /// Hand work over while `queued` is below this.
    low_water: u64,
}

/// The walker stops with this when the consumer has gone away; the consumer's
/// own error is what the caller sees.
fn hung_up() -> NarError {
    NarError::Stream(io::Error::new(io::ErrorKind::BrokenPipe, "NAR consumer stopped"))
}

impl Producer {
    fn current_path(&self) -> PathBuf {
        PathBuf::from(std::ffi::OsStr::from_bytes(&self.path))
    }

    fn io_error(&self, action: &'static str) -> impl FnOnce(io::Error) -> NarError + use<> {
        NarError::io(action, self.current_path())
    }

    /// Sends the current buffer and takes an empty one: a recycled one if the
    /// consumer has returned any, else a new one while fewer than
    /// `BUFFER_LIMIT` exist, else it waits for the consumer. Running ahead
    /// matters more than it seems: on a busy machine each wait costs a
    /// scheduler round trip.
    fn flush(&mut self) -> Result<(), NarError> {
        let mut next = match self.empty.try_recv() {
            Ok(chunk) => chunk,
            Err(_) if self.allocated < BUFFER_LIMIT => {
                self.allocated += 1;
                new_chunk()
            }
            Err(_) => self.empty.recv().map_err(|_| hung_up())?,
        };
        next.len = 0;
        let full = std::mem::replace(&mut self.current, next);
        self.queued.fetch_add(full.len as u64, Ordering::Relaxed);
        self.full.send(Piece::Bytes(full)).map_err(|_| hung_up())
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

    /// Reads `len` bytes of `fd` from `offset` straight into the buffers.
    fn put_file_range(&mut self, fd: RawFd, mut offset: u64, len: u64, size: u64) -> Result<(), NarError> {
        let end = offset + len;
        while offset < end {
            if self.current.len == BUFFER_SIZE {
                self.flush()?;
            }
            let space = (BUFFER_SIZE - self.current.len).min(usize::try_from(end - offset).unwrap_or(usize::MAX));
            let start = self.current.len;
            let read = sys::pread(fd, &mut self.current.data[start..start + space], offset)
                .map_err(self.io_error("reading file"))?;
            if read == 0 {
                return Err(NarError::FileChanged { path: self.current_path(), expected: size });
            }
            self.current.len += read;
            offset += read as u64;
        }
        Ok(())
    }

    /// Dumps the regular file open at `fd`.
    fn dump_regular(&mut self, fd: OwnedFd) -> Result<(), NarError> {
        let stat = sys::fstat(fd.as_raw_fd()).map_err(self.io_error("getting status of"))?;
        if Kind::from_mode(stat.st_mode) != Kind::Regular {
            // Replaced by something else since it was listed.
            return Err(NarError::FileChanged { path: self.current_path(), expected: stat.st_size as u64 });
        }
        // CppNix looks at the owner's execute bit only.
        if stat.st_mode & libc::S_IXUSR != 0 {
            self.put_strings(&[b"(", b"type", b"regular", b"executable", b"", b"contents"])?;
        } else {
            self.put_strings(&[b"(", b"type", b"regular", b"contents"])?;
        }
        let size = stat.st_size as u64;
        self.put(&size.to_le_bytes())?;
        if size < HANDOFF_MIN_FILE_SIZE {
            self.put_file_range(fd.as_raw_fd(), 0, size, size)?;
        } else {
            let file = Arc::new(fd);
            let mut shared_path = None;
            let mut offset = 0;
            while offset < size {
                let len = SEGMENT_SIZE.min(size - offset);
                if self.queued.load(Ordering::Relaxed) < self.low_water {
                    if self.current.len > 0 {
                        self.flush()?;
                    }
                    let path = shared_path.get_or_insert_with(|| Arc::new(self.current_path())).clone();
                    self.queued.fetch_add(len, Ordering::Relaxed);
                    let segment = Piece::Segment { file: file.clone(), offset, len, size, path };
                    self.full.send(segment).map_err(|_| hung_up())?;
                } else {
                    self.put_file_range(file.as_raw_fd(), offset, len, size)?;
                }
                offset += len;
            }
        }
        self.put(&[0u8; 8][..padding_len(size)])?;
        self.put_string(b")")
    }

    fn dump_symlink(&mut self, dir: RawFd, name: &CStr) -> Result<(), NarError> {
        let mut target = std::mem::take(&mut self.link_target);
        let result = sys::read_link_at(dir, name, &mut target)
            .map_err(self.io_error("reading symbolic link"))
            .and_then(|()| self.put_strings(&[b"(", b"type", b"symlink", b"target", &target, b")"]));
        self.link_target = target;
        result
    }

    /// Lists the directory open at `fd` into `level`, sorted by name bytes as
    /// CppNix's `std::map<std::string, ...>` orders them.
    fn list_directory(&mut self, fd: RawFd, level: &mut Level) -> Result<(), NarError> {
        level.names.clear();
        level.entries.clear();
        loop {
            let filled = sys::getdents(fd, &mut self.dirent_buffer).map_err(self.io_error("reading directory"))?;
            if filled == 0 {
                break;
            }
            let mut offset = 0;
            while offset < filled {
                // struct linux_dirent64 { u64 d_ino; i64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
                let record = &self.dirent_buffer[offset..filled];
                let record_len = u16::from_ne_bytes([record[16], record[17]]) as usize;
                let d_type = record[18];
                let name_field = &record[19..record_len];
                let name_len = name_field.iter().position(|&b| b == 0).unwrap_or(name_field.len());
                let name = &name_field[..name_len];
                offset += record_len;
                if name == b"." || name == b".." {
                    continue;
                }
                let kind = match d_type {
                    libc::DT_REG => Some(Kind::Regular),
                    libc::DT_DIR => Some(Kind::Directory),
                    libc::DT_LNK => Some(Kind::Symlink),
                    libc::DT_UNKNOWN => None,
                    _ => Some(Kind::Other),
                };
                let start = level.names.len() as u32;
                level.names.extend_from_slice(name);
                level.names.push(0);
                level.entries.push(Entry { start, len: name.len() as u32 + 1, kind });
            }
        }
        let names = &level.names;
        let name_of = |e: &Entry| &names[e.start as usize..(e.start + e.len - 1) as usize];
        level.entries.sort_unstable_by(|a, b| name_of(a).cmp(name_of(b)));
        Ok(())
    }

    /// Dumps the directory open at `fd`, `depth` levels below the root.
    fn dump_directory(&mut self, fd: &Arc<OwnedFd>, depth: usize) -> Result<(), NarError> {
        if self.levels.len() <= depth {
            self.levels.resize_with(depth + 1, Level::default);
        }
        let mut level = std::mem::take(&mut self.levels[depth]);
        let result = self.dump_directory_entries(fd, depth, &mut level);
        self.levels[depth] = level;
        result
    }

    fn dump_directory_entries(&mut self, fd: &Arc<OwnedFd>, depth: usize, level: &mut Level) -> Result<(), NarError> {
        self.list_directory(fd.as_raw_fd(), level)?;
        self.put_strings(&[b"(", b"type", b"directory"])?;
        let mut batch: Vec<std::ffi::CString> = Vec::new();
        for entry in &level.entries {
            let name = level.c_name(entry);
            if entry.kind == Some(Kind::Regular)
                && ((batch.is_empty() && self.queued.load(Ordering::Relaxed) < self.low_water)
                    || (!batch.is_empty() && batch.len() < FILE_ENTRY_BATCH))
            {
                if batch.is_empty() && self.current.len > 0 {
                    self.flush()?;
                }
                batch.push(name.to_owned());
                continue;
            }
            self.send_file_entries(fd, &mut batch)?;
            let path_len = self.path.len();
            self.path.push(b'/');
            self.path.extend_from_slice(name.to_bytes());
            self.put_strings(&[b"entry", b"(", b"name", name.to_bytes(), b"node"])?;
            let kind = match entry.kind {
                Some(kind) => kind,
                None => Kind::from_mode(
                    sys::fstat_at(fd.as_raw_fd(), name).map_err(self.io_error("getting status of"))?.st_mode,
                ),
            };
            match kind {
                Kind::Regular => {
                    // O_NOFOLLOW: if the file was swapped for a symlink since it
                    // was listed, fail instead of archiving what it points to.
                    let file = sys::open_at(fd.as_raw_fd(), name, libc::O_RDONLY | libc::O_NOFOLLOW)
                        .map_err(self.io_error("opening file"))?;
                    self.dump_regular(file)?;
                }
                Kind::Directory => {
                    let directory = sys::open_at(fd.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                        .map_err(self.io_error("opening directory"))?;
                    self.dump_directory(&Arc::new(directory), depth + 1)?;
                }
                Kind::Symlink => self.dump_symlink(fd.as_raw_fd(), name)?,
                Kind::Other => return Err(NarError::UnsupportedFileType(self.current_path())),
            }
            self.put_string(b")")?;
            self.path.truncate(path_len);
        }
        self.send_file_entries(fd, &mut batch)?;
        self.put_string(b")")
    }

    /// Hands the batched file entries of the directory at `fd` to the consumer.
    fn send_file_entries(&mut self, fd: &Arc<OwnedFd>, batch: &mut Vec<std::ffi::CString>) -> Result<(), NarError> {
        if batch.is_empty() {
            return Ok(());
        }
        let names = std::mem::take(batch);
        self.queued.fetch_add(FILE_ENTRY_WEIGHT * names.len() as u64, Ordering::Relaxed);
        let piece = Piece::FileEntries { directory: fd.clone(), names, directory_path: self.path.clone() };
        self.full.send(piece).map_err(|_| hung_up())
    }

    /// Dumps the object at the root path (already in `self.path`).
    fn dump_root(&mut self, root: &Path, kind: Kind) -> Result<(), NarError> {
        let c_root = std::ffi::CString::new(root.as_os_str().as_bytes())
            .map_err(|_| NarError::InvalidName(root.display().to_string()))?;
        match kind {
            Kind::Regular => {
                let file = sys::open_at(libc::AT_FDCWD, &c_root, libc::O_RDONLY | libc::O_NOFOLLOW)
                    .map_err(self.io_error("opening file"))?;
                self.dump_regular(file)
            }
            Kind::Directory => {
                let directory = sys::open_at(libc::AT_FDCWD, &c_root, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW)
                    .map_err(self.io_error("opening directory"))?;
                self.dump_directory(&Arc::new(directory), 0)
            }
            Kind::Symlink => self.dump_symlink(libc::AT_FDCWD, &c_root),
            Kind::Other => Err(NarError::UnsupportedFileType(root.to_path_buf())),
        }
    }

    /// Sends the last, partly filled buffer.
    fn finish(mut self) -> Result<(), NarError> {
        if self.current.len > 0 {
            let last = std::mem::replace(&mut self.current, Chunk { data: Box::new([]), len: 0 });
            self.queued.fetch_add(last.len as u64, Ordering::Relaxed);
            self.full.send(Piece::Bytes(last)).map_err(|_| hung_up())?;
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
    dump_path_with_low_water(path, sink, CONSUMER_LOW_WATER)
}

/// [`dump_path`] with the hand-over policy fixed, so that tests can force each
/// path deterministically: `0` never hands work to the consumer, `u64::MAX`
/// always does.
#[doc(hidden)]
pub fn dump_path_with_low_water<W: Write + ?Sized>(path: &Path, sink: &mut W, low_water: u64) -> Result<u64, NarError> {
    use std::os::unix::fs::FileTypeExt;
    let file_type = std::fs::symlink_metadata(path).map_err(NarError::io("getting status of", path))?.file_type();
    let root_kind = if file_type.is_file() {
        Kind::Regular
    } else if file_type.is_dir() {
        Kind::Directory
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        debug_assert!(file_type.is_fifo() || file_type.is_socket() || file_type.is_block_device() || file_type.is_char_device());
        Kind::Other
    };
    // The full channel never blocks the walker: the number of buffers bounds
    // what is in flight.
    let (full_sender, full_receiver) = sync_channel::<Piece>(2 * BUFFER_LIMIT);
    let (empty_sender, empty_receiver) = channel::<Chunk>();
    let queued = Arc::new(AtomicU64::new(0));
    let walker_queued = queued.clone();
    std::thread::scope(|scope| {
        let walker = scope.spawn(move || {
            let mut producer = Producer {
                current: new_chunk(),
                full: full_sender,
                empty: empty_receiver,
                path: path.as_os_str().as_bytes().to_vec(),
                levels: Vec::new(),
                dirent_buffer: vec![0u8; 64 * 1024],
                link_target: Vec::new(),
                allocated: 1,
                queued: walker_queued,
                low_water,
            };
            producer.put_string(NAR_MAGIC)?;
            producer.dump_root(path, root_kind)?;
            producer.finish()
        });
        let consumed = consume(&full_receiver, &empty_sender, &queued, sink);
        // Unblock a walker waiting on either channel.
        drop(full_receiver);
        drop(empty_sender);
        let walked = walker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The consumer's error comes first: when it stops, the walker only
        // reports that nobody listens any more.
        let written = consumed?;
        walked.map(|()| written)
    })
}

/// The consumer's loop: writes every piece to `sink` in order, returns buffers
/// for reuse, and reads handed-over file segments itself.
fn consume<W: Write + ?Sized>(
    pieces: &Receiver<Piece>,
    recycle: &Sender<Chunk>,
    queued: &AtomicU64,
    sink: &mut W,
) -> Result<u64, NarError> {
    let mut written = 0u64;
    let mut segment_buffer = Vec::new();
    let mut scratch = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Bytes(chunk) => {
                sink.write_all(&chunk.data[..chunk.len]).map_err(NarError::Stream)?;
                written += chunk.len as u64;
                queued.fetch_sub(chunk.len as u64, Ordering::Relaxed);
                // The walker may have finished and dropped its receiver: fine.
                let _ = recycle.send(chunk);
            }
            Piece::Segment { file, offset, len, size, path } => {
                if segment_buffer.is_empty() {
                    segment_buffer = vec![0u8; BUFFER_SIZE];
                }
                let end = offset + len;
                let mut position = offset;
                while position < end {
                    let want = segment_buffer.len().min(usize::try_from(end - position).unwrap_or(usize::MAX));
                    let read = sys::pread(file.as_raw_fd(), &mut segment_buffer[..want], position)
                        .map_err(NarError::io("reading file", path.as_path()))?;
                    if read == 0 {
                        return Err(NarError::FileChanged { path: path.to_path_buf(), expected: size });
                    }
                    sink.write_all(&segment_buffer[..read]).map_err(NarError::Stream)?;
                    position += read as u64;
                }
                written += len;
                queued.fetch_sub(len, Ordering::Relaxed);
            }
            Piece::FileEntries { directory, names, directory_path } => {
                if segment_buffer.is_empty() {
                    segment_buffer = vec![0u8; BUFFER_SIZE];
                }
                for name in &names {
                    // Built only for an error message.
                    let path = || {
                        let mut path = directory_path.clone();
                        path.push(b'/');
                        path.extend_from_slice(name.to_bytes());
                        PathBuf::from(std::ffi::OsStr::from_bytes(&path))
                    };
                    written += consume_file_entry(&directory, name, path, &mut scratch, &mut segment_buffer, sink)?;
                }
                queued.fetch_sub(FILE_ENTRY_WEIGHT * names.len() as u64, Ordering::Relaxed);
            }
        }
    }
    Ok(written)
}

/// Writes a whole directory entry for the regular file `name` in `directory`,
/// as the walker would have; returns the bytes written.
fn consume_file_entry<W: Write + ?Sized>(
    directory: &OwnedFd,
    name: &CStr,
    path: impl Fn() -> PathBuf,
    scratch: &mut Vec<u8>,
    buffer: &mut [u8],
    sink: &mut W,
) -> Result<u64, NarError> {
    let file = sys::open_at(directory.as_raw_fd(), name, libc::O_RDONLY | libc::O_NOFOLLOW)
        .map_err(|e| NarError::io("opening file", path())(e))?;
    let stat = sys::fstat(file.as_raw_fd()).map_err(|e| NarError::io("getting status of", path())(e))?;
    let size = stat.st_size as u64;
    if Kind::from_mode(stat.st_mode) != Kind::Regular {
        return Err(NarError::FileChanged { path: path(), expected: size });
    }
    scratch.clear();
    for token in [&b"entry"[..], b"(", b"name", name.to_bytes(), b"node", b"(", b"type", b"regular"] {
        super::put_string(scratch, token);
    }
    if stat.st_mode & libc::S_IXUSR != 0 {
        super::put_string(scratch, b"executable");
        super::put_string(scratch, b"");
    }
    super::put_string(scratch, b"contents");
    scratch.extend_from_slice(&size.to_le_bytes());
    sink.write_all(scratch).map_err(NarError::Stream)?;
    let mut written = scratch.len() as u64;
    let mut position = 0u64;
    while position < size {
        let want = buffer.len().min(usize::try_from(size - position).unwrap_or(usize::MAX));
        let read = sys::pread(file.as_raw_fd(), &mut buffer[..want], position).map_err(|e| NarError::io("reading file", path())(e))?;
        if read == 0 {
            return Err(NarError::FileChanged { path: path(), expected: size });
        }
        sink.write_all(&buffer[..read]).map_err(NarError::Stream)?;
        position += read as u64;
    }
    written += size;
    scratch.clear();
    scratch.extend_from_slice(&[0u8; 8][..padding_len(size)]);
    super::put_string(scratch, b")");
    super::put_string(scratch, b")");
    sink.write_all(scratch).map_err(NarError::Stream)?;
    Ok(written + scratch.len() as u64)
}

/// The hash of the NAR serialisation of `path` and the NAR's size: what
/// `nix-hash --type <algorithm> <path>` prints and what a store records as
/// `narHash` and `narSize`. Nothing is buffered beyond the pipeline's buffers.
pub fn hash_path(path: &Path, algorithm: HashAlgorithm) -> Result<(Hash, u64), NarError> {
    let mut hasher = Hasher::new(algorithm);
    let size = dump_path(path, &mut hasher)?;
    Ok((hasher.finish(), size))
}
