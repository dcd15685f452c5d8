//! `nix eval`: evaluate an expression (`--expr E`) or a file (`--file F`),
//! optionally select an attribute path and apply a function (`--apply F`), and
//! print the result fully evaluated: as a Nix value (default), as JSON
//! (`--json`) or as a raw string (`--raw`). Flake installables (`.#attr`) need
//! the flake layer and are refused for now.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::eval_io::{AutoArg, EVAL_STACK_BYTES, auto_args, find_along_attr_path};
use nivis_eval::Pos;

#[derive(Default)]
struct Options {
    expr: Option<String>,
    file: Option<String>,
    attr_path: Option<String>,
    apply: Option<String>,
    json: bool,
    raw: bool,
    show_trace: bool,
    /// `--read-only`: compute derivation paths without writing them.
    read_only: bool,
    store: Option<String>,
    include: Vec<String>,
    auto_args: Vec<(String, AutoArg)>,
    /// `--option NAME VALUE`, applied over `nix.conf` and `NIX_CONFIG`.
    options: Vec<(String, String)>,
    impure: bool,
}

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut o = Options::default();
    let mut i = 0;
    let next = |i: &mut usize, flag: &str| -> anyhow::Result<String> {
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"))
    };
    while i < args.len() {
        let a = args[i].clone();
        if crate::eval_io::parse_eval_flag(&args, &mut i, &mut o.auto_args, &mut o.include)? {
            i += 1;
            continue;
        }
        match a.as_str() {
            "--expr" => o.expr = Some(next(&mut i, &a)?),
            "--file" | "-f" => o.file = Some(next(&mut i, &a)?),
            "--apply" => o.apply = Some(next(&mut i, &a)?),
            "--json" => o.json = true,
            "--raw" => o.raw = true,
            "--show-trace" => o.show_trace = true,
            "--read-only" => o.read_only = true,
            "--store" => o.store = Some(next(&mut i, &a)?),
            "--impure" => o.impure = true,
            "--no-write-lock-file" | "--offline" => {}
            "--option" => {
                let name = next(&mut i, &a)?;
                let value = next(&mut i, &a)?;
                o.options.push((name, value));
            }
            s if s.starts_with('-') => anyhow::bail!("unrecognised flag '{s}'"),
            _ => {
                if o.attr_path.is_some() {
                    anyhow::bail!("'nix eval' takes at most one installable");
                }
                o.attr_path = Some(a);
            }
        }
        i += 1;
    }
    if o.expr.is_none() && o.file.is_none() {
        return crate::not_implemented::not_implemented("nix eval of flake installables (use --expr or --file)");
    }
    if o.expr.is_some() && o.file.is_some() {
        anyhow::bail!("'--expr' and '--file' cannot be used together");
    }
    let code = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || run_in_thread(o));
    Ok(ExitCode::from(code))
}

fn run_in_thread(mut o: Options) -> u8 {
    let io = match crate::eval_io::open_eval_io(o.store.as_deref(), o.read_only) {
        Ok(io) => io,
        Err(error) => {
            eprintln!("error: {error:#}");
            return 1;
        }
    };
    let mut options = o.options.clone();
    options.push(crate::eval_io::new_cli_pure_eval(&o.options, o.impure, o.file.is_some()));
    let mut ev = match crate::eval_io::eval_for_command(&options, &o.include, o.show_trace, io.clone()) {
        Ok((show_trace, ev)) => {
            o.show_trace = show_trace;
            ev
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            return 1;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let result = (|| -> nivis_eval::error::Result<Vec<u8>> {
        let expr = match (&o.expr, &o.file) {
            (Some(e), _) => ev.parse_string(e, &cwd)?,
            (None, Some(f)) => {
                let path = crate::legacy::nix_instantiate::lookup_file_arg(&mut ev, f, &cwd)?;
                crate::eval_io::parse_main_file(&mut ev, &io, &path)?
            }
            (None, None) => unreachable!("checked before"),
        };
        let root = ev.eval_expr(expr)?;
        let auto = auto_args(&mut ev, &o.auto_args)?;
        let attr_path = o.attr_path.clone().unwrap_or_default();
        // `nix eval` auto-calls a top-level function with `--arg`s, even without
        // an attribute path.
        let root = match &auto {
            Some(a) => crate::eval_io::auto_call(&mut ev, &root, a)?,
            None => root,
        };
        let mut v = find_along_attr_path(&mut ev, &attr_path, auto.as_ref(), &root)?;
        if let Some(apply) = &o.apply {
            let f_expr = ev.parse_string(apply, &cwd)?;
            let f = ev.eval_expr(f_expr)?;
            v = ev.call(&f, v, Pos::NONE)?;
        }
        // As current CppNix: nothing is forced beyond what the output needs,
        // in the order the output needs it, and only the output's own frames
        // are added (nix-instantiate --strict forces deeply first instead).
        if o.raw {
            let coerce = nivis_eval::eval::Coerce { more: false, copy_to_store: true };
            let v = ev.force(&v, Pos::NONE)?;
            let s = ev.coerce_to_string(&v, Pos::NONE, coerce).map_err(|mut err| {
                if err.trace.is_empty() && err.pos.is_none() && matches!(err.kind, nivis_eval::ErrorKind::Type) {
                    err.trace.push(nivis_eval::error::TraceFrame::new(Pos::NONE, "while generating the eval command output"));
                }
                err
            })?;
            return Ok(s.as_bytes().to_vec());
        }
        if o.json {
            let mut out = Vec::new();
            let mut ctx = Default::default();
            nivis_eval::print::to_json(&mut ev, &v, Pos::NONE, &mut out, &mut ctx)?;
            out.push(b'\n');
            return Ok(out);
        }
        let mut out = nivis_eval::print::print_value_forcing(&mut ev, &v)?;
        out.push(b'\n');
        Ok(out)
    })();
    match result {
        Ok(bytes) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes);
            let _ = out.flush();
            0
        }
        Err(e) => {
            eprintln!("{}", e.render(o.show_trace));
            e.exit_status()
        }
    }
}
