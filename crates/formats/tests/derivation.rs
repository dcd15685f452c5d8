//! ATerm `.drv` files and `hashDerivationModulo`, against CppNix 2.8: every
//! derivation CppNix instantiates from `golden/drv/*.nix` must read back and print
//! byte-identically, and nivis must compute the same `.drv` paths and output
//! paths from scratch. The `.drv` files are kept as golden files.

mod peer;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use nivis_formats::derivation::{downstream_placeholder, hash_placeholder};
use nivis_formats::{
    Derivation, DerivationError, DerivationOutput, DrvHashCache, DrvHashModulo, FileIngestionMethod, Hash, HashAlgorithm,
    StoreDir, StorePath,
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

        // The one-pass route derivationStrict takes: the same derivation, the
        // very bytes CppNix wrote, its path, and the hash modulo the cache
        // computes by reading the file back.
        let mut fresh = as_fresh(&drv);
        let mut aterm = b"left over from an earlier derivation".to_vec();
        let (drv_path, hash_modulo) = fresh
            .instantiate::<DerivationError>(&store_dir, name, |input| cache.hash_of(&store_dir, input, &mut read), &mut aterm)
            .unwrap();
        assert_eq!(fresh, drv, "instantiate: output paths of {base_name}");
        assert_eq!(aterm, *contents, "instantiate: .drv text of {base_name}");
        assert_eq!(drv_path.base_name(), base_name);
        let read_back = cache.hash_of(&store_dir, &drv_path, &mut read).unwrap();
        assert_eq!(hash_modulo, read_back, "instantiate: hash modulo of {base_name}");
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

    /// `instantiate` (fill, print, name and hash in one pass) agrees with the
    /// separate steps, errors included. Input hashes come from a pool of one
    /// or two, so inputs often share a hash (CppNix merges those).
    #[test]
    fn instantiate_agrees_with_the_separate_steps(
        drv in derivation_strategy(),
        pool in prop::collection::vec(any::<[u8; 32]>(), 1..3),
    ) {
        let store_dir = StoreDir::default();
        let input_hash = |path: &StorePath| -> Result<DrvHashModulo, DerivationError> {
            let pick = path.hash_part().as_bytes()[0] as usize;
            let hash = Hash::from_digest(HashAlgorithm::Sha256, &pool[pick % pool.len()]).unwrap();
            if pick % 3 == 0 {
                // A fixed-output input: one hash per output it has.
                let names = &drv.input_derivations[path];
                Ok(DrvHashModulo::Outputs(names.iter().map(|name| (name.clone(), hash)).collect()))
            } else {
                Ok(DrvHashModulo::Drv { hash, deferred: pick % 7 == 0 })
            }
        };
        let mut separate = drv.clone();
        let expected = separate.fill_output_paths(&store_dir, "name", input_hash).and_then(|()| {
            let drv_path = separate.drv_path(&store_dir, "name")?;
            Ok((drv_path, separate.hash_modulo(&store_dir, false, input_hash)?))
        });
        let mut one_pass = drv.clone();
        let mut aterm = Vec::new();
        let actual = one_pass.instantiate(&store_dir, "name", input_hash, &mut aterm);
        prop_assert_eq!(&actual, &expected);
        if expected.is_ok() {
            prop_assert_eq!(&one_pass, &separate);
            prop_assert_eq!(aterm, separate.to_aterm(&store_dir));
        }
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
            Ok(building_cache.get(input).expect("inputs are hashed before use"))
        })
        .unwrap();
        let path = drv.drv_path(&store_dir, &name).unwrap();
        building_cache.insert_derivation(&store_dir, &path, &drv).unwrap();
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
    assert_eq!(Some(hash), building_cache.get(&top));
}

// ---------------------------------------------------------------------------
// Random derivations, instantiated by CppNix: each must round-trip and get the
// same .drv path and output paths from us.

/// xorshift64*, seeded, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A random string as a Nix string literal: escapes, unicode, `$`, quotes.
fn random_nix_string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a", "Z", "0", " ", "\\n", "\\t", "\\r", "\\\"", "\\\\", "\\$", "$", "ü", "☃", "🎉", ",", "(", ")", "[", "]",
        "'",
    ];
    let len = rng.below(12);
    let mut out = String::from("\"");
    for _ in 0..len {
        out.push_str(PIECES[rng.below(PIECES.len())]);
    }
    out.push('"');
    out
}

/// A Nix file defining `count` random derivations, and which of them have an
/// odd platform (CppNix fails on those after writing them).
fn random_cases(seed: u64, count: usize) -> (String, Vec<bool>) {
    let mut rng = Rng(seed | 1);
    let mut nix = String::from("let mk = attrs: derivation ({ builder = \"/bin/sh\"; } // attrs); in rec {\n");
    // (attribute name, output names) of derivations defined so far, for references.
    let mut defined: Vec<(String, Vec<String>)> = Vec::new();
    let mut odd = Vec::new();
    for i in 0..count {
        let attr = format!("d{i}");
        // A random platform may hold a quote, which makes a .drv nobody can read
        // back; nothing refers to such derivations, or it would fail too.
        let odd_platform = rng.below(4) == 0;
        let system = if odd_platform { random_nix_string(&mut rng) } else { "\"x86_64-linux\"".to_string() };
        let mut fields = vec![format!("name = \"r{i}\";"), format!("system = {system};")];
        let mut outputs = vec!["out".to_string()];
        let fixed = rng.below(4) == 0;
        if fixed {
            let algo = *rng.pick(&["md5", "sha1", "sha256", "sha512"]);
            let len = match algo {
                "md5" => 32,
                "sha1" => 40,
                "sha256" => 64,
                _ => 128,
            };
            let hex: String = (0..len).map(|_| *rng.pick(&['0', '1', '7', 'a', 'f'])).collect();
            let mode = *rng.pick(&["flat", "recursive"]);
            fields.push(format!("outputHashAlgo = \"{algo}\"; outputHash = \"{hex}\"; outputHashMode = \"{mode}\";"));
        } else if rng.below(2) == 0 {
            outputs = ["out", "dev", "bin", "lib", "doc", "x-1", "a.b"]
                .iter()
                .filter(|_| rng.below(2) == 0)
                .map(|s| s.to_string())
                .collect();
            if outputs.is_empty() {
                outputs.push("out".into());
            }
            let quoted: Vec<String> = outputs.iter().map(|o| format!("\"{o}\"")).collect();
            fields.push(format!("outputs = [ {} ];", quoted.join(" ")));
        }
        for v in 0..rng.below(4) {
            fields.push(format!("v{v} = {};", random_nix_string(&mut rng)));
        }
        let args: Vec<String> = (0..rng.below(3)).map(|_| random_nix_string(&mut rng)).collect();
        fields.push(format!("args = [ {} ];", args.join(" ")));
        if !defined.is_empty() {
            for r in 0..rng.below(4) {
                let (dep, dep_outputs) = defined[rng.below(defined.len())].clone();
                let output = rng.pick(&dep_outputs).clone();
                fields.push(format!("ref{r} = \"x ${{{dep}.\"{output}\"}} y\";"));
            }
        }
        if rng.below(5) == 0 {
            fields.push(format!("src = builtins.toFile \"f{i}\" {};", random_nix_string(&mut rng)));
        }
        nix.push_str(&format!("  {attr} = mk {{ {} }};\n", fields.join(" ")));
        if !odd_platform {
            defined.push((attr, outputs));
        }
        odd.push(odd_platform);
    }
    nix.push_str("}\n");
    (nix, odd)
}

#[test]
fn random_derivations_match_cppnix() {
    let store_dir = StoreDir::default();
    for seed in [1u64, 2, 3] {
        let store = PeerStore::new();
        let (nix, odd) = random_cases(seed, 40);
        store.write("random.nix", nix.as_bytes());
        let attrs: Vec<String> = (0..odd.len()).map(|i| format!("d{i}")).collect();
        let mut args = vec!["random.nix"];
        for (attr, _) in attrs.iter().zip(&odd).filter(|(_, odd)| !**odd) {
            args.extend(["-A", attr.as_str()]);
        }
        store.run("nix-instantiate", &args);
        // CppNix writes a .drv with an odd platform, then fails to read it back.
        for (attr, _) in attrs.iter().zip(&odd).filter(|(_, odd)| **odd) {
            let _ = std::process::Command::new("/usr/bin/nix-instantiate")
                .args(["--store", &store.uri(), "random.nix", "-A", attr])
                .current_dir(store.root())
                .output()
                .unwrap();
        }
        let drvs = store.derivations();
        assert!(drvs.len() >= 20, "seed {seed}: only {} derivations\n{nix}", drvs.len());
        let mut cache = DrvHashCache::new();
        let mut read = |path: &StorePath| -> Result<Derivation, DerivationError> {
            Derivation::parse(&store_dir, &fs::read(store.real_path(path.base_name())).unwrap())
        };
        let mut checked = 0;
        for (base_name, contents) in &drvs {
            let Ok(drv) = Derivation::parse(&store_dir, contents) else {
                // CppNix must fail to read it too (a platform with a quote).
                let path = format!("/nix/store/{base_name}");
                let cppnix = std::process::Command::new("/usr/bin/nix")
                    .args(["show-derivation", "--store", &store.uri(), &path])
                    .env("NIX_CONFIG", "experimental-features = nix-command")
                    .output()
                    .unwrap();
                assert!(!cppnix.status.success(), "CppNix reads {base_name}, we do not");
                continue;
            };
            let printed = drv.to_aterm(&store_dir);
            if printed != *contents {
                // Only an unescaped platform may change on a round trip.
                assert!(drv.platform.iter().any(|&b| b == b'\\' || b == b'"'), "{base_name} changed");
                continue;
            }
            let name = drv_name(base_name);
            assert_eq!(drv.drv_path(&store_dir, name).unwrap().base_name(), base_name);
            let mut fresh = as_fresh(&drv);
            fresh
                .fill_output_paths::<DerivationError>(&store_dir, name, |input| {
                    cache.hash_of(&store_dir, input, &mut read)
                })
                .unwrap();
            assert_eq!(fresh, drv, "seed {seed}: output paths of {base_name}");
            checked += 1;
        }
        assert!(checked >= 20, "seed {seed}: only {checked} checked");
    }
}

#[test]
fn mixed_output_kinds_are_refused_as_cppnix_does() {
    let store_dir = StoreDir::default();
    let fixed = DerivationOutput::Fixed {
        method: FileIngestionMethod::Flat,
        hash: Hash::of_bytes(HashAlgorithm::Sha256, b""),
        path: StorePath::from_base_name("00000000000000000000000000000000-x").unwrap(),
    };
    let floating = |algorithm| DerivationOutput::Floating { method: FileIngestionMethod::Recursive, algorithm };
    let cases: Vec<(Vec<(&str, DerivationOutput)>, &str)> = vec![
        (vec![], "no outputs"),
        (vec![("out", fixed.clone()), ("dev", DerivationOutput::Deferred)], "can't mix"),
        (vec![("out", fixed.clone()), ("dev", fixed.clone())], "only one fixed output"),
        (vec![("dev", fixed.clone())], "must be named \"out\""),
        (vec![("out", floating(HashAlgorithm::Sha256)), ("dev", floating(HashAlgorithm::Sha1))], "same hash type"),
        (vec![("out", DerivationOutput::Deferred), ("dev", floating(HashAlgorithm::Sha256))], "can't mix"),
    ];
    for (outputs, message) in cases {
        let drv = Derivation {
            outputs: outputs.into_iter().map(|(n, o)| (n.to_string(), o)).collect(),
            ..Derivation::default()
        };
        let error = drv.hash_modulo::<DerivationError>(&store_dir, false, |_| unreachable!()).unwrap_err();
        assert!(error.to_string().contains(message), "got '{error}', wanted '{message}'");
        let error = drv.clone().fill_output_paths::<DerivationError>(&store_dir, "x", |_| unreachable!()).unwrap_err();
        assert!(error.to_string().contains(message), "fill: got '{error}', wanted '{message}'");
    }
}
