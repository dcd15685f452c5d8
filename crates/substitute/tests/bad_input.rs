//! Caches that lie, break or misbehave: every case is refused with a clear
//! message, nothing is registered, and the next substituter is tried.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;

use common::*;
use nivis_formats::{Keyring, StorePath};
use nivis_store::{LocalStore, Store};
use nivis_substitute::{BinaryCacheStore, CopyOptions, Substituter, copy_paths, open_substituters, substitute_paths};

struct Fixture {
    tmp: tempfile::TempDir,
    paths: Vec<StorePath>,
    keyring: Keyring,
}

/// A source store with two paths, written by nivis into `cache-<name>` caches
/// with the given compression, signed by the key `good`.
impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let source = open_local(&tmp.path().join("source"));
        let paths = populate(&source, "bad-input", 100_000);
        let (_, _, public_key) = cppnix_key(tmp.path(), "good");
        Fixture { tmp, paths, keyring: keyring(&[&public_key]) }
    }

    fn cache(&self, name: &str, compression: &str) -> String {
        let source = open_local(&self.tmp.path().join("source"));
        let dir = self.tmp.path().join(format!("cache-{name}"));
        let uri = format!(
            "file://{}?compression={compression}&secret-key={}",
            dir.display(),
            self.tmp.path().join("good.sec").display()
        );
        let cache = BinaryCacheStore::open(&uri, &settings()).unwrap();
        copy_paths(&source, &cache, &set(&self.paths[1..]), &CopyOptions::default(), &mut |_| {}).unwrap();
        format!("file://{}", dir.display())
    }

    fn dir(&self, name: &str) -> std::path::PathBuf {
        self.tmp.path().join(format!("cache-{name}"))
    }

    fn destination(&self, name: &str) -> LocalStore {
        open_local(&self.tmp.path().join(format!("destination-{name}")))
    }

    /// Rewrites a line of the narinfo of `path` in cache `name`.
    fn edit_narinfo(&self, name: &str, path: &StorePath, edit: impl Fn(&str) -> Option<String>) {
        let file = self.dir(name).join(format!("{}.narinfo", path.hash_part()));
        let text = std::fs::read_to_string(&file).unwrap();
        let edited: String = text.lines().filter_map(|line| edit(line).map(|l| l + "\n")).collect();
        assert_ne!(text, edited, "the edit changed nothing");
        std::fs::write(&file, edited).unwrap();
    }

    fn nar_file(&self, name: &str, path: &StorePath) -> std::path::PathBuf {
        let file = self.dir(name).join(format!("{}.narinfo", path.hash_part()));
        let text = std::fs::read_to_string(&file).unwrap();
        let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
        self.dir(name).join(url)
    }
}

fn open(uris: &[String]) -> Vec<Substituter> {
    let (substituters, warnings) = open_substituters(uris, &settings());
    assert!(warnings.is_empty(), "{warnings:?}");
    substituters
}

/// Substitutes the first path (no references) and returns the error text.
fn substitute_fails(fixture: &Fixture, uris: &[String], require_sigs: bool, destination: &str) -> String {
    let destination_store = fixture.destination(destination);
    let path = &fixture.paths[0];
    let report = substitute_paths(
        &destination_store,
        &open(uris),
        &set(std::slice::from_ref(path)),
        &fixture.keyring,
        require_sigs,
        &mut |_| {},
    )
    .unwrap();
    assert!(report.substituted.is_empty());
    assert_eq!(report.failed.len(), 1);
    assert_nothing_registered(&destination_store, path);
    report.failed[0].1.to_string()
}

fn assert_nothing_registered(store: &LocalStore, path: &StorePath) {
    assert!(!store.is_valid_path(path).unwrap());
    let real = store.config().real_store_dir.join(path.base_name());
    assert!(!real.exists(), "{} left behind", real.display());
}

#[test]
fn untrusted_and_forged_signatures_are_refused_and_the_next_cache_is_used() {
    let fixture = Fixture::new();
    // Signed by a key nobody trusts.
    let (other_secret, _, _) = cppnix_key(fixture.tmp.path(), "other");
    let source = open_local(&fixture.tmp.path().join("source"));
    let untrusted_dir = fixture.tmp.path().join("cache-untrusted");
    let untrusted = BinaryCacheStore::open(
        &format!("file://{}?secret-key={}", untrusted_dir.display(), other_secret.display()),
        &settings(),
    )
    .unwrap();
    copy_paths(&source, &untrusted, &set(&fixture.paths[..1]), &CopyOptions::default(), &mut |_| {}).unwrap();
    let untrusted_uri = format!("file://{}", untrusted_dir.display());
    let message = substitute_fails(&fixture, std::slice::from_ref(&untrusted_uri), true, "untrusted");
    assert!(message.contains("lacks a signature by a trusted key"), "{message}");

    // A trusted key name with a signature over something else.
    let forged = fixture.cache("forged", "xz");
    let good_narinfo = std::fs::read_to_string(fixture.dir("forged").join(format!("{}.narinfo", fixture.paths[1].hash_part()))).unwrap();
    let other_sig = good_narinfo.lines().find_map(|l| l.strip_prefix("Sig: ")).unwrap().to_string();
    fixture.edit_narinfo("forged", &fixture.paths[0], |line| {
        Some(if line.starts_with("Sig: ") { format!("Sig: {other_sig}") } else { line.to_string() })
    });
    let message = substitute_fails(&fixture, std::slice::from_ref(&forged), true, "forged");
    assert!(message.contains("lacks a signature by a trusted key"), "{message}");

    // Bad caches first, a good one last: the good one provides the path.
    let good = fixture.cache("good", "zstd");
    let destination = fixture.destination("fallback");
    let report = substitute_paths(
        &destination,
        &open(&[untrusted_uri, forged, good]),
        &set(&fixture.paths[..1]),
        &fixture.keyring,
        true,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.substituted, fixture.paths[..1].to_vec());
    assert!(destination.is_valid_path(&fixture.paths[0]).unwrap());
}

#[test]
fn lying_hashes_and_sizes_are_refused() {
    let fixture = Fixture::new();
    let path = fixture.paths[0].clone();
    let other_hash = {
        let text = std::fs::read_to_string(fixture.dir_after(&fixture.cache("reference", "none"), &fixture.paths[1])).unwrap();
        text.lines().find_map(|l| l.strip_prefix("NarHash: ")).unwrap().to_string()
    };

    // NarHash of another path (unsigned check: the lie is in the data).
    let uri = fixture.cache("nar-hash", "xz");
    fixture.edit_narinfo("nar-hash", &path, |l| Some(if l.starts_with("NarHash: ") { format!("NarHash: {other_hash}") } else { l.to_string() }));
    // The local store's add_nar is the one that hashes the NAR (CppNix's
    // wording: "hash mismatch importing path").
    let message = substitute_fails(&fixture, &[uri], false, "nar-hash");
    assert!(message.contains("hash mismatch importing path") && message.contains(&other_hash), "{message}");

    // NarSize larger than the NAR: the stream ends early.
    let uri = fixture.cache("nar-size-big", "none");
    fixture.edit_narinfo("nar-size-big", &path, |l| {
        Some(match l.strip_prefix("NarSize: ") {
            Some(size) => format!("NarSize: {}", size.parse::<u64>().unwrap() + 8),
            None => l.to_string(),
        })
    });
    let message = substitute_fails(&fixture, &[uri], false, "nar-size-big");
    assert!(message.contains("truncated"), "{message}");

    // NarSize smaller than the NAR: data left over.
    let uri = fixture.cache("nar-size-small", "zstd");
    fixture.edit_narinfo("nar-size-small", &path, |l| {
        Some(match l.strip_prefix("NarSize: ") {
            Some(size) => format!("NarSize: {}", size.parse::<u64>().unwrap() - 8),
            None => l.to_string(),
        })
    });
    let message = substitute_fails(&fixture, &[uri], false, "nar-size-small");
    assert!(message.contains("size mismatch in NAR"), "{message}");

    // FileHash that is not the file's.
    let uri = fixture.cache("file-hash", "bzip2");
    fixture.edit_narinfo("file-hash", &path, |l| {
        Some(if l.starts_with("FileHash: ") { format!("FileHash: {other_hash}") } else { l.to_string() })
    });
    let message = substitute_fails(&fixture, &[uri], false, "file-hash");
    assert!(message.contains("hash mismatch in compressed file"), "{message}");

    // A truncated download, without FileSize/FileHash to catch it first.
    let uri = fixture.cache("truncated", "none");
    let nar = fixture.nar_file("truncated", &path);
    let bytes = std::fs::read(&nar).unwrap();
    std::fs::write(&nar, &bytes[..bytes.len() / 2]).unwrap();
    fixture.edit_narinfo("truncated", &path, |l| (!l.starts_with("File")).then(|| l.to_string()));
    let message = substitute_fails(&fixture, &[uri], false, "truncated");
    assert!(message.contains("truncated"), "{message}");

    // A truncated xz file: the decompressor says so.
    let uri = fixture.cache("truncated-xz", "xz");
    let nar = fixture.nar_file("truncated-xz", &path);
    let bytes = std::fs::read(&nar).unwrap();
    std::fs::write(&nar, &bytes[..bytes.len() - 20]).unwrap();
    fixture.edit_narinfo("truncated-xz", &path, |l| (!l.starts_with("File")).then(|| l.to_string()));
    let message = substitute_fails(&fixture, &[uri], false, "truncated-xz");
    assert!(message.contains("xz") || message.contains("truncated"), "{message}");

    // The NAR file is missing.
    let uri = fixture.cache("missing", "xz");
    std::fs::remove_file(fixture.nar_file("missing", &path)).unwrap();
    let message = substitute_fails(&fixture, &[uri], false, "missing");
    assert!(message.contains("does not exist in the binary cache"), "{message}");
}

impl Fixture {
    fn dir_after(&self, uri: &str, path: &StorePath) -> std::path::PathBuf {
        Path::new(uri.strip_prefix("file://").unwrap()).join(format!("{}.narinfo", path.hash_part()))
    }
}

/// A server that answers `nix-cache-info` and then 500 for everything, or a
/// NAR body cut short; returns its URL.
fn misbehaving_server(cut_nar_from: Option<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
            }
            let target = request_line.split(' ').nth(1).unwrap_or("").to_string();
            let reply = |stream: &mut std::net::TcpStream, status: &str, body: &[u8], length: usize| {
                let head = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            };
            if target == "/nix-cache-info" {
                let info = b"StoreDir: /nix/store\nPriority: 10\n";
                reply(&mut stream, "200 OK", info, info.len());
            } else if let Some(dir) = &cut_nar_from {
                // Serve the directory's files, but send half of every NAR while
                // promising all of it.
                let Ok(body) = std::fs::read(Path::new(dir).join(target.trim_start_matches('/'))) else {
                    reply(&mut stream, "404 Not Found", b"", 0);
                    continue;
                };
                let sent = if target.starts_with("/nar/") { body.len() / 2 } else { body.len() };
                reply(&mut stream, "200 OK", &body[..sent], body.len());
            } else {
                reply(&mut stream, "500 Internal Server Error", b"oops", 4);
            }
            // Closing tells a client still waiting for promised bytes that none come.
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    format!("http://{address}")
}

#[test]
fn a_failing_server_is_passed_over_for_the_next_substituter() {
    // Every try is retried (download-attempts): keep the waits short.
    nivis_substitute::configure_network(nivis_substitute::NetworkSettings {
        retry_base: std::time::Duration::from_millis(5),
        ..Default::default()
    });
    let fixture = Fixture::new();
    let failing = misbehaving_server(None);
    let message = substitute_fails(&fixture, std::slice::from_ref(&failing), false, "failing");
    assert!(message.contains("HTTP error 500"), "{message}");

    let good = fixture.cache("good", "xz");
    let cut_dir = fixture.cache("cut", "none");
    let cut = misbehaving_server(Some(cut_dir.strip_prefix("file://").unwrap().to_string()));
    let message = substitute_fails(&fixture, std::slice::from_ref(&cut), false, "cut");
    assert!(message.contains("truncated") || message.contains(&cut), "{message}");

    // Both bad servers have priority 10, ahead of the file cache's 50.
    let destination = fixture.destination("fallback");
    let substituters = open(&[good, failing, cut]);
    assert!(substituters[0].uri().starts_with("http://"));
    let report = substitute_paths(
        &destination,
        &substituters,
        &set(&fixture.paths[1..]),
        &fixture.keyring,
        true,
        &mut |_| {},
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.substituted, fixture.paths);

    // A cache that is unreachable is skipped with a warning.
    let (substituters, warnings) = open_substituters(&["http://127.0.0.1:1".to_string()], &settings());
    assert!(substituters.is_empty());
    assert!(warnings[0].contains("disabling substituter 'http://127.0.0.1:1'"), "{warnings:?}");
}
