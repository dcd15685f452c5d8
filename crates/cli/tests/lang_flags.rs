//! `nix-instantiate` flags and behaviours that CppNix's language test driver
//! relies on and that are newer than CppNix 2.8 (so they are checked against
//! current CppNix's documented behaviour, not against the installed 2.8):
//! `--trace-verbose`, `--abort-on-warn` / `NIX_ABORT_ON_WARN`,
//! `--extra-experimental-features parse-toml-timestamps`, and a derivation
//! whose `drvPath` is not a `.drv` being refused by instantiation.

mod support;

use std::process::Output;

fn instantiate(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = support::clean_tool(true, "nix-instantiate", dir);
    command.env("NIX_REMOTE", "dummy://").env("NIX_STORE_DIR", "/nix/store");
    for (name, value) in env {
        command.env(name, value);
    }
    command.args(args).output().expect("running nivis as nix-instantiate")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn trace_verbose_prints_only_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let expr = r#"builtins.traceVerbose "Hello" 123"#;
    let with = instantiate(dir.path(), &["--trace-verbose", "--eval", "-E", expr], &[]);
    assert!(with.status.success());
    assert_eq!(text(&with.stdout), "123\n");
    assert!(text(&with.stderr).contains("trace: Hello"), "{}", text(&with.stderr));
    let without = instantiate(dir.path(), &["--eval", "-E", expr], &[]);
    assert_eq!(text(&without.stdout), "123\n");
    assert!(!text(&without.stderr).contains("Hello"));
}

#[test]
fn abort_on_warn_fails_after_the_warning() {
    let dir = tempfile::tempdir().unwrap();
    let flag = instantiate(dir.path(), &["--eval", "--abort-on-warn", "-E", r#"builtins.warn "Hello" 123"#], &[]);
    assert_eq!(flag.status.code(), Some(1));
    assert!(text(&flag.stderr).contains("warning: Hello"), "{}", text(&flag.stderr));
    let expr = r#"builtins.addErrorContext "while doing ${"something"} interesting" (builtins.warn "Hello" 123)"#;
    let env = instantiate(dir.path(), &["--eval", "-E", expr], &[("NIX_ABORT_ON_WARN", "1")]);
    assert_eq!(env.status.code(), Some(1));
    assert!(text(&env.stderr).contains("while doing something interesting"), "{}", text(&env.stderr));
    let off = instantiate(dir.path(), &["--eval", "-E", expr], &[]);
    assert_eq!(text(&off.stdout), "123\n");
}

#[test]
fn toml_timestamps_need_the_experimental_feature() {
    let dir = tempfile::tempdir().unwrap();
    let expr = "builtins.fromTOML \"t = 1979-05-27T07:32:00Z\"";
    let on = instantiate(
        dir.path(),
        &["--extra-experimental-features", "parse-toml-timestamps", "--eval", "--strict", "-E", expr],
        &[],
    );
    assert_eq!(text(&on.stdout), "{ t = { _type = \"timestamp\"; value = \"1979-05-27T07:32:00Z\"; }; }\n");
    let off = instantiate(dir.path(), &["--eval", "--strict", "-E", expr], &[]);
    assert_eq!(off.status.code(), Some(1));
}

#[test]
fn a_derivation_whose_drv_path_is_no_derivation_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.nix");
    std::fs::write(
        &file,
        r#"{ type = "derivation"; name = "thing"; outputName = "out";
             drvPath = "/nix/store/2chwzswhhmpxbgc981i2vcz7xj4d1in9-thing-bin"; }"#,
    )
    .unwrap();
    let out = instantiate(dir.path(), &[file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("store path '2chwzswhhmpxbgc981i2vcz7xj4d1in9-thing-bin' is not a valid derivation path"),
        "{}",
        text(&out.stderr)
    );
}

/// `f or` where its meaning will change once `or` is a plain identifier (as
/// an argument, a list element, an `or` default) warns while parsing, showing
/// the source in parentheses (NixOS/nix#11121); at the head of an
/// application or alone in parentheses it does not.
#[test]
fn cursed_or_warns_where_its_meaning_will_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cursed.nix");
    std::fs::write(
        &file,
        "let\n  a = let or = 1; in [ (y: y) or ];\n  b = let or = 2; in (y: y * 3) (y: y - 1) or;\n  c = let or = (y: y); in map or [ ];\n  d = let f = (y: y); or = 4; in f (f or);\nin\n[ a b c d ]\n",
    )
    .unwrap();
    let out = instantiate(dir.path(), &["--eval", "--strict", file.to_str().unwrap()], &[]);
    assert_eq!(text(&out.stdout), "[ [ 1 ] 3 [ ] 4 ]\n");
    let at = file.display();
    let expected = format!(
        "warning: at {at}:2:24: This expression uses `or` as an identifier in a way that will change in a future Nix release.\n\
         Wrap this entire expression in parentheses to preserve its current meaning:\n    ((y: y) or)\n\
         Give feedback at https://github.com/NixOS/nix/pull/11121\n\
         warning: at {at}:3:33: This expression uses `or` as an identifier in a way that will change in a future Nix release.\n\
         Wrap this entire expression in parentheses to preserve its current meaning:\n    ((y: y - 1) or)\n\
         Give feedback at https://github.com/NixOS/nix/pull/11121\n"
    );
    assert_eq!(text(&out.stderr), expected);
}
