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

use crate::hash::{Hash, HashAlgorithm, HashError, Sha256Writer, base16_into};
use crate::nixbase32;
use crate::store_path::{
    FileIngestionMethod, STORE_PATH_HASH_LEN, StoreDir, StorePath, StorePathBuildHasher, StorePathError, StorePathSet,
    output_path_name,
};

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
//
// `derivationStrict` serialises every new derivation three times (masked for
// its output paths, as the `.drv` text, unmasked for the derivations that use
// it), so the writer avoids allocating: paths and hashes are written in place,
// and the two ATerms that only feed a hash go straight into a SHA-256.

/// Where an ATerm goes: a buffer (the `.drv` file) or a hash.
trait AtermSink {
    fn put(&mut self, bytes: &[u8]);
    fn put_byte(&mut self, byte: u8);
}

impl AtermSink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

impl AtermSink for Sha256Writer {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }
    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.write_byte(byte);
    }
}

/// Appends `"s"` without escaping (CppNix's `printUnquotedString`).
fn push_unescaped(out: &mut impl AtermSink, s: &[u8]) {
    out.put_byte(b'"');
    out.put(s);
    out.put_byte(b'"');
}

/// Appends `"<store dir>/<base name>"`, unescaped like every path.
fn push_store_path(out: &mut impl AtermSink, store_dir: &StoreDir, path: &StorePath) {
    out.put_byte(b'"');
    out.put(store_dir.as_str().as_bytes());
    out.put_byte(b'/');
    out.put(path.base_name().as_bytes());
    out.put_byte(b'"');
}

/// Whether `byte` is written escaped: `"`, `\`, newline, CR, tab.
#[inline]
fn needs_escape(byte: u8) -> bool {
    matches!(byte, b'"' | b'\\' | b'\n' | b'\r' | b'\t')
}

/// The index of the first byte of `s` that needs an escape. Looks at eight
/// bytes at a time: a word with no `"`, no `\` and no byte below 0x0e (which
/// covers newline, CR and tab) is skipped whole; the rare word that has one of
/// those is looked at byte by byte. Environment values are long and almost
/// never contain an escape, so this is most of the time spent writing them.
fn find_escape(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero iff some byte of `word` is below `n` (n <= 0x80); a zero byte
    // of `word ^ ONES * b` is a byte equal to `b`.
    fn has_byte_below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * n as u64) & !word & HIGHS
    }
    let mut start = 0;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        let candidates = has_byte_below(word ^ (ONES * b'"' as u64), 1)
            | has_byte_below(word ^ (ONES * b'\\' as u64), 1)
            | has_byte_below(word, 0x0e);
        if candidates != 0
            && let Some(index) = chunk.iter().position(|&b| needs_escape(b))
        {
            return Some(start + index);
        }
        start += 8;
    }
    chunks.remainder().iter().position(|&b| needs_escape(b)).map(|index| start + index)
}

/// Appends `"s"` with `"`, `\`, newline, CR and tab escaped.
fn push_escaped(out: &mut impl AtermSink, s: &[u8]) {
    out.put_byte(b'"');
    let mut rest = s;
    while let Some(i) = find_escape(rest) {
        out.put(&rest[..i]);
        out.put(match rest[i] {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\t",
        });
        rest = &rest[i + 1..];
    }
    out.put(rest);
    out.put_byte(b'"');
}

fn push_list<W: AtermSink, T>(out: &mut W, items: impl IntoIterator<Item = T>, mut push_item: impl FnMut(&mut W, T)) {
    out.put_byte(b'[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.put_byte(b',');
        }
        push_item(out, item);
    }
    out.put_byte(b']');
}

/// `"[r:]<algo>"`, quoted.
fn push_method_algo(out: &mut impl AtermSink, method: FileIngestionMethod, algorithm: HashAlgorithm) {
    out.put_byte(b'"');
    out.put(method.prefix().as_bytes());
    out.put(algorithm.name().as_bytes());
    out.put_byte(b'"');
}

/// `"<base16>"`.
fn push_base16(out: &mut impl AtermSink, hash: &Hash) {
    let mut hex = [0u8; 128];
    out.put_byte(b'"');
    out.put(base16_into(hash.digest(), &mut hex));
    out.put_byte(b'"');
}

/// How the input derivations are written: as store paths (the `.drv` file), or
/// replaced by base16 hashes (inside `hashDerivationModulo`), already
/// rendered by [`Derivation::input_hashes`].
enum InputsForm<'a> {
    Paths,
    Rendered(&'a [u8]),
}

impl Derivation {
    /// The ATerm text, exactly as CppNix writes the `.drv` file.
    pub fn to_aterm(&self, store_dir: &StoreDir) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.aterm_size_hint());
        self.unparse(&mut out, store_dir, false, InputsForm::Paths);
        out
    }

    /// Roughly the length of the ATerm, so that its buffer grows at most once.
    fn aterm_size_hint(&self) -> usize {
        let env: usize = self.env.iter().map(|(key, value)| key.len() + value.len() + 8).sum();
        let args: usize = self.args.iter().map(|arg| arg.len() + 3).sum();
        let paths = (self.input_derivations.len() + self.input_sources.len() + self.outputs.len()) * 96;
        256 + env + args + paths + self.builder.len() + self.platform.len()
    }

    fn unparse(&self, out: &mut impl AtermSink, store_dir: &StoreDir, mask_outputs: bool, inputs: InputsForm<'_>) {
        out.put(b"Derive(");
        self.write_outputs(out, store_dir, mask_outputs);
        out.put_byte(b',');
        match inputs {
            InputsForm::Paths => self.write_input_paths(out, store_dir),
            InputsForm::Rendered(rendered) => out.put(rendered),
        }
        out.put_byte(b',');
        self.write_tail(out, store_dir, mask_outputs);
        out.put_byte(b')');
    }

    /// `[("out","/nix/store/…","",""),…]`; masking empties the paths.
    fn write_outputs<W: AtermSink>(&self, out: &mut W, store_dir: &StoreDir, mask_outputs: bool) {
        push_list(out, &self.outputs, |out, (name, output)| {
            out.put_byte(b'(');
            push_unescaped(out, name.as_bytes());
            out.put_byte(b',');
            let path = match output {
                DerivationOutput::InputAddressed(path) | DerivationOutput::Fixed { path, .. } if !mask_outputs => {
                    Some(path)
                }
                _ => None,
            };
            match path {
                Some(path) => push_store_path(out, store_dir, path),
                None => out.put(b"\"\""),
            }
            out.put_byte(b',');
            match output {
                DerivationOutput::InputAddressed(_) | DerivationOutput::Deferred => out.put(b"\"\",\"\""),
                DerivationOutput::Fixed { method, hash, .. } => {
                    push_method_algo(out, *method, hash.algorithm());
                    out.put_byte(b',');
                    push_base16(out, hash);
                }
                DerivationOutput::Floating { method, algorithm } => {
                    push_method_algo(out, *method, *algorithm);
                    out.put(b",\"\"");
                }
                DerivationOutput::Impure { method, algorithm } => {
                    push_method_algo(out, *method, *algorithm);
                    out.put(b",\"impure\"");
                }
            }
            out.put_byte(b')');
        });
    }

    /// `[("/nix/store/…drv",["out"]),…]`.
    fn write_input_paths<W: AtermSink>(&self, out: &mut W, store_dir: &StoreDir) {
        push_list(out, &self.input_derivations, |out, (drv_path, output_names)| {
            out.put_byte(b'(');
            push_store_path(out, store_dir, drv_path);
            out.put_byte(b',');
            push_list(out, output_names, |out, name| push_unescaped(out, name.as_bytes()));
            out.put_byte(b')');
        });
    }

    /// Everything after the input derivations: sources, platform, builder,
    /// arguments and environment (without the closing parenthesis).
    fn write_tail<W: AtermSink>(&self, out: &mut W, store_dir: &StoreDir, mask_outputs: bool) {
        push_list(out, &self.input_sources, |out, path| push_store_path(out, store_dir, path));
        out.put_byte(b',');
        push_unescaped(out, &self.platform);
        out.put_byte(b',');
        push_escaped(out, &self.builder);
        out.put_byte(b',');
        push_list(out, &self.args, |out, arg| push_escaped(out, arg));
        out.put_byte(b',');
        push_list(out, &self.env, |out, (key, value)| {
            out.put_byte(b'(');
            push_escaped(out, key);
            out.put_byte(b',');
            // Masking blanks the variables named after outputs, so the hash does
            // not depend on the paths it is about to determine. Derivations
            // have few outputs: a scan beats a map lookup.
            let masked = mask_outputs && self.outputs.keys().any(|name| name.as_bytes() == key.as_slice());
            push_escaped(out, if masked { b"" } else { value });
            out.put_byte(b')');
        });
    }

    /// The references of the `.drv` in set order without repeats (the union
    /// of input sources and input derivations), without building the set.
    fn references_in_order(&self) -> impl Iterator<Item = &StorePath> {
        let mut sources = self.input_sources.iter().peekable();
        let mut drvs = self.input_derivations.keys().peekable();
        std::iter::from_fn(move || match (sources.peek(), drvs.peek()) {
            (Some(source), Some(drv)) => match source.cmp(drv) {
                std::cmp::Ordering::Less => sources.next(),
                std::cmp::Ordering::Greater => drvs.next(),
                std::cmp::Ordering::Equal => {
                    drvs.next();
                    sources.next()
                }
            },
            (Some(_), None) => sources.next(),
            (None, _) => drvs.next(),
        })
    }

    /// The `.drv` file's path given the SHA-256 of its ATerm.
    fn drv_path_of(&self, store_dir: &StoreDir, name: &str, aterm_hash: &Hash) -> Result<StorePath, StorePathError> {
        let mut drv_name = String::with_capacity(name.len() + 4);
        drv_name.push_str(name);
        drv_name.push_str(".drv");
        store_dir.make_text_path_from(&drv_name, aterm_hash, self.references_in_order())
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
        let mut writer = Sha256Writer::new();
        self.unparse(&mut writer, store_dir, false, InputsForm::Paths);
        self.drv_path_of(store_dir, name, &writer.finish())
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

/// The input derivations as `hashDerivationModulo` writes them, rendered once
/// per derivation (the masked and the unmasked hash both need them).
struct InputHashes {
    /// `[("<base16 hash>",["out",…]),…]`, sorted by hash.
    rendered: Vec<u8>,
    /// Whether some input is deferred.
    deferred: bool,
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
        if let Some(hashes) = self.output_hashes(store_dir) {
            return Ok(DrvHashModulo::Outputs(hashes));
        }
        let inputs = self.input_hashes(store_dir, &mut input_hash)?;
        Ok(self.hash_with_inputs(store_dir, mask_outputs, &inputs))
    }

    /// The per-output hashes of a fixed-output or impure derivation (which do
    /// not depend on the inputs); `None` for the others.
    fn output_hashes(&self, store_dir: &StoreDir) -> Option<BTreeMap<String, Hash>> {
        if self.is_fixed_output() {
            let mut hashes = BTreeMap::new();
            for (name, output) in &self.outputs {
                let DerivationOutput::Fixed { method, hash, path } = output else { unreachable!() };
                // `fixed:out:[r:]<algo>:<base16>:<path>`
                let mut writer = Sha256Writer::new();
                crate::store_path::write_fixed_output_fingerprint(&mut writer, *method, hash);
                writer.write(store_dir.as_str().as_bytes());
                writer.write_byte(b'/');
                writer.write(path.base_name().as_bytes());
                hashes.insert(name.clone(), writer.finish());
            }
            return Some(hashes);
        }
        if self.is_impure() {
            return Some(self.outputs.keys().map(|name| (name.clone(), impure_output_hash())).collect());
        }
        None
    }

    /// Replaces each input derivation by its hash modulo, as CppNix does: a
    /// map from base16 hash to output names, where inputs with the same hash
    /// (possible when they differ only in equivalent fixed-output inputs) get
    /// the union of their output names; each used output of a fixed-output or
    /// impure input stands alone, as the `out` of a pretend derivation.
    fn input_hashes<E>(
        &self,
        store_dir: &StoreDir,
        input_hash: &mut impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
    ) -> Result<InputHashes, E>
    where
        E: From<DerivationError>,
    {
        let mut deferred = false;
        // `None` stands for the output names `["out"]`.
        let mut entries: Vec<(Hash, Option<&BTreeSet<String>>)> = Vec::with_capacity(self.input_derivations.len());
        for (drv_path, output_names) in &self.input_derivations {
            match input_hash(drv_path)? {
                DrvHashModulo::Drv { hash, deferred: input_deferred } => {
                    deferred |= input_deferred;
                    entries.push((hash, Some(output_names)));
                }
                DrvHashModulo::Outputs(hashes) => {
                    for output in output_names {
                        let hash = hashes.get(output).ok_or_else(|| DerivationError::MissingInputOutput {
                            drv: store_dir.print_path(drv_path),
                            output: output.clone(),
                        })?;
                        entries.push((*hash, None));
                    }
                }
            }
        }
        // Base16 order is digest byte order.
        entries.sort_unstable_by(|a, b| a.0.digest().cmp(b.0.digest()));
        let mut rendered = Vec::with_capacity(entries.len() * 90 + 2);
        rendered.push(b'[');
        let mut rest = entries.as_slice();
        while let Some((hash, output_names)) = rest.first() {
            let same_hash = rest.iter().take_while(|(other, _)| other.digest() == hash.digest()).count();
            if rendered.len() > 1 {
                rendered.push(b',');
            }
            rendered.push(b'(');
            push_base16(&mut rendered, hash);
            rendered.push(b',');
            if same_hash == 1 {
                match output_names {
                    Some(names) => push_list(&mut rendered, *names, |out, name| push_unescaped(out, name.as_bytes())),
                    None => rendered.extend_from_slice(b"[\"out\"]"),
                }
            } else {
                let union: BTreeSet<&str> = rest[..same_hash]
                    .iter()
                    .flat_map(|(_, names)| match names {
                        Some(names) => names.iter().map(String::as_str).collect::<Vec<_>>(),
                        None => vec!["out"],
                    })
                    .collect();
                push_list(&mut rendered, union, |out, name| push_unescaped(out, name.as_bytes()));
            }
            rendered.push(b')');
            rest = &rest[same_hash..];
        }
        rendered.push(b']');
        Ok(InputHashes { rendered, deferred })
    }

    /// The hash modulo of a derivation that is not fixed-output or impure,
    /// its ATerm streamed into the hash.
    fn hash_with_inputs(&self, store_dir: &StoreDir, mask_outputs: bool, inputs: &InputHashes) -> DrvHashModulo {
        let mut writer = Sha256Writer::new();
        self.unparse(&mut writer, store_dir, mask_outputs, InputsForm::Rendered(&inputs.rendered));
        DrvHashModulo::Drv { hash: writer.finish(), deferred: inputs.deferred || self.has_floating_output() }
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
        mut input_hash: impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
    ) -> Result<(), E>
    where
        E: From<DerivationError> + From<StorePathError>,
    {
        self.fill_output_paths_keeping_inputs(store_dir, name, &mut input_hash).map(|_| ())
    }

    /// [`Derivation::fill_output_paths`], returning the rendered input hashes
    /// when it needed them, for the hash modulo that follows.
    fn fill_output_paths_keeping_inputs<E>(
        &mut self,
        store_dir: &StoreDir,
        name: &str,
        input_hash: &mut impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
    ) -> Result<Option<InputHashes>, E>
    where
        E: From<DerivationError> + From<StorePathError>,
    {
        if self.outputs.is_empty() {
            return Err(DerivationError::NoOutputs.into());
        }
        let mut has_input_addressed = false;
        for (output_name, output) in self.outputs.iter_mut() {
            let value = match output {
                DerivationOutput::Fixed { method, hash, path } => {
                    let path_name = output_path_name(name, output_name);
                    *path = store_dir.make_fixed_output_path(*method, hash, &path_name, &StorePathSet::new(), false)?;
                    store_dir.print_path(path).into_bytes()
                }
                DerivationOutput::Floating { .. } | DerivationOutput::Impure { .. } => {
                    hash_placeholder(output_name).into_bytes()
                }
                DerivationOutput::InputAddressed(_) | DerivationOutput::Deferred => {
                    *output = DerivationOutput::Deferred;
                    has_input_addressed = true;
                    Vec::new()
                }
            };
            set_env(&mut self.env, output_name, value);
        }
        self.check_outputs()?;
        // Mixed kinds were refused: if one output is input-addressed, all are.
        if !has_input_addressed {
            return Ok(None);
        }
        let inputs = self.input_hashes(store_dir, input_hash)?;
        let DrvHashModulo::Drv { hash, deferred } = self.hash_with_inputs(store_dir, true, &inputs) else {
            unreachable!("hash_with_inputs gives one hash")
        };
        if deferred {
            return Ok(Some(inputs));
        }
        for (output_name, output) in self.outputs.iter_mut() {
            let path = store_dir.make_output_path(output_name, &hash, name)?;
            let mut printed = Vec::with_capacity(store_dir.as_str().len() + 1 + path.base_name().len());
            store_dir.write_path(&mut printed, &path);
            set_env(&mut self.env, output_name, printed);
            *output = DerivationOutput::InputAddressed(path);
        }
        Ok(Some(inputs))
    }

    /// What `derivationStrict` does with a derivation fresh from evaluation,
    /// in one pass: [`Derivation::fill_output_paths`], then the `.drv` text
    /// (left in `aterm`, for the caller to write), its store path, and the
    /// derivation's own hash modulo (unmasked), to record for the derivations
    /// that will use it. Each input's hash is asked for once.
    ///
    /// The unmasked hash modulo differs from the `.drv` text only in the input
    /// derivations, so it is hashed from the text with that list swapped.
    pub fn instantiate<E>(
        &mut self,
        store_dir: &StoreDir,
        name: &str,
        mut input_hash: impl FnMut(&StorePath) -> Result<DrvHashModulo, E>,
        aterm: &mut Vec<u8>,
    ) -> Result<(StorePath, DrvHashModulo), E>
    where
        E: From<DerivationError> + From<StorePathError>,
    {
        let inputs = self.fill_output_paths_keeping_inputs(store_dir, name, &mut input_hash)?;

        aterm.clear();
        aterm.reserve(self.aterm_size_hint());
        aterm.extend_from_slice(b"Derive(");
        self.write_outputs(aterm, store_dir, false);
        aterm.push(b',');
        let inputs_start = aterm.len();
        self.write_input_paths(aterm, store_dir);
        let inputs_end = aterm.len();
        aterm.push(b',');
        self.write_tail(aterm, store_dir, false);
        aterm.push(b')');
        let drv_path = self.drv_path_of(store_dir, name, &Hash::of_bytes(HashAlgorithm::Sha256, aterm))?;

        let hash_modulo = match self.output_hashes(store_dir) {
            Some(hashes) => DrvHashModulo::Outputs(hashes),
            None => {
                let inputs = match inputs {
                    Some(inputs) => inputs,
                    None => self.input_hashes(store_dir, &mut input_hash)?,
                };
                let mut writer = Sha256Writer::new();
                writer.write(&aterm[..inputs_start]);
                writer.write(&inputs.rendered);
                writer.write(&aterm[inputs_end..]);
                DrvHashModulo::Drv { hash: writer.finish(), deferred: inputs.deferred || self.has_floating_output() }
            }
        };
        Ok((drv_path, hash_modulo))
    }
}

/// Sets an output's environment variable, reusing the key when it is there.
fn set_env(env: &mut BTreeMap<Vec<u8>, Vec<u8>>, output_name: &str, value: Vec<u8>) {
    match env.get_mut(output_name.as_bytes()) {
        Some(slot) => *slot = value,
        None => {
            env.insert(output_name.as_bytes().to_vec(), value);
        }
    }
}


/// A memo table of hash modulo values of derivations in a store, filled by
/// reading them on demand (CppNix's `drvHashes`). Keep one per evaluation.
///
/// It holds an entry for every derivation of an evaluation (a nixpkgs-sized
/// one has tens of thousands), so entries are compact: keyed by the path's
/// hash part alone (it determines the path: the name is hashed into it), with
/// a derivation's one SHA-256 inline and only the rare per-output hashes of
/// fixed-output and impure derivations boxed. 72 bytes an entry, no
/// allocation of its own, where a `StorePath` key and a `DrvHashModulo` value
/// took 96 bytes plus the key's text.
#[derive(Debug, Default, Clone)]
pub struct DrvHashCache {
    /// Hashed, not ordered: nothing iterates it, and a large evaluation does a
    /// lookup per input of every derivation.
    hashes: HashMap<HashPart, CachedHashModulo, StorePathBuildHasher>,
}

/// The 32 nix32 characters of a store path's hash part, as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPart([u8; STORE_PATH_HASH_LEN]);

impl HashPart {
    pub fn of(path: &StorePath) -> HashPart {
        let mut bytes = [0u8; STORE_PATH_HASH_LEN];
        bytes.copy_from_slice(path.hash_part().as_bytes());
        HashPart(bytes)
    }
}

/// One write of the characters, which [`StorePathHasher`](crate::StorePathHasher)
/// mixes (the derived hash would write the length first).
impl std::hash::Hash for HashPart {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// [`DrvHashModulo`] as the cache keeps it.
#[derive(Debug, Clone)]
enum CachedHashModulo {
    Sha256 { digest: [u8; 32], deferred: bool },
    Other(Box<DrvHashModulo>),
}

impl CachedHashModulo {
    fn new(hash: DrvHashModulo) -> CachedHashModulo {
        match hash {
            DrvHashModulo::Drv { hash, deferred } if hash.algorithm() == HashAlgorithm::Sha256 => {
                let mut digest = [0u8; 32];
                digest.copy_from_slice(hash.digest());
                CachedHashModulo::Sha256 { digest, deferred }
            }
            other => CachedHashModulo::Other(Box::new(other)),
        }
    }

    fn get(&self) -> DrvHashModulo {
        match self {
            CachedHashModulo::Sha256 { digest, deferred } => DrvHashModulo::Drv {
                hash: Hash::from_digest(HashAlgorithm::Sha256, digest).expect("a SHA-256 digest is 32 bytes"),
                deferred: *deferred,
            },
            CachedHashModulo::Other(hash) => (**hash).clone(),
        }
    }
}

impl DrvHashCache {
    pub fn new() -> DrvHashCache {
        DrvHashCache::default()
    }

    /// Records a hash computed elsewhere (e.g. right after writing a derivation).
    pub fn insert(&mut self, drv_path: StorePath, hash: DrvHashModulo) {
        self.hashes.insert(HashPart::of(&drv_path), CachedHashModulo::new(hash));
    }

    fn contains(&self, drv_path: &StorePath) -> bool {
        self.hashes.contains_key(&HashPart::of(drv_path))
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
            self.get(input).ok_or_else(|| DerivationError::MissingInputHash(store_dir.print_path(input)))
        })?;
        self.insert(drv_path.clone(), hash.clone());
        Ok(hash)
    }

    pub fn get(&self, drv_path: &StorePath) -> Option<DrvHashModulo> {
        self.hashes.get(&HashPart::of(drv_path)).map(CachedHashModulo::get)
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
        if let Some(hash) = self.get(drv_path) {
            return Ok(hash);
        }
        stack.push((drv_path.clone(), read(drv_path)?));
        while let Some((path, drv)) = stack.last() {
            let missing = drv.input_derivations.keys().find(|input| !self.contains(input)).cloned();
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
                        self.get(input).ok_or_else(|| DerivationError::MissingInputHash(store_dir.print_path(input)))
                    })?;
                    let path = path.clone();
                    stack.pop();
                    self.insert(path, hash);
                }
            }
        }
        Ok(self.get(drv_path).expect("hashed above"))
    }
}
