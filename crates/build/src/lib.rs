//! Building derivations on Linux, the lowest layer: run one builder in a
//! sandbox laid out exactly as CppNix 2.8 lays it out, then prepare its outputs
//! for registration. No store database, no locks, no scheduling: the caller
//! (the scheduler and `nix-store --realise`, later) reads the `.drv`, computes
//! the input closure, takes the output locks, and registers the results.
//!
//! The flow:
//! 0. [`BuildRequest::from_derivation`] from a parsed `.drv` and its input
//!    closure, then adjust the settings (timeouts, sandbox paths, cores).
//! 1. [`run_build`] with a [`BuildRequest`]: creates the build directory and the
//!    chroot, starts the builder in new user/mount/pid/ipc/uts(/network)
//!    namespaces (rootless: the sandbox's uid 1000 maps to the caller), streams
//!    its output to a log sink, enforces `timeout`, `max-silent-time` and the log
//!    limit, and returns a [`BuildOutcome`] with the [`BuildStatus`].
//! 2. [`BuildOutcome::move_outputs_to_store`]: outputs move from the chroot's
//!    store directory into the real one.
//! 3. [`canonicalise_path_metadata`] and [`scan_and_hash_output`] on each
//!    output: canonical permissions and times, then NAR hash, NAR size and
//!    references in one pass. [`BuildOutcome::finish_outputs`] does 2 and 3
//!    with CppNix's reference candidates.
//!
//! Above that, [`realise`] (module `scheduler`) is the next layer: the
//! derivation graph, `-j`, output locks, deleting stale invalid outputs,
//! registration in the store, logs, `--check` and `--repair` (sandboxed builds
//! only). Not done anywhere yet: floating
//! content-addressed outputs (scratch paths and rewriting), recursive Nix,
//! deciding when to build unsandboxed (`sandbox = false`, or `relaxed` with
//! `__noChroot`; this crate only runs what it is told, see
//! [`BuildRequest::sandbox`]), build hooks, and the outputs of `.drv` paths
//! inside an `exportReferencesGraph` closure.
//!
//! Assumptions: Linux with user namespaces (see [`BuildError::NamespacesUnavailable`]),
//! the chroot is created in the real store directory so outputs can be renamed
//! into place, and the real store is writable by the caller.

mod build_log;
mod builtins;
mod env;
mod error;
mod outputs;
mod refs;
mod request;
mod sandbox;
mod scheduler;
mod seccomp;
mod user_pool;

pub use builtins::{
    BuildEnvError, BuildEnvStats, Package, StoreLocation, build_profile, build_profile_in, builtin_buildenv,
    parse_derivations_attribute,
};
pub use env::{
    BuilderEnvironment, HOMELESS_SHELTER, builder_environment, impure_environment, structured_attrs_from_env,
};
pub use error::BuildError;
pub use outputs::{OutputInfo, STORE_MTIME, canonicalise_path_metadata, scan_and_hash_output};
pub use refs::{HASH_PART_LEN, ReferenceScanner};
pub use request::{
    AUTO_BUILD_ID, BuildRequest, BuildStatus, BuildUser, InputPathInfo, SANDBOX_GID, SANDBOX_UID, SandboxPath,
};
pub use user_pool::{UserLock, UserPool};
pub use sandbox::{BuildOutcome, FinishedOutput, run_build};
pub use scheduler::{
    BuildFailure, BuildSettings, DerivedPath, FailureKind, MissingPaths, RealiseResult, ScheduleError, SubstitutablePath, SubstituteOutcome,
    Substituter,
    log_path, query_missing, read_build_log, read_derivation, realise,
};
