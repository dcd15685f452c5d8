//! Values as current CppNix shows them inside error messages ("expected a
//! list but found an integer: 1", "cannot coerce a set to a string: { … }").
//!
//! Nothing is forced: an unevaluated thunk shows as `«thunk»`, one under
//! evaluation as `«potential infinite recursion»`. Output is bounded as
//! CppNix's error printing is: ten levels deep, ten attributes and ten list
//! items in all (counted across the whole value), strings cut after 1024
//! bytes; the rest is shown as `«N attributes elided»` and the like.

use std::collections::HashSet;
use crate::value::Rc;

use crate::support::float_format::format_float_for_print;
use crate::value::{Attr, Value};

const MAX_DEPTH: usize = 10;
const MAX_ATTRS: usize = 10;
const MAX_LIST_ITEMS: usize = 10;
const MAX_STRING_BYTES: usize = 1024;

struct Shower {
    out: Vec<u8>,
    attrs_shown: usize,
    items_shown: usize,
    seen: HashSet<usize>,
}

/// `v` as CppNix prints a value in an error message.
pub fn show_value(v: &Value) -> String {
    let mut shower = Shower { out: Vec::new(), attrs_shown: 0, items_shown: 0, seen: HashSet::new() };
    shower.show(v, 0);
    String::from_utf8_lossy(&shower.out).into_owned()
}

fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for i in 0..s.len() {
        if i >= MAX_STRING_BYTES {
            out.extend_from_slice(b"\" ");
            elided(out, s.len() - i, "byte", "bytes");
            return;
        }
        crate::print::push_escaped_byte(out, s, i, false);
    }
    out.push(b'"');
}

fn elided(out: &mut Vec<u8>, count: usize, one: &str, many: &str) {
    let noun = if count == 1 { one } else { many };
    out.extend_from_slice(format!("«{count} {noun} elided»").as_bytes());
}

/// Whether an attribute name can be shown bare (else it is quoted).
fn is_plain_name(name: &[u8]) -> bool {
    match name.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    if matches!(name, b"if" | b"then" | b"else" | b"assert" | b"with" | b"let" | b"in" | b"rec" | b"inherit") {
        return false;
    }
    name.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\'' | b'-'))
}

impl Shower {
    fn show(&mut self, v: &Value, depth: usize) {
        match v {
            Value::Thunk(t) => match t.value() {
                Some(v) => self.show(&v, depth),
                None if t.is_black_hole() => self.out.extend_from_slice("«potential infinite recursion»".as_bytes()),
                None => self.out.extend_from_slice("«thunk»".as_bytes()),
            },
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(b) => self.out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(n) => self.out.extend_from_slice(n.to_string().as_bytes()),
            Value::Float(f) => self.out.extend_from_slice(format_float_for_print(*f).as_bytes()),
            Value::String(s) => write_string(&mut self.out, s.as_bytes()),
            Value::Path(p) => self.out.extend_from_slice(p.as_bytes()),
            Value::Attrs(a) => {
                if !self.seen.insert(Rc::as_ptr(a) as usize) {
                    self.out.extend_from_slice("«repeated»".as_bytes());
                    return;
                }
                if depth >= MAX_DEPTH {
                    self.out.extend_from_slice(b"{ ... }");
                    return;
                }
                let mut sorted: Vec<&Attr> = a.sorted_by_name();
                // `type` and `_type` first, as CppNix does when output is bounded.
                sorted.sort_by_key(|attr| !matches!(attr.name.as_bytes(), b"type" | b"_type"));
                self.out.push(b'{');
                for (shown, attr) in sorted.iter().enumerate() {
                    self.out.push(b' ');
                    if self.attrs_shown >= MAX_ATTRS {
                        elided(&mut self.out, sorted.len() - shown, "attribute", "attributes");
                        break;
                    }
                    let name = attr.name.as_bytes();
                    if is_plain_name(name) {
                        self.out.extend_from_slice(name);
                    } else {
                        write_string(&mut self.out, name);
                    }
                    self.out.extend_from_slice(b" = ");
                    self.show(&attr.value, depth + 1);
                    self.out.push(b';');
                    self.attrs_shown += 1;
                }
                self.out.extend_from_slice(b" }");
            }
            Value::List(l) => {
                if !l.is_empty() && !self.seen.insert(Rc::as_ptr(l) as usize) {
                    self.out.extend_from_slice("«repeated»".as_bytes());
                    return;
                }
                if depth >= MAX_DEPTH {
                    self.out.extend_from_slice(b"[ ... ]");
                    return;
                }
                self.out.push(b'[');
                for (shown, item) in l.iter().enumerate() {
                    self.out.push(b' ');
                    if self.items_shown >= MAX_LIST_ITEMS {
                        elided(&mut self.out, l.len() - shown, "item", "items");
                        break;
                    }
                    self.show(item, depth + 1);
                    self.items_shown += 1;
                }
                self.out.extend_from_slice(b" ]");
            }
            Value::Lambda(c) => {
                let mut text = String::from("«lambda");
                if let Some(name) = c.lambda.name {
                    text.push(' ');
                    text.push_str(&name.to_string());
                }
                if let Some(loc) = c.lambda.pos.resolve() {
                    text.push_str(&format!(" @ {loc}"));
                }
                text.push('»');
                self.out.extend_from_slice(text.as_bytes());
            }
            Value::PrimOp(op) => self.out.extend_from_slice(format!("«primop {}»", op.name).as_bytes()),
            Value::PrimOpApp(app) => {
                self.out.extend_from_slice(format!("«partially applied primop {}»", app.op.name).as_bytes())
            }
        }
    }
}
