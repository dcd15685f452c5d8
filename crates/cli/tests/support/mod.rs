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
