//! Readers that check what a cache sends while it streams past: the
//! compressed file's hash and size (`FileHash`, `FileSize`) and the NAR's
//! (`NarHash`, `NarSize`).
//!
//! The NAR reader withholds the last bytes of the NAR until every check has
//! passed, so a consumer (a store's `add_nar`) never sees a complete NAR that
//! is wrong: a failed check surfaces as a read error, and the precise
//! [`SubstituteError`] is kept for the caller in [`VerifyingNarReader::take_error`].
//! When the consumer hashes the NAR itself anyway (a local store's `add_nar`
//! compares it with the `NarHash` it registers),
//! [`VerifyingNarReader::leave_nar_hash_to_consumer`] drops that one check
//! here, so that the NAR is hashed once; sizes and the compressed file's hash
//! are still checked.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use nivis_formats::{Hash, HashAlgorithm, HashEncoding, Hasher};

use crate::compression::{Compression, Decoder};
use crate::error::SubstituteError;

/// Hashes and counts the compressed bytes as they are read.
pub struct CountingHashReader<R: Read> {
    inner: R,
    hasher: Option<Hasher>,
    count: u64,
}

impl<R: Read> CountingHashReader<R> {
    pub fn new(inner: R, algorithm: Option<HashAlgorithm>) -> Self {
        CountingHashReader { inner, hasher: algorithm.map(Hasher::new), count: 0 }
    }
}

impl<R: Read> Read for CountingHashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// What the NAR of a narinfo must look like.
#[derive(Debug, Clone)]
pub struct NarExpectation {
    /// The printed store path, for messages.
    pub path: String,
    pub compression: Compression,
    pub file_hash: Option<Hash>,
    /// 0 when unknown.
    pub file_size: u64,
    pub nar_hash: Hash,
    pub nar_size: u64,
}

/// The decompressed, checked NAR of one store path.
pub struct VerifyingNarReader {
    decoder: Decoder<CountingHashReader<Box<dyn Read + Send>>>,
    expect: NarExpectation,
    /// `None` when the consumer checks the NAR hash.
    nar_hasher: Option<Hasher>,
    nar_count: u64,
    done: bool,
    error: Arc<Mutex<Option<SubstituteError>>>,
}

impl VerifyingNarReader {
    pub fn new(raw: Box<dyn Read + Send>, expect: NarExpectation) -> Result<Self, SubstituteError> {
        let raw = CountingHashReader::new(raw, expect.file_hash.as_ref().map(Hash::algorithm));
        let decoder = Decoder::new(expect.compression, raw).map_err(|e| SubstituteError::Decompression {
            path: expect.path.clone(),
            compression: expect.compression.name().to_string(),
            reason: e.to_string(),
        })?;
        Ok(VerifyingNarReader {
            decoder,
            nar_hasher: Some(Hasher::new(expect.nar_hash.algorithm())),
            expect,
            nar_count: 0,
            done: false,
            error: Arc::new(Mutex::new(None)),
        })
    }

    /// Leaves the check of the NAR's hash to the consumer, which must compare
    /// the NAR it reads with `NarHash` before using it (a store's `add_nar`
    /// does, with the hash of the path info it is given).
    pub fn leave_nar_hash_to_consumer(&mut self) {
        self.nar_hasher = None;
    }

    /// A handle on the precise reason of a failed read, usable after the
    /// reader has been moved into a consumer.
    pub fn error_slot(&self) -> Arc<Mutex<Option<SubstituteError>>> {
        self.error.clone()
    }

    /// The precise reason of the last failed read, if any.
    pub fn take_error(&self) -> Option<SubstituteError> {
        self.error.lock().ok().and_then(|mut slot| slot.take())
    }

    fn fail(&mut self, error: SubstituteError) -> io::Error {
        let message = error.to_string();
        if let Ok(mut slot) = self.error.lock() {
            *slot = Some(error);
        }
        self.done = true;
        io::Error::new(io::ErrorKind::InvalidData, message)
    }

    fn decompression_error(&self, e: io::Error) -> SubstituteError {
        SubstituteError::Decompression {
            path: self.expect.path.clone(),
            compression: self.expect.compression.name().to_string(),
            reason: e.to_string(),
        }
    }

    /// Every check that needs the whole stream: nothing after the NAR, the
    /// compressed file's size and hash, the NAR's hash.
    fn final_checks(&mut self) -> Result<(), SubstituteError> {
        let mut probe = [0u8; 1];
        let extra = self.decoder.read(&mut probe).map_err(|e| self.decompression_error(e))?;
        if extra != 0 {
            return Err(SubstituteError::SizeMismatch {
                what: "NAR",
                path: self.expect.path.clone(),
                expected: self.expect.nar_size,
                actual: self.expect.nar_size + 1 + io::copy(&mut self.decoder, &mut io::sink()).unwrap_or(0),
            });
        }
        self.decoder
            .drain_raw()
            .map_err(|e| SubstituteError::io(format!("reading the NAR of '{}'", self.expect.path), e))?;
        let raw = self.decoder.raw_mut();
        if self.expect.file_size != 0 && raw.count != self.expect.file_size {
            return Err(SubstituteError::SizeMismatch {
                what: "compressed file",
                path: self.expect.path.clone(),
                expected: self.expect.file_size,
                actual: raw.count,
            });
        }
        if let (Some(expected), Some(hasher)) = (&self.expect.file_hash, raw.hasher.take()) {
            let actual = hasher.finish();
            if &actual != expected {
                return Err(SubstituteError::HashMismatch {
                    what: "compressed file",
                    path: self.expect.path.clone(),
                    expected: expected.encode(HashEncoding::Nix32, true),
                    actual: actual.encode(HashEncoding::Nix32, true),
                });
            }
        }
        let Some(nar_hasher) = self.nar_hasher.take() else { return Ok(()) };
        let actual = nar_hasher.finish();
        if actual != self.expect.nar_hash {
            return Err(SubstituteError::HashMismatch {
                what: "NAR",
                path: self.expect.path.clone(),
                expected: self.expect.nar_hash.encode(HashEncoding::Nix32, true),
                actual: actual.encode(HashEncoding::Nix32, true),
            });
        }
        Ok(())
    }
}

impl Read for VerifyingNarReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.expect.nar_size - self.nar_count;
        let want = buf.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match self.decoder.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                let error = self.decompression_error(e);
                return Err(self.fail(error));
            }
        };
        if n == 0 {
            let error = SubstituteError::Truncated {
                path: self.expect.path.clone(),
                expected: self.expect.nar_size,
                actual: self.nar_count,
            };
            return Err(self.fail(error));
        }
        if let Some(nar_hasher) = &mut self.nar_hasher {
            nar_hasher.update(&buf[..n]);
        }
        self.nar_count += n as u64;
        if self.nar_count == self.expect.nar_size {
            // The last bytes go out only when everything checks out.
            if let Err(error) = self.final_checks() {
                return Err(self.fail(error));
            }
            self.done = true;
        }
        Ok(n)
    }
}
