//! The new-style CLI (`nivis <subcommand>`, or `nix <subcommand>` through a link):
//! one file per subcommand, its help text beside it.

pub mod copy;
mod build;
mod eval;
mod log;
mod key;

pub mod hash;
mod path_info;
mod profile;
mod serve;
mod store;
mod store_gc;

use std::ffi::OsString;

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let args = crate::store_args::hoist_global_flags(args);
    let subcommand = args.first().map(|a| a.to_string_lossy().into_owned());
    match subcommand.as_deref() {
        None => {
            eprintln!("usage: nivis <subcommand> [args...]");
            Ok(std::process::ExitCode::from(1))
        }
        Some("--version") => {
            println!("nivis {}", env!("CARGO_PKG_VERSION"));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Some("eval") => eval::run(&args[1..]),
        Some("build") => build::run(&args[1..]),
        Some("log") => log::run(&args[1..]),
        Some("key") => key::run(&args[1..]),
        Some("hash") => hash::run(args[1..].to_vec()),
        Some("store") => store::run(&args[1..]),
        Some("path-info") => path_info::run(&args[1..]),
        Some("profile") => profile::run(&args[1..]),
        Some("copy") => copy::run(&args[1..]),
        Some("serve") => serve::run(&args[1..]),
        Some(other) => crate::not_implemented::not_implemented(&format!("nix {other}")),
    }
}
