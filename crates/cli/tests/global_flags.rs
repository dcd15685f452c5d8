//! Flags given to `nix` before the subcommand (`nix --option N V eval ...`,
//! `nix --store DIR path-info ...`) reach the subcommand, as in CppNix: each
//! case runs nivis and CppNix 2.8 with the same arguments and compares.

use std::path::Path;
use std::process::Output;

mod support;
use support::clean_tool;

fn run(ours: bool, dir: &Path, args: &[&str]) -> Output {
    clean_tool(ours, "nix", dir)
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .env("NIVIS_GLOBAL_FLAGS", "seen")
        .output()
        .unwrap()
}

#[test]
fn option_before_the_subcommand_is_applied() {
    if !Path::new("/usr/bin/nix").exists() {
        eprintln!("SKIPPED: CppNix (/usr/bin/nix) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = ["--option", "system", "i686-linux", "eval", "--impure", "--expr", "builtins.currentSystem"];
    let ours = run(true, dir.path(), &args);
    let theirs = run(false, dir.path(), &args);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    assert_eq!(String::from_utf8_lossy(&ours.stdout), "\"i686-linux\"\n");
    assert_eq!(ours.stdout, theirs.stdout);

    // Before the subcommand it is a command-line option still: `nix eval
    // --expr` is pure unless `--option pure-eval false` says otherwise.
    let args = ["--option", "pure-eval", "false", "eval", "--expr", "builtins.getEnv \"NIVIS_GLOBAL_FLAGS\""];
    let ours = run(true, dir.path(), &args);
    let theirs = run(false, dir.path(), &args);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    assert_eq!(String::from_utf8_lossy(&ours.stdout), "\"seen\"\n");
    assert_eq!(ours.stdout, theirs.stdout);

    // A setting already in NIX_CONFIG is overridden by the flag, not lost.
    let out = clean_tool(true, "nix", dir.path())
        .args(["--option", "system", "armv7l-linux", "eval", "--impure", "--expr", "builtins.currentSystem"])
        .env("NIX_CONFIG", "system = aarch64-linux")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\"armv7l-linux\"\n", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn store_before_the_subcommand_is_applied() {
    if !Path::new("/usr/bin/nix").exists() {
        eprintln!("SKIPPED: CppNix (/usr/bin/nix) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
    let store = dir.path().join("store-root");
    let store = store.to_str().unwrap();
    let added = std::process::Command::new("/usr/bin/nix-store")
        .args(["--store", store, "--add", "hello.txt"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let path = String::from_utf8(added.stdout).unwrap();
    let args = ["--store", store, "path-info", "--json", path.trim()];
    let ours = run(true, dir.path(), &args);
    let theirs = run(false, dir.path(), &args);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    let ours: serde_json::Value = serde_json::from_slice(&ours.stdout).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&theirs.stdout).unwrap();
    // 2.8 prints a list of objects with "path"; current CppNix (and nivis) an
    // object keyed by path.
    assert_eq!(theirs[0]["path"], path.trim());
    assert_eq!(ours[path.trim()]["narHash"], theirs[0]["narHash"]);
    assert_eq!(ours[path.trim()]["narSize"], theirs[0]["narSize"]);
}
