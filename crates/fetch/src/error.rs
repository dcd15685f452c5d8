//! The one error type of the fetchers. Messages are CppNix's where it has one.

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A transfer failed (HTTP status, connection, unsupported scheme); the
    /// message names the URL, as `unable to download '...': ...`.
    #[error("{message}")]
    Transfer {
        url: String,
        message: String,
        transient: bool,
    },
    /// A fetched object does not have the hash the caller asked for.
    #[error("{0}")]
    HashMismatch(String),
    /// Bad arguments or inputs, a failed `git`, an unpacking error...
    #[error("{0}")]
    Message(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] nivis_store::StoreError),
}

impl FetchError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> FetchError {
        FetchError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn msg(message: impl Into<String>) -> FetchError {
        FetchError::Message(message.into())
    }

    /// Exit status CppNix uses for this error (102 for hash mismatches).
    pub fn exit_status(&self) -> i32 {
        match self {
            FetchError::HashMismatch(_) => 102,
            _ => 1,
        }
    }
}
