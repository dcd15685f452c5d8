//! `build-users-group` as root: builds run as free members of the group, each
//! holding the lock `<state dir>/userpool/<uid>` (CppNix's file) for the
//! build's duration. Real sandboxed builds in a temporary chroot store; the
//! builder reads `/proc/self/uid_map` to see which host uid it runs as. Needs
//! root (it creates a group and two system users), else SKIPPED.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod support;
use support::{BUSYBOX, sandbox_available};

const GROUP: &str = "nivisbld-test";
const MEMBERS: [&str; 2] = ["nivisbld-test1", "nivisbld-test2"];
const EMPTY_GROUP: &str = "nivisbld-empty";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Creates the groups and users (idempotently); `None` when it cannot.
fn create_users() -> Option<(Vec<u32>, u32)> {
    for group in [GROUP, EMPTY_GROUP] {
        let status = Command::new("groupadd").args(["-f", group]).status().ok()?;
        if !status.success() {
            return None;
        }
    }
    let mut uids = Vec::new();
    for user in MEMBERS {
        // Exit code 9: the user exists already (from an earlier run).
        let status = Command::new("useradd").args(["--system", "--no-create-home", "-G", GROUP, user]).status().ok()?;
        if !status.success() && status.code() != Some(9) {
            return None;
        }
        let id = Command::new("id").args(["-u", user]).output().ok()?;
        uids.push(text(&id.stdout).trim().parse().ok()?);
    }
    let group = Command::new("getent").args(["group", GROUP]).output().ok()?;
    let gid = text(&group.stdout).split(':').nth(2)?.parse().ok()?;
    Some((uids, gid))
}

/// The host id a `/proc/self/{uid,gid}_map` line maps the sandbox's id to.
fn mapped_host_id(map: &str) -> u32 {
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{map:?}");
    fields[1].parse().expect("host id")
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::Builder::new().prefix("nivis-build-users").tempdir().expect("temp dir");
        let bb = dir.path().join("bb/bin");
        fs::create_dir_all(&bb).expect("bb");
        fs::copy(BUSYBOX, bb.join("busybox")).expect("busybox");
        for applet in ["sh", "mkdir", "cat", "sleep", "id"] {
            std::os::unix::fs::symlink("busybox", bb.join(applet)).expect("applet");
        }
        // Each derivation records the ids it sees and the host ids they map to.
        let expr = format!(
            r#"let
  bb = builtins.path {{ path = {dir}/bb; name = "busybox"; }};
  mk = name: derivation {{
    inherit name; system = "x86_64-linux"; builder = "${{bb}}/bin/sh";
    PATH = "${{bb}}/bin";
    args = [ "-c" "sleep 2; mkdir $out; id -u > $out/uid; id -g > $out/gid; cat /proc/self/uid_map > $out/uid_map; cat /proc/self/gid_map > $out/gid_map" ];
  }};
in {{ a = mk "users-a"; b = mk "users-b"; c = mk "users-c"; d = mk "users-d"; e = mk "users-e"; }}
"#,
            dir = dir.path().display()
        );
        fs::write(dir.path().join("default.nix"), expr).expect("expr");
        Fixture { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn build(&self, group: &str, attrs: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nivis"));
        cmd.arg0("nix-build");
        cmd.current_dir(self.dir.path()).env("NIX_CONFIG", "substituters =").env_remove("NIX_REMOTE");
        cmd.arg("--store").arg(self.store()).args(["--no-out-link", "-j2", "--option", "build-users-group", group]);
        for attr in attrs {
            cmd.args(["-A", attr]);
        }
        cmd.arg(self.dir.path().join("default.nix"));
        cmd.output().expect("run nix-build")
    }

    fn real(&self, printed: &str) -> PathBuf {
        self.store().join(printed.trim_start_matches('/'))
    }

    fn userpool(&self) -> PathBuf {
        self.store().join("nix/var/nix/userpool")
    }
}

use std::os::unix::process::CommandExt;

/// Takes the lock of `uid` as CppNix (or another nivis) would.
fn hold_lock(pool: &Path, uid: u32) -> File {
    fs::create_dir_all(pool).expect("userpool");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(pool.join(uid.to_string()))
        .expect("lock file");
    // SAFETY: the descriptor is open.
    assert_eq!(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0, "lock {uid}");
    file
}

#[test]
fn builds_run_as_free_members_of_the_build_users_group() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED builds_run_as_free_members_of_the_build_users_group: needs root");
        return;
    }
    if !sandbox_available("builds_run_as_free_members_of_the_build_users_group") {
        return;
    }
    let Some((uids, gid)) = create_users() else {
        eprintln!(
            "SKIPPED builds_run_as_free_members_of_the_build_users_group: cannot create users (groupadd/useradd)"
        );
        return;
    };
    let fixture = Fixture::new();

    // Two builds at once take the two members, one each.
    let built = fixture.build(GROUP, &["a", "b"]);
    assert!(built.status.success(), "nix-build: {}", text(&built.stderr));
    let outputs: Vec<String> = text(&built.stdout).lines().map(str::to_string).collect();
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let mut host_uids = Vec::new();
    for out in &outputs {
        let real = fixture.real(out);
        // Inside the sandbox the builder is still nixbld (1000:100).
        assert_eq!(fs::read_to_string(real.join("uid")).expect("uid").trim(), "1000");
        assert_eq!(fs::read_to_string(real.join("gid")).expect("gid").trim(), "100");
        host_uids.push(mapped_host_id(&fs::read_to_string(real.join("uid_map")).expect("uid_map")));
        assert_eq!(mapped_host_id(&fs::read_to_string(real.join("gid_map")).expect("gid_map")), gid);
        // Registered outputs belong to root again.
        for file in [real.clone(), real.join("uid_map")] {
            let meta = fs::symlink_metadata(&file).expect("output");
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", file.display());
        }
    }
    host_uids.sort();
    let mut expected = uids.clone();
    expected.sort();
    assert_eq!(host_uids, expected, "the two concurrent builds must run as different members");
    // The lock files are CppNix's: one per uid, free again after the build.
    for uid in &uids {
        let lock = fixture.userpool().join(uid.to_string());
        assert!(lock.exists(), "{}", lock.display());
        drop(hold_lock(&fixture.userpool(), *uid));
    }

    // A member locked by someone else (CppNix on a shared store) is skipped.
    // A process left running as that member (an earlier unsandboxed
    // builder, say) is killed before the build, as CppNix does.
    let mut lingering = Command::new("setpriv")
        .args([&format!("--reuid={}", uids[1]), &format!("--regid={gid}"), "--clear-groups", "sleep", "300"])
        .spawn()
        .expect("setpriv");
    let held = hold_lock(&fixture.userpool(), uids[0]);
    let built = fixture.build(GROUP, &["c"]);
    assert!(built.status.success(), "nix-build: {}", text(&built.stderr));
    let mut killed = None;
    for _ in 0..50 {
        killed = lingering.try_wait().expect("wait");
        if killed.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if killed.is_none() {
        let _ = lingering.kill();
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.and_then(|s| s.signal()), Some(libc::SIGKILL), "the member's process must be killed");
    let out = text(&built.stdout).trim().to_string();
    assert_eq!(mapped_host_id(&fs::read_to_string(fixture.real(&out).join("uid_map")).expect("uid_map")), uids[1]);

    // With every member taken the build waits for one to be freed.
    let held_too = hold_lock(&fixture.userpool(), uids[1]);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        drop(held_too);
    });
    let built = fixture.build(GROUP, &["d"]);
    releaser.join().expect("releaser");
    drop(held);
    assert!(built.status.success(), "nix-build: {}", text(&built.stderr));
    assert!(text(&built.stderr).contains("waiting for UID to build '"), "{}", text(&built.stderr));
    let out = text(&built.stdout).trim().to_string();
    assert_eq!(mapped_host_id(&fs::read_to_string(fixture.real(&out).join("uid_map")).expect("uid_map")), uids[1]);

    // A group without members is CppNix's error.
    let failed = fixture.build(EMPTY_GROUP, &["e"]);
    assert!(!failed.status.success());
    assert!(
        text(&failed.stderr).contains(&format!("the build users group '{EMPTY_GROUP}' has no members")),
        "{}",
        text(&failed.stderr)
    );
    // The setting empty: today's default build user for root.
    let built = fixture.build("", &["e"]);
    assert!(built.status.success(), "nix-build: {}", text(&built.stderr));
    let out = text(&built.stdout).trim().to_string();
    assert_eq!(
        mapped_host_id(&fs::read_to_string(fixture.real(&out).join("uid_map")).expect("uid_map")),
        nivis_build::AUTO_BUILD_ID
    );
}
