//! Store path parsing and computation against CppNix 2.8: fixed-output paths from
//! `nix-store --add-fixed`, text paths from `builtins.toFile` (with references),
//! and name validation from `nix-store --add`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{Rng, cppnix};
use nivis_formats::{FileIngestionMethod, Hash, HashAlgorithm, StoreDir, StorePath, StorePathError, StorePathSet};

#[test]
fn flat_fixed_output_paths_match_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store = store.to_str().unwrap();
    let store_dir = StoreDir::default();
    let mut rng = Rng::new(10);
    for (index, algorithm) in HashAlgorithm::ALL.into_iter().enumerate() {
        let data = rng.bytes(100 + index * 37);
        let name = format!("file-{index}.dat");
        let file = work.path().join(&name);
        std::fs::write(&file, &data).unwrap();
        let theirs = cppnix("nix-store", &["--store", store, "--add-fixed", algorithm.name(), file.to_str().unwrap()]);
        let hash = Hash::of_bytes(algorithm, &data);
        let ours = store_dir
            .make_fixed_output_path(FileIngestionMethod::Flat, &hash, &name, &BTreeSet::new(), false)
            .unwrap();
        assert_eq!(store_dir.print_path(&ours), theirs, "{algorithm}");
        assert_eq!(store_dir.parse_path(&theirs).unwrap(), ours);
    }
}

/// `builtins.toFile` through nix-instantiate: a text path whose references are the
/// other text files its contents mention.
#[test]
fn text_paths_with_references_match_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store = store.to_str().unwrap();
    let store_dir = StoreDir::default();
    let expression = r#"
      let a = builtins.toFile "a.txt" "first";
          b = builtins.toFile "b" "second\n";
          c = builtins.toFile "c-with-refs" "uses ${a} and ${b}";
      in "${a} ${b} ${c}"
    "#;
    let output = cppnix("nix-instantiate", &["--store", store, "--eval", "--expr", expression]);
    let paths: Vec<&str> = output.trim_matches('"').split(' ').collect();
    let a = store_dir.compute_text_path("a.txt", b"first", &BTreeSet::new()).unwrap();
    let b = store_dir.compute_text_path("b", b"second\n", &BTreeSet::new()).unwrap();
    let contents = format!("uses {} and {}", store_dir.print_path(&a), store_dir.print_path(&b));
    let references: StorePathSet = [a.clone(), b.clone()].into_iter().collect();
    let c = store_dir.compute_text_path("c-with-refs", contents.as_bytes(), &references).unwrap();
    assert_eq!(paths, [store_dir.print_path(&a), store_dir.print_path(&b), store_dir.print_path(&c)]);
}

/// A custom store directory enters the hash.
#[test]
fn store_dir_enters_the_hash() {
    let work = tempfile::tempdir().unwrap();
    let custom = StoreDir::new("/custom/store/").unwrap();
    assert_eq!(custom.as_str(), "/custom/store");
    let output = Command::new("/usr/bin/nix-instantiate")
        .args(["--store", &format!("local?store=/custom/store&root={}", work.path().display())])
        .args(["--eval", "--expr", r#"builtins.toFile "x" "y""#])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let theirs = String::from_utf8(output.stdout).unwrap();
    let ours = custom.compute_text_path("x", b"y", &BTreeSet::new()).unwrap();
    assert_eq!(theirs.trim().trim_matches('"'), custom.print_path(&ours));
}

#[test]
fn name_validation_agrees_with_cppnix_add() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store = store.to_str().unwrap();
    let long_ok = "n".repeat(211);
    let long_bad = "n".repeat(212);
    let cases: Vec<(&str, bool)> = vec![
        ("plain", true),
        ("A-Z_a.z+0?9=", true),
        (".hidden", true),
        ("-leading-dash", true),
        (&long_ok, true),
        (&long_bad, false),
        ("with space", false),
        ("uni\u{e9}", false),
        ("colon:", false),
        ("tilde~", false),
    ];
    for (name, valid) in cases {
        let file = work.path().join(name);
        std::fs::write(&file, name).unwrap();
        let status = Command::new("/usr/bin/nix-store")
            .args(["--store", store, "--add"])
            .arg(&file)
            .output()
            .unwrap()
            .status;
        assert_eq!(status.success(), valid, "CppNix on {name:?}");
        let base_name = format!("{}-{}", "0".repeat(32), name);
        assert_eq!(StorePath::from_base_name(&base_name).is_ok(), valid, "nivis on {name:?}");
    }
    // Stricter than 2.8, as current CppNix: `.` and `..` as the first component.
    for name in [".", "..", ".-x", "..-x"] {
        let base_name = format!("{}-{}", "0".repeat(32), name);
        assert!(matches!(StorePath::from_base_name(&base_name), Err(StorePathError::InvalidName { .. })));
    }
}

#[test]
fn parsing_store_paths() {
    let store_dir = StoreDir::default();
    let text = "/nix/store/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-konsole-18.12.3";
    let path = store_dir.parse_path(text).unwrap();
    assert_eq!(path.hash_part(), "7h7qgvs4kgzsn8a6rb273saxyqh4jxlz");
    assert_eq!(path.name(), "konsole-18.12.3");
    assert_eq!(StorePath::from_digest(&path.digest(), path.name()).unwrap(), path);
    assert_eq!(store_dir.print_path(&path), text);
    let inside = format!("{text}/bin/konsole");
    let (inner, rest) = store_dir.split_path(&inside).unwrap();
    assert_eq!((inner, rest), (path.clone(), "/bin/konsole"));
    assert!(matches!(store_dir.parse_path("/nix/store"), Err(StorePathError::NotInStore(_))));
    assert!(matches!(store_dir.parse_path(&format!("{text}/bin")), Err(StorePathError::NotInStore(_))));
    assert!(matches!(store_dir.parse_path("/other/7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-x"), Err(StorePathError::NotInStore(_))));
    assert!(matches!(StorePath::from_base_name("short"), Err(StorePathError::TooShort(_))));
    assert!(matches!(
        StorePath::from_base_name("7h7qgvs4kgzsn8a6rb273saxyqh4jxle-x"),
        Err(StorePathError::InvalidHashCharacter { character: 'e', .. })
    ));
    assert!(matches!(StorePath::from_base_name("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz_x"), Err(StorePathError::MissingDash(_))));
    assert!(matches!(StorePath::from_base_name("7h7qgvs4kgzsn8a6rb273saxyqh4jxlz-"), Err(StorePathError::EmptyName(_))));
    assert!(StoreDir::new("relative").is_err());
    assert!(StoreDir::new("/a/../b").is_err());
}

/// Recursive (NAR) content addressing: `nix-store --add` and `--add-fixed
/// --recursive` give `source` paths for SHA-256 and `fixed:out:r:` paths for
/// the other algorithms; `builtins.path` gives `source` paths too.
#[test]
fn recursive_fixed_output_and_source_paths_match_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store = store.to_str().unwrap();
    let store_dir = StoreDir::default();
    let tree = work.path().join("a-tree");
    common::random_tree(&mut Rng::new(20), &tree, 0);
    let file = work.path().join("plain-file");
    std::fs::write(&file, Rng::new(21).bytes(5000)).unwrap();
    for path in [&tree, &file] {
        let name = path.file_name().unwrap().to_str().unwrap();
        for algorithm in HashAlgorithm::ALL {
            let (nar_hash, _) = nivis_formats::nar::hash_path(path, algorithm).unwrap();
            let ours = store_dir
                .make_fixed_output_path(FileIngestionMethod::Recursive, &nar_hash, name, &BTreeSet::new(), false)
                .unwrap();
            let theirs = cppnix(
                "nix-store",
                &["--store", store, "--add-fixed", "--recursive", algorithm.name(), path.to_str().unwrap()],
            );
            assert_eq!(store_dir.print_path(&ours), theirs, "{algorithm} of {name}");
        }
        let (sha256, _) = nivis_formats::nar::hash_path(path, HashAlgorithm::Sha256).unwrap();
        let source = store_dir.make_store_path("source", &sha256, name).unwrap();
        assert_eq!(store_dir.print_path(&source), cppnix("nix-store", &["--store", store, "--add", path.to_str().unwrap()]));
        let expression = format!(r#"builtins.path {{ path = {}; name = "renamed"; }}"#, path.display());
        let evaluated = cppnix("nix-instantiate", &["--store", store, "--eval", "--expr", &expression]);
        let renamed = store_dir.make_store_path("source", &sha256, "renamed").unwrap();
        assert_eq!(evaluated.trim_matches('"'), store_dir.print_path(&renamed));
    }
}

/// A `source` path with references and a self-reference: the type string lists
/// the references' full paths in order, then `self` (first principles: this is
/// the fingerprint CppNix hashes, spelled out).
#[test]
fn source_type_with_references_spells_out_the_fingerprint() {
    let store_dir = StoreDir::default();
    let a = StorePath::from_base_name("00000000000000000000000000000000-a").unwrap();
    let b = StorePath::from_base_name("11111111111111111111111111111111-b").unwrap();
    let references: StorePathSet = [b.clone(), a.clone()].into_iter().collect();
    let path_type = store_dir.make_type("source", &references, true);
    assert_eq!(
        path_type,
        "source:/nix/store/00000000000000000000000000000000-a:/nix/store/11111111111111111111111111111111-b:self"
    );
    let hash = Hash::of_bytes(HashAlgorithm::Sha256, b"x");
    let with_references = store_dir
        .make_fixed_output_path(FileIngestionMethod::Recursive, &hash, "n", &references, true)
        .unwrap();
    assert_eq!(with_references, store_dir.make_store_path(&path_type, &hash, "n").unwrap());
    let fingerprint = format!("{path_type}:sha256:{}:/nix/store:n", hash.to_base16());
    let digest = nivis_formats::compress_hash(Hash::of_bytes(HashAlgorithm::Sha256, fingerprint.as_bytes()).digest(), 20);
    assert_eq!(with_references.hash_part(), nivis_formats::nixbase32::encode(&digest));
    // Flat or non-SHA-256 fixed outputs cannot have references.
    assert_eq!(
        store_dir.make_fixed_output_path(FileIngestionMethod::Flat, &hash, "n", &references, false),
        Err(StorePathError::ReferencesNotAllowed)
    );
}

/// The cheap hasher for maps keyed by store paths spreads real paths over the
/// buckets as a uniform hash would: 10000 paths into 2^14 buckets (the low bits
/// pick the bucket) fill about 16384 * (1 - e^(-10000/16384)) = 7,490 of them,
/// and the top seven bits (hashbrown's tag) take all 128 values.
#[test]
fn store_path_hasher_spreads_paths_like_a_uniform_hash() {
    use std::hash::{BuildHasher, Hash as _, Hasher as _};
    let build = nivis_formats::StorePathBuildHasher::default();
    let store_dir = nivis_formats::StoreDir::default();
    let mut buckets = std::collections::HashSet::new();
    let mut tags = std::collections::HashSet::new();
    for i in 0..10000 {
        let hash = nivis_formats::Hash::of_bytes(nivis_formats::HashAlgorithm::Sha256, format!("{i}").as_bytes());
        let path = store_dir.make_text_path(&format!("pkg-{i}.drv"), &hash, &Default::default()).unwrap();
        let mut hasher = build.build_hasher();
        path.hash(&mut hasher);
        let value = hasher.finish();
        buckets.insert(value & 0x3fff);
        tags.insert(value >> 57);
    }
    assert!((7300..7700).contains(&buckets.len()), "{} buckets used", buckets.len());
    assert_eq!(tags.len(), 128);
}
