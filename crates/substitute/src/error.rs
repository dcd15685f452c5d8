//! Typed errors of binary caches, substitution and copying.

use nivis_formats::{NarInfoError, SignatureError};
use nivis_store::StoreError;

/// Anything a binary cache, a copy or a substitution can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubstituteError {
    #[error("{context}: {}", describe_io(error))]
    Io { context: String, error: std::io::Error },
    #[error("unable to download '{url}': {reason}")]
    Download { url: String, reason: String },
    #[error("unable to upload '{url}': {reason}")]
    Upload { url: String, reason: String },
    #[error("binary cache '{cache}' is for Nix stores with prefix '{theirs}', not '{ours}'")]
    WrongStoreDir { cache: String, theirs: String, ours: String },
    #[error("invalid binary cache URI '{uri}': {reason}")]
    BadUri { uri: String, reason: String },
    #[error("unsupported compression method '{0}'")]
    UnknownCompression(String),
    #[error("in '{url}': {source}")]
    NarInfo { url: String, source: NarInfoError },
    #[error("narinfo '{url}' is for path '{found}', not '{wanted}'")]
    NarInfoMismatch { url: String, found: String, wanted: String },
    #[error("{0}")]
    Signature(#[from] SignatureError),
    #[error("cannot add path '{path}' because it lacks a signature by a trusted key")]
    Untrusted { path: String },
    #[error("hash mismatch in {what} of '{path}';\n  specified: {expected}\n  got:       {actual}")]
    HashMismatch { what: &'static str, path: String, expected: String, actual: String },
    #[error("size mismatch in {what} of '{path}';\n  specified: {expected}\n  got:       {actual}")]
    SizeMismatch { what: &'static str, path: String, expected: u64, actual: u64 },
    #[error("NAR of '{path}' is truncated: got {actual} of {expected} bytes")]
    Truncated { path: String, expected: u64, actual: u64 },
    #[error("decompressing the NAR of '{path}' ({compression}): {reason}")]
    Decompression { path: String, compression: String, reason: String },
    #[error("path '{path}' is not available from any substituter{}", describe_attempts(attempts))]
    NoSubstituter { path: String, attempts: Vec<String> },
    #[error("path '{0}' is not valid in the source store")]
    NotInSource(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The operating system's message without Rust's " (os error N)" suffix.
fn describe_io(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

fn describe_attempts(attempts: &[String]) -> String {
    attempts.iter().map(|a| format!("\n  {a}")).collect()
}

impl SubstituteError {
    pub fn io(context: impl Into<String>, error: std::io::Error) -> Self {
        SubstituteError::Io { context: context.into(), error }
    }

    /// Carries this error through a `Store` trait method, whose error type is
    /// `StoreError`; store errors pass through unchanged.
    pub fn into_store_error(self) -> StoreError {
        match self {
            SubstituteError::Store(e) => e,
            other => StoreError::Formats(Box::new(other)),
        }
    }
}
