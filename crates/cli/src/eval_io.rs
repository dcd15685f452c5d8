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

/// The message part of an I/O error as CppNix words it (strerror).
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn nar_str(out: &mut nivis_formats::hash::Hasher, s: &[u8]) {
    out.update(&(s.len() as u64).to_le_bytes());
    out.update(s);
    let pad = (8 - s.len() % 8) % 8;
    out.update(&[0u8; 8][..pad]);
}

/// Serialises `path` as a NAR into `out`, leaving out what `filter` rejects
/// (the root itself is always included), for `builtins.path`/`filterSource`.
fn nar_filtered(
    path: &Path,
    filter: &mut PathFilter<'_>,
    out: &mut nivis_formats::hash::Hasher,
    root: bool,
) -> Result<(), IoError> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if root {
        nar_str(out, b"nix-archive-1");
    }
    let meta = std::fs::symlink_metadata(path)?;
    nar_str(out, b"(");
    nar_str(out, b"type");
    if meta.file_type().is_symlink() {
        nar_str(out, b"symlink");
        nar_str(out, b"target");
        nar_str(out, std::fs::read_link(path)?.as_os_str().as_bytes());
    } else if meta.is_dir() {
        nar_str(out, b"directory");
        let mut names: Vec<std::ffi::OsString> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.file_name())).collect::<Result<_, _>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let child = path.join(&name);
            let ft = std::fs::symlink_metadata(&child)?.file_type();
            let kind = if ft.is_symlink() {
                FileType::Symlink
            } else if ft.is_dir() {
                FileType::Directory
            } else if ft.is_file() {
                FileType::Regular
            } else {
                FileType::Unknown
            };
            if !filter(&child, kind)? {
                continue;
            }
            nar_str(out, b"entry");
            nar_str(out, b"(");
            nar_str(out, b"name");
            nar_str(out, name.as_bytes());
            nar_str(out, b"node");
            nar_filtered(&child, filter, out, false)?;
            nar_str(out, b")");
        }
    } else {
        nar_str(out, b"regular");
        if meta.permissions().mode() & 0o100 != 0 {
            nar_str(out, b"executable");
            nar_str(out, b"");
        }
        nar_str(out, b"contents");
        nar_str(out, &std::fs::read(path)?);
    }
    nar_str(out, b")");
    Ok(())
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
        if let Err(e) = std::fs::symlink_metadata(path) {
            return Err(IoError::Message(format!("getting status of '{}': {}", path.display(), io_reason(&e))));
        }
        let hash = if let Some(filter) = filter {
            let mut hasher = nivis_formats::hash::Hasher::new(HashAlgorithm::Sha256);
            nar_filtered(path, filter, &mut hasher, true)?;
            hasher.finish()
        } else if recursive {
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

pub fn settings(include: &[String], show_trace: bool) -> Settings {
    Settings { nix_path: search_path(include), show_trace, ..Settings::default() }
}

pub fn new_eval(include: &[String], show_trace: bool) -> Eval {
    Eval::new(Rc::new(CliEvalIO::new()), settings(include, show_trace))
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
