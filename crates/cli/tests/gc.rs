//! The garbage-collecting commands as real processes beside CppNix 2.8 on
//! stores in temporary directories: `nix-store --gc` (and its printing
//! modes), `nix-store --delete`, `nix store gc`, `nix-collect-garbage -d`
//! print what CppNix prints on copies of the same store; the GC socket works
//! in both directions while a collector is paused; and a collector killed
//! with SIGKILL at random moments never leaves a valid path incomplete.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nivis_formats::{HashAlgorithm, Hasher, StorePath, StorePathSet};
use nivis_store::{LocalStore, LocalStoreConfig, Store, StoreSettings, ValidPathInfo};

/// A temporary directory with the commands linked to the nivis binary.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        for name in ["nix-store", "nix", "nix-collect-garbage"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), dir.path().join("bin").join(name)).unwrap();
        }
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, program: &Path, root: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("NIX_CONFIG", "experimental-features = nix-command")
            .env("NIX_STATE_DIR", root.join("nix/var/nix"))
            .env_remove("NIX_REMOTE")
            .env_remove("_NIX_TEST_GC_SYNC")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        command
    }

    fn nivis(&self, program: &str, root: &Path, args: &[&str]) -> Output {
        let mut command = self.command(&self.path("bin").join(program), root);
        store_args(&mut command, program, root);
        command.args(args).output().unwrap()
    }

    fn cppnix(&self, program: &str, root: &Path, args: &[&str]) -> Output {
        let mut command = self.command(&Path::new("/usr/bin").join(program), root);
        store_args(&mut command, program, root);
        command.args(args).output().unwrap()
    }
}

/// `nix store ...` takes `--store` after the subcommand; the others first.
fn store_args(command: &mut Command, program: &str, root: &Path) {
    if program != "nix" {
        command.arg("--store").arg(root);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", text(&output.stderr));
    text(&output.stdout)
}

fn open(root: &Path) -> LocalStore {
    LocalStore::open(LocalStoreConfig::with_root(&StoreSettings::default(), root)).unwrap()
}

fn printed(path: &StorePath) -> String {
    format!("/nix/store/{}", path.base_name())
}

/// Registers `count` small dead paths named `<tag>-<i>` (nine in ten refer to
/// the one before) directly: files written, then one registration.
fn populate(root: &Path, tag: &str, count: usize) -> Vec<StorePath> {
    let store = open(root);
    let mut infos = Vec::with_capacity(count);
    let mut paths: Vec<StorePath> = Vec::with_capacity(count);
    for i in 0..count {
        let digest = nivis_formats::Hash::of_bytes(HashAlgorithm::Sha256, format!("{tag}/{i}").as_bytes());
        let mut short = [0u8; 20];
        short.copy_from_slice(&digest.digest()[..20]);
        let path = StorePath::from_digest(&short, &format!("{tag}-{i}")).unwrap();
        let real = root.join("nix/store").join(path.base_name());
        fs::create_dir_all(&real).unwrap();
        fs::write(real.join("data"), format!("{tag} number {i}\n")).unwrap();
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        nivis_store::dump_path(&real, &mut hasher).unwrap();
        let size = hasher.bytes_hashed();
        let mut info = ValidPathInfo::new(path.clone(), hasher.finish(), size);
        if i % 10 != 0 {
            info.references = StorePathSet::from([paths[i - 1].clone()]);
        }
        infos.push(info);
        paths.push(path);
    }
    store.register_valid_paths(&infos).unwrap();
    paths
}

/// Copies a whole store root (to give CppNix and nivis the same start).
fn copy_root(from: &Path, to: &Path) {
    assert!(Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success());
}

fn valid_paths(root: &Path) -> BTreeSet<String> {
    open(root).query_all_valid_paths().unwrap().iter().map(printed).collect()
}

/// Both verifiers find nothing wrong, and every valid path hashes as recorded.
fn assert_store_consistent(env: &Env, root: &Path) {
    let ours = env.nivis("nix-store", root, &["--verify", "--check-contents"]);
    assert!(ours.status.success(), "nivis --verify: {}", text(&ours.stderr));
    let theirs = env.cppnix("nix-store", root, &["--verify", "--check-contents"]);
    assert!(theirs.status.success(), "CppNix --verify: {}", text(&theirs.stderr));
    for stderr in [text(&ours.stderr), text(&theirs.stderr)] {
        assert!(!stderr.contains("modified") && !stderr.contains("disappeared"), "{stderr}");
    }
    let store = open(root);
    for path in store.query_all_valid_paths().unwrap() {
        let info = store.query_path_info(&path).unwrap().unwrap();
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        nivis_store::dump_path(&root.join("nix/store").join(path.base_name()), &mut hasher)
            .unwrap_or_else(|e| panic!("valid {} incomplete: {e}", printed(&path)));
        assert_eq!(hasher.finish(), info.nar_hash, "{}", printed(&path));
    }
}

/// A store with a rooted chain, an indirect root, and dead paths with references.
fn sample_store(env: &Env) -> (PathBuf, Vec<StorePath>, Vec<StorePath>) {
    let root = env.path("sample");
    let live = populate(&root, "live", 12);
    let dead = populate(&root, "dead", 25);
    let gcroots = root.join("nix/var/nix/gcroots");
    fs::create_dir_all(gcroots.join("auto")).unwrap();
    std::os::unix::fs::symlink(printed(&live[9]), gcroots.join("live")).unwrap();
    std::os::unix::fs::symlink(printed(&live[11]), env.path("result")).unwrap();
    std::os::unix::fs::symlink(env.path("result"), gcroots.join("auto/result-link")).unwrap();
    (root, live, dead)
}

#[test]
fn nix_store_gc_prints_and_deletes_as_cppnix() {
    let env = Env::new();
    let (root, live, dead) = sample_store(&env);
    for mode in ["--print-dead", "--print-live", "--print-roots"] {
        let ours = ok(&env.nivis("nix-store", &root, &["--gc", mode]));
        let theirs = ok(&env.cppnix("nix-store", &root, &["--gc", mode]));
        assert_eq!(ours, theirs, "nix-store --gc {mode}");
    }
    // --query --roots: the roots keeping a path (here a dependency of both roots) alive.
    for path in [&live[2], &live[11], &dead[4]] {
        let args = ["--query", "--roots", &printed(path)];
        assert_eq!(ok(&env.nivis("nix-store", &root, &args)), ok(&env.cppnix("nix-store", &root, &args)));
    }
    let dead_printed = ok(&env.nivis("nix-store", &root, &["--gc", "--print-dead"]));
    assert_eq!(dead_printed.lines().count(), dead.len());
    // Copies of one store, collected by each.
    let (a, b) = (env.path("a"), env.path("b"));
    copy_root(&root, &a);
    copy_root(&root, &b);
    let ours = env.nivis("nix-store", &a, &["--gc"]);
    let theirs = env.cppnix("nix-store", &b, &["--gc"]);
    assert_eq!(ok(&ours), ok(&theirs));
    assert!(text(&ours.stdout).starts_with(&format!("{} store paths deleted, ", dead.len())));
    let stderr = text(&ours.stderr);
    assert!(stderr.starts_with("finding garbage collector roots...\ndeleting garbage...\n"), "{stderr}");
    assert!(stderr.contains(&format!("deleting '{}'\n", printed(&dead[3]))));
    assert!(stderr.contains("deleting unused links...\nnote: currently hard linking saves"));
    assert_eq!(valid_paths(&a), valid_paths(&b));
    assert_eq!(valid_paths(&a), live.iter().map(printed).collect());
    assert_store_consistent(&env, &a);
    // A second collection finds nothing.
    assert_eq!(ok(&env.nivis("nix-store", &a, &["--gc"])), "0 store paths deleted, 0.00 MiB freed\n");
    // --max-freed with a unit, and bad values as CppNix words them.
    let (c, d) = (env.path("c"), env.path("d"));
    copy_root(&root, &c);
    copy_root(&root, &d);
    assert_eq!(
        ok(&env.nivis("nix-store", &c, &["--gc", "--max-freed", "1K"])),
        ok(&env.cppnix("nix-store", &d, &["--gc", "--max-freed", "1K"]))
    );
    let (e, f) = (env.path("e"), env.path("f"));
    copy_root(&root, &e);
    copy_root(&root, &f);
    // Each dead path frees about 20 bytes: 100 bytes take a few, not all.
    let limited = ok(&env.nivis("nix-store", &e, &["--gc", "--max-freed", "100"]));
    let count: usize = limited.split(' ').next().unwrap().parse().unwrap();
    assert!(count > 1 && count < dead.len(), "{limited}");
    assert_store_consistent(&env, &e);
    for size in ["lots", "1.5"] {
        let ours = env.nivis("nix-store", &c, &["--gc", "--max-freed", size]);
        let theirs = env.cppnix("nix-store", &d, &["--gc", "--max-freed", size]);
        assert_eq!(ours.status.code(), Some(1));
        // CppNix names itself by its argv[0].
        assert_eq!(text(&ours.stderr), text(&theirs.stderr).replace("/usr/bin/", ""));
    }
    let bad = env.nivis("nix-store", &c, &["--gc", "--print-everything"]);
    assert_eq!(bad.status.code(), env.cppnix("nix-store", &d, &["--gc", "--print-everything"]).status.code());
}

#[test]
fn delete_and_nix_store_gc_as_cppnix() {
    let env = Env::new();
    let (root, live, dead) = sample_store(&env);
    let (a, b) = (env.path("a"), env.path("b"));
    copy_root(&root, &a);
    copy_root(&root, &b);
    // A path whose referrer stays: refused, same exit code and message.
    let victim = printed(&dead[3]);
    let ours = env.nivis("nix-store", &a, &["--delete", &victim]);
    let theirs = env.cppnix("nix-store", &b, &["--delete", &victim]);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    assert!(text(&ours.stderr).contains(&format!("error: Cannot delete path '{victim}' since it is still alive")), "{}", text(&ours.stderr));
    // The whole chain from its first referrer down goes.
    let chain: Vec<String> = dead[..10].iter().map(printed).collect();
    let mut args = vec!["--delete"];
    args.extend(chain.iter().map(String::as_str));
    assert_eq!(ok(&env.nivis("nix-store", &a, &args)), ok(&env.cppnix("nix-store", &b, &args)));
    assert_eq!(valid_paths(&a), valid_paths(&b));
    // A rooted path only with --ignore-liveness (and its referrers too).
    let rooted: Vec<String> = live[..10].iter().map(printed).collect();
    let mut args = vec!["--delete"];
    args.extend(rooted.iter().map(String::as_str));
    assert_eq!(env.nivis("nix-store", &a, &args).status.code(), Some(1));
    args.push("--ignore-liveness");
    assert_eq!(ok(&env.nivis("nix-store", &a, &args)), ok(&env.cppnix("nix-store", &b, &args)));
    assert_eq!(valid_paths(&a), valid_paths(&b));
    assert_store_consistent(&env, &a);

    // nix store delete, with --ignore-liveness for a rooted path.
    let rooted = printed(&live[11]);
    let store_flag = ["--store", a.to_str().unwrap()];
    let refused = env.nivis("nix", &a, &["store", "delete", &rooted, store_flag[0], store_flag[1]]);
    assert_eq!(refused.status.code(), Some(1));
    let deleted = ok(&env.nivis("nix", &a, &["store", "delete", "--ignore-liveness", &rooted, store_flag[0], store_flag[1]]));
    assert!(deleted.starts_with("1 store paths deleted"), "{deleted}");
    assert!(!valid_paths(&a).contains(&rooted));
    // nix store gc: --dry-run prints and deletes nothing; --max stops early.
    let before = valid_paths(&a);
    let dry = env.nivis("nix", &a, &["store", "gc", "--dry-run", "--store", a.to_str().unwrap()]);
    assert_eq!(ok(&dry), ok(&env.cppnix("nix", &b, &["store", "gc", "--dry-run", "--store", b.to_str().unwrap()])));
    assert_eq!(valid_paths(&a), before);
    let limited = ok(&env.nivis("nix", &a, &["store", "gc", "--max", "1", "--store", a.to_str().unwrap()]));
    assert!(limited.starts_with("1 store paths deleted"), "{limited}");
    let full = ok(&env.nivis("nix", &a, &["store", "gc", "--store", a.to_str().unwrap()]));
    assert!(full.ends_with(" MiB freed\n"));
    // live[10] was kept only by live[11], deleted above.
    assert!(valid_paths(&a).is_empty(), "{:?}", valid_paths(&a));
    assert_store_consistent(&env, &a);
}

#[test]
fn collect_garbage_delete_old_generations_as_cppnix() {
    let env = Env::new();
    let root = env.path("root");
    let generations = populate(&root, "generation", 3);
    // Independent generations (populate chains them; give each its own path).
    let separate: Vec<StorePath> = (0..3).map(|i| populate(&root, &format!("gen{i}"), 1)[0].clone()).collect();
    let _ = generations;
    let profiles = root.join("nix/var/nix/profiles/per-user/tester");
    fs::create_dir_all(&profiles).unwrap();
    for (i, path) in separate.iter().enumerate() {
        std::os::unix::fs::symlink(printed(path), profiles.join(format!("profile-{}-link", i + 1))).unwrap();
    }
    std::os::unix::fs::symlink("profile-3-link", profiles.join("profile")).unwrap();
    let (a, b) = (env.path("a"), env.path("b"));
    copy_root(&root, &a);
    copy_root(&root, &b);
    // --dry-run removes no generation and collects nothing.
    let dry = env.nivis("nix-collect-garbage", &a, &["-d", "--dry-run"]);
    assert_eq!(ok(&dry), "");
    let cpp_dry = env.cppnix("nix-collect-garbage", &b, &["-d", "--dry-run"]);
    assert_eq!(text(&dry.stderr).replace(a.to_str().unwrap(), "ROOT"), text(&cpp_dry.stderr).replace(b.to_str().unwrap(), "ROOT"));
    assert!(text(&dry.stderr).contains("would remove profile version 1"), "{}", text(&dry.stderr));
    assert!(fs::symlink_metadata(a.join("nix/var/nix/profiles/per-user/tester/profile-1-link")).is_ok());
    let ours = env.nivis("nix-collect-garbage", &a, &["-d"]);
    let theirs = env.cppnix("nix-collect-garbage", &b, &["-d"]);
    assert_eq!(ok(&ours), ok(&theirs));
    let generation_lines = |stderr: &[u8], root: &Path| -> Vec<String> {
        let stderr = text(stderr).replace(root.to_str().unwrap(), "ROOT");
        stderr.lines().filter(|l| l.contains("generation") || l.contains("version")).map(str::to_string).collect()
    };
    assert_eq!(generation_lines(&ours.stderr, &a), generation_lines(&theirs.stderr, &b));
    let links = |root: &Path| -> BTreeSet<String> {
        fs::read_dir(root.join("nix/var/nix/profiles/per-user/tester"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(links(&a), BTreeSet::from(["profile".to_string(), "profile-3-link".to_string()]));
    assert_eq!(links(&a), links(&b));
    assert_eq!(valid_paths(&a), valid_paths(&b));
    assert_eq!(valid_paths(&a), BTreeSet::from([printed(&separate[2])]));
    assert_store_consistent(&env, &a);
}

#[test]
fn collect_garbage_delete_older_than_as_cppnix() {
    let env = Env::new();
    let root = env.path("root");
    let generations: Vec<StorePath> = (0..3).map(|i| populate(&root, &format!("gen{i}"), 1)[0].clone()).collect();
    let profile_dir = root.join("nix/var/nix/profiles");
    // Generation times are the links' own mtimes: 40 and 20 days ago, and now.
    for (i, (path, age)) in generations.iter().zip(["40 days ago", "20 days ago", "now"]).enumerate() {
        let link = profile_dir.join(format!("system-{}-link", i + 1));
        std::os::unix::fs::symlink(printed(path), &link).unwrap();
        assert!(Command::new("touch").args(["-h", "-d", age]).arg(&link).status().unwrap().success());
    }
    std::os::unix::fs::symlink("system-3-link", profile_dir.join("system")).unwrap();
    let (a, b) = (env.path("a"), env.path("b"));
    copy_root(&root, &a);
    copy_root(&root, &b);
    // 10 days: generation 2 was current then and stays; generation 1 goes.
    let ours = env.nivis("nix-collect-garbage", &a, &["--delete-older-than", "10d"]);
    let theirs = env.cppnix("nix-collect-garbage", &b, &["--delete-older-than", "10d"]);
    assert_eq!(ok(&ours), ok(&theirs));
    assert_eq!(
        text(&ours.stderr).lines().filter(|l| l.contains("version")).collect::<Vec<_>>(),
        text(&theirs.stderr).lines().filter(|l| l.contains("version")).collect::<Vec<_>>()
    );
    assert!(fs::symlink_metadata(a.join("nix/var/nix/profiles/system-1-link")).is_err());
    assert!(fs::symlink_metadata(a.join("nix/var/nix/profiles/system-2-link")).is_ok());
    assert_eq!(valid_paths(&a), valid_paths(&b));
    assert_eq!(valid_paths(&a), generations[1..].iter().map(printed).collect());
    let bad = env.nivis("nix-collect-garbage", &a, &["--delete-older-than", "10x"]);
    assert_eq!(bad.status.code(), env.cppnix("nix-collect-garbage", &b, &["--delete-older-than", "10x"]).status.code());
}

/// Runs `command` with `_NIX_TEST_GC_SYNC` set to a FIFO: the collector stops
/// there holding the GC lock; `during` runs; then the collector goes on.
fn with_paused_collector(env: &Env, mut command: Command, during: impl FnOnce()) -> Output {
    let fifo = env.path("gc-sync");
    let _ = fs::remove_file(&fifo);
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let child = command
        .env("_NIX_TEST_GC_SYNC", &fifo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The collector reaches the FIFO only after finding its roots.
    std::thread::sleep(std::time::Duration::from_millis(700));
    during();
    fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go").unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn temporary_roots_reach_a_running_collector_through_its_socket() {
    let env = Env::new();
    let root = env.path("root");
    fs::write(env.path("old"), "already in the store\n").unwrap();
    fs::write(env.path("new"), "added during the collection\n").unwrap();
    // Dead paths (their adding processes are gone).
    let old = ok(&env.cppnix("nix-store", &root, &["--add", env.path("old").to_str().unwrap()])).trim().to_string();
    populate(&root, "dead", 5);
    // nivis collects; CppNix adds (re-adds) paths meanwhile: both survive.
    let mut gc = env.command(&env.path("bin/nix-store"), &root);
    gc.arg("--store").arg(&root).arg("--gc");
    let mut added = Vec::new();
    let output = with_paused_collector(&env, gc, || {
        for file in ["old", "new"] {
            let add = env.cppnix("nix-store", &root, &["--add", env.path(file).to_str().unwrap()]);
            added.push(ok(&add).trim().to_string());
        }
    });
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(added[0], old);
    let valid = valid_paths(&root);
    for path in &added {
        assert!(valid.contains(path), "{path} was collected");
        assert!(root.join("nix/store").join(&path["/nix/store/".len()..]).exists());
    }
    assert_eq!(text(&output.stdout), "5 store paths deleted, 0.00 MiB freed\n");

    // CppNix collects; nivis re-adds the old path meanwhile: it survives.
    let mut gc = env.command(Path::new("/usr/bin/nix-store"), &root);
    gc.arg("--store").arg(&root).arg("--gc");
    let mut readded = String::new();
    let output = with_paused_collector(&env, gc, || {
        readded = ok(&env.nivis("nix-store", &root, &["--add", env.path("old").to_str().unwrap()])).trim().to_string();
    });
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(readded, old);
    assert_eq!(valid_paths(&root), BTreeSet::from([old.clone()]));
    assert_store_consistent(&env, &root);
}

/// A small deterministic generator (the seed is printed on failure).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn a_collector_killed_at_random_moments_leaves_a_consistent_store() {
    let env = Env::new();
    let root = env.path("root");
    let live = populate(&root, "live", 20);
    // populate chains by tens: live[9] and live[19] hold all twenty.
    std::os::unix::fs::symlink(printed(&live[9]), root.join("nix/var/nix/gcroots/live-a")).unwrap();
    std::os::unix::fs::symlink(printed(&live[19]), root.join("nix/var/nix/gcroots/live-b")).unwrap();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut generation = 0;
    for round in 0..12 {
        if open(&root).query_all_valid_paths().unwrap().len() < live.len() + 300 {
            generation += 1;
            populate(&root, &format!("dead{generation}"), 600);
        }
        let mut child = env
            .command(&env.path("bin/nix-store"), &root)
            .arg("--store")
            .arg(&root)
            .arg("--gc")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Finding roots takes some tens of milliseconds; deleting 600 paths
        // about as long again.
        let delay = 30 + rng.next(170);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let finished = child.try_wait().unwrap().is_some();
        // SAFETY: kill on the pid of our own child, not yet waited for.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let left = open(&root).query_all_valid_paths().unwrap().len();
        eprintln!("round {round}: after {delay} ms {}, {left} valid paths left", if finished { "already done" } else { "killed" });
        assert_store_consistent(&env, &root);
        let valid = valid_paths(&root);
        for path in &live {
            assert!(valid.contains(&printed(path)), "live {} collected", printed(path));
        }
    }
    // A last, uninterrupted collection finishes the job: only the live
    // closure remains, and no debris.
    ok(&env.nivis("nix-store", &root, &["--gc"]));
    assert_eq!(valid_paths(&root), live.iter().map(printed).collect());
    let mut on_disk: BTreeSet<String> = fs::read_dir(root.join("nix/store"))
        .unwrap()
        .map(|e| format!("/nix/store/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    on_disk.remove("/nix/store/.links");
    assert_eq!(on_disk, valid_paths(&root));
    assert_store_consistent(&env, &root);
}
