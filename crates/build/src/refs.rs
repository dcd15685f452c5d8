//! Finding references: which of a set of candidate store paths does a build
//! output mention? Like CppNix's `RefScanSink`, we look for the 32-character
//! nix32 hash part of each candidate anywhere in the output's NAR serialisation
//! (file contents, symlink targets and file names), streaming, across chunk
//! boundaries.
//!
//! The scan skips ahead Boyer-Moore style: a window of 32 bytes can only be a
//! hash part if every byte is a nix32 character, so on a non-nix32 byte at
//! offset `j` of the window the next candidate window starts after it. Text
//! that is mostly not nix32 is scanned in a fraction of its bytes. Inside a
//! long nix32 run the window slides a byte at a time, and a bitmap of the
//! candidates' two-byte prefixes avoids hashing most windows.

use std::collections::{BTreeSet, HashMap};

/// Length of a store path's hash part in characters.
pub const HASH_PART_LEN: usize = 32;

const NIX32_ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

const IS_NIX32: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < NIX32_ALPHABET.len() {
        table[NIX32_ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// A streaming scanner for references to candidate store paths.
#[derive(Clone, Debug)]
pub struct ReferenceScanner {
    /// Hash part to the candidate store path it came from.
    candidates: HashMap<[u8; HASH_PART_LEN], String>,
    found: BTreeSet<[u8; HASH_PART_LEN]>,
    /// A bit for each two-byte prefix some candidate starts with.
    prefixes: Box<[u64; 1024]>,
    /// The last bytes seen, so a hash part split across two `feed` calls is found.
    tail: Vec<u8>,
}

impl ReferenceScanner {
    /// Candidates are store paths (`/nix/store/<hash>-<name>`, or bare base
    /// names); their hash part is the first 32 characters of the base name.
    /// Paths whose base name is too short to have a hash part are ignored.
    pub fn new<I, S>(candidate_paths: I) -> ReferenceScanner
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut candidates = HashMap::new();
        let mut prefixes = Box::new([0u64; 1024]);
        for path in candidate_paths {
            let path = path.as_ref();
            let base_name = path.rsplit('/').next().unwrap_or(path);
            if let Some(hash_part) = base_name.as_bytes().get(..HASH_PART_LEN) {
                let mut key = [0u8; HASH_PART_LEN];
                key.copy_from_slice(hash_part);
                let prefix = usize::from(key[0]) << 8 | usize::from(key[1]);
                prefixes[prefix / 64] |= 1 << (prefix % 64);
                candidates.insert(key, path.to_string());
            }
        }
        ReferenceScanner { candidates, found: BTreeSet::new(), prefixes, tail: Vec::with_capacity(2 * HASH_PART_LEN) }
    }

    /// Scans the next bytes of the stream.
    pub fn feed(&mut self, data: &[u8]) {
        if self.candidates.is_empty() || data.is_empty() {
            return;
        }
        // Windows that straddle the previous chunk and this one.
        if !self.tail.is_empty() {
            let head = &data[..data.len().min(HASH_PART_LEN - 1)];
            let mut seam = std::mem::take(&mut self.tail);
            seam.extend_from_slice(head);
            self.scan(&seam);
            seam.truncate(seam.len() - head.len());
            self.tail = seam;
        }
        self.scan(data);
        // Keep the last 31 bytes of (tail + data) for the next seam.
        if data.len() >= HASH_PART_LEN - 1 {
            self.tail.clear();
            self.tail.extend_from_slice(&data[data.len() - (HASH_PART_LEN - 1)..]);
        } else {
            self.tail.extend_from_slice(data);
            let excess = self.tail.len().saturating_sub(HASH_PART_LEN - 1);
            self.tail.drain(..excess);
        }
    }

    fn scan(&mut self, buffer: &[u8]) {
        let mut start = 0;
        'windows: while start + HASH_PART_LEN <= buffer.len() {
            // Check a fresh window from its end: a bad byte late in the window
            // lets us skip the most.
            for offset in (0..HASH_PART_LEN).rev() {
                if !IS_NIX32[buffer[start + offset] as usize] {
                    start += offset + 1;
                    continue 'windows;
                }
            }
            // A valid window; slide it one byte at a time while the byte
            // entering it is valid too, so a long nix32 run costs one table
            // look-up per byte instead of 32.
            loop {
                self.check_window(&buffer[start..start + HASH_PART_LEN]);
                let entering = start + HASH_PART_LEN;
                if entering >= buffer.len() {
                    break 'windows;
                }
                if !IS_NIX32[buffer[entering] as usize] {
                    start = entering + 1;
                    continue 'windows;
                }
                start += 1;
            }
        }
    }

    fn check_window(&mut self, window: &[u8]) {
        // Most windows in nix32-heavy data match no candidate: a bit per
        // two-byte prefix rules them out before hashing all 32 bytes.
        let prefix = usize::from(window[0]) << 8 | usize::from(window[1]);
        if self.prefixes[prefix / 64] & (1 << (prefix % 64)) == 0 {
            return;
        }
        let window: &[u8; HASH_PART_LEN] = window.try_into().expect("window length");
        if self.candidates.contains_key(window) {
            self.found.insert(*window);
        }
    }

    /// The candidate store paths found so far, sorted.
    pub fn found_paths(&self) -> BTreeSet<String> {
        self.found.iter().filter_map(|hash| self.candidates.get(hash).cloned()).collect()
    }
}

impl std::io::Write for ReferenceScanner {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix32_of_sha256_matches_cppnix() {
        // `nix-hash --type sha256 --flat --base32` of a file containing "big".
        use sha2::{Digest, Sha256};
        assert_eq!(
            nivis_formats::nixbase32::encode(&Sha256::digest(b"big")),
            "1lak0mvllw8rv9i9ygkglvhqsq19qi9ynl4bi7gbf69ab5nzw89a"
        );
    }

    #[test]
    fn finds_hash_split_across_every_chunk_boundary() {
        let path = "/nix/store/7l8g3v9pyw331xxjp8yzy6a44ryxm4nx-envdump-dev";
        let text = b"prefix /nix/store/7l8g3v9pyw331xxjp8yzy6a44ryxm4nx-envdump-dev suffix";
        for split in 0..text.len() {
            let mut scanner = ReferenceScanner::new([path, "/nix/store/00000000000000000000000000000000-other"]);
            scanner.feed(&text[..split]);
            scanner.feed(&text[split..]);
            assert_eq!(
                scanner.found_paths().into_iter().collect::<Vec<_>>(),
                vec![path.to_string()],
                "split at {split}"
            );
        }
        // Byte by byte, the worst case for the seam logic.
        let mut scanner = ReferenceScanner::new([path]);
        for byte in text {
            scanner.feed(std::slice::from_ref(byte));
        }
        assert_eq!(scanner.found_paths().len(), 1);
    }

    #[test]
    fn finds_hashes_inside_long_nix32_runs() {
        let first = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
        let second = "zyxwvsrqpnmlkjihgfdcba9876543210";
        let mut scanner = ReferenceScanner::new([format!("/nix/store/{first}-a"), format!("/nix/store/{second}-b")]);
        // Both hash parts embedded in one unbroken nix32 run, overlapping the
        // filler on both sides.
        let text = format!("xx{first}00{second}zz-");
        scanner.feed(text.as_bytes());
        assert_eq!(scanner.found_paths().len(), 2);
    }

    #[test]
    fn ignores_non_candidates_and_partial_hashes() {
        let mut scanner = ReferenceScanner::new(["/nix/store/7l8g3v9pyw331xxjp8yzy6a44ryxm4nx-a"]);
        scanner.feed(b"7l8g3v9pyw331xxjp8yzy6a44ryxm4n 7l8g3v9pyw331xxjp8yzy6a44ryxm4nz");
        assert!(scanner.found_paths().is_empty());
    }
}
