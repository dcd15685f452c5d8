//! Builders that run inside nivis rather than as a program: derivations with
//! `builder = "builtin:<name>"` (and usually `system = "builtin"`), as in
//! CppNix. [`crate::run_build`] hands them here; they run in this process,
//! unsandboxed, writing their outputs straight into the real store directory
//! (the scheduler holds the output locks and has cleared the output paths, as
//! for any build), and the usual after-build steps follow.
//!
//! A failing builtin is a failed build (exit code 1, the error as the log's
//! last line), as CppNix's forked builtin child reports it.

mod buildenv;
mod fetchurl;

use std::io::Write;
use std::time::Instant;

use fetchurl::builtin_fetchurl;
pub use buildenv::{
    BuildEnvError, BuildEnvStats, Package, StoreLocation, build_profile, build_profile_in, builtin_buildenv,
    parse_derivations_attribute,
};

use crate::{BuildError, BuildOutcome, BuildRequest, BuildStatus};

/// Runs the builtin builder `name` (the part after `builtin:`) for `request`.
pub(crate) fn run_builtin(name: &str, request: &BuildRequest, log: &mut dyn Write) -> Result<BuildOutcome, BuildError> {
    let started = Instant::now();
    let base_name = |path: &String| path.rsplit('/').next().unwrap_or_default().to_string();
    let visible = request.input_paths.iter().chain(request.outputs.values()).map(base_name).collect();
    let location = StoreLocation {
        logical: request.store_dir.clone(),
        real: request.real_store_dir.clone(),
        visible: Some(visible),
    };
    let result: Result<Vec<String>, String> = match name {
        "buildenv" => builtin_buildenv(&request.env, &location)
            .map(|stats| stats.warnings)
            .map_err(|e| e.to_string()),
        "fetchurl" => builtin_fetchurl(&request.env, &location).map(|()| Vec::new()).map_err(|e| e.to_string()),
        _ => Err(format!("unsupported builtin builder '{}'", request.builder)),
    };
    let mut log_size = 0u64;
    let mut write_line = |line: String| {
        log_size += line.len() as u64;
        let _ = log.write_all(line.as_bytes());
    };
    let status = match result {
        Ok(warnings) => {
            for warning in warnings {
                write_line(format!("warning: {warning}\n"));
            }
            BuildStatus::Exited(0)
        }
        Err(message) => {
            write_line(format!("error: {message}\n"));
            BuildStatus::Exited(1)
        }
    };
    Ok(BuildOutcome::in_process(request, status, started.elapsed(), log_size))
}
