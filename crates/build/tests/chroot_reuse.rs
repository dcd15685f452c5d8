//! Chroot skeletons reused between the builds of one `realise`: the second
//! build really gets the first one's skeleton (same `/etc` inode), yet sees
//! nothing the first builder left in `/tmp` or the store directory, and no
//! chroot is left in the store when `realise` returns.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{BUSYBOX, sandbox_available};
use nivis_build::{BuildSettings, DerivedPath, realise};
use nivis_store::StoreSettings;

#[test]
fn a_reused_chroot_shows_nothing_of_the_previous_build() {
    if !sandbox_available("a_reused_chroot_shows_nothing_of_the_previous_build") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/nix-instantiate").exists() {
        skip_notice!("SKIPPED a_reused_chroot_shows_nothing_of_the_previous_build: needs root and CppNix's nix-instantiate");
        return;
    }
    let dir = tempfile::Builder::new().prefix("nivis-chroot-reuse").tempdir().expect("temp dir");
    let bin = dir.path().join("bb/bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("busybox");
    for applet in ["sh", "mkdir", "echo", "ls", "stat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet");
    }
    // `dirty` litters every place a builder can write besides its output;
    // `check` runs after it (it depends on it) and reports what it finds.
    let expression = format!(
        r#"let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: script: extra: derivation ({{ inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh"; PATH = "${{bb}}/bin"; args = [ "-c" script ]; }} // extra);
  dirty = mk "dirty" "mkdir $out; stat -c %i /etc > $out/etc-inode; echo secret > /tmp/left-behind; mkdir /tmp/dir-left-behind; echo junk > /nix/store/junk-from-dirty; mkdir /nix/store/dir-from-dirty" {{}};
in mk "check" "mkdir $out; stat -c %i /etc > $out/etc-inode; ls -a /tmp > $out/tmp; ls /nix/store > $out/store" {{ dirty = dirty; }}"#,
        dir = dir.path().display()
    );
    let root = dir.path().join("store");
    let output =
        Command::new("/usr/bin/nix-instantiate").arg("--store").arg(&root).args(["-E", &expression]).output().expect("nix-instantiate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let drv = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let store = nivis_store::open_store(root.to_str().expect("utf-8"), &StoreSettings::from_env()).expect("open store");
    let drv_path = store.parse_store_path(&drv).expect("drv path");
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).expect("tmp");
    let settings = BuildSettings { print_build_logs: false, tmp_root: tmp, ..BuildSettings::default() };

    let result = realise(store.as_ref(), &[DerivedPath { drv_path: drv_path.clone(), outputs: None }], &settings, None)
        .expect("realise");
    assert!(result.failures.is_empty(), "{:?}", result.failures);
    assert_eq!(result.built.len(), 2);

    let real_store = root.join("nix/store");
    let output_of = |name: &str| {
        let entry = fs::read_dir(&real_store)
            .expect("store")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .find(|base| base.ends_with(&format!("-{name}")))
            .unwrap_or_else(|| panic!("no output named {name}"));
        real_store.join(entry)
    };
    let (dirty, check) = (output_of("dirty"), output_of("check"));
    let read = |path: &Path| fs::read_to_string(path).expect("read");
    assert_eq!(read(&dirty.join("etc-inode")), read(&check.join("etc-inode")), "the skeleton was not reused");
    assert_eq!(read(&check.join("tmp")), ".\n..\n");
    // The inputs (busybox, `dirty`'s output) and the output being built.
    let mut seen: Vec<String> = read(&check.join("store")).lines().map(str::to_string).collect();
    seen.sort();
    let mut expected: Vec<String> = [output_of("busybox"), dirty, check]
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(seen, expected);

    let chroots: Vec<String> = fs::read_dir(&real_store)
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".chroot"))
        .collect();
    assert!(chroots.is_empty(), "chroots left behind: {chroots:?}");
}
