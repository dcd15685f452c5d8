//! `nix-env -qa` over a package set with packages that cannot be evaluated, as
//! nixpkgs has (removed packages that are `throw`ing aliases, unfree or broken
//! packages whose `drvPath` throws, `assert`s on the platform): CppNix's
//! `getDerivation` skips an attribute whose evaluation fails an assertion, and a
//! `throw` is one (CppNix's `ThrownError` is an `AssertionError`); the query
//! skips an element whose `drvPath` or output paths do, except that the JSON
//! object or XML item it had opened stays; output paths are only evaluated with
//! `--out-path`. Any other error still ends the query. Compared byte for byte
//! with CppNix 2.8.

mod support;

const PACKAGES: &str = r#"{ }:
let
  mk = name: derivation { inherit name; builder = "/bin/sh"; system = "x86_64-linux"; };
in {
  a = mk "a-1";
  removed = throw "removed: use a instead";
  platform = assert false; mk "p-1";
  unfree = mk "u-1" // { drvPath = throw "unfree"; outPath = throw "unfree"; meta.license = "unfree"; };
  broken = mk "b-1" // { drvPath = assert 1 == 2; "x"; };
  sub = { recurseForDerivations = true; gone = throw "inner"; ok = mk "ok-1"; };
  z = mk "z-1";
}
"#;

#[test]
fn unevaluable_packages_are_skipped_as_cppnix_skips_them() {
    if !support::cppnix_available() {
        eprintln!("skipping: CppNix is not installed (or not root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("packages.nix"), PACKAGES).unwrap();
    std::fs::write(dir.path().join("aborts.nix"), "{ }: { a = abort \"stop\"; }\n").unwrap();
    let queries: &[&[&str]] = &[
        &["-f", "packages.nix", "-qa"],
        &["-f", "packages.nix", "-qaP", "--drv-path"],
        // The common flag that evaluates without writing `.drv` files.
        &["--readonly-mode", "-f", "packages.nix", "-qaP", "--drv-path"],
        &["-f", "packages.nix", "-qaP", "--out-path", "--description"],
        &["-f", "packages.nix", "-qa", "--json"],
        &["-f", "packages.nix", "-qa", "--json", "--out-path", "--meta"],
        &["-f", "packages.nix", "-qa", "--xml", "--drv-path", "--meta"],
        &["-f", "packages.nix", "-qa", "--xml", "--out-path"],
        &["-f", "aborts.nix", "-qa"],
    ];
    for query in queries {
        let run = |ours: bool| {
            support::clean_tool(ours, "nix-env", dir.path())
                .env("HOME", dir.path())
                .args(*query)
                .output()
                .unwrap()
        };
        let (ours, theirs) = (run(true), run(false));
        assert_eq!(ours.status.code(), theirs.status.code(), "exit status of nix-env {query:?}");
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "nix-env {query:?}"
        );
    }
}
