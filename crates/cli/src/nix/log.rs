//! `nix log PATH...`: the kept build log of a derivation, or of the
//! derivation that built a store path (its deriver), as stored by nivis or
//! CppNix (`<log dir>/drvs/<2>/<rest>[.bz2]`).

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut store_flag = None;
    let mut paths = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--store" => {
                i += 1;
                store_flag = args.get(i).cloned();
            }
            "--extra-experimental-features" | "--experimental-features" => i += 1,
            flag if flag.starts_with('-') => bail!("unrecognised flag '{flag}'"),
            path => paths.push(path.to_string()),
        }
        i += 1;
    }
    let store = crate::store_args::open_store(store_flag.as_deref())?;
    for arg in &paths {
        let (path, _) = crate::realise::parse_derived_path(store.as_ref(), arg)?;
        let log = crate::realise::read_log(store.as_ref(), &path)?;
        std::io::stdout().write_all(&log)?;
    }
    Ok(ExitCode::SUCCESS)
}
