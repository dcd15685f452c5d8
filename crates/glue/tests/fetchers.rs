//! The fetchers (`fetchurl`, `fetchTarball`, `fetchGit`, `fetchTree`,
//! `<nix/fetchurl.nix>`) against CppNix 2.8 on the same inputs: files and
//! archives served by an HTTP server on 127.0.0.1 run by the test, and Git
//! repositories made with the `git` command. Each side has its own store and
//! cache directory; results (store paths, narHash, rev, revCount,
//! lastModified) must be identical, and bad inputs must fail on both sides with
//! errors that name the URL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use nivis_glue::{FetchSettings, StoreEvalIO, set_thread_fetch_settings};

const CPPNIX: &str = "/usr/bin/nix-instantiate";

/// A tiny HTTP/1.1 server: GET of the files it holds (with an ETag and 304 on
/// `If-None-Match`), `/redirect/NAME` answering 302 to `/NAME`, 404 otherwise.
/// It counts the requests for each path.
struct Server {
    port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (files2, requests2) = (files.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let files = files2.clone();
                let requests = requests2.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).is_err() {
                        return;
                    }
                    let mut if_none_match = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("if-none-match") {
                                if_none_match = Some(value.trim().to_string());
                            }
                        }
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    requests.lock().unwrap().push(path.clone());
                    let file = files.lock().unwrap().get(&path[1..]).cloned();
                    let response: Vec<u8> = if let Some(target) = path.strip_prefix("/redirect/") {
                        format!("HTTP/1.1 302 Found\r\nLocation: /{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .into_bytes()
                    } else if let Some(body) = file {
                        let etag = format!(
                            "\"{}\"",
                            nivis_formats::Hash::of_bytes(nivis_formats::HashAlgorithm::Sha1, &body).to_base16()
                        );
                        if if_none_match.as_deref() == Some(etag.as_str()) {
                            format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
                        } else {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(&body);
                            r
                        }
                    } else {
                        let body = "no such file\n";
                        format!(
                            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes()
                    };
                    let _ = stream.write_all(&response);
                });
            }
        });
        Server { port, files, requests }
    }

    fn put(&self, name: &str, data: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(name.to_string(), data);
        self.url(name)
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn count(&self, name: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.as_str() == format!("/{name}"))
            .count()
    }
}

/// One test's world: a server, a scratch directory, and a store and a cache
/// for each implementation.
struct World {
    server: Server,
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            server: Server::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self) -> FetchSettings {
        FetchSettings {
            cache_dir: self.path("nivis-cache"),
            download_attempts: 1,
            ..FetchSettings::default()
        }
    }

    fn nivis_with(&self, expr: &str, settings: FetchSettings) -> Result<String, String> {
        let expr = expr.to_string();
        let root = self.path("nivis-root");
        let base = self.dir.path().to_path_buf();
        nivis_eval::run_with_big_stack(64 << 20, move || {
            set_thread_fetch_settings(Some(settings));
            let store_settings = nivis_store::StoreSettings::default();
            let store = nivis_store::open_store(&format!("local?root={}", root.display()), &store_settings)
                .map_err(|e| e.to_string())?;
            let io = Rc::new(StoreEvalIO::new(store, false));
            let mut eval = nivis_eval::Eval::new(io, nivis_eval::Settings::default());
            let parsed = eval.parse_string(&expr, &base).map_err(|e| e.to_string())?;
            let value = eval.eval_expr(parsed).map_err(|e| e.to_string())?;
            let value = eval
                .force_deep(&value, nivis_eval::Pos::NONE)
                .map_err(|e| e.to_string())?;
            nivis_eval::print::print_value(&mut eval, &value, true).map_err(|e| e.to_string())
        })
    }

    fn nivis(&self, expr: &str) -> Result<String, String> {
        self.nivis_with(expr, self.settings())
    }

    fn cppnix(&self, expr: &str) -> Option<Result<String, String>> {
        if !Path::new(CPPNIX).exists() {
            eprintln!("skipping the CppNix comparison: {CPPNIX} is not installed");
            return None;
        }
        let output = Command::new(CPPNIX)
            .args(["--store", &format!("local?root={}", self.path("cppnix-root").display())])
            .args([
                "--extra-experimental-features",
                "flakes",
                "--option",
                "download-attempts",
                "1",
            ])
            .args(["--eval", "--strict", "-E", expr])
            .current_dir(self.dir.path())
            .env("HOME", self.path("cppnix-home"))
            .env("XDG_CACHE_HOME", self.path("cppnix-home/cache"))
            .env("NIX_CONFIG", "")
            .output()
            .expect("running CppNix");
        Some(if output.status.success() {
            Ok(String::from_utf8(output.stdout).unwrap().trim_end().to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        })
    }

    /// Both succeed with the same printed value, which is returned.
    fn check(&self, expr: &str) -> String {
        let ours = self
            .nivis(expr)
            .unwrap_or_else(|e| panic!("nivis failed on {expr}:\n{e}"));
        if let Some(theirs) = self.cppnix(expr) {
            let theirs = theirs.unwrap_or_else(|e| panic!("CppNix failed on {expr}:\n{e}"));
            assert_eq!(ours, theirs, "nivis and CppNix disagree on {expr}");
        }
        ours
    }

    /// Several expressions checked in one evaluation on each side (CppNix
    /// starts in about 0.1 s; one call keeps the tests fast).
    fn check_all(&self, exprs: &[String]) -> String {
        let list: Vec<String> = exprs.iter().map(|e| format!("({e})")).collect();
        self.check(&format!("[ {} ]", list.join(" ")))
    }

    /// Both fail; nivis's message contains each of `needles` (and so does
    /// CppNix's, for those in `shared`). Returns nivis's message.
    fn check_fails(&self, expr: &str, shared: &[&str], ours_only: &[&str]) -> String {
        let ours = match self.nivis(expr) {
            Ok(v) => panic!("nivis accepted {expr}: {v}"),
            Err(e) => e,
        };
        for needle in shared.iter().chain(ours_only) {
            assert!(
                ours.contains(needle),
                "nivis's error for {expr} lacks '{needle}':\n{ours}"
            );
        }
        if let Some(theirs) = self.cppnix(expr) {
            let theirs = match theirs {
                Ok(v) => panic!("CppNix accepted {expr}: {v}"),
                Err(e) => e,
            };
            for needle in shared {
                assert!(
                    theirs.contains(needle),
                    "CppNix's error for {expr} lacks '{needle}':\n{theirs}"
                );
            }
        }
        ours
    }
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).current_dir(dir).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed in {}", dir.display());
}

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A source tree with a subdirectory, an executable and a symlink, packed
/// with the system `tar` in every compression and with `zip` if present.
fn make_archives(world: &World) -> Vec<String> {
    let src = world.path("src");
    write(&src.join("pkg-1.0/README"), "hello\n");
    write(&src.join("pkg-1.0/bin/run"), "#!/bin/sh\necho run\n");
    std::fs::set_permissions(
        src.join("pkg-1.0/bin/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("README", src.join("pkg-1.0/link")).unwrap();
    run(&src, "touch", &["-d", "2020-05-06 07:08:09", "pkg-1.0/bin", "pkg-1.0"]);
    let mut names = Vec::new();
    for (name, flag) in [
        ("pkg.tar.gz", "-z"),
        ("pkg.tar.xz", "-J"),
        ("pkg.tar.bz2", "-j"),
        ("pkg.tar", ""),
    ] {
        let out = world.path(name);
        let mut args = vec!["-c"];
        if !flag.is_empty() {
            args.push(flag);
        }
        let out_text = out.to_string_lossy().into_owned();
        args.extend(["-f", &out_text, "pkg-1.0"]);
        run(&src, "tar", &args);
        world.server.put(name, std::fs::read(&out).unwrap());
        names.push(name.to_string());
    }
    // zip through Python's zipfile (modes kept; the symlink is stored as the file it points to).
    let zip = world.path("pkg.zip");
    let script = format!(
        "import os, zipfile\nz = zipfile.ZipFile('{}', 'w', zipfile.ZIP_DEFLATED)\n\
         for d, dirs, files in os.walk('pkg-1.0'):\n    z.write(d)\n    for f in files: z.write(os.path.join(d, f))\nz.close()\n",
        zip.display()
    );
    if Command::new("python3")
        .arg("-c")
        .arg(&script)
        .current_dir(&src)
        .status()
        .is_ok_and(|s| s.success())
    {
        world.server.put("pkg.zip", std::fs::read(&zip).unwrap());
        names.push("pkg.zip".into());
    }
    if Command::new("zstd").arg("--version").output().is_ok() {
        let out = world.path("pkg.tar.zst");
        run(
            &src,
            "sh",
            &["-c", &format!("tar -cf - pkg-1.0 | zstd -q -o {}", out.display())],
        );
        world.server.put("pkg.tar.zst", std::fs::read(&out).unwrap());
        names.push("pkg.tar.zst".into());
    }
    names
}

fn sha256_nix32(data: &[u8]) -> String {
    nivis_formats::Hash::of_bytes(nivis_formats::HashAlgorithm::Sha256, data).to_nix32()
}

#[test]
fn fetchurl_matches_cppnix() {
    let world = World::new();
    let url = world.server.put("hello.txt", b"hello world\n".to_vec());
    let hash = sha256_nix32(b"hello world\n");
    // Redirects are followed; the name comes from the URL asked for.
    let redirected = world.server.url("redirect/hello.txt");
    let out = world.check_all(&[
        format!(r#"builtins.fetchurl "{url}""#),
        format!(r#"builtins.fetchurl {{ url = "{url}"; name = "renamed"; }}"#),
        format!(r#"builtins.fetchurl {{ url = "{url}"; sha256 = "{hash}"; }}"#),
        format!(r#"builtins.fetchurl "{redirected}""#),
    ]);
    assert!(out.contains("-hello.txt\""), "{out}");
}

#[test]
fn fetchurl_argument_errors_match_cppnix() {
    let world = World::new();
    let url = world.server.put("a.txt", b"a".to_vec());
    world.check_fails(
        &format!(r#"builtins.fetchurl {{ url = "{url}"; hash = ""; }}"#),
        &["unsupported argument 'hash' to 'fetchurl'"],
        &[],
    );
    world.check_fails("builtins.fetchurl { }", &["'url' argument required"], &[]);
    world.check_fails(
        &format!(r#"builtins.fetchTarball {{ url = "{url}"; narHash = ""; }}"#),
        &["unsupported argument 'narHash' to 'fetchTarball'"],
        &[],
    );
}

#[test]
fn fetchurl_hash_mismatch_names_the_url() {
    let world = World::new();
    let url = world.server.put("data", b"data\n".to_vec());
    let wrong = sha256_nix32(b"other");
    let right = sha256_nix32(b"data\n");
    world.check_fails(
        &format!(r#"builtins.fetchurl {{ url = "{url}"; sha256 = "{wrong}"; }}"#),
        &[
            &format!("hash mismatch in file downloaded from '{url}':"),
            &format!("specified: sha256:{wrong}"),
            &format!("got:       sha256:{right}"),
        ],
        &[],
    );
}

#[test]
fn download_errors_name_the_url() {
    let world = World::new();
    let missing = world.server.url("missing.tar.gz");
    world.check_fails(
        &format!(r#"builtins.fetchurl "{missing}""#),
        &[&format!("unable to download '{missing}': HTTP error 404")],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchTarball "{missing}""#),
        &[&format!("unable to download '{missing}': HTTP error 404")],
        &[],
    );
    // Nothing listens on port 1.
    let unreachable = "http://127.0.0.1:1/file";
    world.check_fails(
        &format!(r#"builtins.fetchurl "{unreachable}""#),
        &[&format!(
            "unable to download '{unreachable}': Couldn't connect to server (7)"
        )],
        &[],
    );
    let file_missing = format!("file://{}", world.path("nope").display());
    world.check_fails(
        &format!(r#"builtins.fetchurl "{file_missing}""#),
        &[&format!("unable to download '{file_missing}'")],
        &[],
    );
}

#[test]
fn fetch_tarball_every_compression_matches_cppnix() {
    let world = World::new();
    let mut exprs = Vec::new();
    for name in make_archives(&world) {
        let url = world.server.url(&name);
        exprs.push(format!(r#"builtins.fetchTarball "{url}""#));
        exprs.push(format!(r#"builtins.fetchTarball {{ url = "{url}"; name = "pkg"; }}"#));
        exprs.push(format!(r#"builtins.fetchTree {{ type = "tarball"; url = "{url}"; }}"#));
    }
    exprs.push(format!(r#"builtins.fetchTree "{}""#, world.server.url("pkg.tar.gz")));

    world.check_all(&exprs);
    let plus = format!("tarball+{}", world.server.url("pkg.tar.xz"));
    world.check_fails(
        &format!(r#"builtins.fetchTree "{plus}""#),
        &[&format!("input '{plus}' is unsupported")],
        &[],
    );
    // Every compression of the same tree gives the same path.
    let paths: std::collections::BTreeSet<String> = exprs
        .iter()
        .step_by(3)
        .filter(|e| !e.contains(".zip") && !e.contains("fetchTree"))
        .map(|e| world.nivis(e).unwrap())
        .collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
}

#[test]
fn fetch_tarball_with_sha256_is_checked_and_pinned() {
    let world = World::new();
    make_archives(&world);
    let url = world.server.url("pkg.tar.gz");
    let fetched = world
        .nivis(&format!(
            r#"(builtins.fetchTree {{ type = "tarball"; url = "{url}"; }}).narHash"#
        ))
        .unwrap();
    let nar_hash = fetched.trim_matches('"').to_string();
    let out = world.check(&format!(
        r#"builtins.fetchTarball {{ url = "{url}"; sha256 = "{nar_hash}"; }}"#
    ));
    // Pinned and valid: no download at all, even of a URL that now fails.
    let before = world.server.count("pkg.tar.gz");
    let missing = world.server.url("gone.tar.gz");
    let again = world
        .nivis(&format!(
            r#"builtins.fetchTarball {{ url = "{missing}"; sha256 = "{nar_hash}"; }}"#
        ))
        .unwrap();
    assert_eq!(out, again);
    assert_eq!(world.server.count("gone.tar.gz"), 0);
    assert_eq!(world.server.count("pkg.tar.gz"), before);
    let wrong = sha256_nix32(b"wrong");
    world.check_fails(
        &format!(r#"builtins.fetchTarball {{ url = "{url}"; sha256 = "{wrong}"; }}"#),
        &[&format!("hash mismatch in file downloaded from '{url}'")],
        &[],
    );
}

#[test]
fn bad_tarballs_fail_on_both_sides() {
    let world = World::new();
    make_archives(&world);
    let whole = std::fs::read(world.path("pkg.tar.gz")).unwrap();
    let truncated = world.server.put("truncated.tar.gz", whole[..whole.len() / 2].to_vec());
    world.check_fails(
        &format!(r#"builtins.fetchTarball "{truncated}""#),
        &["archive"],
        &[&truncated],
    );
    let junk = world.server.put("junk.tar.gz", b"this is not an archive\n".to_vec());
    world.check_fails(
        &format!(r#"builtins.fetchTarball "{junk}""#),
        &["failed to open archive: Unrecognized archive format"],
        &[&junk],
    );
    // Two top-level entries.
    let src = world.path("two");
    write(&src.join("a"), "a");
    write(&src.join("b"), "b");
    run(&src, "tar", &["-czf", "../two.tar.gz", "a", "b"]);
    let two = world
        .server
        .put("two.tar.gz", std::fs::read(world.path("two.tar.gz")).unwrap());
    world.check_fails(
        &format!(r#"builtins.fetchTarball "{two}""#),
        &[&format!(
            "tarball '{two}' contains an unexpected number of top-level files"
        )],
        &[],
    );
}

#[test]
fn downloads_are_cached_for_tarball_ttl() {
    let world = World::new();
    let url = world.server.put("cached.txt", b"version 1\n".to_vec());
    let expr = format!(r#"builtins.fetchurl "{url}""#);
    let first = world.nivis(&expr).unwrap();
    assert_eq!(world.server.count("cached.txt"), 1);
    // A second evaluation within tarball-ttl does not ask the server.
    assert_eq!(world.nivis(&expr).unwrap(), first);
    assert_eq!(world.server.count("cached.txt"), 1);
    // With tarball-ttl = 0 it revalidates; the unchanged file answers 304.
    let expired = FetchSettings {
        tarball_ttl: 0,
        ..world.settings()
    };
    assert_eq!(world.nivis_with(&expr, expired.clone()).unwrap(), first);
    assert_eq!(world.server.count("cached.txt"), 2);
    // A changed file is downloaded again and gets a new path.
    world.server.put("cached.txt", b"version 2\n".to_vec());
    assert_eq!(
        world.nivis(&expr).unwrap(),
        first,
        "within the TTL the old version stays"
    );
    let second = world.nivis_with(&expr, expired).unwrap();
    assert_ne!(second, first);
    // An unreachable server with an expired entry: the cached version, with a warning.
    let tarball_url = {
        make_archives(&world);
        world.server.url("pkg.tar.xz")
    };
    let tarball = world
        .nivis(&format!(r#"builtins.fetchTarball "{tarball_url}""#))
        .unwrap();
    let count = world.server.count("pkg.tar.xz");
    assert_eq!(
        world
            .nivis(&format!(r#"builtins.fetchTarball "{tarball_url}""#))
            .unwrap(),
        tarball
    );
    assert_eq!(world.server.count("pkg.tar.xz"), count);
}

#[test]
fn corepkgs_fetchurl_derivation_matches_cppnix() {
    let world = World::new();
    let hash = sha256_nix32(b"x");
    let mut exprs = Vec::new();
    for args in [
        format!(r#"{{ url = "http://example.org/x.tar.gz"; sha256 = "{hash}"; }}"#),
        format!(r#"{{ url = "http://example.org/x"; sha256 = "{hash}"; executable = true; name = "tool"; }}"#),
        format!(r#"{{ url = "http://example.org/nar.xz"; sha256 = "{hash}"; unpack = true; }}"#),
        r#"{ url = "http://example.org/y"; hash = "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="; }"#.to_string(),
        r#"{ url = "http://example.org/z"; md5 = "9dd4e461268c8034f5c8564e155c67a6"; }"#.to_string(),
    ] {
        exprs.push(format!("let d = import <nix/fetchurl.nix> {args}; in [ d.drvPath d.outPath ]"));
    }
    world.check_all(&exprs);
}

fn git(dir: &Path, args: &[&str], date: &str) {
    let status = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.org",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} failed");
}

fn git_output(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A repository on branch `master` with two commits, a branch `feature` with
/// a third, a tag `v1` on the first commit, an executable and an
/// `export-ignore`d file.
fn make_repo(world: &World) -> (PathBuf, String) {
    let repo = world.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "-b", "master"], "2021-01-01T00:00:00Z");
    write(&repo.join("README"), "first\n");
    write(&repo.join("script.sh"), "#!/bin/sh\n");
    std::fs::set_permissions(
        repo.join("script.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    write(&repo.join(".gitattributes"), "secret export-ignore\n");
    write(&repo.join("secret"), "not exported\n");
    git(&repo, &["add", "-A"], "2021-01-01T00:00:00Z");
    git(&repo, &["commit", "--quiet", "-m", "one"], "2021-01-01T00:00:00Z");
    git(&repo, &["tag", "v1"], "2021-01-01T00:00:00Z");
    let first = git_output(&repo, &["rev-parse", "HEAD"]);
    write(&repo.join("sub/file"), "second\n");
    git(&repo, &["add", "-A"], "2021-02-03T04:05:06Z");
    git(&repo, &["commit", "--quiet", "-m", "two"], "2021-02-03T04:05:06Z");
    git(&repo, &["checkout", "--quiet", "-b", "feature"], "2021-02-03T04:05:06Z");
    write(&repo.join("feature"), "third\n");
    git(&repo, &["add", "-A"], "2021-03-03T00:00:00Z");
    git(&repo, &["commit", "--quiet", "-m", "three"], "2021-03-03T00:00:00Z");
    git(&repo, &["checkout", "--quiet", "master"], "2021-03-03T00:00:00Z");
    (repo, first)
}

#[test]
fn fetch_git_local_repository_matches_cppnix() {
    let world = World::new();
    let (repo, first) = make_repo(&world);
    let r = repo.display();
    let head = world.check(&format!("builtins.fetchGit {r}"));
    assert!(
        head.contains("revCount = 2;") && head.contains("lastModified = 1612325106;"),
        "{head}"
    );
    world.check_all(&[
        format!(r#"builtins.fetchGit "{r}""#),
        format!(r#"builtins.fetchGit {{ url = {r}; ref = "feature"; }}"#),
        format!(r#"builtins.fetchGit {{ url = "file://{r}"; rev = "{first}"; }}"#),
        format!(r#"builtins.fetchGit {{ url = {r}; ref = "refs/tags/v1"; name = "tagged"; }}"#),
        format!(r#"builtins.fetchTree {{ type = "git"; url = "{r}"; ref = "feature"; }}"#),
        format!(r#"builtins.fetchGit {{ url = {r}; shallow = true; }}"#),
        format!(r#"builtins.fetchTree "git+file://{r}?ref=feature""#),
        format!(r#"builtins.fetchTree "git+file://{r}?rev={first}""#),
    ]);
}

#[test]
fn fetch_git_dirty_working_tree_matches_cppnix() {
    let world = World::new();
    let (repo, _) = make_repo(&world);
    write(&repo.join("README"), "changed\n");
    write(&repo.join("untracked"), "not included\n");
    std::fs::remove_file(repo.join("sub/file")).unwrap();
    let r = repo.display();
    // Naming a ref means the committed tree, not the working tree.
    let out = world.check_all(&[
        format!("builtins.fetchGit {r}"),
        format!(r#"builtins.fetchTree {{ type = "git"; url = "{r}"; }}"#),
        format!(r#"builtins.fetchGit {{ url = {r}; ref = "master"; }}"#),
    ]);
    assert!(
        out.contains(r#"rev = "0000000000000000000000000000000000000000";"#),
        "{out}"
    );
}

#[test]
fn fetch_git_remote_repository_matches_cppnix() {
    let world = World::new();
    let (repo, first) = make_repo(&world);
    let bare = world.path("bare.git");
    run(
        world.dir.path(),
        "git",
        &[
            "clone",
            "--quiet",
            "--bare",
            &repo.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    let b = bare.display();
    world.check_all(&[
        format!(r#"builtins.fetchGit "file://{b}""#),
        format!(r#"builtins.fetchGit {{ url = "file://{b}"; ref = "feature"; }}"#),
        format!(r#"builtins.fetchGit {{ url = "file://{b}"; rev = "{first}"; }}"#),
        format!(r#"builtins.fetchGit {{ url = "file://{b}"; ref = "feature"; allRefs = true; }}"#),
    ]);
    // The second time comes from the cache and the clone.
    let locked = world.check(&format!(
        r#"builtins.fetchGit {{ url = "file://{b}"; rev = "{first}"; }}"#
    ));
    // Fully described (narHash, revCount, lastModified): no fetching at all,
    // even once the repository is gone.
    let field = |name: &str| {
        locked
            .split(&format!("{name} = "))
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::remove_dir_all(&bare).unwrap();
    let pinned = format!(
        r#"builtins.fetchTree {{ type = "git"; url = "file://{b}"; rev = "{first}"; narHash = {}; revCount = {}; lastModified = {}; }}"#,
        field("narHash"),
        field("revCount"),
        field("lastModified")
    );
    world.check(&pinned);
}

#[test]
fn fetch_git_errors() {
    let world = World::new();
    let (repo, _) = make_repo(&world);
    let r = repo.display();
    let missing = "1111111111111111111111111111111111111111";
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; rev = "{missing}"; }}"#),
        &[&format!(
            "Cannot find Git revision '{missing}' in ref 'master' of repository '{r}'"
        )],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; rev = "abc"; }}"#),
        &["hash 'abc' has wrong length for hash type 'sha1'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; foo = 1; }}"#),
        &["unsupported Git input attribute 'foo'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; type = "git"; }}"#),
        &["unexpected attribute 'type'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; ref = "a..b"; }}"#),
        &["invalid Git branch/tag name 'a..b'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; submodules = "yes"; }}"#),
        &["input attribute 'submodules' is not a Boolean"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchTree {{ url = "{r}"; }}"#),
        &["attribute 'type' is missing in call to 'fetchTree'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchTree {{ type = "git"; url = "{r}"; name = "x"; }}"#),
        &["attribute 'name' isn't supported in call to 'fetchTree'"],
        &[],
    );
    world.check_fails(
        &format!(r#"builtins.fetchTree {{ type = "git"; url = "{r}"; ref = 1.5; }}"#),
        &["fetchTree argument 'ref' is a float while a string, Boolean or integer is expected"],
        &[],
    );
    let wrong_nar = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    world.check_fails(
        &format!(r#"builtins.fetchGit {{ url = {r}; ref = "master"; narHash = "{wrong_nar}"; }}"#),
        &["NAR hash mismatch in input"],
        &[],
    );
}

#[test]
fn fetch_tree_path_matches_cppnix() {
    let world = World::new();
    let src = world.path("tree");
    write(&src.join("a/b"), "b\n");
    write(&src.join("c"), "c\n");
    run(&src, "touch", &["-d", "2022-02-02 02:02:02", "a/b", "a", "c", "."]);
    world.check_all(&[
        format!(r#"builtins.fetchTree {{ type = "path"; path = "{}"; }}"#, src.display()),
        format!(r#"builtins.fetchTree {{ type = "path"; path = {}; }}"#, src.display()),
    ]);
}

/// Instantiates `expr` (a derivation) in nivis's store and builds it with the
/// scheduler; returns the output path and the build failures' messages.
fn build_with_nivis(world: &World, expr: &str) -> Result<PathBuf, String> {
    let expr = format!("({expr}).drvPath");
    let root = world.path("nivis-root");
    let base = world.dir.path().to_path_buf();
    let settings = world.settings();
    nivis_eval::run_with_big_stack(64 << 20, move || {
        set_thread_fetch_settings(Some(settings));
        let store_settings = nivis_store::StoreSettings::default();
        let uri = format!("local?root={}", root.display());
        let io = Rc::new(StoreEvalIO::new(
            nivis_store::open_store(&uri, &store_settings).unwrap(),
            false,
        ));
        let mut eval = nivis_eval::Eval::new(io, nivis_eval::Settings::default());
        let parsed = eval.parse_string(&expr, &base).map_err(|e| e.to_string())?;
        let value = eval.eval_expr(parsed).map_err(|e| e.to_string())?;
        let printed = nivis_eval::print::print_value(&mut eval, &value, true).map_err(|e| e.to_string())?;
        drop(eval);
        let store = nivis_store::open_store(&uri, &store_settings).unwrap();
        let drv_path = store.parse_store_path(printed.trim_matches('"')).unwrap();
        let target = nivis_build::DerivedPath {
            drv_path: drv_path.clone(),
            outputs: None,
        };
        let build_settings = nivis_build::BuildSettings {
            print_build_logs: false,
            ..Default::default()
        };
        let result = nivis_build::realise(&*store, &[target], &build_settings, None).map_err(|e| e.to_string())?;
        if !result.failures.is_empty() {
            return Err(result
                .failures
                .iter()
                .map(|f| f.message.clone())
                .collect::<Vec<_>>()
                .join("\n"));
        }
        let out = &result.outputs[&drv_path]["out"];
        Ok(root.join("nix/store").join(out.base_name()))
    })
}

#[test]
fn builtin_fetchurl_builds_fixed_outputs() {
    let world = World::new();
    let url = world.server.put("tool.sh", b"#!/bin/sh\necho tool\n".to_vec());
    let hash = sha256_nix32(b"#!/bin/sh\necho tool\n");
    let flat = build_with_nivis(
        &world,
        &format!(r#"import <nix/fetchurl.nix> {{ url = "{url}"; sha256 = "{hash}"; }}"#),
    )
    .unwrap();
    assert_eq!(std::fs::read(&flat).unwrap(), b"#!/bin/sh\necho tool\n");
    // executable: the NAR of an executable file.
    let dir = world.path("exe");
    write(&dir.join("tool.sh"), "#!/bin/sh\necho tool\n");
    std::fs::set_permissions(dir.join("tool.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exe_hash = nix_hash(&dir.join("tool.sh"));
    let exe = build_with_nivis(
        &world,
        &format!(
            r#"import <nix/fetchurl.nix> {{ url = "{url}"; sha256 = "{exe_hash}"; executable = true; name = "tool"; }}"#
        ),
    )
    .unwrap();
    assert!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&exe).unwrap().permissions()) & 0o111 != 0);
    // unpack: an xz-compressed NAR, restored.
    let tree = world.path("tree");
    write(&tree.join("a/b"), "b\n");
    write(&tree.join("c"), "c\n");
    let nar = Command::new("nix-store")
        .arg("--dump")
        .arg(&tree)
        .output()
        .unwrap()
        .stdout;
    let mut xz = Vec::new();
    {
        use std::io::Read;
        let mut encoder = liblzma_encoder(&nar);
        encoder.read_to_end(&mut xz).unwrap();
    }
    let nar_url = world.server.put("tree.nar.xz", xz);
    let tree_hash = nix_hash(&tree);
    let unpacked = build_with_nivis(
        &world,
        &format!(r#"import <nix/fetchurl.nix> {{ url = "{nar_url}"; sha256 = "{tree_hash}"; unpack = true; }}"#),
    )
    .unwrap();
    assert_eq!(std::fs::read(unpacked.join("a/b")).unwrap(), b"b\n");
    // A wrong hash fails the build and leaves no valid output.
    let wrong = sha256_nix32(b"wrong");
    let error = build_with_nivis(
        &world,
        &format!(r#"import <nix/fetchurl.nix> {{ url = "{url}"; sha256 = "{wrong}"; name = "bad"; }}"#),
    )
    .unwrap_err();
    assert!(error.contains("hash mismatch in fixed-output derivation"), "{error}");
    let missing = world.server.url("missing");
    let error = build_with_nivis(
        &world,
        &format!(r#"import <nix/fetchurl.nix> {{ url = "{missing}"; sha256 = "{hash}"; name = "gone"; }}"#),
    )
    .unwrap_err();
    assert!(error.contains("failed"), "{error}");
}

/// `nix-hash --type sha256 --base32` of a path (the NAR hash), from CppNix, or
/// from our NAR writer if CppNix is absent.
fn nix_hash(path: &Path) -> String {
    let mut hasher = nivis_formats::Hasher::new(nivis_formats::HashAlgorithm::Sha256);
    nivis_formats::nar::dump_path(path, &mut hasher).unwrap();
    hasher.finish().to_nix32()
}

fn liblzma_encoder(data: &[u8]) -> impl std::io::Read + '_ {
    let mut child = Command::new("xz")
        .args(["-c", "-z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let owned = data.to_vec();
    std::thread::spawn(move || stdin.write_all(&owned));
    let output = child.wait_with_output().unwrap();
    std::io::Cursor::new(output.stdout)
}

/// An HTTPS server (Python's, with a self-signed certificate made by
/// `openssl`) serving `dir`; `None` if either tool is missing. Killed on drop.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_server(world: &World, dir: &Path) -> Option<TlsServer> {
    let (cert, key) = (world.path("cert.pem"), world.path("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        return None;
    }
    let script = "import http.server, ssl, sys, os\n\
        os.chdir(sys.argv[1])\n\
        httpd = http.server.HTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[2], sys.argv[3])\n\
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)\n\
        print(httpd.server_address[1], flush=True)\n\
        httpd.serve_forever()\n";
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take()?).read_line(&mut line).ok()?;
    let port = line.trim().parse().ok()?;
    Some(TlsServer { child, port })
}

#[test]
fn https_checks_certificates_except_in_builtin_fetchurl() {
    let world = World::new();
    let served = world.path("tls-served");
    write(&served.join("f.txt"), "over tls\n");
    let Some(server) = start_tls_server(&world, &served) else {
        eprintln!("skipping: openssl or python3 is missing");
        return;
    };
    let url = format!("https://127.0.0.1:{}/f.txt", server.port);
    // A self-signed certificate is refused by the builtins, as by CppNix's curl.
    world.check_fails(
        &format!(r#"builtins.fetchurl "{url}""#),
        &["SSL peer certificate or SSH remote key was not OK (60)"],
        &[&format!("unable to download '{url}'")],
    );
    // builtin:fetchurl does not check it (the output hash is checked).
    let hash = sha256_nix32(b"over tls\n");
    let out = build_with_nivis(
        &world,
        &format!(r#"import <nix/fetchurl.nix> {{ url = "{url}"; sha256 = "{hash}"; }}"#),
    )
    .unwrap();
    assert_eq!(std::fs::read(out).unwrap(), b"over tls\n");
}

#[test]
fn remote_git_refs_are_refetched_after_tarball_ttl() {
    let world = World::new();
    let (repo, _) = make_repo(&world);
    let bare = world.path("bare.git");
    run(world.dir.path(), "git", &["clone", "--quiet", "--bare", &repo.to_string_lossy(), &bare.to_string_lossy()]);
    let expr = format!(r#"(builtins.fetchGit "file://{}").rev"#, bare.display());
    let first = world.nivis(&expr).unwrap();
    // A new commit on master reaches the remote.
    write(&repo.join("later"), "later\n");
    git(&repo, &["add", "-A"], "2021-04-04T00:00:00Z");
    git(&repo, &["commit", "--quiet", "-m", "later"], "2021-04-04T00:00:00Z");
    git(&repo, &["push", "--quiet", &bare.to_string_lossy(), "master"], "2021-04-04T00:00:00Z");
    let head = format!("\"{}\"", git_output(&repo, &["rev-parse", "HEAD"]));
    assert_eq!(world.nivis(&expr).unwrap(), first, "within tarball-ttl the ref is not fetched again");
    let expired = FetchSettings { tarball_ttl: 0, ..world.settings() };
    assert_eq!(world.nivis_with(&expr, expired).unwrap(), head);
}
