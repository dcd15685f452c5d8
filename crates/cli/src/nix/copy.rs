//! `nix copy [--from URI] [--to URI] [--no-check-sigs] PATHS...`: copies the
//! closures of store paths between stores (local stores, `file://` and
//! `http://` binary caches), references first, skipping what the destination
//! has. Into a local store, paths need a signature by a trusted key
//! (`trusted-public-keys`) unless `--no-check-sigs` or `require-sigs = false`.
//! A progress line goes to stderr when it is a terminal.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_config::Config;
use nivis_formats::StorePathSet;
use nivis_store::{Store, StoreSettings};
use nivis_substitute::{BinaryCacheStore, CopyOptions, is_binary_cache_uri};

use crate::store_args::{follow_links_to_store_path, store_uri};

const HELP: &str = "\
Usage: nix copy [--from URI] [--to URI] [--no-check-sigs] PATHS...

Copy the closures of store paths from one store to another (the local store
when --from or --to is left out). Stores: local, local?root=DIR, DIR,
file://DIR[?compression=xz|zstd|bzip2|none&secret-key=FILE], http://HOST:PORT/PATH.

  --no-check-sigs              do not require signatures by trusted keys
  --trusted-public-keys KEYS   replace the trusted keys (space-separated)
  --extra-trusted-public-keys KEYS
  --option NAME VALUE          set a configuration option
";

#[derive(Default)]
pub struct Options {
    pub from: Option<String>,
    pub to: Option<String>,
    pub store: Option<String>,
    pub no_check_sigs: bool,
    pub settings: Vec<(String, String)>,
    pub paths: Vec<String>,
}

fn parse(args: &[OsString]) -> anyhow::Result<Option<Options>> {
    let mut options = Options::default();
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    let value = |iter: &mut dyn Iterator<Item = String>, flag: &str| {
        iter.next().with_context(|| format!("flag '{flag}' requires an argument"))
    };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--from" => options.from = Some(value(&mut iter, "--from")?),
            "--to" => options.to = Some(value(&mut iter, "--to")?),
            "--store" => options.store = Some(value(&mut iter, "--store")?),
            "--no-check-sigs" => options.no_check_sigs = true,
            // Accepted as CppNix does; substituting on the destination is not done yet.
            "--substitute-on-destination" | "-s" | "--no-recursive" => {}
            "--trusted-public-keys" | "--extra-trusted-public-keys" => {
                let keys = value(&mut iter, &arg)?;
                options.settings.push((arg[2..].to_string(), keys));
            }
            "--require-sigs" => options.settings.push(("require-sigs".into(), "true".into())),
            "--no-require-sigs" => options.settings.push(("require-sigs".into(), "false".into())),
            "--option" => {
                let name = value(&mut iter, "--option")?;
                let setting = value(&mut iter, "--option")?;
                options.settings.push((name, setting));
            }
            "--extra-experimental-features" | "--experimental-features" => {
                iter.next();
            }
            "--help" | "-h" => {
                print!("{HELP}");
                return Ok(None);
            }
            flag if flag.starts_with('-') => bail!("unrecognised flag '{flag}'"),
            _ => options.paths.push(arg),
        }
    }
    Ok(Some(options))
}

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let Some(options) = parse(args)? else { return Ok(ExitCode::SUCCESS) };
    if options.from.is_none() && options.to.is_none() {
        bail!("you must pass '--from' and/or '--to'");
    }
    copy(&options)?;
    Ok(ExitCode::SUCCESS)
}

/// Loads nix.conf and applies the command line's settings.
pub fn load_config(settings: &[(String, String)]) -> anyhow::Result<Config> {
    let mut config = Config::load().context("loading the configuration")?;
    for (name, value) in settings {
        config.set(name, value);
    }
    Ok(config)
}

/// Copies `options.paths` as `nix copy` does; shared with `nix-copy-closure`.
pub fn copy(options: &Options) -> anyhow::Result<()> {
    let settings = StoreSettings::from_env();
    let local_uri = store_uri(options.store.as_deref());
    let source_uri = options.from.clone().unwrap_or_else(|| local_uri.clone());
    let destination_uri = options.to.clone().unwrap_or_else(|| local_uri.clone());
    let config = load_config(&options.settings)?;
    // HTTP caches on either side get `connect-timeout`, `stalled-download-timeout`
    // and `download-attempts` from `--option` as from nix.conf.
    nivis_substitute::configure_network(nivis_substitute::NetworkSettings::from_config(&config));

    let destination = nivis_substitute::open_store(&destination_uri, &settings)?;
    let check_sigs = !options.no_check_sigs
        && destination.as_local().is_some()
        && config.get_bool("require-sigs").unwrap_or(true);
    let copy_options = CopyOptions {
        check_sigs,
        keyring: if check_sigs { nivis_substitute::trusted_keyring(&config)? } else { Default::default() },
    };
    let mut progress = crate::progress::copy_progress(destination.store_dir().as_str().to_string(), false);

    let report = if is_binary_cache_uri(&source_uri) {
        // A binary cache can feed a helper thread: NARs stream without a spool.
        let source = BinaryCacheStore::open(&source_uri, &settings)?;
        let paths = store_paths(&source, &options.paths)?;
        nivis_substitute::copy_paths_shared(&source, destination.as_ref(), &paths, &copy_options, &mut progress)?
    } else {
        let source = nivis_substitute::open_store(&source_uri, &settings)?;
        let paths = store_paths(source.as_ref(), &options.paths)?;
        nivis_substitute::copy_paths(source.as_ref(), destination.as_ref(), &paths, &copy_options, &mut progress)?
    };
    let _ = report;
    Ok(())
}

fn store_paths(source: &dyn Store, args: &[String]) -> anyhow::Result<StorePathSet> {
    args.iter().map(|arg| follow_links_to_store_path(source, arg)).collect()
}
