//! The kept build log: `<log dir>/drvs/<2 chars>/<rest>.bz2`, bzip2 as CppNix
//! writes it, so `nix log` and `nix-store --read-log` of either tool read it.
//!
//! Why not simply a `BzEncoder` per build: setting up bzip2's compressor
//! allocates and clears about 7.6 MB at level 9 (block size 900 kB), which
//! was a fifth of all the CPU time of building 50 trivial derivations, most
//! of which log nothing at all. So the log is kept in memory until it is
//! larger than one level-1 block (100 kB): an empty log becomes the constant
//! empty bzip2 stream, a small one is compressed in one go at level 1 (one
//! block either way, so no worse than level 9), and only a large log starts
//! the level-9 stream CppNix would write, which from then on is streamed.
//! bzip2 emits nothing before a block is full anyway, so the file on disk
//! shows the same progress as before.

use std::fs;
use std::io::{self, Write};

/// What `bzip2 < /dev/null` writes: the header for level 9 and the
/// end-of-stream marker with a zero combined CRC.
pub(crate) const EMPTY_BZIP2_STREAM: [u8; 14] =
    [0x42, 0x5a, 0x68, 0x39, 0x17, 0x72, 0x45, 0x38, 0x50, 0x90, 0x00, 0x00, 0x00, 0x00];

/// Below this many bytes a log is one bzip2 block at level 1 (whose blocks
/// hold 100,000 bytes less a small reserve).
const SMALL_LOG: usize = 99_000;

/// A build log being written to its `.bz2` file.
pub(crate) struct CompressedLog {
    state: State,
}

enum State {
    /// Not compressed yet: the file and what was written so far.
    Buffered(fs::File, Vec<u8>),
    Streaming(bzip2::write::BzEncoder<fs::File>),
}

impl CompressedLog {
    /// Creates (truncates) the log file.
    pub(crate) fn create(path: &std::path::Path) -> io::Result<CompressedLog> {
        let file = fs::File::create(path)?;
        Ok(CompressedLog { state: State::Buffered(file, Vec::new()) })
    }

    pub(crate) fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.state {
            State::Streaming(encoder) => encoder.write_all(data),
            State::Buffered(file, buffer) => {
                buffer.extend_from_slice(data);
                if buffer.len() <= SMALL_LOG {
                    return Ok(());
                }
                let file = file.try_clone()?;
                let mut encoder = bzip2::write::BzEncoder::new(file, bzip2::Compression::best());
                encoder.write_all(buffer)?;
                self.state = State::Streaming(encoder);
                Ok(())
            }
        }
    }

    /// Writes the end of the stream.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self.state {
            State::Streaming(encoder) => encoder.finish().map(drop),
            State::Buffered(mut file, buffer) if buffer.is_empty() => file.write_all(&EMPTY_BZIP2_STREAM),
            State::Buffered(file, buffer) => {
                let mut encoder = bzip2::write::BzEncoder::new(file, bzip2::Compression::fast());
                encoder.write_all(&buffer)?;
                encoder.finish().map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn round_trip(contents: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("log.bz2");
        let mut log = CompressedLog::create(&path).expect("create");
        for chunk in contents.chunks(4096) {
            log.write_all(chunk).expect("write");
        }
        log.finish().expect("finish");
        let compressed = fs::read(&path).expect("read back");
        let mut plain = Vec::new();
        bzip2::read::MultiBzDecoder::new(&compressed[..]).read_to_end(&mut plain).expect("valid bzip2");
        plain
    }

    #[test]
    fn empty_small_and_large_logs_decompress_to_what_was_written() {
        assert_eq!(round_trip(b""), b"");
        let small: Vec<u8> = (0..5000u32).flat_map(|i| format!("line {i}\n").into_bytes()).collect();
        assert_eq!(round_trip(&small), small);
        let large: Vec<u8> = (0..200_000u32).flat_map(|i| format!("line {}\n", i * 7919 % 100_003).into_bytes()).collect();
        assert!(large.len() > SMALL_LOG);
        assert_eq!(round_trip(&large), large);
    }

    #[test]
    fn the_empty_stream_is_what_the_bzip2_library_writes() {
        let encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        assert_eq!(encoder.finish().expect("finish"), EMPTY_BZIP2_STREAM);
    }
}
