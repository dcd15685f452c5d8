//! A recursive-descent (Pratt for operators) parser for the Nix language that
//! follows CppNix's grammar (`parser.y`) and builds [`crate::ast::Expr`] directly.
//!
//! Operator precedence, loosest first: `->` (right), `||`, `&&`, `==` `!=`
//! (non-associative), `<` `>` `<=` `>=` (non-associative), `//` (right), `!`,
//! `+` `-`, `*` `/`, `++` (right), `?` (non-associative), unary `-`.
//! Application binds tighter than all of them and selection tighter still.

use std::collections::HashMap;
use std::path::Path;

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{Lexer, Tok, Token};
use crate::pos::Pos;
use crate::symbol::{FxBuild, Sym};
use crate::value::{NixString, Value};

/// How many tokens past the current one the parser looks at (deciding
/// whether `{` opens formals takes three).
const LOOKAHEAD: usize = 3;

/// The ring of tokens the parser sees: a power of two of at least the current
/// token, the two before it and the [`LOOKAHEAD`] after it.
const RING: usize = 8;
const _: () = assert!(RING.is_power_of_two() && RING >= LOOKAHEAD + 3);

pub struct Parser<'a> {
    lexer: Lexer<'a>,
    /// Token `j` is in `ring[j % RING]` while `i - 2 <= j <= i + LOOKAHEAD`
    /// (the two before the current one `i` are kept for `unbump` and the
    /// previous token's position). A file's tokens take several times its
    /// size, so they are lexed as the parser advances, as CppNix's parser asks
    /// its lexer, rather than all at once.
    ring: [Token; RING],
    /// How many tokens have been lexed.
    lexed: usize,
    /// The index of the last token (the end of file), once lexed.
    last: Option<usize>,
    /// A lexical error and where its token starts: the tokens end there with
    /// an end-of-file token, and a parse that reaches it reports this error.
    lex_error: Option<(ParseError, u32)>,
    i: usize,
    file: u32,
    base_dir: &'a Path,
    home: Option<Vec<u8>>,
    /// Whether the last `bump` moved forward (it never moves past the end).
    advanced: bool,
    src: &'a [u8],
    /// Set by [`Parser::parse_select`] when it just parsed `f or` (a call of
    /// `f` on a variable named `or`): its position and source span.
    cursed_or: Option<(Pos, u32, u32)>,
    /// The experimental feature `pipe-operators` is on: `|>` and `<|` parse.
    pipe_operators: bool,
}

/// What the parser accepts beyond the stable language.
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    /// `|>` and `<|` (experimental feature `pipe-operators`).
    pub pipe_operators: bool,
}

/// Parses `src` (registered as file `file`); relative paths are resolved against
/// `base_dir`.
pub fn parse(src: &[u8], file: u32, base_dir: &Path) -> Result<Expr, ParseError> {
    parse_with_features(src, file, base_dir, Features::default())
}

/// [`parse`], with the experimental syntax in `features` accepted.
pub fn parse_with_features(src: &[u8], file: u32, base_dir: &Path, features: Features) -> Result<Expr, ParseError> {
    let home = std::env::var_os("HOME").map(|h| {
        use std::os::unix::ffi::OsStrExt;
        h.as_bytes().to_vec()
    });
    let mut p = Parser {
        lexer: Lexer::new(src, file),
        ring: std::array::from_fn(|_| Token { tok: Tok::Eof, start: 0, end: 0 }),
        lexed: 0,
        last: None,
        lex_error: None,
        i: 0,
        file,
        base_dir,
        home,
        advanced: false,
        src,
        cursed_or: None,
        pipe_operators: features.pipe_operators,
    };
    p.fill();
    let result = p.parse_expr().and_then(|e| {
        if p.peek() != &Tok::Eof {
            return Err(p.unexpected_expecting("end of file"));
        }
        Ok(e)
    });
    match p.lex_error.take() {
        None => result,
        // A parse that got as far as the bad token stopped there: the lexical
        // error is the one to report (an error found earlier stands).
        Some((lex_error, start)) => match result {
            Err(parse_error) if parse_error.pos < Pos::new(file, start) => Err(parse_error),
            _ => Err(lex_error),
        },
    }
}

/// What current CppNix's parser says it expected where a binding of a plain
/// set (`{ ... }`) or of `let ... in` cannot start. Its LALR tables reduce
/// the bindings so far (or none) to `binds` by default before looking at a
/// token no binding starts with, and in that state only `inherit` (and for
/// `let`, `in`) can follow: `{ 1.5 = x; }` is "unexpected floating-point
/// literal, expecting 'inherit'". `None` for `rec { ... }` and `let { ... }`,
/// whose attribute-name list stands.
fn binding_start_expected(end: &Tok, rec: bool) -> Option<&'static str> {
    match (end, rec) {
        (Tok::RBrace, false) => Some("'inherit'"),
        (Tok::In, _) => Some("'in' or 'inherit'"),
        _ => None,
    }
}

/// CppNix's `makeCall` for the pipe operators: an argument piped into a call
/// joins that call's arguments (`x |> f a` is `f a x`, at `f a`'s position);
/// anything else is called at the operator.
fn make_call(op_pos: Pos, func: Expr, arg: Expr) -> Expr {
    match func {
        Expr::Call { func, mut args, pos } => {
            args.push(arg);
            Expr::Call { func, args, pos }
        }
        func => Expr::Call { func: Box::new(func), args: vec![arg], pos: op_pos },
    }
}

/// Token names as current CppNix's bison grammar prints them in syntax errors
/// (its token aliases: "identifier", "'if'"; 2.8 printed ID, IF).
fn tok_name(t: &Tok) -> String {
    match t {
        Tok::Id => "identifier".into(),
        Tok::Int(_) => "integer".into(),
        Tok::Float(_) => "floating-point literal".into(),
        Tok::StrOpen | Tok::StrClose => "'\"'".into(),
        Tok::StrText(_) | Tok::PathText(_) => "string".into(),
        Tok::IndText { .. } => "indented string".into(),
        Tok::IndOpen => "start of an indented string".into(),
        Tok::IndClose => "end of an indented string".into(),
        Tok::DollarCurly => "'${'".into(),
        Tok::Path(_) => "path".into(),
        Tok::HPath(_) => "'~/…' path".into(),
        Tok::PathEnd => "end of path".into(),
        Tok::SPath(_) => "'<…>' path".into(),
        Tok::Uri(_) => "URI".into(),
        Tok::If => "'if'".into(),
        Tok::Then => "'then'".into(),
        Tok::Else => "'else'".into(),
        Tok::Assert => "'assert'".into(),
        Tok::With => "'with'".into(),
        Tok::Let => "'let'".into(),
        Tok::In => "'in'".into(),
        Tok::Rec => "'rec'".into(),
        Tok::Inherit => "'inherit'".into(),
        Tok::OrKw => "'or'".into(),
        Tok::Ellipsis => "'...'".into(),
        Tok::Eq => "'=='".into(),
        Tok::Neq => "'!='".into(),
        Tok::Leq => "'<='".into(),
        Tok::Geq => "'>='".into(),
        Tok::And => "'&&'".into(),
        Tok::Or => "'||'".into(),
        Tok::Impl => "'->'".into(),
        Tok::PipeInto => "'|>'".into(),
        Tok::PipeFrom => "'<|'".into(),
        Tok::Update => "'//'".into(),
        Tok::Concat => "'++'".into(),
        Tok::Lt => "'<'".into(),
        Tok::Gt => "'>'".into(),
        Tok::Plus => "'+'".into(),
        Tok::Minus => "'-'".into(),
        Tok::Star => "'*'".into(),
        Tok::Slash => "'/'".into(),
        Tok::Not => "'!'".into(),
        Tok::Dot => "'.'".into(),
        Tok::Question => "'?'".into(),
        Tok::At => "'@'".into(),
        Tok::Colon => "':'".into(),
        Tok::Semi => "';'".into(),
        Tok::Comma => "','".into(),
        Tok::Assign => "'='".into(),
        Tok::LBrace => "'{'".into(),
        Tok::RBrace => "'}'".into(),
        Tok::LBrack => "'['".into(),
        Tok::RBrack => "']'".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Eof => "end of file".into(),
    }
}

/// Canonicalises an absolute path lexically: removes `.`, `..` and repeated or
/// trailing slashes (no symlink resolution), like CppNix's `canonPath`.
pub fn canon_path(path: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(path.len());
    for comp in path.split(|c| *c == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                while let Some(c) = out.pop() {
                    if c == b'/' {
                        break;
                    }
                }
            }
            c => {
                out.push(b'/');
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn const_str(s: Vec<u8>) -> Expr {
    Expr::Const(Value::String(NixString::plain(s)))
}

impl<'a> Parser<'a> {
    /// Lexes up to [`LOOKAHEAD`] tokens past the current one.
    #[inline]
    fn fill(&mut self) {
        if self.last.is_none() && self.lexed <= self.i + LOOKAHEAD {
            self.lex_ahead();
        }
    }
    #[inline(never)]
    fn lex_ahead(&mut self) {
        while self.last.is_none() && self.lexed <= self.i + LOOKAHEAD {
            let token = match self.lexer.next_token() {
                Ok(token) => token,
                Err(error) => {
                    let start = self.lexer.token_start() as u32;
                    self.lex_error = Some((error, start));
                    Token { tok: Tok::Eof, start, end: start }
                }
            };
            if matches!(token.tok, Tok::Eof) {
                self.last = Some(self.lexed);
            }
            self.ring[self.lexed % RING] = token;
            self.lexed += 1;
        }
    }
    /// The token at index `j`, which must be in the ring.
    #[inline]
    fn token(&self, j: usize) -> &Token {
        debug_assert!(j < self.lexed && j + 2 >= self.i && j <= self.i + LOOKAHEAD);
        &self.ring[j % RING]
    }
    fn peek(&self) -> &Tok {
        &self.token(self.i).tok
    }
    /// The bytes of the identifier token at index `j` (its source span).
    fn id_at(&self, j: usize) -> &'a [u8] {
        let t = self.token(j);
        &self.src[t.start as usize..t.end as usize]
    }
    fn peek_at(&self, n: usize) -> &Tok {
        debug_assert!(n <= LOOKAHEAD);
        let j = match self.last {
            Some(last) => (self.i + n).min(last),
            None => self.i + n,
        };
        &self.token(j).tok
    }
    /// Current CppNix's deprecation warning (NixOS/nix#11121) for an `f or`
    /// just parsed as an argument, a list element or an `or` default, where
    /// its meaning will change once `or` is a plain identifier. It shows the
    /// source text in parentheses. CppNix's message goes through a format
    /// string, and for a text with a `%` (as `"%s" or`) it prints no warning;
    /// neither does this.
    fn warn_cursed_or(&mut self) {
        let Some((pos, start, end)) = self.cursed_or.take() else { return };
        let text = String::from_utf8_lossy(self.src.get(start as usize..end as usize).unwrap_or_default());
        if text.contains('%') {
            return;
        }
        let at = pos.resolve().map(|location| location.to_string()).unwrap_or_default();
        eprintln!(
            "warning: at {at}: This expression uses `or` as an identifier in a way that will change in a future Nix release.\n\
             Wrap this entire expression in parentheses to preserve its current meaning:\n    ({text})\n\
             Give feedback at https://github.com/NixOS/nix/pull/11121"
        );
    }

    fn pos(&self) -> Pos {
        Pos::new(self.file, self.token(self.i).start)
    }
    fn bump(&mut self) -> Tok {
        let t = self.token(self.i).tok.clone();
        self.skip();
        t
    }
    /// `bump` without a copy of the token (a string's text would be copied).
    #[inline]
    fn skip(&mut self) {
        self.advanced = self.last != Some(self.i);
        if self.advanced {
            self.i += 1;
            self.fill();
        }
    }
    /// Steps back over a token taken by `bump` (the end of file is never consumed).
    fn unbump(&mut self) {
        if self.advanced {
            self.i -= 1;
            self.advanced = false;
        }
    }

    fn unexpected_expecting(&self, what: &str) -> ParseError {
        if let Some(e) = self.pipe_disabled() {
            return e;
        }
        ParseError { msg: format!("syntax error, unexpected {}, expecting {}", tok_name(self.peek()), what), pos: self.pos() }
    }

    fn unexpected(&self) -> ParseError {
        if let Some(e) = self.pipe_disabled() {
            return e;
        }
        ParseError { msg: format!("syntax error, unexpected {}", tok_name(self.peek())), pos: self.pos() }
    }

    /// CppNix's lexer refuses `|>` and `<|` wherever they occur while the
    /// feature is off, so a pipe token the grammar does not expect is
    /// reported as the disabled feature, not as a syntax error.
    fn pipe_disabled(&self) -> Option<ParseError> {
        if self.pipe_operators || !matches!(self.peek(), Tok::PipeInto | Tok::PipeFrom) {
            return None;
        }
        Some(self.err_at(
            self.pos(),
            "experimental Nix feature 'pipe-operators' is disabled; add '--extra-experimental-features pipe-operators' to enable it"
                .into(),
        ))
    }

    fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        if *self.peek() == t {
            self.skip();
            Ok(())
        } else {
            if let Some(e) = self.pipe_disabled() {
                return Err(e);
            }
            Err(ParseError {
                msg: format!("syntax error, unexpected {}, expecting {}", tok_name(self.peek()), tok_name(&t)),
                pos: self.pos(),
            })
        }
    }
    fn err_at(&self, pos: Pos, msg: String) -> ParseError {
        ParseError { msg, pos }
    }

    pub fn parse_expr(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Id if matches!(self.peek_at(1), Tok::Colon) => {
                let name = self.id_at(self.i);
                self.skip();
                self.skip();
                let body = self.parse_expr()?;
                Ok(Expr::Lambda(Box::new(Lambda { name: None, arg: Some(Sym::new(name)), formals: None, body, pos })))
            }
            Tok::Id if matches!(self.peek_at(1), Tok::At) => {
                let name = self.id_at(self.i);
                self.skip();
                self.skip();
                if *self.peek() != Tok::LBrace {
                    return Err(self.unexpected());
                }
                self.skip();
                let formals = self.parse_formals()?;
                self.expect(Tok::Colon)?;
                let body = self.parse_expr()?;
                self.make_lambda(Some(Sym::new(name)), formals, body, pos)
            }
            Tok::LBrace if self.looks_like_formals() => {
                self.skip();
                let formals = self.parse_formals()?;
                let mut arg = None;
                if *self.peek() == Tok::At {
                    self.skip();
                    let j = self.i;
                    match self.bump() {
                        Tok::Id => arg = Some(Sym::new(self.id_at(j))),
                        _ => {
                            self.unbump();
                            return Err(self.unexpected());
                        }
                    }
                }
                self.expect(Tok::Colon)?;
                let body = self.parse_expr()?;
                self.make_lambda(arg, formals, body, pos)
            }
            Tok::Assert => {
                self.skip();
                let cond = self.parse_expr()?;
                self.expect(Tok::Semi)?;
                let body = self.parse_expr()?;
                Ok(Expr::Assert { cond: Box::new(cond), body: Box::new(body), pos })
            }
            Tok::With => {
                self.skip();
                let attrs = self.parse_expr()?;
                self.expect(Tok::Semi)?;
                let body = self.parse_expr()?;
                Ok(Expr::With { attrs: Box::new(attrs), body: Box::new(body), pos })
            }
            Tok::Let if *self.peek_at(1) != Tok::LBrace => {
                self.skip();
                let attrs = self.parse_binds(Tok::In, false, pos)?;
                self.expect(Tok::In)?;
                let body = self.parse_expr()?;
                if let Some(d) = attrs.dynamic.first() {
                    // Current CppNix reports it at the `let` (2.8: at the attribute).
                    let _ = d;
                    return Err(self.err_at(pos, "dynamic attributes not allowed in let".into()));
                }
                Ok(Expr::Let { attrs: Box::new(attrs), body: Box::new(body) })
            }
            Tok::If => {
                self.skip();
                let cond = self.parse_expr()?;
                self.expect(Tok::Then)?;
                let then = self.parse_expr()?;
                self.expect(Tok::Else)?;
                let else_ = self.parse_expr()?;
                Ok(Expr::If { cond: Box::new(cond), then: Box::new(then), else_: Box::new(else_), pos })
            }
            _ => self.parse_pipe(),
        }
    }

    /// The pipe operators, below every other operator (CppNix's `expr_if`
    /// level): `f <| g <| x` is `f (g x)` (right-associative), `x |> g |> f`
    /// is `f (g x)` (left-associative), and the two do not mix in one chain.
    /// Each operand is an operator expression (no `if`, lambda, `let`...).
    fn parse_pipe(&mut self) -> Result<Expr, ParseError> {
        let first = self.parse_op(1)?;
        match self.peek() {
            Tok::PipeFrom => {
                let op_pos = self.pos();
                if let Some(e) = self.pipe_disabled() {
                    return Err(e);
                }
                self.skip();
                let rhs = self.parse_pipe_from_rhs()?;
                Ok(make_call(op_pos, first, rhs))
            }
            Tok::PipeInto => {
                let mut lhs = first;
                while *self.peek() == Tok::PipeInto {
                    let op_pos = self.pos();
                    if let Some(e) = self.pipe_disabled() {
                        return Err(e);
                    }
                    self.skip();
                    let func = self.parse_op(1)?;
                    lhs = make_call(op_pos, func, lhs);
                }
                if *self.peek() == Tok::PipeFrom {
                    return Err(self.unexpected());
                }
                Ok(lhs)
            }
            _ => Ok(first),
        }
    }

    /// The right-hand side of `<|`: an operand, or an operand applied to the
    /// rest of a `<|` chain.
    fn parse_pipe_from_rhs(&mut self) -> Result<Expr, ParseError> {
        let operand = self.parse_op(1)?;
        match self.peek() {
            Tok::PipeFrom => {
                let op_pos = self.pos();
                self.skip();
                let rhs = self.parse_pipe_from_rhs()?;
                Ok(make_call(op_pos, operand, rhs))
            }
            Tok::PipeInto => Err(self.unexpected()),
            _ => Ok(operand),
        }
    }

    fn make_lambda(&mut self, arg: Option<Sym>, formals: Formals, body: Expr, pos: Pos) -> Result<Expr, ParseError> {
        let mut seen: Vec<Sym> = Vec::with_capacity(formals.entries.len());
        for f in &formals.entries {
            if seen.contains(&f.name) {
                return Err(self.err_at(f.pos, format!("duplicate formal function argument '{}'", f.name)));
            }
            seen.push(f.name);
        }
        if let Some(a) = arg {
            if seen.contains(&a) {
                return Err(self.err_at(pos, format!("duplicate formal function argument '{a}'")));
            }
        }
        Ok(Expr::Lambda(Box::new(Lambda { name: None, arg, formals: Some(formals), body, pos })))
    }

    /// Decides whether `{` starts a formal argument list rather than a set.
    fn looks_like_formals(&self) -> bool {
        match self.peek_at(1) {
            Tok::RBrace => matches!(self.peek_at(2), Tok::Colon | Tok::At),
            Tok::Ellipsis => true,
            Tok::Id => match self.peek_at(2) {
                Tok::Comma | Tok::Question => true,
                Tok::RBrace => matches!(self.peek_at(3), Tok::Colon | Tok::At),
                _ => false,
            },
            _ => false,
        }
    }

    /// Parses formals after the `{`, through the closing `}`.
    fn parse_formals(&mut self) -> Result<Formals, ParseError> {
        let mut entries = Vec::new();
        let mut ellipsis = false;
        loop {
            match self.peek().clone() {
                Tok::RBrace => {
                    self.skip();
                    break;
                }
                Tok::Ellipsis => {
                    self.skip();
                    ellipsis = true;
                    self.expect(Tok::RBrace)?;
                    break;
                }
                Tok::Id => {
                    let name = self.id_at(self.i);
                    let pos = self.pos();
                    self.skip();
                    let default = if *self.peek() == Tok::Question {
                        self.skip();
                        Some(self.parse_expr()?)
                    } else {
                        None
                    };
                    let bare = default.is_none();
                    entries.push(Formal { name: Sym::new(name), default, pos, hint: SelectHint::default() });
                    match self.peek() {
                        Tok::Comma => {
                            self.skip();
                        }
                        Tok::RBrace => {}
                        // Current CppNix's grammar names the one token it expects here.
                        _ if bare => return Err(self.unexpected_expecting("'}'")),
                        _ => return Err(self.unexpected()),
                    }
                }
                _ => return Err(self.unexpected()),
            }
        }
        Ok(Formals { entries, ellipsis, function_args: Default::default() })
    }

    fn infix(&self) -> Option<(u8, u8)> {
        // (precedence, associativity: 0 left, 1 right, 2 none)
        Some(match self.peek() {
            Tok::Impl => (1, 1),
            Tok::Or => (2, 0),
            Tok::And => (3, 0),
            Tok::Eq | Tok::Neq => (4, 2),
            Tok::Lt | Tok::Gt | Tok::Leq | Tok::Geq => (5, 2),
            Tok::Update => (6, 1),
            Tok::Plus | Tok::Minus => (8, 0),
            Tok::Star | Tok::Slash => (9, 0),
            Tok::Concat => (10, 1),
            // Non-associative in the grammar, but bison never sees a conflict
            // after an attribute path, so `a ? b ? c` parses (left to right).
            Tok::Question => (11, 0),
            _ => return None,
        })
    }

    fn parse_op(&mut self, min: u8) -> Result<Expr, ParseError> {
        let start = self.pos();
        let mut lhs = match self.peek() {
            Tok::Not => {
                self.skip();
                let e = self.parse_op(8)?;
                Expr::Not { expr: Box::new(e), pos: start }
            }
            Tok::Minus => {
                self.skip();
                let e = self.parse_op(12)?;
                Expr::Neg { expr: Box::new(e), pos: start }
            }
            _ => self.parse_app()?,
        };
        while let Some((prec, assoc)) = self.infix() {
            if prec < min {
                break;
            }
            // Current CppNix positions a binary operation at its operator (2.8
            // used the start of the left operand).
            let op_pos = self.pos();
            let op_tok = self.bump();
            if op_tok == Tok::Question {
                let path = self.parse_attrpath()?;
                lhs = Expr::HasAttr { expr: Box::new(lhs), path, pos: start };
            } else {
                let rhs_pos = self.pos();
                let rhs = self.parse_op(if assoc == 1 { prec } else { prec + 1 })?;
                let (l, r) = (Box::new(lhs), Box::new(rhs));
                let bin = |op, lhs, rhs| Expr::BinOp { op, lhs, rhs, pos: op_pos };
                lhs = match op_tok {
                    Tok::Impl => bin(BinOp::Impl, l, r),
                    Tok::Or => bin(BinOp::Or, l, r),
                    Tok::And => bin(BinOp::And, l, r),
                    Tok::Eq => bin(BinOp::Eq, l, r),
                    Tok::Neq => bin(BinOp::Neq, l, r),
                    Tok::Lt => bin(BinOp::Lt, l, r),
                    Tok::Gt => bin(BinOp::Lt, r, l),
                    Tok::Leq => Expr::Not { expr: Box::new(bin(BinOp::Lt, r, l)), pos: start },
                    Tok::Geq => Expr::Not { expr: Box::new(bin(BinOp::Lt, l, r)), pos: start },
                    Tok::Update => bin(BinOp::Update, l, r),
                    Tok::Concat => bin(BinOp::Concat, l, r),
                    Tok::Plus => {
                        Expr::ConcatStrings { force_string: false, parts: vec![(start, *l), (rhs_pos, *r)], pos: op_pos }
                    }
                    Tok::Minus => bin(BinOp::Sub, l, r),
                    Tok::Star => bin(BinOp::Mul, l, r),
                    Tok::Slash => bin(BinOp::Div, l, r),
                    _ => unreachable!("infix() only returns operators"),
                };
            }
            if assoc == 2 {
                if let Some((p2, _)) = self.infix() {
                    if p2 == prec {
                        return Err(self.unexpected());
                    }
                }
            }
        }
        Ok(lhs)
    }

    fn starts_simple(&self) -> bool {
        match self.peek() {
            Tok::Id
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::StrOpen
            | Tok::IndOpen
            | Tok::Path(_)
            | Tok::HPath(_)
            | Tok::SPath(_)
            | Tok::Uri(_)
            | Tok::LParen
            | Tok::LBrace
            | Tok::LBrack
            | Tok::Rec => true,
            Tok::Let => *self.peek_at(1) == Tok::LBrace,
            _ => false,
        }
    }

    fn parse_app(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let func = self.parse_select()?;
        // `f or` at the head of an application keeps its meaning once `or`
        // becomes a plain identifier: no warning.
        self.cursed_or = None;
        if !self.starts_simple() {
            return Ok(func);
        }
        let mut args = Vec::new();
        while self.starts_simple() {
            args.push(self.parse_select()?);
            self.warn_cursed_or();
        }
        Ok(Expr::Call { func: Box::new(func), args, pos })
    }

    fn parse_select(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let e = self.parse_simple()?;
        match self.peek() {
            Tok::Dot => {
                self.skip();
                let path = self.parse_attrpath()?;
                let default = if *self.peek() == Tok::OrKw {
                    self.skip();
                    let default = self.parse_select()?;
                    self.warn_cursed_or();
                    Some(Box::new(default))
                } else {
                    None
                };
                Ok(Expr::Select { expr: Box::new(e), path, default, pos, hint: SelectHint::default() })
            }
            Tok::OrKw => {
                // `f or`: CppNix applies `f` to a variable named `or` (nixpkgs once
                // had a function of that name).
                let or_end = self.token(self.i).end;
                self.skip();
                self.cursed_or = Some((pos, pos.file_and_offset().map_or(0, |(_, o)| o), or_end));
                // CppNix gives the variable the position of the whole rule.
                let arg = Expr::Var(Var { name: Sym::from_str("or"), pos, loc: VarLoc::Unresolved });
                Ok(Expr::Call { func: Box::new(e), args: vec![arg], pos })
            }
            _ => Ok(e),
        }
    }

    fn parse_attrpath(&mut self) -> Result<Vec<AttrName>, ParseError> {
        let mut path = vec![self.parse_attr_name()?];
        while *self.peek() == Tok::Dot {
            self.skip();
            path.push(self.parse_attr_name()?);
        }
        Ok(path)
    }

    fn parse_attr_name(&mut self) -> Result<AttrName, ParseError> {
        match self.peek().clone() {
            Tok::Id => {
                let n = self.id_at(self.i);
                self.skip();
                Ok(AttrName::Static(Sym::new(n)))
            }
            Tok::OrKw => {
                self.skip();
                Ok(AttrName::Static(Sym::from_str("or")))
            }
            Tok::StrOpen => {
                self.skip();
                let e = self.parse_string_body()?;
                Ok(match e {
                    Expr::Const(Value::String(s)) => AttrName::Static(Sym::new(s.as_bytes())),
                    other => AttrName::Dynamic(other),
                })
            }
            Tok::DollarCurly => {
                self.skip();
                let e = self.parse_expr()?;
                self.expect(Tok::RBrace)?;
                Ok(match e {
                    Expr::Const(Value::String(s)) => AttrName::Static(Sym::new(s.as_bytes())),
                    other => AttrName::Dynamic(other),
                })
            }
            _ => Err(self.unexpected_expecting("identifier or 'or' or '${' or '\"'")),
        }
    }

    /// After `"`: string parts through the closing `"`.
    fn parse_string_body(&mut self) -> Result<Expr, ParseError> {
        let pos = Pos::new(self.file, self.token(self.i.saturating_sub(1)).start);
        let mut parts: Vec<(Pos, Expr)> = Vec::new();
        let mut literal_only = true;
        loop {
            let part_pos = self.pos();
            match self.bump() {
                Tok::StrText(t) => parts.push((part_pos, const_str(t))),
                Tok::DollarCurly => {
                    literal_only = false;
                    parts.push((part_pos, self.parse_expr()?));
                    self.expect(Tok::RBrace)?;
                }
                Tok::StrClose => break,
                _ => {
                    self.unbump();
                    return Err(self.unexpected());
                }
            }
        }
        if literal_only {
            let mut s = Vec::new();
            for (_, p) in parts {
                if let Expr::Const(Value::String(t)) = p {
                    s.extend_from_slice(t.as_bytes());
                }
            }
            return Ok(const_str(s));
        }
        Ok(Expr::ConcatStrings { force_string: true, parts, pos })
    }

    /// After `''`: the indented string through the closing `''`, with CppNix's
    /// indentation stripping.
    fn parse_ind_string(&mut self, pos: Pos) -> Result<Expr, ParseError> {
        enum Part {
            Text(Vec<u8>, bool),
            Interp(Expr),
        }
        let mut parts = Vec::new();
        loop {
            let part_pos = self.pos();
            match self.bump() {
                Tok::IndText { text, indented } => parts.push((part_pos, Part::Text(text, indented))),
                Tok::DollarCurly => {
                    parts.push((part_pos, Part::Interp(self.parse_expr()?)));
                    self.expect(Tok::RBrace)?;
                }
                Tok::IndClose => break,
                _ => {
                    self.unbump();
                    return Err(self.unexpected());
                }
            }
        }
        if parts.is_empty() {
            return Ok(const_str(Vec::new()));
        }
        // The minimum indentation over lines that have something besides spaces.
        let mut at_start = true;
        let mut min_indent = usize::MAX;
        let mut cur_indent = 0;
        for (_, p) in &parts {
            match p {
                Part::Text(t, true) => {
                    for &c in t {
                        if at_start {
                            if c == b' ' {
                                cur_indent += 1;
                            } else if c == b'\n' {
                                cur_indent = 0;
                            } else {
                                at_start = false;
                                min_indent = min_indent.min(cur_indent);
                            }
                        } else if c == b'\n' {
                            at_start = true;
                            cur_indent = 0;
                        }
                    }
                }
                _ => {
                    if at_start {
                        at_start = false;
                        min_indent = min_indent.min(cur_indent);
                    }
                }
            }
        }
        if min_indent == usize::MAX {
            min_indent = 1000000;
        }
        let mut out: Vec<(Pos, Expr)> = Vec::new();
        at_start = true;
        let mut cur_dropped = 0;
        let n = parts.len();
        for (idx, (part_pos, p)) in parts.into_iter().enumerate() {
            match p {
                Part::Interp(e) => {
                    at_start = false;
                    cur_dropped = 0;
                    out.push((part_pos, e));
                }
                Part::Text(t, _) => {
                    let mut s2 = Vec::with_capacity(t.len());
                    for &c in &t {
                        if at_start {
                            if c == b' ' {
                                if cur_dropped >= min_indent {
                                    s2.push(c);
                                }
                                cur_dropped += 1;
                            } else if c == b'\n' {
                                cur_dropped = 0;
                                s2.push(c);
                            } else {
                                at_start = false;
                                cur_dropped = 0;
                                s2.push(c);
                            }
                        } else {
                            s2.push(c);
                            if c == b'\n' {
                                at_start = true;
                            }
                        }
                    }
                    // Drop a last line consisting only of spaces.
                    if idx == n - 1 {
                        if let Some(p) = s2.iter().rposition(|c| *c == b'\n') {
                            if s2[p + 1..].iter().all(|c| *c == b' ') {
                                s2.truncate(p + 1);
                            }
                        }
                    }
                    // Current CppNix drops empty pieces (`''\n  ${x}''` is
                    // `(x)`, not `("" + x)`).
                    if !s2.is_empty() {
                        out.push((part_pos, const_str(s2)));
                    }
                }
            }
        }
        if out.is_empty() {
            return Ok(const_str(Vec::new()));
        }
        // One literal piece is that string; anything else, even a lone
        // interpolated path, is a concatenation (and so a string).
        if out.len() == 1 && matches!(out[0].1, Expr::Const(Value::String(_))) {
            return Ok(out.pop().expect("one part").1);
        }
        Ok(Expr::ConcatStrings { force_string: true, parts: out, pos })
    }

    fn abs_path(&self, text: &[u8]) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        if text.starts_with(b"/") {
            canon_path(text)
        } else {
            let mut full = self.base_dir.as_os_str().as_bytes().to_vec();
            full.push(b'/');
            full.extend_from_slice(text);
            canon_path(&full)
        }
    }

    fn parse_path(&mut self, first: Tok, pos: Pos) -> Result<Expr, ParseError> {
        let (text, home) = match first {
            Tok::Path(t) => (t, false),
            Tok::HPath(t) => (t, true),
            _ => unreachable!("parse_path is called on path tokens"),
        };
        let mut path = if home {
            let Some(h) = &self.home else {
                return Err(self.err_at(pos, "the contents of $HOME are needed for a '~/' path".into()));
            };
            let mut p = h.clone();
            p.extend_from_slice(&text[1..]);
            p
        } else {
            let mut p = self.abs_path(&text);
            if text.len() > 1 && text.ends_with(b"/") && !p.ends_with(b"/") {
                p.push(b'/');
            }
            p
        };
        let mut parts = Vec::new();
        loop {
            let part_pos = self.pos();
            match self.bump() {
                Tok::PathEnd => break,
                Tok::PathText(t) => parts.push((part_pos, const_str(t))),
                Tok::DollarCurly => {
                    parts.push((part_pos, self.parse_expr()?));
                    self.expect(Tok::RBrace)?;
                }
                _ => {
                    self.unbump();
                    return Err(self.unexpected());
                }
            }
        }
        if parts.is_empty() {
            if home {
                path = canon_path(&path);
            }
            return Ok(Expr::Const(Value::Path(NixString::plain(path))));
        }
        let mut all = vec![(pos, Expr::Const(Value::Path(NixString::plain(path))))];
        all.extend(parts);
        Ok(Expr::ConcatStrings { force_string: false, parts: all, pos })
    }

    fn parse_simple(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let j = self.i;
        let t = self.bump();
        Ok(match t {
            Tok::Id => {
                let name = self.id_at(j);
                if name == b"__curPos" {
                    Expr::CurPos(pos)
                } else {
                    Expr::Var(Var { name: Sym::new(name), pos, loc: VarLoc::Unresolved })
                }
            }
            Tok::Int(n) => Expr::Const(Value::Int(n)),
            Tok::Float(f) => Expr::Const(Value::Float(f)),
            Tok::StrOpen => self.parse_string_body()?,
            Tok::IndOpen => self.parse_ind_string(pos)?,
            t @ (Tok::Path(_) | Tok::HPath(_)) => self.parse_path(t, pos)?,
            Tok::SPath(p) => Expr::Call {
                func: Box::new(Expr::Var(Var { name: Sym::from_str("__findFile"), pos, loc: VarLoc::Unresolved })),
                args: vec![
                    Expr::Var(Var { name: Sym::from_str("__nixPath"), pos, loc: VarLoc::Unresolved }),
                    const_str(p),
                ],
                pos,
            },
            Tok::Uri(u) => const_str(u),
            Tok::LParen => {
                let e = self.parse_expr()?;
                self.expect(Tok::RParen)?;
                e
            }
            Tok::LBrace => {
                let a = self.parse_binds(Tok::RBrace, false, pos)?;
                self.expect(Tok::RBrace)?;
                Expr::Attrs(Box::new(a))
            }
            Tok::Rec => {
                self.expect(Tok::LBrace)?;
                let a = self.parse_binds(Tok::RBrace, true, pos)?;
                self.expect(Tok::RBrace)?;
                Expr::Attrs(Box::new(a))
            }
            Tok::Let => {
                // Legacy `let { ...; body = e; }`: `(rec { ... }).body`.
                self.expect(Tok::LBrace)?;
                let a = self.parse_binds(Tok::RBrace, true, pos)?;
                self.expect(Tok::RBrace)?;
                Expr::Select {
                    expr: Box::new(Expr::Attrs(Box::new(a))),
                    path: vec![AttrName::Static(Sym::from_str("body"))],
                    default: None,
                    pos,
                    hint: SelectHint::default(),
                }
            }
            Tok::LBrack => {
                let mut items = Vec::new();
                while *self.peek() != Tok::RBrack {
                    if !self.starts_simple() {
                        return Err(self.unexpected());
                    }
                    items.push(self.parse_select()?);
                    self.warn_cursed_or();
                }
                self.skip();
                Expr::List(items)
            }
            _ => {
                self.unbump();
                if *self.peek() == Tok::Eof {
                    return Err(self.unexpected_expecting("expression"));
                }
                return Err(self.unexpected());
            }
        })
    }

    fn parse_binds(&mut self, end: Tok, rec: bool, pos: Pos) -> Result<AttrsExpr, ParseError> {
        let mut attrs = AttrsExpr { rec, attrs: Vec::new(), dynamic: Vec::new(), inherit_from: Vec::new(), pos };
        let mut index: HashMap<Sym, usize, FxBuild> = HashMap::default();
        while *self.peek() != end {
            if *self.peek() == Tok::Inherit {
                let ipos = self.pos();
                self.skip();
                let from = if *self.peek() == Tok::LParen {
                    self.skip();
                    let e = self.parse_expr()?;
                    self.expect(Tok::RParen)?;
                    attrs.inherit_from.push(e);
                    Some(attrs.inherit_from.len() as u32 - 1)
                } else {
                    None
                };
                while *self.peek() != Tok::Semi {
                    let apos = self.pos();
                    if !matches!(self.peek(), Tok::Id | Tok::OrKw | Tok::StrOpen | Tok::DollarCurly) {
                        return Err(self.unexpected());
                    }
                    let name = match self.parse_attr_name()? {
                        AttrName::Static(s) => s,
                        AttrName::Dynamic(_) => {
                            return Err(self.err_at(apos, "dynamic attributes not allowed in inherit".into()));
                        }
                    };
                    if let Some(&j) = index.get(&name) {
                        return Err(self.dup_attr(&[name], apos, attrs.attrs[j].pos));
                    }
                    let (value, kind) = match from {
                        None => (Expr::Var(Var { name, pos: apos, loc: VarLoc::Unresolved }), AttrKind::Inherited),
                        Some(k) => (Expr::Const(Value::Null), AttrKind::InheritFrom(k)),
                    };
                    index.insert(name, attrs.attrs.len());
                    attrs.attrs.push(AttrDef { name, value, kind, pos: apos });
                }
                let _ = ipos;
                self.skip();
                continue;
            }
            if !matches!(self.peek(), Tok::Id | Tok::OrKw | Tok::StrOpen | Tok::DollarCurly) {
                if let Some(expected) = binding_start_expected(&end, rec) {
                    return Err(self.unexpected_expecting(expected));
                }
            }
            let apos = self.pos();
            let path = self.parse_attrpath()?;
            if *self.peek() != Tok::Assign {
                return Err(self.unexpected_expecting("'.' or '='"));
            }
            self.skip();
            let value = self.parse_expr()?;
            self.expect(Tok::Semi)?;
            self.add_attr(&mut attrs, Some(&mut index), path, value, apos)?;
        }
        Ok(attrs)
    }

    fn dup_attr(&self, path: &[Sym], pos: Pos, prev: Pos) -> ParseError {
        let shown: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        let prev_loc = prev.resolve().map(|l| l.to_string()).unwrap_or_default();
        self.err_at(pos, format!("attribute '{}' already defined at {}", shown.join("."), prev_loc))
    }

    fn add_attr(
        &self,
        mut attrs: &mut AttrsExpr,
        mut index: Option<&mut HashMap<Sym, usize, FxBuild>>,
        path: Vec<AttrName>,
        value: Expr,
        pos: Pos,
    ) -> Result<(), ParseError> {
        let shown_path = |upto: usize, path: &[AttrName]| -> Vec<Sym> {
            path[..upto]
                .iter()
                .map(|a| match a {
                    AttrName::Static(s) => *s,
                    AttrName::Dynamic(_) => Sym::from_str("\"${...}\""),
                })
                .collect()
        };
        let names: Vec<Sym> = shown_path(path.len(), &path);
        let n = path.len();
        let mut iter = path.into_iter();
        for _ in 0..n - 1 {
            let name = iter.next().expect("attrpath has n elements");
            match name {
                AttrName::Static(sym) => {
                    let found = match index.as_deref() {
                        Some(ix) => ix.get(&sym).copied(),
                        None => attrs.attrs.iter().position(|a| a.name == sym),
                    };
                    match found {
                        Some(j) => {
                            let def = &mut attrs.attrs[j];
                            if def.kind != AttrKind::Plain {
                                return Err(self.dup_attr(&names, pos, def.pos));
                            }
                            let prev = def.pos;
                            match &mut def.value {
                                Expr::Attrs(inner) => attrs = inner,
                                _ => return Err(self.dup_attr(&names, pos, prev)),
                            }
                        }
                        None => {
                            let nested = AttrsExpr {
                                rec: false,
                                attrs: Vec::new(),
                                dynamic: Vec::new(),
                                inherit_from: Vec::new(),
                                pos,
                            };
                            if let Some(ix) = index.as_deref_mut() {
                                ix.insert(sym, attrs.attrs.len());
                            }
                            attrs.attrs.push(AttrDef {
                                name: sym,
                                value: Expr::Attrs(Box::new(nested)),
                                kind: AttrKind::Plain,
                                pos,
                            });
                            let last = attrs.attrs.len() - 1;
                            match &mut attrs.attrs[last].value {
                                Expr::Attrs(inner) => attrs = inner,
                                _ => unreachable!("just pushed a set"),
                            }
                        }
                    }
                }
                AttrName::Dynamic(e) => {
                    let nested =
                        AttrsExpr { rec: false, attrs: Vec::new(), dynamic: Vec::new(), inherit_from: Vec::new(), pos };
                    attrs.dynamic.push(DynamicAttr { name: e, value: Expr::Attrs(Box::new(nested)), pos });
                    let last = attrs.dynamic.len() - 1;
                    match &mut attrs.dynamic[last].value {
                        Expr::Attrs(inner) => attrs = inner,
                        _ => unreachable!("just pushed a set"),
                    }
                }
            }
            index = None;
        }
        let last = iter.next().expect("attrpath is never empty");
        match last {
            AttrName::Static(sym) => {
                let found = match index.as_deref() {
                    Some(ix) => ix.get(&sym).copied(),
                    None => attrs.attrs.iter().position(|a| a.name == sym),
                };
                match found {
                    Some(j) => {
                        let def = &mut attrs.attrs[j];
                        let prev = def.pos;
                        // Two set literals for the same name are merged.
                        match (&mut def.value, value, def.kind) {
                            (Expr::Attrs(existing), Expr::Attrs(new), AttrKind::Plain) => {
                                let new = *new;
                                let offset = existing.inherit_from.len() as u32;
                                existing.inherit_from.extend(new.inherit_from);
                                for mut ad in new.attrs {
                                    // Current CppNix reports it at the earlier definition.
                                    if let Some(p) = existing.attrs.iter().find(|a| a.name == ad.name) {
                                        return Err(self.dup_attr(&[ad.name], p.pos, ad.pos));
                                    }
                                    if let AttrKind::InheritFrom(k) = ad.kind {
                                        ad.kind = AttrKind::InheritFrom(k + offset);
                                    }
                                    existing.attrs.push(ad);
                                }
                                existing.dynamic.extend(new.dynamic);
                            }
                            _ => return Err(self.dup_attr(&names, pos, prev)),
                        }
                    }
                    None => {
                        let mut value = value;
                        // As CppNix's setName: the name reaches the lambdas
                        // nested directly in the body too (`f = a: b: ...`).
                        let mut named = &mut value;
                        while let Expr::Lambda(l) = named {
                            l.name = Some(sym);
                            named = &mut l.body;
                        }
                        if let Some(ix) = index.as_deref_mut() {
                            ix.insert(sym, attrs.attrs.len());
                        }
                        attrs.attrs.push(AttrDef { name: sym, value, kind: AttrKind::Plain, pos });
                    }
                }
            }
            AttrName::Dynamic(e) => attrs.dynamic.push(DynamicAttr { name: e, value, pos }),
        }
        Ok(())
    }
}

