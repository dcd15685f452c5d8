//! `nix key generate-secret --key-name NAME` and `nix key
//! convert-secret-to-public`: make an ed25519 signing key for binary caches, and
//! turn one (read from stdin) into its public key. Output is the key text alone,
//! without a trailing newline, as CppNix prints it, so `$(…)` and file
//! redirection give exactly the key file CppNix would write.
//!
//! One difference from CppNix: a key name that is empty or contains `:` is
//! refused, because such a key cannot be read back (by CppNix or by us).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_formats::SecretKey;

const HELP: &str = "\
Usage: nix key SUBCOMMAND

Generate and convert Nix signing keys.

  nix key generate-secret --key-name NAME
      Generate a new ed25519 secret key for signing store paths and print it
      on standard output, as NAME:BASE64. Use the host name of your cache with
      a key number as NAME, e.g. cache.example.org-1.

  nix key convert-secret-to-public
      Read a secret key from standard input and print the matching public key
      (NAME:BASE64) on standard output, for trusted-public-keys.
";

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_str().map(str::to_string).context("arguments must be valid UTF-8"))
        .collect::<anyhow::Result<_>>()?;
    match args.first().map(String::as_str) {
        Some("generate-secret") => generate_secret(&args[1..]),
        Some("convert-secret-to-public") => convert_secret_to_public(&args[1..]),
        Some("--help" | "-h") => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("'{other}' is not a recognised command; try 'nix key --help'"),
        None => {
            eprint!("{HELP}");
            bail!("'nix key' requires a sub-command")
        }
    }
}

fn generate_secret(args: &[String]) -> crate::CommandResult {
    let mut key_name = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--key-name" => key_name = Some(rest.next().context("flag '--key-name' requires 1 argument")?.clone()),
            flag if flag.starts_with("--key-name=") => key_name = Some(flag["--key-name=".len()..].to_string()),
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unrecognised flag '{other}'"),
        }
    }
    let key_name = key_name.context("required argument '--key-name' is missing")?;
    if key_name.is_empty() || key_name.contains(':') {
        bail!("key name '{key_name}' must be non-empty and must not contain ':'");
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut seed))
        .context("reading 32 random bytes from /dev/urandom")?;
    let secret_key = SecretKey::from_seed(&key_name, &seed);
    write_stdout(&secret_key.to_string())
}

fn convert_secret_to_public(args: &[String]) -> crate::CommandResult {
    if let Some(arg) = args.first() {
        if arg == "--help" || arg == "-h" {
            print!("{HELP}");
            return Ok(ExitCode::SUCCESS);
        }
        bail!("unrecognised flag '{arg}'");
    }
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("reading the secret key from standard input")?;
    let secret_key = SecretKey::parse(&input)?;
    write_stdout(&secret_key.to_public_key().to_string())
}

fn write_stdout(text: &str) -> crate::CommandResult {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}
