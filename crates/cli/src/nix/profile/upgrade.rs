//! `nix profile upgrade ELEMENT...`: re-evaluate the selected elements that
//! were installed from an unlocked flake reference and install what they give
//! now. Only flake elements can be upgraded (CppNix 2.8 skips the others: a
//! store path or a `-f` installable records no source to evaluate again), and
//! nivis has no flakes yet, so selecting a flake element is an error.

use std::process::ExitCode;

use super::{
    Accepts, Options, local_store, lock_profile, matchers, matches, read_manifest, update_profile, warn_unmatched,
};

const HELP: &str = "\
Usage: nix profile upgrade [FLAGS...] ELEMENT...

Upgrade packages installed from a flake to what their flake gives now.
ELEMENT selects packages as in 'nix profile remove'. Packages installed from
a store path or with -f/--expr record no source and are left as they are.

Flags:
  --all            select every package
  --regex PATTERN  select the packages PATTERN matches
  --dry-run        change nothing
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use

Example:
  # nix profile upgrade '.*'
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let accepts = Accepts { dry_run: true, matchers: true, build: true, ..Accepts::default() };
    let Some(options) = Options::parse(args, accepts, HELP)? else { return Ok(ExitCode::SUCCESS) };
    let store = options.open_store()?;
    let local = local_store(store.as_ref())?;
    let profile = options.profile_path()?;
    let matchers = matchers(store.as_ref(), &options)?;
    let _lock = lock_profile(&profile)?;
    let manifest = read_manifest(store.as_ref(), &profile)?;
    for (index, element) in manifest.elements.iter().enumerate() {
        if let Some(source) = &element.source
            && matches(&matchers, element, index)
        {
            return Err(crate::NotImplemented(format!(
                "nix profile upgrade of '{}#{}' (flakes)",
                source.original_url, source.attr_path
            ))
            .into());
        }
    }
    warn_unmatched(&matchers);
    if !options.dry_run {
        // As CppNix, the profile is rebuilt even when nothing changed; the
        // same store path means no new generation.
        update_profile(local, &profile, &manifest)?;
    }
    Ok(ExitCode::SUCCESS)
}
