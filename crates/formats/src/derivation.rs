//! Store derivations: the ATerm `.drv` format, read and written byte for byte as
//! CppNix 2.8 does, `hashDerivationModulo`, and the computation of a new
//! derivation's output paths and `.drv` path (what `derivationStrict` does after
//! evaluation).
//!
//! The format is `Derive([outputs],[input drvs],[input srcs],platform,builder,
//! [args],[env])` with no whitespace; strings are double-quoted with `\"`, `\\`,
//! `\n`, `\r` and `\t` escaped, and every map is sorted by key bytes. CppNix
//! writes output names, store paths and the platform *without* escaping them;
//! we do the same, so a platform containing `"` comes out exactly as broken as
//! CppNix writes it (and, as with CppNix, does not read back).
//!
//! Strings that come from the Nix language (builder, args, env, platform) are
//! bytes, not UTF-8. Output names must be valid store path name characters,
//! stricter than CppNix's reader (which trusts its writer); this keeps every
//! derivation we accept printable and readable again.
//!
//! One deliberate difference: CppNix 2.8 recomputes the path of a fixed output
//! from the hash whenever it prints one; we keep the path the file names. For
//! every derivation CppNix wrote the two agree; [`Derivation::fill_output_paths`]
//! computes them for new derivations.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use thiserror::Error;

use crate::hash::{Hash, HashAlgorithm, HashEncoding, HashError};
use crate::nixbase32;
use crate::store_path::{FileIngestionMethod, StoreDir, StorePath, StorePathError, StorePathSet, output_path_name};

/// One output of a derivation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DerivationOutput {
    /// `("out","/nix/store/…-name","","")`: the path follows from the
    /// derivation's hash modulo.
    InputAddressed(StorePath),
    /// `("out","/nix/store/…","r:sha256","<base16>")`: a fixed-output
    /// derivation; the path follows from the declared hash.
    Fixed { method: FileIngestionMethod, hash: Hash, path: StorePath },
    /// `("out","","r:sha256","")`: content-addressed, path known after the build.
    Floating { method: FileIngestionMethod, algorithm: HashAlgorithm },
    /// `("out","","","")`: input-addressed, but the path cannot be computed
    /// yet (it depends on a floating content-addressed derivation), or masked.
    Deferred,
    /// `("out","","r:sha256","impure")`: an impure derivation's output.
    Impure { method: FileIngestionMethod, algorithm: HashAlgorithm },
}

impl DerivationOutput {
    /// The output's store path, when it is known before building.
    pub fn path(&self) -> Option<&StorePath> {
        match self {
            DerivationOutput::InputAddressed(path) | DerivationOutput::Fixed { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// A store derivation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Derivation {
    pub outputs: BTreeMap<String, DerivationOutput>,
    /// Derivations this one needs, with the outputs it needs of each.
    pub input_derivations: BTreeMap<StorePath, BTreeSet<String>>,
    pub input_sources: StorePathSet,
    /// The system type, e.g. `x86_64-linux`.
    pub platform: Vec<u8>,
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub env: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// Why a `.drv` could not be read or a derivation not completed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DerivationError {
    #[error("error parsing derivation: expected '{expected}' at byte {offset}")]
    Expected { expected: String, offset: usize },
    #[error("error parsing derivation: unexpected end of input")]
    UnexpectedEnd,
    #[error("error parsing derivation: trailing data at byte {0}")]
    TrailingData(usize),
    #[error("error parsing derivation: bad path '{0}' in derivation")]
    BadPath(String),
    #[error("error parsing derivation: {0}")]
    StorePath(#[from] StorePathError),
    #[error("error parsing derivation: {0}")]
    Hash(#[from] HashError),
    #[error("error parsing derivation: invalid output name '{0}'")]
    BadOutputName(String),
    #[error("error parsing derivation: duplicate {what} '{key}'")]
    Duplicate { what: &'static str, key: String },
    #[error("error parsing derivation: impure output '{0}' must have an empty path")]
    ImpureWithPath(String),
    #[error("error parsing derivation: floating content-addressed output '{0}' must have an empty path")]
    FloatingWithPath(String),
    #[error("derivation has no outputs")]
    NoOutputs,
    /// CppNix's `Derivation::type()` refuses these; `detail` is its wording.
    #[error("invalid derivation: {0}")]
    InvalidOutputs(&'static str),
    #[error("input derivation '{0}' has no hash to stand in for it")]
    MissingInputHash(String),
    #[error("input derivation '{drv}' has no output '{output}'")]
    MissingInputOutput { drv: String, output: String },
}

/// The placeholder a derivation's environment holds for one of its own outputs
/// whose path is not known at evaluation time (CppNix's `hashPlaceholder`):
/// `/` followed by the nix32 SHA-256 of `nix-output:<output>`.
pub fn hash_placeholder(output_name: &str) -> String {
    let hash = Hash::of_bytes(HashAlgorithm::Sha256, format!("nix-output:{output_name}").as_bytes());
    format!("/{}", nixbase32::encode(hash.digest()))
}

/// The placeholder for an output of another, floating content-addressed
/// derivation (CppNix's `downstreamPlaceholder`): `/` followed by the nix32
/// SHA-256 of `nix-upstream-output:<drv hash part>:<output path name>`.
pub fn downstream_placeholder(drv_path: &StorePath, output_name: &str) -> String {
    let drv_name = drv_path.name().strip_suffix(".drv").unwrap_or(drv_path.name());
    let clear_text =
        format!("nix-upstream-output:{}:{}", drv_path.hash_part(), output_path_name(drv_name, output_name));
    let hash = Hash::of_bytes(HashAlgorithm::Sha256, clear_text.as_bytes());
    format!("/{}", nixbase32::encode(hash.digest()))
}

// ---------------------------------------------------------------------------
// Reading

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    store_dir: &'a StoreDir,
}

impl<'a> Parser<'a> {
    fn expect(&mut self, token: &str) -> Result<(), DerivationError> {
        if self.input[self.pos..].starts_with(token.as_bytes()) {
            self.pos += token.len();
            Ok(())
        } else if self.input.len() - self.pos < token.len() && token.as_bytes().starts_with(&self.input[self.pos..]) {
            Err(DerivationError::UnexpectedEnd)
        } else {
            Err(DerivationError::Expected { expected: token.to_string(), offset: self.pos })
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// A quoted string with CppNix's escapes: `\n`, `\r`, `\t`, and a backslash
    /// before any other byte stands for that byte.
    fn string(&mut self) -> Result<Vec<u8>, DerivationError> {
        self.expect("\"")?;
        let mut out = Vec::new();
        loop {
            let rest = &self.input[self.pos..];
            // Copy the plain run in one go; most strings have no escapes.
            let run = rest.iter().position(|&b| b == b'"' || b == b'\\').ok_or(DerivationError::UnexpectedEnd)?;
            out.extend_from_slice(&rest[..run]);
            self.pos += run;
            if self.input[self.pos] == b'"' {
                self.pos += 1;
                return Ok(out);
            }
            let escaped = *self.input.get(self.pos + 1).ok_or(DerivationError::UnexpectedEnd)?;
            out.push(match escaped {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                other => other,
            });
            self.pos += 2;
        }
    }

    fn utf8_string(&mut self) -> Result<String, DerivationError> {
        let start = self.pos;
        let bytes = self.string()?;
        String::from_utf8(bytes)
            .map_err(|_| DerivationError::Expected { expected: "UTF-8 string".into(), offset: start })
    }

    fn path(&mut self) -> Result<StorePath, DerivationError> {
        let s = self.utf8_string()?;
        if !s.starts_with('/') {
            return Err(DerivationError::BadPath(s));
        }
        Ok(self.store_dir.parse_path(&s)?)
    }

    /// `[item,item,...]`.
    fn list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DerivationError>,
    ) -> Result<Vec<T>, DerivationError> {
        self.expect("[")?;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(items);
                }
                Some(_) => return Err(DerivationError::Expected { expected: "',' or ']'".into(), offset: self.pos }),
                None => return Err(DerivationError::UnexpectedEnd),
            }
        }
    }

    fn output_name(&mut self) -> Result<String, DerivationError> {
        let name = self.utf8_string()?;
        check_output_name(&name)?;
        Ok(name)
    }

    fn output(&mut self) -> Result<(String, DerivationOutput), DerivationError> {
        self.expect("(")?;
        let name = self.output_name()?;
        self.expect(",")?;
        let path = self.utf8_string()?;
        self.expect(",")?;
        let hash_algo = self.utf8_string()?;
        self.expect(",")?;
        let hash = self.utf8_string()?;
        self.expect(")")?;
        let output = self.classify_output(&name, &path, &hash_algo, &hash)?;
        Ok((name, output))
    }

    /// Which kind of output the four strings describe (CppNix's
    /// `parseDerivationOutput`).
    fn classify_output(
        &self,
        name: &str,
        path: &str,
        hash_algo: &str,
        hash: &str,
    ) -> Result<DerivationOutput, DerivationError> {
        let parse_path = |path: &str| -> Result<StorePath, DerivationError> {
            if !path.starts_with('/') {
                return Err(DerivationError::BadPath(path.to_string()));
            }
            Ok(self.store_dir.parse_path(path)?)
        };
        if hash_algo.is_empty() {
            return Ok(if path.is_empty() {
                DerivationOutput::Deferred
            } else {
                DerivationOutput::InputAddressed(parse_path(path)?)
            });
        }
        let (method, algorithm) = match hash_algo.strip_prefix("r:") {
            Some(rest) => (FileIngestionMethod::Recursive, rest),
            None => (FileIngestionMethod::Flat, hash_algo),
        };
        let algorithm: HashAlgorithm = algorithm.parse()?;
        if hash == "impure" {
            if !path.is_empty() {
                return Err(DerivationError::ImpureWithPath(name.to_string()));
            }
            Ok(DerivationOutput::Impure { method, algorithm })
        } else if !hash.is_empty() {
            let path = parse_path(path)?;
            Ok(DerivationOutput::Fixed { method, hash: Hash::parse_unprefixed(hash, algorithm)?, path })
        } else {
            if !path.is_empty() {
                return Err(DerivationError::FloatingWithPath(name.to_string()));
            }
            Ok(DerivationOutput::Floating { method, algorithm })
        }
    }
}

fn check_output_name(name: &str) -> Result<(), DerivationError> {
    let valid = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_' | b'?' | b'='));
    if valid { Ok(()) } else { Err(DerivationError::BadOutputName(name.to_string())) }
}

fn insert_unique<K: Ord, V>(
    map: &mut BTreeMap<K, V>,
    key: K,
    value: V,
    what: &'static str,
    show: impl FnOnce(&K) -> String,
) -> Result<(), DerivationError> {
    if map.contains_key(&key) {
        return Err(DerivationError::Duplicate { what, key: show(&key) });
    }
    map.insert(key, value);
    Ok(())
}

impl Derivation {
    /// Reads a `.drv` file's contents. Trailing bytes after the closing
    /// parenthesis are an error; so are duplicate keys, which CppNix would
    /// silently merge but never writes.
    pub fn parse(store_dir: &StoreDir, input: &[u8]) -> Result<Derivation, DerivationError> {
        let mut parser = Parser { input, pos: 0, store_dir };
        parser.expect("Derive(")?;

        let mut outputs = BTreeMap::new();
        for (name, output) in parser.list(Parser::output)? {
            insert_unique(&mut outputs, name, output, "output", |k| k.clone())?;
        }

        parser.expect(",")?;
        let mut input_derivations = BTreeMap::new();
        let input_drv_list = parser.list(|p| {
            p.expect("(")?;
            let drv_path = p.path()?;
            p.expect(",")?;
            let output_names = p.list(Parser::output_name)?;
            p.expect(")")?;
            Ok((drv_path, output_names))
        })?;
        for (drv_path, output_names) in input_drv_list {
            let mut set = BTreeSet::new();
            for output in output_names {
                if !set.insert(output.clone()) {
                    return Err(DerivationError::Duplicate { what: "input derivation output", key: output });
                }
            }
            insert_unique(&mut input_derivations, drv_path, set, "input derivation", |k| store_dir.print_path(k))?;
        }

        parser.expect(",")?;
        let mut input_sources = StorePathSet::new();
        for path in parser.list(Parser::path)? {
            if input_sources.contains(&path) {
                return Err(DerivationError::Duplicate { what: "input source", key: store_dir.print_path(&path) });
            }
            input_sources.insert(path);
        }

        parser.expect(",")?;
        let platform = parser.string()?;
        parser.expect(",")?;
        let builder = parser.string()?;
        parser.expect(",")?;
        let args = parser.list(Parser::string)?;
        parser.expect(",")?;
        let env_list = parser.list(|p| {
            p.expect("(")?;
            let key = p.string()?;
            p.expect(",")?;
            let value = p.string()?;
            p.expect(")")?;
            Ok((key, value))
        })?;
        let mut env = BTreeMap::new();
        for (key, value) in env_list {
            insert_unique(&mut env, key, value, "environment variable", |k| String::from_utf8_lossy(k).into_owned())?;
        }
        parser.expect(")")?;
        if parser.pos != input.len() {
            return Err(DerivationError::TrailingData(parser.pos));
        }
        Ok(Derivation { outputs, input_derivations, input_sources, platform, builder, args, env })
    }
}

// ---------------------------------------------------------------------------
// Writing

/// Appends `"s"` without escaping (CppNix's `printUnquotedString`).
fn push_unescaped(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    out.extend_from_slice(s);
    out.push(b'"');
}

/// Appends `"s"` with `"`, `\`, newline, CR and tab escaped.
fn push_escaped(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    // Runs of bytes that need no escape (almost all of a derivation) are
    // copied at once.
    let mut rest = s;
    while let Some(i) = rest.iter().position(|b| matches!(b, b'"' | b'\\' | b'\n' | b'\r' | b'\t')) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(match rest[i] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\t",
        });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn push_list<T>(out: &mut Vec<u8>, items: impl IntoIterator<Item = T>, mut push_item: impl FnMut(&mut Vec<u8>, T)) {
    out.push(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_item(out, item);
    }
    out.push(b']');
}

fn method_algo(method: FileIngestionMethod, algorithm: HashAlgorithm) -> String {
    format!("{}{}", method.prefix(), algorithm.name())
}

/// How the input derivations are written: as store paths (the `.drv` file), or
/// replaced by base16 hashes (inside `hashDerivationModulo`).
enum InputsForm<'a> {
    Paths,
    Hashes(&'a BTreeMap<String, BTreeSet<String>>),
}

impl Derivation {
    /// The ATerm text, exactly as CppNix writes the `.drv` file.
    pub fn to_aterm(&self, store_dir: &StoreDir) -> Vec<u8> {
        self.unparse(store_dir, false, InputsForm::Paths)
    }

    fn unparse(&self, store_dir: &StoreDir, mask_outputs: bool, inputs: InputsForm<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(b"Derive(");
        push_list(&mut out, &self.outputs, |out, (name, output)| {
            let (path, hash_algo, hash) = match output {
                DerivationOutput::InputAddressed(path) => {
                    let path = if mask_outputs { String::new() } else { store_dir.print_path(path) };
                    (path, String::new(), String::new())
                }
                DerivationOutput::Fixed { method, hash, path } => {
                    let path = if mask_outputs { String::new() } else { store_dir.print_path(path) };
                    (path, method_algo(*method, hash.algorithm()), hash.encode(HashEncoding::Base16, false))
                }
                DerivationOutput::Floating { method, algorithm } => {
                    (String::new(), method_algo(*method, *algorithm), String::new())
                }
                DerivationOutput::Deferred => (String::new(), String::new(), String::new()),
                DerivationOutput::Impure { method, algorithm } => {
                    (String::new(), method_algo(*method, *algorithm), "impure".to_string())
                }
            };
            out.push(b'(');
            push_unescaped(out, name.as_bytes());
            for field in [path, hash_algo, hash] {
                out.push(b',');
                push_unescaped(out, field.as_bytes());
            }
            out.push(b')');
        });
        out.push(b',');
        let push_input = |out: &mut Vec<u8>, key: &[u8], output_names: &BTreeSet<String>| {
            out.push(b'(');
            push_unescaped(out, key);
            out.push(b',');
            push_list(out, output_names, |out, name| push_unescaped(out, name.as_bytes()));
            out.push(b')');
        };
        match inputs {
            InputsForm::Paths => push_list(&mut out, &self.input_derivations, |out, (drv_path, names)| {
                push_input(out, store_dir.print_path(drv_path).as_bytes(), names)
            }),
            InputsForm::Hashes(hashes) => {
                push_list(&mut out, hashes, |out, (hash, names)| push_input(out, hash.as_bytes(), names))
            }
        }
        out.push(b',');
        push_list(&mut out, &self.input_sources, |out, path| {
            push_unescaped(out, store_dir.print_path(path).as_bytes())
        });
        out.push(b',');
        push_unescaped(&mut out, &self.platform);
        out.push(b',');
        push_escaped(&mut out, &self.builder);
        out.push(b',');
        push_list(&mut out, &self.args, |out, arg| push_escaped(out, arg));
        out.push(b',');
        push_list(&mut out, &self.env, |out, (key, value)| {
            out.push(b'(');
            push_escaped(out, key);
            out.push(b',');
            // Masking blanks the variables named after outputs, so the hash does
            // not depend on the paths it is about to determine.
            let masked = mask_outputs && std::str::from_utf8(key).is_ok_and(|k| self.outputs.contains_key(k));
            push_escaped(out, if masked { b"" } else { value });
            out.push(b')');
        });
        out.push(b')');
        out
    }

    /// The references a `.drv` file is registered with: its input sources and
    /// input derivations.
    pub fn references(&self) -> StorePathSet {
        let mut references = self.input_sources.clone();
        references.extend(self.input_derivations.keys().cloned());
        references
    }

    /// The store path of this derivation's `.drv` file, for a derivation named
    /// `name` (without `.drv`): a text path over the ATerm, referring to the
    /// inputs.
    pub fn drv_path(&self, store_dir: &StoreDir, name: &str) -> Result<StorePath, StorePathError> {
        store_dir.compute_text_path(&format!("{name}.drv"), &self.to_aterm(store_dir), &self.references())
    }

    /// Whether this is a fixed-output derivation (every output fixed).
    pub fn is_fixed_output(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| matches!(o, DerivationOutput::Fixed { .. }))
    }

    /// Whether this is an impure derivation (every output impure).
    pub fn is_impure(&self) -> bool {
        !self.outputs.is_empty() && self.outputs.values().all(|o| matches!(o, DerivationOutput::Impure { .. }))
    }

    /// Checks that the outputs form one of the kinds of derivation CppNix knows
    /// (its `Derivation::type()`): all input-addressed, all deferred, one fixed
    /// output named `out`, all floating with one hash algorithm, or all impure.
    pub fn check_outputs(&self) -> Result<(), DerivationError> {
        let Some(first) = self.outputs.values().next() else {
            return Err(DerivationError::NoOutputs);
        };
        let same_kind = self.outputs.values().all(|o| std::mem::discriminant(o) == std::mem::discriminant(first));
        if !same_kind {
            return Err(DerivationError::InvalidOutputs("can't mix derivation output types"));
        }
        match first {
            DerivationOutput::Fixed { .. } => {
                if self.outputs.len() > 1 {
                    return Err(DerivationError::InvalidOutputs("only one fixed output is allowed for now"));
                }
                if !self.outputs.contains_key("out") {
                    return Err(DerivationError::InvalidOutputs("single fixed output must be named \"out\""));
                }
            }
            DerivationOutput::Floating { algorithm: first_algorithm, .. } => {
                let same_algorithm = self
                    .outputs
                    .values()
                    .all(|o| matches!(o, DerivationOutput::Floating { algorithm, .. } if algorithm == first_algorithm));
                if !same_algorithm {
                    return Err(DerivationError::InvalidOutputs("all floating outputs must use the same hash type"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn has_floating_output(&self) -> bool {
        self.outputs.values().any(|o| matches!(o, DerivationOutput::Floating { .. }))
    }
}

// ---------------------------------------------------------------------------
// hashDerivationModulo

/// What stands for a derivation when the derivations depending on it are
/// hashed (CppNix's `DrvHashModulo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrvHashModulo {
    /// One hash for the whole derivation: the SHA-256 of its ATerm with input
    /// derivations replaced by their own hashes. `deferred` when it is or depends
    /// on a floating content-addressed derivation, so its output paths cannot be
    /// known yet.
    Drv { hash: Hash, deferred: bool },
    /// Fixed-output and impure derivations: a hash per output, standing in for
    /// that output alone, so that how a fixed output is fetched does not leak
    /// into the paths of what uses it.
    Outputs(BTreeMap<String, Hash>),
}

/// SHA-256 of the string `impure`, CppNix's stand-in for impure outputs.
fn impure_output_hash() -> Hash {
    Hash::of_bytes(HashAlgorithm::Sha256, b"impure")
}

impl Derivation {
    /// CppNix's `hashDerivationModulo`. `input_hash` gives the hash modulo of
    /// each input derivation (computed with `mask_outputs = false`, as CppNix's
    /// memo table does; [`DrvHashCache`] does this by reading the inputs).
    pub fn hash_modulo<E>(
        &self,
        store_dir: &StoreDir,
        mask_outputs: bool,
        mut input_hash: impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
    ) -> Result<DrvHashModulo, E>
    where
        E: From<DerivationError>,
    {
        self.check_outputs()?;
        if self.is_fixed_output() {
            let mut hashes = BTreeMap::new();
            for (name, output) in &self.outputs {
                let DerivationOutput::Fixed { method, hash, path } = output else { unreachable!() };
                let fingerprint = format!(
                    "fixed:out:{}:{}:{}",
                    method_algo(*method, hash.algorithm()),
                    hash.encode(HashEncoding::Base16, false),
                    store_dir.print_path(path)
                );
                hashes.insert(name.clone(), Hash::of_bytes(HashAlgorithm::Sha256, fingerprint.as_bytes()));
            }
            return Ok(DrvHashModulo::Outputs(hashes));
        }
        if self.is_impure() {
            let hashes = self.outputs.keys().map(|name| (name.clone(), impure_output_hash())).collect();
            return Ok(DrvHashModulo::Outputs(hashes));
        }

        let mut deferred = self.has_floating_output();
        let mut inputs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (drv_path, output_names) in &self.input_derivations {
            match input_hash(drv_path)? {
                DrvHashModulo::Drv { hash, deferred: input_deferred } => {
                    deferred |= input_deferred;
                    inputs.insert(hash.encode(HashEncoding::Base16, false), output_names.clone());
                }
                DrvHashModulo::Outputs(hashes) => {
                    // Each used output stands alone, as the `out` of a pretend derivation.
                    for output in output_names {
                        let hash = hashes.get(output).ok_or_else(|| DerivationError::MissingInputOutput {
                            drv: store_dir.print_path(drv_path),
                            output: output.clone(),
                        })?;
                        inputs.insert(hash.encode(HashEncoding::Base16, false), BTreeSet::from(["out".to_string()]));
                    }
                }
            }
        }
        let aterm = self.unparse(store_dir, mask_outputs, InputsForm::Hashes(&inputs));
        Ok(DrvHashModulo::Drv { hash: Hash::of_bytes(HashAlgorithm::Sha256, &aterm), deferred })
    }

    /// Completes a derivation fresh from evaluation, as `derivationStrict` does
    /// before writing it: computes the output paths and sets the environment
    /// variables named after the outputs. `name` is the derivation's name.
    ///
    /// On entry, the outputs say what kind each is: input-addressed ones may be
    /// [`DerivationOutput::Deferred`] or carry any path (it is replaced), fixed
    /// ones carry their hash (the path is replaced), floating and impure ones
    /// get [`hash_placeholder`]s in the environment. Input-addressed outputs get
    /// their paths from the hash modulo of the derivation with outputs masked;
    /// if an input is deferred they stay deferred, with empty variables.
    pub fn fill_output_paths<E>(
        &mut self,
        store_dir: &StoreDir,
        name: &str,
        input_hash: impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
    ) -> Result<(), E>
    where
        E: From<DerivationError> + From<StorePathError>,
    {
        if self.outputs.is_empty() {
            return Err(DerivationError::NoOutputs.into());
        }
        let mut input_addressed = Vec::new();
        for (output_name, output) in self.outputs.iter_mut() {
            match output {
                DerivationOutput::Fixed { method, hash, path } => {
                    let path_name = output_path_name(name, output_name);
                    *path = store_dir.make_fixed_output_path(*method, hash, &path_name, &StorePathSet::new(), false)?;
                    self.env.insert(output_name.as_bytes().to_vec(), store_dir.print_path(path).into_bytes());
                }
                DerivationOutput::Floating { .. } | DerivationOutput::Impure { .. } => {
                    self.env.insert(output_name.as_bytes().to_vec(), hash_placeholder(output_name).into_bytes());
                }
                DerivationOutput::InputAddressed(_) | DerivationOutput::Deferred => {
                    *output = DerivationOutput::Deferred;
                    self.env.insert(output_name.as_bytes().to_vec(), Vec::new());
                    input_addressed.push(output_name.clone());
                }
            }
        }
        self.check_outputs()?;
        if input_addressed.is_empty() {
            return Ok(());
        }
        let (hash, deferred) = match self.hash_modulo(store_dir, true, input_hash)? {
            DrvHashModulo::Drv { hash, deferred } => (hash, deferred),
            // Only possible when every output is fixed or impure, which leaves
            // no input-addressed output to fill.
            DrvHashModulo::Outputs(_) => return Ok(()),
        };
        if deferred {
            return Ok(());
        }
        for output_name in input_addressed {
            let path = store_dir.make_output_path(&output_name, &hash, name)?;
            self.env.insert(output_name.as_bytes().to_vec(), store_dir.print_path(&path).into_bytes());
            self.outputs.insert(output_name, DerivationOutput::InputAddressed(path));
        }
        Ok(())
    }
}

/// A memo table of hash modulo values of derivations in a store, filled by
/// reading them on demand (CppNix's `drvHashes`). Keep one per evaluation.
#[derive(Debug, Default, Clone)]
pub struct DrvHashCache {
    /// Hashed, not ordered: nothing iterates it, and a large evaluation does a
    /// lookup per input of every derivation.
    hashes: HashMap<StorePath, DrvHashModulo>,
}

impl DrvHashCache {
    pub fn new() -> DrvHashCache {
        DrvHashCache::default()
    }

    /// Records a hash computed elsewhere (e.g. right after writing a derivation).
    pub fn insert(&mut self, drv_path: StorePath, hash: DrvHashModulo) {
        self.hashes.insert(drv_path, hash);
    }

    /// Records the hash of a derivation just written at `drv_path`, from the
    /// hashes of its inputs already in the table (so a derivation built during
    /// evaluation is never read back from the store to hash what uses it).
    pub fn insert_derivation(
        &mut self,
        store_dir: &StoreDir,
        drv_path: &StorePath,
        drv: &Derivation,
    ) -> Result<DrvHashModulo, DerivationError> {
        let hash = drv.hash_modulo(store_dir, false, |input| {
            self.hashes
                .get(input)
                .cloned()
                .ok_or_else(|| DerivationError::MissingInputHash(store_dir.print_path(input)))
        })?;
        self.hashes.insert(drv_path.clone(), hash.clone());
        Ok(hash)
    }

    pub fn get(&self, drv_path: &StorePath) -> Option<&DrvHashModulo> {
        self.hashes.get(drv_path)
    }

    /// The hash modulo of the derivation at `drv_path`, reading it and its
    /// inputs with `read` as needed. Iterative, so deep chains of derivations
    /// do not exhaust the stack.
    pub fn hash_of<E>(
        &mut self,
        store_dir: &StoreDir,
        drv_path: &StorePath,
        read: &mut dyn FnMut(&StorePath) -> Result<Derivation, E>,
    ) -> Result<DrvHashModulo, E>
    where
        E: From<DerivationError>,
    {
        // Depth-first: a derivation is hashed once all its inputs are.
        let mut stack: Vec<(StorePath, Derivation)> = Vec::new();
        if let Some(hash) = self.hashes.get(drv_path) {
            return Ok(hash.clone());
        }
        stack.push((drv_path.clone(), read(drv_path)?));
        while let Some((path, drv)) = stack.last() {
            let missing = drv.input_derivations.keys().find(|input| !self.hashes.contains_key(*input)).cloned();
            match missing {
                Some(input) => {
                    if stack.iter().any(|(p, _)| *p == input) {
                        // A cycle cannot come from real store paths; refuse rather than loop.
                        return Err(DerivationError::MissingInputHash(store_dir.print_path(&input)).into());
                    }
                    let input_drv = read(&input)?;
                    stack.push((input, input_drv));
                }
                None => {
                    let hash = drv.hash_modulo(store_dir, false, |input| {
                        self.hashes
                            .get(input)
                            .cloned()
                            .ok_or_else(|| DerivationError::MissingInputHash(store_dir.print_path(input)))
                    })?;
                    let path = path.clone();
                    stack.pop();
                    self.hashes.insert(path, hash);
                }
            }
        }
        Ok(self.hashes[drv_path].clone())
    }
}
