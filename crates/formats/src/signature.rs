//! ed25519 signing keys and signatures in CppNix's text forms, and the
//! fingerprint of a store path that binary caches sign.
//!
//! Key files are `<name>:<base64 key>`: a secret key is libsodium's 64 bytes
//! (32-byte seed followed by the 32-byte public key), a public key the 32 bytes.
//! A signature is `<key name>:<base64 of the 64-byte ed25519 signature>`. What is
//! signed is [`fingerprint`]: `1;<store path>;<nar hash>;<nar size>;<references>`.
//!
//! Base64 is decoded as CppNix decodes it: decoding stops at the first `=`,
//! newlines are skipped and leftover bits are ignored, so a key file with a
//! trailing newline loads. Everything else is strict: a key whose public half
//! does not belong to its seed is refused rather than used to make signatures
//! nobody can verify.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::hash::Hash;
use crate::store_path::{StoreDir, StorePath, StorePathSet};

/// Bytes in a libsodium secret key (seed and public key).
pub const SECRET_KEY_BYTES: usize = 64;
/// Bytes in a public key.
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes in a detached signature.
pub const SIGNATURE_BYTES: usize = 64;

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No `name:` prefix, an empty name or an empty key (CppNix's wording).
    #[error("{kind} is corrupt")]
    Corrupt { kind: &'static str },
    #[error("invalid character in Base64 string: '{0}'")]
    InvalidBase64(char),
    #[error("{kind} is not valid")]
    WrongLength { kind: &'static str },
    #[error("secret key '{0}' is inconsistent: its public half does not belong to its seed")]
    InconsistentSecretKey(String),
    #[error("public key '{0}' is not a valid ed25519 point")]
    InvalidPublicKey(String),
    #[error("cannot compute the fingerprint of '{0}' because its NAR size is not known")]
    UnknownNarSize(String),
}

/// Splits `name:value` at the first colon; CppNix treats a missing colon or an
/// empty name as no name at all.
fn split_name(s: &str) -> Option<(&str, &str)> {
    match s.split_once(':') {
        Some((name, value)) if !name.is_empty() => Some((name, value)),
        _ => None,
    }
}

/// Decodes base64 the way CppNix's `base64Decode` does: stop at the first `=`,
/// skip newlines, ignore bits that do not fill a byte.
pub fn base64_decode_lenient(s: &str) -> Result<Vec<u8>, SignatureError> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut accumulator: u32 = 0;
    let mut bits: u32 = 0;
    for c in s.chars() {
        let digit = match c {
            '=' => break,
            '\n' => continue,
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' => 62,
            '/' => 63,
            _ => return Err(SignatureError::InvalidBase64(c)),
        };
        accumulator = (accumulator << 6 | digit) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
        }
    }
    Ok(out)
}

fn base64_encode(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

/// Parses `name:base64` into the name and the decoded bytes, which must be
/// `expected_len` long.
fn parse_named_bytes<'a>(
    s: &'a str,
    kind: &'static str,
    expected_len: usize,
) -> Result<(&'a str, Vec<u8>), SignatureError> {
    let (name, encoded) = split_name(s).ok_or(SignatureError::Corrupt { kind })?;
    if encoded.is_empty() {
        return Err(SignatureError::Corrupt { kind });
    }
    let bytes = base64_decode_lenient(encoded)?;
    if bytes.len() != expected_len {
        return Err(SignatureError::WrongLength { kind });
    }
    Ok((name, bytes))
}

/// A named ed25519 secret key, as `nix-store --generate-binary-cache-key` and
/// `nix key generate-secret` write it.
#[derive(Clone)]
pub struct SecretKey {
    name: String,
    signing_key: SigningKey,
}

impl SecretKey {
    /// Parses `name:base64(64 bytes)`. Surrounding whitespace other than newlines
    /// inside the base64 is not accepted, as in CppNix.
    pub fn parse(s: &str) -> Result<SecretKey, SignatureError> {
        let (name, bytes) = parse_named_bytes(s, "secret key", SECRET_KEY_BYTES)?;
        let keypair: [u8; SECRET_KEY_BYTES] = bytes.try_into().expect("length checked");
        let signing_key = SigningKey::from_keypair_bytes(&keypair)
            .map_err(|_| SignatureError::InconsistentSecretKey(name.to_string()))?;
        Ok(SecretKey { name: name.to_string(), signing_key })
    }

    /// The key whose seed is `seed` (32 random bytes for a new key).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> SecretKey {
        SecretKey { name: name.to_string(), signing_key: SigningKey::from_bytes(seed) }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The matching public key, under the same name.
    pub fn to_public_key(&self) -> PublicKey {
        PublicKey { name: self.name.clone(), verifying_key: self.signing_key.verifying_key() }
    }

    /// Signs `data` (for store paths: a [`fingerprint`]).
    pub fn sign(&self, data: &[u8]) -> Signature {
        Signature { key_name: self.name.clone(), bytes: self.signing_key.sign(data).to_bytes() }
    }
}

/// `name:base64(seed ++ public key)`, without a trailing newline.
impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, base64_encode(&self.signing_key.to_keypair_bytes()))
    }
}

/// Never prints the secret.
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.name)
    }
}

/// A named ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    name: String,
    verifying_key: VerifyingKey,
}

impl PublicKey {
    /// Parses `name:base64(32 bytes)`.
    pub fn parse(s: &str) -> Result<PublicKey, SignatureError> {
        let (name, bytes) = parse_named_bytes(s, "public key", PUBLIC_KEY_BYTES)?;
        let key_bytes: [u8; PUBLIC_KEY_BYTES] = bytes.try_into().expect("length checked");
        let verifying_key =
            VerifyingKey::from_bytes(&key_bytes).map_err(|_| SignatureError::InvalidPublicKey(name.to_string()))?;
        Ok(PublicKey { name: name.to_string(), verifying_key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `signature` is this key's signature of `data`. The key names must
    /// agree too.
    pub fn verify(&self, data: &[u8], signature: &Signature) -> bool {
        if signature.key_name != self.name {
            return false;
        }
        let signature = ed25519_dalek::Signature::from_bytes(&signature.bytes);
        // Strict verification, like libsodium: no small-order keys or points.
        self.verifying_key.verify_strict(data, &signature).is_ok()
    }
}

/// `name:base64(32 bytes)`, without a trailing newline.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, base64_encode(self.verifying_key.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// A detached signature together with the name of the key that made it (the
/// value of a narinfo `Sig:` line).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature {
    key_name: String,
    bytes: [u8; SIGNATURE_BYTES],
}

impl Signature {
    /// Parses `name:base64(64 bytes)`.
    pub fn parse(s: &str) -> Result<Signature, SignatureError> {
        let (name, bytes) = parse_named_bytes(s, "signature", SIGNATURE_BYTES)?;
        Ok(Signature { key_name: name.to_string(), bytes: bytes.try_into().expect("length checked") })
    }

    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn bytes(&self) -> &[u8; SIGNATURE_BYTES] {
        &self.bytes
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key_name, base64_encode(&self.bytes))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// What binary caches sign for a store path (CppNix's
/// `ValidPathInfo::fingerprint`): `1;<path>;<nar hash as algo:nix32>;<nar
/// size>;<full reference paths, comma-separated, in store path order>`.
///
/// A NAR size of 0 means "unknown" to CppNix, which refuses to fingerprint it.
pub fn fingerprint(
    store_dir: &StoreDir,
    store_path: &StorePath,
    nar_hash: &Hash,
    nar_size: u64,
    references: &StorePathSet,
) -> Result<String, SignatureError> {
    if nar_size == 0 {
        return Err(SignatureError::UnknownNarSize(store_dir.print_path(store_path)));
    }
    let references: Vec<String> = references.iter().map(|r| store_dir.print_path(r)).collect();
    Ok(format!(
        "1;{};{};{};{}",
        store_dir.print_path(store_path),
        nar_hash.encode(crate::hash::HashEncoding::Nix32, true),
        nar_size,
        references.join(",")
    ))
}

/// A set of trusted public keys by name (the `trusted-public-keys` setting).
/// Later keys with the same name replace earlier ones, as in CppNix's map.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, PublicKey>,
}

impl Keyring {
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Parses a whitespace-separated list of public keys, as the setting holds them.
    pub fn parse_list(s: &str) -> Result<Keyring, SignatureError> {
        let mut keyring = Keyring::new();
        for key in s.split_ascii_whitespace() {
            keyring.add(PublicKey::parse(key)?);
        }
        Ok(keyring)
    }

    pub fn add(&mut self, key: PublicKey) {
        self.keys.insert(key.name.clone(), key);
    }

    pub fn get(&self, name: &str) -> Option<&PublicKey> {
        self.keys.get(name)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks one `name:base64` signature string of `data`. An unknown key name
    /// is simply not valid; a signature of the wrong length is an error, as in
    /// CppNix's `verifyDetached`.
    pub fn verify(&self, data: &[u8], signature: &str) -> Result<bool, SignatureError> {
        let Some((name, encoded)) = split_name(signature) else {
            return Ok(false);
        };
        let Some(key) = self.keys.get(name) else {
            return Ok(false);
        };
        let bytes = base64_decode_lenient(encoded)?;
        let bytes: [u8; SIGNATURE_BYTES] =
            bytes.try_into().map_err(|_| SignatureError::WrongLength { kind: "signature" })?;
        Ok(key.verify(data, &Signature { key_name: name.to_string(), bytes }))
    }

    /// How many of `signatures` are valid signatures of `data` by trusted keys.
    /// Malformed signatures count as invalid here rather than failing the lot.
    pub fn count_valid<'a>(&self, data: &[u8], signatures: impl IntoIterator<Item = &'a String>) -> usize {
        signatures.into_iter().filter(|s| self.verify(data, s).unwrap_or(false)).count()
    }
}
