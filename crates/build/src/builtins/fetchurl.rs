//! `builtin:fetchurl`, the builder of `<nix/fetchurl.nix>`: downloads `url`
//! into the output `out`, as CppNix 2.8's `builtinFetchurl`. With
//! `unpack = "1"` the download is a NAR (xz-compressed if the URL ends in
//! `.xz`) restored as the output; `executable = "1"` makes the file
//! executable. For flat outputs the `hashed-mirrors` are tried first, at
//! `<mirror>/<algo>/<base-16 hash>`. TLS certificates are not checked (the
//! fixed-output hash is), and the download is not decompressed.
//!
//! The output hash itself is checked by the scheduler afterwards, as for any
//! fixed-output derivation.

use std::collections::BTreeMap;
use std::io::BufReader;

use nivis_fetch::transfer::{TransferRequest, download_to};
use nivis_fetch::{FetchError, FetchSettings};
use nivis_formats::{Hash, HashAlgorithm};

use super::StoreLocation;

#[derive(Debug, thiserror::Error)]
pub enum FetchurlError {
    #[error("attribute '{0}' missing")]
    MissingAttribute(String),
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("{0}")]
    Message(String),
}

fn get<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, FetchurlError> {
    env.get(name)
        .map(String::as_str)
        .ok_or_else(|| FetchurlError::MissingAttribute(name.to_string()))
}

/// Runs `builtin:fetchurl` for a derivation whose environment is `env`.
pub fn builtin_fetchurl(env: &BTreeMap<String, String>, location: &StoreLocation) -> Result<(), FetchurlError> {
    let out = get(env, "out")?;
    let main_url = get(env, "url")?;
    let unpack = env.get("unpack").map(String::as_str) == Some("1");
    let executable = env.get("executable").map(String::as_str) == Some("1");
    let base = out.rsplit('/').next().unwrap_or(out);
    let target = location.real.join(base);
    let settings = FetchSettings::load();

    let fetch = |url: &str| -> Result<(), FetchurlError> {
        let temp = nivis_fetch::temp_dir()?;
        let download = temp.path().join("download");
        download_to(
            &settings,
            &TransferRequest {
                url,
                expected_etag: None,
                decompress: false,
                insecure_tls: true,
            },
            &download,
        )?;
        if target.symlink_metadata().is_ok() {
            let _ = nivis_store::delete_path(&target);
        }
        if unpack {
            let file = std::fs::File::open(&download)
                .map_err(|e| FetchurlError::Message(format!("opening '{}': {e}", download.display())))?;
            let compression = if main_url.ends_with(".xz") { "xz" } else { "none" };
            let reader =
                nivis_fetch::unpack::decompressor(compression, Box::new(file)).map_err(FetchurlError::Message)?;
            nivis_formats::nar::restore_path(&mut BufReader::new(reader), &target)
                .map_err(|e| FetchurlError::Message(format!("unpacking the NAR downloaded from '{url}': {e}")))?;
        } else {
            std::fs::copy(&download, &target)
                .map_err(|e| FetchurlError::Message(format!("writing '{}': {e}", target.display())))?;
        }
        if executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| FetchurlError::Message(format!("making '{out}' executable: {e}")))?;
        }
        Ok(())
    };

    if env.get("outputHashMode").map(String::as_str) == Some("flat") {
        for mirror in &settings.hashed_mirrors {
            let algorithm = env.get("outputHashAlgo").and_then(|a| HashAlgorithm::from_name(a));
            let Some(hash) = env.get("outputHash").and_then(|h| Hash::parse_any(h, algorithm).ok()) else {
                break;
            };
            let mirror = if mirror.ends_with('/') {
                mirror.clone()
            } else {
                format!("{mirror}/")
            };
            let url = format!("{mirror}{}/{}", hash.algorithm().name(), hash.to_base16());
            if fetch(&url).is_ok() {
                return Ok(());
            }
        }
    }
    fetch(main_url)
}
