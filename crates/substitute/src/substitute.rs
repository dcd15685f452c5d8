//! Substitution (fetching store paths from binary caches into the local store
//! instead of building them) and copying closures between any two stores.
//!
//! NARs stream from source to destination without an intermediate copy when
//! the source can be shared with a helper thread (`dyn Store + Sync`, which
//! binary caches are) or has its files on disk (`real_path`); otherwise they are
//! spooled through a temporary file. Either way the destination's `add_nar`
//! registers nothing unless the whole NAR arrived and checked out.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, Write};

use nivis_config::Config;
use nivis_formats::signature::fingerprint;
use nivis_formats::{Keyring, StoreDir, StorePath, StorePathSet};
use nivis_store::{ClosureOptions, Store, StoreError, StoreSettings, ValidPathInfo, compute_closure, topo_sort_paths};

use crate::binary_cache::BinaryCacheStore;
use crate::error::SubstituteError;

/// Progress of one path's transfer: the path, NAR bytes done, NAR bytes in all
/// (0 when unknown).
pub type ProgressFn<'a> = dyn FnMut(&Progress<'_>) + 'a;

/// Where the copy of one path stands: called once with `done == 0` when it
/// starts, then about every MiB, and when it is complete.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub path: &'a StorePath,
    /// The URI of the store the path comes from.
    pub source: &'a str,
    /// NAR bytes copied so far, of `total`.
    pub done: u64,
    pub total: u64,
}

/// A substituter that can feed a helper thread.
pub type Substituter = Box<dyn Store + Send + Sync>;

/// Whether `info` carries a valid signature by a key in `keyring`, or is
/// content-addressed (its path follows from its contents, so it needs none).
pub fn check_signatures(store_dir: &StoreDir, info: &ValidPathInfo, keyring: &Keyring) -> bool {
    if let Some(ca) = &info.ca
        && ca.store_path(store_dir, info.path.name(), &info.references, Some(&info.path)).is_ok_and(|p| p == info.path)
    {
        return true;
    }
    match fingerprint(store_dir, &info.path, &info.nar_hash, info.nar_size, &info.references) {
        Ok(fingerprint) => keyring.count_valid(fingerprint.as_bytes(), &info.sigs) > 0,
        Err(_) => false,
    }
}

/// The `trusted-public-keys` of the configuration as a keyring.
pub fn trusted_keyring(config: &Config) -> Result<Keyring, SubstituteError> {
    Ok(Keyring::parse_list(&config.get_list("trusted-public-keys").join(" "))?)
}

/// Opens the configured `substituters` (and `extra-substituters`, which the
/// configuration folds in), sorted by priority. A cache that cannot be opened
/// is skipped with a warning, as CppNix does; the warnings are returned.
pub fn open_substituters(uris: &[String], settings: &StoreSettings) -> (Vec<Substituter>, Vec<String>) {
    let mut opened: Vec<(u64, usize, Substituter)> = Vec::new();
    let mut warnings = Vec::new();
    for (index, uri) in uris.iter().enumerate() {
        if !crate::binary_cache::is_binary_cache_uri(uri) {
            warnings.push(format!("substituter '{uri}' is not a binary cache nivis supports yet; skipping it"));
            continue;
        }
        match BinaryCacheStore::open(uri, settings) {
            Ok(store) => opened.push((store.priority(), index, Box::new(store))),
            Err(e) => warnings.push(format!("disabling substituter '{uri}': {e}")),
        }
    }
    opened.sort_by_key(|(priority, index, _)| (*priority, *index));
    (opened.into_iter().map(|(_, _, store)| store).collect(), warnings)
}

/// What [`substitute_paths`] did.
#[derive(Debug, Default)]
pub struct SubstituteReport {
    /// Fetched and registered, references before referrers.
    pub substituted: Vec<StorePath>,
    /// Requested or needed paths that were valid already.
    pub already_valid: Vec<StorePath>,
    /// Paths no substituter could provide, with why.
    pub failed: Vec<(StorePath, SubstituteError)>,
    /// Of `failed`: paths a substituter had (with a trusted signature) or
    /// could not be asked about, but that could not be delivered, and paths
    /// whose references failed so (CppNix's "substituter failed"). Without
    /// `fallback` their derivations fail instead of being built; paths no
    /// substituter has are not in it.
    pub substitutes_failed: StorePathSet,
}

/// Makes `paths` and their closures valid in `local` from `substituters`
/// (tried in the order given, which [`open_substituters`] makes the priority
/// order). For every path, a substituter that lacks it, fails to answer, sends
/// an untrusted narinfo or a NAR that does not check out is passed over for the
/// next one. Paths that could not be substituted (and their referrers) are in
/// the report's `failed`, for the caller to build; this function fails only
/// on errors of the local store itself.
pub fn substitute_paths(
    local: &dyn Store,
    substituters: &[Substituter],
    paths: &StorePathSet,
    keyring: &Keyring,
    require_sigs: bool,
    progress: &mut ProgressFn<'_>,
) -> Result<SubstituteReport, SubstituteError> {
    let mut report = SubstituteReport::default();
    let Plan { planned, unavailable } = plan(local, substituters, paths, &mut report.already_valid)?;
    for (path, attempts) in unavailable {
        // Attempts are query errors: a substituter may have had it.
        if !attempts.is_empty() {
            report.substitutes_failed.insert(path.clone());
        }
        report.failed.push((path.clone(), SubstituteError::NoSubstituter { path: local.print_store_path(&path), attempts }));
    }

    for path in references_first(&planned) {
        let references = &planned[&path].references;
        if let Some(missing) = references
            .iter()
            .find(|r| **r != path && report.failed.iter().any(|(failed, _)| failed == *r))
        {
            if report.substitutes_failed.contains(missing) {
                report.substitutes_failed.insert(path.clone());
            }
            let attempts = vec![format!("its reference '{}' could not be substituted", local.print_store_path(missing))];
            report.failed.push((path.clone(), SubstituteError::NoSubstituter { path: local.print_store_path(&path), attempts }));
            continue;
        }
        let mut attempts = Vec::new();
        let mut done = false;
        let mut delivery_failed = false;
        for substituter in substituters {
            match substitute_one(local, substituter.as_ref(), &path, keyring, require_sigs, progress) {
                Ok(true) => {
                    done = true;
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    // An untrusted narinfo counts as not having the path.
                    delivery_failed |= !matches!(e, SubstituteError::Untrusted { .. });
                    attempts.push(format!("{}: {e}", substituter.uri()));
                }
            }
        }
        if !done && delivery_failed {
            report.substitutes_failed.insert(path.clone());
        }
        if done {
            report.substituted.push(path);
        } else {
            report.failed.push((path.clone(), SubstituteError::NoSubstituter { path: local.print_store_path(&path), attempts }));
        }
    }
    Ok(report)
}

/// What to fetch: the closure of the asked paths that is missing locally,
/// each with its references (and sizes) as the first substituter that knows it
/// says; and the paths no substituter has, with each one's failed attempts.
struct Plan {
    planned: BTreeMap<StorePath, SubstitutablePath>,
    unavailable: BTreeMap<StorePath, Vec<String>>,
}

fn plan(
    local: &dyn Store,
    substituters: &[Substituter],
    paths: &StorePathSet,
    already_valid: &mut Vec<StorePath>,
) -> Result<Plan, SubstituteError> {
    let mut planned = BTreeMap::new();
    let mut unavailable: BTreeMap<StorePath, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut pending: Vec<StorePath> = paths.iter().cloned().collect();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        if local.is_valid_path(&path)? {
            already_valid.push(path);
            continue;
        }
        let mut attempts = Vec::new();
        let mut found = None;
        for substituter in substituters {
            match substituter.query_path_info(&path) {
                Ok(Some(info)) => {
                    let download_size = substituter.download_size(&path).ok().flatten().unwrap_or(0);
                    found = Some(SubstitutablePath { references: info.references, download_size, nar_size: info.nar_size });
                    break;
                }
                Ok(None) => {}
                Err(e) => attempts.push(format!("{}: {e}", substituter.uri())),
            }
        }
        match found {
            Some(info) => {
                pending.extend(info.references.iter().filter(|r| **r != path).cloned());
                planned.insert(path, info);
            }
            None => {
                unavailable.insert(path, attempts);
            }
        }
    }
    Ok(Plan { planned, unavailable })
}

/// What a substituter knows of a path before fetching it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubstitutablePath {
    pub references: StorePathSet,
    /// The compressed NAR's size, 0 if the substituter does not say.
    pub download_size: u64,
    pub nar_size: u64,
}

/// One path from one substituter: `Ok(false)` if it does not have it.
fn substitute_one(
    local: &dyn Store,
    substituter: &(dyn Store + Sync),
    path: &StorePath,
    keyring: &Keyring,
    require_sigs: bool,
    progress: &mut ProgressFn<'_>,
) -> Result<bool, SubstituteError> {
    let Some(mut info) = substituter.query_path_info(path)? else {
        return Ok(false);
    };
    if require_sigs && !check_signatures(local.store_dir(), &info, keyring) {
        return Err(SubstituteError::Untrusted { path: local.print_store_path(path) });
    }
    info.ultimate = false;
    info.registration_time = crate::now();
    transfer_shared(substituter, local, &info, progress)?;
    Ok(true)
}

/// Orders the planned paths so that references come before referrers.
fn references_first(planned: &BTreeMap<StorePath, SubstitutablePath>) -> Vec<StorePath> {
    fn visit(
        path: &StorePath,
        planned: &BTreeMap<StorePath, SubstitutablePath>,
        state: &mut BTreeMap<StorePath, bool>,
        out: &mut Vec<StorePath>,
    ) {
        if state.contains_key(path) {
            return;
        }
        state.insert(path.clone(), false);
        for reference in &planned[path].references {
            if reference != path && planned.contains_key(reference) {
                visit(reference, planned, state, out);
            }
        }
        state.insert(path.clone(), true);
        out.push(path.clone());
    }
    let mut state = BTreeMap::new();
    let mut out = Vec::new();
    for path in planned.keys() {
        visit(path, planned, &mut state, &mut out);
    }
    out
}

/// Read buffer over a pipe: NAR parsers read a few bytes at a time, which
/// would otherwise each be a system call.
const PIPE_BUFFER: usize = 256 * 1024;

/// Counts the bytes the destination has read, for progress.
struct ProgressReader<'a, 'b, R: Read> {
    inner: R,
    path: &'a StorePath,
    source: String,
    done: u64,
    total: u64,
    last_report: u64,
    progress: &'a mut ProgressFn<'b>,
}

impl<'a, 'b, R: Read> ProgressReader<'a, 'b, R> {
    /// Announces the copy of `info.path` from `source` and counts its bytes.
    fn start(inner: R, source: String, info: &'a ValidPathInfo, progress: &'a mut ProgressFn<'b>) -> Self {
        progress(&Progress { path: &info.path, source: &source, done: 0, total: info.nar_size });
        ProgressReader { inner, path: &info.path, source, done: 0, total: info.nar_size, last_report: 0, progress }
    }
}

impl<R: Read> Read for ProgressReader<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        // Report every 1 MiB and at the end, not for every small read.
        if self.done - self.last_report >= 1 << 20 || (n == 0 && self.done != self.last_report) || self.done == self.total {
            self.last_report = self.done;
            (self.progress)(&Progress { path: self.path, source: &self.source, done: self.done, total: self.total });
        }
        Ok(n)
    }
}

/// Streams a NAR from `source` (on a helper thread) into `destination`.
fn transfer_shared(
    source: &(dyn Store + Sync),
    destination: &dyn Store,
    info: &ValidPathInfo,
    progress: &mut ProgressFn<'_>,
) -> Result<(), SubstituteError> {
    let (reader, mut writer) = io::pipe().map_err(|e| SubstituteError::io("creating a pipe", e))?;
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let result = source.nar_from_path(&info.path, &mut writer);
            drop(writer);
            result
        });
        let mut counted =
            ProgressReader::start(io::BufReader::with_capacity(PIPE_BUFFER, reader), source.uri(), info, progress);
        let added = destination.add_nar(info, &mut counted, false);
        // Closing our end lets a producer blocked on a full pipe finish.
        drop(counted);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(StoreError::BadInput(format!("the NAR reader of '{}' panicked", source.print_store_path(&info.path))))
        });
        // The source's error is the cause; the destination then only saw a short NAR.
        produced?;
        added?;
        Ok(())
    })
}

/// Copies a NAR whose files are on disk (a local source), dumping it on a
/// helper thread; else through a temporary file.
fn transfer_any(
    source: &dyn Store,
    destination: &dyn Store,
    info: &ValidPathInfo,
    progress: &mut ProgressFn<'_>,
) -> Result<(), SubstituteError> {
    if let Some(real_path) = source.real_path(&info.path) {
        let (reader, mut writer) = io::pipe().map_err(|e| SubstituteError::io("creating a pipe", e))?;
        return std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let result = nivis_formats::nar::dump_path(&real_path, &mut writer);
                drop(writer);
                result
            });
            let mut counted =
                ProgressReader::start(io::BufReader::with_capacity(PIPE_BUFFER, reader), source.uri(), info, progress);
            let added = destination.add_nar(info, &mut counted, false);
            drop(counted);
            match producer.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(SubstituteError::Store(StoreError::Formats(Box::new(e))));
                }
                Err(_) => return Err(SubstituteError::io("dumping a path", io::Error::other("the NAR writer panicked"))),
            }
            added?;
            Ok(())
        });
    }
    let mut spool = tempfile::tempfile().map_err(|e| SubstituteError::io("creating a temporary file", e))?;
    {
        let mut buffered = io::BufWriter::new(&mut spool);
        source.nar_from_path(&info.path, &mut buffered)?;
        buffered.flush().map_err(|e| SubstituteError::io("writing a temporary file", e))?;
    }
    spool.rewind().map_err(|e| SubstituteError::io("rewinding a temporary file", e))?;
    let mut counted = ProgressReader::start(io::BufReader::new(spool), source.uri(), info, progress);
    destination.add_nar(info, &mut counted, false)?;
    Ok(())
}

/// How [`copy_paths`] treats signatures.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Refuse paths without a valid signature by a key in `keyring` (for a
    /// local destination that requires signatures; `--no-check-sigs` clears it).
    pub check_sigs: bool,
    pub keyring: Keyring,
}

/// What [`copy_paths`] did.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// Copied, references before referrers.
    pub copied: Vec<StorePath>,
    /// Valid at the destination already.
    pub skipped: Vec<StorePath>,
}

/// Copies the closure of `paths` from `source` to `destination` in
/// topological order (references first), skipping paths the destination has.
/// Stops at the first failure; what was copied before stays valid.
pub fn copy_paths(
    source: &dyn Store,
    destination: &dyn Store,
    paths: &StorePathSet,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<CopyReport, SubstituteError> {
    copy_with(source, destination, paths, options, progress, &mut |info, progress| {
        transfer_any(source, destination, info, progress)
    })
}

/// [`copy_paths`] from a source that a helper thread may read (a binary
/// cache): NARs stream straight into the destination.
pub fn copy_paths_shared(
    source: &(dyn Store + Sync),
    destination: &dyn Store,
    paths: &StorePathSet,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<CopyReport, SubstituteError> {
    copy_with(source, destination, paths, options, progress, &mut |info, progress| {
        transfer_shared(source, destination, info, progress)
    })
}

type Transfer<'t> = dyn FnMut(&ValidPathInfo, &mut ProgressFn<'_>) -> Result<(), SubstituteError> + 't;

fn copy_with(
    source: &dyn Store,
    destination: &dyn Store,
    paths: &StorePathSet,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
    transfer: &mut Transfer<'_>,
) -> Result<CopyReport, SubstituteError> {
    for path in paths {
        if !source.is_valid_path(path)? {
            return Err(SubstituteError::NotInSource(source.print_store_path(path)));
        }
    }
    let closure = compute_closure(source, paths, ClosureOptions::default())?;
    let mut order = topo_sort_paths(source, &closure)?;
    order.reverse();
    let mut report = CopyReport::default();
    for path in order {
        if destination.is_valid_path(&path)? {
            report.skipped.push(path);
            continue;
        }
        let mut info = source
            .query_path_info(&path)?
            .ok_or_else(|| SubstituteError::NotInSource(source.print_store_path(&path)))?;
        if options.check_sigs && !check_signatures(destination.store_dir(), &info, &options.keyring) {
            return Err(SubstituteError::Untrusted { path: destination.print_store_path(&path) });
        }
        // Trust ("built here") does not travel with a path.
        info.ultimate = false;
        transfer(&info, progress)?;
        report.copied.push(path);
    }
    Ok(report)
}

/// The configured substituters with the trust settings that go with them:
/// what a build scheduler asks before building (`substituters`,
/// `trusted-public-keys`, `require-sigs`, and `substitute = false` to disable).
pub struct SubstituterSet {
    pub substituters: Vec<Substituter>,
    pub keyring: Keyring,
    pub require_sigs: bool,
}

impl SubstituterSet {
    /// Opens the configured caches; the warnings name caches that were skipped.
    pub fn from_config(config: &Config, settings: &StoreSettings) -> Result<(SubstituterSet, Vec<String>), SubstituteError> {
        // `substitute` defaults to true in CppNix; this configuration table
        // does not list it, so unset means enabled.
        let enabled = !config.is_set("substitute") || config.get_bool("substitute").unwrap_or(true);
        let uris = if enabled { config.get_list("substituters") } else { Vec::new() };
        let (substituters, warnings) = open_substituters(&uris, settings);
        let set = SubstituterSet {
            substituters,
            keyring: trusted_keyring(config)?,
            require_sigs: config.get_bool("require-sigs").unwrap_or(true),
        };
        Ok((set, warnings))
    }

    /// Which of `paths` could be substituted, fetching nothing: every path that
    /// would be fetched (asked paths whose whole missing closure is available,
    /// and that closure), with sizes.
    pub fn query_substitutable(
        &self,
        local: &dyn Store,
        paths: &StorePathSet,
    ) -> Result<BTreeMap<StorePath, SubstitutablePath>, SubstituteError> {
        if self.substituters.is_empty() {
            return Ok(BTreeMap::new());
        }
        let Plan { planned, unavailable } = plan(local, &self.substituters, paths, &mut Vec::new())?;
        // A path is fetchable if it and everything it refers to is.
        let mut answer = BTreeMap::new();
        for path in paths {
            let mut closure = BTreeSet::new();
            let mut stack = vec![path.clone()];
            let mut complete = true;
            while let Some(p) = stack.pop() {
                if unavailable.contains_key(&p) {
                    complete = false;
                    break;
                }
                let Some(info) = planned.get(&p) else { continue };
                if closure.insert(p.clone()) {
                    stack.extend(info.references.iter().filter(|r| **r != p).cloned());
                }
            }
            if complete {
                for p in closure {
                    answer.insert(p.clone(), planned[&p].clone());
                }
            }
        }
        Ok(answer)
    }

    /// Substitutes `paths` (and their closures) into `local`; returns the paths
    /// it made valid. Paths it could not get are simply not in the answer.
    pub fn substitute(
        &self,
        local: &dyn Store,
        paths: &StorePathSet,
        progress: &mut ProgressFn<'_>,
    ) -> Result<StorePathSet, SubstituteError> {
        if self.substituters.is_empty() {
            return Ok(StorePathSet::new());
        }
        let report = substitute_paths(local, &self.substituters, paths, &self.keyring, self.require_sigs, progress)?;
        Ok(report.substituted.into_iter().collect())
    }

    /// [`Self::substitute`] with the whole report (what failed, and whether a
    /// substitute existed), for the `fallback` decision.
    pub fn substitute_report(
        &self,
        local: &dyn Store,
        paths: &StorePathSet,
        progress: &mut ProgressFn<'_>,
    ) -> Result<SubstituteReport, SubstituteError> {
        if self.substituters.is_empty() {
            return Ok(SubstituteReport::default());
        }
        substitute_paths(local, &self.substituters, paths, &self.keyring, self.require_sigs, progress)
    }
}
