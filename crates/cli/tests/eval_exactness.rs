//! Small corners of evaluation found by differential checks against CppNix
//! 2.8, each run through both `nix-instantiate`s: stdout, exit status and the
//! first line of stderr (the message) must agree. Cases whose output the
//! corpus in `tests/lang` cannot hold live here: error messages (an eval-fail
//! case only has to fail) and lazy printing (the corpus prints `--strict`).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

/// (flags before `-E`, expression).
const CASES: &[(&[&str], &str)] = &[
    // Output names are separated by space, tab, newline and return only: a
    // form feed stays in the name (and makes it an invalid store path name).
    (&["--eval", "--strict"], "builtins.derivationStrict { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; outputs = \"out${builtins.fromJSON \"\\\"\\\\u000c\\\"\"}dev  bin\"; }"),
    (&["--eval", "--strict"], "builtins.derivationStrict { name = \"x\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; outputs = \"out\\tdev \\n bin\"; }"),
    // Without --strict, an attribute or list element not evaluated yet prints
    // as <CODE>, arithmetic included (nivis computes some integer arithmetic
    // early, but a list's or set's element computed so still prints as
    // unevaluated until something forces it).
    (&["--eval"], "{ a = 1 + 1; b = [ (2 * 3) (4 - 1) ]; c = let x = 1 + 1; in x; d = \"${toString 1}\"; }"),
    (&["--eval"], "let f = n: { half = n / 2; next = f (n - 1); }; in f 10"),
    (&["--eval"], "let y = 3; f = x: [ x (x + 1) (x - 1) (x * 2) ]; p = f y; q = f 5; r = f 7; in builtins.seq (builtins.foldl' (a: b: a + b * 2) 0 p) (builtins.seq (builtins.elemAt q 2) (builtins.seq (map (x: x) r) { inherit p q r; s = { a = y + 1; b = y + 2; }; }))"),
    // Built-in functions are named in type errors, as CppNix's showType does.
    (&["--eval"], "builtins.add.x"),
    (&["--eval"], "(builtins.add 1).x"),
    (&["--eval"], "\"${builtins.add}\""),
    (&["--eval"], "builtins.toJSON [ builtins.map ]"),
    (&["--eval"], "builtins.toJSON (builtins.elem 1)"),
    // A functor set is not a function for functionArgs, in CppNix's words.
    (&["--eval"], "builtins.functionArgs { __functor = self: { a }: a; }"),
    // genericClosure compares a new key with those it has (new first).
    (&["--eval"], "builtins.genericClosure { startSet = [ { key = 1; } { key = \"1\"; } ]; operator = x: [ ]; }"),
    // fromJSON's syntax errors in the words of CppNix's JSON library:
    // position, context, what was read and what was expected.
    (&["--eval"], "builtins.fromJSON \"[1, tru]\""),
    (&["--eval"], "builtins.fromJSON \"{\\\"a\\\" 1}\""),
    (&["--eval"], "builtins.fromJSON \"[1.5e3, 0x]\""),
    (&["--eval"], "builtins.fromJSON \"{\\\"a\\\":1,}\""),
    (&["--eval"], "builtins.fromJSON \"[\\\"\\\\ud800\\\"]\""),
    (&["--eval"], "builtins.fromJSON \"\\\"a\nb\\\"\""),
    (&["--eval"], "builtins.fromJSON \"[1e+]\""),
    // partition forces each element before the predicate sees it.
    (&["--eval"], "builtins.partition (x: true) [ (1 + 1) ]"),
    // `derivation` is evaluated at start-up: a lambda, not unevaluated code.
    (&["--eval"], "{ inherit (builtins) derivation; }"),
    (&["--eval", "--xml"], "[ builtins.derivation ]"),
];

/// Messages that changed after 2.8: (expression, current CppNix's first line,
/// from its source, primops.cc).
const CURRENT_MESSAGES: &[(&str, &str)] = &[
    (
        "builtins.fromJSON \"{\\\"a\\\\u0000b\\\": 1}\"",
        "error: input string 'a\u{2400}b' cannot be represented as Nix string because it contains null bytes",
    ),
    (
        "builtins.fromJSON \"9223372036854775808\"",
        "error: unsigned json number 9223372036854775808 outside of Nix integer range",
    ),
    (
    "let d = derivation { name = \"a\"; system = \"x\"; builder = \"/b\"; }; in builtins.toFile \"f\" \"${d} ${d.drvPath}\"",
    "error: files created by builtins.toFile may not reference derivations, but f references =/nix/store/zls09i4hh0vfzm882j1ry186i11233w6-a.drv",
)];

fn run(ours: bool, flags: &[&str], expr: &str) -> Output {
    let mut command = if ours {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nivis"));
        c.arg0("nix-instantiate");
        c
    } else {
        Command::new("/usr/bin/nix-instantiate")
    };
    if !flags.contains(&"--read-write-mode") {
        command.arg("--readonly-mode");
    }
    command.args(flags).arg("-E").arg(expr).env_remove("NIX_PATH");
    command.output().unwrap()
}

/// The error message: current CppNix prints trace frames first and the
/// message last, on the last line that starts with `error: ` (2.8 printed it
/// first), so this takes that line, unindented.
fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines().filter(|line| line.trim_start().starts_with("error: ")).last().unwrap_or("").trim_start().to_string()
}

/// 2.8's type errors ("value is X while Y was expected") in current CppNix's
/// words ("expected Y but found X: VALUE"), as a prefix of the message; other
/// messages unchanged.
fn in_current_words(message_of_2_8: &str) -> String {
    if let Some(rest) = message_of_2_8.strip_prefix("error: value is ") {
        if let Some((found, expected)) = rest.split_once(" while ") {
            if let Some(expected) = expected.strip_suffix(" was expected") {
                return format!("error: expected {expected} but found {found}: ");
            }
        }
    }
    message_of_2_8.to_string()
}

#[test]
fn corners_agree_with_cppnix() {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    for (flags, expr) in CASES {
        let ours = run(true, flags, expr);
        let theirs = run(false, flags, expr);
        let what = format!("{flags:?} -E {expr}");
        assert_eq!(ours.status.code(), theirs.status.code(), "exit status of {what}");
        assert_eq!(String::from_utf8_lossy(&ours.stdout), String::from_utf8_lossy(&theirs.stdout), "stdout of {what}");
        let expected = in_current_words(&first_line(&theirs.stderr));
        let message = first_line(&ours.stderr);
        assert!(message.starts_with(&expected), "message of {what}: {message:?} is not {expected:?}");
    }
}

#[test]
fn messages_of_current_cppnix() {
    for (expr, expected) in CURRENT_MESSAGES {
        let ours = run(true, &["--eval"], expr);
        assert!(!ours.status.success(), "{expr} must fail");
        assert_eq!(first_line(&ours.stderr), *expected, "{expr}");
    }
}

#[test]
fn read_file_refuses_a_nul_as_cppnix() {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("with-nul.bin");
    std::fs::write(&file, b"before\0after").unwrap();
    let expr = format!("builtins.readFile {}", file.display());
    let ours = run(true, &["--eval"], &expr);
    let theirs = run(false, &["--eval"], &expr);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(first_line(&ours.stderr), first_line(&theirs.stderr));
    assert!(first_line(&ours.stderr).contains("cannot be represented as a Nix string"));
}

/// `readFile` of a file in the store: its context is those references of the
/// store path that occur in the contents (current CppNix's re-scan; 2.8 gave
/// no context at all, so this is checked against the rule itself).
#[test]
fn read_file_of_a_store_file_carries_its_references() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let expr = r#"let
  a = builtins.toFile "a" "x";
  b = builtins.toFile "b" "refers to ${a}";
  c = builtins.toFile "c" "refers to nothing";
in [
  (builtins.getContext (builtins.readFile b) == { ${builtins.unsafeDiscardStringContext a} = { path = true; }; })
  (builtins.getContext (builtins.readFile c) == { })
  (builtins.hasContext (builtins.readFile "${a}"))
]"#;
    let ours = run(true, &["--store", store.to_str().unwrap(), "--read-write-mode", "--eval", "--strict"], expr);
    assert!(ours.status.success(), "{}", String::from_utf8_lossy(&ours.stderr));
    assert_eq!(String::from_utf8_lossy(&ours.stdout), "[ true true false ]\n");
}
