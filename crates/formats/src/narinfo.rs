//! The `.narinfo` files of binary caches, parsed and printed exactly as CppNix
//! does, and the content addresses (`CA:` lines, the store database's `ca`
//! column) they carry.
//!
//! A narinfo is `Key: value` lines. Parsing follows CppNix's reader rather than
//! a cleaner grammar, because caches in the wild were written against it:
//! unknown keys are ignored, a key may repeat (the last wins, except that `Sig`
//! accumulates and a second non-empty `References` or `CA` is an error), the byte
//! after the colon is skipped whatever it is (normally a space), and an empty
//! `Compression` means bzip2. `StorePath`, `NarHash`, `URL` and a non-zero
//! `NarSize` are required. Signatures are kept as the strings read (a set, so
//! printed sorted and de-duplicated); check them with a
//! [`Keyring`](crate::signature::Keyring).

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

use crate::hash::{Hash, HashAlgorithm, HashEncoding, HashError};
use crate::signature::{Keyring, SecretKey, SignatureError, fingerprint};
use crate::store_path::{FileIngestionMethod, StoreDir, StorePath, StorePathError, StorePathSet};

/// A content address: how a store path's hash part follows from its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentAddress {
    /// `text:sha256:<hash>`: a text file (`builtins.toFile`, `.drv`), hashed flat.
    Text(Hash),
    /// `fixed:[r:]<algo>:<hash>`: a fixed-output path.
    Fixed(FileIngestionMethod, Hash),
}

/// Why a content address string is not one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContentAddressError {
    #[error("not a content address because it is not in the form '<prefix>:<rest>': {0}")]
    NoPrefix(String),
    #[error("content address hash type is missing in '{0}'")]
    NoAlgorithm(String),
    #[error("content address prefix '{0}' is unrecognized. Recogonized prefixes are 'text' or 'fixed'")]
    UnknownPrefix(String),
    #[error("text content address hash should use sha256, but instead uses {0}")]
    TextNotSha256(HashAlgorithm),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl ContentAddress {
    /// Parses `text:sha256:<hash>` or `fixed:[r:]<algo>:<hash>`; the hash may be
    /// base16, nix32 or base64 (CppNix's `parseContentAddress`).
    pub fn parse(s: &str) -> Result<ContentAddress, ContentAddressError> {
        let (prefix, rest) = s.split_once(':').ok_or_else(|| ContentAddressError::NoPrefix(s.to_string()))?;
        let split_algorithm = |rest: &str| -> Result<(HashAlgorithm, String), ContentAddressError> {
            let (algorithm, hash) =
                rest.split_once(':').ok_or_else(|| ContentAddressError::NoAlgorithm(s.to_string()))?;
            let algorithm = algorithm.parse::<HashAlgorithm>()?;
            Ok((algorithm, hash.to_string()))
        };
        match prefix {
            "text" => {
                let (algorithm, hash) = split_algorithm(rest)?;
                if algorithm != HashAlgorithm::Sha256 {
                    return Err(ContentAddressError::TextNotSha256(algorithm));
                }
                Ok(ContentAddress::Text(Hash::parse_unprefixed(&hash, algorithm)?))
            }
            "fixed" => {
                let (method, rest) = match rest.strip_prefix("r:") {
                    Some(rest) => (FileIngestionMethod::Recursive, rest),
                    None => (FileIngestionMethod::Flat, rest),
                };
                let (algorithm, hash) = split_algorithm(rest)?;
                Ok(ContentAddress::Fixed(method, Hash::parse_unprefixed(&hash, algorithm)?))
            }
            other => Err(ContentAddressError::UnknownPrefix(other.to_string())),
        }
    }

    /// CppNix's `parseContentAddressOpt`: the empty string is no content address.
    pub fn parse_opt(s: &str) -> Result<Option<ContentAddress>, ContentAddressError> {
        if s.is_empty() { Ok(None) } else { ContentAddress::parse(s).map(Some) }
    }

    pub fn hash(&self) -> &Hash {
        match self {
            ContentAddress::Text(hash) | ContentAddress::Fixed(_, hash) => hash,
        }
    }

    /// The store path this content address gives a path named `name` with these
    /// references (which may include the path itself for fixed outputs).
    pub fn store_path(
        &self,
        store_dir: &StoreDir,
        name: &str,
        references: &StorePathSet,
        self_path: Option<&StorePath>,
    ) -> Result<StorePath, StorePathError> {
        match self {
            ContentAddress::Text(hash) => store_dir.make_text_path(name, hash, references),
            ContentAddress::Fixed(method, hash) => {
                let mut others = references.clone();
                let has_self_reference = self_path.is_some_and(|p| others.remove(p));
                store_dir.make_fixed_output_path(*method, hash, name, &others, has_self_reference)
            }
        }
    }
}

/// `text:sha256:<nix32>` or `fixed:[r:]<algo>:<nix32>`.
impl fmt::Display for ContentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentAddress::Text(hash) => write!(f, "text:{}", hash.encode(HashEncoding::Nix32, true)),
            ContentAddress::Fixed(method, hash) => {
                write!(f, "fixed:{}{}", method.prefix(), hash.encode(HashEncoding::Nix32, true))
            }
        }
    }
}

/// Why a narinfo could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NarInfoError {
    #[error("NAR info file is corrupt: {reason} at line {line}")]
    Corrupt { reason: &'static str, line: usize },
    #[error("NAR info file is corrupt: {0} missing")]
    MissingField(&'static str),
    #[error("NAR info file is corrupt: NarSize is zero")]
    ZeroNarSize,
    #[error("NAR info file has a bad hash in {field} at line {line}: {source}")]
    BadHash { field: &'static str, line: usize, source: HashError },
    #[error("NAR info file has a bad store path at line {line}: {source}")]
    BadStorePath { line: usize, source: StorePathError },
    #[error("NAR info file has a bad content address at line {line}: {source}")]
    BadContentAddress { line: usize, source: ContentAddressError },
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// A parsed narinfo: a store path's metadata and where its NAR is in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarInfo {
    pub store_path: StorePath,
    /// Where the (possibly compressed) NAR is, relative to the cache root.
    pub url: String,
    /// `none`, `xz`, `bzip2`, `zstd`, ...; never empty after parsing.
    pub compression: String,
    /// Hash of the file at `url` (CppNix always writes one).
    pub file_hash: Option<Hash>,
    /// Size of the file at `url`; 0 when unknown.
    pub file_size: u64,
    pub nar_hash: Hash,
    pub nar_size: u64,
    pub references: StorePathSet,
    pub deriver: Option<StorePath>,
    /// Empty when absent. CppNix 2.8 reads and writes it; later versions dropped it.
    pub system: String,
    /// `name:base64` signature strings, as read.
    pub signatures: BTreeSet<String>,
    pub ca: Option<ContentAddress>,
}

/// CppNix's `string2Int` for sizes: decimal digits, an optional leading `+`.
fn parse_size(value: &str) -> Option<u64> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl NarInfo {
    /// Parses a narinfo file.
    pub fn parse(store_dir: &StoreDir, text: &str) -> Result<NarInfo, NarInfoError> {
        let bytes = text.as_bytes();
        let mut store_path = None;
        let mut url = String::new();
        let mut compression = String::new();
        let mut file_hash = None;
        let mut file_size = 0u64;
        let mut nar_hash = None;
        let mut nar_size = 0u64;
        let mut references = StorePathSet::new();
        let mut deriver = None;
        let mut system = String::new();
        let mut signatures = BTreeSet::new();
        let mut ca = None;

        let mut pos = 0;
        let mut line = 1;
        while pos < bytes.len() {
            let corrupt = |reason| NarInfoError::Corrupt { reason, line };
            let colon = pos + text[pos..].find(':').ok_or_else(|| corrupt("expecting ':'"))?;
            let name = &text[pos..colon];
            // CppNix skips the colon and the byte after it (normally a space)
            // without looking at that byte, and looks for the end of line only after it.
            let value_start = colon + 2;
            if value_start > bytes.len() {
                return Err(corrupt("expecting '\\n'"));
            }
            let eol = bytes[value_start..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| value_start + i)
                .ok_or_else(|| corrupt("expecting '\\n'"))?;
            // The two skipped bytes may split a multi-byte character; such a value
            // cannot be valid anyway.
            let value = text.get(value_start..eol).ok_or_else(|| corrupt("invalid UTF-8 after ':'"))?;
            let bad_hash = |field, source| NarInfoError::BadHash { field, line, source };
            let bad_path = |source| NarInfoError::BadStorePath { line, source };
            match name {
                "StorePath" => store_path = Some(store_dir.parse_path(value).map_err(bad_path)?),
                "URL" => url = value.to_string(),
                "Compression" => compression = value.to_string(),
                "FileHash" => file_hash = Some(Hash::parse_prefixed(value).map_err(|e| bad_hash("FileHash", e))?),
                "FileSize" => file_size = parse_size(value).ok_or_else(|| corrupt("invalid FileSize"))?,
                "NarHash" => nar_hash = Some(Hash::parse_prefixed(value).map_err(|e| bad_hash("NarHash", e))?),
                "NarSize" => nar_size = parse_size(value).ok_or_else(|| corrupt("invalid NarSize"))?,
                "References" => {
                    if !references.is_empty() {
                        return Err(corrupt("extra References"));
                    }
                    for reference in value.split(' ').filter(|r| !r.is_empty()) {
                        references.insert(StorePath::from_base_name(reference).map_err(bad_path)?);
                    }
                }
                "Deriver" if value == "unknown-deriver" => {}
                "Deriver" => deriver = Some(StorePath::from_base_name(value).map_err(bad_path)?),
                "System" => system = value.to_string(),
                "Sig" => {
                    signatures.insert(value.to_string());
                }
                "CA" => {
                    if ca.is_some() {
                        return Err(corrupt("extra CA"));
                    }
                    ca = ContentAddress::parse_opt(value)
                        .map_err(|source| NarInfoError::BadContentAddress { line, source })?;
                }
                _ => {}
            }
            pos = eol + 1;
            line += 1;
        }

        if compression.is_empty() {
            compression = "bzip2".to_string();
        }
        let store_path = store_path.ok_or(NarInfoError::MissingField("StorePath"))?;
        let nar_hash = nar_hash.ok_or(NarInfoError::MissingField("NarHash"))?;
        if url.is_empty() {
            return Err(NarInfoError::MissingField("URL"));
        }
        if nar_size == 0 {
            return Err(NarInfoError::ZeroNarSize);
        }
        Ok(NarInfo {
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
        })
    }

    /// Prints the narinfo as CppNix writes it. Hashes come out as `algo:nix32`.
    /// CppNix insists on a file hash; without one the `FileHash` line is left out.
    pub fn to_text(&self, store_dir: &StoreDir) -> String {
        let mut out = String::with_capacity(512);
        let mut line = |key: &str, value: &str| {
            out.push_str(key);
            out.push_str(": ");
            out.push_str(value);
            out.push('\n');
        };
        line("StorePath", &store_dir.print_path(&self.store_path));
        line("URL", &self.url);
        line("Compression", &self.compression);
        if let Some(file_hash) = &self.file_hash {
            line("FileHash", &file_hash.encode(HashEncoding::Nix32, true));
        }
        line("FileSize", &self.file_size.to_string());
        line("NarHash", &self.nar_hash.encode(HashEncoding::Nix32, true));
        line("NarSize", &self.nar_size.to_string());
        let references: Vec<&str> = self.references.iter().map(StorePath::base_name).collect();
        line("References", &references.join(" "));
        if let Some(deriver) = &self.deriver {
            line("Deriver", deriver.base_name());
        }
        if !self.system.is_empty() {
            line("System", &self.system);
        }
        for signature in &self.signatures {
            line("Sig", signature);
        }
        if let Some(ca) = &self.ca {
            line("CA", &ca.to_string());
        }
        out
    }

    /// The string signatures are made over (see [`fingerprint`]).
    pub fn fingerprint(&self, store_dir: &StoreDir) -> Result<String, SignatureError> {
        fingerprint(store_dir, &self.store_path, &self.nar_hash, self.nar_size, &self.references)
    }

    /// Adds this key's signature (CppNix's `ValidPathInfo::sign`).
    pub fn sign(&mut self, store_dir: &StoreDir, key: &SecretKey) -> Result<(), SignatureError> {
        let signature = key.sign(self.fingerprint(store_dir)?.as_bytes());
        self.signatures.insert(signature.to_string());
        Ok(())
    }

    /// Whether the store path follows from the `CA` field and the references,
    /// in which case it needs no signature (CppNix's `isContentAddressed`).
    pub fn is_content_addressed(&self, store_dir: &StoreDir) -> bool {
        let Some(ca) = &self.ca else { return false };
        ca.store_path(store_dir, self.store_path.name(), &self.references, Some(&self.store_path))
            .is_ok_and(|path| path == self.store_path)
    }

    /// How many signatures are valid under `keyring`; `usize::MAX` for a
    /// content-addressed path, which is trusted by construction (CppNix's
    /// `checkSignatures`).
    pub fn count_valid_signatures(&self, store_dir: &StoreDir, keyring: &Keyring) -> Result<usize, SignatureError> {
        if self.is_content_addressed(store_dir) {
            return Ok(usize::MAX);
        }
        let fingerprint = self.fingerprint(store_dir)?;
        Ok(keyring.count_valid(fingerprint.as_bytes(), &self.signatures))
    }
}
