//! `nix-env`: manage a profile (a numbered series of user environments) as
//! CppNix 2.8 does, with its flags, messages, files and exit codes.
//!
//! One file per family of operations: `install.rs` (`-i`, `-u`, `-e`,
//! `--set`, `--set-flag`), `query.rs` (`-q`), `generations.rs` (`--rollback`,
//! `--switch-generation`, `--list-generations`, `--delete-generations`,
//! `--switch-profile`); `drv_info.rs` is how packages are found, selected and
//! read back from manifests, `user_env.rs` how a user environment is made.
//! `help.txt` is the text of `--help`.
//!
//! The whole command runs on the evaluator's thread (values are `Rc`): the
//! store is reached through the evaluator's [`StoreEvalIO`], and builds run
//! from there with the scheduler.

mod drv_info;
mod generations;
mod install;
mod query;
mod user_env;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use anyhow::{anyhow, bail};
use nivis_eval::value::Attrs;
use nivis_eval::{Eval, EvalError};
use nivis_glue::StoreEvalIO;

use crate::eval_io::{AutoArg, EVAL_STACK_BYTES};
use crate::realise::BuildFlags;

const HELP: &str = include_str!("help.txt");

/// Where the packages of `-i`/`-u`/`--set` come from (CppNix's `InstallSourceType`).
#[derive(Clone, Debug)]
pub enum InstallSource {
    /// Decided by the arguments: store paths if the first has a slash.
    Unknown,
    NixExprDrvs,
    /// `-E`: functions applied to the `-f` expression.
    NixExprs,
    StorePaths,
    /// `--from-profile PATH`.
    Profile(PathBuf),
    /// `-A`.
    AttrPath,
}

/// An error that is only an exit status (a failed build has been reported).
#[derive(Debug)]
pub struct ExitStatus(pub u8);

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ExitStatus {}

/// An evaluation error, rendered as CppNix renders it (position, trace), and
/// whether it is one of CppNix's `AssertionError`s (a failed `assert` or a
/// `throw`), which `nix-env -qa` skips.
#[derive(Debug)]
pub struct EvalFailure(String, bool);

impl EvalFailure {
    /// A failed `assert` or a `throw` (CppNix's `ThrownError` is an `AssertionError`).
    pub fn is_assertion(error: &anyhow::Error) -> bool {
        error.downcast_ref::<EvalFailure>().is_some_and(|failure| failure.1)
    }
}

impl std::fmt::Display for EvalFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalFailure {}

/// A usage error: CppNix adds a hint to `--help`.
#[derive(Debug)]
pub struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // CppNix names the program as it was called.
        let program = std::env::args().next().unwrap_or_else(|| "nix-env".to_string());
        write!(f, "{}\nTry '{program} --help' for more information.", self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(message: String) -> UsageError {
    UsageError(message)
}

thread_local! {
    static SHOW_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[allow(clippy::boxed_local)] // the evaluator hands its errors out boxed
pub fn eval_failure(e: Box<EvalError>) -> anyhow::Error {
    let rendered = e.render(SHOW_TRACE.with(|s| s.get()));
    // Without its "error:" (a one-line message follows it after a space, a
    // trace on the next line); main puts it back.
    let text = rendered
        .strip_prefix("error: ")
        .or_else(|| rendered.strip_prefix("error:"))
        .unwrap_or(&rendered)
        .trim_end_matches('\n')
        .to_string();
    let assertion = matches!(e.kind, nivis_eval::ErrorKind::Assert | nivis_eval::ErrorKind::Throw);
    anyhow::Error::new(EvalFailure(text, assertion))
}

/// `?` for evaluator results inside nix-env.
pub trait EvalResultExt<T> {
    fn ev(self) -> anyhow::Result<T>;
}

impl<T> EvalResultExt<T> for Result<T, Box<EvalError>> {
    fn ev(self) -> anyhow::Result<T> {
        self.map_err(eval_failure)
    }
}

/// Everything an operation needs (CppNix's `Globals`).
pub struct Globals {
    pub ev: Eval,
    pub io: Rc<StoreEvalIO>,
    pub profile: PathBuf,
    pub nix_expr_path: PathBuf,
    pub inst_source: InstallSource,
    pub auto_args: nivis_eval::value::Rc<Attrs>,
    pub system_filter: String,
    pub this_system: String,
    pub dry_run: bool,
    pub prebuilt_only: bool,
    pub preserve_installed: bool,
    pub remove_all: bool,
    pub force_name: Option<String>,
    pub keep_derivations: bool,
    pub build: BuildFlags,
}

type Operation = fn(&mut Globals, &[String], &[String]) -> anyhow::Result<()>;

/// Splits `-qaP` into `-q -a -P` and `-j3` into `-j 3`, as CppNix's legacy
/// argument parser does.
fn expand_compound_flags(args: Vec<OsString>) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        let arg = arg.to_string_lossy().into_owned();
        let bytes = arg.as_bytes();
        if bytes.len() > 2 && bytes[0] == b'-' && bytes[1] != b'-' && bytes[1].is_ascii_alphabetic() {
            out.push(format!("-{}", bytes[1] as char));
            for (j, c) in arg.char_indices().skip(2) {
                if c.is_ascii_alphabetic() {
                    out.push(format!("-{c}"));
                } else {
                    out.push(arg[j..].to_string());
                    break;
                }
            }
        } else {
            out.push(arg);
        }
    }
    out
}

struct Parsed {
    op: Option<(&'static str, Operation)>,
    op_flags: Vec<String>,
    op_args: Vec<String>,
    profile: Option<String>,
    file: Option<String>,
    dry_run: bool,
    system_filter: String,
    prebuilt_only: bool,
    show_trace: bool,
    /// `--readonly-mode`: evaluate without writing `.drv` files (queries do so anyway).
    read_only: bool,
    auto_args: Vec<(String, AutoArg)>,
    include: Vec<String>,
    build: BuildFlags,
}

fn parse(args: Vec<String>) -> anyhow::Result<Result<Parsed, ExitCode>> {
    let mut p = Parsed {
        op: None,
        op_flags: Vec::new(),
        op_args: Vec::new(),
        profile: None,
        file: None,
        dry_run: false,
        system_filter: "*".to_string(),
        prebuilt_only: false,
        show_trace: false,
        read_only: false,
        auto_args: Vec::new(),
        include: Vec::new(),
        build: BuildFlags::default(),
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].clone();
        let next = |i: &mut usize| -> anyhow::Result<String> {
            *i += 1;
            args.get(*i).cloned().ok_or_else(|| anyhow!(usage(format!("flag '{arg}' requires an argument"))))
        };
        let mut set_op = |name: &'static str, op: Operation| -> anyhow::Result<()> {
            if let Some((old, _)) = p.op
                && old != name
            {
                bail!(usage("only one operation may be specified".to_string()));
            }
            p.op = Some((name, op));
            Ok(())
        };
        match arg.as_str() {
            "--help" => {
                print!("{HELP}");
                return Ok(Err(ExitCode::SUCCESS));
            }
            "--version" => {
                println!("nix-env (Nix) 2.8.0");
                return Ok(Err(ExitCode::SUCCESS));
            }
            "--install" | "-i" => set_op("install", install::op_install)?,
            "--uninstall" | "-e" => set_op("uninstall", install::op_uninstall)?,
            "--upgrade" | "-u" => set_op("upgrade", install::op_upgrade)?,
            "--set-flag" => set_op("set-flag", install::op_set_flag)?,
            "--set" => set_op("set", install::op_set)?,
            "--query" | "-q" => set_op("query", query::op_query)?,
            "--profile" | "-p" => p.profile = Some(next(&mut i)?),
            "--file" | "-f" => p.file = Some(next(&mut i)?),
            "--switch-profile" | "-S" => set_op("switch-profile", generations::op_switch_profile)?,
            "--switch-generation" | "-G" => set_op("switch-generation", generations::op_switch_generation)?,
            "--rollback" => set_op("rollback", generations::op_rollback)?,
            "--list-generations" => set_op("list-generations", generations::op_list_generations)?,
            "--delete-generations" => set_op("delete-generations", generations::op_delete_generations)?,
            "--dry-run" => {
                eprintln!("(dry run; not doing anything)");
                p.dry_run = true;
            }
            "--system-filter" => p.system_filter = next(&mut i)?,
            "--prebuilt-only" | "-b" => p.prebuilt_only = true,
            "--show-trace" => p.show_trace = true,
            "--readonly-mode" => p.read_only = true,
            _ => {
                let common = crate::eval_io::parse_eval_flag(&args, &mut i, &mut p.auto_args, &mut p.include)?
                    || (arg != "--system" && p.build.parse_flag(&args, &mut i)?);
                if common {
                    // Consumed: `--arg`, `-I`, `--store`, `--option`, `-j`, ...
                } else if arg.starts_with('-') && arg.len() > 1 {
                    p.op_flags.push(arg.clone());
                    let op = p.op.map(|(name, _)| name);
                    let takes_value =
                        arg == "--from-profile" || (op == Some("query") && (arg == "--attr" || arg == "-A"));
                    if takes_value {
                        p.op_flags.push(next(&mut i)?);
                    }
                } else {
                    p.op_args.push(arg.clone());
                }
            }
        }
        i += 1;
    }
    Ok(Ok(p))
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let args = expand_compound_flags(args);
    let parsed = match parse(args)? {
        Ok(parsed) => parsed,
        Err(code) => return Ok(code),
    };
    let result = nivis_eval::run_with_big_stack(EVAL_STACK_BYTES, move || run_parsed(parsed));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            if let Some(ExitStatus(code)) = error.downcast_ref::<ExitStatus>() {
                return Ok(ExitCode::from(*code));
            }
            Err(error)
        }
    }
}

fn run_parsed(p: Parsed) -> anyhow::Result<()> {
    SHOW_TRACE.with(|s| s.set(p.show_trace));
    let Some((name, op)) = p.op else { bail!(usage("no operation specified".to_string())) };
    // Queries evaluate without writing `.drv` files (CppNix's readOnlyMode).
    let io = crate::eval_io::open_eval_io(p.build.store.as_deref(), name == "query" || p.read_only)?;
    let eval_config = crate::eval_io::load_config(&p.build.options)?;
    let mut ev = crate::eval_io::configured_eval(&p.include, p.show_trace, io.clone(), &eval_config)?;
    let auto_args = crate::eval_io::auto_args(&mut ev, &p.auto_args).ev()?.unwrap_or_else(|| nivis_eval::value::Attrs::empty());
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"));
    // Made on every run, `-f` or not, as CppNix does.
    let defexpr = home.join(".nix-defexpr");
    create_default_defexpr(&defexpr, io.store());
    let nix_expr_path = match &p.file {
        // CppNix's lookupFileArg without appending `default.nix`: a
        // directory without one is a set of expressions, as ~/.nix-defexpr.
        Some(file) if file.starts_with('<') && file.ends_with('>') && file.len() > 2 => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            let e = ev.parse_string(file, &cwd).ev()?;
            match ev.eval_expr(e).ev()? {
                nivis_eval::Value::Path(p) => PathBuf::from(p.to_str_lossy().into_owned()),
                other => bail!("search path entry {file} is {}, not a path", other.show_type()),
            }
        }
        Some(file) => crate::store_args::absolute_path(file)?,
        None => defexpr,
    };
    let profile = match p.profile.clone().or_else(|| std::env::var("NIX_PROFILE").ok().filter(|s| !s.is_empty())) {
        Some(profile) => crate::store_args::absolute_path(&profile)?,
        None => {
            let state_dir = match io.store().as_local() {
                Some(local) => local.config().state_dir.clone(),
                None => nivis_store::StoreSettings::from_env().state_dir.clone(),
            };
            nivis_profile::default_profile(&state_dir)
        }
    };
    let mut config = nivis_config::Config::load()?;
    for (name, value) in &p.build.options {
        config.set(name, value);
    }
    let keep_derivations = config.get_bool("keep-env-derivations").unwrap_or(false);
    let this_system = config.get("system").unwrap_or_else(|| "x86_64-linux".to_string());
    let mut g = Globals {
        ev,
        io,
        profile,
        nix_expr_path,
        inst_source: InstallSource::Unknown,
        auto_args,
        system_filter: p.system_filter.clone(),
        this_system,
        dry_run: p.dry_run,
        prebuilt_only: p.prebuilt_only,
        preserve_installed: false,
        remove_all: false,
        force_name: None,
        keep_derivations,
        build: p.build.clone(),
    };
    op(&mut g, &p.op_flags, &p.op_args)
}

/// CppNix 2.8 makes `~/.nix-defexpr` with links to the channels on first use.
fn create_default_defexpr(defexpr: &std::path::Path, store: &dyn nivis_store::Store) {
    if defexpr.exists() || std::fs::symlink_metadata(defexpr).is_ok() {
        return;
    }
    let Some(local) = store.as_local() else { return };
    let profiles = nivis_profile::profiles_dir(&local.config().state_dir);
    // CppNix's getUserName: the passwd entry of the effective uid, else $USER.
    // SAFETY: getpwuid returns static storage or null; the name is copied at once.
    let user = unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned())
        }
    };
    let Some(user) = user.or_else(|| std::env::var("USER").ok()) else { return };
    if std::fs::create_dir_all(defexpr).is_err() {
        return;
    }
    let _ = nivis_profile::replace_symlink(
        &profiles.join("per-user").join(&user).join("channels"),
        &defexpr.join("channels"),
    );
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        let _ =
            nivis_profile::replace_symlink(&profiles.join("per-user/root/channels"), &defexpr.join("channels_root"));
    }
}
