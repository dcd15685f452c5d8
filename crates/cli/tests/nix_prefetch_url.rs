//! `nix-prefetch-url` over `http://` against CppNix 2.8: files and archives
//! served by an HTTP server on 127.0.0.1 run by the test; every flag
//! combination must print the same hash and path, and bad inputs must fail
//! with an error naming the URL.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Serves the files of `root` (GET only, `Connection: close`); 404 otherwise.
fn serve(root: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_string();
            let response = match std::fs::read(root.join(&path)) {
                Ok(body) if !path.is_empty() => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend(body);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

struct Env {
    dir: tempfile::TempDir,
    port: u16,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir_all(served.join("src/pkg")).unwrap();
        std::fs::write(served.join("hello.txt"), "hello\n").unwrap();
        std::fs::write(served.join("src/pkg/file"), "in the tarball\n").unwrap();
        let status = Command::new("tar")
            .args(["-czf", "../pkg.tar.gz", "pkg"])
            .current_dir(served.join("src"))
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), dir.path().join("bin/nix-prefetch-url")).unwrap();
        let port = serve(served);
        Env { dir, port }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn run(&self, program: &Path, store: &str, args: &[&str]) -> Output {
        Command::new(program)
            .arg("--store")
            .arg(format!("local?root={}", self.dir.path().join(store).display()))
            .args(args)
            .env("NIX_CONFIG", "download-attempts = 1")
            .env("HOME", self.dir.path().join(format!("home-{store}")))
            .env_remove("NIX_REMOTE")
            .output()
            .unwrap()
    }

    fn nivis(&self, args: &[&str]) -> Output {
        self.run(&self.dir.path().join("bin/nix-prefetch-url"), "ours", args)
    }

    fn cppnix(&self, args: &[&str]) -> Option<Output> {
        let program = Path::new("/usr/bin/nix-prefetch-url");
        if !program.exists() {
            eprintln!("skipping the CppNix comparison: {} is not installed", program.display());
            return None;
        }
        Some(self.run(program, "theirs", args))
    }
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn prefetch_over_http_matches_cppnix() {
    let env = Env::new();
    let file = env.url("hello.txt");
    let tarball = env.url("pkg.tar.gz");
    let cases: Vec<Vec<&str>> = vec![
        vec![&file],
        vec!["--type", "sha1", &file],
        vec!["--type", "md5", "--print-path", &file],
        vec!["--type", "sha512", &file],
        vec!["--executable", "--name", "tool", &file],
        vec!["--unpack", &tarball],
        vec!["--unpack", "--print-path", "--name", "pkg", &tarball],
        vec!["--print-path", &tarball],
    ];
    for args in cases {
        let ours = stdout(&env.nivis(&args));
        if let Some(theirs) = env.cppnix(&args) {
            assert_eq!(ours, stdout(&theirs), "nix-prefetch-url {args:?}");
        }
    }
    // An expected hash that is right: the same output; wrong: an error naming the URL.
    let hash = stdout(&env.nivis(&[&file])).trim().to_string();
    assert_eq!(stdout(&env.nivis(&[&file, &hash])).trim(), hash);
    let wrong = env.nivis(&[&env.url("pkg.tar.gz"), &hash]);
    assert_eq!(wrong.status.code(), Some(1));
    let message = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        message.contains(&format!("hash mismatch in file downloaded from '{tarball}'")),
        "{message}"
    );
}

#[test]
fn prefetch_errors_name_the_url() {
    let env = Env::new();
    let missing = env.url("missing");
    let ours = env.nivis(&[&missing]);
    assert_eq!(ours.status.code(), Some(1));
    let needle = format!("unable to download '{missing}': HTTP error 404");
    assert!(
        String::from_utf8_lossy(&ours.stderr).contains(&needle),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    if let Some(theirs) = env.cppnix(&[&missing]) {
        assert!(String::from_utf8_lossy(&theirs.stderr).contains(&needle));
    }
    let unreachable = "http://127.0.0.1:1/x";
    let ours = env.nivis(&[unreachable]);
    assert!(
        String::from_utf8_lossy(&ours.stderr)
            .contains("unable to download 'http://127.0.0.1:1/x': Couldn't connect to server")
    );
    // The URL of a directory has no file name.
    let ours = env.nivis(&[&env.url("")]);
    assert_eq!(ours.status.code(), Some(1));
    let junk = env.nivis(&["--unpack", &file_of(&env)]);
    assert_eq!(junk.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&junk.stderr).contains("Unrecognized archive format"),
        "{}",
        String::from_utf8_lossy(&junk.stderr)
    );
}

fn file_of(env: &Env) -> String {
    env.url("hello.txt")
}
