//! `nix-copy-closure [--to | --from] [user@]HOST PATHS...`: copies closures to
//! or from another machine over ssh (`ssh://HOST`, running `nix-store --serve`
//! there). As a nivis extension TARGET may also be a store URI (`file://DIR`,
//! `http://...`, `local?root=DIR`, or an absolute directory).

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::bail;

use crate::nix::copy::{Options, copy};

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let mut to = true;
    let mut gzip = false;
    let mut target = None;
    let mut options = Options::default();
    let mut iter = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--to" => to = true,
            "--from" => to = false,
            // Compression and substitution flags only matter over SSH.
            "--gzip" => gzip = true,
            "--bzip2" | "--xz" | "--zstd" | "-s" | "--use-substitutes" | "-v" => {}
            "--include-outputs" => bail!("'--include-outputs' is not supported by nivis yet"),
            "--no-check-sigs" => options.no_check_sigs = true,
            // The local side, as for other commands (a nivis extension).
            "--store" => options.store = iter.next(),
            "--help" => {
                println!("Usage: nix-copy-closure [--to | --from] [--gzip] [user@]HOST PATHS...");
                return Ok(ExitCode::SUCCESS);
            }
            flag if flag.starts_with('-') => bail!("unknown flag '{flag}'"),
            _ if target.is_none() => target = Some(arg),
            _ => options.paths.push(arg),
        }
    }
    let Some(target) = target else { bail!("no host name specified") };
    let is_store_uri = target.contains("://") || target.starts_with('/') || target.starts_with("local");
    let target = if is_store_uri {
        target
    } else {
        // CppNix: ssh compression with --gzip, the rest of the flags are accepted.
        format!("ssh://{target}{}", if gzip { "?compress=true" } else { "" })
    };
    if to {
        options.to = Some(target);
    } else {
        options.from = Some(target);
    }
    copy(&options)?;
    Ok(ExitCode::SUCCESS)
}
