//! `nix profile rollback [--to N] [--dry-run]`: switch the profile to the
//! newest generation older than the current one, or to generation N.

use std::process::ExitCode;

use super::{Accepts, Options};

const HELP: &str = "\
Usage: nix profile rollback [FLAGS...]

Roll back to the previous version of a profile, or to the version given
with --to. The profile link is replaced atomically.

Flags:
  --to N           the version to switch to
  --dry-run        show what would happen, change nothing
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use

Examples:
  # nix profile rollback
  switching profile from version 2 to 1
  # nix profile rollback --to 3
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let accepts = Accepts { dry_run: true, to: true, ..Accepts::default() };
    let Some(options) = Options::parse(args, accepts, HELP)? else { return Ok(ExitCode::SUCCESS) };
    options.no_positional_arguments()?;
    let profile = options.profile_path()?;
    let (from, to) = nivis_profile::switch_generation(&profile, options.to, options.dry_run)?;
    eprintln!("switching profile from version {from} to {to}");
    Ok(ExitCode::SUCCESS)
}
