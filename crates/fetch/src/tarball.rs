//! CppNix's `downloadFile` and `downloadTarball` (the `file` and `tarball`
//! fetchers) and the `fetchurl`/`fetchTarball` builtins built on them.
//!
//! A downloaded file becomes a flat, SHA-256 fixed-output path named `name`; a
//! tarball is downloaded that way too, then unpacked, and its single top-level
//! entry is added recursively as `name` (`lastModified` is that entry's
//! modification time). Both are remembered in the fetcher cache: a cached entry
//! younger than `tarball-ttl` is used without a request; an older one is
//! revalidated with its ETag.

use std::path::Path;

use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, HashEncoding, StorePath, StorePathSet};
use nivis_store::Store;

use crate::cache::Cache;
use crate::input::{Attr, Attrs};
use crate::transfer::{TransferRequest, download_to};
use crate::{FetchError, FetchSettings};

/// What `download_file` returns.
#[derive(Debug, Clone)]
pub struct DownloadedFile {
    pub store_path: StorePath,
    pub etag: String,
    pub effective_url: String,
}

fn string_attrs(pairs: &[(&str, &str)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Attr::String(v.to_string())))
        .collect()
}

fn info_string(info: &Attrs, name: &str) -> String {
    match info.get(name) {
        Some(Attr::String(s)) => s.clone(),
        _ => String::new(),
    }
}

pub(crate) fn temp_dir() -> Result<tempfile::TempDir, FetchError> {
    tempfile::Builder::new()
        .prefix("nivis-fetch-")
        .tempdir()
        .map_err(|e| FetchError::io("creating a temporary directory", e))
}

/// Downloads `url` into the store as a flat file named `name` (CppNix's
/// `downloadFile`). `immutable`: the URL's contents never change (a hash was
/// given), so the cache entry never expires.
pub fn download_file(
    store: &dyn Store,
    settings: &FetchSettings,
    url: &str,
    name: &str,
    immutable: bool,
) -> Result<DownloadedFile, FetchError> {
    let cache = Cache::new(settings);
    let input = string_attrs(&[("type", "file"), ("url", url), ("name", name)]);
    let cached = cache.lookup_expired(store, &input, settings.tarball_ttl);
    let use_cached = |entry: &crate::cache::CacheEntry| DownloadedFile {
        store_path: entry.store_path.clone(),
        etag: info_string(&entry.info, "etag"),
        effective_url: info_string(&entry.info, "url"),
    };
    if let Some(entry) = cached.as_ref().filter(|e| !e.expired) {
        return Ok(use_cached(entry));
    }
    let temp = temp_dir()?;
    let file = temp.path().join("download");
    let expected_etag = cached.as_ref().map(|e| info_string(&e.info, "etag"));
    let request = TransferRequest {
        url,
        expected_etag: expected_etag.as_deref(),
        decompress: true,
        insecure_tls: false,
    };
    let result = match download_to(settings, &request, &file) {
        Ok(result) => result,
        Err(error) => {
            if let Some(entry) = &cached {
                (settings.warn)(&format!("{error}; using cached version"));
                return Ok(use_cached(entry));
            }
            return Err(error);
        }
    };
    let store_path = match (&cached, result.not_modified) {
        (Some(entry), true) => entry.store_path.clone(),
        _ => store.add_to_store(
            name,
            &file,
            FileIngestionMethod::Flat,
            HashAlgorithm::Sha256,
            &StorePathSet::new(),
            false,
        )?,
    };
    let info = string_attrs(&[("etag", &result.etag), ("url", &result.effective_url)]);
    cache.add(store, &input, &info, &store_path, immutable);
    if url != result.effective_url {
        let effective = string_attrs(&[("type", "file"), ("url", &result.effective_url), ("name", name)]);
        cache.add(store, &effective, &info, &store_path, immutable);
    }
    Ok(DownloadedFile {
        store_path,
        etag: result.etag,
        effective_url: result.effective_url,
    })
}

/// Unpacks `archive` and returns the temporary directory and its single
/// top-level entry (an error names `url` if there is not exactly one).
pub(crate) fn unpack_single_root(
    archive: &Path,
    url: &str,
) -> Result<(tempfile::TempDir, std::path::PathBuf), FetchError> {
    let temp = temp_dir()?;
    crate::unpack::unpack_archive(archive, temp.path())?;
    let members: Vec<_> = std::fs::read_dir(temp.path())
        .map_err(|e| FetchError::io(format!("reading directory '{}'", temp.path().display()), e))?
        .collect::<Result<_, _>>()
        .map_err(|e| FetchError::io(format!("reading directory '{}'", temp.path().display()), e))?;
    if members.len() != 1 {
        return Err(FetchError::msg(format!(
            "tarball '{url}' contains an unexpected number of top-level files"
        )));
    }
    let root = members[0].path();
    Ok((temp, root))
}

/// Downloads and unpacks a tarball into the store as `name` (CppNix's
/// `downloadTarball`); returns the path and the top-level entry's mtime.
pub fn download_tarball(
    store: &dyn Store,
    settings: &FetchSettings,
    url: &str,
    name: &str,
    immutable: bool,
) -> Result<(StorePath, u64), FetchError> {
    let cache = Cache::new(settings);
    let input = string_attrs(&[("type", "tarball"), ("url", url), ("name", name)]);
    let cached = cache.lookup_expired(store, &input, settings.tarball_ttl);
    let last_modified_of = |info: &Attrs| match info.get("lastModified") {
        Some(Attr::Int(n)) => *n,
        _ => 0,
    };
    if let Some(entry) = cached.as_ref().filter(|e| !e.expired) {
        return Ok((entry.store_path.clone(), last_modified_of(&entry.info)));
    }
    let file = download_file(store, settings, url, name, immutable)?;
    let (store_path, last_modified) = match &cached {
        Some(entry) if !file.etag.is_empty() && info_string(&entry.info, "etag") == file.etag => {
            (entry.store_path.clone(), last_modified_of(&entry.info))
        }
        _ => {
            let archive = store
                .real_path(&file.store_path)
                .unwrap_or_else(|| store.print_store_path(&file.store_path).into());
            let (_temp, root) = unpack_single_root(&archive, url).map_err(|error| match error {
                // libarchive's messages do not say which download they are about.
                FetchError::Message(message) if !message.contains(url) => {
                    FetchError::Message(format!("{message} (while unpacking '{url}')"))
                }
                other => other,
            })?;
            let last_modified = {
                use std::os::unix::fs::MetadataExt;
                std::fs::symlink_metadata(&root)
                    .map(|m| m.mtime().max(0) as u64)
                    .unwrap_or(0)
            };
            let path = store.add_to_store(
                name,
                &root,
                FileIngestionMethod::Recursive,
                HashAlgorithm::Sha256,
                &StorePathSet::new(),
                false,
            )?;
            (path, last_modified)
        }
    };
    let mut info = Attrs::new();
    info.insert("lastModified".into(), Attr::Int(last_modified));
    info.insert("etag".into(), Attr::String(file.etag.clone()));
    cache.add(store, &input, &info, &store_path, immutable);
    Ok((store_path, last_modified))
}

/// The arguments of `builtins.fetchurl` and `builtins.fetchTarball`.
#[derive(Debug, Clone)]
pub struct FetchUrl {
    pub url: String,
    /// The `name` argument; `None` means the URL's base name (`fetchurl`) or
    /// `source` (`fetchTarball`).
    pub name: Option<String>,
    /// The `sha256` argument, as written.
    pub sha256: Option<String>,
    /// `fetchTarball` (unpack) or `fetchurl`.
    pub unpack: bool,
}

/// CppNix's `resolveUri`: `channel:NAME` is a nixos.org channel tarball.
pub fn resolve_uri(url: &str) -> String {
    match url.strip_prefix("channel:") {
        Some(channel) => format!("https://nixos.org/channels/{channel}/nixexprs.tar.xz"),
        None => url.to_string(),
    }
}

/// CppNix's `newHashAllowEmpty`: an empty hash is the all-zero one, with a warning.
pub fn parse_hash_allow_empty(
    settings: &FetchSettings,
    text: &str,
    algorithm: HashAlgorithm,
) -> Result<Hash, FetchError> {
    if text.is_empty() {
        let zero =
            Hash::from_digest(algorithm, &vec![0u8; algorithm.size()]).map_err(|e| FetchError::msg(e.to_string()))?;
        (settings.warn)(&format!("found empty hash, assuming '{}'", zero.to_sri()));
        return Ok(zero);
    }
    Hash::parse_any(text, Some(algorithm)).map_err(|e| FetchError::msg(e.to_string()))
}

/// `builtins.fetchurl` / `builtins.fetchTarball`: returns the store path. With
/// a `sha256`, a valid path of that hash is returned without fetching, and a
/// download with another hash fails (`hash mismatch in file downloaded from`).
pub fn fetch_url(store: &dyn Store, settings: &FetchSettings, request: &FetchUrl) -> Result<StorePath, FetchError> {
    let url = resolve_uri(&request.url);
    // As CppNix: `fetchTarball` defaults to `source`, and an empty name (given
    // or not) means the URL's base name.
    let mut name = match &request.name {
        Some(name) => name.clone(),
        None if request.unpack => "source".to_string(),
        None => String::new(),
    };
    if name.is_empty() {
        name = crate::transfer::url_base_name(&url).to_string();
    }
    let expected = match &request.sha256 {
        Some(text) => Some(parse_hash_allow_empty(settings, text, HashAlgorithm::Sha256)?),
        None => None,
    };
    let method = if request.unpack {
        FileIngestionMethod::Recursive
    } else {
        FileIngestionMethod::Flat
    };
    if let Some(hash) = expected.filter(|h| h.algorithm() == HashAlgorithm::Sha256)
        && let Ok(path) = store
            .store_dir()
            .make_fixed_output_path(method, &hash, &name, &StorePathSet::new(), false)
        && store.is_valid_path(&path)?
    {
        return Ok(path);
    }
    let store_path = if request.unpack {
        download_tarball(store, settings, &url, &name, expected.is_some())?.0
    } else {
        download_file(store, settings, &url, &name, expected.is_some())?.store_path
    };
    if let Some(expected) = expected {
        let actual = if request.unpack {
            store
                .query_path_info(&store_path)?
                .map(|info| info.nar_hash)
                .ok_or_else(|| {
                    FetchError::msg(format!("path '{}' is not valid", store.print_store_path(&store_path)))
                })?
        } else {
            let real = store
                .real_path(&store_path)
                .unwrap_or_else(|| store.print_store_path(&store_path).into());
            let mut hasher = nivis_formats::Hasher::new(HashAlgorithm::Sha256);
            let mut file =
                std::fs::File::open(&real).map_err(|e| FetchError::io(format!("opening '{}'", real.display()), e))?;
            std::io::copy(&mut file, &mut hasher)
                .map_err(|e| FetchError::io(format!("reading '{}'", real.display()), e))?;
            hasher.finish()
        };
        if actual != expected {
            return Err(FetchError::HashMismatch(format!(
                "hash mismatch in file downloaded from '{url}':\n  specified: {}\n  got:       {}",
                expected.encode(HashEncoding::Nix32, true),
                actual.encode(HashEncoding::Nix32, true)
            )));
        }
    }
    Ok(store_path)
}
