//! `nix store <subcommand>`: `add`, `add-path`, `add-file`, `dump-path`, `cat`,
//! `ls`, `verify`, `sign`, `delete` (and `gc`, in `store_gc.rs`), with CppNix's output (2.8 where it has the
//! command; `nix store add` follows later CppNix with `--mode flat|nar`).
//! Arguments are store paths or symlinks to them (no flake installables yet).

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_formats::{FileIngestionMethod, HashAlgorithm, HashEncoding, Hasher, Keyring, SecretKey, StorePath, StorePathSet};
use nivis_store::{ClosureOptions, Store};
use serde_json::json;

use crate::store_args::{absolute_path, follow_links_to_store_path, open_store};

/// Flags shared by the subcommands, parsed by hand (each subcommand rejects
/// what it does not take).
#[derive(Default)]
struct Args {
    store: Option<String>,
    name: Option<String>,
    mode: Option<String>,
    hash_algo: Option<String>,
    key_files: Vec<String>,
    recursive: bool,
    long: bool,
    json: bool,
    no_contents: bool,
    no_trust: bool,
    sigs_needed: usize,
    dry_run: bool,
    ignore_liveness: bool,
    positional: Vec<String>,
}

fn parse(sub: &str, args: &[OsString]) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        let mut value = |flag: &str| {
            iter.next().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"))
        };
        match arg.as_str() {
            "--store" => parsed.store = Some(value("--store")?),
            "--sigs-needed" | "-n" if sub == "verify" => {
                parsed.sigs_needed = value("--sigs-needed")?.parse().context("--sigs-needed")?
            }
            "--name" | "-n" => parsed.name = Some(value("--name")?),
            "--mode" => parsed.mode = Some(value("--mode")?),
            "--hash-algo" => parsed.hash_algo = Some(value("--hash-algo")?),
            "--key-file" | "-k" => parsed.key_files.push(value("--key-file")?),
            "--recursive" | "-r" => parsed.recursive = true,
            "--long" | "-l" => parsed.long = true,
            "-R" => parsed.recursive = true,
            "-lR" | "-Rl" => {
                parsed.long = true;
                parsed.recursive = true;
            }
            "--json" => parsed.json = true,
            "--no-contents" => parsed.no_contents = true,
            "--no-trust" => parsed.no_trust = true,
            "--dry-run" => parsed.dry_run = true,
            "--ignore-liveness" if sub == "delete" => parsed.ignore_liveness = true,
            "--extra-experimental-features" | "--experimental-features" => {
                value(&arg)?;
            }
            flag if flag.starts_with('-') && flag.len() > 1 => bail!("unrecognised flag '{flag}'"),
            _ => parsed.positional.push(arg),
        }
    }
    Ok(parsed)
}

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args = crate::store_args::hoist_global_flags(args.to_vec());
    let Some(sub) = args.first().map(|a| a.to_string_lossy().into_owned()) else {
        bail!("'nix store' requires a subcommand");
    };
    if sub == "gc" {
        return super::store_gc::run(&args[1..]);
    }
    let parsed = parse(&sub, &args[1..])?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let code = match sub.as_str() {
        "add" | "add-path" | "add-file" => add(&sub, &parsed, &mut out)?,
        "dump-path" => {
            let store = open_store(parsed.store.as_deref())?;
            for arg in &parsed.positional {
                let path = follow_links_to_store_path(store.as_ref(), arg)?;
                store.nar_from_path(&path, &mut out)?;
            }
            ExitCode::SUCCESS
        }
        "cat" => cat(&parsed, &mut out)?,
        "ls" => ls(&parsed, &mut out)?,
        "verify" => verify(&parsed)?,
        "sign" => sign(&parsed)?,
        "delete" => {
            let store = open_store(parsed.store.as_deref())?;
            let mut paths = StorePathSet::new();
            for arg in &parsed.positional {
                paths.insert(follow_links_to_store_path(store.as_ref(), arg)?);
            }
            let result = crate::legacy::nix_collect_garbage::delete_specific(store.as_ref(), paths, parsed.ignore_liveness, &mut out);
            out.flush()?;
            result?;
            ExitCode::SUCCESS
        }
        other => return crate::not_implemented::not_implemented(&format!("nix store {other}")),
    };
    out.flush()?;
    Ok(code)
}

fn add(sub: &str, args: &Args, out: &mut dyn Write) -> crate::CommandResult {
    let store = open_store(args.store.as_deref())?;
    let method = match (sub, args.mode.as_deref()) {
        ("add-file", _) => FileIngestionMethod::Flat,
        ("add-path", _) => FileIngestionMethod::Recursive,
        (_, None | Some("nar")) => FileIngestionMethod::Recursive,
        (_, Some("flat")) => FileIngestionMethod::Flat,
        (_, Some("text")) => return crate::not_implemented::not_implemented("nix store add --mode text"),
        (_, Some(other)) => bail!("unknown file ingestion method '{other}'"),
    };
    let algo = match &args.hash_algo {
        Some(name) => HashAlgorithm::from_name(name).ok_or_else(|| anyhow::anyhow!("unknown hash algorithm '{name}'"))?,
        None => HashAlgorithm::Sha256,
    };
    if args.dry_run {
        return crate::not_implemented::not_implemented(&format!("nix store {sub} --dry-run"));
    }
    for arg in &args.positional {
        let source = absolute_path(arg)?;
        let name = match &args.name {
            Some(name) => name.clone(),
            None => source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        let path = store.add_to_store(&name, &source, method, algo, &StorePathSet::new(), false)?;
        writeln!(out, "{}", store.print_store_path(&path))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The physical location of a path inside a valid store path.
fn real_location(store: &dyn Store, arg: &str) -> anyhow::Result<(StorePath, PathBuf, String)> {
    let absolute = absolute_path(arg)?;
    let printed = absolute.to_string_lossy().into_owned();
    let path = follow_links_to_store_path(store, arg)?;
    if !store.is_valid_path(&path)? {
        bail!("path '{}' is not valid", store.print_store_path(&path));
    }
    let base = store
        .real_path(&path)
        .ok_or_else(|| anyhow::anyhow!("store '{}' has no local files to read", store.uri()))?;
    let subpath = match store.store_dir().split_path(&printed) {
        Ok((_, rest)) => rest.to_string(),
        Err(_) => String::new(),
    };
    let real = if subpath.is_empty() { base } else { PathBuf::from(format!("{}{}", base.display(), subpath)) };
    Ok((path, real, printed))
}

fn cat(args: &Args, out: &mut dyn Write) -> crate::CommandResult {
    let store = open_store(args.store.as_deref())?;
    for arg in &args.positional {
        let (_, real, printed) = real_location(store.as_ref(), arg)?;
        let metadata = std::fs::metadata(&real).with_context(|| format!("getting status of '{printed}'"))?;
        if !metadata.is_file() {
            bail!("path '{printed}' is not a regular file");
        }
        let mut file = std::fs::File::open(&real)?;
        std::io::copy(&mut file, out)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn type_string(metadata: &std::fs::Metadata) -> &'static str {
    if metadata.file_type().is_symlink() {
        "lrwxrwxrwx"
    } else if metadata.is_dir() {
        "dr-xr-xr-x"
    } else if metadata.permissions().mode() & 0o100 != 0 {
        "-r-xr-xr-x"
    } else {
        "-r--r--r--"
    }
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

fn ls_text(real: &Path, rel: &str, long: bool, recursive: bool, top: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let metadata = std::fs::symlink_metadata(real)?;
    if !top || !metadata.is_dir() {
        if long {
            let size = if metadata.is_file() { metadata.len() } else { 0 };
            let mut line = format!("{} {:20} {}", type_string(&metadata), size, rel);
            if metadata.file_type().is_symlink() {
                line.push_str(&format!(" -> {}", std::fs::read_link(real)?.display()));
            }
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{rel}")?;
        }
    }
    if metadata.is_dir() && (top || recursive) {
        for name in sorted_entries(real)? {
            let child_rel = format!("{rel}/{}", name.to_string_lossy());
            ls_text(&real.join(&name), &child_rel, long, recursive, false, out)?;
        }
    }
    Ok(())
}

/// JSON for `nix store ls --json`, keys in CppNix 2.8's order (type first);
/// without `-R` a directory's entries are empty objects.
fn ls_json(real: &Path, recursive: bool, top: bool) -> anyhow::Result<String> {
    let metadata = std::fs::symlink_metadata(real)?;
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(real)?;
        return Ok(format!("{{\"type\":\"symlink\",\"target\":{}}}", json!(target.to_string_lossy())));
    }
    if metadata.is_dir() {
        let mut parts = Vec::new();
        for name in sorted_entries(real)? {
            let child = if recursive { ls_json(&real.join(&name), recursive, false)? } else { "{}".to_string() };
            parts.push(format!("{}:{child}", json!(name.to_string_lossy())));
        }
        let _ = top;
        return Ok(format!("{{\"type\":\"directory\",\"entries\":{{{}}}}}", parts.join(",")));
    }
    let executable = if metadata.permissions().mode() & 0o100 != 0 { ",\"executable\":true" } else { "" };
    Ok(format!("{{\"type\":\"regular\",\"size\":{}{executable}}}", metadata.len()))
}

fn ls(args: &Args, out: &mut dyn Write) -> crate::CommandResult {
    let store = open_store(args.store.as_deref())?;
    for arg in &args.positional {
        let (_, real, printed) = real_location(store.as_ref(), arg)?;
        if args.json {
            write!(out, "{}", ls_json(&real, args.recursive, true)?)?;
        } else {
            let metadata = std::fs::symlink_metadata(&real).with_context(|| format!("getting status of '{printed}'"))?;
            let rel = if metadata.is_dir() {
                ".".to_string()
            } else {
                Path::new(&printed).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            };
            ls_text(&real, &rel, args.long, args.recursive, true, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn closure_of(store: &dyn Store, args: &Args) -> anyhow::Result<StorePathSet> {
    let mut start = StorePathSet::new();
    for arg in &args.positional {
        start.insert(follow_links_to_store_path(store, arg)?);
    }
    if args.recursive {
        Ok(nivis_store::compute_closure(store, &start, ClosureOptions::default())?)
    } else {
        Ok(start)
    }
}

/// `trusted-public-keys` (and `extra-`) from nix.conf and `NIX_CONFIG`; CppNix's
/// default is the cache.nixos.org key.
fn trusted_public_keys() -> anyhow::Result<Keyring> {
    let mut value = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=".to_string();
    let mut extra = String::new();
    let conf_dir = std::env::var("NIX_CONF_DIR").unwrap_or_else(|_| "/etc/nix".into());
    let mut texts = Vec::new();
    if let Ok(text) = std::fs::read_to_string(Path::new(&conf_dir).join("nix.conf")) {
        texts.push(text);
    }
    if let Ok(text) = std::env::var("NIX_CONFIG") {
        texts.push(text);
    }
    for text in texts {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let Some((key, val)) = line.split_once('=') else { continue };
            match key.trim() {
                "trusted-public-keys" | "binary-cache-public-keys" => value = val.trim().to_string(),
                "extra-trusted-public-keys" | "extra-binary-cache-public-keys" => {
                    extra.push(' ');
                    extra.push_str(val.trim());
                }
                _ => {}
            }
        }
    }
    Ok(Keyring::parse_list(&format!("{value}{extra}"))?)
}

fn verify(args: &Args) -> crate::CommandResult {
    let store = open_store(args.store.as_deref())?;
    let store = store.as_ref();
    let keyring = if args.no_trust { Keyring::new() } else { trusted_public_keys()? };
    let (mut corrupted, mut untrusted, mut failed) = (0, 0, 0);
    for path in closure_of(store, args)? {
        let printed = store.print_store_path(&path);
        eprintln!("checking '{printed}'...");
        let Some(info) = store.query_path_info(&path)? else {
            eprintln!("error: path '{printed}' is not valid");
            failed += 1;
            continue;
        };
        if !args.no_contents {
            let mut hasher = Hasher::new(info.nar_hash.algorithm());
            if let Err(e) = store.nar_from_path(&path, &mut hasher) {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
            let actual = hasher.finish();
            if actual != info.nar_hash {
                eprintln!(
                    "path '{printed}' was modified! expected hash '{}', got '{}'",
                    info.nar_hash.encode(HashEncoding::Nix32, true),
                    actual.encode(HashEncoding::Nix32, true)
                );
                corrupted += 1;
            }
        }
        if !args.no_trust {
            let good = if info.ultimate && args.sigs_needed == 0 {
                true
            } else {
                let content_addressed = match &info.ca {
                    Some(ca) => {
                        ca.store_path(store.store_dir(), path.name(), &info.references, Some(&path)).ok().as_ref()
                            == Some(&path)
                    }
                    None => false,
                };
                let valid = if content_addressed {
                    usize::MAX
                } else {
                    match nivis_formats::signature::fingerprint(
                        store.store_dir(),
                        &path,
                        &info.nar_hash,
                        info.nar_size,
                        &info.references,
                    ) {
                        Ok(fingerprint) => keyring.count_valid(fingerprint.as_bytes(), info.sigs.iter()),
                        Err(_) => 0,
                    }
                };
                valid >= args.sigs_needed.max(1)
            };
            if !good {
                eprintln!("path '{printed}' is untrusted");
                untrusted += 1;
            }
        }
    }
    let code = (if corrupted > 0 { 1 } else { 0 }) | (if untrusted > 0 { 2 } else { 0 }) | (if failed > 0 { 4 } else { 0 });
    Ok(ExitCode::from(code))
}

fn sign(args: &Args) -> crate::CommandResult {
    let store = open_store(args.store.as_deref())?;
    let store = store.as_ref();
    let Some(key_file) = args.key_files.first() else {
        bail!("required argument '--key-file' is missing");
    };
    let text = std::fs::read_to_string(key_file).with_context(|| format!("reading '{key_file}'"))?;
    let key = SecretKey::parse(text.trim_end())?;
    let mut added = 0;
    for path in closure_of(store, args)? {
        let Some(info) = store.query_path_info(&path)? else {
            bail!("path '{}' is not valid", store.print_store_path(&path));
        };
        let fingerprint = nivis_formats::signature::fingerprint(
            store.store_dir(),
            &path,
            &info.nar_hash,
            info.nar_size,
            &info.references,
        )?;
        let signature = key.sign(fingerprint.as_bytes()).to_string();
        if !info.sigs.contains(&signature) {
            store.add_signatures(&path, &[signature])?;
            added += 1;
        }
    }
    eprintln!("added {added} signatures");
    Ok(ExitCode::SUCCESS)
}
