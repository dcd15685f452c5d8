//! `nix-instantiate` writing derivations: nivis and CppNix 2.8 instantiate the same
//! expression into stores of their own; they must print the same `.drv` paths,
//! write the same bytes, and CppNix must accept nivis's `.drv` files as valid
//! paths with the same references.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

const CPPNIX_BIN: &str = "/usr/bin";

fn nivis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nivis")).arg0("nix-instantiate").args(args).output().unwrap()
}

fn cppnix(tool: &str, args: &[&str]) -> Output {
    Command::new(format!("{CPPNIX_BIN}/{tool}")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const EXPRESSION: &str = r#"
let mk = name: deps: derivation {
      inherit name deps;
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "echo > $out" ];
      src = ./default.nix;
      script = builtins.toFile "script.sh" "echo ${name}";
    };
    a = mk "a" [ ];
    b = mk "b" [ a ];
in {
  inherit a b;
  notSearched = [ (mk "c" [ b ]) ];
  nested = { recurseForDerivations = true; d = mk "d" [ a b ]; };
  skipped = { e = mk "e" [ ]; };
  dev = (derivation { name = "m"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; }).dev;
}
"#;

#[test]
fn instantiation_matches_cppnix_and_cppnix_accepts_our_drvs() {
    if !Path::new(CPPNIX_BIN).join("nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("default.nix"), EXPRESSION).unwrap();
    let file = dir.path().join("default.nix");
    let file = file.to_str().unwrap();
    let our_root = dir.path().join("nivis-root");
    let their_root = dir.path().join("cppnix-root");

    let ours = nivis(&["--store", our_root.to_str().unwrap(), file]);
    let theirs = cppnix("nix-instantiate", &["--store", their_root.to_str().unwrap(), file]);
    assert!(ours.status.success(), "nivis failed: {}", text(&ours.stderr));
    assert!(theirs.status.success(), "CppNix failed: {}", text(&theirs.stderr));
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    assert_eq!(text(&ours.stderr), text(&theirs.stderr), "the GC-root warning");

    let printed = text(&ours.stdout);
    let mut references_seen = 0;
    assert_eq!(printed.lines().count(), 4, "a, b, dev and nested.d: {printed}");
    for line in printed.lines() {
        let drv_path = line.split('!').next().unwrap();
        let ours_bytes = std::fs::read(format!("{}{drv_path}", our_root.display())).unwrap();
        let theirs_bytes = std::fs::read(format!("{}{drv_path}", their_root.display())).unwrap();
        assert_eq!(ours_bytes, theirs_bytes, "{drv_path} differs");

        let store = our_root.to_str().unwrap();
        let verify = cppnix("nix-store", &["--store", store, "--verify-path", drv_path]);
        assert!(verify.status.success(), "CppNix: {}", text(&verify.stderr));
        let our_refs = cppnix("nix-store", &["--store", store, "--query", "--references", drv_path]);
        let their_refs =
            cppnix("nix-store", &["--store", their_root.to_str().unwrap(), "--query", "--references", drv_path]);
        assert_eq!(text(&our_refs.stdout), text(&their_refs.stdout), "references of {drv_path}");
        references_seen += text(&our_refs.stdout).lines().count();
    }
    assert!(references_seen >= 6, "sources, toFile scripts and input derivations are references");
}

#[test]
fn eval_is_read_only_and_matches_cppnix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let expr = r#"(derivation { name = "ro"; system = "x86_64-linux"; builder = "/bin/sh"; }).drvPath"#;
    let ours = nivis(&["--store", root.to_str().unwrap(), "--eval", "-E", expr]);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let drv_path = text(&ours.stdout).trim().trim_matches('"').to_string();
    assert!(drv_path.ends_with("-ro.drv"), "{drv_path}");
    assert!(!Path::new(&format!("{}{drv_path}", root.display())).exists(), "--eval wrote {drv_path}");
    if Path::new(CPPNIX_BIN).join("nix-instantiate").exists() {
        let theirs = cppnix("nix-instantiate", &["--store", "dummy://", "--eval", "-E", expr]);
        assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    }
}

#[test]
fn non_derivations_are_refused_as_cppnix_does() {
    let ours = nivis(&["--store", "dummy://", "-E", "42"]);
    assert_eq!(ours.status.code(), Some(1));
    assert!(
        text(&ours.stderr).contains("expression does not evaluate to a derivation (or a set or list of those)"),
        "{}",
        text(&ours.stderr)
    );
}
