//! `nix-env` end to end in temporary chroot stores with explicit profiles:
//! the same operations done by nivis and by CppNix 2.8 give the same user
//! environment (store path), manifest bytes, query output and messages;
//! each reads and extends the other's profiles; and a `nix-env` killed with
//! SIGKILL at random moments never leaves a profile without a complete
//! generation.
//!
//! CppNix resolves a profile through `/nix/store/...` on the host, so it runs
//! in a private mount namespace where the store root is bind-mounted on
//! `/nix/store` (this needs root, as CppNix's builds in a chroot store do).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BUSYBOX: &str = "/usr/bin/busybox";

fn available(test: &str) -> bool {
    let busybox_ok = fs::metadata(BUSYBOX).is_ok();
    let userns = Command::new("unshare").args(["-U", "-m", "-p", "-f", "true"]).status().is_ok_and(|s| s.success());
    if !busybox_ok || !userns {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: needs {BUSYBOX} (busybox-static) and user namespaces");
        return false;
    }
    true
}

fn cppnix_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ok = root && Command::new("/usr/bin/nix-env").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SKIPPED the CppNix part of {test}: needs root and CppNix 2.8");
    }
    ok
}

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("nivis-nix-env").tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin");
        for name in ["nix-env", "nix-store"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), bin.join(name)).expect("link");
        }
        let bb = dir.path().join("bb/bin");
        fs::create_dir_all(&bb).expect("bb");
        fs::copy(BUSYBOX, bb.join("busybox")).expect("busybox");
        for applet in ["sh", "mkdir", "echo", "cat", "ln", "sleep"] {
            std::os::unix::fs::symlink("busybox", bb.join(applet)).expect("applet");
        }
        fs::create_dir_all(dir.path().join("home")).expect("home");
        let fixture = Fixture { dir, bin };
        // Two versions of a small package set; `bb` is the same store path in both.
        fixture.write_packages("v1.nix", "1.0", "");
        fixture.write_packages("v2.nix", "2.0", "sleep 0.3;");
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_packages(&self, file: &str, version: &str, slow: &str) {
        let text = format!(
            r#"let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: bin: extra: derivation ({{
    inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh";
    PATH = "${{bb}}/bin";
    args = [ "-c" "{slow} mkdir -p $out/bin $out/share/doc/${{bin}} \${{dev:+$dev/include}}; echo ${{name}} > $out/bin/${{bin}}; echo doc > $out/share/doc/${{bin}}/README" ];
  }} // extra);
in {{
  hello = mk "hello-{version}" "hello" {{ }};
  tool = (mk "tool-0.5" "tool" {{ }}) // {{ meta = {{ description = "A \"tool\""; priority = 3; tags = [ "a" "b" ]; }}; }};
  multi = mk "multi-1.1" "multi" {{ outputs = [ "out" "dev" ]; }};
  nested = {{ recurseForDerivations = true; inner = mk "inner-0.1" "inner" {{ }}; }};
  clash = mk "clash-1.0" "hello" {{ }};
  broken = mk "broken-1" "broken" {{ args = [ "-c" "echo failing; exit 3" ]; }};
}}
"#,
            dir = self.dir.path().display()
        );
        fs::write(self.path(file), text).expect("write packages");
    }

    /// Our nix-env on store `store` and profile `profile` (both under the
    /// fixture directory).
    fn nivis(&self, store: &str, profile: &str, args: &[&str]) -> Output {
        self.nivis_command(store, profile, args).output().expect("run nivis nix-env")
    }

    fn nivis_command(&self, store: &str, profile: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("nix-env"));
        cmd.current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .env("NIX_CONFIG", "substituters =")
            .env_remove("NIX_REMOTE")
            .env_remove("NIX_PROFILE")
            .args(["--store", self.path(store).to_str().expect("utf-8")])
            .args(["-p", self.path(profile).to_str().expect("utf-8")])
            .args(args);
        cmd
    }

    /// CppNix 2.8's nix-env on the same store and profile, in a mount
    /// namespace where the store's files are at `/nix/store`.
    fn cppnix(&self, store: &str, profile: &str, args: &[&str]) -> Output {
        let root = self.path(store);
        fs::create_dir_all(root.join("nix/store")).expect("store dir");
        fs::create_dir_all("/nix/store").expect("/nix/store mount point");
        let script = r#"mount --bind "$1/nix/store" /nix/store && shift && exec "$@""#;
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&root)
            .arg("/usr/bin/nix-env")
            .args(["--store", root.to_str().expect("utf-8")])
            .args(["-p", self.path(profile).to_str().expect("utf-8")])
            .args(["--option", "substituters", ""])
            .args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.path("home"))
            .env_remove("NIX_REMOTE")
            .env_remove("NIX_PROFILE")
            .output()
            .expect("run CppNix nix-env")
    }

    /// The store path the profile names now.
    fn current(&self, profile: &str) -> String {
        let mut path = self.path(profile);
        loop {
            let target = fs::read_link(&path).expect("profile link");
            let target = if target.is_absolute() { target } else { path.parent().expect("parent").join(target) };
            if target.starts_with("/nix/store") {
                return target.to_string_lossy().into_owned();
            }
            path = target;
        }
    }

    fn real(&self, store: &str, store_path: &str) -> PathBuf {
        self.path(store).join(store_path.trim_start_matches('/'))
    }

    /// Reads a file of a store path, following symlinks through the store.
    fn read(&self, store: &str, store_path: &str, name: &str) -> String {
        let mut path = self.real(store, store_path);
        for component in name.split('/') {
            path = path.join(component);
            while let Ok(target) = fs::read_link(&path) {
                path = self.real(store, target.to_str().expect("utf-8"));
            }
        }
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn manifest(&self, store: &str, profile: &str) -> Vec<u8> {
        let env = self.current(profile);
        let link = fs::read_link(self.real(store, &env).join("manifest.nix")).expect("manifest link");
        fs::read(self.real(store, link.to_str().expect("utf-8"))).expect("manifest")
    }
}

fn ok(output: &Output, what: &str) -> String {
    assert!(output.status.success(), "{what} failed:\n{}", text(&output.stderr));
    text(&output.stdout)
}

/// stderr without the build logs and progress lines, which depend on timing.
fn messages(output: &Output) -> Vec<String> {
    text(&output.stderr)
        .lines()
        .filter(|l| !l.starts_with("building '") && !l.starts_with("warning: substituter"))
        .map(str::to_string)
        .collect()
}

#[test]
fn same_user_environments_and_queries_as_cppnix() {
    if !available("same_user_environments_and_queries_as_cppnix") {
        return;
    }
    let f = Fixture::new();
    let ours = f.nivis("s1", "p1", &["-f", "v1.nix", "-iA", "hello", "tool", "multi"]);
    ok(&ours, "nivis -iA");
    assert_eq!(
        messages(&ours)[..3],
        ["installing 'hello-1.0'", "installing 'tool-0.5'", "installing 'multi-1.1'"],
        "{}",
        text(&ours.stderr)
    );
    let env = f.current("p1");
    assert!(env.ends_with("-user-environment"), "{env}");
    assert_eq!(f.read("s1", &env, "bin/hello"), "hello-1.0\n");
    assert_eq!(f.read("s1", &env, "share/doc/tool/README"), "doc\n");

    // Names with version selection, a second install replacing by name.
    ok(&f.nivis("s1", "p1", &["-f", "v1.nix", "-i", "inner"]), "nivis -i inner");
    let missing = f.nivis("s1", "p1", &["-f", "v1.nix", "-i", "nosuch"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("error: selector 'nosuch' matches no derivations"),
        "{}",
        text(&missing.stderr)
    );
    let removed = f.nivis("s1", "p1", &["-e", "multi"]);
    ok(&removed, "nivis -e");
    assert_eq!(messages(&removed), ["uninstalling 'multi-1.1'"]);
    let queries: &[&[&str]] = &[
        &["-q"],
        &["-q", "--out-path", "--system"],
        &["-qs"],
        &["-q", "--json", "--meta"],
        &["-f", "v1.nix", "-qaP", "--out-path", "--drv-path"],
        &["-f", "v1.nix", "-qa", "--json", "--out-path"],
        &["-f", "v1.nix", "-qc"],
        &["-f", "v2.nix", "-qac"],
        &["--list-generations"],
    ];
    let our_answers: Vec<String> = queries.iter().map(|q| ok(&f.nivis("s1", "p1", q), "nivis -q")).collect();

    if !cppnix_available("same_user_environments_and_queries_as_cppnix") {
        return;
    }
    // CppNix does the same in its own store and profile.
    let theirs = f.cppnix("s2", "p2", &["-f", "v1.nix", "-iA", "hello", "tool", "multi"]);
    ok(&theirs, "CppNix -iA");
    ok(&f.cppnix("s2", "p2", &["-f", "v1.nix", "-i", "inner"]), "CppNix -i inner");
    let their_missing = f.cppnix("s2", "p2", &["-f", "v1.nix", "-i", "nosuch"]);
    assert_eq!(their_missing.status.code(), missing.status.code());
    assert_eq!(messages(&f.cppnix("s2", "p2", &["-e", "multi"])), ["uninstalling 'multi-1.1'"]);
    assert_eq!(f.current("p2"), f.current("p1"), "same user environment path as CppNix");
    assert_eq!(f.manifest("s2", "p2"), f.manifest("s1", "p1"), "same manifest bytes as CppNix");
    for (query, ours) in queries.iter().zip(&our_answers) {
        let theirs = ok(&f.cppnix("s2", "p2", query), "CppNix -q");
        if query[0] == "--list-generations" {
            // Times differ; the numbers and the current marker must not.
            let strip = |s: &str| s.lines().map(|l| format!("{}{}", &l[..4], &l[27..])).collect::<Vec<_>>();
            assert_eq!(strip(ours), strip(&theirs));
        } else {
            assert_eq!(*ours, theirs, "nix-env {query:?}");
        }
    }
    // The trees are the same, not only their paths.
    let hash = |store: &str| {
        let output = Command::new("/usr/bin/nix-store")
            .args(["--store", f.path(store).to_str().expect("utf-8"), "-q", "--hash", &f.current("p1")])
            .output()
            .expect("nix-store -q --hash");
        ok(&output, "nix-store -q --hash")
    };
    assert_eq!(hash("s1"), hash("s2"), "NAR hash of the user environment");
    let deriver = |store: &str| {
        let output = Command::new("/usr/bin/nix-store")
            .args(["--store", f.path(store).to_str().expect("utf-8"), "-q", "--deriver", &f.current("p1")])
            .output()
            .expect("nix-store -q --deriver");
        ok(&output, "nix-store -q --deriver")
    };
    assert!(deriver("s1").trim_end().ends_with("-user-environment.drv"));
    assert_eq!(deriver("s1"), deriver("s2"), "the same buildenv derivation");
    // Other install sources: a store path, another profile, an expression.
    let hello = fs::read_link(f.real("s1", &f.current("p1")).join("bin/hello")).expect("bin/hello link");
    let hello = hello.parent().and_then(Path::parent).expect("package").to_str().expect("utf-8").to_string();
    for (store, profile) in [("s1", "p1"), ("s2", "p2")] {
        let run = |args: &[&str]| if store == "s1" { f.nivis(store, "p3", args) } else { f.cppnix(store, "p4", args) };
        ok(&run(&["-i", &hello]), "-i store path");
        let from_profile = f.path(profile);
        ok(&run(&["--from-profile", from_profile.to_str().expect("utf-8"), "-i", "tool"]), "--from-profile");
        ok(&run(&["-f", "v2.nix", "-E", "-i", "p: p.nested.inner"]), "-E");
    }
    assert_eq!(
        f.manifest("s1", "p3"),
        f.manifest("s2", "p4"),
        "same manifest after store path, profile and -E installs"
    );
    assert_eq!(f.current("p3"), f.current("p4"));
    // And CppNix reads our profile as its own.
    assert_eq!(ok(&f.cppnix("s1", "p1", queries[1]), "CppNix -q ours"), our_answers[1]);
}

#[test]
fn upgrade_rollback_switch_and_delete_generations() {
    if !available("upgrade_rollback_switch_and_delete_generations") {
        return;
    }
    let f = Fixture::new();
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-iA", "hello", "tool"]), "install");
    let first = f.current("p");
    let upgrade = f.nivis("s", "p", &["-f", "v2.nix", "-u"]);
    ok(&upgrade, "upgrade");
    assert_eq!(messages(&upgrade)[..1], ["upgrading 'hello-1.0' to 'hello-2.0'"], "{}", text(&upgrade.stderr));
    assert_eq!(f.read("s", &f.current("p"), "bin/hello"), "hello-2.0\n");
    // --eq finds nothing to do; --always with v1 downgrades.
    let down = f.nivis("s", "p", &["-f", "v1.nix", "-u", "--always", "hello"]);
    ok(&down, "downgrade");
    assert_eq!(messages(&down)[..1], ["downgrading 'hello-2.0' to 'hello-1.0'"]);
    assert_eq!(f.current("p"), first, "same elements, same user environment");
    let list = ok(&f.nivis("s", "p", &["--list-generations"]), "list");
    let numbers: Vec<&str> = list.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert_eq!(numbers, ["1", "2", "3"]);
    assert!(list.lines().nth(2).is_some_and(|l| l.ends_with("(current)")), "{list}");

    let rollback = f.nivis("s", "p", &["--rollback"]);
    ok(&rollback, "rollback");
    assert_eq!(messages(&rollback), ["switching profile from version 3 to 2"]);
    let switch = f.nivis("s", "p", &["--switch-generation", "1"]);
    assert_eq!(messages(&switch), ["switching profile from version 2 to 1"]);
    assert_eq!(f.current("p"), first);
    let bad = f.nivis("s", "p", &["-G", "9"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("error: profile version 9 does not exist"));
    let oldest = f.nivis("s", "p", &["--rollback"]);
    assert!(text(&oldest.stderr).contains("error: no profile version older than the current (1) exists"));

    let dry = f.nivis("s", "p", &["--delete-generations", "old", "--dry-run"]);
    assert_eq!(
        messages(&dry),
        ["(dry run; not doing anything)", "would remove profile version 2", "would remove profile version 3"]
    );
    let current = f.nivis("s", "p", &["--delete-generations", "1"]);
    assert!(text(&current.stderr).contains("cannot delete current version of profile"), "{}", text(&current.stderr));
    let delete = f.nivis("s", "p", &["--delete-generations", "3"]);
    assert_eq!(messages(&delete), ["removing profile version 3"]);
    assert!(fs::symlink_metadata(f.path("p-3-link")).is_err() && fs::symlink_metadata(f.path("p-2-link")).is_ok());

    // --set replaces the whole profile by one package; --set-flag changes meta.
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "--set", "-A", "hello"]), "--set");
    assert!(f.current("p").ends_with("-hello-1.0"));
    ok(&f.nivis("s", "p", &["--switch-generation", "1"]), "back to 1");
    let flag = f.nivis("s", "p", &["--set-flag", "priority", "7", "hello"]);
    assert_eq!(messages(&flag), ["setting flag on 'hello-1.0'"]);
    let manifest = text(&f.manifest("s", "p"));
    assert!(manifest.contains(r#"meta = { priority = "7"; }; name = "hello-1.0";"#), "{manifest}");
    // --preserve-installed keeps the old hello beside the new; their files
    // collide at equal priority only if both were 5 (hello is 7 now).
    let both = f.nivis("s", "p", &["-f", "v2.nix", "-i", "-P", "hello"]);
    ok(&both, "-i -P");
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "-q"), "hello-1.0\nhello-2.0\ntool-0.5\n");
    assert_eq!(f.read("s", &f.current("p"), "bin/hello"), "hello-2.0\n");
    // --remove-all: only what is named stays.
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-i", "-r", "tool"]), "-i -r");
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "-q"), "tool-0.5\n");
}

#[test]
fn cppnix_and_nivis_share_profiles() {
    if !available("cppnix_and_nivis_share_profiles") || !cppnix_available("cppnix_and_nivis_share_profiles") {
        return;
    }
    let f = Fixture::new();
    // CppNix starts the profile, we extend it, CppNix reads and rolls back.
    ok(&f.cppnix("s", "p", &["-f", "v1.nix", "-iA", "hello"]), "CppNix install");
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "nivis -q theirs"), "hello-1.0\n");
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-iA", "tool"]), "nivis install into theirs");
    assert_eq!(ok(&f.cppnix("s", "p", &["-q"]), "CppNix -q ours"), "hello-1.0\ntool-0.5\n");
    let generations = ok(&f.cppnix("s", "p", &["--list-generations"]), "CppNix list");
    assert_eq!(generations.lines().count(), 2);
    let rollback = f.cppnix("s", "p", &["--rollback"]);
    assert!(text(&rollback.stderr).contains("switching profile from version 2 to 1"));
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "nivis -q"), "hello-1.0\n");
    // Our store paths and theirs coincide: installing by store path.
    let hello = f.current("p");
    let tool_env = fs::read_link(f.path("p-2-link")).expect("generation 2");
    ok(&f.nivis("s", "p", &["--switch-generation", "2"]), "switch");
    ok(&f.cppnix("s", "p", &["-e", "hello"]), "CppNix -e");
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "nivis -q"), "tool-0.5\n");
    assert_ne!(hello, tool_env.to_string_lossy());
}

/// Every path in the closure of `path` is registered and on disk.
fn assert_complete(f: &Fixture, store: &str, path: &str) {
    let output = Command::new(f.bin.join("nix-store"))
        .args(["--store", f.path(store).to_str().expect("utf-8"), "-qR", path])
        .env_remove("NIX_REMOTE")
        .output()
        .expect("nix-store -qR");
    assert!(output.status.success(), "closure of {path}: {}", text(&output.stderr));
    let closure = text(&output.stdout);
    assert!(closure.lines().count() >= 2, "{closure}");
    for member in closure.lines() {
        assert!(fs::symlink_metadata(f.real(store, member)).is_ok(), "{member} of {path} is missing");
    }
    assert!(fs::symlink_metadata(f.real(store, path).join("manifest.nix")).is_ok());
}

#[test]
fn killed_nix_env_leaves_a_complete_generation() {
    if !available("killed_nix_env_leaves_a_complete_generation") {
        return;
    }
    let f = Fixture::new();
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-iA", "hello"]), "first install");
    // A cheap pseudo-random sequence (the test must be reproducible enough to
    // debug, yet hit different moments).
    let mut seed: u64 = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let choices: [&[&str]; 4] =
        [&["-f", "v2.nix", "-iA", "tool"], &["-f", "v2.nix", "-u"], &["-e", "tool"], &["--switch-generation", "1"]];
    for round in 0..16 {
        let args = choices[(next() % 4) as usize];
        let mut child =
            f.nivis_command("s", "p", args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(next() % 400));
        // SAFETY: kill on the pid of a child we own.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let current = f.current("p");
        assert_complete(&f, "s", &current);
        // The profile still works: reading it and changing it.
        let query = f.nivis("s", "p", &["-q"]);
        assert!(query.status.success(), "round {round} ({args:?}): {}", text(&query.stderr));
    }
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-iA", "multi"]), "install after the kills");
    assert_complete(&f, "s", &f.current("p"));
}

#[test]
fn messages_and_exit_codes_match_cppnix() {
    if !available("messages_and_exit_codes_match_cppnix") || !cppnix_available("messages_and_exit_codes_match_cppnix") {
        return;
    }
    let f = Fixture::new();
    let steps: &[&[&str]] = &[
        &["-q"],
        &["--rollback"],
        &["-f", "v1.nix", "-iA", "hello", "tool"],
        &["-f", "v1.nix", "-i", "hello"],
        &["-e", "nosuch"],
        &["-f", "v1.nix", "-u"],
        &["-f", "v2.nix", "-u", "--eq"],
        &["-f", "v2.nix", "-u", "hello"],
        &["-f", "v1.nix", "-u", "--always"],
        &["-f", "v1.nix", "-iA", "nosuch"],
        &["-f", "v2.nix", "-i", "hello-2.0"],
        &["-f", "v1.nix", "-iA", "multi", "--option", "keep-env-derivations", "true"],
        &["-q", "--drv-path", "--out-path"],
        &["-f", "v1.nix", "-u", "--leq", "hello"],
        &["-f", "v1.nix", "-i", "hel.*", "t[o]+l-0.5"],
        &["-f", "v1.nix", "-qa", "t.*l", "m.*-1.1"],
        &["-e", "/nonexistent/path"],
        &["-f", "v1.nix", "-iA", "clash"],
        &["-f", "v1.nix", "-iA", "broken"],
        &["-f", "v1.nix", "-i", "nosuch"],
        &["--dry-run", "-f", "v2.nix", "-iA", "multi"],
        &["-f", "v2.nix", "-qc"],
        &["-f", "v2.nix", "-qac"],
        &["--set-flag", "priority", "3", "nosuch"],
        &["--set-flag", "keep", "true", "tool"],
        &["-f", "v2.nix", "-u", "tool"],
        &["--set-flag"],
        &["--delete-generations", "x"],
        &["--delete-generations", "+0"],
        &["--delete-generations", "+2"],
        &["--switch-generation", "1"],
        &["-G"],
        &["-f", "v1.nix", "-q", "-P"],
        &["-qa", "--foo"],
        &["-i", "-q"],
        &[],
        &["-f", "/nonexistent", "-qa"],
        // No -f: ~/.nix-defexpr, a directory of expressions.
        &["-qaP"],
        &["-iA", "pkgs.nested.inner"],
        &["-u", "inner"],
    ];
    let defexpr = f.path("home/.nix-defexpr");
    fs::create_dir_all(defexpr.join("more")).expect("defexpr");
    fs::copy(f.path("v1.nix"), defexpr.join("pkgs.nix")).expect("defexpr");
    fs::copy(f.path("v2.nix"), defexpr.join("more/later.nix")).expect("defexpr");
    fs::write(defexpr.join("README"), "not an expression").expect("defexpr");
    for step in steps {
        let ours = f.nivis("s1", "p1", step);
        let theirs = f.cppnix("s2", "p2", step);
        let normalise = |o: &Output| {
            let own = f.bin.join("nix-env");
            messages(o)
                .into_iter()
                .map(|l| l.replace(own.to_str().expect("utf-8"), "nix-env").replace("/usr/bin/nix-env", "nix-env"))
                .filter(|l| !l.starts_with("  /nix/store/") && !l.contains("will be built:"))
                .collect::<Vec<_>>()
        };
        assert_eq!(normalise(&ours), normalise(&theirs), "messages of nix-env {step:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "exit code of nix-env {step:?}");
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "output of nix-env {step:?}");
        let exists = |p: &str| fs::symlink_metadata(f.path(p)).is_ok();
        assert_eq!(exists("p1"), exists("p2"), "profile after nix-env {step:?}");
        if exists("p1") {
            assert_eq!(f.current("p1"), f.current("p2"), "user environment after nix-env {step:?}");
        }
    }
    assert_eq!(f.manifest("s1", "p1"), f.manifest("s2", "p2"));
    let defexpr_listing = ok(&f.nivis("s1", "p1", &["-qaP"]), "-qaP");
    assert!(defexpr_listing.contains("later.hello  ") && defexpr_listing.contains("pkgs.tool  "), "{defexpr_listing}");
}

#[test]
fn xml_and_status_queries_match_cppnix() {
    if !available("xml_and_status_queries_match_cppnix") || !cppnix_available("xml_and_status_queries_match_cppnix") {
        return;
    }
    let f = Fixture::new();
    // A binary cache holding `tool`, made by CppNix, that wants mass queries.
    ok(&f.cppnix("s0", "p0", &["-f", "v1.nix", "-iA", "tool"]), "CppNix install");
    // The only package: the profile's `bin` links to its `bin`.
    let tool = fs::read_link(f.real("s0", &f.current("p0")).join("bin")).expect("bin");
    let tool = tool.parent().expect("package").to_str().expect("utf-8").to_string();
    let cache = format!("file://{}", f.path("cache").display());
    let copy = Command::new("/usr/bin/nix")
        .args(["--extra-experimental-features", "nix-command", "copy", "--store"])
        .arg(f.path("s0"))
        .args(["--to", &cache, &tool])
        .output()
        .expect("nix copy");
    ok(&copy, "nix copy");
    let info = f.path("cache/nix-cache-info");
    let mut cache_info = fs::read_to_string(&info).expect("nix-cache-info");
    cache_info.push_str("WantMassQuery: 1\n");
    fs::write(&info, cache_info).expect("nix-cache-info");

    ok(&f.nivis("s1", "p1", &["-f", "v1.nix", "-iA", "hello"]), "nivis install");
    ok(&f.cppnix("s2", "p2", &["-f", "v1.nix", "-iA", "hello"]), "CppNix install");
    let queries: &[&[&str]] = &[
        &["-f", "v1.nix", "-qas"],
        &["-f", "v1.nix", "-qa", "--xml", "--meta", "--out-path", "--drv-path", "-s", "--description"],
        &["-f", "v2.nix", "-qac", "--xml"],
        &["-q", "--xml", "--meta", "-s"],
        &["-f", "v1.nix", "-qa", "-b"],
    ];
    for query in queries {
        let mut ours = f.nivis_command("s1", "p1", query);
        ours.env("NIX_CONFIG", format!("substituters = {cache}\nrequire-sigs = false"));
        let ours = ours.output().expect("nivis");
        let mut args: Vec<&str> = vec!["--option", "substituters", &cache, "--option", "require-sigs", "false"];
        args.extend_from_slice(query);
        let theirs = f.cppnix("s2", "p2", &args);
        assert_eq!(text(&ours.stdout), text(&theirs.stdout), "nix-env {query:?}");
        assert_eq!(ours.status.code(), theirs.status.code(), "exit code of nix-env {query:?}");
    }
    let status = ok(
        &f.nivis_command("s1", "p1", queries[0])
            .env("NIX_CONFIG", format!("substituters = {cache}\nrequire-sigs = false"))
            .output()
            .expect("nivis"),
        "-qas",
    );
    assert!(status.contains("--S  tool-0.5") && status.contains("IP-  hello-1.0"), "{status}");
}

#[test]
fn concurrent_installs_all_land() {
    if !available("concurrent_installs_all_land") {
        return;
    }
    let f = Fixture::new();
    ok(&f.nivis("s", "p", &["-f", "v1.nix", "-iA", "nested.inner"]), "first install");
    // Four processes change one profile at once; the optimistic lock makes
    // each one that lost the race start over, so no change is lost.
    let children: Vec<_> = [
        &["-f", "v1.nix", "-iA", "hello"][..],
        &["-f", "v1.nix", "-iA", "tool"],
        &["-f", "v1.nix", "-iA", "multi"],
        &["-e", "inner"],
    ]
    .iter()
    .map(|args| f.nivis_command("s", "p", args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn"))
    .collect();
    for child in children {
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    assert_eq!(ok(&f.nivis("s", "p", &["-q"]), "-q"), "hello-1.0\nmulti-1.1\ntool-0.5\n");
    assert_complete(&f, "s", &f.current("p"));
}
