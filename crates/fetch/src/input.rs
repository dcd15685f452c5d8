//! Inputs of `fetchTree` and `fetchGit`, CppNix's `fetchers::Input`: a set of
//! attributes (strings, integers, Booleans) whose `type` picks the fetcher
//! (`git`, `tarball`, `file`, `path`). [`fetch_tree`] checks the attributes as
//! the input scheme does, fetches, and returns the store path with the input's
//! locked attributes (`rev`, `revCount`, `lastModified`, `narHash`).

use std::collections::BTreeMap;
use std::path::Path;

use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, StorePath, StorePathSet};
use nivis_store::Store;

use crate::{FetchError, FetchSettings};

/// One input attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    String(String),
    Int(u64),
    Bool(bool),
}

/// Input attributes by name (sorted, as CppNix's `std::map`).
pub type Attrs = BTreeMap<String, Attr>;

pub(crate) fn attrs_to_json(attrs: &Attrs) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (name, value) in attrs {
        let json = match value {
            Attr::String(s) => serde_json::Value::from(s.clone()),
            Attr::Int(n) => serde_json::Value::from(*n),
            Attr::Bool(b) => serde_json::Value::from(*b),
        };
        map.insert(name.clone(), json);
    }
    serde_json::Value::Object(map)
}

pub(crate) fn attrs_from_json(json: &serde_json::Value) -> Option<Attrs> {
    let mut attrs = Attrs::new();
    for (name, value) in json.as_object()? {
        let attr = match value {
            serde_json::Value::String(s) => Attr::String(s.clone()),
            serde_json::Value::Bool(b) => Attr::Bool(*b),
            serde_json::Value::Number(n) => Attr::Int(n.as_u64()?),
            _ => return None,
        };
        attrs.insert(name.clone(), attr);
    }
    Some(attrs)
}

/// The attributes as CppNix prints them in messages (`attrsToJSON(...).dump()`).
pub fn attrs_json_text(attrs: &Attrs) -> String {
    attrs_to_json(attrs).to_string()
}

pub(crate) fn get_str<'a>(attrs: &'a Attrs, name: &str) -> Result<&'a str, FetchError> {
    maybe_str(attrs, name)?.ok_or_else(|| FetchError::msg(format!("input attribute '{name}' is missing")))
}

pub(crate) fn maybe_str<'a>(attrs: &'a Attrs, name: &str) -> Result<Option<&'a str>, FetchError> {
    match attrs.get(name) {
        None => Ok(None),
        Some(Attr::String(s)) => Ok(Some(s)),
        Some(_) => Err(FetchError::msg(format!(
            "input attribute '{name}' is not a string {}",
            attrs_json_text(attrs)
        ))),
    }
}

pub(crate) fn maybe_int(attrs: &Attrs, name: &str) -> Result<Option<u64>, FetchError> {
    match attrs.get(name) {
        None => Ok(None),
        Some(Attr::Int(n)) => Ok(Some(*n)),
        Some(_) => Err(FetchError::msg(format!("input attribute '{name}' is not an integer"))),
    }
}

pub(crate) fn maybe_bool(attrs: &Attrs, name: &str) -> Result<Option<bool>, FetchError> {
    match attrs.get(name) {
        None => Ok(None),
        Some(Attr::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(FetchError::msg(format!("input attribute '{name}' is not a Boolean"))),
    }
}

/// A fetchable input: its attributes, already checked by its scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub attrs: Attrs,
}

/// The result of fetching an input.
#[derive(Debug, Clone)]
pub struct FetchedTree {
    pub store_path: StorePath,
    /// The input with what fetching learned: `rev`, `revCount`,
    /// `lastModified`, `narHash` (SRI).
    pub input: Input,
}

const GIT_ATTRIBUTES: &[&str] = &[
    "type",
    "url",
    "ref",
    "rev",
    "shallow",
    "submodules",
    "lastModified",
    "revCount",
    "narHash",
    "allRefs",
    "name",
];
const TARBALL_ATTRIBUTES: &[&str] = &["type", "url", "narHash", "name"];
const PATH_ATTRIBUTES: &[&str] = &["type", "path", "rev", "revCount", "lastModified", "narHash"];

/// CppNix's `parseURL`: `scheme:rest` with a scheme of letters, digits, `+-.`.
pub(crate) fn check_url(url: &str) -> Result<(), FetchError> {
    let valid = url.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err(FetchError::msg(format!("'{url}' is not a valid URL")))
    }
}

/// `git check-ref-format`-style refusals, as CppNix's `badGitRefRegex`.
pub(crate) fn is_bad_git_ref(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('.')
        || name.contains("//")
        || name.contains("/.")
        || name.contains("..")
        || name
            .chars()
            .any(|c| (c as u32) < 0x20 || c == '\x7f' || " ~^:?*[\\".contains(c))
        || name.ends_with('/')
        || name.ends_with(".lock")
        || name.contains("@{")
        || name == "@"
}

impl Input {
    /// CppNix's `Input::fromAttrs` followed by the scheme's checks.
    pub fn from_attrs(attrs: Attrs) -> Result<Input, FetchError> {
        let kind = maybe_str(&attrs, "type")?.unwrap_or("").to_string();
        if kind == "indirect" {
            return Err(FetchError::msg(format!(
                "cannot fetch input '{}': flake registry lookups are not supported yet",
                attrs_json_text(&attrs)
            )));
        }
        if crate::git_archive::is_archive_kind(&kind) {
            for name in attrs.keys() {
                if !crate::git_archive::ARCHIVE_ATTRIBUTES.contains(&name.as_str()) {
                    return Err(FetchError::msg(format!("unsupported input attribute '{name}'")));
                }
            }
            crate::git_archive::check_attrs(&attrs)?;
            let input = Input { attrs };
            input.rev()?;
            maybe_int(&input.attrs, "lastModified")?;
            input.nar_hash()?;
            return Ok(input);
        }
        let (allowed, label): (&[&str], &str) = match kind.as_str() {
            "git" => (GIT_ATTRIBUTES, "Git"),
            "tarball" => (TARBALL_ATTRIBUTES, "tarball"),
            "file" => (TARBALL_ATTRIBUTES, "file"),
            "path" => (PATH_ATTRIBUTES, "path"),
            _ => {
                return Err(FetchError::msg(format!(
                    "cannot fetch unsupported input '{}'",
                    attrs_json_text(&attrs)
                )));
            }
        };
        for name in attrs.keys() {
            if !allowed.contains(&name.as_str()) {
                return Err(FetchError::msg(format!("unsupported {label} input attribute '{name}'")));
            }
        }
        match kind.as_str() {
            "git" => {
                check_url(get_str(&attrs, "url")?)?;
                maybe_bool(&attrs, "shallow")?;
                maybe_bool(&attrs, "submodules")?;
                maybe_bool(&attrs, "allRefs")?;
                if let Some(reference) = maybe_str(&attrs, "ref")?
                    && is_bad_git_ref(reference)
                {
                    return Err(FetchError::msg(format!("invalid Git branch/tag name '{reference}'")));
                }
            }
            "tarball" | "file" => check_url(get_str(&attrs, "url")?)?,
            _ => {
                get_str(&attrs, "path")?;
            }
        }
        let input = Input { attrs };
        // CppNix's fixupInput: these must parse.
        input.name()?;
        input.rev()?;
        maybe_int(&input.attrs, "revCount")?;
        maybe_int(&input.attrs, "lastModified")?;
        input.nar_hash()?;
        Ok(input)
    }

    pub fn kind(&self) -> &str {
        match self.attrs.get("type") {
            Some(Attr::String(s)) => s,
            _ => "",
        }
    }

    pub fn name(&self) -> Result<String, FetchError> {
        Ok(maybe_str(&self.attrs, "name")?.unwrap_or("source").to_string())
    }

    pub fn reference(&self) -> Option<&str> {
        maybe_str(&self.attrs, "ref").ok().flatten()
    }

    /// `rev`, parsed as a SHA-1 (any encoding CppNix's `parseAny` takes).
    pub fn rev(&self) -> Result<Option<Hash>, FetchError> {
        match maybe_str(&self.attrs, "rev")? {
            None => Ok(None),
            Some(text) => Hash::parse_any(text, Some(HashAlgorithm::Sha1))
                .map(Some)
                .map_err(|e| FetchError::msg(e.to_string())),
        }
    }

    pub fn nar_hash(&self) -> Result<Option<Hash>, FetchError> {
        match maybe_str(&self.attrs, "narHash")? {
            None => Ok(None),
            Some(text) => Hash::parse_any(text, Some(HashAlgorithm::Sha256))
                .map(Some)
                .map_err(|e| FetchError::msg(e.to_string())),
        }
    }

    pub fn rev_count(&self) -> Option<u64> {
        maybe_int(&self.attrs, "revCount").ok().flatten()
    }

    pub fn last_modified(&self) -> Option<u64> {
        maybe_int(&self.attrs, "lastModified").ok().flatten()
    }

    /// The input as a URL, for messages (CppNix's `Input::to_string`).
    pub fn to_url(&self) -> String {
        if crate::git_archive::is_archive_kind(self.kind()) {
            return crate::git_archive::to_url(self);
        }
        let url = maybe_str(&self.attrs, "url").ok().flatten().unwrap_or("").to_string();
        let mut query: BTreeMap<&str, String> = BTreeMap::new();
        let base = match self.kind() {
            "git" => {
                if let Ok(Some(rev)) = self.rev() {
                    query.insert("rev", rev.to_base16());
                }
                if let Some(reference) = self.reference() {
                    query.insert("ref", reference.to_string());
                }
                if maybe_bool(&self.attrs, "shallow").ok().flatten().unwrap_or(false) {
                    query.insert("shallow", "1".into());
                }
                if url.starts_with("git:") {
                    url
                } else {
                    format!("git+{url}")
                }
            }
            "path" => format!("path:{}", maybe_str(&self.attrs, "path").ok().flatten().unwrap_or("")),
            _ => url,
        };
        // CppNix's Git scheme leaves `narHash` out of its URL; the others keep it.
        if let Ok(Some(nar_hash)) = self.nar_hash()
            && self.kind() != "git"
        {
            query.insert("narHash", nar_hash.to_sri());
        }
        if query.is_empty() {
            return base;
        }
        let parameters: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}{}", parameters.join("&"))
    }
}

/// CppNix 2.8's `Input::fromURL` for the URL forms `fetchTree "..."` takes:
/// `git+<transport>://`, `path:`, and plain URLs whose path ends in an
/// archive extension (tarballs).
pub fn input_from_url(url: &str) -> Result<Input, FetchError> {
    check_url(url)?;
    let (scheme, rest) = url.split_once(':').unwrap_or((url, ""));
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base.to_string(), Some(query.to_string())),
        None => (url.to_string(), None),
    };
    let mut attrs = Attrs::new();
    let parameters: Vec<(String, String)> = query
        .iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    if crate::git_archive::is_archive_kind(scheme) {
        return crate::git_archive::input_from_url(url, scheme, rest);
    }
    if scheme == "flake" {
        return Err(FetchError::msg(format!(
            "cannot fetch input '{url}': flake registry lookups are not supported yet"
        )));
    }
    if scheme == "path" {
        attrs.insert("type".into(), Attr::String("path".into()));
        attrs.insert(
            "path".into(),
            Attr::String(rest.split('?').next().unwrap_or("").to_string()),
        );
        for (k, v) in parameters {
            let value = if k == "revCount" || k == "lastModified" {
                Attr::Int(
                    v.parse()
                        .map_err(|_| FetchError::msg(format!("path URL '{url}' has invalid parameter '{k}'")))?,
                )
            } else {
                Attr::String(v)
            };
            attrs.insert(k, value);
        }
        return Input::from_attrs(attrs);
    }
    if let Some(transport) = scheme.strip_prefix("git+") {
        attrs.insert("type".into(), Attr::String("git".into()));
        let base_without_scheme = &base[scheme.len()..];
        attrs.insert("url".into(), Attr::String(format!("{transport}{base_without_scheme}")));
        for (k, v) in parameters {
            let value = match k.as_str() {
                "shallow" | "submodules" | "allRefs" => Attr::Bool(v == "1"),
                "rev" | "ref" | "narHash" | "name" => Attr::String(v),
                _ => {
                    return Err(FetchError::msg(format!(
                        "unsupported Git parameter '{k}' in URL '{url}'"
                    )));
                }
            };
            attrs.insert(k, value);
        }
        return Input::from_attrs(attrs);
    }
    // CppNix 2.8 takes plain URLs only for tarballs (no `file` inputs, no
    // `tarball+` or `file+` schemes yet).
    let (kind, transport_url) = if ["http", "https", "file"].contains(&scheme)
        && has_tarball_extension(base.split("://").nth(1).unwrap_or(""))
    {
        ("tarball", base.clone())
    } else {
        return Err(FetchError::msg(format!("input '{url}' is unsupported")));
    };
    attrs.insert("type".into(), Attr::String(kind.into()));
    attrs.insert("url".into(), Attr::String(transport_url));
    for (k, v) in parameters {
        if k == "narHash" {
            attrs.insert(k, Attr::String(v));
        }
    }
    Input::from_attrs(attrs)
}

pub(crate) fn has_tarball_extension(path: &str) -> bool {
    [".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Fetches `input` into `store` (CppNix's `Input::fetch`): runs the scheme's
/// fetcher, records `narHash`, and checks the attributes the caller fixed
/// (`narHash`, `lastModified`, `revCount`).
pub fn fetch_tree(store: &dyn Store, settings: &FetchSettings, input: &Input) -> Result<FetchedTree, FetchError> {
    // An input that says everything about its result (CppNix's `hasAllInfo`)
    // needs no fetching if its store path is already valid.
    if let Some(nar_hash) = input.nar_hash()? {
        let shallow = maybe_bool(&input.attrs, "shallow")?.unwrap_or(false);
        let has_all_info = match input.kind() {
            "git" => input.last_modified().is_some() && (shallow || input.rev_count().is_some()),
            kind if crate::git_archive::is_archive_kind(kind) => {
                input.rev()?.is_some() && input.last_modified().is_some()
            }
            _ => true,
        };
        if has_all_info {
            let path = store
                .store_dir()
                .make_fixed_output_path(
                    FileIngestionMethod::Recursive,
                    &nar_hash,
                    &input.name()?,
                    &StorePathSet::new(),
                    false,
                )
                .map_err(|e| FetchError::msg(e.to_string()))?;
            if store.is_valid_path(&path)? {
                return Ok(FetchedTree {
                    store_path: path,
                    input: input.clone(),
                });
            }
        }
    }
    let (store_path, mut result) = match input.kind() {
        "git" => crate::git::fetch_git(store, settings, input)?,
        kind if crate::git_archive::is_archive_kind(kind) => crate::git_archive::fetch(store, settings, input)?,
        "tarball" => {
            let url = get_str(&input.attrs, "url")?;
            let (path, _) = crate::tarball::download_tarball(store, settings, url, &input.name()?, false)?;
            (path, input.clone())
        }
        "file" => {
            let url = get_str(&input.attrs, "url")?;
            let file = crate::tarball::download_file(store, settings, url, &input.name()?, false)?;
            (file.store_path, input.clone())
        }
        "path" => fetch_path(store, input)?,
        _ => {
            return Err(FetchError::msg(format!(
                "cannot fetch unsupported input '{}'",
                attrs_json_text(&input.attrs)
            )));
        }
    };
    let info = store
        .query_path_info(&store_path)?
        .ok_or_else(|| FetchError::msg(format!("path '{}' is not valid", store.print_store_path(&store_path))))?;
    result
        .attrs
        .insert("narHash".into(), Attr::String(info.nar_hash.to_sri()));
    if let Some(expected) = input.nar_hash()?
        && expected != info.nar_hash
    {
        let real = store
            .real_path(&store_path)
            .unwrap_or_else(|| store.print_store_path(&store_path).into());
        return Err(FetchError::HashMismatch(format!(
            "NAR hash mismatch in input '{}' ({}), expected '{}', got '{}'",
            input.to_url(),
            real.display(),
            expected.to_sri(),
            info.nar_hash.to_sri()
        )));
    }
    if let Some(expected) = input.last_modified()
        && result.last_modified() != Some(expected)
    {
        return Err(FetchError::msg(format!(
            "'lastModified' attribute mismatch in input '{}', expected {expected}",
            result.to_url()
        )));
    }
    if let Some(expected) = input.rev_count()
        && result.rev_count() != Some(expected)
    {
        return Err(FetchError::msg(format!(
            "'revCount' attribute mismatch in input '{}', expected {expected}",
            result.to_url()
        )));
    }
    Ok(FetchedTree {
        store_path,
        input: result,
    })
}

/// `type = "path"`: the directory copied into the store as `source`, with
/// `lastModified` the newest modification time in it.
fn fetch_path(store: &dyn Store, input: &Input) -> Result<(StorePath, Input), FetchError> {
    let path = get_str(&input.attrs, "path")?;
    if !path.starts_with('/') {
        return Err(FetchError::msg(format!(
            "cannot fetch input '{}' because it uses a relative path",
            input.to_url()
        )));
    }
    let mut result = input.clone();
    let existing = store.store_dir().parse_path(path).ok();
    let reuse = existing
        .as_ref()
        .filter(|p| p.name() == "source" && store.is_valid_path(p).unwrap_or(false))
        .cloned();
    let (store_path, mtime) = match reuse {
        // CppNix reports 0 when it does not read the tree.
        Some(store_path) => (store_path, 0),
        None => {
            let mtime = newest_mtime(Path::new(path))?;
            let store_path = store.add_to_store(
                "source",
                Path::new(path),
                FileIngestionMethod::Recursive,
                HashAlgorithm::Sha256,
                &StorePathSet::new(),
                false,
            )?;
            (store_path, mtime)
        }
    };
    result.attrs.insert("lastModified".into(), Attr::Int(mtime));
    Ok((store_path, result))
}

/// The largest `st_mtime` of `path` and everything under it (not following
/// symlinks), as CppNix's `dumpPathAndGetMtime`.
pub(crate) fn newest_mtime(path: &Path) -> Result<u64, FetchError> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::symlink_metadata(path)
        .map_err(|e| FetchError::io(format!("getting status of '{}'", path.display()), e))?;
    let mut newest = metadata.mtime().max(0) as u64;
    if metadata.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|e| FetchError::io(format!("opening directory '{}'", path.display()), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| FetchError::io(format!("reading directory '{}'", path.display()), e))?;
            newest = newest.max(newest_mtime(&entry.path())?);
        }
    }
    Ok(newest)
}
