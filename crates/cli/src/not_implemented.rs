//! The error every command that is not built yet answers with, so that nobody can
//! mistake a missing feature for one that silently did nothing.

/// A command or flag that nivis does not implement yet.
#[derive(Debug)]
pub struct NotImplemented(pub String);

impl std::fmt::Display for NotImplemented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not implemented yet in nivis", self.0)
    }
}

impl std::error::Error for NotImplemented {}

/// Fails with [`NotImplemented`] for `what`.
pub fn not_implemented(what: &str) -> crate::CommandResult {
    Err(NotImplemented(what.to_string()).into())
}
