//! `fromJSON` (our own parser, with CppNix's number mapping: integers that fit
//! an i64 stay integers, the rest become floats) and `fromTOML` (through the
//! `toml` crate, TOML 1.0).

use crate::pos::Pos;
use crate::symbol::Sym;
use crate::value::*;

struct P<'a> {
    s: &'a [u8],
    i: usize,
    /// The attributes and items of the objects and arrays being parsed, inner
    /// ones above outer ones: each gets one allocation of its exact size at its
    /// end, rather than a vector grown by doubling.
    attrs: Vec<Attr>,
    items: Vec<Value>,
    /// Short string values already made, by a hash of their bytes: a string
    /// that recurs (`"x86_64-linux"`, `"a"`) is shared rather than allocated
    /// again, as strings are immutable.
    recent: Vec<Option<NixString>>,
    /// Object keys already interned, by a hash of their bytes (keys recur in
    /// every object of an array).
    recent_keys: Vec<Option<(&'a [u8], Sym)>>,
}

/// The index of the first byte of `s` that a JSON string cannot hold as it is
/// (`"`, `\\` or a control character below 0x20), or `s.len()`: both the
/// writer (which escapes it) and the parser (which stops at it) skip the
/// runs of plain bytes, most of every string, eight bytes at a time.
#[inline]
pub fn plain_json_prefix(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= s.len() {
        let word = u64::from_le_bytes(s[i..i + 8].try_into().expect("eight bytes"));
        // A byte is zero in `x` exactly where `(x - ONES) & !x` has its high
        // bit (the classic zero-byte test); below 0x20 likewise, for bytes
        // without the high bit (`!word` masks the rest out).
        let quote = word ^ (ONES * b'"' as u64);
        let backslash = word ^ (ONES * b'\\' as u64);
        let special = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let special = special & HIGH;
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < s.len() && PLAIN_JSON_BYTE[s[i] as usize] {
        i += 1;
    }
    i
}

/// Whether a JSON string holds the byte as it is (see [`plain_json_prefix`]).
static PLAIN_JSON_BYTE: [bool; 256] = {
    let mut table = [true; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = false;
        b += 1;
    }
    table[b'"' as usize] = false;
    table[b'\\' as usize] = false;
    table
};

/// The elements of `stack` above `base`, moved into a vector of their exact
/// size in one copy (`split_off` hands over the whole buffer when `base` is
/// 0, and collecting a `drain` moved them one by one).
fn take_above<T>(stack: &mut Vec<T>, base: usize) -> Vec<T> {
    let n = stack.len() - base;
    let mut out = Vec::with_capacity(n);
    // SAFETY: the `n` elements are moved (bitwise) from the stack's tail to
    // the new vector, then the stack forgets them: each is owned once.
    unsafe {
        std::ptr::copy_nonoverlapping(stack.as_ptr().add(base), out.as_mut_ptr(), n);
        stack.set_len(base);
        out.set_len(n);
    }
    out
}

/// The parser's result: its error (a message, rare) is boxed so that a result
/// holding a value is 16 bytes, returned in registers, where a `String` error
/// made every `value` call return 32 bytes through memory.
type PResult<T> = std::result::Result<T, Box<String>>;

/// A short hash of a string's bytes, to pick a slot in `P`'s tables.
fn slot_hash(bytes: &[u8]) -> usize {
    bytes.iter().fold(bytes.len() as u32, |h, &b| h.wrapping_mul(31).wrapping_add(b as u32)) as usize
}

/// Strings up to this length are looked up in `P::recent`.
const SHARE_MAX: usize = 24;
/// Entries in `P::recent` (a power of two).
const RECENT: usize = 256;

fn err(p: &P, what: &str) -> Box<String> {
    let line = p.s[..p.i.min(p.s.len())].iter().filter(|c| **c == b'\n').count() + 1;
    Box::new(format!("[json.exception.parse_error.101] parse error at line {line}, column {}: syntax error while parsing value - {what}", p.i + 1))
}

impl<'a> P<'a> {
    /// Skips whitespace. Most calls find a token right away (`toJSON`'s
    /// output has no whitespace at all), so that case is one comparison.
    #[inline(always)]
    fn ws(&mut self) {
        if self.s.get(self.i).is_some_and(|&c| c > b' ') {
            return;
        }
        self.ws_run();
    }
    #[inline(never)]
    fn ws_run(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn value(&mut self, depth: usize) -> PResult<Value> {
        if depth > 10000 {
            return Err(err(self, "nesting too deep"));
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else { return Err(err(self, "unexpected end of input")) };
        match c {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Value::attrs(AttrsBuilder::new()));
                }
                let base = self.attrs.len();
                let result = self.object_members(depth);
                if result.is_err() {
                    self.attrs.truncate(base);
                }
                result?;
                // Sorted by symbol (mostly already: keys recur in the same
                // order in every object); of a repeated key the last value
                // wins. Then moved from the stack into the set's block.
                let members = &mut self.attrs[base..];
                if !members.is_sorted_by(|a, b| a.name < b.name) {
                    members.sort_by_key(|a| a.name);
                    if members.windows(2).any(|w| w[0].name == w[1].name) {
                        let mut kept = take_above(&mut self.attrs, base);
                        kept.dedup_by(|later, earlier| {
                            if later.name != earlier.name {
                                return false;
                            }
                            std::mem::swap(later, earlier);
                            true
                        });
                        self.attrs.append(&mut kept);
                    }
                }
                Ok(Value::Attrs(Attrs::from_sorted_tail(&mut self.attrs, base)))
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Value::list(Vec::new()));
                }
                let base = self.items.len();
                let result = self.array_items(depth);
                if result.is_err() {
                    self.items.truncate(base);
                }
                result?;
                Ok(Value::List(List::from_stack_tail(&mut self.items, base)))
            }
            b'"' => {
                let bytes = self.string()?;
                if bytes.len() > SHARE_MAX {
                    return Ok(Value::String(NixString::plain(bytes)));
                }
                let slot = slot_hash(&bytes) % RECENT;
                if let Some(s) = &self.recent[slot] {
                    if s.as_bytes() == &bytes[..] {
                        return Ok(Value::String(s.clone()));
                    }
                }
                let s = NixString::plain(bytes);
                self.recent[slot] = Some(s.clone());
                Ok(Value::String(s))
            }
            b't' if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            b'f' if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            b'n' if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Value::Null)
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(err(self, "invalid literal")),
        }
    }
    /// The members of a non-empty object, pushed onto `self.attrs`, through the
    /// closing brace.
    fn object_members(&mut self, depth: usize) -> PResult<()> {
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(err(self, "expected string literal"));
            }
            let name = match self.string()? {
                std::borrow::Cow::Borrowed(k) => {
                    let slot = slot_hash(k) % RECENT;
                    match self.recent_keys[slot] {
                        Some((seen, sym)) if seen == k => sym,
                        _ => {
                            let sym = Sym::new(k);
                            self.recent_keys[slot] = Some((k, sym));
                            sym
                        }
                    }
                }
                std::borrow::Cow::Owned(k) => Sym::new(&k),
            };
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return Err(err(self, "expected ':'"));
            }
            self.i += 1;
            let value = self.value(depth + 1)?;
            self.attrs.push(Attr { name, value, pos: Pos::NONE });
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(err(self, "expected '}'")),
            }
        }
    }
    /// The items of a non-empty array, pushed onto `self.items`, through the
    /// closing bracket.
    fn array_items(&mut self, depth: usize) -> PResult<()> {
        loop {
            let item = self.value(depth + 1)?;
            self.items.push(item);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(err(self, "expected ']'")),
            }
        }
    }
    fn number(&mut self) -> PResult<Value> {
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let int_start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        if self.i == int_start || (self.s[int_start] == b'0' && self.i - int_start > 1) {
            return Err(err(self, "invalid number"));
        }
        let mut is_float = false;
        if self.s.get(self.i) == Some(&b'.') {
            is_float = true;
            self.i += 1;
            let f = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if f == self.i {
                return Err(err(self, "invalid number"));
            }
        }
        if matches!(self.s.get(self.i), Some(b'e') | Some(b'E')) {
            is_float = true;
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+') | Some(b'-')) {
                self.i += 1;
            }
            let f = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            if f == self.i {
                return Err(err(self, "invalid number"));
            }
        }
        if !is_float && self.i - int_start <= 18 {
            // At most 18 digits cannot overflow an i64.
            let n = self.s[int_start..self.i].iter().fold(0i64, |n, &d| n * 10 + (d - b'0') as i64);
            return Ok(Value::Int(if int_start > start { -n } else { n }));
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("0");
        if !is_float {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Value::Int(n));
            }
            // Current CppNix refuses what 2.8 wrapped around.
            if let Ok(n) = text.parse::<u64>() {
                return Err(format!("unsigned json number {n} outside of Nix integer range").into());
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err(format!("[json.exception.out_of_range.406] number overflow parsing '{text}'").into()),
        }
    }
    fn hex4(&mut self) -> PResult<u32> {
        let h = self.s.get(self.i..self.i + 4).ok_or_else(|| err(self, "invalid string"))?;
        let v = u32::from_str_radix(std::str::from_utf8(h).unwrap_or("x"), 16).map_err(|_| err(self, "invalid string: '\\u' must be followed by 4 hex digits"))?;
        self.i += 4;
        Ok(v)
    }
    /// A string literal's bytes, borrowed from the input when it has no escape.
    fn string(&mut self) -> PResult<std::borrow::Cow<'a, [u8]>> {
        self.i += 1;
        let start = self.i;
        self.i += plain_json_prefix(&self.s[start..]);
        if self.s.get(self.i) == Some(&b'"') {
            let bytes = &self.s[start..self.i];
            self.i += 1;
            // No escape, so no NUL (a raw control character is refused).
            if !bytes.is_ascii() && std::str::from_utf8(bytes).is_err() {
                return Err(err(self, "invalid string: ill-formed UTF-8 byte"));
            }
            return Ok(std::borrow::Cow::Borrowed(bytes));
        }
        let mut out = self.s[start..self.i].to_vec();
        loop {
            let Some(&c) = self.s.get(self.i) else { return Err(err(self, "invalid string: missing closing quote")) };
            self.i += 1;
            match c {
                b'"' => {
                    if std::str::from_utf8(&out).is_err() {
                        return Err(err(self, "invalid string: ill-formed UTF-8 byte"));
                    }
                    // Current CppNix (forceNoNullByte) refuses a NUL, shown as
                    // U+2400, in a value or a key; 2.8 cut the string there.
                    if out.contains(&0) {
                        return Err(null_byte_error(&String::from_utf8_lossy(&out)).into());
                    }
                    return Ok(std::borrow::Cow::Owned(out));
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else { return Err(err(self, "invalid string")) };
                    self.i += 1;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(err(self, "invalid string: surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(err(self, "invalid string: surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF"));
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            let ch = char::from_u32(cp).ok_or_else(|| err(self, "invalid string"))?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(err(self, "invalid string: forbidden character after backslash")),
                    }
                }
                c if c < 0x20 => return Err(err(self, "invalid string: control character must be escaped")),
                c => out.push(c),
            }
        }
    }
}

/// Current CppNix's `forceNoNullByte` message, the NUL shown as U+2400.
fn null_byte_error(s: &str) -> String {
    let shown = s.replace('\0', "\u{2400}");
    format!("input string '{shown}' cannot be represented as Nix string because it contains null bytes")
}

pub fn from_json(s: &[u8]) -> Result<Value, String> {
    from_json_fast(s).map_err(|message| {
        // A syntax error is worded by re-reading the input as CppNix's JSON
        // library does (our parser only knows that it is one).
        if message.starts_with("[json.exception.parse_error") {
            crate::support::json_error::syntax_error(s).unwrap_or(message)
        } else {
            message
        }
    })
}

fn from_json_fast(s: &[u8]) -> Result<Value, String> {
    let mut p = P { s, i: 0, attrs: Vec::new(), items: Vec::new(), recent: vec![None; RECENT], recent_keys: vec![None; RECENT] };
    let v = p.value(0).map_err(|message| *message)?;
    p.ws();
    if p.i != s.len() {
        return Err(format!(
            "[json.exception.parse_error.101] parse error at line 1, column {}: syntax error while parsing value - unexpected '{}'; expected end of input",
            p.i + 1,
            s[p.i] as char
        ));
    }
    Ok(v)
}

fn toml_to_value(v: crate::support::toml::TomlValue, timestamps: bool) -> Result<Value, String> {
    use crate::support::toml::TomlValue;
    Ok(match v {
        // Raised inside CppNix's TOML visitor, so under its "while parsing TOML".
        TomlValue::String(s) if s.contains('\0') => return Err(format!("while parsing TOML: {}", null_byte_error(&s))),
        TomlValue::String(s) => Value::string(s.into_bytes()),
        TomlValue::Int(n) => Value::Int(n),
        TomlValue::Float(f) => Value::Float(f),
        TomlValue::Bool(b) => Value::Bool(b),
        // Current CppNix's `parse-toml-timestamps`: `{ _type = "timestamp"; value = TEXT; }`.
        TomlValue::Datetime(text) if timestamps => {
            let mut attrs = AttrsBuilder::with_capacity(2);
            attrs.insert(Sym::new(b"_type"), Value::string(b"timestamp".to_vec()), Pos::NONE);
            attrs.insert(Sym::new(b"value"), Value::string(text.into_bytes()), Pos::NONE);
            Value::attrs(attrs)
        }
        TomlValue::Datetime(_) => {
            return Err("while parsing TOML: Dates and times are not supported".to_string());
        }
        TomlValue::Array(items) => {
            Value::list(items.into_iter().map(|item| toml_to_value(item, timestamps)).collect::<Result<_, _>>()?)
        }
        TomlValue::Table(t) => {
            let mut attrs = AttrsBuilder::with_capacity(t.len());
            for (k, v) in t {
                if k.contains('\0') {
                    return Err(format!("while parsing TOML: {}", null_byte_error(&k)));
                }
                attrs.insert(Sym::new(k.as_bytes()), toml_to_value(v, timestamps)?, Pos::NONE);
            }
            Value::attrs(attrs)
        }
    })
}

/// `timestamps`: the experimental feature `parse-toml-timestamps` is on.
pub fn from_toml(s: &[u8], timestamps: bool) -> Result<Value, String> {
    let v = crate::support::toml::parse(s).map_err(|e| format!("while parsing TOML: {e}"))?;
    toml_to_value(v, timestamps)
}
