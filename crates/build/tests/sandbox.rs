//! Integration tests of the sandbox with real namespaces: a static busybox
//! builder in a temporary chroot store.

mod common;

use common::*;

#[test]
fn builder_writes_its_output() {
    if !sandbox_available("builder_writes_its_output") {
        return;
    }
    let store = Store::new();
    let request = store.shell_request(
        "hello",
        "mkdir $out; echo hello > $out/greeting; env > $out/env; id > $out/id; cat /proc/self/mountinfo > $out/mounts; ls -la / /dev /nix/store > $out/ls 2>&1; echo to-the-log; echo err >&2",
    );
    let (outcome, log) = build(&request);
    eprintln!("log: {log}");
    for f in ["env", "id", "mounts", "ls"] {
        eprintln!("== {f}\n{}", read_output_file(&outcome, f));
    }
    assert_eq!(outcome.status, nivis_build::BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "greeting"), "hello\n");
    assert_eq!(log, "to-the-log\nerr\n");
}
