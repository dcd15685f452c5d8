//! The file-system [`EvalIO`] the CLI evaluates with until the glue crate joins
//! the evaluator to a real store: files are read from disk; copying a path to the
//! store or writing a text file only *computes* the store path (with the formats
//! crate), which is what `nix-instantiate --eval` shows; derivations are refused.

use std::path::Path;

use nivis_eval::io::PathFilter;
use nivis_eval::{EvalIO, FileType, FsIO, IoError};
use nivis_formats::hash::HashAlgorithm;
use nivis_formats::store_path::{FileIngestionMethod, StoreDir, StorePathSet};

pub struct CliEvalIO {
    fs: FsIO,
    store_dir: StoreDir,
}

impl CliEvalIO {
    pub fn new() -> CliEvalIO {
        let dir = std::env::var("NIX_STORE_DIR").unwrap_or_else(|_| "/nix/store".to_string());
        let store_dir = StoreDir::new(&dir).unwrap_or_default();
        CliEvalIO { fs: FsIO, store_dir }
    }
}

fn msg(e: impl std::fmt::Display) -> IoError {
    IoError::Message(e.to_string())
}

impl EvalIO for CliEvalIO {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, IoError> {
        self.fs.read_file(path)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, FileType)>, IoError> {
        self.fs.read_dir(path)
    }
    fn path_exists(&self, path: &Path) -> Result<bool, IoError> {
        self.fs.path_exists(path)
    }
    fn file_type(&self, path: &Path) -> Result<FileType, IoError> {
        self.fs.file_type(path)
    }
    fn is_directory(&self, path: &Path) -> Result<bool, IoError> {
        self.fs.is_directory(path)
    }
    fn store_dir(&self) -> String {
        self.store_dir.as_str().to_string()
    }
    fn add_to_store(
        &self,
        path: &Path,
        name: &str,
        recursive: bool,
        filter: Option<&mut PathFilter<'_>>,
    ) -> Result<String, IoError> {
        if filter.is_some() {
            return Err(IoError::Unsupported("copying a filtered path to the store"));
        }
        if std::fs::symlink_metadata(path).is_err() {
            return Err(IoError::Message(format!("path '{}' does not exist", path.display())));
        }
        let hash = if recursive {
            nivis_formats::nar::hash_path(path, HashAlgorithm::Sha256).map_err(msg)?.0
        } else {
            let data = std::fs::read(path)?;
            nivis_formats::hash::Hash::of_bytes(HashAlgorithm::Sha256, &data)
        };
        let method = if recursive { FileIngestionMethod::Recursive } else { FileIngestionMethod::Flat };
        let store_path =
            self.store_dir.make_fixed_output_path(method, &hash, name, &StorePathSet::new(), false).map_err(msg)?;
        Ok(self.store_dir.print_path(&store_path))
    }
    fn to_file(&self, name: &str, contents: &[u8], references: &[String]) -> Result<String, IoError> {
        let mut refs = StorePathSet::new();
        for r in references {
            refs.insert(self.store_dir.parse_path(r).map_err(msg)?);
        }
        let p = self.store_dir.compute_text_path(name, contents, &refs).map_err(msg)?;
        Ok(self.store_dir.print_path(&p))
    }
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

pub fn settings(include: &[String]) -> Settings {
    let mut s = Settings { nix_path: search_path(include), ..Settings::default() };
    if let Ok(v) = std::env::var("NIX_SHOW_TRACE") {
        let _ = v;
    }
    s.trace_verbose = false;
    s
}

pub fn new_eval(include: &[String]) -> Eval {
    Eval::new(Rc::new(CliEvalIO::new()), settings(include))
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
                             https://nixos.org/manual/nix/stable/expressions/language-constructs.html#functions.",
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
    for token in parse_attr_path(attr_path) {
        v = match args {
            Some(a) => auto_call(ev, &v, a)?,
            None => ev.force(&v, Pos::NONE)?,
        };
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
