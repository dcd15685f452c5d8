//! The package set in `examples/default.nix`, built as README.md's main job
//! builds it: the hello-world C program (`hello-c`, the host's gcc seen
//! through sandbox paths, linked statically) by nivis and by CppNix 2.8 into
//! fresh chroot stores, with the same output path, the same NAR hash and no
//! references; it runs, and `--check` finds the build deterministic.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{cppnix_available, sandbox_available};

/// What `examples/run` passes: busybox as `/bin/sh` for the first package,
/// and the host's compiler, headers and libraries for `hello-c`.
const SANDBOX_PATHS: &str = "/bin/sh=/usr/bin/busybox /usr /lib /lib64";

/// Whether the C example can be built here; says why not.
fn available(test: &str) -> bool {
    let gcc = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    let static_libc = fs::metadata("/usr/lib/x86_64-linux-gnu/libc.a").is_ok();
    if !(gcc && static_libc) {
        eprintln!("SKIPPED {test}: needs gcc and libc6-dev (libc.a)");
        return false;
    }
    sandbox_available(test)
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `nix-build examples -A attr --no-out-link` on `store` with `program`.
fn nix_build(program: &Path, work: &Path, store: &Path, attr: &str, extra: &[&str]) -> Output {
    Command::new(program)
        .current_dir(work)
        .env("NIX_CONFIG", "substituters =")
        .env_remove("NIX_REMOTE")
        .arg("--store")
        .arg(store)
        .arg(examples_dir())
        .args(["-A", attr, "--no-out-link", "--option", "sandbox-paths", SANDBOX_PATHS])
        .args(extra)
        .output()
        .expect("run nix-build")
}

fn query_hash(store: &Path, path: &str) -> String {
    let output = Command::new("/usr/bin/nix-store")
        .arg("--store")
        .arg(store)
        .args(["--query", "--hash", path])
        .output()
        .expect("nix-store --query --hash");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

#[test]
fn hello_c_builds_like_cppnix() {
    if !available("hello_c_builds_like_cppnix") {
        return;
    }
    let work = tempfile::Builder::new().prefix("nivis-examples").tempdir().expect("temp dir");
    let nix_build_link = work.path().join("nix-build");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), &nix_build_link).expect("link");
    let ours = work.path().join("nivis");

    let output = nix_build(&nix_build_link, work.path(), &ours, "hello-c", &[]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let out = text(&output.stdout).trim().to_string();
    assert!(out.starts_with("/nix/store/") && out.ends_with("-hello-c"), "{out}");

    // It runs straight from the store directory on the host: static, no interpreter.
    let program = ours.join("nix/store").join(out.trim_start_matches("/nix/store/")).join("bin/hello-c");
    let run = Command::new(&program).output().expect("run hello-c");
    assert!(run.status.success());
    assert_eq!(text(&run.stdout), "Hello, world! (a static C program built in a Nix-compatible sandbox)\n");
    let elf = fs::read(&program).expect("read program");
    assert!(!elf.windows(b".interp".len()).any(|w| w == b".interp"), "hello-c is not static");

    // It refers to nothing, not even to the busybox it was built with.
    let references = Command::new("/usr/bin/nix-store")
        .arg("--store")
        .arg(&ours)
        .args(["--query", "--references", &out])
        .output()
        .expect("query references");
    assert!(references.status.success(), "{}", text(&references.stderr));
    assert_eq!(text(&references.stdout), "");

    // gcc is deterministic here: a rebuild has the same NAR hash.
    let check = nix_build(&nix_build_link, work.path(), &ours, "hello-c", &["--check"]);
    assert!(check.status.success(), "{}", text(&check.stderr));

    if !cppnix_available() {
        eprintln!("CppNix 2.8 not available (or not root): not comparing with it");
        return;
    }
    let theirs = work.path().join("cppnix");
    let output = nix_build(Path::new("/usr/bin/nix-build"), work.path(), &theirs, "hello-c", &[]);
    assert!(output.status.success(), "CppNix: {}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), out, "output paths differ");
    assert_eq!(query_hash(&ours, &out), query_hash(&theirs, &out), "NAR hashes differ");
}
