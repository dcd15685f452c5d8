//! `nix-store --realise` of store paths that are not derivations: they can
//! only be fetched. A content-addressed path comes from a cache that nobody
//! signed (its path proves its contents), as CppNix 2.8 fetches it; a path no
//! cache has is refused with CppNix's message. Both tools run side by side.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::clean_tool;

fn nix_store(ours: bool, dir: &Path, args: &[&str]) -> Output {
    clean_tool(ours, "nix-store", dir).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plain_paths_are_fetched_or_refused_like_cppnix() {
    if !Path::new("/usr/bin/nix").exists() {
        eprintln!("SKIPPED plain_paths_are_fetched_or_refused_like_cppnix: CppNix (/usr/bin/nix) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("greeting"), "hello from a cache\n").unwrap();
    let source = d.join("source");
    let added = Command::new("/usr/bin/nix-store").arg("--store").arg(&source).args(["--add", "greeting"]).current_dir(d).output().unwrap();
    assert!(added.status.success(), "{}", text(&added.stderr));
    let path = text(&added.stdout).trim().to_string();
    let cache = format!("file://{}", d.join("cache").display());
    let copied = Command::new("/usr/bin/nix")
        .args(["--extra-experimental-features", "nix-command", "copy", "--store"])
        .arg(&source)
        .args(["--to", &cache, &path])
        .output()
        .unwrap();
    assert!(copied.status.success(), "{}", text(&copied.stderr));

    for ours in [true, false] {
        let store = d.join(if ours { "nivis-store" } else { "cppnix-store" });
        let store = store.to_str().unwrap();
        let realise = |extra: &[&str]| {
            let mut args = vec!["--store", store, "--realise", "--option", "substituters", &cache];
            args.extend_from_slice(extra);
            nix_store(ours, d, &args)
        };
        let dry = realise(&["--dry-run", &path]);
        assert!(dry.status.success(), "{}", text(&dry.stderr));
        assert!(text(&dry.stderr).contains("this path will be fetched ("), "{}", text(&dry.stderr));
        let real = realise(&[&path]);
        assert!(real.status.success(), "ours={ours}: {}", text(&real.stderr));
        assert_eq!(text(&real.stdout), format!("{path}\n"));
        let verified = Command::new("/usr/bin/nix-store").args(["--store", store, "--verify-path", &path]).output().unwrap();
        assert!(verified.status.success(), "ours={ours}: {}", text(&verified.stderr));

        let absent = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-absent";
        let refused = realise(&[absent]);
        assert_eq!(refused.status.code(), Some(1));
        let stderr = text(&refused.stderr);
        assert!(stderr.starts_with(&format!("don't know how to build these paths:\n  {absent}\nerror: ")), "ours={ours}: {stderr}");
        // 2.8 says "build of 'P' failed"; nivis gives the reason, in the
        // words CppNix's substitution goal has used since (as `nix profile
        // install` already does here).
        let expected = if ours {
            format!("error: path '{absent}' is required, but there is no substituter that can build it")
        } else {
            format!("error: build of '{absent}' failed")
        };
        assert!(stderr.contains(&expected), "ours={ours}: {stderr}");
    }
}
