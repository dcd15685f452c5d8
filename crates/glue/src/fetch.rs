//! `EvalIO::fetch` over nivis-fetch: turns the evaluated arguments of
//! `fetchurl`, `fetchTarball`, `fetchGit` and `fetchTree` into a fetch, and the
//! result into the attributes CppNix 2.8's `emitTreeAttrs` returns (`outPath`,
//! `narHash`, `rev`, `shortRev`, `revCount`, `lastModified`, `lastModifiedDate`,
//! `submodules`). Fetching writes to the store even in read-only evaluations,
//! as in CppNix (whose `--eval` still adds fetched paths).

use std::sync::OnceLock;

use nivis_eval::{FetchValue, IoError};
use nivis_fetch::{Attr, Attrs, FetchSettings, FetchUrl, Input};
use nivis_store::Store;

thread_local! {
    static THREAD_SETTINGS: std::cell::RefCell<Option<FetchSettings>> = const { std::cell::RefCell::new(None) };
}

/// Makes the evaluations on this thread use `settings` (cache directory,
/// `tarball-ttl`, ...) instead of those of `nix.conf`; `None` restores them.
/// Evaluations run on one thread, so this is how a caller (or a test) gives
/// one evaluation its own settings.
pub fn set_thread_fetch_settings(settings: Option<FetchSettings>) {
    THREAD_SETTINGS.with(|cell| *cell.borrow_mut() = settings);
}

fn settings() -> FetchSettings {
    static SETTINGS: OnceLock<FetchSettings> = OnceLock::new();
    THREAD_SETTINGS
        .with(|cell| cell.borrow().clone())
        .unwrap_or_else(|| SETTINGS.get_or_init(FetchSettings::load).clone())
}

fn fetch_error(error: nivis_fetch::FetchError) -> IoError {
    match u8::try_from(error.exit_status()) {
        Ok(exit_status) if exit_status != 1 => IoError::WithStatus { message: error.to_string(), exit_status },
        _ => IoError::Message(error.to_string()),
    }
}

/// CppNix's `fixURI`: a bare path is a `file://` URL.
fn fix_uri(uri: &str) -> String {
    if uri.contains("://") {
        uri.to_string()
    } else {
        format!("file://{uri}")
    }
}

/// CppNix's `fixURIForGit`: scp-style `user@host:path` becomes `ssh://user@host/path`.
fn fix_uri_for_git(uri: &str) -> String {
    if !uri.starts_with('/') {
        if let Some((user, rest)) = uri.split_once('@') {
            // `([^/]*)@(.*):(.*)`: the last colon after the first `@` splits host and path.
            if !user.contains('/') {
                if let Some((host, path)) = rest.rsplit_once(':') {
                    return fix_uri_with_scheme(&format!("{user}@{host}/{path}"), "ssh");
                }
            }
        }
    }
    fix_uri(uri)
}

/// `fetchTree "..."` takes URL-like references (`github:owner/repo`,
/// `git+https://...`, `path:...`) as they are, as current CppNix does; only a
/// plain path becomes a `file://` URL (2.8 made `github:...` a file URL too).
fn fix_tree_uri(uri: &str) -> String {
    let has_scheme = uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    // A bare name (`nixpkgs`) is a flake registry reference.
    let is_flake_id = uri.starts_with(|c: char| c.is_ascii_alphabetic())
        && uri.chars().all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    if has_scheme {
        uri.to_string()
    } else if is_flake_id {
        format!("flake:{uri}")
    } else {
        fix_uri(uri)
    }
}

fn fix_uri_with_scheme(uri: &str, scheme: &str) -> String {
    if uri.contains("://") {
        uri.to_string()
    } else {
        format!("{scheme}://{uri}")
    }
}

fn string_arg<'a>(args: &'a [(String, FetchValue)], name: &str) -> Option<&'a str> {
    args.iter().find(|(n, _)| n == name).and_then(|(_, v)| match v {
        FetchValue::String(s) => Some(s.as_str()),
        _ => None,
    })
}

/// `YYYYMMDDHHMMSS` in UTC, as `std::put_time(gmtime(...), "%Y%m%d%H%M%S")`.
pub fn format_last_modified_date(seconds: u64) -> String {
    let days = (seconds / 86400) as i64;
    let rest = seconds % 86400;
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

pub(crate) fn fetch(
    store: &dyn Store,
    kind: &str,
    args: &[(String, FetchValue)],
) -> Result<Vec<(String, FetchValue)>, IoError> {
    let settings = &settings();
    match kind {
        "file" | "tarball" => {
            let request = FetchUrl {
                url: string_arg(args, "url").unwrap_or("").to_string(),
                name: string_arg(args, "name").map(str::to_string),
                sha256: string_arg(args, "sha256").map(str::to_string),
                unpack: kind == "tarball",
            };
            let path = nivis_fetch::fetch_url(store, settings, &request).map_err(fetch_error)?;
            Ok(vec![(
                "outPath".to_string(),
                FetchValue::String(store.print_store_path(&path)),
            )])
        }
        "git" | "tree" => fetch_tree(store, settings, kind, args),
        _ => Err(IoError::Message(
            "fetchMercurial is not supported by nivis (it would need the 'hg' command)".to_string(),
        )),
    }
}

fn fetch_tree(
    store: &dyn Store,
    settings: &FetchSettings,
    kind: &str,
    args: &[(String, FetchValue)],
) -> Result<Vec<(String, FetchValue)>, IoError> {
    let input_type = string_arg(args, "type").map(str::to_string);
    let input = match &input_type {
        // `fetchTree "URL"`: the URL says what to fetch.
        None => {
            let url = string_arg(args, "url").unwrap_or("");
            nivis_fetch::input::input_from_url(&fix_tree_uri(url)).map_err(fetch_error)?
        }
        Some(input_type) => {
            let mut attrs = Attrs::new();
            for (name, value) in args {
                let attr = match value {
                    FetchValue::String(s) if name == "url" && input_type == "git" => Attr::String(fix_uri_for_git(s)),
                    FetchValue::String(s) if name == "url" => Attr::String(fix_uri(s)),
                    FetchValue::String(s) => Attr::String(s.clone()),
                    FetchValue::Bool(b) => Attr::Bool(*b),
                    // CppNix stores the integer as unsigned.
                    FetchValue::Int(n) => Attr::Int(*n as u64),
                };
                attrs.insert(name.clone(), attr);
            }
            Input::from_attrs(attrs).map_err(fetch_error)?
        }
    };
    let fetched = nivis_fetch::fetch_tree(store, settings, &input).map_err(fetch_error)?;
    let locked = &fetched.input;
    // `fetchGit` reports a dirty tree's missing revision as zeros.
    let empty_rev_fallback = kind == "git";
    let mut out = vec![(
        "outPath".to_string(),
        FetchValue::String(store.print_store_path(&fetched.store_path)),
    )];
    if let Some(Attr::String(nar_hash)) = locked.attrs.get("narHash") {
        out.push(("narHash".to_string(), FetchValue::String(nar_hash.clone())));
    }
    if locked.kind() == "git" {
        let submodules = matches!(locked.attrs.get("submodules"), Some(Attr::Bool(true)));
        out.push(("submodules".to_string(), FetchValue::Bool(submodules)));
    }
    match locked.rev().map_err(fetch_error)? {
        Some(rev) => {
            let text = rev.to_base16();
            out.push(("shortRev".to_string(), FetchValue::String(text[..7].to_string())));
            out.push(("rev".to_string(), FetchValue::String(text)));
        }
        None if empty_rev_fallback => {
            out.push(("rev".to_string(), FetchValue::String("0".repeat(40))));
            out.push(("shortRev".to_string(), FetchValue::String("0".repeat(7))));
        }
        None => {}
    }
    match locked.rev_count() {
        Some(count) => out.push(("revCount".to_string(), FetchValue::Int(count as i64))),
        None if empty_rev_fallback => out.push(("revCount".to_string(), FetchValue::Int(0))),
        None => {}
    }
    if let Some(time) = locked.last_modified() {
        out.push(("lastModified".to_string(), FetchValue::Int(time as i64)));
        out.push((
            "lastModifiedDate".to_string(),
            FetchValue::String(format_last_modified_date(time)),
        ));
    }
    Ok(out)
}
