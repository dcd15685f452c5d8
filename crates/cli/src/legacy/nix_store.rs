//! `nix-store`: CppNix 1.x-style argument handling (one operation flag, then its
//! options and arguments, in any order; compound short flags such as `-qR` are
//! split), the same output and exit codes as CppNix 2.8.
//!
//! Operations built: `--add`, `--add-fixed`, `--query` (`--outputs`,
//! `--references`, `--referrers`, `--referrers-closure`, `--requisites`, `--tree`,
//! `--graph`, `--hash`, `--size`, `--deriver`, `--valid-derivers`,
//! `--include-outputs`, `--use-output`), `--verify`, `--verify-path`,
//! `--check-validity`, `--dump`, `--restore`, `--export`, `--import`,
//! `--generate-binary-cache-key`, `--print-env`, `--delete`, `--gc`, `--dump-db`,
//! `--load-db`, `--register-validity`. `--realise`, `--read-log`,
//! `--repair-path` and `--verify --repair` build, so `crate::realise` takes
//! them before this file parses anything. Others answer "not implemented yet"
//! and exit 1. One deliberate extension: `--query --hash --size` prints both.

use std::ffi::OsString;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_formats::{FileIngestionMethod, HashAlgorithm, HashEncoding, Hasher, StorePath, StorePathSet};
use nivis_store::{ClosureOptions, Store};

use crate::store_args::{absolute_path, follow_links_to_store_path, open_store};

/// A command-line mistake: CppNix adds a hint line after these.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\nTry 'nix-store --help' for more information.", self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage<T>(msg: impl Into<String>) -> anyhow::Result<T> {
    Err(UsageError(msg.into()).into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Add,
    AddFixed,
    Query,
    Verify,
    VerifyPath,
    CheckValidity,
    Dump,
    Restore,
    Export,
    Import,
    GenerateBinaryCacheKey,
    PrintEnv,
    Delete,
    Gc,
    DumpDb,
    LoadDb,
    RegisterValidity,
    Version,
    Serve,
    /// Known to CppNix, not built in nivis yet: the flag, for the message.
    NotBuilt(&'static str),
}

fn operation_of(arg: &str) -> Option<Operation> {
    Some(match arg {
        "--add" | "-A" => Operation::Add,
        "--add-fixed" => Operation::AddFixed,
        "--query" | "-q" => Operation::Query,
        "--verify" => Operation::Verify,
        "--verify-path" => Operation::VerifyPath,
        "--check-validity" => Operation::CheckValidity,
        "--dump" => Operation::Dump,
        "--restore" => Operation::Restore,
        "--export" => Operation::Export,
        "--import" => Operation::Import,
        "--generate-binary-cache-key" => Operation::GenerateBinaryCacheKey,
        "--print-env" => Operation::PrintEnv,
        "--delete" => Operation::Delete,
        "--version" => Operation::Version,
        "--realise" | "--realize" | "-r" => Operation::NotBuilt("--realise"),
        "--read-log" | "-l" => Operation::NotBuilt("--read-log"),
        "--dump-db" => Operation::DumpDb,
        "--load-db" => Operation::LoadDb,
        "--register-validity" => Operation::RegisterValidity,
        "--gc" => Operation::Gc,
        "--init" => Operation::NotBuilt("--init"),
        // Taken by `crate::realise::intercept_nix_store` first.
        "--repair-path" => Operation::NotBuilt("--repair-path"),
        "--optimise" | "--optimize" => Operation::NotBuilt("--optimise"),
        "--serve" => Operation::Serve,
        _ => return None,
    })
}

/// Global options that take a value (consumed, mostly ignored).
const OPTIONS_WITH_VALUE: &[&str] = &[
    "--max-jobs",
    "-j",
    "--cores",
    "--max-silent-time",
    "--timeout",
    "--log-format",
    "--log-type",
    "--experimental-features",
    "--extra-experimental-features",
    "--substituters",
    "--extra-substituters",
    "--trusted-public-keys",
    "--builders",
    "--system",
];

/// Global options without a value (accepted, no effect on what nix-store does here).
const OPTIONS_WITHOUT_VALUE: &[&str] = &[
    "--verbose",
    "-v",
    "--quiet",
    "--debug",
    "--no-build-output",
    "-Q",
    "--keep-failed",
    "-K",
    "--keep-going",
    "-k",
    "--fallback",
    "--show-trace",
    "--readonly-mode",
    "--no-gc-warning",
    "--indirect",
    "--print-build-logs",
    "-L",
];

/// Splits `-qR` into `-q -R` as CppNix does (letters only; the rest of the
/// word after a non-letter is kept as one argument).
fn expand_compound_flags(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let bytes = arg.as_bytes();
        if bytes.len() > 2 && bytes[0] == b'-' && bytes[1] != b'-' && bytes[1].is_ascii_alphabetic() {
            out.push(format!("-{}", bytes[1] as char));
            for (j, c) in arg.char_indices().skip(2) {
                if c.is_ascii_alphabetic() {
                    out.push(format!("-{c}"));
                } else {
                    out.push(arg[j..].to_string());
                    break;
                }
            }
        } else {
            out.push(arg);
        }
    }
    out
}

struct Parsed {
    operation: Operation,
    flags: Vec<String>,
    args: Vec<String>,
    store: Option<String>,
}

fn parse(args: Vec<OsString>) -> anyhow::Result<Parsed> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.into_string().map_err(|a| anyhow::anyhow!("argument {a:?} is not valid UTF-8")))
        .collect::<Result<_, _>>()?;
    let args = expand_compound_flags(args);
    let mut operation = None;
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut store = None;
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| -> anyhow::Result<String> {
            match iter.next() {
                Some(v) => Ok(v),
                None => usage(format!("flag '{name}' requires an argument")),
            }
        };
        if arg == "--help" {
            println!("Usage: nix-store OPERATION [OPTIONS...] [ARGUMENTS...]");
            println!("See the CppNix manual for nix-store; nivis follows it.");
            return Ok(Parsed { operation: Operation::NotBuilt("--help-shown"), flags, args: rest, store });
        }
        if let Some(op) = operation_of(&arg) {
            if let Some(previous) = operation {
                if previous != op {
                    return usage("only one operation may be specified");
                }
            }
            operation = Some(op);
        } else if arg == "--store" {
            store = Some(value("--store")?);
        } else if arg == "--option" {
            let _name = value("--option")?;
            let _value = value("--option")?;
        } else if arg == "--add-root" {
            let _ = value("--add-root")?;
            return Err(crate::NotImplemented("nix-store --add-root".into()).into());
        } else if arg == "--max-freed" {
            // As CppNix: the value goes with the flag to the operation.
            let size = value("--max-freed")?;
            flags.push(arg);
            flags.push(size);
        } else if OPTIONS_WITH_VALUE.contains(&arg.as_str()) {
            let _ = value(&arg)?;
        } else if OPTIONS_WITHOUT_VALUE.contains(&arg.as_str()) || arg == "--no-output" {
        } else if arg.starts_with('-') && arg.len() > 1 {
            flags.push(arg);
        } else {
            rest.push(arg);
        }
    }
    let Some(operation) = operation else { return usage("no operation specified") };
    Ok(Parsed { operation, flags, args: rest, store })
}

pub fn run(args: Vec<OsString>) -> crate::CommandResult {
    if let Some(result) = crate::realise::intercept_nix_store(&args) { return result; }
    let parsed = parse(args)?;
    if parsed.operation == Operation::NotBuilt("--help-shown") {
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run_operation(&parsed, &mut out);
    // Whatever was printed before a failure is still shown, as CppNix does.
    let flushed = out.flush();
    let code = result?;
    if let Err(e) = flushed {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e).context("writing to standard output");
        }
    }
    Ok(code)
}

fn no_flags(flags: &[String]) -> anyhow::Result<()> {
    if let Some(flag) = flags.first() {
        return usage(format!("unknown flag '{flag}'"));
    }
    Ok(())
}

fn run_operation(parsed: &Parsed, out: &mut dyn Write) -> crate::CommandResult {
    let flags = &parsed.flags;
    let args = &parsed.args;
    let store_flag = parsed.store.as_deref();
    match parsed.operation {
        Operation::Version => {
            writeln!(out, "nix-store (Nix) 2.8.0")?;
            Ok(ExitCode::SUCCESS)
        }
        Operation::NotBuilt(flag) => crate::not_implemented::not_implemented(&format!("nix-store {flag}")),
        Operation::Serve => super::nix_store_serve::run(flags, args, store_flag, out),
        Operation::Dump => {
            no_flags(flags)?;
            if args.len() != 1 {
                return usage("only one argument allowed");
            }
            nivis_store::dump_path(Path::new(&args[0]), out)?;
            Ok(ExitCode::SUCCESS)
        }
        Operation::Restore => {
            no_flags(flags)?;
            if args.len() != 1 {
                return usage("only one argument allowed");
            }
            restore(&args[0])?;
            Ok(ExitCode::SUCCESS)
        }
        Operation::GenerateBinaryCacheKey => {
            no_flags(flags)?;
            if args.len() != 3 {
                return usage("three arguments expected");
            }
            generate_binary_cache_key(&args[0], Path::new(&args[1]), Path::new(&args[2]))?;
            Ok(ExitCode::SUCCESS)
        }
        op => {
            let store = open_store(store_flag)?;
            run_store_operation(op, store.as_ref(), flags, args, out)
        }
    }
}

fn run_store_operation(
    op: Operation,
    store: &dyn Store,
    flags: &[String],
    args: &[String],
    out: &mut dyn Write,
) -> crate::CommandResult {
    match op {
        Operation::Add => {
            no_flags(flags)?;
            for arg in args {
                let path = store.add_to_store(
                    &base_name_of(arg),
                    Path::new(arg),
                    FileIngestionMethod::Recursive,
                    HashAlgorithm::Sha256,
                    &StorePathSet::new(),
                    false,
                )?;
                writeln!(out, "{}", store.print_store_path(&path))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::AddFixed => {
            let mut method = FileIngestionMethod::Flat;
            for flag in flags {
                if flag == "--recursive" {
                    method = FileIngestionMethod::Recursive;
                } else {
                    return usage(format!("unknown flag '{flag}'"));
                }
            }
            let Some((algo, paths)) = args.split_first() else {
                return usage("first argument must be hash algorithm");
            };
            let algo = parse_hash_algorithm(algo)?;
            for arg in paths {
                let path = store.add_to_store(
                    &base_name_of(arg),
                    Path::new(arg),
                    method,
                    algo,
                    &StorePathSet::new(),
                    false,
                )?;
                writeln!(out, "{}", store.print_store_path(&path))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::Query => query(store, flags, args, out),
        Operation::CheckValidity => {
            let mut print_invalid = false;
            for flag in flags {
                if flag == "--print-invalid" {
                    print_invalid = true;
                } else {
                    return usage(format!("unknown flag '{flag}'"));
                }
            }
            for arg in args {
                let path = follow_links_to_store_path(store, arg)?;
                if !store.is_valid_path(&path)? {
                    if print_invalid {
                        writeln!(out, "{}", store.print_store_path(&path))?;
                    } else {
                        bail!("path '{}' is not valid", store.print_store_path(&path));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::VerifyPath => {
            if !flags.is_empty() {
                return usage("no flags expected");
            }
            let mut status = 0;
            for arg in args {
                let path = follow_links_to_store_path(store, arg)?;
                let info = query_info(store, &path)?;
                let mut hasher = Hasher::new(info.nar_hash.algorithm());
                store.nar_from_path(&path, &mut hasher)?;
                let current = hasher.finish();
                if current != info.nar_hash {
                    eprintln!(
                        "path '{}' was modified! expected hash '{}', got '{}'",
                        store.print_store_path(&path),
                        info.nar_hash.encode(HashEncoding::Nix32, true),
                        current.encode(HashEncoding::Nix32, true)
                    );
                    status = 1;
                }
            }
            Ok(ExitCode::from(status))
        }
        Operation::Verify => {
            if !args.is_empty() {
                return usage("no arguments expected");
            }
            let mut check_contents = false;
            let mut repair = false;
            for flag in flags {
                match flag.as_str() {
                    "--check-contents" => check_contents = true,
                    "--repair" => repair = true,
                    _ => return usage(format!("unknown flag '{flag}'")),
                }
            }
            let report = store.verify_store(check_contents, repair)?;
            if report.errors {
                eprintln!("warning: not all store errors were fixed");
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::Export => {
            no_flags(flags)?;
            let mut paths = StorePathSet::new();
            for arg in args {
                paths.insert(follow_links_to_store_path(store, arg)?);
            }
            nivis_store::export_paths(store, &paths, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Operation::Import => {
            no_flags(flags)?;
            if !args.is_empty() {
                return usage("no arguments expected");
            }
            let stdin = io::stdin();
            let mut input = io::BufReader::with_capacity(1 << 16, stdin.lock());
            let paths = store.import_paths(&mut input)?;
            for path in paths {
                writeln!(out, "{}", store.print_store_path(&path))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::Delete => {
            let mut ignore_liveness = false;
            for flag in flags {
                if flag == "--ignore-liveness" {
                    ignore_liveness = true;
                } else {
                    return usage(format!("unknown flag '{flag}'"));
                }
            }
            let mut paths = StorePathSet::new();
            for arg in args {
                paths.insert(follow_links_to_store_path(store, arg)?);
            }
            crate::legacy::nix_collect_garbage::delete_specific(store, paths, ignore_liveness, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Operation::Gc => crate::legacy::nix_collect_garbage::nix_store_gc(store, flags, args, out),
        Operation::PrintEnv => print_env(store, flags, args, out),
        Operation::DumpDb => {
            no_flags(flags)?;
            let paths = if args.is_empty() {
                store.query_all_valid_paths()?
            } else {
                args.iter().map(|a| follow_links_to_store_path(store, a)).collect::<anyhow::Result<_>>()?
            };
            for path in &paths {
                let info = query_info(store, path)?;
                writeln!(out, "{}", store.print_store_path(path))?;
                writeln!(out, "{}", info.nar_hash.encode(HashEncoding::Base16, false))?;
                writeln!(out, "{}", info.nar_size)?;
                let deriver = info.deriver.as_ref().map(|d| store.print_store_path(d)).unwrap_or_default();
                writeln!(out, "{deriver}")?;
                writeln!(out, "{}", info.references.len())?;
                for reference in &info.references {
                    writeln!(out, "{}", store.print_store_path(reference))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Operation::LoadDb => {
            no_flags(flags)?;
            if !args.is_empty() {
                return usage("no arguments expected");
            }
            register_validity(store, true, true)
        }
        Operation::RegisterValidity => {
            if !args.is_empty() {
                return usage("no arguments expected");
            }
            let (mut reregister, mut hash_given) = (false, false);
            for flag in flags {
                match flag.as_str() {
                    "--reregister" => reregister = true,
                    "--hash-given" => hash_given = true,
                    _ => return usage(format!("unknown flag '{flag}'")),
                }
            }
            register_validity(store, reregister, hash_given)
        }
        Operation::Version
        | Operation::NotBuilt(_)
        | Operation::Serve
        | Operation::Dump
        | Operation::Restore
        | Operation::GenerateBinaryCacheKey => unreachable!("handled before opening the store"),
    }
}

/// Reads registrations (`nix-store --dump-db` format, or without hash and size
/// unless `hash_given`) from stdin and registers the paths in one transaction.
/// The contents must already be at the paths' real locations; without
/// `hash_given` their NAR hashes are computed here.
fn register_validity(store: &dyn Store, reregister: bool, hash_given: bool) -> crate::CommandResult {
    use std::io::BufRead;
    let stdin = io::stdin();
    let mut lines = stdin.lock().lines();
    let mut next = |what: &str| -> anyhow::Result<String> {
        match lines.next() {
            Some(line) => Ok(line?),
            None => bail!("premature end of registration input (expected {what})"),
        }
    };
    let mut infos: Vec<nivis_store::ValidPathInfo> = Vec::new();
    loop {
        let printed = match lines_next_path(&mut next)? {
            Some(p) => p,
            None => break,
        };
        let path = store.parse_store_path(&printed)?;
        let (nar_hash, nar_size) = if hash_given {
            let hash = nivis_formats::Hash::parse_any(&next("a hash")?, Some(HashAlgorithm::Sha256))?;
            let size: u64 = next("a NAR size")?.trim().parse().context("bad NAR size in registration")?;
            (Some(hash), size)
        } else {
            (None, 0)
        };
        let deriver = next("a deriver")?;
        let count: usize = next("a reference count")?.trim().parse().context("bad reference count in registration")?;
        let mut references = StorePathSet::new();
        for _ in 0..count {
            references.insert(store.parse_store_path(&next("a reference")?)?);
        }
        if store.is_valid_path(&path)? && !reregister {
            continue;
        }
        let (nar_hash, nar_size) = match nar_hash {
            Some(hash) => (hash, nar_size),
            None => {
                let real = store
                    .real_path(&path)
                    .ok_or_else(|| anyhow::anyhow!("store '{}' has no local files", store.uri()))?;
                let mut hasher = Hasher::new(HashAlgorithm::Sha256);
                nivis_store::dump_path(&real, &mut hasher)?;
                let size = hasher.bytes_hashed();
                (hasher.finish(), size)
            }
        };
        let mut info = nivis_store::ValidPathInfo::new(path, nar_hash, nar_size);
        info.references = references;
        if !deriver.is_empty() {
            info.deriver = Some(store.parse_store_path(&deriver)?);
        }
        infos.retain(|i| i.path != info.path);
        infos.push(info);
    }
    store.register_valid_paths(&infos)?;
    Ok(ExitCode::SUCCESS)
}

/// The next path line of a registration, or `None` at the end (EOF or an empty line).
fn lines_next_path(next: &mut dyn FnMut(&str) -> anyhow::Result<String>) -> anyhow::Result<Option<String>> {
    match next("a path") {
        Ok(line) if line.is_empty() => Ok(None),
        Ok(line) => Ok(Some(line)),
        Err(_) => Ok(None),
    }
}

/// CppNix's `baseNameOf`: the last component, ignoring one trailing slash.
fn base_name_of(path: &str) -> String {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

fn parse_hash_algorithm(name: &str) -> anyhow::Result<HashAlgorithm> {
    match HashAlgorithm::from_name(name) {
        Some(algo) => Ok(algo),
        None => usage(format!("unknown hash algorithm '{name}'")),
    }
}

fn query_info(store: &dyn Store, path: &StorePath) -> anyhow::Result<nivis_store::ValidPathInfo> {
    match store.query_path_info(path)? {
        Some(info) => Ok(info),
        None => bail!("path '{}' is not valid", store.print_store_path(path)),
    }
}

/// A valid `.drv`, read from the store.
fn read_derivation(store: &dyn Store, drv_path: &StorePath) -> anyhow::Result<nivis_formats::Derivation> {
    query_info(store, drv_path)?;
    let bytes = match store.real_path(drv_path) {
        Some(real) => std::fs::read(&real).with_context(|| format!("reading '{}'", real.display()))?,
        None => bail!("cannot read derivation '{}' from this store", store.print_store_path(drv_path)),
    };
    Ok(nivis_formats::Derivation::parse(store.store_dir(), &bytes)
        .with_context(|| format!("parsing derivation '{}'", store.print_store_path(drv_path)))?)
}

/// The outputs of a valid `.drv`, read from the file itself.
fn derivation_outputs(store: &dyn Store, drv_path: &StorePath) -> anyhow::Result<StorePathSet> {
    let derivation = read_derivation(store, drv_path)?;
    let mut outputs = StorePathSet::new();
    for output in derivation.outputs.values() {
        match output.path() {
            Some(path) => outputs.insert(path.clone()),
            None => {
                return usage(
                    "Cannot use output path of floating content-addressed derivation until we know what it is (e.g. by building it)",
                );
            }
        };
    }
    Ok(outputs)
}

/// CppNix's `maybeUseOutputs`: a `.drv` stands for its outputs when `use_output`.
fn maybe_use_outputs(store: &dyn Store, path: StorePath, use_output: bool) -> anyhow::Result<StorePathSet> {
    if use_output && path.is_derivation() {
        derivation_outputs(store, &path)
    } else {
        Ok(StorePathSet::from([path]))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryType {
    Default,
    Outputs,
    Requisites,
    References,
    Referrers,
    ReferrersClosure,
    Deriver,
    ValidDerivers,
    Hash,
    Size,
    Tree,
    Graph,
    Roots,
    NotBuilt(&'static str),
}

fn query(store: &dyn Store, flags: &[String], args: &[String], out: &mut dyn Write) -> crate::CommandResult {
    let mut query = QueryType::Default;
    let mut use_output = false;
    let mut include_outputs = false;
    let mut info_fields: Vec<QueryType> = Vec::new();
    for flag in flags {
        let previous = query;
        match flag.as_str() {
            "--outputs" => query = QueryType::Outputs,
            "--requisites" | "-R" => query = QueryType::Requisites,
            "--references" => query = QueryType::References,
            "--referrers" | "--referers" => query = QueryType::Referrers,
            "--referrers-closure" | "--referers-closure" => query = QueryType::ReferrersClosure,
            "--deriver" | "-d" => query = QueryType::Deriver,
            "--valid-derivers" => query = QueryType::ValidDerivers,
            "--hash" => query = QueryType::Hash,
            "--size" => query = QueryType::Size,
            "--tree" => query = QueryType::Tree,
            "--graph" => query = QueryType::Graph,
            "--graphml" => query = QueryType::NotBuilt("--graphml"),
            "--resolve" => query = QueryType::NotBuilt("--resolve"),
            "--roots" => query = QueryType::Roots,
            "--binding" | "-b" => query = QueryType::NotBuilt("--binding"),
            "--use-output" | "-u" => use_output = true,
            "--force-realise" | "--force-realize" | "-f" => {
                return Err(crate::NotImplemented("nix-store --query --force-realise".into()).into());
            }
            "--include-outputs" => include_outputs = true,
            _ => return usage(format!("unknown flag '{flag}'")),
        }
        if matches!(query, QueryType::Hash | QueryType::Size) && !info_fields.contains(&query) {
            info_fields.push(query);
        }
        // nivis extension: `--hash` and `--size` combine (CppNix 2.8 refuses any
        // second query type); each path then gets one line per field, in flag order.
        let info_pair = matches!(previous, QueryType::Hash | QueryType::Size)
            && matches!(query, QueryType::Hash | QueryType::Size);
        if previous != QueryType::Default && previous != query && !info_pair {
            return usage(format!("query type '{flag}' conflicts with earlier flag"));
        }
    }
    if query == QueryType::Default {
        query = QueryType::Outputs;
    }
    match query {
        QueryType::NotBuilt(flag) => crate::not_implemented::not_implemented(&format!("nix-store --query {flag}")),
        QueryType::Outputs => {
            for arg in args {
                let path = follow_links_to_store_path(store, arg)?;
                for output in maybe_use_outputs(store, path, true)? {
                    writeln!(out, "{}", store.print_store_path(&output))?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Requisites | QueryType::References | QueryType::Referrers | QueryType::ReferrersClosure => {
            let mut paths = StorePathSet::new();
            for arg in args {
                let start = follow_links_to_store_path(store, arg)?;
                for path in maybe_use_outputs(store, start, use_output)? {
                    match query {
                        QueryType::Requisites => {
                            let options = ClosureOptions { include_outputs, ..Default::default() };
                            paths.extend(nivis_store::compute_closure(store, &StorePathSet::from([path]), options)?);
                        }
                        QueryType::References => paths.extend(query_info(store, &path)?.references),
                        QueryType::Referrers => paths.extend(store.query_referrers(&path)?),
                        _ => {
                            let options = ClosureOptions { flip: true, ..Default::default() };
                            paths.extend(nivis_store::compute_closure(store, &StorePathSet::from([path]), options)?);
                        }
                    }
                }
            }
            let sorted = nivis_store::topo_sort_paths(store, &paths)?;
            for path in sorted.iter().rev() {
                writeln!(out, "{}", store.print_store_path(path))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Roots => {
            let mut start = StorePathSet::new();
            for arg in args {
                start.extend(maybe_use_outputs(store, follow_links_to_store_path(store, arg)?, use_output)?);
            }
            crate::legacy::nix_collect_garbage::print_roots_of(store, &start, out)?;
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Deriver => {
            for arg in args {
                let path = follow_links_to_store_path(store, arg)?;
                let info = query_info(store, &path)?;
                match &info.deriver {
                    Some(deriver) => writeln!(out, "{}", store.print_store_path(deriver))?,
                    None => writeln!(out, "unknown-deriver")?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::ValidDerivers => {
            let mut result = StorePathSet::new();
            for arg in args {
                let path = follow_links_to_store_path(store, arg)?;
                result.extend(store.query_valid_derivers(&path)?);
            }
            for path in &result {
                writeln!(out, "{}", store.print_store_path(path))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Hash | QueryType::Size => {
            for arg in args {
                let start = follow_links_to_store_path(store, arg)?;
                for path in maybe_use_outputs(store, start, use_output)? {
                    let info = query_info(store, &path)?;
                    for field in &info_fields {
                        if *field == QueryType::Hash {
                            writeln!(out, "{}", info.nar_hash.encode(HashEncoding::Nix32, true))?;
                        } else {
                            writeln!(out, "{}", info.nar_size)?;
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Tree => {
            let mut done = StorePathSet::new();
            for arg in args {
                let start = follow_links_to_store_path(store, arg)?;
                for path in maybe_use_outputs(store, start, use_output)? {
                    print_tree(store, &path, "", "", &mut done, out)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Graph => {
            let mut roots = StorePathSet::new();
            for arg in args {
                let start = follow_links_to_store_path(store, arg)?;
                roots.extend(maybe_use_outputs(store, start, use_output)?);
            }
            print_dot_graph(store, roots, out)?;
            Ok(ExitCode::SUCCESS)
        }
        QueryType::Default => unreachable!("defaulted to outputs above"),
    }
}

/// The `--tree` view: each path, then its references (dependencies first), with
/// box-drawing connectors; a path already shown is marked `[...]`.
fn print_tree(
    store: &dyn Store,
    path: &StorePath,
    first_pad: &str,
    tail_pad: &str,
    done: &mut StorePathSet,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if !done.insert(path.clone()) {
        writeln!(out, "{first_pad}{} [...]", store.print_store_path(path))?;
        return Ok(());
    }
    writeln!(out, "{first_pad}{}", store.print_store_path(path))?;
    let info = query_info(store, path)?;
    let mut sorted = nivis_store::topo_sort_paths(store, &info.references)?;
    sorted.reverse();
    let count = sorted.len();
    for (n, reference) in sorted.iter().enumerate() {
        let last = n + 1 == count;
        let first = format!("{tail_pad}{}", if last { "└───" } else { "├───" });
        let tail = format!("{tail_pad}{}", if last { "    " } else { "│   " });
        print_tree(store, reference, &first, &tail, done, out)?;
    }
    Ok(())
}

/// The `--graph` view in Graphviz dot: nodes as they are taken from the work set
/// (in store path order), an edge from each reference to its referrer, edge
/// colours cycling through CppNix's palette.
fn print_dot_graph(store: &dyn Store, roots: StorePathSet, out: &mut dyn Write) -> anyhow::Result<()> {
    const COLOURS: [&str; 6] = ["black", "red", "green", "blue", "magenta", "burlywood"];
    let mut next_colour = 0usize;
    let mut work = roots;
    let mut done = StorePathSet::new();
    writeln!(out, "digraph G {{")?;
    while let Some(path) = work.pop_first() {
        if !done.insert(path.clone()) {
            continue;
        }
        writeln!(
            out,
            "\"{}\" [label = \"{}\", shape = box, style = filled, fillcolor = \"#ff0000\"];",
            path.base_name(),
            path.name()
        )?;
        for reference in query_info(store, &path)?.references {
            if reference != path {
                writeln!(
                    out,
                    "\"{}\" -> \"{}\" [color = \"{}\"];",
                    reference.base_name(),
                    path.base_name(),
                    COLOURS[next_colour % COLOURS.len()]
                )?;
                next_colour += 1;
                work.insert(reference);
            }
        }
    }
    writeln!(out, "}}")?;
    Ok(())
}

/// `--restore PATH`: the NAR on stdin goes to a temporary sibling first and is
/// renamed into place only once complete, so bad input leaves nothing behind.
fn restore(dest: &str) -> anyhow::Result<()> {
    let dest = absolute_path(dest)?;
    if std::fs::symlink_metadata(&dest).is_ok() {
        bail!("creating directory '{}': File exists", dest.display());
    }
    let parent = dest.parent().map(Path::to_path_buf).unwrap_or_else(|| "/".into());
    let temp = parent.join(format!(
        ".{}.nivis-restore-{}",
        dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let stdin = io::stdin();
    let mut input = io::BufReader::with_capacity(1 << 16, stdin.lock());
    let result = nivis_store::restore_path_plain(&mut input, &temp).and_then(|()| {
        // CppNix stops at the end of the archive; trailing bytes are not its business.
        std::fs::rename(&temp, &dest)
            .map_err(|e| nivis_store::StoreError::io(format!("renaming to '{}'", dest.display()), e))
    });
    if let Err(e) = result {
        let _ = nivis_store::delete_path(&temp);
        return Err(e.into());
    }
    Ok(())
}

/// `--generate-binary-cache-key NAME SECRET PUBLIC`: an ed25519 key pair in
/// CppNix's `name:base64` files (secret: 64 bytes of seed and public key).
fn generate_binary_cache_key(name: &str, secret_file: &Path, public_file: &Path) -> anyhow::Result<()> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("reading random bytes")?;
    let secret = nivis_formats::SecretKey::from_seed(name, &seed);
    std::fs::write(public_file, secret.to_public_key().to_string())
        .with_context(|| format!("writing '{}'", public_file.display()))?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(secret_file)
            .with_context(|| format!("writing '{}'", secret_file.display()))?;
        file.write_all(secret.to_string().as_bytes())?;
    }
    Ok(())
}

/// `--print-env DRV`: the derivation's environment as shell assignments, then
/// its arguments in `_args` (each quoted, inside one more pair of quotes, as
/// CppNix prints them).
fn print_env(store: &dyn Store, flags: &[String], args: &[String], out: &mut dyn Write) -> crate::CommandResult {
    if !flags.is_empty() {
        return usage("unknown flag");
    }
    if args.len() != 1 {
        return usage("'--print-env' requires one derivation store path");
    }
    let drv_path = store.parse_store_path(&args[0])?;
    let derivation = read_derivation(store, &drv_path)?;
    for (name, value) in &derivation.env {
        out.write_all(b"export ")?;
        out.write_all(name)?;
        out.write_all(b"; ")?;
        out.write_all(name)?;
        out.write_all(b"=")?;
        out.write_all(&shell_escape(value))?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"export _args; _args='")?;
    for (i, arg) in derivation.args.iter().enumerate() {
        if i > 0 {
            out.write_all(b" ")?;
        }
        out.write_all(&shell_escape(arg))?;
    }
    out.write_all(b"'\n")?;
    Ok(ExitCode::SUCCESS)
}

/// Single-quotes `value` for sh, as CppNix's `shellEscape`.
fn shell_escape(value: &[u8]) -> Vec<u8> {
    let mut escaped = vec![b'\''];
    for &byte in value {
        if byte == b'\'' {
            escaped.extend_from_slice(b"'\\''");
        } else {
            escaped.push(byte);
        }
    }
    escaped.push(b'\'');
    escaped
}
