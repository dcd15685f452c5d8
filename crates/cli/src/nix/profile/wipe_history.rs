//! `nix profile wipe-history [--older-than Nd] [--dry-run]`: delete every
//! generation but the current one, or (with `--older-than`) those older than
//! N days except the one that was current then, as CppNix's
//! `deleteOldGenerations` / `deleteGenerationsOlderThan`.

use std::process::ExitCode;

use super::{Accepts, Options};

const HELP: &str = "\
Usage: nix profile wipe-history [FLAGS...]

Delete non-current versions of a profile. Their store paths become garbage
once nothing else refers to them ('nix store gc' deletes them).

Flags:
  --older-than AGE  delete only versions older than AGE (e.g. '30d'), keeping
                    the one that was current then
  --dry-run         show what would be deleted, delete nothing
  --profile PATH    the profile (default: the user's profile)
  --store URI       the Nix store to use

Examples:
  # nix profile wipe-history
  # nix profile wipe-history --older-than 30d
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let accepts = Accepts { dry_run: true, older_than: true, ..Accepts::default() };
    let Some(options) = Options::parse(args, accepts, HELP)? else { return Ok(ExitCode::SUCCESS) };
    options.no_positional_arguments()?;
    let profile = options.profile_path()?;
    let removed = match &options.older_than {
        Some(spec) => {
            let cutoff = parse_older_than(spec)?;
            // CppNix walks from the newest generation down, and says so in that order.
            let mut removed = nivis_profile::delete_generations_older_than(&profile, cutoff, options.dry_run)?;
            removed.reverse();
            removed
        }
        None => nivis_profile::delete_old_generations(&profile, options.dry_run)?,
    };
    for number in removed {
        if options.dry_run {
            eprintln!("would remove profile version {number}");
        } else {
            eprintln!("removing profile version {number}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// CppNix 2.8's `parseOlderThanTimeSpec`, with its two messages: a spec not
/// ending in `d` says what is expected, a bad number of days does not.
fn parse_older_than(spec: &str) -> anyhow::Result<i64> {
    let Some(days) = spec.strip_suffix('d') else {
        anyhow::bail!(
            "invalid number of days specifier '{spec}', expected something like '14d'\nTry 'nix --help' for more information."
        );
    };
    match days.parse::<i32>() {
        Ok(days) if days >= 1 => Ok(nivis_profile::parse_older_than(spec)?),
        _ => anyhow::bail!("invalid number of days specifier '{spec}'\nTry 'nix --help' for more information."),
    }
}
