//! Permanent GC roots made outside `gcroots/`: a symlink the user sees (a
//! `result` link, a profile generation) plus an indirect root under
//! `gcroots/auto/` pointing at that symlink, as CppNix's `addPermRoot`.

use std::fs;
use std::path::{Component, Path, PathBuf};

use nivis_formats::{Hash, HashAlgorithm, StorePath};

use crate::{LocalStore, Store, StoreError};

/// Writes the symlink `link -> target` atomically: a temporary link beside it
/// (`<link>.tmp-<pid>-<n>`) renamed over it.
fn make_symlink(link: &Path, target: &str) -> Result<(), StoreError> {
    if let Some(dir) = link.parent() {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(format!("creating directory '{}'", dir.display()), e))?;
    }
    let mut n = 0u32;
    loop {
        let mut temp = link.as_os_str().to_os_string();
        temp.push(format!(".tmp-{}-{n}", std::process::id()));
        let temp = PathBuf::from(temp);
        match std::os::unix::fs::symlink(target, &temp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                continue;
            }
            Err(e) => return Err(StoreError::io(format!("creating symlink '{}'", temp.display()), e)),
        }
        return fs::rename(&temp, link).map_err(|e| {
            let _ = fs::remove_file(&temp);
            StoreError::io(format!("renaming '{}' to '{}'", temp.display(), link.display()), e)
        });
    }
}

impl LocalStore {
    /// Registers `link` (an absolute path outside the store) as an indirect
    /// root: `gcroots/auto/<nix32 of sha1(link)>` points at it, so the
    /// collector follows it for as long as `link` exists and points into the store.
    pub fn add_indirect_root(&self, link: &Path) -> Result<(), StoreError> {
        let text = link.to_string_lossy();
        let hash = Hash::of_bytes(HashAlgorithm::Sha1, text.as_bytes()).to_nix32();
        make_symlink(&self.config().state_dir.join("gcroots/auto").join(hash), &text)
    }

    /// Makes `link` a permanent root for `path`, as CppNix's `addPermRoot`:
    /// `path` becomes a temporary root first (so a collector running now keeps
    /// it), an existing `link` is only replaced if it is a symlink into the
    /// store, and the link is registered as an indirect root.
    pub fn add_perm_root(&self, path: &StorePath, link: &Path) -> Result<PathBuf, StoreError> {
        let link = absolute(link)?;
        let store_dir = self.store_dir();
        if store_dir.is_in_store(&link.to_string_lossy()) {
            return Err(StoreError::BadPath(format!(
                "creating a garbage collector root ({}) in the Nix store is forbidden \
                 (are you running nix-build inside the store?)",
                link.display()
            )));
        }
        self.add_temp_root(path)?;
        if let Ok(metadata) = fs::symlink_metadata(&link) {
            let into_store = metadata.file_type().is_symlink()
                && fs::read_link(&link).is_ok_and(|t| store_dir.is_in_store(&t.to_string_lossy()));
            if !into_store {
                return Err(StoreError::BadPath(format!("cannot create symlink '{}'; already exists", link.display())));
            }
        }
        make_symlink(&link, &store_dir.print_path(path))?;
        self.add_indirect_root(&link)?;
        Ok(link)
    }
}

/// `path` made absolute (against the current directory) and canonical, as the
/// link name CppNix's `addPermRoot` records.
fn absolute(path: &Path) -> Result<PathBuf, StoreError> {
    if path.is_absolute() {
        return Ok(canon_path(path));
    }
    let cwd = std::env::current_dir().map_err(|e| StoreError::io("getting the current directory".into(), e))?;
    Ok(canon_path(&cwd.join(path)))
}

/// CppNix's `canonPath`: absolute, without `.`, `..` or repeated slashes;
/// symlinks are not resolved.
pub fn canon_path(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(c) => out.push(c),
            _ => {}
        }
    }
    out
}
