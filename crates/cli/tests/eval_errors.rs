//! The layout of evaluation errors, byte for byte as current CppNix prints
//! them (a deliberate difference from CppNix 2.8, listed in
//! tests/lang/POST-2.8.md): `error:` first, then the trace frames outermost
//! first (`… while calling the 'abort' builtin`, each with `at FILE:LINE:COL:`
//! and the numbered source lines with a caret), then the message itself, with
//! its own position and suggestions; without `--show-trace` only the frames
//! CppNix always records (no lambda call frames). Expected texts are written
//! from current CppNix's error layout (`showErrorInfo`), not produced by nivis.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// (name, source, flags, expected stderr with `FILE` for the file's path).
const CASES: &[(&str, &str, &[&str], &str)] = &[
    (
        "undefined-variable",
        "let\n  x = 1;\nin\n  x + y\n",
        &["--eval"],
        "error: undefined variable 'y'
       at FILE:4:7:
            3| in
            4|   x + y
             |       ^
            5|
",
    ),
    (
        "missing-attribute",
        "let\n  s = { a = 1; b = 2; };\nin\n  s.c\n",
        &["--eval", "--show-trace"],
        "error: attribute 'c' missing
       at FILE:4:3:
            3| in
            4|   s.c
             |   ^
            5|
       Did you mean one of a or b?
",
    ),
    (
        "missing-attribute-suggestion",
        "let\n  s = { alpha = 1; beta = 2; };\nin\n  s.alhpa\n",
        &["--eval"],
        "error: attribute 'alhpa' missing
       at FILE:4:3:
            3| in
            4|   s.alhpa
             |   ^
            5|
       Did you mean alpha?
",
    ),
    (
        "infinite-recursion-no-final-newline",
        "let\n  x = x + 1;\nin\n  x",
        &["--eval"],
        "error: infinite recursion encountered
       at FILE:2:7:
            1| let
            2|   x = x + 1;
             |       ^
            3| in
",
    ),
    (
        "not-a-function",
        "let\n  n = 3;\nin\n  n 4\n",
        &["--eval"],
        "error: attempt to call something which is not a function but an integer: 3
       at FILE:4:3:
            3| in
            4|   n 4
             |   ^
            5|
",
    ),
    (
        "abort-in-attribute",
        "let\n  g = abort \"stop here\";\nin\n  { a = g; }.a\n",
        &["--eval"],
        "error:
       … while evaluating the attribute 'a'
         at FILE:4:5:
            3| in
            4|   { a = g; }.a
             |     ^
            5|

       … while calling the 'abort' builtin
         at FILE:2:7:
            1| let
            2|   g = abort \"stop here\";
             |       ^
            3| in

       error: evaluation aborted with the following error message: 'stop here'
",
    ),
    (
        "throw-deep-trace",
        "let\n  f = n: if n == 0 then throw \"zero\" else f (n - 1);\nin\n  f 1\n",
        &["--eval", "--show-trace"],
        "error:
       … from call site
         at FILE:4:3:
            3| in
            4|   f 1
             |   ^
            5|

       … while calling 'f'
         at FILE:2:7:
            1| let
            2|   f = n: if n == 0 then throw \"zero\" else f (n - 1);
             |       ^
            3| in

       … from call site
         at FILE:2:43:
            1| let
            2|   f = n: if n == 0 then throw \"zero\" else f (n - 1);
             |                                           ^
            3| in

       … while calling 'f'
         at FILE:2:7:
            1| let
            2|   f = n: if n == 0 then throw \"zero\" else f (n - 1);
             |       ^
            3| in

       … while calling the 'throw' builtin
         at FILE:2:25:
            1| let
            2|   f = n: if n == 0 then throw \"zero\" else f (n - 1);
             |                         ^
            3| in

       error: zero
",
    ),
    (
        "throw-deep-no-trace",
        "let\n  f = n: if n == 0 then throw \"zero\" else f (n - 1);\nin\n  f 1\n",
        &["--eval"],
        "error:
       … while calling the 'throw' builtin
         at FILE:2:25:
            1| let
            2|   f = n: if n == 0 then throw \"zero\" else f (n - 1);
             |                         ^
            3| in

       error: zero
",
    ),
    (
        "builtin-argument-type",
        "builtins.length 1\n",
        &["--eval", "--show-trace"],
        "error:
       … while calling the 'length' builtin
         at FILE:1:1:
            1| builtins.length 1
             | ^
            2|

       … while evaluating the first argument passed to builtins.length

       error: expected a list but found an integer: 1
",
    ),
    (
        // Without --show-trace the trace stops after a few frames, but a
        // frame from builtins.addErrorContext is shown anyway (CppNix's
        // TracePrint::Always); the frames after it stay hidden.
        "truncated-trace-keeps-error-context",
        "if (if (if (builtins.addErrorContext \"innermost context\" (throw \"deep\")) then 1 else 2) then true else false) then 1 else 2\n",
        &["--eval"],
        "error:
       … while evaluating a branch condition
         at FILE:1:1:
            1| if (if (if (builtins.addErrorContext \"innermost context\" (throw \"deep\")) then 1 else 2) then true else false) then 1 else 2
             | ^
            2|

       … while evaluating a branch condition
         at FILE:1:5:
            1| if (if (if (builtins.addErrorContext \"innermost context\" (throw \"deep\")) then 1 else 2) then true else false) then 1 else 2
             |     ^
            2|

       … innermost context

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: deep
",
    ),
    (
        "max-call-depth",
        "let\n  f = n: f (n + 1);\nin\nf 0\n",
        &["--eval", "--max-call-depth", "3"],
        "error: stack overflow; max-call-depth exceeded
       at FILE:2:10:
            1| let
            2|   f = n: f (n + 1);
             |          ^
            3| in
",
    ),
];

#[test]
fn errors_look_like_current_cppnix() {
    let dir = tempfile::tempdir().unwrap();
    for (name, source, flags, expected) in CASES {
        let file = dir.path().join(format!("eval-fail-{name}.nix"));
        std::fs::write(&file, source).unwrap();
        let mut args: Vec<&str> = flags.to_vec();
        args.push(file.to_str().unwrap());
        let ours = Command::new(env!("CARGO_BIN_EXE_nivis")).arg0("nix-instantiate").args(&args).output().unwrap();
        assert_eq!(ours.status.code(), Some(1), "{name}");
        let expected = expected.replace("FILE", file.to_str().unwrap());
        assert_eq!(String::from_utf8_lossy(&ours.stderr), expected, "{name} {flags:?}");
    }
}

/// Selecting an attribute that the built-in `derivation` code defines adds no
/// "while evaluating the attribute" frame (CppNix skips the positions of its
/// derivation-internal.nix): the trace goes from the call of derivationStrict
/// straight to the derivation and its failing attribute.
#[test]
fn derivation_code_attributes_add_no_frames() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drv.nix");
    std::fs::write(&file, "(derivation { name = \"a\"; system = \"x\"; builder = { }; }).drvPath\n").unwrap();
    let ours = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0("nix-instantiate")
        .args(["--eval", "--readonly-mode", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ours.stderr);
    assert_eq!(ours.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("while evaluating the attribute 'drvPath'"), "{stderr}");
    let tail = format!(
        "       … while evaluating derivation 'a'
         whose name attribute is located at {file}:1:15

       … while evaluating attribute 'builder' of derivation 'a'
         at {file}:1:41:
            1| (derivation {{ name = \"a\"; system = \"x\"; builder = {{ }}; }}).drvPath
             |                                         ^
            2|

       error: cannot coerce a set to a string: {{ }}
",
        file = file.display()
    );
    assert!(stderr.ends_with(&tail), "{stderr}");
    assert!(!stderr.contains("stack trace truncated"), "{stderr}");
}

/// What `nix-instantiate` (without `--eval`) asks of a derivation it found,
/// in current CppNix's words (`getDerivations`, `requireDrvPath`,
/// `queryOutputName`): the name is checked as derivations are found, then the
/// `drvPath` (a store path, with a frame at the attribute) and the output name.
#[test]
fn instantiated_derivations_are_checked_as_cppnix_checks_them() {
    let cases: &[(&str, &str)] = &[
        (
            "{ type = \"derivation\"; name = 1; }",
            "error:\n       … while evaluating the 'name' attribute of a derivation\n\n       error: expected a string but found an integer: 1\n",
        ),
        ("{ type = \"derivation\"; }", "error: derivation name missing\n"),
        ("{ type = \"derivation\"; name = \"a\"; }", "error: derivation does not contain a 'drvPath' attribute\n"),
        (
            "{ type = \"derivation\"; name = \"a\"; drvPath = \"/tmp/a.drv\"; }",
            "error:\n       … while evaluating the 'drvPath' attribute of a derivation\n         at «string»:1:36:\n            1| { type = \"derivation\"; name = \"a\"; drvPath = \"/tmp/a.drv\"; }\n             |                                    ^\n\n       error: path '/tmp/a.drv' is not in the Nix store\n",
        ),
        (
            "{ type = \"derivation\"; name = \"a\"; drvPath = \"/nix/store/00000000000000000000000000000000-a.drv\"; }",
            "error: derivation '/nix/store/00000000000000000000000000000000-a.drv' lacks an 'outputName' attribute\n",
        ),
    ];
    for (expr, expected) in cases {
        let ours = Command::new(env!("CARGO_BIN_EXE_nivis"))
            .arg0("nix-instantiate")
            .args(["--readonly-mode", "-E", expr])
            .env("NIX_STORE_DIR", "/nix/store")
            .output()
            .unwrap();
        assert_eq!(ours.status.code(), Some(1), "{expr}");
        assert_eq!(String::from_utf8_lossy(&ours.stderr), *expected, "{expr}");
    }
}

/// nix-env checks a derivation's name as it finds it, with CppNix's frame, and
/// an error that starts with its trace prints "error:" alone on its line.
#[test]
fn nix_env_names_the_derivation_name_check() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pkgs.nix");
    std::fs::write(&file, "{ a = { type = \"derivation\"; name = 1; }; }\n").unwrap();
    let ours = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0("nix-env")
        .args(["-f", file.to_str().unwrap(), "-qa"])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&ours.stderr),
        "error:\n       … while evaluating the 'name' attribute of a derivation\n\n       error: expected a string but found an integer: 1\n"
    );
}
