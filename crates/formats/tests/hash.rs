//! Hashes and nix32 against CppNix 2.8: every encoding printed and parsed the way
//! `nix-hash` does, for every algorithm.

mod common;

use common::{Rng, cppnix, cppnix_path};
use nivis_formats::{Hash, HashAlgorithm, HashEncoding, HashError, nixbase32};

#[test]
fn nix32_round_trips_all_lengths() {
    let mut rng = Rng::new(1);
    for len in 0..80 {
        let bytes = rng.bytes(len);
        let encoded = nixbase32::encode(&bytes);
        assert_eq!(encoded.len(), nixbase32::encoded_len(len));
        assert_eq!(nixbase32::decode(encoded.as_bytes()).unwrap(), bytes, "length {len}");
    }
}

#[test]
fn nix32_rejects_bad_characters_and_padding() {
    // 'e', 'o', 'u', 't' are left out of the alphabet.
    for bad in ["e", "o", "u", "t", "E", "-"] {
        let s = format!("{}{}", "0".repeat(51), bad);
        assert!(matches!(nixbase32::decode(s.as_bytes()), Err(nixbase32::Nix32Error::InvalidCharacter(_))), "{s}");
    }
    // 32 bytes use 256 of the 260 bits of 52 digits; the first digit may only hold 0 or 1.
    let mut s = "0".repeat(52);
    s.replace_range(0..1, "2");
    assert_eq!(nixbase32::decode(s.as_bytes()), Err(nixbase32::Nix32Error::NonZeroPadding));
    s.replace_range(0..1, "1");
    assert!(nixbase32::decode(s.as_bytes()).is_ok());
}

#[test]
fn every_encoding_matches_cppnix() {
    let mut rng = Rng::new(2);
    for algorithm in HashAlgorithm::ALL {
        for _ in 0..3 {
            let digest = rng.bytes(algorithm.size());
            let hash = Hash::from_digest(algorithm, &digest).unwrap();
            let hex = hash.to_base16();
            let ty = algorithm.name();
            assert_eq!(hash.to_nix32(), cppnix("nix-hash", &["--type", ty, "--to-base32", &hex]));
            assert_eq!(hash.to_base64(), cppnix("nix", &["hash", "to-base64", "--type", ty, &hex]));
            assert_eq!(hash.to_sri(), cppnix("nix", &["hash", "to-sri", "--type", ty, &hex]));
            assert_eq!(hex, cppnix("nix-hash", &["--type", ty, "--to-base16", &hash.to_nix32()]));

            // Every printed form parses back, prefixed or not.
            for encoding in [HashEncoding::Base16, HashEncoding::Nix32, HashEncoding::Base64, HashEncoding::Sri] {
                let bare = hash.encode(encoding, false);
                let prefixed = hash.encode(encoding, true);
                assert_eq!(Hash::parse_any(&prefixed, None).unwrap(), hash, "{prefixed}");
                assert_eq!(Hash::parse_any(&prefixed, Some(algorithm)).unwrap(), hash, "{prefixed}");
                assert_eq!(Hash::parse_prefixed(&prefixed).unwrap(), hash, "{prefixed}");
                if encoding != HashEncoding::Sri {
                    assert_eq!(Hash::parse_unprefixed(&bare, algorithm).unwrap(), hash, "{bare}");
                    assert_eq!(Hash::parse_any(&bare, Some(algorithm)).unwrap(), hash, "{bare}");
                }
            }
            assert_eq!(Hash::parse_sri(&hash.to_sri()).unwrap(), hash);
            // CppNix accepts upper-case hex.
            assert_eq!(Hash::parse_unprefixed(&hex.to_uppercase(), algorithm).unwrap(), hash);
        }
    }
}

#[test]
fn hashing_bytes_matches_cppnix_flat_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(3);
    for (index, len) in [0usize, 1, 55, 56, 63, 64, 65, 1000, 100_003].into_iter().enumerate() {
        let data = rng.bytes(len);
        let file = dir.path().join(format!("f{index}"));
        std::fs::write(&file, &data).unwrap();
        for algorithm in HashAlgorithm::ALL {
            let ours = Hash::of_bytes(algorithm, &data);
            let theirs = cppnix_path("nix-hash", &["--flat", "--type", algorithm.name()], &file);
            assert_eq!(ours.to_base16(), theirs, "{algorithm} of {len} bytes");
            // Streaming in odd chunk sizes gives the same digest.
            let mut hasher = nivis_formats::Hasher::new(algorithm);
            for chunk in data.chunks(7) {
                hasher.update(chunk);
            }
            assert_eq!(hasher.bytes_hashed(), len as u64);
            assert_eq!(hasher.finish(), ours);
        }
    }
}

#[test]
fn parse_errors_are_typed() {
    let sha = HashAlgorithm::Sha256;
    assert!(matches!(Hash::parse_any("abc", None), Err(HashError::MissingAlgorithm(_))));
    assert!(matches!(Hash::parse_any("sha3:abc", None), Err(HashError::UnknownAlgorithm(_))));
    assert!(matches!(Hash::parse_any("abc", Some(sha)), Err(HashError::WrongLength { .. })));
    assert!(matches!(Hash::parse_any(&format!("md5:{}", "0".repeat(32)), Some(sha)), Err(HashError::AlgorithmMismatch { .. })));
    assert!(matches!(Hash::parse_unprefixed(&"g".repeat(64), sha), Err(HashError::InvalidBase16(_))));
    assert!(matches!(Hash::parse_unprefixed(&"e".repeat(52), sha), Err(HashError::InvalidNix32(_))));
    assert!(matches!(Hash::parse_unprefixed(&"!".repeat(44), sha), Err(HashError::InvalidBase64(_))));
    assert!(matches!(Hash::parse_sri("sha256-AAAA"), Err(HashError::InvalidSri(_))));
    assert!(matches!(Hash::parse_sri("sha256:AAAA"), Err(HashError::NotSri(_))));
    assert!(matches!(Hash::parse_prefixed(&"0".repeat(64)), Err(HashError::NotPrefixed(_))));
}

#[test]
fn compress_hash_is_xor_fold() {
    // From first principles: folding 32 bytes to 20 XORs bytes 20..32 onto 0..12.
    let digest: Vec<u8> = (0u8..32).collect();
    let folded = nivis_formats::compress_hash(&digest, 20);
    for (index, byte) in folded.iter().enumerate() {
        let expected = if index < 12 { index as u8 ^ (index as u8 + 20) } else { index as u8 };
        assert_eq!(*byte, expected);
    }
}
