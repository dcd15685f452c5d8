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

use nivis_eval::value::{Attrs, AttrsBuilder, Value};
use nivis_eval::{Eval, EvalError, Pos, Settings, Sym};

/// The evaluator thread's stack: deep but finite recursion must not crash.
pub const EVAL_STACK_BYTES: usize = 1 << 30;

/// Search path entries from `-I` flags (first) and `NIX_PATH`, relative paths
/// made absolute against the current directory.
pub fn search_path(include: &[String]) -> Vec<String> {
    search_path_with(include, None)
}

/// CppNix's `parseNixPath`: entries separated by `:`, except that the colon
/// of a URL entry (`nixpkgs=https://...`, `channel:NAME`) does not split it.
fn parse_nix_path(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut entries = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let mut value_start = start;
        while i < bytes.len() && bytes[i] != b':' {
            if bytes[i] == b'=' {
                value_start = i + 1;
            }
            i += 1;
        }
        if i < bytes.len() && nivis_eval::io::is_pseudo_url(&text[value_start..]) {
            i += 1;
            while i < bytes.len() && bytes[i] != b':' {
                i += 1;
            }
        }
        if i > start {
            entries.push(text[start..i].to_string());
        }
        i += 1;
        start = i;
    }
    entries
}

/// CppNix's default `nix-path` when neither the setting nor `NIX_PATH` gives one:
/// the channel directories that exist (a dangling link counts, as `pathExists`).
fn default_nix_path() -> Vec<String> {
    let mut entries = Vec::new();
    let exists = |p: &str| std::fs::symlink_metadata(p).is_ok();
    if let Ok(home) = std::env::var("HOME") {
        let channels = format!("{home}/.nix-defexpr/channels");
        if exists(&channels) {
            entries.push(channels);
        }
    }
    let state_dir = std::env::var("NIX_STATE_DIR").unwrap_or_else(|_| "/nix/var/nix".to_string());
    let root_channels = format!("{state_dir}/profiles/per-user/root/channels");
    if exists(&format!("{root_channels}/nixpkgs")) {
        entries.push(format!("nixpkgs={root_channels}/nixpkgs"));
    }
    if exists(&root_channels) {
        entries.push(root_channels);
    }
    entries
}

/// Search path entries: `-I` flags first, then the `nix-path` setting when it was
/// set (`nix.conf`, `NIX_CONFIG`, `--option`), else `NIX_PATH`, else the channel
/// defaults — CppNix's order, where `NIX_PATH` only seeds the setting's default.
fn search_path_with(include: &[String], nix_path_setting: Option<&str>) -> Vec<String> {
    let mut entries: Vec<String> = include.to_vec();
    let nix_path = match nix_path_setting {
        // The setting is a whitespace-separated list.
        Some(setting) => Some(setting.split_whitespace().collect::<Vec<_>>().join(":")),
        None => std::env::var("NIX_PATH").ok(),
    };
    if nix_path.is_none() {
        entries.extend(default_nix_path());
    }
    if let Some(nix_path) = nix_path {
        entries.extend(parse_nix_path(&nix_path));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    entries
        .into_iter()
        .map(|entry| {
            let (prefix, path) = match entry.split_once('=') {
                Some((p, rest)) => (Some(p.to_string()), rest.to_string()),
                None => (None, entry.clone()),
            };
            let path = if path.starts_with('/') || nivis_eval::io::is_pseudo_url(&path) {
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

/// The `--option`s of the running command, for evaluations started deep inside
/// shared code (`nix-build`'s instantiation). One command runs per process.
static COMMAND_LINE_OPTIONS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Records the command's `--option NAME VALUE`s for [`load_config`].
pub fn set_command_line_options(options: &[(String, String)]) {
    if let Ok(mut stored) = COMMAND_LINE_OPTIONS.lock() {
        *stored = options.to_vec();
    }
}

/// The configuration an evaluating command runs with: `nix.conf`, `NIX_CONFIG`,
/// the options recorded with [`set_command_line_options`], then `options`.
pub fn load_config(options: &[(String, String)]) -> anyhow::Result<nivis_config::Config> {
    let mut config = nivis_config::Config::load()?;
    if let Ok(stored) = COMMAND_LINE_OPTIONS.lock() {
        for (name, value) in stored.iter() {
            config.set(name, value);
        }
    }
    for (name, value) in options {
        config.set(name, value);
    }
    Ok(config)
}

/// The `pure-eval` the new CLI (`nix eval`, `nix build`, `nix profile`)
/// evaluates with, as an option for [`load_config`]. CppNix's `nix` sets
/// `pure-eval` before reading its flags, so `nix.conf` and `NIX_CONFIG` do not
/// make it impure; `--impure` or `--option pure-eval false` do, and `--file` is
/// impure whatever the flags say (kept for backward compatibility, as CppNix).
pub fn new_cli_pure_eval(command_line_options: &[(String, String)], impure: bool, from_file: bool) -> (String, String) {
    let explicit = command_line_options.iter().rev().find(|(name, _)| name == "pure-eval").map(|(_, value)| value.clone());
    let pure = if from_file {
        "false".to_string()
    } else if let Some(value) = explicit {
        value
    } else if impure {
        "false".to_string()
    } else {
        "true".to_string()
    };
    ("pure-eval".to_string(), pure)
}

/// `--show-trace`, or `show-trace = true` in the configuration.
pub fn show_trace(config: &nivis_config::Config, flag: bool) -> bool {
    flag || config.get_bool("show-trace").unwrap_or(false)
}

/// The evaluator settings the configuration asks for: `nix-path` (with `-I`
/// first), `system`, `max-call-depth`, `pure-eval`, `restrict-eval`, `show-trace`.
pub fn configured_settings(include: &[String], show_trace_flag: bool, config: &nivis_config::Config) -> anyhow::Result<Settings> {
    let pure_eval = config.get_bool("pure-eval")?;
    let restrict_eval = config.get_bool("restrict-eval")?;
    let nix_path_setting = config.is_set("nix-path").then(|| config.get("nix-path").unwrap_or_default());
    // Pure evaluation has no search path at all, not even `-I`.
    let nix_path = if pure_eval { Vec::new() } else { search_path_with(include, nix_path_setting.as_deref()) };
    let mut settings = Settings { nix_path, show_trace: show_trace(config, show_trace_flag), pure_eval, restrict_eval, ..Settings::default() };
    if let Some(system) = config.get("system").filter(|s| !s.is_empty()) {
        settings.system = system;
    }
    if let Some(depth) = config.get_u64("max-call-depth")? {
        settings.max_call_depth = depth as usize;
    }
    settings.trace_verbose = config.get_bool("trace-verbose")?;
    // `abort-on-warn`, or `NIX_ABORT_ON_WARN` as nixpkgs' `lib.warn` reads it.
    settings.abort_on_warn = config.get_bool("abort-on-warn")?
        || std::env::var("NIX_ABORT_ON_WARN").is_ok_and(|v| ["1", "true", "yes"].contains(&v.as_str()));
    settings.experimental_features = config.get_list("experimental-features");
    Ok(settings)
}

/// What an evaluating command starts from, read from the configuration with
/// its command-line `options`: whether traces are shown (`--show-trace` or the
/// `show-trace` setting), and the evaluator over `io` ([`configured_eval`]).
pub fn eval_for_command(
    options: &[(String, String)],
    include: &[String],
    show_trace_flag: bool,
    io: Rc<StoreEvalIO>,
) -> anyhow::Result<(bool, Eval)> {
    let config = load_config(options)?;
    let show_trace = show_trace(&config, show_trace_flag);
    let ev = configured_eval(include, show_trace, io, &config)?;
    Ok((show_trace, ev))
}

/// An evaluator over `io` as the configuration says: the settings above, the
/// fetchers' settings (`tarball-ttl`, `warn-dirty`, ...) for this thread, and
/// the restrictions (`restrict-eval`, `pure-eval`, `allowed-uris`,
/// `allow-import-from-derivation`) on `io`. Call it on the evaluator's thread.
pub fn configured_eval(
    include: &[String],
    show_trace_flag: bool,
    io: Rc<StoreEvalIO>,
    config: &nivis_config::Config,
) -> anyhow::Result<Eval> {
    let settings = configured_settings(include, show_trace_flag, config)?;
    nivis_glue::set_thread_fetch_settings(Some(nivis_glue::FetchSettings::from_config(config)));
    let mut restrictions = nivis_glue::EvalRestrictions {
        pure_eval: settings.pure_eval,
        restrict_eval: settings.restrict_eval,
        allowed_uris: config.get_list("allowed-uris"),
        allow_import_from_derivation: config.get_bool("allow-import-from-derivation")?,
        ..Default::default()
    };
    if settings.pure_eval || settings.restrict_eval {
        // CppNix's `EvalState` constructor: every search-path directory may be read.
        let mut allowed = Vec::new();
        for entry in &settings.nix_path {
            let path = entry.split_once('=').map_or(entry.as_str(), |(_, p)| p);
            if path.contains("://") {
                continue;
            }
            if std::fs::symlink_metadata(path).is_err() {
                eprintln!("warning: Nix search path entry '{path}' does not exist, ignoring");
                continue;
            }
            allowed.push(std::path::PathBuf::from(path));
        }
        restrictions.allowed_paths = Some(allowed);
    }
    io.set_restrictions(restrictions);
    io.set_ifd_builder(ifd_builder(config));
    Ok(Eval::new(io, settings))
}

/// Import-from-derivation builds as `nix-build` would: the configuration's build
/// settings, substituting from its caches first.
fn ifd_builder(config: &nivis_config::Config) -> nivis_glue::IfdBuilder {
    let options: Vec<(String, String)> =
        config.explicit_settings().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    Box::new(move |store: &dyn nivis_store::Store, drv_path: &nivis_formats::StorePath, output: &str| {
        let flags = crate::realise::BuildFlags { options: options.clone(), ..Default::default() };
        let run = || -> anyhow::Result<Result<(), nivis_eval::IoError>> {
            let settings = flags.settings(true)?;
            let substituters = flags.substituters()?;
            let target = nivis_build::DerivedPath {
                drv_path: drv_path.clone(),
                outputs: Some([output.to_string()].into_iter().collect()),
            };
            crate::realise::print_missing(store, std::slice::from_ref(&target), &substituters)?;
            let result = nivis_build::realise(store, &[target], &settings, Some(&substituters))?;
            if result.failures.is_empty() {
                return Ok(Ok(()));
            }
            // As CppNix: the other failures are logged, the one of the
            // derivation asked for (or the first) is the evaluation error.
            let printed = store.print_store_path(drv_path);
            let main = result.failures.iter().position(|f| f.drv_path == printed).unwrap_or(0);
            for (index, failure) in result.failures.iter().enumerate() {
                if index != main {
                    eprintln!("error: {}", failure.message);
                }
            }
            Ok(Err(nivis_eval::IoError::WithStatus {
                message: result.failures[main].message.clone(),
                exit_status: result.exit_status(),
            }))
        };
        run().map_err(|error| nivis_eval::IoError::Message(format!("{error:#}")))?
    })
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

pub fn auto_args(ev: &mut Eval, args: &[(String, AutoArg)]) -> nivis_eval::error::Result<Option<nivis_eval::value::Rc<Attrs>>> {
    if args.is_empty() {
        return Ok(None);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
    let mut attrs = AttrsBuilder::new();
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
    Ok(Some(attrs.finish()))
}

/// CppNix's `autoCallFunction`: a function with formals is called with the
/// `--arg`s it names (all of them if it has `...`).
pub fn auto_call(ev: &mut Eval, v: &Value, args: &nivis_eval::value::Rc<Attrs>) -> nivis_eval::error::Result<Value> {
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
    let mut call_args = AttrsBuilder::new();
    if formals.ellipsis {
        for a in args.iter() {
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
    args: Option<&nivis_eval::value::Rc<Attrs>>,
    root: &Value,
) -> nivis_eval::error::Result<Value> {
    let mut v = root.clone();
    if attr_path.is_empty() {
        return Ok(v);
    }
    let no_args = nivis_eval::value::Attrs::empty();
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
                // With CppNix's "Did you mean" among the set's names.
                let names: Vec<Vec<u8>> = a.iter().map(|x| x.name.as_bytes().to_vec()).collect();
                return Err(err(format!("attribute '{token}' in selection path '{attr_path}' not found"))
                    .with_suggestions(token.as_bytes(), names.iter().map(|n| n.as_slice())));
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

/// Parses the file a command was given, checked first as every read is: in
/// restricted or pure mode CppNix refuses even the top-level file when it lies
/// outside the allowed paths ("access to absolute path ... is forbidden").
pub fn parse_main_file(ev: &mut Eval, io: &StoreEvalIO, path: &std::path::Path) -> nivis_eval::error::Result<&'static nivis_eval::ast::Expr> {
    if let Err(error) = io.check_source_path(path) {
        return Err(EvalError::new(nivis_eval::ErrorKind::Io, error.reason(), Pos::NONE));
    }
    ev.parse_file(path)
}
