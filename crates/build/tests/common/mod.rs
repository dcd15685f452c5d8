//! Test fixtures: a temporary chroot store (`DIR/nix/store`) holding a static
//! busybox as a store path, and checks that skip (loudly) where the machine
//! cannot run sandboxed builds.

#![allow(dead_code)]

/// Prints a notice that bypasses libtest's output capture (which swallows
/// `eprintln!` of passing tests), so a skipped check is visible in every run.
#[macro_export]
macro_rules! skip_notice {
    ($($argument:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($argument)*);
    }};
}

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_build::{BuildOutcome, BuildRequest, run_build};

pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Applets the test builders use, as symlinks in the busybox store path.
const APPLETS: &[&str] = &[
    "sh", "env", "id", "hostname", "cat", "pwd", "ls", "mkdir", "ifconfig", "echo", "touch", "chmod", "ln", "sleep",
    "nc", "readlink", "stat", "sort", "head", "dd", "rm", "cp", "true", "false", "printf", "sed", "awk", "test",
    "wget", "mount", "ps", "kill", "find", "wc", "grep", "uname",
];

/// Whether sandboxed builds can run here. Prints why not, so a skipped test is
/// visible in the output rather than silently green.
pub fn sandbox_available(test: &str) -> bool {
    if !is_static_executable(Path::new(BUSYBOX)) {
        skip_notice!("SKIPPED {test}: {BUSYBOX} is missing or not statically linked (apt-get install busybox-static)");
        return false;
    }
    let unshare =
        Command::new("unshare").args(["-U", "-m", "-p", "-f", "--mount-proc", "-n", "-i", "-u", "true"]).status();
    if !matches!(unshare, Ok(status) if status.success()) {
        skip_notice!("SKIPPED {test}: user namespaces are not available (`unshare -U true` failed)");
        return false;
    }
    true
}

/// Whether `path` is a 64-bit ELF executable without a program interpreter
/// (statically linked), so it runs in a sandbox that has no libc.
fn is_static_executable(path: &Path) -> bool {
    let Ok(elf) = fs::read(path) else { return false };
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 {
        return false;
    }
    let read_u16 = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let program_headers = u64::from_le_bytes(elf[0x20..0x28].try_into().expect("eight bytes")) as usize;
    let (entry_size, count) = (read_u16(0x36), read_u16(0x38));
    const PT_INTERP: u32 = 3;
    (0..count).all(|index| {
        let at = program_headers + index * entry_size;
        elf.get(at..at + 4)
            .is_some_and(|p_type| u32::from_le_bytes(p_type.try_into().expect("four bytes")) != PT_INTERP)
    })
}

/// A hash part that looks like a real one (32 nix32 characters), derived from `seed`.
pub fn fake_hash_part(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    Sha256::digest(seed.as_bytes()).iter().take(32).map(|byte| ALPHABET[(*byte % 32) as usize] as char).collect()
}

pub struct Store {
    pub root: tempfile::TempDir,
    pub real_store_dir: PathBuf,
    pub tmp_root: PathBuf,
    /// Logical path of the busybox store path (a directory with `bin/<applet>`).
    pub busybox: String,
}

impl Store {
    pub fn new() -> Store {
        let root = tempfile::Builder::new().prefix("nivis-build-test").tempdir().expect("temp dir");
        let real_store_dir = root.path().join("nix/store");
        fs::create_dir_all(&real_store_dir).expect("store dir");
        let tmp_root = root.path().join("tmp");
        fs::create_dir_all(&tmp_root).expect("tmp dir");
        let mut store = Store { root, real_store_dir, tmp_root, busybox: String::new() };
        store.busybox = store.add_busybox("busybox");
        store
    }

    /// Adds busybox as a directory store path `<hash>-<name>` with applet symlinks.
    pub fn add_busybox(&self, name: &str) -> String {
        let base = format!("{}-{name}", fake_hash_part(name));
        let bin = self.real_store_dir.join(&base).join("bin");
        fs::create_dir_all(&bin).expect("busybox bin dir");
        fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
        format!("/nix/store/{base}")
    }

    /// Adds a directory store path holding one file `data` with `contents`.
    pub fn add_data(&self, name: &str, contents: &str) -> String {
        let base = format!("{}-{name}", fake_hash_part(name));
        let dir = self.real_store_dir.join(&base);
        fs::create_dir_all(&dir).expect("data dir");
        fs::write(dir.join("data"), contents).expect("data file");
        format!("/nix/store/{base}")
    }

    pub fn output_path(&self, name: &str) -> String {
        format!("/nix/store/{}-{name}", fake_hash_part(&format!("output {name}")))
    }

    /// A request whose builder is busybox `sh -c script`, with `out` as output.
    pub fn shell_request(&self, name: &str, script: &str) -> BuildRequest {
        let drv_path = format!("/nix/store/{}-{name}.drv", fake_hash_part(&format!("drv {name}")));
        let out = self.output_path(name);
        let mut request = BuildRequest::new(drv_path, format!("{}/bin/sh", self.busybox), self.real_store_dir.clone());
        request.args = vec!["-c".to_string(), script.to_string()];
        request.tmp_root = self.tmp_root.clone();
        request.input_paths = vec![self.busybox.clone()];
        request.outputs = BTreeMap::from([("out".to_string(), out.clone())]);
        request.env = BTreeMap::from([
            ("builder".to_string(), request.builder.clone()),
            ("name".to_string(), name.to_string()),
            ("system".to_string(), "x86_64-linux".to_string()),
            ("out".to_string(), out),
            ("PATH".to_string(), format!("{}/bin", self.busybox)),
        ]);
        request.build_cores = 2;
        request
    }

    pub fn real_path(&self, logical: &str) -> PathBuf {
        self.real_store_dir.join(logical.rsplit('/').next().expect("base name"))
    }
}

/// Runs a build, returning the outcome and the log as text.
pub fn build(request: &BuildRequest) -> (BuildOutcome, String) {
    let mut log = Vec::new();
    let outcome = run_build(request, &mut log).unwrap_or_else(|e| panic!("run_build failed: {e}"));
    (outcome, String::from_utf8_lossy(&log).into_owned())
}

/// Reads `file` from output `name` while it is still in the chroot.
pub fn read_output_file(outcome: &BuildOutcome, file: &str) -> String {
    let path = outcome.output_location("out").expect("output").join(file);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
