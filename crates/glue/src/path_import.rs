//! Copying paths from the file system into the store: path coercion
//! (`"${./foo}"`), `builtins.path` and `builtins.filterSource`.
//!
//! With a filter, the NAR is produced here by walking the tree and asking the
//! filter about every entry (CppNix calls it with the full path and the type
//! name); without one, the store's own ingestion is used.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nivis_eval::io::{FileType, PathFilter};
use nivis_eval::IoError;
use nivis_formats::nar::{NarWriter, hash_path};
use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, StorePath, StorePathSet};
use nivis_store::{ContentAddress, ValidPathInfo};

use crate::{StoreEvalIO, store_error};

fn message(text: impl Into<String>) -> IoError {
    IoError::Message(text.into())
}

pub(crate) fn add_path(
    io: &StoreEvalIO,
    path: &Path,
    name: &str,
    recursive: bool,
    filter: Option<&mut PathFilter<'_>>,
) -> Result<StorePath, IoError> {
    if let Err(error) = std::fs::symlink_metadata(path) {
        // Current CppNix's words for a missing path.
        if error.kind() == std::io::ErrorKind::NotFound {
            return Err(message(format!("path '{}' does not exist", path.display())));
        }
        return Err(message(format!("getting status of '{}': {}", path.display(), os_reason(&error))));
    }
    let store_dir = io.store_dir();
    let method = if recursive { FileIngestionMethod::Recursive } else { FileIngestionMethod::Flat };
    let fixed_path = |hash: &Hash| {
        store_dir
            .make_fixed_output_path(method, hash, name, &StorePathSet::new(), false)
            .map_err(|e| message(e.to_string()))
    };

    if let (Some(filter), true) = (filter, recursive) {
        let nar = filtered_nar(path, filter)?;
        let nar_hash = Hash::of_bytes(HashAlgorithm::Sha256, &nar);
        let store_path = fixed_path(&nar_hash)?;
        if io.read_only || io.store.is_valid_path(&store_path).map_err(store_error)? {
            return Ok(store_path);
        }
        let mut info = ValidPathInfo::new(store_path.clone(), nar_hash.clone(), nar.len() as u64);
        info.ca = Some(ContentAddress::Fixed(FileIngestionMethod::Recursive, nar_hash));
        io.store.add_nar(&info, &mut nar.as_slice(), false).map_err(store_error)?;
        return Ok(store_path);
    }

    if io.read_only {
        let hash = if recursive {
            hash_path(path, HashAlgorithm::Sha256).map_err(|e| message(format!("while hashing '{}': {e}", path.display())))?.0
        } else {
            let contents = std::fs::read(path).map_err(|e| message(format!("cannot read '{}': {e}", path.display())))?;
            Hash::of_bytes(HashAlgorithm::Sha256, &contents)
        };
        return fixed_path(&hash);
    }
    io.store
        .add_to_store(name, path, method, HashAlgorithm::Sha256, &StorePathSet::new(), false)
        .map_err(store_error)
}

/// Serialises `root` as a NAR, leaving out every entry (below the root) the
/// filter rejects, and everything beneath a rejected directory.
fn filtered_nar(root: &Path, filter: &mut PathFilter<'_>) -> Result<Vec<u8>, IoError> {
    let mut writer = NarWriter::new(Vec::new()).map_err(|e| message(e.to_string()))?;
    write_node(&mut writer, root, filter)?;
    writer.finish().map_err(|e| message(e.to_string()))
}

/// The reason part of an I/O error as CppNix words it (strerror, without Rust's
/// "(os error N)" suffix).
fn os_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(index) => text[..index].to_string(),
        None => text,
    }
}

fn nar_error(error: nivis_formats::nar::NarError) -> IoError {
    message(error.to_string())
}

fn write_node(writer: &mut NarWriter<Vec<u8>>, path: &Path, filter: &mut PathFilter<'_>) -> Result<(), IoError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::symlink_metadata(path).map_err(|e| message(format!("cannot stat '{}': {e}", path.display())))?;
    let file_type = metadata.file_type();
    if file_type.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| message(format!("cannot read link '{}': {e}", path.display())))?;
        writer.symlink(target.as_os_str().as_bytes()).map_err(nar_error)
    } else if file_type.is_file() {
        let executable = metadata.permissions().mode() & 0o100 != 0;
        let mut file = std::fs::File::open(path).map_err(|e| message(format!("cannot open '{}': {e}", path.display())))?;
        writer.regular_file(executable, metadata.len(), &mut file).map_err(nar_error)
    } else if file_type.is_dir() {
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(path)
            .map_err(|e| message(format!("cannot read directory '{}': {e}", path.display())))?
            .map(|entry| entry.map(|e| e.file_name().as_bytes().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| message(format!("cannot read directory '{}': {e}", path.display())))?;
        names.sort();
        writer.begin_directory().map_err(nar_error)?;
        for name in names {
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            let child_type = std::fs::symlink_metadata(&child)
                .map(|m| kind_of(m.file_type()))
                .map_err(|e| message(format!("cannot stat '{}': {e}", child.display())))?;
            if !filter(&child, child_type)? {
                continue;
            }
            writer.entry(&name).map_err(nar_error)?;
            write_node(writer, &child, filter)?;
        }
        writer.end_directory().map_err(nar_error)
    } else {
        Err(message(format!("file '{}' has an unsupported type", path.display())))
    }
}

fn kind_of(file_type: std::fs::FileType) -> FileType {
    if file_type.is_symlink() {
        FileType::Symlink
    } else if file_type.is_dir() {
        FileType::Directory
    } else if file_type.is_file() {
        FileType::Regular
    } else {
        FileType::Unknown
    }
}
