//! Shared helpers for the differential tests: running CppNix 2.8 (the reference
//! peer, at /usr/bin) and a small seeded random generator so failures reproduce.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
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

/// Names chosen to trip up sorting, quoting and escaping.
pub const AWKWARD_NAMES: &[&[u8]] = &[
    b"a", b"A", b"b", b"Z", b"a-", b"a.", b"a0", b"aa", b"with space", b" leading-space", b"-leading-dash",
    b"--", b"new\nline", b"tab\there", b"uni\xc3\xbc\xe6\x97\xa5\xe6\x9c\xac", b"\xff\xfenot-utf8", b"x.y.z",
    b"quote\"'`", b"back\\slash", b"star*?[]", b"$dollar", b"...", b".hidden", b"e\xcc\x81", b"\xc3\xa9",
];

/// Builds a random tree (awkward names, file modes, relative, absolute and
/// dangling symlinks, empty files and directories) at `root` (a directory) from `rng`.
pub fn random_tree(rng: &mut Rng, root: &Path, depth: usize) {
    fs::create_dir(root).unwrap();
    let entries = rng.below(if depth == 0 { 10 } else { 6 });
    for _ in 0..entries {
        let mut name = rng.pick(AWKWARD_NAMES).to_vec();
        if rng.chance(1, 3) {
            name.extend_from_slice(format!("{}", rng.below(100)).as_bytes());
        }
        let path = root.join(OsStr::from_bytes(&name));
        if fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        match rng.below(10) {
            0..=4 => {
                let len = match rng.below(6) {
                    0 => 0,
                    1 => rng.below(8),
                    2 => 8 * rng.below(4),
                    _ => rng.below(5000),
                };
                fs::write(&path, rng.bytes(len)).unwrap();
                let mode = *rng.pick(&[0o644, 0o755, 0o700, 0o500, 0o444, 0o711, 0o600]);
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            }
            5..=6 => {
                let targets: [&[u8]; 8] = [
                    b"a", b"../up", b"/nix/store/abc-absolute", b"dangling/nowhere", b".", b"..",
                    b"new\nline-target", b"uni\xc3\xbc",
                ];
                let target = *rng.pick(&targets);
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).unwrap();
            }
            _ if depth < 3 => random_tree(rng, &path, depth + 1),
            _ => fs::create_dir(&path).unwrap(),
        }
    }
}
