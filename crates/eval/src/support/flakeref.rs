//! Flake references as attribute sets and back (`builtins.parseFlakeRef`,
//! `builtins.flakeRefToString`), without fetching anything.
//!
//! Follows current CppNix's `parseFlakeRef` / `FlakeRef::toAttrs` and
//! `FlakeRef::fromAttrs` / `to_string` for the input types whose URL form is
//! fixed: `indirect` (`nixpkgs`, `flake:nixpkgs/ref`), `github`, `gitlab`,
//! `sourcehut`, `path`, `git` (`git+https://...`), `tarball` and `file`.
//! The `dir` query parameter is the flake's subdirectory in both directions.
//! Relative paths need a base directory and are refused.

/// One attribute of a flake reference: CppNix keeps strings, integers
/// (`lastModified`, `revCount`) and Booleans (`shallow`, `submodules`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlakeAttr {
    String(String),
    Int(u64),
    Bool(bool),
}

/// Attributes in name order.
pub type FlakeAttrs = Vec<(String, FlakeAttr)>;

fn is_flake_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_rev(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// CppNix's `refRegex`: no leading `.` or `-`, no `..`, no control characters
/// or `~^:?*[\` and no trailing `/`, `.lock`.
fn is_ref(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.starts_with('-')
        && !s.contains("..")
        && !s.contains("@{")
        && !s.ends_with('/')
        && !s.ends_with(".lock")
        && !s.contains("//")
        && s.bytes().all(|b| b > b' ' && b != 0x7f && !b"~^:?*[\\".contains(&b))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// CppNix's `percentEncode`: unreserved characters and `keep` stay as they are.
fn percent_encode(s: &str, keep: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.as_bytes().contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn encode_query(query: &[(String, String)]) -> String {
    let mut sorted = query.to_vec();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k, ""), percent_encode(v, ":@/?")))
        .collect::<Vec<_>>()
        .join("&")
}

struct Url {
    scheme: String,
    /// `//authority`, without the slashes, when present.
    authority: Option<String>,
    path: String,
    query: Vec<(String, String)>,
}

impl Url {
    fn render(&self) -> String {
        let mut out = format!("{}:", self.scheme);
        if let Some(a) = &self.authority {
            out.push_str("//");
            out.push_str(a);
        }
        out.push_str(&self.path);
        if !self.query.is_empty() {
            out.push('?');
            out.push_str(&encode_query(&self.query));
        }
        out
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.query.iter().position(|(k, _)| k == name)?;
        Some(self.query.remove(i).1)
    }
}

fn parse_url(s: &str) -> Result<Url, String> {
    let colon = s.find(':').ok_or_else(|| format!("'{s}' is not a valid URL"))?;
    let scheme = &s[..colon];
    if scheme.is_empty()
        || !scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(format!("'{s}' is not a valid URL"));
    }
    let mut rest = &s[colon + 1..];
    if rest.contains('#') {
        let (_, fragment) = rest.split_once('#').unwrap_or_default();
        return Err(format!("unexpected fragment '{fragment}' in flake reference '{s}'"));
    }
    let mut query = Vec::new();
    if let Some((before, q)) = rest.split_once('?') {
        rest = before;
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (percent_decode(k), percent_decode(v));
            // A later parameter replaces an earlier one, as in CppNix's map.
            query.retain(|(key, _): &(String, String)| *key != k);
            query.push((k, v));
        }
    }
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(after[..end].to_string()), after[end..].to_string())
        }
        None => (None, rest.to_string()),
    };
    Ok(Url { scheme: scheme.to_string(), authority, path: percent_decode(&path), query })
}

fn has_tarball_extension(path: &str) -> bool {
    [".zip", ".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst"].iter().any(|ext| path.ends_with(ext))
}

fn push(attrs: &mut FlakeAttrs, name: &str, value: FlakeAttr) {
    attrs.retain(|(k, _)| k != name);
    attrs.push((name.to_string(), value));
}

fn s(v: impl Into<String>) -> FlakeAttr {
    FlakeAttr::String(v.into())
}

/// `builtins.parseFlakeRef`: the attributes of a flake reference.
pub fn parse_flake_ref(input: &str) -> Result<FlakeAttrs, String> {
    let mut attrs = FlakeAttrs::new();

    // `nixpkgs`, `nixpkgs/branch`, `flake:nixpkgs/<rev>`.
    let indirect = input.strip_prefix("flake:").unwrap_or(input);
    if !indirect.contains(':') && !input.starts_with('/') && !input.starts_with('.') {
        let (id, rest) = match indirect.split_once('/') {
            Some((id, rest)) => (id, Some(rest)),
            None => (indirect.split('?').next().unwrap_or(indirect), None),
        };
        if is_flake_id(id) {
            push(&mut attrs, "id", s(id));
            if let Some(rest) = rest {
                let parts: Vec<&str> = rest.split('/').collect();
                match parts.as_slice() {
                    [one] if is_rev(one) => push(&mut attrs, "rev", s(*one)),
                    [one] if is_ref(one) => push(&mut attrs, "ref", s(*one)),
                    [reference, rev] if is_ref(reference) && is_rev(rev) => {
                        push(&mut attrs, "ref", s(*reference));
                        push(&mut attrs, "rev", s(*rev));
                    }
                    _ => return Err(format!("'{input}' is not a valid flake reference")),
                }
            }
            push(&mut attrs, "type", s("indirect"));
            attrs.sort_by(|a, b| a.0.cmp(&b.0));
            return Ok(attrs);
        }
    }

    if input.starts_with('/') || input.starts_with('.') {
        if !input.starts_with('/') {
            return Err(format!("cannot parse relative flake reference '{input}' without a base directory"));
        }
        let (path, query) = input.split_once('?').unwrap_or((input, ""));
        let mut url = parse_url(&format!("path:{path}{}{query}", if query.is_empty() { "" } else { "?" }))?;
        return finish_path(&mut url, attrs);
    }

    let mut url = parse_url(input)?;
    let dir = url.take("dir");
    let scheme = url.scheme.clone();
    match scheme.as_str() {
        "github" | "gitlab" | "sourcehut" => {
            let url_path = url.path.clone();
            let path: Vec<&str> = url_path.split('/').filter(|c| !c.is_empty()).collect();
            if path.len() < 2 {
                return Err(format!("URL '{input}' is invalid"));
            }
            let mut rev = None;
            let mut reference = None;
            if path.len() >= 3 {
                let rest = path[2..].join("/");
                if path.len() == 3 && is_rev(&rest) {
                    rev = Some(rest);
                } else if is_ref(&rest) {
                    reference = Some(rest);
                } else {
                    return Err(format!("in URL '{input}', '{rest}' is not a commit hash or branch/tag name"));
                }
            }
            if let Some(r) = url.take("rev") {
                if rev.is_some() {
                    return Err(format!("URL '{input}' contains multiple commit hashes"));
                }
                rev = Some(r);
            }
            if let Some(r) = url.take("ref") {
                if reference.is_some() {
                    return Err(format!("URL '{input}' contains multiple branch/tag names"));
                }
                reference = Some(r);
            }
            if rev.is_some() && reference.is_some() {
                return Err(format!("URL '{input}' contains both a commit hash and a branch/tag name"));
            }
            push(&mut attrs, "type", s(scheme.as_str()));
            push(&mut attrs, "owner", s(path[0]));
            push(&mut attrs, "repo", s(path[1]));
            if let Some(r) = rev {
                push(&mut attrs, "rev", s(r));
            }
            if let Some(r) = reference {
                push(&mut attrs, "ref", s(r));
            }
            for name in ["host", "narHash"] {
                if let Some(v) = url.take(name) {
                    push(&mut attrs, name, s(v));
                }
            }
        }
        "path" => {
            attrs = finish_path(&mut url, attrs)?;
        }
        _ if scheme.starts_with("git+") || scheme == "git" => {
            url.scheme = scheme.strip_prefix("git+").unwrap_or(&scheme).to_string();
            push(&mut attrs, "type", s("git"));
            let mut rest = Vec::new();
            for (k, v) in std::mem::take(&mut url.query) {
                match k.as_str() {
                    "rev" | "ref" | "keytype" | "publicKey" | "publicKeys" => push(&mut attrs, &k, s(v)),
                    "shallow" | "submodules" | "lfs" | "exportIgnore" | "allRefs" | "verifyCommit" => {
                        push(&mut attrs, &k, FlakeAttr::Bool(v == "1"))
                    }
                    _ => rest.push((k, v)),
                }
            }
            url.query = rest;
            push(&mut attrs, "url", s(url.render()));
        }
        _ => {
            let (kind, inner) = if let Some(inner) = scheme.strip_prefix("tarball+") {
                ("tarball", inner.to_string())
            } else if let Some(inner) = scheme.strip_prefix("file+") {
                ("file", inner.to_string())
            } else if ["http", "https", "file"].contains(&scheme.as_str()) {
                (if has_tarball_extension(&url.path) { "tarball" } else { "file" }, scheme.clone())
            } else {
                return Err(format!("input '{input}' is unsupported"));
            };
            url.scheme = inner;
            push(&mut attrs, "type", s(kind));
            if let Some(v) = url.take("narHash") {
                push(&mut attrs, "narHash", s(v));
            }
            push(&mut attrs, "url", s(url.render()));
        }
    }
    if let Some(dir) = dir.filter(|d| !d.is_empty()) {
        push(&mut attrs, "dir", s(dir));
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(attrs)
}

fn finish_path(url: &mut Url, mut attrs: FlakeAttrs) -> Result<FlakeAttrs, String> {
    let dir = url.take("dir");
    push(&mut attrs, "type", s("path"));
    push(&mut attrs, "path", s(url.path.clone()));
    for (k, v) in std::mem::take(&mut url.query) {
        match k.as_str() {
            "rev" | "narHash" => push(&mut attrs, &k, s(v)),
            "lastModified" | "revCount" => {
                let n = v.parse::<u64>().map_err(|_| format!("path URL has invalid parameter '{k}'"))?;
                push(&mut attrs, &k, FlakeAttr::Int(n))
            }
            _ => return Err(format!("path URL has unsupported parameter '{k}'")),
        }
    }
    if let Some(dir) = dir.filter(|d| !d.is_empty()) {
        push(&mut attrs, "dir", s(dir));
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(attrs)
}

fn get<'a>(attrs: &'a FlakeAttrs, name: &str) -> Option<&'a FlakeAttr> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn get_str(attrs: &FlakeAttrs, name: &str) -> Result<Option<String>, String> {
    match get(attrs, name) {
        None => Ok(None),
        Some(FlakeAttr::String(v)) => Ok(Some(v.clone())),
        Some(_) => Err(format!("attribute '{name}' must be a string")),
    }
}

fn require_str(attrs: &FlakeAttrs, name: &str) -> Result<String, String> {
    get_str(attrs, name)?.ok_or_else(|| format!("attribute '{name}' is missing"))
}

fn render_attr(v: &FlakeAttr) -> String {
    match v {
        FlakeAttr::String(s) => s.clone(),
        FlakeAttr::Int(n) => n.to_string(),
        FlakeAttr::Bool(b) => if *b { "1" } else { "0" }.to_string(),
    }
}

/// `builtins.flakeRefToString`: the URL form of a flake reference's attributes.
pub fn flake_ref_to_string(attrs: &FlakeAttrs) -> Result<String, String> {
    let kind = require_str(attrs, "type")?;
    let dir = get_str(attrs, "dir")?;
    let allowed: &[&str] = match kind.as_str() {
        "indirect" => &["type", "id", "ref", "rev", "narHash", "dir"],
        "github" | "gitlab" | "sourcehut" => {
            &["type", "owner", "repo", "ref", "rev", "narHash", "lastModified", "host", "treeHash", "dir"]
        }
        "path" => &["type", "path", "rev", "narHash", "lastModified", "revCount", "dir"],
        "tarball" | "file" => &["type", "url", "narHash", "name", "unpack", "rev", "revCount", "lastModified", "dir"],
        "git" => &[
            "type", "url", "ref", "rev", "shallow", "submodules", "lfs", "exportIgnore", "lastModified", "revCount",
            "narHash", "allRefs", "name", "dirtyRev", "dirtyShortRev", "verifyCommit", "keytype", "publicKey",
            "publicKeys", "dir",
        ],
        other => return Err(format!("input type '{other}' is unsupported")),
    };
    if let Some((name, _)) = attrs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!("unsupported {kind} input attribute '{name}'"));
    }
    let mut url = match kind.as_str() {
        "indirect" => {
            let mut path = require_str(attrs, "id")?;
            for name in ["ref", "rev"] {
                if let Some(v) = get_str(attrs, name)? {
                    path.push('/');
                    path.push_str(&v);
                }
            }
            Url { scheme: "flake".into(), authority: None, path, query: Vec::new() }
        }
        "github" | "gitlab" | "sourcehut" => {
            let mut path = format!("{}/{}", require_str(attrs, "owner")?, require_str(attrs, "repo")?);
            let reference = get_str(attrs, "ref")?;
            let rev = get_str(attrs, "rev")?;
            if reference.is_some() && rev.is_some() {
                return Err("a flake reference cannot have both a 'ref' and a 'rev'".into());
            }
            if let Some(v) = reference.or(rev) {
                path.push('/');
                path.push_str(&v);
            }
            let mut query = Vec::new();
            for name in ["narHash", "host"] {
                if let Some(v) = get_str(attrs, name)? {
                    query.push((name.to_string(), v));
                }
            }
            Url { scheme: kind.clone(), authority: None, path, query }
        }
        "path" => {
            let mut query = Vec::new();
            for name in ["rev", "narHash", "lastModified", "revCount"] {
                if let Some(v) = get(attrs, name) {
                    query.push((name.to_string(), render_attr(v)));
                }
            }
            Url { scheme: "path".into(), authority: None, path: require_str(attrs, "path")?, query }
        }
        "tarball" | "file" => {
            let mut url = parse_url(&require_str(attrs, "url")?)?;
            if let Some(v) = get_str(attrs, "narHash")? {
                url.query.push(("narHash".into(), v));
            }
            // The type is spelled out unless the URL's own form implies it.
            let natural = ["http", "https", "file"].contains(&url.scheme.as_str())
                && has_tarball_extension(&url.path) == (kind == "tarball");
            if !natural {
                url.scheme = format!("{kind}+{}", url.scheme);
            }
            url
        }
        _ => {
            let mut url = parse_url(&require_str(attrs, "url")?)?;
            if url.scheme != "git" {
                url.scheme = format!("git+{}", url.scheme);
            }
            for name in ["ref", "rev", "shallow", "submodules", "lfs", "exportIgnore", "allRefs"] {
                if let Some(v) = get(attrs, name) {
                    if matches!(v, FlakeAttr::Bool(false)) {
                        continue;
                    }
                    url.query.push((name.to_string(), render_attr(v)));
                }
            }
            url
        }
    };
    if let Some(dir) = dir.filter(|d| !d.is_empty()) {
        url.query.retain(|(k, _)| k != "dir");
        url.query.push(("dir".into(), dir));
    }
    Ok(url.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(pairs: &[(&str, &str)]) -> FlakeAttrs {
        pairs.iter().map(|(k, v)| (k.to_string(), FlakeAttr::String(v.to_string()))).collect()
    }

    #[test]
    fn forge_references_round_trip() {
        let attrs = parse_flake_ref("github:NixOS/nixpkgs/23.05?dir=lib").unwrap();
        assert_eq!(attrs, strs(&[("dir", "lib"), ("owner", "NixOS"), ("ref", "23.05"), ("repo", "nixpkgs"), ("type", "github")]));
        assert_eq!(flake_ref_to_string(&attrs).unwrap(), "github:NixOS/nixpkgs/23.05?dir=lib");
    }

    #[test]
    fn indirect_and_path_references() {
        assert_eq!(parse_flake_ref("nixpkgs").unwrap(), strs(&[("id", "nixpkgs"), ("type", "indirect")]));
        assert_eq!(
            parse_flake_ref("flake:nixpkgs/nixos-24.05").unwrap(),
            strs(&[("id", "nixpkgs"), ("ref", "nixos-24.05"), ("type", "indirect")])
        );
        assert_eq!(parse_flake_ref("/srv/flake").unwrap(), strs(&[("path", "/srv/flake"), ("type", "path")]));
        assert_eq!(flake_ref_to_string(&strs(&[("path", "/srv/flake"), ("type", "path")])).unwrap(), "path:/srv/flake");
    }

    #[test]
    fn git_and_file_references() {
        let attrs = parse_flake_ref("git+https://example.org/repo.git?ref=main&shallow=1").unwrap();
        assert_eq!(get(&attrs, "shallow"), Some(&FlakeAttr::Bool(true)));
        assert_eq!(get(&attrs, "url"), Some(&FlakeAttr::String("https://example.org/repo.git".into())));
        assert_eq!(flake_ref_to_string(&attrs).unwrap(), "git+https://example.org/repo.git?ref=main&shallow=1");
        let file = strs(&[("type", "file"), ("url", "file:///nix/store/x-hello")]);
        assert_eq!(flake_ref_to_string(&file).unwrap(), "file:///nix/store/x-hello");
        let tarball = strs(&[("type", "tarball"), ("url", "https://example.org/a.tar.gz")]);
        assert_eq!(flake_ref_to_string(&tarball).unwrap(), "https://example.org/a.tar.gz");
    }
}
