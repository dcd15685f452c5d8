//! `query_path_from_hash_part` on a store CppNix 2.8 filled: every path is
//! found by its hash part, and nothing is found for hash parts that sort
//! between, before or after the valid paths, nor for strings that are not
//! hash parts.

use std::process::Command;

use nivis_store::{LocalStore, LocalStoreConfig, Store, StoreSettings};

#[test]
fn finds_exactly_the_path_with_the_hash_part() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    for i in 0..40 {
        std::fs::write(files.join(format!("file-{i}")), format!("contents {i}\n")).unwrap();
    }
    let mut add = Command::new("nix-store");
    add.env_remove("NIX_REMOTE").arg("--store").arg(&root).arg("--add");
    for i in 0..40 {
        add.arg(files.join(format!("file-{i}")));
    }
    let output = add.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_string).collect();
    assert_eq!(printed.len(), 40);

    let store = LocalStore::open(LocalStoreConfig::with_root(&StoreSettings::default(), &root)).unwrap();
    let mut hash_parts = Vec::new();
    for text in &printed {
        let path = store.parse_store_path(text).unwrap();
        assert_eq!(store.query_path_from_hash_part(path.hash_part()).unwrap(), Some(path.clone()));
        // Through the trait object too, as servers call it.
        let dyn_store: &dyn Store = &store;
        assert_eq!(dyn_store.query_path_from_hash_part(path.hash_part()).unwrap(), Some(path.clone()));
        hash_parts.push(path.hash_part().to_string());
    }
    hash_parts.sort();

    // A hash part one step before each valid one (last character lowered
    // in nix32 order) sorts right before it: the range query meets the
    // valid path, whose prefix differs.
    const NIX32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
    for hash_part in &hash_parts {
        let last = hash_part.as_bytes()[31] as char;
        let index = NIX32.find(last).unwrap();
        if index == 0 || hash_parts.iter().any(|h| h[..31] == hash_part[..31] && h.as_bytes()[31] as char == NIX32.as_bytes()[index - 1] as char) {
            continue;
        }
        let before = format!("{}{}", &hash_part[..31], NIX32.as_bytes()[index - 1] as char);
        assert_eq!(store.query_path_from_hash_part(&before).unwrap(), None, "{before}");
    }
    for absent in ["00000000000000000000000000000000", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        assert_eq!(store.query_path_from_hash_part(absent).unwrap(), None);
    }
    // Not hash parts: a prefix of a valid one, too long, characters outside
    // nix32 (`e`, `o`, `t`, `u`) or SQL's.
    let valid = &hash_parts[0];
    for bad in [&valid[..31], &format!("{valid}0"), "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "%", "", "' or 1=1 --"] {
        assert_eq!(store.query_path_from_hash_part(bad).unwrap(), None, "{bad}");
    }
}
