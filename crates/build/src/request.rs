//! What a caller asks for ([`BuildRequest`]) and what it gets back
//! ([`BuildStatus`]). The request is plain data: the caller (the scheduler, later)
//! has already read the `.drv`, computed the input closure and taken the output
//! locks; this crate only runs the builder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::BuildError;

/// One entry of the `sandbox-paths` setting: `target=source`, or `path` for the
/// same path on both sides; a trailing `?` on the source makes it optional (a
/// missing source is skipped instead of failing the build).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxPath {
    /// Where the path appears inside the sandbox (absolute).
    pub target: PathBuf,
    /// Where it lives on the host (absolute).
    pub source: PathBuf,
    pub optional: bool,
}

impl SandboxPath {
    /// Parses one whitespace-free item of `sandbox-paths` the way CppNix does:
    /// `/bin/sh=/nix/store/...-busybox/bin/sh`, `/dev/kvm?`, `/etc/ssl=/etc/ssl?`.
    pub fn parse(item: &str) -> Result<SandboxPath, BuildError> {
        let (item, optional) = match item.strip_suffix('?') {
            Some(rest) => (rest, true),
            None => (item, false),
        };
        let (target, source) = match item.split_once('=') {
            Some((target, source)) => (target, source),
            None => (item, item),
        };
        if !target.starts_with('/') || !source.starts_with('/') {
            return Err(BuildError::InvalidRequest(format!("sandbox path '{item}' is not absolute")));
        }
        Ok(SandboxPath { target: target.into(), source: source.into(), optional })
    }

    /// Parses the whole `sandbox-paths` setting (whitespace-separated items).
    pub fn parse_list(setting: &str) -> Result<Vec<SandboxPath>, BuildError> {
        setting.split_whitespace().map(SandboxPath::parse).collect()
    }
}

/// The host identity the builder runs as. Inside the sandbox it is always uid
/// 1000 and gid 100 (`nixbld`), as in CppNix; this is what those ids map to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildUser {
    pub uid: u32,
    pub gid: u32,
}

impl BuildUser {
    /// The effective ids of this process.
    pub fn current() -> BuildUser {
        // SAFETY: geteuid/getegid cannot fail and touch no memory of ours.
        unsafe { BuildUser { uid: libc::geteuid(), gid: libc::getegid() } }
    }

    /// The build user when the request names none: the caller itself, except
    /// for root. A builder whose ids are the host's root would pass every
    /// permission check on root-owned files it can reach (`/proc/sysrq-trigger`
    /// for one), capabilities or not; so root builds as [`AUTO_BUILD_ID`], the
    /// first id of CppNix's `auto-allocate-uids` range. (With
    /// `build-users-group` set, `realise` takes a member of that group
    /// instead: see [`crate::UserPool`].)
    pub fn default_for_caller() -> BuildUser {
        let current = BuildUser::current();
        if current.uid == 0 { BuildUser { uid: AUTO_BUILD_ID, gid: AUTO_BUILD_ID } } else { current }
    }
}

/// The host uid and gid root callers build as by default (CppNix's `start-id`).
pub const AUTO_BUILD_ID: u32 = 872_415_232;

/// What the store knows about a path of the input closure; needed only for
/// `exportReferencesGraph`, which hands this data to the builder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputPathInfo {
    pub nar_hash: nivis_formats::Hash,
    pub nar_size: u64,
    /// Full store paths.
    pub references: BTreeSet<String>,
    /// The content address (`fixed:r:sha256:...`, `text:sha256:...`), if any.
    pub ca: Option<String>,
}

/// The uid and gid of the build user inside the sandbox (CppNix's `sandboxUid()`
/// and `sandboxGid()` without the `uid-range` feature).
pub const SANDBOX_UID: u32 = 1000;
pub const SANDBOX_GID: u32 = 100;

/// Everything needed to run one derivation's builder in the sandbox.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The logical path of the `.drv` (`/nix/store/<hash>-<name>.drv`). Names the
    /// temporary build directory (`nix-build-<name>.drv-<n>`) and the chroot
    /// (`<real store>/<hash>-<name>.drv.chroot`), as CppNix does.
    pub drv_path: String,
    /// The builder executable, as seen inside the sandbox.
    pub builder: String,
    pub args: Vec<String>,
    /// The derivation's environment exactly as in the `.drv` (`out`, `name`,
    /// `system`, `passAsFile`, ...). The builder's final environment is derived
    /// from it by [`crate::builder_environment`].
    pub env: BTreeMap<String, String>,
    /// `Some(attrs)` for `__structuredAttrs = true` derivations: the parsed
    /// `__json` object. It is written, with `outputs` filled in, to
    /// `.attrs.json` and `.attrs.sh` in the build directory, and `env` is then
    /// not passed through the environment.
    pub structured_attrs: Option<serde_json::Map<String, serde_json::Value>>,
    /// The logical store paths of the whole input closure (inputSrcs plus the
    /// closures of the input derivations' outputs). Only these are visible.
    pub input_paths: Vec<String>,
    /// Path info of the input closure's paths (full store path to info), for
    /// `exportReferencesGraph`; may stay empty when the derivation does not
    /// use it.
    pub input_path_infos: BTreeMap<String, InputPathInfo>,
    /// Output name to logical store path.
    pub outputs: BTreeMap<String, String>,
    /// The logical store directory (`/nix/store`).
    pub store_dir: PathBuf,
    /// Where the store really is on this machine: `store_dir` itself, or
    /// `DIR/nix/store` for a chroot store. The chroot is created here, so outputs
    /// can be renamed into place.
    pub real_store_dir: PathBuf,
    /// Where the temporary build directory is created (CppNix: `build-dir`,
    /// `$TMPDIR` or `/tmp`).
    pub tmp_root: PathBuf,
    /// The build directory as the builder sees it (`sandbox-build-dir`).
    pub sandbox_build_dir: PathBuf,
    /// The `sandbox-paths` and `extra-sandbox-paths` settings.
    pub sandbox_paths: Vec<SandboxPath>,
    /// Fixed-output derivations keep the host's network (and get
    /// `/etc/resolv.conf`, `/etc/services`, `/etc/hosts` from the host).
    pub fixed_output: bool,
    /// The values of the derivation's `impureEnvVars` taken from the caller's
    /// environment; only used when `fixed_output`.
    pub impure_env: BTreeMap<String, String>,
    /// `NIX_BUILD_CORES` (the `cores` setting).
    pub build_cores: u32,
    /// The `timeout` setting: wall-clock limit for the whole build.
    pub timeout: Option<Duration>,
    /// The `max-silent-time` setting: limit on time without any output.
    pub max_silent_time: Option<Duration>,
    /// The `max-build-log-size` setting, in bytes.
    pub max_log_size: Option<u64>,
    /// The `sandbox-dev-shm-size` setting (tmpfs `size=` option).
    pub dev_shm_size: String,
    /// Make `/dev/kvm` visible if the host has it. CppNix does so whenever the
    /// `system-features` setting contains `kvm` (its default on hosts with
    /// `/dev/kvm`), whatever the derivation requires; so this defaults to true,
    /// and a caller whose `system-features` lacks `kvm` sets it to false.
    pub kvm: bool,
    /// Host ids the sandbox's uid 1000 / gid 100 map to; `None` for
    /// [`BuildUser::default_for_caller`] (the caller's own ids, or
    /// [`AUTO_BUILD_ID`] for root). When the build user is the caller (the
    /// rootless case), the builder owns the chroot skeleton, so the chroot's
    /// root is mounted read-only except `/tmp`, the store and `/build`.
    pub build_user: Option<BuildUser>,
    /// Keep the temporary build directory afterwards (`--keep-failed`).
    pub keep_build_dir: bool,
    /// The derivation's `system` (platform). An `i686-linux` build on an
    /// x86_64 host runs with the 32-bit personality, so `uname` agrees.
    pub system: String,
    /// The `sandbox` setting. When false the builder runs without namespaces
    /// or chroot, sees the whole host, writes its outputs straight into the
    /// store, and its build directory is the host one (as CppNix with
    /// `sandbox = false`); this needs the store at its logical location
    /// (`real_store_dir == store_dir`). Timeouts then kill the builder's
    /// process group.
    pub sandbox: bool,
    /// The `filter-syscalls` setting: forbid setuid/setgid files and extended
    /// attributes with a seccomp filter.
    pub filter_syscalls: bool,
    /// The `allow-new-privileges` setting: when false (the default) and the
    /// filter is on, the builder runs with `PR_SET_NO_NEW_PRIVS`.
    pub allow_new_privileges: bool,
}

impl BuildRequest {
    /// A request with CppNix's defaults for everything that is a setting.
    pub fn new(
        drv_path: impl Into<String>,
        builder: impl Into<String>,
        real_store_dir: impl Into<PathBuf>,
    ) -> BuildRequest {
        BuildRequest {
            drv_path: drv_path.into(),
            builder: builder.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            structured_attrs: None,
            input_paths: Vec::new(),
            input_path_infos: BTreeMap::new(),
            outputs: BTreeMap::new(),
            store_dir: PathBuf::from("/nix/store"),
            real_store_dir: real_store_dir.into(),
            tmp_root: std::env::temp_dir(),
            sandbox_build_dir: PathBuf::from("/build"),
            sandbox_paths: Vec::new(),
            fixed_output: false,
            impure_env: BTreeMap::new(),
            build_cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            timeout: None,
            max_silent_time: None,
            max_log_size: None,
            dev_shm_size: "50%".to_string(),
            kvm: true,
            build_user: None,
            keep_build_dir: false,
            system: format!("{}-linux", std::env::consts::ARCH),
            sandbox: true,
            filter_syscalls: true,
            allow_new_privileges: false,
        }
    }
}

/// How the builder ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildStatus {
    /// The builder exited with this code (0 is success).
    Exited(i32),
    /// The builder was killed by this signal (not by us).
    Signaled(i32),
    /// Killed by us: the `timeout` expired.
    TimedOut(Duration),
    /// Killed by us: no output for `max-silent-time`.
    SilentTooLong(Duration),
    /// Killed by us: the log grew beyond `max-build-log-size`.
    LogLimitExceeded(u64),
}

impl BuildStatus {
    pub fn success(&self) -> bool {
        *self == BuildStatus::Exited(0)
    }

    /// The message CppNix prints for a failed build, after
    /// `builder for '<drv>' ...`.
    pub fn describe(&self) -> String {
        match self {
            BuildStatus::Exited(0) => "succeeded".to_string(),
            BuildStatus::Exited(code) => format!("failed with exit code {code}"),
            BuildStatus::Signaled(signal) => format!("failed due to signal {signal}"),
            BuildStatus::TimedOut(limit) => format!("timed out after {} seconds", limit.as_secs()),
            BuildStatus::SilentTooLong(limit) => {
                format!("timed out after {} seconds of silence", limit.as_secs())
            }
            BuildStatus::LogLimitExceeded(limit) => {
                format!("killed after writing more than {limit} bytes of log output")
            }
        }
    }
}

impl BuildRequest {
    /// The request for building `drv` (read from `drv_path`) with CppNix's
    /// defaults for every setting. `input_closure` is the closure of the
    /// derivation's inputs (its input sources and the needed outputs of its
    /// input derivations, with their references), which only the store can
    /// compute. Fixed-output derivations get the `impureEnvVars` values from
    /// this process's environment, structured-attrs derivations their parsed
    /// `__json`.
    ///
    /// Limits for now: the builder, arguments and environment must be UTF-8,
    /// and every output's path must be known before the build (input-addressed
    /// or fixed-output; not floating content-addressed, deferred or impure).
    pub fn from_derivation(
        store_dir: &nivis_formats::StoreDir,
        drv_path: &nivis_formats::StorePath,
        drv: &nivis_formats::Derivation,
        input_closure: &nivis_formats::StorePathSet,
        real_store_dir: impl Into<PathBuf>,
    ) -> Result<BuildRequest, BuildError> {
        let text = |bytes: &[u8], what: &str| -> Result<String, BuildError> {
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                BuildError::InvalidRequest(format!("the derivation's {what} is not UTF-8, which is not supported yet"))
            })
        };
        let mut request =
            BuildRequest::new(store_dir.print_path(drv_path), text(&drv.builder, "builder")?, real_store_dir);
        request.store_dir = PathBuf::from(store_dir.as_str());
        request.args = drv.args.iter().map(|arg| text(arg, "argument list")).collect::<Result<_, _>>()?;
        for (name, value) in &drv.env {
            request.env.insert(text(name, "environment")?, text(value, "environment")?);
        }
        for (name, output) in &drv.outputs {
            let path = output.path().ok_or_else(|| {
                BuildError::InvalidRequest(format!(
                    "output '{name}' of '{}' has no path before the build (content-addressed, deferred or impure outputs are not supported yet)",
                    request.drv_path
                ))
            })?;
            request.outputs.insert(name.clone(), store_dir.print_path(path));
        }
        request.input_paths = input_closure.iter().map(|path| store_dir.print_path(path)).collect();
        request.fixed_output = drv.is_fixed_output();
        if request.fixed_output {
            request.impure_env = crate::env::impure_environment(&request.env);
        }
        request.structured_attrs = crate::env::structured_attrs_from_env(&request.env)?;
        request.system = text(&drv.platform, "platform")?;
        Ok(request)
    }
}
