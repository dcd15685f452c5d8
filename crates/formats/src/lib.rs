//! Nix's formats, exact to the byte: hashes and their encodings (base16, nix32,
//! base64, SRI), store paths, NAR archives, ATerm `.drv` files and
//! `hashDerivationModulo`, narinfo files and ed25519 signatures.
//!
//! This crate depends on no other crate of the workspace and does no I/O beyond
//! what a caller hands it (readers, writers, file-system paths to serialise).

pub mod derivation;
pub mod hash;
pub mod nar;
pub mod narinfo;
pub mod nixbase32;
pub mod signature;
pub mod store_path;

pub use hash::{Hash, HashAlgorithm, HashEncoding, HashError, Hasher, compress_hash, encode_digest};
pub use store_path::{
    FileIngestionMethod, StoreDir, StorePath, StorePathBuildHasher, StorePathError, StorePathSet, check_name,
    output_path_name,
};
pub use derivation::{Derivation, DerivationError, DerivationOutput, DrvHashCache, DrvHashModulo, HashPart};
pub use narinfo::{ContentAddress, ContentAddressError, NarInfo, NarInfoError};
pub use signature::{Keyring, PublicKey, SecretKey, Signature, SignatureError};
