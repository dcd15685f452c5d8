//! The one nivis binary. Called through a link named after a CppNix command
//! (`nix-store`, `nix-build`, ...) it behaves as that command; called as `nivis`
//! or `nix` it is the new-style CLI.
//!
//! This is the only crate that knows about terminals and `anyhow`: libraries return
//! typed errors, and `main` renders them.

mod eval_io;
mod legacy;
mod nix;
mod not_implemented;
mod progress;
mod realise;
mod store_args;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

pub use not_implemented::NotImplemented;

/// The evaluator allocates many small, short-lived objects (thunks, environments,
/// closures); mimalloc serves those faster than glibc's malloc, whose arena grows
/// by mprotect calls (10% of a list-heavy evaluation). Built without transparent
/// huge pages: with them the kernel zeroed 2 MiB pages at first touch, and system
/// time doubled.
#[global_allocator]
static GLOBAL: Allocator = Allocator;

/// mimalloc, asked for plain `mi_malloc` whenever the alignment is one every block
/// has anyway. `mimalloc::MiMalloc` always calls `mi_malloc_aligned`, which (in
/// mimalloc 3) falls back to over-allocating a larger block whenever the size is
/// not a power of two and the current page has no free block: for the evaluator's
/// 40- to 80-byte thunks and environments that cost time and up to 2x the memory.
struct Allocator;

// mimalloc's own entry points, from the `libmimalloc-sys` library the `mimalloc`
// crate links in.
unsafe extern "C" {
    fn mi_malloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_zalloc(size: usize) -> *mut std::ffi::c_void;
    fn mi_realloc(ptr: *mut std::ffi::c_void, new_size: usize) -> *mut std::ffi::c_void;
}

/// Every mimalloc block is aligned to at least a machine word.
const MALLOC_ALIGN: usize = std::mem::size_of::<usize>();

unsafe impl std::alloc::GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            unsafe { mi_malloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mimalloc::MiMalloc.alloc(layout) }
        }
    }
    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            unsafe { mi_zalloc(layout.size()) as *mut u8 }
        } else {
            unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
        }
    }
    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }
    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            unsafe { mi_realloc(ptr as *mut std::ffi::c_void, new_size) as *mut u8 }
        } else {
            unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
        }
    }
}

/// What a command returns: the process exit status, or an error to render.
pub type CommandResult = anyhow::Result<ExitCode>;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "nivis".to_string());
    let rest = if args.is_empty() { Vec::new() } else { args.split_off(1) };
    let result = dispatch(&argv0, rest);
    match result {
        Ok(code) => code,
        Err(error) => {
            // The reader went away (`| head`): nothing to tell it, as CppNix.
            let broken_pipe = error
                .chain()
                .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe));
            if !broken_pipe {
                eprintln!("error: {error:#}");
            }
            ExitCode::from(1)
        }
    }
}

/// Chooses the command from the name the binary was called by.
fn dispatch(argv0: &str, args: Vec<OsString>) -> CommandResult {
    match argv0 {
        "nix-store" => legacy::nix_store::run(args),
        "nix-hash" => legacy::nix_hash::run(args),
        "nix-instantiate" => legacy::nix_instantiate::run(args),
        "nix-build" => legacy::nix_build::run(args),
        "nix-env" => legacy::nix_env::run(args),
        "nix-shell" => legacy::nix_shell::run(args),
        "nix-collect-garbage" => legacy::nix_collect_garbage::run(args),
        "nix-daemon" => legacy::nix_daemon::run(args),
        "nix-copy-closure" => legacy::nix_copy_closure::run(args),
        "nix-prefetch-url" => legacy::nix_prefetch_url::run(args),
        // `nix`, `nivis` and anything else: the new-style CLI.
        _ => nix::run(args),
    }
}
