//! Settings that change evaluation, given by `--option`, `NIX_CONFIG` or
//! `nix.conf`: each case runs nivis and CppNix 2.8 on the same expression, with
//! the same configuration, and compares exit status, stdout and the first line
//! of stderr (the message; nivis adds a source position where 2.8 has none).
//! `max-call-depth` is newer than 2.8 and is checked on its own.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CPPNIX_BIN: &str = "/usr/bin";

fn cppnix_available() -> bool {
    Path::new(CPPNIX_BIN).join("nix-instantiate").exists()
}

/// A scratch directory with its own configuration directory, cache and store.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new().prefix("nivis-eval-settings").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        Scratch { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A command with a clean configuration: no user files, `etc/nix.conf` here,
    /// fetcher caches under this directory (one per implementation).
    fn command(&self, ours: bool, tool: &str, env: &[(&str, &str)]) -> Command {
        let mut command = if ours {
            let mut c = Command::new(env!("CARGO_BIN_EXE_nivis"));
            c.arg0(tool);
            c
        } else {
            Command::new(format!("{CPPNIX_BIN}/{tool}"))
        };
        let which = if ours { "nivis" } else { "cppnix" };
        command
            .current_dir(self.dir.path())
            .env("NIX_CONF_DIR", self.path("etc"))
            .env("NIX_USER_CONF_FILES", "")
            .env("XDG_CACHE_HOME", self.path(&format!("cache-{which}")))
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_PATH");
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }

    fn run(&self, ours: bool, tool: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.command(ours, tool, env).args(args).output().unwrap()
    }

    /// Runs `nix-instantiate ARGS` under both and compares; returns our output.
    fn same(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.same_tool("nix-instantiate", env, args)
    }

    fn same_tool(&self, tool: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
        let ours = self.run(true, tool, env, args);
        let theirs = self.run(false, tool, env, args);
        let context = format!(
            "{tool} {args:?} env {env:?}\n--- nivis stderr:\n{}\n--- CppNix stderr:\n{}",
            text(&ours.stderr),
            text(&theirs.stderr)
        );
        assert_eq!(ours.status.code(), theirs.status.code(), "exit status of {context}");
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "stdout of {context}");
        assert_eq!(first_error_line(&ours.stderr), first_error_line(&theirs.stderr), "message of {context}");
        ours
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The error message: the last line of stderr that starts with `error: `
/// (current CppNix prints the trace frames first and the message last, 2.8
/// the message first), unindented, skipping retry warnings from downloads.
fn first_error_line(stderr: &[u8]) -> String {
    text(stderr)
        .lines()
        .filter(|l| !l.starts_with("warning: error: unable to download"))
        .filter(|l| l.trim_start().starts_with("error: "))
        .last()
        .unwrap_or("")
        .trim_start()
        .to_string()
}

macro_rules! need_cppnix {
    () => {
        if !cppnix_available() {
            eprintln!("skipping: CppNix is not installed");
            return;
        }
    };
}

#[test]
fn restrict_eval_limits_reads_to_the_search_path() {
    need_cppnix!();
    let s = Scratch::new();
    s.write("lib/a.nix", "\"from a\"");
    let main = s.write("main.nix", "import ./lib/a.nix");
    let main = main.to_str().unwrap();
    let lib = s.path("lib");
    let lib = lib.to_str().unwrap();
    let restricted = ["--option", "restrict-eval", "true"];
    let with = |extra: &[&str]| -> Vec<String> {
        restricted.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        s.same(env, &args)
    };
    // The top-level file itself is outside the allowed paths.
    let out = run(&[], &["--eval", main]);
    assert!(first_error_line(&out.stderr).contains("is forbidden in restricted mode"));
    // So are files an expression reads.
    let a = format!("{lib}/a.nix");
    run(&[], &["--eval", "-E", &format!("builtins.readFile {a}")]);
    run(&[], &["--eval", "-E", &format!("import {a}")]);
    run(&[], &["--eval", "-E", &format!("builtins.readDir {lib}")]);
    run(&[], &["--eval", "-E", &format!("builtins.readFile {lib}/../main.nix")]);
    // CppNix 2.8 answers `false` rather than failing.
    run(&[], &["--eval", "-E", &format!("builtins.pathExists {a}")]);
    // A search-path entry (from -I or nix-path) opens its directory.
    let out = run(&[], &["--eval", "-I", lib, "-E", &format!("import {a}")]);
    assert_eq!(text(&out.stdout), "\"from a\"\n");
    run(&[], &["--eval", "--option", "nix-path", &format!("x={lib}"), "-E", "import <x/a.nix>"]);
    // `<nix/...>` is always there; the environment is not.
    run(&[], &["--eval", "-E", "builtins.typeOf (import <nix/fetchurl.nix>)"]);
    let out = run(&[("HOME", "/somewhere")], &["--eval", "-E", "builtins.getEnv \"HOME\""]);
    assert_eq!(text(&out.stdout), "\"\"\n");
    // The same through NIX_CONFIG and nix.conf.
    s.same(&[("NIX_CONFIG", "restrict-eval = true")], &["--eval", main]);
    s.write("etc/nix.conf", "restrict-eval = true\n");
    let out = s.same(&[], &["--eval", main]);
    assert!(!out.status.success());
}

#[test]
fn restrict_eval_checks_uris_against_allowed_uris() {
    need_cppnix!();
    let s = Scratch::new();
    let file = s.write("data/f.txt", "payload\n");
    let file = file.to_str().unwrap();
    let store = s.path("store");
    let store = store.to_str().unwrap();
    let fetch = format!("builtins.fetchurl \"file://{file}\"");
    let out = s.same(&[], &["--store", store, "--option", "restrict-eval", "true", "--eval", "-E", &fetch]);
    assert!(first_error_line(&out.stderr).contains("forbidden in restricted mode"));
    let out = s.same(&[], &["--store", store, "--option", "restrict-eval", "true", "--eval", "-E", "builtins.fetchurl \"http://127.0.0.1:9/x\""]);
    assert!(first_error_line(&out.stderr).contains("access to URI 'http://127.0.0.1:9/x' is forbidden"));
    // An allowed prefix lets the fetch through, and its result may be read.
    let data_dir = format!("file://{}", s.path("data").display());
    let read = format!("builtins.readFile ({fetch})");
    let out = s.same(
        &[],
        &["--store", store, "--option", "restrict-eval", "true", "--option", "allowed-uris", &data_dir, "--eval", "-E", &read],
    );
    assert_eq!(text(&out.stdout), "\"payload\\n\"\n");
    // A prefix must end at a `/` of the URI.
    let partial = format!("file://{}", s.path("dat").display());
    s.same(&[], &["--store", store, "--option", "restrict-eval", "true", "--option", "allowed-uris", &partial, "--eval", "-E", &fetch]);
}

#[test]
fn pure_eval_hides_impure_builtins_and_files() {
    need_cppnix!();
    let s = Scratch::new();
    let file = s.write("x.nix", "1");
    let file = file.to_str().unwrap();
    let pure = |expr: &str| {
        s.same(&[], &["--option", "pure-eval", "true", "-I", "y=/tmp", "--eval", "-E", expr])
    };
    let out = pure("builtins.currentSystem");
    assert!(first_error_line(&out.stderr).contains("attribute 'currentSystem' missing"));
    pure("builtins.currentTime");
    pure("builtins ? currentSystem");
    // No search path at all, not even -I.
    let out = pure("builtins.nixPath");
    assert_eq!(text(&out.stdout), "[ ]\n");
    let out = pure(&format!("import {file}"));
    assert!(first_error_line(&out.stderr).contains("is forbidden in pure eval mode (use '--impure' to override)"));
    pure("builtins.getEnv \"PATH\"");
    let out = pure("builtins.storePath /nix/store/00000000000000000000000000000000-x");
    assert!(first_error_line(&out.stderr).contains("'builtins.storePath' is not allowed in pure evaluation mode"));
    s.same(&[("NIX_CONFIG", "pure-eval = true")], &["--eval", file]);
}

#[test]
fn system_sets_current_system() {
    need_cppnix!();
    let s = Scratch::new();
    let out = s.same(&[], &["--option", "system", "riscv64-linux", "--eval", "-E", "builtins.currentSystem"]);
    assert_eq!(text(&out.stdout), "\"riscv64-linux\"\n");
    s.same(&[("NIX_CONFIG", "system = aarch64-darwin")], &["--eval", "-E", "builtins.currentSystem"]);
    // `nix eval --expr` is pure unless `--impure`; `--file` is impure.
    let nix_eval = |args: &[&str]| {
        let all: Vec<&str> = ["--extra-experimental-features", "nix-command", "eval"].iter().copied().chain(args.iter().copied()).collect();
        s.same_tool("nix", &[], &all)
    };
    let out = nix_eval(&["--impure", "--option", "system", "i686-linux", "--expr", "builtins.currentSystem"]);
    assert_eq!(text(&out.stdout), "\"i686-linux\"\n");
    let out = nix_eval(&["--option", "system", "i686-linux", "--expr", "builtins.currentSystem"]);
    assert!(!out.status.success());
    s.write("sys.nix", "builtins.currentSystem");
    nix_eval(&["--option", "system", "i686-linux", "--file", "./sys.nix"]);
    nix_eval(&["--expr", "builtins.getEnv \"HOME\""]);
}

#[test]
fn nix_path_setting_overrides_nix_path_variable() {
    need_cppnix!();
    let s = Scratch::new();
    let nix_path = [("NIX_PATH", "a=/etc:/usr")];
    let out = s.same(&nix_path, &["--eval", "-E", "builtins.nixPath"]);
    assert!(text(&out.stdout).contains("prefix = \"a\""));
    let out = s.same(&nix_path, &["--option", "nix-path", "b=/tmp c=/var", "--eval", "-E", "builtins.nixPath"]);
    assert!(text(&out.stdout).contains("prefix = \"c\"") && !text(&out.stdout).contains("prefix = \"a\""));
    s.same(&[("NIX_PATH", "a=/etc"), ("NIX_CONFIG", "nix-path = d=/tmp")], &["--eval", "-E", "builtins.nixPath"]);
    // -I comes first.
    s.same(&nix_path, &["-I", "x=/y", "--option", "nix-path", "b=/tmp", "--eval", "-E", "builtins.nixPath"]);
}

#[test]
fn show_trace_setting_shows_the_trace() {
    need_cppnix!();
    let s = Scratch::new();
    let expr = "let f = x: x.y; in f {}";
    let plain = s.same(&[], &["--eval", "-E", expr]);
    assert!(!text(&plain.stderr).contains("… from call site"), "{}", text(&plain.stderr));
    for env in [[("NIX_CONFIG", "show-trace = true")].as_slice(), &[]] {
        let option: &[&str] = if env.is_empty() { &["--option", "show-trace", "true"] } else { &[] };
        let args: Vec<&str> = option.iter().copied().chain(["--eval", "-E", expr]).collect();
        let traced = s.same(env, &args);
        let stderr = text(&traced.stderr);
        assert!(stderr.contains("… while evaluating 'f'") || stderr.contains("… from call site"), "{stderr}");
        assert!(!stderr.contains("use '--show-trace'"), "{stderr}");
    }
}

#[test]
fn tarball_ttl_and_warn_dirty_reach_the_fetchers() {
    need_cppnix!();
    let s = Scratch::new();
    let store = s.path("store");
    let store = store.to_str().unwrap();
    let file = s.path("f.txt");
    let read = format!("builtins.readFile (builtins.fetchurl \"file://{}\")", file.display());
    std::fs::write(&file, "one\n").unwrap();
    s.same(&[], &["--store", store, "--eval", "-E", &read]);
    std::fs::write(&file, "two\n").unwrap();
    // Within the default hour the cached download is used...
    let out = s.same(&[], &["--store", store, "--eval", "-E", &read]);
    assert_eq!(text(&out.stdout), "\"one\\n\"\n");
    // ...unless tarball-ttl says it is stale.
    let out = s.same(&[], &["--store", store, "--option", "tarball-ttl", "0", "--eval", "-E", &read]);
    assert_eq!(text(&out.stdout), "\"two\\n\"\n");
    std::fs::write(&file, "three\n").unwrap();
    let out = s.same(&[("NIX_CONFIG", "tarball-ttl = 0")], &["--store", store, "--eval", "-E", &read]);
    assert_eq!(text(&out.stdout), "\"three\\n\"\n");

    // A dirty Git work tree warns unless warn-dirty is false.
    let repo = s.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git").current_dir(&repo).args(args).output();
        status.is_ok_and(|o| o.status.success())
    };
    if !git(&["init", "-q"]) {
        eprintln!("skipping the warn-dirty half: no git");
        return;
    }
    std::fs::write(repo.join("a"), "a").unwrap();
    assert!(git(&["add", "a"]));
    assert!(git(&["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"]));
    std::fs::write(repo.join("a"), "changed").unwrap();
    let expr = format!("(builtins.fetchGit {}).rev", repo.display());
    let warned = s.same(&[], &["--store", store, "--eval", "-E", &expr]);
    assert!(text(&warned.stderr).contains("is dirty"));
    let quiet = s.same(&[], &["--store", store, "--option", "warn-dirty", "false", "--eval", "-E", &expr]);
    assert!(!text(&quiet.stderr).contains("is dirty"), "{}", text(&quiet.stderr));
}

#[test]
fn import_from_derivation_can_be_disabled() {
    need_cppnix!();
    let s = Scratch::new();
    let busybox = Path::new("/usr/bin/busybox");
    let userns = Command::new("unshare").args(["-U", "-m", "-p", "-f", "true"]).status().is_ok_and(|st| st.success());
    if !busybox.exists() || !userns {
        eprintln!("skipping: needs /usr/bin/busybox and user namespaces");
        return;
    }
    std::fs::create_dir_all(s.path("bb/bin")).unwrap();
    std::fs::copy(busybox, s.path("bb/bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", s.path("bb/bin/sh")).unwrap();
    let file = s.write(
        "ifd.nix",
        &format!(
            r#"let bb = builtins.path {{ path = {}; name = "busybox"; }};
    d = derivation {{ name = "ifd"; system = "x86_64-linux"; builder = "${{bb}}/bin/sh";
                      args = [ "-c" "echo '{{ x = 42; }}' > $out" ]; }};
in (import "${{d}}").x
"#,
            s.path("bb").display()
        ),
    );
    let file = file.to_str().unwrap();
    // Read-only evaluation never wrote the .drv: "path ... is not valid", for both.
    let store = s.path("store");
    let store = store.to_str().unwrap();
    s.same(&[], &["--store", store, "--eval", file]);
    let no_ifd = ["--store", store, "--read-write-mode", "--option", "substituters", "", "--option", "allow-import-from-derivation", "false", "--eval", file];
    let out = s.same(&[], &no_ifd);
    assert!(first_error_line(&out.stderr).contains("because the option 'allow-import-from-derivation' is disabled"));
    // Allowed (the default), the output is built and read.
    let ours_store = s.path("store-ifd");
    let ours = s.run(
        true,
        "nix-instantiate",
        &[],
        &["--store", ours_store.to_str().unwrap(), "--read-write-mode", "--option", "substituters", "", "--eval", file],
    );
    assert_eq!(text(&ours.stdout), "42\n", "{}", text(&ours.stderr));

    // A failing builder ends the evaluation with the build's exit status (100)
    // and the builder's message, for both.
    let failing = s.write(
        "ifd-fail.nix",
        &format!(
            r#"let bb = builtins.path {{ path = {}; name = "busybox"; }};
    d = derivation {{ name = "ifd-fail"; system = "x86_64-linux"; builder = "${{bb}}/bin/sh"; args = [ "-c" "exit 3" ]; }};
in import "${{d}}"
"#,
            s.path("bb").display()
        ),
    );
    let mut outputs = Vec::new();
    for (ours, store) in [(true, "fail-nivis"), (false, "fail-cppnix")] {
        let store = s.path(store);
        let args = ["--store", store.to_str().unwrap(), "--read-write-mode", "--option", "substituters", "", "--eval", failing.to_str().unwrap()];
        outputs.push(s.run(ours, "nix-instantiate", &[], &args));
    }
    assert_eq!(outputs[0].status.code(), Some(100), "{}", text(&outputs[0].stderr));
    assert_eq!(outputs[0].status.code(), outputs[1].status.code());
    for output in &outputs {
        assert!(text(&output.stderr).contains("failed with exit code 3"), "{}", text(&output.stderr));
    }
}

#[test]
fn max_call_depth_bounds_recursion() {
    // Newer than CppNix 2.8 (which warns about an unknown setting): checked alone.
    let s = Scratch::new();
    let expr = "let f = n: if n == 0 then 0 else f (n - 1); in f 100";
    let deep = s.run(true, "nix-instantiate", &[], &["--eval", "-E", expr]);
    assert_eq!(text(&deep.stdout), "0\n", "{}", text(&deep.stderr));
    let shallow = s.run(true, "nix-instantiate", &[], &["--option", "max-call-depth", "20", "--eval", "-E", expr]);
    assert_eq!(shallow.status.code(), Some(1));
    assert!(text(&shallow.stderr).starts_with("error: stack overflow; max-call-depth exceeded"), "{}", text(&shallow.stderr));
    let configured = s.run(true, "nix-instantiate", &[("NIX_CONFIG", "max-call-depth = 20")], &["--eval", "-E", expr]);
    assert_eq!(configured.status.code(), Some(1));
}

#[test]
fn url_entries_of_the_search_path_are_downloaded() {
    need_cppnix!();
    let s = Scratch::new();
    s.write("tree/top/lib.nix", "{ answer = 42; }");
    let made = Command::new("tar")
        .current_dir(s.path("tree"))
        .args(["-czf", "../exprs.tar.gz", "top"])
        .status()
        .is_ok_and(|st| st.success());
    assert!(made, "tar");
    let store = s.path("store");
    let store = store.to_str().unwrap();
    let url = format!("file://{}", s.path("exprs.tar.gz").display());
    let entry = format!("exprs={url}");
    let out = s.same(&[], &["--store", store, "-I", &entry, "--eval", "-E", "(import <exprs/lib.nix>).answer"]);
    assert_eq!(text(&out.stdout), "42\n", "{}", text(&out.stderr));
    // Through NIX_PATH, whose colons inside URLs do not split entries, and in
    // restricted mode, where the downloaded tree becomes readable.
    let nix_path = format!("a=/nonexistent:{entry}:b=channel:somewhere");
    s.same(&[("NIX_PATH", &nix_path)], &["--store", store, "--eval", "-E", "builtins.nixPath"]);
    s.same(&[("NIX_PATH", &nix_path)], &["--store", store, "--option", "restrict-eval", "true", "--eval", "-E", "(import <exprs/lib.nix>).answer"]);
    // An entry that cannot be downloaded is skipped with a warning.
    let missing = format!("exprs=file://{}", s.path("missing.tar.gz").display());
    let out = s.same(&[], &["--store", store, "-I", &missing, "--eval", "-E", "<exprs/lib.nix>"]);
    assert!(text(&out.stderr).contains("cannot be downloaded, ignoring"), "{}", text(&out.stderr));
}

#[test]
fn nix_build_evaluates_purely_and_takes_eval_options() {
    need_cppnix!();
    let s = Scratch::new();
    let file = s.write("env.nix", "builtins.getEnv \"HOME\"");
    let file = file.to_str().unwrap();
    let store = s.path("store");
    let store = store.to_str().unwrap();
    let env = [("NIX_CONFIG", "experimental-features = nix-command")];
    let build = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec!["build", "--dry-run", "--store", store];
        args.extend_from_slice(extra);
        s.same_tool("nix", env, &args)
    };
    // `--expr` is pure by default, and nix.conf cannot change that ...
    let out = build(&env, &["--expr", "builtins.currentTime"]);
    assert!(first_error_line(&out.stderr).contains("attribute 'currentTime' missing"));
    build(&[("NIX_CONFIG", "experimental-features = nix-command\npure-eval = false")], &["--expr", "builtins.currentTime"]);
    // ... but `--impure` and `--option pure-eval false` can.
    let out = build(&env, &["--impure", "--expr", "builtins.currentTime"]);
    assert!(first_error_line(&out.stderr).contains("does not evaluate to a derivation"));
    build(&env, &["--option", "pure-eval", "false", "--expr", "builtins.currentTime"]);
    build(&env, &["--impure", "--option", "pure-eval", "true", "--expr", "builtins.currentTime"]);
    // `--file` is impure whatever the options say.
    build(&env, &["-f", file, "--option", "pure-eval", "true"]);
    // Other evaluation settings reach the evaluator from the command line.
    let out = build(&env, &["--option", "restrict-eval", "true", "-f", file]);
    assert!(first_error_line(&out.stderr).contains("forbidden in restricted mode"));
    build(&env, &["--option", "system", "sys-x", "--impure", "--expr", "builtins.currentSystem"]);
    s.same_tool(
        "nix",
        &env,
        &["profile", "install", "--profile", s.path("p").to_str().unwrap(), "--store", store, "--expr", "builtins.currentTime"],
    );
}
