//! The builder's world compared with CppNix 2.8's: the same derivation is
//! built by CppNix (`nix-store --realise` with `sandbox = true` in a chroot
//! store) and by `run_build`, and what the builder saw is compared file by file.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use nivis_build::{BuildRequest, BuildUser, InputPathInfo, impure_environment, structured_attrs_from_env};
use nivis_formats::{Derivation as ParsedDerivation, Hash, StoreDir};

/// What the builder records about its world, one file per aspect.
const DUMP_SCRIPT: &str = r#"
mkdir -p $out $dev
env | sort > $out/env
id > $out/id
hostname > $out/hostname
cat /proc/sys/kernel/domainname > $out/domainname
pwd > $out/pwd
cat /etc/passwd > $out/passwd
cat /etc/group > $out/group
cat /etc/hosts > $out/hosts 2>&1
ls -a /etc > $out/etc
cut_mounts() { while read -r a b c d mountpoint rest; do echo "$mountpoint"; done; }
cut_mounts < /proc/self/mountinfo > $out/mountpoints
for d in / /dev /dev/pts /dev/pts/ptmx /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/shm /tmp /build /nix /nix/store /etc /etc/passwd /etc/group /etc/hosts /proc; do stat -c "%n %A" $d; done > $out/modes
ls -a / > $out/root
ls -a /dev > $out/dev
for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr /dev/ptmx; do echo "$l -> $(readlink $l)"; done > $out/links
cat /proc/self/uid_map /proc/self/gid_map | while read -r inside outside count; do echo "$inside $count"; done > $out/idmaps
grep -E '^(Max core file size|Max stack size)' /proc/self/limits > $out/limits
grep -E '^(NoNewPrivs|Seccomp|Seccomp_filters|CapEff|CapPrm):' /proc/self/status > $out/status
touch $out/setuid; if chmod 4755 $out/setuid 2>/dev/null; then echo chmod-setuid-allowed; else echo chmod-setuid-denied; fi > $out/setuid-attempt
if chmod 755 $out/setuid; then echo chmod-allowed; else echo chmod-denied; fi >> $out/setuid-attempt
umask > $out/umask
cat /proc/self/personality > $out/personality
echo "$$" > $out/pid
echo "$0|$1|$2" > $out/args
if [ -t 1 ]; then echo stdout-is-a-tty; else echo stdout-is-not-a-tty; fi > $out/tty
cat $bigPath > $out/passasfile
ls -a /build > $out/buildls
ifconfig -a | grep -E '^[a-z]|inet ' > $out/network
"#;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn cppnix_available(test: &str) -> bool {
    if !is_root() {
        skip_notice!("SKIPPED {test}: CppNix's sandbox needs root here (build users); nivis' own tests still run");
        return false;
    }
    if !Command::new("nix-store").arg("--version").output().is_ok_and(|o| o.status.success()) {
        skip_notice!("SKIPPED {test}: CppNix (nix-store) is not installed");
        return false;
    }
    true
}

struct Derivation {
    drv_path: String,
    builder: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    outputs: BTreeMap<String, String>,
    input_srcs: Vec<String>,
    platform: String,
}

/// Instantiates `expression` into the chroot store at `store_root` and reads
/// the derivation back with `nix show-derivation`.
fn instantiate(store_root: &Path, expression: &str) -> Derivation {
    let output = Command::new("nix-instantiate")
        .args(["--store", store_root.to_str().expect("utf-8"), "-E", expression])
        .output()
        .expect("nix-instantiate");
    assert!(output.status.success(), "nix-instantiate: {}", String::from_utf8_lossy(&output.stderr));
    let drv_path = String::from_utf8(output.stdout).expect("utf-8").trim().to_string();
    let output = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "show-derivation", "--store"])
        .arg(store_root)
        .arg(&drv_path)
        .output()
        .expect("nix show-derivation");
    assert!(output.status.success(), "nix show-derivation: {}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let drv = &json[&drv_path];
    let strings = |value: &serde_json::Value| -> Vec<String> {
        value.as_array().expect("array").iter().map(|v| v.as_str().expect("string").to_string()).collect()
    };
    Derivation {
        drv_path: drv_path.clone(),
        builder: drv["builder"].as_str().expect("builder").to_string(),
        args: strings(&drv["args"]),
        env: drv["env"]
            .as_object()
            .expect("env")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("str").to_string()))
            .collect(),
        outputs: drv["outputs"]
            .as_object()
            .expect("outputs")
            .iter()
            .map(|(k, v)| (k.clone(), v["path"].as_str().expect("path").to_string()))
            .collect(),
        input_srcs: strings(&drv["inputSrcs"]),
        platform: drv["system"].as_str().expect("system").to_string(),
    }
}

fn read_dir_files(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.expect("entry");
            (entry.file_name().to_string_lossy().into_owned(), fs::read_to_string(entry.path()).expect("dump file"))
        })
        .collect()
}

fn busybox_source(dir: &Path) -> PathBuf {
    let bin = dir.join("busybox/bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
    for applet in [
        "sh", "env", "sort", "id", "hostname", "cat", "pwd", "ls", "stat", "readlink", "grep", "umask", "mkdir",
        "ifconfig", "uname",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet");
    }
    dir.join("busybox")
}

/// A chroot store for CppNix with busybox available as a source path.
struct Peer {
    _root: tempfile::TempDir,
    store_root: PathBuf,
    real_store_dir: PathBuf,
    busybox_source: PathBuf,
}

impl Peer {
    fn new() -> Peer {
        let root = tempfile::Builder::new().prefix("nivis-build-cppnix").tempdir().expect("temp dir");
        let busybox_source = busybox_source(root.path());
        let store_root = root.path().join("store");
        let real_store_dir = store_root.join("nix/store");
        Peer { _root: root, store_root, real_store_dir, busybox_source }
    }

    /// A derivation with busybox `sh -c script` as its builder and `attrs` (Nix
    /// attribute bindings) besides.
    fn instantiate(&self, script: &str, attrs: &str) -> Derivation {
        let script = script.replace("''", "'''").replace("${", "''${");
        let expression = format!(
            r#"let bb = builtins.path {{ path = {source}; name = "busybox"; }}; in
            derivation ({{
              system = "x86_64-linux";
              builder = "${{bb}}/bin/sh"; args = [ "-c" ''{script}'' "first" "second" ];
              PATH = "${{bb}}/bin";
            }} // {{ {attrs} }})"#,
            source = self.busybox_source.display(),
        );
        instantiate(&self.store_root, &expression)
    }

    /// The request nivis builds the same derivation from.
    fn request(&self, drv: &Derivation) -> BuildRequest {
        let mut request = BuildRequest::new(drv.drv_path.clone(), drv.builder.clone(), self.real_store_dir.clone());
        request.args = drv.args.clone();
        request.env = drv.env.clone();
        request.structured_attrs = structured_attrs_from_env(&drv.env).expect("__json");
        request.outputs = drv.outputs.clone();
        request.input_paths = drv.input_srcs.clone();
        request.tmp_root = PathBuf::from("/tmp");
        request.build_cores = 2;
        // CppNix's default system-features include kvm where /dev/kvm exists.
        request.kvm = true;
        // Build as an unprivileged user as CppNix does with build users, so
        // root-owned files look the same (unmapped) from inside.
        request.build_user = Some(BuildUser { uid: 30001, gid: 30001 });
        request.system = drv.platform.clone();
        request
    }

    /// Builds with CppNix and returns its build log.
    fn realise(&self, drv: &Derivation, extra_env: &[(&str, &str)]) -> String {
        let store = self.store_root.to_str().expect("utf-8");
        let output = Command::new("nix-store")
            .args(["--store", store, "--option", "sandbox", "true", "--option", "substituters", ""])
            .args(["--option", "cores", "2", "--realise", &drv.drv_path])
            .envs(extra_env.iter().copied())
            .output()
            .expect("nix-store --realise");
        assert!(output.status.success(), "CppNix build failed: {}", String::from_utf8_lossy(&output.stderr));
        let log = Command::new("nix-store")
            .args(["--store", store, "--read-log", &drv.drv_path])
            .output()
            .expect("nix-store -l");
        String::from_utf8_lossy(&log.stdout).into_owned()
    }

    fn real_output(&self, drv: &Derivation, name: &str) -> PathBuf {
        self.real_store_dir.join(drv.outputs[name].rsplit('/').next().expect("base"))
    }
}

fn assert_same_files(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) {
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    let mut differences = Vec::new();
    for (file, their_contents) in theirs {
        if ours[file] != *their_contents {
            differences.push(format!("== {file}\n-- CppNix:\n{their_contents}-- nivis:\n{}", ours[file]));
        }
    }
    assert!(differences.is_empty(), "the builder's world differs from CppNix's:\n{}", differences.join("\n"));
}

#[test]
fn builder_world_matches_cppnix() {
    if !sandbox_available("builder_world_matches_cppnix") || !cppnix_available("builder_world_matches_cppnix") {
        return;
    }
    let peer = Peer::new();
    let drv = peer.instantiate(
        DUMP_SCRIPT,
        r#"name = "world"; outputs = [ "out" "dev" ];
           passAsFile = [ "big" ]; big = "contents passed as a file";
           plain = "a plain attribute";"#,
    );
    // nivis first, reading the dump from the chroot before it is cleaned up.
    let (outcome, log) = build(&peer.request(&drv));
    assert!(outcome.status.success(), "nivis build failed: {:?}\n{log}", outcome.status);
    let ours = read_dir_files(&outcome.output_location("out").expect("out"));
    drop(outcome);
    peer.realise(&drv, &[]);
    assert_same_files(&ours, &read_dir_files(&peer.real_output(&drv, "out")));
}

#[test]
fn structured_attrs_match_cppnix() {
    if !sandbox_available("structured_attrs_match_cppnix") || !cppnix_available("structured_attrs_match_cppnix") {
        return;
    }
    let peer = Peer::new();
    // CppNix 2.8 points NIX_ATTRS_*_FILE at the host's build directory (fixed
    // later to the sandbox path, which nivis uses), so those two are left out.
    let script = r#"
out=$(sed -n 's/.*"outputs":{"out":"\([^"]*\)".*/\1/p' /build/.attrs.json)
mkdir $out
env | grep -v '^NIX_ATTRS_' | sort > $out/env
cp /build/.attrs.json $out/json
cp /build/.attrs.sh $out/sh
ls -a /build > $out/buildls
"#;
    let drv = peer.instantiate(
        script,
        r#"name = "structured"; __structuredAttrs = true; outputs = [ "out" ];
           str = "it's \"quoted\"\n"; int = 42; big = 5000000000; neg = -7; float = 1.5; whole = 2.0;
           yes = true; no = false; nothing = null;
           list = [ 1 "two" true null ]; nestedList = [ [ 1 ] ];
           set = { a = 1; b = "x'y"; c = null; }; nestedSet = { a = { b = 1; }; };
           "not-a-shell-name" = "skipped in .attrs.sh"; passAsFile = [ "str" ];"#,
    );
    let request = peer.request(&drv);
    assert!(request.structured_attrs.is_some());
    assert!(request.env.contains_key("__json"));
    let (outcome, log) = build(&request);
    assert!(outcome.status.success(), "nivis build failed: {:?}\n{log}", outcome.status);
    let ours = read_dir_files(&outcome.output_location("out").expect("out"));
    drop(outcome);
    peer.realise(&drv, &[]);
    assert_same_files(&ours, &read_dir_files(&peer.real_output(&drv, "out")));
}

#[test]
fn fixed_output_world_matches_cppnix() {
    if !sandbox_available("fixed_output_world_matches_cppnix") || !cppnix_available("fixed_output_world_matches_cppnix")
    {
        return;
    }
    let peer = Peer::new();
    let script = r#"
env | sort >&2
ls -a /etc >&2
cat /etc/nsswitch.conf >&2
ifconfig -a | grep -E '^[a-z]' | while read -r name rest; do echo "interface $name" >&2; done
printf hi > $out
"#;
    // sha256 of "hi": `printf hi | sha256sum`.
    let drv = peer.instantiate(
        script,
        r#"name = "fixed"; outputHashMode = "flat"; outputHashAlgo = "sha256";
           outputHash = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4";
           impureEnvVars = [ "NIVIS_TEST_IMPURE" "NIVIS_TEST_UNSET" ];"#,
    );
    let mut request = peer.request(&drv);
    request.fixed_output = true;
    // What `impure_environment` would read from a process that has the
    // variable set, as the CppNix run below does.
    request.impure_env = impure_environment(&drv.env);
    request.impure_env.insert("NIVIS_TEST_IMPURE".to_string(), "from the caller".to_string());
    let (outcome, our_log) = build(&request);
    assert!(outcome.status.success(), "nivis build failed: {:?}\n{our_log}", outcome.status);
    drop(outcome);
    let their_log = peer.realise(&drv, &[("NIVIS_TEST_IMPURE", "from the caller")]);
    assert_eq!(our_log, their_log);
    for expected in [
        "NIX_OUTPUT_CHECKED=1\n",
        "NIVIS_TEST_IMPURE=from the caller\n",
        "NIVIS_TEST_UNSET=\n",
        "hosts: files dns\n",
        "resolv.conf\n",
    ] {
        assert!(our_log.contains(expected), "{expected:?} missing from the log:\n{our_log}");
    }
}

#[test]
fn i686_personality_matches_cppnix() {
    if !sandbox_available("i686_personality_matches_cppnix") || !cppnix_available("i686_personality_matches_cppnix") {
        return;
    }
    let peer = Peer::new();
    let drv = peer.instantiate(
        "mkdir $out; uname -m > $out/uname; cat /proc/self/personality > $out/personality",
        r#"name = "i686"; system = "i686-linux";"#,
    );
    let (outcome, log) = build(&peer.request(&drv));
    assert!(outcome.status.success(), "nivis build failed: {:?}\n{log}", outcome.status);
    let ours = read_dir_files(&outcome.output_location("out").expect("out"));
    drop(outcome);
    peer.realise(&drv, &[]);
    assert_same_files(&ours, &read_dir_files(&peer.real_output(&drv, "out")));
    assert_eq!(ours["uname"], "i686\n");
}

#[test]
fn request_from_a_parsed_drv_file() {
    // Needs only CppNix's evaluator, not its sandbox.
    if !Command::new("nix-instantiate").arg("--version").output().is_ok_and(|o| o.status.success()) {
        skip_notice!("SKIPPED request_from_a_parsed_drv_file: CppNix is not installed");
        return;
    }
    let peer = Peer::new();
    for attrs in [
        r#"name = "plain"; outputs = [ "out" "lib" ]; passAsFile = [ "x" ]; x = "y";"#,
        r#"name = "structured"; __structuredAttrs = true; list = [ 1 2 ];"#,
        r#"name = "fixed"; outputHashMode = "flat"; outputHashAlgo = "sha256";
           outputHash = "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"; impureEnvVars = [ "HOME" ];"#,
    ] {
        let shown = peer.instantiate("true", attrs);
        let store_dir = StoreDir::new("/nix/store").expect("store dir");
        let drv_path = store_dir.parse_path(&shown.drv_path).expect("drv path");
        let contents = fs::read(peer.real_store_dir.join(drv_path.base_name())).expect("read .drv");
        let drv = ParsedDerivation::parse(&store_dir, &contents).expect("parse .drv");
        let closure = drv.input_sources.clone();
        let request = BuildRequest::from_derivation(&store_dir, &drv_path, &drv, &closure, peer.real_store_dir.clone())
            .expect("request");
        let expected = peer.request(&shown);
        assert_eq!(request.drv_path, expected.drv_path);
        assert_eq!(request.builder, expected.builder);
        assert_eq!(request.args, expected.args);
        assert_eq!(request.env, expected.env);
        assert_eq!(request.outputs, expected.outputs);
        assert_eq!(request.input_paths, expected.input_paths);
        assert_eq!(request.structured_attrs, expected.structured_attrs);
        assert_eq!(request.system, expected.system);
        assert_eq!(request.fixed_output, attrs.contains("outputHash"));
        if request.fixed_output {
            assert_eq!(
                request.impure_env.get("HOME").map(String::as_str),
                std::env::var("HOME").ok().as_deref().or(Some(""))
            );
        }
    }
}

/// The path infos CppNix has for `paths`, as `exportReferencesGraph` needs them.
fn path_infos(peer: &Peer, paths: &[String]) -> BTreeMap<String, InputPathInfo> {
    let output = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "path-info", "--json", "--store"])
        .arg(&peer.store_root)
        .args(paths)
        .output()
        .expect("nix path-info");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    json.as_array()
        .expect("array")
        .iter()
        .map(|entry| {
            let info = InputPathInfo {
                nar_hash: Hash::parse_sri(entry["narHash"].as_str().expect("narHash")).expect("SRI hash"),
                nar_size: entry["narSize"].as_u64().expect("narSize"),
                references: entry["references"]
                    .as_array()
                    .expect("references")
                    .iter()
                    .map(|r| r.as_str().expect("reference").to_string())
                    .collect(),
                ca: entry.get("ca").and_then(|ca| ca.as_str()).map(str::to_string),
            };
            (entry["path"].as_str().expect("path").to_string(), info)
        })
        .collect()
}

#[test]
fn export_references_graph_matches_cppnix() {
    if !sandbox_available("export_references_graph_matches_cppnix")
        || !cppnix_available("export_references_graph_matches_cppnix")
    {
        return;
    }
    let peer = Peer::new();
    // A text file referring to busybox, so the exported closure has an edge.
    let cases = [
        (
            "mkdir $out; cat /build/graph > $out/graph; cat /build/other > $out/other",
            r#"name = "graph"; exportReferencesGraph = [ "graph" (builtins.toFile "refers" "${bb}") "other" bb ];"#,
        ),
        (
            r#"out=$(sed -n 's/.*"outputs":{"out":"\([^"]*\)".*/\1/p' /build/.attrs.json); mkdir $out; cp /build/.attrs.json $out/json"#,
            r#"name = "graph-structured"; __structuredAttrs = true;
               exportReferencesGraph = { closure = [ (builtins.toFile "refers" "${bb}") ]; single = "${bb}"; };"#,
        ),
    ];
    for (script, attrs) in cases {
        let drv = peer.instantiate(script, attrs);
        let mut request = peer.request(&drv);
        request.input_path_infos = path_infos(&peer, &request.input_paths);
        let (outcome, log) = build(&request);
        assert!(outcome.status.success(), "nivis build failed: {:?}\n{log}", outcome.status);
        let ours = read_dir_files(&outcome.output_location("out").expect("out"));
        drop(outcome);
        peer.realise(&drv, &[]);
        assert_same_files(&ours, &read_dir_files(&peer.real_output(&drv, "out")));
        assert!(ours.values().any(|contents| contents.contains("-busybox")), "{ours:?}");
    }
}
