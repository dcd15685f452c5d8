//! The local store against CppNix 2.8 as a peer on the same store directory:
//! schema, registration, references, export/import, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, HashEncoding, StorePathSet};
use nivis_store::{LocalStore, LocalStoreConfig, Store, StoreSettings, ValidPathInfo};

fn open(root: &Path) -> LocalStore {
    let config = LocalStoreConfig::with_root(&StoreSettings::default(), root);
    LocalStore::open(config).expect("open store")
}

/// Runs a CppNix command on the store at `root`, returning stdout; panics on failure.
fn cppnix(program: &str, root: &Path, args: &[&str]) -> String {
    let output = Command::new(format!("/usr/bin/{program}"))
        .arg("--store")
        .arg(root)
        .args(args)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .expect("run CppNix");
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn cppnix_status(root: &Path, args: &[&str]) -> bool {
    Command::new("/usr/bin/nix-store")
        .arg("--store")
        .arg(root)
        .args(args)
        .output()
        .expect("run CppNix")
        .status
        .success()
}

fn sqlite_master(db: &Path) -> Vec<(String, String, String, Option<String>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("select type, name, tbl_name, sql from sqlite_master order by type, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn db_path(root: &Path) -> PathBuf {
    root.join("nix/var/nix/db/db.sqlite")
}

#[test]
fn fresh_store_has_cppnix_schema_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours");
    let theirs = dir.path().join("theirs");
    drop(open(&ours));
    let file = dir.path().join("f");
    std::fs::write(&file, "x").unwrap();
    cppnix("nix-store", &theirs, &["--add", file.to_str().unwrap()]);
    assert_eq!(sqlite_master(&db_path(&ours)), sqlite_master(&db_path(&theirs)));
    let pragma = |root: &Path, name: &str| -> String {
        let conn = rusqlite::Connection::open(db_path(root)).unwrap();
        conn.query_row(&format!("pragma {name}"), [], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    for name in ["journal_mode", "page_size", "auto_vacuum", "user_version", "encoding"] {
        assert_eq!(pragma(&ours, name), pragma(&theirs, name), "pragma {name}");
    }
    for entry in ["nix/var/nix/db/schema", "nix/var/nix/db/big-lock", "nix/var/nix/db/reserved", "nix/var/nix/gcroots", "nix/var/nix/profiles/per-user", "nix/var/nix/temproots", "nix/store/.links"] {
        assert!(ours.join(entry).exists(), "{entry} missing");
    }
    assert_eq!(
        std::fs::read(ours.join("nix/var/nix/db/schema")).unwrap(),
        std::fs::read(theirs.join("nix/var/nix/db/schema")).unwrap()
    );
    assert_eq!(
        std::fs::read_link(ours.join("nix/var/nix/gcroots/profiles")).unwrap(),
        ours.join("nix/var/nix/profiles")
    );
}

#[test]
fn paths_registered_by_nivis_are_valid_for_cppnix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let dep = store.add_text_to_store("dep", b"I am a dependency", &StorePathSet::new(), false).unwrap();
    let mut refs = StorePathSet::new();
    refs.insert(dep.clone());
    let contents = format!("refers to {}", store.print_store_path(&dep));
    let top = store.add_text_to_store("top", contents.as_bytes(), &refs, false).unwrap();
    let top_printed = store.print_store_path(&top);
    drop(store);

    cppnix("nix-store", &root, &["--verify-path", &top_printed]);
    let references = cppnix("nix-store", &root, &["--query", "--references", &top_printed]);
    assert_eq!(references.trim(), format!("/nix/store/{}", dep.base_name()));
    // CppNix computes the same text path from the same contents.
    let expected = Command::new("/usr/bin/nix-instantiate")
        .args(["--store"])
        .arg(&root)
        .args(["--read-write-mode", "--eval", "-E"])
        .arg("builtins.toFile \"top\" \"refers to ${builtins.toFile \"dep\" \"I am a dependency\"}\"")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&expected.stdout).trim(), format!("\"{top_printed}\""));
    let their_hash = cppnix("nix-store", &root, &["--query", "--hash", &top_printed]);
    let store = open(&root);
    let info = store.query_path_info(&top).unwrap().unwrap();
    assert_eq!(their_hash.trim(), info.nar_hash.encode(HashEncoding::Nix32, true));
    assert_eq!(info.ca.as_ref().unwrap().to_string().split(':').next(), Some("text"));
    // CppNix's full check agrees with the contents we wrote.
    assert!(cppnix_status(&root, &["--verify", "--check-contents"]));
}

#[test]
fn a_cppnix_store_is_read_and_extended_by_nivis() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("sub/file"), "contents").unwrap();
    std::os::unix::fs::symlink("sub/file", tree.join("link")).unwrap();
    let theirs = cppnix("nix-store", &root, &["--add", tree.to_str().unwrap()]);
    let theirs = theirs.trim();
    let their_hash = cppnix("nix-store", &root, &["--query", "--hash", theirs]);

    let store = open(&root);
    let path = store.parse_store_path(theirs).unwrap();
    let info = store.query_path_info(&path).unwrap().expect("CppNix's path is valid for nivis");
    assert_eq!(info.nar_hash.encode(HashEncoding::Nix32, true), their_hash.trim());
    // Adding the same tree again finds it valid and changes nothing.
    let again = store
        .add_to_store("tree", &tree, FileIngestionMethod::Recursive, HashAlgorithm::Sha256, &StorePathSet::new(), false)
        .unwrap();
    assert_eq!(again, path);
    assert_eq!(store.query_path_info(&path).unwrap().unwrap().registration_time, info.registration_time);
    // A new path referring to CppNix's.
    let mut refs = StorePathSet::new();
    refs.insert(path.clone());
    let text = format!("uses {theirs}");
    let ours = store.add_text_to_store("ours", text.as_bytes(), &refs, false).unwrap();
    let ours_printed = store.print_store_path(&ours);
    drop(store);
    let requisites = cppnix("nix-store", &root, &["--query", "--requisites", &ours_printed]);
    assert_eq!(requisites, format!("{theirs}\n{ours_printed}\n"));
    let referrers = cppnix("nix-store", &root, &["--query", "--referrers", theirs]);
    assert_eq!(referrers, format!("{ours_printed}\n"));
    assert!(cppnix_status(&root, &["--verify", "--check-contents"]));
}

#[test]
fn export_is_byte_identical_and_imports_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let c = dir.path().join("c");
    let store = open(&a);
    let dep = store.add_text_to_store("dep", b"dependency", &StorePathSet::new(), false).unwrap();
    let text = format!("see {}", store.print_store_path(&dep));
    let top = store.add_text_to_store("top", text.as_bytes(), &StorePathSet::from([dep.clone()]), false).unwrap();
    let closure = StorePathSet::from([dep.clone(), top.clone()]);
    let mut ours = Vec::new();
    nivis_store::export_paths(&store, &closure, &mut ours).unwrap();
    let theirs = Command::new("/usr/bin/nix-store")
        .arg("--store")
        .arg(&a)
        .arg("--export")
        .arg(store.print_store_path(&top))
        .arg(store.print_store_path(&dep))
        .output()
        .unwrap()
        .stdout;
    assert_eq!(ours, theirs, "export differs from CppNix's");

    // CppNix imports our export.
    let mut child = Command::new("/usr/bin/nix-store")
        .arg("--store")
        .arg(&b)
        .arg("--import")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&ours).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{}\n{}\n", store.print_store_path(&dep), store.print_store_path(&top))
    );

    // nivis imports CppNix's export.
    let store_c = open(&c);
    let imported = store_c.import_paths(&mut theirs.as_slice()).unwrap();
    assert_eq!(imported, vec![dep.clone(), top.clone()]);
    let info = store_c.query_path_info(&top).unwrap().unwrap();
    assert_eq!(info.references, StorePathSet::from([dep.clone()]));
    assert_eq!(info.nar_hash, store.query_path_info(&top).unwrap().unwrap().nar_hash);
    drop(store_c);
    assert!(cppnix_status(&c, &["--verify", "--check-contents"]));
}

fn leftovers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("nix/store"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".links")
        .collect()
}

#[test]
fn a_nar_with_the_wrong_hash_registers_nothing_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let file = dir.path().join("payload");
    std::fs::write(&file, "payload").unwrap();
    let mut nar = Vec::new();
    nivis_store::dump_path(&file, &mut nar).unwrap();
    let path = store.store_dir().make_text_path("payload", &Hash::of_bytes(HashAlgorithm::Sha256, b"other"), &StorePathSet::new()).unwrap();
    let lying_hash = Hash::of_bytes(HashAlgorithm::Sha256, b"not the NAR");
    let info = ValidPathInfo::new(path.clone(), lying_hash, nar.len() as u64);
    let error = store.add_nar(&info, &mut nar.as_slice(), false).unwrap_err();
    assert!(error.to_string().contains("hash mismatch importing path"), "{error}");
    assert!(!store.is_valid_path(&path).unwrap());
    assert!(leftovers(&root).is_empty(), "left behind: {:?}", leftovers(&root));

    // The right hash, but a content address the contents do not match.
    let right = Hash::of_bytes(HashAlgorithm::Sha256, &nar);
    let mut info = ValidPathInfo::new(path.clone(), right, nar.len() as u64);
    info.ca = Some(nivis_store::ContentAddress::Text(Hash::of_bytes(HashAlgorithm::Sha256, b"other")));
    let error = store.add_nar(&info, &mut nar.as_slice(), false).unwrap_err();
    assert!(error.to_string().contains("ca hash mismatch"), "{error}");
    assert!(!store.is_valid_path(&path).unwrap());

    // A truncated NAR.
    let info = ValidPathInfo::new(path.clone(), Hash::of_bytes(HashAlgorithm::Sha256, &nar), nar.len() as u64);
    let error = store.add_nar(&info, &mut &nar[..nar.len() - 12], false).unwrap_err();
    assert!(error.to_string().contains("unexpected end of archive"), "{error}");
    assert!(!store.is_valid_path(&path).unwrap());
    assert!(leftovers(&root).is_empty(), "left behind: {:?}", leftovers(&root));
}

#[test]
fn referencing_an_invalid_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let ghost = store.store_dir().make_text_path("ghost", &Hash::of_bytes(HashAlgorithm::Sha256, b"g"), &StorePathSet::new()).unwrap();
    let error = store
        .add_text_to_store("needs-ghost", b"x", &StorePathSet::from([ghost]), false)
        .unwrap_err();
    assert!(error.to_string().contains("is not valid"), "{error}");
    assert!(store.query_all_valid_paths().unwrap().is_empty());
    assert!(leftovers(&root).is_empty(), "left behind: {:?}", leftovers(&root));
}

#[test]
fn delete_refuses_live_referrers_and_cppnix_agrees_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let dep = store.add_text_to_store("dep", b"d", &StorePathSet::new(), false).unwrap();
    let top = store.add_text_to_store("top", b"t", &StorePathSet::from([dep.clone()]), false).unwrap();
    // Paths this process added are its temporary roots (as in CppNix, the
    // collector honours its own process's too): a fresh process deletes.
    drop(store);
    let store = open(&root);
    let error = store.delete_paths(&StorePathSet::from([dep.clone()])).unwrap_err();
    assert!(error.to_string().contains("since it is still alive"), "{error}");
    assert!(store.is_valid_path(&dep).unwrap());
    let (deleted, _) = store.delete_paths(&StorePathSet::from([dep.clone(), top.clone()])).unwrap();
    assert_eq!(deleted, vec![top.clone(), dep.clone()]);
    assert!(store.query_all_valid_paths().unwrap().is_empty());
    assert!(leftovers(&root).is_empty(), "left behind: {:?}", leftovers(&root));
    drop(store);
    assert!(!cppnix_status(&root, &["--check-validity", &format!("/nix/store/{}", dep.base_name())]));
    assert!(cppnix_status(&root, &["--verify", "--check-contents"]));
}

#[test]
fn dummy_store_answers_nothing_and_refuses_to_add() {
    let store = nivis_store::open_store("dummy://", &StoreSettings::default()).unwrap();
    let path = store
        .store_dir()
        .make_text_path("x", &Hash::of_bytes(HashAlgorithm::Sha256, b"x"), &StorePathSet::new())
        .unwrap();
    assert!(!store.is_valid_path(&path).unwrap());
    assert!(store.query_path_info(&path).unwrap().is_none());
    assert!(store.query_all_valid_paths().unwrap().is_empty());
    let error = store.add_text_to_store("x", b"x", &StorePathSet::new(), false).unwrap_err();
    assert_eq!(error.to_string(), "operation 'addTextToStore' is not supported by store 'dummy'");
    assert!(store.as_local().is_none());
    assert!(nivis_store::open_store("ssh://example.org", &StoreSettings::default()).is_err());
}

#[test]
fn a_build_style_registration_under_the_path_lock() {
    // What a builder does: write the output at its final name under the lock,
    // then register it; CppNix then sees it valid with the same hash.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = nivis_store::open_store(root.to_str().unwrap(), &StoreSettings::default()).unwrap();
    let local = store.as_local().expect("a local store");
    let out = store
        .store_dir()
        .make_text_path("built", &Hash::of_bytes(HashAlgorithm::Sha256, b"pretend output"), &StorePathSet::new())
        .unwrap();
    let real = store.real_path(&out).unwrap();
    let lock = local.lock_path(&out).unwrap();
    std::fs::write(&real, "built contents\n").unwrap();
    let mut nar = Vec::new();
    nivis_store::dump_path(&real, &mut nar).unwrap();
    let mut info = ValidPathInfo::new(out.clone(), Hash::of_bytes(HashAlgorithm::Sha256, &nar), nar.len() as u64);
    info.ultimate = true;
    store.register_valid_paths(&[info]).unwrap();
    drop(lock);
    let printed = store.print_store_path(&out);
    let hash = cppnix("nix-store", &root, &["--query", "--hash", &printed]);
    assert_eq!(hash.trim(), Hash::of_bytes(HashAlgorithm::Sha256, &nar).encode(HashEncoding::Nix32, true));
    assert!(cppnix_status(&root, &["--verify-path", &printed]));
}

#[test]
fn two_stores_in_one_process_share_the_temporary_roots_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let first = open(&root);
    let second = open(&root);
    let a = first.add_text_to_store("a", b"a", &StorePathSet::new(), false).unwrap();
    let b = second.add_text_to_store("b", b"b", &StorePathSet::new(), false).unwrap();
    let roots_file = root.join("nix/var/nix/temproots").join(std::process::id().to_string());
    let roots = std::fs::read(&roots_file).unwrap();
    let text = String::from_utf8_lossy(&roots);
    assert!(text.contains(&first.print_store_path(&a)) && text.contains(&second.print_store_path(&b)), "{text}");
    drop(first);
    assert!(roots_file.exists(), "still in use by the second store");
    drop(second);
    assert!(!roots_file.exists());
}

#[test]
fn imported_derivations_get_cppnix_derivation_outputs_rows() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let target = dir.path().join("target");
    let expr = r#"let dep = derivation { name = "dep"; system = "x86_64-linux"; builder = "/bin/sh"; };
      in derivation { name = "multi"; system = "x86_64-linux"; builder = "/bin/sh"; outputs = [ "out" "dev" "doc" ]; inherit dep; }"#;
    let drv = Command::new("/usr/bin/nix-instantiate")
        .arg("--store")
        .arg(&source)
        .args(["-E", expr])
        .output()
        .unwrap();
    assert!(drv.status.success(), "{}", String::from_utf8_lossy(&drv.stderr));
    let drv = String::from_utf8(drv.stdout).unwrap();
    let closure = cppnix("nix-store", &source, &["--query", "--requisites", drv.trim()]);
    let mut args = vec!["--export"];
    args.extend(closure.lines());
    let export = Command::new("/usr/bin/nix-store").arg("--store").arg(&source).args(&args).output().unwrap().stdout;
    let store = open(&target);
    store.import_paths(&mut export.as_slice()).unwrap();
    let rows = |root: &Path| -> Vec<(String, String, String)> {
        let conn = rusqlite::Connection::open(db_path(root)).unwrap();
        let mut stmt = conn
            .prepare("select v.path, d.id, d.path from DerivationOutputs d join ValidPaths v on v.id = d.drv order by 1, 2")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().collect::<Result<_, _>>().unwrap()
    };
    let expected = rows(&source);
    assert_eq!(expected.len(), 4);
    assert_eq!(rows(&target), expected);
    let multi = store.parse_store_path(drv.trim()).unwrap();
    let outputs = store.query_derivation_outputs(&multi).unwrap();
    assert_eq!(outputs.keys().cloned().collect::<Vec<_>>(), vec!["dev", "doc", "out"]);
    let out = &outputs["out"];
    assert_eq!(store.query_valid_derivers(out).unwrap(), StorePathSet::from([multi]));
}
