//! `nix build`: `-f FILE [ATTR...]`, `--expr EXPR [ATTR...]`, or installables
//! that are store paths / `DRV^out,dev`; builds with the scheduler (`-L`
//! streams logs with a `name> ` prefix, otherwise a failure shows the last
//! ten log lines), makes `result` links (`-o`, `--no-link`), and prints
//! with `--print-out-paths` or `--json` (`[{"drvPath", "outputs"}]`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use nivis_build::DerivedPath;
use serde_json::json;

use crate::eval_io::{AutoArg, EVAL_STACK_BYTES};
use crate::realise::{BuildFlags, create_out_link, group_targets, parse_derived_path};

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut build = BuildFlags::default();
    let (mut file, mut expr, mut installables) = (None::<String>, None::<String>, Vec::new());
    let (mut out_link, mut no_link, mut print_out_paths, mut json_output) = ("result".to_string(), false, false, false);
    let mut auto_args: Vec<(String, AutoArg)> = Vec::new();
    let mut include = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].clone();
        let next = |i: &mut usize| -> anyhow::Result<String> {
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{a}' requires an argument"))
        };
        if crate::eval_io::parse_eval_flag(&args, &mut i, &mut auto_args, &mut include)? {
            i += 1;
            continue;
        }
        match a.as_str() {
            "-f" | "--file" => file = Some(next(&mut i)?),
            "--expr" => expr = Some(next(&mut i)?),
            "-o" | "--out-link" => out_link = next(&mut i)?,
            "--no-link" => no_link = true,
            "--print-out-paths" => print_out_paths = true,
            "--json" => json_output = true,
            // `nix build` calls `--check` `--rebuild`, and has no `--check`.
            "--rebuild" => build.check = true,
            "--check" => bail!("unrecognised flag '{a}'"),
            "--extra-experimental-features" | "--experimental-features" => {
                next(&mut i)?;
            }
            _ => {
                if !build.parse_flag(&args, &mut i)? {
                    if a.starts_with('-') {
                        bail!("unrecognised flag '{a}'");
                    }
                    installables.push(a);
                }
            }
        }
        i += 1;
    }
    let store = crate::store_args::open_store(build.store.as_deref())?;
    let settings = build.settings(false)?;
    let mut targets: Vec<DerivedPath> = Vec::new();
    let mut plain = Vec::new();
    if file.is_some() || expr.is_some() {
        let from_args = expr.is_some();
        let source = expr.or(file).expect("one of them");
        let attr_paths = if installables.is_empty() { vec![String::new()] } else { installables.clone() };
        let store_flag = build.store.clone();
        crate::eval_io::set_command_line_options(&build.options);
        let pure_eval = [crate::eval_io::new_cli_pure_eval(&build.options, build.impure, !from_args)];
        let show_trace = build.show_trace;
        let pairs = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || {
            crate::legacy::nix_build::instantiate(
                store_flag.as_deref(),
                &include,
                vec![source],
                attr_paths,
                from_args,
                show_trace,
                auto_args,
                &pure_eval,
            )
        });
        let pairs = match pairs {
            Ok(pairs) => pairs,
            Err(code) => return Ok(ExitCode::from(code)),
        };
        targets = group_targets(store.as_ref(), &pairs)?;
    } else {
        for installable in &installables {
            let (path, outputs) = parse_derived_path(store.as_ref(), installable)?;
            if path.is_derivation() && installable.contains(['^', '!']) {
                targets.push(DerivedPath { drv_path: path, outputs });
            } else {
                if !store.is_valid_path(&path)? {
                    bail!("path '{}' is not valid", store.print_store_path(&path));
                }
                plain.push(path);
            }
        }
    }
    let substituters = build.substituters()?;
    let result = match crate::realise::realise(store.as_ref(), &targets, &settings, &substituters, build.dry_run)? {
        Ok(result) => result,
        // Unlike nix-build, `nix build` exits with 1 whatever failed (CppNix 2.8).
        Err(_) => return Ok(ExitCode::FAILURE),
    };
    if build.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut json_items = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let outputs = result.outputs.get(&target.drv_path).cloned().unwrap_or_default();
        for (name, path) in &outputs {
            if !no_link {
                let mut link = out_link.clone();
                if index > 0 {
                    link.push_str(&format!("-{index}"));
                }
                if name != "out" {
                    link.push_str(&format!("-{name}"));
                }
                create_out_link(store.as_ref(), &PathBuf::from(link), path)?;
            }
            if print_out_paths {
                writeln!(out, "{}", store.print_store_path(path))?;
            }
        }
        let printed: BTreeMap<String, String> =
            outputs.iter().map(|(name, path)| (name.clone(), store.print_store_path(path))).collect();
        json_items.push(json!({ "drvPath": store.print_store_path(&target.drv_path), "outputs": printed }));
    }
    for (index, path) in plain.iter().enumerate() {
        let index = index + targets.len();
        if !no_link {
            let link = if index > 0 { format!("{out_link}-{index}") } else { out_link.clone() };
            create_out_link(store.as_ref(), &PathBuf::from(link), path)?;
        }
        if print_out_paths {
            writeln!(out, "{}", store.print_store_path(path))?;
        }
        json_items.push(json!({ "path": store.print_store_path(path) }));
    }
    if json_output {
        writeln!(out, "{}", serde_json::Value::Array(json_items))?;
    }
    Ok(ExitCode::SUCCESS)
}
