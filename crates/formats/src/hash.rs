//! Cryptographic hashes as Nix uses them: MD5, SHA-1, SHA-256 and SHA-512, printed
//! and parsed in base16, nix32, base64 and SRI (`sha256-<base64>`) forms, with or
//! without an `algo:` prefix, exactly as CppNix accepts and prints them.
//!
//! A [`Hash`] is a small `Copy` value (the digest lives inline). [`Hasher`] is the
//! streaming form; it implements [`std::io::Write`] so a NAR writer can serialise
//! straight into it.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;
use thiserror::Error;

use crate::nixbase32;

/// The hash algorithms Nix knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl HashAlgorithm {
    /// All algorithms, in CppNix's order.
    pub const ALL: [HashAlgorithm; 4] =
        [HashAlgorithm::Md5, HashAlgorithm::Sha1, HashAlgorithm::Sha256, HashAlgorithm::Sha512];

    /// The name CppNix prints and parses (`md5`, `sha1`, `sha256`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Md5 => "md5",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }

    /// Parses a name as CppNix's `parseHashType` does (exact, lower case).
    pub fn from_name(name: &str) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Digest size in bytes.
    pub fn size(self) -> usize {
        match self {
            HashAlgorithm::Md5 => 16,
            HashAlgorithm::Sha1 => 20,
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Length of the base16 form in characters.
    pub fn base16_len(self) -> usize {
        self.size() * 2
    }

    /// Length of the nix32 form in characters.
    pub fn nix32_len(self) -> usize {
        nixbase32::encoded_len(self.size())
    }

    /// Length of the (padded) base64 form in characters.
    pub fn base64_len(self) -> usize {
        self.size().div_ceil(3) * 4
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Self, HashError> {
        HashAlgorithm::from_name(s).ok_or_else(|| HashError::UnknownAlgorithm(s.to_string()))
    }
}

/// The ways a hash can be written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashEncoding {
    /// Lower-case hexadecimal.
    Base16,
    /// Nix's base-32 ([`crate::nixbase32`]); CppNix calls it "base32".
    Nix32,
    /// RFC 4648 base64 with padding.
    Base64,
    /// Subresource Integrity: `algo-<base64>`, always with the algorithm.
    Sri,
}

impl HashEncoding {
    /// The name used by `nix hash convert --to/--from` (`base16`, `nix32`, `base64`, `sri`).
    pub fn name(self) -> &'static str {
        match self {
            HashEncoding::Base16 => "base16",
            HashEncoding::Nix32 => "nix32",
            HashEncoding::Base64 => "base64",
            HashEncoding::Sri => "sri",
        }
    }

    /// Parses a name as `nix hash convert` does; `base32` is an alias of `nix32`.
    pub fn from_name(name: &str) -> Option<HashEncoding> {
        match name {
            "base16" => Some(HashEncoding::Base16),
            "nix32" | "base32" => Some(HashEncoding::Nix32),
            "base64" => Some(HashEncoding::Base64),
            "sri" => Some(HashEncoding::Sri),
            _ => None,
        }
    }
}

/// Why a string is not a hash. The messages are CppNix's.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HashError {
    #[error("unknown hash algorithm '{0}'")]
    UnknownAlgorithm(String),
    #[error("hash '{0}' does not include a type, nor is the type otherwise known from context")]
    MissingAlgorithm(String),
    #[error("hash '{0}' does not include a type")]
    NotPrefixed(String),
    #[error("hash '{0}' is not SRI")]
    NotSri(String),
    #[error("hash '{hash}' should have type '{expected}'")]
    AlgorithmMismatch { hash: String, expected: HashAlgorithm },
    #[error("invalid base-16 hash '{0}'")]
    InvalidBase16(String),
    #[error("invalid base-32 hash '{0}'")]
    InvalidNix32(String),
    #[error("invalid base-64 hash '{0}'")]
    InvalidBase64(String),
    #[error("invalid SRI hash '{0}'")]
    InvalidSri(String),
    #[error("hash '{hash}' has wrong length for hash type '{algorithm}'")]
    WrongLength { hash: String, algorithm: HashAlgorithm },
    #[error("digest of {actual} bytes does not fit hash type '{algorithm}'")]
    WrongDigestSize { algorithm: HashAlgorithm, actual: usize },
}

/// A digest together with its algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash {
    algorithm: HashAlgorithm,
    // Only the first `algorithm.size()` bytes are meaningful; the rest are zero,
    // so the derived comparisons behave.
    digest: [u8; 64],
}

impl Hash {
    /// Wraps a digest; its length must match the algorithm.
    pub fn from_digest(algorithm: HashAlgorithm, digest: &[u8]) -> Result<Hash, HashError> {
        if digest.len() != algorithm.size() {
            return Err(HashError::WrongDigestSize { algorithm, actual: digest.len() });
        }
        let mut bytes = [0u8; 64];
        bytes[..digest.len()].copy_from_slice(digest);
        Ok(Hash { algorithm, digest: bytes })
    }

    /// Hashes `data` in one go.
    pub fn of_bytes(algorithm: HashAlgorithm, data: &[u8]) -> Hash {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest[..self.algorithm.size()]
    }

    /// Prints in `encoding`; with `include_algorithm`, prefixes `algo:` (SRI always
    /// carries its `algo-` prefix). This is CppNix's `Hash::to_string`.
    pub fn encode(&self, encoding: HashEncoding, include_algorithm: bool) -> String {
        encode_digest(self.algorithm, self.digest(), encoding, include_algorithm)
    }

    /// Appends the lower-case hex form of the digest to `out`, without prefix:
    /// [`Hash::to_base16`] for serialisers that build their output in one buffer.
    pub fn write_base16(&self, out: &mut Vec<u8>) {
        let mut buffer = [0u8; 128];
        out.extend_from_slice(base16_into(self.digest(), &mut buffer));
    }

    /// Lower-case hex, without prefix.
    pub fn to_base16(&self) -> String {
        self.encode(HashEncoding::Base16, false)
    }

    /// nix32, without prefix.
    pub fn to_nix32(&self) -> String {
        self.encode(HashEncoding::Nix32, false)
    }

    /// base64, without prefix.
    pub fn to_base64(&self) -> String {
        self.encode(HashEncoding::Base64, false)
    }

    /// `algo-<base64>`.
    pub fn to_sri(&self) -> String {
        self.encode(HashEncoding::Sri, false)
    }

    /// Parses `algo:<hash>`, `algo-<base64>` (SRI) or a bare hash whose algorithm
    /// is `algorithm`. When both the string and the caller name an algorithm they
    /// must agree. CppNix's `Hash::parseAny`.
    pub fn parse_any(s: &str, algorithm: Option<HashAlgorithm>) -> Result<Hash, HashError> {
        let (prefix, rest, is_sri) = split_algorithm_prefix(s);
        let parsed_algorithm = prefix.map(str::parse::<HashAlgorithm>).transpose()?;
        let algorithm = match (parsed_algorithm, algorithm) {
            (None, None) => return Err(HashError::MissingAlgorithm(rest.to_string())),
            (Some(parsed), Some(expected)) if parsed != expected => {
                return Err(HashError::AlgorithmMismatch { hash: s.to_string(), expected });
            }
            (Some(parsed), _) => parsed,
            (None, Some(expected)) => expected,
        };
        Hash::parse_body(rest, algorithm, is_sri)
    }

    /// Parses a hash that must carry its algorithm (`algo:<hash>` or SRI).
    /// CppNix's `Hash::parseAnyPrefixed`.
    pub fn parse_prefixed(s: &str) -> Result<Hash, HashError> {
        let (prefix, rest, is_sri) = split_algorithm_prefix(s);
        let Some(prefix) = prefix else {
            return Err(HashError::NotPrefixed(s.to_string()));
        };
        Hash::parse_body(rest, prefix.parse()?, is_sri)
    }

    /// Parses an SRI hash (`algo-<base64>`). CppNix's `Hash::parseSRI`.
    pub fn parse_sri(s: &str) -> Result<Hash, HashError> {
        let Some((prefix, rest)) = s.split_once('-') else {
            return Err(HashError::NotSri(s.to_string()));
        };
        Hash::parse_body(rest, prefix.parse()?, true)
    }

    /// Parses a bare hash (base16, nix32 or base64, told apart by length) of a
    /// known algorithm. CppNix's `Hash::parseNonSRIUnprefixed`.
    pub fn parse_unprefixed(s: &str, algorithm: HashAlgorithm) -> Result<Hash, HashError> {
        Hash::parse_body(s, algorithm, false)
    }

    fn parse_body(rest: &str, algorithm: HashAlgorithm, is_sri: bool) -> Result<Hash, HashError> {
        let mut digest = [0u8; 64];
        let size = algorithm.size();
        if !is_sri && rest.len() == algorithm.base16_len() {
            let bytes = rest.as_bytes();
            for (index, slot) in digest[..size].iter_mut().enumerate() {
                let high = hex_digit(bytes[index * 2]);
                let low = hex_digit(bytes[index * 2 + 1]);
                match (high, low) {
                    (Some(high), Some(low)) => *slot = high << 4 | low,
                    _ => return Err(HashError::InvalidBase16(rest.to_string())),
                }
            }
        } else if !is_sri && rest.len() == algorithm.nix32_len() {
            nixbase32::decode_into(rest.as_bytes(), &mut digest[..size])
                .map_err(|_| HashError::InvalidNix32(rest.to_string()))?;
        } else if is_sri || rest.len() == algorithm.base64_len() {
            let invalid = || {
                if is_sri {
                    HashError::InvalidSri(rest.to_string())
                } else {
                    HashError::InvalidBase64(rest.to_string())
                }
            };
            let decoded = lenient_base64_decode(rest).ok_or_else(invalid)?;
            if decoded.len() != size {
                return Err(invalid());
            }
            digest[..size].copy_from_slice(&decoded);
        } else {
            return Err(HashError::WrongLength { hash: rest.to_string(), algorithm });
        }
        Ok(Hash { algorithm, digest })
    }
}

/// Encodes raw digest bytes labelled with `algorithm`, like [`Hash::encode`] but
/// for digests whose length need not match the algorithm: CppNix prints
/// `nix-hash --truncate` results (a SHA-256 folded to 20 bytes) this way.
pub fn encode_digest(algorithm: HashAlgorithm, digest: &[u8], encoding: HashEncoding, include_algorithm: bool) -> String {
    let body = match encoding {
        HashEncoding::Base16 if digest.len() <= 64 => {
            let mut buffer = [0u8; 128];
            let hex = base16_into(digest, &mut buffer);
            let mut body = String::with_capacity(hex.len() + 8);
            if include_algorithm {
                body.push_str(algorithm.name());
                body.push(':');
            }
            // Hex digits are ASCII.
            body.push_str(std::str::from_utf8(hex).expect("hex is ASCII"));
            return body;
        }
        HashEncoding::Base16 => data_encoding::HEXLOWER.encode(digest),
        HashEncoding::Nix32 => nixbase32::encode(digest),
        HashEncoding::Base64 | HashEncoding::Sri => data_encoding::BASE64.encode(digest),
    };
    match encoding {
        HashEncoding::Sri => format!("{algorithm}-{body}"),
        _ if include_algorithm => format!("{algorithm}:{body}"),
        _ => body,
    }
}

/// Lower-case hex of `digest` (at most 64 bytes) in `buffer`; no allocation,
/// for the hashes printed many times per derivation.
pub(crate) fn base16_into<'b>(digest: &[u8], buffer: &'b mut [u8; 128]) -> &'b [u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (index, byte) in digest.iter().enumerate() {
        buffer[index * 2] = HEX[(byte >> 4) as usize];
        buffer[index * 2 + 1] = HEX[(byte & 0xf) as usize];
    }
    &buffer[..digest.len() * 2]
}

/// Splits `algo:rest` or `algo-rest` (SRI). A `:` anywhere wins over `-`, as in
/// CppNix.
fn split_algorithm_prefix(s: &str) -> (Option<&str>, &str, bool) {
    if let Some((prefix, rest)) = s.split_once(':') {
        (Some(prefix), rest, false)
    } else if let Some((prefix, rest)) = s.split_once('-') {
        (Some(prefix), rest, true)
    } else {
        (None, s, false)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Base64 decoding with CppNix's leniency: decoding stops at the first `=`,
/// newlines are skipped, and left-over bits are dropped. Returns `None` on a
/// character outside the alphabet.
fn lenient_base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut accumulator: u32 = 0;
    let mut bits = 0u32;
    for c in s.bytes() {
        let digit = match c {
            b'=' => break,
            b'\n' => continue,
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        accumulator = (accumulator << 6 | digit as u32) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
        }
    }
    Some(out)
}

/// `algo:<nix32>`, the form CppNix uses in narinfo files and most messages.
impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode(HashEncoding::Nix32, true))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.encode(HashEncoding::Base16, true))
    }
}

/// Parses any form [`Hash::parse_prefixed`] accepts.
impl FromStr for Hash {
    type Err = HashError;
    fn from_str(s: &str) -> Result<Hash, HashError> {
        Hash::parse_prefixed(s)
    }
}

/// XOR-folds `digest` into `new_size` bytes: byte `i` goes into `i % new_size`.
/// CppNix's `compressHash`, which turns a SHA-256 into a 20-byte store path digest.
pub fn compress_hash(digest: &[u8], new_size: usize) -> Vec<u8> {
    let mut out = vec![0u8; new_size];
    if new_size == 0 {
        return out;
    }
    for (index, byte) in digest.iter().enumerate() {
        out[index % new_size] ^= byte;
    }
    out
}

/// [`compress_hash`] into a fixed-size array (no allocation); the store path
/// digest is `compress_hash_array::<20>` of a SHA-256.
pub fn compress_hash_array<const N: usize>(digest: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if N == 0 {
        return out;
    }
    for (index, byte) in digest.iter().enumerate() {
        out[index % N] ^= byte;
    }
    out
}

/// A SHA-256 fed through a small buffer: for serialisers (ATerm, store path
/// fingerprints) that write many pieces of a few bytes each, where calling the
/// hasher for every piece costs more than the hashing itself.
#[derive(Clone)]
pub struct Sha256Writer {
    hasher: sha2::Sha256,
    buffer: [u8; SHA256_WRITER_BUFFER],
    buffered: usize,
}

const SHA256_WRITER_BUFFER: usize = 1024;

impl Default for Sha256Writer {
    fn default() -> Self {
        Sha256Writer::new()
    }
}

impl Sha256Writer {
    pub fn new() -> Sha256Writer {
        Sha256Writer { hasher: sha2::Sha256::new(), buffer: [0; SHA256_WRITER_BUFFER], buffered: 0 }
    }

    #[inline]
    pub fn write(&mut self, bytes: &[u8]) {
        let end = self.buffered + bytes.len();
        if end <= SHA256_WRITER_BUFFER {
            self.buffer[self.buffered..end].copy_from_slice(bytes);
            self.buffered = end;
        } else {
            self.write_slow(bytes);
        }
    }

    #[inline]
    pub fn write_byte(&mut self, byte: u8) {
        if self.buffered == SHA256_WRITER_BUFFER {
            self.flush_buffer();
        }
        self.buffer[self.buffered] = byte;
        self.buffered += 1;
    }

    #[cold]
    fn write_slow(&mut self, bytes: &[u8]) {
        self.flush_buffer();
        if bytes.len() >= SHA256_WRITER_BUFFER {
            self.hasher.update(bytes);
        } else {
            self.buffer[..bytes.len()].copy_from_slice(bytes);
            self.buffered = bytes.len();
        }
    }

    fn flush_buffer(&mut self) {
        self.hasher.update(&self.buffer[..self.buffered]);
        self.buffered = 0;
    }

    pub fn finish(mut self) -> Hash {
        self.flush_buffer();
        let mut digest = [0u8; 64];
        digest[..32].copy_from_slice(&self.hasher.finalize());
        Hash { algorithm: HashAlgorithm::Sha256, digest }
    }
}

/// A hash being computed over a stream of bytes. It also counts the bytes fed,
/// as CppNix's `HashSink` does (NAR sizes come from here).
#[derive(Clone)]
pub struct Hasher {
    state: HasherState,
    bytes_hashed: u64,
}

#[derive(Clone)]
enum HasherState {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: HashAlgorithm) -> Hasher {
        let state = match algorithm {
            HashAlgorithm::Md5 => HasherState::Md5(md5::Md5::new()),
            HashAlgorithm::Sha1 => HasherState::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => HasherState::Sha512(sha2::Sha512::new()),
        };
        Hasher { state, bytes_hashed: 0 }
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        match self.state {
            HasherState::Md5(_) => HashAlgorithm::Md5,
            HasherState::Sha1(_) => HashAlgorithm::Sha1,
            HasherState::Sha256(_) => HashAlgorithm::Sha256,
            HasherState::Sha512(_) => HashAlgorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.bytes_hashed += data.len() as u64;
        match &mut self.state {
            HasherState::Md5(h) => h.update(data),
            HasherState::Sha1(h) => h.update(data),
            HasherState::Sha256(h) => h.update(data),
            HasherState::Sha512(h) => h.update(data),
        }
    }

    /// How many bytes have been fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes_hashed
    }

    pub fn finish(self) -> Hash {
        let algorithm = self.algorithm();
        let mut digest = [0u8; 64];
        match self.state {
            HasherState::Md5(h) => digest[..16].copy_from_slice(&h.finalize()),
            HasherState::Sha1(h) => digest[..20].copy_from_slice(&h.finalize()),
            HasherState::Sha256(h) => digest[..32].copy_from_slice(&h.finalize()),
            HasherState::Sha512(h) => digest[..64].copy_from_slice(&h.finalize()),
        }
        Hash { algorithm, digest }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.update(buf);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
