//! The Nix language: parse, lower to a resolved IR, evaluate lazily, builtins.
//!
//! This crate knows nothing of the store: every file-system and store operation
//! goes through a trait that the embedding program implements.
pub mod support;
