//! Rootless builds: the same sandbox run by an unprivileged user. As root, the
//! test re-runs itself as `nobody` (uid 65534) through `setpriv`; as any other
//! user it runs directly.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use nivis_build::{BuildStatus, BuildUser, canonicalise_path_metadata, scan_and_hash_output};

const INNER: &str = "NIVIS_BUILD_ROOTLESS_INNER";
const DONE: &str = "rootless build checks passed";

#[test]
fn rootless_build() {
    if !sandbox_available("rootless_build") {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || std::env::var_os(INNER).is_some() {
        rootless_checks();
        println!("{DONE}");
        return;
    }
    let test_binary = std::env::current_exe().expect("test binary");
    let output = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&test_binary)
        .args(["--exact", "rootless_build", "--nocapture", "--test-threads", "1"])
        .env(INNER, "1")
        .current_dir("/")
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => {
            skip_notice!("SKIPPED rootless_build: cannot run setpriv ({error})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("SKIPPED") {
        skip_notice!("SKIPPED rootless_build as uid 65534: {stderr}");
        return;
    }
    assert!(output.status.success() && stdout.contains(DONE), "rootless run failed:\n{stdout}\n{stderr}");
}

fn rootless_checks() {
    let store = Store::new();
    let me = BuildUser::current();
    assert_ne!(me.uid, 0);
    let script = format!(
        "mkdir $out; id > $out/id; \
         attempt() {{ if \"$@\" 2>/dev/null; then echo \"succeeded: $*\"; else echo \"failed: $*\"; fi; }}; \
         {{ attempt mkdir /new-dir; attempt touch /etc/passwd-new; attempt touch {bb}/new; attempt chmod 777 {bb}/bin; \
            attempt sh -c 'echo evil > /proc/sys/kernel/hostname'; attempt touch /tmp/scratch; attempt touch /build/scratch; }} > $out/result",
        bb = store.busybox
    );
    let request = store.shell_request("rootless", &script);
    let (mut outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "id"), "uid=1000(nixbld) gid=100(nixbld)\n");
    assert_eq!(
        read_output_file(&outcome, "result"),
        format!(
            "failed: mkdir /new-dir\nfailed: touch /etc/passwd-new\nfailed: touch {bb}/new\nfailed: chmod 777 {bb}/bin\n\
             failed: sh -c echo evil > /proc/sys/kernel/hostname\nsucceeded: touch /tmp/scratch\nsucceeded: touch /build/scratch\n",
            bb = store.busybox
        )
    );
    let moved = outcome.move_outputs_to_store().expect("move");
    canonicalise_path_metadata(&moved["out"], None).expect("canonicalise");
    let info = scan_and_hash_output(&moved["out"], [&request.outputs["out"], &store.busybox]).expect("scan");
    assert_eq!(info.references.len(), 1, "only the busybox path is mentioned: {:?}", info.references);
    assert!(fs::metadata(moved["out"].join("id")).expect("id").permissions().readonly());
}
