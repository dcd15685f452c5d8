//! `nix-build`, `nix-store --realise` and `--read-log` end to end: real
//! sandboxed builds (a static busybox is the builder) in temporary chroot
//! stores, with CppNix 2.8 as the reference for output paths, NAR hashes,
//! messages and exit codes, and as a peer reading what nivis registered.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{BUSYBOX, cppnix_available, sandbox_available};

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("nivis-nix-build").tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin");
        for name in ["nix-build", "nix-store", "nix"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), bin.join(name)).expect("link");
        }
        let bb = dir.path().join("bb/bin");
        fs::create_dir_all(&bb).expect("bb");
        fs::copy(BUSYBOX, bb.join("busybox")).expect("busybox");
        for applet in ["sh", "mkdir", "echo", "cat", "sleep", "date", "ln", "chmod", "ls", "touch"] {
            std::os::unix::fs::symlink("busybox", bb.join(applet)).expect("applet");
        }
        Fixture { dir, bin }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `default.nix`: `bb`, `mk name script extra` in scope of `body`.
    fn write_expr(&self, body: &str) -> PathBuf {
        let file = self.dir.path().join("default.nix");
        let text = format!(
            r#"let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: script: extra: derivation ({{
    inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh";
    PATH = "${{bb}}/bin"; args = [ "-c" script ];
  }} // extra);
in {body}
"#,
            dir = self.dir.path().display()
        );
        fs::write(&file, text).expect("write expr");
        file
    }

    fn nivis(&self, command: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(command));
        cmd.current_dir(self.dir.path()).env("NIX_CONFIG", "substituters =").env_remove("NIX_REMOTE");
        cmd
    }

    fn nix_build(&self, store: &Path, args: &[&str]) -> Output {
        let mut cmd = self.nivis("nix-build");
        cmd.arg("--store").arg(store).arg(self.dir.path().join("default.nix")).args(args);
        cmd.output().expect("run nix-build")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cppnix(store: &Path, command: &str, args: &[&str]) -> Output {
    Command::new(format!("/usr/bin/{command}"))
        .arg("--store")
        .arg(store)
        .args(["--option", "substituters", ""])
        .args(args)
        .output()
        .expect("run CppNix")
}

#[test]
fn chain_and_multiple_outputs_match_cppnix() {
    if !sandbox_available("chain_and_multiple_outputs_match_cppnix") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(
        r#"rec {
  a = mk "chain-a" "mkdir -p $out/bin $dev; echo 'echo from a' > $out/bin/hello; chmod +x $out/bin/hello; echo $out > $dev/where" { outputs = [ "out" "dev" ]; };
  b = mk "chain-b" "mkdir $out; sh ${a}/bin/hello > $out/greeting; cat ${a.dev}/where > $out/where" {};
  c = mk "chain-c" "mkdir $out; cat ${b}/greeting > $out/final; ln -s ${b} $out/b" {};
}"#,
    );
    let store = fixture.store("nivis");
    let built = fixture.nix_build(&store, &["-A", "c", "-A", "a"]);
    assert!(built.status.success(), "nix-build: {}", text(&built.stderr));
    let stderr = text(&built.stderr);
    assert!(stderr.contains("these 3 derivations will be built:"), "{stderr}");
    // Inputs first: a, then b, then c.
    let order: Vec<usize> = ["-chain-a.drv'...", "-chain-b.drv'...", "-chain-c.drv'..."]
        .iter()
        .map(|name| stderr.find(name).unwrap_or_else(|| panic!("{name} missing from {stderr}")))
        .collect();
    assert!(order[0] < order[1] && order[1] < order[2], "{stderr}");
    let outputs: Vec<String> = text(&built.stdout).lines().map(str::to_string).collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let real = |printed: &str| store.join(printed.trim_start_matches('/'));
    assert_eq!(fs::read_to_string(real(&outputs[0]).join("final")).expect("final"), "from a\n");
    // `result` for the first derivation, `result-2` for the second.
    assert_eq!(fs::read_link(fixture.dir.path().join("result")).expect("result").to_string_lossy(), outputs[0]);
    assert_eq!(fs::read_link(fixture.dir.path().join("result-2")).expect("result-2").to_string_lossy(), outputs[1]);

    // A second run builds nothing and prints the same paths.
    let again = fixture.nix_build(&store, &["-A", "c", "-A", "a", "--no-out-link"]);
    assert!(again.status.success());
    assert!(!text(&again.stderr).contains("building '"), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), text(&built.stdout));

    // The `dev` output with `-A a.dev` gets `result-dev`.
    let dev = fixture.nix_build(&store, &["-A", "a.dev"]);
    assert!(dev.status.success(), "{}", text(&dev.stderr));
    let link = fs::read_link(fixture.dir.path().join("result-dev")).expect("result-dev");
    assert!(link.to_string_lossy().ends_with("-chain-a-dev"), "{link:?}");

    if !cppnix_available() {
        eprintln!("SKIPPED the CppNix half of chain_and_multiple_outputs_match_cppnix: needs root and CppNix");
        return;
    }
    // CppNix builds the same expression in its own store: same paths, same NAR hashes.
    let theirs = fixture.store("cppnix");
    let expr = fixture.dir.path().join("default.nix");
    let reference = cppnix(&theirs, "nix-build", &[expr.to_str().expect("utf-8"), "-A", "c", "-A", "a", "--no-out-link"]);
    assert!(reference.status.success(), "CppNix: {}", text(&reference.stderr));
    assert_eq!(text(&reference.stdout), text(&built.stdout));
    for output in &outputs {
        let ours = cppnix(&store, "nix-store", &["-q", "--hash", "--size", output]);
        let theirs_hash = cppnix(&theirs, "nix-store", &["-q", "--hash", output]);
        let ours_hash = cppnix(&store, "nix-store", &["-q", "--hash", output]);
        assert!(ours.status.success() || ours_hash.status.success());
        assert_eq!(text(&ours_hash.stdout), text(&theirs_hash.stdout), "NAR hash of {output}");
        let refs_ours = cppnix(&store, "nix-store", &["-q", "--references", output]);
        let refs_theirs = cppnix(&theirs, "nix-store", &["-q", "--references", output]);
        assert_eq!(text(&refs_ours.stdout), text(&refs_theirs.stdout), "references of {output}");
        let deriver_ours = cppnix(&store, "nix-store", &["-q", "--deriver", output]);
        let deriver_theirs = cppnix(&theirs, "nix-store", &["-q", "--deriver", output]);
        assert_eq!(text(&deriver_ours.stdout), text(&deriver_theirs.stdout), "deriver of {output}");
        // CppNix checks the contents against what nivis registered.
        let verify = cppnix(&store, "nix-store", &["--verify-path", output]);
        assert!(verify.status.success(), "verify {output}: {}", text(&verify.stderr));
    }
    // CppNix reads nivis's compressed log.
    let drv = text(&cppnix(&store, "nix-store", &["-q", "--deriver", &outputs[0]]).stdout).trim().to_string();
    let log = cppnix(&store, "nix-store", &["--read-log", &drv]);
    assert!(log.status.success(), "{}", text(&log.stderr));
}

#[test]
fn failures_are_reported_like_cppnix() {
    if !sandbox_available("failures_are_reported_like_cppnix") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(
        r#"{
  fail = mk "failing" "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; done; exit 3" {};
  fod = mk "fod" "echo hi > $out" { outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "0000000000000000000000000000000000000000000000000000"; };
  refs = mk "refs" "mkdir $out; echo ${bb} > $out/x" { allowedReferences = []; };
  good = mk "good" "echo good > $out" {};
}"#,
    );
    let store = fixture.store("nivis");
    let fail = fixture.nix_build(&store, &["-A", "fail", "-Q"]);
    let stderr = text(&fail.stderr);
    assert_eq!(fail.status.code(), Some(100), "{stderr}");
    assert!(stderr.contains("-failing.drv' failed with exit code 3;\n       last 10 log lines:\n       > line 3\n"), "{stderr}");
    assert!(stderr.contains("       > line 12\n       For full logs, run 'nix log /nix/store/"), "{stderr}");
    // The kept log has every line; read it back.
    let drv = stderr.split('\'').find(|s| s.ends_with("-failing.drv")).expect("drv path in message").to_string();
    let log = fixture.nivis("nix-store").arg("--store").arg(&store).args(["--read-log", &drv]).output().expect("read-log");
    assert!(log.status.success(), "{}", text(&log.stderr));
    assert_eq!(text(&log.stdout).lines().count(), 12);
    let nix_log = fixture.nivis("nix").args(["log", "--store"]).arg(&store).arg(&drv).output().expect("nix log");
    assert_eq!(text(&nix_log.stdout), text(&log.stdout), "{}", text(&nix_log.stderr));

    let fod = fixture.nix_build(&store, &["-A", "fod"]);
    let stderr = text(&fod.stderr);
    assert_eq!(fod.status.code(), Some(102), "{stderr}");
    // The "got" hash is SHA-256 of "hi\n", computed here from first principles.
    let got = {
        use sha2::Digest;
        data_encoding::BASE64.encode(&sha2::Sha256::digest(b"hi\n"))
    };
    assert!(
        stderr.contains(&format!(
            "-fod.drv':\n         specified: sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n            got:    sha256-{got}"
        )),
        "{stderr}"
    );

    let refs = fixture.nix_build(&store, &["-A", "refs"]);
    let stderr = text(&refs.stderr);
    assert_eq!(refs.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-refs' is not allowed to refer to the following paths:\n         /nix/store/"), "{stderr}");
    assert!(stderr.contains("-busybox\n"), "{stderr}");

    // Nothing of the failed outputs is valid afterwards; `-k` goes on past a failure.
    let keep_going = fixture.nix_build(&store, &["-A", "fail", "-A", "good", "-k", "--no-out-link"]);
    assert_eq!(keep_going.status.code(), Some(100));
    let good_out = fixture.nix_build(&store, &["-A", "good", "--no-out-link"]);
    assert!(good_out.status.success());
    assert!(!text(&good_out.stderr).contains("building '"), "good was built by the -k run");

    if cppnix_available() {
        let theirs = fixture.store("cppnix");
        let expr = fixture.dir.path().join("default.nix");
        for (attr, code) in [("fail", 100), ("fod", 102), ("refs", 1)] {
            let reference = cppnix(&theirs, "nix-build", &[expr.to_str().expect("utf-8"), "-A", attr, "--no-out-link"]);
            assert_eq!(reference.status.code(), Some(code), "CppNix exit code for {attr}");
        }
    }
}

#[test]
fn two_jobs_overlap() {
    if !sandbox_available("two_jobs_overlap") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(
        r#"[ (mk "sleep-a" "sleep 2; echo a > $out" {}) (mk "sleep-b" "sleep 2; echo b > $out" {}) ]"#,
    );
    let store = fixture.store("nivis");
    // Instantiate first, so only the builds are timed.
    let dry = fixture.nix_build(&store, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let started = Instant::now();
    let built = fixture.nix_build(&store, &["-j2", "--no-out-link"]);
    let elapsed = started.elapsed();
    assert!(built.status.success(), "{}", text(&built.stderr));
    assert_eq!(text(&built.stdout).lines().count(), 2);
    // Two two-second builds one after the other take at least four seconds.
    assert!(elapsed < Duration::from_millis(3800), "builds did not overlap: {elapsed:?}");
}

#[test]
fn concurrent_processes_build_once() {
    if !sandbox_available("concurrent_processes_build_once") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"mk "slow" "sleep 2; date +%s%N > $out" {}"#);
    let store = fixture.store("nivis");
    let dry = fixture.nix_build(&store, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let spawn = || {
        fixture
            .nivis("nix-build")
            .arg("--store")
            .arg(&store)
            .arg("--no-out-link")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let first = spawn();
    std::thread::sleep(Duration::from_millis(300));
    let second = spawn();
    let first = first.wait_with_output().expect("first");
    let second = second.wait_with_output().expect("second");
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(text(&first.stdout), text(&second.stdout));
    let builds = [&first, &second].iter().filter(|o| text(&o.stderr).contains("building '")).count();
    assert_eq!(builds, 1, "first: {}\nsecond: {}", text(&first.stderr), text(&second.stderr));
    assert!(text(&second.stderr).contains("waiting for lock on"), "{}", text(&second.stderr));
}

#[test]
fn killed_build_leaves_nothing_valid_and_rebuilds() {
    if !sandbox_available("killed_build_leaves_nothing_valid_and_rebuilds") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"mk "killed" "mkdir $out; echo partial > $out/a; sleep 3; echo done > $out/b" {}"#);
    let store = fixture.store("nivis");
    let dry = fixture.nix_build(&store, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let mut child = fixture
        .nivis("nix-build")
        .arg("--store")
        .arg(&store)
        .arg("--no-out-link")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().expect("kill -9");
    let _ = child.wait();
    let rebuilt = fixture.nix_build(&store, &["--no-out-link"]);
    assert!(rebuilt.status.success(), "{}", text(&rebuilt.stderr));
    assert!(text(&rebuilt.stderr).contains("building '"), "the killed build must not count as done");
    let out = text(&rebuilt.stdout).trim().to_string();
    let real = store.join(out.trim_start_matches('/'));
    assert_eq!(fs::read_to_string(real.join("a")).expect("a"), "partial\n");
    assert_eq!(fs::read_to_string(real.join("b")).expect("b"), "done\n");
    if cppnix_available() {
        let verify = cppnix(&store, "nix-store", &["--verify-path", &out]);
        assert!(verify.status.success(), "{}", text(&verify.stderr));
    }
}

#[test]
fn nix_store_realise_prints_outputs_and_dry_run_builds_nothing() {
    if !sandbox_available("nix_store_realise_prints_outputs_and_dry_run_builds_nothing") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"mk "multi" "echo o > $out; echo d > $dev" { outputs = [ "out" "dev" ]; }"#);
    let store = fixture.store("nivis");
    let dry = fixture.nix_build(&store, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stderr).contains("this derivation will be built:"), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).is_empty());
    let drv_line = text(&dry.stderr).lines().find(|l| l.ends_with("-multi.drv")).expect("drv").trim().to_string();
    let realise = |args: &[&str]| {
        fixture.nivis("nix-store").arg("--store").arg(&store).arg("--realise").args(args).output().expect("realise")
    };
    let dev_only = realise(&[&format!("{drv_line}!dev")]);
    assert!(dev_only.status.success(), "{}", text(&dev_only.stderr));
    assert_eq!(text(&dev_only.stdout).lines().count(), 1);
    assert!(text(&dev_only.stdout).trim().ends_with("-multi-dev"));
    let all = realise(&[&drv_line]);
    assert!(all.status.success());
    let lines: Vec<String> = text(&all.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].ends_with("-multi-dev") && lines[1].ends_with("-multi"), "{lines:?}");
}

#[test]
fn nix_build_links_and_json() {
    if !sandbox_available("nix_build_links_and_json") {
        return;
    }
    let fixture = Fixture::new();
    let file = fixture.write_expr(r#"{ multi = mk "nb" "echo progress; echo o > $out; echo d > $dev" { outputs = [ "out" "dev" ]; }; }"#);
    let store = fixture.store("nivis");
    let built = fixture
        .nivis("nix")
        .args(["build", "--store"])
        .arg(&store)
        .arg("-f")
        .arg(&file)
        .args(["multi", "--json", "-L"])
        .output()
        .expect("nix build");
    assert!(built.status.success(), "{}", text(&built.stderr));
    let json: serde_json::Value = serde_json::from_slice(&built.stdout).expect("json");
    let out = json[0]["outputs"]["out"].as_str().expect("out");
    assert!(json[0]["drvPath"].as_str().expect("drvPath").ends_with("-nb.drv"));
    assert_eq!(fs::read_link(fixture.dir.path().join("result")).expect("result").to_string_lossy(), out);
    assert!(text(&built.stderr).contains("nb> progress"), "-L prefixes log lines: {}", text(&built.stderr));
}

#[test]
fn settings_reach_the_builder() {
    if !sandbox_available("settings_reach_the_builder") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"{ cores = mk "cores" "echo $NIX_BUILD_CORES > $out" {}; slow = mk "slow" "sleep 5; echo > $out" {}; }"#);
    let store = fixture.store("nivis");
    let cores = fixture.nix_build(&store, &["-A", "cores", "--cores", "3", "--no-out-link"]);
    assert!(cores.status.success(), "{}", text(&cores.stderr));
    let out = text(&cores.stdout).trim().to_string();
    assert_eq!(fs::read_to_string(store.join(out.trim_start_matches('/'))).expect("out"), "3\n");
    let started = Instant::now();
    let slow = fixture.nix_build(&store, &["-A", "slow", "--timeout", "1", "--no-out-link"]);
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout did not stop the build");
    assert_eq!(slow.status.code(), Some(101), "{}", text(&slow.stderr));
    assert!(text(&slow.stderr).contains("-slow.drv!out' from .drv file timed out after 1 seconds"), "{}", text(&slow.stderr));
}

#[test]
fn outputs_a_binary_cache_has_are_substituted_not_built() {
    if !sandbox_available("outputs_a_binary_cache_has_are_substituted_not_built") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"mk "cached" "echo from-the-cache > $out" { }"#);
    let first = fixture.store("first");
    let built = fixture.nix_build(&first, &["--no-out-link"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let out_path = text(&built.stdout).trim().to_string();

    // Publish the output (and its closure) in an unsigned file:// cache.
    let cache = format!("file://{}", fixture.dir.path().join("cache").display());
    let copy = fixture.nivis("nix").arg("--store").arg(&first).args(["copy", "--to", &cache, &out_path]).output().unwrap();
    assert!(copy.status.success(), "{}", text(&copy.stderr));

    // A fresh store with the cache as substituter gets the output without building.
    let second = fixture.store("second");
    let substituted = fixture.nix_build(
        &second,
        &["--no-out-link", "--option", "substituters", &cache, "--option", "require-sigs", "false"],
    );
    let stderr = text(&substituted.stderr);
    assert!(substituted.status.success(), "{stderr}");
    assert_eq!(text(&substituted.stdout).trim(), out_path);
    assert!(stderr.contains(&format!("copying path '{out_path}' from '{cache}'...")), "{stderr}");
    assert!(!stderr.contains("building '"), "built although the cache had it: {stderr}");
    // The summary says it will be fetched, not built, as CppNix's does.
    assert!(stderr.contains("this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):"), "{stderr}");
    assert!(stderr.contains(&format!("  {out_path}\n")), "{stderr}");
    assert!(!stderr.contains("will be built"), "{stderr}");
    let contents = fs::read_to_string(format!("{}{out_path}", second.display())).unwrap();
    assert_eq!(contents, "from-the-cache\n");

    // --offline: no substituters at all, so it is built.
    let offline = fixture.store("offline");
    let built_offline = fixture.nix_build(
        &offline,
        &["--no-out-link", "--offline", "--option", "substituters", &cache, "--option", "require-sigs", "false"],
    );
    let stderr = text(&built_offline.stderr);
    assert!(built_offline.status.success(), "{stderr}");
    assert!(stderr.contains("this derivation will be built:") && stderr.contains("building '"), "{stderr}");
    assert!(!stderr.contains("copying path"), "{stderr}");

    // The same cache without signatures is refused when signatures are required:
    // as in CppNix an untrusted substitute counts as none, so the output is
    // built (no `--fallback` needed).
    let third = fixture.store("third");
    let untrusted = fixture.nix_build(&third, &["--no-out-link", "--option", "substituters", &cache]);
    let stderr = text(&untrusted.stderr);
    assert!(untrusted.status.success(), "{stderr}");
    assert!(stderr.contains("building '"), "{stderr}");
    assert!(!stderr.contains("some substitutes"), "{stderr}");
}

/// CppNix's `fallback`: a substitute that exists but cannot be had fails the
/// derivation unless `--fallback` (or `fallback = true`) says to build it; a
/// path no cache has is simply built. Message and exit status are CppNix's.
#[test]
fn failed_substitutes_fail_the_build_unless_fallback() {
    if !sandbox_available("failed_substitutes_fail_the_build_unless_fallback") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(r#"let dep = mk "fb-dep" "echo dep > $out" { }; in mk "fb-top" "cat ${dep} > $out" { }"#);
    let first = fixture.store("first");
    let built = fixture.nix_build(&first, &["--no-out-link"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let out_path = text(&built.stdout).trim().to_string();
    let cache_dir = fixture.dir.path().join("cache");
    let cache = format!("file://{}", cache_dir.display());
    let copy = fixture.nivis("nix").arg("--store").arg(&first).args(["copy", "--to", &cache, &out_path]).output().unwrap();
    assert!(copy.status.success(), "{}", text(&copy.stderr));
    // Break the top output's NAR (its narinfo stays): the substitute exists
    // but does not check out.
    let narinfo = fs::read_to_string(cache_dir.join(format!("{}.narinfo", &out_path[11..43]))).unwrap();
    let nar = cache_dir.join(narinfo.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap());
    let bytes = fs::read(&nar).unwrap();
    fs::write(&nar, &bytes[..40.min(bytes.len())]).unwrap();
    let with_cache = ["--no-out-link", "--option", "substituters", cache.as_str(), "--option", "require-sigs", "false"];

    let second = fixture.store("second");
    let failed = fixture.nix_build(&second, &with_cache);
    let stderr = text(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    let message = stderr.lines().find(|l| l.contains("some substitutes")).unwrap_or_else(|| panic!("{stderr}")).to_string();
    assert!(message.starts_with("error: some substitutes for the outputs of derivation '/nix/store/"), "{message}");
    assert!(message.ends_with("-fb-top.drv' failed (usually happens due to networking issues); try '--fallback' to build derivation from source"), "{message}");
    assert!(!stderr.contains("building '"), "built without --fallback: {stderr}");
    assert!(!second.join(out_path.trim_start_matches('/')).exists(), "the output was left behind");

    if cppnix_available() {
        let reference = fixture.store("cppnix");
        let mut args = vec![fixture.dir.path().join("default.nix").display().to_string()];
        args.extend(with_cache.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let theirs = cppnix(&reference, "nix-build", &args);
        let their_stderr = text(&theirs.stderr);
        assert_eq!(theirs.status.code(), failed.status.code(), "{their_stderr}");
        assert!(their_stderr.lines().any(|l| l == message), "CppNix said:\n{their_stderr}\nnivis said: {message}");
    }

    // --fallback (or `fallback = true`) builds it instead, after saying why.
    for flags in [&["--fallback"][..], &["--option", "fallback", "true"][..]] {
        let store = fixture.store(&format!("fallback{}", flags.len()));
        let mut args = with_cache.to_vec();
        args.extend_from_slice(flags);
        let fell_back = fixture.nix_build(&store, &args);
        let stderr = text(&fell_back.stderr);
        assert!(fell_back.status.success(), "{stderr}");
        assert_eq!(text(&fell_back.stdout).trim(), out_path);
        assert!(stderr.contains("-fb-top.drv'...") && stderr.contains("building '"), "{stderr}");
        assert!(stderr.contains(&format!("error: path '{out_path}' is not available from any substituter")), "{stderr}");
        assert!(!stderr.contains("some substitutes"), "{stderr}");
    }

    // A cache that lacks the path is no failure: it is built, no --fallback needed.
    fs::remove_file(cache_dir.join(format!("{}.narinfo", &out_path[11..43]))).unwrap();
    let third = fixture.store("third");
    let built = fixture.nix_build(&third, &with_cache);
    let stderr = text(&built.stderr);
    assert!(built.status.success(), "{stderr}");
    assert!(stderr.contains("building '") && !stderr.contains("some substitutes"), "{stderr}");
}

#[test]
fn platforms_and_system_features_decide_what_builds_here() {
    if !sandbox_available("platforms_and_system_features_decide_what_builds_here") {
        return;
    }
    let fixture = Fixture::new();
    fixture.write_expr(
        r#"{
  foreign = mk "foreign" "mkdir $out" { system = "mips64-weird"; };
  special = mk "special" "mkdir $out" { requiredSystemFeatures = [ "gpu" "big-parallel" ]; };
}"#,
    );
    let store = fixture.store("nivis");
    let refused = |attr: &str, args: &[&str]| {
        let mut all = vec!["-A", attr, "--no-out-link"];
        all.extend_from_slice(args);
        let ours = fixture.nix_build(&store, &all);
        assert_eq!(ours.status.code(), Some(1), "{attr} {args:?}: {}", text(&ours.stderr));
        let ours_error = text(&ours.stderr).lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
        if cppnix_available() {
            let cpp_store = fixture.store("cppnix");
            let mut cpp_args = vec![fixture.dir.path().join("default.nix").to_string_lossy().into_owned()];
            cpp_args.extend(all.iter().map(|s| s.to_string()));
            let cpp_args: Vec<&str> = cpp_args.iter().map(String::as_str).collect();
            let theirs = cppnix(&cpp_store, "nix-build", &cpp_args);
            assert_eq!(theirs.status.code(), Some(1));
            let theirs_error = text(&theirs.stderr).lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
            // The features of this host are in both messages; the drv paths agree.
            assert_eq!(ours_error, theirs_error);
        }
        ours_error
    };
    let message = refused("foreign", &[]);
    assert!(message.contains("a 'mips64-weird' with features {} is required to build"), "{message}");
    let message = refused("special", &[]);
    assert!(message.contains("with features {big-parallel, gpu} is required"), "{message}");
    // `extra-platforms` and `system-features` let them build here.
    let built = fixture.nix_build(&store, &["-A", "foreign", "--no-out-link", "--option", "extra-platforms", "mips64-weird"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    let built = fixture.nix_build(&store, &["-A", "special", "--no-out-link", "--option", "system-features", "gpu big-parallel"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    // So does `system` itself.
    let other = fixture.store("other");
    let built = fixture.nix_build(&other, &["-A", "foreign", "--no-out-link", "--option", "system", "mips64-weird"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
}
