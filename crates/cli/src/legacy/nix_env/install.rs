//! The operations that change what a profile holds: `--install`,
//! `--upgrade`, `--uninstall`, `--set`, `--set-flag`. Each reads the
//! installed elements, computes the new list and makes a user environment of
//! it, starting over if another process switched the profile meanwhile.

use std::path::Path;

use anyhow::{anyhow, bail};
use nivis_eval::Value;

use super::drv_info::{
    DrvInfo, check_selector_use, compare_priorities, filter_by_selector, get_derivations, load_derivations,
    load_source_expr, query_installed, selectors,
};
use super::user_env::{create_user_env, lock_token, print_missing_and_build};
use super::{EvalResultExt, Globals, InstallSource};

/// CppNix's `isPath`: an argument with a slash names a file.
fn is_path(arg: &str) -> bool {
    arg.contains('/')
}

/// CppNix's `followLinksToStorePath`, which fails on a missing file first.
fn follow_links(store: &dyn nivis_store::Store, arg: &str) -> anyhow::Result<nivis_formats::StorePath> {
    let path = crate::store_args::absolute_path(arg)?;
    let in_store = path.strip_prefix(store.store_dir().as_str()).is_ok_and(|rest| !rest.as_os_str().is_empty());
    if !in_store {
        std::fs::symlink_metadata(&path)
            .map_err(|e| anyhow!("getting status of '{}': {}", path.display(), nivis_eval::io::strerror(&e)))?;
    }
    crate::store_args::follow_links_to_store_path(store, arg)
}

/// Install-source flags an operation accepts (`-A`, `-E`, `--from-profile`);
/// returns false for any other flag.
pub fn parse_install_source_flag(g: &mut Globals, flags: &[String], i: &mut usize) -> anyhow::Result<bool> {
    match flags[*i].as_str() {
        "--from-expression" | "-E" => g.inst_source = InstallSource::NixExprs,
        "--from-profile" => {
            *i += 1;
            let profile = flags.get(*i).ok_or_else(|| anyhow!("'--from-profile' requires an argument"))?;
            g.inst_source = InstallSource::Profile(crate::store_args::absolute_path(profile)?);
        }
        "--attr" | "-A" => g.inst_source = InstallSource::AttrPath,
        _ => return Ok(false),
    }
    Ok(true)
}

/// CppNix's `queryInstSources`: the elements the arguments name.
pub fn query_inst_sources(g: &mut Globals, args: &[String], newest_only: bool) -> anyhow::Result<Vec<DrvInfo>> {
    let mut source = g.inst_source.clone();
    if matches!(source, InstallSource::Unknown) {
        source = if args.first().is_some_and(|a| is_path(a)) {
            InstallSource::StorePaths
        } else {
            InstallSource::NixExprDrvs
        };
    }
    match source {
        InstallSource::Unknown | InstallSource::NixExprDrvs => {
            let path = g.nix_expr_path.clone();
            let all = load_derivations(g, &path, "")?;
            filter_by_selector(g, &all, args, newest_only)
        }
        InstallSource::NixExprs => {
            let path = g.nix_expr_path.clone();
            let arg = load_source_expr(&mut g.ev, &path)?;
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            let mut elems = Vec::new();
            for expr in args {
                let e = g.ev.parse_string(expr, &cwd).ev()?;
                let f = g.ev.eval_expr(e).ev()?;
                let v = Value::apply_thunk(f, arg.clone());
                let auto = g.auto_args.clone();
                get_derivations(&mut g.ev, &v, "", &auto, &mut elems, true)?;
            }
            Ok(elems)
        }
        InstallSource::StorePaths => {
            let mut elems = Vec::new();
            for arg in args {
                let store = g.io.store();
                let path = follow_links(store, arg)?;
                let printed = store.print_store_path(&path);
                // CppNix names the element after the path, `.drv` included.
                let name = path.name().to_string();
                if printed.ends_with(".drv") {
                    let drv = nivis_build::read_derivation(store, &path)?;
                    let out = drv
                        .outputs
                        .get("out")
                        .and_then(|o| o.path())
                        .ok_or_else(|| anyhow!("derivation '{printed}' has no output 'out'"))?;
                    let out = store.print_store_path(out);
                    elems.push(DrvInfo::from_store_path(name, out, Some(printed)));
                } else {
                    elems.push(DrvInfo::from_store_path(name, printed, None));
                }
            }
            Ok(elems)
        }
        InstallSource::Profile(profile) => {
            let installed = query_installed(g, &profile)?;
            filter_by_selector(g, &installed, args, newest_only)
        }
        InstallSource::AttrPath => {
            let path = g.nix_expr_path.clone();
            let root = load_source_expr(&mut g.ev, &path)?;
            let auto = g.auto_args.clone();
            let mut elems = Vec::new();
            for attr_path in args {
                let v = crate::eval_io::find_along_attr_path(&mut g.ev, attr_path, Some(&auto), &root).ev()?;
                get_derivations(&mut g.ev, &v, "", &auto, &mut elems, true)?;
            }
            Ok(elems)
        }
    }
}

fn keep(g: &mut Globals, elem: &DrvInfo) -> anyhow::Result<bool> {
    elem.meta_bool(&mut g.ev, "keep", false)
}

pub fn op_install(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    let mut i = 0;
    while i < flags.len() {
        let flag = flags[i].as_str();
        if parse_install_source_flag(g, flags, &mut i)? {
        } else if flag == "--preserve-installed" || flag == "-P" {
            g.preserve_installed = true;
        } else if flag == "--remove-all" || flag == "-r" {
            g.remove_all = true;
        } else {
            bail!(super::usage(format!("unknown flag '{flag}'")));
        }
        i += 1;
    }
    let profile = g.profile.clone();
    install_derivations(g, args, &profile)
}

fn install_derivations(g: &mut Globals, args: &[String], profile: &Path) -> anyhow::Result<()> {
    let new_elems = query_inst_sources(g, args, true)?;
    let mut new_elems: Vec<DrvInfo> = new_elems;
    if g.prebuilt_only {
        let mut kept = Vec::new();
        for elem in new_elems {
            // CppNix's isPrebuilt: valid here, or in a binary cache.
            let out = elem.out_path(&mut g.ev)?;
            let path = g.io.store().parse_store_path(&out)?;
            if g.io.store().is_valid_path(&path)?
                || !super::query::query_substitutable_paths(g, &[path].into_iter().collect())?.is_empty()
            {
                kept.push(elem);
            }
        }
        new_elems = kept;
    }
    let mut new_names = std::collections::BTreeSet::new();
    for elem in &mut new_elems {
        if let Some(name) = &g.force_name {
            elem.name = name.clone();
        }
        new_names.insert(elem.pname());
    }
    loop {
        let token = lock_token(profile);
        let mut all = new_elems.clone();
        if !g.remove_all {
            let installed = query_installed(g, profile)?;
            for elem in installed {
                if !g.preserve_installed && new_names.contains(&elem.pname()) && !keep(g, &elem)? {
                    eprintln!("replacing old '{}'", elem.name);
                } else {
                    all.push(elem);
                }
            }
            for elem in &new_elems {
                eprintln!("installing '{}'", elem.name);
            }
        }
        print_missing_and_build(g, &all)?;
        if g.dry_run {
            return Ok(());
        }
        if create_user_env(g, &all, profile, &token)? {
            return Ok(());
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum UpgradeType {
    Lt,
    Leq,
    Eq,
    Always,
}

fn version_cmp(a: &str, b: &str) -> i32 {
    match nivis_eval::support::versions::compare_versions(a.as_bytes(), b.as_bytes()) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

pub fn op_upgrade(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    let mut upgrade_type = UpgradeType::Lt;
    let mut i = 0;
    while i < flags.len() {
        let flag = flags[i].as_str();
        if parse_install_source_flag(g, flags, &mut i)? {
        } else {
            upgrade_type = match flag {
                "--lt" => UpgradeType::Lt,
                "--leq" => UpgradeType::Leq,
                "--eq" => UpgradeType::Eq,
                "--always" => UpgradeType::Always,
                _ => bail!(super::usage(format!("unknown flag '{flag}'"))),
            };
        }
        i += 1;
    }
    let profile = g.profile.clone();
    loop {
        let token = lock_token(&profile);
        let installed = query_installed(g, &profile)?;
        let available = query_inst_sources(g, args, false)?;
        let mut new_elems = Vec::new();
        for elem in installed {
            if keep(g, &elem)? {
                new_elems.push(elem);
                continue;
            }
            let (pname, version) = (elem.pname(), elem.version());
            let mut best: Option<usize> = None;
            let mut best_version = String::new();
            for (j, candidate) in available.iter().enumerate() {
                if compare_priorities(&mut g.ev, &elem, candidate)? > 0 {
                    continue;
                }
                if candidate.pname() != pname {
                    continue;
                }
                let d = version_cmp(&version, &candidate.version());
                let wanted = match upgrade_type {
                    UpgradeType::Lt => d < 0,
                    UpgradeType::Leq => d <= 0,
                    UpgradeType::Eq => d == 0,
                    UpgradeType::Always => true,
                };
                if !wanted {
                    continue;
                }
                let mut d2 = -1;
                if let Some(b) = best {
                    d2 = compare_priorities(&mut g.ev, &available[b], candidate)? as i32;
                    if d2 == 0 {
                        d2 = version_cmp(&best_version, &candidate.version());
                    }
                }
                if d2 < 0 {
                    best = Some(j);
                    best_version = candidate.version();
                }
            }
            match best {
                Some(b) if elem.out_path(&mut g.ev)? != available[b].out_path(&mut g.ev)? => {
                    let action = if version_cmp(&version, &best_version) <= 0 { "upgrading" } else { "downgrading" };
                    eprintln!("{action} '{}' to '{}'", elem.name, available[b].name);
                    new_elems.push(available[b].clone());
                }
                _ => new_elems.push(elem),
            }
        }
        print_missing_and_build(g, &new_elems)?;
        if g.dry_run {
            return Ok(());
        }
        if create_user_env(g, &new_elems, &profile, &token)? {
            return Ok(());
        }
    }
}

/// libstdc++'s `std::partition` (which CppNix's uninstall uses): elements
/// satisfying `keep` first, in the order that algorithm leaves them (it
/// swaps from both ends, so the order is not stable); returns the split.
fn partition<T>(items: &mut [T], mut keep: impl FnMut(&T) -> bool) -> usize {
    let (mut first, mut last) = (0usize, items.len());
    loop {
        loop {
            if first == last {
                return first;
            } else if keep(&items[first]) {
                first += 1;
            } else {
                break;
            }
        }
        last -= 1;
        loop {
            if first == last {
                return first;
            } else if !keep(&items[last]) {
                last -= 1;
            } else {
                break;
            }
        }
        items.swap(first, last);
        first += 1;
    }
}

pub fn op_uninstall(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    if let Some(flag) = flags.first() {
        bail!(super::usage(format!("unknown flag '{flag}'")));
    }
    let profile = g.profile.clone();
    loop {
        let token = lock_token(&profile);
        let mut working = query_installed(g, &profile)?;
        for selector in args {
            let split = if is_path(selector) {
                let wanted = follow_links(g.io.store(), selector)?;
                let wanted = g.io.store().print_store_path(&wanted);
                let mut outs = Vec::new();
                for elem in &working {
                    outs.push(elem.out_path(&mut g.ev)?);
                }
                let mut indexed: Vec<(DrvInfo, String)> = working.drain(..).zip(outs).collect();
                let split = partition(&mut indexed, |(_, out)| *out != wanted);
                working = indexed.into_iter().map(|(e, _)| e).collect();
                split
            } else {
                let name = super::drv_info::Selector::new(selector)?;
                partition(&mut working, |elem| !name.matches(&elem.name))
            };
            if split == working.len() {
                eprintln!("warning: selector '{selector}' matched no installed derivations");
            }
            for elem in &working[split..] {
                eprintln!("uninstalling '{}'", elem.name);
            }
            working.truncate(split);
        }
        if g.dry_run {
            return Ok(());
        }
        if create_user_env(g, &working, &profile, &token)? {
            return Ok(());
        }
    }
}

pub fn op_set(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    let mut i = 0;
    while i < flags.len() {
        if !parse_install_source_flag(g, flags, &mut i)? {
            bail!(super::usage(format!("unknown flag '{}'", flags[i])));
        }
        i += 1;
    }
    let mut elems = query_inst_sources(g, args, true)?;
    if elems.len() != 1 {
        bail!("--set requires exactly one derivation");
    }
    let mut drv = elems.remove(0);
    if let Some(name) = &g.force_name {
        drv.name = name.clone();
    }
    print_missing_and_build(g, std::slice::from_ref(&drv))?;
    if g.dry_run {
        return Ok(());
    }
    if drv.drv_path(&mut g.ev)?.is_none() {
        let out = drv.out_path(&mut g.ev)?;
        let path = g.io.store().parse_store_path(&out)?;
        if !g.io.store().is_valid_path(&path)? {
            bail!("path '{out}' does not exist and cannot be created");
        }
    }
    let out = drv.out_path(&mut g.ev)?;
    let store = g.io.store();
    let out = store.parse_store_path(&out)?;
    let local = store.as_local().ok_or_else(|| anyhow!("--set is not supported for this Nix store"))?;
    let profile = g.profile.clone();
    let _lock = nivis_profile::lock_profile(&profile, || {})?;
    let generation = nivis_profile::create_generation(local, &profile, &out)?;
    nivis_profile::switch_link(&profile, &generation)?;
    Ok(())
}

pub fn op_set_flag(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    if let Some(flag) = flags.first() {
        bail!(super::usage(format!("unknown flag '{flag}'")));
    }
    if args.len() < 2 {
        bail!(super::usage("not enough arguments to '--set-flag'".to_string()));
    }
    let (flag_name, flag_value) = (args[0].clone(), args[1].clone());
    let profile = g.profile.clone();
    loop {
        let mut selectors = selectors(&args[2..])?;
        let token = lock_token(&profile);
        let mut installed = query_installed(g, &profile)?;
        for elem in &mut installed {
            for selector in selectors.iter_mut() {
                if selector.matches(&elem.name) {
                    eprintln!("setting flag on '{}'", elem.name);
                    selector.hits += 1;
                    elem.set_meta_flag(&mut g.ev, &flag_name, &flag_value)?;
                    break;
                }
            }
        }
        check_selector_use(&selectors)?;
        if create_user_env(g, &installed, &profile, &token)? {
            return Ok(());
        }
    }
}
