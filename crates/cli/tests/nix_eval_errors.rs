//! `nix eval`'s errors as current CppNix shows them, which differ from
//! `nix-instantiate --eval --strict`'s: the value is forced as it is printed
//! (sets in name order, a derivation only as far as its `drvPath`), without
//! the "while evaluating the attribute" frames of a deep forcing; `--json`
//! names attributes and list elements as `builtins.toJSON` does; `--raw`
//! coerces "while generating the eval command output". Expected texts are
//! written from current CppNix's sources (`src/nix/eval.cc`, `print.cc`,
//! `value-to-json.cc`, `attr-path.cc`), not produced by nivis.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Runs `nix eval ARGS` in `dir`; returns (exit status, stdout, stderr).
fn nix_eval(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .arg0("nix")
        .arg("eval")
        .args(args)
        .current_dir(dir)
        .env("NIX_STORE_DIR", "/nix/store")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn nested_error_has_only_the_failing_values_frames() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("nested.nix"), "{ b = { c = throw \"deep\"; }; a = 1; }\n").unwrap();
    let file = dir.path().join("nested.nix");
    let file = file.to_str().unwrap();
    let (status, _, stderr) = nix_eval(dir.path(), &["-f", file]);
    assert_eq!(status, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error:
       … while calling the 'throw' builtin
         at {file}:1:13:
            1| {{ b = {{ c = throw \"deep\"; }}; a = 1; }}
             |             ^
            2|

       error: deep
"
        )
    );
    let (status, _, stderr) = nix_eval(dir.path(), &["-f", file, "--json"]);
    assert_eq!(status, Some(1));
    assert_eq!(
        stderr,
        format!(
            "error:
       … while evaluating attribute 'b'
         at {file}:1:3:
            1| {{ b = {{ c = throw \"deep\"; }}; a = 1; }}
             |   ^
            2|

       … while evaluating attribute 'c'
         at {file}:1:9:
            1| {{ b = {{ c = throw \"deep\"; }}; a = 1; }}
             |         ^
            2|

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: deep
"
        )
    );
}

#[test]
fn a_derivation_is_printed_without_forcing_its_other_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let source = "let d = derivation { name = \"d\"; system = \"x\"; builder = \"/b\"; }; in d // { passthru = throw \"never forced\"; }\n";
    std::fs::write(dir.path().join("drv.nix"), source).unwrap();
    let (status, stdout, stderr) = nix_eval(dir.path(), &["--read-only", "-f", "drv.nix"]);
    assert_eq!(status, Some(0), "{stderr}");
    assert!(stdout.starts_with("«derivation /nix/store/") && stdout.ends_with("-d.drv»\n"), "{stdout}");
}

#[test]
fn raw_output_and_attribute_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.nix"), "{ alpha = 1; beta = 2; }\n").unwrap();
    let (status, _, stderr) = nix_eval(dir.path(), &["-f", "s.nix", "--raw"]);
    assert_eq!(status, Some(1));
    assert_eq!(
        stderr,
        "error:
       … while generating the eval command output

       error: cannot coerce a set to a string: { alpha = 1; beta = 2; }
"
    );
    let (status, _, stderr) = nix_eval(dir.path(), &["-f", "s.nix", "alpah"]);
    assert_eq!(status, Some(1));
    assert_eq!(stderr, "error: attribute 'alpah' in selection path 'alpah' not found\n       Did you mean alpha?\n");
}

/// Functions print as current CppNix's `ValuePrinter` shows them (a lambda
/// with the name it was bound to and its position), not as `<LAMBDA>`.
#[test]
fn functions_print_with_their_names_and_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stdout, stderr) =
        nix_eval(dir.path(), &["--expr", "{ f = x: x; g = builtins.map; h = builtins.map (x: x); }"]);
    assert_eq!(status, Some(0), "{stderr}");
    assert_eq!(stdout, "{ f = «lambda f @ «string»:1:7»; g = «primop map»; h = «partially applied primop map»; }\n");
    let (status, stdout, _) = nix_eval(dir.path(), &["--expr", "x: x"]);
    assert_eq!(status, Some(0));
    assert_eq!(stdout, "«lambda @ «string»:1:1»\n");
}
