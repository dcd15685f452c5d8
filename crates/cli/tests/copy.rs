//! `nivis copy`, `nix-copy-closure` and `nivis serve` as processes, with
//! CppNix 2.8 writing and reading the other side.

use std::path::Path;
use std::process::{Command, Output};

fn nivis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nivis")).args(args).env_remove("NIX_REMOTE").output().unwrap()
}

fn nivis_as(argv0: &str, dir: &Path, args: &[&str]) -> Output {
    let link = dir.join(argv0);
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), &link).unwrap();
    }
    Command::new(&link).args(args).env_remove("NIX_REMOTE").output().unwrap()
}

fn cppnix(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).env_remove("NIX_REMOTE").output().unwrap()
}

fn ok(output: Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn stderr_of_failure(output: Output) -> String {
    assert!(!output.status.success(), "succeeded unexpectedly");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Two paths added by CppNix, the second referring to the first.
fn cppnix_paths(tmp: &Path, root: &Path) -> (String, String) {
    let root = root.to_str().unwrap();
    std::fs::write(tmp.join("data"), vec![b'x'; 100_000]).unwrap();
    let first = ok(cppnix("nix-store", &["--store", root, "--add", tmp.join("data").to_str().unwrap()]));
    let first = first.trim().to_string();
    let expr = format!(
        "builtins.toFile \"uses\" \"${{builtins.path {{ path = {}; name = \"data\"; }}}}\"",
        tmp.join("data").display()
    );
    let second = ok(cppnix("nix-instantiate", &["--store", root, "--eval", "--read-write-mode", "-E", &expr]));
    (first, second.trim().trim_matches('"').to_string())
}

fn hash_in(root: &Path, path: &str) -> String {
    ok(cppnix("nix-store", &["--store", root.to_str().unwrap(), "--verify-path", path]));
    ok(cppnix("nix-store", &["--store", root.to_str().unwrap(), "-q", "--hash", path]))
}

#[test]
fn copy_to_and_from_file_caches_with_cppnix_on_the_other_side() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let secret = t.join("key.sec");
    let public = t.join("key.pub");
    ok(cppnix("nix-store", &["--generate-binary-cache-key", "cli-test-1", secret.to_str().unwrap(), public.to_str().unwrap()]));
    let public_key = std::fs::read_to_string(&public).unwrap();

    // nivis writes, CppNix reads.
    let cache = format!("file://{}/cache", t.display());
    ok(nivis(&[
        "copy",
        "--store",
        source.to_str().unwrap(),
        "--to",
        &format!("{cache}?compression=zstd&secret-key={}", secret.display()),
        &second,
    ]));
    let listed = ok(nivis(&["path-info", "--store", &cache, &second]));
    assert_eq!(listed.trim(), second);
    let from_nivis = t.join("from-nivis");
    ok(cppnix(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--from",
            &cache,
            "--to",
            from_nivis.to_str().unwrap(),
            "--option",
            "trusted-public-keys",
            public_key.trim(),
            &second,
        ],
    ));
    assert_eq!(hash_in(&from_nivis, &first), hash_in(&source, &first));

    // CppNix writes, nivis reads; the narinfos lose their CA line (so the paths
    // need signatures) and their signatures.
    let cppnix_cache = t.join("cppnix-cache");
    ok(cppnix(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--store",
            source.to_str().unwrap(),
            "--to",
            &format!("file://{}?compression=xz", cppnix_cache.display()),
            &second,
        ],
    ));
    for entry in std::fs::read_dir(&cppnix_cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "narinfo") {
            let text = std::fs::read_to_string(&path).unwrap();
            let kept: String = text.lines().filter(|l| !l.starts_with("CA: ")).map(|l| format!("{l}\n")).collect();
            std::fs::write(&path, kept).unwrap();
        }
    }
    let cppnix_uri = format!("file://{}", cppnix_cache.display());
    let into = t.join("into-nivis");
    let message = stderr_of_failure(nivis(&["copy", "--store", into.to_str().unwrap(), "--from", &cppnix_uri, &second]));
    assert!(message.contains("lacks a signature by a trusted key"), "{message}");
    ok(nivis(&["copy", "--store", into.to_str().unwrap(), "--from", &cppnix_uri, "--no-check-sigs", &second]));
    assert_eq!(hash_in(&into, &second), hash_in(&source, &second));
    assert_eq!(hash_in(&into, &first), hash_in(&source, &first));

    // nix-copy-closure: store URIs work, host names are refused clearly.
    let closure_cache = format!("file://{}/closure-cache", t.display());
    ok(nivis_as("nix-copy-closure", t, &["--to", &closure_cache, "--store", source.to_str().unwrap(), &second]));
    assert!(t.join("closure-cache").join(format!("{}.narinfo", &first[11..43])).exists());
    let message = stderr_of_failure(nivis_as("nix-copy-closure", t, &["--to", "builder.example.org", &second]));
    assert!(message.contains("needs SSH"), "{message}");
}

#[test]
fn cppnix_substitutes_from_nivis_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let secret = t.join("key.sec");
    let public = t.join("key.pub");
    ok(cppnix("nix-store", &["--generate-binary-cache-key", "serve-cli-1", secret.to_str().unwrap(), public.to_str().unwrap()]));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .args(["serve", "--listen", &address, "--store", source.to_str().unwrap(), "--secret-key-file"])
        .arg(&secret)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(&address).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let destination = t.join("destination");
    let result = cppnix(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command",
            "copy",
            "--from",
            &format!("http://{address}"),
            "--to",
            destination.to_str().unwrap(),
            "--option",
            "trusted-public-keys",
            std::fs::read_to_string(&public).unwrap().trim(),
            &second,
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    ok(result);
    assert_eq!(hash_in(&destination, &first), hash_in(&source, &first));
    assert_eq!(hash_in(&destination, &second), hash_in(&source, &second));
}
