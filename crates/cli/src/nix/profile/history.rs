//! `nix profile history`: every generation with its date and what changed from
//! the one before (elements added, removed or with other versions), as CppNix
//! 2.8 prints it. The current generation's number is green, others bold, on a
//! terminal only.

use std::io::Write;
use std::process::ExitCode;

use nivis_profile::ProfileManifest;

use super::{Accepts, Options, colour_stdout, read_manifest, utc_date};

const HELP: &str = "\
Usage: nix profile history [FLAGS...]

Show all versions of a profile, oldest first, with the date each was made
(UTC) and the packages added, removed or changed in version since the
previous one.

Flags:
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use

Example:
  # nix profile history
  Version 1 (2026-01-01):
    hello: ∅ -> 1.0

  Version 2 (2026-01-02) <- 1:
    hello: 1.0 -> 1.1
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let Some(options) = Options::parse(args, Accepts::default(), HELP)? else { return Ok(ExitCode::SUCCESS) };
    options.no_positional_arguments()?;
    let store = options.open_store()?;
    let profile = options.profile_path()?;
    let (generations, current) = nivis_profile::find_generations(&profile)?;
    let colour = colour_stdout();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut previous: Option<(u64, ProfileManifest)> = None;
    for (index, generation) in generations.iter().enumerate() {
        let manifest = read_manifest(store.as_ref(), &generation.link)?;
        if index > 0 {
            writeln!(out)?;
        }
        let number = if colour {
            let start = if Some(generation.number) == current { "\x1b[32;1m" } else { "\x1b[1m" };
            format!("{start}{}\x1b[0m", generation.number)
        } else {
            generation.number.to_string()
        };
        let from = previous.as_ref().map(|(n, _)| format!(" <- {n}")).unwrap_or_default();
        writeln!(out, "Version {number} ({}){from}:", utc_date(generation.creation_time))?;
        let empty = ProfileManifest::default();
        let before = previous.as_ref().map(|(_, m)| m).unwrap_or(&empty);
        for line in ProfileManifest::diff_lines(before, &manifest, "  ") {
            writeln!(out, "{line}")?;
        }
        previous = Some((generation.number, manifest));
    }
    Ok(ExitCode::SUCCESS)
}
