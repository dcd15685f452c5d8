//! POSIX extended regular expressions as CppNix's `builtins.match` and
//! `builtins.split` see them.
//!
//! CppNix compiles patterns with `std::regex(pattern, std::regex::extended)`
//! from libstdc++ and runs `std::regex_match` (for `match`) or
//! `std::sregex_iterator` (for `split`). Both use libstdc++'s depth-first
//! executor, whose results are *not* textbook POSIX:
//!
//! - Alternation explores every branch and keeps the longest match; the
//!   capture groups are those of the first path (in left-to-right priority
//!   order) that reached that length.
//! - A greedy repetition that found any solution while trying one more
//!   iteration never tries fewer iterations. So `split "a*(ab)?" "ab"` finds
//!   `"a"`, not the longer `"ab"`.
//! - A loop may run an extra empty iteration at the same position (at most
//!   twice), which resets captures: `match "(a*)+" "aa"` gives `[ "" ]`.
//!
//! This module therefore parses the pattern itself (with libstdc++'s error
//! rules: `\d`, `\w`, `\}`, `(?:`, `*a`, `a{,2}`, `[z-a]` are errors; `]` first
//! in a bracket and `\` inside a bracket are literal), builds an NFA laid out
//! like libstdc++'s, and runs a transcription of its depth-first executor.
//! `match` takes a fast path through `regex::bytes` (leftmost-first with both
//! anchors, which picks the same path) whenever no capture group sits inside a
//! loop whose body can match the empty string, the one case where the two
//! executors disagree.
//!
//! Assumptions: bytes, not characters (`.` matches any byte except NUL,
//! including newline); character classes are those of the C locale (ASCII).
//! Collating elements `[.x.]` and equivalence classes `[=x=]` accept a single
//! byte only (multi-character names such as `[.space.]` are rejected, unlike
//! libstdc++).

use std::fmt::Write as _;
use std::ops::Range;

/// libstdc++ refuses patterns whose automaton exceeds this many states
/// (`_GLIBCXX_REGEX_STATE_LIMIT`) with "memory limit exceeded".
const STATE_LIMIT: usize = 100_000;

/// The depth-first executor keeps its own stack (on the heap) with a frame
/// per pending continuation; beyond this many frames we report an error
/// (libstdc++, which recurses on the machine stack, crashes far earlier).
const MAX_FRAMES: usize = 2_000_000;

/// Why a pattern was rejected or a match could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    /// The pattern is not a valid POSIX extended regular expression.
    #[error("invalid regular expression '{pattern}'")]
    Invalid { pattern: String, reason: &'static str },
    /// The automaton would be too large (CppNix says the same).
    #[error("memory limit exceeded by regular expression '{pattern}'")]
    TooLarge { pattern: String },
    /// Matching recursed too deeply (libstdc++ would crash here).
    #[error("regular expression '{pattern}' is too complex for this input")]
    TooComplex { pattern: String },
}

/// Capture groups 1..=n of one match: `None` for a group that took no part.
pub type Groups = Vec<Option<Range<usize>>>;

/// One match found by [`CompiledRegex::split_matches`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMatch {
    /// The whole match (group 0).
    pub range: Range<usize>,
    /// Groups 1..=n.
    pub groups: Groups,
}

/// A compiled pattern; compile once, match many times.
#[derive(Debug, Clone)]
pub struct CompiledRegex {
    pattern: String,
    nfa: Nfa,
    group_count: usize,
    /// `\A(?:P)\z` in `regex::bytes` syntax, when it gives the same captures
    /// as libstdc++ for every input.
    fast_full: Option<regex::bytes::Regex>,
    /// `(?:P)` unanchored: finds where the leftmost match starts (the same
    /// position for every matching discipline), so `split` runs the
    /// depth-first executor only where a match begins.
    start_finder: Option<regex::bytes::Regex>,
}

/// Compiles `pattern` with libstdc++'s `std::regex::extended` rules.
pub fn compile(pattern: &[u8]) -> Result<CompiledRegex, RegexError> {
    let pattern_text = String::from_utf8_lossy(pattern).into_owned();
    let invalid = |reason| RegexError::Invalid { pattern: pattern_text.clone(), reason };
    let mut parser = Parser { input: pattern, pos: 0, group_count: 0 };
    let ast = parser.parse_disjunction().map_err(invalid)?;
    if parser.pos != pattern.len() {
        // Only an unmatched ')' or a quantifier without operand stops the
        // top-level disjunction early.
        return Err(invalid("unexpected character"));
    }
    let group_count = parser.group_count;
    let mut builder = NfaBuilder { states: Vec::new() };
    let nfa = builder.build(&ast).ok_or_else(|| RegexError::TooLarge { pattern: pattern_text.clone() })?;
    let mut translated = String::new();
    ast.write_rust_syntax(&mut translated);
    let build = |text: String| regex::bytes::RegexBuilder::new(&text).unicode(false).size_limit(64 << 20).build().ok();
    let fast_full = if ast.has_group_in_nullable_loop() {
        None
    } else {
        build(format!("(?s-u)\\A(?:{translated})\\z"))
    };
    let start_finder = build(format!("(?s-u)(?:{translated})"));
    Ok(CompiledRegex { pattern: pattern_text, nfa, group_count, fast_full, start_finder })
}

impl CompiledRegex {
    /// Number of capture groups (parenthesised subexpressions).
    pub fn group_count(&self) -> usize {
        self.group_count
    }

    /// The pattern as given (lossily decoded for messages).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// `builtins.match`: does the whole of `haystack` match? Returns groups
    /// 1..=n on success.
    pub fn full_match(&self, haystack: &[u8]) -> Result<Option<Groups>, RegexError> {
        if let Some(fast) = &self.fast_full {
            return Ok(fast.captures(haystack).map(|captures| {
                (1..=self.group_count).map(|index| captures.get(index).map(|m| m.range())).collect()
            }));
        }
        self.full_match_slow(haystack)
    }

    /// The depth-first executor in exact mode (the fast path is checked
    /// against it in the tests).
    fn full_match_slow(&self, haystack: &[u8]) -> Result<Option<Groups>, RegexError> {
        let mut executor = Executor::new(&self.nfa, haystack, 0, true, false);
        executor.run().map_err(|()| self.too_complex())?;
        Ok(executor.best.map(|results| results.into_groups(self.group_count)))
    }

    /// `builtins.split`: the non-overlapping matches `std::sregex_iterator`
    /// visits, in order.
    pub fn split_matches<'r, 'h>(&'r self, haystack: &'h [u8]) -> SplitMatches<'r, 'h> {
        SplitMatches { regex: self, haystack, next_start: Some(0) }
    }

    /// `std::regex_search` from `start`: the first position at or after
    /// `start` where a match begins, and the match found there.
    fn search_from(&self, haystack: &[u8], start: usize) -> Result<Option<SplitMatch>, RegexError> {
        let mut start = start;
        if let Some(finder) = &self.start_finder {
            // A match exists at a position for libstdc++ exactly when one
            // exists for `regex` (same language), so skip to the first one.
            match finder.find_at(haystack, start) {
                None => return Ok(None),
                Some(found) => start = found.start(),
            }
        }
        for position in start..=haystack.len() {
            // Positions after the first one are searched with
            // `match_prev_avail`, so `^` matches only at offset 0.
            let mut executor = Executor::new(&self.nfa, haystack, position, false, position != 0);
            executor.run().map_err(|()| self.too_complex())?;
            if let (Some(results), Some(end)) = (executor.best, executor.best_end) {
                return Ok(Some(SplitMatch { range: position..end, groups: results.into_groups(self.group_count) }));
            }
        }
        Ok(None)
    }

    fn too_complex(&self) -> RegexError {
        RegexError::TooComplex { pattern: self.pattern.clone() }
    }
}

/// Iterator over the matches of [`CompiledRegex::split_matches`].
pub struct SplitMatches<'r, 'h> {
    regex: &'r CompiledRegex,
    haystack: &'h [u8],
    /// Where the next search starts; `None` when finished.
    next_start: Option<usize>,
}

impl Iterator for SplitMatches<'_, '_> {
    type Item = Result<SplitMatch, RegexError>;

    fn next(&mut self) -> Option<Self::Item> {
        let start = self.next_start?;
        match self.regex.search_from(self.haystack, start) {
            Err(error) => {
                self.next_start = None;
                Some(Err(error))
            }
            Ok(None) => {
                self.next_start = None;
                None
            }
            Ok(Some(found)) => {
                // After an empty match libstdc++ retries at the same place
                // with `match_not_null`; that can never succeed, because the
                // longest match there was empty, so it moves one byte on.
                self.next_start = if found.range.is_empty() {
                    if found.range.end == self.haystack.len() { None } else { Some(found.range.end + 1) }
                } else {
                    Some(found.range.end)
                };
                Some(Ok(found))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing

/// A set of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ByteSet([u64; 4]);

impl ByteSet {
    const EMPTY: ByteSet = ByteSet([0; 4]);

    fn insert(&mut self, byte: u8) {
        self.0[usize::from(byte >> 6)] |= 1u64 << (byte & 63);
    }

    fn contains(&self, byte: u8) -> bool {
        self.0[usize::from(byte >> 6)] & (1u64 << (byte & 63)) != 0
    }

    fn insert_range(&mut self, low: u8, high: u8) {
        for byte in low..=high {
            self.insert(byte);
        }
    }

    fn insert_where(&mut self, predicate: impl Fn(u8) -> bool) {
        for byte in 0..=255u8 {
            if predicate(byte) {
                self.insert(byte);
            }
        }
    }

    fn negate(&mut self) {
        for word in &mut self.0 {
            *word = !*word;
        }
    }

    fn single(byte: u8) -> ByteSet {
        let mut set = ByteSet::EMPTY;
        set.insert(byte);
        set
    }
}

#[derive(Debug, Clone)]
enum Node {
    /// Matches the empty string (an empty alternative).
    Empty,
    Set(ByteSet),
    LineBegin,
    LineEnd,
    Group(usize, Box<Node>),
    Concat(Vec<Node>),
    /// Left to right priority.
    Alternation(Vec<Node>),
    Repeat { body: Box<Node>, min: u32, max: Option<u32> },
}

/// The escapes libstdc++ accepts outside brackets in extended mode
/// (`_M_extended_spec_char`); any other escaped character is an error.
const ESCAPABLE: &[u8] = b"^$\\.*+?()[{|";

struct Parser<'p> {
    input: &'p [u8],
    pos: usize,
    group_count: usize,
}

type ParseResult<T> = Result<T, &'static str>;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn parse_disjunction(&mut self) -> ParseResult<Node> {
        let mut branches = vec![self.parse_alternative()?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            branches.push(self.parse_alternative()?);
        }
        Ok(if branches.len() == 1 { branches.pop().unwrap_or(Node::Empty) } else { Node::Alternation(branches) })
    }

    fn parse_alternative(&mut self) -> ParseResult<Node> {
        let mut terms = Vec::new();
        while let Some(term) = self.parse_term()? {
            terms.push(term);
        }
        Ok(match terms.len() {
            0 => Node::Empty,
            1 => terms.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(terms),
        })
    }

    /// An assertion (never quantified) or an atom with its quantifiers;
    /// `None` at `|`, `)`, the end, or a quantifier without operand (which the
    /// caller then rejects).
    fn parse_term(&mut self) -> ParseResult<Option<Node>> {
        let Some(byte) = self.peek() else { return Ok(None) };
        let atom = match byte {
            b'|' | b')' | b'*' | b'+' | b'?' | b'{' => return Ok(None),
            b'^' => {
                self.pos += 1;
                return Ok(Some(Node::LineBegin));
            }
            b'$' => {
                self.pos += 1;
                return Ok(Some(Node::LineEnd));
            }
            b'.' => {
                self.pos += 1;
                let mut set = ByteSet::EMPTY;
                set.insert_range(1, 255);
                Node::Set(set)
            }
            b'\\' => {
                let escaped = *self.input.get(self.pos + 1).ok_or("trailing backslash")?;
                if !ESCAPABLE.contains(&escaped) {
                    return Err("invalid escape");
                }
                self.pos += 2;
                Node::Set(ByteSet::single(escaped))
            }
            b'[' => {
                self.pos += 1;
                Node::Set(self.parse_bracket()?)
            }
            b'(' => {
                self.pos += 1;
                self.group_count += 1;
                let index = self.group_count;
                let inner = self.parse_disjunction()?;
                if self.peek() != Some(b')') {
                    return Err("unmatched parenthesis");
                }
                self.pos += 1;
                Node::Group(index, Box::new(inner))
            }
            other => {
                self.pos += 1;
                Node::Set(ByteSet::single(other))
            }
        };
        let mut node = atom;
        loop {
            let (min, max) = match self.peek() {
                Some(b'*') => (0, None),
                Some(b'+') => (1, None),
                Some(b'?') => (0, Some(1)),
                Some(b'{') => {
                    self.pos += 1;
                    let bounds = self.parse_interval()?;
                    self.pos -= 1; // re-balanced by the increment below
                    bounds
                }
                _ => break,
            };
            self.pos += 1;
            node = Node::Repeat { body: Box::new(node), min, max };
        }
        Ok(Some(node))
    }

    /// After `{`: `m}`, `m,}` or `m,n}`.
    fn parse_interval(&mut self) -> ParseResult<(u32, Option<u32>)> {
        let min = self.parse_number().ok_or("bad brace")?;
        let max = if self.peek() == Some(b',') {
            self.pos += 1;
            if self.peek() == Some(b'}') { None } else { Some(self.parse_number().ok_or("bad brace")?) }
        } else {
            Some(min)
        };
        if self.peek() != Some(b'}') {
            return Err("bad brace");
        }
        self.pos += 1;
        if max.is_some_and(|max| max < min) {
            return Err("bad brace range");
        }
        Ok((min, max))
    }

    fn parse_number(&mut self) -> Option<u32> {
        let start = self.pos;
        let mut value: u32 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            // Saturate: such counts exceed the state limit anyway.
            value = value.saturating_mul(10).saturating_add(u32::from(digit - b'0'));
            self.pos += 1;
        }
        (self.pos > start).then_some(value)
    }

    /// After `[`: the set, with `^`, `]` first, `[:class:]`, `[.c.]`,
    /// `[=c=]` and ranges, following libstdc++'s `_M_expression_term`.
    fn parse_bracket(&mut self) -> ParseResult<ByteSet> {
        #[derive(Clone, Copy)]
        enum Last {
            None,
            Char(u8),
            Class,
        }
        let mut set = ByteSet::EMPTY;
        let negated = self.peek() == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let mut last = Last::None;
        // The first character (even `]` or `-`) is ordinary.
        match self.peek() {
            None => return Err("unterminated bracket"),
            Some(b'[') => {}
            Some(byte) => {
                self.pos += 1;
                last = Last::Char(byte);
            }
        }
        loop {
            let byte = self.peek().ok_or("unterminated bracket")?;
            match byte {
                b']' => {
                    self.pos += 1;
                    if let Last::Char(pending) = last {
                        set.insert(pending);
                    }
                    break;
                }
                b'[' if matches!(self.input.get(self.pos + 1), Some(b':' | b'.' | b'=')) => {
                    let kind = self.input[self.pos + 1];
                    let name_start = self.pos + 2;
                    let mut end = name_start;
                    loop {
                        if end + 1 >= self.input.len() {
                            return Err("unterminated bracket element");
                        }
                        if self.input[end] == kind && self.input[end + 1] == b']' {
                            break;
                        }
                        end += 1;
                    }
                    let name = &self.input[name_start..end];
                    self.pos = end + 2;
                    if let Last::Char(pending) = last {
                        set.insert(pending);
                    }
                    match kind {
                        b':' => {
                            add_posix_class(&mut set, name)?;
                            last = Last::Class;
                        }
                        _ => {
                            // A single-byte collating element or equivalence
                            // class; libstdc++ does not let it start a range.
                            let [single] = name else { return Err("invalid collating element") };
                            set.insert(*single);
                            last = Last::Class;
                        }
                    }
                }
                b'-' => {
                    self.pos += 1;
                    if self.peek() == Some(b']') {
                        // "-]": a literal dash.
                        if let Last::Char(pending) = last {
                            set.insert(pending);
                        }
                        set.insert(b'-');
                        self.pos += 1;
                        break;
                    }
                    let Last::Char(low) = last else { return Err("invalid range") };
                    let high = match self.peek() {
                        None => return Err("unterminated bracket"),
                        Some(b'[') if matches!(self.input.get(self.pos + 1), Some(b':' | b'.' | b'=')) => {
                            return Err("invalid range end");
                        }
                        Some(high) => high,
                    };
                    self.pos += 1;
                    if high < low {
                        return Err("invalid range");
                    }
                    set.insert_range(low, high);
                    last = Last::None;
                }
                other => {
                    self.pos += 1;
                    if let Last::Char(pending) = last {
                        set.insert(pending);
                    }
                    last = Last::Char(other);
                }
            }
        }
        if negated {
            set.negate();
        }
        Ok(set)
    }
}

/// The classes of `std::regex_traits<char>::lookup_classname` in the C
/// locale, names compared case-insensitively.
fn add_posix_class(set: &mut ByteSet, name: &[u8]) -> ParseResult<()> {
    let name = name.to_ascii_lowercase();
    let predicate: fn(u8) -> bool = match name.as_slice() {
        b"alnum" => |b| b.is_ascii_alphanumeric(),
        b"alpha" => |b| b.is_ascii_alphabetic(),
        b"blank" => |b| b == b' ' || b == b'\t',
        b"cntrl" => |b| b.is_ascii_control(),
        b"digit" | b"d" => |b| b.is_ascii_digit(),
        b"graph" => |b| b.is_ascii_graphic(),
        b"lower" => |b| b.is_ascii_lowercase(),
        b"print" => |b| b.is_ascii_graphic() || b == b' ',
        b"punct" => |b| b.is_ascii_punctuation(),
        b"space" | b"s" => |b| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => |b| b.is_ascii_uppercase(),
        b"xdigit" => |b| b.is_ascii_hexdigit(),
        b"w" => |b| b.is_ascii_alphanumeric() || b == b'_',
        _ => return Err("invalid character class"),
    };
    set.insert_where(predicate);
    Ok(())
}

impl Node {
    fn nullable(&self) -> bool {
        match self {
            Node::Empty | Node::LineBegin | Node::LineEnd => true,
            Node::Set(_) => false,
            Node::Group(_, inner) => inner.nullable(),
            Node::Concat(nodes) => nodes.iter().all(Node::nullable),
            Node::Alternation(nodes) => nodes.iter().any(Node::nullable),
            Node::Repeat { body, min, .. } => *min == 0 || body.nullable(),
        }
    }

    fn has_group(&self) -> bool {
        match self {
            Node::Group(..) => true,
            Node::Concat(nodes) | Node::Alternation(nodes) => nodes.iter().any(Node::has_group),
            Node::Repeat { body, .. } => body.has_group(),
            _ => false,
        }
    }

    /// Whether a capture group sits inside a loop (a repetition that may
    /// iterate more than once) whose body can match empty: there, libstdc++
    /// runs extra empty iterations that `regex` does not.
    fn has_group_in_nullable_loop(&self) -> bool {
        match self {
            Node::Group(_, inner) => inner.has_group_in_nullable_loop(),
            Node::Concat(nodes) | Node::Alternation(nodes) => nodes.iter().any(Node::has_group_in_nullable_loop),
            Node::Repeat { body, max, .. } => {
                let loops = max.is_none_or(|max| max > 1);
                (loops && body.nullable() && body.has_group()) || body.has_group_in_nullable_loop()
            }
            _ => false,
        }
    }

    /// The same language and priorities in `regex` syntax (used only under
    /// `(?s-u)`, where `\xNN` is a byte).
    fn write_rust_syntax(&self, out: &mut String) {
        match self {
            Node::Empty => out.push_str("(?:)"),
            Node::Set(set) => write_byte_class(set, out),
            Node::LineBegin => out.push_str("(?:\\A)"),
            Node::LineEnd => out.push_str("(?:\\z)"),
            Node::Group(_, inner) => {
                out.push('(');
                inner.write_rust_syntax(out);
                out.push(')');
            }
            Node::Concat(nodes) => {
                out.push_str("(?:");
                for node in nodes {
                    node.write_rust_syntax(out);
                }
                out.push(')');
            }
            Node::Alternation(nodes) => {
                out.push_str("(?:");
                for (index, node) in nodes.iter().enumerate() {
                    if index > 0 {
                        out.push('|');
                    }
                    node.write_rust_syntax(out);
                }
                out.push(')');
            }
            Node::Repeat { body, min, max } => {
                out.push_str("(?:");
                body.write_rust_syntax(out);
                out.push(')');
                let _ = match max {
                    None => write!(out, "{{{min},}}"),
                    Some(max) => write!(out, "{{{min},{max}}}"),
                };
            }
        }
    }
}

fn write_byte_class(set: &ByteSet, out: &mut String) {
    if *set == ByteSet::EMPTY {
        out.push_str("[^\\x00-\\xFF]");
        return;
    }
    out.push('[');
    let mut byte: u16 = 0;
    while byte < 256 {
        if set.contains(byte as u8) {
            let low = byte;
            while byte + 1 < 256 && set.contains((byte + 1) as u8) {
                byte += 1;
            }
            let _ = write!(out, "\\x{low:02X}");
            if byte > low {
                let _ = write!(out, "-\\x{byte:02X}");
            }
        }
        byte += 1;
    }
    out.push(']');
}

// ---------------------------------------------------------------------------
// The automaton, laid out as libstdc++'s `_Compiler` lays it out.

type StateId = usize;
const NO_STATE: StateId = usize::MAX;

#[derive(Debug, Clone)]
enum State {
    Match { set: ByteSet, next: StateId },
    /// Explore `alt` (the left branch), then `next`, keep the longest.
    Alternative { alt: StateId, next: StateId },
    /// Greedy loop: one more iteration via `alt`, else leave via `next`.
    Repeat { alt: StateId, next: StateId },
    SubexprBegin { group: usize, next: StateId },
    SubexprEnd { group: usize, next: StateId },
    LineBegin { next: StateId },
    LineEnd { next: StateId },
    Dummy { next: StateId },
    Accept,
}

#[derive(Debug, Clone)]
struct Nfa {
    states: Vec<State>,
    start: StateId,
    /// Groups including group 0.
    group_slots: usize,
}

struct NfaBuilder {
    states: Vec<State>,
}

/// A fragment: entry state and the state whose `next` is still open.
#[derive(Clone, Copy)]
struct Fragment {
    start: StateId,
    end: StateId,
}

impl NfaBuilder {
    fn build(&mut self, ast: &Node) -> Option<Nfa> {
        let begin = self.push(State::SubexprBegin { group: 0, next: NO_STATE })?;
        let body = self.fragment(ast)?;
        self.link(begin, body.start);
        let end = self.push(State::SubexprEnd { group: 0, next: NO_STATE })?;
        self.link(body.end, end);
        let accept = self.push(State::Accept)?;
        self.link(end, accept);
        let group_slots = count_groups(ast) + 1;
        Some(Nfa { states: std::mem::take(&mut self.states), start: begin, group_slots })
    }

    fn push(&mut self, state: State) -> Option<StateId> {
        if self.states.len() >= STATE_LIMIT {
            return None;
        }
        self.states.push(state);
        Some(self.states.len() - 1)
    }

    /// Sets the `next` of `from` (libstdc++'s `_M_append`).
    fn link(&mut self, from: StateId, to: StateId) {
        match &mut self.states[from] {
            State::Match { next, .. }
            | State::Alternative { next, .. }
            | State::Repeat { next, .. }
            | State::SubexprBegin { next, .. }
            | State::SubexprEnd { next, .. }
            | State::LineBegin { next }
            | State::LineEnd { next }
            | State::Dummy { next } => *next = to,
            State::Accept => {}
        }
    }

    fn single(&mut self, state: State) -> Option<Fragment> {
        let id = self.push(state)?;
        Some(Fragment { start: id, end: id })
    }

    fn append(&mut self, fragment: &mut Fragment, next: Fragment) {
        self.link(fragment.end, next.start);
        fragment.end = next.end;
    }

    fn fragment(&mut self, node: &Node) -> Option<Fragment> {
        match node {
            Node::Empty => self.single(State::Dummy { next: NO_STATE }),
            Node::Set(set) => self.single(State::Match { set: *set, next: NO_STATE }),
            Node::LineBegin => self.single(State::LineBegin { next: NO_STATE }),
            Node::LineEnd => self.single(State::LineEnd { next: NO_STATE }),
            Node::Group(group, inner) => {
                let mut fragment = self.single(State::SubexprBegin { group: *group, next: NO_STATE })?;
                let body = self.fragment(inner)?;
                self.append(&mut fragment, body);
                let end = self.single(State::SubexprEnd { group: *group, next: NO_STATE })?;
                self.append(&mut fragment, end);
                Some(fragment)
            }
            Node::Concat(nodes) => {
                let mut iter = nodes.iter();
                let mut fragment = self.fragment(iter.next()?)?;
                for node in iter {
                    let next = self.fragment(node)?;
                    self.append(&mut fragment, next);
                }
                Some(fragment)
            }
            Node::Alternation(nodes) => {
                // Left-nested binary alternatives, each branch ending in a
                // shared dummy, as `_M_disjunction` builds them.
                let mut iter = nodes.iter();
                let mut left = self.fragment(iter.next()?)?;
                for node in iter {
                    let right = self.fragment(node)?;
                    let end = self.push(State::Dummy { next: NO_STATE })?;
                    self.link(left.end, end);
                    self.link(right.end, end);
                    let alternative = self.push(State::Alternative { alt: left.start, next: right.start })?;
                    left = Fragment { start: alternative, end };
                }
                Some(left)
            }
            Node::Repeat { body, min, max } => self.repeat(body, *min, *max),
        }
    }

    fn repeat(&mut self, body: &Node, min: u32, max: Option<u32>) -> Option<Fragment> {
        match (min, max) {
            (0, None) => {
                // `e*`: a repeat state whose `alt` enters e, e loops back.
                let inner = self.fragment(body)?;
                let repeat = self.push(State::Repeat { alt: inner.start, next: NO_STATE })?;
                self.link(inner.end, repeat);
                Some(Fragment { start: repeat, end: repeat })
            }
            (1, None) => {
                // `e+`: e followed by a repeat state looping back to e.
                let inner = self.fragment(body)?;
                let repeat = self.push(State::Repeat { alt: inner.start, next: NO_STATE })?;
                self.link(inner.end, repeat);
                Some(Fragment { start: inner.start, end: repeat })
            }
            (0, Some(1)) => {
                // `e?`
                let inner = self.fragment(body)?;
                let end = self.push(State::Dummy { next: NO_STATE })?;
                let repeat = self.push(State::Repeat { alt: inner.start, next: end })?;
                self.link(inner.end, end);
                Some(Fragment { start: repeat, end })
            }
            _ => {
                // `e{m}`, `e{m,}`, `e{m,n}`: m copies, then a star, or n-m
                // nested optional copies that all skip to one end.
                let mut fragment = self.single(State::Dummy { next: NO_STATE })?;
                for _ in 0..min {
                    let copy = self.fragment(body)?;
                    self.append(&mut fragment, copy);
                }
                match max {
                    None => {
                        let star = self.repeat(body, 0, None)?;
                        self.append(&mut fragment, star);
                    }
                    Some(max) => {
                        let end = self.push(State::Dummy { next: NO_STATE })?;
                        for _ in min..max {
                            let copy = self.fragment(body)?;
                            let repeat = self.push(State::Repeat { alt: copy.start, next: end })?;
                            self.link(fragment.end, repeat);
                            fragment.end = copy.end;
                        }
                        self.link(fragment.end, end);
                        fragment.end = end;
                    }
                }
                Some(fragment)
            }
        }
    }
}

fn count_groups(node: &Node) -> usize {
    match node {
        Node::Group(index, inner) => (*index).max(count_groups(inner)),
        Node::Concat(nodes) | Node::Alternation(nodes) => nodes.iter().map(count_groups).max().unwrap_or(0),
        Node::Repeat { body, .. } => count_groups(body),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------
// The depth-first executor (a transcription of libstdc++'s `_Executor` in
// DFS mode with POSIX, i.e. non-ECMAScript, flags).

#[derive(Debug, Clone, Copy, Default)]
struct SubMatch {
    first: usize,
    second: usize,
    matched: bool,
}

#[derive(Debug, Clone)]
struct Results(Vec<SubMatch>);

impl Results {
    fn into_groups(self, group_count: usize) -> Groups {
        (1..=group_count)
            .map(|index| {
                let sub = self.0.get(index).copied().unwrap_or_default();
                sub.matched.then_some(sub.first..sub.second)
            })
            .collect()
    }
}

struct Executor<'a> {
    nfa: &'a Nfa,
    input: &'a [u8],
    /// Where this attempt starts (`_M_begin`).
    begin: usize,
    current: usize,
    exact: bool,
    prev_avail: bool,
    has_sol: bool,
    best_end: Option<usize>,
    best: Option<Results>,
    current_results: Results,
    /// Per repeat state: position of the last iteration start, and count.
    rep_count: Vec<(usize, u32)>,
}

/// What remains to be done when the subtree below returns: libstdc++'s
/// recursive `_M_dfs` turned inside out.
enum Frame {
    Enter(StateId),
    /// After one more iteration of a loop: restore its counter, then leave
    /// the loop unless a solution was found.
    AfterIteration { state: StateId, saved: Option<(usize, u32)>, next: StateId },
    /// After the left branch of an alternative: try the right one.
    AfterLeft { next: StateId },
    /// After the right branch: merge the "found a solution" flags.
    AfterRight { had_sol: bool },
    RestoreFirst { group: usize, first: usize },
    RestoreSub { group: usize, sub: SubMatch },
    RestoreCurrent,
}

impl<'a> Executor<'a> {
    fn new(nfa: &'a Nfa, input: &'a [u8], begin: usize, exact: bool, prev_avail: bool) -> Self {
        Executor {
            nfa,
            input,
            begin,
            current: begin,
            exact,
            prev_avail,
            has_sol: false,
            best_end: None,
            best: None,
            current_results: Results(vec![SubMatch::default(); nfa.group_slots]),
            rep_count: vec![(usize::MAX, 0); nfa.states.len()],
        }
    }

    fn run(&mut self) -> Result<(), ()> {
        let mut stack = vec![Frame::Enter(self.nfa.start)];
        while let Some(frame) = stack.pop() {
            if stack.len() > MAX_FRAMES {
                return Err(());
            }
            match frame {
                Frame::Enter(state) => self.enter(state, &mut stack),
                Frame::AfterIteration { state, saved, next } => {
                    match saved {
                        Some(saved) => self.rep_count[state] = saved,
                        None => self.rep_count[state].1 -= 1,
                    }
                    if !self.has_sol {
                        stack.push(Frame::Enter(next));
                    }
                }
                Frame::AfterLeft { next } => {
                    let had_sol = self.has_sol;
                    self.has_sol = false;
                    stack.push(Frame::AfterRight { had_sol });
                    stack.push(Frame::Enter(next));
                }
                Frame::AfterRight { had_sol } => self.has_sol |= had_sol,
                Frame::RestoreFirst { group, first } => self.current_results.0[group].first = first,
                Frame::RestoreSub { group, sub } => self.current_results.0[group] = sub,
                Frame::RestoreCurrent => self.current -= 1,
            }
        }
        Ok(())
    }

    fn enter(&mut self, state: StateId, stack: &mut Vec<Frame>) {
        match self.nfa.states[state] {
            State::Repeat { alt, next } => {
                // `_M_rep_once_more`: an iteration may start at the same
                // position at most twice.
                let (position, count) = self.rep_count[state];
                if count == 0 || position != self.current {
                    let saved = self.rep_count[state];
                    self.rep_count[state] = (self.current, 1);
                    stack.push(Frame::AfterIteration { state, saved: Some(saved), next });
                    stack.push(Frame::Enter(alt));
                } else if count < 2 {
                    self.rep_count[state].1 += 1;
                    stack.push(Frame::AfterIteration { state, saved: None, next });
                    stack.push(Frame::Enter(alt));
                } else if !self.has_sol {
                    stack.push(Frame::Enter(next));
                }
            }
            State::Alternative { alt, next } => {
                stack.push(Frame::AfterLeft { next });
                stack.push(Frame::Enter(alt));
            }
            State::SubexprBegin { group, next } => {
                let first = self.current_results.0[group].first;
                self.current_results.0[group].first = self.current;
                stack.push(Frame::RestoreFirst { group, first });
                stack.push(Frame::Enter(next));
            }
            State::SubexprEnd { group, next } => {
                let sub = self.current_results.0[group];
                self.current_results.0[group].second = self.current;
                self.current_results.0[group].matched = true;
                stack.push(Frame::RestoreSub { group, sub });
                stack.push(Frame::Enter(next));
            }
            State::LineBegin { next } => {
                if self.current == 0 && !self.prev_avail {
                    stack.push(Frame::Enter(next));
                }
            }
            State::LineEnd { next } => {
                if self.current == self.input.len() {
                    stack.push(Frame::Enter(next));
                }
            }
            State::Match { set, next } => {
                if let Some(&byte) = self.input.get(self.current)
                    && set.contains(byte)
                {
                    self.current += 1;
                    stack.push(Frame::RestoreCurrent);
                    stack.push(Frame::Enter(next));
                }
            }
            State::Dummy { next } => stack.push(Frame::Enter(next)),
            State::Accept => self.accept(),
        }
    }

    fn accept(&mut self) {
        self.has_sol = if self.exact { self.current == self.input.len() } else { true };
        if self.has_sol {
            // POSIX: keep the first solution of the greatest length.
            if self.best_end.is_none_or(|end| end - self.begin < self.current - self.begin) {
                self.best_end = Some(self.current);
                self.best = Some(self.current_results.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
