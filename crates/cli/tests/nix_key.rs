//! `nivis key generate-secret` / `convert-secret-to-public` against CppNix 2.8:
//! CppNix signs with our secret key and verifies with our public key, and our
//! conversion of a CppNix key gives CppNix's public key file byte for byte.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn nivis(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn cppnix(dir: &Path, program: &str, args: &[&str]) -> std::process::Output {
    Command::new(format!("/usr/bin/{program}"))
        .args(args)
        .current_dir(dir)
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .env("XDG_CACHE_HOME", dir.join(".cache"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/{program} (CppNix 2.8 is the test peer): {e}"))
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn cppnix_signs_with_our_key_and_verifies_with_our_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let secret = ok(nivis(&["key", "generate-secret", "--key-name", "nivis-made-1"], b""));
    assert!(secret.starts_with("nivis-made-1:") && !secret.ends_with('\n'));
    let public = ok(nivis(&["key", "convert-secret-to-public"], secret.as_bytes()));
    assert!(public.starts_with("nivis-made-1:") && !public.ends_with('\n'));
    assert_eq!(public.len(), "nivis-made-1:".len() + 44);
    // CppNix converts our secret key to the same public key.
    let mut child = Command::new("/usr/bin/nix")
        .args(["key", "convert-secret-to-public"])
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(secret.as_bytes()).unwrap();
    assert_eq!(ok(child.wait_with_output().unwrap()), public);

    std::fs::write(root.join("secret.key"), &secret).unwrap();
    // An input-addressed (built) path: content-addressed ones are trusted unsigned.
    std::fs::write(
        root.join("e.nix"),
        r#"derivation { name = "signed"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo hi > $out" ]; }"#,
    )
    .unwrap();
    let store = format!("local?root={}/root", root.display());
    let drv = ok(cppnix(root, "nix-instantiate", &["--store", &store, "e.nix"])).trim().to_string();
    // A chroot store builds in a sandbox; give it the host's /bin/sh.
    let sandbox = ["--option", "sandbox-paths", "/bin /lib /lib64 /usr"];
    let path = ok(cppnix(root, "nix-store", &[&["--store", &store], &sandbox[..], &["-r", &drv]].concat()))
        .trim()
        .to_string();

    // Unsigned: CppNix refuses to verify it with our key as the only trusted one.
    let verify = |root: &Path| {
        cppnix(root, "nix", &["store", "verify", "--store", &store, "--trusted-public-keys", &public, "--sigs-needed", "1", &path])
    };
    assert!(!verify(root).status.success(), "an unsigned path must not verify");
    ok(cppnix(root, "nix", &["store", "sign", "--store", &store, "--key-file", "secret.key", &path]));
    ok(verify(root));
    // A different key of the same name does not verify it.
    let other_secret = ok(nivis(&["key", "generate-secret", "--key-name", "nivis-made-1"], b""));
    let other_public = ok(nivis(&["key", "convert-secret-to-public"], other_secret.as_bytes()));
    let wrong = cppnix(
        root,
        "nix",
        &["store", "verify", "--store", &store, "--trusted-public-keys", &other_public, "--sigs-needed", "1", &path],
    );
    assert!(!wrong.status.success(), "another key's public half must not verify the path");
}

#[test]
fn converting_cppnix_keys_gives_cppnix_public_keys() {
    let dir = tempfile::tempdir().unwrap();
    ok(cppnix(dir.path(), "nix-store", &["--generate-binary-cache-key", "cppnix-made-1", "sec", "pub"]));
    let secret = std::fs::read(dir.path().join("sec")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("pub")).unwrap();
    assert_eq!(ok(nivis(&["key", "convert-secret-to-public"], &secret)), public);
    // With a trailing newline, as `echo` or an editor leaves it.
    let mut with_newline = secret.clone();
    with_newline.push(b'\n');
    assert_eq!(ok(nivis(&["key", "convert-secret-to-public"], &with_newline)), public);
}

#[test]
fn bad_input_is_an_error() {
    let output = nivis(&["key", "convert-secret-to-public"], b"garbage");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("secret key is corrupt"));
    let output = nivis(&["key", "generate-secret"], b"");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--key-name"));
    assert!(!nivis(&["key", "generate-secret", "--key-name", "a:b"], b"").status.success());
}
