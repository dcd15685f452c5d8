//! `nix profile list`: one line per element, `<index> <original flake ref>#<attr
//! path> <locked flake ref>#<attr path> <store paths>`, with `-` for the
//! references of elements that did not come from a flake (CppNix 2.8's format).

use std::io::Write;
use std::process::ExitCode;

use super::{Accepts, Options, read_manifest};

const HELP: &str = "\
Usage: nix profile list [FLAGS...]

List installed packages: for each, its index, its original and locked
flake references with attribute path ('-' when not installed from a flake),
and its store paths.

Flags:
  --profile PATH   the profile to list (default: the user's profile)
  --store URI      the Nix store to use

Example:
  # nix profile list
  0 - - /nix/store/...-hello-1.0
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let Some(options) = Options::parse(args, Accepts::default(), HELP)? else { return Ok(ExitCode::SUCCESS) };
    options.no_positional_arguments()?;
    let store = options.open_store()?;
    let profile = options.profile_path()?;
    let manifest = read_manifest(store.as_ref(), &profile)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (index, element) in manifest.elements.iter().enumerate() {
        let (original, locked) = match &element.source {
            Some(source) => (
                format!("{}#{}", source.original_url, source.attr_path),
                format!("{}#{}", source.url, source.attr_path),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let paths: Vec<String> = element.store_paths.iter().map(|p| store.print_store_path(p)).collect();
        writeln!(out, "{index} {original} {locked} {}", paths.join(" "))?;
    }
    Ok(ExitCode::SUCCESS)
}
