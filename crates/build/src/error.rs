//! The errors of this crate. A builder that fails is not an error here: it is a
//! [`crate::BuildStatus`] in a successful [`crate::BuildOutcome`]. Errors are the
//! cases where we could not run the builder at all, or could not finish the
//! after-build steps.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The kernel refused to give us user namespaces (disabled by sysctl, seccomp
    /// in a container, ...). Callers may fall back to an unsandboxed build.
    #[error("cannot create the build sandbox: user namespaces are not available ({0})")]
    NamespacesUnavailable(io::Error),

    /// A system call while preparing the sandbox failed, in the parent or in the
    /// child before it ran the builder.
    #[error("setting up the build sandbox: {step}: {source}")]
    Sandbox { step: String, source: io::Error },

    /// The builder could not be executed (missing inside the sandbox, not
    /// executable, ...).
    #[error("executing builder '{builder}': {source}")]
    Exec { builder: String, source: io::Error },

    /// A file-system operation on a given path failed.
    #[error("{action} '{path}': {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },

    /// A sandbox path that is not optional does not exist on the host.
    #[error("path '{0}' is configured as part of the sandbox but does not exist")]
    MissingSandboxPath(PathBuf),

    /// The `build-users-group` setting cannot be used (no such group, no
    /// members...); the message is CppNix's.
    #[error("{0}")]
    BuildUsers(String),

    /// A value in the request is malformed (a relative path, a store path outside
    /// the store directory, a name with a slash...).
    #[error("invalid build request: {0}")]
    InvalidRequest(String),

    /// An output contains a file type that a NAR cannot hold (socket, fifo, device).
    #[error("file '{0}' has an unsupported type")]
    UnsupportedFileType(PathBuf),

    /// The builder did not create an output it was supposed to create.
    #[error("builder failed to produce output path for output '{output}' at '{path}'")]
    MissingOutput { output: String, path: PathBuf },

    /// Serialising an output as a NAR failed.
    #[error(transparent)]
    Nar(#[from] nivis_formats::nar::NarError),

    /// Anything else the kernel said no to while monitoring the builder.
    #[error("monitoring the builder: {0}")]
    Monitor(io::Error),
}

impl BuildError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> BuildError {
        BuildError::Io { action, path: path.into(), source }
    }
}
