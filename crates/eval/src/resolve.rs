//! Static scope resolution: after parsing, every variable gets its location
//! (`depth` environments up, slot `slot`), or is marked as a run-time lookup in
//! the enclosing `with` scopes. Static bindings always win over `with`, however
//! deeply nested the `with` is, as in CppNix. A variable that is neither bound
//! nor under a `with` is an "undefined variable" error here, before evaluation.

use std::collections::HashMap;

use crate::ast::*;
use crate::error::ParseError;
use crate::pos::Pos;
use crate::symbol::{FxBuild, Sym};

pub enum Scope {
    Static { names: Vec<Sym>, map: Option<HashMap<Sym, u32, FxBuild>> },
    /// A `with` scope, and where its `with` keyword is (for its error frame).
    With(Pos),
}

impl Scope {
    pub fn new_static(names: Vec<Sym>) -> Scope {
        let map = if names.len() > 8 {
            Some(names.iter().enumerate().map(|(i, s)| (*s, i as u32)).collect())
        } else {
            None
        };
        Scope::Static { names, map }
    }
    fn find(&self, name: Sym) -> Option<u32> {
        match self {
            Scope::Static { map: Some(m), .. } => m.get(&name).copied(),
            Scope::Static { names, map: None } => names.iter().rposition(|s| *s == name).map(|i| i as u32),
            Scope::With(_) => None,
        }
    }
}

pub struct Resolver<'a> {
    pub scopes: Vec<&'a Scope>,
    owned: Vec<Box<Scope>>,
}

fn undefined(v: &Var) -> ParseError {
    ParseError { msg: format!("undefined variable '{}'", v.name), pos: v.pos }
}

/// Resolves `e` against the given outer scopes (innermost last).
pub fn resolve(e: &mut Expr, outer: &[&Scope]) -> Result<(), ParseError> {
    let mut r = Resolver { scopes: outer.to_vec(), owned: Vec::new() };
    let _ = &r.owned;
    r.expr(e)
}

impl<'a> Resolver<'a> {
    fn lookup(&self, v: &mut Var) -> Result<(), ParseError> {
        let n = self.scopes.len();
        let mut with_depths: Vec<(u32, Pos)> = Vec::new();
        for (i, scope) in self.scopes.iter().enumerate().rev() {
            let depth = (n - 1 - i) as u32;
            match scope {
                Scope::With(pos) => with_depths.push((depth, *pos)),
                s => {
                    if let Some(slot) = s.find(v.name) {
                        v.loc = VarLoc::Local { depth, slot };
                        return Ok(());
                    }
                }
            }
        }
        match with_depths.is_empty() {
            false => {
                // Leaked like the tree that holds it.
                v.loc = VarLoc::With {
                    depths: Box::leak(with_depths.into_boxed_slice()),
                    cache: Box::leak(Box::default()),
                };
                Ok(())
            }
            true => Err(undefined(v)),
        }
    }

    /// Whether `name` is bound statically in a scope other than the base
    /// environment (index 0), i.e. a builtin like `__sub` is shadowed.
    fn shadows_builtin(&self, name: Sym) -> bool {
        for (i, scope) in self.scopes.iter().enumerate().rev() {
            if scope.find(name).is_some() {
                return i != 0;
            }
        }
        false
    }

    /// `a < b`, `a - b`, `a * b`, `a / b` and `-a` are calls of `__lessThan`,
    /// `__sub`, `__mul`, `__div` in CppNix; when one of those names is rebound,
    /// the operator becomes a real call of that binding.
    fn desugar_shadowed(&self, e: &mut Expr) {
        let name = match e {
            Expr::BinOp { op: BinOp::Lt, .. } => "__lessThan",
            Expr::BinOp { op: BinOp::Sub, .. } | Expr::Neg { .. } => "__sub",
            Expr::BinOp { op: BinOp::Mul, .. } => "__mul",
            Expr::BinOp { op: BinOp::Div, .. } => "__div",
            _ => return,
        };
        let sym = Sym::from_str(name);
        if !self.shadows_builtin(sym) {
            return;
        }
        let old = std::mem::replace(e, Expr::CurPos(crate::pos::Pos::NONE));
        let (args, pos) = match old {
            Expr::BinOp { lhs, rhs, pos, .. } => (vec![*lhs, *rhs], pos),
            Expr::Neg { expr, pos } => (vec![Expr::Const(crate::value::Value::Int(0)), *expr], pos),
            other => {
                *e = other;
                return;
            }
        };
        let func = Expr::Var(Var { name: sym, pos, loc: VarLoc::Unresolved });
        *e = Expr::Call { func: Box::new(func), args, pos };
    }

    fn with_scope<T>(&mut self, scope: Scope, f: impl FnOnce(&mut Resolver<'_>) -> T) -> T {
        // The scope only lives for the duration of `f`; a child resolver borrows it.
        let mut child = Resolver { scopes: Vec::with_capacity(self.scopes.len() + 1), owned: Vec::new() };
        child.scopes.extend(self.scopes.iter().copied());
        child.scopes.push(&scope);
        f(&mut child)
    }

    fn attr_names(&mut self, path: &mut [AttrName]) -> Result<(), ParseError> {
        for a in path {
            if let AttrName::Dynamic(e) = a {
                self.expr(e)?;
            }
        }
        Ok(())
    }

    fn expr(&mut self, e: &mut Expr) -> Result<(), ParseError> {
        fit(e);
        if matches!(e, Expr::Neg { .. } | Expr::BinOp { op: BinOp::Lt | BinOp::Sub | BinOp::Mul | BinOp::Div, .. }) {
            self.desugar_shadowed(e);
        }
        match e {
            Expr::Const(_) | Expr::CurPos(_) => Ok(()),
            Expr::Var(v) => self.lookup(v),
            Expr::Select { expr, path, default, .. } => {
                self.expr(expr)?;
                self.attr_names(path)?;
                if let Some(d) = default {
                    self.expr(d)?;
                }
                Ok(())
            }
            Expr::HasAttr { expr, path, .. } => {
                self.expr(expr)?;
                self.attr_names(path)
            }
            Expr::Attrs(a) => {
                // Definitions sorted by symbol: the evaluator then builds sorted sets
                // directly, and a `rec` slot is the index in this order.
                a.attrs.sort_by_key(|d| d.name);
                if a.rec {
                    self.rec_attrs(a, None)
                } else {
                    for def in &mut a.attrs {
                        self.expr(&mut def.value)?;
                    }
                    for d in &mut a.dynamic {
                        self.expr(&mut d.name)?;
                        self.expr(&mut d.value)?;
                    }
                    for f in &mut a.inherit_from {
                        self.expr(f)?;
                    }
                    Ok(())
                }
            }
            Expr::Let { attrs, body } => {
                attrs.attrs.sort_by_key(|d| d.name);
                self.rec_attrs(attrs, Some(body))
            }
            Expr::List(items) => {
                for i in items {
                    self.expr(i)?;
                }
                Ok(())
            }
            Expr::Lambda(l) => {
                let mut names = Vec::with_capacity(l.env_size());
                if let Some(f) = &l.formals {
                    names.extend(f.entries.iter().map(|f| f.name));
                }
                if let Some(a) = l.arg {
                    names.push(a);
                }
                let scope = Scope::new_static(names);
                let lambda = &mut **l;
                self.with_scope(scope, |r| {
                    if let Some(f) = &mut lambda.formals {
                        for formal in &mut f.entries {
                            if let Some(d) = &mut formal.default {
                                r.expr(d)?;
                            }
                        }
                    }
                    r.expr(&mut lambda.body)
                })
            }
            Expr::Call { func, args, .. } => {
                self.expr(func)?;
                for a in args {
                    self.expr(a)?;
                }
                Ok(())
            }
            Expr::With { attrs, body, pos } => {
                self.expr(attrs)?;
                let pos = *pos;
                self.with_scope(Scope::With(pos), |r| r.expr(body))
            }
            Expr::If { cond, then, else_, .. } => {
                self.expr(cond)?;
                self.expr(then)?;
                self.expr(else_)
            }
            Expr::Assert { cond, body, .. } => {
                self.expr(cond)?;
                self.expr(body)
            }
            Expr::Not { expr, .. } | Expr::Neg { expr, .. } => self.expr(expr),
            Expr::BinOp { lhs, rhs, .. } => {
                self.expr(lhs)?;
                self.expr(rhs)
            }
            Expr::ConcatStrings { parts, .. } => {
                for (_, p) in parts {
                    self.expr(p)?;
                }
                Ok(())
            }
        }
    }

    /// `rec { ... }` and `let ... in body`: one new scope with every static name;
    /// plain `inherit x;` still refers to the enclosing scope.
    fn rec_attrs(&mut self, a: &mut AttrsExpr, body: Option<&mut Box<Expr>>) -> Result<(), ParseError> {
        for def in &mut a.attrs {
            if def.kind == AttrKind::Inherited {
                self.expr(&mut def.value)?;
            }
        }
        let names: Vec<Sym> = a.attrs.iter().map(|d| d.name).collect();
        let scope = Scope::new_static(names);
        self.with_scope(scope, |r| {
            for def in &mut a.attrs {
                if def.kind == AttrKind::Plain {
                    r.expr(&mut def.value)?;
                }
            }
            for d in &mut a.dynamic {
                r.expr(&mut d.name)?;
                r.expr(&mut d.value)?;
            }
            for f in &mut a.inherit_from {
                r.expr(f)?;
            }
            if let Some(b) = body {
                r.expr(b)?;
            }
            Ok(())
        })
    }
}

/// Gives back the spare capacity of `e`'s own vectors: the parser grows them
/// by doubling (a call's arguments start with room for four), and the tree is
/// kept for the whole evaluation, so the slack of a large file's syntax tree
/// would otherwise be a good part of its memory.
fn fit(e: &mut Expr) {
    match e {
        Expr::Select { path, .. } | Expr::HasAttr { path, .. } => path.shrink_to_fit(),
        Expr::Attrs(a) | Expr::Let { attrs: a, .. } => {
            a.attrs.shrink_to_fit();
            a.dynamic.shrink_to_fit();
            a.inherit_from.shrink_to_fit();
        }
        Expr::List(items) | Expr::Call { args: items, .. } => items.shrink_to_fit(),
        Expr::Lambda(l) => {
            if let Some(f) = &mut l.formals {
                f.entries.shrink_to_fit();
            }
        }
        Expr::ConcatStrings { parts, .. } => parts.shrink_to_fit(),
        _ => {}
    }
}
