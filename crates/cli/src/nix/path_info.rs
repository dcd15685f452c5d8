//! `nix path-info [-r] [-s] [-S] [-h] [--sigs] [--json] PATHS...`: information about
//! valid store paths. Text output as CppNix 2.8; `--json` gives the shape of
//! current CppNix (2.19 and later): an object keyed by store path, each value
//! carrying `ca`, `deriver`, `narHash` (SRI), `narSize`, `references`,
//! `registrationTime`, `signatures` and `ultimate` (`null` where unknown), plus
//! `closureSize` with `-S`; an invalid path maps to `null`.
//!
//! Only store paths (or symlinks to them) are accepted as installables for now.

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::bail;
use nivis_formats::{HashEncoding, StorePath, StorePathSet};
use nivis_store::{ClosureOptions, Store};
use serde_json::{Map, Value, json};

use crate::store_args::{follow_links_to_store_path, open_store};

#[derive(Default)]
struct Options {
    store: Option<String>,
    recursive: bool,
    size: bool,
    closure_size: bool,
    human_readable: bool,
    sigs: bool,
    json: bool,
    paths: Vec<String>,
}

fn parse(args: &[OsString]) -> anyhow::Result<Options> {
    let mut options = Options::default();
    let mut iter = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--store" => options.store = Some(iter.next().ok_or_else(|| anyhow::anyhow!("flag '--store' requires an argument"))?),
            "--recursive" | "-r" => options.recursive = true,
            "--size" | "-s" => options.size = true,
            "--closure-size" | "-S" => options.closure_size = true,
            "--human-readable" | "-h" => options.human_readable = true,
            "--sigs" => options.sigs = true,
            "--json" => options.json = true,
            "--extra-experimental-features" | "--experimental-features" => {
                iter.next();
            }
            flag if flag.starts_with("--") => bail!("unrecognised flag '{flag}'"),
            flag if flag.starts_with('-') && flag.len() > 1 => {
                for c in flag[1..].chars() {
                    match c {
                        'r' => options.recursive = true,
                        's' => options.size = true,
                        'S' => options.closure_size = true,
                        'h' => options.human_readable = true,
                        _ => bail!("unrecognised flag '-{c}'"),
                    }
                }
            }
            _ => options.paths.push(arg),
        }
    }
    Ok(options)
}

/// CppNix's `\t%11d`, or `\t%6.1f<unit>` with `-h`.
fn format_size(value: u64, human_readable: bool) -> String {
    if !human_readable {
        return format!("\t{value:11}");
    }
    let units = [' ', 'K', 'M', 'G', 'T', 'P', 'E'];
    let mut scaled = value as f64;
    let mut unit = 0;
    while scaled > 1024.0 && unit + 1 < units.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("\t{scaled:6.1}{}", units[unit])
}

fn closure_size(store: &dyn Store, path: &StorePath) -> anyhow::Result<u64> {
    let closure = nivis_store::compute_closure(store, &StorePathSet::from([path.clone()]), ClosureOptions::default())?;
    let mut total = 0;
    for p in &closure {
        if let Some(info) = store.query_path_info(p)? {
            total += info.nar_size;
        }
    }
    Ok(total)
}

pub fn run(args: &[OsString]) -> crate::CommandResult {
    let options = parse(args)?;
    let store = open_store(options.store.as_deref())?;
    let store = store.as_ref();
    let mut start = StorePathSet::new();
    for arg in &options.paths {
        start.insert(follow_links_to_store_path(store, arg)?);
    }
    let set = if options.recursive {
        nivis_store::compute_closure(store, &start, ClosureOptions::default())?
    } else {
        start
    };
    // Dependencies first, as CppNix prints them.
    let mut paths: Vec<StorePath> = nivis_store::topo_sort_paths(store, &set)?;
    paths.reverse();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if options.json {
        let mut map = Map::new();
        for path in &paths {
            let printed = store.print_store_path(path);
            let Some(info) = store.query_path_info(path)? else {
                map.insert(printed, Value::Null);
                continue;
            };
            let mut entry = Map::new();
            entry.insert("ca".into(), info.ca.as_ref().map(|c| json!(c.to_string())).unwrap_or(Value::Null));
            entry.insert(
                "deriver".into(),
                info.deriver.as_ref().map(|d| json!(store.print_store_path(d))).unwrap_or(Value::Null),
            );
            entry.insert("narHash".into(), json!(info.nar_hash.encode(HashEncoding::Sri, true)));
            entry.insert("narSize".into(), json!(info.nar_size));
            entry.insert(
                "references".into(),
                json!(info.references.iter().map(|r| store.print_store_path(r)).collect::<Vec<_>>()),
            );
            entry.insert("registrationTime".into(), json!(info.registration_time));
            entry.insert("signatures".into(), json!(info.sigs.iter().collect::<Vec<_>>()));
            entry.insert("ultimate".into(), json!(info.ultimate));
            if options.closure_size {
                entry.insert("closureSize".into(), json!(closure_size(store, path)?));
            }
            map.insert(printed, Value::Object(entry));
        }
        writeln!(out, "{}", Value::Object(map))?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = paths.iter().map(|p| store.print_store_path(p).len()).max().unwrap_or(0);
    for path in &paths {
        let printed = store.print_store_path(path);
        let Some(info) = store.query_path_info(path)? else {
            out.flush()?;
            bail!("path '{printed}' is not valid");
        };
        let mut line = printed.clone();
        if options.size || options.closure_size || options.sigs {
            line.push_str(&" ".repeat(width - printed.len()));
        }
        if options.size {
            line.push_str(&format_size(info.nar_size, options.human_readable));
        }
        if options.closure_size {
            line.push_str(&format_size(closure_size(store, path)?, options.human_readable));
        }
        if options.sigs {
            let mut words = Vec::new();
            if info.ultimate {
                words.push("ultimate".to_string());
            }
            if let Some(ca) = &info.ca {
                words.push(format!("ca:{}", ca));
            }
            words.extend(info.sigs.iter().cloned());
            line.push('\t');
            line.push_str(&words.join(" "));
        }
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
