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

use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The heap block: the count, then the value.
#[repr(C)]
struct RcBox<T> {
    count: Cell<u32>,
    value: T,
}

/// A shared, immutable (except through `Cell`s and `UnsafeCell`s inside) value
/// freed when its last reference drops.
pub struct Rc<T> {
    ptr: NonNull<RcBox<T>>,
    /// Owns an `RcBox<T>` for the drop checker.
    _owns: PhantomData<RcBox<T>>,
}

const _: () = assert!(std::mem::size_of::<Rc<u8>>() == std::mem::size_of::<*const u8>());

impl<T> Rc<T> {
    #[inline]
    pub fn new(value: T) -> Rc<T> {
        let block = Box::new(RcBox { count: Cell::new(1), value });
        Rc { ptr: NonNull::from(Box::leak(block)), _owns: PhantomData }
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

impl<T> Clone for Rc<T> {
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

impl<T> Drop for Rc<T> {
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
unsafe fn free<T>(ptr: NonNull<RcBox<T>>) {
    // SAFETY: the caller held the last reference to a block made by `Rc::new`.
    drop(unsafe { Box::from_raw(ptr.as_ptr()) })
}

impl<T> std::ops::Deref for Rc<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.block().value
    }
}

impl<T> AsRef<T> for Rc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Rc<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T: PartialEq> PartialEq for Rc<T> {
    fn eq(&self, other: &Rc<T>) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::Rc;
    use std::cell::Cell;

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
