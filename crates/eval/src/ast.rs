//! The syntax tree, which is also the evaluator's IR: after parsing, the
//! resolver ([`crate::resolve`]) fills in every variable's static location, and
//! the tree is leaked (`&'static Expr`) so thunks can point into it cheaply, as
//! CppNix's never-freed ASTs do.

use crate::pos::Pos;
use crate::symbol::Sym;
use crate::value::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VarLoc {
    /// Not resolved yet (only between parsing and resolution).
    Unresolved,
    /// `depth` environments up, slot `slot`.
    Local { depth: u32, slot: u32 },
    /// Looked up at run time in the enclosing `with` scopes: `depths` lists how
    /// many environments up each one is, innermost first (a static chain, so a
    /// `with` environment needs no link to the next one). `cache` remembers
    /// the last lookup's result (see [`WithCache`]).
    With { depths: &'static [(u32, Pos)], cache: &'static WithCache },
}

/// The last result of one `with`-bound variable's lookup, with the innermost
/// `with` environment it was found under. Environments never change their
/// parent, and a `with` environment's set, once forced, never changes: the same
/// innermost environment means the same chain of sets and so the same result.
/// The environment is held (a strong reference) so that its address cannot be
/// reused by another while it is remembered; that keeps at most one chain alive
/// per variable of the program. Code under `with lib;`-style scopes (nixpkgs'
/// `lib/modules.nix` has seven nested ones) otherwise searches every enclosing
/// set on every use of a name.
#[derive(Default)]
pub struct WithCache(std::cell::UnsafeCell<Option<(crate::value::Rc<crate::value::Env>, Value)>>);

impl WithCache {
    /// The remembered value, if `scope` is the environment it was found under.
    #[inline]
    pub fn get(&self, scope: &crate::value::Rc<crate::value::Env>) -> Option<Value> {
        // SAFETY: single-threaded (values are `Rc`); the borrow ends here.
        match unsafe { &*self.0.get() } {
            Some((env, v)) if crate::value::Rc::ptr_eq(env, scope) => Some(v.clone()),
            _ => None,
        }
    }
    #[inline]
    pub fn set(&self, scope: &crate::value::Rc<crate::value::Env>, value: &Value) {
        // SAFETY: as in `get`; the old entry is dropped after the write, and
        // dropping it runs no evaluation that could reach this cache.
        let old = unsafe { std::mem::replace(&mut *self.0.get(), Some((scope.clone(), value.clone()))) };
        drop(old);
    }
}

impl std::fmt::Debug for WithCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WithCache")
    }
}

impl PartialEq for WithCache {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

pub struct Var {
    pub name: Sym,
    pub pos: Pos,
    pub loc: VarLoc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Eq,
    Neq,
    /// `a < b`; `>` `<=` `>=` are rewritten with swapped operands and/or `!`.
    Lt,
    And,
    Or,
    Impl,
    Update,
    Concat,
    Add,
    Sub,
    Mul,
    Div,
}

/// Where a selection `e.name` last found its first attribute: the index in the
/// set's (top) entries. Sets met at one selection mostly share their layout
/// (`builtins.x` and `lib.x` are the same set each time; `attrs.pname` meets
/// sets built by the same code), so checking the entry at that index first
/// replaces most searches by one comparison. Only a hint: it is checked
/// against the name, so any value is safe.
#[derive(Default)]
pub struct SelectHint(std::cell::Cell<u32>);

impl SelectHint {
    #[inline]
    pub fn get(&self) -> usize {
        self.0.get() as usize
    }
    #[inline]
    pub fn set(&self, index: usize) {
        self.0.set(index as u32)
    }
}

pub enum AttrName {
    Static(Sym),
    Dynamic(Expr),
}

pub enum Expr {
    /// A literal (int, float, string without context, path).
    Const(Value),
    Var(Var),
    Select { expr: Box<Expr>, path: Vec<AttrName>, default: Option<Box<Expr>>, pos: Pos, hint: SelectHint },
    HasAttr { expr: Box<Expr>, path: Vec<AttrName>, pos: Pos },
    Attrs(Box<AttrsExpr>),
    List(Vec<Expr>),
    Lambda(Box<Lambda>),
    /// `f a b c`: one node for a chain of applications.
    Call { func: Box<Expr>, args: Vec<Expr>, pos: Pos },
    Let { attrs: Box<AttrsExpr>, body: Box<Expr> },
    With { attrs: Box<Expr>, body: Box<Expr>, pos: Pos },
    If { cond: Box<Expr>, then: Box<Expr>, else_: Box<Expr>, pos: Pos },
    Assert { cond: Box<Expr>, body: Box<Expr>, pos: Pos },
    Not { expr: Box<Expr>, pos: Pos },
    Neg { expr: Box<Expr>, pos: Pos },
    BinOp { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr>, pos: Pos },
    /// String interpolation or interpolated path. `force_string` is false for
    /// paths, where the first part decides the result type.
    ConcatStrings { force_string: bool, parts: Vec<(Pos, Expr)>, pos: Pos },
    CurPos(Pos),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AttrKind {
    Plain,
    /// `inherit x;`: evaluated in the enclosing scope, even in `rec` and `let`.
    Inherited,
    /// `inherit (e) x;`: select `x` from the `index`-th inherit-from expression.
    InheritFrom(u32),
}

pub struct AttrDef {
    pub name: Sym,
    pub value: Expr,
    pub kind: AttrKind,
    pub pos: Pos,
}

pub struct DynamicAttr {
    pub name: Expr,
    pub value: Expr,
    pub pos: Pos,
}

pub struct AttrsExpr {
    pub rec: bool,
    /// Static attributes in definition order; the evaluator sorts them.
    pub attrs: Vec<AttrDef>,
    pub dynamic: Vec<DynamicAttr>,
    /// The `e` of each `inherit (e) ...;`, evaluated once per set.
    pub inherit_from: Vec<Expr>,
    pub pos: Pos,
}

pub struct Formal {
    pub name: Sym,
    pub default: Option<Expr>,
    pub pos: Pos,
    /// Where the argument set of the last call had this attribute: a
    /// function is mostly called with sets of one layout.
    pub hint: SelectHint,
}

pub struct Formals {
    pub entries: Vec<Formal>,
    pub ellipsis: bool,
    /// The attributes of `builtins.functionArgs` of this function in name
    /// order, made on its first call: always the same, and asked for once per
    /// package by `callPackage`. Each call still gets a set of its own (a
    /// shared one would print as «repeated» where CppNix prints it again).
    pub function_args: std::cell::OnceCell<Vec<crate::value::Attr>>,
}

pub struct Lambda {
    /// The name it is bound to (`f = x: ...;`), for messages.
    pub name: Option<Sym>,
    /// `x: ...` or the `@args` name.
    pub arg: Option<Sym>,
    pub formals: Option<Formals>,
    pub body: Expr,
    pub pos: Pos,
}

impl Lambda {
    /// Number of environment slots: one per formal plus one for the argument name.
    pub fn env_size(&self) -> usize {
        self.formals.as_ref().map_or(0, |f| f.entries.len()) + self.arg.is_some() as usize
    }
}

impl Expr {
    pub fn pos(&self) -> Pos {
        match self {
            Expr::Var(v) => v.pos,
            Expr::Select { pos, .. }
            | Expr::HasAttr { pos, .. }
            | Expr::Call { pos, .. }
            | Expr::With { pos, .. }
            | Expr::If { pos, .. }
            | Expr::Assert { pos, .. }
            | Expr::Not { pos, .. }
            | Expr::Neg { pos, .. }
            | Expr::BinOp { pos, .. }
            | Expr::ConcatStrings { pos, .. } => *pos,
            Expr::CurPos(p) => *p,
            Expr::Attrs(a) => a.pos,
            Expr::Lambda(l) => l.pos,
            Expr::Let { body, .. } => body.pos(),
            _ => Pos::NONE,
        }
    }
}
