//! The compression methods of binary cache NARs (`Compression:` in a narinfo,
//! `?compression=` on a cache URI): `xz` (CppNix's default), `zstd`, `bzip2`
//! and `none`, as streaming readers and writers.

use std::io::{self, BufReader, Read, Write};

use crate::error::SubstituteError;

/// A compression method a binary cache may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Bzip2,
}

impl Compression {
    /// Parses the narinfo / URI spelling.
    pub fn parse(name: &str) -> Result<Compression, SubstituteError> {
        match name {
            "none" | "" => Ok(Compression::None),
            "xz" => Ok(Compression::Xz),
            "zstd" => Ok(Compression::Zstd),
            "bzip2" => Ok(Compression::Bzip2),
            other => Err(SubstituteError::UnknownCompression(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }

    /// The file name extension CppNix gives compressed NARs (`.nar.xz`, ...).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
        }
    }
}

/// How much of the compressed file an xz decoder reads at a time (the
/// library's default of 8 KiB means a system call per 8 KiB).
const XZ_INPUT_BUFFER: usize = 256 * 1024;

/// A decompressing reader that keeps access to the compressed stream below it,
/// so that the caller can read the compressed file to its end (and check its
/// hash) once the decompressed data is complete.
pub enum Decoder<R: Read> {
    None(R),
    Xz(liblzma::bufread::XzDecoder<BufReader<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
    Bzip2(bzip2::read::MultiBzDecoder<R>),
}

impl<R: Read> Decoder<R> {
    pub fn new(compression: Compression, raw: R) -> io::Result<Decoder<R>> {
        Ok(match compression {
            Compression::None => Decoder::None(raw),
            Compression::Xz => {
                // Several concatenated xz streams are valid (pixz and parallel
                // xz write them); read them all. The streams' own checksums
                // (CRC64 by default, a sixth of the decoding time) are not
                // verified: every consumer checks the NAR's SHA-256 (NarHash),
                // which covers the same bytes.
                let stream = liblzma::stream::Stream::new_auto_decoder(
                    u64::MAX,
                    liblzma::stream::CONCATENATED | liblzma::stream::IGNORE_CHECK,
                )
                .map_err(io::Error::other)?;
                Decoder::Xz(liblzma::bufread::XzDecoder::new_stream(BufReader::with_capacity(XZ_INPUT_BUFFER, raw), stream))
            }
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::new(raw)?),
            Compression::Bzip2 => Decoder::Bzip2(bzip2::read::MultiBzDecoder::new(raw)),
        })
    }

    /// Reads the rest of the compressed stream (after the decompressor has
    /// finished) and returns how many bytes that was.
    pub fn drain_raw(&mut self) -> io::Result<u64> {
        match self {
            Decoder::None(raw) => io::copy(raw, &mut io::sink()),
            Decoder::Xz(d) => io::copy(d.get_mut(), &mut io::sink()),
            Decoder::Zstd(d) => io::copy(d.get_mut(), &mut io::sink()),
            Decoder::Bzip2(d) => io::copy(d.get_mut(), &mut io::sink()),
        }
    }

    pub fn raw_mut(&mut self) -> &mut R {
        match self {
            Decoder::None(raw) => raw,
            Decoder::Xz(d) => d.get_mut().get_mut(),
            Decoder::Zstd(d) => d.get_mut().get_mut(),
            Decoder::Bzip2(d) => d.get_mut(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::None(r) => r.read(buf),
            Decoder::Xz(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Bzip2(d) => d.read(buf),
        }
    }
}

/// A compressing writer; [`Encoder::finish`] flushes the trailer and returns
/// the writer below.
pub enum Encoder<W: Write> {
    None(W),
    Xz(liblzma::write::XzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Bzip2(bzip2::write::BzEncoder<W>),
}

impl<W: Write> Encoder<W> {
    /// Levels are the tools' defaults, which CppNix uses too (xz 6, zstd 3, bzip2 9).
    pub fn new(compression: Compression, out: W) -> io::Result<Encoder<W>> {
        Ok(match compression {
            Compression::None => Encoder::None(out),
            Compression::Xz => Encoder::Xz(liblzma::write::XzEncoder::new(out, 6)),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(out, bzip2::Compression::best())),
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Xz(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Xz(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Xz(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
        }
    }
}
