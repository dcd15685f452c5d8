//! narinfo files and their signatures, against binary caches written by CppNix
//! 2.8 (`nix copy --to file://…`, uncompressed and xz, signed with a key CppNix
//! generated). Kept as golden files in `golden/narinfo/`, with the key pair.

mod peer;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use nivis_formats::{
    ContentAddress, FileIngestionMethod, Hash, HashAlgorithm, Keyring, NarInfo, NarInfoError, PublicKey, SecretKey,
    StoreDir, StorePath,
};
use peer::{PeerStore, accepting, golden_dir};
use proptest::prelude::*;

/// Builds a small store with CppNix (text files with references, a source tree,
/// a built path with a deriver, a `.drv`) and copies it to three caches.
/// Returns the store and, per cache, its narinfo files.
/// (file name, contents) of each narinfo in a cache.
type CacheFiles = Vec<(String, String)>;

fn make_caches() -> (PeerStore, Vec<(String, CacheFiles)>) {
    let store = PeerStore::new();
    let root = store.root();
    run_in(root, "nix-store", &["--generate-binary-cache-key", "nivis-test-1", "secret.key", "public.key"]);
    store.write("tree/a", b"hello\n");
    store.write("tree/sub/b", b"x");
    std::os::unix::fs::symlink("a", root.join("tree/link")).unwrap();
    store.write(
        "e.nix",
        br#"rec {
  a = builtins.toFile "a.txt" "hello";
  b = builtins.toFile "b.txt" "refers to ${a} and ${./tree}";
  built = derivation {
    name = "built"; system = "x86_64-linux"; builder = "/bin/sh";
    args = [ "-c" "echo ${b} > $out" ];
  };
}"#,
    );
    let drv = store.run("nix-instantiate", &["e.nix", "-A", "built"]).trim().to_string();
    // A chroot store builds in a sandbox; give it the host's /bin/sh.
    let built = store.run("nix-store", &["--option", "sandbox-paths", "/bin /lib /lib64 /usr", "-r", &drv]);
    let built = built.trim().to_string();
    let tree = store.run("nix-store", &["--add", "./tree"]).trim().to_string();
    let uri = store.uri();
    let caches = [
        ("plain", "compression=none".to_string()),
        ("xz-signed", format!("compression=xz&secret-key={}/secret.key", root.display())),
        ("signed", format!("compression=none&secret-key={}/secret.key", root.display())),
    ];
    let mut out = Vec::new();
    for (cache_name, params) in caches {
        let to = format!("file://{}/{cache_name}?{params}", root.display());
        run_in(root, "nix", &["copy", "--from", &uri, "--to", &to, &built, &tree]);
        run_in(root, "nix", &["copy", "--derivation", "--from", &uri, "--to", &to, &drv]);
        let mut files = Vec::new();
        for entry in fs::read_dir(root.join(cache_name)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "narinfo") {
                let name = path.file_name().unwrap().to_str().unwrap().to_string();
                files.push((name, fs::read_to_string(&path).unwrap()));
            }
        }
        files.sort();
        out.push((cache_name.to_string(), files));
    }
    (store, out)
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> String {
    peer::run_cppnix(program, args, dir)
}

/// Parses, prints and checks the signatures of one narinfo. With the key pair
/// that signed it: the signature verifies, and signing again gives CppNix's bytes.
fn check_narinfo(name: &str, text: &str, keys: Option<(&SecretKey, &PublicKey)>) -> NarInfo {
    let store_dir = StoreDir::default();
    let info = NarInfo::parse(&store_dir, text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    assert_eq!(info.to_text(&store_dir), text, "{name} does not print back identically");
    assert_eq!(format!("{}.narinfo", info.store_path.hash_part()), name);
    if let Some((secret, public)) = keys {
        assert_eq!(info.signatures.len(), 1, "{name} is signed once");
        let mut keyring = Keyring::new();
        keyring.add(public.clone());
        let fingerprint = info.fingerprint(&store_dir).unwrap();
        assert_eq!(keyring.count_valid(fingerprint.as_bytes(), &info.signatures), 1, "{name}: signature verifies");
        let mut resigned = info.clone();
        resigned.signatures.clear();
        resigned.sign(&store_dir, secret).unwrap();
        assert_eq!(resigned.signatures, info.signatures, "{name}: our signature is CppNix's");
        // A different key's signature is not trusted.
        let other = SecretKey::from_seed("nivis-test-1", &[7; 32]).to_public_key();
        let mut wrong = Keyring::new();
        wrong.add(other);
        assert_eq!(wrong.count_valid(fingerprint.as_bytes(), &info.signatures), 0);
    } else {
        assert!(info.signatures.is_empty());
    }
    info
}

fn check_cache(cache_name: &str, files: &[(String, String)], secret: &SecretKey, public: &PublicKey) {
    let keys = cache_name.contains("signed").then_some((secret, public));
    let mut seen = BTreeSet::new();
    for (name, text) in files {
        let info = check_narinfo(name, text, keys);
        seen.insert(info.store_path.name().to_string());
        if cache_name.starts_with("xz") {
            assert_eq!(info.compression, "xz");
            assert!(info.url.ends_with(".nar.xz"));
        } else {
            assert_eq!(info.compression, "none");
            assert_eq!(Some(info.nar_hash), info.file_hash, "uncompressed: the file is the NAR");
        }
        // Text and source paths are content-addressed: trusted without a signature.
        let trusted_anyway = info.is_content_addressed(&StoreDir::default());
        assert_eq!(trusted_anyway, info.ca.is_some(), "{name}: CA field names the path");
    }
    for expected in ["a.txt", "b.txt", "tree", "built", "built.drv"] {
        assert!(seen.contains(expected), "{cache_name} lacks {expected}: {seen:?}");
    }
}

#[test]
fn cppnix_caches_round_trip_and_signatures_match() {
    let (store, caches) = make_caches();
    let secret = SecretKey::parse(&fs::read_to_string(store.root().join("secret.key")).unwrap()).unwrap();
    let public = PublicKey::parse(&fs::read_to_string(store.root().join("public.key")).unwrap()).unwrap();
    assert_eq!(secret.to_public_key(), public);
    assert_eq!(public.to_string(), fs::read_to_string(store.root().join("public.key")).unwrap());
    assert_eq!(secret.to_string(), fs::read_to_string(store.root().join("secret.key")).unwrap());
    for (cache_name, files) in &caches {
        check_cache(cache_name, files, &secret, &public);
    }
    if accepting() {
        let dir = golden_dir("narinfo");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::copy(store.root().join("secret.key"), dir.join("secret.key")).unwrap();
        fs::copy(store.root().join("public.key"), dir.join("public.key")).unwrap();
        for (cache_name, files) in &caches {
            fs::create_dir_all(dir.join(cache_name)).unwrap();
            for (name, text) in files {
                fs::write(dir.join(cache_name).join(name), text).unwrap();
            }
        }
    }
}

#[test]
fn golden_narinfos_round_trip() {
    if accepting() {
        return; // the CppNix test is rewriting these files right now and checks the same bytes
    }
    let dir = golden_dir("narinfo");
    let secret = SecretKey::parse(&fs::read_to_string(dir.join("secret.key")).unwrap()).unwrap();
    let public = PublicKey::parse(&fs::read_to_string(dir.join("public.key")).unwrap()).unwrap();
    let mut caches = 0;
    for cache_name in ["plain", "xz-signed", "signed"] {
        let mut files = Vec::new();
        for entry in fs::read_dir(dir.join(cache_name)).unwrap() {
            let path = entry.unwrap().path();
            files.push((path.file_name().unwrap().to_str().unwrap().to_string(), fs::read_to_string(&path).unwrap()));
        }
        check_cache(cache_name, &files, &secret, &public);
        caches += 1;
    }
    assert_eq!(caches, 3);
}

const SAMPLE: &str = "StorePath: /nix/store/wzflyq5q9kjg4p27yck2nnispnblxsnh-a.txt
URL: nar/0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa.nar
Compression: none
FileHash: sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa
FileSize: 120
NarHash: sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa
NarSize: 120
References: 
CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic
";

/// Variants of a narinfo, each checked against CppNix 2.8's own reader
/// (`nix path-info --store file://…`): we accept exactly what it accepts.
#[test]
fn tolerance_matches_cppnix() {
    let variants: Vec<(&str, String)> =
        vec![
        ("as written", SAMPLE.to_string()),
        ("plus sign", SAMPLE.replace("NarSize: 120", "NarSize: +120")),
        ("two spaces", SAMPLE.replace("NarSize: 120", "NarSize:  120")),
        ("trailing space", SAMPLE.replace("NarSize: 120", "NarSize: 120 ")),
        ("tab separator", SAMPLE.replace("NarSize: 120", "NarSize:\t120")),
        ("hex size", SAMPLE.replace("NarSize: 120", "NarSize: 0x78")),
        ("zero size", SAMPLE.replace("NarSize: 120", "NarSize: 0")),
        ("no size", SAMPLE.replace("NarSize: 120\n", "")),
        ("empty compression", SAMPLE.replace("Compression: none", "Compression: ")),
        ("no compression", SAMPLE.replace("Compression: none\n", "")),
        ("unknown key", format!("{SAMPLE}Foo: bar\n")),
        ("no final newline", SAMPLE.trim_end().to_string()),
        ("no URL", SAMPLE.replace("URL: nar/0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa.nar\n", "")),
        ("empty CA", SAMPLE.replace("CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic", "CA: ")),
        ("CA twice", format!("{SAMPLE}CA: text:sha256:094qif9n4cq4fdg459qzbhg1c6wywawwaaivx0k0x8xhbyx4vwic\n")),
        ("unknown deriver", format!("{SAMPLE}Deriver: unknown-deriver\n")),
        ("bad deriver", format!("{SAMPLE}Deriver: nonsense\n")),
        ("unprefixed hash", SAMPLE.replace("NarHash: sha256:", "NarHash: ")),
        ("SRI hash", SAMPLE.replace(
            "NarHash: sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa",
            "NarHash: sha256-CkMIecJm+LV/QJKg+TXPP6zUi7zN5XYNR0jKQFFx6Wk=",
        )),
        ("base16 hash", SAMPLE.replace(
            "NarHash: sha256:0sg9f58l1jj88w6pdrfdpj5x9b1zrwszk84j81zvby36q9whhhqa",
            "NarHash: sha256:0a430879c266f8b57f4092a0f935cf3facd48bbccde5760d474a4a4051716969",
        )),
        ("references with spaces", SAMPLE.replace(
            "References: ",
            "References:  a7y268qamgwvln5sr0cdl4c3156q6jy7-tree  wzflyq5q9kjg4p27yck2nnispnblxsnh-a.txt ",
        )),
        ("References twice", SAMPLE.replace(
            "References: ",
            "References: a7y268qamgwvln5sr0cdl4c3156q6jy7-tree\nReferences: a7y268qamgwvln5sr0cdl4c3156q6jy7-tree",
        )),
        ("no colon", format!("{SAMPLE}garbage\n")),
        ("key only", format!("{SAMPLE}System:\n")),
        ("System", format!("{SAMPLE}System: x86_64-linux\n")),
        ("two sigs, repeated", format!("{SAMPLE}Sig: b:xyz\nSig: a:abc\nSig: b:xyz\n")),
    ];
    let store = PeerStore::new();
    let store_dir = StoreDir::default();
    let cache = store.root().join("cache");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    for (what, text) in &variants {
        fs::write(cache.join("wzflyq5q9kjg4p27yck2nnispnblxsnh.narinfo"), text).unwrap();
        let output = std::process::Command::new("/usr/bin/nix")
            .args(["path-info", "--json", "--store", &format!("file://{}", cache.display())])
            .arg("/nix/store/wzflyq5q9kjg4p27yck2nnispnblxsnh-a.txt")
            .env("NIX_CONFIG", "experimental-features = nix-command")
            .env("XDG_CACHE_HOME", store.root().join(".cache"))
            .output()
            .unwrap();
        let cppnix_accepts = output.status.success();
        let ours = NarInfo::parse(&store_dir, text);
        assert_eq!(
            ours.is_ok(),
            cppnix_accepts,
            "{what}: ours {ours:?}, CppNix {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if let Ok(info) = ours {
            let json = String::from_utf8(output.stdout).unwrap();
            assert!(json.contains(&format!("\"narSize\":{}", info.nar_size)), "{what}: {json}");
            assert!(json.contains(&format!("\"narHash\":\"{}\"", info.nar_hash.to_sri())), "{what}: {json}");
            // Printing normalises; the normal form reads back to the same value.
            let reparsed = NarInfo::parse(&store_dir, &info.to_text(&store_dir)).unwrap();
            assert_eq!(reparsed, info);
        }
    }
}

#[test]
fn missing_fields_are_typed_errors() {
    let store_dir = StoreDir::default();
    let without =
        |key: &str| -> String { SAMPLE.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect() };
    assert_eq!(NarInfo::parse(&store_dir, &without("StorePath")), Err(NarInfoError::MissingField("StorePath")));
    assert_eq!(NarInfo::parse(&store_dir, &without("NarHash")), Err(NarInfoError::MissingField("NarHash")));
    assert_eq!(NarInfo::parse(&store_dir, &without("URL")), Err(NarInfoError::MissingField("URL")));
    assert_eq!(NarInfo::parse(&store_dir, &without("NarSize")), Err(NarInfoError::ZeroNarSize));
    assert!(matches!(
        NarInfo::parse(&store_dir, &SAMPLE.replace("NarSize: 120", "NarSize: x")),
        Err(NarInfoError::Corrupt { reason: "invalid NarSize", line: 7 })
    ));
    // Every prefix fails cleanly or parses; none panics.
    for end in 0..SAMPLE.len() {
        let _ = NarInfo::parse(&store_dir, &SAMPLE[..end]);
    }
    let info = NarInfo::parse(&store_dir, &without("Compression")).unwrap();
    assert_eq!(info.compression, "bzip2");
}

#[test]
fn content_addresses_parse_and_print() {
    let hash = Hash::of_bytes(HashAlgorithm::Sha256, b"x");
    let text = format!("fixed:r:sha256:{}", hash.to_nix32());
    assert_eq!(ContentAddress::parse(&text).unwrap(), ContentAddress::Fixed(FileIngestionMethod::Recursive, hash));
    assert_eq!(ContentAddress::parse(&text).unwrap().to_string(), text);
    // Base16 on input, nix32 on output, as CppNix renders it.
    let from_base16 = ContentAddress::parse(&format!("text:sha256:{}", hash.to_base16())).unwrap();
    assert_eq!(from_base16.to_string(), format!("text:sha256:{}", hash.to_nix32()));
    assert!(
        ContentAddress::parse(&format!("text:sha1:{}", Hash::of_bytes(HashAlgorithm::Sha1, b"x").to_nix32())).is_err()
    );
    assert!(ContentAddress::parse("source:sha256:abc").is_err());
    assert_eq!(ContentAddress::parse_opt("").unwrap(), None);
}

fn store_path_strategy() -> impl Strategy<Value = StorePath> {
    ("[0-9a-df-np-sv-z]{32}", "[a-zA-Z0-9+_?=][a-zA-Z0-9+._?=-]{0,19}")
        .prop_map(|(hash, name)| StorePath::from_base_name(&format!("{hash}-{name}")).unwrap())
}

fn sha256_strategy() -> impl Strategy<Value = Hash> {
    prop::collection::vec(any::<u8>(), 32).prop_map(|d| Hash::from_digest(HashAlgorithm::Sha256, &d).unwrap())
}

/// Values without newlines (a value cannot hold one) and not starting with a
/// space (CppNix's reader skips exactly one byte after the colon, so a leading
/// space would survive, which is fine, but a leading newline would not).
fn value_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/._:+=-][a-zA-Z0-9 /._:+=-]{0,30}"
}

fn narinfo_strategy() -> impl Strategy<Value = NarInfo> {
    (
        store_path_strategy(),
        value_strategy(),
        value_strategy(),
        prop::option::of(sha256_strategy()),
        any::<u64>(),
        sha256_strategy(),
        1..u64::MAX,
        prop::collection::btree_set(store_path_strategy(), 0..5),
        prop::option::of(store_path_strategy()),
        prop::option::of(value_strategy()),
        prop::collection::btree_set(value_strategy(), 0..3),
        prop::option::of((sha256_strategy(), any::<bool>())),
    )
        .prop_map(
            |(
                store_path,
                url,
                compression,
                file_hash,
                file_size,
                nar_hash,
                nar_size,
                references,
                deriver,
                system,
                signatures,
                ca,
            )| {
                NarInfo {
                    store_path,
                    url,
                    compression,
                    file_hash,
                    file_size,
                    nar_hash,
                    nar_size,
                    references,
                    deriver,
                    system: system.unwrap_or_default(),
                    signatures,
                    ca: ca.map(|(hash, text)| {
                        if text {
                            ContentAddress::Text(hash)
                        } else {
                            ContentAddress::Fixed(FileIngestionMethod::Flat, hash)
                        }
                    }),
                }
            },
        )
}

proptest! {
    #[test]
    fn narinfo_print_parse_print_is_identity(info in narinfo_strategy()) {
        let store_dir = StoreDir::default();
        let text = info.to_text(&store_dir);
        let parsed = NarInfo::parse(&store_dir, &text).unwrap();
        prop_assert_eq!(&parsed, &info);
        prop_assert_eq!(parsed.to_text(&store_dir), text);
    }

    #[test]
    fn narinfo_parse_never_panics(text in "(([A-Za-z]{0,10}):.{0,40}\n?){0,8}") {
        let _ = NarInfo::parse(&StoreDir::default(), &text);
    }
}
