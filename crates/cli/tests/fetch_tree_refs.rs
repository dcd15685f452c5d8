//! `builtins.fetchTree` with URL-like references (as current CppNix takes
//! them): forge references are parsed, flake registry references are refused
//! with a clear message, without touching the network.

use std::os::unix::process::CommandExt;
use std::process::Command;

fn eval(expr: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0("nix-instantiate")
        .args(["--store", dir.path().join("store").to_str().unwrap(), "--eval", "-E", expr])
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn registry_references_are_refused_clearly() {
    for reference in ["\"nixpkgs\"", "\"flake:nixpkgs\"", "{ type = \"indirect\"; id = \"nixpkgs\"; }"] {
        let (status, _, stderr) = eval(&format!("builtins.fetchTree {reference}"));
        assert_eq!(status, Some(1));
        assert!(stderr.contains("flake registry lookups are not supported yet"), "{reference}: {stderr}");
    }
}

#[test]
fn malformed_forge_references_are_refused() {
    let rev = "0123456789abcdef0123456789abcdef01234567";
    for (reference, message) in [
        ("github:only-owner".to_string(), "is invalid"),
        (format!("github:o/r/main?rev={rev}"), "contains both a commit hash and a branch/tag name"),
        ("gitlab:o/r?host=a:1".to_string(), "contains an invalid instance host"),
    ] {
        let (status, _, stderr) = eval(&format!("builtins.fetchTree \"{reference}\""));
        assert_eq!(status, Some(1));
        assert!(stderr.contains(message), "{reference}: {stderr}");
    }
    let (_, _, stderr) = eval("builtins.fetchTree { type = \"github\"; owner = \"o\"; repo = \"r\"; url = \"x\"; }");
    assert!(stderr.contains("unsupported input attribute 'url'"), "{stderr}");
}

#[test]
fn pure_evaluation_wants_a_rev_for_forge_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0("nix-instantiate")
        .args(["--store", dir.path().join("store").to_str().unwrap(), "--option", "pure-eval", "true", "--eval", "-E"])
        .arg("builtins.fetchTree { type = \"github\"; owner = \"o\"; repo = \"r\"; ref = \"main\"; }")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Current CppNix's layout: the builtin's frame first, the message last.
    assert!(stderr.starts_with("error:\n       … while calling the 'fetchTree' builtin"), "{stderr}");
    assert!(stderr.contains("\n       error: in pure evaluation mode, 'fetchTree' requires a locked input"), "{stderr}");
}
