//! `nix-instantiate`: with `--eval`, evaluates expressions and prints them as
//! CppNix does (`--strict`, `--json`, `--xml`, `-A`, `--arg`, `--argstr`, `-E`,
//! `-I`, `--show-trace`); `--parse` prints the parsed expression; `--find-file`
//! looks paths up in the search path. Without `--eval` it instantiates: every
//! derivation the expression yields is written to the store (`--store`) and its
//! `.drv` path printed. `--eval` is read-only unless `--read-write-mode`.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::eval_io::{AutoArg, EVAL_STACK_BYTES, auto_args, auto_call, find_along_attr_path, open_eval_io};
use nivis_eval::Pos;

#[derive(Default)]
struct Options {
    eval: bool,
    strict: bool,
    json: bool,
    xml: bool,
    parse: bool,
    find_file: bool,
    from_args: bool,
    show_trace: bool,
    /// `Some(true)` for `--readonly-mode`, `Some(false)` for `--read-write-mode`.
    read_only: Option<bool>,
    store: Option<String>,
    attr_paths: Vec<String>,
    auto_args: Vec<(String, AutoArg)>,
    include: Vec<String>,
    files: Vec<String>,
    /// `--option NAME VALUE`, applied over `nix.conf` and `NIX_CONFIG`.
    options: Vec<(String, String)>,
    /// `--no-location`: no source positions in `--xml` output.
    no_location: bool,
}

fn parse_args(args: Vec<OsString>) -> anyhow::Result<Options> {
    let mut o = Options::default();
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
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
            "--eval" | "--eval-only" => o.eval = true,
            "--strict" => o.strict = true,
            "--json" => o.json = true,
            "--xml" => o.xml = true,
            "--parse" | "--parse-only" => o.parse = true,
            "--find-file" => o.find_file = true,
            "-E" | "--expr" => o.from_args = true,
            "--show-trace" => o.show_trace = true,
            "--read-write-mode" => o.read_only = Some(false),
            "--readonly-mode" => o.read_only = Some(true),
            "--store" => o.store = Some(next(&mut i, &a)?),
            "--no-location" => o.no_location = true,
            "--dry-run" => o.read_only = Some(true),
            "-A" | "--attr" => o.attr_paths.push(next(&mut i, &a)?),
            "--option" => {
                let name = next(&mut i, &a)?;
                let value = next(&mut i, &a)?;
                o.options.push((name, value));
            }
            // Settings given as flags, as CppNix accepts them.
            "--experimental-features" | "--extra-experimental-features" | "--max-call-depth" => {
                let value = next(&mut i, &a)?;
                o.options.push((a[2..].to_string(), value));
            }
            "--trace-verbose" => o.options.push(("trace-verbose".to_string(), "true".to_string())),
            "--abort-on-warn" => o.options.push(("abort-on-warn".to_string(), "true".to_string())),
            "--no-trace-verbose" => o.options.push(("trace-verbose".to_string(), "false".to_string())),
            "--add-root" | "--indirect" => {
                anyhow::bail!(crate::NotImplemented(format!("nix-instantiate {a} (garbage collector roots)")))
            }
            s if s.starts_with('-') && s != "-" => {
                anyhow::bail!("unrecognised flag '{s}'\nTry 'nix-instantiate --help' for more information.")
            }
            _ => o.files.push(a),
        }
        i += 1;
    }
    Ok(o)
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let o = parse_args(args)?;
    let code = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || run_in_thread(o));
    Ok(ExitCode::from(code))
}

fn run_in_thread(mut o: Options) -> u8 {
    // CppNix evaluates in read-only mode for `--eval` and `--parse` unless told
    // otherwise; instantiation writes `.drv` files.
    let read_only = o.read_only.unwrap_or(o.eval || o.parse || o.find_file);
    let io = match open_eval_io(o.store.as_deref(), read_only) {
        Ok(io) => io,
        Err(error) => {
            eprintln!("error: {error:#}");
            return 1;
        }
    };
    let mut ev = match crate::eval_io::eval_for_command(&o.options, &o.include, o.show_trace, io.clone()) {
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();

    if o.find_file {
        for f in &o.files {
            let src = format!("__findFile __nixPath \"{}\"", f.replace('\\', "\\\\").replace('"', "\\\"").replace("${", "\\${"));
            let result = ev.parse_string(&src, &cwd).and_then(|e| ev.eval_expr(e));
            match result {
                Ok(v) => {
                    let shown = nivis_eval::print::print_value_bytes(&mut ev, &v);
                    let _ = out.write_all(&shown);
                    let _ = out.write_all(b"\n");
                }
                Err(e) => {
                    eprintln!("{}", e.render(o.show_trace));
                    return e.exit_status();
                }
            }
        }
        return 0;
    }

    if o.files.is_empty() && !o.from_args {
        o.files.push("./default.nix".to_string());
    }
    if o.attr_paths.is_empty() {
        o.attr_paths.push(String::new());
    }
    let auto = match auto_args(&mut ev, &o.auto_args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}", e.render(o.show_trace));
            return e.exit_status();
        }
    };
    let mut gc_warning_printed = false;
    for f in &o.files {
        let parsed = if o.from_args {
            ev.parse_string(f, &cwd)
        } else if f == "-" {
            let mut src = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut src);
            ev.parse_stdin(&src, &cwd)
        } else {
            lookup_file_arg(&mut ev, f, &cwd).and_then(|p| crate::eval_io::parse_main_file(&mut ev, &io, &p))
        };
        let expr = match parsed {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{}", e.render(o.show_trace));
                return e.exit_status();
            }
        };
        if o.parse {
            let _ = writeln!(out, "{}", nivis_eval::print::show_expr(expr));
            continue;
        }
        let result = (|| -> nivis_eval::error::Result<()> {
            let root = ev.eval_expr(expr)?;
            for attr_path in &o.attr_paths {
                let v = find_along_attr_path(&mut ev, attr_path, auto.as_ref(), &root)?;
                let mut v = ev.force(&v, Pos::NONE)?;
                if let Some(a) = &auto {
                    v = auto_call(&mut ev, &v, a)?;
                }
                if !o.eval {
                    let mut drv_paths = Vec::new();
                    collect_derivations(&mut ev, &v, auto.as_ref(), &mut drv_paths)?;
                    if !drv_paths.is_empty() && !gc_warning_printed {
                        gc_warning_printed = true;
                        eprintln!("warning: you did not specify '--add-root'; the result might be removed by the garbage collector");
                    }
                    for (drv_path, output_name) in drv_paths {
                        if output_name == "out" {
                            let _ = writeln!(out, "{drv_path}");
                        } else {
                            let _ = writeln!(out, "{drv_path}!{output_name}");
                        }
                    }
                    continue;
                }
                if o.xml {
                    let mut ctx = Default::default();
                    if o.strict {
                        v = ev.force_deep(&v, Pos::NONE)?;
                    }
                    let s = nivis_eval::print::to_xml_with_location(&mut ev, &v, Pos::NONE, &mut ctx, o.strict, !o.no_location)?;
                    let _ = out.write_all(s.as_bytes());
                } else if o.json {
                    let mut buf = Vec::new();
                    let mut ctx = Default::default();
                    nivis_eval::print::to_json(&mut ev, &v, Pos::NONE, &mut buf, &mut ctx)?;
                    buf.push(b'\n');
                    let _ = out.write_all(&buf);
                } else {
                    if o.strict {
                        v = ev.force_deep(&v, Pos::NONE)?;
                    }
                    let mut shown = nivis_eval::print::print_value_bytes(&mut ev, &v);
                    shown.push(b'\n');
                    let _ = out.write_all(&shown);
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = out.flush();
            eprintln!("{}", e.render(o.show_trace));
            return e.exit_status();
        }
    }
    0
}

/// A file argument: `<nixpkgs>` is looked up in the search path; directories mean
/// their `default.nix`.
pub fn lookup_file_arg(ev: &mut nivis_eval::Eval, arg: &str, cwd: &Path) -> nivis_eval::error::Result<PathBuf> {
    let mut path = if arg.starts_with('<') && arg.ends_with('>') && arg.len() > 2 {
        let e = ev.parse_string(arg, cwd)?;
        let v = ev.eval_expr(e)?;
        match v {
            nivis_eval::Value::Path(p) => PathBuf::from(p.to_str_lossy().into_owned()),
            _ => PathBuf::from(arg),
        }
    } else {
        let p = Path::new(arg);
        if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) }
    };
    if path.is_dir() {
        path.push("default.nix");
    }
    // CppNix canonicalises the path lexically (no symlink resolution).
    use std::os::unix::ffi::OsStrExt;
    let canon = nivis_eval::parser::canon_path(path.as_os_str().as_bytes());
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&canon)))
}

/// CppNix's `getDerivations`, then what `nix-instantiate` asks of each
/// derivation found: the (auto-called) value is a derivation, or a list whose
/// elements are searched, or an attribute set whose attributes are taken when
/// they are derivations and searched only when they say
/// `recurseForDerivations = true`. Anything else is an error. Each
/// derivation's name is checked as it is found; then, in order, its `.drv`
/// path (which writes it) and output name are read, once each.
pub(crate) fn collect_derivations(
    ev: &mut nivis_eval::Eval,
    value: &nivis_eval::Value,
    auto: Option<&nivis_eval::value::Rc<nivis_eval::value::Attrs>>,
    out: &mut Vec<(String, String)>,
) -> nivis_eval::error::Result<()> {
    let mut found = Vec::new();
    find_derivations(ev, value, auto, &mut found)?;
    for attrs in &found {
        let entry = derivation_paths(ev, attrs)?;
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(())
}

fn find_derivations(
    ev: &mut nivis_eval::Eval,
    value: &nivis_eval::Value,
    auto: Option<&nivis_eval::value::Rc<nivis_eval::value::Attrs>>,
    found: &mut Vec<nivis_eval::value::Rc<nivis_eval::value::Attrs>>,
) -> nivis_eval::error::Result<()> {
    use nivis_eval::{Sym, Value};
    let no_args = nivis_eval::value::Attrs::empty();
    let value = auto_call(ev, value, auto.unwrap_or(&no_args))?;
    if take_derivation(ev, &value, found)? {
        return Ok(());
    }
    match &value {
        Value::Attrs(attrs) => {
            for attr in attrs.sorted_by_name() {
                let item = ev.force(&attr.value, Pos::NONE)?;
                if take_derivation(ev, &item, found)? {
                    continue;
                }
                if let Value::Attrs(inner) = &item
                    && let Some(flag) = inner.get(Sym::from_str("recurseForDerivations")).cloned()
                    && matches!(ev.force(&flag, Pos::NONE)?, Value::Bool(true))
                {
                    find_derivations(ev, &item, auto, found)?;
                }
            }
            Ok(())
        }
        Value::List(items) => {
            for item in items.iter() {
                let item = ev.force(item, Pos::NONE)?;
                if !take_derivation(ev, &item, found)? {
                    find_derivations(ev, &item, auto, found)?;
                }
            }
            Ok(())
        }
        _ => Err(nivis_eval::EvalError::new(
            nivis_eval::ErrorKind::Eval,
            "expression does not evaluate to a derivation (or a set or list of those)".to_string(),
            Pos::NONE,
        )),
    }
}

/// If `value` is a derivation (`type = "derivation"`), checks its name (as
/// CppNix's `getDerivation` does), records it and says so.
fn take_derivation(
    ev: &mut nivis_eval::Eval,
    value: &nivis_eval::Value,
    found: &mut Vec<nivis_eval::value::Rc<nivis_eval::value::Attrs>>,
) -> nivis_eval::error::Result<bool> {
    use nivis_eval::{Sym, Value};
    let Value::Attrs(attrs) = value else { return Ok(false) };
    let Some(kind) = attrs.get(Sym::from_str("type")).cloned() else { return Ok(false) };
    let kind = ev.force(&kind, Pos::NONE)?;
    if !matches!(&kind, Value::String(s) if s.as_bytes() == b"derivation") {
        return Ok(false);
    }
    let Some(name) = attrs.get(Sym::from_str("name")).cloned() else {
        return Err(nivis_eval::EvalError::new(nivis_eval::ErrorKind::Type, "derivation name missing", Pos::NONE));
    };
    ev.force_string_no_ctx(&name, Pos::NONE).map_err(|err| {
        with_context(err, Pos::NONE, "while evaluating the 'name' attribute of a derivation")
    })?;
    found.push(attrs.clone());
    Ok(true)
}

/// CppNix's `requireDrvPath` and `queryOutputName`, in their words and frames.
fn derivation_paths(
    ev: &mut nivis_eval::Eval,
    attrs: &nivis_eval::value::Attrs,
) -> nivis_eval::error::Result<(String, String)> {
    use nivis_eval::Sym;
    let error = |message: String| nivis_eval::EvalError::new(nivis_eval::ErrorKind::Eval, message, Pos::NONE);
    const DRV_PATH: &str = "while evaluating the 'drvPath' attribute of a derivation";
    let Some(drv_attr) = attrs.find(Sym::from_str("drvPath")) else {
        return Err(error("derivation does not contain a 'drvPath' attribute".to_string()));
    };
    let (drv_value, drv_pos) = (drv_attr.value.clone(), drv_attr.pos);
    let coerce = nivis_eval::eval::Coerce { more: false, copy_to_store: false };
    let drv_path = ev
        .coerce_to_string(&drv_value, Pos::NONE, coerce)
        .map_err(|err| with_context(err, drv_pos, DRV_PATH))?
        .to_str_lossy()
        .into_owned();
    let store_dir = ev.io.store_dir();
    let base = match drv_path.strip_prefix(&format!("{store_dir}/")) {
        Some(base) if !base.is_empty() && !base.contains('/') => base.to_string(),
        _ => return Err(with_context(error(format!("path '{drv_path}' is not in the Nix store")), drv_pos, DRV_PATH)),
    };
    // CppNix's `StorePath::requireDerivation`, on the store path's base name.
    if !drv_path.ends_with(".drv") {
        let err = error(format!("store path '{base}' is not a valid derivation path"));
        return Err(with_context(err, drv_pos, DRV_PATH));
    }
    let output_name = match attrs.get(Sym::from_str("outputName")).cloned() {
        Some(v) => ev
            .force_string_no_ctx(&v, Pos::NONE)
            .map_err(|err| with_context(err, Pos::NONE, "while evaluating the output name of a derivation"))?
            .to_str_lossy()
            .into_owned(),
        None => String::new(),
    };
    if output_name.is_empty() {
        return Err(error(format!("derivation '{drv_path}' lacks an 'outputName' attribute")));
    }
    Ok((drv_path, output_name))
}

/// CppNix's `errorCtx` frame, added only to an error the check itself raised.
fn with_context(mut err: Box<nivis_eval::EvalError>, pos: Pos, msg: &str) -> Box<nivis_eval::EvalError> {
    if err.trace.is_empty() && err.pos.is_none() {
        err.trace.push(nivis_eval::error::TraceFrame::new(pos, msg));
    }
    err
}
