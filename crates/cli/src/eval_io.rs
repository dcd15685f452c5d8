//! The evaluator as the CLI sets it up: the search path from `-I` and
//! `NIX_PATH`, `--arg`/`--argstr`, auto-calling, attribute paths, and an
//! [`EvalIO`] over the store named by `--store` (the glue crate's
//! [`StoreEvalIO`]), read-only for `--eval` as in CppNix.

use nivis_eval::EvalIO;
use nivis_glue::StoreEvalIO;

/// Opens the store for an evaluation: `read_only` computes store paths without
/// writing anything (CppNix's `--readonly-mode`, the default of `--eval`).
pub fn open_eval_io(store_flag: Option<&str>, read_only: bool) -> anyhow::Result<Rc<StoreEvalIO>> {
    let store = crate::store_args::open_store(store_flag)?;
    Ok(Rc::new(StoreEvalIO::new(store, read_only)))
}

// ----- helpers shared by `nix-instantiate --eval` and `nix eval` -----

use std::rc::Rc;

use nivis_eval::value::{Attrs, Value};
use nivis_eval::{Eval, EvalError, Pos, Settings, Sym};

/// The evaluator thread's stack: deep but finite recursion must not crash.
pub const EVAL_STACK_BYTES: usize = 1 << 30;

/// Search path entries from `-I` flags (first) and `NIX_PATH`, relative paths
/// made absolute against the current directory.
pub fn search_path(include: &[String]) -> Vec<String> {
    let mut entries: Vec<String> = include.to_vec();
    if let Ok(nix_path) = std::env::var("NIX_PATH") {
        let mut parts: Vec<String> = Vec::new();
        for piece in nix_path.split(':') {
            // `https://...` was split at its colon: glue it back.
            if piece.starts_with("//") {
                if let Some(last) = parts.last_mut() {
                    last.push(':');
                    last.push_str(piece);
                    continue;
                }
            }
            if !piece.is_empty() {
                parts.push(piece.to_string());
            }
        }
        entries.extend(parts);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    entries
        .into_iter()
        .map(|entry| {
            let (prefix, path) = match entry.split_once('=') {
                Some((p, rest)) => (Some(p.to_string()), rest.to_string()),
                None => (None, entry.clone()),
            };
            let path = if path.starts_with('/') || path.contains("://") {
                path
            } else {
                cwd.join(&path).to_string_lossy().into_owned()
            };
            match prefix {
                Some(p) => format!("{p}={path}"),
                None => path,
            }
        })
        .collect()
}

pub fn settings(include: &[String], show_trace: bool) -> Settings {
    Settings { nix_path: search_path(include), show_trace, ..Settings::default() }
}

pub fn new_eval(include: &[String], show_trace: bool, io: Rc<dyn EvalIO>) -> Eval {
    Eval::new(io, settings(include, show_trace))
}

/// Parses, at `args[*i]`, a flag every evaluating command shares: `--arg NAME
/// EXPR`, `--argstr NAME STRING`, `-I PATH`/`--include PATH`/`-IPATH`. Leaves `i`
/// on the flag's last value and returns true, or returns false for other flags.
pub fn parse_eval_flag(
    args: &[String],
    i: &mut usize,
    auto_args: &mut Vec<(String, AutoArg)>,
    include: &mut Vec<String>,
) -> anyhow::Result<bool> {
    let flag = args[*i].as_str();
    let value = |i: &mut usize| -> anyhow::Result<String> {
        *i += 1;
        args.get(*i).cloned().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"))
    };
    match flag {
        "--arg" => {
            let name = value(i)?;
            auto_args.push((name, AutoArg::Expr(value(i)?)));
        }
        "--argstr" => {
            let name = value(i)?;
            auto_args.push((name, AutoArg::Str(value(i)?)));
        }
        "-I" | "--include" => include.push(value(i)?),
        _ if flag.starts_with("-I") && flag.len() > 2 => include.push(flag[2..].to_string()),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `--arg`/`--argstr` values, bound lazily.
pub enum AutoArg {
    Expr(String),
    Str(String),
}

pub fn auto_args(ev: &mut Eval, args: &[(String, AutoArg)]) -> nivis_eval::error::Result<Option<Rc<Attrs>>> {
    if args.is_empty() {
        return Ok(None);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let mut attrs = Attrs::new();
    for (name, arg) in args {
        let v = match arg {
            AutoArg::Str(s) => Value::string(s.clone().into_bytes()),
            AutoArg::Expr(src) => {
                let e = ev.parse_string(src, &cwd)?;
                ev.eval_expr(e)?
            }
        };
        attrs.insert(Sym::from_str(name), v, Pos::NONE);
    }
    Ok(Some(Rc::new(attrs)))
}

/// CppNix's `autoCallFunction`: a function with formals is called with the
/// `--arg`s it names (all of them if it has `...`).
pub fn auto_call(ev: &mut Eval, v: &Value, args: &Rc<Attrs>) -> nivis_eval::error::Result<Value> {
    let f = ev.force(v, Pos::NONE)?;
    if let Value::Attrs(a) = &f {
        if let Some(functor) = a.get(ev.s.functor).cloned() {
            let functor = ev.force(&functor, Pos::NONE)?;
            let g = ev.call(&functor, f.clone(), Pos::NONE)?;
            return auto_call(ev, &g, args);
        }
    }
    let Value::Lambda(c) = &f else { return Ok(f) };
    let Some(formals) = &c.lambda.formals else { return Ok(f) };
    let mut call_args = Attrs::new();
    if formals.ellipsis {
        for a in &args.entries {
            call_args.insert(a.name, a.value.clone(), a.pos);
        }
    } else {
        for formal in &formals.entries {
            match args.get(formal.name) {
                Some(v) => call_args.insert(formal.name, v.clone(), Pos::NONE),
                None if formal.default.is_some() => {}
                None => {
                    return Err(EvalError::new(
                        nivis_eval::ErrorKind::Eval,
                        format!(
                            "cannot evaluate a function that has an argument without a value ('{}')\n\n\
                             Nix attempted to evaluate a function as a top level expression; in\n\
                             this case it must have its arguments supplied either by default\n\
                             values, or passed explicitly with '--arg' or '--argstr'. See\n\
                             https://nixos.org/manual/nix/stable/#ss-functions.",
                            formal.name
                        ),
                        formal.pos,
                    ));
                }
            }
        }
    }
    let r = ev.call(&f, Value::attrs(call_args), Pos::NONE)?;
    ev.force(&r, Pos::NONE)
}

/// CppNix's `findAlongAttrPath`: `a.b.0.c`, auto-calling functions on the way.
pub fn find_along_attr_path(
    ev: &mut Eval,
    attr_path: &str,
    args: Option<&Rc<Attrs>>,
    root: &Value,
) -> nivis_eval::error::Result<Value> {
    let mut v = root.clone();
    if attr_path.is_empty() {
        return Ok(v);
    }
    let no_args = Rc::new(Attrs::new());
    for token in parse_attr_path(attr_path) {
        // Functions on the way are called, with the `--arg`s or with none.
        v = auto_call(ev, &v, args.unwrap_or(&no_args))?;
        let err = |msg: String| EvalError::new(nivis_eval::ErrorKind::Eval, msg, Pos::NONE);
        if let Ok(index) = token.parse::<usize>() {
            let Value::List(l) = &v else {
                return Err(err(format!(
                    "the expression selected by the selection path '{attr_path}' should be a list but is {}",
                    v.show_type()
                )));
            };
            let Some(item) = l.get(index).cloned() else {
                return Err(err(format!("list index {index} in selection path '{attr_path}' is out of range")));
            };
            v = item;
        } else {
            let Value::Attrs(a) = &v else {
                return Err(err(format!(
                    "the expression selected by the selection path '{attr_path}' should be a set but is {}",
                    v.show_type()
                )));
            };
            if token.is_empty() {
                return Err(err(format!("empty attribute name in selection path '{attr_path}'")));
            }
            let Some(item) = a.get(Sym::from_str(&token)).cloned() else {
                return Err(err(format!("attribute '{token}' in selection path '{attr_path}' not found")));
            };
            v = item;
        }
    }
    Ok(v)
}

/// Splits `a."b.c".d` into its names.
pub fn parse_attr_path(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            '"' => quoted = !quoted,
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}
