//! HTTP binary caches that misbehave the way networks do: servers on
//! 127.0.0.1 that answer 500 for a while, stall, cut bodies short or lack a
//! file. Transient failures are retried (`download-attempts`) with short waits
//! here, stalls end after `stalled-download-timeout`, 404 is an answer and not
//! retried, and a NAR that cannot be had registers nothing: the next
//! substituter is tried, and the report says a substitute existed but failed
//! (what `fallback` decides on).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use nivis_formats::{Keyring, StorePath};
use nivis_store::{LocalStore, Store};
use nivis_substitute::{BinaryCacheStore, CopyOptions, NetworkSettings, Substituter, copy_paths, substitute_paths};

/// What the test server does with one request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// The file (or 404), honouring `Range: bytes=N-` with 206.
    File,
    /// This status and a short body.
    Status(u16),
    /// Accept the request and never answer (until the test is long over).
    Stall,
    /// Promise the whole file, send half of it, close. `ranges`: announce
    /// `Accept-Ranges: bytes`.
    Cut { ranges: bool },
    /// Promise the whole file, send half of it, then send nothing more.
    StallHalfway,
}

/// Decides the reply from the request path and how many requests for that
/// path came before (0 for the first).
type Script = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// A request the server saw: path and `Range` header.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

struct Server {
    url: String,
    seen: Seen,
}

impl Server {
    /// Serves the files of `root` on a random port, as `script` says.
    fn start(root: PathBuf, script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let root = Arc::new(root);
        let seen_by_server = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (script, root, seen) = (script.clone(), root.clone(), seen_by_server.clone());
                std::thread::spawn(move || handle(stream, &root, &*script, &seen));
            }
        });
        Server { url, seen }
    }

    /// How many requests asked for `path` (e.g. "/nix-cache-info").
    fn count(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|(p, _)| p == path).count()
    }

    fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.seen.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, r)| r.clone()).collect()
    }
}

fn handle(mut stream: TcpStream, root: &Path, script: &Script, seen: &Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let nth = {
        let mut seen = seen.lock().unwrap();
        let nth = seen.iter().filter(|(p, _)| *p == path).count();
        seen.push((path.clone(), range.clone()));
        nth
    };
    let head_only = method == "HEAD";
    let mut reply = |status: &str, extra: &str, body: &[u8], length: usize| {
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n{extra}\r\n");
        let _ = stream.write_all(head.as_bytes());
        if !head_only {
            let _ = stream.write_all(body);
        }
    };
    match script(&path, nth) {
        Reply::Status(code) => reply(&format!("{code} Scripted"), "", b"scripted", 8),
        Reply::Stall => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
        chosen @ (Reply::File | Reply::Cut { .. } | Reply::StallHalfway) => {
            let Ok(body) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
                reply("404 Not Found", "", b"", 0);
                return;
            };
            let from = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            match (chosen, from) {
                (Reply::Cut { ranges }, _) => {
                    let extra = if ranges { "Accept-Ranges: bytes\r\n" } else { "" };
                    reply("200 OK", extra, &body[..body.len() / 2], body.len());
                }
                (Reply::StallHalfway, _) => {
                    reply("200 OK", "", &body[..body.len() / 2], body.len());
                    let _ = stream.flush();
                    std::thread::sleep(Duration::from_secs(60));
                    return;
                }
                (_, Some(from)) if from < body.len() => {
                    let extra = format!("Accept-Ranges: bytes\r\nContent-Range: bytes {from}-{}/{}\r\n", body.len() - 1, body.len());
                    reply("206 Partial Content", &extra, &body[from..], body.len() - from);
                }
                _ => reply("200 OK", "Accept-Ranges: bytes\r\n", &body, body.len()),
            }
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Short waits between retries, warnings collected; `attempts` tries.
fn quick(attempts: u32, warnings: &Arc<Mutex<Vec<String>>>) -> NetworkSettings {
    let sink = warnings.clone();
    NetworkSettings {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Some(Duration::from_secs(1)),
        attempts,
        retry_base: Duration::from_millis(20),
        warn: Arc::new(move |message| sink.lock().unwrap().push(message.to_string())),
    }
}

struct Fixture {
    tmp: tempfile::TempDir,
    /// `[lib, app]`; app refers to lib.
    paths: Vec<StorePath>,
    /// A file:// cache (uncompressed NARs) holding both.
    cache_dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let source = open_local(&tmp.path().join("source"));
        // Fresh store paths every run: the on-disk narinfo cache outlives the
        // run, and a later server may get the same port.
        let salt = format!("network-{}-{:?}", std::process::id(), std::time::SystemTime::now());
        let paths = populate(&source, &salt, 200_000);
        let cache_dir = tmp.path().join("cache");
        let cache = BinaryCacheStore::open(&format!("file://{}?compression=none", cache_dir.display()), &settings()).unwrap();
        copy_paths(&source, &cache, &set(&paths), &CopyOptions::default(), &mut |_| {}).unwrap();
        Fixture { tmp, paths, cache_dir }
    }

    fn destination(&self, name: &str) -> LocalStore {
        open_local(&self.tmp.path().join(format!("destination-{name}")))
    }

    fn narinfo_request(&self, path: &StorePath) -> String {
        format!("/{}.narinfo", path.hash_part())
    }

    fn nar_request(&self, path: &StorePath) -> String {
        let text = std::fs::read_to_string(self.cache_dir.join(format!("{}.narinfo", path.hash_part()))).unwrap();
        format!("/{}", text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap())
    }

    fn open_http(&self, server: &Server, network: &NetworkSettings) -> Substituter {
        Box::new(BinaryCacheStore::open_with_network(&server.url, &settings(), network).unwrap())
    }

    fn open_file_cache(&self) -> Substituter {
        Box::new(BinaryCacheStore::open(&format!("file://{}", self.cache_dir.display()), &settings()).unwrap())
    }
}

fn assert_nothing_registered(store: &LocalStore, path: &StorePath) {
    assert!(!store.is_valid_path(path).unwrap());
    let real = store.config().real_store_dir.join(path.base_name());
    assert!(!real.exists(), "{} left behind", real.display());
}

fn substitute(
    destination: &LocalStore,
    substituters: &[Substituter],
    paths: &[StorePath],
) -> nivis_substitute::SubstituteReport {
    substitute_paths(destination, substituters, &set(paths), &Keyring::default(), false, &mut |_| {}).unwrap()
}

#[test]
fn server_errors_are_retried_until_the_server_recovers() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let narinfo = fixture.narinfo_request(&lib);
    let nar = fixture.nar_request(&lib);
    let (narinfo_s, nar_s) = (narinfo.clone(), nar.clone());
    // 500 twice for the narinfo, 503 once for the NAR, then all is well.
    let server = Server::start(fixture.cache_dir.clone(), move |path, nth| match path {
        p if p == narinfo_s && nth < 2 => Reply::Status(500),
        p if p == nar_s && nth < 1 => Reply::Status(503),
        _ => Reply::File,
    });
    let warnings = Arc::default();
    let cache = fixture.open_http(&server, &quick(5, &warnings));
    let destination = fixture.destination("retry");
    let started = Instant::now();
    let report = substitute(&destination, &[cache], std::slice::from_ref(&lib));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.substituted, vec![lib.clone()]);
    assert!(destination.is_valid_path(&lib).unwrap());
    assert_eq!(server.count(&narinfo), 3, "two failures and the answer");
    assert_eq!(server.count(&nar), 2);
    let warnings = warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    let narinfo_url = format!("{}{narinfo}", server.url);
    assert!(
        warnings[0].starts_with(&format!("unable to download '{narinfo_url}': HTTP error 500 ('Internal Server Error'); retrying in ")),
        "{warnings:?}"
    );
    assert!(warnings[2].contains("HTTP error 503"), "{warnings:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn retries_end_after_download_attempts_and_the_error_names_the_url() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let narinfo = fixture.narinfo_request(&lib);
    let narinfo_s = narinfo.clone();
    let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
        if path == narinfo_s { Reply::Status(502) } else { Reply::File }
    });
    let warnings = Arc::default();
    let cache = fixture.open_http(&server, &quick(3, &warnings));
    let destination = fixture.destination("give-up");
    let report = substitute(&destination, &[cache], std::slice::from_ref(&lib));
    assert_eq!(server.count(&narinfo), 3);
    let warnings = warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert_eq!(warnings[2], format!("disabling binary cache '{}' for 60 seconds", server.url));
    assert_eq!(report.failed.len(), 1);
    let message = report.failed[0].1.to_string();
    assert!(message.contains(&format!("unable to download '{}{narinfo}': HTTP error 502", server.url)), "{message}");
    // The narinfo could not be read: a substitute may exist, so this is a
    // failed substitution (fallback decides), not a missing one.
    assert!(report.substitutes_failed.contains(&lib));
    assert_nothing_registered(&destination, &lib);
}

#[test]
fn not_found_and_forbidden_are_answers_not_retried() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let narinfo = fixture.narinfo_request(&lib);
    for (status, name) in [(404, "not-found"), (403, "forbidden")] {
        let narinfo_s = narinfo.clone();
        let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
            if path == narinfo_s { Reply::Status(status) } else { Reply::File }
        });
        let warnings = Arc::default();
        let cache = fixture.open_http(&server, &quick(5, &warnings));
        let destination = fixture.destination(name);
        let report = substitute(&destination, &[cache], std::slice::from_ref(&lib));
        assert_eq!(server.count(&narinfo), 1, "{status} was retried");
        assert!(warnings.lock().unwrap().is_empty());
        assert_eq!(report.failed.len(), 1);
        // Nobody has it: the caller builds it, whatever `fallback` says.
        assert!(report.substitutes_failed.is_empty(), "{status}");
        assert_nothing_registered(&destination, &lib);
    }
    // Other client errors are errors, also not retried.
    let narinfo_s = narinfo.clone();
    let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
        if path == narinfo_s { Reply::Status(400) } else { Reply::File }
    });
    let warnings = Arc::default();
    let cache = fixture.open_http(&server, &quick(5, &warnings));
    let report = substitute(&fixture.destination("bad-request"), &[cache], std::slice::from_ref(&lib));
    assert_eq!(server.count(&narinfo), 1);
    assert!(report.failed[0].1.to_string().contains("HTTP error 400"), "{:?}", report.failed);
    assert!(report.substitutes_failed.contains(&lib));
}

#[test]
fn a_stalled_server_fails_after_the_stall_timeout() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let narinfo = fixture.narinfo_request(&lib);
    // The cache opens (nix-cache-info answers), then the narinfo request is
    // accepted and never answered.
    let narinfo_s = narinfo.clone();
    let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
        if path == narinfo_s { Reply::Stall } else { Reply::File }
    });
    let warnings = Arc::default();
    let cache = fixture.open_http(&server, &quick(2, &warnings));
    let destination = fixture.destination("stall");
    let started = Instant::now();
    let report = substitute(&destination, &[cache, fixture.open_file_cache()], std::slice::from_ref(&lib));
    let elapsed = started.elapsed();
    // Two tries of one second each, and the short wait between them; then
    // the cache is disabled, so fetching does not ask it again.
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(6), "{elapsed:?}");
    assert_eq!(server.count(&narinfo), 2);
    let warnings = warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("unable to download '{}{narinfo}': no data received for 1 seconds ('stalled-download-timeout')", server.url)),
        "{warnings:?}"
    );
    // The file cache behind it provided the path.
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(destination.is_valid_path(&lib).unwrap());
}

#[test]
fn a_body_that_stalls_halfway_fails_after_the_stall_timeout() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let nar = fixture.nar_request(&lib);
    let nar_s = nar.clone();
    let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
        if path == nar_s { Reply::StallHalfway } else { Reply::File }
    });
    let warnings = Arc::default();
    let destination = fixture.destination("stall-halfway");
    let started = Instant::now();
    let report = substitute(&destination, &[fixture.open_http(&server, &quick(3, &warnings))], std::slice::from_ref(&lib));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert_eq!(report.failed.len(), 1);
    let message = report.failed[0].1.to_string();
    let size = std::fs::metadata(fixture.cache_dir.join(nar.trim_start_matches('/'))).unwrap().len();
    let expected = format!(
        "unable to download '{}{nar}': no data received for 1 seconds ('stalled-download-timeout') after {} of {size} bytes",
        server.url,
        size / 2
    );
    assert!(message.contains(&expected), "{message}");
    assert!(report.substitutes_failed.contains(&lib));
    assert_nothing_registered(&destination, &lib);
}

#[test]
fn a_cut_nar_registers_nothing_and_the_next_cache_is_used() {
    let fixture = Fixture::new();
    let lib = fixture.paths[0].clone();
    let nar = fixture.nar_request(&lib);
    let nar_s = nar.clone();
    // No Accept-Ranges: a body that broke off after bytes were consumed
    // cannot be resumed.
    let server = Server::start(fixture.cache_dir.clone(), move |path, _| {
        if path == nar_s { Reply::Cut { ranges: false } } else { Reply::File }
    });
    let warnings = Arc::default();
    let network = quick(3, &warnings);

    let destination = fixture.destination("cut-alone");
    let report = substitute(&destination, &[fixture.open_http(&server, &network)], std::slice::from_ref(&lib));
    assert_eq!(report.failed.len(), 1);
    let message = report.failed[0].1.to_string();
    assert!(message.contains(&format!("{}{nar}", server.url)), "{message}");
    assert!(report.substitutes_failed.contains(&lib), "the narinfo was there: a failure, not an absence");
    assert_nothing_registered(&destination, &lib);

    let destination = fixture.destination("cut-then-file");
    let report = substitute(
        &destination,
        &[fixture.open_http(&server, &network), fixture.open_file_cache()],
        std::slice::from_ref(&lib),
    );
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.substitutes_failed.is_empty());
    assert!(destination.is_valid_path(&lib).unwrap());
}

#[test]
fn a_cut_nar_is_resumed_where_the_server_takes_ranges() {
    let fixture = Fixture::new();
    let [lib, app] = [fixture.paths[0].clone(), fixture.paths[1].clone()];
    let nar = fixture.nar_request(&lib);
    let nar_s = nar.clone();
    let server = Server::start(fixture.cache_dir.clone(), move |path, nth| {
        if path == nar_s && nth == 0 { Reply::Cut { ranges: true } } else { Reply::File }
    });
    let warnings = Arc::default();
    let cache = fixture.open_http(&server, &quick(3, &warnings));
    let destination = fixture.destination("resumed");
    let report = substitute(&destination, &[cache], std::slice::from_ref(&app));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.substituted, vec![lib.clone(), app.clone()]);
    let ranges = server.ranges(&nar);
    let size = std::fs::metadata(fixture.cache_dir.join(nar.trim_start_matches('/'))).unwrap().len();
    assert_eq!(ranges, vec![None, Some(format!("bytes={}-", size / 2))]);
    let warnings = warnings.lock().unwrap().clone();
    assert!(warnings[0].contains(&format!("retrying from offset {}", size / 2)), "{warnings:?}");
    // What was registered is what the source has.
    let source = open_local(&fixture.tmp.path().join("source"));
    let ours: BTreeMap<_, _> = [&lib, &app]
        .iter()
        .map(|p| (p.to_string(), destination.query_path_info(p).unwrap().unwrap().nar_hash))
        .collect();
    let theirs: BTreeMap<_, _> =
        [&lib, &app].iter().map(|p| (p.to_string(), source.query_path_info(p).unwrap().unwrap().nar_hash)).collect();
    assert_eq!(ours, theirs);
}

#[test]
fn a_refused_connection_is_retried_then_reported() {
    // A port nobody listens on: bind, note the port, close. On 127.0.0.2, so
    // that the other tests' servers (127.0.0.1, any free port) cannot take it
    // in between and answer.
    let port = TcpListener::bind("127.0.0.2:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.2:{port}");
    let warnings = Arc::default();
    let error = BinaryCacheStore::open_with_network(&url, &settings(), &quick(3, &warnings)).err().expect("no server");
    let warnings = warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 3, "two retries, then disabled: {warnings:?}");
    assert!(warnings[0].contains("; retrying in "), "{warnings:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("unable to download '{url}/nix-cache-info': ")), "{message}");
}

#[test]
fn settings_come_from_nix_conf_names() {
    let mut config = nivis_config::Config::new();
    let defaults = NetworkSettings::from_config(&config);
    assert_eq!(defaults.attempts, 5);
    assert_eq!(defaults.stall_timeout, Some(Duration::from_secs(300)));
    assert_eq!(defaults.connect_timeout, Duration::from_secs(300));
    config.set("connect-timeout", "7");
    config.set("stalled-download-timeout", "0");
    config.set("download-attempts", "2");
    let set = NetworkSettings::from_config(&config);
    assert_eq!(set.connect_timeout, Duration::from_secs(7));
    assert_eq!(set.stall_timeout, None);
    assert_eq!(set.attempts, 2);
}

unsafe extern "C" {
    fn listen(fd: i32, backlog: i32) -> i32;
}

#[test]
fn a_connection_that_cannot_be_made_fails_after_the_connect_timeout() {
    // A listener with the smallest accept queue, filled by connections nobody
    // accepts: further handshakes are not answered (Linux drops the SYN).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: a valid listening socket; listen() again only changes its backlog.
    assert_eq!(unsafe { listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 0) }, 0);
    let address = listener.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => held.push(stream),
            Err(_) => break,
        }
    }
    if held.len() == 8 {
        // This kernel keeps accepting handshakes: nothing to time out here.
        eprintln!("SKIPPED a_connection_that_cannot_be_made_fails_after_the_connect_timeout: the accept queue never filled");
        return;
    }
    let warnings = Arc::default();
    let network = NetworkSettings { connect_timeout: Duration::from_secs(1), ..quick(2, &warnings) };
    let started = Instant::now();
    let error = BinaryCacheStore::open_with_network(&format!("http://{address}"), &settings(), &network).err().expect("no connection");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5), "{elapsed:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("unable to download 'http://{address}/nix-cache-info': could not connect within 1 seconds ('connect-timeout')")),
        "{message}"
    );
    drop(held);
}
