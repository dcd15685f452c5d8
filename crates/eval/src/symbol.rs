//! Interned symbols (attribute names, variable names).
//!
//! The evaluator runs on one thread (values are `Rc`), so the interner is a
//! thread-local; interned bytes are leaked and live for the whole process, as
//! CppNix's symbol table does. Symbol ids are assigned in creation order, which is
//! also the order CppNix keeps attribute sets in internally.

use std::cell::RefCell;
use std::collections::HashMap;

/// An interned name: an index into the thread's symbol table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Sym(pub u32);

/// FxHash (rustc's hasher): names are short and not attacker-chosen in a way
/// that matters here, and SipHash showed up in profiles.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517cc1b727220a95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().expect("chunk of 8"));
            h = (h.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
        self.0 = h;
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x517cc1b727220a95);
    }
    fn finish(&self) -> u64 {
        // The multiply-rotate steps leave the low bits (which pick hashbrown's
        // bucket) depending on few input bits: names like `attr1234` collided
        // into long probe chains. A final avalanche step spreads every bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51afd7ed558ccd);
        h ^ (h >> 33)
    }
}

pub type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

struct Interner {
    map: HashMap<&'static [u8], Sym, FxBuild>,
    names: Vec<&'static [u8]>,
}

thread_local! {
    static INTERNER: RefCell<Interner> = RefCell::new(Interner { map: HashMap::default(), names: Vec::new() });
}

impl Sym {
    /// Interns `name`, returning the same symbol for equal bytes.
    pub fn new(name: &[u8]) -> Sym {
        INTERNER.with(|i| {
            let mut i = i.borrow_mut();
            if let Some(s) = i.map.get(name) {
                return *s;
            }
            let leaked: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
            let sym = Sym(i.names.len() as u32);
            i.names.push(leaked);
            i.map.insert(leaked, sym);
            sym
        })
    }

    pub fn from_str(name: &str) -> Sym {
        Sym::new(name.as_bytes())
    }

    /// The interned bytes.
    pub fn as_bytes(self) -> &'static [u8] {
        INTERNER.with(|i| i.borrow().names[self.0 as usize])
    }

    /// The name as (lossy) UTF-8, for messages.
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl std::fmt::Display for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}
