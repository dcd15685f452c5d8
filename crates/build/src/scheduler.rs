//! The scheduler: realise the outputs of derivations in a store, building
//! what is missing in dependency order, up to `max-jobs` builders at once.
//!
//! The flow of [`realise`]:
//! 1. Walk the derivation graph from the requested `(drv, outputs)` pairs,
//!    layer by layer. A derivation whose wanted outputs are all valid is done
//!    and its inputs are not visited. The missing outputs of a layer are first
//!    offered to the [`Substituter`] hook (binary caches, later); only what it
//!    cannot provide is built, and only then are the inputs visited.
//! 2. Derivations whose inputs are all realised are started, at most
//!    `max_jobs` at a time. Starting one happens on the calling thread, which
//!    owns the store: take the output locks (another process building the same
//!    output makes us wait, then we see its outputs valid and reuse them),
//!    delete stale invalid outputs, compute the input closure, record temporary
//!    roots. The builder itself runs on a worker thread ([`crate::run_build`],
//!    then [`crate::BuildOutcome::finish_outputs`] and making the outputs
//!    durable, `outputs::sync_outputs`), which needs no store.
//! 3. Back on the calling thread: fixed-output hashes and the
//!    `allowedReferences`-style constraints are checked, then every output is
//!    registered (NAR hash and size, references, deriver, `ultimate`, content
//!    address for fixed outputs) in one transaction, and only then the locks
//!    are released. A process killed before that leaves unregistered files,
//!    which the next build deletes before starting.
//!
//! Logs are written bzip2-compressed to `<log dir>/drvs/<2 chars>/<rest>.bz2`
//! as CppNix does, so `nix log` and `nix-store --read-log` find them; the
//! last ten lines are kept for the failure message.
//!
//! `--check` and `--repair` ([`BuildSettings::check`], [`BuildSettings::repair`])
//! rebuild outputs that are already valid. The sandbox builds them in its own
//! store directory, so the valid paths are never touched while the builder
//! runs; the worker moves each new output next to its valid path
//! (`<path>.check`, `<path>.repair`), and the calling thread compares NAR
//! hashes (check) or swaps the new output in and re-registers it (repair).
//!
//! Assumptions: the store is a local store (its real directory is where
//! builds put their outputs); `.drv` files are read from the real store
//! directory; only input-addressed and fixed-output derivations are built
//! (not floating content-addressed ones).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nivis_formats::{
    ContentAddress, Derivation, DerivationOutput, FileIngestionMethod, Hash, Hasher, StoreDir, StorePath,
    StorePathSet,
};
use nivis_store::{ClosureOptions, PathLock, Store, StoreError, ValidPathInfo, compute_closure};

use crate::{BuildError, BuildRequest, BuildStatus, BuildUser, FinishedOutput, InputPathInfo, SandboxPath, run_build};

/// The settings that shape a realisation (CppNix's names in brackets).
#[derive(Clone, Debug)]
pub struct BuildSettings {
    /// Builders running at once (`max-jobs`, `-j`); 0 means build nothing
    /// locally.
    pub max_jobs: usize,
    /// `NIX_BUILD_CORES` (`cores`, `--cores`); 0 means all of the machine's.
    pub cores: u32,
    /// Wall-clock limit of one build (`timeout`).
    pub timeout: Option<Duration>,
    /// Limit on time without log output (`max-silent-time`).
    pub max_silent_time: Option<Duration>,
    /// `max-build-log-size`, in bytes.
    pub max_log_size: Option<u64>,
    /// Continue with other builds after one failed (`keep-going`, `-k`).
    pub keep_going: bool,
    /// Keep the build directory of failed builds (`keep-failed`, `-K`).
    pub keep_failed: bool,
    /// The `sandbox` setting.
    pub sandbox: bool,
    /// `sandbox-paths` and `extra-sandbox-paths`.
    pub sandbox_paths: Vec<SandboxPath>,
    /// Where build directories are created (`build-dir`, `$TMPDIR`).
    pub tmp_root: PathBuf,
    /// Copy build logs to stderr as they come (`-L`, and the legacy commands).
    pub print_build_logs: bool,
    /// Prefix streamed log lines with the derivation name (`nix build -L`).
    pub prefix_log_lines: bool,
    /// Keep compressed logs in the store's log directory (`keep-build-log`).
    pub keep_build_log: bool,
    /// Rebuild the requested derivations whose outputs are valid and compare
    /// the NAR hashes (`--check`; `nix build --rebuild`).
    pub check: bool,
    /// Rebuild outputs whose contents no longer match their registered NAR
    /// hash, and replace them (`--repair`).
    pub repair: bool,
    /// Build a derivation whose outputs have substitutes that failed to
    /// download (`fallback`, `--fallback`); without it the derivation fails.
    pub fallback: bool,
    /// The platform this machine builds for (`system`).
    pub system: String,
    /// Other platforms it can build for (`extra-platforms`).
    pub extra_platforms: BTreeSet<String>,
    /// The features a derivation may require (`system-features`).
    pub system_features: BTreeSet<String>,
    /// `build-users-group`: when running as root, each build runs as a free
    /// member of this group (see [`crate::UserPool`]); `None` (the setting
    /// empty) keeps the default build user ([`BuildUser::default_for_caller`]).
    pub build_users_group: Option<String>,
}

impl BuildSettings {
    /// CppNix's "can build locally" check, for a derivation that must be
    /// built: its platform is `system` or one of `extra-platforms` (or it is
    /// built in: `builtin:...` builders run anywhere), and `system-features`
    /// has every feature it lists in `requiredSystemFeatures`. The error is
    /// CppNix's (there are no remote builders to hand it to).
    fn check_can_build_locally(&self, drv: &Derivation, printed: &str) -> Result<(), ScheduleError> {
        let platform = String::from_utf8_lossy(&drv.platform).into_owned();
        let builtin = drv.builder.starts_with(b"builtin:");
        let required: BTreeSet<String> = required_system_features(drv);
        let platform_ok = builtin || platform == self.system || self.extra_platforms.contains(&platform);
        let features_ok = required.iter().all(|feature| self.system_features.contains(feature));
        if platform_ok && features_ok {
            return Ok(());
        }
        let join = |set: &BTreeSet<String>| set.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        Err(ScheduleError::CannotBuildHere {
            platform,
            required: join(&required),
            drv: printed.to_string(),
            system: self.system.clone(),
            features: join(&self.system_features),
        })
    }
}

/// The `requiredSystemFeatures` of a derivation: a space-separated attribute,
/// or a list in its `__json` (structured attributes).
fn required_system_features(drv: &Derivation) -> BTreeSet<String> {
    if let Some(json) = drv.env.get(b"__json".as_slice()) {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(json).ok();
        return parsed
            .as_ref()
            .and_then(|v| v.get("requiredSystemFeatures"))
            .and_then(|v| v.as_array())
            .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
    }
    drv.env
        .get(b"requiredSystemFeatures".as_slice())
        .map(|v| String::from_utf8_lossy(v).split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The platform this build of nivis runs on, in Nix's naming (`x86_64-linux`).
pub fn host_system() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

/// CppNix's default `extra-platforms`: on x86-64 Linux, `i686-linux` and the
/// x86-64 micro-architecture levels this CPU supports (`x86_64-v1-linux`...).
pub fn default_extra_platforms() -> BTreeSet<String> {
    let mut platforms = BTreeSet::new();
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        use std::arch::is_x86_feature_detected as has;
        platforms.insert("i686-linux".to_string());
        platforms.insert("x86_64-v1-linux".to_string());
        let v2 = has!("cmpxchg16b") && has!("popcnt") && has!("sse3") && has!("sse4.1") && has!("sse4.2") && has!("ssse3");
        let v3 = v2
            && has!("avx")
            && has!("avx2")
            && has!("bmi1")
            && has!("bmi2")
            && has!("f16c")
            && has!("fma")
            && has!("lzcnt")
            && has!("movbe")
            && has!("xsave");
        let v4 = v3 && has!("avx512f") && has!("avx512bw") && has!("avx512cd") && has!("avx512dq") && has!("avx512vl");
        for (level, supported) in [(2, v2), (3, v3), (4, v4)] {
            if supported {
                platforms.insert(format!("x86_64-v{level}-linux"));
            }
        }
    }
    platforms
}

/// CppNix's default `system-features`: `benchmark`, `big-parallel`,
/// `nixos-test`, and `kvm` when `/dev/kvm` can be opened.
pub fn default_system_features() -> BTreeSet<String> {
    let mut features: BTreeSet<String> =
        ["benchmark", "big-parallel", "nixos-test"].iter().map(|s| s.to_string()).collect();
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok() {
        features.insert("kvm".to_string());
    }
    features
}

impl Default for BuildSettings {
    fn default() -> BuildSettings {
        BuildSettings {
            max_jobs: 1,
            cores: 0,
            timeout: None,
            max_silent_time: None,
            max_log_size: None,
            keep_going: false,
            keep_failed: false,
            sandbox: true,
            sandbox_paths: Vec::new(),
            tmp_root: std::env::temp_dir(),
            print_build_logs: true,
            prefix_log_lines: false,
            keep_build_log: true,
            check: false,
            repair: false,
            fallback: false,
            system: host_system(),
            extra_platforms: default_extra_platforms(),
            system_features: default_system_features(),
            build_users_group: None,
        }
    }
}

/// A derivation and the outputs wanted of it (`None`: all of them), CppNix's
/// `DerivedPath::Built`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DerivedPath {
    pub drv_path: StorePath,
    pub outputs: Option<BTreeSet<String>>,
}

/// The hook for "try to substitute these paths before building them":
/// returns the paths it made valid. Binary caches implement it.
pub trait Substituter {
    fn substitute(&self, store: &dyn Store, paths: &StorePathSet) -> Result<StorePathSet, String>;

    /// Which of `paths` could be substituted, without fetching anything: the
    /// answer holds every path that would be fetched (the asked ones that are
    /// available with all their missing references, and those references),
    /// each with what the caches say of it. A path not in the answer cannot be
    /// substituted. This is what the "will be fetched" summary reports.
    fn query_substitutable(
        &self,
        store: &dyn Store,
        paths: &StorePathSet,
    ) -> Result<BTreeMap<StorePath, SubstitutablePath>, String>;

    /// [`Substituter::substitute`], also saying which of the paths it could
    /// not make valid have a substitute that failed (a download that broke,
    /// a cache that did not answer): CppNix's "substituter failed", which
    /// the `fallback` setting decides on. Paths that no substituter has are
    /// not failures: they are simply built.
    fn substitute_outcome(&self, store: &dyn Store, paths: &StorePathSet) -> Result<SubstituteOutcome, String> {
        Ok(SubstituteOutcome { substituted: self.substitute(store, paths)?, failed: StorePathSet::new() })
    }
}

/// What [`Substituter::substitute_outcome`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubstituteOutcome {
    /// Made valid.
    pub substituted: StorePathSet,
    /// Not made valid although a substitute exists (or a cache could not be
    /// asked).
    pub failed: StorePathSet,
}

/// What a substituter knows of a path before fetching it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubstitutablePath {
    pub references: StorePathSet,
    /// Bytes to download (the compressed NAR), 0 if unknown.
    pub download_size: u64,
    pub nar_size: u64,
}

/// Why one derivation was not built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    pub drv_path: String,
    /// The message, CppNix's wording (without `error: `).
    pub message: String,
    pub kind: FailureKind,
}

/// Classes of failure; they decide the exit code as in CppNix (100 for a
/// failed builder, 101 for a timeout, 102 for a hash mismatch, 104 for
/// `--check` finding a difference, combined by bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    BuilderFailed,
    TimedOut,
    HashMismatch,
    NotDeterministic,
    DependencyFailed,
    Other,
}

/// What [`realise`] found or made.
#[derive(Debug, Default)]
pub struct RealiseResult {
    /// For every derivation asked for: output name to output path.
    pub outputs: BTreeMap<StorePath, BTreeMap<String, StorePath>>,
    /// Derivations that were built (in completion order).
    pub built: Vec<StorePath>,
    pub failures: Vec<BuildFailure>,
}

impl RealiseResult {
    /// CppNix's exit status for failed builds (`Worker::exitStatus`): 1
    /// unless some failure is of a known class, then 96 plus 4 for a failed
    /// build, 1 for a timeout, 2 for a hash mismatch (these also count as
    /// failed builds), 8 for `--check` differences: 100, 101, 102, 104, 108.
    pub fn exit_status(&self) -> u8 {
        if self.failures.is_empty() {
            return 0;
        }
        let (mut built, mut timed_out, mut hash_mismatch, mut check) = (false, false, false, false);
        for failure in &self.failures {
            match failure.kind {
                FailureKind::BuilderFailed => built = true,
                FailureKind::TimedOut => timed_out = true,
                FailureKind::HashMismatch => hash_mismatch = true,
                FailureKind::NotDeterministic => check = true,
                FailureKind::DependencyFailed | FailureKind::Other => {}
            }
        }
        if !(built || timed_out || hash_mismatch || check) {
            return 1;
        }
        // 0b1100000, plus 0b100 for any build failure proper (a `--check`
        // difference alone is 104, not 108).
        let mut status = 0b1100000u8;
        if built || timed_out || hash_mismatch {
            status |= 0b0100;
        }
        if timed_out {
            status |= 0b0001;
        }
        if hash_mismatch {
            status |= 0b0010;
        }
        if check {
            status |= 0b1000;
        }
        status
    }
}

/// Errors that stop the scheduler as a whole (not a failed builder).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading derivation '{path}': {message}")]
    BadDerivation { path: String, message: String },
    #[error("derivation '{drv}' does not have wanted outputs '{output}'")]
    MissingOutput { drv: String, output: String },
    #[error("cannot build '{0}': the store is not a local store")]
    NotLocal(String),
    #[error(
        "unable to start any build; either increase '--max-jobs' or enable remote builds.\nhttps://nixos.org/manual/nix/stable/advanced-topics/distributed-builds.html"
    )]
    NoJobs,
    #[error(
        "a '{platform}' with features {{{required}}} is required to build '{drv}', but I am a '{system}' with features {{{features}}}"
    )]
    CannotBuildHere { platform: String, required: String, drv: String, system: String, features: String },
    /// The `build-users-group` setting cannot be used.
    #[error(transparent)]
    BuildUsers(BuildError),
}

/// What the graph walk found about one derivation.
struct Node {
    drv: Derivation,
    printed: String,
    /// Outputs the callers want (union over every reference to it).
    wanted: BTreeSet<String>,
    /// Input derivations that must be realised first.
    waiting_for: BTreeSet<StorePath>,
    /// Derivations waiting for this one.
    dependents: BTreeSet<StorePath>,
    state: NodeState,
    mode: BuildMode,
}

/// How a derivation is realised (CppNix's `BuildMode`). `--check` applies to
/// the requested derivations only (their inputs are realised normally);
/// `--repair` to every derivation of the graph, as in CppNix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BuildMode {
    Normal,
    /// Rebuild valid outputs and compare NAR hashes; nothing is registered.
    Check,
    /// Outputs whose contents do not match their NAR hash are rebuilt and
    /// replaced.
    Repair,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    /// Wanted outputs valid (or substituted).
    Done,
    /// Needs building, waiting for inputs.
    Pending,
    Running,
    Failed,
}

/// What the dry-run walk finds: derivations to build and paths to fetch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MissingPaths {
    pub will_build: BTreeSet<StorePath>,
    pub will_substitute: BTreeSet<StorePath>,
    pub unknown: BTreeSet<StorePath>,
    /// Totals over `will_substitute`.
    pub download_size: u64,
    pub nar_size: u64,
}

/// Reads and parses a `.drv` from the store.
pub fn read_derivation(store: &dyn Store, drv_path: &StorePath) -> Result<Derivation, ScheduleError> {
    let printed = store.print_store_path(drv_path);
    let real = store.real_path(drv_path).ok_or_else(|| ScheduleError::NotLocal(printed.clone()))?;
    let bytes = fs::read(&real)
        .map_err(|e| ScheduleError::BadDerivation { path: printed.clone(), message: e.to_string() })?;
    Derivation::parse(store.store_dir(), &bytes)
        .map_err(|e| ScheduleError::BadDerivation { path: printed, message: e.to_string() })
}

/// The output paths of `drv` that are known before building.
fn output_paths(drv: &Derivation) -> BTreeMap<String, StorePath> {
    drv.outputs.iter().filter_map(|(name, output)| Some((name.clone(), output.path()?.clone()))).collect()
}

struct Graph {
    nodes: BTreeMap<StorePath, Node>,
    /// Derivations that failed before any build (`--check` of invalid outputs).
    failures: Vec<BuildFailure>,
}

/// Whether a valid path's contents still have its registered NAR hash
/// (CppNix's `pathContentsGood`, with its messages). Unlike CppNix 2.8 the
/// path is read at its real location, so a chroot store's paths are not all
/// taken for missing.
fn path_contents_good(store: &dyn Store, path: &StorePath) -> Result<bool, ScheduleError> {
    let printed = store.print_store_path(path);
    eprintln!("checking path '{printed}'...");
    let Some(info) = store.query_path_info(path)? else { return Ok(false) };
    let real = store.real_path(path).ok_or_else(|| ScheduleError::NotLocal(printed.clone()))?;
    let mut hasher = Hasher::new(info.nar_hash.algorithm());
    let good = fs::symlink_metadata(&real).is_ok()
        && nivis_store::dump_path(&real, &mut hasher).is_ok()
        && hasher.finish() == info.nar_hash;
    if !good {
        eprintln!("path '{printed}' is corrupted or missing!");
    }
    Ok(good)
}

impl Graph {
    /// Walks the graph from `targets` (see the module comment, step 1).
    fn load(
        store: &dyn Store,
        targets: &[DerivedPath],
        substituter: Option<&dyn Substituter>,
        settings: &BuildSettings,
    ) -> Result<Graph, ScheduleError> {
        let mut nodes: BTreeMap<StorePath, Node> = BTreeMap::new();
        let mut failures = Vec::new();
        // Derivations with a valid but corrupted wanted output (`--repair`).
        let mut corrupted: BTreeSet<StorePath> = BTreeSet::new();
        let mut layer: Vec<(StorePath, Option<BTreeSet<String>>, Option<StorePath>)> =
            targets.iter().map(|t| (t.drv_path.clone(), t.outputs.clone(), None)).collect();
        let mut top_level = true;
        while !layer.is_empty() {
            let mut to_check: Vec<StorePath> = Vec::new();
            for (drv_path, outputs, dependent) in layer.drain(..) {
                if !nodes.contains_key(&drv_path) {
                    // The `.drv` must survive a collection until we are done.
                    if let Some(local) = store.as_local() {
                        local.add_temp_root(&drv_path)?;
                    }
                    let drv = read_derivation(store, &drv_path)?;
                    let printed = store.print_store_path(&drv_path);
                    let mode = if settings.check && top_level {
                        BuildMode::Check
                    } else if settings.repair {
                        BuildMode::Repair
                    } else {
                        BuildMode::Normal
                    };
                    nodes.insert(
                        drv_path.clone(),
                        Node {
                            drv,
                            printed,
                            wanted: BTreeSet::new(),
                            waiting_for: BTreeSet::new(),
                            dependents: BTreeSet::new(),
                            state: NodeState::Done,
                            mode,
                        },
                    );
                }
                let node = nodes.get_mut(&drv_path).expect("inserted above");
                let wanted: BTreeSet<String> = outputs.unwrap_or_else(|| node.drv.outputs.keys().cloned().collect());
                for output in &wanted {
                    if !node.drv.outputs.contains_key(output) {
                        return Err(ScheduleError::MissingOutput { drv: node.printed.clone(), output: output.clone() });
                    }
                }
                let new_outputs = !wanted.is_subset(&node.wanted);
                node.wanted.extend(wanted);
                if let Some(dependent) = dependent {
                    node.dependents.insert(dependent);
                }
                if new_outputs && !to_check.contains(&drv_path) {
                    to_check.push(drv_path);
                }
            }
            // Which of this layer's derivations have invalid wanted outputs?
            let mut missing_paths = StorePathSet::new();
            let mut needs_build: Vec<StorePath> = Vec::new();
            for drv_path in &to_check {
                let node = &nodes[drv_path];
                let paths = output_paths(&node.drv);
                let mut all_valid = node.mode != BuildMode::Check;
                for output in &node.wanted {
                    match paths.get(output) {
                        Some(path) if store.is_valid_path(path)? => {
                            if node.mode == BuildMode::Repair && !path_contents_good(store, path)? {
                                corrupted.insert(drv_path.clone());
                                all_valid = false;
                            }
                        }
                        Some(path) => {
                            missing_paths.insert(path.clone());
                            all_valid = false;
                        }
                        None => all_valid = false,
                    }
                }
                if !all_valid {
                    needs_build.push(drv_path.clone());
                }
            }
            // What cannot be substituted is built, except (without
            // `fallback`) outputs whose substitutes exist but failed.
            let mut substitutes_failed = StorePathSet::new();
            if let (Some(substituter), false) = (substituter, missing_paths.is_empty())
                && let Ok(outcome) = substituter.substitute_outcome(store, &missing_paths)
                && !settings.fallback
            {
                substitutes_failed = outcome.failed;
            }
            for drv_path in needs_build {
                let node = nodes.get_mut(&drv_path).expect("walked");
                let paths = output_paths(&node.drv);
                let still_missing =
                    node.wanted.iter().any(|o| paths.get(o).is_none_or(|p| !store.is_valid_path(p).unwrap_or(false)));
                let substitute_failed = node
                    .wanted
                    .iter()
                    .any(|o| paths.get(o).is_some_and(|p| substitutes_failed.contains(p) && !store.is_valid_path(p).unwrap_or(false)));
                if substitute_failed && node.mode != BuildMode::Check {
                    node.state = NodeState::Failed;
                    failures.push(BuildFailure {
                        drv_path: node.printed.clone(),
                        message: format!(
                            "some substitutes for the outputs of derivation '{}' failed (usually happens due to networking issues); try '--fallback' to build derivation from source",
                            node.printed
                        ),
                        kind: FailureKind::Other,
                    });
                    continue;
                }
                match node.mode {
                    BuildMode::Check if still_missing => {
                        node.state = NodeState::Failed;
                        failures.push(BuildFailure {
                            drv_path: node.printed.clone(),
                            message: format!(
                                "some outputs of '{}' are not valid, so checking is not possible",
                                node.printed
                            ),
                            kind: FailureKind::Other,
                        });
                        continue;
                    }
                    BuildMode::Check => {}
                    BuildMode::Repair if !still_missing && !corrupted.contains(&drv_path) => continue,
                    BuildMode::Normal if !still_missing => continue,
                    BuildMode::Repair | BuildMode::Normal => {}
                }
                node.state = NodeState::Pending;
                for (input, outputs) in node.drv.input_derivations.clone() {
                    node.waiting_for.insert(input.clone());
                    layer.push((input, Some(outputs), Some(drv_path.clone())));
                }
            }
            top_level = false;
        }
        // A dependency that turned out already done does not block anyone.
        let done: BTreeSet<StorePath> =
            nodes.iter().filter(|(_, n)| n.state == NodeState::Done).map(|(p, _)| p.clone()).collect();
        for node in nodes.values_mut() {
            node.waiting_for.retain(|p| !done.contains(p));
        }
        Ok(Graph { nodes, failures })
    }
}

/// Finds what [`realise`] would build and what it would fetch from the
/// substituter, without doing either (the summary and `--dry-run`).
pub fn query_missing(
    store: &dyn Store,
    targets: &[DerivedPath],
    substituter: Option<&dyn Substituter>,
) -> Result<MissingPaths, ScheduleError> {
    let mut missing = MissingPaths::default();
    let mut seen: BTreeMap<StorePath, BTreeSet<String>> = BTreeMap::new();
    let mut stack: Vec<(StorePath, Option<BTreeSet<String>>)> =
        targets.iter().map(|t| (t.drv_path.clone(), t.outputs.clone())).collect();
    while let Some((drv_path, outputs)) = stack.pop() {
        let drv = read_derivation(store, &drv_path)?;
        let wanted: BTreeSet<String> = outputs.unwrap_or_else(|| drv.outputs.keys().cloned().collect());
        let known = seen.entry(drv_path.clone()).or_default();
        if wanted.is_subset(known) {
            continue;
        }
        known.extend(wanted.iter().cloned());
        let paths = output_paths(&drv);
        let mut invalid = StorePathSet::new();
        let mut floating = false;
        for output in &wanted {
            match paths.get(output) {
                Some(path) if store.is_valid_path(path)? => {}
                Some(path) => {
                    invalid.insert(path.clone());
                }
                None => floating = true,
            }
        }
        if invalid.is_empty() && !floating {
            continue;
        }
        if let (Some(substituter), false) = (substituter, floating) {
            // Failing to ask is not an error: the path is then built.
            let offered = substituter.query_substitutable(store, &invalid).unwrap_or_default();
            if invalid.iter().all(|p| offered.contains_key(p)) {
                for (path, info) in offered {
                    if missing.will_substitute.insert(path) {
                        missing.download_size += info.download_size;
                        missing.nar_size += info.nar_size;
                    }
                }
                continue;
            }
        }
        missing.will_build.insert(drv_path.clone());
        for (input, outputs) in &drv.input_derivations {
            stack.push((input.clone(), Some(outputs.clone())));
        }
    }
    Ok(missing)
}

/// A build handed to a worker thread.
struct Job {
    drv_path: StorePath,
    request: BuildRequest,
    /// Held until the outputs are registered.
    locks: Vec<PathLock>,
}

/// What a worker thread reports back.
struct JobResult {
    drv_path: StorePath,
    request: BuildRequest,
    outcome: Result<(BuildStatus, BTreeMap<String, FinishedOutput>), BuildError>,
    last_lines: Vec<String>,
    /// The build directory, when `-K` kept it: the calling thread deletes it
    /// after all if the build succeeds, as CppNix keeps only failed ones.
    kept_build_dir: Option<PathBuf>,
}

/// Realises `targets` in `store`, building what is missing. Failed builds
/// are reported in [`RealiseResult::failures`], not as an `Err`.
pub fn realise(
    store: &dyn Store,
    targets: &[DerivedPath],
    settings: &BuildSettings,
    substituter: Option<&dyn Substituter>,
) -> Result<RealiseResult, ScheduleError> {
    // Builders' chroot skeletons are reused until this returns.
    let _chroot_reuse = crate::sandbox::ChrootReuse::enable();
    let mut result = RealiseResult::default();
    let mut graph = if settings.repair {
        let mut all_targets = targets.to_vec();
        all_targets.extend(repair_closure_targets(store, targets, &mut result.failures)?);
        Graph::load(store, &all_targets, substituter, settings)?
    } else {
        Graph::load(store, targets, substituter, settings)?
    };
    for failure in std::mem::take(&mut graph.failures) {
        let drv_path = store.parse_store_path(&failure.drv_path)?;
        result.failures.push(failure);
        fail_dependents(&mut graph, &drv_path, &mut result.failures);
    }
    let any_pending = graph.nodes.values().any(|n| n.state == NodeState::Pending);
    for node in graph.nodes.values().filter(|n| n.state == NodeState::Pending) {
        settings.check_can_build_locally(&node.drv, &node.printed)?;
    }
    if any_pending && settings.max_jobs == 0 {
        return Err(ScheduleError::NoJobs);
    }
    let local = store.as_local();
    if any_pending && local.is_none() {
        return Err(ScheduleError::NotLocal(store.uri()));
    }
    let log_dir = local.map(|l| l.config().log_dir.clone());
    // CppNix uses build users only when it runs as root; the group is
    // resolved once, before any build starts, so a bad setting fails early.
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0;
    let user_pool = match (&settings.build_users_group, local) {
        (Some(group), Some(local)) if any_pending && root => {
            Some(std::sync::Arc::new(
                crate::UserPool::open(group, &local.config().state_dir).map_err(ScheduleError::BuildUsers)?,
            ))
        }
        _ => None,
    };
    let real_store_dir = local.map(|l| l.config().real_store_dir.clone()).unwrap_or_default();

    let mut ready: VecDeque<StorePath> = graph
        .nodes
        .iter()
        .filter(|(_, n)| n.state == NodeState::Pending && n.waiting_for.is_empty())
        .map(|(p, _)| p.clone())
        .collect();
    let (sender, receiver) = mpsc::channel::<JobResult>();
    let mut running = 0usize;
    let mut stopping = false;
    let mut pending_registration: BTreeMap<StorePath, Vec<PathLock>> = BTreeMap::new();

    loop {
        while !stopping && running < settings.max_jobs.max(1) {
            let Some(drv_path) = ready.pop_front() else { break };
            match prepare_job(store, &graph.nodes[&drv_path], &drv_path, settings, &real_store_dir)? {
                Prepared::AlreadyValid => {
                    finish_node(&mut graph, &drv_path, NodeState::Done, &mut ready);
                }
                Prepared::Refused(message) => {
                    let printed = graph.nodes[&drv_path].printed.clone();
                    result.failures.push(BuildFailure { drv_path: printed, message, kind: FailureKind::Other });
                    fail_dependents(&mut graph, &drv_path, &mut result.failures);
                    if !settings.keep_going {
                        stopping = true;
                    }
                }
                Prepared::Job(job) => {
                    let Job { drv_path, request, locks } = *job;
                    let mode = graph.nodes[&drv_path].mode;
                    match mode {
                        BuildMode::Normal => eprintln!("building '{}'...", request.drv_path),
                        BuildMode::Check => eprintln!("checking outputs of '{}'...", request.drv_path),
                        BuildMode::Repair => eprintln!("repairing outputs of '{}'...", request.drv_path),
                    }
                    pending_registration.insert(drv_path.clone(), locks);
                    graph.nodes.get_mut(&drv_path).expect("node").state = NodeState::Running;
                    running += 1;
                    let sender = sender.clone();
                    let log_file = if settings.keep_build_log { log_dir.as_ref().map(|d| log_path(d, &drv_path)) } else { None };
                    let (print, prefix) = (settings.print_build_logs, settings.prefix_log_lines);
                    let name = drv_path.name().trim_end_matches(".drv").to_string();
                    let user_pool = user_pool.clone();
                    std::thread::spawn(move || {
                        let result =
                            run_job(drv_path, request, mode, log_file, print, prefix.then_some(name), user_pool.as_deref());
                        let _ = sender.send(result);
                    });
                }
            }
        }
        if running == 0 {
            break;
        }
        let job_result = receiver.recv().expect("a worker holds a sender while running");
        running -= 1;
        let drv_path = job_result.drv_path.clone();
        let locks = pending_registration.remove(&drv_path).unwrap_or_default();
        let kept_build_dir = job_result.kept_build_dir.clone();
        let outcome = complete_job(store, &graph.nodes[&drv_path], job_result, settings);
        drop(locks);
        if let Some(build_dir) = kept_build_dir {
            if outcome.is_ok() {
                let _ = crate::sandbox::remove_tree(&build_dir);
            } else {
                eprintln!("note: keeping build directory '{}'", build_dir.display());
            }
        }
        match outcome {
            Ok(()) => {
                result.built.push(drv_path.clone());
                finish_node(&mut graph, &drv_path, NodeState::Done, &mut ready);
            }
            Err(failure) => {
                result.failures.push(failure);
                fail_dependents(&mut graph, &drv_path, &mut result.failures);
                if !settings.keep_going {
                    stopping = true;
                }
            }
        }
    }

    for target in targets {
        let node = &graph.nodes[&target.drv_path];
        if node.state == NodeState::Done {
            let paths = output_paths(&node.drv);
            let wanted = target.outputs.clone().unwrap_or_else(|| node.drv.outputs.keys().cloned().collect());
            let entry = result.outputs.entry(target.drv_path.clone()).or_default();
            for output in wanted {
                if let Some(path) = paths.get(&output) {
                    entry.insert(output, path.clone());
                }
            }
        }
    }
    Ok(result)
}

/// `--repair` beyond the requested outputs (CppNix's `repairClosure`): every
/// other path in the closure of their valid outputs is checked, and a
/// corrupted one is repaired by rebuilding its deriver (returned as extra
/// targets). One without a valid deriver cannot be repaired here (CppNix would
/// try the substituters first), which fails the requested derivation with
/// CppNix's message.
fn repair_closure_targets(
    store: &dyn Store,
    targets: &[DerivedPath],
    failures: &mut Vec<BuildFailure>,
) -> Result<Vec<DerivedPath>, ScheduleError> {
    let mut checked = StorePathSet::new();
    let mut extra = Vec::new();
    for target in targets {
        let drv = read_derivation(store, &target.drv_path)?;
        let paths = output_paths(&drv);
        let mut own = StorePathSet::new();
        for (name, path) in &paths {
            if target.outputs.as_ref().is_none_or(|wanted| wanted.contains(name)) && store.is_valid_path(path)? {
                own.insert(path.clone());
            }
        }
        let closure = compute_closure(store, &own, ClosureOptions::default())?;
        let printed_drv = store.print_store_path(&target.drv_path);
        let mut unrepairable = false;
        for path in closure {
            if paths.values().any(|p| *p == path) || !checked.insert(path.clone()) || path_contents_good(store, &path)? {
                continue;
            }
            let printed = store.print_store_path(&path);
            eprintln!("found corrupted or missing path '{printed}' in the output closure of '{printed_drv}'");
            let deriver = store.query_path_info(&path)?.and_then(|info| info.deriver);
            match deriver {
                Some(deriver) if store.is_valid_path(&deriver)? => {
                    extra.push(DerivedPath { drv_path: deriver, outputs: None });
                }
                _ => unrepairable = true,
            }
        }
        if unrepairable {
            failures.push(BuildFailure {
                message: format!(
                    "some paths in the output closure of derivation '{printed_drv}' could not be repaired"
                ),
                drv_path: printed_drv,
                kind: FailureKind::Other,
            });
        }
    }
    Ok(extra)
}

/// Marks a node finished and queues the dependents it unblocked.
fn finish_node(graph: &mut Graph, drv_path: &StorePath, state: NodeState, ready: &mut VecDeque<StorePath>) {
    let node = graph.nodes.get_mut(drv_path).expect("node");
    node.state = state;
    let dependents = node.dependents.clone();
    for dependent in dependents {
        let dependent_node = graph.nodes.get_mut(&dependent).expect("dependent");
        if dependent_node.waiting_for.remove(drv_path)
            && dependent_node.waiting_for.is_empty()
            && dependent_node.state == NodeState::Pending
        {
            ready.push_back(dependent);
        }
    }
}

/// Marks `drv_path` failed, and every derivation that needs it.
fn fail_dependents(graph: &mut Graph, drv_path: &StorePath, failures: &mut Vec<BuildFailure>) {
    let mut stack = vec![drv_path.clone()];
    while let Some(path) = stack.pop() {
        let node = graph.nodes.get_mut(&path).expect("node");
        node.state = NodeState::Failed;
        for dependent in node.dependents.clone() {
            let dependent_node = graph.nodes.get_mut(&dependent).expect("dependent");
            if dependent_node.state == NodeState::Pending {
                dependent_node.state = NodeState::Failed;
                failures.push(BuildFailure {
                    drv_path: dependent_node.printed.clone(),
                    message: format!(
                        "{} dependencies of derivation '{}' failed to build",
                        1, dependent_node.printed
                    ),
                    kind: FailureKind::DependencyFailed,
                });
                stack.push(dependent);
            }
        }
    }
}

enum Prepared {
    AlreadyValid,
    /// Not built, for the reason given (a failure of this derivation).
    Refused(String),
    Job(Box<Job>),
}

/// Step 2 of the module comment, on the calling thread.
fn prepare_job(
    store: &dyn Store,
    node: &Node,
    drv_path: &StorePath,
    settings: &BuildSettings,
    real_store_dir: &Path,
) -> Result<Prepared, ScheduleError> {
    let local = store.as_local().ok_or_else(|| ScheduleError::NotLocal(store.uri()))?;
    let paths = output_paths(&node.drv);
    let mut locks = Vec::new();
    for path in paths.values() {
        locks.push(local.lock_path(path)?);
    }
    // Another process may have built them while we waited for the locks.
    let mut all_valid = true;
    for path in paths.values() {
        if !store.is_valid_path(path)? {
            all_valid = false;
        }
    }
    if all_valid && node.mode == BuildMode::Normal {
        for path in paths.values() {
            local.add_temp_root(path)?;
        }
        return Ok(Prepared::AlreadyValid);
    }
    // Whatever is at an invalid output path is a leftover (a killed build):
    // remove it under the lock.
    for path in paths.values() {
        if !store.is_valid_path(path)? {
            nivis_store::delete_path(&real_store_dir.join(path.base_name()))?;
        }
    }
    // The input closure: sources plus the wanted outputs of input derivations.
    let mut start = node.drv.input_sources.clone();
    for (input_drv, outputs) in &node.drv.input_derivations {
        let input = read_derivation(store, input_drv)?;
        let input_paths = output_paths(&input);
        for output in outputs {
            let path = input_paths.get(output).ok_or_else(|| ScheduleError::MissingOutput {
                drv: store.print_store_path(input_drv),
                output: output.clone(),
            })?;
            start.insert(path.clone());
        }
    }
    for path in &start {
        local.add_temp_root(path)?;
    }
    let closure = compute_closure(store, &start, ClosureOptions::default())?;
    let mut request = BuildRequest::from_derivation(store.store_dir(), drv_path, &node.drv, &closure, real_store_dir)
        .map_err(|e| ScheduleError::BadDerivation { path: node.printed.clone(), message: e.to_string() })?;
    if request.env.contains_key("exportReferencesGraph") || request.structured_attrs.is_some() {
        for path in &closure {
            if let Some(info) = store.query_path_info(path)? {
                request.input_path_infos.insert(
                    store.print_store_path(path),
                    InputPathInfo {
                        nar_hash: info.nar_hash,
                        nar_size: info.nar_size,
                        references: info.references.iter().map(|r| store.print_store_path(r)).collect(),
                        ca: info.ca.as_ref().map(ContentAddress::to_string),
                    },
                );
            }
        }
    }
    if settings.cores > 0 {
        request.build_cores = settings.cores;
    }
    request.timeout = settings.timeout;
    request.max_silent_time = settings.max_silent_time;
    request.max_log_size = settings.max_log_size;
    request.keep_build_dir = settings.keep_failed;
    // A store whose files are not at their logical location can only be
    // built into through the sandbox's mount (CppNix forces it too).
    request.sandbox = settings.sandbox || real_store_dir != Path::new(store.store_dir().as_str());
    request.sandbox_paths = settings.sandbox_paths.clone();
    request.tmp_root = settings.tmp_root.clone();
    if node.mode != BuildMode::Normal && (!request.sandbox || request.builder.starts_with("builtin:")) {
        // Checking and repairing need the new outputs built somewhere other
        // than the valid paths: the sandbox's store. An unsandboxed or
        // built-in builder writes into the real store (CppNix rewrites hashes
        // there instead, which nivis does not do).
        return Ok(Prepared::Refused(format!(
            "cannot {} '{}': only sandboxed builds with a builder program can be {}",
            if node.mode == BuildMode::Check { "check" } else { "repair" },
            node.printed,
            if node.mode == BuildMode::Check { "checked" } else { "repaired" },
        )));
    }
    Ok(Prepared::Job(Box::new(Job { drv_path: drv_path.clone(), request, locks })))
}

/// `<log dir>/drvs/<first two characters>/<rest of the base name>.bz2`.
pub fn log_path(log_dir: &Path, drv_path: &StorePath) -> PathBuf {
    let base = drv_path.base_name();
    log_dir.join("drvs").join(&base[..2]).join(format!("{}.bz2", &base[2..]))
}

/// Reads the build log of `drv_path` if one was kept.
pub fn read_build_log(log_dir: &Path, drv_path: &StorePath) -> io::Result<Option<Vec<u8>>> {
    let compressed = log_path(log_dir, drv_path);
    match fs::File::open(&compressed) {
        Ok(file) => {
            let mut contents = Vec::new();
            io::Read::read_to_end(&mut bzip2::read::MultiBzDecoder::new(file), &mut contents)?;
            Ok(Some(contents))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let base = drv_path.base_name();
            let plain = log_dir.join("drvs").join(&base[..2]).join(&base[2..]);
            match fs::read(plain) {
                Ok(contents) => Ok(Some(contents)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The log sink of one build: the compressed log file, stderr when asked,
/// and the last ten lines.
struct LogSink {
    file: Option<crate::build_log::CompressedLog>,
    print: bool,
    prefix: Option<String>,
    partial: Vec<u8>,
    last_lines: VecDeque<String>,
}

impl LogSink {
    fn line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        if self.print {
            let stderr = io::stderr();
            let mut stderr = stderr.lock();
            let _ = match &self.prefix {
                Some(prefix) => writeln!(stderr, "{prefix}> {text}"),
                None => writeln!(stderr, "{text}"),
            };
        }
        if self.last_lines.len() == 10 {
            self.last_lines.pop_front();
        }
        self.last_lines.push_back(text);
    }
}

impl Write for LogSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(file) = &mut self.file {
            // A log that cannot be written must not fail the build.
            if file.write_all(data).is_err() {
                self.file = None;
            }
        }
        self.partial.extend_from_slice(data);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&line[..line.len() - 1]);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The worker thread's part: run the builder and finish its outputs.
fn run_job(
    drv_path: StorePath,
    request: BuildRequest,
    mode: BuildMode,
    log_file: Option<PathBuf>,
    print: bool,
    prefix: Option<String>,
    user_pool: Option<&crate::UserPool>,
) -> JobResult {
    let mut request = request;
    let file = log_file.and_then(|path| {
        fs::create_dir_all(path.parent()?).ok()?;
        crate::build_log::CompressedLog::create(&path).ok()
    });
    let mut sink = LogSink { file, print, prefix, partial: Vec::new(), last_lines: VecDeque::new() };
    let mut kept_build_dir = None;
    // The build user stays taken until the outputs are canonicalised (owned
    // by us again), as CppNix keeps it for the whole build.
    let user_lock = user_pool
        .map(|pool| pool.acquire(|| eprintln!("waiting for UID to build '{}'", request.drv_path)))
        .transpose();
    let (outcome, _user_lock) = match user_lock {
        Err(e) => (Err(e), None),
        Ok(lock) => {
            // CppNix kills the build user's processes before and after.
            let killed = lock.as_ref().map_or(Ok(()), crate::UserLock::kill_processes);
            if let Some(lock) = &lock {
                request.build_user = Some(lock.user);
            }
            let outcome = killed.and_then(|()| run_build(&request, &mut sink));
            let outcome = match (outcome, lock.as_ref().map_or(Ok(()), crate::UserLock::kill_processes)) {
                (Ok(_), Err(e)) => Err(e),
                (outcome, _) => outcome,
            };
            (outcome, lock)
        }
    };
    let outcome = outcome.and_then(|mut outcome| {
        if request.keep_build_dir && !outcome.build_dir().as_os_str().is_empty() {
            kept_build_dir = Some(outcome.build_dir().to_path_buf());
        }
        if !outcome.status.success() {
            return Ok((outcome.status.clone(), BTreeMap::new()));
        }
        let owner = BuildUser::current();
        let finished = match mode {
            BuildMode::Normal => outcome.finish_outputs(&request, Some((owner.uid, owner.gid)))?,
            BuildMode::Check | BuildMode::Repair => finish_outputs_aside(&outcome, &request, mode, (owner.uid, owner.gid))?,
        };
        crate::outputs::sync_outputs(finished.values().map(|o| o.real_path.as_path()), &request.real_store_dir)?;
        Ok((outcome.status.clone(), finished))
    });
    if !sink.partial.is_empty() {
        let rest = std::mem::take(&mut sink.partial);
        sink.line(&rest);
    }
    if let Some(file) = sink.file.take() {
        let _ = file.finish();
    }
    JobResult { drv_path, request, outcome, last_lines: sink.last_lines.into_iter().collect(), kept_build_dir }
}

/// `--check` and `--repair`: the valid paths must stay untouched, so each new
/// output moves from the sandbox's store to `<path>.check` (CppNix's name for
/// a differing output kept with `-K`) or `<path>.repair` next to its path in
/// the real store, is canonicalised and hashed there, and the calling thread
/// compares it or swaps it in.
fn finish_outputs_aside(
    outcome: &crate::BuildOutcome,
    request: &BuildRequest,
    mode: BuildMode,
    owner: (u32, u32),
) -> Result<BTreeMap<String, FinishedOutput>, BuildError> {
    let candidates: Vec<&String> = request.input_paths.iter().chain(request.outputs.values()).collect();
    let suffix = if mode == BuildMode::Check { "check" } else { "repair" };
    let mut finished = BTreeMap::new();
    for (name, path) in &request.outputs {
        let missing = || BuildError::MissingOutput { output: name.clone(), path: PathBuf::from(path) };
        let location = outcome.output_location(name).ok_or_else(missing)?;
        let metadata = fs::symlink_metadata(&location).map_err(|_| missing())?;
        let base = path.rsplit('/').next().unwrap_or(path);
        let aside = request.real_store_dir.join(format!("{base}.{suffix}"));
        crate::sandbox::remove_tree(&aside)?;
        // Moving a directory to another parent rewrites its `..` entry, which
        // needs write permission on it; canonicalising below takes it away.
        if metadata.is_dir() && metadata.permissions().mode() & 0o200 == 0 {
            fs::set_permissions(&location, fs::Permissions::from_mode(metadata.permissions().mode() | 0o200))
                .map_err(|e| BuildError::io("making writable", &location, e))?;
        }
        fs::rename(&location, &aside).map_err(|e| BuildError::io("moving output to", &aside, e))?;
        crate::canonicalise_path_metadata(&aside, Some(owner))?;
        let info = crate::scan_and_hash_output(&aside, &candidates)?;
        finished.insert(name.clone(), FinishedOutput { path: path.clone(), real_path: aside, info });
    }
    Ok(finished)
}

/// Step 3 of the module comment: checks, then registration in one transaction.
fn complete_job(store: &dyn Store, node: &Node, job: JobResult, settings: &BuildSettings) -> Result<(), BuildFailure> {
    let printed = node.printed.clone();
    let failure = |message: String, kind: FailureKind| BuildFailure { drv_path: printed.clone(), message, kind };
    let real_store_dir = job.request.real_store_dir.clone();
    let remove_outputs = |finished: &BTreeMap<String, FinishedOutput>| {
        for output in finished.values() {
            let _ = nivis_store::delete_path(&output.real_path);
        }
    };
    let (status, finished) = match job.outcome {
        Ok(result) => result,
        Err(error) => {
            // Nothing of a half-finished output may stay under its name.
            for path in output_paths(&node.drv).values() {
                let _ = nivis_store::delete_path(&real_store_dir.join(path.base_name()));
            }
            return Err(failure(format!("while building '{printed}': {error}"), FailureKind::Other));
        }
    };
    if !status.success() {
        let mut message = match status {
            // CppNix 2.8 names the goal in these two messages.
            BuildStatus::TimedOut(_) | BuildStatus::SilentTooLong(_) => {
                let wanted: Vec<&str> = node.wanted.iter().map(String::as_str).collect();
                format!("building of '{printed}!{}' from .drv file {}", wanted.join(","), status.describe())
            }
            _ => format!("builder for '{printed}' {}", status.describe()),
        };
        if !job.last_lines.is_empty() && !settings.print_build_logs {
            message.push_str(&format!(";\n       last {} log lines:", job.last_lines.len()));
            for line in &job.last_lines {
                message.push_str(&format!("\n       > {line}"));
            }
            message.push_str(&format!("\n       For full logs, run 'nix log {printed}'."));
        }
        let kind = match status {
            BuildStatus::TimedOut(_) | BuildStatus::SilentTooLong(_) => FailureKind::TimedOut,
            _ => FailureKind::BuilderFailed,
        };
        return Err(failure(message, kind));
    }
    let store_dir = store.store_dir();
    let mut infos = Vec::new();
    for (name, output) in &finished {
        let path = store_dir.parse_path(&output.path).map_err(|e| failure(e.to_string(), FailureKind::Other))?;
        let mut ca = None;
        if let Some(DerivationOutput::Fixed { method, hash, .. }) = node.drv.outputs.get(name) {
            let actual = match fixed_output_hash(&output.real_path, *method, hash) {
                Ok(actual) => actual,
                Err(e) => {
                    remove_outputs(&finished);
                    return Err(failure(e, FailureKind::Other));
                }
            };
            if actual != *hash {
                remove_outputs(&finished);
                return Err(failure(
                    format!(
                        "hash mismatch in fixed-output derivation '{printed}':\n         specified: {}\n            got:    {}",
                        hash.to_sri(),
                        actual.to_sri()
                    ),
                    FailureKind::HashMismatch,
                ));
            }
            ca = Some(ContentAddress::Fixed(*method, *hash));
        }
        let mut references = StorePathSet::new();
        for reference in &output.info.references {
            references.insert(store_dir.parse_path(reference).map_err(|e| failure(e.to_string(), FailureKind::Other))?);
        }
        let mut info = ValidPathInfo::new(path, output.info.nar_hash, output.info.nar_size);
        info.references = references;
        info.deriver = Some(job.drv_path.clone());
        info.ultimate = true;
        info.ca = ca;
        infos.push((name.clone(), info));
    }
    if let Err(message) = check_reference_constraints(store, &job.request, &infos) {
        remove_outputs(&finished);
        return Err(failure(message, FailureKind::Other));
    }
    if node.mode == BuildMode::Check {
        let outcome = compare_checked_outputs(store, &printed, &finished, &infos, settings.keep_failed);
        // Whatever was not kept as `<path>.check` goes.
        for output in finished.values() {
            if !matches!(&outcome, Err((_, Some(kept), _)) if *kept == output.real_path) {
                let _ = nivis_store::delete_path(&output.real_path);
            }
        }
        return outcome.map_err(|(message, _, kind)| failure(message, kind));
    }
    if node.mode == BuildMode::Repair {
        for output in finished.values() {
            let base = output.path.rsplit('/').next().unwrap_or(&output.path);
            if let Err(error) = replace_path(&output.real_path, &real_store_dir.join(base)) {
                remove_outputs(&finished);
                return Err(failure(format!("repairing the outputs of '{printed}': {error}"), FailureKind::Other));
            }
        }
    }
    let infos: Vec<ValidPathInfo> = infos.into_iter().map(|(_, info)| info).collect();
    if let Err(error) = store.register_valid_paths(&infos) {
        remove_outputs(&finished);
        return Err(failure(format!("registering the outputs of '{printed}': {error}"), FailureKind::Other));
    }
    if let Some(local) = store.as_local() {
        for info in &infos {
            let _ = local.add_temp_root(&info.path);
        }
    }
    Ok(())
}

/// `--check`: the new outputs (aside, see [`finish_outputs_aside`]) against
/// the registered ones, in output-name order as CppNix. A difference is a
/// `NotDeterministic` failure naming the real path; with `-K` the new output
/// stays as `<path>.check`. If all agree, outputs not yet `ultimate` become
/// so (the build was verified). Outputs that are not valid are not compared.
/// The error carries the kept output's path, if one was kept.
fn compare_checked_outputs(
    store: &dyn Store,
    printed: &str,
    finished: &BTreeMap<String, FinishedOutput>,
    infos: &[(String, ValidPathInfo)],
    keep_failed: bool,
) -> Result<(), (String, Option<PathBuf>, FailureKind)> {
    let other = |error: StoreError| (error.to_string(), None, FailureKind::Other);
    let mut verified = Vec::new();
    for (name, info) in infos {
        let Some(mut registered) = store.query_path_info(&info.path).map_err(other)? else { continue };
        if registered.nar_hash != info.nar_hash {
            let real = store
                .real_path(&info.path)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| store.print_store_path(&info.path));
            let mut message = format!("derivation '{printed}' may not be deterministic: output '{real}' differs");
            let mut kept_at = None;
            if keep_failed && let Some(output) = finished.get(name) {
                let kept = PathBuf::from(format!("{real}.check"));
                if output.real_path == kept || fs::rename(&output.real_path, &kept).is_ok() {
                    message.push_str(&format!(" from '{real}.check'"));
                    kept_at = Some(output.real_path.clone());
                }
            }
            return Err((message, kept_at, FailureKind::NotDeterministic));
        }
        if !registered.ultimate {
            registered.ultimate = true;
            verified.push(registered);
        }
    }
    if !verified.is_empty() {
        store.register_valid_paths(&verified).map_err(other)?;
    }
    Ok(())
}

/// Puts the repaired `new` at `destination`, replacing what is there in one
/// step where the file system can (`renameat2` with `RENAME_EXCHANGE`, then
/// the old contents are deleted); otherwise as CppNix's `replaceValidPath`:
/// the old contents move aside first, then the new ones into place.
fn replace_path(new: &Path, destination: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    if fs::symlink_metadata(destination).is_err() {
        return fs::rename(new, destination);
    }
    let c_new = std::ffi::CString::new(new.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let c_destination = std::ffi::CString::new(destination.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: two NUL-terminated paths that live across the call.
    let exchanged = unsafe {
        libc::renameat2(libc::AT_FDCWD, c_new.as_ptr(), libc::AT_FDCWD, c_destination.as_ptr(), libc::RENAME_EXCHANGE)
    } == 0;
    if exchanged {
        // `new` now holds the old, corrupted contents.
        return nivis_store::delete_path(new).map_err(io::Error::other);
    }
    let old = destination.with_file_name(format!(
        "{}.old-{}",
        destination.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    fs::rename(destination, &old)?;
    if let Err(error) = fs::rename(new, destination) {
        let _ = fs::rename(&old, destination);
        return Err(error);
    }
    nivis_store::delete_path(&old).map_err(io::Error::other)
}

/// The hash of a fixed output, computed the way its declaration says.
fn fixed_output_hash(real_path: &Path, method: FileIngestionMethod, declared: &Hash) -> Result<Hash, String> {
    let mut hasher = Hasher::new(declared.algorithm());
    match method {
        FileIngestionMethod::Flat => {
            let mut file = fs::File::open(real_path).map_err(|e| format!("opening '{}': {e}", real_path.display()))?;
            io::copy(&mut file, &mut hasher).map_err(|e| format!("reading '{}': {e}", real_path.display()))?;
        }
        FileIngestionMethod::Recursive => {
            nivis_store::dump_path(real_path, &mut hasher).map_err(|e| e.to_string())?;
        }
    }
    Ok(hasher.finish())
}

/// `allowedReferences`, `allowedRequisites`, `disallowedReferences`,
/// `disallowedRequisites` (space-separated store paths or output names in
/// the environment; structured attributes are not handled yet).
fn check_reference_constraints(
    store: &dyn Store,
    request: &BuildRequest,
    infos: &[(String, ValidPathInfo)],
) -> Result<(), String> {
    let store_dir: &StoreDir = store.store_dir();
    let own: BTreeMap<&str, &StorePath> = infos.iter().map(|(name, info)| (name.as_str(), &info.path)).collect();
    let resolve = |value: &str| -> StorePathSet {
        value
            .split_whitespace()
            .filter_map(|item| match own.get(item) {
                Some(path) => Some((*path).clone()),
                None => store_dir.parse_path(item).ok(),
            })
            .collect()
    };
    for (_, info) in infos {
        let printed = store_dir.print_path(&info.path);
        let requisites = || -> Result<StorePathSet, String> {
            // The closure of this output's references; its own siblings are
            // not valid yet, so follow them through `infos`.
            let mut closure = StorePathSet::new();
            let mut pending: Vec<StorePath> = info.references.iter().cloned().collect();
            closure.insert(info.path.clone());
            while let Some(path) = pending.pop() {
                if !closure.insert(path.clone()) {
                    continue;
                }
                if let Some((_, sibling)) = infos.iter().find(|(_, i)| i.path == path) {
                    pending.extend(sibling.references.iter().cloned());
                } else if let Some(valid) = store.query_path_info(&path).map_err(|e| e.to_string())? {
                    pending.extend(valid.references.iter().cloned());
                }
            }
            Ok(closure)
        };
        for (variable, allowed, closure) in [
            ("allowedReferences", true, false),
            ("allowedRequisites", true, true),
            ("disallowedReferences", false, false),
            ("disallowedRequisites", false, true),
        ] {
            let Some(value) = request.env.get(variable) else { continue };
            let spec = resolve(value);
            let used = if closure { requisites()? } else { info.references.clone() };
            let bad: Vec<String> = used
                .iter()
                .filter(|path| spec.contains(path) != allowed)
                .map(|path| store_dir.print_path(path))
                .collect();
            if !bad.is_empty() {
                let mut message = format!(
                    "output '{printed}' is not allowed to refer to the following paths:"
                );
                for path in bad {
                    message.push_str(&format!("\n         {path}"));
                }
                return Err(message);
            }
        }
    }
    Ok(())
}
