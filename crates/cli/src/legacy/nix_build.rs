//! `nix-build`: instantiate the derivations an expression yields (as
//! `nix-instantiate` does, through the same evaluator setup), build them
//! with the scheduler, make `result` symlinks (GC roots), and print the
//! output paths. Flags: `[FILE...] -A ATTR --arg/--argstr -E -I -o LINK
//! --no-out-link --dry-run` and the build flags of [`crate::realise`].

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use nivis_eval::Pos;

use crate::eval_io::{AutoArg, EVAL_STACK_BYTES, auto_args, auto_call, find_along_attr_path, open_eval_io};
use crate::realise::{BuildFlags, create_out_link, group_targets, out_link_name, realise};

#[derive(Default)]
struct Options {
    from_args: bool,
    show_trace: bool,
    attr_paths: Vec<String>,
    auto_args: Vec<(String, AutoArg)>,
    include: Vec<String>,
    files: Vec<String>,
    out_link: Option<String>,
    no_out_link: bool,
    build: BuildFlags,
}

fn parse_args(args: Vec<OsString>) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].clone();
        let next = |i: &mut usize| -> anyhow::Result<String> {
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{a}' requires an argument"))
        };
        if crate::eval_io::parse_eval_flag(&args, &mut i, &mut o.auto_args, &mut o.include)? {
            i += 1;
            continue;
        }
        match a.as_str() {
            "-E" | "--expr" => o.from_args = true,
            "--show-trace" => o.show_trace = true,
            "-A" | "--attr" => o.attr_paths.push(next(&mut i)?),
            "-o" | "--out-link" => o.out_link = Some(next(&mut i)?),
            "--no-out-link" | "--no-link" => o.no_out_link = true,
            "--add-root" | "--indirect" | "--drv-link" => {}
            _ => {
                if !o.build.parse_flag(&args, &mut i)? {
                    if a.starts_with('-') && a != "-" {
                        bail!("unrecognised flag '{a}'\nTry 'nix-build --help' for more information.");
                    }
                    o.files.push(a);
                }
            }
        }
        i += 1;
    }
    Ok(o)
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let o = parse_args(args)?;
    crate::eval_io::set_command_line_options(&o.build.options);
    let store_flag = o.build.store.clone();
    let include = o.include.clone();
    let files = o.files.clone();
    let attr_paths = o.attr_paths.clone();
    let from_args = o.from_args;
    let show_trace = o.show_trace;
    let auto_arg_values: Vec<(String, AutoArg)> = o
        .auto_args
        .iter()
        .map(|(n, a)| {
            (n.clone(), match a {
                AutoArg::Expr(e) => AutoArg::Expr(e.clone()),
                AutoArg::Str(s) => AutoArg::Str(s.clone()),
            })
        })
        .collect();
    let instantiated = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || {
        instantiate(store_flag.as_deref(), &include, files, attr_paths, from_args, show_trace, auto_arg_values, &[])
    });
    let pairs = match instantiated {
        Ok(pairs) => pairs,
        Err(code) => return Ok(ExitCode::from(code)),
    };
    let store = crate::store_args::open_store(o.build.store.as_deref())?;
    let settings = o.build.settings(true)?;
    let targets = group_targets(store.as_ref(), &pairs)?;
    let substituters = o.build.substituters()?;
    let result = match realise(store.as_ref(), &targets, &settings, &substituters, o.build.dry_run)? {
        Ok(result) => result,
        Err(status) => return Ok(ExitCode::from(status)),
    };
    if o.build.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let link_base = o.out_link.clone().unwrap_or_else(|| "result".to_string());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut seen = Vec::new();
    for (drv, output) in &pairs {
        let drv_path = store.parse_store_path(drv)?;
        let Some(path) = result.outputs.get(&drv_path).and_then(|outputs| outputs.get(output)) else {
            bail!("output '{output}' of '{drv}' was not built");
        };
        if !o.no_out_link {
            if !seen.contains(&drv_path) {
                seen.push(drv_path.clone());
            }
            let index = seen.iter().position(|p| *p == drv_path).unwrap_or(0);
            create_out_link(store.as_ref(), &PathBuf::from(out_link_name(&link_base, index, output)), path)?;
        }
        writeln!(out, "{}", store.print_store_path(path))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Evaluates and writes the `.drv` files: `(drv path, output name)` pairs.
/// The configuration is `nix.conf`, `NIX_CONFIG`, the command's recorded
/// `--option`s ([`crate::eval_io::set_command_line_options`]), then `options`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn instantiate(
    store_flag: Option<&str>,
    include: &[String],
    mut files: Vec<String>,
    attr_paths: Vec<String>,
    from_args: bool,
    show_trace: bool,
    auto_arg_values: Vec<(String, AutoArg)>,
    options: &[(String, String)],
) -> Result<Vec<(String, String)>, u8> {
    let io = open_eval_io(store_flag, false).map_err(|error| {
        eprintln!("error: {error:#}");
        1u8
    })?;
    let config = crate::eval_io::load_config(options).map_err(|error| {
        eprintln!("error: {error:#}");
        1u8
    })?;
    let show_trace = crate::eval_io::show_trace(&config, show_trace);
    let mut ev = crate::eval_io::configured_eval(include, show_trace, io, &config).map_err(|error| {
        eprintln!("error: {error:#}");
        1u8
    })?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    if files.is_empty() && !from_args {
        files.push("./default.nix".to_string());
    }
    let attr_paths = if attr_paths.is_empty() { vec![String::new()] } else { attr_paths };
    let render = |e: Box<nivis_eval::EvalError>| {
        eprintln!("{}", e.render(show_trace));
        e.exit_status()
    };
    let auto = auto_args(&mut ev, &auto_arg_values).map_err(render)?;
    let mut pairs = Vec::new();
    for f in &files {
        let expr = if from_args {
            ev.parse_string(f, &cwd)
        } else {
            super::nix_instantiate::lookup_file_arg(&mut ev, f, &cwd).and_then(|p| ev.parse_file(&p))
        }
        .map_err(render)?;
        let result = (|| -> nivis_eval::error::Result<()> {
            let root = ev.eval_expr(expr)?;
            for attr_path in &attr_paths {
                let v = find_along_attr_path(&mut ev, attr_path, auto.as_ref(), &root)?;
                let mut v = ev.force(&v, Pos::NONE)?;
                if let Some(a) = &auto {
                    v = auto_call(&mut ev, &v, a)?;
                }
                super::nix_instantiate::collect_derivations(&mut ev, &v, auto.as_ref(), &mut pairs)?;
            }
            Ok(())
        })();
        result.map_err(render)?;
    }
    let _ = std::io::stderr().flush();
    Ok(pairs)
}
