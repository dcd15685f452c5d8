//! `nix-store`, `nix store`, `nix path-info` and `nix-prefetch-url` run as real
//! processes next to CppNix 2.8 on stores in temporary directories: same paths,
//! same output, same exit codes; bad input fails cleanly; concurrent and killed
//! processes never leave a half-written valid path.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temporary directory with `nix-store`, `nix` and `nix-prefetch-url` linked
/// to the nivis binary.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        for name in ["nix-store", "nix", "nix-prefetch-url"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), dir.path().join("bin").join(name)).unwrap();
        }
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn nivis(&self, program: &str, args: &[&str]) -> Output {
        self.run(self.dir.path().join("bin").join(program), args, None)
    }

    fn cppnix(&self, program: &str, args: &[&str]) -> Output {
        self.run(PathBuf::from("/usr/bin").join(program), args, None)
    }

    fn run(&self, program: PathBuf, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut child = Command::new(program)
            .args(args)
            .env("NIX_CONFIG", "experimental-features = nix-command")
            .env_remove("NIX_REMOTE")
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            // The child may exit early on bad input; a broken pipe is fine.
            let _ = input.write_all(bytes);
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn nivis_stdin(&self, program: &str, args: &[&str], stdin: &[u8]) -> Output {
        self.run(self.dir.path().join("bin").join(program), args, Some(stdin))
    }
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn store_arg(root: &Path) -> String {
    root.to_string_lossy().into_owned()
}

/// A tree with a regular file, an executable, a symlink and an empty directory.
fn make_tree(at: &Path) {
    std::fs::create_dir_all(at.join("bin")).unwrap();
    std::fs::create_dir_all(at.join("empty")).unwrap();
    std::fs::write(at.join("README"), "hello\n").unwrap();
    std::fs::write(at.join("bin/run"), "#!/bin/sh\necho hi\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(at.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("../README", at.join("bin/readme")).unwrap();
}

/// Entries of the real store directory other than store paths' contents.
/// A `nix-store --import` by nivis into a fresh store, fed half of a CppNix export
/// of one file of `size` bytes, and caught once its temporary entry exists.
struct HalfImport {
    path: String,
    export: Vec<u8>,
    target: PathBuf,
    target_arg: String,
    child: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl HalfImport {
    fn start(env: &Env, fill: u8, size: usize) -> HalfImport {
        let source = store_arg(&env.path("source"));
        let big = env.path("big");
        std::fs::write(&big, vec![fill; size]).unwrap();
        let path = stdout(&env.cppnix("nix-store", &["--store", &source, "--add", big.to_str().unwrap()]));
        let path = path.trim().to_string();
        let export = env.cppnix("nix-store", &["--store", &source, "--export", &path]).stdout;

        let target = env.path("target");
        let target_arg = store_arg(&target);
        let mut child = Command::new(env.dir.path().join("bin/nix-store"))
            .args(["--store", &target_arg, "--import"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&export[..export.len() / 2]).unwrap();
        stdin.flush().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while leftovers(&target).is_empty() {
            assert!(std::time::Instant::now() < deadline, "no temporary entry appeared");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        HalfImport { path, export, target, target_arg, child, stdin }
    }
}

fn leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("nix/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-nivis-tmp-") || n.ends_with(".lock"))
        .collect()
}

#[test]
fn add_and_add_fixed_give_cppnix_paths_and_cppnix_accepts_them() {
    let env = Env::new();
    let tree = env.path("tree");
    make_tree(&tree);
    let file = env.path("file.txt");
    std::fs::write(&file, "some file contents\n").unwrap();
    let ours = store_arg(&env.path("ours"));
    let theirs = store_arg(&env.path("theirs"));
    let (tree, file) = (tree.to_str().unwrap(), file.to_str().unwrap());
    let mut cases: Vec<Vec<&str>> = vec![vec!["--add", tree, file]];
    for algo in ["md5", "sha1", "sha256", "sha512"] {
        cases.push(vec!["--add-fixed", algo, file]);
        cases.push(vec!["--add-fixed", "--recursive", algo, tree, file]);
    }
    for case in &cases {
        let mut our_args = vec!["--store", &ours];
        our_args.extend(case);
        let mut their_args = vec!["--store", &theirs];
        their_args.extend(case);
        let our_paths = stdout(&env.nivis("nix-store", &our_args));
        assert_eq!(our_paths, stdout(&env.cppnix("nix-store", &their_args)), "{case:?}");
        for path in our_paths.lines() {
            let verify = env.cppnix("nix-store", &["--store", &ours, "--verify-path", path]);
            assert!(verify.status.success(), "CppNix rejects {path}");
            assert_eq!(
                stdout(&env.cppnix("nix-store", &["--store", &ours, "-q", "--hash", "--", path])),
                stdout(&env.cppnix("nix-store", &["--store", &theirs, "-q", "--hash", path]))
            );
        }
    }
    assert!(env.cppnix("nix-store", &["--store", &ours, "--verify", "--check-contents"]).status.success());
    assert!(leftovers(&env.path("ours")).is_empty());
}

/// A CppNix-made store with a small reference graph: c refers to a and b, b to a.
fn cppnix_graph(env: &Env, root: &str) -> Vec<String> {
    let expr = r#"let a = builtins.toFile "a" "x"; b = builtins.toFile "b" "y ${a}"; c = builtins.toFile "c" "z ${a} ${b}"; in [ a b c ]"#;
    let out = stdout(&env.cppnix("nix-instantiate", &["--store", root, "--read-write-mode", "--eval", "--strict", "-E", expr]));
    out.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split_whitespace()
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

#[test]
fn queries_print_what_cppnix_prints() {
    let env = Env::new();
    let root = store_arg(&env.path("root"));
    let paths = cppnix_graph(&env, &root);
    let (a, c) = (paths[0].as_str(), paths[2].as_str());
    let missing = "/nix/store/00000000000000000000000000000000-missing";
    let queries: Vec<Vec<&str>> = vec![
        vec!["-q", "-R", c],
        vec!["-qR", c, a],
        vec!["--query", "--requisites", "--include-outputs", c],
        vec!["-q", "--tree", c],
        vec!["-q", "--graph", c],
        vec!["-q", "--references", c],
        vec!["-q", "--referrers", a],
        vec!["-q", "--referrers-closure", a],
        vec!["-q", "--hash", c, a],
        vec!["-q", "--size", c],
        vec!["-q", "--deriver", c],
        vec!["-q", "--outputs", c],
        vec!["-q", c],
        vec!["-q", "--hash", missing],
        vec!["-q", "--size", "--references", c],
        vec!["-q", "--bogus", c],
        vec!["--check-validity", "--print-invalid", c, missing],
        vec!["--check-validity", c],
        vec!["--verify-path", c, a],
        vec!["--export", missing],
    ];
    for query in &queries {
        let mut args = vec!["--store", root.as_str()];
        args.extend(query);
        let ours = env.nivis("nix-store", &args);
        let theirs = env.cppnix("nix-store", &args);
        assert_eq!(String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&theirs.stdout), "{query:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "{query:?}");
    }
    // nivis extension (CppNix refuses it): `--hash --size` prints both per path.
    let both = stdout(&env.nivis("nix-store", &["--store", &root, "-q", "--hash", "--size", c, a]));
    let hashes = stdout(&env.cppnix("nix-store", &["--store", &root, "-q", "--hash", c, a]));
    let sizes = stdout(&env.cppnix("nix-store", &["--store", &root, "-q", "--size", c, a]));
    let expected: Vec<&str> = hashes.lines().zip(sizes.lines()).flat_map(|(h, s)| [h, s]).collect();
    assert_eq!(both.lines().collect::<Vec<_>>(), expected);
    let hash_of_missing = env.nivis("nix-store", &["--store", &root, "-q", "--hash", missing]);
    assert_eq!(
        String::from_utf8_lossy(&hash_of_missing.stderr).trim(),
        format!("error: path '{missing}' is not valid")
    );
}

#[test]
fn paths_outside_the_store_and_unknown_operations_fail_clearly() {
    let env = Env::new();
    let root = store_arg(&env.path("root"));
    std::fs::write(env.path("outside"), "x").unwrap();
    let outside = env.path("outside");
    let outside = outside.to_str().unwrap();
    let ours = env.nivis("nix-store", &["--store", &root, "-q", "--hash", outside]);
    let theirs = env.cppnix("nix-store", &["--store", &root, "-q", "--hash", outside]);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(String::from_utf8_lossy(&ours.stderr), String::from_utf8_lossy(&theirs.stderr));
    let optimise = env.nivis("nix-store", &["--store", &root, "--optimise"]);
    assert_eq!(optimise.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&optimise.stderr).contains("not implemented yet"));
    let none = env.nivis("nix-store", &["--store", &root]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no operation specified"));
    let two = env.nivis("nix-store", &["--store", &root, "--add", "--export"]);
    assert!(String::from_utf8_lossy(&two.stderr).contains("only one operation may be specified"));
    let dummy = env.nivis("nix-store", &["--store", "dummy://", "--add", outside]);
    assert_eq!(dummy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dummy.stderr).contains("is not supported by store 'dummy'"));
}

#[test]
fn dump_and_restore_match_cppnix_and_bad_nars_leave_nothing() {
    let env = Env::new();
    let tree = env.path("tree");
    make_tree(&tree);
    let tree = tree.to_str().unwrap();
    let ours = env.nivis("nix-store", &["--dump", tree]);
    let theirs = env.cppnix("nix-store", &["--dump", tree]);
    assert!(ours.status.success());
    assert_eq!(ours.stdout, theirs.stdout);
    let nar = theirs.stdout;

    let restored = env.path("restored");
    let restore = env.nivis_stdin("nix-store", &["--restore", restored.to_str().unwrap()], &nar);
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    assert_eq!(env.cppnix("nix-store", &["--dump", restored.to_str().unwrap()]).stdout, nar);

    for bad in [&nar[..nar.len() / 2], &nar[..nar.len() - 8], b"not a nar at all".as_slice()] {
        let target = env.path("bad");
        let result = env.nivis_stdin("nix-store", &["--restore", target.to_str().unwrap()], bad);
        assert_eq!(result.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!target.exists(), "half-restored target left behind");
        let stray: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("nivis-restore"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }
}

#[test]
fn import_of_bad_exports_registers_nothing() {
    let env = Env::new();
    let source = store_arg(&env.path("source"));
    let paths = cppnix_graph(&env, &source);
    let mut export_args = vec!["--store", source.as_str(), "--export"];
    export_args.extend(paths.iter().map(String::as_str));
    let export = env.cppnix("nix-store", &export_args).stdout;

    let target = env.path("target");
    let target_arg = store_arg(&target);
    // Cut inside the first NAR: nothing may become valid.
    let cut = env.nivis_stdin("nix-store", &["--store", &target_arg, "--import"], &export[..100]);
    assert_eq!(cut.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cut.stderr).contains("error:"));
    let mut check = vec!["--store", target_arg.as_str(), "--check-validity", "--print-invalid"];
    check.extend(paths.iter().map(String::as_str));
    assert_eq!(stdout(&env.cppnix("nix-store", &check)).lines().count(), 3);
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));
    for path in &paths {
        let name = path.rsplit('/').next().unwrap();
        assert!(!target.join("nix/store").join(name).exists());
    }
    // Garbage instead of an export.
    let garbage = env.nivis_stdin("nix-store", &["--store", &target_arg, "--import"], &[7u8; 64]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("doesn't look like something created by 'nix-store --export'"));

    // The whole export imports, and CppNix sees the same hashes.
    let imported = env.nivis_stdin("nix-store", &["--store", &target_arg, "--import"], &export);
    let imported = stdout(&imported);
    assert_eq!(imported.lines().count(), 3);
    for path in &paths {
        assert_eq!(
            stdout(&env.cppnix("nix-store", &["--store", &target_arg, "-q", "--hash", path])),
            stdout(&env.cppnix("nix-store", &["--store", &source, "-q", "--hash", path]))
        );
        assert_eq!(
            stdout(&env.cppnix("nix-store", &["--store", &target_arg, "-q", "--references", path])),
            stdout(&env.cppnix("nix-store", &["--store", &source, "-q", "--references", path]))
        );
    }
    // And nivis's export of it is what CppNix exported.
    let mut our_export_args = vec!["--store", target_arg.as_str(), "--export"];
    our_export_args.extend(paths.iter().map(String::as_str));
    assert_eq!(env.nivis("nix-store", &our_export_args).stdout, export);
}

#[test]
fn verify_finds_modified_contents_like_cppnix() {
    let env = Env::new();
    let root = env.path("root");
    let root_arg = store_arg(&root);
    let file = env.path("f");
    std::fs::write(&file, "original").unwrap();
    let path = stdout(&env.nivis("nix-store", &["--store", &root_arg, "--add", file.to_str().unwrap()]));
    let path = path.trim();
    assert!(env.nivis("nix-store", &["--store", &root_arg, "--verify", "--check-contents"]).status.success());
    let real = root.join(path.trim_start_matches('/'));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&real, "tampered").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o444)).unwrap();
    for args in [vec!["--verify", "--check-contents"], vec!["--verify-path", path]] {
        let mut full = vec!["--store", root_arg.as_str()];
        full.extend(&args);
        let ours = env.nivis("nix-store", &full);
        let theirs = env.cppnix("nix-store", &full);
        assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
        assert_eq!(ours.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&ours.stderr).contains("was modified! expected hash"));
    }
}

#[test]
fn concurrent_adds_of_one_path_by_nivis_and_cppnix_processes() {
    let env = Env::new();
    let root = env.path("root");
    let root_arg = store_arg(&root);
    // Initialise the store first so that all adders race on the path alone.
    stdout(&env.nivis("nix-store", &["--store", &root_arg, "-q"]));
    let big = env.path("big");
    let chunk: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut data = Vec::new();
    for _ in 0..16 {
        data.extend(&chunk);
    }
    std::fs::write(&big, &data).unwrap();
    let mut children = Vec::new();
    for i in 0..6 {
        let program = if i % 3 == 2 {
            PathBuf::from("/usr/bin/nix-store")
        } else {
            env.dir.path().join("bin/nix-store")
        };
        children.push(
            Command::new(program)
                .args(["--store", &root_arg, "--add", big.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let outputs: Vec<String> = children.into_iter().map(|c| stdout(&c.wait_with_output().unwrap())).collect();
    assert!(outputs.iter().all(|o| o == &outputs[0]), "{outputs:?}");
    let path = outputs[0].trim();
    let registration = stdout(&env.cppnix("nix-store", &["--store", &root_arg, "--dump-db"]));
    assert_eq!(registration.lines().filter(|l| *l == path).count(), 1, "{registration}");
    assert!(leftovers(&root).is_empty(), "{:?}", leftovers(&root));
    assert!(env.cppnix("nix-store", &["--store", &root_arg, "--verify-path", path]).status.success());
    assert!(env.nivis("nix-store", &["--store", &root_arg, "--verify", "--check-contents"]).status.success());
}

#[test]
fn a_killed_import_leaves_no_valid_half_path() {
    let env = Env::new();
    let HalfImport { path, export, target, target_arg, mut child, stdin } = HalfImport::start(&env, 42, 8_000_000);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let name = path.rsplit('/').next().unwrap();
    assert!(!target.join("nix/store").join(name).exists(), "contents under the final name");
    let invalid = stdout(&env.cppnix("nix-store", &["--store", &target_arg, "--check-validity", "--print-invalid", &path]));
    assert_eq!(invalid.trim(), path);
    // The killed process's temporary copy is cleaned up by the next verify.
    assert!(!leftovers(&target).is_empty(), "the import was not killed mid-way");
    assert!(env.nivis("nix-store", &["--store", &target_arg, "--verify"]).status.success());
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));
    // A later import succeeds and CppNix accepts the result.
    let imported = env.nivis_stdin("nix-store", &["--store", &target_arg, "--import"], &export);
    assert_eq!(stdout(&imported).trim(), path);
    assert!(env.cppnix("nix-store", &["--store", &target_arg, "--verify-path", &path]).status.success());
}

#[test]
fn new_style_commands_print_what_cppnix_prints() {
    let env = Env::new();
    let root = store_arg(&env.path("root"));
    let tree = env.path("tree");
    make_tree(&tree);
    let path = stdout(&env.cppnix("nix-store", &["--store", &root, "--add", tree.to_str().unwrap()]));
    let path = path.trim();
    let paths = cppnix_graph(&env, &root);
    let file_in = format!("{path}/README");
    let cases: Vec<Vec<&str>> = vec![
        vec!["store", "ls", path],
        vec!["store", "ls", "-l", path],
        vec!["store", "ls", "-lR", path],
        vec!["store", "ls", "--json", path],
        vec!["store", "ls", "-R", "--json", path],
        vec!["store", "cat", &file_in],
        vec!["store", "cat", path],
        vec!["store", "dump-path", path],
        vec!["store", "verify", path],
        vec!["path-info", path],
        vec!["path-info", "-sS", "--sigs", path, &paths[2]],
        vec!["path-info", "-rsS", &paths[2]],
        vec!["path-info", "-h", "-s", path],
    ];
    for case in &cases {
        let mut args = vec!["--store", root.as_str()];
        args.extend(case);
        let ours = env.nivis("nix", &args);
        let theirs = env.cppnix("nix", &args);
        assert_eq!(String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&theirs.stdout), "{case:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "{case:?}");
    }
    // Signing: CppNix's key, our signature, CppNix's check.
    let secret = env.path("k.sec");
    let public = env.path("k.pub");
    stdout(&env.nivis("nix-store", &["--generate-binary-cache-key", "test-1", secret.to_str().unwrap(), public.to_str().unwrap()]));
    stdout(&env.nivis("nix", &["--store", &root, "store", "sign", "-k", secret.to_str().unwrap(), &paths[0]]));
    let public_key = std::fs::read_to_string(&public).unwrap();
    let trusted = format!("experimental-features = nix-command\ntrusted-public-keys = {public_key}");
    let check = Command::new("/usr/bin/nix")
        .args(["--store", &root, "store", "verify", "--sigs-needed", "1", &paths[0]])
        .env("NIX_CONFIG", &trusted)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    // CppNix signs with the secret key nivis generated; nivis then sees that signature.
    stdout(&env.cppnix("nix", &["--store", &root, "store", "sign", "-k", secret.to_str().unwrap(), &paths[1]]));
    let sigs = stdout(&env.nivis("nix", &["--store", &root, "path-info", "--sigs", &paths[1]]));
    assert!(sigs.contains(" test-1:"), "{sigs}");
}

#[test]
fn prefetch_url_matches_cppnix_for_file_urls() {
    let env = Env::new();
    let file = env.path("payload.txt");
    std::fs::write(&file, "payload\n").unwrap();
    let url = format!("file://{}", file.display());
    let ours = store_arg(&env.path("ours"));
    let theirs = store_arg(&env.path("theirs"));
    for flags in [vec![], vec!["--type", "sha1"], vec!["--type", "md5", "--print-path"], vec!["--executable", "--name", "x"]] {
        let mut our_args = vec!["--store", ours.as_str()];
        our_args.extend(&flags);
        our_args.push(&url);
        let mut their_args = vec!["--store", theirs.as_str()];
        their_args.extend(&flags);
        their_args.push(&url);
        assert_eq!(stdout(&env.nivis("nix-prefetch-url", &our_args)), stdout(&env.cppnix("nix-prefetch-url", &their_args)), "{flags:?}");
    }
    let wrong = env.nivis("nix-prefetch-url", &["--store", &ours, &url, "0000000000000000000000000000000000000000000000000000"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("hash mismatch"));
}

#[test]
fn derivations_print_env_outputs_and_derivation_outputs_rows() {
    let env = Env::new();
    let source = store_arg(&env.path("source"));
    let expr = env.path("drv.nix");
    std::fs::write(
        &expr,
        r#"let dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo it's > $out" ]; };
in derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" ]; args = [ "-c" "a 'b' c" "${dep}" ]; quote = "it's \"q\"\n$x"; }"#,
    )
    .unwrap();
    let drv = stdout(&env.cppnix("nix-instantiate", &["--store", &source, expr.to_str().unwrap()]));
    let drv = drv.trim();
    for args in [vec!["--print-env", drv], vec!["-q", "--outputs", drv], vec!["-q", "-R", drv], vec!["-q", "--tree", drv]] {
        let mut full = vec!["--store", source.as_str()];
        full.extend(&args);
        assert_eq!(stdout(&env.nivis("nix-store", &full)), stdout(&env.cppnix("nix-store", &full)), "{args:?}");
    }
    // nivis registers the .drv files it imports with their outputs (the rows
    // themselves are compared with CppNix's in crates/store/tests).
    let closure = stdout(&env.cppnix("nix-store", &["--store", &source, "-qR", drv]));
    let mut export_args = vec!["--store", source.as_str(), "--export"];
    export_args.extend(closure.lines());
    let export = env.cppnix("nix-store", &export_args).stdout;
    let target = env.path("target");
    stdout(&env.nivis_stdin("nix-store", &["--store", &store_arg(&target), "--import"], &export));
    let out_path = stdout(&env.cppnix("nix-store", &["--store", &source, "-q", "--outputs", drv]));
    let derivers = stdout(&env.nivis("nix-store", &["--store", &store_arg(&target), "-q", "--valid-derivers", out_path.lines().next().unwrap()]));
    assert_eq!(derivers.trim(), drv);
}

#[test]
fn an_add_waits_for_a_path_lock_held_by_another_process() {
    let env = Env::new();
    let root = env.path("root");
    let root_arg = store_arg(&root);
    let file = env.path("locked.txt");
    std::fs::write(&file, "wait for me\n").unwrap();
    // The path CppNix would give it, computed by CppNix on a scratch store.
    let path = stdout(&env.cppnix("nix-store", &["--store", &store_arg(&env.path("scratch")), "--add", file.to_str().unwrap()]));
    let path = path.trim().to_string();
    stdout(&env.nivis("nix-store", &["--store", &root_arg, "-q"]));
    // Another process holds `<path>.lock` with flock, as CppNix's PathLocks do.
    let lock_file = PathBuf::from(format!("{}{path}.lock", root.display()));
    let holder = Command::new("python3")
        .arg("-c")
        .arg("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(1.5)")
        .arg(&lock_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder = holder;
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let started = std::time::Instant::now();
    let add = env.nivis("nix-store", &["--store", &root_arg, "--add", file.to_str().unwrap()]);
    let waited = started.elapsed();
    assert_eq!(stdout(&add).trim(), path);
    assert!(waited >= std::time::Duration::from_millis(900), "did not wait for the lock: {waited:?}");
    assert!(String::from_utf8_lossy(&add.stderr).contains(&format!("waiting for lock on '{path}'")));
    holder.wait().unwrap();
    assert!(env.cppnix("nix-store", &["--store", &root_arg, "--verify-path", &path]).status.success());
}

#[test]
fn delete_respects_referrers_and_gc_roots_like_cppnix() {
    let env = Env::new();
    let root = env.path("root");
    let root_arg = store_arg(&root);
    let paths = cppnix_graph(&env, &root_arg);
    let (a, b, c) = (paths[0].as_str(), paths[1].as_str(), paths[2].as_str());
    // `a` is referred to by `b` and `c`: both implementations refuse.
    for program in ["nivis", "cppnix"] {
        let args = ["--store", root_arg.as_str(), "--delete", a];
        let output = if program == "nivis" { env.nivis("nix-store", &args) } else { env.cppnix("nix-store", &args) };
        assert_eq!(output.status.code(), Some(1), "{program}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "0 store paths deleted, 0.00 MiB freed\n");
        assert!(String::from_utf8_lossy(&output.stderr).contains("since it is still alive"));
    }
    // A GC root keeps `c` alive.
    let gcroots = root.join("nix/var/nix/gcroots");
    std::os::unix::fs::symlink(c, gcroots.join("keep-c")).unwrap();
    let refused = env.nivis("nix-store", &["--store", &root_arg, "--delete", c, b, a]);
    assert_eq!(refused.status.code(), Some(1));
    std::fs::remove_file(gcroots.join("keep-c")).unwrap();
    let deleted = env.nivis("nix-store", &["--store", &root_arg, "--delete", c, b, a]);
    assert!(stdout(&deleted).starts_with("3 store paths deleted, "));
    let invalid = stdout(&env.cppnix("nix-store", &["--store", &root_arg, "--check-validity", "--print-invalid", a, b, c]));
    assert_eq!(invalid.lines().count(), 3);
    for path in &paths {
        assert!(!root.join(path.trim_start_matches('/')).exists());
    }
    assert!(env.cppnix("nix-store", &["--store", &root_arg, "--verify", "--check-contents"]).status.success());
}

#[test]
fn dump_db_matches_cppnix_and_load_db_registers_copied_contents() {
    let env = Env::new();
    let source = env.path("source");
    let source_arg = store_arg(&source);
    let paths = cppnix_graph(&env, &source_arg);
    let dump = stdout(&env.cppnix("nix-store", &["--store", &source_arg, "--dump-db"]));
    assert_eq!(stdout(&env.nivis("nix-store", &["--store", &source_arg, "--dump-db"])), dump);
    assert_eq!(
        stdout(&env.nivis("nix-store", &["--store", &source_arg, "--dump-db", &paths[1]])),
        stdout(&env.cppnix("nix-store", &["--store", &source_arg, "--dump-db", &paths[1]]))
    );
    // Copy the files (as closureInfo-style image builders do), then load the registration.
    for (target_name, flags) in [("loaded", vec!["--load-db"]), ("registered", vec!["--register-validity"])] {
        let target = env.path(target_name);
        let target_arg = store_arg(&target);
        stdout(&env.nivis("nix-store", &["--store", &target_arg, "-q"]));
        for path in &paths {
            let status = Command::new("cp")
                .arg("-a")
                .arg(source.join(path.trim_start_matches('/')))
                .arg(target.join("nix/store"))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let input = if target_name == "loaded" {
            dump.clone()
        } else {
            // Without hash and size: nivis computes them from the files.
            let mut without = String::new();
            let mut lines = dump.lines();
            while let Some(path) = lines.next() {
                lines.next();
                lines.next();
                without.push_str(&format!("{path}\n"));
                let deriver = lines.next().unwrap();
                let count = lines.next().unwrap();
                without.push_str(&format!("{deriver}\n{count}\n"));
                for _ in 0..count.parse::<usize>().unwrap() {
                    without.push_str(&format!("{}\n", lines.next().unwrap()));
                }
            }
            without
        };
        let mut args = vec!["--store", target_arg.as_str()];
        args.extend(&flags);
        stdout(&env.nivis_stdin("nix-store", &args, input.as_bytes()));
        assert_eq!(stdout(&env.cppnix("nix-store", &["--store", &target_arg, "--dump-db"])), dump, "{target_name}");
        assert!(env.cppnix("nix-store", &["--store", &target_arg, "--verify", "--check-contents"]).status.success());
    }
}

#[test]
fn cppnix_garbage_collection_spares_an_import_in_progress() {
    let env = Env::new();
    let HalfImport { path, export, target, target_arg, child, mut stdin } = HalfImport::start(&env, 7, 4_000_000);
    let gc = env.cppnix("nix-store", &["--store", &target_arg, "--gc"]);
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    assert!(!leftovers(&target).is_empty(), "CppNix's GC deleted the import in progress");
    stdin.write_all(&export[export.len() / 2..]).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(stdout(&output).trim(), path);
    assert!(env.cppnix("nix-store", &["--store", &target_arg, "--verify-path", &path]).status.success());
    assert!(leftovers(&target).is_empty(), "{:?}", leftovers(&target));
}

#[test]
fn nix_store_add_variants_agree_with_cppnix_paths() {
    let env = Env::new();
    let ours = store_arg(&env.path("ours"));
    let theirs = store_arg(&env.path("theirs"));
    let tree = env.path("tree");
    make_tree(&tree);
    let file = env.path("file.txt");
    std::fs::write(&file, "flat\n").unwrap();
    let (tree, file) = (tree.to_str().unwrap(), file.to_str().unwrap());
    let add_path = stdout(&env.cppnix("nix", &["--store", &theirs, "store", "add-path", tree]));
    let add_file = stdout(&env.cppnix("nix", &["--store", &theirs, "store", "add-file", file]));
    let named = stdout(&env.cppnix("nix", &["--store", &theirs, "store", "add-path", "--name", "renamed", tree]));
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add-path", tree])), add_path);
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add-file", file])), add_file);
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add-path", "--name", "renamed", tree])), named);
    // Later CppNix's `nix store add`: NAR mode by default, `--mode flat` like add-file.
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add", tree])), add_path);
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add", "--mode", "flat", file])), add_file);
    let sha1 = stdout(&env.cppnix("nix-store", &["--store", &theirs, "--add-fixed", "--recursive", "sha1", tree]));
    assert_eq!(stdout(&env.nivis("nix", &["--store", &ours, "store", "add", "--hash-algo", "sha1", tree])), sha1);
    // And `nix store delete` removes what nothing refers to.
    let deleted = env.nivis("nix", &["--store", &ours, "store", "delete", named.trim()]);
    let summary = stdout(&deleted);
    assert!(summary.starts_with("1 store paths deleted, ") && summary.ends_with(" MiB freed\n"), "{summary}");
    assert!(!env.cppnix("nix-store", &["--store", &ours, "--check-validity", named.trim()]).status.success());
}
