//! Interned symbols (attribute names, variable names).
//!
//! The evaluator runs on one thread (values are `Rc`), so the interner is a
//! thread-local; interned bytes are leaked and live for the whole process, as
//! CppNix's symbol table does. Symbol ids are assigned in creation order, which is
//! also the order CppNix keeps attribute sets in internally.

use std::cell::RefCell;

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

/// The symbol table: names stored back to back in leaked chunks (a name's
/// bytes never move, so `as_bytes` hands out `&'static`), and an
/// open-addressing index of 8-byte slots, each a 32-bit hash tag and the symbol
/// (plus one; 0 is empty). A lookup touches one slot and the name it points
/// at, where a general map touched its control bytes, its bucket and then the
/// name, three cache misses per interned name in a large set. The tag's low
/// bits are also the slot's home index, so growing the index moves slots
/// without reading (or hashing) any name again.
struct Interner {
    slots: Vec<u64>,
    names: Vec<&'static [u8]>,
    /// The unused rest of the current chunk.
    free: &'static mut [u8],
}

/// Bytes per chunk of name storage.
const CHUNK: usize = 64 * 1024;

fn hash_name(name: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    h.write(name);
    h.write_usize(name.len());
    h.finish()
}

impl Interner {
    fn lookup(&self, name: &[u8], hash: u64) -> Result<Sym, usize> {
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = tag as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                return Err(i);
            }
            if slot >> 32 == tag {
                let sym = (slot & 0xffff_ffff) as u32 - 1;
                if self.names[sym as usize] == name {
                    return Ok(Sym(sym));
                }
            }
            i = (i + 1) & mask;
        }
    }
    fn store(&mut self, name: &[u8]) -> &'static [u8] {
        if name.len() > self.free.len() {
            if name.len() > CHUNK / 4 {
                return Box::leak(name.to_vec().into_boxed_slice());
            }
            self.free = Box::leak(vec![0u8; CHUNK].into_boxed_slice());
        }
        let (head, tail) = std::mem::take(&mut self.free).split_at_mut(name.len());
        head.copy_from_slice(name);
        self.free = tail;
        head
    }
    /// Doubles the index (kept at most three quarters full). Each slot's tag
    /// gives its new home, so the names themselves are not touched.
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(1024);
        let mut slots = vec![0u64; len];
        for &slot in self.slots.iter().filter(|&&s| s != 0) {
            let mut i = (slot >> 32) as usize & (len - 1);
            while slots[i] != 0 {
                i = (i + 1) & (len - 1);
            }
            slots[i] = slot;
        }
        self.slots = slots;
    }
}

thread_local! {
    static INTERNER: RefCell<Interner> = RefCell::new(Interner { slots: Vec::new(), names: Vec::new(), free: &mut [] });
}

impl Sym {
    /// Interns `name`, returning the same symbol for equal bytes.
    pub fn new(name: &[u8]) -> Sym {
        INTERNER.with(|i| {
            let mut i = i.borrow_mut();
            if (i.names.len() + 1) * 4 > i.slots.len() * 3 {
                i.grow();
            }
            let hash = hash_name(name);
            match i.lookup(name, hash) {
                Ok(sym) => sym,
                Err(slot) => {
                    let stored = i.store(name);
                    let sym = Sym(i.names.len() as u32);
                    i.names.push(stored);
                    i.slots[slot] = (hash >> 32) << 32 | (sym.0 as u64 + 1);
                    sym
                }
            }
        })
    }

    pub fn from_str(name: &str) -> Sym {
        Sym::new(name.as_bytes())
    }

    /// The interned bytes.
    pub fn as_bytes(self) -> &'static [u8] {
        INTERNER.with(|i| i.borrow().names[self.0 as usize])
    }

    /// Calls `f` with the names of all symbols, indexed by symbol: one
    /// look-up of the table for work over many names (sorting a large set).
    /// `f` must not intern.
    pub fn with_names<R>(f: impl FnOnce(&[&'static [u8]]) -> R) -> R {
        INTERNER.with(|i| f(&i.borrow().names))
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

#[cfg(test)]
mod tests {
    use super::Sym;

    #[test]
    fn equal_names_share_a_symbol_across_growth_and_chunks() {
        // Enough names to grow the index several times and fill more than one
        // chunk of name storage, plus one name too long for a chunk's share.
        let long = vec![b'x'; 40 * 1024];
        let names: Vec<Vec<u8>> = (0..100_000).map(|i| format!("attr{i}").into_bytes()).chain([long, Vec::new()]).collect();
        let syms: Vec<Sym> = names.iter().map(|n| Sym::new(n)).collect();
        for (name, sym) in names.iter().zip(&syms) {
            assert_eq!(Sym::new(name), *sym);
            assert_eq!(sym.as_bytes(), &name[..]);
        }
        let mut ids: Vec<u32> = syms.iter().map(|s| s.0).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), names.len(), "distinct names get distinct symbols");
    }
}
