//! Printing values the way CppNix does: `nix-instantiate --eval` output (with
//! `<CODE>` for unevaluated thunks and `«repeated»` for sets already shown),
//! `toJSON`, `toXML`, and expressions shown in assertion messages.

use std::collections::HashSet;
use std::fmt::Write;
use crate::value::Rc;

use crate::ast::*;
use crate::error::Result;
use crate::eval::{Coerce, Eval, eval_error};
use crate::pos::Pos;
use crate::support::float_format::{format_float_for_json as format_float_json, format_float_for_print as format_float_g};
use crate::support::json_string::{write_attr_name, write_nix_string};
use crate::value::*;

/// A string literal as CppNix prints it.
pub fn escape_string(s: &[u8], out: &mut Vec<u8>) {
    escape_string_opts(s, out, false)
}

/// `all_dollars`: escape every `$` (as expressions are shown), not only `${`.
fn escape_string_opts(s: &[u8], out: &mut Vec<u8>, all_dollars: bool) {
    out.push(b'"');
    for i in 0..s.len() {
        push_escaped_byte(out, s, i, all_dollars);
    }
    out.push(b'"');
}

/// Byte `i` of the string `s` as it stands inside a printed string literal
/// (CppNix's printLiteralString; `all_dollars` as in `escape_string_opts`).
pub(crate) fn push_escaped_byte(out: &mut Vec<u8>, s: &[u8], i: usize, all_dollars: bool) {
    match s[i] {
        c @ (b'"' | b'\\') => {
            out.push(b'\\');
            out.push(c);
        }
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'$' if all_dollars || s.get(i + 1) == Some(&b'{') => out.extend_from_slice(b"\\$"),
        c => out.push(c),
    }
}

/// Prints a value for `nix-instantiate --eval` (the value itself should be
/// forced; nested values are printed as far as they are evaluated).
pub fn print_value(e: &mut Eval, v: &Value, _strict: bool) -> Result<String> {
    Ok(String::from_utf8_lossy(&print_value_bytes(e, v)).into_owned())
}

/// Bytes version of [`print_value`] (strings are bytes, not UTF-8).
pub fn print_value_bytes(e: &mut Eval, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let slot = v as *const Value as usize;
    print_inner(e, v, &mut out, &mut seen, slot, PrintStyle::Ambiguous);
    out
}

/// Prints a value as current CppNix's `ValuePrinter` does (`builtins.trace`):
/// functions as `«lambda NAME @ FILE:LINE:COL»`, `«primop NAME»`,
/// `«partially applied primop NAME»`, unevaluated values as `«thunk»` and
/// values under evaluation as `«potential infinite recursion»`.
pub fn print_value_for_trace(e: &mut Eval, v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let slot = v as *const Value as usize;
    print_inner(e, v, &mut out, &mut seen, slot, PrintStyle::Trace);
    out
}

/// Prints a value for `nix eval`, forcing it as it is printed, as current
/// CppNix's printer does with `force` and `derivationPaths`: sets in name
/// order, depth first; a derivation (at any depth) as `«derivation DRVPATH»`,
/// forcing only its `type` and `drvPath`. No frames are added on the way (an
/// error reads as the failing value's own), unlike `nix-instantiate
/// --strict`'s deep forcing. Values are shown as `nix-instantiate --eval`
/// shows them, except functions, which are shown as `trace` shows them.
pub fn print_value_forcing(e: &mut Eval, v: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let slot = v as *const Value as usize;
    print_forcing(e, v, &mut out, &mut seen, slot)?;
    Ok(out)
}

fn print_forcing(e: &mut Eval, v: &Value, out: &mut Vec<u8>, seen: &mut HashSet<usize>, slot: usize) -> Result<()> {
    let slot = match v {
        Value::Thunk(t) => Rc::as_ptr(t) as usize,
        _ => slot,
    };
    let v = e.force(v, Pos::NONE)?;
    match &v {
        Value::Attrs(a) => {
            if !a.is_empty() && !seen.insert(Rc::as_ptr(a) as usize) {
                out.extend_from_slice("«repeated»".as_bytes());
                return Ok(());
            }
            if e.is_derivation(a)? {
                out.extend_from_slice("«derivation".as_bytes());
                if let Some(drv_path) = a.find(e.s.drv_path) {
                    let (value, pos) = (drv_path.value.clone(), drv_path.pos);
                    let path = store_path_for_print(e, &value, pos)?;
                    out.push(b' ');
                    out.extend_from_slice(&path);
                }
                out.extend_from_slice("»".as_bytes());
                return Ok(());
            }
            out.extend_from_slice(b"{ ");
            for attr in a.sorted_by_name() {
                write_attr_name(out, attr.name.as_bytes());
                out.extend_from_slice(b" = ");
                print_forcing(e, &attr.value, out, seen, &attr.value as *const Value as usize)?;
                out.extend_from_slice(b"; ");
            }
            out.push(b'}');
        }
        Value::List(l) => {
            // The same identities as print_inner's «repeated».
            if !l.is_empty() && !seen.insert(list_identity(l, slot)) {
                out.extend_from_slice("«repeated»".as_bytes());
                return Ok(());
            }
            out.extend_from_slice(b"[ ");
            for item in l.iter() {
                print_forcing(e, item, out, seen, item as *const Value as usize)?;
                out.push(b' ');
            }
            out.push(b']');
        }
        // Current CppNix's `nix eval` prints through `ValuePrinter`: functions
        // as `«lambda NAME @ POS»` and `«primop NAME»`, not `<LAMBDA>`.
        other @ (Value::Lambda(_) | Value::PrimOp(_) | Value::PrimOpApp(_)) => {
            print_inner(e, other, out, seen, slot, PrintStyle::Trace)
        }
        other => print_inner(e, other, out, seen, slot, PrintStyle::Ambiguous),
    }
    Ok(())
}

/// CppNix's `coerceToStorePath(pos, drvPath, context, "while evaluating the
/// drvPath of a derivation")`: the frame at the attribute's position.
fn store_path_for_print(e: &mut Eval, v: &Value, pos: Pos) -> Result<Vec<u8>> {
    const CONTEXT: &str = "while evaluating the drvPath of a derivation";
    let coerce = Coerce { more: false, copy_to_store: false };
    let s = e.coerce_to_string(v, Pos::NONE, coerce).map_err(|err| crate::error::add_context(err, pos, || CONTEXT.into()))?;
    let store_dir = e.io.store_dir();
    let bytes = s.as_bytes();
    let in_store = bytes.len() > store_dir.len() + 1
        && bytes.starts_with(store_dir.as_bytes())
        && bytes[store_dir.len()] == b'/'
        && !bytes[store_dir.len() + 1..].contains(&b'/');
    if !in_store {
        let err = eval_error(format!("path '{}' is not in the Nix store", s.to_str_lossy()), Pos::NONE);
        return Err(crate::error::add_context(err, pos, || CONTEXT.into()));
    }
    Ok(bytes.to_vec())
}

/// Which of CppNix's two value printers to follow: `printAmbiguous`
/// (`nix-instantiate --eval`) or `ValuePrinter` (`trace`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PrintStyle {
    Ambiguous,
    Trace,
}

/// `slot` identifies where `v` is stored. CppNix keeps lists of one or two
/// elements inside the value itself, so its «repeated» check for them is on
/// the value's location (a thunk, or the slot in the enclosing list or set),
/// whereas longer lists and sets are identified by their shared contents.
/// That is why `let x = [ x ]; in x` prints as `[ [ «repeated» ] ]`.
fn print_inner(e: &mut Eval, v: &Value, out: &mut Vec<u8>, seen: &mut HashSet<usize>, slot: usize, style: PrintStyle) {
    match v {
        Value::Thunk(t) => match t.value() {
            Some(v) => print_inner(e, &v, out, seen, Rc::as_ptr(t) as usize, style),
            None if style == PrintStyle::Trace && t.is_black_hole() => {
                out.extend_from_slice("«potential infinite recursion»".as_bytes())
            }
            None if style == PrintStyle::Trace => out.extend_from_slice("«thunk»".as_bytes()),
            None => out.extend_from_slice(b"<CODE>"),
        },
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => push_int(out, *n),
        Value::Float(f) => out.extend_from_slice(format_float_g(*f).as_bytes()),
        Value::String(s) => write_nix_string(out, s.as_bytes()),
        Value::Path(p) => out.extend_from_slice(p.as_bytes()),
        Value::Attrs(a) => {
            if !a.is_empty() && !seen.insert(Rc::as_ptr(a) as usize) {
                out.extend_from_slice("«repeated»".as_bytes());
                return;
            }
            out.extend_from_slice(b"{ ");
            for attr in a.sorted_by_name() {
                write_attr_name(out, attr.name.as_bytes());
                out.extend_from_slice(b" = ");
                print_inner(e, &attr.value, out, seen, &attr.value as *const Value as usize, style);
                out.extend_from_slice(b"; ");
            }
            out.push(b'}');
        }
        Value::List(l) => {
            if !l.is_empty() && !seen.insert(list_identity(l, slot)) {
                out.extend_from_slice("«repeated»".as_bytes());
                return;
            }
            out.extend_from_slice(b"[ ");
            for item in l.iter() {
                print_inner(e, item, out, seen, item as *const Value as usize, style);
                out.push(b' ');
            }
            out.push(b']');
        }
        Value::Lambda(c) if style == PrintStyle::Trace => {
            out.extend_from_slice("«lambda".as_bytes());
            if let Some(name) = c.lambda.name {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
            }
            if let Some(location) = c.lambda.pos.resolve() {
                out.extend_from_slice(format!(" @ {location}").as_bytes());
            }
            out.extend_from_slice("»".as_bytes());
        }
        Value::PrimOp(op) if style == PrintStyle::Trace => {
            out.extend_from_slice(format!("«primop {}»", op.name).as_bytes())
        }
        Value::PrimOpApp(app) if style == PrintStyle::Trace => {
            out.extend_from_slice(format!("«partially applied primop {}»", app.op.name).as_bytes())
        }
        Value::Lambda(_) => out.extend_from_slice(b"<LAMBDA>"),
        Value::PrimOp(_) => out.extend_from_slice(b"<PRIMOP>"),
        Value::PrimOpApp(_) => out.extend_from_slice(b"<PRIMOP-APP>"),
    }
}

/// `n` in decimal, as `{n}` formats it, without the formatting machinery
/// (integers are most of what `toString` and `toJSON` print), written at the
/// end of `buf`.
pub fn format_int(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    // Two digits per step, from a table of 00..99.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    while m >= 100 {
        let pair = (m % 100) as usize * 2;
        m /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if m >= 10 {
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[m as usize * 2..m as usize * 2 + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + m as u8;
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// Appends `n` in decimal (see [`format_int`]).
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format_int(n, &mut [0; 20]));
}

/// Calls `f` with the attributes of `a` and their names, in the order users
/// see (by name). A small set, most of those printed, is sorted on the stack
/// by insertion as its entries are read, comparing the names' first eight
/// bytes as one integer before their bytes, with the names read from the
/// symbol table in one visit.
fn with_sorted_attrs<R>(a: &Attrs, f: impl FnOnce(&[(&'static [u8], &Attr)]) -> R) -> R {
    const SMALL: usize = 16;
    let n = a.len();
    let Some(first) = a.iter().next() else { return f(&[]) };
    if n > SMALL {
        let sorted: Vec<(&'static [u8], &Attr)> = a.sorted_by_name().into_iter().map(|x| (x.name.as_bytes(), x)).collect();
        return f(&sorted);
    }
    let mut sorted: [(&'static [u8], &Attr); SMALL] = [(&[], first); SMALL];
    let mut keys = [0u64; SMALL];
    crate::symbol::Sym::with_names(|names| {
        for (i, attr) in a.iter().enumerate() {
            let name = names[attr.name.0 as usize];
            let key = name_prefix(name);
            let mut j = i;
            while j > 0 && (keys[j - 1] > key || (keys[j - 1] == key && sorted[j - 1].0 > name)) {
                keys[j] = keys[j - 1];
                sorted[j] = sorted[j - 1];
                j -= 1;
            }
            keys[j] = key;
            sorted[j] = (name, attr);
        }
    });
    f(&sorted[..n])
}

/// The first eight bytes of `name`, zero-padded, as a big-endian integer: for
/// two names whose prefixes differ, the integers compare as the names do.
#[inline]
fn name_prefix(name: &[u8]) -> u64 {
    if let Some(head) = name.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    let mut key = 0u64;
    for &b in name {
        key = key << 8 | b as u64;
    }
    key.checked_shl(8 * (8 - name.len() as u32)).unwrap_or(0)
}

/// A JSON string literal, escaped as CppNix 2.8 escapes it.
pub fn json_string(s: &[u8], out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    let plain = crate::json::plain_json_prefix(s);
    if plain == s.len() {
        // Most strings need no escape: the quotes and the bytes, written
        // into the room just reserved.
        let len = out.len();
        // SAFETY: `reserve` made room for `s.len() + 2` more bytes, all of
        // which are written before the length is set.
        unsafe {
            let at = out.as_mut_ptr().add(len);
            *at = b'"';
            std::ptr::copy_nonoverlapping(s.as_ptr(), at.add(1), s.len());
            *at.add(1 + s.len()) = b'"';
            out.set_len(len + s.len() + 2);
        }
        return;
    }
    out.push(b'"');
    // Runs of bytes that need no escape are found eight at a time and copied whole.
    let mut rest = s;
    loop {
        let plain = crate::json::plain_json_prefix(rest);
        out.extend_from_slice(&rest[..plain]);
        let Some(&c) = rest.get(plain) else { break };
        rest = &rest[plain + 1..];
        match c {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(c);
            }
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            // Current CppNix writes JSON through nlohmann::json, which has
            // short forms for these two as well (2.8 wrote `\u0008`, `\u000c`).
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            }
        }
    }
    out.push(b'"');
}

/// `builtins.toJSON` / `--json`: forces the value completely.
pub fn to_json(e: &mut Eval, v: &Value, pos: Pos, out: &mut Vec<u8>, ctx: &mut Context) -> Result<()> {
    let mut invalid_utf8 = None;
    let v = e.force(v, pos)?;
    to_json_value(e, v, pos, out, ctx, &mut invalid_utf8)?;
    // Current CppNix builds the whole JSON value first and serialises it
    // through nlohmann::json, whose dump() rejects invalid UTF-8 only then.
    if let Some(msg) = invalid_utf8 {
        return Err(eval_error(format!("JSON serialization error: {msg}"), Pos::NONE));
    }
    Ok(())
}

/// CppNix's `printValueAsJSON`: attributes in name order, each failure framed
/// with the attribute ("while evaluating attribute 'NAME'", at it) or the list
/// element ("while evaluating list element at index N"). `v` is forced; the
/// attributes and items inside are forced here, each slot's thunk replaced by
/// its value as it is (`Eval::force_attr_slot`): the value converted is
/// usually kept, and its thunks would only hold memory.
fn to_json_value(
    e: &mut Eval,
    v: Value,
    pos: Pos,
    out: &mut Vec<u8>,
    ctx: &mut Context,
    invalid_utf8: &mut Option<String>,
) -> Result<()> {
    use crate::eval::AddTrace;
    match &v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => push_int(out, *n),
        Value::Float(f) => out.extend_from_slice(format_float_json(*f).as_bytes()),
        Value::String(s) => {
            // ASCII, most strings, is valid UTF-8 without decoding.
            let valid = if s.as_bytes().is_ascii() { Ok("") } else { std::str::from_utf8(s.as_bytes()) };
            if let Err(err) = valid {
                if invalid_utf8.is_none() {
                    let index = err.valid_up_to();
                    *invalid_utf8 = Some(format!(
                        "[json.exception.type_error.316] invalid UTF-8 byte at index {index}: 0x{:02X}",
                        s.as_bytes()[index]
                    ));
                }
            }
            json_string(s.as_bytes(), out);
            if let Some(c) = s.context() {
                ctx.union_with(c);
            }
        }
        Value::Path(p) => {
            let store_path = e.copy_path_to_store(p.as_bytes(), pos)?;
            json_string(store_path.as_bytes(), out);
            ctx.insert(store_path.into_bytes().into_boxed_slice());
        }
        Value::Attrs(a) => {
            if a.get(e.s.to_string).is_some() {
                // (tryAttrsToString without copying paths to the store.)
                let s = e.coerce_to_string(&v, pos, Coerce { more: false, copy_to_store: false })?;
                json_string(s.as_bytes(), out);
                if let Some(c) = s.context() {
                    ctx.union_with(c);
                }
                return Ok(());
            }
            if let Some(o) = a.find(e.s.out_path) {
                let o_pos = o.pos;
                let o = e.force_attr_slot(a, o)?;
                return to_json_value(e, o, o_pos, out, ctx, invalid_utf8);
            }
            out.push(b'{');
            with_sorted_attrs(a, |sorted| -> Result<()> {
                for (i, (name, attr)) in sorted.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_string(name, out);
                    out.push(b':');
                    e.force_attr_slot(a, *attr)
                        .and_then(|item| to_json_value(e, item, attr.pos, out, ctx, invalid_utf8))
                        .trace(attr.pos, || format!("while evaluating attribute '{}'", attr.name))?;
                }
                Ok(())
            })?;
            out.push(b'}');
        }
        Value::List(l) => {
            out.push(b'[');
            for i in 0..l.len() {
                if i > 0 {
                    out.push(b',');
                }
                e.force_list_slot(l, i, pos)
                    .and_then(|item| to_json_value(e, item, pos, out, ctx, invalid_utf8))
                    .trace(pos, || format!("while evaluating list element at index {i}"))?;
            }
            out.push(b']');
        }
        other => {
            // At the function's own position, as CppNix's determinePos.
            let at = match other {
                Value::Lambda(c) => c.lambda.pos,
                _ => pos,
            };
            return Err(crate::error::EvalError::new(
                crate::error::ErrorKind::Type,
                format!("cannot convert {} to JSON", other.show_type()),
                at,
            ));
        }
    }
    Ok(())
}

fn xml_escape(s: &[u8]) -> String {
    let mut out = String::new();
    for ch in String::from_utf8_lossy(s).chars() {
        match ch {
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("&#xA;"),
            c => out.push(c),
        }
    }
    out
}

struct Xml {
    out: String,
    depth: usize,
    strict: bool,
    /// Print `path`/`line`/`column` of attributes and functions, as
    /// `nix-instantiate --xml` does (not `builtins.toXML`, nor `--no-location`).
    location: bool,
}

/// The location attributes of `pos`, CppNix's `posToXML`: `path` (for a file,
/// the built-in `derivation`'s included), `line`, `column`; nothing for an
/// unknown position.
fn xml_location(pos: Pos) -> Vec<(&'static str, String)> {
    let Some(loc) = pos.resolve() else { return Vec::new() };
    let mut attrs = Vec::new();
    if let crate::pos::Origin::File(path) = &loc.origin {
        attrs.push(("path", path.display().to_string()));
    }
    attrs.push(("line", loc.line.to_string()));
    attrs.push(("column", loc.column.to_string()));
    attrs
}

impl Xml {
    fn attrs(attrs: &[(&str, String)]) -> String {
        let mut sorted: Vec<&(&str, String)> = attrs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let mut s = String::new();
        for (k, v) in sorted {
            let _ = write!(s, " {}=\"{}\"", k, xml_escape(v.as_bytes()));
        }
        s
    }
    fn open(&mut self, name: &str, attrs: &[(&str, String)]) {
        let _ = writeln!(self.out, "{}<{}{}>", "  ".repeat(self.depth), name, Xml::attrs(attrs));
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth -= 1;
        let _ = writeln!(self.out, "{}</{}>", "  ".repeat(self.depth), name);
    }
    fn empty(&mut self, name: &str, attrs: &[(&str, String)]) {
        let _ = writeln!(self.out, "{}<{}{} />", "  ".repeat(self.depth), name, Xml::attrs(attrs));
    }
}

/// `builtins.toXML` (and `--xml`): CppNix's XML layout, forcing everything.
pub fn to_xml(e: &mut Eval, v: &Value, pos: Pos, ctx: &mut Context) -> Result<String> {
    to_xml_opts(e, v, pos, ctx, true)
}

/// `strict = false` prints values not evaluated yet as `<unevaluated />`, as
/// `nix-instantiate --eval --xml` without `--strict` does.
pub fn to_xml_opts(e: &mut Eval, v: &Value, pos: Pos, ctx: &mut Context, strict: bool) -> Result<String> {
    to_xml_with_location(e, v, pos, ctx, strict, false)
}

/// `location = true` adds source positions to attributes and functions, as
/// `nix-instantiate --eval --xml` prints them.
pub fn to_xml_with_location(e: &mut Eval, v: &Value, pos: Pos, ctx: &mut Context, strict: bool, location: bool) -> Result<String> {
    let mut x = Xml { out: "<?xml version='1.0' encoding='utf-8'?>\n".to_string(), depth: 0, strict, location };
    x.open("expr", &[]);
    let mut drvs_seen = HashSet::new();
    xml_value(e, v, pos, &mut x, ctx, &mut drvs_seen)?;
    x.close("expr");
    Ok(x.out)
}

fn xml_attrs(e: &mut Eval, a: &Attrs, pos: Pos, x: &mut Xml, ctx: &mut Context, seen: &mut HashSet<Vec<u8>>) -> Result<()> {
    for attr in a.sorted_by_name() {
        let mut attrs = vec![("name", attr.name.to_string())];
        if x.location {
            attrs.extend(xml_location(attr.pos));
        }
        x.open("attr", &attrs);
        let value = attr.value.clone();
        xml_value(e, &value, pos, x, ctx, seen)?;
        x.close("attr");
    }
    Ok(())
}

fn xml_value(e: &mut Eval, v: &Value, pos: Pos, x: &mut Xml, ctx: &mut Context, seen: &mut HashSet<Vec<u8>>) -> Result<()> {
    if !x.strict {
        if let Value::Thunk(t) = v {
            if !t.is_done() {
                x.empty("unevaluated", &[]);
                return Ok(());
            }
        }
    }
    let v = e.force(v, pos)?;
    match &v {
        Value::Int(n) => x.empty("int", &[("value", n.to_string())]),
        Value::Bool(b) => x.empty("bool", &[("value", if *b { "true" } else { "false" }.to_string())]),
        Value::String(s) => {
            if let Some(c) = s.context() {
                ctx.union_with(c);
            }
            x.empty("string", &[("value", String::from_utf8_lossy(s.as_bytes()).into_owned())])
        }
        Value::Path(p) => x.empty("path", &[("value", String::from_utf8_lossy(p.as_bytes()).into_owned())]),
        Value::Null => x.empty("null", &[]),
        Value::Float(f) => x.empty("float", &[("value", format_float_g(*f))]),
        Value::Attrs(a) => {
            if e.is_derivation(a)? {
                // CppNix shows `drvPath`/`outPath` only when they are strings,
                // forcing them only under `--strict`; a derivation without a
                // known `drvPath` is shown as `<repeated />`.
                let mut attrs: Vec<(&str, String)> = Vec::new();
                let mut drv_path = None;
                let known_string = |e: &mut Eval, v: Option<Value>| -> Result<Option<Vec<u8>>> {
                    let Some(v) = v else { return Ok(None) };
                    if !x.strict && matches!(&v, Value::Thunk(t) if !t.is_done()) {
                        return Ok(None);
                    }
                    Ok(match e.force(&v, pos)? {
                        Value::String(s) => Some(s.as_bytes().to_vec()),
                        _ => None,
                    })
                };
                if let Some(d) = known_string(e, a.get(e.s.drv_path).cloned())? {
                    attrs.push(("drvPath", String::from_utf8_lossy(&d).into_owned()));
                    drv_path = Some(d);
                }
                if let Some(o) = known_string(e, a.get(e.s.out_path).cloned())? {
                    attrs.push(("outPath", String::from_utf8_lossy(&o).into_owned()));
                }
                x.open("derivation", &attrs);
                let repeated = match drv_path {
                    Some(d) => !seen.insert(d),
                    None => true,
                };
                if repeated {
                    x.empty("repeated", &[]);
                } else {
                    xml_attrs(e, a, pos, x, ctx, seen)?;
                }
                x.close("derivation");
            } else {
                x.open("attrs", &[]);
                xml_attrs(e, a, pos, x, ctx, seen)?;
                x.close("attrs");
            }
        }
        Value::List(l) => {
            x.open("list", &[]);
            for item in l.iter() {
                xml_value(e, item, pos, x, ctx, seen)?;
            }
            x.close("list");
        }
        Value::Lambda(c) => {
            let l = c.lambda;
            let location = if x.location { xml_location(l.pos) } else { Vec::new() };
            x.open("function", &location);
            match &l.formals {
                Some(f) => {
                    let mut attrs = Vec::new();
                    if f.ellipsis {
                        attrs.push(("ellipsis", "1".to_string()));
                    }
                    if let Some(a) = l.arg {
                        attrs.push(("name", a.to_string()));
                    }
                    x.open("attrspat", &attrs);
                    // In name order, whatever the source order (CppNix's
                    // `lexicographicOrder`).
                    let mut names: Vec<String> = f.entries.iter().map(|formal| formal.name.to_string()).collect();
                    names.sort();
                    for name in names {
                        x.empty("attr", &[("name", name)]);
                    }
                    x.close("attrspat");
                }
                None => x.empty("varpat", &[("name", l.arg.map(|a| a.to_string()).unwrap_or_default())]),
            }
            x.close("function");
        }
        Value::PrimOp(_) | Value::PrimOpApp(_) => x.empty("unevaluated", &[]),
        Value::Thunk(_) => x.empty("unevaluated", &[]),
    }
    Ok(())
}

// ----- showing expressions (assertion messages) -----

fn show_attr_path(path: &[AttrName], out: &mut String) {
    for (i, a) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match a {
            AttrName::Static(s) => push_identifier(out, *s),
            AttrName::Dynamic(e) => {
                out.push_str("\"${");
                show(e, out);
                out.push_str("}\"");
            }
        }
    }
}

/// A name as current CppNix's `printIdentifier` shows it.
fn push_identifier(out: &mut String, name: crate::symbol::Sym) {
    let mut bytes = Vec::new();
    write_attr_name(&mut bytes, name.as_bytes());
    out.push_str(&String::from_utf8_lossy(&bytes));
}

/// The bindings of a set or `let` as current CppNix's `showBindings` prints
/// them: `inherit` names first, then each `inherit (e)` group in source
/// order, then the other attributes, all in lexicographic order, then the
/// dynamic attributes in source order.
fn show_bindings(a: &AttrsExpr, out: &mut String) {
    let mut sorted: Vec<&AttrDef> = a.attrs.iter().collect();
    sorted.sort_by(|x, y| x.name.as_bytes().cmp(y.name.as_bytes()));
    let inherited: Vec<&AttrDef> = sorted.iter().copied().filter(|d| d.kind == AttrKind::Inherited).collect();
    if !inherited.is_empty() {
        out.push_str("inherit");
        for d in inherited {
            out.push(' ');
            push_identifier(out, d.name);
        }
        out.push_str("; ");
    }
    for (index, from) in a.inherit_from.iter().enumerate() {
        let names: Vec<&AttrDef> =
            sorted.iter().copied().filter(|d| d.kind == AttrKind::InheritFrom(index as u32)).collect();
        if names.is_empty() {
            continue;
        }
        out.push_str("inherit (");
        show(from, out);
        out.push(')');
        for d in names {
            out.push(' ');
            push_identifier(out, d.name);
        }
        out.push_str("; ");
    }
    for d in sorted.iter().filter(|d| d.kind == AttrKind::Plain) {
        push_identifier(out, d.name);
        out.push_str(" = ");
        show(&d.value, out);
        out.push_str("; ");
    }
    for d in &a.dynamic {
        out.push_str("\"${");
        show(&d.name, out);
        out.push_str("}\" = ");
        show(&d.value, out);
        out.push_str("; ");
    }
}

pub fn show_expr(e: &Expr) -> String {
    let mut out = String::new();
    show(e, &mut out);
    out
}

fn show(e: &Expr, out: &mut String) {
    match e {
        Expr::Const(v) => match v {
            Value::Int(n) => out.push_str(&n.to_string()),
            Value::Float(f) => out.push_str(&format_float_g(*f)),
            Value::String(s) => {
                let mut b = Vec::new();
                // printLiteralString: `$` is escaped only before `{` (CppNix
                // 2.8 escaped every `$` here).
                escape_string_opts(s.as_bytes(), &mut b, false);
                out.push_str(&String::from_utf8_lossy(&b));
            }
            Value::Path(p) => out.push_str(&p.to_str_lossy()),
            _ => out.push_str("null"),
        },
        Expr::Var(v) => push_identifier(out, v.name),
        Expr::Select { expr, path, default, .. } => {
            out.push('(');
            show(expr, out);
            out.push_str(").");
            show_attr_path(path, out);
            if let Some(d) = default {
                out.push_str(" or (");
                show(d, out);
                out.push(')');
            }
        }
        Expr::HasAttr { expr, path, .. } => {
            out.push_str("((");
            show(expr, out);
            out.push_str(") ? ");
            show_attr_path(path, out);
            out.push(')');
        }
        Expr::Attrs(a) => {
            if a.rec {
                out.push_str("rec ");
            }
            out.push_str("{ ");
            show_bindings(a, out);
            out.push('}');
        }
        Expr::List(items) => {
            out.push_str("[ ");
            for i in items {
                out.push('(');
                show(i, out);
                out.push_str(") ");
            }
            out.push(']');
        }
        Expr::Lambda(l) => {
            out.push('(');
            if let Some(f) = &l.formals {
                out.push_str("{ ");
                let mut first = true;
                // Current CppNix lists formals in lexicographic order.
                let mut sorted: Vec<&Formal> = f.entries.iter().collect();
                sorted.sort_by(|x, y| x.name.as_bytes().cmp(y.name.as_bytes()));
                for formal in sorted {
                    if !first {
                        out.push_str(", ");
                    }
                    first = false;
                    push_identifier(out, formal.name);
                    if let Some(d) = &formal.default {
                        out.push_str(" ? ");
                        show(d, out);
                    }
                }
                if f.ellipsis {
                    if !first {
                        out.push_str(", ");
                    }
                    out.push_str("...");
                }
                out.push_str(" }");
                if let Some(a) = l.arg {
                    out.push_str(" @ ");
                    push_identifier(out, a);
                }
            } else if let Some(a) = l.arg {
                push_identifier(out, a);
            }
            out.push_str(": ");
            show(&l.body, out);
            out.push(')');
        }
        Expr::Call { func, args, .. } => {
            out.push('(');
            show(func, out);
            for a in args {
                out.push(' ');
                show(a, out);
            }
            out.push(')');
        }
        Expr::Let { attrs, body } => {
            out.push_str("(let ");
            show_bindings(attrs, out);
            out.push_str("in ");
            show(body, out);
            out.push(')');
        }
        Expr::With { attrs, body, .. } => {
            out.push_str("(with ");
            show(attrs, out);
            out.push_str("; ");
            show(body, out);
            out.push(')');
        }
        Expr::If { cond, then, else_, .. } => {
            out.push_str("(if ");
            show(cond, out);
            out.push_str(" then ");
            show(then, out);
            out.push_str(" else ");
            show(else_, out);
            out.push(')');
        }
        Expr::Assert { cond, body, .. } => {
            out.push_str("assert ");
            show(cond, out);
            out.push_str("; ");
            show(body, out);
        }
        Expr::Not { expr, .. } => {
            out.push_str("(! ");
            show(expr, out);
            out.push(')');
        }
        Expr::Neg { expr, .. } => {
            out.push_str("(__sub 0 ");
            show(expr, out);
            out.push(')');
        }
        Expr::BinOp { op, lhs, rhs, .. } => {
            let sym = match op {
                BinOp::Eq => "==",
                BinOp::Neq => "!=",
                BinOp::Lt => "<",
                BinOp::And => "&&",
                BinOp::Or => "||",
                BinOp::Impl => "->",
                BinOp::Update => "//",
                BinOp::Concat => "++",
                BinOp::Add => "+",
                BinOp::Sub => "-",
                BinOp::Mul => "*",
                BinOp::Div => "/",
            };
            if *op == BinOp::Lt || matches!(op, BinOp::Sub | BinOp::Mul | BinOp::Div) {
                let name = match op {
                    BinOp::Lt => "__lessThan",
                    BinOp::Sub => "__sub",
                    BinOp::Mul => "__mul",
                    _ => "__div",
                };
                let _ = write!(out, "({name} ");
                show(lhs, out);
                out.push(' ');
                show(rhs, out);
                out.push(')');
                return;
            }
            out.push('(');
            show(lhs, out);
            let _ = write!(out, " {sym} ");
            show(rhs, out);
            out.push(')');
        }
        Expr::ConcatStrings { parts, .. } => {
            out.push('(');
            for (i, (_, p)) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(" + ");
                }
                show(p, out);
            }
            out.push(')');
        }
        Expr::CurPos(_) => out.push_str("__curPos"),
    }
}

#[cfg(test)]
mod int_tests {
    #[test]
    fn integers_print_as_rust_formats_them() {
        let mut cases = vec![0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 123456, -1, -10, -99, -100, i64::MAX, i64::MIN, i64::MIN + 1];
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x);
            cases.push(x >> (x & 63));
        }
        for n in cases {
            assert_eq!(super::format_int(n, &mut [0; 20]), n.to_string().as_bytes(), "{n}");
        }
    }
}

/// The identity under which a list is remembered for «repeated»: a list of up
/// to two elements by the slot that holds it (CppNix keeps those inline in the
/// value, so two slots sharing one are still printed twice), a longer one by
/// its address. Tagged so that a small list's slot never collides with a set's
/// or a long list's address.
fn list_identity(l: &Rc<List>, slot: usize) -> usize {
    if l.len() <= 2 {
        slot | 1 << 63
    } else {
        Rc::as_ptr(l) as usize
    }
}

#[cfg(test)]
mod collapse_tests {
    use crate::value::{Attrs, Value};
    use crate::{Eval, FsIO, Pos, Settings};
    use std::rc::Rc as StdRc;

    fn eval(ev: &mut Eval, src: &str) -> Value {
        let e = ev.parse_string(src, std::path::Path::new("/")).unwrap();
        ev.eval_expr(e).unwrap()
    }

    fn set_slots(a: &Attrs) -> Vec<bool> {
        a.iter().map(|attr| matches!(attr.value, Value::Thunk(_))).collect()
    }

    /// `deepSeq` and `toJSON` leave values, not forced thunks, in the slots
    /// they walk, and a thunk shared with another slot or scope still gives
    /// its value there.
    #[test]
    fn walkers_put_values_in_place_of_forced_thunks() {
        crate::run_with_big_stack(64 << 20, || {
            let mut ev = Eval::new(StdRc::new(FsIO), Settings::default());
            let v = eval(&mut ev, "let x = 1 + 1; in { a = x; b = [ x (x + 1) { c = x * 2; } ]; d = x; }");
            let Value::Attrs(set) = ev.force(&v, Pos::NONE).unwrap() else { panic!("a set") };
            // `a` and `d` share the let's thunk, `b` is the list's own.
            assert_eq!(set_slots(&set), vec![true, true, true]);
            ev.force_deep(&v, Pos::NONE).unwrap();
            assert_eq!(set_slots(&set), vec![false, false, false]);
            let Some(Value::List(items)) = set.iter().nth(1).map(|a| a.value.clone()) else { panic!("a list") };
            assert!(items.iter().all(|item| !matches!(item, Value::Thunk(_))));
            assert_eq!(crate::print::print_value(&mut ev, &v, true).unwrap(), "{ a = 2; b = [ 2 3 { c = 4; } ]; d = 2; }");

            let v = eval(&mut ev, "let s = { a = 1 + 1; b = [ (2 + 1) ]; }; in [ s s.a (builtins.toJSON s) s ]");
            let Value::List(outer) = ev.force(&v, Pos::NONE).unwrap() else { panic!("a list") };
            let json = ev.force(&outer[2], Pos::NONE).unwrap();
            let Value::String(json) = json else { panic!("a string") };
            assert_eq!(json.as_bytes(), br#"{"a":2,"b":[3]}"#);
            let Value::Attrs(s) = ev.force(&outer[0], Pos::NONE).unwrap() else { panic!("a set") };
            assert_eq!(set_slots(&s), vec![false, false]);
            let Value::Int(2) = ev.force(&outer[1], Pos::NONE).unwrap() else { panic!("2") };
        });
    }
}
