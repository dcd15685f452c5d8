//! [`Rc`]: the reference count that owns the evaluator's shared objects
//! (thunks, environments, sets, lists, strings, closures).
//!
//! `std::rc::Rc` keeps two 8-byte counts (strong and weak) before the value;
//! nothing here needs a weak reference, so this one keeps a single 4-byte count,
//! and keeps it *first*, at the same offset for every type. That makes a
//! [`crate::Value`]'s copy and drop the same few instructions whatever object it
//! points to (the compiler merges the variants' identical arms), small enough to
//! inline where values are copied and dropped by the million; the freeing path
//! stays out of line.
//!
//! Assumes one thread (the type is neither `Send` nor `Sync`, as `NonNull` makes
//! it) and sized values (unsized shared data such as context elements stays in
//! `std::rc::Rc`).
//!
//! Small blocks (up to [`POOLED_MAX`] bytes: thunks, environments, closures,
//! lists) are recycled through per-thread free lists, one per size: every call
//! allocates an environment and most free it on return, and taking a block
//! from a list and giving it back is a few instructions where the general
//! allocator's round trip costs ~80. The lists only ever hold blocks their
//! thread freed; they return them to the allocator when the thread ends.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The heap block: the count, then the value.
#[repr(C)]
struct RcBox<T> {
    count: Cell<u32>,
    value: T,
}

/// What a type kept in an [`Rc`] may store after itself, in the same block: an
/// environment keeps its slots there (one allocation, the slots at a fixed
/// offset). Every other type keeps nothing there; the defaults say so, and
/// compile away.
pub trait Block {
    /// Whether blocks of this type may have a tail (decides, at compile time,
    /// which way `free` gives the block back).
    const HAS_TAIL: bool = false;
    /// Bytes after the value (a multiple of the word size).
    #[inline(always)]
    fn tail_bytes(&self) -> usize {
        0
    }
    /// Drops what lives in the tail, just before the value itself drops.
    ///
    /// # Safety
    /// `tail` is [`Rc::tail`] of the block being freed, and this is called once.
    #[inline(always)]
    unsafe fn drop_tail(&mut self, tail: *mut u8) {
        let _ = tail;
    }
}

/// A shared, immutable (except through `Cell`s and `UnsafeCell`s inside) value
/// freed when its last reference drops.
pub struct Rc<T: Block> {
    ptr: NonNull<RcBox<T>>,
    /// Owns an `RcBox<T>` for the drop checker.
    _owns: PhantomData<RcBox<T>>,
}

const _: () = assert!(std::mem::size_of::<Rc<crate::value::Thunk>>() == std::mem::size_of::<*const u8>());

/// The largest block the free lists recycle.
const POOLED_MAX: usize = 64;
const WORD: usize = std::mem::size_of::<usize>();

/// The most blocks one free list keeps; beyond, freed blocks go back to the
/// allocator. The lists serve the churn of calls (an environment freed as the
/// next is made); a mass release (a large value dying) would otherwise park
/// memory that no other size can reuse, and cost a walk over every block when
/// the thread ends.
const POOL_CAP: u32 = 4096;

/// Per-thread free lists of blocks, one for each size in words up to
/// [`POOLED_MAX`]; each free block holds the next one's address in its first
/// word. The second array counts each list's blocks.
struct Pools([Cell<*mut u8>; POOLED_MAX / WORD + 1], [Cell<u32>; POOLED_MAX / WORD + 1]);

impl Drop for Pools {
    fn drop(&mut self) {
        for (words, head) in self.0.iter().enumerate() {
            let mut p = head.replace(std::ptr::null_mut());
            while !p.is_null() {
                // SAFETY: every block on list `words` came from the global
                // allocator with this layout, and is owned by the list.
                unsafe {
                    let next = *(p as *const *mut u8);
                    std::alloc::dealloc(p, std::alloc::Layout::from_size_align_unchecked(words * WORD, WORD));
                    p = next;
                }
            }
        }
    }
}

thread_local! {
    static POOLS: Pools = const {
        Pools([const { Cell::new(std::ptr::null_mut()) }; POOLED_MAX / WORD + 1], [const { Cell::new(0) }; POOLED_MAX / WORD + 1])
    };
}

/// Whether blocks of `RcBox<T>` go through the free lists (decided at compile time).
#[inline(always)]
const fn pooled<T>() -> bool {
    let layout = std::alloc::Layout::new::<RcBox<T>>();
    layout.size() <= POOLED_MAX && layout.size() >= WORD && layout.size() % WORD == 0 && layout.align() <= WORD
}

/// A block for an `RcBox<T>`: a recycled one if its free list has one.
#[inline(always)]
fn alloc_block<T>() -> *mut RcBox<T> {
    let layout = std::alloc::Layout::new::<RcBox<T>>();
    if pooled::<T>() {
        let recycled = POOLS
            .try_with(|pools| {
                let head = &pools.0[layout.size() / WORD];
                let p = head.get();
                if !p.is_null() {
                    // SAFETY: a block on the list holds the next one's address.
                    head.set(unsafe { *(p as *const *mut u8) });
                    let count = &pools.1[layout.size() / WORD];
                    count.set(count.get() - 1);
                }
                p
            })
            .unwrap_or(std::ptr::null_mut());
        if !recycled.is_null() {
            return recycled as *mut RcBox<T>;
        }
    }
    // SAFETY: `RcBox<T>` has a non-zero size (it holds the count).
    let p = unsafe { std::alloc::alloc(layout) } as *mut RcBox<T>;
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Gives back a block whose value has been dropped.
///
/// # Safety
/// `p` came from [`alloc_block::<T>`] and is not used again.
#[inline(always)]
unsafe fn dealloc_block<T>(p: *mut RcBox<T>) {
    let layout = std::alloc::Layout::new::<RcBox<T>>();
    if pooled::<T>() {
        let kept = POOLS.try_with(|pools| {
            let count = &pools.1[layout.size() / WORD];
            if count.get() >= POOL_CAP {
                return false;
            }
            count.set(count.get() + 1);
            let head = &pools.0[layout.size() / WORD];
            // SAFETY: the block is at least a word long and word-aligned, and
            // now belongs to the list.
            unsafe { *(p as *mut *mut u8) = head.get() };
            head.set(p as *mut u8);
            true
        });
        if kept == Ok(true) {
            return;
        }
    }
    // SAFETY: allocated by the global allocator with this layout.
    unsafe { std::alloc::dealloc(p as *mut u8, layout) }
}

/// A word-aligned block of `size` bytes (a multiple of the word size) for an
/// object whose size is known only at run time (a string with its bytes
/// inline), recycled through the same free lists as `Rc` blocks.
#[inline]
pub(crate) fn alloc_raw(size: usize) -> *mut u8 {
    debug_assert!(size >= WORD && size % WORD == 0);
    if size <= POOLED_MAX {
        let recycled = POOLS
            .try_with(|pools| {
                let head = &pools.0[size / WORD];
                let p = head.get();
                if !p.is_null() {
                    // SAFETY: a block on the list holds the next one's address.
                    head.set(unsafe { *(p as *const *mut u8) });
                    let count = &pools.1[size / WORD];
                    count.set(count.get() - 1);
                }
                p
            })
            .unwrap_or(std::ptr::null_mut());
        if !recycled.is_null() {
            return recycled;
        }
    }
    let Ok(layout) = std::alloc::Layout::from_size_align(size, WORD) else { count_overflow() };
    // SAFETY: the size is at least one word.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    p
}

/// Gives back a block from [`alloc_raw`].
///
/// # Safety
/// `p` came from `alloc_raw(size)` with this `size`, and is not used again.
#[inline]
pub(crate) unsafe fn dealloc_raw(p: *mut u8, size: usize) {
    if size <= POOLED_MAX {
        let kept = POOLS.try_with(|pools| {
            let count = &pools.1[size / WORD];
            if count.get() >= POOL_CAP {
                return false;
            }
            count.set(count.get() + 1);
            let head = &pools.0[size / WORD];
            // SAFETY: the block is at least a word long and word-aligned, and
            // now belongs to the list.
            unsafe { *(p as *mut *mut u8) = head.get() };
            head.set(p);
            true
        });
        if kept == Ok(true) {
            return;
        }
    }
    // SAFETY: allocated by the global allocator with this layout.
    unsafe { std::alloc::dealloc(p, std::alloc::Layout::from_size_align_unchecked(size, WORD)) }
}

impl<T: Block> Rc<T> {
    #[inline]
    pub fn new(value: T) -> Rc<T> {
        // A type with a tail is freed by the size of its tail: it must come
        // from `new_with_tail`.
        const { assert!(!T::HAS_TAIL) };
        let p = alloc_block::<T>();
        // SAFETY: `p` is a fresh block for an `RcBox<T>`.
        unsafe { p.write(RcBox { count: Cell::new(1), value }) };
        // SAFETY: `alloc_block` never returns null.
        Rc { ptr: unsafe { NonNull::new_unchecked(p) }, _owns: PhantomData }
    }

    /// `new`, in a block with `value.tail_bytes()` more bytes after the value,
    /// left uninitialised for the caller to fill through [`Rc::tail`].
    #[inline(always)]
    pub(crate) fn new_with_tail(value: T) -> Rc<T> {
        const { assert!(T::HAS_TAIL && std::mem::align_of::<RcBox<T>>() <= WORD && std::mem::size_of::<RcBox<T>>() % WORD == 0) };
        let size = std::mem::size_of::<RcBox<T>>() + value.tail_bytes();
        let p = alloc_raw(size) as *mut RcBox<T>;
        // SAFETY: `p` is a fresh, word-aligned block of at least an `RcBox<T>`.
        unsafe { p.write(RcBox { count: Cell::new(1), value }) };
        // SAFETY: `alloc_raw` never returns null.
        Rc { ptr: unsafe { NonNull::new_unchecked(p) }, _owns: PhantomData }
    }

    /// The address just past the value in its block, where its tail lives
    /// (with the block's provenance, so the tail may be read and written
    /// through it while the block lives).
    #[inline(always)]
    pub(crate) fn tail(this: &Rc<T>) -> *mut u8 {
        // SAFETY: one past the `RcBox`, within (or at the end of) the block.
        unsafe { (this.ptr.as_ptr() as *mut u8).add(std::mem::size_of::<RcBox<T>>()) }
    }

    #[inline(always)]
    fn block(&self) -> &RcBox<T> {
        // SAFETY: the block lives as long as any reference to it, this one included.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether both point to the same object.
    #[inline]
    pub fn ptr_eq(a: &Rc<T>, b: &Rc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The address of the value (an identity for cycle detection and caches).
    #[inline]
    pub fn as_ptr(this: &Rc<T>) -> *const T {
        &this.block().value
    }

    /// How many references share the value.
    #[inline]
    pub fn strong_count(this: &Rc<T>) -> usize {
        this.block().count.get() as usize
    }

    /// The value, mutably, if this is its only reference.
    #[inline]
    pub fn get_mut(this: &mut Rc<T>) -> Option<&mut T> {
        if this.block().count.get() == 1 {
            // SAFETY: no other reference exists, and `this` is borrowed mutably.
            Some(unsafe { &mut this.ptr.as_mut().value })
        } else {
            None
        }
    }
}

impl<T: Block> Clone for Rc<T> {
    #[inline(always)]
    fn clone(&self) -> Rc<T> {
        let count = self.block().count.get().wrapping_add(1);
        if count == 0 {
            // 2^32 live references would take more memory than a machine has;
            // wrapping would free a value still in use, so stop instead.
            count_overflow();
        }
        self.block().count.set(count);
        Rc { ptr: self.ptr, _owns: PhantomData }
    }
}

/// Takes one more reference to the block at `block` without an `Rc` in hand
/// (for [`crate::Value`]'s clone, which finds the pointer at a fixed offset
/// whatever the value's type).
///
/// # Safety
/// `block` must be the pointer inside a live `Rc<T>` of any `T`, and the caller
/// must hand the new reference to an `Rc` that will drop it.
#[inline(always)]
pub(crate) unsafe fn increment_count(block: *const u8) {
    // SAFETY: every block starts with its count (`RcBox` is `repr(C)`).
    let count = unsafe { &*(block as *const Cell<u32>) };
    let n = count.get().wrapping_add(1);
    if n == 0 {
        count_overflow();
    }
    count.set(n);
}

#[cold]
#[inline(never)]
fn count_overflow() -> ! {
    std::process::abort()
}

impl<T: Block> Drop for Rc<T> {
    #[inline(always)]
    fn drop(&mut self) {
        let count = self.block().count.get();
        if count == 1 {
            // SAFETY: this was the last reference.
            unsafe { free(self.ptr) }
        } else {
            self.block().count.set(count - 1);
        }
    }
}

/// Drops the value and frees its block: out of line, so that a reference's drop
/// stays a decrement and a compare where it is inlined.
#[inline(never)]
unsafe fn free<T: Block>(ptr: NonNull<RcBox<T>>) {
    // SAFETY: the caller held the last reference to a block made by `Rc::new`
    // or `Rc::new_with_tail`; the tail and the value are dropped once, then
    // the block is given back with the size it was made with.
    unsafe {
        let value = &raw mut (*ptr.as_ptr()).value;
        if T::HAS_TAIL {
            // Made by `new_with_tail`, from `alloc_raw`.
            let tail_bytes = (*value).tail_bytes();
            let tail = (ptr.as_ptr() as *mut u8).add(std::mem::size_of::<RcBox<T>>());
            (*value).drop_tail(tail);
            std::ptr::drop_in_place(value);
            dealloc_raw(ptr.as_ptr() as *mut u8, std::mem::size_of::<RcBox<T>>() + tail_bytes);
        } else {
            std::ptr::drop_in_place(value);
            dealloc_block(ptr.as_ptr());
        }
    }
}

impl<T: Block> std::ops::Deref for Rc<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.block().value
    }
}

impl<T: Block> AsRef<T> for Rc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: Block + std::fmt::Debug> std::fmt::Debug for Rc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: Block + PartialEq> PartialEq for Rc<T> {
    fn eq(&self, other: &Rc<T>) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::{Block, Rc};
    use std::cell::Cell;

    impl Block for Tracked<'_> {}
    impl Block for i32 {}

    /// Counts its drops, to check that the value is dropped exactly once, when
    /// the last reference goes.
    struct Tracked<'a>(&'a Cell<u32>);
    impl Drop for Tracked<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn the_value_drops_once_with_its_last_reference() {
        let drops = Cell::new(0);
        let a = Rc::new(Tracked(&drops));
        let b = a.clone();
        let c = b.clone();
        assert_eq!(Rc::strong_count(&a), 3);
        assert!(Rc::ptr_eq(&a, &c));
        drop(a);
        drop(c);
        assert_eq!(drops.get(), 0);
        assert_eq!(Rc::strong_count(&b), 1);
        drop(b);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn get_mut_only_when_unique() {
        let mut a = Rc::new(5);
        *Rc::get_mut(&mut a).expect("unique") += 1;
        let b = a.clone();
        assert!(Rc::get_mut(&mut a).is_none());
        drop(b);
        assert_eq!(*a, 6);
        assert_eq!(Rc::as_ptr(&a), &*a as *const i32);
    }
}
