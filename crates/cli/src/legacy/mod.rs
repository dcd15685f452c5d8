//! The CppNix 1.x-style commands (`nix-store`, `nix-build`, ...), one file each,
//! with CppNix's flags, output and exit codes.

pub mod nix_build;
pub mod nix_collect_garbage;
pub mod nix_copy_closure;
pub mod nix_daemon;
pub mod nix_env;
pub mod nix_hash;
pub mod nix_instantiate;
pub mod nix_prefetch_url;
pub mod nix_shell;
pub mod nix_store;
pub mod nix_store_serve;
