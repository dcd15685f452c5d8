//! ATerm `.drv` files and `hashDerivationModulo`, against CppNix 2.8: every
//! derivation CppNix instantiates from `golden/drv/*.nix` must read back and print
//! byte-identically, and nivis must compute the same `.drv` paths and output
//! paths from scratch. The `.drv` files are kept as golden files.

mod peer;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use nivis_formats::derivation::{downstream_placeholder, hash_placeholder};
use nivis_formats::{
    Derivation, DerivationError, DerivationOutput, DrvHashCache, FileIngestionMethod, Hash, HashAlgorithm, StoreDir,
    StorePath,
};
use peer::{PeerStore, accepting, golden_dir};
use proptest::prelude::*;

/// Instantiates both case files with CppNix; returns the store and its `.drv`s.
fn instantiate_cases() -> (PeerStore, Vec<(String, Vec<u8>)>) {
    let store = PeerStore::new();
    for case in ["cases.nix", "ca-cases.nix"] {
        store.write(case, &fs::read(golden_dir("drv").join(case)).unwrap());
    }
    store.write("binary.bin", &(1..=255u8).collect::<Vec<u8>>());
    store.run("nix-instantiate", &["cases.nix"]);
    store.run("nix-instantiate", &["ca-cases.nix"]);
    let drvs = store.derivations();
    assert!(drvs.len() > 30, "CppNix wrote only {} derivations", drvs.len());
    (store, drvs)
}

fn drv_name(base_name: &str) -> &str {
    let path = StorePath::from_base_name(base_name).unwrap();
    let name = &base_name[base_name.len() - path.name().len()..];
    name.strip_suffix(".drv").unwrap()
}

/// Reads, prints and names one derivation; returns it parsed.
fn check_round_trip(store_dir: &StoreDir, base_name: &str, contents: &[u8]) -> Derivation {
    let drv = Derivation::parse(store_dir, contents)
        .unwrap_or_else(|e| panic!("{base_name}: {e}\n{}", String::from_utf8_lossy(contents)));
    let printed = drv.to_aterm(store_dir);
    assert_eq!(
        String::from_utf8_lossy(&printed),
        String::from_utf8_lossy(contents),
        "{base_name} does not print back identically"
    );
    assert_eq!(printed, contents, "{base_name}: bytes differ");
    let drv_path = drv.drv_path(store_dir, drv_name(base_name)).unwrap();
    assert_eq!(drv_path.base_name(), base_name, "drv path of {base_name}");
    drv
}

/// Turns a finished derivation back into what evaluation hands over: output
/// paths unknown and output variables unset.
fn as_fresh(drv: &Derivation) -> Derivation {
    let mut fresh = drv.clone();
    let placeholder_path = StorePath::from_base_name("00000000000000000000000000000000-placeholder").unwrap();
    for (name, output) in fresh.outputs.iter_mut() {
        match output {
            DerivationOutput::InputAddressed(_) => *output = DerivationOutput::Deferred,
            DerivationOutput::Fixed { path, .. } => *path = placeholder_path.clone(),
            _ => {}
        }
        // Structured-attrs derivations have no per-output variables; leave those alone.
        if drv.env.contains_key(name.as_bytes()) {
            fresh.env.insert(name.as_bytes().to_vec(), b"garbage".to_vec());
        }
    }
    fresh
}

#[test]
fn cppnix_derivations_round_trip_and_paths_match() {
    let store_dir = StoreDir::default();
    let (store, drvs) = instantiate_cases();
    let mut cache = DrvHashCache::new();
    let mut read = |path: &StorePath| -> Result<Derivation, DerivationError> {
        Derivation::parse(&store_dir, &fs::read(store.real_path(path.base_name())).unwrap())
    };
    let mut kinds = std::collections::HashSet::new();
    for (base_name, contents) in &drvs {
        let drv = check_round_trip(&store_dir, base_name, contents);
        for output in drv.outputs.values() {
            kinds.insert(std::mem::discriminant(output));
        }

        // Output paths from scratch, as derivationStrict computes them.
        let name = drv_name(base_name);
        let mut fresh = as_fresh(&drv);
        fresh
            .fill_output_paths::<DerivationError>(&store_dir, name, |input| cache.hash_of(&store_dir, input, &mut read))
            .unwrap();
        assert_eq!(fresh, drv, "output paths of {base_name}");
        assert_eq!(fresh.drv_path(&store_dir, name).unwrap().base_name(), base_name);
    }
    // All five kinds of output appeared.
    assert_eq!(kinds.len(), 5, "not every kind of output was exercised");

    if accepting() {
        let dir = golden_dir("drv");
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "drv") {
                fs::remove_file(path).unwrap();
            }
        }
        for (base_name, contents) in &drvs {
            fs::write(dir.join(base_name), contents).unwrap();
        }
    } else {
        for (base_name, contents) in &drvs {
            let golden = fs::read(golden_dir("drv").join(base_name))
                .unwrap_or_else(|e| panic!("golden file {base_name} (NIVIS_ACCEPT=1 to write): {e}"));
            assert_eq!(&golden, contents, "CppNix now writes {base_name} differently from the golden file");
        }
    }
}

#[test]
fn golden_derivations_round_trip() {
    if accepting() {
        return; // the CppNix test is rewriting these files right now and checks the same bytes
    }
    let store_dir = StoreDir::default();
    let mut count = 0;
    for entry in fs::read_dir(golden_dir("drv")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "drv") {
            let base_name = path.file_name().unwrap().to_str().unwrap();
            check_round_trip(&store_dir, base_name, &fs::read(&path).unwrap());
            count += 1;
        }
    }
    assert!(count > 30, "only {count} golden derivations");
}

#[test]
fn placeholders_match_cppnix() {
    let store_dir = StoreDir::default();
    let (store, drvs) = instantiate_cases();
    let find = |name: &str| {
        let (base_name, contents) = drvs.iter().find(|(b, _)| b.ends_with(&format!("-{name}.drv"))).unwrap();
        (StorePath::from_base_name(base_name).unwrap(), Derivation::parse(&store_dir, contents).unwrap())
    };
    let (_, floating) = find("floating");
    assert_eq!(floating.env[&b"out"[..]], hash_placeholder("out").into_bytes());
    assert_eq!(floating.env[&b"bin"[..]], hash_placeholder("bin").into_bytes());
    let (floating_path, _) = find("floating");
    let (_, deferred) = find("deferred");
    assert_eq!(deferred.env[&b"x"[..]], downstream_placeholder(&floating_path, "bin").into_bytes());
    assert_eq!(deferred.outputs["out"], DerivationOutput::Deferred);
    drop(store);
}

/// CppNix writes the platform without escaping it, so a platform with a quote
/// makes a `.drv` that even CppNix cannot read back. We must write the same bytes
/// (so paths agree) and refuse to read it, as CppNix does.
#[test]
fn unescaped_platform_is_written_like_cppnix() {
    let store_dir = StoreDir::default();
    let store = PeerStore::new();
    store.write("q.nix", br#"derivation { name = "q"; system = "x86\"_64\\-li\nnux"; builder = "/bin/s\"h"; }"#);
    let status = std::process::Command::new("/usr/bin/nix-instantiate")
        .args(["--store", &store.uri(), "q.nix"])
        .current_dir(store.root())
        .output()
        .unwrap();
    assert!(!status.status.success(), "CppNix 2.8 cannot read back what it wrote");
    let (base_name, contents) = store.derivations().pop().expect("CppNix wrote the .drv before failing");

    let mut drv = Derivation {
        platform: b"x86\"_64\\-li\nnux".to_vec(),
        builder: b"/bin/s\"h".to_vec(),
        ..Derivation::default()
    };
    drv.outputs.insert("out".into(), DerivationOutput::Deferred);
    for (key, value) in [("builder", "/bin/s\"h"), ("name", "q"), ("system", "x86\"_64\\-li\nnux")] {
        drv.env.insert(key.as_bytes().to_vec(), value.as_bytes().to_vec());
    }
    drv.fill_output_paths::<DerivationError>(&store_dir, "q", |_| unreachable!()).unwrap();
    assert_eq!(String::from_utf8_lossy(&drv.to_aterm(&store_dir)), String::from_utf8_lossy(&contents));
    assert_eq!(drv.drv_path(&store_dir, "q").unwrap().base_name(), base_name);
    assert!(Derivation::parse(&store_dir, &contents).is_err());
}

#[test]
fn malformed_derivations_are_typed_errors() {
    let store_dir = StoreDir::default();
    let good = br#"Derive([("out","/nix/store/c10phl1g6ngpfsixg94lzkl2ya16xwhk-a","","")],[],[],"x86_64-linux","/bin/sh",[],[("out","/nix/store/c10phl1g6ngpfsixg94lzkl2ya16xwhk-a")])"#;
    Derivation::parse(&store_dir, good).unwrap();
    // Every strict prefix is an error, never a panic.
    for end in 0..good.len() {
        assert!(Derivation::parse(&store_dir, &good[..end]).is_err(), "prefix of {end} bytes accepted");
    }
    let cases: &[(&[u8], &str)] = &[
        (b"Derive([],[],[],\"\",\"\",[],[]) ", "trailing data"),
        (b"derive([],[],[],\"\",\"\",[],[])", "expected"),
        (br#"Derive([("out","relative","","")],[],[],"","",[],[])"#, "bad path"),
        (br#"Derive([("out","/elsewhere/c10phl1g6ngpfsixg94lzkl2ya16xwhk-a","","")],[],[],"","",[],[])"#, "not in the Nix store"),
        (br#"Derive([("out","","sha257","")],[],[],"","",[],[])"#, "unknown hash algorithm"),
        (br#"Derive([("out","/nix/store/c10phl1g6ngpfsixg94lzkl2ya16xwhk-a","sha256","abc")],[],[],"","",[],[])"#, "wrong length"),
        (br#"Derive([("o\"ut","","","")],[],[],"","",[],[])"#, "invalid output name"),
        (br#"Derive([("out","","",""),("out","","","")],[],[],"","",[],[])"#, "duplicate output"),
        (br#"Derive([],[],[],"","",[],[("a",""),("a","")])"#, "duplicate environment variable"),
        (br#"Derive([("out","/nix/store/c10phl1g6ngpfsixg94lzkl2ya16xwhk-a","r:sha256","impure")],[],[],"","",[],[])"#, "impure output"),
        (br#"Derive([],[],[],"","",["a" "b"],[])"#, "',' or ']'"),
    ];
    for (input, message) in cases {
        let error = Derivation::parse(&store_dir, input).unwrap_err().to_string();
        assert!(error.contains(message), "{}: got '{error}', wanted '{message}'", String::from_utf8_lossy(input));
    }
}

// ---------------------------------------------------------------------------
// Property: print → parse → print is the identity on derivations we can print.

fn store_path_strategy(suffix: &'static str) -> impl Strategy<Value = StorePath> {
    ("[0-9a-df-np-sv-z]{32}", "[a-zA-Z0-9+_?=][a-zA-Z0-9+._?=-]{0,19}")
        .prop_map(move |(hash, name)| StorePath::from_base_name(&format!("{hash}-{name}{suffix}")).unwrap())
}

fn output_name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9+._?=-]{1,10}"
}

fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn method_strategy() -> impl Strategy<Value = FileIngestionMethod> {
    prop_oneof![Just(FileIngestionMethod::Flat), Just(FileIngestionMethod::Recursive)]
}

fn algorithm_strategy() -> impl Strategy<Value = HashAlgorithm> {
    prop::sample::select(HashAlgorithm::ALL.to_vec())
}

fn output_strategy() -> impl Strategy<Value = DerivationOutput> {
    prop_oneof![
        store_path_strategy("").prop_map(DerivationOutput::InputAddressed),
        (method_strategy(), algorithm_strategy(), prop::collection::vec(any::<u8>(), 64), store_path_strategy(""))
            .prop_map(|(method, algorithm, digest, path)| DerivationOutput::Fixed {
                method,
                hash: Hash::from_digest(algorithm, &digest[..algorithm.size()]).unwrap(),
                path,
            }),
        (method_strategy(), algorithm_strategy())
            .prop_map(|(method, algorithm)| DerivationOutput::Floating { method, algorithm }),
        Just(DerivationOutput::Deferred),
        (method_strategy(), algorithm_strategy())
            .prop_map(|(method, algorithm)| DerivationOutput::Impure { method, algorithm }),
    ]
}

fn derivation_strategy() -> impl Strategy<Value = Derivation> {
    (
        prop::collection::btree_map(output_name_strategy(), output_strategy(), 0..4),
        prop::collection::btree_map(
            store_path_strategy(".drv"),
            prop::collection::btree_set(output_name_strategy(), 0..3),
            0..4,
        ),
        prop::collection::btree_set(store_path_strategy(""), 0..4),
        // The platform is written unescaped (as CppNix does), so only platforms
        // without quotes and backslashes read back.
        prop::collection::vec(any::<u8>().prop_filter("no quote", |b| *b != b'"' && *b != b'\\'), 0..20),
        bytes_strategy(),
        prop::collection::vec(bytes_strategy(), 0..4),
        prop::collection::btree_map(bytes_strategy(), bytes_strategy(), 0..6),
    )
        .prop_map(|(outputs, input_derivations, input_sources, platform, builder, args, env)| Derivation {
            outputs,
            input_derivations,
            input_sources,
            platform,
            builder,
            args,
            env,
        })
}

proptest! {
    #[test]
    fn print_parse_print_is_identity(drv in derivation_strategy()) {
        let store_dir = StoreDir::default();
        let printed = drv.to_aterm(&store_dir);
        let parsed = Derivation::parse(&store_dir, &printed).unwrap();
        prop_assert_eq!(&parsed, &drv);
        prop_assert_eq!(parsed.to_aterm(&store_dir), printed);
    }

    #[test]
    fn parse_never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
        let store_dir = StoreDir::default();
        let mut bytes = b"Derive(".to_vec();
        bytes.extend_from_slice(&input);
        let _ = Derivation::parse(&store_dir, &bytes);
    }
}

#[test]
fn hash_modulo_of_a_deep_chain_reads_each_derivation_once() {
    // Deep enough that a recursive walk would be at risk; the cache walks iteratively.
    let store_dir = StoreDir::default();
    let mut drvs: BTreeMap<StorePath, Derivation> = BTreeMap::new();
    let mut building_cache = DrvHashCache::new();
    let mut previous: Option<StorePath> = None;
    for i in 0..3000 {
        let mut drv =
            Derivation { platform: b"x86_64-linux".to_vec(), builder: b"/bin/sh".to_vec(), ..Default::default() };
        drv.outputs.insert("out".into(), DerivationOutput::Deferred);
        if let Some(prev) = &previous {
            drv.input_derivations.insert(prev.clone(), BTreeSet::from(["out".to_string()]));
        }
        let name = format!("chain-{i}");
        drv.fill_output_paths::<DerivationError>(&store_dir, &name, |input| {
            Ok(building_cache.get(input).expect("inputs are hashed before use").clone())
        })
        .unwrap();
        let path = drv.drv_path(&store_dir, &name).unwrap();
        let hash = drv
            .hash_modulo::<DerivationError>(&store_dir, false, |input| Ok(building_cache.get(input).unwrap().clone()))
            .unwrap();
        building_cache.insert(path.clone(), hash);
        drvs.insert(path.clone(), drv);
        previous = Some(path);
    }
    let top = previous.unwrap();
    let mut reads = 0;
    let mut cache = DrvHashCache::new();
    let hash = cache
        .hash_of::<DerivationError>(&store_dir, &top, &mut |p: &StorePath| {
            reads += 1;
            Ok(drvs[p].clone())
        })
        .unwrap();
    assert_eq!(reads, drvs.len(), "each derivation read exactly once");
    assert_eq!(Some(&hash), building_cache.get(&top));
}
