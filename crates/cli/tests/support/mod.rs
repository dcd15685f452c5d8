//! What the build tests share: whether sandboxed builds can run on this
//! machine, and whether CppNix can be a peer for chroot stores. Each test file
//! that builds includes this module with `mod support;`.

#![allow(dead_code)] // each test file uses its own part

use std::process::Command;

/// The static busybox the build tests give their builders as `/bin/sh`.
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// Whether sandboxed builds can run here: busybox-static and user namespaces.
/// Says why not, naming the test, when they cannot.
pub fn sandbox_available(test: &str) -> bool {
    let busybox_ok = std::fs::metadata(BUSYBOX).is_ok();
    let userns = Command::new("unshare").args(["-U", "-m", "-p", "-f", "true"]).status().is_ok_and(|s| s.success());
    if !busybox_ok || !userns {
        eprintln!("SKIPPED {test}: needs {BUSYBOX} (busybox-static) and user namespaces");
        return false;
    }
    true
}

/// CppNix 2.8 as a peer for chroot stores: installed, and run as root (it
/// needs root for `--store DIR`).
pub fn cppnix_available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { geteuid() } == 0;
    root && Command::new("/usr/bin/nix-build").arg("--version").output().is_ok_and(|o| o.status.success())
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

/// `name` (a CppNix command name such as `nix` or `nix-store`) as nivis
/// (`ours`) or as CppNix 2.8 from /usr/bin, run in `dir` with a clean
/// configuration: `dir` as the configuration directory, no user files, no
/// `NIX_CONFIG`/`NIX_PATH`, and a cache directory of its own per tool.
pub fn clean_tool(ours: bool, name: &str, dir: &std::path::Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = if ours {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nivis"));
        c.arg0(name);
        c
    } else {
        Command::new(format!("/usr/bin/{name}"))
    };
    command
        .current_dir(dir)
        .env("NIX_CONF_DIR", dir)
        .env("NIX_USER_CONF_FILES", "")
        .env("XDG_CACHE_HOME", dir.join(if ours { "cache-nivis" } else { "cache-cppnix" }))
        .env_remove("NIX_CONFIG")
        .env_remove("NIX_PATH");
    command
}
