//! The built-in functions, each declared once in [`PRIMOPS`]: name, arity,
//! implementation and a short doc. Names listed in [`GLOBALS`] are also visible
//! without the `builtins.` prefix; every built-in is visible as `__name`.

use crate::value::Rc;

use crate::ast::BinOp;
use crate::error::{ErrorContext, ErrorKind, EvalError, Result, TraceFrame, add_context};
use crate::eval::{AddTrace, Coerce, Eval, Settings, context_store_path, eval_error, io_error, type_error};
use crate::io::{EvalIO, FileType};
use crate::pos::Pos;
use crate::resolve::Scope;
use crate::symbol::Sym;
use crate::value::*;

pub type PrimOpFn = fn(&mut Eval, &[Value], Pos) -> Result<Value>;

pub struct PrimOp {
    pub name: &'static str,
    pub arity: usize,
    pub func: PrimOpFn,
    pub doc: &'static str,
}

/// Built-ins reachable without `builtins.` (besides `true`, `false`, `null`, `builtins`).
pub const GLOBALS: &[&str] = &[
    "abort", "baseNameOf", "derivation", "derivationStrict", "dirOf", "fetchGit", "fetchMercurial", "fetchTarball",
    "fetchTree", "fromTOML", "import", "isNull", "map", "placeholder", "removeAttrs", "scopedImport", "throw",
    "toString",
];

macro_rules! p {
    ($name:expr, $arity:expr, $func:expr, $doc:expr) => {
        PrimOp { name: $name, arity: $arity, func: $func, doc: $doc }
    };
}

pub static PRIMOPS: &[PrimOp] = &[
    p!("abort", 1, prim_abort, "Abort evaluation with a message (not catchable by tryEval)."),
    p!("add", 2, |e, a, p| e.arith(BinOp::Add, a[0].clone(), a[1].clone(), p), "Add two numbers."),
    p!("sub", 2, |e, a, p| e.arith(BinOp::Sub, a[0].clone(), a[1].clone(), p), "Subtract two numbers."),
    p!("mul", 2, |e, a, p| e.arith(BinOp::Mul, a[0].clone(), a[1].clone(), p), "Multiply two numbers."),
    p!("div", 2, |e, a, p| e.arith(BinOp::Div, a[0].clone(), a[1].clone(), p), "Divide two numbers."),
    p!("addErrorContext", 2, prim_add_error_context, "Add a frame to the trace of errors raised by the second argument."),
    p!("all", 2, prim_all, "Whether the predicate holds for all list elements."),
    p!("any", 2, prim_any, "Whether the predicate holds for some list element."),
    p!("appendContext", 2, prim_append_context, "Add string context elements to a string."),
    p!("attrNames", 1, prim_attr_names, "The names of a set's attributes, sorted."),
    p!("attrValues", 1, prim_attr_values, "The values of a set's attributes, in name order."),
    p!("baseNameOf", 1, prim_base_name_of, "The last component of a path or string."),
    p!("bitAnd", 2, |e, a, p| bit(e, a, p, "bitAnd", |x, y| x & y), "Bitwise and."),
    p!("bitOr", 2, |e, a, p| bit(e, a, p, "bitOr", |x, y| x | y), "Bitwise or."),
    p!("bitXor", 2, |e, a, p| bit(e, a, p, "bitXor", |x, y| x ^ y), "Bitwise exclusive or."),
    p!("break", 1, |e, a, p| e.force(&a[0], p), "In a debugger, pause; here, the identity."),
    p!("catAttrs", 2, prim_cat_attrs, "The values of attribute `name` in each set of a list that has it."),
    p!("ceil", 1, |e, a, p| round(e, a, p, "ceil", f64::ceil), "Round a number up to an integer."),
    p!("floor", 1, |e, a, p| round(e, a, p, "floor", f64::floor), "Round a number down to an integer."),
    p!("compareVersions", 2, prim_compare_versions, "Compare two version strings: -1, 0 or 1."),
    p!("concatLists", 1, prim_concat_lists, "Concatenate a list of lists."),
    p!("concatMap", 2, prim_concat_map, "Map a function returning lists and concatenate."),
    p!("concatStringsSep", 2, prim_concat_strings_sep, "Join strings with a separator."),
    p!("convertHash", 1, prim_convert_hash, "Convert a hash between base16, nix32, base64 and SRI."),
    p!("deepSeq", 2, prim_deep_seq, "Force the first argument completely, return the second."),
    p!("derivationStrict", 1, crate::derivation::prim_derivation_strict, "Instantiate a derivation (needs a store)."),
    p!("dirOf", 1, prim_dir_of, "The directory part of a path or string."),
    p!("elem", 2, prim_elem, "Whether a list contains a value."),
    p!("elemAt", 2, prim_elem_at, "The n-th element of a list."),
    p!("fetchGit", 1, |e, a, p| fetch(e, "git", a, p), "Fetch a Git repository (needs a store)."),
    p!("fetchMercurial", 1, |e, a, p| fetch(e, "hg", a, p), "Fetch a Mercurial repository (needs a store)."),
    p!("fetchTarball", 1, |e, a, p| fetch(e, "tarball", a, p), "Fetch and unpack a tarball (needs a store)."),
    p!("fetchTree", 1, |e, a, p| fetch(e, "tree", a, p), "Fetch a source tree (needs a store)."),
    p!("fetchurl", 1, |e, a, p| fetch(e, "file", a, p), "Fetch a file (needs a store)."),
    p!("filter", 2, prim_filter, "The elements of a list for which the predicate holds."),
    p!("filterSource", 2, prim_filter_source, "Copy a path to the store, keeping what the filter accepts."),
    p!("findFile", 2, prim_find_file, "Look a path up in a search path (`<nixpkgs>`)."),
    p!("foldl'", 3, prim_foldl, "Strict left fold."),
    p!("fromJSON", 1, prim_from_json, "Parse JSON into a value."),
    p!("parseFlakeRef", 1, prim_parse_flake_ref, "Parse a flake reference into its attributes."),
    p!("flakeRefToString", 1, prim_flake_ref_to_string, "The URL form of a flake reference's attributes."),
    p!("fromTOML", 1, prim_from_toml, "Parse TOML into a value."),
    p!("functionArgs", 1, prim_function_args, "The formal arguments of a function and whether they have defaults."),
    p!("genList", 2, prim_gen_list, "A list of `f 0` ... `f (n-1)`."),
    p!("genericClosure", 1, prim_generic_closure, "The closure of a start set under an operator, by `key`."),
    p!("getAttr", 2, prim_get_attr, "The value of an attribute."),
    p!("getContext", 1, prim_get_context, "The string context of a string as a set."),
    p!("getEnv", 1, prim_get_env, "The value of an environment variable, or \"\"."),
    p!("groupBy", 2, prim_group_by, "Group list elements by the string a function returns."),
    p!("hasAttr", 2, prim_has_attr, "Whether a set has an attribute."),
    p!("hasContext", 1, prim_has_context, "Whether a string has a context."),
    p!("hashFile", 2, prim_hash_file, "The base-16 hash of a file."),
    p!("hashString", 2, prim_hash_string, "The base-16 hash of a string."),
    p!("head", 1, prim_head, "The first element of a list."),
    p!("import", 1, prim_import, "Evaluate a Nix file."),
    p!("intersectAttrs", 2, prim_intersect_attrs, "The attributes of the second set whose names are in the first."),
    p!("isAttrs", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Attrs(_))), "Whether a value is a set."),
    p!("isBool", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Bool(_))), "Whether a value is a Boolean."),
    p!("isFloat", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Float(_))), "Whether a value is a float."),
    p!("isFunction", 1, |e, a, p| is_type(e, a, p, |v| v.is_function()), "Whether a value is a function."),
    p!("isInt", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Int(_))), "Whether a value is an integer."),
    p!("isList", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::List(_))), "Whether a value is a list."),
    p!("isNull", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Null)), "Whether a value is null."),
    p!("isPath", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::Path(_))), "Whether a value is a path."),
    p!("isString", 1, |e, a, p| is_type(e, a, p, |v| matches!(v, Value::String(_))), "Whether a value is a string."),
    p!("length", 1, |e, a, p| {
        let list = e.force_list(&a[0], p).context("while evaluating the first argument passed to builtins.length")?;
        Ok(Value::Int(list.len() as i64))
    }, "The length of a list."),
    p!("lessThan", 2, |e, a, p| Ok(Value::Bool(e.less_than(&a[0], &a[1], p)?)), "`a < b`."),
    p!("listToAttrs", 1, prim_list_to_attrs, "A set from a list of `{ name; value; }`."),
    p!("map", 2, prim_map, "Apply a function to each list element (lazily)."),
    p!("mapAttrs", 2, prim_map_attrs, "Apply `f name value` to each attribute (lazily)."),
    p!("match", 2, crate::strings::prim_match, "Match a POSIX extended regular expression against a whole string."),
    p!("parseDrvName", 1, prim_parse_drv_name, "Split a package name into name and version."),
    p!("partition", 2, prim_partition, "Split a list into `right` and `wrong` by a predicate."),
    p!("path", 1, prim_path, "Copy a path to the store with a name, filter and expected hash."),
    p!("pathExists", 1, prim_path_exists, "Whether a path exists."),
    p!("placeholder", 1, prim_placeholder, "The placeholder for a derivation output."),
    p!("readDir", 1, prim_read_dir, "The entries of a directory and their types."),
    p!("readFile", 1, prim_read_file, "The contents of a file."),
    p!("readFileType", 1, prim_read_file_type, "The type of a file: regular, directory, symlink or unknown."),
    p!("removeAttrs", 2, prim_remove_attrs, "A set without the named attributes."),
    p!("replaceStrings", 3, crate::strings::prim_replace_strings, "Replace substrings."),
    p!("scopedImport", 2, prim_scoped_import, "Import a file with extra variables in scope."),
    p!("seq", 2, |e, a, p| {
        e.force(&a[0], p)?;
        e.force(&a[1], p)
    }, "Force the first argument to weak head normal form, return the second."),
    p!("sort", 2, prim_sort, "Stable sort with a less-than function."),
    p!("split", 2, crate::strings::prim_split, "Split a string by a POSIX extended regular expression."),
    p!("splitVersion", 1, prim_split_version, "Split a version string into components."),
    p!("storePath", 1, prim_store_path, "A store path as a string with context."),
    p!("stringLength", 1, prim_string_length, "The length of a string in bytes."),
    p!("substring", 3, crate::strings::prim_substring, "A substring by byte offset and length."),
    p!("tail", 1, prim_tail, "A list without its first element."),
    p!("throw", 1, prim_throw, "Raise an error that tryEval catches."),
    p!("toFile", 2, prim_to_file, "Write a string to a file in the store."),
    p!("toJSON", 1, prim_to_json, "Serialise a value as JSON."),
    p!("toPath", 1, prim_to_path, "Deprecated: a string as an absolute path string."),
    p!("toString", 1, prim_to_string, "Convert a value to a string."),
    p!("toXML", 1, prim_to_xml, "Serialise a value as XML."),
    p!("trace", 2, prim_trace, "Print a value to stderr, return the second argument."),
    p!("traceVerbose", 2, prim_trace_verbose, "Like trace when `trace-verbose` is set."),
    p!("tryEval", 1, prim_try_eval, "Evaluate, catching throw and assert failures."),
    p!("typeOf", 1, |e, a, p| Ok(Value::string(e.force(&a[0], p)?.type_name().as_bytes())), "The type of a value."),
    p!("unsafeDiscardOutputDependency", 1, prim_discard_output_dep, "Turn `=drv` context into plain drv context."),
    p!("addDrvOutputDependencies", 1, prim_add_drv_output_deps, "Turn a plain drv context into `=drv` context."),
    p!("unsafeDiscardStringContext", 1, prim_discard_context, "A string without its context."),
    p!("unsafeGetAttrPos", 2, prim_unsafe_get_attr_pos, "The position where an attribute was defined."),
    p!("warn", 2, prim_warn, "Print a warning to stderr, return the second argument."),
    p!("zipAttrsWith", 2, prim_zip_attrs_with, "Merge a list of sets, applying f name [values]."),
];

/// Builds the base environment and its static scope.
/// The third result is the placeholder thunk for `derivation`, which
/// [`Eval::new`] fills with the parsed Nix definition.
pub fn make_base_env(settings: &Settings, io: &dyn EvalIO) -> (Rc<Env>, Scope, Value) {
    let mut names: Vec<Sym> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let mut builtins_attrs = AttrsBuilder::new();
    let mut add = |name: &str, v: Value, global: bool, names: &mut Vec<Sym>, values: &mut Vec<Value>| {
        builtins_attrs.push(Attr { name: Sym::from_str(name), value: v.clone(), pos: Pos::NONE });
        if global {
            names.push(Sym::from_str(name));
            values.push(v.clone());
        }
        names.push(Sym::from_str(&format!("__{name}")));
        values.push(v);
    };
    for op in PRIMOPS {
        add(op.name, Value::PrimOp(op), GLOBALS.contains(&op.name), &mut names, &mut values);
    }
    add("true", Value::Bool(true), true, &mut names, &mut values);
    add("false", Value::Bool(false), true, &mut names, &mut values);
    add("null", Value::Null, true, &mut names, &mut values);
    // Pure evaluation hides the impure constants altogether (CppNix: "attribute
    // 'currentSystem' missing").
    if !settings.pure_eval {
        add("currentSystem", Value::string(settings.system.as_bytes()), false, &mut names, &mut values);
        add("currentTime", Value::Int(settings.current_time), false, &mut names, &mut values);
    }
    add("langVersion", Value::Int(6), false, &mut names, &mut values);
    // The CppNix release whose language we claim: nixpkgs compares it
    // (`lib/minver.nix`, `lib.versionAtLeast builtins.nixVersion ...`) to decide
    // which builtins it may call, and current nixpkgs refuses anything older than
    // 2.18. We implement that release's builtins (`convertHash`, `fetchTree`, ...)
    // even where the 2.8 we test against lacks them, so 2.8's "2.8.x" would be a
    // lie in the other direction. Raise it only with the builtins of the newer
    // release in place.
    add("nixVersion", Value::string(&b"2.18.0"[..]), false, &mut names, &mut values);
    add("storeDir", Value::string(io.store_dir().into_bytes()), false, &mut names, &mut values);
    let nix_path: Vec<Value> = settings
        .nix_path
        .iter()
        .map(|entry| {
            let (prefix, path) = match entry.split_once('=') {
                Some((p, rest)) => (p.to_string(), rest.to_string()),
                None => (String::new(), entry.clone()),
            };
            let mut a = AttrsBuilder::new();
            a.insert(Sym::from_str("path"), Value::string(path.into_bytes()), Pos::NONE);
            a.insert(Sym::from_str("prefix"), Value::string(prefix.into_bytes()), Pos::NONE);
            Value::attrs(a)
        })
        .collect();
    add("nixPath", Value::list(nix_path), false, &mut names, &mut values);
    // `derivation` is written in Nix over `derivationStrict`; it is a thunk in the
    // base environment, evaluated on first use.
    let derivation = Value::thunk(ThunkState::Done(Value::Null));
    add("derivation", derivation.clone(), true, &mut names, &mut values);
    builtins_attrs.sort();
    let builtins_value = Value::attrs(AttrsBuilder::new());
    names.push(Sym::from_str("builtins"));
    values.push(builtins_value);
    // `builtins` contains itself.
    let slot = values.len() - 1;
    let base_env = Env::new(None, values.len());
    for v in values {
        base_env.push(v);
    }
    let builtins_thunk = Value::thunk(ThunkState::Done(Value::Null));
    builtins_attrs.insert(Sym::from_str("builtins"), builtins_thunk.clone(), Pos::NONE);
    let builtins_set = Value::attrs(builtins_attrs);
    if let Value::Thunk(t) = &builtins_thunk {
        t.replace(ThunkState::Done(builtins_set.clone()));
    }
    base_env.set(slot, builtins_set);
    (base_env, Scope::new_static(names), derivation)
}

// ----- helpers -----

fn bool_v(b: bool) -> Value {
    Value::Bool(b)
}

fn is_type(e: &mut Eval, a: &[Value], p: Pos, f: fn(&Value) -> bool) -> Result<Value> {
    let v = e.force(&a[0], p)?;
    Ok(bool_v(f(&v)))
}

fn bit(e: &mut Eval, a: &[Value], p: Pos, name: &str, f: fn(i64, i64) -> i64) -> Result<Value> {
    let x = e.force_int(&a[0], p).context_with(|| format!("while evaluating the first argument passed to builtins.{name}"))?;
    let y = e.force_int(&a[1], p).context_with(|| format!("while evaluating the second argument passed to builtins.{name}"))?;
    Ok(Value::Int(f(x, y)))
}

fn round(e: &mut Eval, a: &[Value], p: Pos, name: &str, f: fn(f64) -> f64) -> Result<Value> {
    let arg = e.force(&a[0], p)?;
    match arg {
        Value::Int(n) => {
            // CppNix rounds an integer through a float, and refuses the ones
            // a float cannot hold (its own words, with their tab).
            let r = f(n as f64);
            if !(-9223372036854775808.0..9223372036854775808.0).contains(&r) {
                return Err(eval_error(
                    format!(
                        "Due to a bug (see https://github.com/NixOS/nix/issues/12899) the NixInt argument {n} caused undefined behavior in previous Nix versions.\n\tFuture Nix versions might implement the correct behavior."
                    ),
                    p,
                ));
            }
            if r as i64 != n {
                return Err(eval_error(
                    format!(
                        "Due to a bug (see https://github.com/NixOS/nix/issues/12899) a loss of precision occurred in previous Nix versions because the NixInt argument {n} was rounded to {}.\n\tFuture Nix versions might implement the correct behavior.",
                        r as i64
                    ),
                    p,
                ));
            }
            Ok(Value::Int(n))
        }
        Value::Float(x) => {
            let r = f(x);
            // Current CppNix refuses results outside the integer range.
            if !(-9223372036854775808.0..9223372036854775808.0).contains(&r) {
                return Err(eval_error(
                    format!("NixFloat argument {} is not in the range of NixInt", crate::support::float_format::format_float_for_print(x)),
                    p,
                ));
            }
            Ok(Value::Int(r as i64))
        }
        other => {
            let err = type_error(&other, "a float", p);
            Err(add_context(err, Pos::NONE, || format!("while evaluating the first argument passed to builtins.{name}")))
        }
    }
}

/// Calls a predicate; a result that is not a Boolean gets CppNix's frame
/// naming what returned it (`what`: "the function passed to builtins.all").
fn call_pred(e: &mut Eval, f: &Value, x: &Value, p: Pos, what: &str) -> Result<bool> {
    let r = e.call(f, x.clone(), p)?;
    // The result moves through forcing (no copy to count and drop).
    match e.force_value(r, p) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(type_error(&other, "a Boolean", p)),
        Err(err) => Err(err),
    }
    .map_err(|err| frame_on_type_error(err, Pos::NONE, || format!("while evaluating the return value of {what}")))
}

/// Adds a frame to a type error raised right where a value was checked
/// (CppNix's `errorCtx`), not to errors that come with frames of their own.
#[cold]
fn frame_on_type_error(mut err: Box<EvalError>, pos: Pos, msg: impl FnOnce() -> String) -> Box<EvalError> {
    if err.kind == ErrorKind::Type && err.trace.is_empty() {
        err.trace.push(TraceFrame::new(pos, msg()));
    }
    err
}

/// Where a function value was defined (a lambda's position), for frames.
fn function_pos(f: &Value) -> Pos {
    match f {
        Value::Lambda(c) => c.lambda.pos,
        _ => Pos::NONE,
    }
}

/// CppNix's `coerceToString(pos, v, context, errorCtx, ...)`: a value that
/// cannot be coerced gets the `msg` frame, and so does any failure inside a
/// list's elements (errors raised while forcing `v` itself do not).
pub(crate) fn coerce_ctx(e: &mut Eval, v: &Value, p: Pos, opts: Coerce, msg: &str) -> Result<NixString> {
    let v = e.force(v, p)?;
    e.coerce_to_string(&v, p, opts).map_err(|err| {
        if matches!(v, Value::List(_)) {
            let mut err = err;
            err.trace.push(TraceFrame::new(Pos::NONE, msg));
            err
        } else {
            add_context(err, Pos::NONE, || msg.to_string())
        }
    })
}

/// CppNix's `coerceToPath(pos, v, context, errorCtx)`: any failure while
/// forcing `v` gets the `msg` frame, as does a value that is no absolute path.
fn coerce_path_ctx(e: &mut Eval, v: &Value, p: Pos, msg: &str) -> Result<(Vec<u8>, Context)> {
    let v = e.force(v, p).trace(Pos::NONE, || msg.to_string())?;
    e.coerce_to_path(&v, p).context(msg)
}

/// CppNix's `realisePath`: the path argument of `import`, `readFile`,
/// `readDir`, `hashFile`..., coerced under "while realising the context of a
/// path", then the store paths of its context built.
fn realise_path_arg(e: &mut Eval, v: &Value, p: Pos) -> Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let (path, ctx) = coerce_path_ctx(e, v, p, "while realising the context of a path")?;
    for c in &ctx {
        let c = String::from_utf8_lossy(c).into_owned();
        e.io.realise_context(&c).map_err(|err| io_error(err, Pos::NONE)).trace(Pos::NONE, || {
            format!("while realising the context of path '{}'", String::from_utf8_lossy(&path))
        })?;
    }
    Ok(std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&path)))
}

/// CppNix's `getAttr(name, attrs, errorCtx)`: a missing attribute is an error
/// with the `errorCtx` frame.
fn required_attr(attrs: &Attrs, name: Sym, msg: &str) -> Result<Value> {
    match attrs.get(name) {
        Some(v) => Ok(v.clone()),
        None => Err(missing_attr(name, msg)),
    }
}

#[cold]
fn missing_attr(name: Sym, msg: &str) -> Box<EvalError> {
    let mut err = EvalError::new(ErrorKind::Type, format!("attribute '{name}' missing"), Pos::NONE);
    err.trace.push(TraceFrame::new(Pos::NONE, msg));
    err
}

pub fn to_string_plain(e: &mut Eval, v: &Value, p: Pos) -> Result<NixString> {
    e.coerce_to_string(v, p, Coerce { more: true, copy_to_store: false })
}

// ----- errors and control -----

fn prim_abort(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the error message passed to builtins.abort")?;
    Err(EvalError::new(
        ErrorKind::Abort,
        format!("evaluation aborted with the following error message: '{}'", s.to_str_lossy()),
        Pos::NONE,
    ))
}

fn prim_throw(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // ("builtin.throw" is CppNix's spelling.)
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the error message passed to builtin.throw")?;
    Err(EvalError::new(ErrorKind::Throw, s.to_str_lossy().into_owned(), Pos::NONE))
}

fn prim_add_error_context(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    match e.force(&a[1], p) {
        Ok(v) => Ok(v),
        Err(mut err) => {
            // A message that cannot be coerced replaces the error (CppNix
            // coerces it inside its handler). The frame is shown even where
            // the trace is truncated.
            let coerce = Coerce { more: false, copy_to_store: false };
            let msg = coerce_ctx(e, &a[0], p, coerce, "while evaluating the error message passed to builtins.addErrorContext")?;
            let mut frame = TraceFrame::new(Pos::NONE, msg.to_str_lossy().into_owned());
            frame.always = true;
            err.trace.push(frame);
            Err(err)
        }
    }
}

fn prim_try_eval(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let mut out = AttrsBuilder::with_capacity(2);
    match e.force(&a[0], p) {
        Ok(v) => {
            out.insert(e.s.success, Value::Bool(true), Pos::NONE);
            out.insert(e.s.value, v, Pos::NONE);
        }
        Err(err) if err.is_catchable() => {
            out.insert(e.s.success, Value::Bool(false), Pos::NONE);
            out.insert(e.s.value, Value::Bool(false), Pos::NONE);
        }
        Err(err) => return Err(err),
    }
    Ok(Value::attrs(out))
}

fn prim_deep_seq(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    e.force_deep(&a[0], p)?;
    e.force(&a[1], p)
}

fn prim_trace(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let v = e.force(&a[0], p)?;
    // A string is shown as it is; anything else as current CppNix's value
    // printer shows it (`«lambda @ …»`, `«thunk»`, ...).
    let shown = match &v {
        Value::String(s) => s.as_bytes().to_vec(),
        other => crate::print::print_value_for_trace(e, other),
    };
    let mut line = b"trace: ".to_vec();
    line.extend_from_slice(&shown);
    line.push(b'\n');
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(&line);
    e.force(&a[1], p)
}

fn prim_trace_verbose(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    if e.settings.trace_verbose {
        return prim_trace(e, a, p);
    }
    e.force(&a[1], p)
}

fn prim_warn(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string(&a[0], p).context("while evaluating the first argument; the message passed to builtins.warn")?;
    eprintln!("evaluation warning: {}", s.to_str_lossy());
    if e.settings.abort_on_warn {
        // Not catchable by tryEval: it is there to show the warning's trace.
        return Err(eval_error("aborting to reveal stack trace of warning, as abort-on-warn is set", p));
    }
    e.force(&a[1], p)
}

// ----- attribute sets -----

thread_local! {
    /// Each symbol's name as a string value, made once when first asked for:
    /// `attrNames` and `mapAttrs` then hand out one shared string per name
    /// rather than allocating it again for every set (CppNix points such
    /// strings into its symbol table). Bounded by the symbol table, which is
    /// never freed either.
    static SYM_STRINGS: std::cell::RefCell<Vec<Option<NixString>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The name `sym` as a string value (see `SYM_STRINGS`).
pub(crate) fn sym_string(sym: Sym) -> Value {
    SYM_STRINGS.with(|cache| {
        let mut cache = cache.borrow_mut();
        let i = sym.0 as usize;
        if cache.len() <= i {
            cache.resize(i + 1, None);
        }
        Value::String(cache[i].get_or_insert_with(|| NixString::plain(sym.as_bytes())).clone())
    })
}

fn prim_attr_names(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let attrs = e.force_attrs(&a[0], p).context("while evaluating the argument passed to builtins.attrNames")?;
    let sorted = attrs.sorted_by_name();
    Ok(Value::List(List::from_fn(sorted.len(), |i| sym_string(sorted[i].name))))
}

fn prim_attr_values(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let attrs = e.force_attrs(&a[0], p).context("while evaluating the argument passed to builtins.attrValues")?;
    let sorted = attrs.sorted_by_name();
    Ok(Value::List(List::from_fn(sorted.len(), |i| sorted[i].value.clone())))
}

fn prim_get_attr(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.getAttr")?;
    let attrs = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.getAttr")?;
    let v = required_attr(&attrs, e.name_sym(&name), "in the attribute set under consideration")?;
    e.force(&v, p)
}

fn prim_has_attr(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.hasAttr")?;
    let attrs = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.hasAttr")?;
    Ok(bool_v(attrs.get(e.name_sym(&name)).is_some()))
}

fn prim_unsafe_get_attr_pos(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name =
        e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.unsafeGetAttrPos")?;
    let attrs = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.unsafeGetAttrPos")?;
    match attrs.find(e.name_sym(&name)) {
        Some(attr) => Ok(e.pos_to_value(attr.pos)),
        None => Ok(Value::Null),
    }
}

fn prim_remove_attrs(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let attrs = e.force_attrs(&a[0], p).context("while evaluating the first argument passed to builtins.removeAttrs")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.removeAttrs")?;
    let mut remove: Vec<Sym> = Vec::with_capacity(list.len());
    for item in list.iter() {
        let s = e
            .force_string_no_ctx(item, p)
            .context("while evaluating the values of the second argument passed to builtins.removeAttrs")?;
        remove.push(e.name_sym(&s));
    }
    // Sorted, so that removing many names from a large set stays n log k.
    remove.sort_unstable();
    let mut out = AttrsBuilder::with_capacity(attrs.len());
    for x in attrs.iter() {
        if remove.binary_search(&x.name).is_err() {
            out.push(Attr { name: x.name, value: x.value.clone(), pos: x.pos });
        }
    }
    Ok(Value::attrs(out))
}

fn prim_list_to_attrs(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    const PAIR: &str = "in a {name=...; value=...;} pair";
    let list = e.force_list(&a[0], p).context("while evaluating the argument passed to builtins.listToAttrs")?;
    // A list only this call holds (`listToAttrs (map f xs)`) gives up its
    // elements, each dropped once its name and value are taken: the element
    // sets and their name strings die as they are read, not all at the end.
    let mut owned = take_unshared_list(&a[0], list);
    let len = match &owned {
        Ok(items) => items.len(),
        Err(list) => list.len(),
    };
    // As CppNix: every element's name first, then, in name order, the value
    // of the first element of each name (a later duplicate's value is never
    // looked at). Each element's `value` attribute (found, not forced) is
    // kept with its name, in list order; `missing` lists the indices of the
    // elements without one.
    let mut named: Vec<Attr> = Vec::with_capacity(len);
    let mut missing: Vec<u32> = Vec::new();
    for index in 0..len {
        let item = match &mut owned {
            Ok(items) => std::mem::replace(&mut items[index], Value::Null),
            Err(list) => list[index].clone(),
        };
        let entry =
            e.force_attrs(&item, p).context("while evaluating an element of the list passed to builtins.listToAttrs")?;
        drop(item);
        let Some(name_attr) = entry.find(e.s.name) else {
            return Err(missing_attr(e.s.name, PAIR));
        };
        let (name_v, name_pos) = (name_attr.value.clone(), name_attr.pos);
        let name = e.force_string_no_ctx(&name_v, p).map_err(|err| {
            add_context(err, name_pos, || {
                "while evaluating the `name` attribute of an element of the list passed to builtins.listToAttrs".to_string()
            })
        })?;
        let name = Sym::new(name.as_bytes());
        match entry.find(e.s.value) {
            Some(value) => named.push(Attr { name, value: value.value.clone(), pos: value.pos }),
            None => {
                missing.push(index as u32);
                named.push(Attr { name, value: Value::Null, pos: Pos::NONE });
            }
        }
    }
    drop(owned);
    // Fresh names (`listToAttrs (genList ...)`, a package set) arrive in
    // symbol order, as they were interned: then the entries are the set as
    // they are. Otherwise one sort of (name, index) pairs, the first
    // definition of each name winning (sorted insertion would move O(n)
    // entries per name arriving out of order). An element without a value
    // is an error only as the first of its name.
    if named.windows(2).all(|w| w[0].name < w[1].name) {
        if !missing.is_empty() {
            return Err(missing_attr(e.s.value, PAIR));
        }
        return Ok(Value::attrs(Attrs::from_sorted(named)));
    }
    let mut order: Vec<(Sym, u32)> = named.iter().enumerate().map(|(index, attr)| (attr.name, index as u32)).collect();
    // The stable sort (the pairs are distinct, so it orders them as any
    // sort would) because it merges runs: names mostly fresh but for a few
    // interned earlier (`p1` in a package set whose functions take `p1`)
    // are one long run and a few strays, merged in about one pass where the
    // unstable sort partitioned the whole vector.
    order.sort();
    order.dedup_by_key(|(name, _)| *name);
    if !missing.is_empty() && order.iter().any(|(_, index)| missing.binary_search(index).is_ok()) {
        return Err(missing_attr(e.s.value, PAIR));
    }
    let attrs = order.iter().map(|&(_, index)| named[index as usize].clone()).collect();
    Ok(Value::attrs(Attrs::from_sorted(attrs)))
}

/// The elements of `list`, just forced from `arg`, as a vector this call owns
/// when nothing else can see them: `arg` is a thunk only the call holds (an
/// argument expression), and the list has no holder but that thunk. A builtin
/// walking such a list may then drop each element as soon as it is done with
/// it. Otherwise the shared list back.
fn take_unshared_list(arg: &Value, list: Rc<List>) -> std::result::Result<Vec<Value>, Rc<List>> {
    let Value::Thunk(t) = arg else { return Err(list) };
    if Rc::strong_count(&list) != 2 {
        return Err(list);
    }
    match Thunk::take_unshared(t) {
        Some(taken) => {
            drop(taken);
            let mut list = list;
            let mut items = Vec::new();
            if List::take_items_into(&mut list, &mut items) { Ok(items) } else { Err(list) }
        }
        None => Err(list),
    }
}

fn prim_intersect_attrs(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let x = e.force_attrs(&a[0], p).context("while evaluating the first argument passed to builtins.intersectAttrs")?;
    let y = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.intersectAttrs")?;
    // The attributes of `y` whose names `x` has, looked up from the smaller
    // side: nixpkgs' `callPackage` intersects a function's few arguments with
    // the whole package set, once per package. Both sides are sorted by symbol,
    // so either walk keeps the result sorted.
    let mut out = AttrsBuilder::with_capacity(x.len().min(y.len()));
    if x.len() < y.len() {
        for wanted in x.iter() {
            if let Some(attr) = y.find(wanted.name) {
                out.push(attr.clone());
            }
        }
    } else {
        for attr in y.iter() {
            if x.get(attr.name).is_some() {
                out.push(attr.clone());
            }
        }
    }
    Ok(Value::attrs(out))
}

fn prim_cat_attrs(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.catAttrs")?;
    let sym = e.name_sym(&name);
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.catAttrs")?;
    let mut out = Vec::new();
    for item in list.iter() {
        let attrs = e.force_attrs(item, p).map_err(|err| {
            frame_on_type_error(err, Pos::NONE, || {
                "while evaluating an element in the list passed as second argument to builtins.catAttrs".to_string()
            })
        })?;
        if let Some(v) = attrs.get(sym) {
            out.push(v.clone());
        }
    }
    Ok(Value::list(out))
}

fn prim_map_attrs(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let attrs = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.mapAttrs")?;
    // Each new attribute is one thunk for `f name value`, sharing the function
    // and the old set (CppNix's two applications, `f name` then its value);
    // the thunk names its attribute by index, so a layered set is flattened.
    let attrs = Attrs::flattened(&attrs);
    Ok(Value::Attrs(apply_to_attrs(a[0].clone(), attrs)))
}

/// The set of `func name value` for each attribute of the flat set `attrs`
/// (`mapAttrs`, `zipAttrsWith`): one lazy application per attribute,
/// written straight into the new set's block.
fn apply_to_attrs(func: Value, attrs: Rc<Attrs>) -> Rc<Attrs> {
    let call = Rc::new(MapAttrsCall { func, attrs: attrs.clone() });
    Attrs::from_exact(attrs.len(), |out| {
        for (index, x) in attrs.iter().enumerate() {
            let value = Value::thunk(ThunkState::ApplyToAttr { call: call.clone(), index: index as u32 });
            // CppNix gives the new attributes no position (unsafeGetAttrPos is null).
            out.push(Attr { name: x.name, value, pos: Pos::NONE });
        }
    })
}

fn prim_zip_attrs_with(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.zipAttrsWith")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.zipAttrsWith")?;
    // Every set's attributes in list order, then a stable sort by name: each
    // name's values stay in the order of the sets (the sets are sorted by
    // name already, so this is a merge of runs, with no hashing).
    let mut entries: Vec<(Sym, Value)> = Vec::new();
    for item in list.iter() {
        let attrs = e
            .force_attrs(item, p)
            .context("while evaluating a value of the list passed as second argument to builtins.zipAttrsWith")?;
        entries.extend(attrs.iter().map(|x| (x.name, x.value.clone())));
    }
    entries.sort_by_key(|(name, _)| *name);
    let mut lists = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while let Some((name, first)) = entries.next() {
        let mut values = vec![first];
        while let Some((_, v)) = entries.next_if(|(n, _)| *n == name) {
            values.push(v);
        }
        lists.push(Attr { name, value: Value::list(values), pos: Pos::NONE });
    }
    // Each attribute is `f name values`, one lazy application sharing the
    // function and the set of lists, as `mapAttrs` makes its attributes
    // (CppNix's two applications, `f name` then its list).
    Ok(Value::Attrs(apply_to_attrs(a[0].clone(), Attrs::from_sorted(lists))))
}

fn prim_function_args(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force(&a[0], p)?;
    match &f {
        Value::Lambda(c) => match &c.lambda.formals {
            Some(formals) => {
                let sorted = formals.function_args.get_or_init(|| {
                    let mut out: Vec<Attr> = formals
                        .entries
                        .iter()
                        .map(|formal| Attr { name: formal.name, value: Value::Bool(formal.default.is_some()), pos: formal.pos })
                        .collect();
                    out.sort_by_key(|attr| attr.name);
                    out
                });
                Ok(Value::attrs(Attrs::from_sorted(sorted.clone())))
            }
            None => Ok(Value::attrs(AttrsBuilder::new())),
        },
        Value::PrimOp(_) | Value::PrimOpApp(_) => Ok(Value::attrs(AttrsBuilder::new())),
        // CppNix's own wording (a functor set is not a function here).
        _ => Err(crate::error::EvalError::new(crate::error::ErrorKind::Type, "'functionArgs' requires a function", p)),
    }
}

fn prim_group_by(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.groupBy")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.groupBy")?;
    let mut groups: Vec<(Sym, Vec<Value>)> = Vec::new();
    let mut index: std::collections::HashMap<Sym, usize> = std::collections::HashMap::new();
    for item in list.iter() {
        let k = e.call(&f, item.clone(), p)?;
        let k = e
            .force_string_no_ctx(&k, p)
            .context("while evaluating the return value of the grouping function passed to builtins.groupBy")?;
        let sym = Sym::new(k.as_bytes());
        let i = *index.entry(sym).or_insert_with(|| {
            groups.push((sym, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(item.clone());
    }
    let mut out = AttrsBuilder::with_capacity(groups.len());
    for (name, values) in groups {
        out.push(Attr { name, value: Value::list(values), pos: Pos::NONE });
    }
    out.sort();
    Ok(Value::attrs(out))
}

// ----- lists -----

fn prim_map(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.map")?;
    // The function is checked only when there is something to apply it to.
    if list.is_empty() {
        return Ok(Value::List(list));
    }
    // Each element applies the function's value, not the thunk it came in
    // (forcing an element then needs no look through that thunk).
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.map")?;
    Ok(Value::List(List::from_fn(list.len(), |i| Value::apply_thunk(f.clone(), list[i].clone()))))
}

fn prim_filter(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.filter")?;
    if list.is_empty() {
        return Ok(Value::List(list));
    }
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.filter")?;
    // The verdicts first, one bit each, so that the result gets one exact
    // allocation rather than a vector grown by doubling (and copied on the way).
    let mut keep = vec![0u64; list.len().div_ceil(64)];
    let mut kept = 0;
    for (i, x) in list.iter().enumerate() {
        if call_pred(e, &f, x, p, "the filtering function passed to builtins.filter")? {
            keep[i / 64] |= 1 << (i % 64);
            kept += 1;
        }
    }
    if kept == list.len() {
        return Ok(Value::List(list));
    }
    let mut next = 0;
    Ok(Value::List(List::from_fn(kept, |_| {
        while keep[next / 64] & (1 << (next % 64)) == 0 {
            next += 1;
        }
        next += 1;
        forced_or_same(&list[next - 1])
    })))
}

/// A copy of a list element, taken out of its thunk if that has been forced
/// (the same value, one indirection and one shared thunk fewer for whoever
/// reads the copy).
#[inline]
fn forced_or_same(x: &Value) -> Value {
    match x {
        Value::Thunk(t) => t.value().unwrap_or_else(|| x.clone()),
        other => other.clone(),
    }
}

fn prim_all(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.all")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.all")?;
    for x in list.iter() {
        if !call_pred(e, &f, x, p, "the function passed to builtins.all")? {
            return Ok(bool_v(false));
        }
    }
    Ok(bool_v(true))
}

fn prim_any(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.any")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.any")?;
    for x in list.iter() {
        if call_pred(e, &f, x, p, "the function passed to builtins.any")? {
            return Ok(bool_v(true));
        }
    }
    Ok(bool_v(false))
}

fn prim_elem(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.elem")?;
    for x in list.iter() {
        if e.equal(&a[0], x, p)? {
            return Ok(bool_v(true));
        }
    }
    Ok(bool_v(false))
}

fn prim_elem_at(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // The index is checked before the list, as in CppNix.
    let n = e.force_int(&a[1], p).context("while evaluating the second argument passed to 'builtins.elemAt'")?;
    let list = e.force_list(&a[0], p).context("while evaluating the first argument passed to 'builtins.elemAt'")?;
    if n < 0 || n as usize >= list.len() {
        return Err(eval_error(format!("'builtins.elemAt' called with index {n} on a list of size {}", list.len()), p));
    }
    e.force(&list[n as usize], p)
}

fn prim_head(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[0], p).context("while evaluating the first argument passed to 'builtins.head'")?;
    match list.first() {
        Some(v) => e.force(v, p),
        None => Err(eval_error("'builtins.head' called on an empty list", p)),
    }
}

fn prim_tail(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[0], p).context("while evaluating the first argument passed to 'builtins.tail'")?;
    if list.is_empty() {
        return Err(eval_error("'builtins.tail' called on an empty list", p));
    }
    Ok(Value::list(list[1..].to_vec()))
}

fn prim_concat_lists(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let lists = e.force_list(&a[0], p).context("while evaluating the first argument passed to builtins.concatLists")?;
    let mut out = Vec::new();
    for l in lists.iter() {
        let l = e.force_list(l, p).context("while evaluating a value of the list passed to builtins.concatLists")?;
        out.extend(l.iter().cloned());
    }
    Ok(Value::list(out))
}

fn prim_concat_map(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.concatMap")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.concatMap")?;
    let mut out = Vec::new();
    for x in list.iter() {
        let r = e.call(&f, x.clone(), p)?;
        let l = e.force_list(&r, p).map_err(|err| {
            frame_on_type_error(err, function_pos(&f), || {
                "while evaluating the return value of the function passed to builtins.concatMap".to_string()
            })
        })?;
        drop(r);
        // Each result is dropped as soon as it is copied (keeping them all for one
        // exact allocation cost more memory than the vector's growth).
        let mut l = l;
        // A list nobody else holds (the usual `x: [ ... ]`) gives up its elements.
        if !List::take_items_into(&mut l, &mut out) {
            out.extend(l.iter().cloned());
        }
    }
    Ok(Value::list(out))
}

fn prim_foldl(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // CppNix names it by its C++ name.
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.foldlStrict")?;
    let list = e.force_list(&a[2], p).context("while evaluating the third argument passed to builtins.foldlStrict")?;
    let mut acc = a[1].clone();
    for x in list.iter() {
        acc = e.call2(&f, acc, x.clone(), p)?;
    }
    e.force_value(acc, p)
}

fn prim_gen_list(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let n = e.force_int(&a[1], p).context("while evaluating the second argument passed to builtins.genList")?;
    if n < 0 {
        return Err(eval_error(format!("cannot create list of size {n}"), p));
    }
    // Checked even for an empty list, as CppNix does.
    let f = e.force_function(&a[0], Pos::NONE).context("while evaluating the first argument passed to builtins.genList")?;
    // As in `map`: the function's value, not its thunk.
    // A list's length is 32 bits (more items would need 64 GiB).
    let n = u32::try_from(n).map_err(|_| eval_error(format!("cannot create list of size {n}"), p))? as usize;
    Ok(Value::List(List::from_fn(n, |i| Value::apply_thunk(f.clone(), Value::Int(i as i64)))))
}

fn prim_partition(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.partition")?;
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.partition")?;
    let (mut right, mut wrong) = (Vec::new(), Vec::new());
    for x in list.iter() {
        // Each element is forced before the predicate sees it (CppNix's order).
        e.force(x, p)?;
        if call_pred(e, &f, x, p, "the partition function passed to builtins.partition")? {
            right.push(x.clone());
        } else {
            wrong.push(x.clone());
        }
    }
    let mut out = AttrsBuilder::new();
    out.insert(e.s.right, Value::list(right), Pos::NONE);
    out.insert(e.s.wrong, Value::list(wrong), Pos::NONE);
    Ok(Value::attrs(out))
}

fn prim_sort(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.sort")?;
    if list.is_empty() {
        return Ok(Value::List(list));
    }
    let f = e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.sort")?;
    let mut items: Vec<Value> = list.iter().cloned().collect();
    for it in items.iter_mut() {
        *it = e.force(it, p)?;
    }
    // `lessThan` itself is compared directly, with CppNix's frame for it.
    let is_less_than = matches!(&f, Value::PrimOp(op) if op.name == "lessThan");
    // References are sorted (copying one costs nothing); the comparisons are
    // current CppNix's PeekSort's, in its order (see `support::sort`).
    let mut order: Vec<&Value> = items.iter().collect();
    crate::support::sort::peek_sort(&mut order, |x: &Value, y: &Value| {
        if is_less_than {
            e.less_than(x, y, p).trace(Pos::NONE, || "while evaluating the ordering function passed to builtins.sort".into())
        } else {
            let r = e.call2(&f, x.clone(), y.clone(), p)?;
            e.force_bool(&r, p).context("while evaluating the return value of the sorting function passed to builtins.sort")
        }
    })?;
    Ok(Value::list(order.into_iter().cloned().collect()))
}

fn prim_generic_closure(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let args = e.force_attrs(&a[0], p).context("while evaluating the first argument passed to builtins.genericClosure")?;
    let frame = |msg: &str| TraceFrame::new(Pos::NONE, msg.to_string());
    // A missing attribute is reported in the argument's frame.
    let required = |name: Sym| -> Result<Value> {
        args.get(name).cloned().ok_or_else(|| {
            let mut err = eval_error(format!("attribute '{name}' missing"), Pos::NONE);
            err.trace.push(frame("in the attrset passed as argument to builtins.genericClosure"));
            err
        })
    };
    let start = required(e.s.start_set)?;
    let start = e.force_list(&start, p).map_err(|err| {
        frame_on_type_error(err, Pos::NONE, || {
            "while evaluating the 'startSet' attribute passed as argument to builtins.genericClosure".to_string()
        })
    })?;
    // Nothing to close over: the operator is not even looked up.
    if start.is_empty() {
        return Ok(Value::List(start));
    }
    let op = required(e.s.operator)?;
    let op = e.force_function(&op, p).map_err(|err| {
        frame_on_type_error(err, Pos::NONE, || {
            "while evaluating the 'operator' attribute passed as argument to builtins.genericClosure".to_string()
        })
    })?;
    let show = crate::show_value::show_value;
    let mut work: std::collections::VecDeque<Value> = start.iter().cloned().collect();
    let mut seen_keys: Vec<Value> = Vec::new();
    let mut seen_fast: std::collections::HashSet<(u8, Vec<u8>)> = std::collections::HashSet::new();
    let mut float_seen = false;
    let mut out = Vec::new();
    while let Some(item) = work.pop_front() {
        let in_element = |err: Box<EvalError>, item: &Value| {
            let mut err = err;
            err.trace.push(TraceFrame::new(Pos::NONE, format!("in genericClosure element {}", show(item))));
            err
        };
        let attrs = e.force_attrs(&item, p).map_err(|err| in_element(err, &item))?;
        let Some(key) = attrs.get(e.s.key).cloned() else {
            return Err(in_element(eval_error("attribute 'key' missing", Pos::NONE), &item));
        };
        let key = e.force(&key, p)?;
        // Keys must be mutually comparable, as CppNix keeps them in an ordered
        // set; it compares the new key with those already there (new first,
        // which decides the order of the types in the error message).
        if let Some(first) = seen_keys.first().cloned() {
            if let Err(mut err) = e.less_than(&key, &first, p) {
                err.trace.push(frame(&format!("with element {}", show(&out[0]))));
                err.trace.push(frame(&format!("while comparing element {}", show(&item))));
                return Err(err);
            }
        }
        if matches!(key, Value::Float(_)) {
            float_seen = true;
        }
        let fast = match &key {
            // An integer equals a float of the same value: once floats are
            // keys, integers take the slow path too.
            Value::Int(n) if !float_seen => Some((0u8, n.to_le_bytes().to_vec())),
            Value::String(s) => Some((1, s.as_bytes().to_vec())),
            Value::Path(s) => Some((2, s.as_bytes().to_vec())),
            _ => None,
        };
        let is_new = match fast {
            Some(k) => seen_fast.insert(k),
            None => {
                let mut found = false;
                for k in &seen_keys {
                    if e.equal(k, &key, p)? {
                        found = true;
                        break;
                    }
                }
                !found
            }
        };
        if !is_new {
            continue;
        }
        seen_keys.push(key);
        out.push(item.clone());
        let next = e
            .call(&op, item.clone(), p)
            .and_then(|next| {
                let list = e.force_list(&next, p).map_err(|err| {
                    frame_on_type_error(err, Pos::NONE, || {
                        "while evaluating the return value of the `operator` passed to builtins.genericClosure".to_string()
                    })
                })?;
                // Each new element is forced right away, under this frame.
                for element in list.iter() {
                    e.force(element, p)?;
                }
                Ok(list)
            })
            .map_err(|mut err| {
                err.trace.push(frame(&format!("while calling operator on genericClosure element {}", show(&item))));
                err
            })?;
        work.extend(next.iter().cloned());
    }
    Ok(Value::list(out))
}

// ----- strings -----

fn prim_string_length(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // A string is measured where it is, not copied first.
    let v = e.force(&a[0], p)?;
    if let Value::String(s) = &v {
        return Ok(Value::Int(s.as_bytes().len() as i64));
    }
    // A path is copied to the store first (CppNix's default coercion).
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &v, p, coerce, "while evaluating the argument passed to builtins.stringLength")?;
    Ok(Value::Int(s.as_bytes().len() as i64))
}

fn prim_to_string(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let v = e.force(&a[0], p)?;
    // A string is its own string (context included): shared, not copied.
    if let Value::String(_) = v {
        return Ok(v);
    }
    if let Value::Int(n) = v {
        return Ok(Value::string(crate::print::format_int(n, &mut [0; 20])));
    }
    match e.coerce_to_string(&v, p, Coerce { more: true, copy_to_store: false }) {
        Ok(s) => Ok(Value::String(s)),
        Err(mut error) => {
            // CppNix names the argument for a failed coercion, and for any
            // failure inside a list's elements.
            if matches!(v, Value::List(_)) || (error.kind == ErrorKind::Type && error.trace.is_empty()) {
                error.trace.push(TraceFrame::new(Pos::NONE, "while evaluating the first argument passed to builtins.toString"));
            }
            Err(error)
        }
    }
}

/// `toString v` appended to a string being built, as `prim_to_string` and
/// then the append would, without a string value of its own in between
/// (`"attr${toString i}"`): the same coercion and the same error frames; the
/// caller adds the call's frame, as `call_primop` does.
pub(crate) fn to_string_into(e: &mut Eval, v: &Value, buf: &mut Vec<u8>, ctx: &mut Context) -> Result<()> {
    let v = e.force(v, Pos::NONE)?;
    e.coerce_to_string_into(&v, Pos::NONE, Coerce { more: true, copy_to_store: false }, buf, ctx).map_err(|mut error| {
        // As `prim_to_string` (whose coercion names the argument).
        if !matches!(v, Value::String(_) | Value::Int(_))
            && (matches!(v, Value::List(_)) || (error.kind == ErrorKind::Type && error.trace.is_empty()))
        {
            error.trace.push(TraceFrame::new(Pos::NONE, "while evaluating the first argument passed to builtins.toString"));
        }
        error
    })
}

fn prim_concat_strings_sep(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let sep = e
        .force_string(&a[0], p)
        .context("while evaluating the first argument (the separator string) passed to builtins.concatStringsSep")?;
    let list = e
        .force_list(&a[1], p)
        .context("while evaluating the second argument (the list of strings to concat) passed to builtins.concatStringsSep")?;
    let element_frame = |err| {
        frame_on_type_error(err, Pos::NONE, || {
            "while evaluating one element of the list of strings to concat passed to builtins.concatStringsSep".to_string()
        })
    };
    // The result's size, from the leading elements that are strings: the
    // buffer is then allocated once instead of doubling (and copying) its way
    // up. Forcing stops at the first element that is not a string, which is
    // coerced below before any later element is forced, as before.
    let mut size = sep.as_bytes().len() * list.len().saturating_sub(1);
    for x in list.iter() {
        match e.force(x, p).map_err(element_frame)? {
            Value::String(s) => size += s.as_bytes().len(),
            _ => break,
        }
    }
    let mut buf = Vec::with_capacity(size);
    let mut ctx = sep.context().cloned().unwrap_or_default();
    for (i, x) in list.iter().enumerate() {
        if i > 0 {
            buf.extend_from_slice(sep.as_bytes());
        }
        e.coerce_to_string_into(x, p, Coerce { more: false, copy_to_store: true }, &mut buf, &mut ctx).map_err(element_frame)?;
    }
    // A large result is adopted where it was built, not copied.
    Ok(Value::String(NixString::from_vec(buf, ctx)))
}

fn prim_base_name_of(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let coerce = Coerce { more: false, copy_to_store: false };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the first argument passed to builtins.baseNameOf")?;
    let mut bytes = s.as_bytes();
    if bytes.ends_with(b"/") {
        bytes = &bytes[..bytes.len() - 1];
    }
    let base = match bytes.iter().rposition(|c| *c == b'/') {
        Some(i) => &bytes[i + 1..],
        None => bytes,
    };
    Ok(Value::string_ctx(base.to_vec(), s.context().cloned().unwrap_or_default()))
}

fn prim_dir_of(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let v = e.force(&a[0], p)?;
    let is_path = matches!(v, Value::Path(_));
    let coerce = Coerce { more: false, copy_to_store: false };
    let s = coerce_ctx(e, &v, p, coerce, "while evaluating the first argument passed to 'builtins.dirOf'")?;
    let bytes = s.as_bytes();
    let dir: Vec<u8> = match bytes.iter().rposition(|c| *c == b'/') {
        None => b".".to_vec(),
        Some(0) => b"/".to_vec(),
        Some(i) => bytes[..i].to_vec(),
    };
    if is_path {
        Ok(Value::path(crate::parser::canon_path(&dir)))
    } else {
        Ok(Value::string_ctx(dir, s.context().cloned().unwrap_or_default()))
    }
}

fn prim_to_path(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let (path, ctx) = coerce_path_ctx(e, &a[0], p, "while evaluating the first argument passed to builtins.toPath")?;
    Ok(Value::string_ctx(crate::parser::canon_path(&path), ctx))
}

fn prim_compare_versions(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let x = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.compareVersions")?;
    let y = e.force_string_no_ctx(&a[1], p).context("while evaluating the second argument passed to builtins.compareVersions")?;
    Ok(Value::Int(crate::strings::compare_versions(x.as_bytes(), y.as_bytes()) as i64))
}

fn prim_split_version(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.splitVersion")?;
    let parts = crate::strings::split_version(s.as_bytes()).into_iter().map(Value::string).collect();
    Ok(Value::list(parts))
}

fn prim_parse_drv_name(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.parseDrvName")?;
    let (name, version) = crate::strings::parse_drv_name(s.as_bytes());
    let mut out = AttrsBuilder::new();
    out.insert(e.s.name, Value::string(name), Pos::NONE);
    out.insert(e.s.version, Value::string(version), Pos::NONE);
    Ok(Value::attrs(out))
}

fn prim_hash_string(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let algo = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.hashString")?;
    // The algorithm is checked before the string is forced.
    check_hash_algorithm(e, &algo.to_str_lossy())?;
    let s = e.force_string(&a[1], p).context("while evaluating the second argument passed to builtins.hashString")?;
    let digest = crate::hash::digest(&algo.to_str_lossy(), s.as_bytes()).unwrap_or_default();
    Ok(Value::string(crate::hash::base16(&digest).into_bytes()))
}

/// CppNix's `parseHashAlgo`: one of its algorithms, in its words (BLAKE3
/// needs its experimental feature, and is not implemented here).
fn check_hash_algorithm(e: &Eval, algo: &str) -> Result<()> {
    if algo == "blake3" && !e.settings.experimental_features.iter().any(|f| f == "blake3-hashes") {
        return Err(eval_error(
            "experimental Nix feature 'blake3-hashes' is disabled; add '--extra-experimental-features blake3-hashes' to enable it",
            Pos::NONE,
        ));
    }
    if crate::hash::digest(algo, b"").is_none() {
        return Err(eval_error(
            format!("unknown hash algorithm '{algo}', expect 'blake3', 'md5', 'sha1', 'sha256', or 'sha512'"),
            Pos::NONE,
        ));
    }
    Ok(())
}

/// A file that cannot be read: a missing one in current CppNix's words.
#[cold]
fn read_error(err: crate::io::IoError, path: &std::path::Path) -> Box<EvalError> {
    if matches!(&err, crate::io::IoError::Io(io) if io.kind() == std::io::ErrorKind::NotFound) {
        return eval_error(format!("path '{}' does not exist", path.display()), Pos::NONE);
    }
    eval_error(err.in_context(format_args!("opening file '{}'", path.display())), Pos::NONE)
}

fn prim_hash_file(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let algo = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.hashFile")?;
    check_hash_algorithm(e, &algo.to_str_lossy())?;
    let path = realise_path_arg(e, &a[1], p)?;
    let data = e.io.read_file(&path).map_err(|err| read_error(err, &path))?;
    let digest = crate::hash::digest(&algo.to_str_lossy(), &data).unwrap_or_default();
    Ok(Value::string(crate::hash::base16(&digest).into_bytes()))
}

fn prim_convert_hash(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let args = e.force_attrs(&a[0], p).context("while evaluating the first argument passed to builtins.convertHash")?;
    let string = |e: &mut Eval, v: &Value, name: &str| -> Result<String> {
        let s = e.force_string_no_ctx(v, p).context_with(|| format!("while evaluating the attribute '{name}'"))?;
        Ok(s.to_str_lossy().into_owned())
    };
    let hash_v = required_attr(&args, Sym::from_str("hash"), "while locating the attribute 'hash'")?;
    let hash = string(e, &hash_v, "hash")?;
    let algo = match args.get(Sym::from_str("hashAlgo")).cloned() {
        Some(v) => Some(string(e, &v, "hashAlgo")?),
        None => None,
    };
    let format_v = required_attr(&args, Sym::from_str("toHashFormat"), "while locating the attribute 'toHashFormat'")?;
    let format = string(e, &format_v, "toHashFormat")?;
    let (algo, digest) = crate::hash::parse_any(&hash, algo.as_deref()).map_err(|m| eval_error(m, p))?;
    let out = crate::hash::format(&algo, &digest, &format).map_err(|m| eval_error(m, p))?;
    Ok(Value::string(out.into_bytes()))
}

// ----- string context -----

fn prim_has_context(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string(&a[0], p).context("while evaluating the argument passed to builtins.hasContext")?;
    Ok(bool_v(s.has_context()))
}

fn prim_discard_context(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // A path is copied to the store (CppNix's default coercion).
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the argument passed to builtins.unsafeDiscardStringContext")?;
    Ok(Value::string(s.as_bytes().to_vec()))
}

fn prim_discard_output_dep(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the argument passed to builtins.unsafeDiscardOutputDependency")?;
    let mut ctx = Context::new();
    for c in s.context().into_iter().flatten() {
        match c.strip_prefix(b"=") {
            Some(rest) => ctx.insert(rest.to_vec().into_boxed_slice()),
            None => ctx.insert(c.clone()),
        };
    }
    Ok(Value::string_ctx(s.as_bytes().to_vec(), ctx))
}

fn prim_add_drv_output_deps(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let coerce = Coerce { more: false, copy_to_store: true };
    let s = coerce_ctx(e, &a[0], p, coerce, "while evaluating the argument passed to builtins.addDrvOutputDependencies")?;
    let ctx = s.context().cloned().unwrap_or_default();
    if ctx.len() != 1 {
        return Err(eval_error(
            format!("context of string '{}' must have exactly one element, but has {}", s.to_str_lossy(), ctx.len()),
            p,
        ));
    }
    let only = ctx.iter().next().cloned().unwrap_or_default();
    // Already "all outputs of this derivation": kept, so the builtin is idempotent.
    if only.starts_with(b"=") {
        return Ok(Value::string_ctx(s.as_bytes().to_vec(), ctx));
    }
    if let Some(rest) = only.strip_prefix(b"!") {
        let output = rest.split(|&b| b == b'!').next().unwrap_or_default();
        return Err(eval_error(
            format!(
                "`addDrvOutputDependencies` can only act on derivations, not on a derivation output such as '{}'",
                String::from_utf8_lossy(output)
            ),
            p,
        ));
    }
    if !only.ends_with(b".drv") {
        return Err(eval_error(
            format!("path '{}' is not a derivation", String::from_utf8_lossy(context_store_path(&String::from_utf8_lossy(&only)).as_bytes())),
            p,
        ));
    }
    let mut new_ctx = Context::new();
    let mut elem = b"=".to_vec();
    elem.extend_from_slice(&only);
    new_ctx.insert(elem.into_boxed_slice());
    Ok(Value::string_ctx(s.as_bytes().to_vec(), new_ctx))
}

fn prim_get_context(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string(&a[0], p).context("while evaluating the argument passed to builtins.getContext")?;
    // path -> (path: bool, allOutputs: bool, outputs: [names])
    let mut info: std::collections::BTreeMap<Vec<u8>, (bool, bool, Vec<Vec<u8>>)> = Default::default();
    for c in s.context().into_iter().flatten() {
        if let Some(rest) = c.strip_prefix(b"=") {
            info.entry(rest.to_vec()).or_default().1 = true;
        } else if let Some(rest) = c.strip_prefix(b"!") {
            let i = rest.iter().position(|b| *b == b'!').unwrap_or(rest.len());
            let output = rest[..i].to_vec();
            let drv = rest.get(i + 1..).unwrap_or(&[]).to_vec();
            info.entry(drv).or_default().2.push(output);
        } else {
            info.entry(c.to_vec()).or_default().0 = true;
        }
    }
    let mut out = AttrsBuilder::new();
    for (path, (is_path, all, outputs)) in info {
        let mut entry = AttrsBuilder::new();
        if is_path {
            entry.insert(e.s.path, Value::Bool(true), Pos::NONE);
        }
        if all {
            entry.insert(e.s.all_outputs, Value::Bool(true), Pos::NONE);
        }
        if !outputs.is_empty() {
            let mut outputs = outputs;
            outputs.sort();
            entry.insert(e.s.outputs, Value::list(outputs.into_iter().map(Value::string).collect()), Pos::NONE);
        }
        out.insert(Sym::new(&path), Value::attrs(entry), Pos::NONE);
    }
    Ok(Value::attrs(out))
}

fn prim_append_context(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string(&a[0], p).context("while evaluating the first argument passed to builtins.appendContext")?;
    let attrs = e.force_attrs(&a[1], p).context("while evaluating the second argument passed to builtins.appendContext")?;
    let mut ctx = s.context().cloned().unwrap_or_default();
    let store_dir = e.io.store_dir();
    // Attribute frames carry the attribute's position (CppNix's forceX(v, attr.pos, errorCtx)).
    let at = |pos: Pos, msg: &'static str| move |err| add_context(err, pos, || msg.to_string());
    for entry in attrs.iter() {
        let path = entry.name.as_bytes();
        if !path.starts_with(store_dir.as_bytes()) {
            return Err(eval_error(
                format!("context key '{}' is not a store path", String::from_utf8_lossy(path)),
                entry.pos,
            ));
        }
        let info = e.force_attrs(&entry.value, p).map_err(at(entry.pos, "while evaluating the value of a string context"))?;
        if let Some(x) = info.find(e.s.path) {
            let (v, pos) = (x.value.clone(), x.pos);
            if e.force_bool(&v, p).map_err(at(pos, "while evaluating the `path` attribute of a string context"))? {
                ctx.insert(path.to_vec().into_boxed_slice());
            }
        }
        if let Some(x) = info.find(e.s.all_outputs) {
            let (v, pos) = (x.value.clone(), x.pos);
            if e.force_bool(&v, p).map_err(at(pos, "while evaluating the `allOutputs` attribute of a string context"))? {
                if !path.ends_with(b".drv") {
                    return Err(eval_error(
                        format!("tried to add all-outputs context of {}, which is not a derivation, to a string", String::from_utf8_lossy(path)),
                        entry.pos,
                    ));
                }
                let mut elem = b"=".to_vec();
                elem.extend_from_slice(path);
                ctx.insert(elem.into_boxed_slice());
            }
        }
        if let Some(x) = info.find(e.s.outputs) {
            let (v, pos) = (x.value.clone(), x.pos);
            let outputs = e.force_list(&v, p).map_err(at(pos, "while evaluating the `outputs` attribute of a string context"))?;
            if !outputs.is_empty() && !path.ends_with(b".drv") {
                return Err(eval_error(
                    format!("tried to add derivation output context of {}, which is not a derivation, to a string", String::from_utf8_lossy(path)),
                    entry.pos,
                ));
            }
            for o in outputs.iter() {
                let name =
                    e.force_string_no_ctx(o, p).map_err(at(pos, "while evaluating an output name within a string context"))?;
                let mut elem = b"!".to_vec();
                elem.extend_from_slice(name.as_bytes());
                elem.push(b'!');
                elem.extend_from_slice(path);
                ctx.insert(elem.into_boxed_slice());
            }
        }
    }
    Ok(Value::string_ctx(s.as_bytes().to_vec(), ctx))
}

// ----- files, paths, imports -----

/// Where CppNix 2.8 puts its built-in expressions (`<nix/fetchurl.nix>`).
const CORE_PKGS_PREFIX: &str = "/__corepkgs__/";

fn prim_import(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let path = realise_path_arg(e, &a[0], p)?;
    if path.as_os_str() == "/__corepkgs__/fetchurl.nix" {
        // Parsed from memory with base directory `/`, as CppNix does.
        let expr = e.parse_string(include_str!("corepkgs/fetchurl.nix"), std::path::Path::new("/"))?;
        return e.eval_expr(expr);
    }
    e.eval_file(&path, p)
}

fn prim_scoped_import(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    // The path first, then the scope (CppNix's order).
    let mut path = realise_path_arg(e, &a[1], p)?;
    let scope_attrs = e.force_attrs(&a[0], p).context("while evaluating the first argument passed to builtins.scopedImport")?;
    if e.io.is_directory(&path).map_err(|err| io_error(err, p))? {
        path.push("default.nix");
    }
    let src = e.io.read_file(&path).map_err(|err| io_error(err, p))?;
    let names: Vec<Sym> = scope_attrs.iter().map(|x| x.name).collect();
    let scope = Scope::new_static(names);
    let base = path.parent().unwrap_or(std::path::Path::new("/")).to_path_buf();
    let expr = e.parse_with_scope(&src, crate::pos::Origin::File(path.clone()), &base, Some(&scope))?;
    let env = Env::new(Some(e.base_env.clone()), scope_attrs.len());
    for x in scope_attrs.iter() {
        env.push(x.value.clone());
    }
    e.eval(expr, &env)
}

fn prim_read_file(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let path = realise_path_arg(e, &a[0], p)?;
    let data = e.io.read_file(&path).map_err(|err| read_error(err, &path))?;
    if data.contains(&0) {
        return Err(eval_error(
            format!("the contents of the file '{}' cannot be represented as a Nix string", path.display()),
            p,
        ));
    }
    // A file in the store keeps as context those references of its store
    // path whose hash parts occur in the contents (current CppNix re-scans;
    // 2.8 took every reference).
    let mut ctx = Context::new();
    let (raw, _) = e.coerce_to_path(&a[0], p)?;
    let store_dir = e.io.store_dir();
    if raw.starts_with(store_dir.as_bytes()) && raw.len() > store_dir.len() + 1 {
        let rest = &raw[store_dir.len() + 1..];
        let end = rest.iter().position(|c| *c == b'/').unwrap_or(rest.len());
        let store_path = format!("{store_dir}/{}", String::from_utf8_lossy(&rest[..end]));
        for reference in e.io.store_path_references(&store_path) {
            let base = reference.rsplit('/').next().unwrap_or("");
            let hash_part = &base.as_bytes()[..base.len().min(32)];
            if hash_part.len() == 32 && data.windows(32).any(|w| w == hash_part) {
                ctx.insert(reference.into_bytes().into_boxed_slice());
            }
        }
    }
    Ok(Value::string_ctx(data, ctx))
}

fn prim_read_dir(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let path = realise_path_arg(e, &a[0], p)?;
    let entries = e.io.read_dir(&path).map_err(|err| {
        if matches!(&err, crate::io::IoError::Io(io) if io.kind() == std::io::ErrorKind::NotFound) {
            return eval_error(format!("path '{}' does not exist", path.display()), Pos::NONE);
        }
        eval_error(err.in_context(format_args!("opening directory '{}'", path.display())), Pos::NONE)
    })?;
    let mut out = AttrsBuilder::with_capacity(entries.len());
    for (name, ft) in entries {
        out.push(Attr { name: Sym::new(&name), value: Value::string(ft.nix_name().as_bytes()), pos: Pos::NONE });
    }
    out.sort();
    Ok(Value::attrs(out))
}

fn prim_read_file_type(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let path = realise_path_arg(e, &a[0], p)?;
    let ft = e.io.file_type(&path).map_err(|err| eval_error(err.in_context(format_args!("getting status of '{}'", path.display())), Pos::NONE))?;
    Ok(Value::string(ft.nix_name().as_bytes()))
}

fn prim_path_exists(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let v = e.force(&a[0], p)?;
    let path = realise_path_arg(e, &v, p)?;
    // A trailing slash (or `/.`) requires a directory, as CppNix checks.
    let raw = match &v {
        Value::String(s) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    };
    let must_be_dir = raw.ends_with(b"/") || raw.ends_with(b"/.");
    if must_be_dir {
        return Ok(bool_v(e.io.is_directory(&path).unwrap_or(false)));
    }
    Ok(bool_v(e.io.path_exists(&path).map_err(|err| io_error(err, p))?))
}

fn prim_find_file(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let search_path = e.force_list(&a[0], p).context("while evaluating the first argument passed to builtins.findFile")?;
    // Every entry is checked before the name is looked at (CppNix builds the
    // whole search path first).
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(search_path.len());
    for entry in search_path.iter() {
        let attrs =
            e.force_attrs(entry, p).context("while evaluating an element of the list passed to builtins.findFile")?;
        let prefix = match attrs.get(e.s.prefix).cloned() {
            Some(v) => e
                .force_string_no_ctx(&v, p)
                .context("while evaluating the `prefix` attribute of an element of the list passed to builtins.findFile")?
                .as_bytes()
                .to_vec(),
            None => Vec::new(),
        };
        let path_v = required_attr(&attrs, e.s.path, "in an element of the __nixPath")?;
        let coerce = Coerce { more: false, copy_to_store: false };
        let path = coerce_ctx(
            e,
            &path_v,
            p,
            coerce,
            "while evaluating the `path` attribute of an element of the list passed to builtins.findFile",
        )?;
        entries.push((prefix, path.as_bytes().to_vec()));
    }
    let wanted = e.force_string_no_ctx(&a[1], p).context("while evaluating the second argument passed to builtins.findFile")?;
    let wanted = wanted.as_bytes().to_vec();
    for (prefix, path) in entries {
        let mut path = path;
        if let Ok(text) = std::str::from_utf8(&path)
            && crate::io::is_pseudo_url(text)
        {
            match e.io.resolve_search_path_url(text) {
                Some(resolved) => path = resolved.into_bytes(),
                None => continue,
            }
        }
        let rest: Vec<u8> = if prefix.is_empty() {
            wanted.clone()
        } else if wanted == prefix {
            Vec::new()
        } else if wanted.starts_with(&prefix) && wanted.get(prefix.len()) == Some(&b'/') {
            wanted[prefix.len() + 1..].to_vec()
        } else {
            continue;
        };
        let mut candidate = path;
        if !rest.is_empty() {
            candidate.push(b'/');
            candidate.extend_from_slice(&rest);
        }
        if !candidate.starts_with(b"/") {
            // Relative search path entries (and URLs) are not resolved here.
            continue;
        }
        use std::os::unix::ffi::OsStrExt;
        let cp = std::path::Path::new(std::ffi::OsStr::from_bytes(&candidate));
        if e.io.path_exists(cp).unwrap_or(false) {
            return Ok(Value::path(crate::parser::canon_path(&candidate)));
        }
    }
    // CppNix's corepkgs: `<nix/fetchurl.nix>` when no search path entry has it.
    if let Some(rest) = wanted.strip_prefix(b"nix/") {
        return Ok(Value::path([CORE_PKGS_PREFIX.as_bytes(), rest].concat()));
    }
    // CppNix raises a `ThrownError` here, which `tryEval` catches.
    Err(EvalError::new(
        ErrorKind::Throw,
        format!(
            "file '{}' was not found in the Nix search path (add it using $NIX_PATH or -I)",
            String::from_utf8_lossy(&wanted)
        ),
        p,
    ))
}

fn prim_filter_source(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let (path, _) =
        coerce_path_ctx(e, &a[1], p, "while evaluating the second argument (the path to filter) passed to 'builtins.filterSource'")?;
    e.force_function(&a[0], p).context("while evaluating the first argument passed to builtins.filterSource")?;
    let name = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    add_path(e, &path, &name, Some(a[0].clone()), true, None, p)
}

fn prim_path(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let args = e.force_attrs(&a[0], p).context("while evaluating the argument passed to 'builtins.path'")?;
    let mut path = None;
    let mut name = String::new();
    let mut filter = None;
    let mut recursive = true;
    let mut sha256 = None;
    // Attribute by attribute in the set's order, each checked with a frame
    // at its own position, as CppNix does.
    for attr in args.iter() {
        let at = |msg: &'static str| move |err| add_context(err, attr.pos, || msg.to_string());
        if attr.name == e.s.path {
            let (raw, _) = e
                .force(&attr.value, p)
                .trace(attr.pos, || "while evaluating the 'path' attribute passed to 'builtins.path'".to_string())
                .and_then(|v| e.coerce_to_path(&v, p))
                .map_err(at("while evaluating the 'path' attribute passed to 'builtins.path'"))?;
            path = Some(raw);
        } else if attr.name == e.s.name {
            let s = e
                .force_string_no_ctx(&attr.value, p)
                .map_err(at("while evaluating the `name` attribute passed to builtins.path"))?;
            name = s.to_str_lossy().into_owned();
        } else if attr.name == e.s.filter {
            let f = e
                .force_function(&attr.value, p)
                .map_err(at("while evaluating the `filter` parameter passed to builtins.path"))?;
            filter = Some(f);
        } else if attr.name == e.s.recursive {
            recursive =
                e.force_bool(&attr.value, p).map_err(at("while evaluating the `recursive` attribute passed to builtins.path"))?;
        } else if attr.name == e.s.sha256 {
            let s = e
                .force_string_no_ctx(&attr.value, p)
                .map_err(at("while evaluating the `sha256` attribute passed to builtins.path"))?;
            sha256 = Some(s.to_str_lossy().into_owned());
        } else {
            return Err(eval_error(format!("unsupported argument '{}' to 'builtins.path'", attr.name), attr.pos));
        }
    }
    let Some(path) = path else {
        return Err(eval_error("missing required 'path' attribute in the first argument to 'builtins.path'", p));
    };
    if name.is_empty() {
        name = std::path::Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&path))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    add_path(e, &path, &name, filter, recursive, sha256, p)
}

/// Adds a path to the store (`filterSource`, `path`); any failure gets
/// CppNix's "while adding path" frame.
fn add_path(
    e: &mut Eval,
    path: &[u8],
    name: &str,
    filter: Option<Value>,
    recursive: bool,
    expected_sha256: Option<String>,
    p: Pos,
) -> Result<Value> {
    add_path_inner(e, path, name, filter, recursive, expected_sha256, p)
        .trace(Pos::NONE, || format!("while adding path '{}'", String::from_utf8_lossy(path)))
}

fn add_path_inner(
    e: &mut Eval,
    path: &[u8],
    name: &str,
    filter: Option<Value>,
    recursive: bool,
    expected_sha256: Option<String>,
    p: Pos,
) -> Result<Value> {
    use std::os::unix::ffi::OsStrExt;
    let fs_path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(path));
    let io = e.io.clone();
    let with_context = |store_path: String| {
        let mut ctx = Context::new();
        ctx.insert(store_path.clone().into_bytes().into_boxed_slice());
        Value::string_ctx(store_path.into_bytes(), ctx)
    };
    // `sha256`: the path is known in advance. CppNix trusts a valid store path
    // of that name and hash without reading the source; otherwise it adds the
    // source and insists that it lands there.
    let expected_store_path = match &expected_sha256 {
        Some(hash) => {
            let digest = expected_sha256_digest(hash).map_err(|msg| eval_error(msg, p))?;
            Some(fixed_output_store_path(&io.store_dir(), name, recursive, &digest))
        }
        None => None,
    };
    if let Some(expected) = &expected_store_path {
        if io.is_valid_store_path(expected).unwrap_or(false) {
            return Ok(with_context(expected.clone()));
        }
    }
    let store_path = match filter {
        None => io.add_to_store(&fs_path, name, recursive, None).map_err(|err| io_error(err, p))?,
        Some(f) => {
            let f = e.force_function(&f, p)?;
            let mut failure: Option<Box<EvalError>> = None;
            let mut cb = |child: &std::path::Path, ft: FileType| -> std::result::Result<bool, crate::io::IoError> {
                let child_v = Value::string(child.as_os_str().as_bytes().to_vec());
                let type_v = Value::string(ft.nix_name().as_bytes());
                let result = e.call_n(&f, &[child_v, type_v], p).and_then(|r| {
                    e.force_bool(&r, p).context("while evaluating the return value of the path filter function")
                });
                match result {
                    Ok(b) => Ok(b),
                    Err(err) => {
                        let msg = err.msg.clone();
                        failure = Some(err);
                        Err(crate::io::IoError::Message(msg))
                    }
                }
            };
            let r = io.add_to_store(&fs_path, name, recursive, Some(&mut cb));
            if let Some(err) = failure {
                return Err(err);
            }
            r.map_err(|err| io_error(err, p))?
        }
    };
    if expected_store_path.is_some_and(|expected| expected != store_path) {
        return Err(eval_error(
            format!("store path mismatch in (possibly filtered) path added from '{}'", fs_path.display()),
            p,
        ));
    }
    Ok(with_context(store_path))
}

/// The `sha256` of `builtins.path`, as CppNix's `newHashAllowEmpty`: any
/// encoding of a SHA-256 hash; an empty string is the all-zero hash, with
/// CppNix's warning.
fn expected_sha256_digest(hash: &str) -> std::result::Result<Vec<u8>, String> {
    if hash.is_empty() {
        let zero = vec![0u8; 32];
        eprintln!("warning: found empty hash, assuming 'sha256-{}'", crate::hash::base64(&zero));
        return Ok(zero);
    }
    let (algo, digest) = crate::hash::parse_any(hash, Some("sha256"))?;
    if algo != "sha256" {
        return Err(format!("hash '{hash}' should have type 'sha256'"));
    }
    Ok(digest)
}

/// CppNix's `makeFixedOutputPath` for a SHA-256 hash: a recursive (NAR) hash
/// makes a `source` path, a flat one an `output:out` path over the
/// `fixed:out:` fingerprint.
fn fixed_output_store_path(store_dir: &str, name: &str, recursive: bool, sha256: &[u8]) -> String {
    use crate::hash::{base16, digest, nix32};
    let hex = base16(sha256);
    let fingerprint = if recursive {
        format!("source:sha256:{hex}:{store_dir}:{name}")
    } else {
        let inner = digest("sha256", format!("fixed:out:sha256:{hex}:").as_bytes()).unwrap_or_default();
        format!("output:out:sha256:{}:{store_dir}:{name}", base16(&inner))
    };
    let full = digest("sha256", fingerprint.as_bytes()).unwrap_or_default();
    // Compressed to 160 bits by XOR-folding, as store path hashes are.
    let mut compressed = [0u8; 20];
    for (i, byte) in full.iter().enumerate() {
        compressed[i % 20] ^= byte;
    }
    format!("{store_dir}/{}-{name}", nix32(&compressed))
}

fn prim_store_path(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    if e.settings.pure_eval {
        return Err(eval_error("'builtins.storePath' is not allowed in pure evaluation mode", p));
    }
    let (path, _) = coerce_path_ctx(e, &a[0], p, "while evaluating the first argument passed to 'builtins.storePath'")?;
    let s = String::from_utf8_lossy(&path).into_owned();
    let store_dir = e.io.store_dir();
    if !s.starts_with(&format!("{store_dir}/")) {
        return Err(eval_error(format!("path '{s}' is not in the Nix store"), p));
    }
    let rest = &s[store_dir.len() + 1..];
    let base = format!("{}/{}", store_dir, rest.split('/').next().unwrap_or(""));
    // As CppNix, read-only mode does not insist that the path is valid (the
    // question still checks that the path may be accessed at all).
    if !e.io.is_valid_store_path(&base).map_err(|err| io_error(err, p))? && !e.io.read_only() {
        return Err(eval_error(format!("path '{base}' is not valid"), p));
    }
    let mut ctx = Context::new();
    ctx.insert(base.into_bytes().into_boxed_slice());
    Ok(Value::string_ctx(path, ctx))
}

fn prim_to_file(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.toFile")?;
    let contents = e.force_string(&a[1], p).context("while evaluating the second argument passed to builtins.toFile")?;
    let mut refs = Vec::new();
    // The element named in the error is the first one in CppNix's order of
    // context elements: `=DRV` (deep) before `!OUTPUT!DRV` (by derivation,
    // then output).
    let mut offending: Option<(u8, String, String)> = None;
    for c in contents.context().into_iter().flatten() {
        let c = String::from_utf8_lossy(c).into_owned();
        let key = if let Some(drv) = c.strip_prefix('=') {
            (0u8, drv.to_string(), String::new())
        } else if let Some(rest) = c.strip_prefix('!') {
            let (output, drv) = rest.split_once('!').unwrap_or(("", rest));
            (1u8, drv.to_string(), output.to_string())
        } else {
            refs.push(c);
            continue;
        };
        if offending.as_ref().is_none_or(|known| key < *known) {
            offending = Some(key);
        }
    }
    if let Some((kind, drv, output)) = offending {
        let element = if kind == 0 { format!("={drv}") } else { format!("!{output}!{drv}") };
        return Err(eval_error(
            format!(
                "files created by builtins.toFile may not reference derivations, but {} references {element}",
                name.to_str_lossy()
            ),
            p,
        ));
    }
    let path = e.io.to_file(&name.to_str_lossy(), contents.as_bytes(), &refs).map_err(|err| io_error(err, p))?;
    let mut ctx = Context::new();
    ctx.insert(path.clone().into_bytes().into_boxed_slice());
    Ok(Value::string_ctx(path.into_bytes(), ctx))
}

fn prim_get_env(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let name = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.getEnv")?;
    if e.settings.pure_eval || e.settings.restrict_eval {
        return Ok(Value::string(Vec::new()));
    }
    let v = std::env::var_os(&*name.to_str_lossy()).unwrap_or_default();
    use std::os::unix::ffi::OsStrExt;
    Ok(Value::string(v.as_bytes().to_vec()))
}

fn prim_placeholder(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let output = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.placeholder")?;
    let mut input = b"nix-output:".to_vec();
    input.extend_from_slice(output.as_bytes());
    let digest = crate::hash::digest("sha256", &input).unwrap_or_default();
    Ok(Value::string(format!("/{}", crate::hash::nix32(&digest)).into_bytes()))
}

fn fetch(e: &mut Eval, kind: &str, a: &[Value], p: Pos) -> Result<Value> {
    use crate::io::FetchValue;
    let who = match kind {
        "file" => "fetchurl",
        "tarball" => "fetchTarball",
        "git" => "fetchGit",
        "hg" => "fetchMercurial",
        _ => "fetchTree",
    };
    let v = e.force(&a[0], p)?;
    let mut args: Vec<(String, FetchValue)> = Vec::new();
    if kind == "file" || kind == "tarball" || kind == "hg" {
        // CppNix's `fetch` (and `prim_fetchMercurial`): a URL or a set of known
        // string attributes, none of which may have a context.
        let allowed: &[&str] = if kind == "hg" { &["url", "rev", "name"] } else { &["url", "sha256", "name"] };
        match &v {
            Value::Attrs(attrs) => {
                for x in attrs.iter() {
                    let name = x.name.to_string();
                    if !allowed.contains(&name.as_str()) {
                        return Err(eval_error(format!("unsupported argument '{name}' to '{who}'"), x.pos));
                    }
                    let text = e.force_string_no_ctx(&x.value, x.pos)?;
                    args.push((name, FetchValue::String(text.to_str_lossy().into_owned())));
                }
                if !args.iter().any(|(name, _)| name == "url") {
                    return Err(eval_error("'url' argument required", p));
                }
            }
            other => {
                let text = e.force_string_no_ctx(other, p)?;
                args.push(("url".to_string(), FetchValue::String(text.to_str_lossy().into_owned())));
            }
        }
    } else {
        // CppNix's `fetchTree`: strings (and paths, not copied), Booleans and
        // integers; `type` comes from the caller (`fetchGit`) or the set.
        match &v {
            Value::Attrs(attrs) => {
                match (attrs.get(e.s.type_).cloned(), kind) {
                    (Some(_), "git") => return Err(eval_error("unexpected attribute 'type'", p)),
                    (None, "tree") => return Err(eval_error("attribute 'type' is missing in call to 'fetchTree'", p)),
                    (None, _) => args.push(("type".to_string(), FetchValue::String(kind.to_string()))),
                    (Some(t), _) => {
                        let text = e.force_string_no_ctx(&t, p)?;
                        args.push(("type".to_string(), FetchValue::String(text.to_str_lossy().into_owned())));
                    }
                }
                for x in attrs.iter() {
                    let name = x.name.to_string();
                    if name == "type" {
                        continue;
                    }
                    let value = e.force(&x.value, x.pos)?;
                    let arg = match &value {
                        Value::String(_) | Value::Path(_) => {
                            let text = e.coerce_to_string(&value, x.pos, Coerce { more: false, copy_to_store: false })?;
                            FetchValue::String(text.to_str_lossy().into_owned())
                        }
                        Value::Bool(b) => FetchValue::Bool(*b),
                        Value::Int(n) => FetchValue::Int(*n),
                        other => {
                            return Err(EvalError::new(
                                ErrorKind::Type,
                                format!(
                                    "fetchTree argument '{name}' is {} while a string, Boolean or integer is expected",
                                    other.show_type()
                                ),
                                Pos::NONE,
                            ));
                        }
                    };
                    args.push((name, arg));
                }
                if kind == "tree" && args.iter().any(|(name, _)| name == "name") {
                    return Err(eval_error("attribute 'name' isn't supported in call to 'fetchTree'", p));
                }
            }
            other => {
                let text = e.coerce_to_string(other, p, Coerce { more: false, copy_to_store: false })?;
                if kind == "git" {
                    args.push(("type".to_string(), FetchValue::String("git".to_string())));
                }
                args.push(("url".to_string(), FetchValue::String(text.to_str_lossy().into_owned())));
            }
        }
    }
    if e.settings.pure_eval {
        let has = |name: &str| args.iter().any(|(n, _)| n == name);
        if (kind == "file" || kind == "tarball") && !has("sha256") {
            return Err(eval_error(format!("in pure evaluation mode, '{who}' requires a 'sha256' argument"), Pos::NONE));
        }
        // CppNix's `isLocked`: a Git input needs its `rev`, others their `narHash`.
        // Git and forge (`github`, `gitlab`, `sourcehut`) inputs are locked by a `rev`.
        let is_git = args.iter().any(|(n, v)| {
            n == "type" && matches!(v, FetchValue::String(t) if ["git", "github", "gitlab", "sourcehut"].contains(&t.as_str()))
        });
        if (kind == "git" || kind == "tree") && !(if is_git { has("rev") } else { has("narHash") }) {
            return Err(eval_error("in pure evaluation mode, 'fetchTree' requires a locked input", p));
        }
    }
    let result = e.io.fetch(kind, &args).map_err(|err| io_error(err, p))?;
    let mut out = AttrsBuilder::new();
    let mut out_path = None;
    for (name, value) in result {
        let v = match value {
            FetchValue::String(text) if name == "outPath" => {
                let mut ctx = Context::new();
                ctx.insert(text.clone().into_bytes().into_boxed_slice());
                Value::string_ctx(text.into_bytes(), ctx)
            }
            FetchValue::String(text) => Value::string(text.into_bytes()),
            FetchValue::Bool(b) => bool_v(b),
            FetchValue::Int(n) => Value::Int(n),
        };
        if name == "outPath" {
            out_path = Some(v.clone());
        }
        out.insert(Sym::from_str(&name), v, Pos::NONE);
    }
    if kind == "file" || kind == "tarball" {
        return Ok(out_path.unwrap_or(Value::Null));
    }
    Ok(Value::attrs(out))
}

// ----- serialisation -----

fn prim_to_json(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let mut ctx = Context::new();
    let mut out = Vec::new();
    crate::print::to_json(e, &a[0], p, &mut out, &mut ctx)?;
    // The output is kept where it was written, not copied.
    Ok(Value::String(NixString::from_vec(out, ctx)))
}

fn prim_to_xml(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let mut ctx = Context::new();
    let out = crate::print::to_xml(e, &a[0], p, &mut ctx)?;
    Ok(Value::string_ctx(out.into_bytes(), ctx))
}

// ----- flake references -----

fn prim_parse_flake_ref(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    use crate::support::flakeref::{FlakeAttr, parse_flake_ref};
    let s = e.force_string_no_ctx(&a[0], p).context("while evaluating the argument passed to builtins.parseFlakeRef")?;
    let parsed = parse_flake_ref(&s.to_str_lossy()).map_err(|m| eval_error(m, p))?;
    let mut out = AttrsBuilder::with_capacity(parsed.len());
    for (name, value) in parsed {
        let value = match value {
            FlakeAttr::String(s) => Value::string(s.into_bytes()),
            FlakeAttr::Int(n) => Value::Int(n as i64),
            FlakeAttr::Bool(b) => Value::Bool(b),
        };
        out.insert(Sym::from_str(&name), value, Pos::NONE);
    }
    Ok(Value::attrs(out))
}

fn prim_flake_ref_to_string(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    use crate::support::flakeref::{FlakeAttr, flake_ref_to_string};
    let attrs = e.force_attrs(&a[0], p).context("while evaluating the argument passed to builtins.flakeRefToString")?;
    let mut context = Context::new();
    let mut flake_attrs = Vec::new();
    // In the set's own order, as CppNix checks them (then sorted by name).
    for attr in attrs.iter() {
        let name = attr.name.as_str().into_owned();
        let value = match e.force(&attr.value, attr.pos)? {
            Value::String(s) => {
                for c in s.context().into_iter().flatten() {
                    context.insert(c.clone());
                }
                FlakeAttr::String(s.to_str_lossy().into_owned())
            }
            Value::Int(n) if n < 0 => {
                return Err(eval_error(format!("negative value given for flake ref attr {name}: {n}"), p));
            }
            Value::Int(n) => FlakeAttr::Int(n as u64),
            Value::Bool(b) => FlakeAttr::Bool(b),
            other => {
                return Err(eval_error(
                    format!(
                        "flake reference attribute sets may only contain integers, Booleans, and strings, but attribute '{name}' is {}",
                        other.show_type()
                    ),
                    p,
                ));
            }
        };
        flake_attrs.push((name, value));
    }
    flake_attrs.sort_by(|x, y| x.0.cmp(&y.0));
    let url = flake_ref_to_string(&flake_attrs).map_err(|m| eval_error(m, p))?;
    Ok(Value::string_ctx(url.into_bytes(), context))
}

fn prim_from_json(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.fromJSON")?;
    crate::json::from_json(s.as_bytes()).map_err(|message| {
        // CppNix adds this frame to its JSON library's errors (its
        // `JSONParseError`) only: a number out of Nix's integer range and a
        // string with a NUL byte are refused by its own value builder,
        // without it.
        let library_error = message.starts_with("[json.exception");
        let mut error = eval_error(message, p);
        if library_error {
            error.trace.push(TraceFrame::new(Pos::NONE, "while decoding a JSON string"));
        }
        error
    })
}

fn prim_from_toml(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let s = e.force_string_no_ctx(&a[0], p).context("while evaluating the argument passed to builtins.fromTOML")?;
    let timestamps = e.settings.experimental_features.iter().any(|f| f == "parse-toml-timestamps");
    crate::json::from_toml(s.as_bytes(), timestamps).map_err(|m| eval_error(m, p))
}
