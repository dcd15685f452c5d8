//! `nix-collect-garbage`: not built yet.

use std::ffi::OsString;

pub fn run(_args: Vec<OsString>) -> crate::CommandResult {
    crate::not_implemented::not_implemented("nix-collect-garbage")
}
