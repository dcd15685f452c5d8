//! Helpers for the derivation, narinfo and signature tests: a throw-away CppNix
//! 2.8 store (`local?root=<tmp>`, logical store dir `/nix/store`, so paths match
//! everyone's), CppNix binary caches made from it, and golden files re-accepted
//! with `NIVIS_ACCEPT=1`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether golden files are to be rewritten rather than compared.
pub fn accepting() -> bool {
    std::env::var_os("NIVIS_ACCEPT").is_some_and(|v| v == "1")
}

/// `crates/formats/tests/golden/<kind>`.
pub fn golden_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(kind)
}

/// Runs `/usr/bin/<program>`; returns stdout, panics with stderr on failure
/// (a failing reference is a broken test set-up, not a finding).
pub fn run_cppnix(program: &str, args: &[&str], cwd: &Path) -> String {
    let output = Command::new(format!("/usr/bin/{program}"))
        .args(args)
        .current_dir(cwd)
        .env("NIX_CONFIG", "experimental-features = nix-command ca-derivations impure-derivations")
        .env("XDG_CACHE_HOME", cwd.join(".cache"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/{program} (CppNix 2.8 is the test peer): {e}"));
    assert!(output.status.success(), "/usr/bin/{program} {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("CppNix output is UTF-8")
}

/// A CppNix store under a temporary directory.
pub struct PeerStore {
    pub dir: tempfile::TempDir,
}

impl PeerStore {
    pub fn new() -> PeerStore {
        PeerStore { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn uri(&self) -> String {
        format!("local?root={}/root", self.root().display())
    }

    /// Where the store path `/nix/store/<base name>` really is.
    pub fn real_path(&self, base_name: &str) -> PathBuf {
        self.root().join("root/nix/store").join(base_name)
    }

    /// Runs a CppNix command against this store (`--store` is added).
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let uri = self.uri();
        let mut all = vec!["--store", uri.as_str()];
        all.extend_from_slice(args);
        run_cppnix(program, &all, self.root())
    }

    /// Writes a file into the scratch directory (not the store).
    pub fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Every `.drv` in the store, as (base name, contents).
    pub fn derivations(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let store = self.root().join("root/nix/store");
        for entry in std::fs::read_dir(store).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.ends_with(".drv") {
                out.push((name, std::fs::read(entry.path()).unwrap()));
            }
        }
        out.sort();
        out
    }
}
