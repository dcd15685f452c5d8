//! `nivis serve --listen ADDR:PORT [--store URI] [--secret-key-file FILE]
//! [--priority N] [--compression none|zstd] [--workers N]`: serves a store as a
//! binary cache over HTTP (like nix-serve or harmonia), for
//! `substituters = http://ADDR:PORT`.

use std::ffi::OsString;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use nivis_formats::SecretKey;
use nivis_store::StoreSettings;
use nivis_substitute::serve::{NarCompression, ServeConfig, serve};

const HELP: &str = "\
Usage: nivis serve [--listen ADDR:PORT] [--store URI] [--secret-key-file FILE]
                   [--priority N] [--compression none|zstd] [--workers N]

Serve a store as a binary cache over HTTP: /nix-cache-info, /<hash>.narinfo,
/nar/<nar-hash>.nar (uncompressed, with byte ranges), /nar/<nar-hash>.nar.zst
(compressed while streaming) and /log/<drv name> (build logs). Narinfos are
signed with the secret key, if given, and point at the NARs compressed as
--compression says (default: none). --workers bounds the connections served
at once (default 64). The default address is 127.0.0.1:5000.
";

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let mut listen = "127.0.0.1:5000".to_string();
    let mut store = None;
    let mut config = ServeConfig::default();
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().with_context(|| format!("flag '{arg}' requires an argument"));
        match arg.as_str() {
            "--listen" | "-l" => listen = value()?,
            "--store" => store = Some(value()?),
            "--secret-key-file" => {
                let file = value()?;
                let text = std::fs::read_to_string(&file).with_context(|| format!("reading secret key '{file}'"))?;
                config.secret_key = Some(SecretKey::parse(text.trim()).with_context(|| format!("in '{file}'"))?);
            }
            "--priority" => config.priority = value()?.parse().context("'--priority' needs a number")?,
            "--compression" => {
                let name = value()?;
                config.compression = NarCompression::parse(&name)
                    .with_context(|| format!("unknown compression '{name}' (expected 'none' or 'zstd')"))?;
            }
            "--workers" => {
                config.workers = value()?.parse().context("'--workers' needs a number")?;
                if config.workers == 0 {
                    bail!("'--workers' needs at least 1");
                }
            }
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            other => bail!("unrecognised argument '{other}'"),
        }
    }
    let uri = crate::store_args::store_uri(store.as_deref());
    let settings = StoreSettings::from_env();
    // Fail now, not on the first request, if the store cannot be opened.
    nivis_substitute::open_store(&uri, &settings)?;
    let listener = TcpListener::bind(&listen).with_context(|| format!("listening on '{listen}'"))?;
    eprintln!("serving '{}' on http://{}", if uri.is_empty() { "auto" } else { &uri }, listener.local_addr()?);
    let open = Arc::new(move || nivis_substitute::open_store(&uri, &settings));
    serve(listener, open, config)?;
    Ok(ExitCode::SUCCESS)
}
