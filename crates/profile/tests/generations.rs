//! Generations on a real store in a temporary directory, with CppNix 2.8's
//! nix-env as a peer reading (and writing) the same profile.

use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_formats::StorePathSet;
use nivis_profile::{
    DeleteSpec, create_generation, find_generations, rollback, switch_generation, switch_link,
};
use nivis_store::{LocalStore, LocalStoreConfig, Store, StoreSettings};

fn open(root: &Path) -> LocalStore {
    LocalStore::open(LocalStoreConfig::with_root(&StoreSettings::default(), root)).expect("open store")
}

/// CppNix's nix-env on the store at `root`; returns (success, stdout, stderr).
fn cppnix_env(root: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new("/usr/bin/nix-env").arg("--store").arg(root).args(args).output().expect("run nix-env");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The generation numbers CppNix lists, and the one it marks current.
fn cppnix_generations(root: &Path, profile: &Path) -> (Vec<u64>, Option<u64>) {
    let (ok, out, err) = cppnix_env(root, &["-p", profile.to_str().unwrap(), "--list-generations"]);
    assert!(ok, "nix-env --list-generations failed: {err}");
    let mut numbers = Vec::new();
    let mut current = None;
    for line in out.lines() {
        let n: u64 = line.split_whitespace().next().unwrap().parse().unwrap();
        numbers.push(n);
        if line.ends_with("(current)") {
            current = Some(n);
        }
    }
    (numbers, current)
}

fn numbers(profile: &Path) -> (Vec<u64>, Option<u64>) {
    let (generations, current) = find_generations(profile).unwrap();
    (generations.iter().map(|g| g.number).collect(), current)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    profile: PathBuf,
    store: LocalStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let store = open(&root);
    let profile = dir.path().join("profiles/profile");
    std::fs::create_dir_all(profile.parent().unwrap()).unwrap();
    Fixture { _dir: dir, root, profile, store }
}

fn add(store: &LocalStore, name: &str) -> nivis_formats::StorePath {
    store.add_text_to_store(name, name.as_bytes(), &StorePathSet::new(), false).unwrap()
}

#[test]
fn generations_are_made_switched_and_deleted_as_cppnix_reads_them() {
    let f = fixture();
    let paths: Vec<_> = (1..=4).map(|i| add(&f.store, &format!("env-{i}"))).collect();
    for p in &paths {
        let link = create_generation(&f.store, &f.profile, p).unwrap();
        switch_link(&f.profile, &link).unwrap();
    }
    // The profile names its generation by base name, as CppNix's switchLink.
    assert_eq!(std::fs::read_link(&f.profile).unwrap(), PathBuf::from("profile-4-link"));
    assert_eq!(numbers(&f.profile), (vec![1, 2, 3, 4], Some(4)));
    assert_eq!(cppnix_generations(&f.root, &f.profile), (vec![1, 2, 3, 4], Some(4)));

    // The same path again makes no new generation.
    let again = create_generation(&f.store, &f.profile, &paths[3]).unwrap();
    assert!(again.ends_with("profile-4-link"));

    // Each generation link is an indirect root under gcroots/auto.
    let auto = f.root.join("nix/var/nix/gcroots/auto");
    let roots: Vec<PathBuf> = std::fs::read_dir(&auto).unwrap().map(|e| std::fs::read_link(e.unwrap().path()).unwrap()).collect();
    assert_eq!(roots.len(), 4);
    assert!(roots.contains(&f.profile.with_file_name("profile-2-link")));

    assert_eq!(rollback(&f.profile, false).unwrap(), (4, 3));
    assert_eq!(cppnix_generations(&f.root, &f.profile).1, Some(3));
    assert_eq!(switch_generation(&f.profile, Some(1), false).unwrap(), (3, 1));
    assert_eq!(cppnix_generations(&f.root, &f.profile).1, Some(1));
    assert!(matches!(rollback(&f.profile, false), Err(nivis_profile::ProfileError::NoOlderGeneration(1))));
    assert!(matches!(switch_generation(&f.profile, Some(9), false), Err(nivis_profile::ProfileError::NoSuchGeneration(9))));
    // A dry run says what it would do and changes nothing.
    assert_eq!(switch_generation(&f.profile, Some(4), true).unwrap(), (1, 4));
    assert_eq!(numbers(&f.profile).1, Some(1));

    // The current generation cannot be deleted; others can.
    let spec = DeleteSpec::parse(&["1".into(), "2".into()]).unwrap();
    assert!(spec.apply(&f.profile, false).is_err());
    assert_eq!(numbers(&f.profile).0, vec![1, 2, 3, 4]);
    switch_generation(&f.profile, Some(3), false).unwrap();
    assert_eq!(spec.apply(&f.profile, false).unwrap(), vec![1, 2]);
    assert_eq!(cppnix_generations(&f.root, &f.profile), (vec![3, 4], Some(3)));
    // `old` keeps only the current one, even when newer ones exist.
    assert_eq!(DeleteSpec::Old.apply(&f.profile, false).unwrap(), vec![4]);
    assert_eq!(cppnix_generations(&f.root, &f.profile), (vec![3], Some(3)));
    // Numbering continues after the highest existing generation.
    let link = create_generation(&f.store, &f.profile, &paths[0]).unwrap();
    assert!(link.ends_with("profile-4-link"));
}

#[test]
fn keep_last_and_older_than_follow_cppnix_rules() {
    let f = fixture();
    for i in 1..=6 {
        let p = add(&f.store, &format!("gen-{i}"));
        let link = create_generation(&f.store, &f.profile, &p).unwrap();
        switch_link(&f.profile, &link).unwrap();
    }
    // +N counts from the current generation backwards; newer ones stay.
    switch_generation(&f.profile, Some(5), false).unwrap();
    assert_eq!(DeleteSpec::KeepLast(2).apply(&f.profile, true).unwrap(), vec![1, 2, 3]);
    assert_eq!(numbers(&f.profile).0.len(), 6, "a dry run deletes nothing");
    assert_eq!(DeleteSpec::KeepLast(2).apply(&f.profile, false).unwrap(), vec![1, 2, 3]);
    assert_eq!(numbers(&f.profile), (vec![4, 5, 6], Some(5)));

    // Back-date generation 4 and 5 by 10 and 5 days: with a 3-day cutoff, 5 was
    // the one in use at the cutoff, so only 4 goes (and never the current one).
    let set_age = |n: u64, days: i64| {
        let link = f.profile.with_file_name(format!("profile-{n}-link"));
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs((days * 86400) as u64);
        let times = [libc::timespec { tv_sec: t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64, tv_nsec: 0 }; 2];
        let c = std::ffi::CString::new(link.to_str().unwrap()).unwrap();
        // SAFETY: valid C string and a two-element timespec array.
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }, 0);
    };
    set_age(4, 10);
    set_age(5, 5);
    switch_generation(&f.profile, Some(6), false).unwrap();
    let spec = DeleteSpec::parse(&["3d".into()]).unwrap();
    assert_eq!(spec.apply(&f.profile, false).unwrap(), vec![4]);
    assert_eq!(cppnix_generations(&f.root, &f.profile), (vec![5, 6], Some(6)));
}

#[test]
fn profiles_written_by_cppnix_are_read_and_switched() {
    let f = fixture();
    let a = add(&f.store, "cpp-a");
    let b = add(&f.store, "cpp-b");
    let p = f.profile.to_str().unwrap();
    for path in [&a, &b] {
        let (ok, _, err) = cppnix_env(&f.root, &["-p", p, "--set", &f.store.print_store_path(path)]);
        assert!(ok, "nix-env --set failed: {err}");
    }
    assert_eq!(numbers(&f.profile), (vec![1, 2], Some(2)));
    assert_eq!(rollback(&f.profile, false).unwrap(), (2, 1));
    assert_eq!(cppnix_generations(&f.root, &f.profile).1, Some(1));
    let gen1 = std::fs::read_link(f.profile.with_file_name("profile-1-link")).unwrap();
    assert_eq!(gen1.to_string_lossy(), f.store.print_store_path(&a));
}
