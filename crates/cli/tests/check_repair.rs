//! `--check` (`nix build --rebuild`) and `--repair` end to end, in temporary
//! chroot stores with real sandboxed builds (a static busybox is the builder):
//! deterministic and non-deterministic derivations checked by nivis and by
//! CppNix 2.8 (same verdicts, messages and exit codes), and corrupted outputs
//! found by `nix-store --verify --check-contents` and repaired by
//! `--repair-path`, `nix-build --repair` and `--verify --repair`, with CppNix
//! verifying the repaired store.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::{BUSYBOX, cppnix_available, sandbox_available};


/// The derivations under test. `nondet` and `multi.dev` differ on every build
/// (a fresh random UUID); `det` and `tree` do not; `user` refers to `tree`.
const EXPRESSION: &str = r#"
let
  mk = name: script: extra: derivation ({
    inherit name; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ];
  } // extra);
in rec {
  det = mk "det" "echo deterministic > $out" {};
  nondet = mk "nondet" "mkdir $out; cat /proc/sys/kernel/random/uuid > $out/random; echo same > $out/same" {};
  multi = mk "multi" "echo fixed > $out; cat /proc/sys/kernel/random/uuid > $dev" { outputs = [ "out" "dev" ]; };
  tree = mk "tree" "mkdir -p $out/sub; echo contents > $out/sub/file; echo other > $out/other" {};
  user = mk "user" "mkdir $out; ln -s ${tree} $out/tree; cat ${tree}/sub/file > $out/copy" {};
}
"#;

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("nivis-check-repair").tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin");
        for name in ["nix-build", "nix-store", "nix"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), bin.join(name)).expect("link");
        }
        fs::write(dir.path().join("default.nix"), EXPRESSION).expect("write expression");
        Fixture { dir, bin }
    }

    fn store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn expr(&self) -> String {
        self.dir.path().join("default.nix").display().to_string()
    }

    /// A nivis command (`nix-build`, `nix-store`, `nix SUBCOMMAND`) on
    /// `store`, offline, with busybox as the sandbox's `/bin/sh`.
    fn nivis(&self, command: &str, store: &Path, args: &[&str]) -> Output {
        self.run(self.bin.join(command), store, args)
    }

    /// The same command run by CppNix 2.8.
    fn cppnix(&self, command: &str, store: &Path, args: &[&str]) -> Output {
        self.run(PathBuf::from(format!("/usr/bin/{command}")), store, args)
    }

    fn run(&self, program: PathBuf, store: &Path, args: &[&str]) -> Output {
        let mut command = Command::new(&program);
        // `nix`: the subcommand first, its flags after it.
        let (subcommand, args) = match args.split_first() {
            Some((first, rest)) if program.ends_with("nix") => (Some(*first), rest),
            _ => (None, args),
        };
        command.args(subcommand);
        command
            .current_dir(self.dir.path())
            .env("NIX_CONFIG", "substituters =\nexperimental-features = nix-command")
            .env_remove("NIX_REMOTE")
            .arg("--store")
            .arg(store)
            .args(["--option", "sandbox-paths", &format!("/bin/sh={BUSYBOX}")])
            .args(args)
            .output()
            .expect("run the command")
    }

    /// `nix-build -A attr` with nivis or CppNix; returns (output, exit code, stderr).
    fn build(&self, cppnix: bool, store: &Path, attr: &str, extra: &[&str]) -> (String, Option<i32>, String) {
        let expr = self.expr();
        let mut args = vec![expr.as_str(), "-A", attr, "--no-out-link"];
        args.extend_from_slice(extra);
        let output = if cppnix { self.cppnix("nix-build", store, &args) } else { self.nivis("nix-build", store, &args) };
        (text(&output.stdout).trim().to_string(), output.status.code(), text(&output.stderr))
    }

    fn drv_path(&self, store: &Path, attr: &str) -> String {
        let output = Command::new("/usr/bin/nix-instantiate")
            .arg("--store")
            .arg(store)
            .args([self.expr().as_str(), "-A", attr])
            .output()
            .expect("nix-instantiate");
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).trim().to_string()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The registered NAR hash of `path`, as CppNix reads the database.
fn registered_hash(store: &Path, path: &str) -> String {
    let output =
        Command::new("/usr/bin/nix-store").arg("--store").arg(store).args(["--query", "--hash", path]).output().expect("query");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

/// The NAR hash of what is on disk at `real`, computed by CppNix's nix-hash.
fn disk_hash(real: &Path) -> String {
    let output = Command::new("/usr/bin/nix-hash")
        .args(["--type", "sha256", "--base32"])
        .arg(real)
        .output()
        .expect("nix-hash");
    assert!(output.status.success(), "{}", text(&output.stderr));
    format!("sha256:{}", text(&output.stdout).trim())
}

/// The stderr lines starting with `error:`, with `root` (the store's
/// location on disk) replaced by `ROOT`, so two stores' messages compare.
fn error_lines(stderr: &str, root: &Path) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(|line| line.replace(&root.display().to_string(), "ROOT"))
        .collect()
}

/// Whether every file below `path` has a store path's metadata.
fn assert_canonical(path: &Path) {
    let metadata = fs::symlink_metadata(path).expect("stat");
    if !metadata.file_type().is_symlink() {
        let mode = metadata.permissions().mode() & 0o7777;
        assert!(mode == 0o444 || mode == 0o555, "{} has mode {mode:o}", path.display());
        assert_eq!(metadata.mtime(), 1, "{} mtime", path.display());
    }
    if metadata.is_dir() {
        for entry in fs::read_dir(path).expect("read dir") {
            assert_canonical(&entry.expect("entry").path());
        }
    }
}

/// Makes `path` and its parent writable and replaces its contents (what a
/// stray editor or a failing disk might do to a store path).
fn corrupt(path: &Path, contents: &str) {
    for p in [path.parent().expect("parent"), path] {
        let mode = fs::metadata(p).expect("stat").permissions().mode();
        fs::set_permissions(p, fs::Permissions::from_mode(mode | 0o200)).expect("chmod");
    }
    fs::write(path, contents).expect("corrupt");
}

#[test]
fn check_verdicts_match_cppnix() {
    if !sandbox_available("check_verdicts_match_cppnix") {
        return;
    }
    let fixture = Fixture::new();
    let ours = fixture.store("nivis");
    let peers: Vec<(bool, PathBuf)> = if cppnix_available() {
        vec![(false, ours.clone()), (true, fixture.store("cppnix"))]
    } else {
        eprintln!("CppNix 2.8 not available (or not root): checking nivis alone");
        vec![(false, ours.clone())]
    };
    let mut verdicts: Vec<Vec<(Option<i32>, Vec<String>)>> = Vec::new();
    for (cppnix, store) in &peers {
        let (cppnix, store) = (*cppnix, store.as_path());
        let who = if cppnix { "CppNix" } else { "nivis" };
        let mut seen = Vec::new();
        let root_store = store.join("nix/store");

        // Checking outputs that were never built is an error.
        let (_, code, stderr) = fixture.build(cppnix, store, "nondet", &["--check"]);
        seen.push((code, error_lines(&stderr, store)));

        let (det_out, code, stderr) = fixture.build(cppnix, store, "det", &[]);
        assert_eq!(code, Some(0), "{who}: {stderr}");
        let (nondet_out, code, stderr) = fixture.build(cppnix, store, "nondet", &[]);
        assert_eq!(code, Some(0), "{who}: {stderr}");
        let det_hash = registered_hash(store, &det_out);
        let nondet_hash = registered_hash(store, &nondet_out);
        let nondet_real = root_store.join(nondet_out.trim_start_matches("/nix/store/"));
        let check_copy = PathBuf::from(format!("{}.check", nondet_real.display()));

        // Deterministic: success, the same path on stdout, nothing changes (and
        // -K keeps no build directory of a build that succeeded).
        let (out, code, stderr) = fixture.build(cppnix, store, "det", &["--check", "-K"]);
        assert!(!stderr.contains("keeping build directory"), "{who}: {stderr}");
        assert_eq!((out.as_str(), code), (det_out.as_str(), Some(0)), "{who}: {stderr}");
        let det_drv = fixture.drv_path(store, "det");
        assert!(stderr.contains(&format!("checking outputs of '{det_drv}'...")), "{who}: {stderr}");
        assert!(!stderr.contains("building '"), "{who} built instead of checking: {stderr}");
        assert_eq!(registered_hash(store, &det_out), det_hash);
        seen.push((code, error_lines(&stderr, store)));

        // Non-deterministic: 104 and the differing output named; the valid
        // output stays as it was, and without -K nothing is kept.
        let (out, code, stderr) = fixture.build(cppnix, store, "nondet", &["--check"]);
        assert_eq!((out.as_str(), code), ("", Some(104)), "{who}: {stderr}");
        let nondet_drv = fixture.drv_path(store, "nondet");
        assert!(
            stderr.contains(&format!(
                "error: derivation '{nondet_drv}' may not be deterministic: output '{}' differs\n",
                nondet_real.display()
            )),
            "{who}: {stderr}"
        );
        assert!(fs::symlink_metadata(&check_copy).is_err(), "{who} kept {} without -K", check_copy.display());
        assert_eq!(registered_hash(store, &nondet_out), nondet_hash);
        assert_eq!(disk_hash(&nondet_real), nondet_hash, "{who} changed the valid output");
        seen.push((code, error_lines(&stderr, store)));

        // -K keeps the new output as <path>.check, canonical, and says so.
        let (_, code, stderr) = fixture.build(cppnix, store, "nondet", &["--check", "-K"]);
        assert_eq!(code, Some(104), "{who}: {stderr}");
        assert!(
            stderr.contains(&format!("differs from '{}'", check_copy.display())),
            "{who}: {stderr}"
        );
        // The build directory is kept too, said before the error, as CppNix.
        let note = stderr.lines().find_map(|line| line.strip_prefix("note: keeping build directory '"));
        let kept = note.and_then(|rest| rest.strip_suffix('\'')).map(PathBuf::from);
        let kept = kept.unwrap_or_else(|| panic!("{who} did not say it keeps the build directory: {stderr}"));
        assert!(kept.is_dir(), "{who}: {}", kept.display());
        let _ = Command::new("rm").arg("-rf").arg(&kept).status();
        assert_canonical(&check_copy);
        assert_ne!(disk_hash(&check_copy), nondet_hash);
        assert_eq!(fs::read(check_copy.join("same")).expect("kept output"), b"same\n");
        seen.push((code, error_lines(&stderr, store)));

        // The same through nix-store --realise, per output; only the
        // requested derivation is checked.
        let (_, code, stderr) = fixture.build(cppnix, store, "multi", &[]);
        assert_eq!(code, Some(0), "{who}: {stderr}");
        let multi_drv = fixture.drv_path(store, "multi");
        let realise = |args: &[&str]| {
            if cppnix { fixture.cppnix("nix-store", store, args) } else { fixture.nivis("nix-store", store, args) }
        };
        let output = realise(&["--realise", &multi_drv, "--check"]);
        assert_eq!(output.status.code(), Some(104), "{who}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("-multi-dev' differs"), "{who}: {}", text(&output.stderr));
        seen.push((output.status.code(), error_lines(&text(&output.stderr), store)));
        let output = realise(&["--realise", &det_drv, "--check"]);
        assert_eq!(text(&output.stdout).trim(), det_out, "{who}: {}", text(&output.stderr));

        // `nix build` spells it --rebuild and exits with 1; nix-build has no --rebuild.
        let nix = |args: &[&str]| {
            let expr = fixture.expr();
            let mut all = vec!["build", "-f", expr.as_str(), "--no-link"];
            all.extend_from_slice(args);
            if cppnix { fixture.cppnix("nix", store, &all) } else { fixture.nivis("nix", store, &all) }
        };
        let output = nix(&["nondet", "--rebuild"]);
        seen.push((output.status.code(), error_lines(&text(&output.stderr), store)));
        let output = nix(&["det", "--rebuild"]);
        assert!(output.status.success(), "{who}: {}", text(&output.stderr));
        let output = nix(&["det", "--check"]);
        seen.push((output.status.code(), error_lines(&text(&output.stderr), store)));
        let (_, code, stderr) = fixture.build(cppnix, store, "det", &["--rebuild"]);
        seen.push((code, error_lines(&stderr, store)));
        verdicts.push(seen);
    }
    if verdicts.len() == 2 {
        // Same exit codes and the same error lines, store roots aside.
        assert_eq!(verdicts[0], verdicts[1], "nivis (left) and CppNix (right) disagree");
        // Each one's check of the other's store: the builds are the same.
        let (_, code, stderr) = fixture.build(true, &peers[0].1, "det", &["--check"]);
        assert_eq!(code, Some(0), "CppNix checking nivis's build: {stderr}");
        let (_, code, stderr) = fixture.build(false, &peers[1].1, "det", &["--check"]);
        assert_eq!(code, Some(0), "nivis checking CppNix's build: {stderr}");
    } else {
        let expected_codes: Vec<Option<i32>> = verdicts[0].iter().map(|(code, _)| *code).collect();
        assert_eq!(expected_codes, [Some(1), Some(0), Some(104), Some(104), Some(104), Some(1), Some(1), Some(1)]);
    }
}

#[test]
fn corrupted_outputs_are_found_and_repaired() {
    if !sandbox_available("corrupted_outputs_are_found_and_repaired") {
        return;
    }
    let fixture = Fixture::new();
    let store = fixture.store("nivis");
    let root_store = store.join("nix/store");
    let (user_out, code, stderr) = fixture.build(false, &store, "user", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (tree_out, code, stderr) = fixture.build(false, &store, "tree", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (det_out, code, stderr) = fixture.build(false, &store, "det", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let real = |path: &str| root_store.join(path.trim_start_matches("/nix/store/"));
    let tree_hash = registered_hash(&store, &tree_out);
    let verify = |cppnix: bool| {
        let args = ["--verify", "--check-contents"];
        if cppnix { fixture.cppnix("nix-store", &store, &args) } else { fixture.nivis("nix-store", &store, &args) }
    };
    let use_cppnix = cppnix_available();

    // A corrupted file in a directory output: both verifiers report it.
    corrupt(&real(&tree_out).join("sub/file"), "tampered\n");
    let output = verify(false);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("path '{tree_out}' was modified! expected hash '{tree_hash}'")), "{stderr}");
    if use_cppnix {
        let output = verify(true);
        assert_eq!(output.status.code(), Some(1));
        assert!(text(&output.stderr).contains(&format!("path '{tree_out}' was modified!")));
    }

    // --repair-path rebuilds it through its deriver and swaps it in; the
    // database entry and the contents agree again, and the referrer is intact.
    let output = fixture.nivis("nix-store", &store, &["--repair-path", &tree_out]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let tree_drv = fixture.drv_path(&store, "tree");
    assert!(stderr.contains(&format!("path '{tree_out}' is corrupted or missing!")), "{stderr}");
    assert!(stderr.contains(&format!("repairing outputs of '{tree_drv}'...")), "{stderr}");
    assert_eq!(fs::read_to_string(real(&tree_out).join("sub/file")).expect("repaired"), "contents\n");
    assert_eq!(disk_hash(&real(&tree_out)), tree_hash);
    assert_eq!(registered_hash(&store, &tree_out), tree_hash);
    assert_canonical(&real(&tree_out));
    assert!(fs::read_dir(&root_store).expect("store").all(|e| !e.expect("entry").file_name().to_string_lossy().contains(".repair")));
    assert!(verify(false).status.success(), "{}", text(&verify(false).stderr));
    if use_cppnix {
        let output = verify(true);
        assert!(output.status.success(), "CppNix: {}", text(&output.stderr));
    }
    let user_real = real(&user_out);
    assert_eq!(fs::read_link(user_real.join("tree")).expect("link"), Path::new(&tree_out));

    // A good path: checked, left alone.
    let output = fixture.nivis("nix-store", &store, &["--repair-path", &tree_out]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("checking path '{tree_out}'...")), "{stderr}");
    assert!(!stderr.contains("repairing outputs"), "{stderr}");

    // nix-build --repair fixes a corrupted single-file output.
    let det_hash = registered_hash(&store, &det_out);
    corrupt(&real(&det_out), "tampered\n");
    let (out, code, stderr) = fixture.build(false, &store, "det", &["--repair"]);
    assert_eq!((out.as_str(), code), (det_out.as_str(), Some(0)), "{stderr}");
    assert_eq!(fs::read_to_string(real(&det_out)).expect("repaired"), "deterministic\n");
    assert_eq!(disk_hash(&real(&det_out)), det_hash);

    // nix-build --repair of a derivation whose own output is good repairs a
    // corrupted path in its output's closure through that path's deriver.
    corrupt(&real(&tree_out).join("sub/file"), "tampered again\n");
    let (out, code, stderr) = fixture.build(false, &store, "user", &["--repair"]);
    assert_eq!((out.as_str(), code), (user_out.as_str(), Some(0)), "{stderr}");
    let user_drv = fixture.drv_path(&store, "user");
    assert!(
        stderr.contains(&format!("found corrupted or missing path '{tree_out}' in the output closure of '{user_drv}'")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("repairing outputs of '{tree_drv}'...")), "{stderr}");
    assert_eq!(disk_hash(&real(&tree_out)), tree_hash);

    // --verify --check-contents --repair: the built path is rebuilt, a source
    // path (no deriver) cannot be repaired, as CppNix says.
    let source = fixture.dir.path().join("source.txt");
    fs::write(&source, "source\n").expect("source");
    let added = fixture.nivis("nix-store", &store, &["--add", source.to_str().expect("utf-8")]);
    let source_out = text(&added.stdout).trim().to_string();
    corrupt(&real(&source_out), "tampered\n");
    corrupt(&real(&tree_out).join("other"), "tampered\n");
    let output = fixture.nivis("nix-store", &store, &["--verify", "--check-contents", "--repair"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("error: cannot repair path '{source_out}'")), "{stderr}");
    assert!(stderr.ends_with("warning: not all store errors were fixed\n"), "{stderr}");
    assert_eq!(disk_hash(&real(&tree_out)), tree_hash, "{stderr}");
    if use_cppnix {
        // CppNix on a store of its own says the same of a source path.
        let theirs = fixture.store("cppnix");
        let added = fixture.cppnix("nix-store", &theirs, &["--add", source.to_str().expect("utf-8")]);
        let theirs_out = text(&added.stdout).trim().to_string();
        assert_eq!(theirs_out, source_out);
        corrupt(&theirs.join("nix/store").join(theirs_out.trim_start_matches("/nix/store/")), "tampered\n");
        let output = fixture.cppnix("nix-store", &theirs, &["--verify", "--check-contents", "--repair"]);
        let their_stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{their_stderr}");
        assert!(their_stderr.contains(&format!("error: cannot repair path '{source_out}'")), "{their_stderr}");
        assert!(their_stderr.ends_with("warning: not all store errors were fixed\n"), "{their_stderr}");
    }

    // An invalid path is an error.
    let missing = format!("{}x", &det_out[..det_out.len() - 1]);
    let output = fixture.nivis("nix-store", &store, &["--repair-path", &missing]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains(&format!("error: path '{missing}' is not valid")), "{}", text(&output.stderr));
}
