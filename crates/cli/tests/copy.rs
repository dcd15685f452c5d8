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

/// A signing key pair made by CppNix in `dir`: the secret key file and the public key.
fn cppnix_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let (secret, public) = (dir.join("key.sec"), dir.join("key.pub"));
    ok(cppnix("nix-store", &["--generate-binary-cache-key", name, secret.to_str().unwrap(), public.to_str().unwrap()]));
    (secret, std::fs::read_to_string(&public).unwrap().trim().to_string())
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
    let (secret, public_key) = cppnix_key(t, "cli-test-1");

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
            &public_key,
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

    // nix-copy-closure: store URIs work; a host that cannot be reached is a clear error.
    let closure_cache = format!("file://{}/closure-cache", t.display());
    ok(nivis_as("nix-copy-closure", t, &["--to", &closure_cache, "--store", source.to_str().unwrap(), &second]));
    assert!(t.join("closure-cache").join(format!("{}.narinfo", &first[11..43])).exists());
    let message = stderr_of_failure(nivis_as(
        "nix-copy-closure",
        t,
        &["--to", "builder.invalid", "--store", source.to_str().unwrap(), &second],
    ));
    assert!(message.contains("'nix-store --serve' protocol mismatch from 'builder.invalid'"), "{message}");
}

#[test]
fn cppnix_substitutes_from_nivis_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let (secret, public_key) = cppnix_key(t, "serve-cli-1");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_nivis"))
        .args(["serve", "--listen", &address, "--store", source.to_str().unwrap(), "--compression", "zstd"])
        .args(["--workers", "4", "--secret-key-file"])
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
            &public_key,
            &second,
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    ok(result);
    assert_eq!(hash_in(&destination, &first), hash_in(&source, &first));
    assert_eq!(hash_in(&destination, &second), hash_in(&source, &second));

    let refused = Command::new(env!("CARGO_BIN_EXE_nivis")).args(["serve", "--compression", "xz"]).output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("unknown compression 'xz' (expected 'none' or 'zstd')"), "{message}");
}

/// A directory holding `nix-store` as a link to nivis, to name as the
/// `remote-program` of an `ssh://` store.
fn nivis_nix_store(dir: &Path) -> String {
    let link = dir.join("nix-store");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), &link).unwrap();
    }
    link.to_str().unwrap().to_string()
}

/// `ssh://localhost` runs the remote program in a local shell (CppNix 2.8 does
/// the same): nivis and CppNix on either end of the serve protocol.
#[test]
fn copy_over_the_serve_protocol_with_cppnix_on_either_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let ours = nivis_nix_store(t);
    let via = |program: &str, root: &Path| format!("ssh://localhost?remote-program={program}&remote-store={}", root.display());

    // nivis client, nivis server.
    let both = t.join("both-nivis");
    ok(nivis(&["copy", "--store", source.to_str().unwrap(), "--to", &via(&ours, &both), &second]));
    assert_eq!(hash_in(&both, &second), hash_in(&source, &second));
    assert_eq!(hash_in(&both, &first), hash_in(&source, &first));

    // CppNix client, nivis server (cmdAddToStoreNar, then queries).
    let cpp_to_ours = t.join("cppnix-to-nivis");
    ok(cppnix(
        "nix",
        &["--extra-experimental-features", "nix-command", "copy", "--store", source.to_str().unwrap(), "--to", &via(&ours, &cpp_to_ours), &second],
    ));
    assert_eq!(hash_in(&cpp_to_ours, &second), hash_in(&source, &second));
    let refs = ok(cppnix("nix-store", &["--store", cpp_to_ours.to_str().unwrap(), "-q", "--references", &second]));
    assert_eq!(refs.trim(), first);

    // nivis client, CppNix server; then copying back from it (cmdDumpStorePath).
    let ours_to_cpp = t.join("nivis-to-cppnix");
    ok(nivis(&["copy", "--store", source.to_str().unwrap(), "--to", &via("/usr/bin/nix-store", &ours_to_cpp), &second]));
    assert_eq!(hash_in(&ours_to_cpp, &second), hash_in(&source, &second));
    let back = t.join("back");
    ok(nivis(&["copy", "--store", back.to_str().unwrap(), "--from", &via("/usr/bin/nix-store", &ours_to_cpp), &second]));
    assert_eq!(hash_in(&back, &first), hash_in(&source, &first));
    // And CppNix copying from a nivis server.
    let cpp_from_ours = t.join("cppnix-from-nivis");
    ok(cppnix(
        "nix",
        &["--extra-experimental-features", "nix-command", "copy", "--store", cpp_from_ours.to_str().unwrap(), "--from", &via(&ours, &both), "--no-check-sigs", &second],
    ));
    assert_eq!(hash_in(&cpp_from_ours, &second), hash_in(&source, &second));
    let info = ok(nivis(&["path-info", "--store", &via(&ours, &both), "--json", &second]));
    assert!(info.contains(&first), "{info}");
}

#[test]
fn a_remote_program_that_does_not_speak_the_protocol_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (_, second) = cppnix_paths(t, &source);
    let message = stderr_of_failure(nivis(&["copy", "--store", source.to_str().unwrap(), "--to", "ssh://localhost?remote-program=echo", &second]));
    assert!(message.contains("'nix-store --serve' protocol mismatch from 'localhost', got '--serve --write'"), "{message}");
    // A server refusing writes (no --write) ends the session with its reason.
    let nowrite = t.join("nowrite");
    std::fs::write(&nowrite, format!("#!/bin/sh\nexec {} --serve --store {}/nowrite-store\n", nivis_nix_store(t), t.display()))
        .unwrap();
    std::fs::set_permissions(&nowrite, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let message = stderr_of_failure(nivis(&[
        "copy",
        "--store",
        source.to_str().unwrap(),
        "--to",
        &format!("ssh://localhost?remote-program={}", nowrite.display()),
        &second,
    ]));
    assert!(message.contains("importing paths is not allowed"), "{message}");
    // Whether the NAR still fit in the pipe decides which of the two local
    // errors comes; both name the path and the host.
    assert!(message.contains("localhost'") && message.contains("-data'"), "{message}");
}

/// A real OpenSSH server on 127.0.0.1, run as the current user with keys made
/// for the test (`.ci/run` installs openssh-server). It accepts `NIX_REMOTE`
/// from the client, so a remote `nix-store` can be pointed at a test store.
struct Sshd {
    child: std::process::Child,
    /// What `NIX_SSHOPTS` must hold to reach it.
    options: String,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd(dir: &Path) -> Sshd {
    assert!(Path::new("/usr/sbin/sshd").exists(), "these tests need openssh-server (apt-get install -y openssh-server)");
    for key in ["host_key", "user_key"] {
        ok(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(dir.join(key)).output().unwrap());
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nAuthorizedKeysFile {d}/authorized_keys\n\
             PidFile {d}/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAcceptEnv NIX_REMOTE\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // sshd insists on its privilege separation directory even when not root.
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new("/usr/sbin/sshd").arg("-D").arg("-e").arg("-f").arg(&config).spawn().unwrap();
    let options = format!(
        "-p {port} -i {}/user_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
        dir.display()
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Sshd { child, options };
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("sshd did not start listening on port {port}");
}

#[test]
fn copy_through_a_real_ssh_server_with_cppnix_on_either_end() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let sshd = start_sshd(t);
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let ours = nivis_nix_store(t);
    let with_ssh = |mut command: Command, remote_store: Option<&Path>| {
        let mut options = sshd.options.clone();
        if let Some(root) = remote_store {
            options.push_str(&format!(" -o SetEnv=NIX_REMOTE={}", root.display()));
        }
        command.env("NIX_SSHOPTS", options).env_remove("NIX_REMOTE");
        command.output().unwrap()
    };

    // nivis `nix copy` to a nivis `nix-store --serve` through sshd.
    let remote = t.join("remote");
    let uri = format!("ssh://127.0.0.1?remote-program={ours}&remote-store={}", remote.display());
    let mut copy = Command::new(env!("CARGO_BIN_EXE_nivis"));
    copy.args(["copy", "--store", source.to_str().unwrap(), "--to", &uri, &second]);
    ok(with_ssh(copy, None));
    assert_eq!(hash_in(&remote, &second), hash_in(&source, &second));

    // CppNix's nix-copy-closure pulls it from that store; on the remote end
    // the `nix-store` on PATH (CppNix's) serves it, told where by NIX_REMOTE.
    let pulled = t.join("pulled");
    let mut cpp = Command::new("/usr/bin/nix-copy-closure");
    cpp.args(["--from", "127.0.0.1", &second]).env("NIX_REMOTE", &pulled);
    let mut options = sshd.options.clone();
    options.push_str(&format!(" -o SetEnv=NIX_REMOTE={}", remote.display()));
    let output = cpp.env("NIX_SSHOPTS", &options).output().unwrap();
    ok(output);
    assert_eq!(hash_in(&pulled, &first), hash_in(&source, &first));

    // Our nix-copy-closure pushes to CppNix's nix-store --serve on the remote.
    let pushed = t.join("pushed");
    std::fs::create_dir(t.join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), t.join("bin/nix-copy-closure")).unwrap();
    let mut push = Command::new(t.join("bin/nix-copy-closure"));
    push.args(["--store", source.to_str().unwrap(), "--to", "127.0.0.1", &second]);
    let output = with_ssh(push, Some(&pushed));
    ok(output);
    assert_eq!(hash_in(&pushed, &second), hash_in(&source, &second));
}

/// Serves the files of `dir` over HTTP/1.1 on 127.0.0.1 (keep-alive, GET and
/// HEAD) and records every requested path, to count what clients ask for.
fn counting_http_server(dir: &Path) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (dir, served_log) = (dir.to_path_buf(), log.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (dir, log) = (dir.clone(), served_log.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut request = String::new();
                    if reader.read_line(&mut request).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut header = String::new();
                    while reader.read_line(&mut header).unwrap_or(0) > 2 {
                        header.clear();
                    }
                    let mut parts = request.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/").to_string());
                    log.lock().unwrap().push(path.clone());
                    let body = std::fs::read(dir.join(path.trim_start_matches('/'))).ok();
                    let status = if body.is_some() { "200 OK" } else { "404 Not Found" };
                    let body = body.unwrap_or_default();
                    let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n", body.len());
                    if writer.write_all(head.as_bytes()).is_err() || (method != "HEAD" && writer.write_all(&body).is_err()) {
                        return;
                    }
                }
            });
        }
    });
    (address, log)
}

/// What an HTTP cache said is remembered in `binary-cache-v6.sqlite`, in the
/// same rows CppNix writes and reads: neither tool asks again for what the
/// other (or itself) already learnt.
#[test]
fn narinfos_are_remembered_on_disk_and_shared_with_cppnix() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let source = t.join("source");
    let (first, second) = cppnix_paths(t, &source);
    let cache_dir = t.join("cache");
    ok(cppnix(
        "nix",
        &["--extra-experimental-features", "nix-command", "copy", "--store", source.to_str().unwrap(), "--to", &format!("file://{}", cache_dir.display()), &second],
    ));
    let (url, log) = counting_http_server(&cache_dir);
    let xdg = t.join("xdg");
    let run = |program: &str, args: &[&str]| {
        let mut command = Command::new(program);
        if program == "nix" {
            command.args(["--extra-experimental-features", "nix-command"]);
        }
        command.args(args).env("XDG_CACHE_HOME", &xdg).env_remove("NIX_REMOTE").output().unwrap()
    };
    let requests = |log: &std::sync::Arc<std::sync::Mutex<Vec<String>>>| std::mem::take(&mut *log.lock().unwrap());
    let narinfo_of = |path: &str| format!("/{}.narinfo", &path["/nix/store/".len().."/nix/store/".len() + 32]);
    let nivis_bin = env!("CARGO_BIN_EXE_nivis");

    // nivis asks once, then answers from the disk cache (cache info included).
    assert_eq!(ok(run(nivis_bin, &["path-info", "--store", &url, &second])).trim(), second);
    assert_eq!(requests(&log), vec!["/nix-cache-info".to_string(), narinfo_of(&second)]);
    assert_eq!(ok(run(nivis_bin, &["path-info", "--store", &url, &second])).trim(), second);
    assert_eq!(requests(&log), Vec::<String>::new());

    // Absence is remembered too.
    let absent = "/nix/store/00000000000000000000000000000000-absent";
    assert!(!run(nivis_bin, &["path-info", "--store", &url, absent]).status.success());
    assert_eq!(requests(&log), vec![narinfo_of(absent)]);
    assert!(!run(nivis_bin, &["path-info", "--store", &url, absent]).status.success());
    assert_eq!(requests(&log), Vec::<String>::new());

    // CppNix reads what nivis wrote: no requests at all.
    let cpp = ok(run("nix", &["path-info", "--store", &url, "--json", &second]));
    assert!(cpp.contains(&first), "{cpp}");
    assert_eq!(requests(&log), Vec::<String>::new());

    // nivis reads what CppNix wrote.
    let cpp_first = ok(run("nix", &["path-info", "--store", &url, &first]));
    assert_eq!(cpp_first.trim(), first);
    // (CppNix checks existence with HEAD before it GETs.)
    let asked = requests(&log);
    assert!(!asked.is_empty() && asked.iter().all(|p| *p == narinfo_of(&first)), "{asked:?}");
    let ours_json = ok(run(nivis_bin, &["path-info", "--store", &url, "--json", &first]));
    assert!(ours_json.contains("sha256:"), "{ours_json}");
    assert_eq!(requests(&log), Vec::<String>::new());
}
