//! Shared helpers for the differential tests: running CppNix 2.8 (the reference
//! peer, at /usr/bin) and a small seeded random generator so failures reproduce.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Runs a CppNix command and returns its stdout with the trailing newline removed;
/// panics with stderr if it fails (a failing reference is a broken test setup).
pub fn cppnix(program: &str, args: &[&str]) -> String {
    let output = Command::new(format!("/usr/bin/{program}"))
        .args(args)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/{program}: {e}"));
    assert!(
        output.status.success(),
        "/usr/bin/{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("CppNix output is UTF-8").trim_end_matches('\n').to_string()
}

/// Same as [`cppnix`] with `Path` arguments mixed in.
pub fn cppnix_path(program: &str, args: &[&str], path: &Path) -> String {
    let mut all: Vec<&str> = args.to_vec();
    let path = path.to_str().expect("test paths are UTF-8");
    all.push(path);
    cppnix(program, &all)
}

/// xorshift64*: small, seeded, good enough to make varied test inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    pub fn chance(&mut self, numerator: usize, denominator: usize) -> bool {
        self.below(denominator) < numerator
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}
