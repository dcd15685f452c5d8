//! After the builder: making outputs look like every other store path
//! (canonical metadata), and computing what registration needs (NAR hash, NAR
//! size, references) in one pass over the output: `nivis-formats`' NAR writer
//! feeds a hasher and the reference scanner at once.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nivis_formats::nar::dump_path;
use nivis_formats::{Hash, HashAlgorithm};
use sha2::{Digest, Sha256};

use crate::error::BuildError;
use crate::refs::ReferenceScanner;

/// The modification time of everything in the store (CppNix's `mtimeStore`).
pub const STORE_MTIME: i64 = 1;

/// Extended attributes that may stay: the kernel or the security module
/// manages them, and removing them fails or does harm (CppNix keeps the same).
const KEPT_XATTRS: [&[u8]; 2] = [b"security.selinux", b"system.nfs4_acl"];

/// Gives every file below `path` the metadata of a store path, as CppNix's
/// `canonicalisePathMetaData`: permissions 0444, or 0555 for directories and
/// files executable by their owner (no setuid, setgid, sticky or write bits),
/// modification time 1, no extended attributes, owned by `owner` (uid, gid)
/// when given (the store's owner, for builds that ran as a build user).
pub fn canonicalise_path_metadata(path: &Path, owner: Option<(u32, u32)>) -> Result<(), BuildError> {
    let metadata = fs::symlink_metadata(path).map_err(|e| BuildError::io("getting status of", path, e))?;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| BuildError::InvalidRequest(format!("path '{}' contains a NUL byte", path.display())))?;

    remove_extended_attributes(path, &c_path)?;

    if let Some((uid, gid)) = owner
        && (metadata.uid() != uid || metadata.gid() != gid)
    {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| BuildError::io("changing ownership of", path, e))?;
    }

    let file_type = metadata.file_type();
    if !file_type.is_symlink() {
        let mode = metadata.permissions().mode() & 0o7777;
        if mode != 0o444 && mode != 0o555 {
            let canonical = 0o444 | if mode & 0o100 != 0 { 0o111 } else { 0 };
            fs::set_permissions(path, fs::Permissions::from_mode(canonical))
                .map_err(|e| BuildError::io("changing mode of", path, e))?;
        }
    }

    if metadata.mtime() != STORE_MTIME {
        let times = [
            libc::timespec { tv_sec: metadata.atime(), tv_nsec: metadata.atime_nsec() },
            libc::timespec { tv_sec: STORE_MTIME, tv_nsec: 0 },
        ];
        // SAFETY: a NUL-terminated path and a two-element array, as utimensat expects.
        if unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(BuildError::io("changing modification time of", path, io::Error::last_os_error()));
        }
    }

    if file_type.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| BuildError::io("reading directory", path, e))? {
            let entry = entry.map_err(|e| BuildError::io("reading directory", path, e))?;
            canonicalise_path_metadata(&entry.path(), owner)?;
        }
    }
    Ok(())
}

fn remove_extended_attributes(path: &Path, c_path: &CString) -> Result<(), BuildError> {
    // SAFETY: a size query with a null buffer.
    let size = unsafe { libc::llistxattr(c_path.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        let error = io::Error::last_os_error();
        // File systems without xattr support have nothing to remove.
        if matches!(error.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOSYS)) {
            return Ok(());
        }
        return Err(BuildError::io("listing extended attributes of", path, error));
    }
    if size == 0 {
        return Ok(());
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer is as large as the kernel said the list is.
    let size = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Err(BuildError::io("listing extended attributes of", path, io::Error::last_os_error()));
    }
    names.truncate(size as usize);
    for name in names.split(|&byte| byte == 0).filter(|name| !name.is_empty()) {
        if KEPT_XATTRS.contains(&name) {
            continue;
        }
        let c_name = CString::new(name).expect("split at NUL bytes");
        // SAFETY: two NUL-terminated strings.
        if unsafe { libc::lremovexattr(c_path.as_ptr(), c_name.as_ptr()) } != 0 {
            return Err(BuildError::io("removing extended attribute of", path, io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// What registering an output needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputInfo {
    /// SHA-256 of the output's NAR serialisation.
    pub nar_hash: Hash,
    pub nar_size: u64,
    /// The candidate store paths the output refers to (possibly itself).
    pub references: BTreeSet<String>,
}

/// Serialises `path` as a NAR once, hashing it, counting it and scanning it for
/// the hash parts of `reference_candidates` (the input closure and the
/// derivation's own outputs, as CppNix passes).
pub fn scan_and_hash_output<I, S>(path: &Path, reference_candidates: I) -> Result<OutputInfo, BuildError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    struct Tee {
        hasher: Sha256,
        size: u64,
        scanner: ReferenceScanner,
    }
    impl Write for Tee {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.hasher.update(buf);
            self.size += buf.len() as u64;
            self.scanner.feed(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let tee = Tee { hasher: Sha256::new(), size: 0, scanner: ReferenceScanner::new(reference_candidates) };
    let mut tee = tee;
    dump_path(path, &mut tee)?;
    let nar_hash = Hash::from_digest(HashAlgorithm::Sha256, &tee.hasher.finalize())
        .expect("a SHA-256 digest has the SHA-256 size");
    Ok(OutputInfo { nar_hash, nar_size: tee.size, references: tee.scanner.found_paths() })
}

/// The most files and directories an output may have to be made durable
/// one `fsync` at a time; larger outputs take one `syncfs`.
const MAX_ENTRIES_SYNCED_ONE_BY_ONE: usize = 64;

/// Makes finished outputs durable before they are registered (a path is
/// valid only once its contents are on disk), and the entries the outputs
/// were moved to in `real_store_dir`.
///
/// An output of a few regular files and directories (most small builds) is
/// fsync'd file by file, then the store directory (not needed on ext4 for
/// outputs that are lone files). Anything larger, or holding symlinks (which
/// cannot be opened to be synced), takes one `syncfs(2)` of the store's file
/// system, which also writes out whatever else is pending there and so, on a
/// busy machine, costs far more than a few files' flushes.
pub(crate) fn sync_outputs<'a>(
    outputs: impl IntoIterator<Item = &'a Path>,
    real_store_dir: &Path,
) -> Result<(), BuildError> {
    let mut files = Vec::new();
    let mut directories = Vec::new();
    let mut whole_file_system = false;
    'outputs: for output in outputs {
        let mut pending = vec![output.to_path_buf()];
        while let Some(path) = pending.pop() {
            let metadata = fs::symlink_metadata(&path).map_err(|e| BuildError::io("getting status of", &path, e))?;
            if metadata.is_file() {
                files.push(path);
            } else if metadata.is_dir() {
                for entry in fs::read_dir(&path).map_err(|e| BuildError::io("reading directory", &path, e))? {
                    pending.push(entry.map_err(|e| BuildError::io("reading directory", &path, e))?.path());
                }
                directories.push(path);
            } else {
                whole_file_system = true;
                break 'outputs;
            }
            if files.len() + directories.len() > MAX_ENTRIES_SYNCED_ONE_BY_ONE {
                whole_file_system = true;
                break 'outputs;
            }
        }
    }
    if whole_file_system {
        let directory = fs::File::open(real_store_dir).map_err(|e| BuildError::io("opening", real_store_dir, e))?;
        // SAFETY: syncfs on a descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&directory)) } != 0 {
            return Err(BuildError::io("syncing the file system of", real_store_dir, io::Error::last_os_error()));
        }
        return Ok(());
    }
    // Children before their parents, the store directory last, except where
    // the outputs are lone files on ext4, whose fsync also carries the name
    // they were renamed to (see `nivis_store`'s `sync_new_entry`).
    let names_carried = directories.is_empty() && files.first().is_some_and(|file| on_ext4(file));
    let store_dir = (!names_carried).then_some(real_store_dir);
    for path in files.iter().chain(directories.iter().rev()).map(|p| p.as_path()).chain(store_dir) {
        let file = fs::File::open(path).map_err(|e| BuildError::io("opening", path, e))?;
        file.sync_all().map_err(|e| BuildError::io("syncing", path, e))?;
    }
    Ok(())
}

/// Whether `path` is on an ext4 file system (false when that cannot be told).
fn on_ext4(path: &Path) -> bool {
    const EXT4_SUPER_MAGIC: i64 = 0xEF53;
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs fills a zeroed buffer we own from a NUL-terminated path.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    stat.f_type as i64 == EXT4_SUPER_MAGIC
}
