//! Binary caches against CppNix 2.8 in both directions, and `serve` as
//! CppNix's substituter. Everything is on disk and on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use common::*;
use nivis_store::Store;
use nivis_substitute::serve::{ServeConfig, serve};
use nivis_substitute::{BinaryCacheStore, CopyOptions, Substituter, copy_paths, substitute_paths};

fn no_progress() -> impl FnMut(&nivis_substitute::Progress<'_>) {
    |_| {}
}

/// CppNix writes and signs an xz cache; nivis substitutes from it with
/// signatures checked, and the result is what CppNix registered.
#[test]
fn substitutes_from_a_cache_cppnix_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let source_root = tmp.path().join("source");
    let paths = populate(&open_local(&source_root), "cppnix-cache", 300_000);
    let (secret_file, _, public_key) = cppnix_key(tmp.path(), "cache.test-1");
    let cache_uri = format!("file://{}/cache", tmp.path().display());
    cppnix_copy(&[
        "--store",
        source_root.to_str().unwrap(),
        "--to",
        &format!("{cache_uri}?compression=xz&secret-key={}", secret_file.display()),
        &printed(&paths[1]),
    ]);

    let destination_root = tmp.path().join("destination");
    let destination = open_local(&destination_root);
    let cache: Substituter = Box::new(BinaryCacheStore::open(&cache_uri, &settings()).unwrap());
    let mut reports = Vec::new();
    let report = substitute_paths(
        &destination,
        std::slice::from_ref(&cache),
        &set(&paths[1..]),
        &keyring(&[&public_key]),
        true,
        &mut |p: &nivis_substitute::Progress<'_>| reports.push((p.path.clone(), p.done, p.total, p.source.to_string())),
    )
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.substituted, paths, "references come first");
    // Progress ends at the NAR size for every path.
    for path in &paths {
        let info = destination.query_path_info(path).unwrap().unwrap();
        assert!(reports.iter().any(|(p, done, total, _)| p == path && *done == info.nar_size && *total == info.nar_size));
        // Each copy is announced before its first byte, naming the cache.
        assert!(reports.iter().any(|(p, done, _, source)| p == path && *done == 0 && *source == cache.uri()));
        assert_eq!(info.sigs.len(), 1, "the cache's signature is kept");
    }
    for path in &paths {
        assert_eq!(cppnix_hash(&destination_root, &printed(path)), cppnix_hash(&source_root, &printed(path)));
    }
    let references = cppnix("nix-store", &["--store", destination_root.to_str().unwrap(), "-q", "--references", &printed(&paths[1])]);
    assert_eq!(references.lines().count(), 2);
}

/// A cache nivis writes (each compression, signed) is read by CppNix with
/// `require-sigs`; with `compression=none` the narinfo is CppNix's to the byte.
#[test]
fn cppnix_reads_a_cache_nivis_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let source_root = tmp.path().join("source");
    let source = open_local(&source_root);
    let paths = populate(&source, "nivis-cache", 200_000);
    let (secret_file, _, public_key) = cppnix_key(tmp.path(), "nivis.test-1");
    for compression in ["xz", "zstd", "bzip2", "none"] {
        let cache_dir = tmp.path().join(format!("cache-{compression}"));
        let uri = format!("file://{}?compression={compression}&secret-key={}", cache_dir.display(), secret_file.display());
        let cache = BinaryCacheStore::open(&uri, &settings()).unwrap();
        let report = copy_paths(&source, &cache, &set(&paths[1..]), &CopyOptions::default(), &mut no_progress()).unwrap();
        assert_eq!(report.copied, paths);
        // Copying again finds everything there.
        let again = copy_paths(&source, &cache, &set(&paths[1..]), &CopyOptions::default(), &mut no_progress()).unwrap();
        assert!(again.copied.is_empty() && again.skipped.len() == 2);

        let destination_root = tmp.path().join(format!("destination-{compression}"));
        cppnix_copy(&[
            "--from",
            &format!("file://{}", cache_dir.display()),
            "--to",
            destination_root.to_str().unwrap(),
            "--option",
            "require-sigs",
            "true",
            "--option",
            "trusted-public-keys",
            &public_key.to_string(),
            &printed(&paths[1]),
        ]);
        for path in &paths {
            assert_eq!(cppnix_hash(&destination_root, &printed(path)), cppnix_hash(&source_root, &printed(path)));
        }
    }

    // CppNix writes the same path into an uncompressed cache: same narinfo.
    let cppnix_cache = tmp.path().join("cppnix-none");
    cppnix_copy(&[
        "--store",
        source_root.to_str().unwrap(),
        "--to",
        &format!("file://{}?compression=none&secret-key={}", cppnix_cache.display(), secret_file.display()),
        &printed(&paths[1]),
    ]);
    for path in &paths {
        let name = format!("{}.narinfo", path.hash_part());
        let ours = std::fs::read_to_string(tmp.path().join("cache-none").join(&name)).unwrap();
        let theirs = std::fs::read_to_string(cppnix_cache.join(&name)).unwrap();
        assert_eq!(ours, theirs);
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("cache-none/nix-cache-info")).unwrap(),
        std::fs::read_to_string(cppnix_cache.join("nix-cache-info")).unwrap()
    );
}

fn start_server(root: &std::path::Path, config: ServeConfig) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let uri = format!("local?root={}", root.display());
    std::thread::spawn(move || {
        let settings = settings();
        let open = Arc::new(move || nivis_substitute::open_store(&uri, &settings));
        serve(listener, open, config).unwrap();
    });
    format!("http://{address}")
}

fn http(address: &str, request: &str) -> (u16, String, Vec<u8>) {
    let host = address.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

/// CppNix substitutes from `serve` (signed on the fly), and the server
/// answers HEAD, 404 and several clients at once.
#[test]
fn cppnix_substitutes_from_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let source_root = tmp.path().join("source");
    let paths = populate(&open_local(&source_root), "serve", 500_000);
    let (_, secret_key, public_key) = cppnix_key(tmp.path(), "serve.test-1");
    let address = start_server(&source_root, ServeConfig { secret_key: Some(secret_key), ..ServeConfig::default() });

    let destination_root = tmp.path().join("destination");
    cppnix_copy(&[
        "--from",
        &address,
        "--to",
        destination_root.to_str().unwrap(),
        "--option",
        "trusted-public-keys",
        &public_key.to_string(),
        &printed(&paths[1]),
    ]);
    for path in &paths {
        assert_eq!(cppnix_hash(&destination_root, &printed(path)), cppnix_hash(&source_root, &printed(path)));
    }
    let info = cppnix("nix", &[NIX_COMMAND, "nix-command", "path-info", "--store", &address, "--sigs", &printed(&paths[0])]);
    assert!(info.contains("serve.test-1:"), "{info}");

    // Several clients at once, each fetching every NAR.
    let cache = Arc::new(BinaryCacheStore::open(&address, &settings()).unwrap());
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let cache = cache.clone();
            let paths = paths.clone();
            std::thread::spawn(move || {
                for path in &paths {
                    let mut nar = Vec::new();
                    cache.nar_from_path(path, &mut nar).unwrap();
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }

    let narinfo = format!("/{}.narinfo", paths[0].hash_part());
    let (status, head, body) = http(&address, &format!("HEAD {narinfo} HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert_eq!(status, 200);
    assert!(body.is_empty() && head.contains("Content-Length: "));
    let (status, _, _) = http(&address, "GET /00000000000000000000000000000000.narinfo HTTP/1.0\r\n\r\n");
    assert_eq!(status, 404);
    let (status, _, body) = http(&address, "GET /nix-cache-info HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
    assert!(String::from_utf8(body).unwrap().starts_with("StoreDir: /nix/store\n"));
    let (status, _, _) = http(&address, "POST /nix-cache-info HTTP/1.0\r\n\r\n");
    assert_eq!(status, 405);
}

/// A WebDAV-style server: GET/HEAD serve files under `dir`, PUT writes them.
fn put_server(dir: std::path::PathBuf) -> String {
    use std::io::BufRead;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut parts = request_line.split(' ');
            let (method, target) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
            let file = dir.join(target.trim_start_matches('/'));
            let (status, body) = match method.as_str() {
                "PUT" => {
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                    std::fs::write(&file, body).unwrap();
                    ("201 Created", Vec::new())
                }
                _ => match std::fs::read(&file) {
                    Ok(body) => ("200 OK", body),
                    Err(_) => ("404 Not Found", Vec::new()),
                },
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    format!("http://{address}")
}

/// nivis uploads a cache over HTTP PUT; CppNix reads the files it stored.
#[test]
fn uploads_over_http_put() {
    let tmp = tempfile::tempdir().unwrap();
    let source = open_local(&tmp.path().join("source"));
    let paths = populate(&source, "put", 50_000);
    let served = tmp.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let address = put_server(served.clone());
    let cache = BinaryCacheStore::open(&format!("{address}?compression=zstd"), &settings()).unwrap();
    let report = copy_paths(&source, &cache, &set(&paths[1..]), &CopyOptions::default(), &mut no_progress()).unwrap();
    assert_eq!(report.copied, paths);
    let destination_root = tmp.path().join("destination");
    cppnix_copy(&[
        "--no-check-sigs",
        "--from",
        &format!("file://{}", served.display()),
        "--to",
        destination_root.to_str().unwrap(),
        &printed(&paths[1]),
    ]);
    for path in &paths {
        assert_eq!(cppnix_hash(&destination_root, &printed(path)), cppnix_hash(&tmp.path().join("source"), &printed(path)));
    }
}

/// The configuration decides which caches are asked and which keys count.
#[test]
fn substituter_set_follows_the_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let source = open_local(&tmp.path().join("source"));
    let paths = populate(&source, "config", 10_000);
    let (secret_file, _, public_key) = cppnix_key(tmp.path(), "config-1");
    let cache_dir = tmp.path().join("cache");
    let cache = BinaryCacheStore::open(
        &format!("file://{}?secret-key={}", cache_dir.display(), secret_file.display()),
        &settings(),
    )
    .unwrap();
    copy_paths(&source, &cache, &set(&paths[1..]), &CopyOptions::default(), &mut no_progress()).unwrap();

    let mut config = nivis_config::Config::new();
    config.set("substituters", &format!("file://{} http://127.0.0.1:1", cache_dir.display()));
    config.set("trusted-public-keys", "someone-else-1:ZWxzZWVsc2VlbHNlZWxzZWVsc2VlbHNlZWxzZWVsc2U=");
    let (untrusting, warnings) = nivis_substitute::SubstituterSet::from_config(&config, &settings()).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let local = open_local(&tmp.path().join("local"));
    assert!(untrusting.substitute(&local, &set(&paths[1..]), &mut no_progress()).unwrap().is_empty());
    assert!(!local.is_valid_path(&paths[0]).unwrap());

    config.set("trusted-public-keys", &public_key.to_string());
    let (trusting, _) = nivis_substitute::SubstituterSet::from_config(&config, &settings()).unwrap();
    assert_eq!(trusting.substitute(&local, &set(&paths[1..]), &mut no_progress()).unwrap(), set(&paths));

    config.set("substitute", "false");
    let (disabled, _) = nivis_substitute::SubstituterSet::from_config(&config, &settings()).unwrap();
    assert!(disabled.substituters.is_empty());
}
