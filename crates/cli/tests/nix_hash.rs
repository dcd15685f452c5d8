//! `nix-hash` and `nix hash` against CppNix 2.8: the same stdout, stderr and
//! exit code for every flag combination on random trees and files, and for
//! hash conversions. Flags CppNix 2.8 lacks are checked against values derived
//! from 2.8's own output (an SRI hash is the base64 of the digest it prints).

#[path = "../../formats/tests/common/mod.rs"]
mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{Rng, random_tree};

struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

/// Runs our binary as `name` (argv[0] decides the command), with the same
/// argv[0] CppNix gets so that "Try '... --help'" lines match.
fn ours(name: &str, args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0(format!("/usr/bin/{name}"))
        .args(args)
        .output()
        .unwrap();
    Outcome {
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        code: output.status.code(),
    }
}

fn theirs(name: &str, args: &[&str]) -> Outcome {
    let output = Command::new(format!("/usr/bin/{name}"))
        .args(args)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .unwrap();
    Outcome {
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        code: output.status.code(),
    }
}

fn assert_same(name: &str, args: &[&str]) {
    let (a, b) = (ours(name, args), theirs(name, args));
    assert_eq!(a.stdout, b.stdout, "stdout of {name} {args:?}");
    assert_eq!(a.stderr, b.stderr, "stderr of {name} {args:?}");
    assert_eq!(a.code, b.code, "exit code of {name} {args:?}");
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn nix_hash_matches_cppnix_on_random_trees_in_every_combination() {
    let work = tempfile::tempdir().unwrap();
    let mut targets = Vec::new();
    for seed in 0..4 {
        let root = work.path().join(format!("tree{seed}"));
        random_tree(&mut Rng::new(500 + seed), &root, 0);
        targets.push(root);
    }
    let big = work.path().join("big.bin");
    std::fs::write(&big, Rng::new(9).bytes(3 * 1024 * 1024 + 5)).unwrap();
    let link = work.path().join("link");
    std::os::unix::fs::symlink("big.bin", &link).unwrap();
    let empty = work.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    targets.extend([big.clone(), link.clone(), empty.clone()]);
    let target_args: Vec<&str> = targets.iter().map(|p| path_str(p)).collect();

    // 2.8 knows --base32 and --truncate; run every combination with every type.
    for algorithm in [None, Some("md5"), Some("sha1"), Some("sha256"), Some("sha512")] {
        for base32 in [false, true] {
            for truncate in [false, true] {
                let mut args = Vec::new();
                if let Some(algorithm) = algorithm {
                    args.extend(["--type", algorithm]);
                }
                if base32 {
                    args.push("--base32");
                }
                if truncate {
                    args.push("--truncate");
                }
                let mut all = args.clone();
                all.extend(&target_args);
                assert_same("nix-hash", &all);
                // --flat on the regular files (and the symlink, which it follows).
                let mut flat = args.clone();
                flat.push("--flat");
                flat.extend([path_str(&big), path_str(&link), path_str(&empty)]);
                assert_same("nix-hash", &flat);
            }
        }
    }
}

/// `--base64` and `--sri` are newer than 2.8: they must print the digest 2.8
/// prints in base16, re-encoded (checked with 2.8's `nix hash to-*`).
#[test]
fn nix_hash_newer_formats_agree_with_cppnix_digests() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    random_tree(&mut Rng::new(600), &root, 0);
    for algorithm in ["md5", "sha1", "sha256", "sha512"] {
        let base16 = theirs("nix-hash", &["--type", algorithm, path_str(&root)]).stdout;
        let base16 = base16.trim();
        let sri = theirs("nix", &["hash", "to-sri", "--type", algorithm, base16]).stdout;
        let base64 = theirs("nix", &["hash", "to-base64", "--type", algorithm, base16]).stdout;
        assert_eq!(ours("nix-hash", &["--type", algorithm, "--sri", path_str(&root)]).stdout, sri);
        assert_eq!(ours("nix-hash", &["--type", algorithm, "--base64", path_str(&root)]).stdout, base64);
        // The last format flag wins.
        assert_eq!(ours("nix-hash", &["--type", algorithm, "--sri", "--base16", path_str(&root)]).stdout.trim(), base16);
        // --to-sri/--to-base64 convert like 2.8's `nix hash to-*`.
        assert_eq!(ours("nix-hash", &["--type", algorithm, "--to-sri", base16]).stdout, sri);
        assert_eq!(ours("nix-hash", &["--type", algorithm, "--to-base64", base16]).stdout, base64);
        // A prefixed hash needs no --type (current CppNix).
        assert_eq!(ours("nix-hash", &["--to-base64", sri.trim()]).stdout, base64);
    }
}

#[test]
fn nix_hash_conversions_match_cppnix() {
    let mut rng = Rng::new(11);
    for algorithm in ["md5", "sha1", "sha256", "sha512"] {
        let size = match algorithm {
            "md5" => 16,
            "sha1" => 20,
            "sha256" => 32,
            _ => 64,
        };
        let hex: String = rng.bytes(size).iter().map(|b| format!("{b:02x}")).collect();
        let nix32 = theirs("nix-hash", &["--type", algorithm, "--to-base32", &hex]).stdout;
        let nix32 = nix32.trim();
        for input in [hex.as_str(), nix32, &hex.to_uppercase()] {
            assert_same("nix-hash", &["--type", algorithm, "--to-base32", input]);
            assert_same("nix-hash", &["--type", algorithm, "--to-base16", input]);
            let prefixed = format!("{algorithm}:{input}");
            assert_same("nix-hash", &["--type", algorithm, "--to-base16", &prefixed]);
            for sub in ["to-base16", "to-base32", "to-base64", "to-sri"] {
                assert_same("nix", &["hash", sub, "--type", algorithm, input]);
                assert_same("nix", &["hash", sub, &prefixed]);
            }
        }
        // Bare hashes default to MD5 in 2.8's nix-hash.
        assert_same("nix-hash", &["--to-base32", &hex]);
    }
}

#[test]
fn nix_hash_errors_match_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("missing");
    let dir = work.path();
    let zeros = "0".repeat(64);
    let cases: Vec<Vec<&str>> = vec![
        vec!["--bogus"],
        vec!["--type"],
        vec!["--type", "sha3", "x"],
        vec![path_str(&missing)],
        vec!["--flat", path_str(dir)],
        vec!["--flat", path_str(&missing)],
        vec!["--", "--x"],
        vec!["--to-base32", "zzz"],
        vec!["--to-base32", "--type", "sha256", "!!!!"],
        vec!["--to-base16", "--type", "sha256", &zeros[..52]],
        vec!["--to-base16", "--type", "md5", "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"],
        vec!["--to-base16", "--type", "sha256", "sha256-abc"],
        vec!["--to-base16", "--type", "sha256", "sha3:abc"],
        vec!["--to-base16", "--type", "sha256", "e".repeat(52).leak()],
        vec!["--to-base16", "--type", "sha256", "g".repeat(64).leak()],
        vec![],
        vec!["--to-base32"],
    ];
    for args in cases {
        assert_same("nix-hash", &args);
    }
}

#[test]
fn nix_hash_subcommands_match_cppnix() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    random_tree(&mut Rng::new(700), &root, 0);
    let file = work.path().join("file");
    std::fs::write(&file, Rng::new(12).bytes(100_000)).unwrap();
    let (root, file) = (path_str(&root), path_str(&file));
    for format in [None, Some("--base16"), Some("--base32"), Some("--base64"), Some("--sri")] {
        for algorithm in [None, Some("md5"), Some("sha1"), Some("sha256"), Some("sha512")] {
            let mut flags = Vec::new();
            flags.extend(format);
            if let Some(algorithm) = algorithm {
                flags.extend(["--type", algorithm]);
            }
            let mut path_args = vec!["hash", "path"];
            path_args.extend(&flags);
            path_args.extend([root, file]);
            assert_same("nix", &path_args);
            let mut file_args = vec!["hash", "file"];
            file_args.extend(&flags);
            file_args.push(file);
            assert_same("nix", &file_args);
        }
    }
    for args in [
        &["hash"][..],
        &["hash", "bogus"],
        &["hash", "path", "--type"],
        &["hash", "path", "--type", "foo", root],
        &["hash", "path", "--truncate", root],
        &["hash", "path", "/nonexistent"],
        &["hash", "file", work.path().to_str().unwrap()],
        &["hash", "path"],
        &["hash", "to-base16", "sha256-abc"],
        &["hash", "to-base32", "--type=sha256", "x"],
    ] {
        assert_same("nix", args);
    }
}

/// `nix hash convert` and `nix hash path --algo/--format/--mode` are newer than
/// 2.8; their output must be 2.8's digests in the requested encoding.
#[test]
fn nix_hash_convert_and_newer_path_flags() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("file");
    std::fs::write(&file, b"hello\n").unwrap();
    let file = path_str(&file);
    let base16 = theirs("nix-hash", &["--type", "sha1", file]).stdout.trim().to_string();
    let nix32 = theirs("nix-hash", &["--type", "sha1", "--base32", file]).stdout.trim().to_string();
    let sri = theirs("nix", &["hash", "to-sri", "--type", "sha1", &base16]).stdout.trim().to_string();
    let base64 = theirs("nix", &["hash", "to-base64", "--type", "sha1", &base16]).stdout.trim().to_string();

    let line = |args: &[&str]| {
        let outcome = ours("nix", args);
        assert_eq!(outcome.code, Some(0), "{args:?}: {}", outcome.stderr);
        outcome.stdout.trim().to_string()
    };
    assert_eq!(line(&["hash", "convert", "--hash-algo", "sha1", &base16]), sri);
    assert_eq!(line(&["hash", "convert", "--hash-algo", "sha1", "--to", "nix32", &base16]), nix32);
    assert_eq!(line(&["hash", "convert", "--to", "base16", &sri]), base16);
    assert_eq!(line(&["hash", "convert", "--to", "base64", "--from", "sri", &sri]), base64);
    assert_eq!(line(&["hash", "convert", "--from", "nix32", "--to", "base16", &format!("sha1:{nix32}")]), base16);
    let mismatch = ours("nix", &["hash", "convert", "--hash-algo", "sha1", "--from", "nix32", &base16]);
    assert_eq!(
        mismatch.stderr,
        format!("error: input hash '{base16}' has format 'base16', but '--from nix32' was specified\n")
    );
    assert_eq!(mismatch.code, Some(1));
    let bad_format = ours("nix", &["hash", "convert", "--to", "hex", &sri]);
    assert!(bad_format.stderr.starts_with("error: unknown hash format 'hex'"), "{}", bad_format.stderr);

    assert_eq!(line(&["hash", "path", "--algo", "sha1", "--format", "base16", "--mode", "flat", file]), {
        theirs("nix-hash", &["--flat", "--type", "sha1", file]).stdout.trim().to_string()
    });
    assert_eq!(line(&["hash", "path", "--algo", "sha1", "--format", "nix32", file]), nix32);
}
