//! The evaluator: forces expressions to weak head normal form, applies
//! functions, and implements the language's coercions and comparisons.
//!
//! Assumptions: every expression is resolved and `'static` (leaked); values are
//! `Rc`-based so all evaluation happens on one thread (run it on a thread with a
//! big stack, see [`crate::run_with_big_stack`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use crate::value::Rc;

use crate::ast::*;
use crate::builtins;
use crate::error::{ErrorKind, EvalError, Result, TraceFrame};
use crate::io::{EvalIO, FileType, IoError};
use crate::pos::{Origin, Pos, add_source};
use crate::resolve::{Scope, resolve};
use crate::symbol::Sym;
use crate::value::*;

/// Evaluation settings (what `nix.conf` and the command line decide).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Search path entries, `prefix=path` or `path`, in lookup order.
    pub nix_path: Vec<String>,
    pub system: String,
    pub max_call_depth: usize,
    /// Restricts impure builtins (`currentTime`, `getEnv`, ...) when true.
    pub pure_eval: bool,
    /// `restrict-eval`: `getEnv` answers "" (file and URI access is checked by
    /// the `EvalIO`, which knows the allowed paths).
    pub restrict_eval: bool,
    pub current_time: i64,
    pub trace_verbose: bool,
    /// Record function-call frames in error traces (`--show-trace`); CppNix
    /// only collects them then.
    pub show_trace: bool,
    /// `experimental-features` (e.g. `parse-toml-timestamps`).
    pub experimental_features: Vec<String>,
    /// `abort-on-warn`: `builtins.warn` fails after printing its warning.
    pub abort_on_warn: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        let current_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Settings {
            nix_path: Vec::new(),
            system: "x86_64-linux".to_string(),
            max_call_depth: 10000,
            pure_eval: false,
            restrict_eval: false,
            current_time,
            trace_verbose: false,
            experimental_features: Vec::new(),
            abort_on_warn: false,
            show_trace: false,
        }
    }
}

/// Symbols the evaluator looks up often, interned once.
pub struct Syms {
    pub out_path: Sym,
    pub type_: Sym,
    pub functor: Sym,
    pub to_string: Sym,
    pub drv_path: Sym,
    pub name: Sym,
    pub value: Sym,
    pub outputs: Sym,
    pub out: Sym,
    pub file: Sym,
    pub line: Sym,
    pub column: Sym,
    pub key: Sym,
    pub success: Sym,
    pub overrides: Sym,
    pub path: Sym,
    pub prefix: Sym,
    pub right: Sym,
    pub wrong: Sym,
    pub output_name: Sym,
    pub ignore_nulls: Sym,
    pub structured_attrs: Sym,
    pub args: Sym,
    pub builder: Sym,
    pub system: Sym,
    pub operator: Sym,
    pub start_set: Sym,
    pub all_outputs: Sym,
    pub version: Sym,
    pub filter: Sym,
    pub recursive: Sym,
    pub sha256: Sym,
    pub url: Sym,
}

impl Syms {
    fn new() -> Syms {
        let s = Sym::from_str;
        Syms {
            out_path: s("outPath"),
            type_: s("type"),
            functor: s("__functor"),
            to_string: s("__toString"),
            drv_path: s("drvPath"),
            name: s("name"),
            value: s("value"),
            outputs: s("outputs"),
            out: s("out"),
            file: s("file"),
            line: s("line"),
            column: s("column"),
            key: s("key"),
            success: s("success"),
            overrides: s("__overrides"),
            path: s("path"),
            prefix: s("prefix"),
            right: s("right"),
            wrong: s("wrong"),
            output_name: s("outputName"),
            ignore_nulls: s("__ignoreNulls"),
            structured_attrs: s("__structuredAttrs"),
            args: s("args"),
            builder: s("builder"),
            system: s("system"),
            operator: s("operator"),
            start_set: s("startSet"),
            all_outputs: s("allOutputs"),
            version: s("version"),
            filter: s("filter"),
            recursive: s("recursive"),
            sha256: s("sha256"),
            url: s("url"),
        }
    }
}

pub struct Eval {
    pub io: std::rc::Rc<dyn EvalIO>,
    pub settings: Settings,
    pub s: Syms,
    pub(crate) base_env: Rc<Env>,
    pub(crate) base_scope: Scope,
    pub(crate) import_cache: HashMap<Vec<u8>, Value, crate::symbol::FxBuild>,
    pub(crate) store_copies: HashMap<Vec<u8>, String>,
    call_depth: usize,
    force_depth: usize,
    /// Buffers strings are built in before they get their exact-size
    /// allocation, reused so that building a string costs one allocation rather
    /// than a series of growing ones. A stack, because builds nest: the
    /// `toString i` inside `"a${toString i}"` runs while the outer one holds
    /// its buffer.
    string_scratch: Vec<Vec<u8>>,
    /// The symbols of strings used lately as attribute names (`x.${name}`,
    /// `x ? ${k}`), by the string's address (`name_sym`).
    name_syms: Box<[(Option<NixString>, Sym)]>,
}

/// Entries of [`Eval::name_syms`] (a power of two).
const NAME_SYMS: usize = 256;

/// Scratch buffers larger than this are freed rather than kept for reuse, so
/// one huge string does not stay resident for the rest of the evaluation.
const SCRATCH_KEEP_MAX: usize = 1 << 16;

/// How deep thunk forcing may nest before we report a stack overflow rather than
/// crash (the evaluation thread's stack is sized for this).
const MAX_FORCE_DEPTH: usize = 120_000;

#[cold]
pub fn type_error(v: &Value, expected: &str, pos: Pos) -> Box<EvalError> {
    let shown = crate::show_value::show_value(v);
    EvalError::new(ErrorKind::Type, format!("expected {expected} but found {}: {shown}", v.show_type()), pos)
}

pub fn eval_error(msg: impl Into<String>, pos: Pos) -> Box<EvalError> {
    EvalError::new(ErrorKind::Eval, msg, pos)
}

/// A file that could not be read for parsing (`import`, the command's file).
fn opening_file_error(e: IoError, path: &Path) -> Box<EvalError> {
    EvalError::new(ErrorKind::Io, e.in_context(format_args!("opening file '{}'", path.display())), Pos::NONE)
}

pub fn io_error(e: IoError, pos: Pos) -> Box<EvalError> {
    let kind = match e {
        IoError::Unsupported(_) => ErrorKind::Unsupported,
        IoError::WithStatus { exit_status, .. } => ErrorKind::Status(exit_status),
        _ => ErrorKind::Io,
    };
    EvalError::new(kind, e.to_string(), pos)
}

/// Adds a trace frame to an error on its way up.
pub trait AddTrace<T> {
    fn trace(self, pos: Pos, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T> AddTrace<T> for Result<T> {
    /// Inlined: on the way through (no error) this is a test of the tag; the
    /// frame is built out of line.
    #[inline(always)]
    fn trace(self, pos: Pos, msg: impl FnOnce() -> String) -> Result<T> {
        match self {
            Ok(v) => Ok(v),
            Err(e) => Err(push_frame(e, pos, msg)),
        }
    }
}

#[cold]
#[inline(never)]
fn push_frame(mut e: Box<EvalError>, pos: Pos, msg: impl FnOnce() -> String) -> Box<EvalError> {
    // CppNix keeps every frame (repeats are elided when shown); the bound
    // only keeps a runaway recursion from exhausting memory.
    if e.trace.len() < 100_000 {
        e.trace.push(TraceFrame::new(pos, msg()));
    }
    e
}

/// The value of an integer operand that needs no evaluation: a constant, or a
/// variable whose thunk has been forced already (with `FORCE`, where the
/// operand is being forced anyway, or precomputed, see [`Env::peek_int`]).
#[inline]
fn ready_int<const FORCE: bool>(e: &'static Expr, env: &Rc<Env>) -> Option<i64> {
    match e {
        Expr::Const(Value::Int(n)) => Some(*n),
        Expr::Var(Var { loc: VarLoc::Local { depth, slot }, .. }) => env_at(env, *depth).peek_int::<FORCE>(*slot as usize),
        _ => None,
    }
}

/// `a - 1`, `a + b`, `a < b`, ... on integers that are already values, computed
/// right away instead of allocating a thunk for it (`fib (n - 1)`, the `x + 1` of
/// a list element). Only when the result is certain and the operation cannot
/// fail (overflow and division by zero fall back to a thunk, which reports the
/// error if it is ever forced), so laziness is unobservable: the operands are
/// values and the operation has no effects. `FORCE` where the expression is
/// being evaluated (its operands forced, left to right), not suspended.
#[inline(never)]
fn eager_int_arith<const FORCE: bool>(e: &'static Expr, env: &Rc<Env>) -> Option<Value> {
    match e {
        Expr::BinOp { op, lhs, rhs, .. } => {
            if !matches!(op, BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Lt | BinOp::Eq | BinOp::Neq) {
                return None;
            }
            let (a, b) = (ready_int::<FORCE>(lhs, env)?, ready_int::<FORCE>(rhs, env)?);
            Some(match op {
                BinOp::Sub => Value::Int(a.checked_sub(b)?),
                BinOp::Mul => Value::Int(a.checked_mul(b)?),
                BinOp::Div if b != 0 => Value::Int(a.checked_div(b)?),
                BinOp::Lt => Value::Bool(a < b),
                BinOp::Eq => Value::Bool(a == b),
                BinOp::Neq => Value::Bool(a != b),
                _ => return None,
            })
        }
        Expr::ConcatStrings { force_string: false, parts, .. } if parts.len() == 2 => {
            let (a, b) = (ready_int::<FORCE>(&parts[0].1, env)?, ready_int::<FORCE>(&parts[1].1, env)?);
            Some(Value::Int(a.checked_add(b)?))
        }
        _ => None,
    }
}

/// Appends `part` to a string being built if it is a literal piece (its bytes
/// and context, no value copied and coerced); false for anything else.
#[inline]
fn append_literal(part: &Expr, buf: &mut Vec<u8>, ctx: &mut Context) -> bool {
    let Expr::Const(Value::String(s)) = part else { return false };
    buf.extend_from_slice(s.as_bytes());
    if let Some(c) = s.context() {
        ctx.union_with(c);
    }
    true
}

fn env_at(env: &Rc<Env>, depth: u32) -> &Rc<Env> {
    let mut e = env;
    for _ in 0..depth {
        e = e.parent.as_ref().expect("resolver guarantees the depth exists");
    }
    e
}

impl Eval {
    pub fn new(io: std::rc::Rc<dyn EvalIO>, settings: Settings) -> Eval {
        let s = Syms::new();
        let (base_env, base_scope, derivation) = builtins::make_base_env(&settings, &*io);
        let mut ev = Eval {
            io,
            settings,
            s,
            base_env,
            base_scope,
            import_cache: HashMap::default(),
            store_copies: HashMap::new(),
            call_depth: 0,
            force_depth: 0,
            string_scratch: Vec::new(),
            name_syms: (0..NAME_SYMS).map(|_| (None, Sym(0))).collect(),
        };
        let expr = ev
            .parse_with_scope(
                crate::derivation::DERIVATION_NIX.as_bytes(),
                Origin::File(crate::derivation::DERIVATION_NIX_PATH.into()),
                Path::new("/"),
                None,
            )
            .expect("the built-in definition of `derivation` parses");
        if let Value::Thunk(t) = &derivation {
            t.replace(ThunkState::Pending { expr, env: ev.base_env.clone() });
        }
        // CppNix evaluates it at start-up: `builtins.derivation` prints as a
        // function, not as unevaluated code.
        let _ = ev.force(&derivation, Pos::NONE);
        ev
    }

    // ----- parsing -----

    /// Parses and resolves `src` in the base scope (plus `extra` scopes).
    pub fn parse_with_scope(
        &mut self,
        src: &[u8],
        origin: Origin,
        base_dir: &Path,
        extra: Option<&Scope>,
    ) -> Result<&'static Expr> {
        let file = add_source(origin, std::rc::Rc::from(src));
        let features = crate::parser::Features {
            pipe_operators: self.settings.experimental_features.iter().any(|f| f == "pipe-operators"),
        };
        let mut e = crate::parser::parse_with_features(src, file, base_dir, features)?;
        let mut scopes: Vec<&Scope> = vec![&self.base_scope];
        if let Some(x) = extra {
            scopes.push(x);
        }
        resolve(&mut e, &scopes)?;
        Ok(Box::leak(Box::new(e)))
    }

    /// Parses an expression given as a string (`-E`), relative paths resolved
    /// against `base_dir`.
    pub fn parse_string(&mut self, src: &str, base_dir: &Path) -> Result<&'static Expr> {
        self.parse_with_scope(src.as_bytes(), Origin::String, base_dir, None)
    }

    pub fn parse_stdin(&mut self, src: &[u8], base_dir: &Path) -> Result<&'static Expr> {
        self.parse_with_scope(src, Origin::Stdin, base_dir, None)
    }

    /// Reads and parses a file.
    pub fn parse_file(&mut self, path: &Path) -> Result<&'static Expr> {
        let src = self.io.read_file(path).map_err(|e| opening_file_error(e, path))?;
        self.parse_file_source(path, &src)
    }

    /// Parses `src`, the contents of the file `path`.
    fn parse_file_source(&mut self, path: &Path, src: &[u8]) -> Result<&'static Expr> {
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.parse_with_scope(src, Origin::File(path.to_path_buf()), &base, None)
    }

    /// Parses (from `src` when it has been read already) and evaluates the
    /// file `path` for an `import` at `pos`.
    fn eval_imported(&mut self, path: &Path, src: Option<Vec<u8>>, pos: Pos) -> Result<Value> {
        let parsed = match src {
            Some(src) => self.parse_file_source(path, &src),
            None => self.parse_file(path),
        };
        let e = parsed.map_err(|mut e| {
            if e.pos.is_none() {
                e.pos = pos;
            }
            e
        })?;
        self.eval_expr(e).trace(pos, || format!("while evaluating the file '{}':", path.display()))
    }

    /// Evaluates a resolved top-level expression in the base environment.
    pub fn eval_expr(&mut self, e: &'static Expr) -> Result<Value> {
        let env = self.base_env.clone();
        self.eval(e, &env)
    }

    /// `import path`: evaluates a file (a directory means its `default.nix`), cached.
    pub fn eval_file(&mut self, path: &Path, pos: Pos) -> Result<Value> {
        use std::os::unix::ffi::OsStrExt;
        // Most imports name a regular file: it is looked up in the cache by
        // the name as given and, when new, opened and read in one go. Anything
        // else (a directory, a symlink, an error) takes the general way below.
        let given_key = path.as_os_str().as_bytes();
        if let Some(v) = self.import_cache.get(given_key) {
            return Ok(v.clone());
        }
        let src = self.io.read_source_file(path).map_err(|e| opening_file_error(e, path))?;
        if src.is_some() {
            let v = self.eval_imported(path, src, pos)?;
            self.import_cache.insert(given_key.to_vec(), v.clone());
            return Ok(v);
        }
        let given_key = given_key.to_vec();
        let mut path = path.to_path_buf();
        let file_type = match self.io.file_type(&path) {
            Ok(t) => t,
            Err(e) => {
                // Current CppNix's words for a missing file.
                let msg = match &e {
                    IoError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                        format!("path '{}' does not exist", path.display())
                    }
                    _ => e.in_context(format_args!("getting status of '{}'", path.display())),
                };
                return Err(EvalError::new(ErrorKind::Io, msg, Pos::NONE));
            }
        };
        // Only a symbolic link needs a second look to know whether it leads
        // to a directory (one status call fewer per imported file).
        let is_directory = match file_type {
            FileType::Directory => true,
            FileType::Symlink => self.io.is_directory(&path).map_err(|e| io_error(e, pos))?,
            _ => false,
        };
        if is_directory {
            path.push("default.nix");
        }
        let key = path.as_os_str().as_bytes().to_vec();
        if let Some(v) = self.import_cache.get(&key) {
            return Ok(v.clone());
        }
        let v = self.eval_imported(&path, None, pos)?;
        self.import_cache.insert(key, v.clone());
        // The name as given finds it next time (`import ./dir` again).
        self.import_cache.insert(given_key, v.clone());
        Ok(v)
    }

    // ----- forcing -----

    /// Forces an owned value (no extra reference-count traffic).
    #[inline(always)]
    pub fn force_value(&mut self, v: Value, pos: Pos) -> Result<Value> {
        match v {
            // A forced thunk's value is read here, not behind a call.
            Value::Thunk(t) => match t.value() {
                Some(v) => Ok(v),
                None => self.force_thunk(&t, pos),
            },
            other => Ok(other),
        }
    }

    #[inline]
    pub fn force(&mut self, v: &Value, pos: Pos) -> Result<Value> {
        match v {
            Value::Thunk(t) => match t.value() {
                Some(v) => Ok(v),
                None => self.force_thunk(t, pos),
            },
            other => Ok(other.clone()),
        }
    }

    /// Forces the thunk `t` found in `slot` of `scope`, and puts its value in
    /// the slot in its place.
    #[inline]
    fn force_slot(&mut self, scope: &Rc<Env>, slot: u32, t: Rc<Thunk>, pos: Pos) -> Result<Value> {
        let v = self.force_thunk(&t, pos)?;
        scope.collapse(slot as usize, &t, &v);
        Ok(v)
    }

    /// `eval`, with constants and bound variables (most operands and called
    /// functions) handled in the caller's frame rather than by a recursive call.
    #[inline(always)]
    fn eval_operand(&mut self, e: &'static Expr, env: &Rc<Env>) -> Result<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Var(var @ Var { loc: VarLoc::Local { depth, slot }, .. }) => {
                match env_at(env, *depth).get_forced(*slot as usize) {
                    Some(Value::Thunk(t)) => self.force_slot(env_at(env, *depth), *slot, t, var.pos),
                    Some(v) => Ok(v),
                    None => self.eval(e, env),
                }
            }
            _ => self.eval(e, env),
        }
    }

    fn force_thunk(&mut self, t: &Rc<Thunk>, pos: Pos) -> Result<Value> {
        if let Some(v) = t.value() {
            return Ok(v);
        }
        // The most common lazy application, a lambda's (see below for why it
        // is not black-holed), without the general path's dispatch.
        if let Some((c, arg)) = t.lambda_apply_parts() {
            return self.force_lambda_apply(t, &c, arg, pos);
        }
        if t.is_black_hole() {
            return Err(EvalError::new(ErrorKind::InfiniteRecursion, "infinite recursion encountered", pos));
        }
        if let Some(v) = t.take_precomputed() {
            return Ok(v);
        }
        if let Some(call) = t.apply_parts() {
            // A lazy application made by a builtin (`map`, `mapAttrs`, `genList`)
            // is CppNix's `tApp`, which is never black-holed: forcing it again
            // while it is under evaluation calls the function again, so an
            // infinite recursion through it is reported where it reaches a real
            // thunk (e.g. an option's `value` in the module system), as CppNix
            // reports it.
            return self.force_unblackholed_apply(t, call, pos);
        }
        // The pending state moves out, leaving a black hole, so no reference into
        // the thunk lives while its expression is evaluated.
        let state = t.replace(ThunkState::BlackHole);
        self.force_depth += 1;
        if self.force_depth > MAX_FORCE_DEPTH {
            self.force_depth -= 1;
            t.replace(state);
            return Err(EvalError::new(ErrorKind::StackOverflow, "stack overflow (possible infinite recursion)", pos));
        }
        let result = match &state {
            ThunkState::Pending { expr, env } => self.eval(expr, env),
            ThunkState::Select { from, def } => self.select_attr(from, def.name, def.pos),
            ThunkState::Apply { .. }
            | ThunkState::ApplyToAttr { .. }
            | ThunkState::Precomputed(_)
            | ThunkState::BlackHole
            | ThunkState::Done(_) => {
                unreachable!("handled above")
            }
        };
        self.force_depth -= 1;
        match result {
            Ok(v) => {
                t.finish(v.clone());
                drop(state);
                Ok(v)
            }
            Err(e) => {
                // Put the thunk back so that forcing it again re-raises the error.
                t.replace(state);
                Err(e)
            }
        }
    }

    /// `force_unblackholed_apply` for a lambda applied to `arg`.
    #[inline(never)]
    fn force_lambda_apply(&mut self, t: &Rc<Thunk>, c: &Rc<Closure>, arg: Value, pos: Pos) -> Result<Value> {
        self.force_depth += 1;
        if self.force_depth > MAX_FORCE_DEPTH {
            self.force_depth -= 1;
            return Err(EvalError::new(ErrorKind::StackOverflow, "stack overflow (possible infinite recursion)", pos));
        }
        let result = self.call_lambda(c, arg, pos);
        self.force_depth -= 1;
        let v = result?;
        t.finish_apply(v.clone());
        Ok(v)
    }

    #[inline(never)]
    fn force_unblackholed_apply(&mut self, t: &Rc<Thunk>, call: LazyCall, pos: Pos) -> Result<Value> {
        self.force_depth += 1;
        if self.force_depth > MAX_FORCE_DEPTH {
            self.force_depth -= 1;
            return Err(EvalError::new(ErrorKind::StackOverflow, "stack overflow (possible infinite recursion)", pos));
        }
        let LazyCall { func, name, arg } = call;
        let result = match (self.force_value(func, pos), name) {
            // `mapAttrs`' attribute: `func name value`, with the environments of
            // a curried `name: value: …` chained directly (no closure for
            // `func name`).
            (Ok(f), Some(name)) => self.call2(&f, builtins::sym_string(name), arg, pos),
            (Ok(f), None) => self.call(&f, arg, pos),
            (Err(e), _) => Err(e),
        };
        self.force_depth -= 1;
        let v = result?;
        // A re-entrant forcing may have finished the thunk already; the value is
        // the same (same function, same argument), so the old state just drops.
        drop(t.replace(ThunkState::Done(v.clone())));
        Ok(v)
    }

    fn select_attr(&mut self, from: &Value, name: Sym, pos: Pos) -> Result<Value> {
        let attrs = self.force_attrs(from, pos)?;
        match attrs.get(name) {
            Some(v) => self.force(v, pos),
            None => Err(eval_error(format!("attribute '{name}' missing"), pos)),
        }
    }

    /// Forces `v` and everything inside it (`deepSeq`, `--strict`).
    pub fn force_deep(&mut self, v: &Value, pos: Pos) -> Result<Value> {
        let mut seen = std::collections::HashSet::new();
        let v = self.force(v, pos)?;
        self.force_deep_inner(v, pos, &mut seen)
    }

    fn force_deep_inner(&mut self, v: Value, pos: Pos, seen: &mut std::collections::HashSet<usize>) -> Result<Value> {
        match &v {
            Value::Attrs(a) => {
                if !seen.insert(Rc::as_ptr(a) as usize) {
                    return Ok(v);
                }
                for attr in a.iter() {
                    self.force_attr_slot(a, attr)
                        .and_then(|item| self.force_deep_inner(item, attr.pos, seen))
                        .trace(attr.pos, || format!("while evaluating the attribute '{}'", attr.name))?;
                }
            }
            Value::List(l) => {
                if !seen.insert(Rc::as_ptr(l) as usize) {
                    return Ok(v);
                }
                for index in 0..l.len() {
                    self.force_list_slot(l, index, pos)
                        .and_then(|item| self.force_deep_inner(item, pos, seen))
                        .trace(Pos::NONE, || format!("while evaluating list element at index {index}"))?;
                }
            }
            _ => {}
        }
        Ok(v)
    }

    /// Forces the value of `attr`, an entry of `attrs`, and when the entry
    /// held a thunk, puts the value in its place ([`Attrs::collapse`]): for
    /// walkers over a whole value (`deepSeq`, `toJSON`), after which the
    /// thunks would only hold memory. The thunk is copied out of the slot
    /// before it is forced, as the collapse requires.
    /// `attr` is a raw pointer: see [`Attrs::collapse`].
    pub fn force_attr_slot(&mut self, attrs: &Attrs, attr: *const Attr) -> Result<Value> {
        // SAFETY: `attr` is an entry of `attrs`, which the caller keeps alive;
        // the reference ends before anything is evaluated.
        let (thunk, pos) = match unsafe { &*attr } {
            Attr { value: Value::Thunk(t), pos, .. } => (t.clone(), *pos),
            Attr { value, .. } => return Ok(value.clone()),
        };
        let v = self.force_thunk(&thunk, pos)?;
        attrs.collapse(attr, &thunk, &v);
        Ok(v)
    }

    /// [`Eval::force_attr_slot`] for item `index` of a list (see
    /// [`crate::value::collapse_item`]).
    pub fn force_list_slot(&mut self, items: &List, index: usize, pos: Pos) -> Result<Value> {
        match &items[index] {
            Value::Thunk(t) => {
                let t = t.clone();
                let v = self.force_thunk(&t, pos)?;
                crate::value::collapse_item(items, index, &t, &v);
                Ok(v)
            }
            v => Ok(v.clone()),
        }
    }

    /// A value for `e` in `env` without evaluating it: constants and already
    /// bound variables directly, everything else as a thunk (what a set's
    /// attribute or a list's element holds, where CppNix's printing shows an
    /// unevaluated expression as `<CODE>` or «thunk»).
    ///
    /// Integer arithmetic on operands that are values already (the `x + 1` of
    /// `[ x (x + 1) ]`) is computed right away into a
    /// [`ThunkState::Precomputed`] thunk: it still reads as unevaluated, but
    /// keeps no environment alive and costs no evaluation when forced.
    #[inline(always)]
    pub fn maybe_thunk(&self, e: &'static Expr, env: &Rc<Env>) -> Value {
        match e {
            Expr::Const(v) => v.clone(),
            Expr::Var(Var { loc: VarLoc::Local { depth, slot }, .. }) => {
                match env_at(env, *depth).get_captured(*slot as usize) {
                    Some(v) => v,
                    None => Value::thunk(ThunkState::Pending { expr: e, env: env.clone() }),
                }
            }
            Expr::BinOp { .. } | Expr::ConcatStrings { force_string: false, .. } => match eager_int_arith::<false>(e, env) {
                Some(v) => Value::thunk(ThunkState::Precomputed(v)),
                None => Value::thunk(ThunkState::Pending { expr: e, env: env.clone() }),
            },
            _ => Value::thunk(ThunkState::Pending { expr: e, env: env.clone() }),
        }
    }

    /// `maybe_thunk` for a lambda's argument: integer arithmetic on operands
    /// that are values already (`fib (n - 1)`) is computed right away rather
    /// than suspended, which saves a thunk per call of a recursive function.
    /// Such a value comes back with `true`, for the lambda's environment to
    /// mark it as computed ahead of demand (see [`Env`]): CppNix's argument
    /// would be an unforced thunk, which `[ x ]` would print as `<CODE>`.
    /// Built-ins and other functions get `maybe_thunk`'s `Precomputed` thunk.
    #[inline(always)]
    fn maybe_thunk_arg(&self, e: &'static Expr, env: &Rc<Env>) -> (Value, bool) {
        match e {
            Expr::BinOp { .. } | Expr::ConcatStrings { force_string: false, .. } => match eager_int_arith::<false>(e, env) {
                Some(v) => (v, true),
                None => (Value::thunk(ThunkState::Pending { expr: e, env: env.clone() }), false),
            },
            _ => (self.maybe_thunk(e, env), false),
        }
    }

    // ----- typed forcing -----

    pub fn force_int(&mut self, v: &Value, pos: Pos) -> Result<i64> {
        match self.force(v, pos)? {
            Value::Int(n) => Ok(n),
            other => Err(type_error(&other, "an integer", pos)),
        }
    }
    pub fn force_float(&mut self, v: &Value, pos: Pos) -> Result<f64> {
        match self.force(v, pos)? {
            Value::Int(n) => Ok(n as f64),
            Value::Float(f) => Ok(f),
            other => Err(type_error(&other, "a float", pos)),
        }
    }
    pub fn force_bool(&mut self, v: &Value, pos: Pos) -> Result<bool> {
        match self.force(v, pos)? {
            Value::Bool(b) => Ok(b),
            other => Err(type_error(&other, "a Boolean", pos)),
        }
    }
    pub fn force_attrs(&mut self, v: &Value, pos: Pos) -> Result<Rc<Attrs>> {
        match self.force(v, pos)? {
            Value::Attrs(a) => Ok(a),
            other => Err(type_error(&other, "a set", pos)),
        }
    }
    pub fn force_list(&mut self, v: &Value, pos: Pos) -> Result<Rc<List>> {
        match self.force(v, pos)? {
            Value::List(l) => Ok(l),
            other => Err(type_error(&other, "a list", pos)),
        }
    }
    pub fn force_function(&mut self, v: &Value, pos: Pos) -> Result<Value> {
        let f = self.force(v, pos)?;
        match &f {
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(f),
            Value::Attrs(a) if a.get(self.s.functor).is_some() => Ok(f),
            other => Err(type_error(other, "a function", pos)),
        }
    }
    /// A string value as is (no coercion), with its context.
    pub fn force_string(&mut self, v: &Value, pos: Pos) -> Result<NixString> {
        match self.force(v, pos)? {
            Value::String(s) => Ok(s),
            other => Err(type_error(&other, "a string", pos)),
        }
    }
    /// A string that must not have a context.
    pub fn force_string_no_ctx(&mut self, v: &Value, pos: Pos) -> Result<NixString> {
        let s = self.force_string(v, pos)?;
        if let Some(ctx) = s.context() {
            let first = ctx.iter().next().map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default();
            return Err(eval_error(
                format!("the string '{}' is not allowed to refer to a store path (such as '{}')", s.to_str_lossy(), first),
                pos,
            ));
        }
        Ok(s)
    }

    pub fn is_derivation(&mut self, attrs: &Attrs) -> Result<bool> {
        match attrs.get(self.s.type_) {
            Some(t) => match self.force(t, Pos::NONE)? {
                Value::String(s) => Ok(s.as_bytes() == b"derivation"),
                _ => Ok(false),
            },
            None => Ok(false),
        }
    }

    // ----- the evaluator proper -----

    /// Evaluates `e` in `env` to weak head normal form.
    ///
    /// The hot, small cases are handled here and every large one in an
    /// out-of-line function, so this recursive function keeps a small stack
    /// frame; `if` and `assert` continue in a loop rather than recursing.
    pub fn eval(&mut self, mut e: &'static Expr, env: &Rc<Env>) -> Result<Value> {
        loop {
            return match e {
                Expr::Const(v) => Ok(v.clone()),
                Expr::Var(var @ Var { loc: VarLoc::Local { depth, slot }, .. }) => {
                    match env_at(env, *depth).get_forced(*slot as usize) {
                        Some(Value::Thunk(t)) => self.force_slot(env_at(env, *depth), *slot, t, var.pos),
                        Some(v) => Ok(v),
                        // Only reachable while a recursive scope is being built.
                        None => Err(EvalError::new(ErrorKind::InfiniteRecursion, "infinite recursion encountered", var.pos)),
                    }
                }
                Expr::Var(var) => {
                    let v = self.lookup_var(var, env)?;
                    self.force_value(v, var.pos)
                }
                Expr::Call { func, args, pos } => self.eval_call(func, args, *pos, env),
                Expr::If { cond, then, else_, pos } => match self.eval_condition(cond, env) {
                    Ok(Value::Bool(true)) => {
                        e = then;
                        continue;
                    }
                    Ok(Value::Bool(false)) => {
                        e = else_;
                        continue;
                    }
                    Ok(other) => Err(type_error(&other, "a Boolean", *pos)).trace(*pos, branch_condition),
                    Err(error) => Err(error).trace(*pos, branch_condition),
                },
                // An operation on an operation (`x / 2 * 2 == x`) is never
                // ready: straight to the general path.
                Expr::BinOp { op, lhs, rhs, pos } if matches!(**lhs, Expr::BinOp { .. }) => {
                    self.eval_binop(*op, lhs, rhs, *pos, env)
                }
                Expr::BinOp { op, lhs, rhs, pos } => match eager_int_arith::<true>(e, env) {
                    Some(v) => Ok(v),
                    None => self.eval_binop(*op, lhs, rhs, *pos, env),
                },
                Expr::Select { expr, path, default, pos, hint } => {
                    self.eval_select(expr, path, default.as_deref(), *pos, hint, env)
                }
                Expr::HasAttr { expr, path, .. } => self.eval_has_attr(expr, path, env),
                Expr::Attrs(a) => self.eval_attrs(a, env),
                Expr::List(items) => Ok(self.eval_list(items, env)),
                Expr::Lambda(l) => Ok(Value::Lambda(Rc::new(Closure { lambda: l, env: env.clone() }))),
                Expr::Let { attrs, body } => self.eval_let(attrs, body, env),
                Expr::With { attrs, body, .. } => self.eval_with(attrs, body, env),
                Expr::Assert { cond, body, pos } => match self.eval(cond, env) {
                    Ok(Value::Bool(true)) => {
                        e = body;
                        continue;
                    }
                    Ok(Value::Bool(false)) => Err(self.assertion_failed(cond, *pos, env)),
                    Ok(other) => Err(type_error(&other, "a Boolean", *pos)).trace(*pos, assert_condition),
                    Err(error) => Err(error).trace(*pos, assert_condition),
                },
                Expr::Not { expr, .. } => match self.eval(expr, env) {
                    Ok(Value::Bool(b)) => Ok(Value::Bool(!b)),
                    // CppNix reports this one without a position.
                    Ok(other) => Err(type_error(&other, "a Boolean", Pos::NONE)).trace(expr.pos(), not_argument),
                    Err(error) => Err(error).trace(expr.pos(), not_argument),
                },
                Expr::Neg { expr, pos } => {
                    let v = self.eval(expr, env)?;
                    // `-x` is `builtins.sub 0 x` in CppNix.
                    self.arith(BinOp::Sub, Value::Int(0), v, Pos::NONE)
                        .trace(*pos, || "while calling the 'sub' builtin".to_string())
                }
                Expr::ConcatStrings { force_string: false, parts, pos } if parts.len() == 2 => {
                    self.eval_plus(parts, *pos, env)
                }
                Expr::ConcatStrings { force_string, parts, pos } => {
                    self.eval_concat(*force_string, parts, None, *pos, env)
                }
                Expr::CurPos(pos) => Ok(self.pos_to_value(*pos)),
            };
        }
    }

    /// The condition of an `if`: a comparison of integers that are already
    /// values (`n < 2`) is decided without a recursive `eval`.
    #[inline(always)]
    fn eval_condition(&mut self, cond: &'static Expr, env: &Rc<Env>) -> Result<Value> {
        if let Expr::BinOp { .. } = cond {
            if let Some(v) = eager_int_arith::<true>(cond, env) {
                return Ok(v);
            }
        }
        self.eval(cond, env)
    }

    #[inline(never)]
    fn eval_list(&mut self, items: &'static [Expr], env: &Rc<Env>) -> Value {
        Value::List(List::from_fn(items.len(), |i| self.maybe_thunk(&items[i], env)))
    }

    #[inline(never)]
    fn eval_let(&mut self, attrs: &'static AttrsExpr, body: &'static Expr, env: &Rc<Env>) -> Result<Value> {
        let new_env = self.rec_env(attrs, env, None);
        self.eval(body, &new_env)
    }

    #[inline(never)]
    fn eval_with(&mut self, attrs: &'static Expr, body: &'static Expr, env: &Rc<Env>) -> Result<Value> {
        let value = self.maybe_thunk(attrs, env);
        let new_env = Env::with_one(env.clone(), value);
        self.eval(body, &new_env)
    }

    /// `f a b c`: applies `func` to the arguments, several at once where it can.
    #[inline(never)]
    fn eval_call(&mut self, func: &'static Expr, args: &'static [Expr], pos: Pos, env: &Rc<Env>) -> Result<Value> {
        let mut f = self.eval_operand(func, env)?;
        let mut i = 0;
        while i < args.len() {
            match &f {
                Value::Lambda(c) => {
                    let k = curry_depth(c.lambda, args.len() - i);
                    if k > 1 {
                        f = self.call_lambda_exprs(c, &args[i..i + k], pos, env)?;
                        i += k;
                        continue;
                    }
                    let (arg, precomputed) = self.maybe_thunk_arg(&args[i], env);
                    f = self.call_lambda_arg(c, arg, precomputed, pos)?;
                }
                // A built-in given all its remaining arguments at once is called directly.
                Value::PrimOp(op) if op.arity > 1 && args.len() - i >= op.arity => {
                    let op = *op;
                    f = self.call_primop_exprs(op, &args[i..i + op.arity], pos, env)?;
                    i += op.arity;
                    continue;
                }
                _ => {
                    let arg = self.maybe_thunk(&args[i], env);
                    f = self.call(&f, arg, pos)?;
                }
            }
            i += 1;
        }
        Ok(f)
    }

    /// A built-in applied to argument expressions, with the arguments on the stack.
    /// Two or three arguments (nearly every built-in of more than one) go in
    /// a fixed array: no length to keep, and no loop to drop them.
    fn call_primop_exprs(&mut self, op: &'static builtins::PrimOp, args: &'static [Expr], pos: Pos, env: &Rc<Env>) -> Result<Value> {
        match args {
            [a, b] => {
                let argv = [self.maybe_thunk(a, env), self.maybe_thunk(b, env)];
                self.call_primop(op, &argv, pos)
            }
            [a, b, c] => {
                let argv = [self.maybe_thunk(a, env), self.maybe_thunk(b, env), self.maybe_thunk(c, env)];
                self.call_primop(op, &argv, pos)
            }
            _ => {
                let argv: smallvec::SmallVec<[Value; 4]> = args.iter().map(|a| self.maybe_thunk(a, env)).collect();
                self.call_primop(op, &argv, pos)
            }
        }
    }

    #[inline(never)]
    pub fn pos_to_value(&self, pos: Pos) -> Value {
        match pos.resolve() {
            None => Value::Null,
            Some(loc) => {
                let mut a = AttrsBuilder::with_capacity(3);
                let file = match &loc.origin {
                    Origin::File(p) => {
                        use std::os::unix::ffi::OsStrExt;
                        p.as_os_str().as_bytes().to_vec()
                    }
                    other => other.to_string().into_bytes(),
                };
                a.insert(self.s.file, Value::string(file), Pos::NONE);
                a.insert(self.s.line, Value::Int(loc.line as i64), Pos::NONE);
                a.insert(self.s.column, Value::Int(loc.column as i64), Pos::NONE);
                Value::attrs(a)
            }
        }
    }

    #[inline]
    fn lookup_var(&mut self, var: &'static Var, env: &Rc<Env>) -> Result<Value> {
        match var.loc {
            VarLoc::Local { depth, slot } => match env_at(env, depth).get_forced(slot as usize) {
                Some(v) => Ok(v),
                // Only reachable while a recursive scope is being built.
                None => Err(EvalError::new(ErrorKind::InfiniteRecursion, "infinite recursion encountered", var.pos)),
            },
            _ => self.lookup_with_var(var, env),
        }
    }

    #[inline(never)]
    fn lookup_with_var(&mut self, var: &'static Var, env: &Rc<Env>) -> Result<Value> {
        match var.loc {
            VarLoc::With { depths, cache } => {
                // The depths ascend (innermost first): one walk up the chain.
                let innermost = env_at(env, depths.first().map_or(0, |d| d.0));
                if let Some(v) = cache.get(innermost) {
                    return Ok(v);
                }
                let (mut scope, mut at) = (env, 0);
                for &(depth, with_pos) in depths {
                    scope = env_at(scope, depth - at);
                    at = depth;
                    // A set forced by an earlier lookup is searched in place.
                    match scope.lookup_in_forced_set(0, var.name) {
                        Some(Some(v)) => {
                            cache.set(innermost, &v);
                            return Ok(v);
                        }
                        Some(None) => continue,
                        None => {}
                    }
                    let scope_value = scope.get(0).expect("a `with` environment holds its set");
                    // As CppNix's forceAttrs(…, the `with`'s position, errorCtx):
                    // a set that is not one is reported under a frame at `with`.
                    let attrs = match self.force(&scope_value, with_pos)? {
                        Value::Attrs(a) => a,
                        other => {
                            let mut err = type_error(&other, "a set", Pos::NONE);
                            err.trace.push(TraceFrame::new(
                                with_pos,
                                "while evaluating the first subexpression of a with expression",
                            ));
                            return Err(err);
                        }
                    };
                    if let Some(v) = attrs.get(var.name) {
                        cache.set(innermost, v);
                        return Ok(v.clone());
                    }
                }
                Err(eval_error(format!("undefined variable '{}'", var.name), var.pos))
            }
            VarLoc::Local { .. } => unreachable!("handled by lookup_var"),
            VarLoc::Unresolved => Err(eval_error(format!("undefined variable '{}'", var.name), var.pos)),
        }
    }

    /// An attribute name's symbol: a static name's right here (most names in
    /// selections and `?`), an interpolated one's out of line.
    #[inline(always)]
    fn attr_name_sym(&mut self, name: &'static AttrName, env: &Rc<Env>) -> Result<Sym> {
        match name {
            AttrName::Static(s) => Ok(*s),
            AttrName::Dynamic(_) => self.dynamic_attr_name_sym(name, env),
        }
    }

    #[inline(never)]
    fn dynamic_attr_name_sym(&mut self, name: &'static AttrName, env: &Rc<Env>) -> Result<Sym> {
        match name {
            AttrName::Static(s) => Ok(*s),
            AttrName::Dynamic(e @ Expr::ConcatStrings { force_string: true, parts, .. }) => {
                match self.interpolated_name_sym(parts, env)? {
                    Ok(sym) => Ok(sym),
                    // Refused, naming the context, as for any other name.
                    Err(v) => {
                        let s = self.force_string_no_ctx(&v, e.pos()).trace(e.pos(), || "while evaluating an attribute name".into())?;
                        Ok(Sym::new(s.as_bytes()))
                    }
                }
            }
            AttrName::Dynamic(e) => {
                let v = self.eval(e, env)?;
                let s = self.force_string_no_ctx(&v, e.pos()).trace(e.pos(), || "while evaluating an attribute name".into())?;
                Ok(self.name_sym(&s))
            }
        }
    }

    /// The symbol of a string (without a context) used as an attribute name.
    /// The names a program looks up by value are mostly the same few string
    /// values over and over (`bothHave = k: opt.options ? ${k}` called with
    /// constants, the strings `attrNames` shares per symbol, the constant
    /// names given to `removeAttrs`, `catAttrs`, `getAttr`, `hasAttr`): a small table
    /// by the string's address remembers their symbols, so those skip
    /// hashing and probing the symbol table. An entry holds its string, so
    /// the address cannot be reused by another while it is there.
    #[inline]
    pub(crate) fn name_sym(&mut self, s: &NixString) -> Sym {
        let addr = NixString::as_ptr(s) as usize;
        let slot = &mut self.name_syms[(addr >> 4 ^ addr >> 12) & (NAME_SYMS - 1)];
        if let (Some(known), sym) = slot {
            if NixString::ptr_eq(known, s) {
                return *sym;
            }
        }
        let sym = Sym::new(s.as_bytes());
        *slot = (Some(s.clone()), sym);
        sym
    }

    /// A part `${toString x}` of an interpolation, `toString` being the
    /// built-in: `x`'s string appended straight to `buf` (what the built-in
    /// would return, then be appended), with no string value in between.
    /// False, with nothing evaluated but a variable, for any other part.
    #[inline]
    fn append_to_string_call(&mut self, part: &'static Expr, env: &Rc<Env>, buf: &mut Vec<u8>, ctx: &mut Context) -> Result<bool> {
        let Expr::Call { func, args, pos } = part else { return Ok(false) };
        let ([arg], Expr::Var(_)) = (&args[..], &**func) else { return Ok(false) };
        // A variable: looking it up again on the general path costs no effect.
        let Value::PrimOp(op) = self.eval_operand(func, env)? else { return Ok(false) };
        if op.name != "toString" {
            return Ok(false);
        }
        // The argument as the call would pass it (a thunk unless it is a
        // constant or a variable), forced by the built-in's code, whose
        // failures get the call's frame.
        let arg = match arg {
            // Forced by the built-in right away: a variable's value computed
            // ahead of demand is demanded (see `Env`), not made a thunk first.
            Expr::Var(Var { loc: VarLoc::Local { depth, slot }, .. }) => match env_at(env, *depth).get_forced(*slot as usize) {
                Some(v) => v,
                None => self.maybe_thunk(arg, env),
            },
            _ => self.maybe_thunk_arg(arg, env).0,
        };
        builtins::to_string_into(self, &arg, buf, ctx).map_err(|e| primop_call_failed(op, e, *pos))?;
        Ok(true)
    }

    /// An interpolated attribute name (`set."attr${toString i}"`,
    /// `{ "k${n}" = v; }`), built in a scratch buffer and interned from there:
    /// no string value is made (as `eval_concat` would, then dropped at once).
    /// A name with a context comes back as the string, for the caller to
    /// refuse in its own words.
    fn interpolated_name_sym(
        &mut self,
        parts: &'static [(Pos, Expr)],
        env: &Rc<Env>,
    ) -> Result<std::result::Result<Sym, Value>> {
        let mut first = None;
        if let [(_, part)] = parts {
            // `${name}` on its own (as `"${name}"`), a string: its symbol
            // without a copy.
            let v = self.eval_operand(part, env)?;
            if let Value::String(s) = &v {
                if s.context().is_none() {
                    return Ok(Ok(self.name_sym(s)));
                }
            }
            first = Some(v);
        }
        let mut buf = self.take_scratch();
        let mut ctx = Context::new();
        for (part_pos, part) in parts {
            let v = match first.take() {
                Some(v) => v,
                // A literal piece: its bytes (as in `eval_concat_values`).
                None if append_literal(part, &mut buf, &mut ctx) => continue,
                None if self.append_to_string_call(part, env, &mut buf, &mut ctx)? => continue,
                None => self.eval_operand(part, env)?,
            };
            let opts = Coerce { more: false, copy_to_store: true };
            if let Err(mut error) = self.coerce_to_string_into(&v, *part_pos, opts, &mut buf, &mut ctx) {
                if error.kind == ErrorKind::Type && error.trace.is_empty() {
                    error.trace.push(TraceFrame::new(*part_pos, "while evaluating a path segment"));
                }
                return Err(error);
            }
        }
        if !ctx.is_empty() {
            return Ok(Err(Value::string_ctx(&buf[..], ctx)));
        }
        let sym = Sym::new(&buf);
        self.give_scratch(buf);
        Ok(Ok(sym))
    }

    #[inline(never)]
    fn eval_select(
        &mut self,
        expr: &'static Expr,
        path: &'static [AttrName],
        default: Option<&'static Expr>,
        pos: Pos,
        hint: &'static SelectHint,
        env: &Rc<Env>,
    ) -> Result<Value> {
        let mut v = self.eval_operand(expr, env)?;
        // Once an attribute has been found, errors get a frame naming the path,
        // as CppNix's ExprSelect does (`select_failed`).
        let mut found_pos: Option<Pos> = None;
        let last = path.len().saturating_sub(1);
        for (i, name) in path.iter().enumerate() {
            let sym = match self.attr_name_sym(name, env) {
                Ok(sym) => sym,
                Err(e) => return Err(select_failed(e, found_pos, path)),
            };
            let next = match &v {
                Value::Attrs(a) => match if i == 0 { a.find_hinted(sym, hint) } else { a.find(sym) } {
                    Some(attr) => {
                        let apos = attr.pos;
                        found_pos = Some(apos);
                        // CppNix forces the selected value at the position of
                        // the attribute's definition (the intermediate sets of
                        // `a.b.c` at the selection's): that is where "infinite
                        // recursion encountered" points for `s = { a = s.a; }`.
                        let force_pos = if i == last && apos != Pos::NONE { apos } else { pos };
                        // Forced in place: `v` holds the set (and so the
                        // attribute) until the step ends.
                        match self.force(&attr.value, force_pos) {
                            Ok(next) => next,
                            Err(e) => return Err(select_failed(e, found_pos, path)),
                        }
                    }
                    None => match default {
                        Some(d) => return self.eval(d, env),
                        None => return Err(select_failed(missing_attr(sym, a, pos), found_pos, path)),
                    },
                },
                other => match default {
                    Some(d) => return self.eval(d, env),
                    None => {
                        let e = push_frame(type_error(other, "a set", Pos::NONE), pos, || "while selecting an attribute".into());
                        return Err(select_failed(e, found_pos, path));
                    }
                },
            };
            v = next;
        }
        Ok(v)
    }

    #[inline(never)]
    fn eval_has_attr(&mut self, expr: &'static Expr, path: &'static [AttrName], env: &Rc<Env>) -> Result<Value> {
        let mut v = self.eval_operand(expr, env)?;
        for (i, name) in path.iter().enumerate() {
            let sym = self.attr_name_sym(name, env)?;
            match &v {
                Value::Attrs(a) => match a.get(sym) {
                    Some(x) => {
                        if i + 1 == path.len() {
                            return Ok(Value::Bool(true));
                        }
                        // Forced in place: `v` holds the set until the step ends.
                        let next = self.force(x, Pos::NONE)?;
                        v = next;
                    }
                    None => return Ok(Value::Bool(false)),
                },
                _ => return Ok(Value::Bool(false)),
            }
        }
        Ok(Value::Bool(true))
    }

    #[inline(never)]
    fn eval_attrs(&mut self, a: &'static AttrsExpr, env: &Rc<Env>) -> Result<Value> {
        if !a.rec && a.dynamic.is_empty() && a.inherit_from.is_empty() {
            // Most sets: their names known, the values written straight into
            // the set's block (the definitions are sorted by symbol).
            return Ok(Value::Attrs(Attrs::from_exact(a.attrs.len(), |out| {
                for def in &a.attrs {
                    out.push(Attr { name: def.name, value: self.maybe_thunk(&def.value, env), pos: def.pos });
                }
            })));
        }
        let mut attrs = AttrsBuilder::with_capacity(a.attrs.len() + a.dynamic.len());
        let scope_env;
        if a.rec {
            scope_env = self.rec_env(a, env, Some(&mut attrs));
            self.apply_overrides(a, &scope_env, &mut attrs)?;
        } else {
            let froms: Vec<Value> = a.inherit_from.iter().map(|f| self.maybe_thunk(f, env)).collect();
            for def in &a.attrs {
                let value = match def.kind {
                    AttrKind::Plain | AttrKind::Inherited => self.maybe_thunk(&def.value, env),
                    AttrKind::InheritFrom(k) => {
                        Value::thunk(ThunkState::Select { from: froms[k as usize].clone(), def })
                    }
                };
                attrs.push(Attr { name: def.name, value, pos: def.pos });
            }
            scope_env = env.clone();
        }
        for d in &a.dynamic {
            let name_value = match &d.name {
                Expr::ConcatStrings { force_string: true, parts, .. } => match self.interpolated_name_sym(parts, &scope_env)? {
                    Ok(sym) => {
                        self.insert_dynamic_attr(&mut attrs, sym, d, &scope_env)?;
                        continue;
                    }
                    Err(with_context) => with_context,
                },
                name => self.eval(name, &scope_env)?,
            };
            let name = match &name_value {
                Value::Null => continue,
                Value::String(_) => self
                    .force_string_no_ctx(&name_value, d.pos)
                    .trace(d.pos, || "while evaluating the name of a dynamic attribute".into())?,
                other => {
                    return Err(type_error(other, "a string", d.pos))
                        .trace(d.pos, || "while evaluating the name of a dynamic attribute".into());
                }
            };
            let sym = self.name_sym(&name);
            self.insert_dynamic_attr(&mut attrs, sym, d, &scope_env)?;
        }
        Ok(Value::attrs(attrs))
    }

    fn insert_dynamic_attr(&mut self, attrs: &mut AttrsBuilder, sym: Sym, d: &'static DynamicAttr, scope_env: &Rc<Env>) -> Result<()> {
        if let Some(prev) = attrs.find(sym) {
            let at = prev.pos.resolve().map(|l| l.to_string()).unwrap_or_default();
            return Err(eval_error(format!("dynamic attribute '{sym}' already defined at {at}"), d.pos));
        }
        let value = self.maybe_thunk(&d.value, scope_env);
        attrs.insert(sym, value, d.pos);
        Ok(())
    }

    /// `rec { __overrides = { ... }; ... }`: the overriding values replace the
    /// set's own in the result and in the recursive scope (so other attributes
    /// see them), as CppNix does.
    fn apply_overrides(&mut self, a: &'static AttrsExpr, scope_env: &Rc<Env>, attrs: &mut AttrsBuilder) -> Result<()> {
        let overrides_sym = Sym::from_str("__overrides");
        let Some(overrides) = attrs.get(overrides_sym).cloned() else { return Ok(()) };
        let overrides = self.force_attrs(&overrides, Pos::NONE)?;
        for o in overrides.iter() {
            if let Some(slot) = a.attrs.iter().position(|d| d.name == o.name) {
                scope_env.set(slot, o.value.clone());
            }
            attrs.insert(o.name, o.value.clone(), o.pos);
        }
        Ok(())
    }

    /// Builds the environment of a `rec` set or `let`; also fills `out` with the
    /// set's static attributes (the definitions are sorted by symbol already).
    fn rec_env(&mut self, a: &'static AttrsExpr, env: &Rc<Env>, mut out: Option<&mut AttrsBuilder>) -> Rc<Env> {
        let new_env = Env::new(Some(env.clone()), a.attrs.len());
        let froms: Vec<Value> = a.inherit_from.iter().map(|f| self.maybe_thunk(f, &new_env)).collect();
        // With `__overrides`, CppNix gives every plain attribute a thunk of its
        // own (no aliasing of another slot's value), so that an attribute
        // referring to an overridden one sees the override.
        let has_overrides = out.is_some() && a.attrs.iter().any(|d| d.name == self.s.overrides);
        for def in &a.attrs {
            let value = match def.kind {
                AttrKind::Plain if has_overrides => {
                    Value::thunk(ThunkState::Pending { expr: &def.value, env: new_env.clone() })
                }
                AttrKind::Plain => self.maybe_thunk(&def.value, &new_env),
                AttrKind::Inherited => self.maybe_thunk(&def.value, env),
                AttrKind::InheritFrom(k) => {
                    Value::thunk(ThunkState::Select { from: froms[k as usize].clone(), def })
                }
            };
            if let Some(o) = out.as_deref_mut() {
                o.push(Attr { name: def.name, value: value.clone(), pos: def.pos });
            }
            new_env.push(value);
        }
        new_env
    }

    #[inline(never)]
    fn eval_binop(&mut self, op: BinOp, lhs: &'static Expr, rhs: &'static Expr, pos: Pos, env: &Rc<Env>) -> Result<Value> {
        match op {
            BinOp::And => {
                if !self.eval_bool(lhs, pos, env).trace(pos, || "in the left operand of the AND (&&) operator".into())? {
                    return Ok(Value::Bool(false));
                }
                Ok(Value::Bool(self.eval_bool(rhs, pos, env).trace(pos, || "in the right operand of the AND (&&) operator".into())?))
            }
            BinOp::Or => {
                if self.eval_bool(lhs, pos, env).trace(pos, || "in the left operand of the OR (||) operator".into())? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, pos, env).trace(pos, || "in the right operand of the OR (||) operator".into())?))
            }
            BinOp::Impl => {
                if !self.eval_bool(lhs, pos, env).trace(pos, || "in the left operand of the IMPL (->) operator".into())? {
                    return Ok(Value::Bool(true));
                }
                Ok(Value::Bool(self.eval_bool(rhs, pos, env).trace(pos, || "in the right operand of the IMPL (->) operator".into())?))
            }
            BinOp::Eq | BinOp::Neq => {
                let l = self.eval_operand(lhs, env)?;
                let r = self.eval_operand(rhs, env)?;
                // Both are values (never thunks) here: the common comparisons
                // (`x == null`, with a string, of integers) need no call.
                let eq = match (&l, &r) {
                    (&Value::Int(a), &Value::Int(b)) => {
                        // Integers own nothing: no (out-of-line) drop to call.
                        std::mem::forget((l, r));
                        return Ok(Value::Bool((a == b) == (op == BinOp::Eq)));
                    }
                    (Value::Null, other) | (other, Value::Null) => matches!(other, Value::Null),
                    (Value::String(a), Value::String(b)) => a.as_bytes() == b.as_bytes(),
                    (Value::Bool(a), Value::Bool(b)) => a == b,
                    _ => self.equal(&l, &r, pos)?,
                };
                Ok(Value::Bool(eq == (op == BinOp::Eq)))
            }
            BinOp::Lt => {
                // CppNix parses `a < b` as a call of builtins.lessThan, so any
                // error in it or its operands gets that call's frame.
                let result = (|| {
                    let l = self.eval_operand(lhs, env)?;
                    let r = self.eval_operand(rhs, env)?;
                    if let (Value::Int(a), Value::Int(b)) = (&l, &r) {
                        return Ok(Value::Bool(a < b));
                    }
                    Ok(Value::Bool(self.less_than(&l, &r, Pos::NONE)?))
                })();
                match result {
                    Ok(v) => Ok(v),
                    Err(e) => Err(e).trace(pos, || "while calling the 'lessThan' builtin".into()),
                }
            }
            BinOp::Update => {
                // The right operand first, as current CppNix evaluates it.
                let ra = self.update_operand(rhs, env, "in the right operand of the update (//) operator")?;
                let la = self.update_operand(lhs, env, "in the left operand of the update (//) operator")?;
                Ok(Value::Attrs(update_attrs(&la, &ra)))
            }
            BinOp::Concat => {
                let l = self.eval_operand(lhs, env)?;
                let r = self.eval_operand(rhs, env)?;
                let ll = self.concat_operand(&l, pos)?;
                let rl = self.concat_operand(&r, pos)?;
                // Always a new list, even with an empty side (CppNix prints the
                // result as a distinct value, never «repeated»).
                let n = ll.len();
                Ok(Value::List(List::from_fn(n + rl.len(), |i| if i < n { ll[i].clone() } else { rl[i - n].clone() })))
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                // CppNix parses `a - b` as a call of builtins.sub (and so on),
                // so errors in the operands get that call's frame too.
                let l = match self.eval_operand(lhs, env) {
                    Ok(v) => v,
                    Err(e) => return Err(e).trace(pos, || format!("while calling the '{}' builtin", arith_builtin(op))),
                };
                let r = match self.eval_operand(rhs, env) {
                    Ok(v) => v,
                    Err(e) => return Err(e).trace(pos, || format!("while calling the '{}' builtin", arith_builtin(op))),
                };
                if let (&Value::Int(a), &Value::Int(b)) = (&l, &r) {
                    let fast = match op {
                        BinOp::Add => a.checked_add(b),
                        BinOp::Sub => a.checked_sub(b),
                        BinOp::Mul => a.checked_mul(b),
                        BinOp::Div if b != 0 => a.checked_div(b),
                        _ => None,
                    };
                    if let Some(n) = fast {
                        // Integers own nothing: no (out-of-line) drop to call.
                        std::mem::forget((l, r));
                        return Ok(Value::Int(n));
                    }
                }
                self.arith(op, l, r, Pos::NONE).trace(pos, || format!("while calling the '{}' builtin", arith_builtin(op)))
            }
        }
    }

    /// An operand of `//`: any error in it gets a frame at the operand.
    fn update_operand(&mut self, e: &'static Expr, env: &Rc<Env>, frame: &'static str) -> Result<Rc<Attrs>> {
        let v = self.eval_operand(e, env).trace(e.pos(), || frame.to_string())?;
        match v {
            Value::Attrs(a) => Ok(a),
            other => Err(type_error(&other, "a set", Pos::NONE)).trace(e.pos(), || frame.to_string()),
        }
    }

    /// An operand of `++` (already evaluated): a list, else a type error with
    /// a frame at the operator.
    fn concat_operand(&mut self, v: &Value, pos: Pos) -> Result<Rc<List>> {
        match v {
            Value::List(l) => Ok(l.clone()),
            other => Err(type_error(other, "a list", Pos::NONE))
                .trace(pos, || "while evaluating one of the elements to concatenate".into()),
        }
    }

    fn eval_bool(&mut self, e: &'static Expr, pos: Pos, env: &Rc<Env>) -> Result<bool> {
        match self.eval_operand(e, env)? {
            Value::Bool(b) => Ok(b),
            other => Err(type_error(&other, "a Boolean", pos)),
        }
    }

    /// Integer/float arithmetic with CppNix's promotion and (current) overflow errors.
    pub fn arith(&mut self, op: BinOp, l: Value, r: Value, pos: Pos) -> Result<Value> {
        let l = self.force_value(l, pos)?;
        let r = self.force_value(r, pos)?;
        match (&l, &r) {
            (Value::Int(a), Value::Int(b)) => {
                let (a, b) = (*a, *b);
                let (res, verb, sym) = match op {
                    BinOp::Add => (a.checked_add(b), "adding", "+"),
                    BinOp::Sub => (a.checked_sub(b), "subtracting", "-"),
                    BinOp::Mul => (a.checked_mul(b), "multiplying", "*"),
                    BinOp::Div => {
                        if b == 0 {
                            return Err(eval_error("division by zero", pos));
                        }
                        (a.checked_div(b), "dividing", "/")
                    }
                    _ => unreachable!("arith is only called for arithmetic operators"),
                };
                match res {
                    Some(n) => Ok(Value::Int(n)),
                    None => Err(eval_error(format!("integer overflow in {verb} {a} {sym} {b}"), pos)),
                }
            }
            (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
                let a = match l {
                    Value::Int(n) => n as f64,
                    Value::Float(f) => f,
                    _ => unreachable!(),
                };
                let b = match r {
                    Value::Int(n) => n as f64,
                    Value::Float(f) => f,
                    _ => unreachable!(),
                };
                Ok(Value::Float(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => {
                        if b == 0.0 {
                            return Err(eval_error("division by zero", pos));
                        }
                        a / b
                    }
                    _ => unreachable!(),
                }))
            }
            _ => Err(arith_operand_error(op, &l, &r, pos)),
        }
    }

    /// `a + b`: integers added right here; anything else continues as the
    /// general concatenation with the first operand already evaluated (the
    /// order of evaluation and of errors is the same either way).
    #[inline(never)]
    fn eval_plus(&mut self, parts: &'static [(Pos, Expr)], pos: Pos, env: &Rc<Env>) -> Result<Value> {
        let first = self.eval_operand(&parts[0].1, env)?;
        if let Value::Int(a) = first {
            let second = self.eval_operand(&parts[1].1, env)?;
            if let Value::Int(b) = second {
                if let Some(n) = a.checked_add(b) {
                    // Integers own nothing: no (out-of-line) drop to call.
                    std::mem::forget((first, second));
                    return Ok(Value::Int(n));
                }
            }
            return self.eval_concat_values(false, parts, [first, second].into_iter(), pos, env);
        }
        self.eval_concat(false, parts, Some(first), pos, env)
    }

    #[inline(never)]
    fn eval_concat(
        &mut self,
        force_string: bool,
        parts: &'static [(Pos, Expr)],
        first: Option<Value>,
        pos: Pos,
        env: &Rc<Env>,
    ) -> Result<Value> {
        self.eval_concat_values(force_string, parts, first.into_iter(), pos, env)
    }

    /// String interpolation and `+`: `given` holds the values of the first parts
    /// if they have been evaluated already; the rest are evaluated in order.
    fn eval_concat_values(
        &mut self,
        force_string: bool,
        parts: &'static [(Pos, Expr)],
        mut given: impl Iterator<Item = Value>,
        pos: Pos,
        env: &Rc<Env>,
    ) -> Result<Value> {
        #[derive(PartialEq, Clone, Copy)]
        enum First {
            Str,
            Path,
            Int,
            Float,
        }
        let mut first_type = First::Str;
        let mut n: i64 = 0;
        let mut nf: f64 = 0.0;
        let mut buf = self.take_scratch();
        let mut ctx = Context::new();
        for (i, (part_pos, part)) in parts.iter().enumerate() {
            let v = match given.next() {
                Some(v) => v,
                // A literal piece of a string (or of a path, whose result is
                // checked below): its bytes, with no value copied and coerced.
                None if matches!(first_type, First::Str | First::Path) && append_literal(part, &mut buf, &mut ctx) => continue,
                None if force_string && self.append_to_string_call(part, env, &mut buf, &mut ctx)? => continue,
                None => self.eval_operand(part, env)?,
            };
            if i == 0 && !force_string {
                first_type = match v {
                    Value::Int(_) => First::Int,
                    Value::Float(_) => First::Float,
                    Value::Path(_) => First::Path,
                    _ => First::Str,
                };
            }
            match first_type {
                First::Int => match v {
                    Value::Int(x) => {
                        n = n.checked_add(x).ok_or_else(|| {
                            eval_error(format!("integer overflow in adding {n} + {x}"), *part_pos)
                        })?;
                    }
                    Value::Float(x) => {
                        first_type = First::Float;
                        nf = n as f64 + x;
                    }
                    other => {
                        return Err(eval_error(format!("cannot add {} to an integer", other.show_type()), *part_pos));
                    }
                },
                First::Float => match v {
                    Value::Int(x) => nf += x as f64,
                    Value::Float(x) => nf += x,
                    other => return Err(eval_error(format!("cannot add {} to a float", other.show_type()), *part_pos)),
                },
                First::Str | First::Path => {
                    let opts = Coerce { more: false, copy_to_store: first_type == First::Str };
                    if let Err(mut error) = self.coerce_to_string_into(&v, *part_pos, opts, &mut buf, &mut ctx) {
                        if error.kind == ErrorKind::Type && error.trace.is_empty() {
                            error.trace.push(TraceFrame::new(*part_pos, "while evaluating a path segment"));
                        }
                        return Err(error);
                    }
                }
            }
        }
        let result = match first_type {
            First::Int => Value::Int(n),
            First::Float => Value::Float(nf),
            First::Path => {
                if !ctx.is_empty() {
                    return Err(eval_error("a string that refers to a store path cannot be appended to a path", pos));
                }
                Value::path(crate::parser::canon_path(&buf))
            }
            First::Str => Value::string_ctx(&buf[..], ctx),
        };
        self.give_scratch(buf);
        Ok(result)
    }

    // ----- function application -----

    /// Applies `f` (already forced) to `arg`.
    pub fn call(&mut self, f: &Value, arg: Value, pos: Pos) -> Result<Value> {
        match f {
            Value::Lambda(c) => self.call_lambda(c, arg, pos),
            Value::PrimOp(op) => {
                if op.arity == 1 {
                    self.call_primop(op, &[arg], pos)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp { op, args: vec![arg] })))
                }
            }
            Value::PrimOpApp(app) => {
                let mut args = Vec::with_capacity(app.args.len() + 1);
                args.extend(app.args.iter().cloned());
                args.push(arg);
                if args.len() == app.op.arity {
                    self.call_primop(app.op, &args, pos)
                } else {
                    Ok(Value::PrimOpApp(Rc::new(PrimOpApp { op: app.op, args })))
                }
            }
            Value::Attrs(a) if a.get(self.s.functor).is_some() => {
                let functor = a.get(self.s.functor).cloned().unwrap_or(Value::Null);
                let functor = self.force(&functor, pos)?;
                let g = self.call(&functor, f.clone(), pos)?;
                let g = self.force(&g, pos)?;
                self.call(&g, arg, pos)
            }
            Value::Thunk(_) => {
                let forced = self.force(f, pos)?;
                self.call(&forced, arg, pos)
            }
            other => Err(EvalError::new(
                ErrorKind::Type,
                format!(
                    "attempt to call something which is not a function but {}: {}",
                    other.show_type(),
                    crate::show_value::show_value(other)
                ),
                pos,
            )),
        }
    }

    /// Applies a function value (forcing it first) to several arguments.
    pub fn call_n(&mut self, f: &Value, args: &[Value], pos: Pos) -> Result<Value> {
        let mut f = self.force(f, pos)?;
        let mut i = 0;
        while i < args.len() {
            if let Value::Lambda(c) = &f {
                let k = curry_depth(c.lambda, args.len() - i);
                if k > 1 {
                    f = self.call_lambda_multi(c, &args[i..i + k], pos)?;
                    i += k;
                    continue;
                }
            }
            f = self.call(&f, args[i].clone(), pos)?;
            f = self.force(&f, pos)?;
            i += 1;
        }
        Ok(f)
    }

    /// `f a b` for an already forced `f` (`foldl'`'s operator): a curried lambda
    /// gets both environments chained directly, with the arguments moved in.
    pub(crate) fn call2(&mut self, f: &Value, a: Value, b: Value, pos: Pos) -> Result<Value> {
        if let Value::Lambda(c) = f {
            if let (None, Expr::Lambda(inner)) = (&c.lambda.formals, &c.lambda.body) {
                let env = Env::with_one(c.env.clone(), a);
                let env = self.bind_arg(inner, env, b, false, pos)?;
                return self.run_body(inner, &env, pos);
            }
        }
        let g = self.call(f, a, pos)?;
        let g = self.force_value(g, pos)?;
        let r = self.call(&g, b, pos)?;
        self.force_value(r, pos)
    }

    fn call_primop(&mut self, op: &'static builtins::PrimOp, args: &[Value], pos: Pos) -> Result<Value> {
        // As in CppNix, a built-in does not see its call's position (errors it
        // raises have none); the call adds a frame at it instead.
        match (op.func)(self, args, Pos::NONE) {
            Ok(v) => Ok(v),
            Err(e) => Err(primop_call_failed(op, e, pos)),
        }
    }

    #[inline(always)]
    fn call_lambda(&mut self, c: &Rc<Closure>, arg: Value, pos: Pos) -> Result<Value> {
        self.call_lambda_arg(c, arg, false, pos)
    }

    /// `call_lambda`, `arg` marked as computed ahead of demand when
    /// `precomputed` (see `maybe_thunk_arg`).
    #[inline(always)]
    fn call_lambda_arg(&mut self, c: &Rc<Closure>, arg: Value, precomputed: bool, pos: Pos) -> Result<Value> {
        let env = self.bind_arg(c.lambda, c.env.clone(), arg, precomputed, pos)?;
        self.run_body(c.lambda, &env, pos)
    }

    /// Applies closure `c` to all of `args`, which must be at most
    /// `curry_depth(c.lambda)`: a curried function (`a: b: body`) gets its
    /// environments chained directly, without allocating the closures for the
    /// intermediate lambdas (what `f a b` and `foldl'` would otherwise do).
    fn call_lambda_multi(&mut self, c: &Rc<Closure>, args: &[Value], pos: Pos) -> Result<Value> {
        let mut lambda = c.lambda;
        let mut env = self.bind_arg(lambda, c.env.clone(), args[0].clone(), false, pos)?;
        for arg in &args[1..] {
            let Expr::Lambda(inner) = &lambda.body else { unreachable!("checked by curry_depth") };
            lambda = inner;
            env = self.bind_arg(lambda, env, arg.clone(), false, pos)?;
        }
        self.run_body(lambda, &env, pos)
    }

    /// `call_lambda_multi` on argument expressions: each argument goes straight
    /// into its environment as it is made, with no buffer of values between
    /// (building and dropping one cost more than the environments). Making an
    /// argument (a thunk, or a ready value) has no effect, so binding the first
    /// (which forces it where the lambda has formals) before making the next is
    /// unobservable. Kept out of `eval`, whose stack frame is recursive.
    #[inline(never)]
    fn call_lambda_exprs(&mut self, c: &Rc<Closure>, args: &'static [Expr], pos: Pos, env: &Rc<Env>) -> Result<Value> {
        let mut lambda = c.lambda;
        let (arg, precomputed) = self.maybe_thunk_arg(&args[0], env);
        let mut inner_env = self.bind_arg(lambda, c.env.clone(), arg, precomputed, pos)?;
        for a in &args[1..] {
            let Expr::Lambda(inner) = &lambda.body else { unreachable!("checked by curry_depth") };
            lambda = inner;
            let (arg, precomputed) = self.maybe_thunk_arg(a, env);
            inner_env = self.bind_arg(lambda, inner_env, arg, precomputed, pos)?;
        }
        self.run_body(lambda, &inner_env, pos)
    }

    /// Binds `arg` to `lambda`'s argument (or formals) in a new environment
    /// below `parent`; a plain argument is marked as computed ahead of demand
    /// when `precomputed` (see [`Env`]).
    #[inline]
    fn bind_arg(&mut self, lambda: &'static Lambda, parent: Rc<Env>, arg: Value, precomputed: bool, pos: Pos) -> Result<Rc<Env>> {
        match &lambda.formals {
            None => Ok(Env::with_arg(parent, arg, precomputed)),
            Some(_) => self.bind_formals(lambda, parent, arg, pos),
        }
    }

    /// `bind_arg` for a lambda with formals (`{ a, b ? 1, ... }@args:`).
    #[inline(never)]
    fn bind_formals(&mut self, lambda: &'static Lambda, parent: Rc<Env>, arg: Value, pos: Pos) -> Result<Rc<Env>> {
        let env = Env::new(Some(parent), lambda.env_size());
        match &lambda.formals {
            None => env.push(arg),
            Some(formals) => {
                let attrs = self.force_attrs(&arg, pos)?;
                let mut used = 0;
                for formal in &formals.entries {
                    let v = match attrs.find_hinted(formal.name, &formal.hint) {
                        Some(attr) => {
                            used += 1;
                            attr.value.clone()
                        }
                        None => match &formal.default {
                            Some(d) => self.maybe_thunk(d, &env),
                            None => {
                                return Err(eval_error(
                                    format!(
                                        "function '{}' called without required argument '{}'",
                                        lambda_name(lambda),
                                        formal.name
                                    ),
                                    lambda.pos,
                                ))
                                .trace(pos, || "from call site".into());
                            }
                        },
                    };
                    env.push(v);
                }
                if !formals.ellipsis && used != attrs.len() {
                    for a in attrs.iter() {
                        if !formals.entries.iter().any(|f| f.name == a.name) {
                            return Err(eval_error(
                                format!("function '{}' called with unexpected argument '{}'", lambda_name(lambda), a.name),
                                lambda.pos,
                            )
                            .with_suggestions(a.name.as_bytes(), formals.entries.iter().map(|f| f.name.as_bytes())))
                            .trace(pos, || "from call site".into());
                        }
                    }
                }
                if lambda.arg.is_some() {
                    env.push(Value::Attrs(attrs));
                }
            }
        }
        Ok(env)
    }

    /// Evaluates `lambda`'s body in its bound environment `env`.
    #[inline(always)]
    fn run_body(&mut self, lambda: &'static Lambda, env: &Rc<Env>, pos: Pos) -> Result<Value> {
        self.call_depth += 1;
        // CppNix checks the depth before counting the call, so a call at
        // depth max-call-depth itself still runs.
        if self.call_depth > self.settings.max_call_depth + 1 {
            self.call_depth -= 1;
            return Err(EvalError::new(ErrorKind::StackOverflow, "stack overflow; max-call-depth exceeded", pos));
        }
        let result = self.eval(&lambda.body, env);
        self.call_depth -= 1;
        match result {
            Err(e) if self.settings.show_trace => Err(call_frames(e, lambda, pos)),
            result => result,
        }
    }

    // ----- coercion -----

    /// `toString`-style coercion (`more`: also bools, ints, floats, null, lists)
    /// appending to `buf` and `ctx`.
    pub fn coerce_to_string_into(
        &mut self,
        v: &Value,
        pos: Pos,
        opts: Coerce,
        buf: &mut Vec<u8>,
        ctx: &mut Context,
    ) -> Result<()> {
        let v = self.force(v, pos)?;
        match &v {
            Value::String(s) => {
                buf.extend_from_slice(s.as_bytes());
                if let Some(c) = s.context() {
                    ctx.union_with(c);
                }
                Ok(())
            }
            Value::Path(p) => {
                if opts.copy_to_store {
                    let store_path = self.copy_path_to_store(p.as_bytes(), pos)?;
                    buf.extend_from_slice(store_path.as_bytes());
                    ctx.insert(store_path.into_bytes());
                } else {
                    buf.extend_from_slice(p.as_bytes());
                }
                Ok(())
            }
            Value::Attrs(a) => {
                if let Some(f) = a.get(self.s.to_string) {
                    let f = self.force(&f.clone(), pos)?;
                    let r = self.call(&f, v.clone(), pos)?;
                    return self.coerce_to_string_into(&r, pos, opts, buf, ctx).map_err(|e| {
                        crate::error::add_context(e, pos, || "while evaluating the result of the `__toString` attribute".into())
                    });
                }
                if let Some(out) = a.get(self.s.out_path) {
                    let out = out.clone();
                    return self.coerce_to_string_into(&out, pos, opts, buf, ctx);
                }
                Err(cannot_coerce(&v))
            }
            Value::Int(n) if opts.more => {
                // Formatted straight into the buffer, with no string of its own.
                crate::print::push_int(buf, *n);
                Ok(())
            }
            Value::Float(f) if opts.more => {
                buf.extend_from_slice(crate::support::float_format::format_float_for_to_string(*f).as_bytes());
                Ok(())
            }
            Value::Bool(b) if opts.more => {
                if *b {
                    buf.push(b'1');
                }
                Ok(())
            }
            Value::Null if opts.more => Ok(()),
            Value::List(l) if opts.more => {
                let n = l.len();
                for (i, item) in l.iter().enumerate() {
                    if let Err(mut error) = self.coerce_to_string_into(item, pos, opts, buf, ctx) {
                        if error.kind == ErrorKind::Type && error.trace.is_empty() {
                            error.trace.push(TraceFrame::new(pos, "while evaluating one element of the list"));
                        }
                        return Err(error);
                    }
                    if i + 1 < n {
                        let item = self.force(item, pos)?;
                        let empty_list = matches!(&item, Value::List(x) if x.is_empty());
                        if !empty_list {
                            buf.push(b' ');
                        }
                    }
                }
                Ok(())
            }
            other => Err(cannot_coerce(other)),
        }
    }

    pub fn coerce_to_string(&mut self, v: &Value, pos: Pos, opts: Coerce) -> Result<NixString> {
        // A string needs no building: copy it once, skipping the scratch buffer.
        let forced;
        let v = if let Value::Thunk(_) = v {
            forced = self.force(v, pos)?;
            &forced
        } else {
            v
        };
        if let Value::String(s) = v {
            return Ok(s.clone());
        }
        let mut buf = self.take_scratch();
        let mut ctx = Context::new();
        self.coerce_to_string_into(v, pos, opts, &mut buf, &mut ctx)?;
        let result = NixString::with_context(&buf[..], ctx);
        self.give_scratch(buf);
        Ok(result)
    }

    /// An empty buffer to build a string in; hand it back with `give_scratch`.
    #[inline]
    pub(crate) fn take_scratch(&mut self) -> Vec<u8> {
        let mut buf = self.string_scratch.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    #[inline]
    pub(crate) fn give_scratch(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= SCRATCH_KEEP_MAX && self.string_scratch.len() < 16 {
            self.string_scratch.push(buf);
        }
    }

    /// Coerces to an absolute path (a path value, or a string starting with `/`).
    pub fn coerce_to_path(&mut self, v: &Value, pos: Pos) -> Result<(Vec<u8>, Context)> {
        let s = self.coerce_to_string(v, pos, Coerce { more: false, copy_to_store: false })?;
        if !s.as_bytes().starts_with(b"/") {
            return Err(eval_error(format!("string '{}' doesn't represent an absolute path", s.to_str_lossy()), pos));
        }
        Ok((s.as_bytes().to_vec(), s.context().cloned().unwrap_or_default()))
    }

    /// A path to read from: coerced, with any store paths in its context realised.
    pub fn realise_path(&mut self, v: &Value, pos: Pos) -> Result<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        let (p, ctx) = self.coerce_to_path(v, pos)?;
        for c in &ctx {
            let s = String::from_utf8_lossy(c);
            self.io.realise_context(&s).map_err(|e| io_error(e, pos))?;
        }
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&p)))
    }

    pub fn copy_path_to_store(&mut self, path: &[u8], pos: Pos) -> Result<String> {
        use std::os::unix::ffi::OsStrExt;
        if let Some(p) = self.store_copies.get(path) {
            return Ok(p.clone());
        }
        let p = Path::new(std::ffi::OsStr::from_bytes(path));
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // No position, as in CppNix: the frames of the caller tell where.
        let _ = pos;
        let store_path = self.io.add_to_store(p, &name, true, None).map_err(|e| io_error(e, Pos::NONE))?;
        self.store_copies.insert(path.to_vec(), store_path.clone());
        Ok(store_path)
    }

    // ----- equality and ordering -----

    pub fn equal(&mut self, a: &Value, b: &Value, pos: Pos) -> Result<bool> {
        let a = self.force(a, pos)?;
        let b = self.force(b, pos)?;
        match (&a, &b) {
            (Value::Int(x), Value::Float(y)) => Ok((*x as f64) == *y),
            (Value::Float(x), Value::Int(y)) => Ok(*x == (*y as f64)),
            (Value::Int(x), Value::Int(y)) => Ok(x == y),
            (Value::Float(x), Value::Float(y)) => Ok(x == y),
            (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
            (Value::String(x), Value::String(y)) => Ok(x.as_bytes() == y.as_bytes()),
            (Value::Path(x), Value::Path(y)) => Ok(x.as_bytes() == y.as_bytes()),
            (Value::Null, Value::Null) => Ok(true),
            (Value::List(x), Value::List(y)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (i, j) in x.iter().zip(y.iter()) {
                    if !same_value(i, j) && !self.equal(i, j, pos)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            (Value::Attrs(x), Value::Attrs(y)) => {
                if self.is_derivation(x)? && self.is_derivation(y)? {
                    if let (Some(i), Some(j)) = (x.get(self.s.out_path), y.get(self.s.out_path)) {
                        let (i, j) = (i.clone(), j.clone());
                        return self.equal(&i, &j, pos);
                    }
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (i, j) in x.iter().zip(y.iter()) {
                    if i.name != j.name {
                        return Ok(false);
                    }
                    if !same_value(&i.value, &j.value) && !self.equal(&i.value, &j.value, pos)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// `a < b` as CppNix's `CompareValues`: numbers, strings, paths, and lists
    /// lexicographically.
    pub fn less_than(&mut self, a: &Value, b: &Value, pos: Pos) -> Result<bool> {
        let a = self.force(a, pos)?;
        let b = self.force(b, pos)?;
        match (&a, &b) {
            (Value::Int(x), Value::Int(y)) => Ok(x < y),
            (Value::Float(x), Value::Float(y)) => Ok(x < y),
            (Value::Int(x), Value::Float(y)) => Ok((*x as f64) < *y),
            (Value::Float(x), Value::Int(y)) => Ok(*x < (*y as f64)),
            (Value::String(x), Value::String(y)) => Ok(x.as_bytes() < y.as_bytes()),
            (Value::Path(x), Value::Path(y)) => Ok(x.as_bytes() < y.as_bytes()),
            (Value::List(x), Value::List(y)) => {
                let mut i = 0;
                loop {
                    if i == y.len() {
                        return Ok(false);
                    }
                    if i == x.len() {
                        return Ok(true);
                    }
                    if !self.equal(&x[i], &y[i], pos)? {
                        return self.less_than(&x[i], &y[i], pos);
                    }
                    i += 1;
                }
            }
            _ => Err(cannot_compare(&a, &b)),
        }
    }
}

/// `--show-trace`'s frames for an error raised in a call of `lambda` at `pos`.
#[cold]
#[inline(never)]
fn call_frames(e: Box<EvalError>, lambda: &'static Lambda, pos: Pos) -> Box<EvalError> {
    let name = match lambda.name {
        Some(n) => format!("'{n}'"),
        None => "anonymous lambda".to_string(),
    };
    let mut result: Result<()> = Err(e).trace(lambda.pos, || format!("while calling {name}"));
    if !pos.is_none() {
        result = result.trace(pos, || "from call site".to_string());
    }
    result.expect_err("adding frames keeps the error")
}

/// An error in a selection `e.a.b.c`, once an attribute of the path has been
/// found (at `found`), gets a frame there naming the path, as CppNix's
/// ExprSelect adds; CppNix leaves out the attributes of its own `derivation`
/// code (`drvPath`, `outPath`, ...).
#[cold]
#[inline(never)]
fn select_failed(e: Box<EvalError>, found: Option<Pos>, path: &'static [AttrName]) -> Box<EvalError> {
    match found {
        Some(apos) if !is_derivation_internal(apos) => push_frame(e, apos, || {
            let shown: Vec<String> = path
                .iter()
                .map(|a| match a {
                    AttrName::Static(s) => s.to_string(),
                    AttrName::Dynamic(e) => format!("\"${{{}}}\"", crate::print::show_expr(e)),
                })
                .collect();
            format!("while evaluating the attribute '{}'", shown.join("."))
        }),
        _ => e,
    }
}

/// "attribute 'x' missing", with suggestions from the set's names.
#[cold]
#[inline(never)]
fn missing_attr(sym: Sym, a: &Attrs, pos: Pos) -> Box<EvalError> {
    eval_error(format!("attribute '{sym}' missing"), pos).with_suggestions(sym.as_bytes(), a.iter().map(|x| x.name.as_bytes()))
}

/// Current CppNix's words for values `<` cannot order, with the values.
#[cold]
fn cannot_compare(a: &Value, b: &Value) -> Box<EvalError> {
    let (shown_a, shown_b) = (crate::show_value::show_value(a), crate::show_value::show_value(b));
    let msg = if std::mem::discriminant(a) == std::mem::discriminant(b) {
        format!(
            "cannot compare {} with {}; values of that type are incomparable (values are {shown_a} and {shown_b})",
            a.show_type(),
            b.show_type()
        )
    } else {
        format!("cannot compare {} with {}; values are {shown_a} and {shown_b}", a.show_type(), b.show_type())
    };
    eval_error(msg, Pos::NONE)
}

/// The built-in CppNix calls for an arithmetic operator.
fn arith_builtin(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "add",
        BinOp::Sub => "sub",
        BinOp::Mul => "mul",
        _ => "div",
    }
}

/// An operand of arithmetic that is not a number, reported as CppNix's
/// `__add`/`__sub`/`__mul` report it (both operands forced as floats when
/// either is a float, else as integers, first operand first) and `__div`
/// (the divisor first, as a float, then whether it is zero, then the
/// dividend), in their own words.
#[cold]
fn arith_operand_error(op: BinOp, l: &Value, r: &Value, pos: Pos) -> Box<EvalError> {
    let is_number = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_));
    let is_float = |v: &Value| matches!(v, Value::Float(_));
    let with_frame = |mut e: Box<EvalError>, msg: String| {
        e.trace.push(TraceFrame::new(pos, msg));
        e
    };
    if op == BinOp::Div {
        if !is_number(r) {
            return with_frame(type_error(r, "a float", pos), "while evaluating the second operand of the division".into());
        }
        if matches!(r, Value::Int(0)) || matches!(r, Value::Float(f) if *f == 0.0) {
            return eval_error("division by zero", pos);
        }
        let expected = if is_float(r) { "a float" } else { "an integer" };
        return with_frame(type_error(l, expected, pos), "while evaluating the first operand of the division".into());
    }
    let what = match op {
        BinOp::Add => "addition",
        BinOp::Sub => "subtraction",
        _ => "multiplication",
    };
    let floats = is_float(l) || is_float(r);
    let expected = if floats { "a float" } else { "an integer" };
    if !is_number(l) {
        // (CppNix's own wording for a product of floats lacks "argument".)
        let msg = if floats && op == BinOp::Mul {
            "while evaluating the first of the multiplication".to_string()
        } else {
            format!("while evaluating the first argument of the {what}")
        };
        return with_frame(type_error(l, expected, pos), msg);
    }
    with_frame(type_error(r, expected, pos), format!("while evaluating the second argument of the {what}"))
}

fn not_argument() -> String {
    "in the argument of the not operator".to_string()
}

fn branch_condition() -> String {
    "while evaluating a branch condition".to_string()
}

fn assert_condition() -> String {
    "in the condition of the assert statement".to_string()
}

/// CppNix's "cannot coerce a set to a string: { … }", without a position
/// (the caller's frame gives it).
#[cold]
fn cannot_coerce(v: &Value) -> Box<EvalError> {
    let shown = crate::show_value::show_value(v);
    EvalError::new(ErrorKind::Type, format!("cannot coerce {} to a string: {shown}", v.show_type()), Pos::NONE)
}

/// Whether `pos` lies in the built-in `derivation` code, whose attribute
/// selections get no frame (as in CppNix, for `derivation-internal.nix`).
#[cold]
fn is_derivation_internal(pos: Pos) -> bool {
    matches!(pos.resolve(), Some(loc) if matches!(&loc.origin,
        Origin::File(p) if p.as_os_str() == crate::derivation::DERIVATION_NIX_PATH))
}

/// The frame CppNix adds when a built-in's call fails: "while calling the
/// 'NAME' builtin" at the call (not for `addErrorContext`, whose own frame
/// would only repeat the context it adds).
#[cold]
#[inline(never)]
fn primop_call_failed(op: &'static builtins::PrimOp, mut e: Box<EvalError>, pos: Pos) -> Box<EvalError> {
    if op.name != "addErrorContext" {
        e.trace.push(TraceFrame::new(pos, format!("while calling the '{}' builtin", op.name)));
    }
    e
}

impl Eval {
    /// A failed `assert`. When the condition is an equality, current CppNix
    /// evaluates both sides again and explains where they differ.
    #[cold]
    #[inline(never)]
    fn assertion_failed(&mut self, cond: &'static Expr, pos: Pos, env: &Rc<Env>) -> Box<EvalError> {
        let shown = crate::print::show_expr(cond);
        if let Expr::BinOp { op: BinOp::Eq, lhs, rhs, .. } = cond {
            // CppNix's `==` carries no position, so neither do its frames.
            let explained = (|| -> Result<()> {
                let l = self.eval(lhs, env)?;
                let r = self.eval(rhs, env)?;
                crate::assert_eq::assert_eq_values(self, &l, &r, Pos::NONE)
            })();
            if let Err(error) = explained {
                let frame = format!("while evaluating the condition of the assertion '{shown}'");
                return Err::<(), _>(error).trace(pos, || frame).unwrap_err();
            }
        }
        EvalError::new(ErrorKind::Assert, format!("assertion '{shown}' failed"), pos)
    }
}

/// The store path a context element refers to (`!out!/nix/store/x.drv` → the .drv).
pub fn context_store_path(elem: &str) -> &str {
    if let Some(rest) = elem.strip_prefix('=') {
        rest
    } else if let Some(rest) = elem.strip_prefix('!') {
        rest.find('!').map(|i| &rest[i + 1..]).unwrap_or(rest)
    } else {
        elem
    }
}

/// Pointer identity of two stored values (CppNix treats a value as equal to
/// itself, even a function, when compared inside lists and sets).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Thunk(x), Value::Thunk(y)) => Rc::ptr_eq(x, y),
        (Value::Lambda(x), Value::Lambda(y)) => Rc::ptr_eq(x, y),
        (Value::Attrs(x), Value::Attrs(y)) => Rc::ptr_eq(x, y),
        (Value::List(x), Value::List(y)) => Rc::ptr_eq(x, y),
        (Value::PrimOp(x), Value::PrimOp(y)) => std::ptr::eq(*x, *y),
        (Value::PrimOpApp(x), Value::PrimOpApp(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// How many of `max` arguments a curried lambda (`a: b: ...`) takes directly.
fn curry_depth(mut l: &Lambda, max: usize) -> usize {
    let mut n = 1;
    while n < max {
        match &l.body {
            Expr::Lambda(inner) => l = inner,
            _ => break,
        }
        n += 1;
    }
    n
}

pub fn lambda_name(l: &Lambda) -> String {
    match l.name {
        Some(n) => n.to_string(),
        None => "anonymous lambda".to_string(),
    }
}

/// `a // b`: a merge of two sorted vectors. The common case is a small `b` over a
/// large `a` (`attrs // { x = ...; }`): each of `b`'s names is found by binary
/// search and the runs of `a` between them are copied whole.
pub fn update_attrs(a: &Rc<Attrs>, b: &Rc<Attrs>) -> Rc<Attrs> {
    if b.is_empty() {
        return a.clone();
    }
    if a.is_empty() {
        return b.clone();
    }
    if a.wants_layer(b.len()) {
        return Attrs::layer(a, b.iter().cloned().collect());
    }
    // Flat sets (most) are merged straight from their entries; a layered one
    // is listed first.
    match (a.iter(), b.iter()) {
        (AttrsIter::Flat(x), AttrsIter::Flat(y)) => merge_update(x.as_slice(), y.as_slice()),
        _ => merge_update(&a.to_refs(), &b.to_refs()),
    }
}

/// An attribute, or a reference to one (the entries `update_attrs` merges).
trait AttrRef {
    fn attr(&self) -> &Attr;
}
impl AttrRef for Attr {
    #[inline(always)]
    fn attr(&self) -> &Attr {
        self
    }
}
impl AttrRef for &Attr {
    #[inline(always)]
    fn attr(&self) -> &Attr {
        self
    }
}

/// `a // b`, both sorted by symbol: `b`'s entries, and `a`'s that `b` does
/// not override. A small `b` finds its places in a large `a` by search. The
/// places are found first, to count the entries, then the entries are copied
/// straight into the new set's block.
fn merge_update<A: AttrRef + std::borrow::Borrow<Attr>, B: AttrRef>(a: &[A], b: &[B]) -> Rc<Attrs> {
    let by_search = b.len() * 8 < a.len();
    // Where each of `b`'s names goes in `a`, and whether it replaces an entry.
    let place = |i: usize, name: Sym| -> usize {
        if by_search {
            i + a[i..].partition_point(|x| x.attr().name < name)
        } else {
            let mut k = i;
            while k < a.len() && a[k].attr().name < name {
                k += 1;
            }
            k
        }
    };
    let mut hidden = 0;
    let mut i = 0;
    for y in b {
        let name = y.attr().name;
        i = place(i, name);
        if i < a.len() && a[i].attr().name == name {
            hidden += 1;
            i += 1;
        }
    }
    Attrs::from_exact(a.len() + b.len() - hidden, |out| {
        let mut i = 0;
        for y in b {
            let y = y.attr();
            let k = place(i, y.name);
            out.extend_cloned(&a[i..k]);
            i = k;
            if i < a.len() && a[i].attr().name == y.name {
                i += 1;
            }
            out.push(y.clone());
        }
        out.extend_cloned(&a[i..]);
    })
}

#[derive(Clone, Copy)]
pub struct Coerce {
    /// `toString` semantics: also bools, numbers, null and lists.
    pub more: bool,
    /// Paths are copied to the store (interpolation into strings).
    pub copy_to_store: bool,
}
