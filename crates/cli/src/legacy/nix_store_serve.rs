//! `nix-store --serve [--write]`: serves the store on standard input and
//! output with CppNix's serve protocol, for `ssh://` stores and
//! `nix-copy-closure` on the other end of an ssh connection.
//!
//! Usage: nix-store --serve [--write]
//!   --write   allow the client to add paths (imports, copies to this store)

use std::io::{BufReader, Write};
use std::process::ExitCode;

use anyhow::Context;

pub fn run(flags: &[String], args: &[String], store_flag: Option<&str>, out: &mut dyn Write) -> crate::CommandResult {
    let mut write_allowed = false;
    for flag in flags {
        match flag.as_str() {
            "--write" => write_allowed = true,
            other => return Err(super::nix_store::UsageError(format!("unknown flag '{other}'")).into()),
        }
    }
    if !args.is_empty() {
        return Err(super::nix_store::UsageError("no arguments expected".into()).into());
    }
    let store = crate::store_args::open_store(store_flag)?;
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(256 * 1024, stdin.lock());
    nivis_remote::serve::serve(store.as_ref(), &mut input, out, write_allowed).context("serving the store")?;
    Ok(ExitCode::SUCCESS)
}
