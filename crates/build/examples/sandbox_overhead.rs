//! Measures what the sandbox costs: N trivial builds (`mkdir $out`) through
//! `run_build`, the same N derivations through CppNix 2.8 (`nix-store --realise`
//! with `sandbox = true` on a chroot store, one process for all N), and the
//! reference scanner's throughput. Run as root (CppNix's sandbox needs it here):
//!
//!     cargo run --release -p nivis-build --example sandbox_overhead [N]

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Instant;

use nivis_build::{BuildRequest, ReferenceScanner, run_build};

fn main() {
    let count: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(20);
    let root = tempfile::tempdir().expect("temp dir");
    let source = root.path().join("busybox/bin");
    fs::create_dir_all(&source).expect("bin");
    fs::copy("/usr/bin/busybox", source.join("busybox")).expect("busybox");
    for applet in ["sh", "mkdir"] {
        std::os::unix::fs::symlink("busybox", source.join(applet)).expect("applet");
    }
    let store_root = root.path().join("store");
    let expression = format!(
        r#"let bb = builtins.path {{ path = {}; name = "busybox"; }}; in
        builtins.genList (i: derivation {{ name = "trivial-${{toString i}}"; system = "x86_64-linux";
          builder = "${{bb}}/bin/sh"; args = [ "-c" "${{bb}}/bin/mkdir $out" ]; }}) {count}"#,
        source.parent().expect("parent").display()
    );
    let output = Command::new("nix-instantiate")
        .arg("--store")
        .arg(&store_root)
        .args(["-E", &expression])
        .output()
        .expect("nix-instantiate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let drvs: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect();
    let shown = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "show-derivation", "--store"])
        .arg(&store_root)
        .args(&drvs)
        .output()
        .expect("show-derivation");
    let json: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");

    let real_store_dir = store_root.join("nix/store");
    let started = Instant::now();
    for drv_path in &drvs {
        let drv = &json[drv_path];
        let mut request =
            BuildRequest::new(drv_path.clone(), drv["builder"].as_str().expect("builder"), real_store_dir.clone());
        request.args =
            drv["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("arg").to_string()).collect();
        request.env = drv["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("v").to_string()))
            .collect();
        request.outputs =
            BTreeMap::from([("out".to_string(), drv["outputs"]["out"]["path"].as_str().expect("out").to_string())]);
        request.input_paths =
            drv["inputSrcs"].as_array().expect("srcs").iter().map(|a| a.as_str().expect("src").to_string()).collect();
        let outcome = run_build(&request, &mut std::io::sink()).expect("run_build");
        assert!(outcome.status.success());
    }
    let ours = started.elapsed();

    let started = Instant::now();
    let status = Command::new("nix-store")
        .arg("--store")
        .arg(&store_root)
        .args(["--option", "sandbox", "true", "--option", "substituters", "", "-j1", "--realise"])
        .args(&drvs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("nix-store");
    let theirs = started.elapsed();
    assert!(status.success());
    println!(
        "{count} trivial sandboxed builds: nivis run_build {:.1} ms/build, CppNix 2.8 nix-store --realise {:.1} ms/build (ratio {:.2})",
        ours.as_secs_f64() * 1000.0 / count as f64,
        theirs.as_secs_f64() * 1000.0 / count as f64,
        ours.as_secs_f64() / theirs.as_secs_f64()
    );

    // A large input closure: every directory input is a bind mount.
    for inputs in [0usize, 500, 2000] {
        let drv_path = &drvs[0];
        let drv = &json[drv_path];
        let mut request =
            BuildRequest::new(drv_path.clone(), drv["builder"].as_str().expect("builder"), real_store_dir.clone());
        request.args =
            drv["args"].as_array().expect("args").iter().map(|a| a.as_str().expect("arg").to_string()).collect();
        request.env = drv["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("v").to_string()))
            .collect();
        request.outputs =
            BTreeMap::from([("out".to_string(), drv["outputs"]["out"]["path"].as_str().expect("out").to_string())]);
        request.input_paths =
            drv["inputSrcs"].as_array().expect("srcs").iter().map(|a| a.as_str().expect("src").to_string()).collect();
        for i in 0..inputs {
            let base = format!("{:0>32}-input-{i}", i);
            fs::create_dir_all(real_store_dir.join(&base)).expect("input dir");
            request.input_paths.push(format!("/nix/store/{base}"));
        }
        let started = Instant::now();
        let outcome = run_build(&request, &mut std::io::sink()).expect("run_build");
        let built = started.elapsed();
        assert!(outcome.status.success());
        drop(outcome);
        // The cleanup removes one mount-point directory per input; on file
        // systems mounted with `discard` each rmdir of a directory is slow.
        println!(
            "one build with {inputs} extra inputs: {:.1} ms (cleanup included: {:.1} ms)",
            built.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }

    // Scanner throughput on text (few nix32 runs) and on nix32-looking data.
    let candidates: Vec<String> = (0..1000).map(|i| format!("/nix/store/{:0>32}-candidate", i)).collect();
    for (label, byte_of) in [
        ("text", (|i: usize| b"The quick brown fox jumps over the lazy dog.\n"[i % 45]) as fn(usize) -> u8),
        ("nix32-only", |i: usize| b"0123456789abcdfghijklmnpqrsvwxyz"[(i * 7) % 32]),
    ] {
        let data: Vec<u8> = (0..256 * 1024 * 1024).map(byte_of).collect();
        let mut scanner = ReferenceScanner::new(&candidates);
        let started = Instant::now();
        for chunk in data.chunks(64 * 1024) {
            scanner.feed(chunk);
        }
        let seconds = started.elapsed().as_secs_f64();
        println!("reference scan, {label}: {:.0} MB/s ({} found)", 256.0 / seconds, scanner.found_paths().len());
    }
}
