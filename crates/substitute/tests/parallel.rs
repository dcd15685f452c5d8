//! Several paths substituted at once: a diamond-shaped closure (`base`, then
//! `left` and `right` together, then `top`) arrives whole and in a valid
//! order, and a corrupted NAR in the middle registers neither that path nor
//! anything that refers to it, while independent paths still arrive.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use common::*;
use nivis_formats::{HashAlgorithm, Keyring, StoreDir, StorePath, StorePathSet};
use nivis_store::{LocalStore, Store, StoreError, ValidPathInfo};
use nivis_substitute::{BinaryCacheStore, CopyOptions, Progress, Substituter, copy_paths, substitute_paths_with_jobs};

/// An input-addressed path name for `name` (no content address: the hash
/// part only has to be unique).
fn output_path(name: &str) -> StorePath {
    let digest = nivis_formats::Hash::of_bytes(HashAlgorithm::Sha256, format!("parallel:{name}").as_bytes());
    let compressed: [u8; 20] = nivis_formats::compress_hash(digest.digest(), 20).try_into().unwrap();
    StorePath::from_digest(&compressed, name).unwrap()
}

/// Bytes that compress poorly, so that NARs take a moment to move.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Registers `name` in `store`: a directory with a data file of `size` bytes
/// and a file naming each reference, as a build output would.
fn add_path(store: &LocalStore, name: &str, size: usize, references: &[&StorePath]) -> StorePath {
    let path = output_path(name);
    let real = store.config().real_store_dir.join(path.base_name());
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("data"), noise(size as u64 ^ name.len() as u64, size)).unwrap();
    let uses: String = references.iter().map(|r| format!("/nix/store/{}\n", r.base_name())).collect();
    std::fs::write(real.join("uses"), uses).unwrap();
    let (nar_hash, nar_size) = nivis_formats::nar::hash_path(&real, HashAlgorithm::Sha256).unwrap();
    let mut info = ValidPathInfo::new(path.clone(), nar_hash, nar_size);
    info.references = references.iter().map(|r| (*r).clone()).collect();
    store.register_valid_paths(&[info]).unwrap();
    path
}

/// The closure `base <- left, right <- top`, and `lone` beside it.
struct Closure {
    base: StorePath,
    left: StorePath,
    right: StorePath,
    top: StorePath,
    lone: StorePath,
}

impl Closure {
    fn new(source: &LocalStore) -> Closure {
        std::fs::create_dir_all(&source.config().real_store_dir).unwrap();
        let base = add_path(source, "base", 100_000, &[]);
        let left = add_path(source, "left", 2_000_000, &[&base]);
        let right = add_path(source, "right", 2_000_000, &[&base]);
        let top = add_path(source, "top", 10_000, &[&left, &right]);
        let lone = add_path(source, "lone", 10_000, &[]);
        Closure { base, left, right, top, lone }
    }

    fn all(&self) -> Vec<StorePath> {
        vec![self.base.clone(), self.left.clone(), self.right.clone(), self.top.clone(), self.lone.clone()]
    }
}

/// Writes the closure into a `file://` cache with `compression`.
fn write_cache(tmp: &Path, source: &LocalStore, closure: &Closure, compression: &str) -> (PathBuf, String) {
    let dir = tmp.join(format!("cache-{compression}"));
    let uri = format!("file://{}", dir.display());
    let cache = BinaryCacheStore::open(&format!("{uri}?compression={compression}"), &settings()).unwrap();
    copy_paths(source, &cache, &set(&closure.all()), &CopyOptions::default(), &mut |_| {}).unwrap();
    (dir, uri)
}

/// A cache whose NARs for the `together` paths are held back until all of
/// them have been asked for: a run that fetched them one at a time would
/// wait in vain (and fail after a timeout instead of hanging).
struct Rendezvous {
    inner: BinaryCacheStore,
    together: StorePathSet,
    arrived: Mutex<usize>,
    all_arrived: Condvar,
}

impl Store for Rendezvous {
    fn store_dir(&self) -> &StoreDir {
        self.inner.store_dir()
    }

    fn uri(&self) -> String {
        self.inner.uri()
    }

    fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError> {
        self.inner.query_path_info(path)
    }

    fn add_nar(&self, info: &ValidPathInfo, nar: &mut dyn Read, repair: bool) -> Result<(), StoreError> {
        self.inner.add_nar(info, nar, repair)
    }

    fn nar_from_path(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        if self.together.contains(path) {
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.all_arrived.notify_all();
            let (arrived, timeout) = self
                .all_arrived
                .wait_timeout_while(arrived, Duration::from_secs(30), |n| *n < self.together.len())
                .unwrap();
            if timeout.timed_out() {
                return Err(StoreError::BadInput(format!("only {} of the paths were fetched at once", *arrived)));
            }
        }
        self.inner.nar_from_path(path, sink)
    }
}

/// Every valid path's references are valid too, and no unregistered entry
/// (a half-written path or temporary) is left in the store directory.
fn assert_consistent(store: &LocalStore) {
    let valid = store.query_all_valid_paths().unwrap();
    for path in &valid {
        let info = store.query_path_info(path).unwrap().unwrap();
        for reference in &info.references {
            assert!(valid.contains(reference), "{path} is valid but its reference {reference} is not");
        }
    }
    for entry in std::fs::read_dir(&store.config().real_store_dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || name == ".links" {
            continue;
        }
        assert!(valid.iter().any(|p| p.base_name() == name), "unregistered '{name}' left in the store");
    }
}

#[test]
fn a_diamond_closure_substitutes_in_parallel() {
    let tmp = tempfile::tempdir().unwrap();
    let source_root = tmp.path().join("source");
    let source = open_local(&source_root);
    let closure = Closure::new(&source);
    let (_, uri) = write_cache(tmp.path(), &source, &closure, "xz");
    let rendezvous = Rendezvous {
        inner: BinaryCacheStore::open(&uri, &settings()).unwrap(),
        together: set(&[closure.left.clone(), closure.right.clone()]),
        arrived: Mutex::new(0),
        all_arrived: Condvar::new(),
    };
    let substituters: Vec<Substituter> = vec![Box::new(rendezvous)];

    let destination_root = tmp.path().join("destination");
    let destination = open_local(&destination_root);
    // Which transfers were in flight when each one started.
    let mut in_flight = StorePathSet::new();
    let mut overlaps: BTreeMap<StorePath, StorePathSet> = BTreeMap::new();
    let mut progress = |p: &Progress<'_>| {
        if p.ended {
            in_flight.remove(p.path);
        } else if p.done == 0 && in_flight.insert(p.path.clone()) {
            overlaps.insert(p.path.clone(), in_flight.clone());
        }
    };
    let report = substitute_paths_with_jobs(
        &destination,
        &substituters,
        &set(&[closure.top.clone(), closure.lone.clone()]),
        &Keyring::new(),
        false,
        4,
        &mut progress,
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(set(&report.substituted), set(&closure.all()));
    // Each path was registered after its references.
    for (index, path) in report.substituted.iter().enumerate() {
        let info = destination.query_path_info(path).unwrap().unwrap();
        for reference in info.references.iter().filter(|r| *r != path) {
            assert!(report.substituted[..index].contains(reference), "{path} came before its reference {reference}");
        }
    }
    assert!(overlaps[&closure.right].contains(&closure.left) || overlaps[&closure.left].contains(&closure.right));
    assert!(in_flight.is_empty(), "every transfer reported its end: {in_flight:?}");
    assert_consistent(&destination);
    for path in closure.all() {
        assert_eq!(cppnix_hash(&destination_root, &printed(&path)), cppnix_hash(&source_root, &printed(&path)));
    }
}

#[test]
fn a_corrupted_nar_in_the_middle_registers_nothing_that_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let source = open_local(&tmp.path().join("source"));
    let closure = Closure::new(&source);
    let (dir, uri) = write_cache(tmp.path(), &source, &closure, "none");
    // Flip one byte inside the data file of `left`'s NAR: it still parses.
    let narinfo = std::fs::read_to_string(dir.join(format!("{}.narinfo", closure.left.hash_part()))).unwrap();
    let url = narinfo.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    let nar_file = dir.join(url);
    let mut nar = std::fs::read(&nar_file).unwrap();
    let middle = nar.len() / 2;
    nar[middle] ^= 0x55;
    std::fs::write(&nar_file, nar).unwrap();

    let destination = open_local(&tmp.path().join("destination"));
    let substituters: Vec<Substituter> = vec![Box::new(BinaryCacheStore::open(&uri, &settings()).unwrap())];
    let report = substitute_paths_with_jobs(
        &destination,
        &substituters,
        &set(&[closure.top.clone(), closure.lone.clone()]),
        &Keyring::new(),
        false,
        4,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(set(&report.substituted), set(&[closure.base.clone(), closure.right.clone(), closure.lone.clone()]));
    let failed: BTreeMap<StorePath, String> = report.failed.iter().map(|(p, e)| (p.clone(), e.to_string())).collect();
    assert_eq!(failed.keys().cloned().collect::<StorePathSet>(), set(&[closure.left.clone(), closure.top.clone()]));
    let left_error = &failed[&closure.left];
    assert!(left_error.contains("hash mismatch") && left_error.contains(&printed(&closure.left)), "{left_error}");
    let top_error = &failed[&closure.top];
    assert!(top_error.contains(&format!("its reference '{}' could not be substituted", printed(&closure.left))), "{top_error}");
    for path in [&closure.left, &closure.top] {
        assert!(!destination.is_valid_path(path).unwrap(), "{path} registered");
    }
    assert_consistent(&destination);
}

#[test]
fn the_largest_ready_path_starts_first() {
    let tmp = tempfile::tempdir().unwrap();
    let source = open_local(&tmp.path().join("source"));
    let closure = Closure::new(&source);
    let (_, uri) = write_cache(tmp.path(), &source, &closure, "zstd");
    let destination = open_local(&tmp.path().join("destination"));
    let substituters: Vec<Substituter> = vec![Box::new(BinaryCacheStore::open(&uri, &settings()).unwrap())];
    // One at a time, so that the order is the scheduler's alone.
    let report = substitute_paths_with_jobs(
        &destination,
        &substituters,
        &set(&[closure.top.clone(), closure.lone.clone()]),
        &Keyring::new(),
        false,
        1,
        &mut |_| {},
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let position = |path: &StorePath| report.substituted.iter().position(|p| p == path).unwrap();
    // `base` (100 kB) before `lone` (10 kB), which waits until the 2 MB
    // `left` and `right` that `base` made ready have started.
    assert_eq!(position(&closure.base), 0);
    assert!(position(&closure.lone) > position(&closure.left).max(position(&closure.right)));
    assert_consistent(&destination);
}
