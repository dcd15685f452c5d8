//! NAR serialisation as the store needs it: dumping a file system object to a
//! writer, and restoring a NAR stream onto disk as store contents (canonical
//! permissions and mtime); [`sync_tree`] then makes a restored tree durable.
//!
//! The parser is strict, like CppNix's: entries must be sorted and unique, names
//! may not be empty, `.`, `..` or contain `/` or NUL, padding must be zero, and a
//! stream that ends early is an error. The restorer writes only below the
//! destination it is given, which the caller makes a fresh temporary name.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::StoreError;

const NAR_MAGIC: &[u8] = b"nix-archive-1";
/// Longest token the parser accepts for anything but file contents and link targets.
const MAX_TOKEN: u64 = 4096;

fn io_err(context: &str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let context = format!("{context} '{}'", path.display());
    move |e| StoreError::io(context, e)
}

fn write_str(sink: &mut dyn Write, s: &[u8]) -> io::Result<()> {
    sink.write_all(&(s.len() as u64).to_le_bytes())?;
    sink.write_all(s)?;
    let pad = (8 - s.len() % 8) % 8;
    sink.write_all(&[0u8; 8][..pad])
}

/// Writes the NAR serialisation of `path` to `sink`.
pub fn dump_path(path: &Path, sink: &mut dyn Write) -> Result<(), StoreError> {
    let wrap = |e: io::Error| StoreError::io(format!("dumping '{}'", path.display()), e);
    write_str(sink, NAR_MAGIC).map_err(wrap)?;
    dump_node(path, sink)
}

fn dump_node(path: &Path, sink: &mut dyn Write) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let wrap = |e: io::Error| StoreError::io(format!("dumping '{}'", path.display()), e);
    let metadata = fs::symlink_metadata(path).map_err(io_err("getting status of", path))?;
    let file_type = metadata.file_type();
    write_str(sink, b"(").map_err(wrap)?;
    if file_type.is_file() {
        write_str(sink, b"type").map_err(wrap)?;
        write_str(sink, b"regular").map_err(wrap)?;
        if metadata.permissions().mode() & 0o100 != 0 {
            write_str(sink, b"executable").map_err(wrap)?;
            write_str(sink, b"").map_err(wrap)?;
        }
        write_str(sink, b"contents").map_err(wrap)?;
        let mut file = File::open(path).map_err(io_err("opening file", path))?;
        let size = metadata.len();
        sink.write_all(&size.to_le_bytes()).map_err(wrap)?;
        // Copy exactly `size` bytes: a file that changes under us must not
        // produce a NAR whose length field lies.
        let copied = io::copy(&mut (&mut file).take(size), sink).map_err(wrap)?;
        if copied != size {
            return Err(StoreError::BadInput(format!(
                "file '{}' changed size while being read",
                path.display()
            )));
        }
        let pad = ((8 - size % 8) % 8) as usize;
        sink.write_all(&[0u8; 8][..pad]).map_err(wrap)?;
    } else if file_type.is_dir() {
        write_str(sink, b"type").map_err(wrap)?;
        write_str(sink, b"directory").map_err(wrap)?;
        let mut names: Vec<_> = fs::read_dir(path)
            .map_err(io_err("reading directory", path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err("reading directory", path))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            write_str(sink, b"entry").map_err(wrap)?;
            write_str(sink, b"(").map_err(wrap)?;
            write_str(sink, b"name").map_err(wrap)?;
            write_str(sink, name.as_bytes()).map_err(wrap)?;
            write_str(sink, b"node").map_err(wrap)?;
            dump_node(&path.join(&name), sink)?;
            write_str(sink, b")").map_err(wrap)?;
        }
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(io_err("reading symlink", path))?;
        write_str(sink, b"type").map_err(wrap)?;
        write_str(sink, b"symlink").map_err(wrap)?;
        write_str(sink, b"target").map_err(wrap)?;
        write_str(sink, target.as_os_str().as_bytes()).map_err(wrap)?;
    } else {
        return Err(StoreError::UnsupportedFileType(path.to_path_buf()));
    }
    write_str(sink, b")").map_err(wrap)?;
    Ok(())
}

/// A NAR reader over any byte stream, with CppNix-like error messages.
struct Parser<'a> {
    source: &'a mut dyn Read,
    /// Store contents (read-only, mtime 1) rather than ordinary files.
    canonical: bool,
    /// File contents pass through here: large writes, one allocation.
    buffer: Vec<u8>,
}

/// Size of the copy buffer for file contents.
const COPY_BUFFER: usize = 256 * 1024;

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::BadArchive(msg.into())
}

impl Parser<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        self.source.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad("unexpected end of archive")
            } else {
                StoreError::io("reading archive".into(), e)
            }
        })
    }

    fn read_u64(&mut self) -> Result<u64, StoreError> {
        let mut buf = [0u8; 8];
        self.read_exact(&mut buf)?;
        Ok(u64::from_le_bytes(buf))
    }

    fn read_padding(&mut self, len: u64) -> Result<(), StoreError> {
        let pad = ((8 - len % 8) % 8) as usize;
        if pad > 0 {
            let mut buf = [0u8; 8];
            self.read_exact(&mut buf[..pad])?;
            if buf[..pad].iter().any(|b| *b != 0) {
                return Err(bad("non-zero padding"));
            }
        }
        Ok(())
    }

    fn read_token(&mut self, max: u64) -> Result<Vec<u8>, StoreError> {
        let len = self.read_u64()?;
        if len > max {
            return Err(bad(format!("string of {len} bytes is too long")));
        }
        let mut buf = vec![0u8; len as usize];
        self.read_exact(&mut buf)?;
        self.read_padding(len)?;
        Ok(buf)
    }

    fn expect(&mut self, token: &[u8]) -> Result<(), StoreError> {
        let got = self.read_token(MAX_TOKEN)?;
        if got != token {
            return Err(bad(format!(
                "expected '{}', got '{}'",
                String::from_utf8_lossy(token),
                String::from_utf8_lossy(&got)
            )));
        }
        Ok(())
    }

    fn restore_node(&mut self, dest: &Path) -> Result<(), StoreError> {
        use std::os::unix::ffi::OsStrExt;
        self.expect(b"(")?;
        self.expect(b"type")?;
        let node_type = self.read_token(MAX_TOKEN)?;
        match node_type.as_slice() {
            b"regular" => {
                let mut tag = self.read_token(MAX_TOKEN)?;
                let mut executable = false;
                if tag == b"executable" {
                    self.expect(b"")?;
                    executable = true;
                    tag = self.read_token(MAX_TOKEN)?;
                }
                if tag != b"contents" {
                    return Err(bad(format!(
                        "expected 'contents', got '{}'",
                        String::from_utf8_lossy(&tag)
                    )));
                }
                let size = self.read_u64()?;
                // Store files are created with their final permissions: the
                // descriptor we write through was opened for writing, so the
                // read-only mode does not stop us, and no chmod is needed later.
                let mode = match (self.canonical, executable) {
                    (true, true) => 0o555,
                    (true, false) => 0o444,
                    (false, true) => 0o777,
                    (false, false) => 0o666,
                };
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(dest)
                    .map_err(io_err("creating file", dest))?;
                self.copy_contents(size, &mut file, dest)?;
                self.read_padding(size)?;
                if self.canonical {
                    // The umask may have removed bits; set exactly, by descriptor.
                    file.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(io_err("setting permissions of", dest))?;
                    set_mtime_one_fd(&file, dest)?;
                }
                self.expect(b")")?;
            }
            b"symlink" => {
                self.expect(b"target")?;
                let target = self.read_token(MAX_TOKEN)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(bad("invalid symlink target"));
                }
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), dest)
                    .map_err(io_err("creating symlink", dest))?;
                self.expect(b")")?;
            }
            b"directory" => {
                fs::create_dir(dest).map_err(io_err("creating directory", dest))?;
                let mut previous: Option<Vec<u8>> = None;
                loop {
                    let tag = self.read_token(MAX_TOKEN)?;
                    if tag == b")" {
                        break;
                    }
                    if tag != b"entry" {
                        return Err(bad(format!(
                            "expected 'entry' or ')', got '{}'",
                            String::from_utf8_lossy(&tag)
                        )));
                    }
                    self.expect(b"(")?;
                    self.expect(b"name")?;
                    let name = self.read_token(255)?;
                    if name.is_empty()
                        || name == b"."
                        || name == b".."
                        || name.contains(&b'/')
                        || name.contains(&0)
                    {
                        return Err(bad(format!(
                            "NAR contains invalid file name '{}'",
                            String::from_utf8_lossy(&name)
                        )));
                    }
                    if let Some(previous) = &previous
                        && name.as_slice() <= previous.as_slice() {
                            return Err(bad(format!(
                                "NAR directory is not sorted or has duplicate entry '{}'",
                                String::from_utf8_lossy(&name)
                            )));
                        }
                    self.expect(b"node")?;
                    self.restore_node(&dest.join(std::ffi::OsStr::from_bytes(&name)))?;
                    self.expect(b")")?;
                    previous = Some(name);
                }
                if self.canonical {
                    fs::set_permissions(dest, fs::Permissions::from_mode(0o555))
                        .map_err(io_err("setting permissions of", dest))?;
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown file type '{}'",
                    String::from_utf8_lossy(other)
                )));
            }
        }
        if self.canonical && node_type.as_slice() != b"regular" { set_mtime_one(dest) } else { Ok(()) }
    }

    /// Copies `size` bytes of file contents from the archive to `file`.
    fn copy_contents(&mut self, size: u64, file: &mut File, dest: &Path) -> Result<(), StoreError> {
        let chunk = (size as usize).min(COPY_BUFFER);
        if self.buffer.len() < chunk {
            self.buffer.resize(chunk, 0);
        }
        let mut left = size;
        while left > 0 {
            let n = (left as usize).min(COPY_BUFFER);
            let mut buffer = std::mem::take(&mut self.buffer);
            let read = self.read_exact(&mut buffer[..n]);
            let written = read.and_then(|()| file.write_all(&buffer[..n]).map_err(io_err("writing file", dest)));
            self.buffer = buffer;
            written?;
            left -= n as u64;
        }
        Ok(())
    }
}

/// Sets the modification time of an open file to 1 (the epoch plus one
/// second), as store contents have it.
fn set_mtime_one_fd(file: &File, path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        libc::timespec { tv_sec: 1, tv_nsec: 0 },
    ];
    // SAFETY: a descriptor we own and a pointer to two timespecs.
    if unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(StoreError::io(
            format!("changing modification time of '{}'", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Restores the NAR read from `source` at `dest` (which must not exist).
/// Files are made read-only (0444/0555), mtimes set to 1 and everything fsync'd.
pub fn restore_path(source: &mut dyn Read, dest: &Path) -> Result<(), StoreError> {
    restore(source, dest, true)
}

/// Restores a NAR as ordinary files (`nix-store --restore`): permissions from
/// the umask, executables executable, mtimes left as they are.
pub fn restore_path_plain(source: &mut dyn Read, dest: &Path) -> Result<(), StoreError> {
    restore(source, dest, false)
}

fn restore(source: &mut dyn Read, dest: &Path, canonical: bool) -> Result<(), StoreError> {
    let mut parser = Parser { source, canonical, buffer: Vec::new() };
    let magic = parser.read_token(MAX_TOKEN)?;
    if magic != NAR_MAGIC {
        return Err(bad("input doesn't look like a Nix archive"));
    }
    parser.restore_node(dest)
}

/// Makes everything written below `path` durable. A lone regular file (a
/// `.drv`, a flat fixed-output path) is fsync'd by itself. For anything else
/// one `syncfs(2)` of the file system holding it replaces an fsync per file
/// and directory, which costs a disk flush each (measured: 3,000 small files
/// took 19 s with per-file fsync, under 1 s this way); a symlink cannot be
/// opened, so it takes that way too. `syncfs` also writes out everything else
/// pending on the file system, which on a busy machine can take far longer
/// than one file's flush: hence the fast path.
pub fn sync_tree(path: &Path) -> Result<(), StoreError> {
    use std::os::fd::AsRawFd;
    let metadata = fs::symlink_metadata(path).map_err(io_err("getting status of", path))?;
    if metadata.is_file() {
        let file = File::open(path).map_err(io_err("opening", path))?;
        return file.sync_all().map_err(io_err("syncing", path));
    }
    let on_file_system = if metadata.is_dir() { path } else { path.parent().unwrap_or(path) };
    let file = File::open(on_file_system).map_err(io_err("opening", on_file_system))?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(StoreError::io(format!("syncing '{}'", path.display()), io::Error::last_os_error()));
    }
    Ok(())
}

/// Makes a path just renamed into `dir` durable, name included: its contents
/// as [`sync_tree`] does, then the directory, unless that sync already
/// carried the directory entry. It does when it was a `syncfs` (everything
/// on the file system is written), and on ext4 when it was the fsync of a
/// file: with a journal, that fsync commits the transaction holding the
/// rename (which touched the file's inode); without one, ext4 syncs the
/// directories leading to a newly created file as part of its fsync. On
/// other file systems the directory gets its own fsync, as POSIX asks. One
/// disk flush per `.drv` instead of two.
pub fn sync_new_entry(path: &Path, dir: &Path) -> Result<(), StoreError> {
    let metadata = fs::symlink_metadata(path).map_err(io_err("getting status of", path))?;
    sync_tree(path)?;
    if !metadata.is_file() || on_ext4(path) {
        return Ok(());
    }
    sync_dir(dir)
}

/// Whether `path` is on an ext4 file system (false when that cannot be told).
fn on_ext4(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs fills a zeroed buffer we own from a NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    stat.f_type as i64 == EXT4_SUPER_MAGIC
}

/// fsyncs a directory so the entries created in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let file = File::open(dir).map_err(io_err("opening directory", dir))?;
    file.sync_all().map_err(io_err("syncing directory", dir))
}

/// Sets atime to now and mtime to 1 without following symlinks, as CppNix's
/// canonicalisation does.
pub fn set_mtime_one(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| StoreError::BadPath(format!("path '{}' contains NUL", path.display())))?;
    let times = [
        libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        libc::timespec { tv_sec: 1, tv_nsec: 0 },
    ];
    // SAFETY: c_path is NUL-terminated and times points to two timespecs.
    let rc = unsafe {
        libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)
    };
    if rc != 0 {
        return Err(StoreError::io(
            format!("changing modification time of '{}'", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Copies a file system object to `dest` with canonical metadata (the same
/// result as dumping it and restoring the NAR, without the intermediate stream).
pub fn copy_canonical(source: &Path, dest: &Path) -> Result<(), StoreError> {
    let metadata = fs::symlink_metadata(source).map_err(io_err("getting status of", source))?;
    let file_type = metadata.file_type();
    if file_type.is_file() {
        let mut input = File::open(source).map_err(io_err("opening file", source))?;
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(dest)
            .map_err(io_err("creating file", dest))?;
        io::copy(&mut input, &mut output).map_err(io_err("copying to", dest))?;
        let mode = if metadata.permissions().mode() & 0o100 != 0 { 0o555 } else { 0o444 };
        fs::set_permissions(dest, fs::Permissions::from_mode(mode))
            .map_err(io_err("setting permissions of", dest))?;
    } else if file_type.is_dir() {
        fs::create_dir(dest).map_err(io_err("creating directory", dest))?;
        for entry in fs::read_dir(source).map_err(io_err("reading directory", source))? {
            let entry = entry.map_err(io_err("reading directory", source))?;
            copy_canonical(&entry.path(), &dest.join(entry.file_name()))?;
        }
        fs::set_permissions(dest, fs::Permissions::from_mode(0o555))
            .map_err(io_err("setting permissions of", dest))?;
    } else if file_type.is_symlink() {
        let target = fs::read_link(source).map_err(io_err("reading symlink", source))?;
        std::os::unix::fs::symlink(&target, dest).map_err(io_err("creating symlink", dest))?;
    } else {
        return Err(StoreError::UnsupportedFileType(source.to_path_buf()));
    }
    set_mtime_one(dest)
}

/// Removes a file system object even if it is read-only (store contents are).
pub fn delete_path(path: &Path) -> Result<(), StoreError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(format!("getting attributes of '{}'", path.display()), e)),
    };
    if metadata.is_dir() {
        // Directories in the store are 0555: make them writable to empty them.
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(io_err("making writable", path))?;
        for entry in fs::read_dir(path).map_err(io_err("reading directory", path))? {
            let entry = entry.map_err(io_err("reading directory", path))?;
            delete_path(&entry.path())?;
        }
        fs::remove_dir(path).map_err(io_err("removing directory", path))
    } else {
        fs::remove_file(path).map_err(io_err("removing", path))
    }
}
