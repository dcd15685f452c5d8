//! Golden NAR files: small fixed trees whose archives are kept in
//! `tests/golden/*.nar`. Each golden file must equal both our dump and
//! `nix-store --dump`; `NIVIS_ACCEPT=1 cargo test` rewrites them from our output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_formats::nar;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(name: &str, build: impl FnOnce(&Path)) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    build(&root);
    let mut ours = Vec::new();
    nar::dump_path(&root, &mut ours).unwrap();
    let output = Command::new("/usr/bin/nix-store").arg("--dump").arg(&root).output().unwrap();
    assert!(output.status.success());
    assert!(ours == output.stdout, "{name}: differs from nix-store --dump");
    let golden = golden_dir().join(format!("{name}.nar"));
    if std::env::var_os("NIVIS_ACCEPT").is_some() {
        fs::write(&golden, &ours).unwrap();
    }
    let expected = fs::read(&golden).unwrap_or_else(|e| panic!("{}: {e} (run with NIVIS_ACCEPT=1)", golden.display()));
    assert!(ours == expected, "{name}: differs from {}", golden.display());
}

fn write(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn golden_regular_file() {
    check("regular-file", |root| write(root, b"Hello, NAR!\n", 0o644));
}

#[test]
fn golden_empty_file() {
    check("empty-file", |root| write(root, b"", 0o644));
}

#[test]
fn golden_executable_file() {
    check("executable-file", |root| write(root, b"#!/bin/sh\necho hi\n", 0o755));
}

#[test]
fn golden_symlink() {
    check("symlink", |root| std::os::unix::fs::symlink("../target with space", root).unwrap());
}

#[test]
fn golden_empty_directory() {
    check("empty-directory", |root| fs::create_dir(root).unwrap());
}

#[test]
fn golden_nested_directory() {
    check("nested-directory", |root| {
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("share/doc/empty")).unwrap();
        write(&root.join("bin/tool"), b"#!/bin/sh\nexit 0\n", 0o555);
        write(&root.join("share/doc/README"), b"eight by", 0o444);
        write(&root.join("Zebra"), b"upper case sorts first", 0o644);
        write(&root.join("-dash"), b"", 0o644);
        write(&root.join("new\nline"), b"\0\x01\x02", 0o600);
        write(&root.join("\u{fc}mlaut"), b"unicode name", 0o644);
        std::os::unix::fs::symlink("bin/tool", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/nix/store/dangling", root.join("absolute")).unwrap();
    });
}
