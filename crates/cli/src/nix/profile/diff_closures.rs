//! `nix profile diff-closures`: for each pair of consecutive generations, the
//! packages of their closures whose versions changed or whose size moved by
//! 8 KiB or more (CppNix's `printClosureDiff`, in `nivis_profile`).

use std::io::Write;
use std::process::ExitCode;

use super::{Accepts, Options, colour_stdout};

const HELP: &str = "\
Usage: nix profile diff-closures [FLAGS...]

Show the closure difference between each version of a profile and the next:
versions added and removed per package, and size changes of at least 8 KiB
(growth in red, shrinking in green on a terminal).

Flags:
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use

Example:
  # nix profile diff-closures
  Version 1 -> 2:
    hello: 1.0 → 1.1, +12.5 KiB
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let Some(options) = Options::parse(args, Accepts::default(), HELP)? else { return Ok(ExitCode::SUCCESS) };
    options.no_positional_arguments()?;
    let store = options.open_store()?;
    let profile = options.profile_path()?;
    let (generations, _) = nivis_profile::find_generations(&profile)?;
    let colour = colour_stdout();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (index, pair) in generations.windows(2).enumerate() {
        let (before, after) = (&pair[0], &pair[1]);
        if index > 0 {
            writeln!(out)?;
        }
        writeln!(out, "Version {} -> {}:", before.number, after.number)?;
        let before_path =
            crate::store_args::follow_links_to_store_path(store.as_ref(), &before.link.to_string_lossy())?;
        let after_path = crate::store_args::follow_links_to_store_path(store.as_ref(), &after.link.to_string_lossy())?;
        let changes = nivis_profile::diff_closures(store.as_ref(), &before_path, &after_path)?;
        for line in nivis_profile::format_closure_diff(&changes, "  ", colour) {
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
