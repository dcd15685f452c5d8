//! The Nix lexer, written to match CppNix's flex rules (`lexer.l`): longest match
//! wins, ties go to the earlier rule (so keywords beat identifiers), and strings,
//! indented strings and interpolated paths are separate lexer states kept on a
//! stack so that `${ ... }` nests.

use crate::error::ParseError;
use crate::pos::Pos;

#[derive(Clone, Debug)]
pub enum Tok {
    /// An identifier; its bytes are the token's span of the source (see
    /// `Token`), so a token copies without an allocation.
    Id,
    Int(i64),
    Float(f64),
    /// Opening `"`.
    StrOpen,
    /// Closing `"`.
    StrClose,
    /// Literal text inside a string (already unescaped).
    StrText(Vec<u8>),
    /// Opening `''`.
    IndOpen,
    IndClose,
    /// Literal text inside an indented string; `indented` is false for escapes and
    /// for the lone `$`/`'` tokens, which end start-of-line whitespace.
    IndText { text: Vec<u8>, indented: bool },
    /// `${`
    DollarCurly,
    /// The first part of a path literal (relative, absolute or `~/`).
    Path(Vec<u8>),
    HPath(Vec<u8>),
    /// A literal chunk of an interpolated path after the first `${...}`.
    PathText(Vec<u8>),
    PathEnd,
    /// `<nixpkgs/lib>` (without the brackets).
    SPath(Vec<u8>),
    Uri(Vec<u8>),
    If,
    Then,
    Else,
    Assert,
    With,
    Let,
    In,
    Rec,
    Inherit,
    OrKw,
    Ellipsis,
    Eq,
    Neq,
    Leq,
    Geq,
    And,
    Or,
    Impl,
    /// `|>` and `<|` (experimental feature `pipe-operators`).
    PipeInto,
    PipeFrom,
    Update,
    Concat,
    Lt,
    Gt,
    Plus,
    Minus,
    Star,
    Slash,
    Not,
    Dot,
    Question,
    At,
    Colon,
    Semi,
    Comma,
    Assign,
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    LParen,
    RParen,
    Eof,
}

/// Tokens are compared by kind first, inline (the parser asks `is the next
/// token a `;`?` at every step); only tokens of the same kind with text or a
/// number compare those, out of line.
impl PartialEq for Tok {
    #[inline(always)]
    fn eq(&self, other: &Tok) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other) && (!self.has_payload() || self.payload_eq(other))
    }
}

impl Tok {
    #[inline(always)]
    fn has_payload(&self) -> bool {
        matches!(
            self,
            Tok::Int(_)
                | Tok::Float(_)
                | Tok::StrText(_)
                | Tok::IndText { .. }
                | Tok::Path(_)
                | Tok::HPath(_)
                | Tok::PathText(_)
                | Tok::SPath(_)
                | Tok::Uri(_)
        )
    }
    #[inline(never)]
    fn payload_eq(&self, other: &Tok) -> bool {
        match (self, other) {
            (Tok::Int(a), Tok::Int(b)) => a == b,
            (Tok::Float(a), Tok::Float(b)) => a == b,
            (Tok::StrText(a), Tok::StrText(b))
            | (Tok::Path(a), Tok::Path(b))
            | (Tok::HPath(a), Tok::HPath(b))
            | (Tok::PathText(a), Tok::PathText(b))
            | (Tok::SPath(a), Tok::SPath(b))
            | (Tok::Uri(a), Tok::Uri(b)) => a == b,
            (Tok::IndText { text: a, indented: x }, Tok::IndText { text: b, indented: y }) => a == b && x == y,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum State {
    Default,
    Str,
    IndStr,
    /// Inside a path literal after a `${...}` or a trailing-slash segment.
    InPath { slash: bool, start: usize },
}

pub struct Token {
    pub tok: Tok,
    pub start: u32,
    pub end: u32,
}

/// Byte classes of the lexer's character sets, one bit each, looked up in
/// [`BYTE_CLASSES`]: a load per byte where the tests of ranges and lists took
/// a dozen instructions (a fifth of lexing).
const PATH_CHAR: u8 = 1;
const ID_START: u8 = 2;
const ID_CHAR: u8 = 4;
const URI_CHAR: u8 = 8;

const BYTE_CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic();
        let alnum = b.is_ascii_alphanumeric();
        let mut class = 0;
        if alnum || matches!(b, b'.' | b'_' | b'-' | b'+') {
            class |= PATH_CHAR;
        }
        if alpha || b == b'_' {
            class |= ID_START;
        }
        if alnum || matches!(b, b'_' | b'\'' | b'-') {
            class |= ID_CHAR;
        }
        if alnum
            || matches!(b, b'%' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b',' | b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'')
        {
            class |= URI_CHAR;
        }
        table[c] = class;
        c += 1;
    }
    table
};

#[inline(always)]
fn is_path_char(c: u8) -> bool {
    BYTE_CLASSES[c as usize] & PATH_CHAR != 0
}
#[inline(always)]
fn is_id_start(c: u8) -> bool {
    BYTE_CLASSES[c as usize] & ID_START != 0
}
#[inline(always)]
fn is_id_char(c: u8) -> bool {
    BYTE_CLASSES[c as usize] & ID_CHAR != 0
}
#[inline(always)]
fn is_uri_char(c: u8) -> bool {
    BYTE_CLASSES[c as usize] & URI_CHAR != 0
}

/// Length of a `{PATH}` match at the start of `s`: PATH_CHAR* ('/' PATH_CHAR+)+ '/'?
fn match_path(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() && is_path_char(s[i]) {
        i += 1;
    }
    let mut segments = 0;
    let mut end = 0;
    loop {
        if i < s.len() && s[i] == b'/' {
            let mut j = i + 1;
            while j < s.len() && is_path_char(s[j]) {
                j += 1;
            }
            if j > i + 1 {
                segments += 1;
                i = j;
                end = i;
                continue;
            }
        }
        break;
    }
    if segments == 0 {
        return 0;
    }
    if end < s.len() && s[end] == b'/' {
        end += 1;
    }
    end
}

/// Length of PATH_SEG followed by `${` (PATH_CHAR* '/' '${'), or 0.
fn match_path_seg_dollar(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() && is_path_char(s[i]) {
        i += 1;
    }
    if i < s.len() && s[i] == b'/' && s[i + 1..].starts_with(b"${") {
        i + 1
    } else {
        0
    }
}

/// Length of `{HPATH}`: '~' ('/' PATH_CHAR+)+ '/'?
fn match_hpath(s: &[u8]) -> usize {
    if s.first() != Some(&b'~') || s.get(1) != Some(&b'/') {
        return 0;
    }
    let mut i = 1;
    let mut end = 0;
    loop {
        if i < s.len() && s[i] == b'/' {
            let mut j = i + 1;
            while j < s.len() && is_path_char(s[j]) {
                j += 1;
            }
            if j > i + 1 {
                i = j;
                end = i;
                continue;
            }
        }
        break;
    }
    if end == 0 {
        return 0;
    }
    if end < s.len() && s[end] == b'/' {
        end += 1;
    }
    end
}

fn match_spath(s: &[u8]) -> usize {
    if s.first() != Some(&b'<') {
        return 0;
    }
    let mut i = 1;
    let start = i;
    while i < s.len() && is_path_char(s[i]) {
        i += 1;
    }
    if i == start {
        return 0;
    }
    loop {
        if i < s.len() && s[i] == b'/' {
            let mut j = i + 1;
            while j < s.len() && is_path_char(s[j]) {
                j += 1;
            }
            if j > i + 1 {
                i = j;
                continue;
            }
            return 0;
        }
        break;
    }
    if i < s.len() && s[i] == b'>' { i + 1 } else { 0 }
}

fn match_uri(s: &[u8]) -> usize {
    if s.is_empty() || !s[0].is_ascii_alphabetic() {
        return 0;
    }
    let mut i = 1;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || matches!(s[i], b'+' | b'-' | b'.')) {
        i += 1;
    }
    if i >= s.len() || s[i] != b':' {
        return 0;
    }
    i += 1;
    let start = i;
    while i < s.len() && is_uri_char(s[i]) {
        i += 1;
    }
    if i == start { 0 } else { i }
}

fn match_float(s: &[u8]) -> usize {
    // (([1-9][0-9]*\.[0-9]*)|(0?\.[0-9]+))([Ee][+-]?[0-9]+)?
    let mut i;
    if !s.is_empty() && (b'1'..=b'9').contains(&s[0]) {
        i = 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i >= s.len() || s[i] != b'.' {
            return 0;
        }
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
    } else {
        i = 0;
        if s.first() == Some(&b'0') {
            i = 1;
        }
        if s.get(i) != Some(&b'.') {
            return 0;
        }
        i += 1;
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return 0;
        }
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        let mut j = i + 1;
        if j < s.len() && (s[j] == b'+' || s[j] == b'-') {
            j += 1;
        }
        let start = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > start {
            i = j;
        }
    }
    i
}

/// Unescapes the contents of a `"..."` string chunk as CppNix's `unescapeStr`
/// does (also normalising CR and CR/LF to LF).
fn unescape(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c == b'\\' && i < s.len() {
            let e = s[i];
            i += 1;
            out.push(match e {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                other => other,
            });
        } else if c == b'\r' {
            out.push(b'\n');
            if i < s.len() && s[i] == b'\n' {
                i += 1;
            }
        } else {
            out.push(c);
        }
    }
}

pub struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    file: u32,
    states: Vec<State>,
    /// Where the token being lexed starts (after skipped whitespace).
    tok_start: usize,
    /// Where the last lexeme (token, whitespace run or comment) started: the end
    /// of file is reported there, as flex's location tracking does in CppNix.
    last_start: usize,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src` (registered as file `file`).
    pub fn new(src: &'a [u8], file: u32) -> Lexer<'a> {
        Lexer { src, pos: 0, file, states: vec![State::Default], tok_start: 0, last_start: 0 }
    }

    /// The next token (after the end of file, the end of file again). The
    /// parser asks for tokens as it goes, as CppNix's parser asks its lexer,
    /// so a file is never held as tokens in full.
    #[inline]
    pub fn next_token(&mut self) -> Result<Token, ParseError> {
        self.tok_start = self.pos;
        let tok = self.next()?;
        // Current CppNix reports an unexpected end of file at the very end
        // (2.8: where the last lexeme started).
        let start = if matches!(tok, Tok::Eof) { self.src.len() } else { self.tok_start };
        self.last_start = start;
        Ok(Token { tok, start: start as u32, end: self.pos as u32 })
    }

    /// Where the token being lexed (or the last one) starts.
    pub fn token_start(&self) -> usize {
        self.tok_start
    }

    fn err(&self, at: usize, msg: impl Into<String>) -> ParseError {
        ParseError { msg: msg.into(), pos: Pos::new(self.file, at as u32) }
    }

    fn state(&self) -> State {
        *self.states.last().unwrap_or(&State::Default)
    }

    fn set_state(&mut self, s: State) {
        if let Some(top) = self.states.last_mut() {
            *top = s;
        }
    }

    fn next(&mut self) -> Result<Tok, ParseError> {
        match self.state() {
            State::Default => self.next_default(),
            State::Str => self.next_string(),
            State::IndStr => self.next_ind_string(),
            State::InPath { slash, start } => self.next_in_path(slash, start),
        }
    }

    fn skip_ws(&mut self) -> Result<(), ParseError> {
        let s = self.src;
        loop {
            let run_start = self.pos;
            while self.pos < s.len() && matches!(s[self.pos], b' ' | b'\t' | b'\r' | b'\n') {
                self.pos += 1;
            }
            if self.pos > run_start {
                self.last_start = run_start;
            }
            if self.pos < s.len() && s[self.pos] == b'#' {
                self.last_start = self.pos;
                while self.pos < s.len() && s[self.pos] != b'\n' && s[self.pos] != b'\r' {
                    self.pos += 1;
                }
                continue;
            }
            if s[self.pos..].starts_with(b"/*") {
                let start = self.pos;
                self.last_start = start;
                let mut i = self.pos + 2;
                loop {
                    if i + 1 >= s.len() {
                        return Err(self.err(start, "unterminated comment"));
                    }
                    if s[i] == b'*' && s[i + 1] == b'/' {
                        self.pos = i + 2;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            return Ok(());
        }
    }

    fn next_default(&mut self) -> Result<Tok, ParseError> {
        self.skip_ws()?;
        self.tok_start = self.pos;
        let s = &self.src[self.pos..];
        if s.is_empty() {
            return Ok(Tok::Eof);
        }
        let c = s[0];
        // Candidates that may be long: identifiers/keywords, numbers, paths, URIs.
        let id_len = if is_id_start(c) {
            let mut i = 1;
            while i < s.len() && is_id_char(s[i]) {
                i += 1;
            }
            i
        } else {
            0
        };
        // Most tokens are decided by their first bytes, without trying every
        // rule: an identifier not followed by a byte that could continue a
        // path or URI (`/`, `:`, `.`, `+`) is the longest match (a path or a
        // URI would have to run past it), and a byte that starts no long
        // rule (a path, URI, number, `~/`, `<...>` all start with a path
        // character, `/`, `~` or `<`) is an operator.
        let fast_id = id_len > 0 && !matches!(s.get(id_len), Some(b'/' | b':' | b'.' | b'+'));
        let may_be_long = is_path_char(c) || matches!(c, b'/' | b'~' | b'<');
        if fast_id || !may_be_long {
            return self.short_token(s, id_len);
        }
        let int_len = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let float_len = match_float(s);
        let path_dollar = match_path_seg_dollar(s);
        let hpath_dollar = if s.starts_with(b"~/${") { 2 } else { 0 };
        let path_len = match_path(s);
        let hpath_len = match_hpath(s);
        let spath_len = match_spath(s);
        let uri_len = match_uri(s);
        // PATH_SEG${ matches two more characters than the path itself.
        let best = id_len
            .max(int_len)
            .max(float_len)
            .max(path_dollar + 2 * (path_dollar > 0) as usize)
            .max(hpath_dollar + 2 * (hpath_dollar > 0) as usize)
            .max(path_len)
            .max(hpath_len)
            .max(spath_len)
            .max(uri_len);
        // Operators of two or three characters.
        let op3 = if s.starts_with(b"...") { 3 } else { 0 };
        let op2 = [b"==", b"!=", b"<=", b">=", b"&&", b"||", b"->", b"//", b"++", b"${", b"''", b"|>", b"<|"]
            .iter()
            .any(|p| s.starts_with(*p));
        let op_len = if op3 > 0 { 3 } else if op2 { 2 } else { 1 };
        if best > 0 && best >= op_len {
            let start = self.pos;
            // Rule order among equal lengths: keywords, ID, INT, FLOAT, PATH_SEG${, PATH, HPATH, SPATH, URI.
            if id_len == best {
                return self.short_token(s, id_len);
            }
            if int_len == best {
                self.pos += best;
                let text = std::str::from_utf8(&s[..best]).unwrap_or("");
                return match text.parse::<i64>() {
                    Ok(n) => Ok(Tok::Int(n)),
                    Err(_) => Err(self.err(start, format!("invalid integer '{text}'"))),
                };
            }
            if float_len == best {
                self.pos += best;
                let text = std::str::from_utf8(&s[..best]).unwrap_or("");
                // Like strtod's ERANGE: overflow and underflow (also to subnormals) are errors.
                return match text.parse::<f64>() {
                    Ok(f) if f.is_finite() && (f == 0.0 || f.abs() >= f64::MIN_POSITIVE) => {
                        let has_nonzero_digit = text.split(['e', 'E']).next().unwrap_or("").bytes().any(|b| (b'1'..=b'9').contains(&b));
                        if f == 0.0 && has_nonzero_digit {
                            Err(self.err(start, format!("invalid float '{text}'")))
                        } else {
                            Ok(Tok::Float(f))
                        }
                    }
                    _ => Err(self.err(start, format!("invalid float '{text}'"))),
                };
            }
            if path_dollar > 0 && path_dollar + 2 == best {
                self.pos += path_dollar;
                self.states.push(State::InPath { slash: true, start: self.tok_start });
                return Ok(Tok::Path(s[..path_dollar].to_vec()));
            }
            if hpath_dollar > 0 && hpath_dollar + 2 == best {
                self.pos += hpath_dollar;
                self.states.push(State::InPath { slash: true, start: self.tok_start });
                return Ok(Tok::HPath(s[..hpath_dollar].to_vec()));
            }
            if path_len == best {
                self.pos += best;
                let slash = s[best - 1] == b'/';
                self.states.push(State::InPath { slash, start: self.tok_start });
                return Ok(Tok::Path(s[..best].to_vec()));
            }
            if hpath_len == best {
                self.pos += best;
                let slash = s[best - 1] == b'/';
                self.states.push(State::InPath { slash, start: self.tok_start });
                return Ok(Tok::HPath(s[..best].to_vec()));
            }
            if spath_len == best {
                self.pos += best;
                return Ok(Tok::SPath(s[1..best - 1].to_vec()));
            }
            self.pos += best;
            return Ok(Tok::Uri(s[..best].to_vec()));
        }
        self.operator(s, op_len)
    }

    /// An identifier or keyword of `id_len` bytes at the start of `s`, or
    /// else (`id_len` 0) the operator there.
    fn short_token(&mut self, s: &'a [u8], id_len: usize) -> Result<Tok, ParseError> {
        if id_len > 0 {
            self.pos += id_len;
            return Ok(match &s[..id_len] {
                b"if" => Tok::If,
                b"then" => Tok::Then,
                b"else" => Tok::Else,
                b"assert" => Tok::Assert,
                b"with" => Tok::With,
                b"let" => Tok::Let,
                b"in" => Tok::In,
                b"rec" => Tok::Rec,
                b"inherit" => Tok::Inherit,
                b"or" => Tok::OrKw,
                _ => Tok::Id,
            });
        }
        let op_len = if s.starts_with(b"...") {
            3
        } else if [b"==", b"!=", b"<=", b">=", b"&&", b"||", b"->", b"//", b"++", b"${", b"''", b"|>", b"<|"]
            .iter()
            .any(|p| s.starts_with(*p))
        {
            2
        } else {
            1
        };
        self.operator(s, op_len)
    }

    /// The operator of `op_len` bytes at the start of `s`.
    fn operator(&mut self, s: &'a [u8], op_len: usize) -> Result<Tok, ParseError> {
        self.pos += op_len;
        let t = match &s[..op_len] {
            b"..." => Tok::Ellipsis,
            b"==" => Tok::Eq,
            b"!=" => Tok::Neq,
            b"<=" => Tok::Leq,
            b">=" => Tok::Geq,
            b"&&" => Tok::And,
            b"||" => Tok::Or,
            b"->" => Tok::Impl,
            b"//" => Tok::Update,
            b"++" => Tok::Concat,
            b"|>" => Tok::PipeInto,
            b"<|" => Tok::PipeFrom,
            b"${" => {
                self.states.push(State::Default);
                Tok::DollarCurly
            }
            b"''" => {
                // `''` swallows trailing spaces and one newline on its line.
                let rest = &self.src[self.pos..];
                let spaces = rest.iter().take_while(|c| **c == b' ').count();
                if rest.get(spaces) == Some(&b'\n') {
                    self.pos += spaces + 1;
                }
                self.states.push(State::IndStr);
                Tok::IndOpen
            }
            b"{" => {
                self.states.push(State::Default);
                Tok::LBrace
            }
            b"}" => {
                // Pops back into a string or path state after `${ ... }`.
                if self.states.len() > 1 {
                    self.states.pop();
                }
                Tok::RBrace
            }
            b"\"" => {
                self.states.push(State::Str);
                Tok::StrOpen
            }
            b"<" => Tok::Lt,
            b">" => Tok::Gt,
            b"+" => Tok::Plus,
            b"-" => Tok::Minus,
            b"*" => Tok::Star,
            b"/" => Tok::Slash,
            b"!" => Tok::Not,
            b"." => Tok::Dot,
            b"?" => Tok::Question,
            b"@" => Tok::At,
            b":" => Tok::Colon,
            b";" => Tok::Semi,
            b"," => Tok::Comma,
            b"=" => Tok::Assign,
            b"[" => Tok::LBrack,
            b"]" => Tok::RBrack,
            b"(" => Tok::LParen,
            b")" => Tok::RParen,
            other => {
                let shown = String::from_utf8_lossy(other).into_owned();
                return Err(self.err(self.pos - op_len, format!("syntax error, unexpected character '{shown}'")));
            }
        };
        Ok(t)
    }

    fn next_string(&mut self) -> Result<Tok, ParseError> {
        let s = self.src;
        let start = self.pos;
        if self.pos >= s.len() {
            return Err(self.err(self.last_start, "syntax error, unexpected end of file, expecting '\"'"));
        }
        if s[self.pos] == b'"' {
            self.pos += 1;
            self.states.pop();
            return Ok(Tok::StrClose);
        }
        if s[self.pos..].starts_with(b"${") {
            self.pos += 2;
            self.states.push(State::Default);
            return Ok(Tok::DollarCurly);
        }
        let mut i = self.pos;
        while i < s.len() {
            match s[i] {
                b'"' => break,
                b'\\' => i = (i + 2).min(s.len()),
                b'$' => match s.get(i + 1) {
                    Some(b'{') => break,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => i += 1,
                    Some(_) => i += 2,
                    None => i += 1,
                },
                _ => i += 1,
            }
        }
        let mut out = Vec::with_capacity(i - start);
        unescape(&s[start..i], &mut out);
        self.pos = i;
        Ok(Tok::StrText(out))
    }

    fn next_ind_string(&mut self) -> Result<Tok, ParseError> {
        let s = self.src;
        let rest = &s[self.pos..];
        if rest.is_empty() {
            return Err(self.err(self.last_start, "syntax error, unexpected end of file, expecting indented string or '${' or end of an indented string"));
        }
        if rest.starts_with(b"''$") {
            self.pos += 3;
            return Ok(Tok::IndText { text: b"$".to_vec(), indented: false });
        }
        if rest.starts_with(b"'''") {
            self.pos += 3;
            return Ok(Tok::IndText { text: b"''".to_vec(), indented: false });
        }
        if rest.starts_with(b"''\\") && rest.len() >= 4 {
            self.pos += 4;
            let mut out = Vec::new();
            unescape(&rest[2..4], &mut out);
            // `''\` followed by CR LF: the CR is the escaped char, LF stays.
            return Ok(Tok::IndText { text: out, indented: false });
        }
        if rest.starts_with(b"''") {
            self.pos += 2;
            self.states.pop();
            return Ok(Tok::IndClose);
        }
        if rest.starts_with(b"${") {
            self.pos += 2;
            self.states.push(State::Default);
            return Ok(Tok::DollarCurly);
        }
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                b'$' => match rest.get(i + 1) {
                    Some(b'{') | Some(b'\'') | None => break,
                    Some(_) => i += 2,
                },
                b'\'' => match rest.get(i + 1) {
                    Some(b'\'') | Some(b'$') | None => break,
                    Some(_) => i += 2,
                },
                _ => i += 1,
            }
        }
        if i > 0 {
            self.pos += i;
            return Ok(Tok::IndText { text: rest[..i].to_vec(), indented: true });
        }
        // A lone `$` or `'`.
        self.pos += 1;
        Ok(Tok::IndText { text: vec![rest[0]], indented: false })
    }

    fn next_in_path(&mut self, slash: bool, start: usize) -> Result<Tok, ParseError> {
        let rest = &self.src[self.pos..];
        if rest.starts_with(b"${") {
            self.pos += 2;
            self.set_state(State::InPath { slash: false, start });
            self.states.push(State::Default);
            return Ok(Tok::DollarCurly);
        }
        if slash {
            // After a segment ending in `/`, only an interpolation may follow.
            // Current CppNix reports it just after the path (2.8: at its start).
            let _ = start;
            return Err(self.err(self.pos, "path has a trailing slash"));
        }
        let n = rest.iter().take_while(|c| is_path_char(**c) || **c == b'/').count();
        if n > 0 {
            let chunk_start = self.pos;
            self.pos += n;
            self.set_state(State::InPath { slash: rest[n - 1] == b'/', start: chunk_start });
            return Ok(Tok::PathText(rest[..n].to_vec()));
        }
        self.states.pop();
        Ok(Tok::PathEnd)
    }
}

#[cfg(test)]
mod byte_class_tests {
    /// The table of byte classes holds exactly CppNix's character sets
    /// (`lexer.l`'s `[a-zA-Z0-9\.\_\-\+]`, `[a-zA-Z\_]`, `[a-zA-Z0-9\_\'\-]` and
    /// the URI characters), checked for every byte against their definitions.
    #[test]
    fn byte_classes_match_the_character_sets() {
        for b in 0..=255u8 {
            let alnum = b.is_ascii_alphanumeric();
            assert_eq!(super::is_path_char(b), alnum || b".-_+".contains(&b), "path char {b}");
            assert_eq!(super::is_id_start(b), b.is_ascii_alphabetic() || b == b'_', "id start {b}");
            assert_eq!(super::is_id_char(b), alnum || b"_'-".contains(&b), "id char {b}");
            assert_eq!(super::is_uri_char(b), alnum || b"%/?:@&=+$,-_.!~*'".contains(&b), "uri char {b}");
        }
    }
}
