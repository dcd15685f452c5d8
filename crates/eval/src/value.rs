//! Runtime values. A [`Value`] is 16 bytes: a tag plus either an immediate
//! (int, float, bool) or one `Rc` pointer. Attribute sets are vectors sorted by
//! symbol id (binary search), lists are shared vectors, strings are bytes with an
//! optional string context. Thunks are updated in place once forced.
//!
//! The evaluator's shared objects (thunks, environments, sets, lists, strings,
//! closures) are counted by [`Rc`] (`crate::rc`): one 4-byte count, first in
//! every block, no weak count, so a thunk or an environment is 40 bytes and a
//! value's copy or drop is the same few instructions for every kind of object.
//!
//! Environments and thunks use `UnsafeCell` rather than `RefCell`: they are the
//! evaluator's most frequent objects, and each type's comment states the access
//! discipline that makes the unchecked cell sound.

use std::cell::UnsafeCell;
pub use crate::rc::Rc;

use crate::ast::{AttrDef, Expr, Lambda};
use crate::builtins::PrimOp;
use crate::pos::Pos;
use crate::symbol::Sym;

/// A string context: the store paths a string refers to, encoded as CppNix does:
/// `/nix/store/...` (a plain path), `=/nix/store/x.drv` (a derivation with all
/// its outputs), `!out!/nix/store/x.drv` (one output of a derivation).
///
/// Iterated in byte order as CppNix's `std::set`. Most contexts hold one to a few
/// elements and live as a sorted vector without duplicates (a B-tree node would
/// cost ~200 bytes each); a context that grows past [`CONTEXT_VEC_MAX`] elements
/// (`concatStringsSep` over thousands of derivation paths) moves to a B-tree set,
/// so that building it stays O(n log n) rather than O(n²) sorted insertions.
///
/// The elements are shared behind one counted pointer (copy on write), and the
/// empty context is no allocation at all: a string built from one string with a
/// context plus plain text (`"${drv}/bin/sh"`, `"${d.dev}"`, the paths of
/// `derivation`'s outputs) shares that string's context instead of copying it,
/// and a string's context costs one pointer.
#[derive(Clone, Debug)]
pub struct Context(Option<Rc<ContextRepr>>);

/// One element of a [`Context`]. Shared rather than owned: a context is copied
/// into every string built from one (interpolation, `+`, `concatStringsSep`),
/// and copying an element then costs a reference count, not an allocation.
pub type ContextElement = std::rc::Rc<[u8]>;

#[derive(Clone, Debug)]
enum ContextRepr {
    Small(Vec<ContextElement>),
    Large(std::collections::BTreeSet<ContextElement>),
}

/// The size at which a context turns from a sorted vector into a B-tree set.
const CONTEXT_VEC_MAX: usize = 32;

/// Equal when the elements are (a context emptied below the vector size may still
/// be a B-tree).
impl PartialEq for Context {
    fn eq(&self, other: &Context) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Context {}

impl Default for Context {
    fn default() -> Context {
        Context::new()
    }
}

/// Iterator over a context's elements in byte order.
pub enum ContextIter<'a> {
    Small(std::slice::Iter<'a, ContextElement>),
    Large(std::collections::btree_set::Iter<'a, ContextElement>),
}

impl<'a> Iterator for ContextIter<'a> {
    type Item = &'a ContextElement;
    #[inline]
    fn next(&mut self) -> Option<&'a ContextElement> {
        match self {
            ContextIter::Small(i) => i.next(),
            ContextIter::Large(i) => i.next(),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ContextIter::Small(i) => i.size_hint(),
            ContextIter::Large(i) => i.size_hint(),
        }
    }
}

/// Owning iterator over a context's elements in byte order.
pub enum ContextIntoIter {
    Small(std::vec::IntoIter<ContextElement>),
    Large(std::collections::btree_set::IntoIter<ContextElement>),
}

impl Iterator for ContextIntoIter {
    type Item = ContextElement;
    fn next(&mut self) -> Option<ContextElement> {
        match self {
            ContextIntoIter::Small(i) => i.next(),
            ContextIntoIter::Large(i) => i.next(),
        }
    }
}

impl Context {
    #[inline]
    pub const fn new() -> Context {
        Context(None)
    }
    /// The elements to change: this context's own, copied first if another
    /// string shares them.
    fn repr_mut(&mut self) -> &mut ContextRepr {
        let shared = match &mut self.0 {
            None => {
                self.0 = Some(Rc::new(ContextRepr::Small(Vec::new())));
                false
            }
            Some(rc) => Rc::get_mut(rc).is_none(),
        };
        if shared {
            let copy = ContextRepr::clone(self.0.as_deref().expect("checked above"));
            self.0 = Some(Rc::new(copy));
        }
        Rc::get_mut(self.0.as_mut().expect("set above")).expect("unshared above")
    }
    /// Adds an element; false if it was there already.
    pub fn insert(&mut self, element: impl Into<ContextElement>) -> bool {
        let element: ContextElement = element.into();
        if self.contains(&element) {
            return false;
        }
        let repr = self.repr_mut();
        match repr {
            ContextRepr::Small(v) => {
                if v.len() < CONTEXT_VEC_MAX {
                    let i = v.binary_search(&element).unwrap_or_else(|i| i);
                    // Most contexts keep one element: no room for four.
                    if v.is_empty() {
                        v.reserve_exact(1);
                    }
                    v.insert(i, element);
                } else {
                    let mut set: std::collections::BTreeSet<ContextElement> = std::mem::take(v).into_iter().collect();
                    set.insert(element);
                    *repr = ContextRepr::Large(set);
                }
                true
            }
            ContextRepr::Large(set) => set.insert(element),
        }
    }
    /// Adds every element of `other` (a string's context joining the one
    /// being built). Into an empty context, or from the same shared elements,
    /// nothing is copied.
    pub fn union_with(&mut self, other: &Context) {
        let Some(theirs) = &other.0 else { return };
        match &self.0 {
            None => {
                self.0 = Some(theirs.clone());
                return;
            }
            Some(ours) if Rc::ptr_eq(ours, theirs) => return,
            Some(_) if self.is_empty() => {
                self.0 = Some(theirs.clone());
                return;
            }
            Some(_) => {}
        }
        let mut elements = other.iter();
        // Up to the first element missing here, nothing changes (and shared
        // elements are not copied); the element already here (the same
        // derivation interpolated again) is found by pointer first.
        let first_missing = elements.find(|element| match self.0.as_deref() {
            Some(ContextRepr::Small(v)) if v.iter().any(|e| std::rc::Rc::ptr_eq(e, element)) => false,
            _ => !self.contains(element),
        });
        let Some(first_missing) = first_missing else { return };
        let repr = self.repr_mut();
        for element in std::iter::once(first_missing).chain(elements) {
            match repr {
                ContextRepr::Small(v) => {
                    if v.iter().any(|e| std::rc::Rc::ptr_eq(e, element)) {
                        continue;
                    }
                    let Err(i) = v.binary_search(element) else { continue };
                    if v.len() < CONTEXT_VEC_MAX {
                        v.insert(i, element.clone());
                    } else {
                        let mut set: std::collections::BTreeSet<ContextElement> = std::mem::take(v).into_iter().collect();
                        set.insert(element.clone());
                        *repr = ContextRepr::Large(set);
                    }
                }
                // One search: `insert` finds the element or its place.
                ContextRepr::Large(set) => {
                    set.insert(element.clone());
                }
            }
        }
    }
    pub fn contains(&self, element: &[u8]) -> bool {
        match self.0.as_deref() {
            None => false,
            Some(ContextRepr::Small(v)) => v.binary_search_by(|e| (**e).cmp(element)).is_ok(),
            Some(ContextRepr::Large(set)) => set.contains(element),
        }
    }
    pub fn remove(&mut self, element: &[u8]) -> bool {
        if !self.contains(element) {
            return false;
        }
        match self.repr_mut() {
            ContextRepr::Small(v) => match v.binary_search_by(|e| (**e).cmp(element)) {
                Ok(i) => {
                    v.remove(i);
                    true
                }
                Err(_) => false,
            },
            ContextRepr::Large(set) => set.remove(element),
        }
    }
    pub fn iter(&self) -> ContextIter<'_> {
        match self.0.as_deref() {
            None => ContextIter::Small([].iter()),
            Some(ContextRepr::Small(v)) => ContextIter::Small(v.iter()),
            Some(ContextRepr::Large(set)) => ContextIter::Large(set.iter()),
        }
    }
    pub fn len(&self) -> usize {
        match self.0.as_deref() {
            None => 0,
            Some(ContextRepr::Small(v)) => v.len(),
            Some(ContextRepr::Large(set)) => set.len(),
        }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_none() || self.len() == 0
    }
    pub fn first(&self) -> Option<&ContextElement> {
        self.iter().next()
    }
}

impl Extend<ContextElement> for Context {
    fn extend<I: IntoIterator<Item = ContextElement>>(&mut self, iter: I) {
        for element in iter {
            self.insert(element);
        }
    }
}

impl FromIterator<ContextElement> for Context {
    fn from_iter<I: IntoIterator<Item = ContextElement>>(iter: I) -> Context {
        let mut elements: Vec<ContextElement> = iter.into_iter().collect();
        if elements.is_empty() {
            return Context::new();
        }
        elements.sort_unstable();
        elements.dedup();
        if elements.len() > CONTEXT_VEC_MAX {
            return Context(Some(Rc::new(ContextRepr::Large(elements.into_iter().collect()))));
        }
        Context(Some(Rc::new(ContextRepr::Small(elements))))
    }
}

impl<const N: usize> From<[ContextElement; N]> for Context {
    fn from(elements: [ContextElement; N]) -> Context {
        elements.into_iter().collect()
    }
}

impl IntoIterator for Context {
    type Item = ContextElement;
    type IntoIter = ContextIntoIter;
    fn into_iter(mut self) -> ContextIntoIter {
        // The elements are taken when this context was their only holder,
        // copied (a count each) when they are shared.
        let repr = match self.0.take() {
            None => return ContextIntoIter::Small(Vec::new().into_iter()),
            Some(mut rc) => match Rc::get_mut(&mut rc) {
                Some(repr) => std::mem::replace(repr, ContextRepr::Small(Vec::new())),
                None => ContextRepr::clone(&rc),
            },
        };
        match repr {
            ContextRepr::Small(v) => ContextIntoIter::Small(v.into_iter()),
            ContextRepr::Large(set) => ContextIntoIter::Large(set.into_iter()),
        }
    }
}

impl<'a> IntoIterator for &'a Context {
    type Item = &'a ContextElement;
    type IntoIter = ContextIter<'a>;
    fn into_iter(self) -> ContextIter<'a> {
        self.iter()
    }
}

pub use crate::nix_string::NixString;

#[derive(Clone)]
pub struct Attr {
    pub name: Sym,
    pub value: Value,
    pub pos: Pos,
}

/// An attribute set: entries sorted by symbol id, in one block.
///
/// A set lives only behind an [`Rc`], in one allocation: the count, this
/// header (the entry count and a pointer to the entries, 12 bytes), then the
/// entries themselves in the block's tail (see [`crate::rc::Block`]). A set of
/// four attributes takes 112 bytes where a header block and a separate vector
/// took 48 + 96, and a set of one 40 where it took 48 + 24: `toJSON`/`fromJSON`
/// and any program holding many small records keep a set per record. The
/// pointer is the entries' address, kept with the whole block's provenance,
/// so a set reached through a plain `&Attrs` (most readers) can read them.
/// Sets are built with an [`AttrsBuilder`] (or [`Attrs::from_sorted`] when the
/// entries are ready) and immutable afterwards, except for a forced thunk
/// replaced by its value in a slot (`Attrs::collapse`).
///
/// A set made by `base // top` with a small `top` is a layer: it keeps `top`'s
/// entries and shares `base` instead of copying it (nixpkgs-style code adds a
/// few attributes to large sets all the time: `derivation`'s outputs,
/// `drv // { meta = ...; }`, `result // { override = ...; }`, overlays). A
/// look-up searches the layers from the top; iteration merges them in symbol
/// order, names in a higher layer hiding the same names below. Layers are
/// at most [`MAX_LAYER_DEPTH`] deep, so a look-up costs a bounded number of
/// binary searches. A layer's base, visible length and depth ([`Layer`]) sit
/// in the tail before its entries, so a flat set pays nothing for them.
///
/// `packed(4)`: the header follows the 4-byte count with no hole, so the
/// block's fixed part is 16 bytes, not 24. Its fields are only ever read by
/// value.
#[repr(C, packed(4))]
pub struct Attrs {
    /// The number of own entries, plus [`LAYERED`] for a layer.
    meta: u32,
    /// The first own entry, in this block's tail.
    entries: *mut Attr,
}

/// Set in [`Attrs::meta`] when the tail starts with a [`Layer`].
const LAYERED: u32 = 1 << 31;

/// What a layer keeps about the set below it (at the start of its tail).
struct Layer {
    base: Rc<Attrs>,
    /// The number of visible names.
    len: u32,
    /// How many layers lie below this one.
    depth: u32,
}

const _: () = assert!(std::mem::size_of::<Layer>() % std::mem::size_of::<usize>() == 0);
const _: () = assert!(std::mem::size_of::<Attr>() % std::mem::size_of::<usize>() == 0);

impl crate::rc::Block for Attrs {
    const HAS_TAIL: bool = true;
    #[inline(always)]
    fn tail_bytes(&self) -> usize {
        let meta = self.meta;
        (meta & !LAYERED) as usize * std::mem::size_of::<Attr>() + if meta & LAYERED != 0 { std::mem::size_of::<Layer>() } else { 0 }
    }
    #[inline]
    unsafe fn drop_tail(&mut self, tail: *mut u8) {
        let (entries, n) = (self.entries, self.own_len());
        for i in 0..n {
            // SAFETY: the `n` entries are initialised; each value is released
            // once, here, as the block is freed (an attribute's name and
            // position are plain data).
            unsafe { release_in_place(&raw mut (*entries.add(i)).value) };
        }
        if self.meta & LAYERED != 0 {
            // SAFETY: a layer's tail starts with its `Layer`, dropped once.
            unsafe { std::ptr::drop_in_place(tail as *mut Layer) };
        }
    }
}

/// The deepest a chain of `//` layers may grow before a merge copies it flat.
pub const MAX_LAYER_DEPTH: u32 = 6;

/// Iterates a set's visible entries in symbol order.
pub enum AttrsIter<'a> {
    Flat(std::slice::Iter<'a, Attr>),
    Merged(std::vec::IntoIter<&'a Attr>),
}

impl<'a> Iterator for AttrsIter<'a> {
    type Item = &'a Attr;
    #[inline]
    fn next(&mut self) -> Option<&'a Attr> {
        match self {
            AttrsIter::Flat(it) => it.next(),
            AttrsIter::Merged(it) => it.next(),
        }
    }
    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            AttrsIter::Flat(it) => it.size_hint(),
            AttrsIter::Merged(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for AttrsIter<'_> {}

impl<'a> IntoIterator for &'a Attrs {
    type Item = &'a Attr;
    type IntoIter = AttrsIter<'a>;
    fn into_iter(self) -> AttrsIter<'a> {
        self.iter()
    }
}

/// A set under construction: entries pushed (in symbol order, or sorted
/// afterwards) or inserted, then made into an [`Attrs`] block by
/// [`AttrsBuilder::finish`] or [`Value::attrs`].
#[derive(Default)]
pub struct AttrsBuilder {
    entries: Vec<Attr>,
}

impl AttrsBuilder {
    pub fn new() -> AttrsBuilder {
        AttrsBuilder::default()
    }
    pub fn with_capacity(n: usize) -> AttrsBuilder {
        AttrsBuilder { entries: Vec::with_capacity(n) }
    }
    /// Appends an entry (callers keep the symbol order, or call
    /// [`AttrsBuilder::sort`] afterwards).
    #[inline]
    pub fn push(&mut self, attr: Attr) {
        self.entries.push(attr);
    }
    /// Sorts after pushing in arbitrary order.
    pub fn sort(&mut self) {
        self.entries.sort_by_key(|a| a.name);
    }
    /// Inserts or replaces, keeping the order.
    pub fn insert(&mut self, name: Sym, value: Value, pos: Pos) {
        match self.entries.binary_search_by_key(&name, |a| a.name) {
            Ok(i) => self.entries[i] = Attr { name, value, pos },
            Err(i) => self.entries.insert(i, Attr { name, value, pos }),
        }
    }
    /// The entry named `name` (the entries must be in symbol order).
    pub fn find(&self, name: Sym) -> Option<&Attr> {
        search_entries(&self.entries, name).map(|i| &self.entries[i])
    }
    pub fn get(&self, name: Sym) -> Option<&Value> {
        self.find(name).map(|a| &a.value)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Attr> {
        self.entries.iter()
    }
    /// The set, in one block.
    pub fn finish(self) -> Rc<Attrs> {
        Attrs::from_sorted(self.entries)
    }
}

/// Writes the entries of a set made by [`Attrs::from_exact`] into its block.
pub struct AttrsWriter<'a> {
    next: *mut Attr,
    /// Slots not written yet.
    left: usize,
    _set: std::marker::PhantomData<&'a mut Attr>,
}

impl AttrsWriter<'_> {
    /// Writes the next entry. Panics past the set's size (a bug).
    #[inline(always)]
    pub fn push(&mut self, attr: Attr) {
        assert!(self.left > 0, "more attributes than the set was made for");
        // SAFETY: a slot of the block not written yet.
        unsafe {
            self.next.write(attr);
            self.next = self.next.add(1);
        }
        self.left -= 1;
    }
    /// Writes copies of `attrs` as the next entries (one size check for all).
    #[inline]
    pub fn extend_cloned<T: std::borrow::Borrow<Attr>>(&mut self, attrs: &[T]) {
        let n = attrs.len();
        assert!(n <= self.left, "more attributes than the set was made for");
        for (i, attr) in attrs.iter().enumerate() {
            // SAFETY: slot `i` of the `left` not written yet. (Should
            // `borrow` panic midway, `drop` overwrites, leaking, the copies
            // made so far: never a slot past the block.)
            unsafe { self.next.add(i).write(attr.borrow().clone()) };
        }
        // SAFETY: `n` slots were written, within the block.
        self.next = unsafe { self.next.add(n) };
        self.left -= n;
    }
}

/// Slots left unwritten (a bug, or a panic while filling) get a plain entry,
/// so that the set's block always holds `n` initialised entries when it dies.
impl Drop for AttrsWriter<'_> {
    fn drop(&mut self) {
        while self.left > 0 {
            self.push(Attr { name: Sym(0), value: Value::Null, pos: Pos::NONE });
        }
    }
}

impl From<AttrsBuilder> for Rc<Attrs> {
    fn from(builder: AttrsBuilder) -> Rc<Attrs> {
        builder.finish()
    }
}

impl Attrs {
    /// The empty set.
    pub fn empty() -> Rc<Attrs> {
        Attrs::from_sorted(Vec::new())
    }
    /// A flat set of entries already sorted by symbol, without duplicates.
    pub fn from_sorted(mut entries: Vec<Attr>) -> Rc<Attrs> {
        Attrs::from_sorted_tail(&mut entries, 0)
    }
    /// A flat set of the entries of `stack` from `start` on (sorted by symbol,
    /// without duplicates), moved out of the stack, which keeps the rest: a
    /// parser collects the members of nested objects on one stack.
    pub fn from_sorted_tail(stack: &mut Vec<Attr>, start: usize) -> Rc<Attrs> {
        debug_assert!(stack[start..].windows(2).all(|w| w[0].name < w[1].name));
        Attrs::build(stack, start, None)
    }
    /// `base // top` as a layer over `base`, sharing it. `top` must be sorted
    /// by symbol, and small: it is what a look-up searches first.
    pub fn layer(base: &Rc<Attrs>, mut top: Vec<Attr>) -> Rc<Attrs> {
        let hidden = top.iter().filter(|a| base.find(a.name).is_some()).count();
        let len = base.len() + top.len() - hidden;
        let layer = Layer { base: base.clone(), len: len as u32, depth: base.depth() + 1 };
        Attrs::build(&mut top, 0, Some(layer))
    }
    /// A flat set of exactly `n` entries, which `fill` writes straight into
    /// its block (in symbol order, without duplicates): no vector to build
    /// and copy when the size is known beforehand (a set literal, a merge).
    /// Panics if `fill` writes another number of entries (a bug).
    pub fn from_exact(n: usize, fill: impl FnOnce(&mut AttrsWriter<'_>)) -> Rc<Attrs> {
        let count = u32::try_from(n).ok().filter(|&n| n < LAYERED).expect("a set of fewer than 2^31 attributes");
        let mut set = Rc::new_with_tail(Attrs { meta: count, entries: std::ptr::null_mut() });
        let entries = Rc::tail(&set) as *mut Attr;
        Rc::get_mut(&mut set).expect("a new block").entries = entries;
        let mut writer = AttrsWriter { next: entries, left: n, _set: std::marker::PhantomData };
        fill(&mut writer);
        let left = writer.left;
        drop(writer);
        assert_eq!(left, 0, "a set of {n} attributes filled with {}", n - left);
        debug_assert!(set.entries().windows(2).all(|w| w[0].name < w[1].name));
        set
    }
    /// Moves `stack[start..]` into a new block (after `layer`, if any).
    fn build(stack: &mut Vec<Attr>, start: usize, layer: Option<Layer>) -> Rc<Attrs> {
        let n = stack.len() - start;
        let count = u32::try_from(n).ok().filter(|&n| n < LAYERED).expect("a set of fewer than 2^31 attributes");
        let meta = count | if layer.is_some() { LAYERED } else { 0 };
        let mut set = Rc::new_with_tail(Attrs { meta, entries: std::ptr::null_mut() });
        let tail = Rc::tail(&set);
        // SAFETY: the tail has room for the layer (when there is one) and the
        // `n` entries (`tail_bytes`), both word-aligned; the entries are
        // moved bitwise and the stack forgets them, so each is owned once.
        unsafe {
            let entries = match layer {
                Some(layer) => {
                    (tail as *mut Layer).write(layer);
                    tail.add(std::mem::size_of::<Layer>()) as *mut Attr
                }
                None => tail as *mut Attr,
            };
            std::ptr::copy_nonoverlapping(stack.as_ptr().add(start), entries, n);
            stack.set_len(start);
            // The only reference: the header is written before anyone reads it.
            let header = Rc::get_mut(&mut set).expect("a new block");
            header.entries = entries;
        }
        set
    }
    /// The own entries (a layer's top ones).
    #[inline(always)]
    fn own_len(&self) -> usize {
        (self.meta & !LAYERED) as usize
    }
    #[inline(always)]
    pub(crate) fn entries(&self) -> &[Attr] {
        // SAFETY: `entries` points at the block's `own_len` initialised
        // entries, with the block's provenance; the block outlives `self`.
        unsafe { std::slice::from_raw_parts(self.entries, self.own_len()) }
    }
    #[inline(always)]
    fn layer_info(&self) -> Option<&Layer> {
        if self.meta & LAYERED == 0 {
            return None;
        }
        // SAFETY: a layer's `Layer` sits right before its entries.
        Some(unsafe { &*((self.entries as *const u8).sub(std::mem::size_of::<Layer>()) as *const Layer) })
    }
    #[inline(always)]
    fn base(&self) -> Option<&Rc<Attrs>> {
        self.layer_info().map(|l| &l.base)
    }
    /// How many layers lie below this one (0 for a flat set).
    #[inline]
    pub fn depth(&self) -> u32 {
        self.layer_info().map_or(0, |l| l.depth)
    }
    /// Whether a merge `self // top` should make a layer rather than a copy.
    #[inline]
    pub fn wants_layer(&self, top_len: usize) -> bool {
        self.depth() < MAX_LAYER_DEPTH && top_len * 2 <= self.len() && self.len() >= 4
    }
    #[inline]
    pub fn get(&self, name: Sym) -> Option<&Value> {
        self.find(name).map(|a| &a.value)
    }
    #[inline]
    pub fn find(&self, name: Sym) -> Option<&Attr> {
        let mut set = self;
        loop {
            let entries = set.entries();
            if let Some(i) = search_entries(entries, name) {
                return Some(&entries[i]);
            }
            set = set.base()?;
        }
    }
    /// `find`, trying the top entry at `hint` first and remembering where a
    /// top entry was found (see [`SelectHint`](crate::ast::SelectHint)).
    #[inline]
    pub fn find_hinted(&self, name: Sym, hint: &crate::ast::SelectHint) -> Option<&Attr> {
        let entries = self.entries();
        if let Some(attr) = entries.get(hint.get()) {
            if attr.name == name {
                return Some(attr);
            }
        }
        if let Some(i) = search_entries(entries, name) {
            hint.set(i);
            return Some(&entries[i]);
        }
        self.base()?.find(name)
    }
    #[inline]
    pub fn len(&self) -> usize {
        match self.layer_info() {
            Some(l) => l.len as usize,
            None => self.own_len(),
        }
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the set is one flat vector (not a layer).
    #[inline]
    pub fn is_flat(&self) -> bool {
        self.meta & LAYERED == 0
    }
    /// The visible entries in symbol order.
    #[inline]
    pub fn iter(&self) -> AttrsIter<'_> {
        if self.is_flat() {
            AttrsIter::Flat(self.entries().iter())
        } else {
            AttrsIter::Merged(self.to_refs().into_iter())
        }
    }
    /// The same set as one flat vector (itself if it is flat already).
    pub fn flattened(set: &Rc<Attrs>) -> Rc<Attrs> {
        if set.is_flat() { set.clone() } else { Attrs::from_sorted(set.iter().cloned().collect()) }
    }
    /// The visible entries in symbol order, as references (merging the layers
    /// of a layered set).
    pub fn to_refs(&self) -> Vec<&Attr> {
        match self.base() {
            None => self.entries().iter().collect(),
            Some(base) => {
                let below = base.to_refs();
                let mut out = Vec::with_capacity(self.len());
                let mut i = 0;
                for top in self.entries() {
                    while i < below.len() && below[i].name < top.name {
                        out.push(below[i]);
                        i += 1;
                    }
                    if i < below.len() && below[i].name == top.name {
                        i += 1;
                    }
                    out.push(top);
                }
                out.extend_from_slice(&below[i..]);
                out
            }
        }
    }
    /// Puts `value` in place of the thunk `t` in the slot of the entry at
    /// `attr` (an entry of this set, of any of its layers), once `t` has been
    /// forced to `value`: the thunk's block is then freed unless something
    /// else holds it (CppNix overwrites a forced thunk in place). Nothing
    /// changes when the slot no longer holds `t`.
    ///
    /// Sets are shared and immutable to everyone else, so this is only for
    /// walkers over a whole value (`toJSON`, `deepSeq`), under the rule that
    /// makes it sound: whoever forces a slot copies its thunk out first and
    /// holds no reference into the slot while evaluating (a reference held
    /// across evaluation would see the slot change under it; the one case where
    /// that could matter, a thunk forced while another forcing of it is under
    /// way, is a black hole or, for builtins' lazy applications, an infinite
    /// recursion). `attr` is a raw pointer, and the slot is written through the
    /// entries' pointer, which has the block's provenance: a shared reference to the entry, passed to a
    /// function, is read-only to the compiler (a first version that wrote
    /// through one had its store dropped). The old thunk is dropped after the
    /// slot holds the value.
    pub fn collapse(&self, attr: *const Attr, t: &Rc<Thunk>, value: &Value) {
        let mut set = self;
        let (slot, index) = loop {
            let start = set.entries;
            let offset = (attr as usize).wrapping_sub(start as usize);
            let index = offset / std::mem::size_of::<Attr>();
            if index < set.own_len() && offset % std::mem::size_of::<Attr>() == 0 {
                break (start, index);
            }
            match set.base() {
                Some(base) => set = base,
                None => return,
            }
        };
        if keeps_thunk(t, value) {
            return;
        }
        // SAFETY: `index` is in bounds of `set`'s entries (checked above); see
        // the comment above for why no reference into the slot is alive.
        let old = unsafe {
            let slot = &raw mut (*slot.add(index)).value;
            match &*slot {
                Value::Thunk(u) if Rc::ptr_eq(u, t) => std::ptr::replace(slot, value.clone()),
                _ => return,
            }
        };
        drop(old);
    }
    /// Entries in lexicographic order of their names (the order users see).
    pub fn sorted_by_name(&self) -> Vec<&Attr> {
        let all = self.to_refs();
        let n = all.len();
        if n >= ORDER_MEMO_MIN {
            let memo = LAST_ORDER.with(|memo| {
                let memo = memo.borrow();
                let same = memo.0.len() == n && memo.0.iter().zip(all.iter()).all(|(s, a)| *s == a.name);
                same.then(|| memo.1.iter().map(|&i| all[i as usize]).collect())
            });
            if let Some(sorted) = memo {
                return sorted;
            }
        }
        // Sorting the names of a large set is most of `attrValues` and
        // `attrNames`. Each name's first eight bytes, zero-padded, compare as one
        // big-endian integer in the order the names do, so the entries are
        // sorted as small (prefix, index) pairs, and only runs of names sharing
        // a prefix are then put in order by their bytes.
        let order: Vec<u32> = Sym::with_names(|names| {
            let name = |i: u32| names[all[i as usize].name.0 as usize];
            let mut keys: Vec<(u64, u32)> = (0..n as u32).map(|i| (name_prefix(name(i)), i)).collect();
            sort_prefix_keys(&mut keys);
            let mut start = 0;
            while start < keys.len() {
                let mut end = start + 1;
                while end < keys.len() && keys[end].0 == keys[start].0 {
                    end += 1;
                }
                if end - start > 1 {
                    keys[start..end].sort_unstable_by(|x, y| name(x.1).cmp(name(y.1)));
                }
                start = end;
            }
            keys.into_iter().map(|(_, i)| i).collect()
        });
        let sorted = order.iter().map(|&i| all[i as usize]).collect();
        if n >= ORDER_MEMO_MIN {
            LAST_ORDER.with(|memo| *memo.borrow_mut() = (all.iter().map(|a| a.name).collect(), order));
        }
        sorted
    }
}

/// A list value: its items in one block with the count, as a set's entries
/// are (see [`Attrs`]): the count, a 12-byte header (the length and a pointer
/// to the items, kept with the block's provenance), then the items. A list of
/// three takes 64 bytes where an `Rc<Vec<Value>>` took 32 plus a 48-byte
/// buffer, in two allocations. Immutable once made, except for a forced
/// thunk replaced by its value in a slot ([`collapse_item`]) and the items
/// moved out of a list nobody else holds ([`List::take_items_into`]). Reads go
/// through `Deref` to the items' slice.
#[repr(C, packed(4))]
pub struct List {
    len: u32,
    items: *mut Value,
}

impl crate::rc::Block for List {
    const HAS_TAIL: bool = true;
    #[inline(always)]
    fn tail_bytes(&self) -> usize {
        self.len as usize * std::mem::size_of::<Value>()
    }
    #[inline]
    unsafe fn drop_tail(&mut self, _tail: *mut u8) {
        let (items, n) = (self.items, self.len as usize);
        for i in 0..n {
            // SAFETY: the `n` items are initialised; each is released once,
            // here, as the block is freed.
            unsafe { release_in_place(items.add(i)) };
        }
    }
}

impl std::ops::Deref for List {
    type Target = [Value];
    #[inline(always)]
    fn deref(&self) -> &[Value] {
        // SAFETY: `items` points at the block's `len` initialised items, with
        // the block's provenance; the block outlives `self`.
        unsafe { std::slice::from_raw_parts(self.items, self.len as usize) }
    }
}

impl List {
    /// A block for `n` items, not written yet.
    fn alloc(n: usize) -> (Rc<List>, *mut Value) {
        let len = u32::try_from(n).expect("a list of fewer than 2^32 items");
        let mut list = Rc::new_with_tail(List { len, items: std::ptr::null_mut() });
        let tail = Rc::tail(&list) as *mut Value;
        Rc::get_mut(&mut list).expect("a new block").items = tail;
        (list, tail)
    }
    /// A list of the vector's items (moved into the block).
    pub fn from_vec(mut items: Vec<Value>) -> Rc<List> {
        List::from_stack_tail(&mut items, 0)
    }
    /// A list of the items of `stack` from `start` on, moved out of the
    /// stack, which keeps the rest (a parser's stack of nested arrays' items).
    pub fn from_stack_tail(stack: &mut Vec<Value>, start: usize) -> Rc<List> {
        let n = stack.len() - start;
        let (list, tail) = List::alloc(n);
        // SAFETY: the tail has room for the `n` items; they are moved bitwise
        // and the stack forgets them, so each is owned once.
        unsafe {
            std::ptr::copy_nonoverlapping(stack.as_ptr().add(start), tail, n);
            stack.set_len(start);
        }
        list
    }
    /// A list of `n` items, `item(i)` written straight into the block (no
    /// vector to fill and copy: list literals, `map`, `genList`).
    #[inline]
    pub fn from_fn(n: usize, mut item: impl FnMut(usize) -> Value) -> Rc<List> {
        /// Slots not reached (`item` panicked) get a null, so the block
        /// always holds `n` initialised items when it dies.
        struct Fill {
            next: *mut Value,
            left: usize,
        }
        impl Drop for Fill {
            fn drop(&mut self) {
                while self.left > 0 {
                    // SAFETY: one of the slots not written yet.
                    unsafe {
                        self.next.write(Value::Null);
                        self.next = self.next.add(1);
                    }
                    self.left -= 1;
                }
            }
        }
        let (list, tail) = List::alloc(n);
        let mut fill = Fill { next: tail, left: n };
        for i in 0..n {
            let value = item(i);
            // SAFETY: slot `i`, the next of the `left` not written yet.
            unsafe {
                fill.next.write(value);
                fill.next = fill.next.add(1);
            }
            fill.left -= 1;
        }
        list
    }
    /// The items of a list that `this` alone holds, moved out to the end of
    /// `out` (the block keeps nulls, which own nothing); `false`, and nothing
    /// moved, when the list is shared.
    pub fn take_items_into(this: &mut Rc<List>, out: &mut Vec<Value>) -> bool {
        let Some(list) = Rc::get_mut(this) else { return false };
        let (items, n) = (list.items, list.len as usize);
        out.reserve(n);
        // SAFETY: the `n` items are moved bitwise into `out`'s reserved room,
        // then each slot of the block, which nobody else sees, is overwritten
        // with a null (no drop: its value now belongs to `out`).
        unsafe {
            let start = out.len();
            std::ptr::copy_nonoverlapping(items, out.as_mut_ptr().add(start), n);
            out.set_len(start + n);
            for i in 0..n {
                items.add(i).write(Value::Null);
            }
        }
        true
    }
}

/// Puts `value` in place of the thunk `t` in item `i` of a list, once `t` has
/// been forced to `value` (as [`Attrs::collapse`] does for a set's entry, under
/// the same rule). The slot is written through the list's item pointer (never
/// through a slice reference, which the compiler takes as read-only).
pub fn collapse_item(list: &List, i: usize, t: &Rc<Thunk>, value: &Value) {
    if i >= list.len() || keeps_thunk(t, value) {
        return;
    }
    // SAFETY: as in `Attrs::collapse`: the item is in bounds, written through
    // the block's item pointer, and the old thunk dropped once the slot is
    // consistent.
    let old = unsafe {
        let slot = list.items.add(i);
        match &*slot {
            Value::Thunk(u) if Rc::ptr_eq(u, t) => std::ptr::replace(slot, value.clone()),
            _ => return,
        }
    };
    drop(old);
}

/// Whether a slot must keep the forced thunk `t` (held by the slot and by its
/// forcer) rather than take its value: a list of one or two elements that
/// another holder shares through the thunk. CppNix stores such a list inside
/// the value that the thunk was, and prints it as «repeated» when it meets that
/// same value again (see `list_identity` in `print.rs`, which takes the
/// thunk's address as the list's identity); a slot of its own would print the
/// list again. An unshared thunk has no other holder to meet.
#[inline]
fn keeps_thunk(t: &Rc<Thunk>, value: &Value) -> bool {
    matches!(value, Value::List(l) if (1..=2).contains(&l.len())) && Rc::strong_count(t) > 2
}

/// Sets at most this large are searched entry by entry.
const LINEAR_MAX: usize = 8;

/// Sets at least this large are searched by interpolation first.
const INTERPOLATE_MIN: usize = 64;

/// The index of `name` among `entries` (sorted by symbol). A large set's
/// symbols are mostly ids created together (`listToAttrs` over generated
/// names, a package set), spread evenly between its first and last: a few
/// interpolation steps, each guessing the position from the id's place
/// between the range's ends, land on or next to the entry where a binary
/// search took some 16 dependent loads, most of them cache misses, in a set
/// of 40000. The rest of the range, if any, is searched in halves.
#[inline]
fn search_entries(entries: &[Attr], name: Sym) -> Option<usize> {
    let (mut lo, mut hi) = (0, entries.len());
    if hi <= LINEAR_MAX {
        // A small set (most: `{ name = ...; value = ...; }`, a package's
        // arguments) is scanned: a few predictable comparisons where the
        // halving's branches were taken at random.
        return entries.iter().position(|a| a.name == name);
    }
    if hi >= INTERPOLATE_MIN {
        let key = name.0 as u64;
        for _ in 0..4 {
            if hi - lo < INTERPOLATE_MIN {
                break;
            }
            let (first, last) = (entries[lo].name.0 as u64, entries[hi - 1].name.0 as u64);
            if key < first || key > last {
                return None;
            }
            if last == first {
                break;
            }
            let guess = lo + ((key - first) * (hi - 1 - lo) as u64 / (last - first)) as usize;
            match entries[guess].name.cmp(&name) {
                std::cmp::Ordering::Equal => return Some(guess),
                std::cmp::Ordering::Less => lo = guess + 1,
                std::cmp::Ordering::Greater => hi = guess,
            }
        }
    }
    entries[lo..hi].binary_search_by_key(&name, |a| a.name).ok().map(|i| lo + i)
}

/// Sets at least this large remember their name order in [`LAST_ORDER`].
const ORDER_MEMO_MIN: usize = 1024;

thread_local! {
    /// The symbols of the last large set put in name order, and that order: a
    /// set with the same symbols in the same order (a `mapAttrs` result and
    /// its input, a set given to `attrNames` and then to `attrValues`, as
    /// `mapAttrsToList` does) reuses it after one comparison of the symbols.
    static LAST_ORDER: std::cell::RefCell<(Vec<Sym>, Vec<u32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Sorts (prefix, index) pairs, which arrive in index order. Large sets
/// (`attrValues` of a package set) go through a least-significant-byte radix
/// sort, stable and so also by index within a prefix, that skips the bytes all
/// prefixes share (the leading `p` of `p0`..`p49999`, the zero padding).
fn sort_prefix_keys(keys: &mut Vec<(u64, u32)>) {
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    let mut counts = vec![[0u32; 256]; 8];
    for &(k, _) in keys.iter() {
        for (b, count) in counts.iter_mut().enumerate() {
            count[((k >> (8 * b)) & 0xff) as usize] += 1;
        }
    }
    let mut sorted = vec![(0u64, 0u32); keys.len()];
    for (b, count) in counts.iter().enumerate() {
        if count.iter().any(|&n| n as usize == keys.len()) {
            continue;
        }
        let mut next = [0u32; 256];
        let mut sum = 0;
        for (slot, &n) in next.iter_mut().zip(count.iter()) {
            *slot = sum;
            sum += n;
        }
        for &(k, i) in keys.iter() {
            let digit = ((k >> (8 * b)) & 0xff) as usize;
            sorted[next[digit] as usize] = (k, i);
            next[digit] += 1;
        }
        std::mem::swap(keys, &mut sorted);
    }
}

/// The first eight bytes of `name`, zero-padded, as a big-endian integer: for
/// two names whose prefixes differ, the integers compare as the names do.
#[inline]
fn name_prefix(name: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = name.len().min(8);
    bytes[..n].copy_from_slice(&name[..n]);
    u64::from_be_bytes(bytes)
}

/// An evaluation environment: the values of one scope and a link to the
/// enclosing one. `with` environments hold the (unforced) set in slot 0.
///
/// One block: the reference count, the parent, the length and capacity, then
/// the slots themselves (16 bytes each) in the block's tail (see
/// [`crate::rc::Block`]), so a variable's value is at a fixed offset from the
/// environment's address and an environment of any size is one allocation (a
/// one-argument lambda's is 40 bytes, as before; a `let` of four bindings 88
/// bytes where it took two blocks, 40 and 64).
///
/// The slots are reached through the `Rc<Env>` (its methods below), whose
/// pointer covers the whole block. Slots are only ever appended while the
/// environment is built, up to the capacity it was made with (a `rec` scope's
/// thunks may refer to slots not filled yet, see `get`), and replaced only by
/// `__overrides`, before anything else can see the scope, or by a forced
/// thunk's value. All access copies values in and out, never handing out a
/// reference into the slots, so no borrow of a slot is ever alive while one
/// is written.
///
/// A lambda's plain argument computed ahead of demand (integer arithmetic on
/// operands that were values already, `fib (n - 1)`: see `maybe_thunk_arg`)
/// is stored as its value, with [`PRECOMPUTED_ARG`] set in the capacity
/// word: CppNix would hold an unforced thunk there, which `[ x ]` or
/// `{ inherit x; }` would share and print as `<CODE>`. Reading the variable
/// where it is forced clears the mark (one instruction); capturing it unforced
/// (`get_captured`) turns the slot into a
/// [`ThunkState::Precomputed`] thunk that the capture shares, so forcing
/// either later shows in both, as CppNix's shared thunk would. Only
/// one-slot environments are ever marked, so the mark needs no slot number.
pub struct Env {
    pub parent: Option<Rc<Env>>,
    len: std::cell::Cell<u32>,
    /// The number of slots, and [`PRECOMPUTED_ARG`] in the top bit.
    capacity: std::cell::Cell<u32>,
}

/// The mark, in [`Env`]'s capacity word, of a one-slot environment whose value
/// was computed ahead of demand and has not been demanded yet.
const PRECOMPUTED_ARG: u32 = 1 << 31;

const _: () = assert!(std::mem::size_of::<Env>() == 16);

impl crate::rc::Block for Env {
    const HAS_TAIL: bool = true;
    #[inline(always)]
    fn tail_bytes(&self) -> usize {
        (self.capacity.get() & !PRECOMPUTED_ARG) as usize * std::mem::size_of::<Value>()
    }
    #[inline]
    unsafe fn drop_tail(&mut self, tail: *mut u8) {
        let values = tail as *mut Value;
        for i in 0..self.len.get() as usize {
            // SAFETY: the first `len` slots are initialised, and each is
            // released once, here, as the block is freed (most hold a value
            // shared with the caller: a decrement, inline).
            unsafe { release_in_place(values.add(i)) };
        }
    }
}

impl Env {
    /// An environment with room for `capacity` values, none filled yet.
    #[inline]
    pub fn new(parent: Option<Rc<Env>>, capacity: usize) -> Rc<Env> {
        let capacity = u32::try_from(capacity)
            .ok()
            .filter(|&c| c < PRECOMPUTED_ARG)
            .expect("an environment of fewer than 2^31 slots");
        Rc::new_with_tail(Env { parent, len: std::cell::Cell::new(0), capacity: std::cell::Cell::new(capacity) })
    }
    /// An environment with exactly one value (a lambda's plain argument).
    #[inline]
    pub fn with_one(parent: Rc<Env>, value: Value) -> Rc<Env> {
        Env::with_arg(parent, value, false)
    }
    /// `with_one` for a lambda's argument, marked as computed ahead of demand
    /// when `precomputed` (see [`Env`]).
    #[inline(always)]
    pub fn with_arg(parent: Rc<Env>, value: Value, precomputed: bool) -> Rc<Env> {
        let capacity = 1 | (precomputed as u32) << 31;
        let env = Rc::new_with_tail(Env {
            parent: Some(parent),
            len: std::cell::Cell::new(1),
            capacity: std::cell::Cell::new(capacity),
        });
        // SAFETY: the block has room for one slot, which is filled here.
        unsafe { (Rc::tail(&env) as *mut Value).write(value) };
        env
    }
    pub fn from_values(parent: Option<Rc<Env>>, values: Vec<Value>) -> Rc<Env> {
        let env = Env::new(parent, values.len());
        for v in values {
            env.push(v);
        }
        env
    }
}

/// The slots, through the reference: see [`Env`].
impl Rc<Env> {
    /// The slot `slot`, if filled.
    #[inline(always)]
    fn slot(&self, slot: usize) -> Option<*mut Value> {
        if slot < self.len.get() as usize {
            // SAFETY: within the filled slots of this block's tail.
            Some(unsafe { (Rc::tail(self) as *mut Value).add(slot) })
        } else {
            None
        }
    }
    /// The value in `slot`, or `None` while a recursive scope is still being built.
    #[inline]
    pub fn get(&self, slot: usize) -> Option<Value> {
        // SAFETY: single-threaded (`Rc`), and no reference into the slots outlives
        // this call (see the type's comment).
        self.slot(slot).map(|p| unsafe { (*p).clone() })
    }
    /// `get`, looking through a thunk that has been forced already (one
    /// reference-count increment instead of three on the most common read).
    /// A forced thunk found in the slot is replaced there by its value, so the
    /// thunk's block is freed once nothing else holds it (CppNix overwrites a
    /// forced thunk in place; this is the nearest we get with shared thunks).
    ///
    /// For a variable being forced: a value computed ahead of demand (see
    /// [`Env`]) is now demanded, and loses its mark.
    #[inline(always)]
    pub fn get_forced(&self, slot: usize) -> Option<Value> {
        let p = self.slot(slot)?;
        // SAFETY: as in `get`; the borrow of the slot ends before the old
        // value (the thunk) is dropped.
        let (old, value) = unsafe {
            match &*p {
                Value::Thunk(t) => match t.value() {
                    Some(v) => (std::ptr::replace(p, v.clone()), v),
                    None => return Some((*p).clone()),
                },
                v => {
                    self.demand();
                    return Some(v.clone());
                }
            }
        };
        drop(old);
        Some(value)
    }
    /// `get_forced` for a variable captured unforced (a list's element, an
    /// attribute, an argument passed on: [`crate::Eval::maybe_thunk`]): a
    /// value computed ahead of demand becomes the
    /// [`ThunkState::Precomputed`] thunk that CppNix's slot would hold, shared
    /// by the slot and the capture.
    #[inline(always)]
    pub fn get_captured(&self, slot: usize) -> Option<Value> {
        let p = self.slot(slot)?;
        if self.capacity.get() & PRECOMPUTED_ARG != 0 {
            return Some(self.capture_precomputed(p));
        }
        // SAFETY: as in `get_forced`.
        let (old, value) = unsafe {
            match &*p {
                Value::Thunk(t) => match t.value() {
                    Some(v) => (std::ptr::replace(p, v.clone()), v),
                    None => return Some((*p).clone()),
                },
                v => return Some(v.clone()),
            }
        };
        drop(old);
        Some(value)
    }
    #[cold]
    #[inline(never)]
    fn capture_precomputed(&self, p: *mut Value) -> Value {
        self.demand();
        // SAFETY: `p` is this environment's filled slot (see `get`); its value
        // moves into the thunk, and the slot is rewritten before anything else
        // can read it.
        unsafe {
            let thunk = Value::thunk(ThunkState::Precomputed(std::ptr::read(p)));
            std::ptr::write(p, thunk.clone());
            thunk
        }
    }
    /// Clears the mark of a value computed ahead of demand: it has been
    /// demanded, or given to a thunk (see [`Env`]).
    #[inline(always)]
    fn demand(&self) {
        self.capacity.set(self.capacity.get() & !PRECOMPUTED_ARG);
    }
    /// Replaces `slot`'s thunk `t`, just forced to `value`, by the value.
    #[inline]
    pub fn collapse(&self, slot: usize, t: &Rc<Thunk>, value: &Value) {
        let Some(p) = self.slot(slot) else { return };
        // SAFETY: as in `get_forced`.
        let old = unsafe {
            match &*p {
                Value::Thunk(u) if Rc::ptr_eq(u, t) => std::ptr::replace(p, value.clone()),
                _ => return,
            }
        };
        drop(old);
    }
    /// The integer in `slot` (directly or in a forced thunk), without touching
    /// any reference count; `None` for anything else (a value computed ahead
    /// of demand included, unless forced). With `FORCE` (the
    /// operand of an operator being evaluated, which forces it), a
    /// [`ThunkState::Precomputed`] integer counts too, and its thunk is
    /// marked forced.
    #[inline(always)]
    pub fn peek_int<const FORCE: bool>(&self, slot: usize) -> Option<i64> {
        // SAFETY: as in `get`; the borrows end before this returns, and the
        // state rewritten holds an integer, which needs no drop.
        match unsafe { &*self.slot(slot)? } {
            // A value computed ahead of demand (see [`Env`]) counts when
            // forced (and is demanded now); unforced it stays unready, as
            // CppNix's thunk would stay unforced.
            Value::Int(n) if FORCE => {
                self.demand();
                Some(*n)
            }
            Value::Int(_) if self.capacity.get() & PRECOMPUTED_ARG != 0 => None,
            Value::Int(n) => Some(*n),
            Value::Thunk(t) => match unsafe { &*t.0.get() } {
                ThunkState::Done(Value::Int(n)) => Some(*n),
                &ThunkState::Precomputed(Value::Int(n)) if FORCE => {
                    unsafe { std::ptr::write(t.0.get(), ThunkState::Done(Value::Int(n))) };
                    Some(n)
                }
                _ => None,
            },
            _ => None,
        }
    }
    /// `name` looked up in the set in `slot` when that set is a value already
    /// (directly or in a forced thunk): `Some(found)`; `None` when the slot holds
    /// anything else (an unforced thunk, not a set), for the caller to force.
    /// Only the found value's count is touched: a `with` lookup walks several
    /// scopes, and most names are found in none but the last.
    #[inline]
    pub fn lookup_in_forced_set(&self, slot: usize, name: Sym) -> Option<Option<Value>> {
        // SAFETY: as in `get`; the borrows end before this returns.
        let attrs = match unsafe { &*self.slot(slot)? } {
            Value::Attrs(a) => a,
            Value::Thunk(t) => match unsafe { &*t.0.get() } {
                ThunkState::Done(Value::Attrs(a)) => a,
                _ => return None,
            },
            _ => return None,
        };
        Some(attrs.get(name).cloned())
    }
    /// Whether `slot` has been filled.
    #[inline]
    pub fn has(&self, slot: usize) -> bool {
        slot < self.len.get() as usize
    }
    /// Fills the next slot. Panics past the capacity the environment was made
    /// with (the resolver sizes every scope; more would be a bug, never input).
    #[inline]
    pub fn push(&self, value: Value) {
        let len = self.len.get();
        let capacity = self.capacity.get() & !PRECOMPUTED_ARG;
        assert!(len < capacity, "environment slot {len} beyond its capacity {capacity}");
        // SAFETY: slot `len` is within the tail and not yet filled; nobody holds
        // a reference into the slots.
        unsafe { (Rc::tail(self) as *mut Value).add(len as usize).write(value) };
        self.len.set(len + 1);
    }
    /// Replaces the value of a filled slot (`__overrides`, the base environment).
    pub fn set(&self, slot: usize, value: Value) {
        let p = self.slot(slot).expect("a filled slot");
        // SAFETY: as in `get`. Dropped after the slot is consistent again:
        // dropping may run arbitrary destructors, never evaluation.
        let old = unsafe { std::ptr::replace(p, value) };
        drop(old);
    }
    pub fn len(&self) -> usize {
        self.len.get() as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Closure {
    pub lambda: &'static Lambda,
    pub env: Rc<Env>,
}

/// A built-in applied to fewer arguments than its arity.
pub struct PrimOpApp {
    pub op: &'static PrimOp,
    pub args: Vec<Value>,
}

/// What a thunk holds. 32 bytes: the variants without a `Value` in front live
/// beside the niche of `Apply`'s first value tag, so `Rc<Thunk>` is 40 bytes.
pub enum ThunkState {
    Pending { expr: &'static Expr, env: Rc<Env> },
    /// `f arg`, created lazily by builtins such as `map`.
    Apply { func: Value, arg: Value },
    /// `func name value` for the attribute at `index` of `call.attrs`: one
    /// attribute of a `mapAttrs` result, one thunk where `Apply` needed two
    /// (the partial application `func name` and its application to the
    /// value). Forced as `Apply` is, never black-holed.
    ApplyToAttr { call: Rc<MapAttrsCall>, index: u32 },
    /// `from.name`, for `inherit (from) name;` (`def` names the attribute and
    /// gives the position).
    Select { from: Value, def: &'static AttrDef },
    /// The value of an expression computed ahead of demand, because
    /// computing it could neither fail nor have an effect (integer arithmetic
    /// on operands that were values already, see `eager_int_arith`): it holds
    /// no environment and costs no evaluation when forced, yet until forced it
    /// reads as unevaluated (`<CODE>`, «thunk»), as CppNix's thunk would.
    /// Forcing turns it into `Done`.
    Precomputed(Value),
    /// Under evaluation: forcing it again is infinite recursion.
    BlackHole,
    Done(Value),
}

/// What the attributes of one `mapAttrs` result share (see
/// [`ThunkState::ApplyToAttr`]): the function and the set it maps.
pub struct MapAttrsCall {
    pub func: Value,
    pub attrs: Rc<Attrs>,
}

/// A lazy application's parts, copied out of its thunk: the function, its
/// argument, and for [`ThunkState::ApplyToAttr`] the attribute's name as the
/// first argument (the value then follows as `arg`).
pub struct LazyCall {
    pub func: Value,
    pub name: Option<Sym>,
    pub arg: Value,
}

/// A suspended computation, updated in place once forced. The state is only
/// read or replaced by the methods here and by [`crate::Eval`]'s forcing, which
/// moves the pending state out (leaving a black hole) before evaluating, so no
/// reference into the cell is alive while other code runs.
pub struct Thunk(UnsafeCell<ThunkState>);

impl Thunk {
    #[inline]
    pub fn new(state: ThunkState) -> Thunk {
        Thunk(UnsafeCell::new(state))
    }
    /// The value, if the thunk has been forced.
    #[inline(always)]
    pub fn value(&self) -> Option<Value> {
        // SAFETY: single-threaded; the reference ends within this call.
        match unsafe { &*self.0.get() } {
            ThunkState::Done(v) => Some(v.clone()),
            _ => None,
        }
    }
    /// The closure and argument of a lazy application of a lambda (what
    /// `map`, `genList` and `filter`'s callers mostly force), copied out as
    /// [`Thunk::apply_parts`] copies them.
    #[inline(always)]
    pub fn lambda_apply_parts(&self) -> Option<(Rc<Closure>, Value)> {
        // SAFETY: single-threaded; the reference ends within this call.
        match unsafe { &*self.0.get() } {
            ThunkState::Apply { func: Value::Lambda(c), arg } => Some((c.clone(), arg.clone())),
            _ => None,
        }
    }
    /// Stores the value of a forced lazy application, releasing its function
    /// and argument (inline: their references are mostly shared, so that is a
    /// decrement each). A re-entrant forcing may have finished the thunk
    /// already; its old value is then just replaced by the same one.
    #[inline(always)]
    pub fn finish_apply(&self, value: Value) {
        // SAFETY: single-threaded; the old state is moved out before the new
        // one is written, and dropped only once the thunk is consistent.
        let old = unsafe { std::ptr::replace(self.0.get(), ThunkState::Done(value)) };
        match old {
            ThunkState::Apply { func, arg } => {
                drop(func);
                drop(arg);
            }
            other => drop(other),
        }
    }
    /// The parts of a lazy application (`ThunkState::Apply`,
    /// `ThunkState::ApplyToAttr`), copied out: such a thunk is never
    /// black-holed, so its state stays put.
    #[inline]
    pub fn apply_parts(&self) -> Option<LazyCall> {
        // SAFETY: single-threaded; the reference ends within this call.
        match unsafe { &*self.0.get() } {
            ThunkState::Apply { func, arg } => Some(LazyCall { func: func.clone(), name: None, arg: arg.clone() }),
            ThunkState::ApplyToAttr { call, index } => {
                // `mapAttrs` flattens the set it shares here.
                let attr = &call.attrs.entries()[*index as usize];
                Some(LazyCall { func: call.func.clone(), name: Some(attr.name), arg: attr.value.clone() })
            }
            _ => None,
        }
    }
    /// Forces a [`ThunkState::Precomputed`] thunk: its value, the thunk now
    /// `Done`; `None` for any other state.
    #[inline]
    pub fn take_precomputed(&self) -> Option<Value> {
        // SAFETY: single-threaded; the reference ends before the state is
        // rewritten, and the value moves from the old state to the new one.
        unsafe {
            let ThunkState::Precomputed(v) = &*self.0.get() else { return None };
            let v = std::ptr::read(v);
            std::ptr::write(self.0.get(), ThunkState::Done(v.clone()));
            Some(v)
        }
    }
    #[inline]
    pub fn is_done(&self) -> bool {
        matches!(unsafe { &*self.0.get() }, ThunkState::Done(_))
    }
    #[inline]
    pub fn is_black_hole(&self) -> bool {
        matches!(unsafe { &*self.0.get() }, ThunkState::BlackHole)
    }
    /// Stores the value of a thunk under evaluation (a black hole, which needs no
    /// drop).
    #[inline]
    pub fn finish(&self, value: Value) {
        debug_assert!(self.is_black_hole());
        // SAFETY: single-threaded; the old state is a black hole, which owns nothing.
        unsafe { std::ptr::write(self.0.get(), ThunkState::Done(value)) }
    }
    /// The value of a forced thunk that no one else refers to, moved out (the
    /// thunk keeps `null`): a builtin may consume an argument only its own
    /// call holds (`listToAttrs (map f xs)`), which nobody can observe.
    pub fn take_unshared(this: &Rc<Thunk>) -> Option<Value> {
        if Rc::strong_count(this) != 1 {
            return None;
        }
        // SAFETY: single-threaded; the reference ends within this call.
        match unsafe { &mut *this.0.get() } {
            ThunkState::Done(v) => Some(std::mem::replace(v, Value::Null)),
            _ => None,
        }
    }
    /// Replaces the state, returning the old one (the caller drops it once the
    /// thunk is consistent).
    #[inline]
    pub fn replace(&self, state: ThunkState) -> ThunkState {
        unsafe { std::ptr::replace(self.0.get(), state) }
    }
}

// Everything else kept in an `Rc` has nothing after it in its block.
impl crate::rc::Block for Thunk {}
impl crate::rc::Block for Closure {}
impl crate::rc::Block for PrimOpApp {}
impl crate::rc::Block for MapAttrsCall {}
impl crate::rc::Block for ContextRepr {}
impl crate::rc::Block for crate::support::posix_regex::CompiledRegex {}

const _: () = assert!(std::mem::size_of::<ThunkState>() == 32);
// With its 4-byte count, a thunk or one-slot environment is one 40-byte block.
const _: () = assert!(std::mem::size_of::<ThunkState>() + 4 <= 40);

/// `repr(u64)` fixes the layout: an 8-byte tag, then every variant's field at
/// offset 8. So a pointer variant's `Rc` is always at offset 8, which lets
/// [`Value::clone`] take a reference without a branch per variant; and no
/// field sits among the tag's bytes (a one-byte tag put `Bool`'s field at
/// offset 1), so moving a value is two 8-byte moves rather than copies of odd
/// byte ranges that stall store forwarding.
#[repr(u64)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(NixString),
    /// An absolute, canonical path (bytes, never a context).
    Path(NixString),
    Attrs(Rc<Attrs>),
    List(Rc<List>),
    Lambda(Rc<Closure>),
    PrimOp(&'static PrimOp),
    PrimOpApp(Rc<PrimOpApp>),
    Thunk(Rc<Thunk>),
}

/// By hand rather than derived: the derived clone copied the immediate
/// variants' payloads byte by byte at odd offsets (a `bool` sits at offset 1),
/// through overlapping stack stores and loads that stalled store forwarding on
/// every value copied (`//` on a set of 500 spent ~19 cycles per attribute).
/// Taking one more reference for the pointer variants and then copying the 16
/// bytes whole is the same clone.
impl Clone for Value {
    #[inline(always)]
    fn clone(&self) -> Value {
        if self.is_counted() {
            // SAFETY: a counted variant holds an `Rc` at offset 8 (`repr(u64)`:
            // the tag, then the field), whose block starts with its
            // count; the reference taken here is owned by the copy made below.
            unsafe {
                let block = std::ptr::read((self as *const Value as *const u8).add(8) as *const *const u8);
                crate::rc::increment_count(block);
            }
        }
        // SAFETY: a pointer variant's reference was taken above and is now owned
        // by the copy; the other variants hold plain data or a `&'static`.
        unsafe { std::ptr::read(self) }
    }
}

/// Drops the value at `v` in place, with the common case inline: most
/// references in a dying set are shared with a live one (the sets `//` made
/// from it), and
/// releasing such a reference is a decrement at offset 0 of the block that the
/// value's field (always at offset 8) points to. Only a last reference goes
/// through the full drop, which frees the object.
///
/// # Safety
/// `v` must point to a valid value that is not used or dropped again.
#[inline(always)]
unsafe fn release_in_place(v: *mut Value) {
    // SAFETY: `v` is valid (the caller's promise); a counted variant holds an
    // `Rc` at offset 8 whose block starts with its count.
    unsafe {
        if !(*v).is_counted() {
            return;
        }
        let block = std::ptr::read((v as *const u8).add(8) as *const *const std::cell::Cell<u32>);
        let count = (*block).get();
        if count > 1 {
            (*block).set(count - 1);
        } else {
            std::ptr::drop_in_place(v);
        }
    }
}

impl Value {
    /// Whether the value holds an [`Rc`] (the variants a copy must count).
    #[inline(always)]
    fn is_counted(&self) -> bool {
        !matches!(self, Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::PrimOp(_))
    }

    pub fn string(bytes: impl AsRef<[u8]>) -> Value {
        Value::String(NixString::plain(bytes))
    }
    pub fn string_ctx(bytes: impl AsRef<[u8]>, context: Context) -> Value {
        Value::String(NixString::with_context(bytes, context))
    }
    pub fn path(bytes: impl AsRef<[u8]>) -> Value {
        Value::Path(NixString::plain(bytes))
    }
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(List::from_vec(items))
    }
    pub fn attrs(attrs: impl Into<Rc<Attrs>>) -> Value {
        Value::Attrs(attrs.into())
    }
    pub fn thunk(state: ThunkState) -> Value {
        Value::Thunk(Rc::new(Thunk::new(state)))
    }
    pub fn apply_thunk(func: Value, arg: Value) -> Value {
        Value::thunk(ThunkState::Apply { func, arg })
    }

    /// CppNix's `showType`: "an integer", "a set", ..., and for built-in
    /// functions their name ("the built-in function 'add'", as CppNix since 2.6).
    pub fn show_type(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Value::PrimOp(op) => format!("the built-in function '{}'", op.name).into(),
            Value::PrimOpApp(app) => format!("the partially applied built-in function '{}'", app.op.name).into(),
            other => other.show_type_static().into(),
        }
    }

    fn show_type_static(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a Boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::String(_) => "a string",
            Value::Path(_) => "a path",
            Value::Attrs(_) => "a set",
            Value::List(_) => "a list",
            Value::Lambda(_) => "a function",
            Value::PrimOp(_) => "a built-in function",
            Value::PrimOpApp(_) => "a partially applied built-in function",
            Value::Thunk(_) => "a thunk",
        }
    }

    /// `builtins.typeOf`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Path(_) => "path",
            Value::Attrs(_) => "set",
            Value::List(_) => "list",
            Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_) => "lambda",
            Value::Thunk(_) => "thunk",
        }
    }

    pub fn is_function(&self) -> bool {
        matches!(self, Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_))
    }
}

const _: () = assert!(std::mem::size_of::<Value>() == 16);
const _: () = assert!(std::mem::size_of::<Attr>() == 24);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_sets_are_sorted_by_name_bytes() {
        // Past the radix sort's threshold, with names sharing 8-byte prefixes,
        // shorter than 8 bytes, empty, and created out of name order.
        let mut names: Vec<Vec<u8>> = (0..3000).rev().map(|i| format!("p{}", i * 7919 % 3001).into_bytes()).collect();
        names.extend((0..300).map(|i| format!("sharedprefix-{i}").into_bytes()));
        names.extend([Vec::new(), b"\xff".to_vec(), b"p".to_vec()]);
        let mut attrs = AttrsBuilder::new();
        for name in &names {
            attrs.insert(Sym::new(name), Value::Null, Pos::NONE);
        }
        let attrs = attrs.finish();
        let got: Vec<&[u8]> = attrs.sorted_by_name().iter().map(|a| a.name.as_bytes()).collect();
        let mut want: Vec<&[u8]> = names.iter().map(|n| &n[..]).collect();
        want.sort();
        want.dedup();
        assert_eq!(got, want);
        // Again (the remembered order), and for a set of the same size with
        // one name changed, which must not reuse it.
        let again: Vec<&[u8]> = attrs.sorted_by_name().iter().map(|a| a.name.as_bytes()).collect();
        assert_eq!(again, want);
        let mut other = AttrsBuilder::new();
        for name in names.iter().skip(1).chain([&b"zzz-other".to_vec()]) {
            other.insert(Sym::new(name), Value::Null, Pos::NONE);
        }
        let other = other.finish();
        let got: Vec<&[u8]> = other.sorted_by_name().iter().map(|a| a.name.as_bytes()).collect();
        let mut want: Vec<&[u8]> = other.iter().map(|a| a.name.as_bytes()).collect();
        want.sort();
        assert_eq!(got, want);
    }
}

#[cfg(test)]
mod layer_tests {
    use super::*;

    fn flat(pairs: &[(u32, i64)]) -> Rc<Attrs> {
        Attrs::from_sorted(pairs.iter().map(|&(n, v)| Attr { name: Sym(n), value: Value::Int(v), pos: Pos::NONE }).collect())
    }
    fn ints(set: &Attrs) -> Vec<(u32, i64)> {
        set.iter().map(|a| (a.name.0, if let Value::Int(n) = a.value { n } else { -1 })).collect()
    }

    /// A layer answers look-ups, length and iteration as the flat merge would:
    /// its own names hide the base's, the rest of the base shows through.
    #[test]
    fn a_layer_reads_as_the_merged_set() {
        let base = flat(&[(1, 10), (3, 30), (5, 50), (7, 70)]);
        let layer = Attrs::layer(&base, vec![Attr { name: Sym(3), value: Value::Int(33), pos: Pos::NONE }, Attr { name: Sym(8), value: Value::Int(80), pos: Pos::NONE }]);
        assert_eq!(ints(&layer), vec![(1, 10), (3, 33), (5, 50), (7, 70), (8, 80)]);
        assert_eq!(layer.len(), 5);
        assert!(!layer.is_flat());
        assert!(matches!(layer.get(Sym(3)), Some(Value::Int(33))));
        assert!(matches!(layer.get(Sym(7)), Some(Value::Int(70))));
        assert!(layer.get(Sym(2)).is_none());
        // A layer over a layer.
        let top = Attrs::layer(&layer, vec![Attr { name: Sym(1), value: Value::Int(11), pos: Pos::NONE }]);
        assert_eq!(ints(&top), vec![(1, 11), (3, 33), (5, 50), (7, 70), (8, 80)]);
        assert_eq!(top.len(), 5);
        assert_eq!(top.iter().len(), 5);
    }

    /// Chains of small merges stop layering at the depth bound.
    #[test]
    fn layers_are_bounded_in_depth() {
        let mut set = flat(&[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8)]);
        for round in 0..3 * MAX_LAYER_DEPTH {
            let top = vec![Attr { name: Sym(1), value: Value::Int(100 + round as i64), pos: Pos::NONE }];
            set = if set.wants_layer(top.len()) { Attrs::layer(&set, top) } else {
                let mut all: Vec<Attr> = set.iter().cloned().collect();
                all[0] = top.into_iter().next().unwrap();
                Attrs::from_sorted(all)
            };
            assert!(set.depth() <= MAX_LAYER_DEPTH);
        }
        assert!(matches!(set.get(Sym(1)), Some(Value::Int(n)) if *n == 100 + 3 * MAX_LAYER_DEPTH as i64 - 1));
        assert_eq!(set.len(), 8);
    }
}

#[cfg(test)]
mod search_tests {
    use super::*;

    /// `search_entries` finds exactly what a binary search finds, for dense,
    /// clustered and sparse symbol ids, present and absent.
    #[test]
    fn interpolation_search_agrees_with_binary_search() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (n, spread) in [(10, 1), (64, 1), (65, 1), (1000, 1), (1000, 3), (5000, 1000), (3000, 0)] {
            let mut ids: Vec<u32> = (0..n)
                .map(|i| match spread {
                    // Clusters: runs of consecutive ids far apart.
                    0 => (i / 100) as u32 * 100_000 + (i % 100) as u32,
                    s => (i as u64 * s + rand() % s) as u32,
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let entries: Vec<Attr> = ids.iter().map(|&id| Attr { name: Sym(id), value: Value::Null, pos: Pos::NONE }).collect();
            let max = ids.last().copied().unwrap_or(0) + 10;
            for probe in (0..200).map(|_| (rand() % max as u64) as u32).chain(ids.iter().copied()).chain([0, max]) {
                let want = entries.binary_search_by_key(&Sym(probe), |a| a.name).ok();
                assert_eq!(search_entries(&entries, Sym(probe)), want, "n {n} spread {spread} probe {probe}");
            }
        }
    }
}

#[cfg(test)]
mod clone_tests {
    use super::*;

    /// `Value::clone` finds each variant's `Rc` at a fixed offset: check that it
    /// counts exactly the reference it copies, for every counted variant.
    #[test]
    fn clone_counts_the_reference_of_every_counted_variant() {
        fn check<T: crate::rc::Block>(rc: &Rc<T>, make: impl Fn(Rc<T>) -> Value) {
            let v = make(rc.clone());
            assert_eq!(Rc::strong_count(rc), 2);
            let copy = v.clone();
            assert_eq!(Rc::strong_count(rc), 3);
            drop(copy);
            drop(v);
            assert_eq!(Rc::strong_count(rc), 1);
        }
        for make in [Value::String, Value::Path] {
            // A string's block is counted as an `Rc`'s is.
            let s = NixString::plain(b"s");
            let v = make(s.clone());
            assert_eq!(NixString::strong_count(&s), 2);
            let copy = v.clone();
            assert_eq!(NixString::strong_count(&s), 3);
            drop(copy);
            drop(v);
            assert_eq!(NixString::strong_count(&s), 1);
        }
        check(&Attrs::empty(), Value::Attrs);
        check(&List::from_vec(vec![Value::Int(1)]), Value::List);
        check(&Rc::new(Thunk::new(ThunkState::Done(Value::Null))), Value::Thunk);
        let int = Value::Int(7).clone();
        assert!(matches!(int, Value::Int(7)));
    }

    /// A list's block holds its items: built from a vector or item by item,
    /// read through the slice, its items moved out only when unshared, and
    /// each item released once when it dies.
    #[test]
    fn lists_hold_and_release_their_items() {
        let witness = NixString::plain(b"w");
        let list = List::from_fn(3, |i| if i == 1 { Value::String(witness.clone()) } else { Value::Int(i as i64) });
        assert_eq!(list.len(), 3);
        assert!(matches!(list[2], Value::Int(2)));
        assert_eq!(NixString::strong_count(&witness), 2);
        let mut shared = list.clone();
        let mut items = Vec::new();
        assert!(!List::take_items_into(&mut shared, &mut items), "a shared list keeps its items");
        assert!(items.is_empty());
        drop(list);
        assert!(List::take_items_into(&mut shared, &mut items), "now unshared");
        assert!(matches!(items[..], [Value::Int(0), Value::String(_), Value::Int(2)]));
        assert!(matches!(shared[1], Value::Null));
        drop(shared);
        assert_eq!(NixString::strong_count(&witness), 2, "the moved item lives on");
        drop(items);
        assert_eq!(NixString::strong_count(&witness), 1);
        let from_vec = List::from_vec(vec![Value::String(witness.clone()), Value::Null]);
        assert_eq!(from_vec.len(), 2);
        assert!(List::from_vec(Vec::new()).is_empty());
        drop(from_vec);
        assert_eq!(NixString::strong_count(&witness), 1);
    }

    /// A dying set or environment releases each value once: shared objects
    /// lose one reference, objects it held alone are freed.
    #[test]
    fn sets_and_environments_release_each_value_once() {
        let shared = Attrs::empty();
        let alone = List::from_vec(vec![Value::Int(1)]);
        let alone_witness = NixString::plain(b"w");
        let mut attrs = AttrsBuilder::new();
        attrs.push(Attr { name: Sym(1), value: Value::Attrs(shared.clone()), pos: Pos::NONE });
        attrs.push(Attr { name: Sym(2), value: Value::Int(3), pos: Pos::NONE });
        attrs.push(Attr { name: Sym(3), value: Value::List(alone), pos: Pos::NONE });
        let inner = Value::Thunk(Rc::new(Thunk::new(ThunkState::Done(Value::String(alone_witness.clone())))));
        attrs.push(Attr { name: Sym(4), value: inner, pos: Pos::NONE });
        let attrs = attrs.finish();
        assert_eq!(Rc::strong_count(&shared), 2);
        assert_eq!(NixString::strong_count(&alone_witness), 2);
        // A layer over it holds its own values and its base.
        let layer = Attrs::layer(&attrs, vec![Attr { name: Sym(2), value: Value::Attrs(shared.clone()), pos: Pos::NONE }]);
        assert_eq!(Rc::strong_count(&shared), 3);
        assert_eq!(Rc::strong_count(&attrs), 2);
        drop(attrs);
        assert!(matches!(layer.get(Sym(4)), Some(Value::Thunk(_))));
        assert_eq!(NixString::strong_count(&alone_witness), 2);
        drop(layer);
        assert_eq!(Rc::strong_count(&shared), 1);
        // The thunk was held by the set alone, so it was freed with its value.
        assert_eq!(NixString::strong_count(&alone_witness), 1);

        let env = Env::new(None, 2);
        env.push(Value::Attrs(shared.clone()));
        env.push(Value::String(alone_witness.clone()));
        let child = Env::with_one(env.clone(), Value::Attrs(shared.clone()));
        assert_eq!(Rc::strong_count(&shared), 3);
        drop(env);
        assert_eq!(Rc::strong_count(&shared), 3, "the child keeps its parent alive");
        drop(child);
        assert_eq!(Rc::strong_count(&shared), 1);
        assert_eq!(NixString::strong_count(&alone_witness), 1);
    }

    #[test]
    fn immediates_clone_as_themselves() {
        assert!(matches!(Value::Bool(true).clone(), Value::Bool(true)));
    }
}
/// An evaluation's result is returned in two registers: the error shares the
/// value's tag byte (its niche), so `Result<Value>` is no larger than a value.
const _: () = assert!(std::mem::size_of::<crate::error::Result<Value>>() == 16);

#[cfg(test)]
mod env_tests {
    use super::*;

    /// An environment's slots live in its block's tail: each value put there
    /// is read back, replaced and released exactly once, whatever the size.
    #[test]
    fn slots_hold_their_values_and_release_them_once() {
        let shared = List::from_vec(vec![Value::Int(7)]);
        for capacity in [0usize, 1, 2, 5, 9] {
            let parent = Env::new(None, 0);
            let env = Env::new(Some(parent.clone()), capacity);
            for i in 0..capacity {
                assert!(!env.has(i));
                env.push(Value::List(shared.clone()));
            }
            assert_eq!(env.len(), capacity);
            assert_eq!(Rc::strong_count(&shared), 1 + capacity);
            if capacity > 0 {
                assert!(matches!(env.get(capacity - 1), Some(Value::List(l)) if Rc::ptr_eq(&l, &shared)));
                env.set(0, Value::Int(1));
                assert!(matches!(env.get(0), Some(Value::Int(1))));
                assert_eq!(Rc::strong_count(&shared), capacity);
            }
            assert!(env.get(capacity).is_none());
            assert_eq!(Rc::strong_count(&parent), 2);
            drop(env);
            assert_eq!(Rc::strong_count(&shared), 1);
            assert_eq!(Rc::strong_count(&parent), 1);
        }
        let one = Env::with_one(Env::new(None, 0), Value::List(shared.clone()));
        assert_eq!(one.len(), 1);
        assert_eq!(Rc::strong_count(&shared), 2);
        drop(one);
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    #[should_panic(expected = "beyond its capacity")]
    fn a_slot_past_the_capacity_is_refused() {
        let env = Env::new(None, 1);
        env.push(Value::Null);
        env.push(Value::Null);
    }

    #[test]
    fn a_precomputed_argument_reads_as_unforced_until_demanded() {
        let parent = Env::new(None, 0);
        // Unforced, it is not ready for early arithmetic; forced, it is, and
        // stays so.
        let env = Env::with_arg(parent.clone(), Value::Int(2), true);
        assert_eq!(env.peek_int::<false>(0), None);
        assert_eq!(env.peek_int::<true>(0), Some(2));
        assert_eq!(env.peek_int::<false>(0), Some(2));
        assert!(matches!(env.get_captured(0), Some(Value::Int(2))));
        // A variable read clears the mark too.
        let env = Env::with_arg(parent.clone(), Value::Int(3), true);
        assert!(matches!(env.get_forced(0), Some(Value::Int(3))));
        assert_eq!(env.peek_int::<false>(0), Some(3));
        // Captured unforced: one Precomputed thunk, shared by the capture and
        // the slot, which now holds no mark; forcing it shows in both.
        let env = Env::with_arg(parent.clone(), Value::Int(4), true);
        let Some(Value::Thunk(captured)) = env.get_captured(0) else { panic!("a thunk") };
        assert!(matches!(unsafe { &*captured.0.get() }, ThunkState::Precomputed(Value::Int(4))));
        assert!(matches!(env.get_captured(0), Some(Value::Thunk(t)) if Rc::ptr_eq(&t, &captured)));
        assert_eq!(env.peek_int::<false>(0), None);
        assert_eq!(env.peek_int::<true>(0), Some(4));
        assert!(captured.is_done());
        // Unmarked, a plain argument is a value like any other; the mark does
        // not change the block's size when it is freed.
        let env = Env::with_arg(parent, Value::Int(5), false);
        assert_eq!(env.peek_int::<false>(0), Some(5));
        assert!(matches!(env.get_captured(0), Some(Value::Int(5))));
        let _marked_and_dropped = Env::with_arg(env, Value::Int(6), true);
    }
}
