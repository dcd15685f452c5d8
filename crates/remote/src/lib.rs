//! Stores reached through another process: CppNix's legacy `ssh://` store,
//! which runs `nix-store --serve --write` on the remote machine over the
//! system's `ssh` and speaks the serve protocol on its stdin and stdout.
//!
//! - [`wire`]: the framing both CppNix protocols share (little-endian u64
//!   words, length-prefixed strings padded to 8 bytes).
//! - [`serve`]: the server side, `nix-store --serve`, over any [`nivis_store::Store`].
//! - [`LegacySshStore`]: the client side, a [`nivis_store::Store`] whose
//!   operations are serve-protocol commands.
//!
//! Assumptions: one connection per store handle, used by one thread at a time
//! (a mutex serialises commands); the remote end is CppNix or nivis, protocol
//! major version 2 (`0x2xx`).

mod error;
mod legacy_ssh;
pub mod serve;
mod ssh;
pub mod wire;

pub use error::RemoteError;
pub use legacy_ssh::{LegacySshStore, is_ssh_uri};
pub use ssh::SshCommand;
