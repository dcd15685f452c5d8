//! `nix hash`: compute and convert cryptographic hashes.
//!
//! ```text
//! nix hash path [--type|--algo ALGO] [--mode nar|flat] [--format F | --base16 | --base32 | --base64 | --sri] PATH...
//! nix hash file [--type ALGO] [--base16 | --base32 | --base64 | --sri] PATH...
//! nix hash convert [--hash-algo ALGO] [--from F] [--to F] HASH...
//! nix hash to-base16 | to-base32 | to-base64 | to-sri [--type ALGO] HASH...
//! ```
//!
//! `path` hashes the NAR serialisation of each path, `file` the bytes of each
//! file; both default to SHA-256 printed as SRI. `convert` and the `to-*`
//! commands re-encode hashes; the algorithm comes from the hash (`sha256:...`,
//! `sha256-...`) or from the flag. Output and messages follow CppNix; the flags
//! newer than CppNix 2.8 (`--algo`, `--mode`, `--format`, `convert`) follow
//! current CppNix.
//!
//! The hashing here is shared with the legacy `nix-hash` command.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use nivis_formats::{Hash, HashAlgorithm, HashEncoding, HashError, Hasher, compress_hash, encode_digest, nar};

/// A command-line mistake: printed with a pointer to `--help`, exit code 1.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Prints a usage error the way CppNix does and returns exit code 1.
pub fn report_usage_error(error: &UsageError, program: &str) -> ExitCode {
    eprintln!("error: {error}");
    eprintln!("Try '{program} --help' for more information.");
    ExitCode::from(1)
}

/// Parses a hash algorithm name for a flag; unknown names are usage errors.
pub fn parse_algorithm_flag(name: &str) -> Result<HashAlgorithm, UsageError> {
    HashAlgorithm::from_name(name).ok_or_else(|| UsageError(format!("unknown hash algorithm '{name}'")))
}

/// Parses a hash format name (`--to`, `--from`, `--format`). `base32` is accepted
/// with CppNix's deprecation warning.
pub fn parse_format_flag(name: &str) -> Result<HashEncoding, UsageError> {
    if name == "base32" {
        eprintln!("warning: \"base32\" is a deprecated alias for hash format \"nix32\".");
    }
    HashEncoding::from_name(name).ok_or_else(|| {
        UsageError(format!("unknown hash format '{name}', expect 'base16', 'base32', 'base64', or 'sri'"))
    })
}

/// How `path`/`file` read what they hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingestion {
    /// The bytes of a regular file (following symlinks).
    Flat,
    /// The NAR serialisation of any file system object.
    Nar,
}

/// Hashes one path: its NAR, or its bytes.
pub fn hash_one(path: &Path, ingestion: Ingestion, algorithm: HashAlgorithm) -> anyhow::Result<Hash> {
    match ingestion {
        Ingestion::Nar => Ok(nar::hash_path(path, algorithm)?.0),
        Ingestion::Flat => hash_file_flat(path, algorithm),
    }
}

/// The hash of a file's contents, read in large blocks.
fn hash_file_flat(path: &Path, algorithm: HashAlgorithm) -> anyhow::Result<Hash> {
    let mut file = File::open(path).map_err(|e| anyhow!("opening file '{}': {}", path.display(), io_message(&e)))?;
    let mut hasher = Hasher::new(algorithm);
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow!("reading from file: {}", io_message(&e))),
        }
    }
    Ok(hasher.finish())
}

/// An I/O error's message without Rust's ` (os error N)` suffix, as CppNix shows it.
pub fn io_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// Prints a computed hash as CppNix's hashing commands do: with `truncate`,
/// digests longer than 20 bytes are XOR-folded to 20 (`compressHash`) but keep
/// their algorithm name; SRI carries the algorithm, the other formats do not.
pub fn print_computed(hash: &Hash, format: HashEncoding, truncate: bool) -> String {
    if !truncate || hash.digest().len() <= 20 {
        return hash.encode(format, false);
    }
    let digest = compress_hash(hash.digest(), 20);
    encode_digest(hash.algorithm(), &digest, format, false)
}

/// Which encoding a hash string was written in (for `convert --from`).
fn detect_format(s: &str, hash: &Hash) -> HashEncoding {
    let body = match s.split_once(':') {
        Some((_, body)) => body,
        None if s.contains('-') => return HashEncoding::Sri,
        None => s,
    };
    let algorithm = hash.algorithm();
    if body.len() == algorithm.base16_len() {
        HashEncoding::Base16
    } else if body.len() == algorithm.nix32_len() {
        HashEncoding::Nix32
    } else {
        HashEncoding::Base64
    }
}

/// Writes lines to stdout; a closed pipe ends the command quietly.
fn print_line(out: &mut impl Write, line: &str) -> anyhow::Result<()> {
    writeln!(out, "{line}").context("writing to standard output")
}

/// Pulls the value of a flag that takes one.
fn flag_value(flag: &str, args: &mut impl Iterator<Item = String>) -> Result<String, UsageError> {
    args.next().ok_or_else(|| UsageError(format!("flag '{flag}' requires 1 argument(s)")))
}

/// `nix hash <args>`; `args` starts after `hash`.
pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let program = program_name();
    let mut args = args.into_iter().map(|a| a.to_string_lossy().into_owned());
    let Some(subcommand) = args.next() else {
        return Ok(report_usage_error(&UsageError("'nix hash' requires a sub-command.".into()), &program));
    };
    let rest: Vec<String> = args.collect();
    let result = match subcommand.as_str() {
        "path" => run_hash(rest, Ingestion::Nar, true),
        "file" => run_hash(rest, Ingestion::Flat, false),
        "to-base16" => run_to_base(rest, HashEncoding::Base16),
        "to-base32" => run_to_base(rest, HashEncoding::Nix32),
        "to-base64" => run_to_base(rest, HashEncoding::Base64),
        "to-sri" => run_to_base(rest, HashEncoding::Sri),
        "convert" => run_convert(rest),
        "--help" => {
            println!("{}", HELP);
            return Ok(ExitCode::SUCCESS);
        }
        other => Err(UsageError(format!("'{other}' is not a recognised command")).into()),
    };
    finish(result, &program)
}

/// How CppNix names the program in "Try '... --help'": argv[0] as given.
pub fn program_name() -> String {
    std::env::args().next().unwrap_or_else(|| "nix".to_string())
}

/// Turns a command's result into an exit code, reporting usage errors (and
/// unknown algorithm names inside hashes, which CppNix also treats as usage
/// errors) with the `--help` pointer.
pub fn finish(result: anyhow::Result<()>, program: &str) -> crate::CommandResult {
    let Err(error) = result else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(usage) = error.downcast_ref::<UsageError>() {
        return Ok(report_usage_error(usage, program));
    }
    if let Some(HashError::UnknownAlgorithm(_)) = error.downcast_ref::<HashError>() {
        return Ok(report_usage_error(&UsageError(error.to_string()), program));
    }
    Err(error)
}

const HELP: &str = "\
Usage: nix hash <subcommand> [options] <args>...

Subcommands:
  path       print the hash of the NAR serialisation of a path
  file       print the hash of a regular file
  convert    convert between hash formats (--from, --to, --hash-algo)
  to-base16  convert a hash to base-16 representation
  to-base32  convert a hash to base-32 representation
  to-base64  convert a hash to base-64 representation
  to-sri     convert a hash to SRI representation";

/// `nix hash path` (`extended`: also `--algo`, `--mode`, `--format`) and `nix hash file`.
fn run_hash(args: Vec<String>, mut ingestion: Ingestion, extended: bool) -> anyhow::Result<()> {
    let mut algorithm = HashAlgorithm::Sha256;
    let mut format = HashEncoding::Sri;
    let mut paths = Vec::new();
    let mut args = args.into_iter();
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            paths.push(arg);
            continue;
        }
        match arg.as_str() {
            "--" => only_positional = true,
            "--sri" => format = HashEncoding::Sri,
            "--base64" => format = HashEncoding::Base64,
            "--base32" => format = HashEncoding::Nix32,
            "--base16" => format = HashEncoding::Base16,
            "--type" => algorithm = parse_algorithm_flag(&flag_value(&arg, &mut args)?)?,
            "--algo" if extended => algorithm = parse_algorithm_flag(&flag_value(&arg, &mut args)?)?,
            "--format" if extended => format = parse_format_flag(&flag_value(&arg, &mut args)?)?,
            "--mode" if extended => {
                let mode = flag_value(&arg, &mut args)?;
                ingestion = match mode.as_str() {
                    "nar" => Ingestion::Nar,
                    "flat" => Ingestion::Flat,
                    "git" => return crate::not_implemented::not_implemented("nix hash path --mode git").map(|_| ()),
                    other => {
                        return Err(UsageError(format!(
                            "unknown file ingestion method '{other}', expect `flat`, `nar`, or `git`"
                        ))
                        .into());
                    }
                };
            }
            _ => return Err(UsageError(format!("unrecognised flag '{arg}'")).into()),
        }
    }
    let mut out = std::io::stdout().lock();
    for path in paths {
        let hash = hash_one(Path::new(&path), ingestion, algorithm)?;
        print_line(&mut out, &print_computed(&hash, format, false))?;
    }
    Ok(())
}

/// `nix hash to-*`: CppNix 2.8 prints no deprecation warning, so neither do we.
fn run_to_base(args: Vec<String>, format: HashEncoding) -> anyhow::Result<()> {
    let mut algorithm = None;
    let mut hashes = Vec::new();
    let mut args = args.into_iter();
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            hashes.push(arg);
            continue;
        }
        match arg.as_str() {
            "--" => only_positional = true,
            "--type" => algorithm = Some(parse_algorithm_flag(&flag_value(&arg, &mut args)?)?),
            _ => return Err(UsageError(format!("unrecognised flag '{arg}'")).into()),
        }
    }
    let mut out = std::io::stdout().lock();
    for s in hashes {
        let hash = Hash::parse_any(&s, algorithm)?;
        print_line(&mut out, &hash.encode(format, false))?;
    }
    Ok(())
}

/// `nix hash convert`, as in current CppNix.
fn run_convert(args: Vec<String>) -> anyhow::Result<()> {
    let mut algorithm = None;
    let mut from = None;
    let mut to = HashEncoding::Sri;
    let mut hashes = Vec::new();
    let mut args = args.into_iter();
    let mut only_positional = false;
    while let Some(arg) = args.next() {
        if only_positional || !arg.starts_with('-') || arg == "-" {
            hashes.push(arg);
            continue;
        }
        match arg.as_str() {
            "--" => only_positional = true,
            "--hash-algo" | "--algo" => algorithm = Some(parse_algorithm_flag(&flag_value(&arg, &mut args)?)?),
            "--from" => from = Some(parse_format_flag(&flag_value(&arg, &mut args)?)?),
            "--to" => to = parse_format_flag(&flag_value(&arg, &mut args)?)?,
            _ => return Err(UsageError(format!("unrecognised flag '{arg}'")).into()),
        }
    }
    let mut out = std::io::stdout().lock();
    for s in hashes {
        let hash = Hash::parse_any(&s, algorithm)?;
        let parsed_format = detect_format(&s, &hash);
        if let Some(from) = from
            && from != parsed_format
        {
            return Err(anyhow!(
                "input hash '{s}' has format '{}', but '--from {}' was specified",
                parsed_format.name(),
                from.name()
            ));
        }
        print_line(&mut out, &hash.encode(to, false))?;
    }
    Ok(())
}
