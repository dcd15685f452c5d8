//! `sandbox = false`: the builder runs in the host's world, writes straight
//! into the store, and is still timed, logged and reaped (with its process
//! group, as there is no pid namespace to do it).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nivis_build::{BuildError, BuildRequest, BuildStatus, BuildUser, run_build};

/// A request on a store whose logical directory is its real one (the temp dir).
fn unsandboxed_request(store: &Store, name: &str, script: &str) -> BuildRequest {
    let store_dir = store.real_store_dir.clone();
    let busybox = store.real_path(&store.busybox);
    let out = store_dir.join(format!("{}-{name}", fake_hash_part(&format!("unsandboxed {name}"))));
    let drv_path = store_dir.join(format!("{}-{name}.drv", fake_hash_part(&format!("unsandboxed drv {name}"))));
    let mut request =
        BuildRequest::new(drv_path.to_string_lossy(), busybox.join("bin/sh").to_string_lossy(), store_dir.clone());
    request.store_dir = store_dir;
    request.sandbox = false;
    request.args = vec!["-c".to_string(), script.to_string()];
    request.tmp_root = store.tmp_root.clone();
    request.input_paths = vec![busybox.to_string_lossy().into_owned()];
    let out = out.to_string_lossy().into_owned();
    request.outputs = BTreeMap::from([("out".to_string(), out.clone())]);
    request.env = BTreeMap::from([
        ("out".to_string(), out),
        ("name".to_string(), name.to_string()),
        ("PATH".to_string(), busybox.join("bin").to_string_lossy().into_owned()),
    ]);
    // Without a sandbox the builder writes into the store directory itself,
    // which this test store only lets its owner do.
    request.build_user = Some(BuildUser::current());
    request
}

#[test]
fn unsandboxed_build_sees_the_host() {
    if !sandbox_available("unsandboxed_build_sees_the_host") {
        return;
    }
    let store = Store::new();
    let request = unsandboxed_request(
        &store,
        "host-world",
        "mkdir $out; echo $NIX_BUILD_TOP > $out/top; pwd > $out/pwd; cat /proc/sys/kernel/hostname > $out/hostname; \
         grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status > $out/status",
    );
    let mut log = Vec::new();
    let mut outcome = run_build(&request, &mut log).expect("run_build");
    assert_eq!(outcome.status, BuildStatus::Exited(0), "{}", String::from_utf8_lossy(&log));
    let out = Path::new(&request.outputs["out"]).to_path_buf();
    let build_dir = outcome.build_dir().to_path_buf();
    assert_eq!(fs::read_to_string(out.join("top")).expect("top"), format!("{}\n", build_dir.display()));
    assert_eq!(fs::read_to_string(out.join("pwd")).expect("pwd"), format!("{}\n", build_dir.display()));
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_eq!(fs::read_to_string(out.join("hostname")).expect("hostname"), host_name);
    assert_eq!(fs::read_to_string(out.join("status")).expect("status"), "NoNewPrivs:\t1\nSeccomp:\t2\n");
    let moved = outcome.move_outputs_to_store().expect("outputs are already in place");
    assert_eq!(moved["out"], out);
    drop(outcome);
    assert!(out.join("top").exists(), "the output stays");
    assert!(!build_dir.exists(), "the build directory is removed");
}

#[test]
fn unsandboxed_timeout_kills_the_process_group() {
    if !sandbox_available("unsandboxed_timeout_kills_the_process_group") {
        return;
    }
    let store = Store::new();
    let marker = store.root.path().join("background-pid");
    let mut request =
        unsandboxed_request(&store, "timeout", &format!("sleep 1000 & echo $! > {}; sleep 1000", marker.display()));
    request.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let outcome = run_build(&request, &mut Vec::new()).expect("run_build");
    assert_eq!(outcome.status, BuildStatus::TimedOut(Duration::from_secs(1)));
    assert!(started.elapsed() < Duration::from_secs(10));
    let background: u32 = fs::read_to_string(&marker).expect("marker").trim().parse().expect("pid");
    // The background sleep was killed with the group (and reaped by init).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{background}/cmdline")).exists()
        && fs::read_to_string(format!("/proc/{background}/stat")).is_ok_and(|stat| !stat.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "background process {background} survived the timeout");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn unsandboxed_needs_the_store_at_its_logical_location() {
    let store = Store::new();
    let mut request = store.shell_request("diverted", "true");
    request.sandbox = false;
    let error = run_build(&request, &mut Vec::new()).expect_err("a diverted store cannot build unsandboxed");
    assert!(matches!(error, BuildError::InvalidRequest(_)), "{error}");
}
