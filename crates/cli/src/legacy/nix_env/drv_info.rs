//! Packages as nix-env sees them (CppNix's `DrvInfo`): a derivation value from
//! an expression or a manifest, or a bare store path; found by CppNix's
//! `getDerivations` rules, selected by name (`DrvName`, a POSIX regex plus an
//! optional version), and read back from a profile's `manifest.nix`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use nivis_eval::value::Rc;

use anyhow::{anyhow, bail};
use nivis_eval::eval::Coerce;
use nivis_eval::support::versions::parse_drv_name;
use nivis_eval::value::{Attrs, AttrsBuilder};
use nivis_eval::{Eval, Pos, Sym, Value};
use nivis_store::Store;

use super::{EvalResultExt, Globals};

/// One package.
#[derive(Clone)]
pub struct DrvInfo {
    /// The derivation's attributes; `None` for a store path given directly.
    pub attrs: Option<Rc<Attrs>>,
    pub attr_path: String,
    pub name: String,
    /// Set by `--set-flag` (CppNix's `setMeta`): replaces the `meta` attribute.
    pub meta_override: Option<Rc<Attrs>>,
    /// For store-path elements.
    pub drv_path_fixed: Option<String>,
    pub out_path_fixed: Option<String>,
    pub failed: bool,
}

fn attr(attrs: &Attrs, name: &str) -> Option<Value> {
    attrs.get(Sym::from_str(name)).cloned()
}

impl DrvInfo {
    pub fn from_store_path(name: String, out_path: String, drv_path: Option<String>) -> DrvInfo {
        DrvInfo {
            attrs: None,
            attr_path: String::new(),
            name,
            meta_override: None,
            drv_path_fixed: drv_path,
            out_path_fixed: Some(out_path),
            failed: false,
        }
    }

    /// `DrvName(name).name`.
    pub fn pname(&self) -> String {
        String::from_utf8_lossy(parse_drv_name(self.name.as_bytes()).0).into_owned()
    }

    pub fn version(&self) -> String {
        String::from_utf8_lossy(parse_drv_name(self.name.as_bytes()).1).into_owned()
    }

    /// `system`, or `unknown` for a derivation without one, empty for a bare
    /// store path (CppNix's `querySystem`).
    pub fn system(&self, ev: &mut Eval) -> anyhow::Result<String> {
        let Some(attrs) = &self.attrs else { return Ok(String::new()) };
        match attr(attrs, "system") {
            Some(v) => Ok(ev.force_string_no_ctx(&v, Pos::NONE).ev()?.to_str_lossy().into_owned()),
            None => Ok("unknown".to_string()),
        }
    }

    fn store_path_attr(&self, ev: &mut Eval, name: &str) -> anyhow::Result<Option<String>> {
        let Some(attrs) = &self.attrs else { return Ok(None) };
        let Some(v) = attr(attrs, name) else { return Ok(None) };
        let s = ev.coerce_to_string(&v, Pos::NONE, Coerce { more: false, copy_to_store: true }).ev()?;
        let text = s.to_str_lossy().into_owned();
        let store_dir = ev_store_dir(ev);
        if !text.starts_with(&format!("{store_dir}/")) {
            bail!("path '{text}' is not in the Nix store");
        }
        Ok(Some(text))
    }

    pub fn drv_path(&self, ev: &mut Eval) -> anyhow::Result<Option<String>> {
        if self.attrs.is_none() {
            return Ok(self.drv_path_fixed.clone());
        }
        self.store_path_attr(ev, "drvPath")
    }

    pub fn out_path(&self, ev: &mut Eval) -> anyhow::Result<String> {
        if let Some(path) = &self.out_path_fixed {
            return Ok(path.clone());
        }
        self.store_path_attr(ev, "outPath")?.ok_or_else(|| anyhow!("CA derivations are not yet supported"))
    }

    /// CppNix's `queryOutputs`: every output of the `outputs` list that has
    /// an `outPath`; with `only_to_install`, reduced to `meta.outputsToInstall`.
    pub fn outputs(&self, ev: &mut Eval, only_to_install: bool) -> anyhow::Result<BTreeMap<String, String>> {
        let mut outputs = BTreeMap::new();
        let Some(attrs) = &self.attrs else {
            outputs.insert("out".to_string(), self.out_path(ev)?);
            return Ok(outputs);
        };
        match attr(attrs, "outputs") {
            Some(list) => {
                let list = ev.force_list(&list, Pos::NONE).ev()?;
                for item in list.iter() {
                    let name = ev.force_string_no_ctx(item, Pos::NONE).ev()?.to_str_lossy().into_owned();
                    let Some(output) = attr(attrs, &name) else { continue };
                    let output = ev.force_attrs(&output, Pos::NONE).ev()?;
                    let Some(out_path) = output.get(ev.s.out_path).cloned() else { continue };
                    let s =
                        ev.coerce_to_string(&out_path, Pos::NONE, Coerce { more: false, copy_to_store: true }).ev()?;
                    outputs.insert(name, s.to_str_lossy().into_owned());
                }
            }
            None => {
                outputs.insert("out".to_string(), self.out_path(ev)?);
            }
        }
        if !only_to_install {
            return Ok(outputs);
        }
        let Some(to_install) = self.meta(ev, "outputsToInstall")? else { return Ok(outputs) };
        let bad = || anyhow!("this derivation has bad 'meta.outputsToInstall'");
        let Value::List(items) = to_install else { return Err(bad()) };
        let mut result = BTreeMap::new();
        for item in items.iter() {
            let item = ev.force(item, Pos::NONE).ev()?;
            let Value::String(name) = item else { return Err(bad()) };
            let name = name.to_str_lossy().into_owned();
            let path = outputs.get(&name).ok_or_else(bad)?.clone();
            result.insert(name, path);
        }
        Ok(result)
    }

    /// The names of the outputs, without evaluating their paths (CppNix's
    /// `queryOutputs(false)`): the `outputs` list, or just `out`.
    pub fn output_names(&self, ev: &mut Eval) -> anyhow::Result<Vec<String>> {
        let mut names = BTreeSet::new();
        match self.attrs.as_ref().and_then(|attrs| attr(attrs, "outputs")) {
            Some(list) => {
                let list = ev.force_list(&list, Pos::NONE).ev()?;
                for item in list.iter() {
                    names.insert(ev.force_string_no_ctx(item, Pos::NONE).ev()?.to_str_lossy().into_owned());
                }
            }
            None => {
                names.insert("out".to_string());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The `meta` attribute set (forced), if any.
    pub fn meta_attrs(&self, ev: &mut Eval) -> anyhow::Result<Option<Rc<Attrs>>> {
        if let Some(meta) = &self.meta_override {
            return Ok(Some(meta.clone()));
        }
        let Some(attrs) = &self.attrs else { return Ok(None) };
        let Some(meta) = attr(attrs, "meta") else { return Ok(None) };
        Ok(Some(ev.force_attrs(&meta, Pos::NONE).ev()?))
    }

    pub fn meta_names(&self, ev: &mut Eval) -> anyhow::Result<BTreeSet<String>> {
        Ok(match self.meta_attrs(ev)? {
            Some(meta) => meta.iter().map(|a| a.name.as_str().into_owned()).collect(),
            None => BTreeSet::new(),
        })
    }

    /// A meta attribute if it is of a kind nix-env keeps (CppNix's
    /// `checkMeta`: no functions, no nulls, no derivations, deeply).
    pub fn meta(&self, ev: &mut Eval, name: &str) -> anyhow::Result<Option<Value>> {
        let Some(meta) = self.meta_attrs(ev)? else { return Ok(None) };
        let Some(v) = attr(&meta, name) else { return Ok(None) };
        let v = ev.force(&v, Pos::NONE).ev()?;
        Ok(if check_meta(ev, &v)? { Some(v) } else { None })
    }

    pub fn meta_string(&self, ev: &mut Eval, name: &str) -> anyhow::Result<String> {
        Ok(match self.meta(ev, name)? {
            Some(Value::String(s)) => s.to_str_lossy().into_owned(),
            _ => String::new(),
        })
    }

    pub fn meta_int(&self, ev: &mut Eval, name: &str, default: i64) -> anyhow::Result<i64> {
        Ok(match self.meta(ev, name)? {
            Some(Value::Int(n)) => n,
            // Flags set with --set-flag are strings.
            Some(Value::String(s)) => s.to_str_lossy().parse().unwrap_or(default),
            _ => default,
        })
    }

    pub fn meta_bool(&self, ev: &mut Eval, name: &str, default: bool) -> anyhow::Result<bool> {
        Ok(match self.meta(ev, name)? {
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) if s.as_bytes() == b"true" => true,
            Some(Value::String(s)) if s.as_bytes() == b"false" => false,
            _ => default,
        })
    }

    /// `--set-flag NAME VALUE`: a new `meta` with the flag as a string.
    pub fn set_meta_flag(&mut self, ev: &mut Eval, name: &str, value: &str) -> anyhow::Result<()> {
        let mut meta = AttrsBuilder::new();
        if let Some(old) = self.meta_attrs(ev)? {
            for a in old.iter() {
                if a.name.as_bytes() != name.as_bytes() {
                    meta.insert(a.name, a.value.clone(), a.pos);
                }
            }
        }
        meta.insert(Sym::from_str(name), Value::string(value.as_bytes().to_vec()), Pos::NONE);
        self.meta_override = Some(meta.finish());
        Ok(())
    }
}

fn check_meta(ev: &mut Eval, v: &Value) -> anyhow::Result<bool> {
    let v = ev.force(v, Pos::NONE).ev()?;
    Ok(match &v {
        Value::List(items) => {
            for item in items.iter() {
                if !check_meta(ev, item)? {
                    return Ok(false);
                }
            }
            true
        }
        Value::Attrs(attrs) => {
            if attrs.get(ev.s.out_path).is_some() {
                return Ok(false);
            }
            for a in attrs.iter() {
                if !check_meta(ev, &a.value)? {
                    return Ok(false);
                }
            }
            true
        }
        Value::Int(_) | Value::Bool(_) | Value::String(_) | Value::Float(_) => true,
        _ => false,
    })
}

fn ev_store_dir(ev: &Eval) -> String {
    ev.io.store_dir()
}

/// Attribute names that `getDerivations` looks into.
fn is_attr_name_ok(name: &[u8]) -> bool {
    match name.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    name.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'+'))
}

fn add_to_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// CppNix's `AssertionError`, which `getDerivation` skips when asked to: a failed
/// `assert` and also `throw` (CppNix's `ThrownError` is a subclass), so `nix-env
/// -qa` lists a package set whose removed packages are `throw`ing aliases.
fn is_assertion_failure(e: &nivis_eval::EvalError) -> bool {
    matches!(e.kind, nivis_eval::ErrorKind::Assert | nivis_eval::ErrorKind::Throw)
}

/// CppNix's `getDerivation`: returns true when `v` is not a derivation (the
/// caller may look inside it).
fn get_derivation(
    ev: &mut Eval,
    v: &Value,
    attr_path: &str,
    out: &mut Vec<DrvInfo>,
    done: &mut HashSet<usize>,
    ignore_assertion_failures: bool,
) -> anyhow::Result<bool> {
    let forced = match ev.force(v, Pos::NONE) {
        Ok(forced) => forced,
        Err(e) if ignore_assertion_failures && is_assertion_failure(&e) => return Ok(false),
        Err(e) => return Err(super::eval_failure(e)),
    };
    let Value::Attrs(attrs) = &forced else { return Ok(true) };
    if !ev.is_derivation(attrs).ev()? {
        return Ok(true);
    }
    if !done.insert(Rc::as_ptr(attrs) as usize) {
        return Ok(false);
    }
    let name = match attr(attrs, "name") {
        Some(n) => match ev.force_string_no_ctx(&n, Pos::NONE) {
            Ok(s) => s.to_str_lossy().into_owned(),
            Err(e) if ignore_assertion_failures && is_assertion_failure(&e) => return Ok(false),
            Err(mut e) => {
                // CppNix's errorCtx for the name's own check.
                if e.trace.is_empty() && e.pos.is_none() {
                    e.trace.push(nivis_eval::error::TraceFrame::new(
                        Pos::NONE,
                        "while evaluating the 'name' attribute of a derivation",
                    ));
                }
                return Err(super::eval_failure(e));
            }
        },
        None => bail!("derivation name missing"),
    };
    out.push(DrvInfo {
        attrs: Some(attrs.clone()),
        attr_path: attr_path.to_string(),
        name,
        meta_override: None,
        drv_path_fixed: None,
        out_path_fixed: None,
        failed: false,
    });
    Ok(false)
}

/// CppNix's `getDerivations`.
pub fn get_derivations(
    ev: &mut Eval,
    v: &Value,
    prefix: &str,
    auto_args: &Rc<Attrs>,
    out: &mut Vec<DrvInfo>,
    ignore_assertion_failures: bool,
) -> anyhow::Result<()> {
    let mut done = HashSet::new();
    get_derivations_inner(ev, v, prefix, auto_args, out, &mut done, ignore_assertion_failures)
}

fn get_derivations_inner(
    ev: &mut Eval,
    v: &Value,
    prefix: &str,
    auto_args: &Rc<Attrs>,
    out: &mut Vec<DrvInfo>,
    done: &mut HashSet<usize>,
    ignore: bool,
) -> anyhow::Result<()> {
    let v = crate::eval_io::auto_call(ev, v, auto_args).ev()?;
    if !get_derivation(ev, &v, prefix, out, done, ignore)? {
        return Ok(());
    }
    match &v {
        Value::Attrs(attrs) => {
            let combine_channels = attrs.get(Sym::from_str("_combineChannels")).is_some();
            let entries: Vec<(String, Value)> =
                attrs.sorted_by_name().into_iter().map(|a| (a.name.as_str().into_owned(), a.value.clone())).collect();
            for (name, value) in entries {
                if !is_attr_name_ok(name.as_bytes()) {
                    continue;
                }
                let path = add_to_path(prefix, &name);
                if combine_channels {
                    get_derivations_inner(ev, &value, &path, auto_args, out, done, ignore)?;
                } else if get_derivation(ev, &value, &path, out, done, ignore)? {
                    let forced = ev.force(&value, Pos::NONE).ev()?;
                    if let Value::Attrs(inner) = &forced
                        && let Some(flag) = attr(inner, "recurseForDerivations")
                        && ev.force_bool(&flag, Pos::NONE).ev()?
                    {
                        get_derivations_inner(ev, &forced, &path, auto_args, out, done, ignore)?;
                    }
                }
            }
            Ok(())
        }
        Value::List(items) => {
            for (index, item) in items.iter().enumerate() {
                let path = add_to_path(prefix, &index.to_string());
                if get_derivation(ev, item, &path, out, done, ignore)? {
                    get_derivations_inner(ev, item, &path, auto_args, out, done, ignore)?;
                }
            }
            Ok(())
        }
        other => bail!(
            "expression does not evaluate to a derivation (or a set or list of those)\n\n       value is {}",
            other.show_type()
        ),
    }
}

fn is_nix_expr(path: &Path, metadata: &std::fs::Metadata) -> bool {
    metadata.is_file() || (metadata.is_dir() && path.join("default.nix").exists())
}

/// CppNix's `loadSourceExpr`: a file, or a directory whose expressions
/// (recursively, flattened) become one set marked `_combineChannels`.
pub fn load_source_expr(ev: &mut Eval, path: &Path) -> anyhow::Result<Value> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| anyhow!("getting information about '{}': {}", path.display(), nivis_eval::io::strerror(&e)))?;
    if is_nix_expr(path, &metadata) {
        return ev.eval_file(path, Pos::NONE).ev();
    }
    if metadata.is_dir() {
        let mut attrs = AttrsBuilder::new();
        attrs.insert(Sym::from_str("_combineChannels"), Value::list(Vec::new()), Pos::NONE);
        let import = {
            let e = ev.parse_string("import", Path::new("/")).ev()?;
            ev.eval_expr(e).ev()?
        };
        let mut seen = BTreeSet::new();
        get_all_exprs(path, &mut seen, &mut attrs, &import)?;
        return Ok(Value::attrs(attrs));
    }
    bail!("path '{}' is not a directory or a Nix expression", path.display())
}

fn get_all_exprs(dir: &Path, seen: &mut BTreeSet<String>, attrs: &mut AttrsBuilder, import: &Value) -> anyhow::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("reading directory '{}': {}", dir.display(), nivis_eval::io::strerror(&e)))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for name in names {
        if name == "manifest.nix" {
            continue;
        }
        let path = dir.join(&name);
        let Ok(metadata) = std::fs::metadata(&path) else { continue };
        if is_nix_expr(&path, &metadata) && (!metadata.is_file() || name.ends_with(".nix")) {
            let attr_name = name.strip_suffix(".nix").unwrap_or(&name).to_string();
            if !seen.insert(attr_name.clone()) {
                eprintln!("warning: name collision in input Nix expressions, skipping '{}'", path.display());
                continue;
            }
            let arg = Value::string(path.to_string_lossy().as_bytes().to_vec());
            attrs.insert(Sym::from_str(&attr_name), Value::apply_thunk(import.clone(), arg), Pos::NONE);
        } else if metadata.is_dir() {
            get_all_exprs(&path, seen, attrs, import)?;
        }
    }
    Ok(())
}

/// CppNix's `loadDerivations`: the derivations of the expression at
/// `path` (below `attr_path`), for one system or every one (`*`).
pub fn load_derivations(g: &mut Globals, path: &Path, attr_path: &str) -> anyhow::Result<Vec<DrvInfo>> {
    let root = load_source_expr(&mut g.ev, path)?;
    let auto = g.auto_args.clone();
    let v = crate::eval_io::find_along_attr_path(&mut g.ev, attr_path, Some(&auto), &root).ev()?;
    let mut elems = Vec::new();
    get_derivations(&mut g.ev, &v, attr_path, &auto, &mut elems, true)?;
    if g.system_filter != "*" {
        let mut kept = Vec::new();
        for elem in elems {
            if elem.system(&mut g.ev)? == g.system_filter {
                kept.push(elem);
            }
        }
        elems = kept;
    }
    Ok(elems)
}

/// The store path a profile (or any link chain) leads to, if any.
pub fn profile_store_path(store: &dyn Store, profile: &Path) -> Option<nivis_formats::StorePath> {
    if std::fs::symlink_metadata(profile).is_err() {
        return None;
    }
    crate::store_args::follow_links_to_store_path(store, &profile.to_string_lossy()).ok()
}

/// Where `name` inside the user environment the profile names really is
/// (the store may live below a root directory).
fn file_in_profile(store: &dyn Store, profile: &Path, name: &str) -> Option<PathBuf> {
    let env = profile_store_path(store, profile)?;
    let real = store.real_path(&env)?.join(name);
    // manifest.nix is itself a link to the manifest in the store.
    match std::fs::read_link(&real) {
        Ok(target) => {
            let target = target.to_string_lossy().into_owned();
            match store.parse_store_path(&target) {
                Ok(path) => store.real_path(&path),
                Err(_) => Some(PathBuf::from(target)),
            }
        }
        Err(_) => Some(real),
    }
}

/// CppNix's `queryInstalled`: the elements of the profile's manifest.
pub fn query_installed(g: &mut Globals, profile: &Path) -> anyhow::Result<Vec<DrvInfo>> {
    let store = g.io.store();
    if let Some(json) = file_in_profile(store, profile, "manifest.json")
        && json.exists()
    {
        bail!("profile '{}' is incompatible with 'nix-env'; please use 'nix profile' instead", profile.display());
    }
    let Some(manifest) = file_in_profile(store, profile, "manifest.nix") else { return Ok(Vec::new()) };
    if !manifest.exists() {
        return Ok(Vec::new());
    }
    let v = g.ev.eval_file(&manifest, Pos::NONE).ev()?;
    let mut elems = Vec::new();
    let no_args = Attrs::empty();
    get_derivations(&mut g.ev, &v, "", &no_args, &mut elems, false)?;
    Ok(elems)
}

/// A selector: `NAME[-VERSION]`, NAME a POSIX extended regex matched whole,
/// `*` anything (CppNix's `DrvName`).
pub struct Selector {
    pub full_name: String,
    version: String,
    regex: Option<nivis_eval::support::posix_regex::CompiledRegex>,
    pub hits: usize,
}

impl Selector {
    pub fn new(full_name: &str) -> anyhow::Result<Selector> {
        let (name, version) = parse_drv_name(full_name.as_bytes());
        let name = String::from_utf8_lossy(name).into_owned();
        let version = String::from_utf8_lossy(version).into_owned();
        let regex = if name == "*" {
            None
        } else {
            Some(nivis_eval::support::posix_regex::compile(name.as_bytes()).map_err(|e| anyhow!("{e}"))?)
        };
        Ok(Selector { full_name: full_name.to_string(), version, regex, hits: 0 })
    }

    pub fn matches(&self, full_name: &str) -> bool {
        let (name, version) = parse_drv_name(full_name.as_bytes());
        if let Some(regex) = &self.regex
            && !matches!(regex.full_match(name), Ok(Some(_)))
        {
            return false;
        }
        if !self.version.is_empty() && self.version.as_bytes() != version {
            return false;
        }
        true
    }
}

pub fn selectors(args: &[String]) -> anyhow::Result<Vec<Selector>> {
    args.iter().map(|a| Selector::new(a)).collect()
}

pub fn check_selector_use(selectors: &[Selector]) -> anyhow::Result<()> {
    for s in selectors {
        if s.hits == 0 && s.full_name != "*" {
            bail!("selector '{}' matches no derivations", s.full_name);
        }
    }
    Ok(())
}

/// Lower numbers win: positive when `b` has the higher priority... as
/// CppNix's `comparePriorities(a, b)` = priority(b) - priority(a).
pub fn compare_priorities(ev: &mut Eval, a: &DrvInfo, b: &DrvInfo) -> anyhow::Result<i64> {
    Ok(b.meta_int(ev, "priority", 0)? - a.meta_int(ev, "priority", 0)?)
}

/// CppNix's `filterBySelector`.
pub fn filter_by_selector(
    g: &mut Globals,
    all: &[DrvInfo],
    args: &[String],
    newest_only: bool,
) -> anyhow::Result<Vec<DrvInfo>> {
    let mut selectors = selectors(args)?;
    if selectors.is_empty() {
        selectors.push(Selector::new("*")?);
    }
    let mut elems = Vec::new();
    let mut done = BTreeSet::new();
    let this_system = g.this_system.clone();
    for selector in &mut selectors {
        let mut matches: Vec<usize> = Vec::new();
        for (n, elem) in all.iter().enumerate() {
            if selector.matches(&elem.name) {
                selector.hits += 1;
                matches.push(n);
            }
        }
        if newest_only {
            let mut newest: BTreeMap<String, usize> = BTreeMap::new();
            let mut multiple: BTreeSet<String> = BTreeSet::new();
            for &j in &matches {
                let elem = &all[j];
                let pname = elem.pname();
                let mut d: i64 = 1;
                if let Some(&k) = newest.get(&pname) {
                    let other = &all[k];
                    let (sj, sk) = (elem.system(&mut g.ev)?, other.system(&mut g.ev)?);
                    d = if sj == sk {
                        0
                    } else if sj == this_system {
                        1
                    } else if sk == this_system {
                        -1
                    } else {
                        0
                    };
                    if d == 0 {
                        d = compare_priorities(&mut g.ev, elem, other)?;
                    }
                    if d == 0 {
                        d = match nivis_eval::support::versions::compare_versions(
                            elem.version().as_bytes(),
                            other.version().as_bytes(),
                        ) {
                            std::cmp::Ordering::Less => -1,
                            std::cmp::Ordering::Equal => 0,
                            std::cmp::Ordering::Greater => 1,
                        };
                    }
                }
                if d > 0 {
                    newest.insert(pname, j);
                    multiple.remove(&elem.name);
                } else if d == 0 {
                    multiple.insert(elem.name.clone());
                }
            }
            matches.clear();
            for (_, j) in newest {
                if multiple.contains(&all[j].name) {
                    eprintln!("warning: there are multiple derivations named '{}'; using the first one", all[j].name);
                }
                matches.push(j);
            }
        }
        for j in matches {
            if done.insert(j) {
                elems.push(all[j].clone());
            }
        }
    }
    check_selector_use(&selectors)?;
    Ok(elems)
}
