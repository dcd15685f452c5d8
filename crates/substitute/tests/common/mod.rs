//! Shared test fixtures: stores on disk with input-addressed (unsigned, not
//! content-addressed) paths, keys made by CppNix, and CppNix as a peer.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use nivis_formats::{HashAlgorithm, Keyring, PublicKey, SecretKey, StorePath, StorePathSet};
use nivis_store::{LocalStore, LocalStoreConfig, Store, StoreSettings, ValidPathInfo};

pub fn settings() -> StoreSettings {
    StoreSettings::default()
}

pub fn open_local(root: &Path) -> LocalStore {
    LocalStore::open(LocalStoreConfig::with_root(&settings(), root)).expect("open local store")
}

/// A path name that looks like a build output: the hash part is derived from
/// the name and a salt, as no content address would give it.
fn fake_output_path(name: &str, salt: &str) -> StorePath {
    let digest = nivis_formats::Hash::of_bytes(HashAlgorithm::Sha256, format!("{salt}:{name}").as_bytes());
    let compressed: [u8; 20] = nivis_formats::compress_hash(digest.digest(), 20).try_into().unwrap();
    StorePath::from_digest(&compressed, name).unwrap()
}

/// Registers a chain of input-addressed paths in `store`: `lib` (a directory
/// with a file of `size` bytes, an executable and a symlink), and `app`, which
/// refers to `lib` and to itself. Returns `[lib, app]`.
pub fn populate(store: &LocalStore, salt: &str, size: usize) -> Vec<StorePath> {
    let real_dir = store.config().real_store_dir.clone();
    std::fs::create_dir_all(&real_dir).unwrap();
    let lib = fake_output_path("lib", salt);
    let app = fake_output_path("app", salt);
    let lib_dir = real_dir.join(lib.base_name());
    std::fs::create_dir_all(lib_dir.join("share")).unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(lib_dir.join("share/data"), &data).unwrap();
    std::fs::write(lib_dir.join("run"), "#!/bin/sh\necho hi\n").unwrap();
    set_mode(&lib_dir.join("run"), 0o555);
    std::os::unix::fs::symlink("share/data", lib_dir.join("link")).unwrap();
    set_mode(&lib_dir.join("share/data"), 0o444);
    let app_file = real_dir.join(app.base_name());
    std::fs::write(
        &app_file,
        format!("uses {}/{} and {}/{}\n", "/nix/store", lib.base_name(), "/nix/store", app.base_name()),
    )
    .unwrap();
    set_mode(&app_file, 0o444);

    let mut infos = Vec::new();
    for (path, references) in [(&lib, vec![]), (&app, vec![lib.clone(), app.clone()])] {
        let (nar_hash, nar_size) =
            nivis_formats::nar::hash_path(&real_dir.join(path.base_name()), HashAlgorithm::Sha256).unwrap();
        let mut info = ValidPathInfo::new(path.clone(), nar_hash, nar_size);
        info.references = references.into_iter().collect();
        infos.push(info);
    }
    store.register_valid_paths(&infos).unwrap();
    vec![lib, app]
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

/// A signing key pair made by CppNix: (secret key file, secret key, public key).
pub fn cppnix_key(dir: &Path, name: &str) -> (PathBuf, SecretKey, PublicKey) {
    let secret = dir.join(format!("{name}.sec"));
    let public = dir.join(format!("{name}.pub"));
    let status = Command::new("nix-store")
        .arg("--generate-binary-cache-key")
        .arg(name)
        .arg(&secret)
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success());
    let secret_key = SecretKey::parse(std::fs::read_to_string(&secret).unwrap().trim()).unwrap();
    let public_key = PublicKey::parse(std::fs::read_to_string(&public).unwrap().trim()).unwrap();
    (secret, secret_key, public_key)
}

pub fn keyring(keys: &[&PublicKey]) -> Keyring {
    let mut keyring = Keyring::new();
    for key in keys {
        keyring.add((*key).clone());
    }
    keyring
}

/// Runs a CppNix command, failing the test with its stderr if it fails.
pub fn cppnix(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .env("NIX_CONFIG", "")
        .env_remove("NIX_REMOTE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a CppNix command expected to fail; returns its stderr.
pub fn cppnix_fails(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).env_remove("NIX_REMOTE").output().unwrap();
    assert!(!output.status.success(), "{program} {args:?} succeeded unexpectedly");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// What CppNix says about a path's NAR hash in a store, after checking the contents.
pub fn cppnix_hash(root: &Path, path: &str) -> String {
    let store = root.to_str().unwrap();
    cppnix("nix-store", &["--store", store, "--verify-path", path]);
    cppnix("nix-store", &["--store", store, "-q", "--hash", path]).trim().to_string()
}

pub fn printed(path: &StorePath) -> String {
    format!("/nix/store/{}", path.base_name())
}

pub fn set(paths: &[StorePath]) -> StorePathSet {
    paths.iter().cloned().collect()
}

pub const NIX_COMMAND: &str = "--extra-experimental-features";

/// CppNix 2.8's `nix copy ARGS...` (which needs the nix-command feature).
pub fn cppnix_copy(args: &[&str]) -> String {
    let mut all = vec![NIX_COMMAND, "nix-command", "copy"];
    all.extend_from_slice(args);
    cppnix("nix", &all)
}
