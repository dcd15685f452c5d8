//! Substitution (fetching store paths from binary caches into the local store
//! instead of building them) and copying closures between any two stores.
//!
//! NARs stream from source to destination without an intermediate copy when
//! the source can be shared with a helper thread (`dyn Store + Sync`, which
//! binary caches are) or has its files on disk (`real_path`); otherwise they are
//! spooled through a temporary file. Either way the destination's `add_nar`
//! registers nothing unless the whole NAR arrived and checked out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::io::{self, Read, Seek, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use nivis_config::Config;
use nivis_formats::signature::fingerprint;
use nivis_formats::{Keyring, StoreDir, StorePath, StorePathSet};
use nivis_store::{Store, StoreError, StoreSettings, ValidPathInfo};

use crate::binary_cache::BinaryCacheStore;
use crate::error::SubstituteError;

/// Progress of one path's transfer: the path, NAR bytes done, NAR bytes in all
/// (0 when unknown).
pub type ProgressFn<'a> = dyn FnMut(&Progress<'_>) + 'a;

/// Where the copy of one path stands: called once with `done == 0` when it
/// starts, then about every MiB, when it is complete, and a last time with
/// `ended` set when the attempt is over (complete or failed). Several paths
/// may be in flight at once; reports about them interleave, all on the
/// caller's thread.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub path: &'a StorePath,
    /// The URI of the store the path comes from.
    pub source: &'a str,
    /// NAR bytes copied so far, of `total`.
    pub done: u64,
    pub total: u64,
    /// No more reports follow for this attempt at `path`.
    pub ended: bool,
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
    substitute_paths_with_jobs(local, substituters, paths, keyring, require_sigs, DEFAULT_SUBSTITUTION_JOBS, progress)
}

/// How many paths [`substitute_paths`] fetches at once: CppNix's default of
/// `max-substitution-jobs`. Fewer run when fewer are ready.
pub const DEFAULT_SUBSTITUTION_JOBS: usize = 16;

/// [`substitute_paths`] with up to `jobs` paths (narinfo queries, then NAR
/// transfers) in flight at once. A path starts only once every path it refers
/// to is valid, since a store registers a path only after its references; a
/// path whose reference fails is not fetched at all.
pub fn substitute_paths_with_jobs(
    local: &dyn Store,
    substituters: &[Substituter],
    paths: &StorePathSet,
    keyring: &Keyring,
    require_sigs: bool,
    jobs: usize,
    progress: &mut ProgressFn<'_>,
) -> Result<SubstituteReport, SubstituteError> {
    let jobs = jobs.max(1);
    let mut report = SubstituteReport::default();
    let Plan { planned, unavailable } = plan(local, substituters, paths, &mut report.already_valid, jobs)?;
    let references: BTreeMap<StorePath, StorePathSet> =
        planned.iter().map(|(path, info)| (path.clone(), info.references.clone())).collect();
    let unavailable_paths: BTreeSet<StorePath> = unavailable.keys().cloned().collect();
    let mut graph =
        TransferGraph::new(&references, &unavailable_paths, &|path| planned.get(path).map_or(0, |p| p.nar_size));

    let no_substituter = |path: &StorePath, attempts: Vec<String>| {
        (path.clone(), SubstituteError::NoSubstituter { path: local.print_store_path(path), attempts })
    };
    // A path that cannot be had fails every path that needs it, transitively.
    let fail = |report: &mut SubstituteReport, graph: &mut TransferGraph, path: StorePath, attempts: Vec<String>| {
        let dependents = graph.failed(&path);
        report.failed.push(no_substituter(&path, attempts));
        for (referrer, lacking) in dependents {
            let attempts =
                vec![format!("its reference '{}' could not be substituted", local.print_store_path(&lacking))];
            report.failed.push(no_substituter(&referrer, attempts));
        }
    };
    // Paths a substituter has (or could not be asked about) that could not be
    // had: query errors here, delivery errors below (an untrusted narinfo
    // counts as absent, as in CppNix). For `fallback`, see `substitutes_failed`.
    let delivery_failed: Mutex<StorePathSet> =
        Mutex::new(unavailable.iter().filter(|(_, attempts)| !attempts.is_empty()).map(|(p, _)| p.clone()).collect());
    for (path, attempts) in unavailable {
        fail(&mut report, &mut graph, path, attempts);
    }

    // Every substituter in priority order until one provides the path.
    let try_substituters = |destination: &dyn Store, path: &StorePath, progress: &mut ProgressFn<'_>| {
        let mut attempts = Vec::new();
        for substituter in substituters {
            match substitute_one(destination, substituter.as_ref(), path, keyring, require_sigs, progress) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    if !matches!(e, SubstituteError::Untrusted { .. })
                        && let Ok(mut failed) = delivery_failed.lock()
                    {
                        failed.insert(path.clone());
                    }
                    attempts.push(format!("{}: {e}", substituter.uri()));
                }
            }
        }
        Err(attempts)
    };
    let mut finished = |graph: &mut TransferGraph, path: StorePath, outcome: Option<Result<(), Vec<String>>>| {
        match outcome {
            Some(Ok(())) => {
                graph.done(&path);
                report.substituted.push(path);
            }
            Some(Err(attempts)) => fail(&mut report, graph, path, attempts),
            None => fail(&mut report, graph, path, vec!["the transfer panicked".to_string()]),
        }
        true
    };
    match local.as_local() {
        Some(shared_local) if jobs > 1 => run_parallel(
            &mut graph,
            jobs,
            &|path: &StorePath, progress: &mut ProgressFn<'_>| try_substituters(shared_local, path, progress),
            progress,
            &mut finished,
        ),
        _ => run_sequential(
            &mut graph,
            &mut |path: &StorePath, progress: &mut ProgressFn<'_>| try_substituters(local, path, progress),
            progress,
            &mut finished,
        ),
    }
    // Whatever never became ready is part of a reference cycle.
    for path in graph.take_stuck() {
        let attempts = vec!["it is part of a reference cycle".to_string()];
        report.failed.push(no_substituter(&path, attempts));
    }
    let delivery_failed = delivery_failed.lock().map(|failed| failed.clone()).unwrap_or_default();
    report.substitutes_failed = substitutes_failed(&report, &references, delivery_failed);
    Ok(report)
}

/// Of the paths that failed: those whose substitute could not be delivered
/// (or not even asked about), and those that failed because such a path is
/// among their references (CppNix's "substituter failed", which `fallback`
/// decides on). A path that failed only because nobody has a reference of it
/// is not one.
fn substitutes_failed(
    report: &SubstituteReport,
    references: &BTreeMap<StorePath, StorePathSet>,
    delivery_failed: StorePathSet,
) -> StorePathSet {
    let failed: BTreeSet<&StorePath> = report.failed.iter().map(|(path, _)| path).collect();
    let mut answer: StorePathSet = delivery_failed.into_iter().filter(|path| failed.contains(path)).collect();
    loop {
        let before = answer.len();
        for path in &failed {
            let lacks_failed_reference =
                references.get(*path).is_some_and(|refs| refs.iter().any(|r| r != *path && answer.contains(r)));
            if lacks_failed_reference {
                answer.insert((*path).clone());
            }
        }
        if answer.len() == before {
            return answer;
        }
    }
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
    jobs: usize,
) -> Result<Plan, SubstituteError> {
    let mut planned = BTreeMap::new();
    let mut unavailable: BTreeMap<StorePath, Vec<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut frontier: Vec<StorePath> = paths.iter().cloned().collect();
    // One level of references at a time, its narinfo queries in parallel:
    // against an HTTP cache each is a round trip.
    while !frontier.is_empty() {
        let mut to_query = Vec::new();
        for path in std::mem::take(&mut frontier) {
            if !seen.insert(path.clone()) {
                continue;
            }
            if local.is_valid_path(&path)? {
                already_valid.push(path);
            } else {
                to_query.push(path);
            }
        }
        let answers = map_parallel(&to_query, jobs, |path| {
            let mut attempts = Vec::new();
            for substituter in substituters {
                match substituter.query_path_info(path) {
                    Ok(Some(info)) => {
                        let download_size = substituter.download_size(path).ok().flatten().unwrap_or(0);
                        let found =
                            SubstitutablePath { references: info.references, download_size, nar_size: info.nar_size };
                        return Ok(found);
                    }
                    Ok(None) => {}
                    Err(e) => attempts.push(format!("{}: {e}", substituter.uri())),
                }
            }
            Err(attempts)
        });
        for (path, answer) in to_query.into_iter().zip(answers) {
            match answer {
                Ok(info) => {
                    frontier.extend(info.references.iter().filter(|r| **r != path && !seen.contains(*r)).cloned());
                    planned.insert(path, info);
                }
                Err(attempts) => {
                    unavailable.insert(path, attempts);
                }
            }
        }
    }
    Ok(Plan { planned, unavailable })
}

/// `f` over every item, on up to `jobs` threads when there is more than one
/// item; the answers in the items' order.
fn map_parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = jobs.min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let answers: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let answer = f(item);
                    *answers[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                }
            });
        }
    });
    answers
        .into_iter()
        .zip(items)
        .map(|(answer, item)| match answer.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(answer) => answer,
            // Only a panicking `f` leaves a hole; do that item again here so
            // the panic surfaces on the caller's thread.
            None => f(item),
        })
        .collect()
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

/// Bytes per chunk of a [`chunk_pipe`], and chunks in flight at most.
const CHUNK_SIZE: usize = 256 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// A pipe within the process, from a NAR's producer thread to its consumer:
/// the bytes travel in chunks over a bounded channel and emptied chunks come
/// back for reuse. Unlike a kernel pipe, no system call or copy through the
/// kernel per 64 KiB (about a tenth of the CPU time of a zstd substitution),
/// and the consumer's small reads (NAR parsers read a few bytes at a time)
/// are plain copies out of the current chunk. The reader sees the end of the
/// stream when the writer is dropped (its last chunk is sent then); the
/// writer gets `BrokenPipe` once the reader is dropped.
fn chunk_pipe() -> (ChunkWriter, ChunkReader) {
    let (full_sender, full_receiver) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (empty_sender, empty_receiver) = mpsc::channel();
    let writer = ChunkWriter { chunk: Vec::new(), full: full_sender, empty: empty_receiver };
    let reader = ChunkReader { chunk: Vec::new(), position: 0, full: full_receiver, empty: empty_sender };
    (writer, reader)
}

struct ChunkWriter {
    chunk: Vec<u8>,
    full: mpsc::SyncSender<Vec<u8>>,
    empty: mpsc::Receiver<Vec<u8>>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self.empty.try_recv().unwrap_or_default();
        let full = std::mem::replace(&mut self.chunk, next);
        self.full
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the NAR's consumer stopped reading"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.chunk.capacity() < CHUNK_SIZE {
            self.chunk.reserve_exact(CHUNK_SIZE - self.chunk.len());
        }
        let taken = buf.len().min(CHUNK_SIZE - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..taken]);
        if self.chunk.len() == CHUNK_SIZE {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        // A consumer that stopped reading needs no more.
        let _ = self.send();
    }
}

struct ChunkReader {
    chunk: Vec<u8>,
    position: usize,
    full: mpsc::Receiver<Vec<u8>>,
    empty: mpsc::Sender<Vec<u8>>,
}

impl io::BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.position == self.chunk.len() {
            // A closed channel is the end of the stream.
            let Ok(next) = self.full.recv() else { return Ok(&[]) };
            let mut used = std::mem::replace(&mut self.chunk, next);
            self.position = 0;
            used.clear();
            // The writer may be gone; the chunk is then simply freed.
            let _ = self.empty.send(used);
        }
        Ok(&self.chunk[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        self.position = (self.position + amount).min(self.chunk.len());
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = io::BufRead::fill_buf(self)?;
        let copied = available.len().min(buf.len());
        buf[..copied].copy_from_slice(&available[..copied]);
        io::BufRead::consume(self, copied);
        Ok(copied)
    }
}

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
        progress(&Progress { path: &info.path, source: &source, done: 0, total: info.nar_size, ended: false });
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
            (self.progress)(&Progress {
                path: self.path,
                source: &self.source,
                done: self.done,
                total: self.total,
                ended: false,
            });
        }
        Ok(n)
    }
}

impl<R: Read> Drop for ProgressReader<'_, '_, R> {
    fn drop(&mut self) {
        (self.progress)(&Progress { path: self.path, source: &self.source, done: self.done, total: self.total, ended: true });
    }
}

/// Streams a NAR from `source` (on a helper thread) into `destination`.
fn transfer_shared(
    source: &(dyn Store + Sync),
    destination: &dyn Store,
    info: &ValidPathInfo,
    progress: &mut ProgressFn<'_>,
) -> Result<(), SubstituteError> {
    let (mut writer, reader) = chunk_pipe();
    let destination_checks_hash = destination.as_local().is_some();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            // A local store's `add_nar` hashes the NAR to compare it with
            // `info.nar_hash`; the source needs not hash it too.
            let result = if destination_checks_hash {
                source.nar_from_path_for_checking_consumer(&info.path, &mut writer)
            } else {
                source.nar_from_path(&info.path, &mut writer)
            };
            drop(writer);
            result
        });
        let mut counted = ProgressReader::start(reader, source.uri(), info, progress);
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
        let (mut writer, reader) = chunk_pipe();
        return std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let result = nivis_formats::nar::dump_path(&real_path, &mut writer);
                drop(writer);
                result
            });
            let mut counted = ProgressReader::start(reader, source.uri(), info, progress);
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

/// Copies the closure of `paths` from `source` to `destination`, references
/// before referrers, skipping paths the destination has. Between two local
/// stores that threads may share (local stores, binary caches: see [`shared`])
/// up to [`default_copy_jobs`] paths are copied at once, which for a cache
/// means as many NARs compressed at once. Stops starting copies at the first
/// failure; what was copied before stays valid.
pub fn copy_paths(
    source: &dyn Store,
    destination: &dyn Store,
    paths: &StorePathSet,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<CopyReport, SubstituteError> {
    let infos = closure_infos(source, paths)?;
    let transfer = |source: &dyn Store, destination: &dyn Store, info: &ValidPathInfo, progress: &mut ProgressFn<'_>| {
        transfer_any(source, destination, info, progress)
    };
    match (shared(source), shared(destination)) {
        (Some(shared_source), Some(shared_destination)) => copy_infos(
            infos,
            destination,
            options,
            progress,
            Driver::Parallel(default_copy_jobs(), &|info, progress| {
                transfer(shared_source, shared_destination, info, progress)
            }),
        ),
        _ => copy_infos(
            infos,
            destination,
            options,
            progress,
            Driver::Sequential(&mut |info, progress| transfer(source, destination, info, progress)),
        ),
    }
}

/// [`copy_paths`] from a source that helper threads may read (a binary
/// cache): NARs stream straight into the destination, and into one that
/// threads may share up to [`default_copy_jobs`] at once. The closure's path infos
/// (narinfos) are queried in parallel too.
pub fn copy_paths_shared(
    source: &(dyn Store + Sync),
    destination: &dyn Store,
    paths: &StorePathSet,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<CopyReport, SubstituteError> {
    let jobs = default_copy_jobs();
    let infos = closure_infos_shared(source, paths, jobs.max(DEFAULT_SUBSTITUTION_JOBS))?;
    match shared(destination) {
        Some(shared_destination) => copy_infos(
            infos,
            destination,
            options,
            progress,
            Driver::Parallel(jobs, &|info, progress| transfer_shared(source, shared_destination, info, progress)),
        ),
        None => copy_infos(
            infos,
            destination,
            options,
            progress,
            Driver::Sequential(&mut |info, progress| transfer_shared(source, destination, info, progress)),
        ),
    }
}

/// `store` as one that several threads may use at once, if it is one.
fn shared(store: &dyn Store) -> Option<&(dyn Store + Sync)> {
    match store.as_local() {
        Some(local) => Some(local),
        None => store.as_shared(),
    }
}

/// How many paths a copy moves at once: one per core, as CppNix's thread pool.
pub fn default_copy_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The infos of the closure of `paths` in `source`.
fn closure_infos(source: &dyn Store, paths: &StorePathSet) -> Result<BTreeMap<StorePath, ValidPathInfo>, SubstituteError> {
    let mut infos = BTreeMap::new();
    let mut pending: Vec<StorePath> = paths.iter().cloned().collect();
    while let Some(path) = pending.pop() {
        if infos.contains_key(&path) {
            continue;
        }
        let info = source.query_path_info(&path)?.ok_or_else(|| SubstituteError::NotInSource(source.print_store_path(&path)))?;
        pending.extend(info.references.iter().filter(|r| !infos.contains_key(*r)).cloned());
        infos.insert(path, info);
    }
    Ok(infos)
}

/// [`closure_infos`] with each level of references queried in parallel.
fn closure_infos_shared(
    source: &(dyn Store + Sync),
    paths: &StorePathSet,
    jobs: usize,
) -> Result<BTreeMap<StorePath, ValidPathInfo>, SubstituteError> {
    let mut infos = BTreeMap::new();
    let mut frontier: Vec<StorePath> = paths.iter().cloned().collect();
    while !frontier.is_empty() {
        frontier.sort();
        frontier.dedup();
        let answers = map_parallel(&frontier, jobs, |path| source.query_path_info(path));
        for (path, answer) in std::mem::take(&mut frontier).into_iter().zip(answers) {
            let info = answer?.ok_or_else(|| SubstituteError::NotInSource(source.print_store_path(&path)))?;
            frontier.extend(info.references.iter().filter(|r| **r != path && !infos.contains_key(*r)).cloned());
            infos.insert(path, info);
        }
        frontier.retain(|p| !infos.contains_key(p));
    }
    Ok(infos)
}

/// How [`copy_infos`] runs transfers: on helper threads (the destination can
/// be shared), or one after the other on this thread.
enum Driver<'d> {
    Parallel(usize, &'d (dyn Fn(&ValidPathInfo, &mut ProgressFn<'_>) -> Result<(), SubstituteError> + Sync)),
    Sequential(&'d mut dyn FnMut(&ValidPathInfo, &mut ProgressFn<'_>) -> Result<(), SubstituteError>),
}

fn copy_infos(
    mut infos: BTreeMap<StorePath, ValidPathInfo>,
    destination: &dyn Store,
    options: &CopyOptions,
    progress: &mut ProgressFn<'_>,
    driver: Driver<'_>,
) -> Result<CopyReport, SubstituteError> {
    let mut report = CopyReport::default();
    for (path, info) in infos.iter_mut() {
        if destination.is_valid_path(path)? {
            report.skipped.push(path.clone());
            continue;
        }
        if options.check_sigs && !check_signatures(destination.store_dir(), info, &options.keyring) {
            return Err(SubstituteError::Untrusted { path: destination.print_store_path(path) });
        }
        // Trust ("built here") does not travel with a path.
        info.ultimate = false;
    }
    for path in &report.skipped {
        infos.remove(path);
    }
    let references: BTreeMap<StorePath, StorePathSet> =
        infos.iter().map(|(path, info)| (path.clone(), info.references.clone())).collect();
    let mut graph = TransferGraph::new(&references, &BTreeSet::new(), &|path| infos.get(path).map_or(0, |i| i.nar_size));
    let mut first_error = None;
    let mut finished = |graph: &mut TransferGraph, path: StorePath, outcome: Option<Result<(), SubstituteError>>| {
        match outcome {
            Some(Ok(())) => {
                graph.done(&path);
                report.copied.push(path);
                true
            }
            Some(Err(error)) => {
                first_error.get_or_insert(error);
                false
            }
            None => {
                let message = format!("copying '{}' panicked", destination.print_store_path(&path));
                first_error.get_or_insert(SubstituteError::io(message, io::Error::other("panic")));
                false
            }
        }
    };
    match driver {
        Driver::Parallel(jobs, transfer) => {
            run_parallel(&mut graph, jobs, &|path: &StorePath, progress: &mut ProgressFn<'_>| transfer(&infos[path], progress), progress, &mut finished)
        }
        Driver::Sequential(transfer) => {
            run_sequential(&mut graph, &mut |path: &StorePath, progress: &mut ProgressFn<'_>| transfer(&infos[path], progress), progress, &mut finished)
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    if let Some(path) = graph.take_stuck().into_iter().next() {
        return Err(SubstituteError::Store(StoreError::BadInput(format!(
            "cycle detected in the references of '{}'",
            destination.print_store_path(&path)
        ))));
    }
    Ok(report)
}

/// The paths still to transfer and the order they may start in: a path is
/// ready once every path it refers to (among those being transferred) is
/// done, since a store registers a path only after its references. Of the
/// ready paths the largest NAR starts first, so that a big path does not
/// start last and run alone at the end.
struct TransferGraph {
    /// Paths not ready yet, with how many of their references are not done.
    waiting: BTreeMap<StorePath, usize>,
    /// For each path, the paths waiting on it.
    referrers: BTreeMap<StorePath, Vec<StorePath>>,
    /// Ready paths by NAR size, largest first (then in path order).
    ready: BinaryHeap<(u64, Reverse<StorePath>)>,
    nar_sizes: BTreeMap<StorePath, u64>,
}

impl TransferGraph {
    /// `references` are the paths to transfer with their references; a
    /// reference in `missing` will never be done (its referrers wait until
    /// [`TransferGraph::failed`] removes them).
    fn new(
        references: &BTreeMap<StorePath, StorePathSet>,
        missing: &BTreeSet<StorePath>,
        nar_size: &dyn Fn(&StorePath) -> u64,
    ) -> TransferGraph {
        let mut graph = TransferGraph {
            waiting: BTreeMap::new(),
            referrers: BTreeMap::new(),
            ready: BinaryHeap::new(),
            nar_sizes: references.keys().map(|path| (path.clone(), nar_size(path))).collect(),
        };
        for (path, path_references) in references {
            let mut count = 0;
            for reference in path_references {
                if reference != path && (references.contains_key(reference) || missing.contains(reference)) {
                    graph.referrers.entry(reference.clone()).or_default().push(path.clone());
                    count += 1;
                }
            }
            if count == 0 {
                graph.make_ready(path.clone());
            } else {
                graph.waiting.insert(path.clone(), count);
            }
        }
        graph
    }

    fn make_ready(&mut self, path: StorePath) {
        let size = self.nar_sizes.get(&path).copied().unwrap_or(0);
        self.ready.push((size, Reverse(path)));
    }

    fn next_ready(&mut self) -> Option<StorePath> {
        self.ready.pop().map(|(_, Reverse(path))| path)
    }

    /// `path` is valid now: referrers that waited only on it become ready.
    fn done(&mut self, path: &StorePath) {
        for referrer in self.referrers.remove(path).unwrap_or_default() {
            if let Some(count) = self.waiting.get_mut(&referrer) {
                *count -= 1;
                if *count == 0 {
                    self.waiting.remove(&referrer);
                    self.make_ready(referrer);
                }
            }
        }
    }

    /// `path` will not become valid: every path that needs it, directly or
    /// not, is dropped; returned each with the reference it lacks.
    fn failed(&mut self, path: &StorePath) -> Vec<(StorePath, StorePath)> {
        let mut dropped = Vec::new();
        let mut stack = vec![path.clone()];
        while let Some(lacking) = stack.pop() {
            for referrer in self.referrers.remove(&lacking).unwrap_or_default() {
                if self.waiting.remove(&referrer).is_some() {
                    dropped.push((referrer.clone(), lacking.clone()));
                    stack.push(referrer);
                }
            }
        }
        dropped
    }

    /// Once nothing runs: the paths that can never start (a reference cycle).
    fn take_stuck(&mut self) -> Vec<StorePath> {
        std::mem::take(&mut self.waiting).into_keys().collect()
    }
}

/// What a transfer thread tells the thread that runs the graph.
enum Event<R> {
    Progress { path: StorePath, source: String, done: u64, total: u64, ended: bool },
    /// `None` if the transfer panicked.
    Finished { path: StorePath, outcome: Option<R> },
}

/// Runs `transfer` for every path of `graph` as it becomes ready, up to `jobs`
/// at once, each on its own thread. This thread relays progress (so the
/// callback needs not be `Send`) and hands each outcome to `finished`, which
/// updates the graph and says whether to start more transfers (running ones
/// always complete).
fn run_parallel<R: Send>(
    graph: &mut TransferGraph,
    jobs: usize,
    transfer: &(dyn Fn(&StorePath, &mut ProgressFn<'_>) -> R + Sync),
    progress: &mut ProgressFn<'_>,
    finished: &mut dyn FnMut(&mut TransferGraph, StorePath, Option<R>) -> bool,
) {
    let (sender, receiver) = mpsc::channel::<Event<R>>();
    std::thread::scope(|scope| {
        let mut running = 0;
        let mut go_on = true;
        loop {
            while go_on && running < jobs {
                let Some(path) = graph.next_ready() else { break };
                running += 1;
                let sender = sender.clone();
                scope.spawn(move || {
                    let mut relay = |p: &Progress<'_>| {
                        let _ = sender.send(Event::Progress {
                            path: p.path.clone(),
                            source: p.source.to_string(),
                            done: p.done,
                            total: p.total,
                            ended: p.ended,
                        });
                    };
                    let outcome =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transfer(&path, &mut relay))).ok();
                    let _ = sender.send(Event::Finished { path, outcome });
                });
            }
            if running == 0 {
                break;
            }
            // This thread holds a sender, so the channel never closes here.
            let Ok(event) = receiver.recv() else { break };
            match event {
                Event::Progress { path, source, done, total, ended } => {
                    progress(&Progress { path: &path, source: &source, done, total, ended });
                }
                Event::Finished { path, outcome } => {
                    running -= 1;
                    go_on &= finished(graph, path, outcome);
                }
            }
        }
    });
}

/// [`run_parallel`] with one transfer at a time on this thread, for a
/// destination that cannot be shared between threads.
fn run_sequential<R>(
    graph: &mut TransferGraph,
    transfer: &mut dyn FnMut(&StorePath, &mut ProgressFn<'_>) -> R,
    progress: &mut ProgressFn<'_>,
    finished: &mut dyn FnMut(&mut TransferGraph, StorePath, Option<R>) -> bool,
) {
    while let Some(path) = graph.next_ready() {
        let outcome = transfer(&path, progress);
        if !finished(graph, path, Some(outcome)) {
            break;
        }
    }
}

/// The configured substituters with the trust settings that go with them:
/// what a build scheduler asks before building (`substituters`,
/// `trusted-public-keys`, `require-sigs`, and `substitute = false` to disable).
pub struct SubstituterSet {
    pub substituters: Vec<Substituter>,
    pub keyring: Keyring,
    pub require_sigs: bool,
    /// Paths fetched at once (`max-substitution-jobs`, default 16).
    pub jobs: usize,
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
            jobs: config
                .get_u64("max-substitution-jobs")
                .ok()
                .flatten()
                .map_or(DEFAULT_SUBSTITUTION_JOBS, |jobs| usize::try_from(jobs).unwrap_or(usize::MAX).max(1)),
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
        let Plan { planned, unavailable } = plan(local, &self.substituters, paths, &mut Vec::new(), self.jobs)?;
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
        let report = substitute_paths_with_jobs(
            local,
            &self.substituters,
            paths,
            &self.keyring,
            self.require_sigs,
            self.jobs,
            progress,
        )?;
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
