//! `github:`, `gitlab:` and `sourcehut:` inputs: a repository on a forge,
//! fetched as the forge's archive of one commit (CppNix's `GitArchiveInputScheme`).
//!
//! An input names `owner`, `repo` and at most one of `ref`/`rev`, optionally a
//! `host` (an instance other than github.com, gitlab.com, git.sr.ht). A `ref`
//! (default `HEAD`) is resolved to a commit through the forge: GitHub's and
//! GitLab's commit APIs, SourceHut's dumb-HTTP `HEAD` and `info/refs`. The locked
//! input keeps `rev` and the archive's `lastModified` (the top directory's mtime,
//! which forges set to the commit time).
//!
//! URLs, checked against CppNix 2.8 (whose error messages name them): GitHub
//! `https://api.github.com/repos/O/R/tarball/REV` (and `.../commits/REF`);
//! GitLab `https://HOST/api/v4/projects/O%2FR/repository/archive.tar.gz?sha=REV`
//! (and `.../repository/commits?ref_name=REF`); SourceHut
//! `https://HOST/O/R/archive/REV.tar.gz`. For a GitHub `host` other than
//! github.com we follow current CppNix (GitHub Enterprise's
//! `https://HOST/api/v3/repos/...`), where 2.8 built `https://api.HOST/...`.
//!
//! [`FetchSettings::archive_url_rewrite`] lets tests point these URLs at a
//! server on 127.0.0.1 (the forges are HTTPS-only and the host syntax takes no
//! port).

use nivis_formats::StorePath;
use nivis_store::Store;

use crate::input::{Attr, Attrs, Input, get_str, maybe_str};
use crate::{FetchError, FetchSettings};

/// The attributes an archive input may have (CppNix's `inputFromAttrs`).
pub(crate) const ARCHIVE_ATTRIBUTES: &[&str] =
    &["type", "owner", "repo", "ref", "rev", "narHash", "lastModified", "host"];

/// Whether `kind` is one of the forge types.
pub(crate) fn is_archive_kind(kind: &str) -> bool {
    matches!(kind, "github" | "gitlab" | "sourcehut")
}

fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// CppNix's `refRegex`: a name of word characters, `-`, `.`, `/`, not starting
/// with `.`/`-` nor ending in `.lock`.
fn is_ref_name(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with(['.', '-'])
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./+".contains(&b))
        && !crate::input::is_bad_git_ref(text)
}

/// `host=` takes letters, digits and dots only (no port, no scheme).
fn is_host(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// Parses `github:OWNER/REPO[/REF-OR-REV][?ref=..&rev=..&host=..]`.
pub(crate) fn input_from_url(url: &str, scheme: &str, rest: &str) -> Result<Input, FetchError> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let bad = |message: String| FetchError::msg(message);
    if parts.len() < 2 {
        return Err(bad(format!("URL '{url}' is invalid")));
    }
    let mut rev: Option<String> = None;
    let mut reference: Option<String> = None;
    let mut host: Option<String> = None;
    if parts.len() == 3 {
        if is_commit_hash(parts[2]) {
            rev = Some(parts[2].to_string());
        } else if is_ref_name(parts[2]) {
            reference = Some(parts[2].to_string());
        } else {
            return Err(bad(format!("in URL '{url}', '{}' is not a commit hash or branch/tag name", parts[2])));
        }
    } else if parts.len() > 3 {
        let joined = parts[2..].join("/");
        if !is_ref_name(&joined) {
            return Err(bad(format!("in URL '{url}', '{joined}' is not a branch/tag name")));
        }
        reference = Some(joined);
    }
    for parameter in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        match name {
            "rev" => {
                if rev.is_some() {
                    return Err(bad(format!("URL '{url}' contains multiple commit hashes")));
                }
                if !is_commit_hash(value) {
                    return Err(bad(format!("URL '{url}' contains an invalid commit hash")));
                }
                rev = Some(value.to_string());
            }
            "ref" => {
                if !is_ref_name(value) {
                    return Err(bad(format!("URL '{url}' contains an invalid branch/tag name")));
                }
                if reference.is_some() {
                    return Err(bad(format!("URL '{url}' contains multiple branch/tag names")));
                }
                reference = Some(value.to_string());
            }
            "host" => {
                if !is_host(value) {
                    return Err(bad(format!("URL '{url}' contains an invalid instance host")));
                }
                host = Some(value.to_string());
            }
            _ => {}
        }
    }
    if let (Some(reference), Some(rev)) = (&reference, &rev) {
        return Err(bad(format!(
            "URL '{url}' contains both a commit hash and a branch/tag name {reference} {rev}"
        )));
    }
    let mut attrs = Attrs::new();
    attrs.insert("type".into(), Attr::String(scheme.to_string()));
    attrs.insert("owner".into(), Attr::String(parts[0].to_string()));
    attrs.insert("repo".into(), Attr::String(parts[1].to_string()));
    if let Some(rev) = rev {
        attrs.insert("rev".into(), Attr::String(rev));
    }
    if let Some(reference) = reference {
        attrs.insert("ref".into(), Attr::String(reference));
    }
    if let Some(host) = host {
        attrs.insert("host".into(), Attr::String(host));
    }
    for parameter in query.split('&') {
        if let Some(nar_hash) = parameter.strip_prefix("narHash=") {
            attrs.insert("narHash".into(), Attr::String(nar_hash.to_string()));
        }
    }
    Input::from_attrs(attrs)
}

/// The checks of CppNix's `inputFromAttrs` beyond the attribute names.
pub(crate) fn check_attrs(attrs: &Attrs) -> Result<(), FetchError> {
    get_str(attrs, "owner")?;
    get_str(attrs, "repo")?;
    if maybe_str(attrs, "ref")?.is_some() && maybe_str(attrs, "rev")?.is_some() {
        return Err(FetchError::msg("an archive input cannot have both a 'ref' and a 'rev'"));
    }
    Ok(())
}

/// `github:OWNER/REPO[/REF|/REV]`, for messages (CppNix's `toURL`).
pub(crate) fn to_url(input: &Input) -> String {
    let owner = maybe_str(&input.attrs, "owner").ok().flatten().unwrap_or("");
    let repo = maybe_str(&input.attrs, "repo").ok().flatten().unwrap_or("");
    let mut url = format!("{}:{owner}/{repo}", input.kind());
    if let Some(reference) = input.reference() {
        url.push('/');
        url.push_str(reference);
    }
    if let Ok(Some(rev)) = input.rev() {
        url.push('/');
        url.push_str(&rev.to_base16());
    }
    url
}

fn default_host(kind: &str) -> &'static str {
    match kind {
        "github" => "github.com",
        "gitlab" => "gitlab.com",
        _ => "git.sr.ht",
    }
}

struct Forge<'a> {
    kind: &'a str,
    host: &'a str,
    owner: &'a str,
    repo: &'a str,
}

impl<'a> Forge<'a> {
    fn of(input: &'a Input) -> Result<Forge<'a>, FetchError> {
        let kind = input.kind();
        Ok(Forge {
            kind,
            host: maybe_str(&input.attrs, "host")?.unwrap_or(default_host(kind)),
            owner: get_str(&input.attrs, "owner")?,
            repo: get_str(&input.attrs, "repo")?,
        })
    }

    /// GitHub's REST API root: `api.github.com`, or `/api/v3` on an Enterprise host.
    fn github_api(&self) -> String {
        if self.host == "github.com" {
            format!("https://api.{}/repos/{}/{}", self.host, self.owner, self.repo)
        } else {
            format!("https://{}/api/v3/repos/{}/{}", self.host, self.owner, self.repo)
        }
    }

    fn gitlab_api(&self) -> String {
        format!("https://{}/api/v4/projects/{}%2F{}/repository", self.host, self.owner, self.repo)
    }

    fn sourcehut_base(&self) -> String {
        format!("https://{}/{}/{}", self.host, self.owner, self.repo)
    }

    fn archive_url(&self, rev: &str) -> String {
        match self.kind {
            "github" => format!("{}/tarball/{rev}", self.github_api()),
            "gitlab" => format!("{}/archive.tar.gz?sha={rev}", self.gitlab_api()),
            _ => format!("{}/archive/{rev}.tar.gz", self.sourcehut_base()),
        }
    }
}

/// The URL of the archive of a locked input (its `rev` known).
pub fn archive_url(input: &Input) -> Result<String, FetchError> {
    let rev = input
        .rev()?
        .ok_or_else(|| FetchError::msg(format!("input '{}' has no 'rev' to download", to_url(input))))?;
    Ok(Forge::of(input)?.archive_url(&rev.to_base16()))
}

/// The URL whose answer resolves `ref` to a commit (the first one, for SourceHut).
pub fn rev_lookup_url(input: &Input, reference: &str) -> Result<String, FetchError> {
    let forge = Forge::of(input)?;
    Ok(match forge.kind {
        "github" => format!("{}/commits/{reference}", forge.github_api()),
        "gitlab" => format!("{}/commits?ref_name={reference}", forge.gitlab_api()),
        _ if reference == "HEAD" => format!("{}/HEAD", forge.sourcehut_base()),
        _ => format!("{}/info/refs", forge.sourcehut_base()),
    })
}

fn rewrite(settings: &FetchSettings, url: String) -> String {
    match &settings.archive_url_rewrite {
        Some((from, to)) if url.starts_with(from.as_str()) => format!("{to}{}", &url[from.len()..]),
        _ => url,
    }
}

/// Downloads a small answer (not immutable: refs move) and returns its text.
fn download_text(store: &dyn Store, settings: &FetchSettings, url: &str) -> Result<String, FetchError> {
    let url = rewrite(settings, url.to_string());
    let file = crate::tarball::download_file(store, settings, &url, "source", false)?;
    let real = store
        .real_path(&file.store_path)
        .unwrap_or_else(|| store.print_store_path(&file.store_path).into());
    std::fs::read_to_string(&real).map_err(|e| FetchError::io(format!("reading '{}'", real.display()), e))
}

fn parse_rev(text: &str, url: &str) -> Result<String, FetchError> {
    if is_commit_hash(text) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(FetchError::msg(format!("'{url}' did not answer with a commit hash")))
    }
}

/// Resolves `reference` to a commit hash through the forge.
fn resolve_ref(store: &dyn Store, settings: &FetchSettings, input: &Input, reference: &str) -> Result<String, FetchError> {
    let url = rev_lookup_url(input, reference)?;
    let bad_json = |e: serde_json::Error| FetchError::msg(format!("cannot parse the answer of '{url}': {e}"));
    match input.kind() {
        "github" => {
            let json: serde_json::Value = serde_json::from_str(&download_text(store, settings, &url)?).map_err(bad_json)?;
            parse_rev(json["sha"].as_str().unwrap_or(""), &url)
        }
        "gitlab" => {
            let json: serde_json::Value = serde_json::from_str(&download_text(store, settings, &url)?).map_err(bad_json)?;
            parse_rev(json[0]["id"].as_str().unwrap_or(""), &url)
        }
        _ => {
            // `HEAD` names the default branch (`ref: refs/heads/main`); other
            // refs are branches or tags. `info/refs` lists `HASH<TAB>REF`.
            let wanted: Vec<String> = if reference == "HEAD" {
                let head = download_text(store, settings, &url)?;
                let line = head.lines().next().unwrap_or("");
                match line.split_once("ref: ") {
                    Some((_, target)) => vec![target.trim().to_string()],
                    None => {
                        return Err(FetchError::msg(format!(
                            "in '{}', couldn't resolve HEAD ref '{reference}'",
                            to_url(input)
                        )));
                    }
                }
            } else {
                vec![format!("refs/heads/{reference}"), format!("refs/tags/{reference}")]
            };
            let refs_url = format!("{}/info/refs", Forge::of(input)?.sourcehut_base());
            let refs = download_text(store, settings, &refs_url)?;
            for line in refs.lines() {
                if let Some((hash, name)) = line.split_once('\t')
                    && wanted.iter().any(|w| w == name.trim())
                {
                    return parse_rev(hash.trim(), &refs_url);
                }
            }
            Err(FetchError::msg(format!("no commit hash found for input '{}'", to_url(input))))
        }
    }
}

/// Fetches an archive input: the locked input (`rev`, `lastModified`, no `ref`)
/// and the store path of the unpacked archive.
pub(crate) fn fetch(store: &dyn Store, settings: &FetchSettings, input: &Input) -> Result<(StorePath, Input), FetchError> {
    let mut locked = input.clone();
    let rev = match input.rev()? {
        Some(rev) => rev.to_base16(),
        None => {
            let reference = input.reference().unwrap_or("HEAD").to_string();
            resolve_ref(store, settings, input, &reference)?
        }
    };
    locked.attrs.remove("ref");
    locked.attrs.insert("rev".into(), Attr::String(rev.clone()));
    let url = rewrite(settings, Forge::of(input)?.archive_url(&rev));
    let (store_path, last_modified) = crate::tarball::download_tarball(store, settings, &url, &input.name()?, true)?;
    locked.attrs.insert("lastModified".into(), Attr::Int(last_modified));
    Ok((store_path, locked))
}
