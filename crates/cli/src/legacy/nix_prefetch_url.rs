//! `nix-prefetch-url [--type ALGO] [--print-path] [--unpack] [--executable]
//! [--name NAME] URL [EXPECTED-HASH]`: fetches a file into the store as a
//! fixed-output path and prints its hash (base16 for md5, nix32 otherwise), as
//! CppNix 2.8 does. URLs are fetched by nivis-fetch (`http://`, `file://`, and
//! `https://` when built with TLS); `--unpack` unpacks any archive nivis-fetch
//! knows, and a single top-level entry in the archive becomes the path, as in
//! CppNix. A wrong expected hash fails with `hash mismatch in file downloaded
//! from 'URL'` and the two hashes (CppNix names only its temporary file).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, HashEncoding, StorePathSet};

use crate::store_args::open_store;

struct Options {
    store: Option<String>,
    algo: HashAlgorithm,
    print_path: bool,
    unpack: bool,
    executable: bool,
    name: Option<String>,
    args: Vec<String>,
}

fn parse(args: Vec<OsString>) -> anyhow::Result<Options> {
    let mut options = Options {
        store: None,
        algo: HashAlgorithm::Sha256,
        print_path: false,
        unpack: false,
        executable: false,
        name: None,
        args: Vec::new(),
    };
    let mut iter = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        let mut value = |flag: &str| iter.next().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"));
        match arg.as_str() {
            "--type" => {
                let name = value("--type")?;
                options.algo = HashAlgorithm::from_name(&name)
                    .ok_or_else(|| anyhow::anyhow!("unknown hash algorithm '{name}'"))?;
            }
            "--print-path" => options.print_path = true,
            "--unpack" => options.unpack = true,
            "--executable" => options.executable = true,
            "--name" => options.name = Some(value("--name")?),
            "--store" => options.store = Some(value("--store")?),
            "--option" => {
                value("--option")?;
                value("--option")?;
            }
            "--attr" | "-A" | "--arg" | "--argstr" => {
                return crate::not_implemented::not_implemented(&format!("nix-prefetch-url {arg}")).map(|_| unreachable!());
            }
            "--help" => {
                println!("Usage: nix-prefetch-url [--type ALGO] [--print-path] [--unpack] [--executable] [--name NAME] URL [HASH]");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') && flag.len() > 1 => {
                bail!("unrecognised flag '{flag}'\nTry 'nix-prefetch-url --help' for more information.")
            }
            _ => options.args.push(arg),
        }
    }
    Ok(options)
}

/// The file part of a URL, as CppNix's `baseNameOf`.
fn url_base_name(url: &str) -> String {
    let trimmed = url.strip_suffix('/').unwrap_or(url);
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let options = parse(args)?;
    let (url, expected) = match options.args.as_slice() {
        [url] => (url.clone(), None),
        [url, hash] => (url.clone(), Some(hash.clone())),
        [] => bail!("you must specify a URL"),
        _ => bail!("too many arguments"),
    };
    let store = open_store(options.store.as_deref())?;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => url_base_name(&url),
    };
    if name.is_empty() {
        bail!("cannot figure out file name for '{url}'");
    }
    let method = if options.unpack || options.executable {
        FileIngestionMethod::Recursive
    } else {
        FileIngestionMethod::Flat
    };
    let expected_hash = match &expected {
        Some(text) => Some(Hash::parse_any(text, Some(options.algo))?),
        None => None,
    };
    // With an expected hash the path is known: if valid, nothing is fetched.
    if let Some(hash) = &expected_hash {
        let path = store
            .store_dir()
            .make_fixed_output_path(method, hash, &name, &StorePathSet::new(), false)?;
        if store.is_valid_path(&path)? {
            return print_result(store.as_ref(), hash, &path, options.print_path);
        }
    }
    let settings = nivis_fetch::FetchSettings::load();
    let temp = nivis_fetch::temp_dir()?;
    let mut source = temp.path().join("tmp");
    // As CppNix: the bytes as served (no Content-Encoding decoding).
    let request = nivis_fetch::transfer::TransferRequest { url: &url, expected_etag: None, decompress: false, insecure_tls: false };
    nivis_fetch::download_to(&settings, &request, &source)?;
    if options.executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755))?;
    }
    if options.unpack {
        let unpacked = temp.path().join("unpacked");
        std::fs::create_dir(&unpacked)?;
        nivis_fetch::unpack::unpack_archive(&source, &unpacked)
            .with_context(|| format!("unpacking the file downloaded from '{url}'"))?;
        // A single top-level file or directory is the result, as in CppNix.
        let entries: Vec<_> = std::fs::read_dir(&unpacked)?.collect::<Result<_, _>>()?;
        source = if entries.len() == 1 { entries[0].path() } else { unpacked };
    }
    // Check an expected hash before adding, so a mismatch registers nothing.
    if let Some(expected) = &expected_hash {
        let mut hasher = nivis_formats::Hasher::new(options.algo);
        match method {
            FileIngestionMethod::Flat => {
                std::io::copy(&mut std::fs::File::open(&source)?, &mut hasher)?;
            }
            FileIngestionMethod::Recursive => nivis_store::dump_path(&source, &mut hasher)?,
        }
        let actual = hasher.finish();
        if &actual != expected {
            bail!(
                "hash mismatch in file downloaded from '{url}':\n  specified: {}\n  got:       {}",
                expected.encode(HashEncoding::Nix32, true),
                actual.encode(HashEncoding::Nix32, true)
            );
        }
    }
    let path = store.add_to_store(&name, Path::new(&source), method, options.algo, &StorePathSet::new(), false)?;
    let info = store
        .query_path_info(&path)?
        .ok_or_else(|| anyhow::anyhow!("path '{}' vanished", store.print_store_path(&path)))?;
    let hash = info
        .ca
        .as_ref()
        .map(|ca| ca.hash().clone())
        .ok_or_else(|| anyhow::anyhow!("path '{}' has no content address", store.print_store_path(&path)))?;
    if let Some(expected) = &expected_hash {
        if expected != &hash {
            bail!(
                "hash mismatch in file downloaded from '{url}':\n  specified: {}\n  got:       {}",
                expected.encode(HashEncoding::Nix32, true),
                hash.encode(HashEncoding::Nix32, true)
            );
        }
    }
    print_result(store.as_ref(), &hash, &path, options.print_path)
}

fn print_result(
    store: &dyn nivis_store::Store,
    hash: &Hash,
    path: &nivis_formats::StorePath,
    print_path: bool,
) -> crate::CommandResult {
    if !print_path {
        eprintln!("path is '{}'", store.print_store_path(path));
    }
    let encoding = if hash.algorithm() == HashAlgorithm::Md5 { HashEncoding::Base16 } else { HashEncoding::Nix32 };
    println!("{}", hash.encode(encoding, false));
    if print_path {
        println!("{}", store.print_store_path(path));
    }
    Ok(ExitCode::SUCCESS)
}
