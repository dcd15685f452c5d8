//! ed25519 keys and signatures in CppNix's text forms, checked against keys made
//! by `nix-store --generate-binary-cache-key` and signatures made by CppNix 2.8
//! (`nix store sign`).

mod peer;

use std::fs;

use nivis_formats::signature::{base64_decode_lenient, fingerprint};
use nivis_formats::{
    Hash, HashAlgorithm, Keyring, PublicKey, SecretKey, Signature, SignatureError, StoreDir, StorePath,
};
use peer::{PeerStore, golden_dir, run_cppnix};

#[test]
fn keys_made_by_cppnix_load_and_print_back() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cache.example.org-1", "a", "name-with:colon"] {
        run_cppnix("nix-store", &["--generate-binary-cache-key", name, "sec", "pub"], dir.path());
        let secret_text = fs::read_to_string(dir.path().join("sec")).unwrap();
        let public_text = fs::read_to_string(dir.path().join("pub")).unwrap();
        let secret = SecretKey::parse(&secret_text);
        if name.contains(':') {
            // CppNix splits at the first colon too, so this key's "name" is `name-with`
            // and the rest is not base64: CppNix writes keys it cannot read.
            assert!(matches!(secret, Err(SignatureError::InvalidBase64(_)) | Err(SignatureError::WrongLength { .. })));
            continue;
        }
        let secret = secret.unwrap();
        assert_eq!(secret.name(), name);
        assert_eq!(secret.to_string(), secret_text);
        let public = PublicKey::parse(&public_text).unwrap();
        assert_eq!(public.to_string(), public_text);
        assert_eq!(secret.to_public_key(), public);
        // Key files often gain a trailing newline; CppNix's base64 skips it.
        assert_eq!(SecretKey::parse(&format!("{secret_text}\n")).unwrap().to_string(), secret_text);
    }
}

#[test]
fn signatures_match_nix_store_sign() {
    // Sign a path with CppNix (`nix store sign --key-file`), then with our code
    // and the same key: identical Sig strings, and each side verifies.
    let store = PeerStore::new();
    let root = store.root();
    run_cppnix("nix-store", &["--generate-binary-cache-key", "signer-1", "sec", "pub"], root);
    store.write("file.txt", b"signed contents\n");
    let path = store.run("nix-store", &["--add", "./file.txt"]).trim().to_string();
    store.run("nix", &["store", "sign", "--key-file", "sec", &path]);
    let info: serde_like::PathInfo = serde_like::parse(&store.run("nix", &["path-info", "--json", "--sigs", &path]));

    let store_dir = StoreDir::default();
    let store_path = store_dir.parse_path(&path).unwrap();
    let nar_hash = Hash::parse_prefixed(&info.nar_hash).unwrap();
    let fingerprint = fingerprint(&store_dir, &store_path, &nar_hash, info.nar_size, &Default::default()).unwrap();
    assert_eq!(
        fingerprint,
        format!("1;{path};{};{};", nar_hash.encode(nivis_formats::HashEncoding::Nix32, true), info.nar_size)
    );
    let secret = SecretKey::parse(&fs::read_to_string(root.join("sec")).unwrap()).unwrap();
    let ours = secret.sign(fingerprint.as_bytes()).to_string();
    assert!(info.signatures.contains(&ours), "ours {ours}, CppNix's {:?}", info.signatures);
    let keyring = Keyring::parse_list(&fs::read_to_string(root.join("pub")).unwrap()).unwrap();
    assert_eq!(keyring.count_valid(fingerprint.as_bytes(), &info.signatures), 1);
    assert!(!keyring.verify(b"something else", &ours).unwrap());
}

#[test]
fn golden_key_pair_signs_deterministically() {
    let dir = golden_dir("narinfo");
    let secret = SecretKey::parse(&fs::read_to_string(dir.join("secret.key")).unwrap()).unwrap();
    let public = PublicKey::parse(&fs::read_to_string(dir.join("public.key")).unwrap()).unwrap();
    let signature = secret.sign(b"data");
    assert_eq!(secret.sign(b"data"), signature, "ed25519 signatures are deterministic");
    assert!(public.verify(b"data", &signature));
    assert!(!public.verify(b"date", &signature));
    let reparsed = Signature::parse(&signature.to_string()).unwrap();
    assert_eq!(reparsed, signature);
    assert_eq!(reparsed.key_name(), secret.name());
}

#[test]
fn malformed_keys_and_signatures_are_typed_errors() {
    let secret = SecretKey::from_seed("k", &[1; 32]);
    let text = secret.to_string();
    let (name, body) = text.split_once(':').unwrap();
    assert_eq!(name, "k");
    assert!(matches!(SecretKey::parse(body), Err(SignatureError::Corrupt { .. })), "no name");
    assert!(matches!(SecretKey::parse(":abc"), Err(SignatureError::Corrupt { .. })), "empty name");
    assert!(matches!(SecretKey::parse("k:"), Err(SignatureError::Corrupt { .. })), "empty key");
    assert!(matches!(SecretKey::parse("k:a*b"), Err(SignatureError::InvalidBase64('*'))));
    assert!(matches!(SecretKey::parse("k:AAAA"), Err(SignatureError::WrongLength { .. })));
    // The public key as a secret key, and the reverse.
    let public_text = secret.to_public_key().to_string();
    assert!(matches!(SecretKey::parse(&public_text), Err(SignatureError::WrongLength { .. })));
    assert!(matches!(PublicKey::parse(&text), Err(SignatureError::WrongLength { .. })));
    // A secret key whose public half belongs to another seed.
    let other = SecretKey::from_seed("k", &[2; 32]).to_public_key().to_string();
    let mut bytes = base64_decode_lenient(body).unwrap();
    bytes[32..].copy_from_slice(&base64_decode_lenient(other.split_once(':').unwrap().1).unwrap());
    let mixed = format!("k:{}", data_encoding::BASE64.encode(&bytes));
    assert!(matches!(SecretKey::parse(&mixed), Err(SignatureError::InconsistentSecretKey(_))));
    // Signatures of the wrong size: an error for the one checked, not counted in a set.
    let keyring = Keyring::parse_list(&public_text).unwrap();
    assert!(keyring.verify(b"x", "k:AAAA").is_err());
    assert!(!keyring.verify(b"x", "unknown:AAAA").unwrap());
    assert_eq!(keyring.count_valid(b"x", &["k:AAAA".to_string(), "nonsense".to_string()]), 0);
}

#[test]
fn lenient_base64_is_cppnix_base64() {
    assert_eq!(base64_decode_lenient("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode_lenient("aGVsbG8").unwrap(), b"hello");
    assert_eq!(base64_decode_lenient("aGVs\nbG8=garbage-after-padding!").unwrap(), b"hello");
    assert_eq!(base64_decode_lenient("").unwrap(), b"");
}

#[test]
fn fingerprint_lists_references_in_store_path_order() {
    let store_dir = StoreDir::default();
    let path = StorePath::from_base_name("wzflyq5q9kjg4p27yck2nnispnblxsnh-a.txt").unwrap();
    let references = ["a7y268qamgwvln5sr0cdl4c3156q6jy7-tree", "4aipxck1dl5ma69vpj252vvwrkmb11d5-b.txt"]
        .iter()
        .map(|b| StorePath::from_base_name(b).unwrap())
        .collect();
    let hash = Hash::of_bytes(HashAlgorithm::Sha256, b"");
    let fp = fingerprint(&store_dir, &path, &hash, 5, &references).unwrap();
    assert_eq!(
        fp,
        format!(
            "1;/nix/store/wzflyq5q9kjg4p27yck2nnispnblxsnh-a.txt;sha256:{};5;/nix/store/4aipxck1dl5ma69vpj252vvwrkmb11d5-b.txt,/nix/store/a7y268qamgwvln5sr0cdl4c3156q6jy7-tree",
            hash.to_nix32()
        )
    );
    assert!(matches!(fingerprint(&store_dir, &path, &hash, 0, &references), Err(SignatureError::UnknownNarSize(_))));
}

/// Just enough JSON reading for `nix path-info --json` (no serde in this crate's
/// dev-dependencies).
mod serde_like {
    pub struct PathInfo {
        pub nar_hash: String,
        pub nar_size: u64,
        pub signatures: Vec<String>,
    }

    fn string_after<'a>(json: &'a str, key: &str) -> &'a str {
        let start = json.find(&format!("\"{key}\":\"")).unwrap_or_else(|| panic!("{key} in {json}")) + key.len() + 4;
        &json[start..start + json[start..].find('"').unwrap()]
    }

    pub fn parse(json: &str) -> PathInfo {
        let nar_hash = string_after(json, "narHash").to_string();
        let size_start = json.find("\"narSize\":").unwrap() + 10;
        let size_end = size_start + json[size_start..].find(|c: char| !c.is_ascii_digit()).unwrap();
        let sigs_start = json.find("\"signatures\":[").unwrap() + 14;
        let sigs_end = sigs_start + json[sigs_start..].find(']').unwrap();
        let signatures = json[sigs_start..sigs_end].split(',').map(|s| s.trim_matches('"').to_string()).collect();
        PathInfo { nar_hash, nar_size: json[size_start..size_end].parse().unwrap(), signatures }
    }
}
