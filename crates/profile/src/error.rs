use std::path::PathBuf;

/// Everything that can go wrong with a profile, worded as CppNix words it.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("profile version {0} does not exist")]
    NoSuchGeneration(u64),
    #[error("no profile version older than the current ({0}) exists")]
    NoOlderGeneration(u64),
    #[error("cannot delete current version of profile {}'", .0.display())]
    DeleteCurrent(PathBuf),
    #[error("invalid number of days specifier '{0}', expected something like '14d'")]
    BadDays(String),
    #[error("invalid generation specifier '{0}'")]
    BadSpec(String),
    #[error("cannot create symlink '{}'; already exists", .0.display())]
    NotALink(PathBuf),
    #[error(transparent)]
    Store(#[from] nivis_store::StoreError),
}

impl ProfileError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProfileError {
        let context = context.into();
        move |source| ProfileError::Io { context, source }
    }
}
