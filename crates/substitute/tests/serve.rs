//! `serve` over real HTTP on 127.0.0.1: zstd NARs substituted by CppNix 2.8
//! (`nix copy --from`, `nix-store -r`) and read by nivis, byte ranges against
//! `nix-store --dump`, build logs (also through `nix log --store http://…`),
//! 32 concurrent clients, and clients that stall.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nivis_store::Store;
use nivis_substitute::serve::{NarCompression, ServeConfig, serve};
use nivis_substitute::BinaryCacheStore;

fn start_server(root: &Path, config: ServeConfig) -> String {
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

/// One response: status, head, body (de-chunked).
struct Response {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Reads one response from a kept-alive connection.
fn read_response(reader: &mut BufReader<TcpStream>, head_only: bool) -> Response {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "connection closed in the head: {head}");
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut response = Response { status: head[9..12].parse().unwrap(), head, body: Vec::new() };
    if head_only {
        return response;
    }
    if let Some(length) = response.header("Content-Length") {
        response.body.resize(length.parse().unwrap(), 0);
        reader.read_exact(&mut response.body).unwrap();
    } else if response.header("Transfer-Encoding") == Some("chunked") {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim_end(), 16).unwrap();
            let start = response.body.len();
            response.body.resize(start + size + 2, 0);
            reader.read_exact(&mut response.body[start..]).unwrap();
            assert_eq!(response.body.split_off(start + size), b"\r\n");
            if size == 0 {
                break;
            }
        }
    } else {
        reader.read_to_end(&mut response.body).unwrap();
    }
    response
}

/// Sends one request on a new connection and reads the answer.
fn request(address: &str, method: &str, target: &str, headers: &str) -> Response {
    let stream = TcpStream::connect(address.strip_prefix("http://").unwrap()).unwrap();
    write!(&stream, "{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n").unwrap();
    read_response(&mut BufReader::new(stream), method == "HEAD")
}

fn get(address: &str, target: &str) -> Response {
    request(address, "GET", target, "")
}

/// `nix-store --dump` of a path's contents (CppNix 2.8 dumps the file
/// system path it is given, so the physical one under the root).
fn cppnix_dump(root: &Path, path: &str) -> Vec<u8> {
    let real = root.join(path.strip_prefix('/').unwrap());
    let output = std::process::Command::new("nix-store")
        .arg("--dump")
        .arg(&real)
        .env_remove("NIX_REMOTE")
        .output()
        .unwrap();
    assert!(output.status.success());
    output.stdout
}

/// With `--compression zstd`, narinfos point at `.nar.zst`, compressed while
/// streaming: CppNix substitutes them (`nix copy --from`, `nix-store -r`) with
/// the server's key trusted, and so does nivis.
#[test]
fn zstd_nars_substitute_into_cppnix_and_nivis() {
    let tmp = tempfile::tempdir().unwrap();
    let source_root = tmp.path().join("source");
    let paths = populate(&open_local(&source_root), "serve-zstd", 2_000_000);
    let (_, secret_key, public_key) = cppnix_key(tmp.path(), "serve-zstd.test-1");
    let config =
        ServeConfig { secret_key: Some(secret_key), compression: NarCompression::Zstd, ..ServeConfig::default() };
    let address = start_server(&source_root, config);

    let narinfo = get(&address, &format!("/{}.narinfo", paths[0].hash_part()));
    let text = String::from_utf8(narinfo.body).unwrap();
    assert!(text.contains("\nCompression: zstd\n"), "{text}");
    assert!(text.contains(&format!(".nar.zst?hash={}\n", paths[0].hash_part())), "{text}");
    assert!(!text.contains("FileSize") && !text.contains("FileHash"), "{text}");
    let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    let compressed = get(&address, &format!("/{url}"));
    assert_eq!(compressed.header("Transfer-Encoding"), None, "Connection: close ends the body instead");
    let nar = zstd::decode_all(&compressed.body[..]).unwrap();
    assert_eq!(nar, cppnix_dump(&source_root, &printed(&paths[0])));
    assert!(compressed.body.len() < nar.len() / 4, "the test data compresses well");

    let destination_root = tmp.path().join("cppnix-copy");
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

    let realised_root = tmp.path().join("cppnix-realise");
    let trusted = public_key.to_string();
    let out = cppnix(
        "nix-store",
        &[
            "--store",
            realised_root.to_str().unwrap(),
            "--option",
            "substituters",
            &address,
            "--option",
            "trusted-public-keys",
            &trusted,
            "-r",
            &printed(&paths[1]),
        ],
    );
    assert_eq!(out.trim(), printed(&paths[1]));
    assert_eq!(cppnix_hash(&realised_root, &printed(&paths[0])), cppnix_hash(&source_root, &printed(&paths[0])));

    // nivis's binary cache client reads the chunked zstd stream (kept alive)
    // and checks it against the narinfo's NarHash and NarSize.
    let cache = BinaryCacheStore::open(&address, &settings()).unwrap();
    for path in &paths {
        let mut nar = Vec::new();
        cache.nar_from_path(path, &mut nar).unwrap();
        assert_eq!(nar, cppnix_dump(&source_root, &printed(path)));
    }
}

/// `Range: bytes=…` on uncompressed NARs: 206 with the bytes of
/// `nix-store --dump` at those offsets, 416 past the end, 200 for what the
/// server may ignore (several ranges, bad syntax); HEAD answers the same heads.
#[test]
fn range_requests_match_nix_store_dump() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("source");
    let paths = populate(&open_local(&root), "serve-range", 300_000);
    let address = start_server(&root, ServeConfig::default());
    let dump = cppnix_dump(&root, &printed(&paths[0]));
    let size = dump.len() as u64;

    let narinfo = String::from_utf8(get(&address, &format!("/{}.narinfo", paths[0].hash_part())).body).unwrap();
    let url = format!("/{}", narinfo.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap());
    assert!(url.ends_with(&format!(".nar?hash={}", paths[0].hash_part())), "{url}");

    let whole = get(&address, &url);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(whole.body, dump);

    let cases: Vec<(String, u64, u64)> = vec![
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-99".into(), 0, 99),
        ("bytes=1000-200000".into(), 1000, 200_000),
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        ("bytes=-77".into(), size - 77, size - 1),
        (format!("bytes=5-{}", size + 1000), 5, size - 1),
        (format!("bytes=-{}", size + 5), 0, size - 1),
        (format!("bytes={}-{}", size - 1, size - 1), size - 1, size - 1),
    ];
    for (range, start, end) in cases {
        let part = request(&address, "GET", &url, &format!("Range: {range}\r\n"));
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(part.header("Content-Range"), Some(format!("bytes {start}-{end}/{size}").as_str()), "{range}");
        assert_eq!(part.body, &dump[start as usize..=end as usize], "{range}");
        let head = request(&address, "HEAD", &url, &format!("Range: {range}\r\n"));
        assert_eq!(head.status, 206);
        assert_eq!(head.header("Content-Length"), Some((end - start + 1).to_string().as_str()));
    }
    for range in [format!("bytes={size}-"), format!("bytes={}-{}", size + 3, size + 9), "bytes=-0".into()] {
        let refused = request(&address, "GET", &url, &format!("Range: {range}\r\n"));
        assert_eq!(refused.status, 416, "{range}");
        assert_eq!(refused.header("Content-Range"), Some(format!("bytes */{size}").as_str()));
    }
    for ignored in ["bytes=0-1,5-9", "bytes=9-3", "lines=1-2", "bytes=x-y"] {
        let answer = request(&address, "GET", &url, &format!("Range: {ignored}\r\n"));
        assert_eq!(answer.status, 200, "{ignored}");
        assert_eq!(answer.body, dump);
    }

    // Unknown paths and NAR hashes that do not match the path are 404.
    assert_eq!(get(&address, "/00000000000000000000000000000000.narinfo").status, 404);
    assert_eq!(get(&address, "/not-a-hash.narinfo").status, 404);
    let wrong_path = url.replace(paths[0].hash_part(), paths[1].hash_part());
    assert_eq!(get(&address, &wrong_path).status, 404);
    assert_eq!(get(&address, url.split('?').next().unwrap()).status, 404);
    assert_eq!(request(&address, "HEAD", "/nar/x.nar?hash=y", "").status, 404);
    assert_eq!(get(&address, "/nowhere").status, 404);
    assert_eq!(request(&address, "DELETE", "/nix-cache-info", "").status, 405);
}

/// `/log/<drv>` serves the log the store keeps bzip2-compressed; CppNix's
/// `nix log --store http://…` reads it.
#[test]
fn build_logs_are_served() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("source");
    drop(open_local(&root));
    let drv = cppnix(
        "nix-instantiate",
        &[
            "--store",
            root.to_str().unwrap(),
            "-E",
            "derivation { name = \"logged\"; builder = \"/bin/sh\"; system = \"x86_64-linux\"; }",
        ],
    );
    let drv = drv.trim().to_string();
    let base = drv.strip_prefix("/nix/store/").unwrap();
    let log_dir = root.join("nix/var/log/nix/drvs").join(&base[..2]);
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = "building 'logged'\nline two\n".repeat(50);
    let mut encoder =
        bzip2::write::BzEncoder::new(std::fs::File::create(log_dir.join(format!("{}.bz2", &base[2..]))).unwrap(), bzip2::Compression::best());
    encoder.write_all(log.as_bytes()).unwrap();
    encoder.finish().unwrap();

    let address = start_server(&root, ServeConfig::default());
    let served = get(&address, &format!("/log/{base}"));
    assert_eq!(served.status, 200);
    assert_eq!(String::from_utf8(served.body).unwrap(), log);
    assert_eq!(request(&address, "HEAD", &format!("/log/{base}"), "").header("Content-Length"), Some(log.len().to_string().as_str()));
    // No log, or not a derivation.
    let other = base.replace("logged.drv", "other.drv");
    assert_eq!(get(&address, &format!("/log/{other}")).status, 404);
    assert_eq!(get(&address, "/log/..%2Fetc%2Fpasswd").status, 404);

    let shown = cppnix("nix", &[NIX_COMMAND, "nix-command", "log", "--store", &address, &drv]);
    assert_eq!(shown, log);
}

/// 32 clients at once, each on one kept-alive connection: every answer is
/// right (narinfos, NARs, byte ranges), with fewer workers than clients.
#[test]
fn concurrent_clients_are_all_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("source");
    let store = open_local(&root);
    let mut paths = Vec::new();
    for i in 0..8 {
        paths.extend(populate(&store, &format!("concurrent-{i}"), 20_000 + i * 1000));
    }
    let expected: Vec<(String, String, Vec<u8>)> = paths
        .iter()
        .map(|path| {
            let narinfo = format!("/{}.narinfo", path.hash_part());
            let info = store.query_path_info(path).unwrap().unwrap();
            let mut nar = Vec::new();
            store.nar_from_path(path, &mut nar).unwrap();
            assert_eq!(nar.len() as u64, info.nar_size);
            (narinfo, printed(path), nar)
        })
        .collect();
    let expected = Arc::new(expected);
    let address = start_server(&root, ServeConfig { workers: 8, ..ServeConfig::default() });
    let host = address.strip_prefix("http://").unwrap().to_string();

    let clients: Vec<_> = (0..32)
        .map(|client| {
            let (expected, host) = (expected.clone(), host.clone());
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&host).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                for round in 0..10 {
                    let (narinfo, store_path, nar) = &expected[(client + round) % expected.len()];
                    write!(&stream, "GET {narinfo} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    let response = read_response(&mut reader, false);
                    assert_eq!(response.status, 200);
                    let text = String::from_utf8(response.body).unwrap();
                    assert!(text.starts_with(&format!("StorePath: {store_path}\n")), "{text}");
                    let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
                    let start = (client * 37 + round * 11) % nar.len();
                    write!(&stream, "GET /{url} HTTP/1.1\r\nHost: t\r\n\r\nGET /{url} HTTP/1.1\r\nRange: bytes={start}-\r\n\r\n").unwrap();
                    assert_eq!(&read_response(&mut reader, false).body, nar);
                    assert_eq!(read_response(&mut reader, false).body, &nar[start..]);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
}

/// A client that stalls in its request head and one that stops reading a
/// big NAR hold a worker each, but never the others; the server drops an
/// idle connection after its timeout.
#[test]
fn stalled_clients_do_not_block_others() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("source");
    let paths = populate(&open_local(&root), "serve-stall", 16_000_000);
    let config = ServeConfig { workers: 3, idle_timeout: Duration::from_secs(2), ..ServeConfig::default() };
    let address = start_server(&root, config);
    let host = address.strip_prefix("http://").unwrap();

    let half_head = TcpStream::connect(host).unwrap();
    (&half_head).write_all(b"GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n").unwrap();
    let narinfo = String::from_utf8(get(&address, &format!("/{}.narinfo", paths[0].hash_part())).body).unwrap();
    let url = narinfo.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
    let not_reading = TcpStream::connect(host).unwrap();
    write!(&not_reading, "GET /{url} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    for _ in 0..20 {
        let info = get(&address, "/nix-cache-info");
        assert_eq!(info.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

    // The half-sent request times out: the server closes that connection.
    half_head.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    let waited = Instant::now();
    let _ = (&half_head).read_to_end(&mut rest);
    assert!(waited.elapsed() < Duration::from_secs(5), "closed after {:?}", waited.elapsed());
    drop(not_reading);
}

/// With every worker taken by an idle kept-alive connection, a new client
/// is served within a moment, not after the idle timeout: the idle one is
/// closed for it.
#[test]
fn idle_kept_alive_connections_yield_to_waiting_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("source");
    drop(open_local(&root));
    let config = ServeConfig { workers: 1, idle_timeout: Duration::from_secs(30), ..ServeConfig::default() };
    let address = start_server(&root, config);
    let host = address.strip_prefix("http://").unwrap();

    let idle = TcpStream::connect(host).unwrap();
    let mut idle_reader = BufReader::new(idle.try_clone().unwrap());
    write!(&idle, "GET /nix-cache-info HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut idle_reader, false).status, 200);

    let started = Instant::now();
    assert_eq!(get(&address, "/nix-cache-info").status, 200);
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // The idle connection was ended for it.
    let mut rest = Vec::new();
    idle_reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}
