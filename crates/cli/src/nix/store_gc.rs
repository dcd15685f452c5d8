//! `nix store gc [--dry-run] [--max N]`: as CppNix 2.8, `--dry-run` determines
//! the dead paths and prints nothing on stdout; otherwise the dead paths are
//! deleted (up to `--max` bytes, a plain integer) and the summary line printed.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use nivis_store::GcAction;

use crate::legacy::nix_collect_garbage::{collect, gc_options, local_store};
use crate::store_args::open_store;

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let mut dry_run = false;
    let mut max = None;
    let mut store_flag = None;
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        let mut value = |flag: &str| iter.next().ok_or_else(|| anyhow::anyhow!("flag '{flag}' requires an argument"));
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--max" => {
                let text = value("--max")?;
                max = Some(text.parse::<u64>().with_context(|| format!("invalid integer '{text}'"))?);
            }
            "--store" => store_flag = Some(value("--store")?),
            "--extra-experimental-features" | "--experimental-features" => {
                value(&arg)?;
            }
            other if other.starts_with('-') => bail!("unrecognised flag '{other}'"),
            other => bail!("unexpected argument '{other}'"),
        }
    }
    let store = open_store(store_flag.as_deref())?;
    let local = local_store(store.as_ref())?;
    let mut options = gc_options(if dry_run { GcAction::ReturnDead } else { GcAction::DeleteDead })?;
    if let Some(max) = max {
        options.max_freed = max;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = collect(local, &options, !dry_run, &mut out);
    out.flush()?;
    result?;
    Ok(ExitCode::SUCCESS)
}
