//! Unpacking archives as CppNix's `unpackTarfile` does with libarchive: the
//! format is recognised by its first bytes, not by the file name (gzip, xz,
//! bzip2 and zstd compressed tar, plain tar, zip). Modes (the executable bit)
//! and modification times are kept; entries that would land outside the
//! destination are refused.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use crate::FetchError;

/// A reader that decodes a compression by its `Content-Encoding` name or
/// CppNix's decompression names (`xz`, `bzip2`, `gzip`, `zstd`).
pub fn decompressor(name: &str, inner: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, String> {
    Ok(match name {
        "gzip" | "x-gzip" => Box::new(flate2::read::MultiGzDecoder::new(inner)),
        "xz" => Box::new(liblzma::read::XzDecoder::new_multi_decoder(inner)),
        "bzip2" | "x-bzip2" => Box::new(bzip2::read::MultiBzDecoder::new(inner)),
        "zstd" => Box::new(zstd::stream::read::Decoder::new(inner).map_err(|e| e.to_string())?),
        "none" | "identity" | "" => inner,
        other => return Err(format!("unknown compression method '{other}'")),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Gzip,
    Xz,
    Bzip2,
    Zstd,
    Zip,
    Tar,
}

fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Format::Xz)
    } else if head.starts_with(b"BZh") {
        Some(Format::Bzip2)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::Zstd)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

fn open_error(reason: impl std::fmt::Display) -> FetchError {
    FetchError::msg(format!("failed to open archive: {reason}"))
}

fn extract_error(reason: impl std::fmt::Display) -> FetchError {
    FetchError::msg(format!("failed to extract archive ({reason})"))
}

/// Reads up to `n` bytes without failing on short input.
fn read_head(reader: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Unpacks the archive `archive` into the existing directory `destination`.
pub fn unpack_archive(archive: &Path, destination: &Path) -> Result<(), FetchError> {
    let mut file = File::open(archive).map_err(|e| FetchError::io(format!("opening '{}'", archive.display()), e))?;
    let head = read_head(&mut file, 512).map_err(open_error)?;
    let format = sniff(&head).ok_or_else(|| open_error("Unrecognized archive format"))?;
    if format == Format::Zip {
        return unpack_zip(archive, destination);
    }
    let file = File::open(archive).map_err(|e| FetchError::io(format!("opening '{}'", archive.display()), e))?;
    let reader: Box<dyn Read + Send> = Box::new(BufReader::new(file));
    let mut reader = match format {
        Format::Gzip => decompressor("gzip", reader),
        Format::Xz => decompressor("xz", reader),
        Format::Bzip2 => decompressor("bzip2", reader),
        Format::Zstd => decompressor("zstd", reader),
        _ => Ok(reader),
    }
    .map_err(open_error)?;
    if format != Format::Tar {
        // The compressed stream must hold a tar archive.
        let inner = read_head(&mut reader, 512).map_err(|e| open_error(describe_decode_error(format, &e)))?;
        if sniff(&inner) != Some(Format::Tar) && !is_old_tar(&inner) {
            return Err(open_error("Unrecognized archive format"));
        }
        let chained: Box<dyn Read + Send> = Box::new(io::Cursor::new(inner).chain(reader));
        return unpack_tar(chained, destination, format);
    }
    unpack_tar(reader, destination, format)
}

/// A pre-POSIX tar header: no `ustar` magic, but a valid checksum.
fn is_old_tar(head: &[u8]) -> bool {
    if head.len() < 512 || head[0] == 0 {
        return false;
    }
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(recorded) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8) else {
        return false;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { *b as u32 })
        .sum();
    sum == recorded
}

fn describe_decode_error(format: Format, error: &io::Error) -> String {
    match (format, error.kind()) {
        (Format::Gzip, io::ErrorKind::UnexpectedEof) => "truncated gzip input".into(),
        _ => crate::error_text(error),
    }
}

/// Unpacks a plain tar stream (such as `git archive`'s) into `destination`.
pub(crate) fn unpack_tar_stream(reader: Box<dyn Read + Send>, destination: &Path) -> Result<(), FetchError> {
    unpack_tar(reader, destination, Format::Tar)
}

fn unpack_tar(reader: Box<dyn Read + Send>, destination: &Path, format: Format) -> Result<(), FetchError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    archive.set_preserve_ownerships(false);
    unpack_entries(&mut archive, destination).map_err(|e| {
        let detail = match e.kind() {
            io::ErrorKind::UnexpectedEof => match format {
                Format::Gzip => "truncated gzip input".to_string(),
                _ => "Truncated tar archive".to_string(),
            },
            _ => crate::error_text(&e),
        };
        extract_error(detail)
    })
}

/// `Archive::unpack`, plus what it leaves out: directories keep their mtimes
/// (libarchive's `ARCHIVE_EXTRACT_TIME`), which matters because the top
/// directory's mtime is a fetched tree's `lastModified`. As `unpack`, files
/// go first and directories last, deepest first, so a read-only directory
/// cannot block its children and no child changes a parent's time afterwards.
fn unpack_entries(archive: &mut tar::Archive<Box<dyn Read + Send>>, destination: &Path) -> io::Result<()> {
    std::fs::create_dir_all(destination)?;
    let mut directories = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() == tar::EntryType::Directory {
            directories.push(entry);
        } else {
            entry.unpack_in(destination)?;
        }
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut directory in directories {
        let mtime = directory.header().mtime().ok();
        let relative = directory.path()?.into_owned();
        if directory.unpack_in(destination)? {
            if let Some(mtime) = mtime {
                set_mtime(&destination.join(relative), mtime as i64);
            }
        }
    }
    Ok(())
}

/// A zip member's path, refused if it would leave the destination.
fn safe_member_path(destination: &Path, name: &str) -> Result<PathBuf, FetchError> {
    let relative = Path::new(name);
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            _ => return Err(extract_error(format!("Path contains '..' or is absolute: '{name}'"))),
        }
    }
    Ok(destination.join(relative))
}

fn set_mtime(path: &Path, mtime: i64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return;
    };
    let times = [
        libc::timespec {
            tv_sec: mtime as libc::time_t,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: mtime as libc::time_t,
            tv_nsec: 0,
        },
    ];
    // SAFETY: a valid NUL-terminated path and two timespecs.
    unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

/// Seconds since the epoch of a zip member's DOS time, read as UTC (the
/// machines that run tests and builders are in UTC; libarchive uses local time).
fn zip_mtime(time: zip::DateTime) -> i64 {
    let days = days_from_civil(time.year() as i64, time.month() as i64, time.day() as i64);
    days * 86400 + time.hour() as i64 * 3600 + time.minute() as i64 * 60 + time.second() as i64
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn unpack_zip(archive_path: &Path, destination: &Path) -> Result<(), FetchError> {
    use std::os::unix::fs::PermissionsExt;
    let file =
        File::open(archive_path).map_err(|e| FetchError::io(format!("opening '{}'", archive_path.display()), e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(open_error)?;
    let mut directories = Vec::new();
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(extract_error)?;
        let name = member.name().map_err(extract_error)?.to_string();
        let target = safe_member_path(destination, &name)?;
        let mtime = member.last_modified().map(zip_mtime);
        let mode = member.unix_mode();
        if member.is_dir() {
            fs::create_dir_all(&target).map_err(extract_error)?;
            if let Some(mtime) = mtime {
                directories.push((target, mtime));
            }
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(extract_error)?;
        }
        let is_symlink = mode.map(|m| m & 0o170000 == 0o120000).unwrap_or(false);
        if is_symlink {
            let mut link = Vec::new();
            member.read_to_end(&mut link).map_err(extract_error)?;
            let link = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&link);
            let _ = fs::remove_file(&target);
            std::os::unix::fs::symlink(link, &target).map_err(extract_error)?;
        } else {
            let mut out = File::create(&target).map_err(extract_error)?;
            io::copy(&mut member, &mut out).map_err(extract_error)?;
            let permissions = mode.map(|m| m & 0o7777).filter(|m| *m != 0).unwrap_or(0o644);
            fs::set_permissions(&target, fs::Permissions::from_mode(permissions)).map_err(extract_error)?;
        }
        if let Some(mtime) = mtime {
            set_mtime(&target, mtime);
        }
    }
    // Directories last: writing their members changed their times.
    for (directory, mtime) in directories.into_iter().rev() {
        set_mtime(&directory, mtime);
    }
    Ok(())
}
