//! The one nivis binary. Called through a link named after a CppNix command
//! (`nix-store`, `nix-build`, ...) it behaves as that command; called as `nivis`
//! or `nix` it is the new-style CLI.
//!
//! This is the only crate that knows about terminals and `anyhow`: libraries return
//! typed errors, and `main` renders them.

#[cfg(not(feature = "system-allocator"))]
mod allocator;
mod eval_io;
mod legacy;
mod nix;
mod not_implemented;
mod progress;
mod realise;
mod store_args;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

pub use not_implemented::NotImplemented;

/// What a command returns: the process exit status, or an error to render.
pub type CommandResult = anyhow::Result<ExitCode>;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nivis".to_string());
    let rest = if args.is_empty() { Vec::new() } else { args.split_off(1) };
    let result = dispatch(&argv0, rest);
    match result {
        Ok(code) => code,
        Err(error) => {
            // The reader went away (`| head`): nothing to tell it, as CppNix.
            let broken_pipe = error
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe));
            if !broken_pipe {
                // A message that starts with its trace (a line break) gets no
                // space after "error:", as CppNix trims every line's end.
                let text = format!("{error:#}");
                let space = if text.starts_with('\n') { "" } else { " " };
                eprintln!("error:{space}{text}");
            }
            ExitCode::from(1)
        }
    }
}

/// Chooses the command from the name the binary was called by.
fn dispatch(argv0: &str, args: Vec<OsString>) -> CommandResult {
    match argv0 {
        "nix-store" => legacy::nix_store::run(args),
        "nix-hash" => legacy::nix_hash::run(args),
        "nix-instantiate" => legacy::nix_instantiate::run(args),
        "nix-build" => legacy::nix_build::run(args),
        "nix-env" => legacy::nix_env::run(args),
        "nix-shell" => legacy::nix_shell::run(args),
        "nix-collect-garbage" => legacy::nix_collect_garbage::run(args),
        "nix-daemon" => legacy::nix_daemon::run(args),
        "nix-copy-closure" => legacy::nix_copy_closure::run(args),
        "nix-prefetch-url" => legacy::nix_prefetch_url::run(args),
        // `nix`, `nivis` and anything else: the new-style CLI.
        _ => nix::run(args),
    }
}
