//! `nix-hash`: hash paths (their NAR serialisation, or with `--flat` their bytes)
//! or convert hashes between encodings, with CppNix's flags, output and errors.
//!
//! ```text
//! nix-hash [--flat] [--base16|--base32|--base64|--sri] [--truncate] [--type ALGO] PATH...
//! nix-hash [--to-base16|--to-base32|--to-base64|--to-sri] [--type ALGO] HASH...
//! ```
//!
//! Defaults: MD5, base16. The last format flag wins, and a `--to-*` flag turns
//! the command into a conversion. `--base64`, `--sri`, `--to-base64` and
//! `--to-sri` are newer than CppNix 2.8 and follow current CppNix. For
//! conversions, a hash that names its algorithm (`sha256:...`, `sha256-...`)
//! needs no `--type` (as in current CppNix); a bare hash without `--type` is
//! taken as MD5 (as in 2.8).

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nivis_formats::{Hash, HashAlgorithm, HashEncoding};

use crate::nix::hash::{
    Ingestion, UsageError, finish, hash_one, parse_algorithm_flag, print_computed, program_name, report_usage_error,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Hash,
    Convert,
}

struct Options {
    operation: Operation,
    algorithm: Option<HashAlgorithm>,
    flat: bool,
    format: HashEncoding,
    truncate: bool,
    operands: Vec<String>,
}

/// Splits `-abc` into `-a -b -c` as CppNix's legacy parser does, keeping a
/// numeric tail as the last flag's argument (`-j3` gives `-j 3`).
fn expand_compound_flags(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut only_positional = false;
    for arg in args {
        let bytes = arg.as_bytes();
        if !only_positional && bytes.len() > 2 && bytes[0] == b'-' && bytes[1] != b'-' && bytes[1].is_ascii_alphabetic() {
            let mut rest = &arg[1..];
            while let Some(c) = rest.chars().next() {
                out.push(format!("-{c}"));
                rest = &rest[c.len_utf8()..];
                if rest.starts_with(|c: char| c.is_ascii_digit()) {
                    out.push(rest.to_string());
                    break;
                }
            }
        } else {
            if arg == "--" {
                only_positional = true;
            }
            out.push(arg);
        }
    }
    out
}

enum Parsed {
    Run(Options),
    Exit(ExitCode),
}

fn parse(args: Vec<String>) -> Result<Parsed, UsageError> {
    let mut options = Options {
        operation: Operation::Hash,
        algorithm: None,
        flat: false,
        format: HashEncoding::Base16,
        truncate: false,
        operands: Vec::new(),
    };
    let mut args = expand_compound_flags(args).into_iter();
    let mut only_positional = false;
    let requires_argument = |flag: &str| UsageError(format!("'{flag}' requires an argument"));
    while let Some(arg) = args.next() {
        if only_positional {
            // CppNix still refuses dash arguments after `--` here.
            if arg.starts_with('-') {
                return Err(UsageError(format!("unexpected argument '{arg}'")));
            }
            options.operands.push(arg);
            continue;
        }
        match arg.as_str() {
            "--" => only_positional = true,
            "--help" => {
                println!("{HELP}");
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "--version" => {
                println!("nix-hash (nivis) {}", env!("CARGO_PKG_VERSION"));
                return Ok(Parsed::Exit(ExitCode::SUCCESS));
            }
            "--flat" => options.flat = true,
            "--base16" => options.format = HashEncoding::Base16,
            "--base32" => options.format = HashEncoding::Nix32,
            "--base64" => options.format = HashEncoding::Base64,
            "--sri" => options.format = HashEncoding::Sri,
            "--truncate" => options.truncate = true,
            "--type" => {
                let name = args.next().ok_or_else(|| requires_argument(&arg))?;
                options.algorithm = Some(parse_algorithm_flag(&name)?);
            }
            "--to-base16" | "--to-base32" | "--to-base64" | "--to-sri" => {
                options.operation = Operation::Convert;
                options.format = match arg.as_str() {
                    "--to-base16" => HashEncoding::Base16,
                    "--to-base32" => HashEncoding::Nix32,
                    "--to-base64" => HashEncoding::Base64,
                    _ => HashEncoding::Sri,
                };
            }
            // Flags every legacy command accepts; they change nothing here.
            "-v" | "--verbose" | "--quiet" | "--debug" | "-Q" | "--no-build-output" => {}
            "--option" => {
                args.next().ok_or_else(|| requires_argument(&arg))?;
                args.next().ok_or_else(|| requires_argument(&arg))?;
            }
            "--log-format" => {
                args.next().ok_or_else(|| requires_argument(&arg))?;
            }
            _ if !arg.is_empty() && arg.starts_with('-') => {
                return Err(UsageError(format!("unrecognised flag '{arg}'")));
            }
            _ => options.operands.push(arg),
        }
    }
    Ok(Parsed::Run(options))
}

const HELP: &str = "\
Usage: nix-hash [--flat] [--base16|--base32|--base64|--sri] [--truncate] [--type ALGO] PATH...
       nix-hash [--to-base16|--to-base32|--to-base64|--to-sri] [--type ALGO] HASH...

Print the hash of the NAR serialisation of each PATH (with --flat: of the
file's contents), MD5 in base16 unless told otherwise, or convert each HASH.
ALGO is one of md5, sha1, sha256, sha512.";

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    let program = program_name();
    let args: Vec<String> = args.into_iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let options = match parse(args) {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Exit(code)) => return Ok(code),
        Err(usage) => return Ok(report_usage_error(&usage, &program)),
    };
    finish(execute(&options), &program)
}

fn execute(options: &Options) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match options.operation {
        Operation::Hash => {
            let algorithm = options.algorithm.unwrap_or(HashAlgorithm::Md5);
            let ingestion = if options.flat { Ingestion::Flat } else { Ingestion::Nar };
            for path in &options.operands {
                let hash = hash_one(Path::new(path), ingestion, algorithm)?;
                writeln!(out, "{}", print_computed(&hash, options.format, options.truncate))
                    .context("writing to standard output")?;
            }
        }
        Operation::Convert => {
            for s in &options.operands {
                let hash = parse_for_conversion(s, options.algorithm)?;
                writeln!(out, "{}", hash.encode(options.format, false)).context("writing to standard output")?;
            }
        }
    }
    Ok(())
}

/// A hash that names its algorithm needs no `--type`; a bare one defaults to MD5.
fn parse_for_conversion(s: &str, algorithm: Option<HashAlgorithm>) -> anyhow::Result<Hash> {
    let names_algorithm = s.contains(':') || s.contains('-');
    let algorithm = if names_algorithm { algorithm } else { Some(algorithm.unwrap_or(HashAlgorithm::Md5)) };
    Ok(Hash::parse_any(s, algorithm)?)
}
