//! Store paths: `<store dir>/<nix32 digest>-<name>`, and the way CppNix computes
//! them from content (`makeStorePath` and friends).
//!
//! [`StorePath`] is the base name only (digest and name); the store directory is
//! a separate [`StoreDir`] value, because the same store path appears under the
//! logical directory `/nix/store` in every hash even when the bytes live
//! elsewhere on disk. Paths are ordered as CppNix orders them: by base name.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::hash::{Hash, HashAlgorithm, Sha256Writer, base16_into, compress_hash_array};
use crate::nixbase32;

/// Bytes in a store path digest.
pub const STORE_PATH_DIGEST_SIZE: usize = 20;
/// Characters in the nix32 hash part of a base name.
pub const STORE_PATH_HASH_LEN: usize = 32;
/// The longest name CppNix accepts (255, a file name limit, minus the hash part and dash).
pub const STORE_PATH_NAME_MAX_LEN: usize = 211;

/// A set of store paths in CppNix's order (references, inputs).
pub type StorePathSet = BTreeSet<StorePath>;

/// Why a string is not a store path or a store path name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StorePathError {
    #[error("'{0}' is too short to be a valid store path")]
    TooShort(String),
    #[error("store path '{path}' contains illegal base-32 character '{character}'")]
    InvalidHashCharacter { path: String, character: char },
    #[error("store path '{0}' has no dash after its hash part")]
    MissingDash(String),
    #[error("store path '{0}' has an empty name")]
    EmptyName(String),
    #[error("store path '{0}' has a name longer than 211 characters")]
    NameTooLong(String),
    #[error("store path '{path}' contains illegal character '{character}'")]
    InvalidNameCharacter { path: String, character: char },
    #[error("store path '{path}' has invalid name '{name}'")]
    InvalidName { path: String, name: String },
    #[error("path '{0}' is not in the Nix store")]
    NotInStore(String),
    #[error("store directory '{0}' must be an absolute path without trailing slash")]
    InvalidStoreDir(String),
    #[error("text and fixed-output paths need a SHA-256 hash, got {0}")]
    NeedsSha256(HashAlgorithm),
    #[error("fixed-output path with references needs recursive SHA-256 hashing")]
    ReferencesNotAllowed,
}

/// Checks a store path name as CppNix does. `path` is only used in messages.
///
/// Allowed: ASCII letters, digits and `+-._?=`, 1 to 211 characters. Like current
/// CppNix (2.8 was laxer) it also rejects names whose first dash-separated
/// component is `.` or `..`, which could otherwise be confused with directory
/// entries by tools that split on the dash.
pub fn check_name(path: &str, name: &str) -> Result<(), StorePathError> {
    if name.is_empty() {
        return Err(StorePathError::EmptyName(path.to_string()));
    }
    if name.len() > STORE_PATH_NAME_MAX_LEN {
        return Err(StorePathError::NameTooLong(path.to_string()));
    }
    let bytes = name.as_bytes();
    let first_component = match bytes.iter().position(|&b| b == b'-') {
        Some(dash) => &bytes[..dash],
        None => bytes,
    };
    if first_component == b"." || first_component == b".." {
        return Err(StorePathError::InvalidName { path: path.to_string(), name: name.to_string() });
    }
    // Checked byte by byte (every allowed character is ASCII); the character
    // named in the error is found only when there is one.
    if !bytes.iter().all(|&b| is_name_byte(b)) {
        let character = name.chars().find(|&c| !is_name_char(c)).expect("a byte outside the allowed set");
        return Err(StorePathError::InvalidNameCharacter { path: path.to_string(), character });
    }
    Ok(())
}

/// The bytes a store path name may contain, as a table: names are checked
/// every time a path is parsed (each string context element, each reference).
const NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_' | b'?' | b'=');
        byte += 1;
    }
    table
};

fn is_name_byte(b: u8) -> bool {
    NAME_BYTES[b as usize]
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_' | '?' | '=')
}

/// A store path without its store directory: a 20-byte digest and a name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    // `<nix32 digest>-<name>`, kept as text because CppNix orders and prints by it.
    base_name: String,
}

impl StorePath {
    /// Parses `<hash part>-<name>`.
    pub fn from_base_name(base_name: &str) -> Result<StorePath, StorePathError> {
        if base_name.len() < STORE_PATH_HASH_LEN + 1 {
            return Err(StorePathError::TooShort(base_name.to_string()));
        }
        let bytes = base_name.as_bytes();
        if let Some(&bad) = bytes[..STORE_PATH_HASH_LEN].iter().find(|&&c| !nixbase32::is_nix32_char(c)) {
            return Err(StorePathError::InvalidHashCharacter {
                path: base_name.to_string(),
                character: bad as char,
            });
        }
        if bytes[STORE_PATH_HASH_LEN] != b'-' {
            return Err(StorePathError::MissingDash(base_name.to_string()));
        }
        check_name(base_name, &base_name[STORE_PATH_HASH_LEN + 1..])?;
        // The first character carries 160 - 31*5 = 5 bits, so every nix32 string of
        // this length decodes; no padding check can fail.
        Ok(StorePath { base_name: base_name.to_string() })
    }

    /// Builds a path from a digest and a name, validating the name.
    pub fn from_digest(digest: &[u8; STORE_PATH_DIGEST_SIZE], name: &str) -> Result<StorePath, StorePathError> {
        let mut hash_part = [0u8; STORE_PATH_HASH_LEN];
        nixbase32::encode_into(digest, &mut hash_part);
        let mut base_name = String::with_capacity(STORE_PATH_HASH_LEN + 1 + name.len());
        base_name.push_str(std::str::from_utf8(&hash_part).expect("nix32 alphabet is ASCII"));
        base_name.push('-');
        base_name.push_str(name);
        check_name(&base_name, name)?;
        Ok(StorePath { base_name })
    }

    /// `<hash part>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.base_name
    }

    /// The 32-character nix32 hash part.
    pub fn hash_part(&self) -> &str {
        &self.base_name[..STORE_PATH_HASH_LEN]
    }

    pub fn name(&self) -> &str {
        &self.base_name[STORE_PATH_HASH_LEN + 1..]
    }

    /// The 20 digest bytes.
    pub fn digest(&self) -> [u8; STORE_PATH_DIGEST_SIZE] {
        let mut digest = [0u8; STORE_PATH_DIGEST_SIZE];
        nixbase32::decode_into(self.hash_part().as_bytes(), &mut digest)
            .expect("hash part was validated on construction");
        digest
    }

    /// Whether this is a derivation (`.drv`) path.
    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

/// The base name.
impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base_name)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({})", self.base_name)
    }
}

/// Parses a base name (not a full path; use [`StoreDir::parse_path`] for that).
impl FromStr for StorePath {
    type Err = StorePathError;
    fn from_str(s: &str) -> Result<StorePath, StorePathError> {
        StorePath::from_base_name(s)
    }
}

/// A hasher for maps keyed by [`StorePath`] (and by base names): the hash
/// part is already the output of a cryptographic hash, so its first 16
/// characters, folded and mixed by one multiplication, spread keys as well as
/// SipHash does at a fraction of the cost. Not for keys an adversary picks to
/// collide: an evaluation's own paths are not that.
#[derive(Debug, Default, Clone, Copy)]
pub struct StorePathHasher {
    state: u64,
}

impl std::hash::Hasher for StorePathHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Strings are hashed as their bytes then a 0xff terminator; only the
        // first write (the base name's start) is taken.
        if self.state != 0 {
            return;
        }
        let mut words = [0u8; 16];
        let taken = bytes.len().min(16);
        words[..taken].copy_from_slice(&bytes[..taken]);
        let low = u64::from_le_bytes(words[..8].try_into().expect("eight bytes"));
        let high = u64::from_le_bytes(words[8..].try_into().expect("eight bytes"));
        let mixed = (low ^ high.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        // The low bits pick the bucket: give them the high bits' entropy.
        self.state = mixed ^ (mixed >> 32);
    }

    fn write_u8(&mut self, _terminator: u8) {}

    fn finish(&self) -> u64 {
        self.state
    }
}

/// `HashMap<StorePath, V, StorePathBuildHasher>`: see [`StorePathHasher`].
pub type StorePathBuildHasher = std::hash::BuildHasherDefault<StorePathHasher>;

/// How file contents were turned into a hash for a fixed-output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileIngestionMethod {
    /// The hash is of the file's bytes (regular files only).
    Flat,
    /// The hash is of the NAR serialisation of the file system object.
    Recursive,
}

impl FileIngestionMethod {
    /// The prefix CppNix writes before `algo:` in content addresses and `outputHashMode`: `r:` or nothing.
    pub fn prefix(self) -> &'static str {
        match self {
            FileIngestionMethod::Flat => "",
            FileIngestionMethod::Recursive => "r:",
        }
    }
}

/// The logical store directory, `/nix/store` unless configured otherwise. It
/// enters every store path hash, so it is a value passed around, not a global.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreDir {
    path: String,
}

impl Default for StoreDir {
    fn default() -> StoreDir {
        StoreDir { path: "/nix/store".to_string() }
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl StoreDir {
    /// A store directory; must be absolute, without a trailing slash (a trailing
    /// slash is dropped, as CppNix canonicalises it) and without `//`, `.` or `..`.
    pub fn new(path: &str) -> Result<StoreDir, StorePathError> {
        let trimmed = path.trim_end_matches('/');
        let invalid = || StorePathError::InvalidStoreDir(path.to_string());
        if !trimmed.starts_with('/') {
            return Err(invalid());
        }
        if trimmed[1..].split('/').any(|component| component.is_empty() || component == "." || component == "..") {
            return Err(invalid());
        }
        Ok(StoreDir { path: trimmed.to_string() })
    }

    /// The directory as a string, e.g. `/nix/store`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The full path of `store_path` in this directory.
    pub fn print_path(&self, store_path: &StorePath) -> String {
        let mut printed = String::with_capacity(self.path.len() + 1 + store_path.base_name.len());
        printed.push_str(&self.path);
        printed.push('/');
        printed.push_str(&store_path.base_name);
        printed
    }

    /// Appends the full path of `store_path` to `out` ([`StoreDir::print_path`]
    /// without a `String` of its own).
    pub fn write_path(&self, out: &mut Vec<u8>, store_path: &StorePath) {
        out.extend_from_slice(self.path.as_bytes());
        out.push(b'/');
        out.extend_from_slice(store_path.base_name.as_bytes());
    }

    fn hash_path(&self, writer: &mut Sha256Writer, store_path: &StorePath) {
        writer.write(self.path.as_bytes());
        writer.write_byte(b'/');
        writer.write(store_path.base_name.as_bytes());
    }

    /// Parses a full path that must name a store path itself (not something
    /// inside one). Trailing slashes are tolerated.
    pub fn parse_path(&self, path: &str) -> Result<StorePath, StorePathError> {
        let trimmed = path.trim_end_matches('/');
        let base_name = trimmed
            .strip_prefix(self.path.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.contains('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_string()))?;
        StorePath::from_base_name(base_name)
    }

    /// Splits a path inside the store into the store path and the rest (empty or
    /// starting with `/`): `/nix/store/abc-foo/bin/x` gives (`abc-foo`, `/bin/x`).
    pub fn split_path<'a>(&self, path: &'a str) -> Result<(StorePath, &'a str), StorePathError> {
        let rest = path
            .strip_prefix(self.path.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| StorePathError::NotInStore(path.to_string()))?;
        let end = rest.find('/').unwrap_or(rest.len());
        Ok((StorePath::from_base_name(&rest[..end])?, &rest[end..]))
    }

    /// Whether `path` is a store path or inside one, syntactically.
    pub fn is_in_store(&self, path: &str) -> bool {
        self.split_path(path).is_ok()
    }

    /// CppNix's `makeStorePath`: the path whose digest is the SHA-256 of
    /// `<type>:<algo>:<base16 hash>:<store dir>:<name>`, XOR-folded to 20 bytes.
    pub fn make_store_path(&self, path_type: &str, hash: &Hash, name: &str) -> Result<StorePath, StorePathError> {
        self.make_store_path_with(|writer| writer.write(path_type.as_bytes()), hash, name)
    }

    /// [`StoreDir::make_store_path`] with the type written by `write_type`
    /// straight into the hash: the fingerprint is never built as a string
    /// (for a `.drv` it names every input).
    fn make_store_path_with(
        &self,
        write_type: impl FnOnce(&mut Sha256Writer),
        hash: &Hash,
        name: &str,
    ) -> Result<StorePath, StorePathError> {
        let mut writer = Sha256Writer::new();
        write_type(&mut writer);
        writer.write_byte(b':');
        writer.write(hash.algorithm().name().as_bytes());
        writer.write_byte(b':');
        let mut hex = [0u8; 128];
        writer.write(base16_into(hash.digest(), &mut hex));
        writer.write_byte(b':');
        writer.write(self.path.as_bytes());
        writer.write_byte(b':');
        writer.write(name.as_bytes());
        let sha = writer.finish();
        let digest: [u8; STORE_PATH_DIGEST_SIZE] = compress_hash_array(sha.digest());
        StorePath::from_digest(&digest, name)
    }

    /// The type string for paths with references: `<kind>:<ref path>...[:self]`,
    /// references printed in full and in set order.
    pub fn make_type(&self, kind: &str, references: &StorePathSet, has_self_reference: bool) -> String {
        let mut path_type = kind.to_string();
        for reference in references {
            path_type.push(':');
            path_type.push_str(&self.print_path(reference));
        }
        if has_self_reference {
            path_type.push_str(":self");
        }
        path_type
    }

    /// [`StoreDir::make_type`], written into a hash. `references` must come in
    /// set order, without repeats.
    fn hash_type<'r>(
        &self,
        writer: &mut Sha256Writer,
        kind: &str,
        references: impl IntoIterator<Item = &'r StorePath>,
        has_self_reference: bool,
    ) {
        writer.write(kind.as_bytes());
        for reference in references {
            writer.write_byte(b':');
            self.hash_path(writer, reference);
        }
        if has_self_reference {
            writer.write(b":self");
        }
    }

    /// A text path (`builtins.toFile`, `.drv` files): type `text` with references,
    /// over the SHA-256 of the contents.
    pub fn make_text_path(&self, name: &str, hash: &Hash, references: &StorePathSet) -> Result<StorePath, StorePathError> {
        self.make_text_path_from(name, hash, references)
    }

    /// [`StoreDir::make_text_path`] with the references as an iterator, which
    /// must yield them in set order without repeats (a `.drv` names the union
    /// of its input sources and input derivations without building that set).
    pub(crate) fn make_text_path_from<'r>(
        &self,
        name: &str,
        hash: &Hash,
        references: impl IntoIterator<Item = &'r StorePath>,
    ) -> Result<StorePath, StorePathError> {
        if hash.algorithm() != HashAlgorithm::Sha256 {
            return Err(StorePathError::NeedsSha256(hash.algorithm()));
        }
        self.make_store_path_with(|writer| self.hash_type(writer, "text", references, false), hash, name)
    }

    /// The path of a text file with these contents, as `builtins.toFile` and
    /// derivation writing compute it.
    pub fn compute_text_path(&self, name: &str, contents: &[u8], references: &StorePathSet) -> Result<StorePath, StorePathError> {
        self.make_text_path(name, &Hash::of_bytes(HashAlgorithm::Sha256, contents), references)
    }

    /// A fixed-output (content-addressed) path. Recursive SHA-256 is a `source`
    /// path (which may have references); everything else goes through an
    /// intermediate `fixed:out:[r:]<algo>:<base16>:` hash and has no references.
    pub fn make_fixed_output_path(
        &self,
        method: FileIngestionMethod,
        hash: &Hash,
        name: &str,
        references: &StorePathSet,
        has_self_reference: bool,
    ) -> Result<StorePath, StorePathError> {
        if hash.algorithm() == HashAlgorithm::Sha256 && method == FileIngestionMethod::Recursive {
            return self.make_store_path_with(
                |writer| self.hash_type(writer, "source", references, has_self_reference),
                hash,
                name,
            );
        }
        if !references.is_empty() || has_self_reference {
            return Err(StorePathError::ReferencesNotAllowed);
        }
        let mut inner = Sha256Writer::new();
        write_fixed_output_fingerprint(&mut inner, method, hash);
        self.make_store_path("output:out", &inner.finish(), name)
    }

    /// The output path of an input-addressed derivation: type `output:<id>` over
    /// the derivation's `hashDerivationModulo`; outputs other than `out` get
    /// `-<id>` appended to the name.
    pub fn make_output_path(&self, output_name: &str, drv_hash: &Hash, drv_name: &str) -> Result<StorePath, StorePathError> {
        let write_type = |writer: &mut Sha256Writer| {
            writer.write(b"output:");
            writer.write(output_name.as_bytes());
        };
        if output_name == "out" {
            self.make_store_path_with(write_type, drv_hash, drv_name)
        } else {
            self.make_store_path_with(write_type, drv_hash, &output_path_name(drv_name, output_name))
        }
    }
}

/// `name` for output `out`, `name-<output>` for the others.
pub fn output_path_name(drv_name: &str, output_name: &str) -> String {
    if output_name == "out" {
        return drv_name.to_string();
    }
    let mut name = String::with_capacity(drv_name.len() + 1 + output_name.len());
    name.push_str(drv_name);
    name.push('-');
    name.push_str(output_name);
    name
}

/// Writes `fixed:out:[r:]<algo>:<base16>:`, the fingerprint of a fixed-output
/// path's content that both its store path and its derivation's hash modulo
/// start from.
pub(crate) fn write_fixed_output_fingerprint(writer: &mut Sha256Writer, method: FileIngestionMethod, hash: &Hash) {
    writer.write(b"fixed:out:");
    writer.write(method.prefix().as_bytes());
    writer.write(hash.algorithm().name().as_bytes());
    writer.write_byte(b':');
    let mut hex = [0u8; 128];
    writer.write(base16_into(hash.digest(), &mut hex));
    writer.write_byte(b':');
}
