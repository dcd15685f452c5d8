/// What talking to a remote store can fail with, worded as CppNix words it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    // The I/O error is a field, not a `source`: the message already shows it.
    #[error("{context}: {}", describe_io(error))]
    Io { context: String, error: std::io::Error },
    #[error("'nix-store --serve' protocol mismatch from '{host}'{}", got.as_ref().map(|g| format!(", got '{g}'")).unwrap_or_default())]
    ProtocolMismatch { host: String, got: Option<String> },
    #[error("unsupported 'nix-store --serve' protocol version on '{0}'")]
    UnsupportedVersion(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("failed to add path '{path}' to remote host '{host}'")]
    AddFailed { path: String, host: String },
    #[error("invalid store URI '{uri}': {reason}")]
    BadUri { uri: String, reason: String },
    #[error("cannot connect to '{host}': {reason}")]
    Connect { host: String, reason: String },
    #[error(transparent)]
    Store(#[from] nivis_store::StoreError),
}

impl RemoteError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RemoteError {
        let context = context.into();
        move |error| RemoteError::Io { context, error }
    }

    /// As a store error, for the [`nivis_store::Store`] trait.
    pub fn into_store_error(self) -> nivis_store::StoreError {
        match self {
            RemoteError::Store(e) => e,
            other => nivis_store::StoreError::Formats(Box::new(other)),
        }
    }
}

/// The system's message without Rust's " (os error N)" suffix, as CppNix shows it.
fn describe_io(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}
