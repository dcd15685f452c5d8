//! The layout of evaluation errors, byte for byte against CppNix 2.8: the
//! message, `at FILE:LINE:COLUMN:`, the numbered source lines with a caret, the
//! `--show-trace` frames (or the hint to use it), and the exit status, for the
//! errors users meet most: an undefined variable, a type error, a failed
//! assertion, a missing attribute, infinite recursion, `throw` and `abort`.
//! (A call without a required argument is worded as current CppNix words it,
//! "function 'f' called without required argument 'a'", so it is not here.)

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const CASES: &[(&str, &str)] = &[
    ("undefined-variable", "let\n  x = 1;\nin\n  x + y\n"),
    ("type-error", "let\n  f = a: a + 1;\nin\n  f \"s\"\n"),
    ("assertion", "let\n  v = 3;\nin\n  assert v == 4;\n  v\n"),
    ("missing-attribute", "let\n  s = { a = 1; b = 2; };\nin\n  s.c\n"),
    ("missing-attribute-suggestion", "let\n  s = { alpha = 1; beta = 2; };\nin\n  s.alhpa\n"),
    ("infinite-recursion", "let\n  x = x + 1;\nin\n  x\n"),
    ("throw-deep", "let\n  f = n: if n == 0 then throw \"reached zero\" else f (n - 1);\nin\n  f 2\n"),
    ("abort", "let\n  g = abort \"stop here\";\nin\n  { a = g; }.a\n"),
    ("not-a-function", "let\n  n = 3;\nin\n  n 4\n"),
];

#[test]
fn common_errors_look_like_cppnix() {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in CASES {
        let file = dir.path().join(format!("eval-fail-{name}.nix"));
        std::fs::write(&file, source).unwrap();
        for flags in [&["--eval"][..], &["--eval", "--show-trace"], &["--eval", "--strict"]] {
            let mut args: Vec<&str> = flags.to_vec();
            args.push(file.to_str().unwrap());
            let ours = Command::new(env!("CARGO_BIN_EXE_nivis")).arg0("nix-instantiate").args(&args).output().unwrap();
            let theirs = Command::new("/usr/bin/nix-instantiate").args(&args).output().unwrap();
            assert!(!theirs.status.success(), "{name} must fail under CppNix");
            assert_eq!(ours.status.code(), theirs.status.code(), "{name} {flags:?}");
            assert_eq!(
                String::from_utf8_lossy(&ours.stderr),
                String::from_utf8_lossy(&theirs.stderr),
                "{name} {flags:?}"
            );
        }
    }
}
