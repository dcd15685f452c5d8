//! A fetcher given the wrong hash fails as CppNix 2.8 does: the same message
//! ("hash mismatch in file downloaded from ...", "NAR hash mismatch in input
//! ...") and exit status 102, for `fetchurl`, `fetchTarball` and `fetchGit`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

fn run(ours: bool, dir: &Path, args: &[&str]) -> Output {
    let mut command = if ours {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nivis"));
        c.arg0("nix-instantiate");
        c
    } else {
        Command::new("/usr/bin/nix-instantiate")
    };
    let which = if ours { "nivis" } else { "cppnix" };
    command
        .current_dir(dir)
        .env("NIX_CONF_DIR", dir)
        .env("NIX_USER_CONF_FILES", "")
        .env("XDG_CACHE_HOME", dir.join(format!("cache-{which}")))
        .env_remove("NIX_CONFIG")
        .args(args)
        .output()
        .unwrap()
}

/// The message lines: what comes before nivis's source excerpt.
fn message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    // nivis prints current CppNix's layout: "error:", the trace frames, then
    // the message as "       error: …"; 2.8, the peer here, starts with it.
    let text = match text.rfind("\n       error: ") {
        Some(i) if text.starts_with("error:\n") => text[i + "\n       ".len()..].to_string(),
        _ => text.into_owned(),
    };
    let end = text.find("\n\n       at ").unwrap_or(text.len());
    text[..end].trim_end().to_string()
}

#[test]
fn wrong_hashes_exit_102_with_cppnix_messages() {
    if !Path::new("/usr/bin/nix-instantiate").exists() {
        eprintln!("skipping: CppNix is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("file.txt"), "contents\n").unwrap();
    std::fs::create_dir_all(d.join("tree/sub")).unwrap();
    std::fs::write(d.join("tree/sub/x"), "x\n").unwrap();
    let tar = Command::new("tar").current_dir(d).args(["czf", "tree.tar.gz", "tree"]).status();
    assert!(tar.is_ok_and(|s| s.success()), "tar");
    let zeros = "0".repeat(52);
    let mut cases = vec![
        format!("builtins.fetchurl {{ url = \"file://{}/file.txt\"; sha256 = \"{zeros}\"; }}", d.display()),
        format!("builtins.fetchTarball {{ url = \"file://{}/tree.tar.gz\"; sha256 = \"{zeros}\"; }}", d.display()),
    ];
    let repo = d.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| Command::new("git").current_dir(&repo).args(args).output().is_ok_and(|o| o.status.success());
    if git(&["init", "-q"]) {
        std::fs::write(repo.join("a"), "a\n").unwrap();
        assert!(git(&["add", "a"]));
        assert!(git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]));
        cases.push(format!(
            "builtins.fetchGit {{ url = \"{}\"; narHash = \"sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"; }}",
            repo.display()
        ));
    }
    for (index, expr) in cases.iter().enumerate() {
        let ours_store = d.join(format!("store-nivis-{index}"));
        let theirs_store = d.join(format!("store-cppnix-{index}"));
        let ours = run(true, d, &["--store", ours_store.to_str().unwrap(), "--eval", "-E", expr]);
        let theirs = run(false, d, &["--store", theirs_store.to_str().unwrap(), "--eval", "-E", expr]);
        assert_eq!(theirs.status.code(), Some(102), "CppNix on {expr}: {}", String::from_utf8_lossy(&theirs.stderr));
        assert_eq!(ours.status.code(), Some(102), "nivis on {expr}: {}", String::from_utf8_lossy(&ours.stderr));
        // The store directory differs, so compare with it replaced.
        let ours_message = message(&ours.stderr).replace(ours_store.to_str().unwrap(), "STORE");
        let theirs_message = message(&theirs.stderr).replace(theirs_store.to_str().unwrap(), "STORE");
        assert_eq!(ours_message, theirs_message, "{expr}");
        assert!(ours_message.contains("hash mismatch"), "{ours_message}");
    }
}
