//! Restoring a NAR onto disk, as `nix-store --restore` does, but atomically: the
//! tree is built under a temporary name beside the destination and renamed into
//! place only once the whole archive has been read and checked. On any error
//! the temporary tree is removed, so a bad archive leaves nothing behind.

use std::fs::{self, File};
use std::io::{BufRead, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::reader::{NarVisitor, parse};
use super::NarError;

/// Writes each entry below `root`.
struct Restorer {
    root: PathBuf,
    buffer: Vec<u8>,
}

impl Restorer {
    fn target(&self, path: &Path) -> PathBuf {
        if path.as_os_str().is_empty() { self.root.clone() } else { self.root.join(path) }
    }
}

impl NarVisitor for Restorer {
    fn directory(&mut self, path: &Path) -> Result<(), NarError> {
        let target = self.target(path);
        fs::create_dir(&target).map_err(NarError::io("creating directory", target))
    }

    fn regular_file(&mut self, path: &Path, executable: bool, _size: u64, contents: &mut dyn Read) -> Result<(), NarError> {
        let target = self.target(path);
        // Like CppNix: 0666 minus the umask, plus execute for everyone when
        // the archive says executable.
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .custom_flags(libc::O_CLOEXEC)
            .open(&target)
            .map_err(NarError::io("creating file", &target))?;
        loop {
            let read = match contents.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NarError::stream(e)),
            };
            file.write_all(&self.buffer[..read]).map_err(NarError::io("writing file", &target))?;
        }
        if executable {
            let metadata = file.metadata().map_err(NarError::io("getting status of", &target))?;
            let mode = metadata.permissions().mode() | 0o111;
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(NarError::io("making executable", &target))?;
        }
        Ok(())
    }

    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError> {
        let link = self.target(path);
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &link)
            .map_err(NarError::io("creating symlink", link))
    }
}

/// Distinguishes temporary names of concurrent restores in one process.
static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Restores the NAR read from `reader` to `destination`, which must not exist;
/// its parent must. Reads exactly the archive's bytes.
pub fn restore_path<R: BufRead + ?Sized>(reader: &mut R, destination: &Path) -> Result<(), NarError> {
    if fs::symlink_metadata(destination).is_ok() {
        return Err(NarError::AlreadyExists(destination.to_path_buf()));
    }
    let file_name = destination
        .file_name()
        .ok_or_else(|| NarError::InvalidName(destination.to_string_lossy().into_owned()))?;
    let parent = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(
        ".nivis-restore-{}-{}",
        std::process::id(),
        TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let temporary = parent.join(temporary_name);

    let mut restorer = Restorer { root: temporary.clone(), buffer: vec![0u8; 256 * 1024] };
    let result = parse(reader, &mut restorer).and_then(|()| rename_no_replace(&temporary, destination));
    if result.is_err() {
        remove_tree(&temporary);
    }
    result
}

/// Renames, failing if `to` exists (`renameat2(RENAME_NOREPLACE)`), with a
/// check-then-rename fallback on file systems that lack it.
fn rename_no_replace(from: &Path, to: &Path) -> Result<(), NarError> {
    use std::ffi::CString;
    let c_from = CString::new(from.as_os_str().as_bytes()).map_err(|_| NarError::InvalidName(from.display().to_string()))?;
    let c_to = CString::new(to.as_os_str().as_bytes()).map_err(|_| NarError::InvalidName(to.display().to_string()))?;
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(libc::AT_FDCWD, c_from.as_ptr(), libc::AT_FDCWD, c_to.as_ptr(), libc::RENAME_NOREPLACE)
    };
    if rc == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EEXIST) => Err(NarError::AlreadyExists(to.to_path_buf())),
        Some(libc::EINVAL) | Some(libc::ENOSYS) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(NarError::AlreadyExists(to.to_path_buf()));
            }
            fs::rename(from, to).map_err(NarError::io("renaming into place", to))
        }
        _ => Err(NarError::Io { action: "renaming into place", path: to.to_path_buf(), error }),
    }
}

/// Best-effort removal of a partly restored tree. Directories restored from an
/// archive are writable by us (created with mode 0777 minus umask), so plain
/// removal works.
fn remove_tree(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}
