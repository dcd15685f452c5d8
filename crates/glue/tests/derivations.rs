//! drvPath and outPath of derivations of every attribute kind, and paths
//! imported into the store, computed by nivis and by CppNix 2.8 in read-only
//! mode over a dummy store: they must be identical.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use nivis_formats::StoreDir;
use nivis_glue::StoreEvalIO;
use nivis_store::DummyStore;

const CPPNIX: &str = "/usr/bin/nix-instantiate";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn nivis_eval(expr: &str) -> Result<String, String> {
    let expr = expr.to_string();
    nivis_eval::run_with_big_stack(256 << 20, move || {
        let store = DummyStore::new(StoreDir::new("/nix/store").unwrap());
        let io = Rc::new(StoreEvalIO::new(Box::new(store), true));
        let mut eval = nivis_eval::Eval::new(io, nivis_eval::Settings::default());
        let parsed = eval.parse_string(&expr, &fixtures()).map_err(|e| e.to_string())?;
        let value = eval.eval_expr(parsed).map_err(|e| e.to_string())?;
        let value = eval.force_deep(&value, nivis_eval::Pos::NONE).map_err(|e| e.to_string())?;
        nivis_eval::print::print_value(&mut eval, &value, true).map_err(|e| e.to_string())
    })
}

fn cppnix_eval(expr: &str) -> Option<Result<String, String>> {
    if !Path::new(CPPNIX).exists() {
        eprintln!("skipping the CppNix comparison: {CPPNIX} is not installed");
        return None;
    }
    let output = Command::new(CPPNIX)
        .args(["--store", "dummy://", "--eval", "--strict", "-E", expr])
        .current_dir(fixtures())
        .env("NIX_STATE_DIR", std::env::temp_dir().join("nivis-glue-test-state"))
        .output()
        .expect("running CppNix");
    Some(if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap().trim_end().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    })
}

/// Evaluates `expr` with both; both must succeed with the same printed result.
fn check(expr: &str) {
    let ours = nivis_eval(expr).unwrap_or_else(|e| panic!("nivis failed on {expr}:\n{e}"));
    assert!(ours.contains("/nix/store/"), "no store path in {ours}");
    let Some(theirs) = cppnix_eval(expr) else { return };
    let theirs = theirs.unwrap_or_else(|e| panic!("CppNix failed on {expr}:\n{e}"));
    assert_eq!(ours, theirs, "nivis and CppNix disagree on {expr}");
}

/// Both must refuse `expr`.
fn check_both_fail(expr: &str) {
    assert!(nivis_eval(expr).is_err(), "nivis accepted {expr}");
    if let Some(theirs) = cppnix_eval(expr) {
        assert!(theirs.is_err(), "CppNix accepted {expr}: {theirs:?}");
    }
}

const BASE: &str = r#"let
  mk = attrs: derivation ({ system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo" ]; } // attrs);
  paths = d: [ d.drvPath d.outPath ];
in "#;

#[test]
fn simple_derivation() {
    check(&format!("{BASE} paths (mk {{ name = \"simple\"; }})"));
}

#[test]
fn multiple_outputs_and_every_output_path() {
    check(&format!(
        "{BASE} let d = mk {{ name = \"multi\"; outputs = [ \"out\" \"dev\" \"lib\" ]; }}; in [ d.drvPath d.out.outPath d.dev.outPath d.lib.outPath d.outputName ]"
    ));
}

#[test]
fn dependency_chain_hashes_modulo_inputs() {
    check(&format!(
        "{BASE} let a = mk {{ name = \"a\"; outputs = [\"out\" \"bin\"]; }}; b = mk {{ name = \"b\"; dep = a.bin; }}; c = mk {{ name = \"c\"; deps = [ a b ]; text = \"${{b}}/x\"; }}; in paths c ++ paths b"
    ));
}

#[test]
fn fixed_output_flat_recursive_and_algorithms() {
    check(&format!(
        r#"{BASE} map paths [
          (mk {{ name = "flat"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; }})
          (mk {{ name = "rec"; outputHashMode = "recursive"; outputHashAlgo = "sha256"; outputHash = "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"; }})
          (mk {{ name = "sha1"; outputHashAlgo = "sha1"; outputHash = "da39a3ee5e6b4b0d3255bfef95601890afd80709"; }})
          (mk {{ name = "md5rec"; outputHashMode = "recursive"; outputHash = "md5:d41d8cd98f00b204e9800998ecf8427e"; }})
        ]"#
    ));
}

#[test]
fn fixed_output_inputs_do_not_leak_how_they_were_fetched() {
    check(&format!(
        r#"{BASE} let
          f1 = mk {{ name = "src"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; how = "one way"; }};
          f2 = mk {{ name = "src"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; how = "another"; }};
        in [ (mk {{ name = "user"; src = f1; }}).outPath (mk {{ name = "user"; src = f2; }}).outPath ] ++ paths f1"#
    ));
}

/// Two derivations that differ only in which of two equivalent fixed-output
/// inputs they use have the same hash modulo but different `.drv` paths. A
/// derivation using both meets that hash twice among its inputs; CppNix
/// hashes it once, with the union of the output names used of each.
#[test]
fn inputs_with_equal_hashes_modulo_merge_their_output_names() {
    check(&format!(
        r#"{BASE} let
          f1 = mk {{ name = "src"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; how = "one way"; }};
          f2 = mk {{ name = "src"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; how = "another"; }};
          a = mk {{ name = "twin"; outputs = [ "out" "dev" ]; src = f1; }};
          b = mk {{ name = "twin"; outputs = [ "out" "dev" ]; src = f2; }};
        in paths a ++ paths b
          ++ paths (mk {{ name = "user"; x = a.out; y = b.dev; }})
          ++ paths (mk {{ name = "user"; x = a.dev; y = b.out; }})"#
    ));
}

/// Nix strings are bytes: a value that is not valid UTF-8 goes into the `.drv`
/// (and so into its hash) byte for byte.
#[test]
fn env_and_args_that_are_not_utf8() {
    check(&format!(
        r#"{BASE} let half = builtins.substring 0 1 "é"; in map paths [
          (mk {{ name = "half-char"; value = "a${{half}}b"; }})
          (mk {{ name = "half-arg"; args = [ "-c" half ]; }})
        ]"#
    ));
}

#[test]
fn env_escaping_ignore_nulls_pass_as_file_and_structured_attrs() {
    check(&format!(
        r#"{BASE} map paths [
          (mk {{ name = "escapes"; text = "quote \" backslash \\ newline \n tab \t ünïcode ${{"\r"}}"; n = 42; f = 1.5; b = true; no = false; nul = null; l = [ 1 "two" [ 3 ] ]; }})
          (mk {{ name = "ignore-nulls"; __ignoreNulls = true; gone = null; kept = "x"; }})
          (mk {{ name = "pass-as-file"; passAsFile = [ "big" ]; big = "lots of text"; }})
          (mk {{ name = "structured"; __structuredAttrs = true; outputs = [ "out" "doc" ]; list = [ 1 2.5 "s" null true ]; set = {{ a.b = "c"; }}; }})
          (mk {{ name = "structured-fixed"; __structuredAttrs = true; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; }})
        ]"#
    ));
}

#[test]
fn sources_to_file_and_filter_source() {
    check(&format!(
        r#"{BASE} let
          file = builtins.toFile "script.sh" "echo hi";
          withRef = builtins.toFile "refs" "uses ${{file}}";
          filtered = builtins.filterSource (path: type: baseNameOf path != "skip.o") ./src;
          named = builtins.path {{ path = ./src; name = "renamed"; filter = path: type: type != "symlink"; }};
          flat = builtins.path {{ path = ./src/a.txt; recursive = false; }};
        in [ file withRef "${{./src}}" "${{./src/a.txt}}" filtered named flat ]
           ++ paths (mk {{ name = "with-sources"; src = ./src; script = file; other = filtered; }})"#
    ));
}

#[test]
fn placeholders_and_context_builtins() {
    check(&format!(
        r#"{BASE} let d = mk {{ name = "ph"; outputs = [ "out" "dev" ]; x = builtins.placeholder "dev"; }};
           e = mk {{ name = "discard"; dep = builtins.unsafeDiscardOutputDependency d.drvPath; }};
        in paths d ++ [ (builtins.placeholder "out") ]"#
    ));
}

#[test]
fn bad_derivations_fail_in_both() {
    for bad in [
        r#"(mk { name = "x.drv"; }).drvPath"#,
        r#"(mk { name = "bad name!"; }).drvPath"#,
        r#"(mk { name = "fo"; outputs = [ "out" "dev" ]; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; }).drvPath"#,
        r#"(mk { name = "mode"; outputHashMode = "weird"; outputHash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; }).drvPath"#,
        r#"(mk { name = "dup"; outputs = [ "out" "out" ]; }).drvPath"#,
        r#"(mk { name = "algo"; outputHashAlgo = "sha3"; outputHash = "abc"; }).drvPath"#,
    ] {
        check_both_fail(&format!("{BASE} {bad}"));
    }
}
