//! The fetchers of CppNix 2.8: `builtins.fetchurl`, `fetchTarball`, `fetchGit`,
//! `fetchTree`, the `builtin:fetchurl` builder and `nix-prefetch-url`, over a
//! [`nivis_store::Store`].
//!
//! - [`transfer`]: downloads over `http://`, `file://` (and `https://` with the
//!   `https` feature), with CppNix's error wording and retries.
//! - [`unpack`]: archives (tar, gzip, xz, bzip2, zstd, zip, told apart by their
//!   first bytes, as libarchive does).
//! - [`cache`]: the fetcher cache (`tarball-ttl`), so that repeated evaluations
//!   do not download again.
//! - [`tarball`]: `downloadFile`/`downloadTarball` and the `fetchurl`/`fetchTarball`
//!   builtins; `git`: the Git fetcher, which runs the `git` command as CppNix does;
//!   [`input`]: `fetchTree`'s inputs (attributes, types, checks, results);
//!   [`git_archive`]: `github:`, `gitlab:` and `sourcehut:` inputs (forge archives).
//!
//! Assumptions: a store path is added only once its contents are complete and
//! checked (an expected hash is verified before `add_to_store`), so a failed fetch
//! leaves nothing registered. Temporary files live under `TMPDIR`.

pub mod cache;
mod error;
mod git;
pub mod git_archive;
pub mod input;
mod settings;
pub mod tarball;
pub mod transfer;
pub mod unpack;

pub use error::FetchError;
pub use input::{Attr, Attrs, FetchedTree, Input, fetch_tree};
pub use settings::FetchSettings;
pub use tarball::{DownloadedFile, FetchUrl, download_file, download_tarball, fetch_url};
pub use transfer::download_to;

/// A temporary directory under `TMPDIR`, removed when dropped.
pub fn temp_dir() -> Result<tempfile::TempDir, FetchError> {
    tarball::temp_dir()
}

/// An I/O error worded as C's `strerror` (as CppNix shows it), without Rust's
/// " (os error N)" suffix.
pub(crate) fn error_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}
