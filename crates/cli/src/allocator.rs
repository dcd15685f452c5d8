//! The process's global allocator: mimalloc, which serves the evaluator's many
//! small, short-lived objects faster than glibc's malloc. Left out when the
//! binary is built with `--features system-allocator`, so that heap profilers
//! (valgrind's dhat and massif, an LD_PRELOAD counter) that watch `malloc` see
//! every allocation.

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
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// mimalloc's `mi_option_purge_delay` (its `mi_option_t` index in mimalloc 3).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// Freed memory is never handed back to the kernel (`purge_delay` -1): by
/// default mimalloc purges (`madvise`s) everything the process committed
/// when it exits, 4-6% of a short evaluation's time spent on memory that is
/// about to go anyway (`toJSON` of 60000 sets: 76 MiB in 27 calls), and a
/// purged page freed during a long evaluation is only faulted in again when
/// reused. The peak resident size, what a large evaluation needs, is the
/// same. Set before `main` runs, so the first allocations already see it.
#[used]
#[unsafe(link_section = ".init_array")]
static SET_MIMALLOC_OPTIONS: extern "C" fn() = {
    extern "C" fn set_options() {
        // SAFETY: sets one of mimalloc's integer options, valid at any time.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
    set_options
};

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
