//! `nix profile` end to end, in temporary chroot stores with explicit
//! `--profile` paths: install, remove, upgrade, list, rollback, history,
//! diff-closures and wipe-history, with CppNix 2.8 as the reference for the
//! profile store path (and its NAR and manifest), for every message, and as
//! a peer that reads our profiles while we read its own. A kill -9 test
//! checks that a profile always names a complete, valid generation.
//!
//! CppNix's `nix profile` reads packages through their logical paths
//! (`/nix/store/...`), so it runs in a private mount namespace where the
//! chroot store is bind-mounted on `/nix/store` (root only; skipped otherwise).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Fixture {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// CppNix's output without colour codes (2.8 colours `history` and
/// `diff-closures` even into pipes; we colour only terminals).
fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Whether CppNix can run `nix profile` on a chroot store here.
fn cppnix_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    let ok = root
        && Path::new("/nix/store").is_dir()
        && Command::new("/usr/bin/nix").arg("--version").output().is_ok_and(|o| o.status.success())
        && Command::new("unshare").args(["-m", "true"]).status().is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED {test}: needs root, CppNix 2.8 and /nix/store to bind-mount over");
    }
    ok
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("nivis-nix-profile").tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).expect("bin");
        for name in ["nix-store", "nix"] {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_nivis"), bin.join(name)).expect("link");
        }
        Fixture { dir, bin }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn nivis(&self, command: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(command));
        cmd.current_dir(self.dir.path())
            .env("NIX_CONFIG", "substituters =")
            .env("TMPDIR", self.dir.path())
            .env_remove("NIX_REMOTE");
        cmd
    }

    /// `nix profile SUB --store STORE --profile PROFILE ARGS...` with nivis.
    fn profile(&self, store: &Path, profile: &Path, sub: &str, args: &[&str]) -> Output {
        let mut cmd = self.nivis("nix");
        cmd.args(["profile", sub, "--store"]).arg(store).arg("--profile").arg(profile).args(args);
        cmd.output().expect("run nivis")
    }

    /// The same with CppNix 2.8.
    fn cppnix_profile(&self, store: &Path, profile: &Path, sub: &str, args: &[&str]) -> Output {
        let mut cmd = cppnix_command(store);
        cmd.args(["nix", "--extra-experimental-features", "nix-command", "profile", sub, "--store"])
            .arg(store)
            .arg("--profile")
            .arg(profile)
            .args(["--option", "substituters", ""])
            .args(args);
        cmd.output().expect("run CppNix")
    }

    /// Makes a package directory `name` (files `rel=contents`) and adds it to
    /// `store`; returns its printed store path.
    fn package(&self, store: &Path, name: &str, files: &[(&str, &str)]) -> String {
        let dir = self.path("src").join(name);
        for (rel, contents) in files {
            let file = dir.join(rel);
            fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            fs::write(&file, contents).expect("write");
        }
        let out = self.nivis("nix-store").arg("--store").arg(store).arg("--add").arg(&dir).output().expect("add");
        assert!(out.status.success(), "nix-store --add: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }
}

/// CppNix in a mount namespace where `store`'s directory is `/nix/store`.
/// Its temporary directories go beside the store (CppNix 2.8's `nix profile`
/// leaves the symlink tree it built behind).
fn cppnix_command(store: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.env("TMPDIR", store.parent().expect("fixture directory"));
    cmd.args(["-m", "sh", "-c", r#"mount --bind "$0/nix/store" /nix/store && exec "$@""#]).arg(store);
    cmd
}

fn cppnix_store(store: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new("/usr/bin/nix-store");
    cmd.arg("--store").arg(store).args(args);
    cmd.output().expect("run CppNix nix-store")
}

fn ok(output: &Output, what: &str) -> String {
    assert!(output.status.success(), "{what} failed: {}{}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

fn current_target(store: &Path, profile: &Path) -> String {
    let link = fs::read_link(profile).expect("profile link");
    let generation = profile.parent().expect("dir").join(link);
    let target = fs::read_link(generation).expect("generation link").to_string_lossy().into_owned();
    assert!(store.join(target.trim_start_matches('/')).exists(), "{target} missing");
    target
}

fn real(store: &Path, printed: &str) -> PathBuf {
    store.join(printed.trim_start_matches('/'))
}

#[test]
fn install_remove_and_inspect_as_cppnix() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    let hello = fixture.package(&store, "hello-1.0", &[("bin/hello", "hello 1.0\n")]);
    let foo = fixture.package(&store, "foo-2.3", &[("share/foo", "foo\n")]);
    let hello2 = fixture.package(&store, "hello-1.1", &[("bin/hello", "hello 1.1\n")]);
    let big = fixture.package(&store, "big-1.0", &[("lib/a", &"x".repeat(20_000))]);
    let tool_man = fixture.package(&store, "tool-man", &[("man1/tool.1", "man\n")]);

    // Install two packages: one generation, a symlink tree and manifest.json.
    ok(&fixture.profile(&store, &profile, "install", &[&hello, &foo]), "install");
    let first = current_target(&store, &profile);
    assert!(first.ends_with("-profile"), "{first}");
    let tree = real(&store, &first);
    assert_eq!(fs::read_link(tree.join("bin")).unwrap().to_string_lossy(), format!("{hello}/bin"));
    assert_eq!(
        fs::read_to_string(tree.join("manifest.json")).unwrap(),
        format!(
            r#"{{"elements":[{{"active":true,"storePaths":["{hello}"]}},{{"active":true,"storePaths":["{foo}"]}}],"version":2}}"#
        )
    );
    let list = ok(&fixture.profile(&store, &profile, "list", &[]), "list");
    assert_eq!(list, format!("0 - - {hello}\n1 - - {foo}\n"));

    // A colliding file is an error, and the profile stays where it was.
    let collide = fixture.profile(&store, &profile, "install", &[&hello2]);
    assert_eq!(collide.status.code(), Some(1));
    assert!(text(&collide.stderr).contains("have the same priority 5"), "{}", text(&collide.stderr));
    assert_eq!(current_target(&store, &profile), first);

    // remove: by index, bad index (warnings, same generation), bad regex.
    ok(&fixture.profile(&store, &profile, "install", &[&big, &tool_man]), "install 2");
    let removed = fixture.profile(&store, &profile, "remove", &["0"]);
    assert_eq!(text(&removed.stderr), "removing 'hello'\nremoved 1 packages, kept 3 packages\n");
    let after_remove = current_target(&store, &profile);
    let nothing = fixture.profile(&store, &profile, "remove", &["17"]);
    assert!(nothing.status.success());
    assert_eq!(
        text(&nothing.stderr),
        "removed 0 packages, kept 3 packages\nwarning: '17' is not a valid index\n\
         warning: Use 'nix profile list' to see the current profile.\n"
    );
    assert_eq!(current_target(&store, &profile), after_remove);
    let bad_regex = fixture.profile(&store, &profile, "remove", &["hel(lo"]);
    assert_eq!(bad_regex.status.code(), Some(1));
    assert_eq!(text(&bad_regex.stderr), "error: Mismatched '(' and ')' in regular expression\n");
    // By store path, then by name (a regex, case-insensitive).
    let by_path = fixture.profile(&store, &profile, "remove", &[&foo]);
    assert_eq!(text(&by_path.stderr), "removing 'foo'\nremoved 1 packages, kept 2 packages\n");
    let by_regex = fixture.profile(&store, &profile, "remove", &["B.G"]);
    assert_eq!(text(&by_regex.stderr), "removing 'big'\nremoved 1 packages, kept 1 packages\n");
    // --dry-run says what would go and makes no generation.
    let generations_before = fs::read_dir(fixture.path("profiles")).unwrap().count();
    let dry = fixture.profile(&store, &profile, "remove", &["--dry-run", "0"]);
    assert_eq!(text(&dry.stderr), "removing 'tool-man'\nremoved 1 packages, kept 0 packages\n");
    assert_eq!(fs::read_dir(fixture.path("profiles")).unwrap().count(), generations_before);

    // upgrade: nothing here came from a flake, so nothing changes.
    let upgrade = fixture.profile(&store, &profile, "upgrade", &[".*"]);
    assert!(upgrade.status.success());
    assert_eq!(
        text(&upgrade.stderr),
        "warning: '.*' does not match any packages\nwarning: Use 'nix profile list' to see the current profile.\n"
    );

    let history = ok(&fixture.profile(&store, &profile, "history", &[]), "history");
    let closures = ok(&fixture.profile(&store, &profile, "diff-closures", &[]), "diff-closures");
    assert!(history.contains("Version 5 ("), "{history}");
    assert!(history.contains("  big: ∅ -> 1.0\n  tool-man: ∅ -> ε\n"), "{history}");
    // big's whole NAR is new; tool-man is `tool` with output `man`, no version.
    let size = ok(
        &fixture.nivis("nix-store").arg("--store").arg(&store).args(["-q", "--size", &big]).output().unwrap(),
        "size",
    );
    let kib = size.trim().parse::<f64>().unwrap() / 1024.0;
    assert!(
        closures.starts_with(&format!("Version 1 -> 2:\n  big: ∅ → 1.0, {kib:+.1} KiB\n  tool: ∅ → ε\n")),
        "{closures}"
    );

    if !cppnix_available("install_remove_and_inspect_as_cppnix (CppNix half)") {
        return;
    }
    // CppNix prints the same history and closure diffs, and lists what we made.
    let theirs = fixture.cppnix_profile(&store, &profile, "history", &[]);
    assert_eq!(strip_ansi(&ok(&theirs, "CppNix history")), history);
    let theirs = fixture.cppnix_profile(&store, &profile, "diff-closures", &[]);
    assert_eq!(strip_ansi(&ok(&theirs, "CppNix diff-closures")), closures);
    let theirs = fixture.cppnix_profile(&store, &profile, "list", &[]);
    assert_eq!(ok(&theirs, "CppNix list"), format!("0 - - {tool_man}\n"));
    // ... and CppNix says the same for the same bad input.
    let theirs = fixture.cppnix_profile(&store, &profile, "remove", &["hel(lo"]);
    assert_eq!(text(&theirs.stderr), text(&bad_regex.stderr));
    let theirs = fixture.cppnix_profile(&store, &profile, "remove", &["17"]);
    assert_eq!(text(&theirs.stderr), text(&nothing.stderr).replace("kept 3", "kept 1"));

    // The same element list gives CppNix the same profile path, NAR and row.
    let other = fixture.path("profiles-cppnix/p");
    fs::create_dir_all(other.parent().unwrap()).unwrap();
    ok(&fixture.cppnix_profile(&store, &other, "install", &[&hello, &foo]), "CppNix install");
    assert_eq!(current_target(&store, &other), first);
    let ours = fixture.path("profiles-again/p");
    ok(&fixture.profile(&store, &ours, "install", &[&big, &tool_man]), "install again");
    ok(&fixture.cppnix_profile(&store, &other, "remove", &["0", "1"]), "CppNix remove");
    ok(&fixture.cppnix_profile(&store, &other, "install", &[&big, &tool_man]), "CppNix install 2");
    assert_eq!(current_target(&store, &other), current_target(&store, &ours));
    let query = ok(&cppnix_store(&store, &["-q", "--references", &first]), "query");
    assert!(query.contains(&hello) && query.contains(&foo), "{query}");
    let verify = cppnix_store(&store, &["--verify-path", &first]);
    assert!(verify.status.success(), "{}", text(&verify.stderr));
}

#[test]
fn same_profile_path_as_cppnix_in_its_own_store() {
    let fixture = Fixture::new();
    if !cppnix_available("same_profile_path_as_cppnix_in_its_own_store") {
        return;
    }
    let ours = fixture.path("ours");
    let theirs = fixture.path("theirs");
    let mut paths = Vec::new();
    for store in [&ours, &theirs] {
        paths = vec![
            fixture.package(store, "a-1", &[("bin/a", "a\n"), ("share/doc/a", "doc a\n")]),
            fixture.package(store, "b-2", &[("bin/b", "b\n"), ("share/doc/b", "doc b\n"), ("nix-support/x", "x\n")]),
            fixture.package(store, "c", &[(".hidden", "h\n"), ("lib/c.so", "c\n")]),
        ];
    }
    let args: Vec<&str> = paths.iter().map(String::as_str).collect();
    ok(&fixture.profile(&ours, &fixture.path("p1/p"), "install", &args), "install");
    fs::create_dir_all(fixture.path("p2")).unwrap();
    ok(&fixture.cppnix_profile(&theirs, &fixture.path("p2/p"), "install", &args), "CppNix install");
    let ours_path = current_target(&ours, &fixture.path("p1/p"));
    assert_eq!(ours_path, current_target(&theirs, &fixture.path("p2/p")));
    for query in ["--hash", "--size"] {
        let run = |store: &Path| ok(&cppnix_store(store, &["-q", query, &ours_path]), query);
        assert_eq!(run(&ours), run(&theirs), "{query}");
    }
    let dump = |store: &Path| cppnix_store(store, &["--dump", &ours_path]).stdout;
    assert_eq!(dump(&ours), dump(&theirs));
    let refs = |store: &Path| ok(&cppnix_store(store, &["-q", "--references", &ours_path]), "references");
    assert_eq!(refs(&ours), refs(&theirs));
}

#[test]
fn cppnix_profiles_are_read_and_rolled_back() {
    let fixture = Fixture::new();
    if !cppnix_available("cppnix_profiles_are_read_and_rolled_back") {
        return;
    }
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    fs::create_dir_all(profile.parent().unwrap()).unwrap();
    let a = fixture.package(&store, "alpha-1.0", &[("bin/alpha", "a\n")]);
    let b = fixture.package(&store, "beta-0.5", &[("bin/beta", "b\n")]);
    let c = fixture.package(&store, "gamma-3", &[("bin/gamma", "c\n")]);
    ok(&fixture.cppnix_profile(&store, &profile, "install", &[&a]), "CppNix install a");
    ok(&fixture.profile(&store, &profile, "install", &[&b]), "install b");
    ok(&fixture.cppnix_profile(&store, &profile, "install", &[&c]), "CppNix install c");
    assert_eq!(
        ok(&fixture.profile(&store, &profile, "list", &[]), "list"),
        ok(&fixture.cppnix_profile(&store, &profile, "list", &[]), "CppNix list")
    );

    // Rollback: messages as CppNix's; --to; --dry-run; errors.
    let back = fixture.profile(&store, &profile, "rollback", &[]);
    assert_eq!(text(&back.stderr), "switching profile from version 3 to 2\n");
    assert_eq!(fs::read_link(&profile).unwrap(), PathBuf::from("p-2-link"));
    let dry = fixture.profile(&store, &profile, "rollback", &["--to", "3", "--dry-run"]);
    assert_eq!(text(&dry.stderr), "switching profile from version 2 to 3\n");
    assert_eq!(fs::read_link(&profile).unwrap(), PathBuf::from("p-2-link"));
    let missing = fixture.profile(&store, &profile, "rollback", &["--to", "9"]);
    let theirs = fixture.cppnix_profile(&store, &profile, "rollback", &["--to", "9"]);
    assert_eq!((missing.status.code(), text(&missing.stderr)), (theirs.status.code(), text(&theirs.stderr)));
    // CppNix follows our switch, we follow its.
    let theirs = fixture.cppnix_profile(&store, &profile, "rollback", &[]);
    assert_eq!(text(&theirs.stderr), "switching profile from version 2 to 1\n");
    let oldest = fixture.profile(&store, &profile, "rollback", &[]);
    let theirs = fixture.cppnix_profile(&store, &profile, "rollback", &[]);
    assert_eq!(oldest.status.code(), Some(1));
    assert_eq!(text(&oldest.stderr), text(&theirs.stderr));
    assert_eq!(text(&oldest.stderr), "error: no profile version older than the current (1) exists\n");

    // History of a profile both tools wrote, with the current version marked.
    assert_eq!(
        ok(&fixture.profile(&store, &profile, "history", &[]), "history"),
        strip_ansi(&ok(&fixture.cppnix_profile(&store, &profile, "history", &[]), "CppNix history"))
    );

    // wipe-history: bad specs as CppNix words them, then a dry run, then for real.
    for spec in ["0d", "3x"] {
        let ours = fixture.profile(&store, &profile, "wipe-history", &["--older-than", spec]);
        let theirs = fixture.cppnix_profile(&store, &profile, "wipe-history", &["--older-than", spec]);
        assert_eq!(ours.status.code(), Some(1));
        assert_eq!(text(&ours.stderr), text(&theirs.stderr), "--older-than {spec}");
    }
    let kept = fixture.profile(&store, &profile, "wipe-history", &["--older-than", "1d"]);
    assert_eq!(text(&kept.stderr), "");
    let dry = fixture.profile(&store, &profile, "wipe-history", &["--dry-run"]);
    assert_eq!(text(&dry.stderr), "would remove profile version 2\nwould remove profile version 3\n");
    let wiped = fixture.profile(&store, &profile, "wipe-history", &[]);
    assert_eq!(text(&wiped.stderr), "removing profile version 2\nremoving profile version 3\n");
    let names: Vec<String> = fs::read_dir(profile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-link"))
        .collect();
    assert_eq!(names, vec!["p-1-link"]);
    assert_eq!(ok(&fixture.cppnix_profile(&store, &profile, "list", &[]), "CppNix list"), format!("0 - - {a}\n"));
}

#[test]
fn nix_env_profiles_are_converted_as_cppnix_does() {
    let fixture = Fixture::new();
    if !cppnix_available("nix_env_profiles_are_converted_as_cppnix_does") {
        return;
    }
    let store = fixture.path("store");
    let a = fixture.package(&store, "alpha-1.0", &[("bin/alpha", "a\n")]);
    let b = fixture.package(&store, "beta-0.5", &[("bin/beta", "b\n")]);
    let mut results = Vec::new();
    for (name, nivis) in [("ours", true), ("theirs", false)] {
        let profile = fixture.path(name).join("env");
        fs::create_dir_all(profile.parent().unwrap()).unwrap();
        let mut cmd = cppnix_command(&store);
        cmd.args(["nix-env", "--store"]).arg(&store).arg("-p").arg(&profile).args(["-i", &a]);
        ok(&cmd.output().unwrap(), "CppNix nix-env -i");
        // Both read nix-env's manifest.nix as one element per package.
        assert_eq!(ok(&fixture.profile(&store, &profile, "list", &[]), "list"), format!("0 - - {a}\n"));
        let history = ok(&fixture.profile(&store, &profile, "history", &[]), "history");
        assert!(history.ends_with("):\n  alpha: ∅ -> 1.0\n"), "{history}");
        let installed = if nivis {
            fixture.profile(&store, &profile, "install", &[&b])
        } else {
            fixture.cppnix_profile(&store, &profile, "install", &[&b])
        };
        ok(&installed, "install into a nix-env profile");
        results.push(current_target(&store, &profile));
    }
    // The converted generation is the same store path either way.
    assert_eq!(results[0], results[1]);
    let manifest = fs::read_to_string(real(&store, &results[0]).join("manifest.json")).unwrap();
    assert!(manifest.contains(&a) && manifest.contains(&b), "{manifest}");
}

#[test]
fn bad_profiles_and_arguments_are_refused() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    let a = fixture.package(&store, "alpha-1.0", &[("bin/alpha", "a\n")]);
    ok(&fixture.profile(&store, &profile, "install", &[&a]), "install");
    // A manifest of a version CppNix does not know.
    let bad = fixture.package(&store, "weird", &[("manifest.json", r#"{"version":9,"elements":[]}"#)]);
    std::os::unix::fs::symlink(&bad, fixture.path("profiles/p-2-link")).unwrap();
    fs::remove_file(&profile).unwrap();
    std::os::unix::fs::symlink("p-2-link", &profile).unwrap();
    let listed = fixture.profile(&store, &profile, "list", &[]);
    assert_eq!(listed.status.code(), Some(1));
    assert_eq!(
        text(&listed.stderr),
        format!("error: profile manifest '{}/manifest.json' has unsupported version 9\n", profile.display())
    );
    // Unknown subcommands and flags.
    let unknown = fixture.nivis("nix").args(["profile", "frobnicate"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let flag = fixture.profile(&store, &profile, "list", &["--to", "3"]);
    assert_eq!(text(&flag.stderr), "error: unrecognised flag '--to'\nTry 'nix --help' for more information.\n");
    // A path that is not valid cannot be installed.
    let missing = fixture.profile(&store, &profile, "install", &["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]);
    assert_eq!(
        text(&missing.stderr),
        "error: path '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x' is required, but there is no substituter that can build it\n"
    );
    // Nothing to roll back to in a profile that does not exist.
    let none = fixture.profile(&store, &fixture.path("nowhere/p"), "rollback", &[]);
    assert_eq!(text(&none.stderr), "error: no profile version older than the current (0) exists\n");
}

const BUSYBOX: &str = "/usr/bin/busybox";

#[test]
fn install_from_a_file_builds_and_records_outputs() {
    let userns = Command::new("unshare").args(["-U", "-m", "-p", "-f", "true"]).status().is_ok_and(|s| s.success());
    if fs::metadata(BUSYBOX).is_err() || !userns {
        eprintln!("SKIPPED install_from_a_file_builds_and_records_outputs: needs {BUSYBOX} and user namespaces");
        return;
    }
    let fixture = Fixture::new();
    let bb = fixture.path("bb/bin");
    fs::create_dir_all(&bb).unwrap();
    fs::copy(BUSYBOX, bb.join("busybox")).unwrap();
    for applet in ["sh", "mkdir", "echo"] {
        std::os::unix::fs::symlink("busybox", bb.join(applet)).unwrap();
    }
    fs::write(
        fixture.path("default.nix"),
        format!(
            r#"{{ version ? "1.0" }}:
let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: script: extra: derivation ({{
    inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh";
    PATH = "${{bb}}/bin"; args = [ "-c" script ];
  }} // extra);
in {{
  multi = mk "multi-${{version}}" "mkdir -p $out/bin $dev/include; echo x > $out/bin/multi; echo y > $dev/include/m.h" {{ outputs = [ "out" "dev" ]; }};
  single = mk "single-3.1" "mkdir -p $out/share; echo s > $out/share/single" {{}};
}}
"#,
            dir = fixture.dir.path().display()
        ),
    )
    .unwrap();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    let file = fixture.path("default.nix");
    let file = file.to_str().unwrap();
    // --dry-run builds nothing and makes no profile.
    let dry = fixture.profile(&store, &profile, "install", &["--dry-run", "-f", file, "multi"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stderr).contains("this derivation will be built:"), "{}", text(&dry.stderr));
    assert!(fs::symlink_metadata(&profile).is_err());
    let installed = fixture.profile(&store, &profile, "install", &["-f", file, "multi", "single"]);
    ok(&installed, "install -f");
    let list = ok(&fixture.profile(&store, &profile, "list", &[]), "list");
    let lines: Vec<&str> = list.lines().collect();
    // One element per attribute path, with the output it names (`out`).
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("0 - - /nix/store/") && lines[0].ends_with("-multi-1.0"), "{list}");
    assert!(lines[1].ends_with("-single-3.1"), "{list}");
    let tree = real(&store, &current_target(&store, &profile));
    let bin = fs::read_link(tree.join("bin")).unwrap();
    assert_eq!(fs::read_to_string(real(&store, &bin.to_string_lossy()).join("multi")).unwrap(), "x\n");
    // A derivation path with ^dev installs that output.
    let drv = ok(
        &fixture
            .nivis("nix-store")
            .arg("--store")
            .arg(&store)
            .args(["-q", "--deriver", lines[0].split(' ').nth(3).unwrap()])
            .output()
            .unwrap(),
        "deriver",
    );
    let dev = format!("{}^dev", drv.trim());
    ok(&fixture.profile(&store, &profile, "install", &[&dev]), "install ^dev");
    let list = ok(&fixture.profile(&store, &profile, "list", &[]), "list");
    assert!(list.lines().nth(2).is_some_and(|l| l.ends_with("-multi-1.0-dev")), "{list}");
    // --arg reaches the expression; the new version replaces nothing by itself.
    let removed = fixture.profile(&store, &profile, "remove", &["multi"]);
    assert_eq!(text(&removed.stderr), "removing 'multi'\nremoving 'multi'\nremoved 2 packages, kept 1 packages\n");
    ok(
        &fixture.profile(&store, &profile, "install", &["-f", file, "--argstr", "version", "2.0", "multi"]),
        "install 2.0",
    );
    let history = ok(&fixture.profile(&store, &profile, "history", &[]), "history");
    assert!(history.ends_with(" <- 3:\n  multi: ∅ -> 2.0\n"), "{history}");
}

/// A small deterministic generator (no dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn killed_installs_leave_a_complete_generation() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    let packages: Vec<String> = (0..6)
        .map(|i| fixture.package(&store, &format!("pkg{i}-1.{i}"), &[(&format!("bin/pkg{i}"), &"p".repeat(1000 * i))]))
        .collect();
    // Kill anywhere within one and a half runs' time, so some runs finish.
    let started = std::time::Instant::now();
    ok(&fixture.profile(&store, &profile, "install", &[&packages[0]]), "first install");
    let window = (started.elapsed().as_micros() as u64 * 3 / 2).max(20_000);
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut random = Lcg(seed);
    let mut completed = 0;
    for round in 0..40 {
        // Alternate installing and removing so every run changes the profile.
        let mut cmd = fixture.nivis("nix");
        cmd.args(["profile"]).arg(if round % 2 == 0 { "install" } else { "remove" });
        cmd.arg("--store").arg(&store).arg("--profile").arg(&profile);
        if round % 2 == 0 {
            cmd.arg(&packages[1 + random.next(5) as usize]);
        } else {
            cmd.arg("1");
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(random.next(window)));
        let _ = child.kill();
        if child.wait().unwrap().success() {
            completed += 1;
        }
        // The profile names a generation whose path is valid and complete.
        let target = current_target(&store, &profile);
        let check =
            fixture.nivis("nix-store").arg("--store").arg(&store).args(["--verify-path", &target]).output().unwrap();
        assert!(check.status.success(), "round {round}: {target}: {}", text(&check.stderr));
        let list = fixture.profile(&store, &profile, "list", &[]);
        assert!(list.status.success(), "round {round}: {}", text(&list.stderr));
        // Every generation link, even one made just before the kill, is valid.
        let mut targets = Vec::new();
        for entry in fs::read_dir(profile.parent().unwrap()).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("p-") && name.ends_with("-link") {
                targets.push(fs::read_link(entry.path()).unwrap().to_string_lossy().into_owned());
            }
        }
        let valid = fixture
            .nivis("nix-store")
            .arg("--store")
            .arg(&store)
            .arg("--check-validity")
            .args(&targets)
            .output()
            .unwrap();
        assert!(valid.status.success(), "round {round}: {}", text(&valid.stderr));
    }
    eprintln!("{completed} of 40 runs finished before the kill (window {window} µs)");
}

#[test]
fn concurrent_installs_keep_every_element_and_selectors_work() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    let packages: Vec<String> = (0..4)
        .map(|i| fixture.package(&store, &format!("conc{i}-1.{i}"), &[(&format!("bin/conc{i}"), "c\n")]))
        .collect();
    // Four installs at once: each reads, extends and switches the profile
    // under its lock, so none loses another's element.
    let children: Vec<_> = packages
        .iter()
        .map(|package| {
            let mut cmd = fixture.nivis("nix");
            cmd.args(["profile", "install", "--store"]).arg(&store).arg("--profile").arg(&profile).arg(package);
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let list = ok(&fixture.profile(&store, &profile, "list", &[]), "list");
    for package in &packages {
        assert!(list.contains(package.as_str()), "{package} lost: {list}");
    }
    assert_eq!(list.lines().count(), 4, "{list}");
    // --regex (case-insensitive, whole name) and --all, as current CppNix.
    let regex = fixture.profile(&store, &profile, "remove", &["--regex", "CONC[01]"]);
    assert!(regex.status.success(), "{}", text(&regex.stderr));
    assert!(text(&regex.stderr).ends_with("removed 2 packages, kept 2 packages\n"), "{}", text(&regex.stderr));
    let none = fixture.profile(&store, &profile, "remove", &["--regex", "conc"]);
    assert!(text(&none.stderr).starts_with("removed 0 packages, kept 2 packages\nwarning: 'conc' does not match"));
    let all = fixture.profile(&store, &profile, "remove", &["--all"]);
    assert!(text(&all.stderr).ends_with("removed 2 packages, kept 0 packages\n"), "{}", text(&all.stderr));
    assert_eq!(ok(&fixture.profile(&store, &profile, "list", &[]), "list"), "");
}

#[test]
fn wipe_history_older_than_keeps_the_version_current_then() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let profile = fixture.path("profiles/p");
    for i in 0..4 {
        let package = fixture.package(&store, &format!("w{i}-1"), &[(&format!("bin/w{i}"), "w\n")]);
        ok(&fixture.profile(&store, &profile, "install", &[&package]), "install");
    }
    // Versions 1 and 2 were made 40 days ago, 3 20 days ago; 4 is current.
    for (number, age) in [(1, "40 days ago"), (2, "40 days ago"), (3, "20 days ago")] {
        let link = fixture.path(&format!("profiles/p-{number}-link"));
        let touched = Command::new("touch").args(["-h", "-d", age]).arg(&link).status().unwrap();
        assert!(touched.success());
    }
    let dry = fixture.profile(&store, &profile, "wipe-history", &["--older-than", "30d", "--dry-run"]);
    // Version 2 was current 30 days ago, so only 1 goes.
    assert_eq!(text(&dry.stderr), "would remove profile version 1\n");
    let week = fixture.profile(&store, &profile, "wipe-history", &["--older-than", "7d", "--dry-run"]);
    assert_eq!(text(&week.stderr), "would remove profile version 2\nwould remove profile version 1\n");
    if cppnix_available("wipe_history_older_than_keeps_the_version_current_then (CppNix half)") {
        for spec in ["30d", "7d"] {
            let theirs = fixture.cppnix_profile(&store, &profile, "wipe-history", &["--older-than", spec, "--dry-run"]);
            let ours = fixture.profile(&store, &profile, "wipe-history", &["--older-than", spec, "--dry-run"]);
            assert_eq!(text(&ours.stderr), text(&theirs.stderr), "--older-than {spec}");
        }
    }
    let wiped = fixture.profile(&store, &profile, "wipe-history", &["--older-than", "30d"]);
    assert_eq!(text(&wiped.stderr), "removing profile version 1\n");
    assert!(fs::symlink_metadata(fixture.path("profiles/p-1-link")).is_err());
    assert!(fs::symlink_metadata(fixture.path("profiles/p-2-link")).is_ok());
}

/// Makes `profile` (generation 1) point to a store path holding `file` with
/// `contents`, as if another tool had written that generation.
fn fake_generation(fixture: &Fixture, store: &Path, profile: &Path, name: &str, file: &str, contents: &str) -> String {
    let path = fixture.package(store, name, &[(file, contents)]);
    fs::create_dir_all(profile.parent().unwrap()).unwrap();
    let link = PathBuf::from(format!("{}-1-link", profile.display()));
    std::os::unix::fs::symlink(&path, &link).unwrap();
    std::os::unix::fs::symlink(link.file_name().unwrap(), profile).unwrap();
    path
}

#[test]
fn flake_elements_and_nix_env_manifests_are_read() {
    let fixture = Fixture::new();
    let store = fixture.path("store");
    let alpha = fixture.package(&store, "alpha-1.0", &[("bin/alpha", "a\n")]);
    let beta = fixture.package(&store, "beta-0.5", &[("bin/beta", "b\n")]);

    // A version 1 manifest (CppNix before 2.7) with a flake element.
    let attr = "legacyPackages.x86_64-linux.hello";
    let locked = "github:NixOS/nixpkgs/0123456789abcdef0123456789abcdef01234567";
    let manifest = format!(
        r#"{{"version":1,"elements":[{{"active":true,"attrPath":"{attr}","originalUri":"flake:nixpkgs","uri":"{locked}","storePaths":["{alpha}"]}},{{"active":true,"storePaths":["{beta}"]}}]}}"#
    );
    let profile = fixture.path("flake/p");
    fake_generation(&fixture, &store, &profile, "old-profile", "manifest.json", &manifest);
    let list = ok(&fixture.profile(&store, &profile, "list", &[]), "list");
    assert_eq!(list, format!("0 flake:nixpkgs#{attr} {locked}#{attr} {alpha}\n1 - - {beta}\n"));
    // Upgrading a flake element needs flakes; a plain one is never upgraded.
    let upgrade = fixture.profile(&store, &profile, "upgrade", &["0"]);
    assert_eq!(upgrade.status.code(), Some(1));
    assert!(text(&upgrade.stderr).contains("is not implemented yet in nivis"), "{}", text(&upgrade.stderr));
    let plain = fixture.profile(&store, &profile, "upgrade", &["1"]);
    assert_eq!(
        text(&plain.stderr),
        "warning: '1' is not a valid index\nwarning: Use 'nix profile list' to see the current profile.\n"
    );
    // A regex matches a flake element's attribute path, whole and ignoring case.
    let kept = fixture.profile(&store, &profile, "remove", &["hello"]);
    assert!(text(&kept.stderr).starts_with("removed 0 packages"), "{}", text(&kept.stderr));
    let removed = fixture.profile(&store, &profile, "remove", &["LEGACYPACKAGES\\..*"]);
    assert_eq!(
        text(&removed.stderr),
        format!("removing 'flake:nixpkgs#{attr}'\nremoved 1 packages, kept 1 packages\n")
    );
    // Rolled back and rewritten: the flake element is kept in version 2's words.
    ok(&fixture.profile(&store, &profile, "rollback", &[]), "rollback");
    ok(&fixture.profile(&store, &profile, "remove", &["1"]), "remove 1");
    let written = fs::read_to_string(real(&store, &current_target(&store, &profile)).join("manifest.json")).unwrap();
    assert_eq!(
        written,
        format!(
            r#"{{"elements":[{{"active":true,"attrPath":"{attr}","originalUrl":"flake:nixpkgs","storePaths":["{alpha}"],"url":"{locked}"}}],"version":2}}"#
        )
    );
    if cppnix_available("flake_elements_and_nix_env_manifests_are_read (CppNix half)") {
        let theirs = fixture.cppnix_profile(&store, &profile, "list", &[]);
        assert_eq!(ok(&theirs, "CppNix list"), format!("0 flake:nixpkgs#{attr} {locked}#{attr} {alpha}\n"));
    }

    // A nix-env user environment: manifest.nix, one element per derivation.
    let env_manifest = format!(
        r#"[ {{ meta = {{ }}; name = "alpha-1.0"; out = {{ outPath = "{alpha}"; }}; outPath = "{alpha}"; outputs = [ "out" ]; system = "x86_64-linux"; type = "derivation"; }} {{ name = "beta-0.5"; outPath = "{beta}"; type = "derivation"; }} ]"#
    );
    let env = fixture.path("env/p");
    fake_generation(&fixture, &store, &env, "user-environment", "manifest.nix", &env_manifest);
    let list = ok(&fixture.profile(&store, &env, "list", &[]), "list");
    assert_eq!(list, format!("0 - - {alpha}\n1 - - {beta}\n"));
    ok(&fixture.profile(&store, &env, "remove", &["0"]), "remove from a nix-env profile");
    assert_eq!(ok(&fixture.profile(&store, &env, "list", &[]), "list"), format!("0 - - {beta}\n"));
    let converted = real(&store, &current_target(&store, &env));
    assert!(converted.join("manifest.json").exists() && !converted.join("manifest.nix").exists());
}
