//! `nix profile remove ELEMENT...`: drop the elements selected by index, store
//! path or regex (see [`super::Matcher`]) and make a new generation of the rest.

use std::process::ExitCode;

use nivis_profile::ProfileManifest;

use super::{
    Accepts, Options, local_store, lock_profile, matchers, matches, read_manifest, update_profile, warn_unmatched,
};

const HELP: &str = "\
Usage: nix profile remove [FLAGS...] ELEMENT...

Remove packages from a profile. An ELEMENT is an index as 'nix profile list'
shows it, a store path (every element containing it is removed), or a POSIX
extended regular expression matched case-insensitively against the whole
attribute path of elements installed from a flake, or against the package
names of other elements.

Flags:
  --all            remove every package
  --regex PATTERN  remove the packages PATTERN matches (as above)
  --dry-run        show what would be removed, make no new version
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use

Examples:
  # nix profile remove 3
  # nix profile remove /nix/store/...-hello-1.0
  # nix profile remove 'hel.*'
";

pub fn run(args: &[String]) -> crate::CommandResult {
    let accepts = Accepts { dry_run: true, matchers: true, ..Accepts::default() };
    let Some(options) = Options::parse(args, accepts, HELP)? else { return Ok(ExitCode::SUCCESS) };
    let store = options.open_store()?;
    let local = local_store(store.as_ref())?;
    let profile = options.profile_path()?;
    let matchers = matchers(store.as_ref(), &options)?;
    let _lock = lock_profile(&profile)?;
    let old = read_manifest(store.as_ref(), &profile)?;
    let mut new = ProfileManifest::default();
    for (index, element) in old.elements.iter().enumerate() {
        if matches(&matchers, element, index) {
            eprintln!("removing '{}'", element.describe());
        } else {
            new.elements.push(element.clone());
        }
    }
    let removed = old.elements.len() - new.elements.len();
    eprintln!("removed {removed} packages, kept {} packages", new.elements.len());
    if removed == 0 {
        warn_unmatched(&matchers);
    }
    if !options.dry_run {
        update_profile(local, &profile, &new)?;
    }
    Ok(ExitCode::SUCCESS)
}
