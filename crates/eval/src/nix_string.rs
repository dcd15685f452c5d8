//! [`NixString`]: a string value (bytes, not necessarily UTF-8, plus an
//! optional [`Context`]) in one reference-counted block.
//!
//! A string used to be an `Rc` block holding a boxed byte slice and an
//! optional boxed context: two allocations and 40-48 bytes for `"n123"`. Now
//! the bytes sit in the block itself, after the count and a length word, and
//! the context (rare: strings that name store paths; one shared pointer, see
//! [`Context`]) takes a word only when there is one. `"n123"` is one 16-byte
//! block, recycled through `crate::rc`'s free lists like thunks and
//! environments.
//!
//! Layout of a block (word-aligned, its size a multiple of the word):
//! - bytes 0..4: the reference count, first as in every `Rc` block, so that
//!   [`crate::Value`]'s copy and drop treat it as any other counted object;
//! - bytes 4..8: `meta`: the length, or [`OUT_OF_LINE`], plus [`CONTEXT_FLAG`];
//! - with [`CONTEXT_FLAG`]: the [`Context`] (one word) at byte 8;
//! - then inline, the bytes; or out of line (large strings handed over as a
//!   `Vec`, such as `toJSON`'s output, or any string of 2 GiB and more), the
//!   pointer and length of a `Box<[u8]>`: a large output is kept where it was
//!   built rather than copied.
//!
//! Assumes one thread (the handle is neither `Send` nor `Sync`) and 64-bit
//! pointers.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::value::Context;

/// A shared, immutable string value: a pointer to its block.
pub struct NixString {
    block: NonNull<u8>,
}

/// Set in `meta` when a context pointer follows the bytes.
const CONTEXT_FLAG: u32 = 1 << 31;
/// The length field's value for bytes kept out of line.
const OUT_OF_LINE: u32 = CONTEXT_FLAG - 1;
/// The count and `meta`.
const HEADER: usize = 8;
const WORD: usize = std::mem::size_of::<usize>();
/// An owned vector longer than this becomes an out-of-line string rather
/// than being copied into its block.
const ADOPT_MIN: usize = 4096;

const _: () = assert!(WORD == 8, "the block layout assumes 64-bit pointers");

/// The block size for a block whose payload ends `end` bytes in (rounded up
/// to a word).
#[inline(always)]
fn block_size(end: usize) -> usize {
    (end + WORD - 1) & !(WORD - 1)
}

/// Where the bytes (or the out-of-line pointer) start.
#[inline(always)]
fn payload_start(has_context: bool) -> usize {
    HEADER + has_context as usize * WORD
}

const _: () = assert!(std::mem::size_of::<Context>() == WORD && std::mem::align_of::<Context>() <= WORD);

impl NixString {
    /// A string without context (the bytes are copied).
    #[inline]
    pub fn plain(bytes: impl AsRef<[u8]>) -> NixString {
        NixString::build(bytes.as_ref(), None)
    }

    /// A string with `context` (none if it is empty); the bytes are copied.
    pub fn with_context(bytes: impl AsRef<[u8]>, context: Context) -> NixString {
        let context = if context.is_empty() { None } else { Some(context) };
        NixString::build(bytes.as_ref(), context)
    }

    /// A string from an owned vector: a large one is kept where it is (no
    /// copy), a small one copied into the block.
    pub fn from_vec(bytes: Vec<u8>, context: Context) -> NixString {
        let context = if context.is_empty() { None } else { Some(context) };
        if bytes.len() < ADOPT_MIN {
            return NixString::build(&bytes, context);
        }
        NixString::out_of_line(bytes.into_boxed_slice(), context)
    }

    fn build(bytes: &[u8], context: Option<Context>) -> NixString {
        if bytes.len() >= OUT_OF_LINE as usize {
            return NixString::out_of_line(bytes.into(), context);
        }
        let start = payload_start(context.is_some());
        let block = crate::rc::alloc_raw(block_size(start + bytes.len()));
        // SAFETY: the block holds the header, the context and the bytes
        // (`block_size`); the context's slot is word-aligned.
        unsafe {
            (block as *mut Cell<u32>).write(Cell::new(1));
            let mut meta = bytes.len() as u32;
            if let Some(context) = context {
                meta |= CONTEXT_FLAG;
                (block.add(HEADER) as *mut Context).write(context);
            }
            (block.add(4) as *mut u32).write(meta);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), block.add(start), bytes.len());
            NixString { block: NonNull::new_unchecked(block) }
        }
    }

    fn out_of_line(bytes: Box<[u8]>, context: Option<Context>) -> NixString {
        let start = payload_start(context.is_some());
        let block = crate::rc::alloc_raw(block_size(start + 2 * WORD));
        let (len, data) = (bytes.len(), Box::into_raw(bytes) as *mut u8);
        // SAFETY: the block holds the header, the context and two words.
        unsafe {
            (block as *mut Cell<u32>).write(Cell::new(1));
            let mut meta = OUT_OF_LINE;
            if let Some(context) = context {
                meta |= CONTEXT_FLAG;
                (block.add(HEADER) as *mut Context).write(context);
            }
            (block.add(4) as *mut u32).write(meta);
            (block.add(start) as *mut *mut u8).write(data);
            (block.add(start + WORD) as *mut usize).write(len);
            NixString { block: NonNull::new_unchecked(block) }
        }
    }

    #[inline(always)]
    fn meta(&self) -> u32 {
        // SAFETY: a live block starts with its count and `meta`.
        unsafe { (self.block.as_ptr().add(4) as *const u32).read() }
    }

    #[inline(always)]
    fn count(&self) -> &Cell<u32> {
        // SAFETY: a live block starts with its count.
        unsafe { &*(self.block.as_ptr() as *const Cell<u32>) }
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        let meta = self.meta();
        let len = meta & !CONTEXT_FLAG;
        // SAFETY: the layout the constructors wrote; the bytes live as long
        // as the block, which outlives `&self`.
        unsafe {
            let start = self.block.as_ptr().add(payload_start(meta & CONTEXT_FLAG != 0));
            if len != OUT_OF_LINE {
                std::slice::from_raw_parts(start, len as usize)
            } else {
                std::slice::from_raw_parts((start as *const *const u8).read(), (start.add(WORD) as *const usize).read())
            }
        }
    }

    #[inline]
    pub fn context(&self) -> Option<&Context> {
        // SAFETY: with the flag, a context was written at byte 8; it lives
        // as long as the block.
        self.has_context().then(|| unsafe { &*(self.block.as_ptr().add(HEADER) as *const Context) })
    }

    #[inline]
    pub fn has_context(&self) -> bool {
        self.meta() & CONTEXT_FLAG != 0
    }

    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }

    /// Whether both are the same string object.
    #[inline]
    pub fn ptr_eq(a: &NixString, b: &NixString) -> bool {
        a.block == b.block
    }

    /// The block's address (an identity for caches).
    #[inline]
    pub fn as_ptr(this: &NixString) -> *const u8 {
        this.block.as_ptr()
    }

    /// How many references share the string.
    pub fn strong_count(this: &NixString) -> usize {
        this.count().get() as usize
    }

    /// Frees the block and what it owns: out of line, so that a drop
    /// stays a decrement and a compare where it is inlined. It takes the
    /// block's address, not the handle: a handle passed by reference would
    /// have to sit in memory, and so would every [`crate::Value`] dropped
    /// (their drop otherwise keeps tag and pointer in registers).
    #[inline(never)]
    unsafe fn free(block: NonNull<u8>) {
        let p = block.as_ptr();
        // SAFETY: the block is live until it is given back below.
        let meta = unsafe { (p.add(4) as *const u32).read() };
        let len = meta & !CONTEXT_FLAG;
        let has_context = meta & CONTEXT_FLAG != 0;
        let start = payload_start(has_context);
        // SAFETY: the last reference; each owned part is released once.
        unsafe {
            if has_context {
                std::ptr::drop_in_place(p.add(HEADER) as *mut Context);
            }
            let payload = if len == OUT_OF_LINE {
                let data = (p.add(start) as *const *mut u8).read();
                let bytes_len = (p.add(start + WORD) as *const usize).read();
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, bytes_len)));
                2 * WORD
            } else {
                len as usize
            };
            crate::rc::dealloc_raw(p, block_size(start + payload));
        }
    }
}

impl Clone for NixString {
    #[inline(always)]
    fn clone(&self) -> NixString {
        // SAFETY: the block is live (this handle holds a reference), and the
        // new reference is owned by the handle returned.
        unsafe { crate::rc::increment_count(self.block.as_ptr()) };
        NixString { block: self.block }
    }
}

impl Drop for NixString {
    #[inline(always)]
    fn drop(&mut self) {
        let count = self.count().get();
        if count == 1 {
            // SAFETY: this was the last reference.
            unsafe { NixString::free(self.block) }
        } else {
            self.count().set(count - 1);
        }
    }
}

impl PartialEq for NixString {
    fn eq(&self, other: &NixString) -> bool {
        self.as_bytes() == other.as_bytes() && self.context() == other.context()
    }
}

impl std::fmt::Debug for NixString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NixString").field("bytes", &self.to_str_lossy()).field("context", &self.context()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::NixString;
    use crate::value::Context;

    fn context(elements: &[&str]) -> Context {
        elements.iter().map(|e| std::rc::Rc::from(e.as_bytes())).collect()
    }

    #[test]
    fn bytes_and_context_survive_every_layout() {
        let long = vec![b'x'; 10_000];
        let cases: Vec<(Vec<u8>, Context)> = vec![
            (Vec::new(), Context::new()),
            (b"n123".to_vec(), Context::new()),
            (b"seven77".to_vec(), context(&["/nix/store/a"])),
            (b"exactly8".to_vec(), context(&["=/nix/store/b.drv", "/nix/store/a"])),
            (vec![0, 255, b'"', 1], Context::new()),
            (long.clone(), Context::new()),
            (long.clone(), context(&["/nix/store/c"])),
        ];
        for (bytes, ctx) in cases {
            let copied = NixString::with_context(&bytes, ctx.clone());
            let adopted = NixString::from_vec(bytes.clone(), ctx.clone());
            for s in [&copied, &adopted] {
                assert_eq!(s.as_bytes(), &bytes[..]);
                assert_eq!(s.has_context(), !ctx.is_empty());
                assert_eq!(s.context().cloned().unwrap_or_default(), ctx);
            }
            assert_eq!(copied, adopted);
            let shared = copied.clone();
            assert!(NixString::ptr_eq(&shared, &copied));
            assert_eq!(NixString::strong_count(&copied), 2);
            drop(shared);
            assert_eq!(NixString::strong_count(&copied), 1);
        }
        assert_ne!(NixString::plain("a"), NixString::with_context("a", context(&["/nix/store/a"])));
    }
}
