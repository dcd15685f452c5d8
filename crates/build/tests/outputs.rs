//! After-build steps on a real build's output: moving into the store,
//! canonicalisation, reference scanning and the NAR hash, the last checked
//! against CppNix's `nix-hash` and `nix-store --dump`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use common::*;
use nivis_build::{BuildStatus, BuildUser, canonicalise_path_metadata, scan_and_hash_output};

fn walk(path: &Path, visit: &mut dyn FnMut(&Path, &fs::Metadata)) {
    let metadata = fs::symlink_metadata(path).expect("status");
    visit(path, &metadata);
    if metadata.is_dir() {
        for entry in fs::read_dir(path).expect("dir") {
            walk(&entry.expect("entry").path(), visit);
        }
    }
}

#[test]
fn outputs_are_canonicalised_scanned_and_hashed() {
    if !sandbox_available("outputs_are_canonicalised_scanned_and_hashed") {
        return;
    }
    let store = Store::new();
    let data = store.add_data("referenced-data", "some data");
    let unreferenced = store.add_data("unreferenced", "nobody mentions me");
    // A candidate that is not an input: the builder can still print its path.
    let not_an_input = format!("/nix/store/{}-elsewhere", fake_hash_part("elsewhere"));
    let script = format!(
        "mkdir -p $out/bin $out/private $out/share; \
         printf '#!%s/bin/sh\\necho tool\\n' {bb} > $out/bin/tool; chmod 755 $out/bin/tool; \
         echo \"prefix{data}/data suffix\" > $out/share/data-ref; \
         ln -s {not_an_input}/lib $out/share/link; \
         echo $out > $out/share/self; \
         echo secret > $out/private/file; chmod 600 $out/private/file; chmod 700 $out/private; \
         echo setuid > $out/bin/setuid; chmod 4755 $out/bin/setuid; \
         echo plain > $out/plain; chmod 664 $out/plain",
        bb = store.busybox,
    );
    let mut request = store.shell_request("outputs", &script);
    request.input_paths.push(data.clone());
    request.input_paths.push(unreferenced.clone());
    // Without the system-call filter the builder can make a setuid file, which
    // canonicalisation must then neutralise.
    request.filter_syscalls = false;
    let (mut outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    let moved = outcome.move_outputs_to_store().expect("move outputs");
    let out_path = &moved["out"];
    assert_eq!(out_path, &store.real_path(&request.outputs["out"]));
    drop(outcome);
    assert!(out_path.join("plain").exists(), "the output survives the cleanup of the chroot");
    let setuid_mode = fs::metadata(out_path.join("bin/setuid")).expect("setuid").permissions().mode();
    assert_eq!(setuid_mode & 0o7777, 0o4755, "the builder could not create the setuid file");

    // An extended attribute the canonicalisation must remove (tmpfs and ext4
    // take user.* attributes).
    let xattr_file = std::ffi::CString::new(out_path.join("plain").to_str().expect("utf-8")).expect("cstring");
    // SAFETY: NUL-terminated strings and a live value buffer.
    let set = unsafe { libc::setxattr(xattr_file.as_ptr(), c"user.nivis-test".as_ptr(), b"x".as_ptr().cast(), 1, 0) };

    let owner = BuildUser::current();
    canonicalise_path_metadata(out_path, Some((owner.uid, owner.gid))).expect("canonicalise");
    walk(out_path, &mut |path, metadata| {
        assert_eq!(metadata.mtime(), 1, "mtime of {}", path.display());
        assert_eq!((metadata.uid(), metadata.gid()), (owner.uid, owner.gid), "owner of {}", path.display());
        if !metadata.file_type().is_symlink() {
            let mode = metadata.permissions().mode() & 0o7777;
            let expected = if metadata.is_dir() || path.ends_with("bin/tool") || path.ends_with("bin/setuid") {
                0o555
            } else {
                0o444
            };
            assert_eq!(mode, expected, "mode of {}", path.display());
        }
    });
    if set == 0 {
        // SAFETY: a size query with a null buffer.
        let size = unsafe { libc::llistxattr(xattr_file.as_ptr(), std::ptr::null_mut(), 0) };
        assert_eq!(size, 0, "extended attributes left behind");
    }

    let own_path = request.outputs["out"].clone();
    let candidates =
        [store.busybox.clone(), data.clone(), unreferenced.clone(), not_an_input.clone(), own_path.clone()];
    let info = scan_and_hash_output(out_path, &candidates).expect("scan and hash");
    let expected: BTreeSet<String> = [store.busybox.clone(), data, not_an_input, own_path].into_iter().collect();
    assert_eq!(info.references, expected);

    // CppNix as the reference for the NAR hash and size.
    let nix_hash = Command::new("nix-hash").args(["--type", "sha256", "--base32"]).arg(out_path).output();
    match nix_hash {
        Ok(output) if output.status.success() => {
            assert_eq!(info.nar_hash.to_nix32(), String::from_utf8_lossy(&output.stdout).trim());
            let dump = Command::new("nix-store").arg("--dump").arg(out_path).output().expect("nix-store --dump");
            assert_eq!(info.nar_size, dump.stdout.len() as u64);
        }
        _ => skip_notice!("nix-hash (CppNix) is not installed: NAR hash not compared"),
    }
}

#[test]
fn reference_scan_of_a_large_output_is_exact() {
    // No sandbox needed: a file tree written here, with hash parts placed at
    // awkward offsets inside megabytes of nix32-looking filler.
    let root = tempfile::tempdir().expect("temp dir");
    let tree = root.path().join("tree");
    fs::create_dir_all(tree.join("sub")).expect("dirs");
    let referenced = format!("/nix/store/{}-one", fake_hash_part("one"));
    let in_name = format!("/nix/store/{}-two", fake_hash_part("two"));
    let absent = format!("/nix/store/{}-three", fake_hash_part("three"));
    let mut filler: Vec<u8> =
        (0..3_000_000u32).map(|i| b"0123456789abcdfghijklmnpqrsvwxyz"[(i * 7 % 31) as usize]).collect();
    filler[1_048_575..1_048_575 + referenced.len()].copy_from_slice(referenced.as_bytes());
    fs::write(tree.join("sub/big"), &filler).expect("big file");
    // A hash part only in a file name is a reference too: CppNix scans the
    // whole NAR serialisation.
    fs::write(tree.join(in_name.rsplit('/').next().expect("base")), "x").expect("named file");
    let info = scan_and_hash_output(&tree, [&referenced, &in_name, &absent]).expect("scan");
    assert_eq!(info.references, [referenced, in_name].into_iter().collect::<BTreeSet<_>>());
}
