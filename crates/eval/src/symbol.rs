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

struct Interner {
    map: HashMap<&'static [u8], Sym>,
    names: Vec<&'static [u8]>,
}

thread_local! {
    static INTERNER: RefCell<Interner> = RefCell::new(Interner { map: HashMap::new(), names: Vec::new() });
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
