//! Where "infinite recursion encountered" points, against CppNix 2.8 (the
//! positions are the same in current CppNix; only the layout around them
//! changed): a selected attribute is forced at its definition's position, and
//! the lazy applications builtins create (`map`, `mapAttrs`, `genList`, CppNix's
//! `tApp`) are not black-holed, so a recursion through them is caught at the
//! next real thunk, e.g. an option's `value` in the module system.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

const CASES: &[(&str, &str)] = &[
    ("attribute-cycle", "let\n  s = {\n    a = s.b;\n    b = s.a;\n  };\nin\n  s.a\n"),
    ("through-a-function", "let\n  f = s: s.a;\n  s = { a = f s; };\nin\n  s.a\n"),
    (
        "through-mapattrs",
        "let\n  opts = {\n    x = { value = cfg.y; };\n    y = { value = cfg.x; };\n  };\n  cfg = builtins.mapAttrs (n: o: o.value) opts;\nin\n  cfg.x\n",
    ),
    (
        "through-map",
        "let\n  defs = [ { value = head (tail vals); } { value = head vals; } ];\n  inherit (builtins) head tail;\n  vals = map (d: d.value) defs;\nin\n  head vals\n",
    ),
];

/// The `at FILE:LINE:COLUMN:` line that follows the message (2.8 puts a blank
/// line between them).
fn message_position(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let at = lines.iter().rposition(|l| l.trim_start().starts_with("error: infinite recursion encountered"))?;
    lines[at + 1..].iter().map(|l| l.trim()).find(|l| !l.is_empty()).map(str::to_string)
}

#[test]
fn infinite_recursion_points_where_cppnix_points() {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in CASES {
        let file = dir.path().join(format!("{name}.nix"));
        std::fs::write(&file, source).unwrap();
        let ours = Command::new(env!("CARGO_BIN_EXE_nivis")).arg0("nix-instantiate").arg("--eval").arg(&file).output().unwrap();
        let theirs = Command::new("/usr/bin/nix-instantiate").arg("--eval").arg(&file).output().unwrap();
        assert_eq!(ours.status.code(), theirs.status.code(), "{name}");
        let theirs_at = message_position(&String::from_utf8_lossy(&theirs.stderr));
        assert!(theirs_at.as_deref().is_some_and(|a| a.starts_with("at ")), "{name}: CppNix said {theirs:?}");
        assert_eq!(message_position(&String::from_utf8_lossy(&ours.stderr)), theirs_at, "{name}");
    }
}
