//! `builtin:buildenv` against CppNix 2.8: CppNix's `nix-env` builds a user
//! environment in a chroot store; we run our builder on the same derivation
//! environment and compare the two trees as NARs (`nix-store --dump`), and
//! the collision error word for word.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_build::{StoreLocation, builtin_buildenv};
use nivis_formats::{Derivation, StoreDir};

fn cppnix_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let nix_env = Command::new("nix-env").arg("--version").output().is_ok_and(|o| o.status.success());
    if !root || !nix_env || !Path::new("/usr/bin/busybox").exists() {
        eprintln!("SKIPPED {test}: needs root, CppNix's nix-env and /usr/bin/busybox");
        return false;
    }
    true
}

/// Packages exercising every rule of the module comment: merged directories,
/// a directory symlink that must be expanded, hidden and ignored files, a
/// dangling symlink, a propagated package, priorities.
const PACKAGES: &str = r#"
let
  mk = name: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
  };
  c = mk "c-1.0" "mkdir -p $out/lib $out/bin; echo c > $out/lib/libc; echo c > $out/bin/c";
in {
  a = mk "a-1.0" ''
    mkdir -p $out/bin $out/share/man/man1 $out/nix-support $out/lib/perl5 $out/info
    echo a > $out/bin/a; echo h > $out/.hidden; echo l > $out/log; echo d > $out/info/dir
    echo p > $out/lib/perl5/perllocal.pod; ln -s /nonexistent $out/bin/dangling
    echo m > $out/share/man/man1/a.1; echo ${c} > $out/nix-support/propagated-user-env-packages
    echo manifest > $out/manifest.json
  '';
  b = (mk "b-2.0" ''
    mkdir -p $out/bin $out/share/doc; echo b > $out/bin/b; echo b > $out/bin/a
    echo d > $out/share/doc/b; ln -s $out/share/doc $out/docs; echo x > $out/lib
  '') // { meta.priority = 7; };
  d = (mk "d-1.0" "mkdir -p $out/share/man/man2 $out/docs/more; echo m > $out/share/man/man2/d.2; echo y > $out/docs/more/y") // { meta.priority = 3; };
  clash = mk "clash-1.0" "mkdir -p $out/bin; echo clash > $out/bin/a";
  fileshare1 = (mk "fileshare-1" "mkdir -p $out; echo f > $out/share") // { meta.priority = 1; };
  fileshare7 = (mk "fileshare-7" "mkdir -p $out; echo f > $out/share") // { meta.priority = 7; };
}
"#;

struct Peer {
    _dir: tempfile::TempDir,
    root: PathBuf,
    expr: PathBuf,
}

impl Peer {
    fn new() -> Peer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        let expr = dir.path().join("packages.nix");
        fs::write(&expr, PACKAGES).expect("write packages");
        Peer { _dir: dir, root, expr }
    }

    fn nix_env(&self, args: &[&str]) -> std::process::Output {
        Command::new("nix-env")
            .args(["--store", self.root.to_str().expect("utf-8")])
            .args(["-p", self.root.join("profile").to_str().expect("utf-8")])
            .args(["-f", self.expr.to_str().expect("utf-8")])
            .args(["--option", "sandbox-paths", "/bin/sh=/usr/bin/busybox"])
            .args(args)
            .env("HOME", self.root.join("home"))
            .output()
            .expect("run nix-env")
    }

    fn real_store(&self) -> PathBuf {
        self.root.join("nix/store")
    }

    /// The derivation environment of the profile's current generation.
    fn current_env(&self) -> (String, BTreeMap<String, String>) {
        let target = fs::read_link(self.root.join("profile")).expect("profile link");
        let generation = self.root.join(target);
        let out = fs::read_link(generation).expect("generation link");
        let out = out.to_str().expect("utf-8").to_string();
        let deriver = Command::new("nix-store")
            .args(["--store", self.root.to_str().expect("utf-8"), "-q", "--deriver", &out])
            .output()
            .expect("nix-store -q --deriver");
        let drv_path = String::from_utf8(deriver.stdout).expect("utf-8").trim().to_string();
        let bytes = fs::read(self.real_store().join(drv_path.trim_start_matches("/nix/store/"))).expect("read drv");
        let drv = Derivation::parse(&StoreDir::default(), &bytes).expect("parse drv");
        let env = drv
            .env
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        (out, env)
    }
}

fn dump(path: &Path) -> Vec<u8> {
    let output = Command::new("nix-store").arg("--dump").arg(path).output().expect("nix-store --dump");
    assert!(output.status.success(), "dump {}: {}", path.display(), String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[test]
fn same_tree_as_cppnix() {
    if !cppnix_available("same_tree_as_cppnix") {
        return;
    }
    let peer = Peer::new();
    let output = peer.nix_env(&["-iA", "a", "b", "d"]);
    assert!(output.status.success(), "CppNix nix-env: {}", String::from_utf8_lossy(&output.stderr));
    let (cppnix_out, mut env) = peer.current_env();
    let ours = "/nix/store/00000000000000000000000000000000-nivis-buildenv-test";
    env.insert("out".into(), ours.into());
    let location = StoreLocation { logical: "/nix/store".into(), real: peer.real_store(), visible: None };
    let stats = builtin_buildenv(&env, &location).expect("our buildenv");
    assert_eq!(
        dump(&peer.real_store().join(ours.trim_start_matches("/nix/store/"))),
        dump(&peer.real_store().join(cppnix_out.trim_start_matches("/nix/store/"))),
        "our tree differs from CppNix's {cppnix_out}"
    );
    let cppnix_log = String::from_utf8_lossy(&output.stderr);
    for warning in &stats.warnings {
        let cppnix_wording = warning.replace(ours, &cppnix_out);
        assert!(cppnix_log.contains(&cppnix_wording), "CppNix did not warn '{cppnix_wording}':\n{cppnix_log}");
    }
    assert!(!stats.warnings.is_empty(), "the dangling symlink is warned about");
}

#[test]
fn same_collision_errors_as_cppnix() {
    if !cppnix_available("same_collision_errors_as_cppnix") {
        return;
    }
    let peer = Peer::new();
    let cases: [(&[&str], &str); 3] = [
        (&["a", "clash"], "have the same priority 5"),
        (&["fileshare1", "a"], "and non-directory"),
        (&["a", "d", "fileshare7"], "collision between non-directory"),
    ];
    for (packages, expected) in cases {
        let mut args = vec!["-iA"];
        args.extend_from_slice(packages);
        let output = peer.nix_env(&args);
        assert!(!output.status.success(), "CppNix accepted a collision of {packages:?}");
        let cppnix_log = String::from_utf8_lossy(&output.stderr).into_owned();
        // CppNix left the derivation behind; read its environment from the store.
        let drv_path = cppnix_log
            .split('\'')
            .find(|s| s.ends_with("user-environment.drv"))
            .expect("CppNix names the derivation")
            .to_string();
        let bytes = fs::read(peer.real_store().join(drv_path.trim_start_matches("/nix/store/"))).expect("read drv");
        let drv = Derivation::parse(&StoreDir::default(), &bytes).expect("parse drv");
        let mut env: BTreeMap<String, String> = drv
            .env
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let cppnix_out = env["out"].clone();
        let ours = format!("/nix/store/00000000000000000000000000000000-nivis-buildenv-{}", packages.join("-"));
        env.insert("out".into(), ours.clone());
        let location = StoreLocation { logical: "/nix/store".into(), real: peer.real_store(), visible: None };
        let error = builtin_buildenv(&env, &location).expect_err("a collision");
        let message = format!("error: {error}").replace(&ours, &cppnix_out);
        assert!(message.contains(expected), "{message}");
        assert!(cppnix_log.contains(&message), "CppNix said:\n{cppnix_log}\nwe said:\n{message}");
    }
}
