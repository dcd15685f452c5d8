//! `nix profile install INSTALLABLE...`: build the installables and add each
//! as one element (the outputs it names) to a new generation of the profile.
//! Installables are store paths, `DRV^out,dev` (`!` also), a bare `.drv` (all
//! its outputs), or with `-f FILE`/`--expr EXPR` attribute paths, each of
//! which installs the outputs its derivations name (`outputName`, usually
//! `out`), as CppNix 2.8 records them (no flake source). Flake references are
//! not implemented yet.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::bail;
use nivis_build::DerivedPath;
use nivis_formats::StorePath;
use nivis_profile::ProfileElement;
use nivis_store::Store;

use super::{Accepts, Options, local_store, lock_profile, read_manifest, update_profile};
use crate::eval_io::{AutoArg, EVAL_STACK_BYTES};
use crate::realise::{group_targets, parse_derived_path};

const HELP: &str = "\
Usage: nix profile install [FLAGS...] INSTALLABLE...

Install packages into a profile. Each installable becomes one element:
a store path, a derivation with the outputs to install ('DRV^out,dev'; a
bare '.drv' installs all its outputs), or with -f/--expr an attribute path
in the file or expression ('' for the whole value).

Flags:
  -f, --file FILE  evaluate FILE and take attribute paths from it
  --expr EXPR      evaluate EXPR and take attribute paths from it
  --arg NAME EXPR, --argstr NAME STRING, -I PATH
  --dry-run        show what would be built, install nothing
  --profile PATH   the profile (default: the user's profile)
  --store URI      the Nix store to use
  and the build flags (-j, -L, --option NAME VALUE, ...)

Examples:
  # nix profile install -f ./default.nix hello
  # nix profile install /nix/store/...-hello-1.0
  # nix profile install /nix/store/...-hello-1.0.drv^out,man
";

/// What one installable asks for: derivation outputs to build, or store paths.
enum Wanted {
    Built(Vec<DerivedPath>),
    Opaque(StorePath),
}

pub fn run(args: &[String]) -> crate::CommandResult {
    let accepts = Accepts { eval: true, build: true, dry_run: true, ..Accepts::default() };
    let Some(options) = Options::parse(args, accepts, HELP)? else { return Ok(ExitCode::SUCCESS) };
    let store = options.open_store()?;
    let local = local_store(store.as_ref())?;
    let profile = options.profile_path()?;
    let wanted = match resolve_installables(&options, store.as_ref())? {
        Ok(wanted) => wanted,
        Err(code) => return Ok(ExitCode::from(code)),
    };

    // Build everything in one scheduler run; fetch missing plain paths.
    let targets: Vec<DerivedPath> =
        wanted.iter().flat_map(|w| if let Wanted::Built(t) = w { t.clone() } else { Vec::new() }).collect();
    let substituters = options.build.substituters()?;
    let opaque: nivis_formats::StorePathSet =
        wanted.iter().filter_map(|w| if let Wanted::Opaque(p) = w { Some(p.clone()) } else { None }).collect();
    let mut missing = nivis_formats::StorePathSet::new();
    for path in &opaque {
        local.add_temp_root(path)?;
        if !store.is_valid_path(path)? {
            missing.insert(path.clone());
        }
    }
    if !missing.is_empty() && !options.dry_run {
        let _ = nivis_build::Substituter::substitute(&substituters, store.as_ref(), &missing);
    }
    for path in &missing {
        if options.dry_run || !store.is_valid_path(path)? {
            let printed = store.print_store_path(path);
            bail!("path '{printed}' is required, but there is no substituter that can build it");
        }
    }
    let settings = options.build.settings(false)?;
    let result = match crate::realise::realise(store.as_ref(), &targets, &settings, &substituters, options.dry_run)? {
        Ok(result) => result,
        Err(status) => return Ok(ExitCode::from(status)),
    };
    if options.dry_run {
        return Ok(ExitCode::SUCCESS);
    }

    let mut elements = Vec::new();
    for item in &wanted {
        let mut store_paths = BTreeSet::new();
        match item {
            Wanted::Opaque(path) => {
                store_paths.insert(path.clone());
            }
            Wanted::Built(targets) => {
                for target in targets {
                    let outputs = result.outputs.get(&target.drv_path).cloned().unwrap_or_default();
                    for (name, path) in outputs {
                        if target.outputs.as_ref().is_none_or(|wanted| wanted.contains(&name)) {
                            store_paths.insert(path);
                        }
                    }
                }
            }
        }
        elements.push(ProfileElement::from_paths(store_paths));
    }

    let _lock = lock_profile(&profile)?;
    let mut manifest = read_manifest(store.as_ref(), &profile)?;
    manifest.elements.extend(elements);
    update_profile(local, &profile, &manifest)?;
    Ok(ExitCode::SUCCESS)
}

/// Turns the installables into what to build or fetch, evaluating `-f` /
/// `--expr` (an evaluation error is its exit status).
fn resolve_installables(options: &Options, store: &dyn Store) -> anyhow::Result<Result<Vec<Wanted>, u8>> {
    let mut wanted = Vec::new();
    if options.file.is_some() || options.expr.is_some() {
        let from_args = options.expr.is_some();
        let source = options.expr.clone().or_else(|| options.file.clone()).expect("one of them");
        let attr_paths = if options.positional.is_empty() { vec![String::new()] } else { options.positional.clone() };
        for attr_path in attr_paths {
            let (store_flag, include, source) = (options.build.store.clone(), options.include.clone(), source.clone());
            let auto_args: Vec<(String, AutoArg)> = options
                .auto_args
                .iter()
                .map(|(name, arg)| {
                    (
                        name.clone(),
                        match arg {
                            AutoArg::Expr(e) => AutoArg::Expr(e.clone()),
                            AutoArg::Str(s) => AutoArg::Str(s.clone()),
                        },
                    )
                })
                .collect();
            crate::eval_io::set_command_line_options(&options.build.options);
            let pure_eval = [crate::eval_io::new_cli_pure_eval(&options.build.options, options.build.impure, !from_args)];
            let show_trace = options.build.show_trace;
            let pairs = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || {
                crate::legacy::nix_build::instantiate(
                    store_flag.as_deref(),
                    &include,
                    vec![source],
                    vec![attr_path],
                    from_args,
                    show_trace,
                    auto_args,
                    &pure_eval,
                )
            });
            match pairs {
                Ok(pairs) => wanted.push(Wanted::Built(group_targets(store, &pairs)?)),
                Err(code) => return Ok(Err(code)),
            }
        }
        return Ok(Ok(wanted));
    }
    if options.positional.is_empty() {
        return Err(crate::NotImplemented("nix profile install of the flake '.' (flakes)".into()).into());
    }
    for installable in &options.positional {
        let looks_like_path = installable.starts_with('/') || installable.starts_with('.');
        let parsed = if looks_like_path && !installable.contains('#') {
            parse_derived_path(store, installable).ok()
        } else {
            None
        };
        let Some((path, outputs)) = parsed else {
            return Err(crate::NotImplemented(format!("nix profile install of '{installable}' (flakes)")).into());
        };
        if path.is_derivation() {
            wanted.push(Wanted::Built(vec![DerivedPath { drv_path: path, outputs }]));
        } else {
            wanted.push(Wanted::Opaque(path));
        }
    }
    Ok(Ok(wanted))
}
