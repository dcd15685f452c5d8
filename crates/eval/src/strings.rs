//! String built-ins: regular expressions (`match`, `split`), `replaceStrings`,
//! `substring`, and version strings (`compareVersions`, `splitVersion`,
//! `parseDrvName`) with CppNix's component ordering.

use std::cell::RefCell;
use std::collections::HashMap;
use crate::value::Rc;

use crate::error::{ErrorContext, Result};
use crate::eval::{Coerce, Eval, eval_error};
use crate::pos::Pos;
use crate::support::{posix_regex, versions};
use crate::value::*;

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<Vec<u8>, Rc<posix_regex::CompiledRegex>>> = RefCell::new(HashMap::new());
}

/// Compiles a POSIX extended regular expression (CppNix's `std::regex::extended`
/// semantics: leftmost-longest, byte-wise, `.` matches newline), cached.
fn compile(re: &[u8]) -> std::result::Result<Rc<posix_regex::CompiledRegex>, String> {
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(re).cloned()) {
        return Ok(r);
    }
    let compiled = Rc::new(posix_regex::compile(re).map_err(|e| e.to_string())?);
    REGEX_CACHE.with(|c| c.borrow_mut().insert(re.to_vec(), compiled.clone()));
    Ok(compiled)
}

fn groups_value(s: &[u8], groups: &posix_regex::Groups) -> Value {
    Value::list(
        groups
            .iter()
            .map(|g| match g {
                Some(r) => Value::string(s[r.clone()].to_vec()),
                None => Value::Null,
            })
            .collect(),
    )
}

pub fn prim_match(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let re = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.match")?;
    // The expression is compiled before the string is forced (CppNix's order).
    let regex = compile(re.as_bytes()).map_err(|m| eval_error(m, p))?;
    let s = e.force_string(&a[1], p).context("while evaluating the second argument passed to builtins.match")?;
    match regex.full_match(s.as_bytes()).map_err(|m| eval_error(m.to_string(), p))? {
        None => Ok(Value::Null),
        Some(groups) => Ok(groups_value(s.as_bytes(), &groups)),
    }
}

pub fn prim_split(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let re = e.force_string_no_ctx(&a[0], p).context("while evaluating the first argument passed to builtins.split")?;
    let regex = compile(re.as_bytes()).map_err(|m| eval_error(m, p))?;
    let s = e.force_string(&a[1], p).context("while evaluating the second argument passed to builtins.split")?;
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut last = 0;
    for m in regex.split_matches(bytes) {
        let m = m.map_err(|err| eval_error(err.to_string(), p))?;
        out.push(Value::string(bytes[last..m.range.start].to_vec()));
        out.push(groups_value(bytes, &m.groups));
        last = m.range.end;
    }
    out.push(Value::string(bytes[last..].to_vec()));
    Ok(Value::list(out))
}

/// Up to this many patterns, `replaceStrings` searches for each pattern's
/// next occurrence; beyond, for positions holding some pattern's first byte.
const FINDER_MAX: usize = 8;

/// Appends replacement `to` (forced on its first use only, as current CppNix
/// does, and kept in `cache`) to the result and its context to `ctx`.
fn append_replacement(
    e: &mut Eval,
    to: &Value,
    cache: &mut Option<NixString>,
    p: Pos,
    out: &mut Vec<u8>,
    ctx: &mut Context,
) -> Result<()> {
    if cache.is_none() {
        let t = e.force_string(to, p).context("while evaluating one of the replacement strings passed to builtins.replaceStrings")?;
        *cache = Some(t);
    }
    let t = cache.as_ref().expect("filled above");
    out.extend_from_slice(t.as_bytes());
    if let Some(c) = t.context() {
        ctx.union_with(c);
    }
    Ok(())
}

pub fn prim_replace_strings(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let from_list = e.force_list(&a[0], p).context("while evaluating the first argument passed to builtins.replaceStrings")?;
    let to_list = e.force_list(&a[1], p).context("while evaluating the second argument passed to builtins.replaceStrings")?;
    if from_list.len() != to_list.len() {
        return Err(eval_error("'from' and 'to' arguments passed to builtins.replaceStrings have different lengths", p));
    }
    let mut from = Vec::with_capacity(from_list.len());
    for f in from_list.iter() {
        from.push(e.force_string(f, p).context("while evaluating one of the strings to replace passed to builtins.replaceStrings")?);
    }
    // Strings only, never coerced (a path is an error, as in CppNix).
    let s = e.force_string(&a[2], p).context("while evaluating the third argument passed to builtins.replaceStrings")?;
    let mut to_cache: Vec<Option<NixString>> = vec![None; to_list.len()];
    let mut ctx = s.context().cloned().unwrap_or_default();
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let any_empty = from.iter().any(|f| f.as_bytes().is_empty());
    if !any_empty && from.len() <= FINDER_MAX {
        // Each pattern's next occurrence, found with a substring searcher: the
        // earliest of them is the next match, and of patterns occurring there
        // the first in the list wins, which is what trying every pattern at
        // every position in list order (CppNix's loop) finds. After a match,
        // only patterns whose next occurrence it overlapped search again.
        let finders: Vec<memchr::memmem::Finder> = from.iter().map(|f| memchr::memmem::Finder::new(f.as_bytes())).collect();
        let find_from = |j: usize, at: usize| finders[j].find(&bytes[at..]).map_or(usize::MAX, |k| at + k);
        let mut next: Vec<usize> = (0..finders.len()).map(|j| find_from(j, 0)).collect();
        let mut pos = 0;
        loop {
            let (i, at) = next.iter().copied().enumerate().min_by_key(|&(j, at)| (at, j)).unwrap_or((0, usize::MAX));
            if at == usize::MAX {
                break;
            }
            out.extend_from_slice(&bytes[pos..at]);
            append_replacement(e, &to_list[i], &mut to_cache[i], p, &mut out, &mut ctx)?;
            pos = at + from[i].as_bytes().len();
            for (j, n) in next.iter_mut().enumerate() {
                if *n < pos {
                    *n = find_from(j, pos);
                }
            }
        }
        out.extend_from_slice(&bytes[pos..]);
        // A large result is adopted where it was built, not copied.
        return Ok(Value::String(NixString::from_vec(out, ctx)));
    }
    // Without an empty pattern, only positions holding some pattern's first
    // byte can match: the bytes in between are copied in one go.
    let mut first_bytes = [false; 256];
    for f in &from {
        if let Some(&b) = f.as_bytes().first() {
            first_bytes[b as usize] = true;
        }
    }
    // With up to three distinct first bytes, memchr finds the next candidate
    // a vector at a time.
    let firsts: Vec<u8> = (0..=255u8).filter(|b| first_bytes[*b as usize]).collect();
    let find_candidate = |hay: &[u8]| match firsts[..] {
        [a] => memchr::memchr(a, hay),
        [a, b] => memchr::memchr2(a, b, hay),
        [a, b, c] => memchr::memchr3(a, b, c, hay),
        _ => hay.iter().position(|b| first_bytes[*b as usize]),
    };
    let mut pos = 0;
    while pos <= bytes.len() {
        if !any_empty {
            let next = find_candidate(&bytes[pos..]).map_or(bytes.len(), |i| pos + i);
            out.extend_from_slice(&bytes[pos..next]);
            pos = next;
            if pos == bytes.len() {
                break;
            }
        }
        let mut found = false;
        for (i, f) in from.iter().enumerate() {
            let f = f.as_bytes();
            if bytes[pos..].starts_with(f) {
                found = true;
                append_replacement(e, &to_list[i], &mut to_cache[i], p, &mut out, &mut ctx)?;
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
    // A large result is adopted where it was built, not copied.
    Ok(Value::String(NixString::from_vec(out, ctx)))
}

pub fn prim_substring(e: &mut Eval, a: &[Value], p: Pos) -> Result<Value> {
    let start =
        e.force_int(&a[0], p).context("while evaluating the first argument (the start offset) passed to builtins.substring")?;
    if start < 0 {
        return Err(eval_error("negative start position in 'substring'", p));
    }
    let len =
        e.force_int(&a[1], p).context("while evaluating the second argument (the substring length) passed to builtins.substring")?;
    // An empty substring of a string keeps the context without coercing.
    if len == 0 {
        if let Value::String(s) = e.force(&a[2], p)? {
            return Ok(Value::string_ctx(Vec::new(), s.context().cloned().unwrap_or_default()));
        }
    }
    // A path is copied to the store first (CppNix's default coercion).
    let s = crate::builtins::coerce_ctx(
        e,
        &a[2],
        p,
        Coerce { more: false, copy_to_store: true },
        "while evaluating the third argument (the string) passed to builtins.substring",
    )?;
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

// ----- versions (CppNix's component rules, in crate::support::versions) -----

pub fn compare_versions(v1: &[u8], v2: &[u8]) -> i32 {
    match versions::compare_versions(v1, v2) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }
}

pub fn split_version(v: &[u8]) -> Vec<Vec<u8>> {
    versions::split_version(v).into_iter().map(|c| c.to_vec()).collect()
}

pub fn parse_drv_name(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (name, version) = versions::parse_drv_name(s);
    (name.to_vec(), version.to_vec())
}
