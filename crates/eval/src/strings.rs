//! String built-ins: regular expressions (`match`, `split`), `replaceStrings`,
//! `substring`, and version strings (`compareVersions`, `splitVersion`,
//! `parseDrvName`) with CppNix's component ordering.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::Result;
use crate::eval::{Coerce, Eval, eval_error};
use crate::pos::Pos;
use crate::value::*;

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<Vec<u8>, Rc<regex::bytes::Regex>>> = RefCell::new(HashMap::new());
}

/// Compiles a POSIX extended regular expression (byte semantics, `.` matches
/// newline). `anchored` wraps it to match the whole input.
fn compile(re: &[u8], anchored: bool) -> std::result::Result<Rc<regex::bytes::Regex>, String> {
    let mut key = re.to_vec();
    key.push(anchored as u8);
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(r);
    }
    let translated = crate::support_glue::translate_ere(re)?;
    let pattern = if anchored { format!("(?s-u)^(?:{translated})$") } else { format!("(?s-u){translated}") };
    let compiled = regex::bytes::RegexBuilder::new(&pattern)
        .unicode(false)
        .build()
        .map_err(|_| format!("invalid regular expression '{}'", String::from_utf8_lossy(re)))?;
    let compiled = Rc::new(compiled);
    REGEX_CACHE.with(|c| c.borrow_mut().insert(key, compiled.clone()));
    Ok(compiled)
}

pub fn prim_match(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let re = e.force_string_no_ctx(&a[0], p)?;
    let s = e.force_string(&a[1], p)?;
    let regex = compile(re.as_bytes(), true).map_err(|m| eval_error(m, p))?;
    match regex.captures(s.as_bytes()) {
        None => Ok(Value::Null),
        Some(caps) => {
            let groups = (1..caps.len())
                .map(|i| match caps.get(i) {
                    Some(m) => Value::string(m.as_bytes().to_vec()),
                    None => Value::Null,
                })
                .collect();
            Ok(Value::list(groups))
        }
    }
}

pub fn prim_split(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let re = e.force_string_no_ctx(&a[0], p)?;
    let s = e.force_string(&a[1], p)?;
    let regex = compile(re.as_bytes(), false).map_err(|m| eval_error(m, p))?;
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut last = 0;
    for caps in regex.captures_iter(bytes) {
        let m = caps.get(0).expect("group 0 always matches");
        out.push(Value::string(bytes[last..m.start()].to_vec()));
        let groups = (1..caps.len())
            .map(|i| match caps.get(i) {
                Some(g) => Value::string(g.as_bytes().to_vec()),
                None => Value::Null,
            })
            .collect();
        out.push(Value::list(groups));
        last = m.end();
    }
    out.push(Value::string(bytes[last..].to_vec()));
    Ok(Value::list(out))
}

pub fn prim_replace_strings(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let from_list = e.force_list(&a[0], p)?;
    let to_list = e.force_list(&a[1], p)?;
    let s = e.coerce_to_string(&a[2], p, Coerce { more: false, copy_to_store: false })?;
    if from_list.len() != to_list.len() {
        return Err(eval_error("'from' and 'to' arguments passed to builtins.replaceStrings have different lengths", p));
    }
    let mut from = Vec::with_capacity(from_list.len());
    for f in from_list.iter() {
        from.push(e.force_string(f, p)?);
    }
    let mut to_cache: Vec<Option<NixString>> = vec![None; to_list.len()];
    let mut ctx = s.context().cloned().unwrap_or_default();
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos <= bytes.len() {
        let mut found = false;
        for (i, f) in from.iter().enumerate() {
            let f = f.as_bytes();
            if bytes[pos..].starts_with(f) {
                found = true;
                if to_cache[i].is_none() {
                    let t = e.coerce_to_string(&to_list[i], p, Coerce { more: false, copy_to_store: false })?;
                    to_cache[i] = Some(t);
                }
                let t = to_cache[i].as_ref().expect("filled above");
                out.extend_from_slice(t.as_bytes());
                if let Some(c) = t.context() {
                    ctx.extend(c.iter().cloned());
                }
                if f.is_empty() {
                    if pos < bytes.len() {
                        out.push(bytes[pos]);
                    }
                    pos += 1;
                } else {
                    pos += f.len();
                }
                break;
            }
        }
        if !found {
            if pos < bytes.len() {
                out.push(bytes[pos]);
            }
            pos += 1;
        }
    }
    Ok(Value::string_ctx(out, ctx))
}

pub fn prim_substring(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let start = e.force_int(&a[0], p)?;
    let len = e.force_int(&a[1], p)?;
    let s = e.coerce_to_string(&a[2], p, Coerce { more: false, copy_to_store: false })?;
    if start < 0 {
        return Err(eval_error("negative start position in 'substring'", p));
    }
    let bytes = s.as_bytes();
    let start = start as usize;
    let piece: &[u8] = if start >= bytes.len() {
        &[]
    } else {
        let end = if len < 0 { bytes.len() } else { start.saturating_add(len as usize).min(bytes.len()) };
        &bytes[start..end]
    };
    Ok(Value::string_ctx(piece.to_vec(), s.context().cloned().unwrap_or_default()))
}

// ----- versions -----

fn next_component(s: &[u8], p: &mut usize) -> Vec<u8> {
    while *p < s.len() && (s[*p] == b'.' || s[*p] == b'-') {
        *p += 1;
    }
    let start = *p;
    if *p < s.len() && s[*p].is_ascii_digit() {
        while *p < s.len() && s[*p].is_ascii_digit() {
            *p += 1;
        }
    } else {
        while *p < s.len() && !s[*p].is_ascii_digit() && s[*p] != b'.' && s[*p] != b'-' {
            *p += 1;
        }
    }
    s[start..*p].to_vec()
}

fn as_int(c: &[u8]) -> Option<i64> {
    if c.is_empty() || !c.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    std::str::from_utf8(c).ok()?.parse::<i32>().ok().map(|n| n as i64)
}

fn components_lt(c1: &[u8], c2: &[u8]) -> bool {
    let (n1, n2) = (as_int(c1), as_int(c2));
    match (n1, n2) {
        (Some(a), Some(b)) => a < b,
        _ if c1.is_empty() && n2.is_some() => true,
        _ if c1 == b"pre" && c2 != b"pre" => true,
        _ if c2 == b"pre" => false,
        (_, Some(_)) => true,
        (Some(_), _) => false,
        _ => c1 < c2,
    }
}

pub fn compare_versions(v1: &[u8], v2: &[u8]) -> i32 {
    let (mut p1, mut p2) = (0, 0);
    while p1 < v1.len() || p2 < v2.len() {
        let c1 = next_component(v1, &mut p1);
        let c2 = next_component(v2, &mut p2);
        if components_lt(&c1, &c2) {
            return -1;
        }
        if components_lt(&c2, &c1) {
            return 1;
        }
    }
    0
}

pub fn split_version(v: &[u8]) -> Vec<Vec<u8>> {
    let mut p = 0;
    let mut out = Vec::new();
    while p < v.len() {
        let c = next_component(v, &mut p);
        if c.is_empty() {
            break;
        }
        out.push(c);
    }
    out
}

pub fn parse_drv_name(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    for i in 0..s.len() {
        if s[i] == b'-' && i + 1 < s.len() && !s[i + 1].is_ascii_alphabetic() {
            return (s[..i].to_vec(), s[i + 1..].to_vec());
        }
    }
    (s.to_vec(), Vec::new())
}
