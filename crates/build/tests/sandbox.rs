//! Integration tests of the sandbox with real namespaces: a static busybox
//! builder in a temporary chroot store.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use nivis_build::{BuildError, BuildStatus};

#[test]
fn builder_writes_its_output() {
    if !sandbox_available("builder_writes_its_output") {
        return;
    }
    let store = Store::new();
    let request = store.shell_request("hello", "mkdir $out; echo hello > $out/greeting; echo to-the-log; echo err >&2");
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "greeting"), "hello\n");
    assert_eq!(log, "to-the-log\nerr\n");
}

/// Runs `script` and returns the file `result` it wrote to `$out`.
fn run_and_read(store: &Store, name: &str, script: &str) -> String {
    let request = store.shell_request(name, script);
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    read_output_file(&outcome, "result")
}

#[test]
fn host_files_are_invisible() {
    if !sandbox_available("host_files_are_invisible") {
        return;
    }
    let store = Store::new();
    let secret = store.root.path().join("secret");
    fs::write(&secret, "host secret").expect("secret");
    assert!(Path::new("/etc/hostname").exists(), "the host must have /etc/hostname for this test to mean anything");
    let script = format!(
        "mkdir $out; for f in /etc/hostname {secret} /etc/shadow /root /home /usr/bin/busybox /var; do \
           if cat $f >/dev/null 2>&1 || ls $f >/dev/null 2>&1; then echo \"visible $f\"; else echo \"hidden $f\"; fi; \
         done > $out/result",
        secret = secret.display()
    );
    let result = run_and_read(&store, "host-files", &script);
    assert!(!result.contains("visible"), "the builder saw host files:\n{result}");
    assert_eq!(result.lines().count(), 7, "{result}");
}

#[test]
fn builder_cannot_write_outside_its_outputs() {
    if !sandbox_available("builder_cannot_write_outside_its_outputs") {
        return;
    }
    let store = Store::new();
    let busybox_bin = store.real_path(&store.busybox).join("bin/busybox");
    let before = fs::read(&busybox_bin).expect("busybox");
    let script = format!(
        "mkdir $out; bb={bb}; \
         attempt() {{ if \"$@\" 2>/dev/null; then echo \"succeeded: $*\"; else echo \"failed: $*\"; fi; }}; \
         {{ attempt touch $bb/new-file; \
            attempt sh -c \"echo x > $bb/bin/busybox\"; \
            attempt chmod 777 $bb/bin; \
            attempt rm $bb/bin/sh; \
            attempt mkdir /new-dir; \
            attempt touch /etc/passwd-new; \
            attempt sh -c 'echo evil > /proc/sys/kernel/hostname'; \
            attempt mkdir /nix/new-dir; }} > $out/result",
        bb = store.busybox
    );
    let result = run_and_read(&store, "write-outside", &script);
    assert!(!result.contains("succeeded"), "the builder wrote outside its outputs:\n{result}");
    assert_eq!(result.lines().count(), 8, "{result}");
    assert_eq!(fs::read(&busybox_bin).expect("busybox"), before, "an input was modified");
    assert!(!store.real_path(&store.busybox).join("new-file").exists());
    assert_eq!(fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim_end(), hostname_of_host());
}

fn hostname_of_host() -> String {
    let output = std::process::Command::new("hostname").output().expect("hostname");
    String::from_utf8_lossy(&output.stdout).trim_end().to_string()
}

#[test]
fn only_inputs_and_outputs_are_in_the_store() {
    if !sandbox_available("only_inputs_and_outputs_are_in_the_store") {
        return;
    }
    let store = Store::new();
    let input = store.add_data("declared-input", "declared");
    let undeclared = store.add_data("undeclared", "undeclared");
    let mut request = store.shell_request(
        "store-view",
        &format!(
            "mkdir $out; ls /nix/store > $out/result; cat {input}/data >> $out/result; echo >> $out/result; \
             if cat {undeclared}/data 2>/dev/null; then echo undeclared-visible; else echo undeclared-hidden; fi >> $out/result"
        ),
    );
    request.input_paths.push(input.clone());
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    let result = read_output_file(&outcome, "result");
    let base = |path: &str| path.rsplit('/').next().expect("base").to_string();
    let mut expected = vec![base(&store.busybox), base(&input), base(&request.outputs["out"])];
    expected.sort();
    let listed: Vec<String> = result.lines().take(3).map(str::to_string).collect();
    assert_eq!(listed, expected, "{result}");
    assert_eq!(result.lines().nth(3), Some("declared"));
    assert_eq!(result.lines().nth(4), Some("undeclared-hidden"));
}

/// A TCP server on the host's 127.0.0.1 that counts connections and closes
/// each one at once (so a client waiting for the server to hang up finishes).
struct LoopbackServer {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LoopbackServer {
    fn start() -> LoopbackServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = connections.clone();
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stream.is_ok() {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        LoopbackServer { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn network_is_loopback_only() {
    if !sandbox_available("network_is_loopback_only") {
        return;
    }
    let store = Store::new();
    let server = LoopbackServer::start();
    let port = server.port;
    let script = format!(
        "mkdir $out; if echo hello | nc -w 2 127.0.0.1 {port}; then echo connected; else echo refused; fi > $out/result; \
         ifconfig -a | grep -E '^[a-z]' | while read -r name rest; do echo \"interface $name\"; done >> $out/result"
    );
    let result = run_and_read(&store, "network", &script);
    assert_eq!(result, "refused\ninterface lo\n");
    assert_eq!(server.connections(), 0, "the sandboxed builder reached the host");
}

#[test]
fn fixed_output_derivations_keep_the_network() {
    if !sandbox_available("fixed_output_derivations_keep_the_network") {
        return;
    }
    let store = Store::new();
    let server = LoopbackServer::start();
    let port = server.port;
    let mut request = store.shell_request(
        "fixed-output",
        &format!("mkdir $out; if echo hello | nc -w 2 127.0.0.1 {port}; then echo connected; else echo refused; fi > $out/result"),
    );
    request.fixed_output = true;
    request.impure_env.insert("http_proxy".to_string(), "http://proxy.invalid".to_string());
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "result"), "connected\n");
    assert_eq!(server.connections(), 1);
}

#[test]
fn timeout_kills_the_whole_namespace() {
    if !sandbox_available("timeout_kills_the_whole_namespace") {
        return;
    }
    let store = Store::new();
    // A background process keeps the log pty open: killing only the shell
    // would leave the build hanging.
    let mut request = store.shell_request("timeout", "sleep 1000 & sleep 1000; echo never");
    request.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::TimedOut(Duration::from_secs(1)));
    assert_eq!(outcome.status.describe(), "timed out after 1 seconds");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(log, "");
}

#[test]
fn max_silent_time_kills_a_quiet_build() {
    if !sandbox_available("max_silent_time_kills_a_quiet_build") {
        return;
    }
    let store = Store::new();
    let mut request = store.shell_request("silent", "echo one; sleep 0.5; echo two; sleep 1000");
    // Generous against a loaded machine: the half-second gap must not count.
    request.max_silent_time = Some(Duration::from_secs(3));
    let started = Instant::now();
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::SilentTooLong(Duration::from_secs(3)));
    assert_eq!(log, "one\ntwo\n");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn log_limit_kills_a_chatty_build() {
    if !sandbox_available("log_limit_kills_a_chatty_build") {
        return;
    }
    let store = Store::new();
    let mut request = store.shell_request("chatty", "while true; do echo 0123456789; done");
    request.max_log_size = Some(10_000);
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::LogLimitExceeded(10_000));
    assert!(log.len() > 10_000 && log.starts_with("0123456789\n"));
}

#[test]
fn setuid_files_and_xattrs_are_filtered() {
    if !sandbox_available("setuid_files_and_xattrs_are_filtered") {
        return;
    }
    let store = Store::new();
    let script = "mkdir $out; touch $out/f; \
        for mode in 4755 2755 6755 1755 755; do if chmod $mode $out/f 2>/dev/null; then echo \"$mode allowed\"; else echo \"$mode denied\"; fi; done > $out/result; \
        grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status >> $out/result";
    let result = run_and_read(&store, "seccomp", script);
    assert_eq!(
        result,
        "4755 denied\n2755 denied\n6755 denied\n1755 allowed\n755 allowed\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    );
    let mut request = store.shell_request("no-seccomp", script);
    request.filter_syscalls = false;
    let (outcome, _) = build(&request);
    assert_eq!(
        read_output_file(&outcome, "result"),
        "4755 allowed\n2755 allowed\n6755 allowed\n1755 allowed\n755 allowed\nNoNewPrivs:\t0\nSeccomp:\t0\n"
    );
}

#[test]
fn i686_builds_get_the_32_bit_personality() {
    if !sandbox_available("i686_builds_get_the_32_bit_personality") || std::env::consts::ARCH != "x86_64" {
        return;
    }
    let store = Store::new();
    let script = "mkdir $out; uname -m > $out/result; cat /proc/self/personality >> $out/result";
    let mut request = store.shell_request("i686", script);
    request.system = "i686-linux".to_string();
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    // PER_LINUX32 (8) | ADDR_NO_RANDOMIZE (0x40000).
    assert_eq!(read_output_file(&outcome, "result"), "i686\n00040008\n");
    assert_eq!(run_and_read(&store, "x86_64", script), "x86_64\n00040000\n");
}

#[test]
fn exit_status_and_signals_are_reported() {
    if !sandbox_available("exit_status_and_signals_are_reported") {
        return;
    }
    let store = Store::new();
    let (outcome, _) = build(&store.shell_request("exit-three", "exit 3"));
    assert_eq!(outcome.status, BuildStatus::Exited(3));
    assert_eq!(outcome.status.describe(), "failed with exit code 3");
    // The builder is pid 1 of its namespace: signals from inside the sandbox
    // that it does not handle are ignored, as for any init.
    let (outcome, _) = build(&store.shell_request("killed", "kill -9 $$; exit 4"));
    assert_eq!(outcome.status, BuildStatus::Exited(4));
}

#[test]
fn missing_builder_is_an_exec_error() {
    if !sandbox_available("missing_builder_is_an_exec_error") {
        return;
    }
    let store = Store::new();
    let mut request = store.shell_request("no-builder", "true");
    request.builder = "/nix/store/00000000000000000000000000000000-missing/bin/sh".to_string();
    let error = nivis_build::run_build(&request, &mut Vec::new()).expect_err("the builder does not exist");
    assert!(matches!(error, BuildError::Exec { .. }), "{error}");
    assert!(error.to_string().contains("No such file or directory"), "{error}");
}

#[test]
fn missing_output_is_reported_and_everything_is_cleaned_up() {
    if !sandbox_available("missing_output_is_reported_and_everything_is_cleaned_up") {
        return;
    }
    let store = Store::new();
    let request = store.shell_request("no-output", "echo not creating $out");
    let (mut outcome, _) = build(&request);
    assert!(outcome.status.success());
    let build_dir = outcome.build_dir().to_path_buf();
    let chroot = outcome.chroot_store_dir.clone();
    assert!(build_dir.exists() && chroot.exists());
    let error = outcome.move_outputs_to_store().expect_err("no output");
    assert!(matches!(error, BuildError::MissingOutput { .. }), "{error}");
    drop(outcome);
    assert!(!build_dir.exists(), "build directory left behind");
    assert!(!chroot.exists(), "chroot left behind");
    // Only the store paths remain in the store directory.
    let mut left: Vec<String> = fs::read_dir(&store.real_store_dir)
        .expect("store")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec![store.busybox.rsplit('/').next().expect("base").to_string()]);
}

#[test]
fn sandbox_paths_are_mounted_and_optional_ones_may_be_missing() {
    if !sandbox_available("sandbox_paths_are_mounted_and_optional_ones_may_be_missing") {
        return;
    }
    let store = Store::new();
    let extra = store.root.path().join("extra");
    fs::create_dir_all(&extra).expect("extra");
    fs::write(extra.join("file"), "from the host").expect("extra file");
    let single = store.root.path().join("single-file");
    fs::write(&single, "single").expect("single file");
    let mut request = store.shell_request(
        "sandbox-paths",
        "mkdir $out; cat /opt/extra/file > $out/result; echo >> $out/result; cat /etc/single >> $out/result; echo >> $out/result; \
         if ls /missing 2>/dev/null; then echo missing-visible; else echo missing-absent; fi >> $out/result",
    );
    let setting = format!("/opt/extra={} /etc/single={} /missing=/does/not/exist?", extra.display(), single.display());
    request.sandbox_paths = nivis_build::SandboxPath::parse_list(&setting).expect("parse");
    assert_eq!(request.sandbox_paths.len(), 3);
    assert!(request.sandbox_paths[2].optional);
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "result"), "from the host\nsingle\nmissing-absent\n");

    // The same path without `?` is an error before anything runs.
    request.sandbox_paths = nivis_build::SandboxPath::parse_list("/missing=/does/not/exist").expect("parse");
    let error = nivis_build::run_build(&request, &mut Vec::new()).expect_err("missing sandbox path");
    assert!(matches!(error, BuildError::MissingSandboxPath(_)), "{error}");
}

#[test]
fn symlink_and_file_store_paths_are_inputs_too() {
    if !sandbox_available("symlink_and_file_store_paths_are_inputs_too") {
        return;
    }
    let store = Store::new();
    let data = store.add_data("target-data", "pointed at");
    let link_base = format!("{}-link", fake_hash_part("link"));
    std::os::unix::fs::symlink(format!("{data}/data"), store.real_store_dir.join(&link_base)).expect("symlink path");
    let file_base = format!("{}-file", fake_hash_part("file"));
    fs::write(store.real_store_dir.join(&file_base), "a file store path").expect("file path");
    let link = format!("/nix/store/{link_base}");
    let file = format!("/nix/store/{file_base}");
    let mut request = store.shell_request(
        "odd-inputs",
        &format!("mkdir $out; readlink {link} > $out/result; cat {link} >> $out/result; echo >> $out/result; cat {file} >> $out/result"),
    );
    request.input_paths.extend([data.clone(), link, file]);
    let (outcome, log) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(0), "log: {log}");
    assert_eq!(read_output_file(&outcome, "result"), format!("{data}/data\npointed at\na file store path"));
}

#[test]
fn malformed_requests_are_rejected_before_anything_runs() {
    let store = Store::new();
    let mut request = store.shell_request("bad", "true");
    request.input_paths.push("/usr/lib/not-in-the-store".to_string());
    let error = nivis_build::run_build(&request, &mut Vec::new()).expect_err("input outside the store");
    assert!(matches!(error, BuildError::InvalidRequest(_)), "{error}");
    let mut request = store.shell_request("bad", "true");
    request.outputs.insert("out".to_string(), "/nix/store/../etc".to_string());
    assert!(matches!(nivis_build::run_build(&request, &mut Vec::new()), Err(BuildError::InvalidRequest(_))));
    let mut request = store.shell_request("bad", "true");
    request.tmp_root = "relative/tmp".into();
    assert!(matches!(nivis_build::run_build(&request, &mut Vec::new()), Err(BuildError::InvalidRequest(_))));
    // Nothing was created.
    assert_eq!(fs::read_dir(&store.tmp_root).expect("tmp").count(), 0);
}

#[test]
fn build_directory_is_kept_on_request() {
    if !sandbox_available("build_directory_is_kept_on_request") {
        return;
    }
    let store = Store::new();
    let mut request = store.shell_request("keep", "echo left behind > scratch; exit 1");
    request.keep_build_dir = true;
    let (outcome, _) = build(&request);
    assert_eq!(outcome.status, BuildStatus::Exited(1));
    let build_dir = outcome.build_dir().to_path_buf();
    assert_eq!(build_dir, store.tmp_root.join("nix-build-keep.drv-0"));
    drop(outcome);
    assert_eq!(fs::read_to_string(build_dir.join("scratch")).expect("kept file"), "left behind\n");
}
