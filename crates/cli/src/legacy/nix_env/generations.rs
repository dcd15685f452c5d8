//! Generations and profiles: `--rollback`, `--switch-generation`,
//! `--list-generations`, `--delete-generations`, `--switch-profile`, with
//! CppNix 2.8's messages (printed here; `nivis-profile` does the work).

use std::io::Write;

use anyhow::{anyhow, bail};
use nivis_profile::DeleteSpec;

use super::Globals;

fn no_flags(flags: &[String]) -> anyhow::Result<()> {
    match flags.first() {
        Some(flag) => bail!(super::usage(format!("unknown flag '{flag}'"))),
        None => Ok(()),
    }
}

fn switch(g: &Globals, number: Option<u64>) -> anyhow::Result<()> {
    // Look first (to print CppNix's message before anything moves), then switch.
    let (from, to) = nivis_profile::switch_generation(&g.profile, number, true)?;
    eprintln!("switching profile from version {from} to {to}");
    if !g.dry_run {
        nivis_profile::switch_generation(&g.profile, Some(to), false)?;
    }
    Ok(())
}

pub fn op_rollback(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    no_flags(flags)?;
    if !args.is_empty() {
        bail!(super::usage("no arguments expected".to_string()));
    }
    switch(g, None)
}

pub fn op_switch_generation(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    no_flags(flags)?;
    if args.len() != 1 {
        bail!(super::usage("exactly one argument expected".to_string()));
    }
    let number: u32 = args[0].parse().map_err(|_| anyhow!(super::usage(format!("invalid number '{}'", args[0]))))?;
    switch(g, Some(u64::from(number)))
}

/// `localtime_r` of a time stamp, as (year, month, day, hour, minute, second).
fn local_time(seconds: i64) -> anyhow::Result<(i32, i32, i32, i32, i32, i32)> {
    // SAFETY: localtime_r writes into the tm we own; time_t is i64 here.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        let t: libc::time_t = seconds as libc::time_t;
        if libc::localtime_r(&t, &mut tm).is_null() {
            bail!("cannot convert time");
        }
        Ok((tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec))
    }
}

pub fn op_list_generations(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    no_flags(flags)?;
    if !args.is_empty() {
        bail!(super::usage("no arguments expected".to_string()));
    }
    let _lock = nivis_profile::lock_profile(&g.profile, || {})?;
    let (generations, current) = nivis_profile::find_generations(&g.profile)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for generation in generations {
        let (year, month, day, hour, minute, second) = local_time(generation.creation_time)?;
        writeln!(
            out,
            "{:>4}   {:>4}-{:02}-{:02} {:02}:{:02}:{:02}   {}",
            generation.number,
            year,
            month,
            day,
            hour,
            minute,
            second,
            if Some(generation.number) == current { "(current)" } else { "" }
        )?;
    }
    Ok(())
}

pub fn op_delete_generations(g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    no_flags(flags)?;
    if args.len() == 1 && args[0] != "old" && !args[0].ends_with('d') && args[0].contains('d') {
        bail!("invalid number of days specifier '{}', expected something like '14d'", args[0]);
    }
    if args.len() == 1 && args[0].starts_with('+') && args[0].len() < 2 {
        bail!("invalid number of generations '{}'", args[0]);
    }
    let spec = match DeleteSpec::parse(args) {
        Ok(spec) => spec,
        Err(nivis_profile::ProfileError::BadSpec(arg)) if arg.starts_with('+') => {
            bail!("invalid number of generations to keep '{arg}'")
        }
        Err(nivis_profile::ProfileError::BadSpec(arg)) => {
            bail!(super::usage(format!("invalid generation number '{arg}'")))
        }
        Err(e) => return Err(e.into()),
    };
    let mut removed = spec.apply(&g.profile, g.dry_run)?;
    // CppNix walks from the newest for these two.
    if matches!(spec, DeleteSpec::KeepLast(_) | DeleteSpec::OlderThan(_)) {
        removed.reverse();
    }
    for number in removed {
        if g.dry_run {
            eprintln!("would remove profile version {number}");
        } else {
            eprintln!("removing profile version {number}");
        }
    }
    Ok(())
}

pub fn op_switch_profile(_g: &mut Globals, flags: &[String], args: &[String]) -> anyhow::Result<()> {
    no_flags(flags)?;
    if args.len() != 1 {
        bail!(super::usage("exactly one argument expected".to_string()));
    }
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_else(|| "/".into());
    let link = home.join(".nix-profile");
    let target = crate::store_args::absolute_path(&args[0])?;
    nivis_profile::switch_link(&link, &target)?;
    Ok(())
}
