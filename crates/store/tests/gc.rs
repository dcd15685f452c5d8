//! The garbage collector on real stores in temporary directories, with CppNix
//! 2.8 as a peer: roots of every kind keep their closures, `keep-outputs` and
//! `keep-derivations` add the edges CppNix adds, temporary roots are honoured
//! in both directions, and (a property test) after any sequence of adds, new
//! roots, removed roots and collections, everything reachable from a root is
//! valid and complete and the database's references are closed.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nivis_formats::{HashAlgorithm, Hasher, StorePath, StorePathSet};
use nivis_store::{GcAction, GcOptions, GcResults, LocalStore, LocalStoreConfig, Store, StoreSettings, ValidPathInfo};

fn open(root: &Path) -> LocalStore {
    LocalStore::open(LocalStoreConfig::with_root(&StoreSettings::default(), root)).expect("open store")
}

fn state(root: &Path) -> PathBuf {
    root.join("nix/var/nix")
}

fn real(root: &Path, path: &StorePath) -> PathBuf {
    root.join("nix/store").join(path.base_name())
}

fn printed(path: &StorePath) -> String {
    format!("/nix/store/{}", path.base_name())
}

fn add(store: &LocalStore, name: &str, contents: &str, refs: &[&StorePath]) -> StorePath {
    let refs: StorePathSet = refs.iter().map(|p| (*p).clone()).collect();
    store.add_text_to_store(name, contents.as_bytes(), &refs, false).unwrap()
}

fn run(store: &LocalStore, options: GcOptions) -> GcResults {
    let mut results = GcResults::default();
    store.collect_garbage(&options, &mut results).unwrap();
    results
}

fn options(action: GcAction) -> GcOptions {
    GcOptions { action, ..GcOptions::default() }
}

fn cppnix(root: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(format!("/usr/bin/{program}"))
        .arg("--store")
        .arg(root)
        .args(args)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .env_remove("NIX_REMOTE")
        .output()
        .expect("run CppNix")
}

/// Every valid path is on disk with the NAR hash the database records, and
/// every row of `Refs` joins two valid paths.
fn assert_consistent(root: &Path) {
    let store = open(root);
    for path in store.query_all_valid_paths().unwrap() {
        let info = store.query_path_info(&path).unwrap().unwrap();
        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
        nivis_store::dump_path(&real(root, &path), &mut hasher)
            .unwrap_or_else(|e| panic!("valid path {} is not complete: {e}", printed(&path)));
        assert_eq!(hasher.finish(), info.nar_hash, "contents of {} changed", printed(&path));
        for reference in &info.references {
            assert!(store.is_valid_path(reference).unwrap(), "{} refers to invalid {}", printed(&path), printed(reference));
        }
    }
    let conn = rusqlite::Connection::open(root.join("nix/var/nix/db/db.sqlite")).unwrap();
    let dangling: i64 = conn
        .query_row(
            "select count(*) from Refs where referrer not in (select id from ValidPaths) \
             or reference not in (select id from ValidPaths)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dangling, 0, "Refs rows pointing at invalid paths");
}

fn assert_alive(store: &LocalStore, root: &Path, paths: &[&StorePath]) {
    for path in paths {
        assert!(store.is_valid_path(path).unwrap(), "{} was collected", printed(path));
        assert!(real(root, path).exists(), "{} is valid but gone", printed(path));
    }
}

fn assert_gone(store: &LocalStore, root: &Path, paths: &[&StorePath]) {
    for path in paths {
        assert!(!store.is_valid_path(path).unwrap(), "{} survived", printed(path));
        assert!(!real(root, path).exists(), "{} left on disk", printed(path));
    }
}

/// A child process that is killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn roots_of_every_kind_keep_their_closures() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let mut closures = Vec::new();
    for tag in ["direct", "indirect", "auto", "profile", "fd", "environ", "temp", "regular"] {
        let dep = add(&store, &format!("{tag}-dep"), &format!("dependency of {tag}"), &[]);
        let top = add(&store, tag, &format!("root {tag}"), &[&dep]);
        closures.push((top, dep));
    }
    let dead_dep = add(&store, "dead-dep", "nobody needs this", &[]);
    let dead_top = add(&store, "dead-top", "nor this", &[&dead_dep]);
    store.add_perm_root(&closures[2].0, &dir.path().join("result")).unwrap();
    // Forget this process's temporary roots from adding: a fresh handle.
    drop(store);
    let store = open(&root);

    let gcroots = state(&root).join("gcroots");
    std::os::unix::fs::symlink(printed(&closures[0].0), gcroots.join("direct")).unwrap();
    fs::create_dir_all(dir.path().join("links")).unwrap();
    std::os::unix::fs::symlink(printed(&closures[1].0), dir.path().join("links/indirect")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("links/indirect"), gcroots.join("indirect-root")).unwrap();
    let profiles = state(&root).join("profiles/per-user/tester");
    fs::create_dir_all(&profiles).unwrap();
    std::os::unix::fs::symlink(printed(&closures[3].0), profiles.join("profile-1-link")).unwrap();
    std::os::unix::fs::symlink("profile-1-link", profiles.join("profile")).unwrap();
    // A regular file named like a store path is a root too.
    fs::create_dir_all(gcroots.join("files")).unwrap();
    fs::write(gcroots.join("files").join(closures[7].0.base_name()), "").unwrap();
    // An auto root whose link is gone: removed.
    std::os::unix::fs::symlink(dir.path().join("gone"), gcroots.join("auto/stale")).unwrap();
    // A running process with a store file open, another with a path in its environment.
    let holder = Child(
        Command::new("sleep")
            .arg("60")
            .stdin(fs::File::open(real(&root, &closures[4].0)).unwrap())
            .spawn()
            .unwrap(),
    );
    let env_holder = Child(
        Command::new("sleep")
            .arg("60")
            .env("SOME_TOOL", format!("{}/bin/tool", real(&root, &closures[5].0).display()))
            .spawn()
            .unwrap(),
    );
    store.add_temp_root(&closures[6].0).unwrap();
    // Until `sleep` has been exec'd, /proc shows the forked test process's own
    // environment and standard input: wait for the children's (bounded), or the
    // scan can miss them.
    let environ = format!("/proc/{}/environ", env_holder.0.id());
    let stdin = format!("/proc/{}/fd/0", holder.0.id());
    let held = real(&root, &closures[4].0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(fs::read(&environ).is_ok_and(|e| e.windows(b"SOME_TOOL=".len()).any(|w| w == b"SOME_TOOL="))
        && fs::read_link(&stdin).is_ok_and(|target| target == held))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let roots = store.find_roots(false).unwrap();
    let links_of = |path: &StorePath| roots.get(path).cloned().unwrap_or_default();
    assert!(links_of(&closures[0].0).contains(&gcroots.join("direct").display().to_string()));
    assert!(links_of(&closures[1].0).contains(&dir.path().join("links/indirect").display().to_string()));
    assert!(links_of(&closures[2].0).contains(&dir.path().join("result").display().to_string()));
    assert!(links_of(&closures[3].0).contains(&profiles.join("profile-1-link").display().to_string()));
    assert!(links_of(&closures[4].0).contains(&format!("/proc/{}/fd/0", holder.0.id())));
    assert!(links_of(&closures[5].0).contains(&format!("/proc/{}/environ", env_holder.0.id())));
    assert!(links_of(&closures[6].0).contains(&format!("{{temp:{}}}", std::process::id())));
    assert!(links_of(&closures[7].0).contains(&gcroots.join("files").join(closures[7].0.base_name()).display().to_string()));
    // Censored: runtime and temporary roots name no process.
    let censored = store.find_roots(true).unwrap();
    assert_eq!(censored[&closures[4].0], BTreeSet::from([nivis_store::CENSORED.to_string()]));
    assert!(!gcroots.join("auto/stale").exists(), "the stale auto link is removed");

    let results = run(&store, options(GcAction::DeleteDead));
    assert_eq!(results.paths, BTreeSet::from([printed(&dead_top), printed(&dead_dep)]));
    for (top, dep) in &closures {
        assert_alive(&store, &root, &[top, dep]);
    }
    assert_gone(&store, &root, &[&dead_top, &dead_dep]);
    drop((holder, env_holder));
    drop(store);
    assert_consistent(&root);
    let verify = cppnix(&root, "nix-store", &["--verify", "--check-contents"]);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// A derivation made by CppNix and its output registered with it as deriver.
fn derivation_and_output(root: &Path, dir: &Path) -> (StorePath, StorePath) {
    let instantiate = cppnix(
        root,
        "nix-instantiate",
        &["-E", "derivation { name = \"gc-out\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; }"],
    );
    assert!(instantiate.status.success(), "{}", String::from_utf8_lossy(&instantiate.stderr));
    let drv_printed = String::from_utf8(instantiate.stdout).unwrap().trim().to_string();
    let store = open(root);
    let drv = store.parse_store_path(&drv_printed).unwrap();
    let output = store.query_derivation_outputs(&drv).unwrap()["out"].clone();
    let source = dir.join("out-contents");
    fs::write(&source, "built\n").unwrap();
    nivis_store::restore_path(&mut nar_of(&source).as_slice(), &real(root, &output)).unwrap();
    let mut hasher = Hasher::new(HashAlgorithm::Sha256);
    nivis_store::dump_path(&real(root, &output), &mut hasher).unwrap();
    let size = hasher.bytes_hashed();
    let mut info = ValidPathInfo::new(output.clone(), hasher.finish(), size);
    info.deriver = Some(drv.clone());
    store.register_valid_paths(&[info]).unwrap();
    (drv, output)
}

fn nar_of(path: &Path) -> Vec<u8> {
    let mut nar = Vec::new();
    nivis_store::dump_path(path, &mut nar).unwrap();
    nar
}

#[test]
fn keep_outputs_and_keep_derivations_add_cppnix_edges() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (drv, output) = derivation_and_output(&root, dir.path());
    let store = open(&root);
    let dead = |keep_outputs: bool, keep_derivations: bool| -> BTreeSet<String> {
        run(&store, GcOptions { action: GcAction::ReturnDead, keep_outputs, keep_derivations, ..GcOptions::default() }).paths
    };
    let gcroots = state(&root).join("gcroots");
    // Only the output is rooted: keep-derivations (the default) keeps its deriver.
    std::os::unix::fs::symlink(printed(&output), gcroots.join("out")).unwrap();
    assert!(!dead(false, true).contains(&printed(&drv)));
    assert!(dead(false, false).contains(&printed(&drv)));
    assert!(!dead(false, false).contains(&printed(&output)));
    // Only the derivation is rooted: keep-outputs keeps its output.
    fs::remove_file(gcroots.join("out")).unwrap();
    std::os::unix::fs::symlink(printed(&drv), gcroots.join("drv")).unwrap();
    assert!(dead(false, true).contains(&printed(&output)));
    assert!(!dead(true, true).contains(&printed(&output)));
    // CppNix agrees on both settings.
    let cpp_dead = |config: &str| -> BTreeSet<String> {
        let output = Command::new("/usr/bin/nix-store")
            .arg("--store")
            .arg(&root)
            .args(["--gc", "--print-dead"])
            .env("NIX_CONFIG", config)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect()
    };
    assert_eq!(cpp_dead("keep-outputs = true"), dead(true, true));
    assert_eq!(cpp_dead("keep-outputs = false"), dead(false, true));
    // Deleting for real with keep-outputs keeps the output.
    let deleted = run(&store, GcOptions { keep_outputs: true, ..GcOptions::default() });
    assert!(!deleted.paths.contains(&printed(&output)));
    assert_alive(&store, &root, &[&drv, &output]);
}

#[test]
fn temporary_roots_are_honoured_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // nivis holds temporary roots (this process): CppNix's collector spares them.
    let store = open(&root);
    let held = add(&store, "held-by-nivis", "held", &[]);
    let held_top = add(&store, "held-top", "top", &[&held]);
    let cpp = cppnix(&root, "nix-store", &["--gc"]);
    assert!(cpp.status.success(), "{}", String::from_utf8_lossy(&cpp.stderr));
    assert_alive(&store, &root, &[&held, &held_top]);
    drop(store);
    let cpp = cppnix(&root, "nix-store", &["--gc"]);
    assert!(cpp.status.success());
    let store = open(&root);
    assert_gone(&store, &root, &[&held, &held_top]);

    // CppNix holds a temporary root (an evaluation that added a path and now
    // waits on a FIFO): nivis's collector spares it.
    fs::write(dir.path().join("x"), "cppnix's\n").unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let expr = format!(
        "builtins.seq (builtins.path {{ path = {}; name = \"held-by-cppnix\"; }}) (builtins.readFile {})",
        dir.path().join("x").display(),
        fifo.display()
    );
    let mut evaluator = Child(
        Command::new("/usr/bin/nix-instantiate")
            .arg("--store")
            .arg(&root)
            .args(["--eval", "--read-write-mode", "-E", &expr])
            .env("NIX_CONFIG", "experimental-features = nix-command")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let temproots = state(&root).join("temproots").join(evaluator.0.id().to_string());
    let mut held_path = None;
    for _ in 0..200 {
        if let Ok(contents) = fs::read(&temproots)
            && let Some(line) = contents.split(|b| *b == 0).find(|r| r.ends_with(b"-held-by-cppnix"))
        {
            held_path = Some(store.parse_store_path(std::str::from_utf8(line).unwrap()).unwrap());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let held_path = held_path.expect("CppNix recorded its temporary root");
    // The root is recorded before the path is added: wait for the path.
    for _ in 0..200 {
        if store.is_valid_path(&held_path).unwrap() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(store.is_valid_path(&held_path).unwrap());
    let results = run(&store, options(GcAction::DeleteDead));
    assert!(!results.paths.contains(&printed(&held_path)));
    assert_alive(&store, &root, &[&held_path]);
    fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"go").unwrap();
    let _ = evaluator.0.wait();
    drop(evaluator);
    run(&store, options(GcAction::DeleteDead));
    assert_gone(&store, &root, &[&held_path]);
    drop(store);
    assert_consistent(&root);
}

#[test]
fn delete_specific_paths_and_max_freed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let big: Vec<StorePath> = (0..6).map(|i| add(&store, &format!("big-{i}"), &"x".repeat(10_000 + i), &[])).collect();
    let dep = add(&store, "dep", "d", &[]);
    let top = add(&store, "top", "t", &[&dep]);
    drop(store);
    let store = open(&root);
    // A referrer that is not asked for keeps a path alive, even with --ignore-liveness.
    let only_dep = GcOptions { action: GcAction::DeleteSpecific, paths_to_delete: [dep.clone()].into(), ..GcOptions::default() };
    let mut results = GcResults::default();
    let error = store.collect_garbage(&only_dep, &mut results).unwrap_err();
    assert!(error.to_string().contains("since it is still alive"), "{error}");
    assert!(results.paths.is_empty());
    let ignoring = GcOptions { ignore_liveness: true, ..only_dep.clone() };
    assert!(store.collect_garbage(&ignoring, &mut GcResults::default()).is_err());
    // A rooted path goes only with --ignore-liveness.
    std::os::unix::fs::symlink(printed(&top), state(&root).join("gcroots/top")).unwrap();
    let both = GcOptions { paths_to_delete: [dep.clone(), top.clone()].into(), ..only_dep.clone() };
    assert!(store.collect_garbage(&both, &mut GcResults::default()).is_err());
    assert_alive(&store, &root, &[&top, &dep]);
    let results = run(&store, GcOptions { ignore_liveness: true, ..both });
    assert_eq!(results.paths, BTreeSet::from([printed(&top), printed(&dep)]));
    assert_gone(&store, &root, &[&top, &dep]);
    // --max-freed stops after passing the limit.
    let results = run(&store, GcOptions { max_freed: 15_000, ..GcOptions::default() });
    assert_eq!(results.paths.len(), 2, "{:?}", results.paths);
    assert!(results.bytes_freed > 15_000);
    let left = big.iter().filter(|p| store.is_valid_path(p).unwrap()).count();
    assert_eq!(left, 4);
    // --max-freed 0 deletes nothing.
    assert!(run(&store, GcOptions { max_freed: 0, ..GcOptions::default() }).paths.is_empty());
    drop(store);
    assert_consistent(&root);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Add a path referring to some of the valid paths (chosen by index).
        Add(Vec<usize>),
        /// Root the n-th valid path (direct link or an indirect one).
        Root(usize, bool),
        /// Remove the n-th root.
        Unroot(usize),
        /// What a build leaves behind: a `.drv` referring to some valid paths
        /// and an output, registered as the scheduler does (under its lock,
        /// contents first), whose deriver is that `.drv`.
        Build(Vec<usize>),
        Gc,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => proptest::collection::vec(0usize..64, 0..3).prop_map(Op::Add),
            2 => (0usize..64, any::<bool>()).prop_map(|(i, indirect)| Op::Root(i, indirect)),
            1 => (0usize..64).prop_map(Op::Unroot),
            2 => proptest::collection::vec(0usize..64, 0..3).prop_map(Op::Build),
            2 => Just(Op::Gc),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn reachable_from_a_root_stays_valid_and_complete(ops in proptest::collection::vec(op(), 1..14)) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("root");
            let gcroots = state(&root).join("gcroots");
            let mut counter = 0;
            let mut roots: Vec<(PathBuf, StorePath)> = Vec::new();
            for op in ops.iter().chain(std::iter::once(&Op::Gc)) {
                // A fresh handle each time, so this process holds no temporary roots.
                let store = open(&root);
                let valid: Vec<StorePath> = store.query_all_valid_paths().unwrap().into_iter().collect();
                match op {
                    Op::Add(refs) => {
                        let refs: Vec<&StorePath> = if valid.is_empty() { vec![] } else { refs.iter().map(|i| &valid[i % valid.len()]).collect() };
                        counter += 1;
                        add(&store, &format!("p{counter}"), &format!("contents {counter}"), &refs);
                    }
                    Op::Root(i, indirect) if !valid.is_empty() => {
                        let target = valid[i % valid.len()].clone();
                        counter += 1;
                        let link = if *indirect {
                            let link = dir.path().join(format!("result-{counter}"));
                            std::os::unix::fs::symlink(printed(&target), &link).unwrap();
                            store.add_indirect_root(&link).unwrap();
                            link
                        } else {
                            let link = gcroots.join(format!("root-{counter}"));
                            std::os::unix::fs::symlink(printed(&target), &link).unwrap();
                            link
                        };
                        roots.push((link, target));
                    }
                    Op::Unroot(i) if !roots.is_empty() => {
                        let (link, _) = roots.remove(i % roots.len());
                        fs::remove_file(link).unwrap();
                    }
                    Op::Build(inputs) => {
                        let inputs: Vec<&StorePath> = if valid.is_empty() { vec![] } else { inputs.iter().map(|i| &valid[i % valid.len()]).collect() };
                        counter += 1;
                        let name = format!("b{counter}");
                        let mut derivation = nivis_formats::Derivation {
                            outputs: [("out".to_string(), nivis_formats::DerivationOutput::Deferred)].into(),
                            input_derivations: Default::default(),
                            input_sources: inputs.iter().map(|p| (*p).clone()).collect(),
                            platform: b"x86_64-linux".to_vec(),
                            builder: b"/bin/sh".to_vec(),
                            args: vec![],
                            env: [(b"name".to_vec(), name.as_bytes().to_vec()), (b"out".to_vec(), vec![])].into(),
                        };
                        derivation
                            .fill_output_paths::<Box<dyn std::error::Error>>(store.store_dir(), &name, |_| unreachable!("no input derivations"))
                            .unwrap();
                        let Some(nivis_formats::DerivationOutput::InputAddressed(out)) = derivation.outputs.get("out").cloned() else {
                            panic!("an input-addressed output")
                        };
                        let drv = add(&store, &format!("{name}.drv"), &String::from_utf8(derivation.to_aterm(store.store_dir())).unwrap(), &inputs);
                        let _lock = store.lock_path(&out).unwrap();
                        fs::write(real(&root, &out), format!("built {counter}")).unwrap();
                        let mut hasher = Hasher::new(HashAlgorithm::Sha256);
                        nivis_store::dump_path(&real(&root, &out), &mut hasher).unwrap();
                        let size = hasher.bytes_hashed();
                        let mut info = ValidPathInfo::new(out, hasher.finish(), size);
                        info.references = inputs.into_iter().cloned().collect();
                        info.deriver = Some(drv);
                        info.ultimate = true;
                        store.register_valid_paths(&[info]).unwrap();
                    }
                    Op::Gc => {
                        run(&store, options(GcAction::DeleteDead));
                    }
                    _ => {}
                }
                drop(store);
                let store = open(&root);
                for (_, target) in &roots {
                    let closure = nivis_store::compute_closure(&store, &[target.clone()].into(), nivis_store::ClosureOptions::default()).unwrap();
                    for path in &closure {
                        prop_assert!(store.is_valid_path(path).unwrap(), "{} reachable from a root but invalid", printed(path));
                        prop_assert!(real(&root, path).exists());
                    }
                }
                drop(store);
                assert_consistent(&root);
            }
            // The last collection left exactly the closure of the roots, with
            // the valid derivers of live paths (keep-derivations, on by default)
            // and their closures.
            let store = open(&root);
            let mut live = StorePathSet::new();
            let mut pending: Vec<StorePath> = roots.iter().map(|(_, target)| target.clone()).collect();
            while let Some(path) = pending.pop() {
                if !live.insert(path.clone()) {
                    continue;
                }
                let info = store.query_path_info(&path).unwrap().unwrap();
                pending.extend(info.references.iter().cloned());
                if let Some(deriver) = info.deriver.filter(|d| store.is_valid_path(d).unwrap()) {
                    pending.push(deriver);
                }
            }
            prop_assert_eq!(store.query_all_valid_paths().unwrap(), live);
        }
    }
}
