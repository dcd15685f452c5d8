//! The store's typed errors. Messages follow CppNix's wording where users see them.

use std::path::PathBuf;

/// Anything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Shown as CppNix shows system errors: `context: strerror text`.
    // The underlying errors are fields, not `source`s, because the message
    // already includes them and callers print source chains too.
    #[error("{context}: {}", describe_io(error))]
    Io { context: String, error: std::io::Error },
    #[error("{context}: {error}")]
    Database { context: String, error: rusqlite::Error },
    #[error("invalid store URI '{uri}': {reason}")]
    BadStoreUri { uri: String, reason: String },
    #[error("store '{0}' is not supported by nivis yet")]
    UnsupportedStore(String),
    #[error("operation '{operation}' is not supported by store '{store}'")]
    Unsupported { operation: String, store: String },
    #[error("path '{0}' is not in the Nix store")]
    NotInStore(String),
    #[error("path '{0}' is not valid")]
    InvalidPath(String),
    #[error("{0}")]
    BadPath(String),
    #[error("current Nix store schema is version {found}, but I only support {supported}")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error(
        "the store database has schema version {0}, which nivis cannot upgrade; open it once with CppNix first"
    )]
    SchemaTooOld(u32),
    #[error("hash mismatch importing path '{path}';\n  specified: {expected}\n  got:       {actual}")]
    HashMismatch { path: String, expected: String, actual: String },
    #[error(
        "Cannot delete path '{path}' since it is still alive. To find out why, use: nix-store --query --roots"
    )]
    StillAlive { path: String },
    #[error("bad archive: {0}")]
    BadArchive(String),
    #[error("{0}")]
    BadInput(String),
    #[error("cycle detected in the references of '{path}' from '{parent}'")]
    Cycle { path: String, parent: String },
    #[error("file '{0}' has an unsupported type")]
    UnsupportedFileType(PathBuf),
    #[error(transparent)]
    Formats(Box<dyn std::error::Error + Send + Sync>),
}

/// The operating system's message without Rust's " (os error N)" suffix.
pub fn describe_io(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

impl StoreError {
    pub fn io(context: String, source: std::io::Error) -> Self {
        StoreError::Io { context, error: source }
    }
}
