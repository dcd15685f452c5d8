//! Evaluation and parse errors.
//!
//! [`EvalError`] carries a kind, a message, the position it was raised at and a
//! trace of frames ("while evaluating the attribute 'x'") added as the error
//! unwinds. Only `Throw` and `Assert` errors are catchable by `tryEval`.

use thiserror::Error;

use crate::pos::{Pos, source_line};

#[derive(Debug, Error, Clone)]
#[error("{msg}")]
pub struct ParseError {
    pub msg: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `throw`: catchable.
    Throw,
    /// A failed `assert`: catchable.
    Assert,
    /// `abort`.
    Abort,
    /// A value of the wrong type.
    Type,
    /// Missing attribute, undefined variable, bad argument and other evaluation errors.
    Eval,
    InfiniteRecursion,
    StackOverflow,
    Parse,
    /// File-system or store access failed.
    Io,
    /// An operation the embedder did not provide (e.g. derivations without a store).
    Unsupported,
    /// An I/O failure with its own process exit status (a fetched hash mismatch
    /// is 102, as in CppNix).
    Status(u8),
}

#[derive(Debug, Clone)]
pub struct TraceFrame {
    pub pos: Pos,
    pub msg: String,
    /// Shown even where the trace is truncated (CppNix's `TracePrint::Always`,
    /// which `builtins.addErrorContext` uses).
    pub always: bool,
}

impl TraceFrame {
    pub fn new(pos: Pos, msg: impl Into<String>) -> TraceFrame {
        TraceFrame { pos, msg: msg.into(), always: false }
    }
}

#[derive(Debug, Clone, Error)]
#[error("{msg}")]
pub struct EvalError {
    pub kind: ErrorKind,
    pub msg: String,
    pub pos: Pos,
    pub trace: Vec<TraceFrame>,
    /// "Did you mean ...?" candidates, best first.
    pub suggestions: Vec<String>,
}

pub type Result<T> = std::result::Result<T, Box<EvalError>>;

/// CppNix's `errorCtx`: the frame a check adds to the error it raises
/// itself ("while evaluating the first argument passed to builtins.elemAt"),
/// never to an error raised while forcing the value, which comes with frames
/// or a position of its own.
pub(crate) trait ErrorContext<T> {
    fn context(self, msg: &str) -> Result<T>;
    fn context_with(self, msg: impl FnOnce() -> String) -> Result<T>;
}

impl<T> ErrorContext<T> for Result<T> {
    #[inline]
    fn context(self, msg: &str) -> Result<T> {
        self.map_err(|e| add_context(e, Pos::NONE, || msg.to_string()))
    }
    #[inline]
    fn context_with(self, msg: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| add_context(e, Pos::NONE, msg))
    }
}

/// Adds the `errorCtx` frame at `pos` to an error just raised by a check
/// (a wrong type, a string with a context, a string that is no absolute
/// path, a missing attribute).
#[cold]
pub(crate) fn add_context(mut e: Box<EvalError>, pos: Pos, msg: impl FnOnce() -> String) -> Box<EvalError> {
    if matches!(e.kind, ErrorKind::Type | ErrorKind::Eval) && e.trace.is_empty() && e.pos.is_none() {
        e.trace.push(TraceFrame::new(pos, msg()));
    }
    e
}

impl EvalError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>, pos: Pos) -> Box<EvalError> {
        Box::new(EvalError { kind, msg: msg.into(), pos, trace: Vec::new(), suggestions: Vec::new() })
    }

    /// Adds CppNix's suggestions: the names within edit distance 2 of `wanted`,
    /// closest first (then alphabetically), at most five.
    pub fn with_suggestions<'a>(mut self: Box<Self>, wanted: &[u8], candidates: impl Iterator<Item = &'a [u8]>) -> Box<Self> {
        let mut scored: Vec<(usize, Vec<u8>)> =
            candidates.map(|c| (levenshtein(wanted, c), c.to_vec())).filter(|(d, _)| *d <= 2).collect();
        scored.sort();
        scored.dedup();
        scored.truncate(5);
        self.suggestions = scored.into_iter().map(|(_, c)| String::from_utf8_lossy(&c).into_owned()).collect();
        self
    }
    /// The status a command exits with for this error: 1, or what CppNix uses
    /// for the failure underneath (102 for a hash mismatch).
    pub fn exit_status(&self) -> u8 {
        match self.kind {
            ErrorKind::Status(status) => status,
            _ => 1,
        }
    }

    pub fn is_catchable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throw | ErrorKind::Assert)
    }
}

fn levenshtein(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = if ca == cb { 0 } else { 1 };
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl From<ParseError> for Box<EvalError> {
    fn from(e: ParseError) -> Self {
        EvalError::new(ErrorKind::Parse, e.msg, e.pos)
    }
}

/// Shows `pos` as current CppNix does (`printPosMaybe`): `at FILE:LINE:COL:`,
/// then the previous, current and next source lines, each numbered in a
/// five-wide column, with a caret under the column. Lines are separated by
/// `\n` and the excerpt ends with one; `indent` goes before `at` only.
/// Returns whether a position was shown.
pub fn render_pos(out: &mut String, indent: &str, pos: Pos) -> bool {
    use std::fmt::Write;
    let (Some(loc), Some(file)) = (pos.resolve(), pos.file()) else { return false };
    let _ = write!(out, "{indent}at {loc}:");
    let line = loc.line;
    let first = if line > 1 { line - 1 } else { line };
    for l in first..=line + 1 {
        let Some(text) = source_line(file, l) else { continue };
        let text = String::from_utf8_lossy(&text);
        let _ = write!(out, "\n {l:>5}| {text}");
        if l == line && loc.column > 0 {
            let pad = " ".repeat(loc.column as usize);
            let _ = write!(out, "\n      |{pad}^");
        }
    }
    out.push('\n');
    true
}

/// What a trace frame is compared by when CppNix elides repeated frames.
type FrameKey<'a> = (Pos, &'a str);

/// Appends one `… while …` frame; counts it once, and once more if it has a position.
fn render_frame(out: &mut String, count: &mut usize, frame: &TraceFrame) {
    out.push_str("\n… ");
    out.push_str(&frame.msg);
    out.push('\n');
    if render_pos(out, "  ", frame.pos) {
        *count += 1;
    }
}

/// Prints the frames skipped as repeats: each one when there are at most five,
/// else one `(N duplicate frames omitted)` line. Frames seen stay seen (CppNix
/// means to forget them after such a line, but its set is cleared on a copy).
fn render_skipped(out: &mut String, count: &mut usize, skipped: &mut Vec<&TraceFrame>) {
    if skipped.is_empty() {
        return;
    }
    if skipped.len() <= 5 {
        for frame in skipped.iter() {
            render_frame(out, count, frame);
        }
    } else {
        out.push_str(&format!("\n({} duplicate frames omitted)\n", skipped.len()));
    }
    skipped.clear();
}

/// Prefixes the first line with `first` and every other line with `rest`,
/// dropping trailing whitespace from each line (CppNix's `indent`).
fn indent_lines(first: &str, rest: &str, text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let prefix = if i == 0 { first } else { rest };
        let joined = format!("{prefix}{line}");
        out.push_str(joined.trim_end());
    }
    out
}

impl EvalError {
    /// Renders the error as current CppNix prints it to stderr (without a
    /// trailing newline): `error:`, the trace frames outermost first, each
    /// `… message` with its position and source excerpt, then the message
    /// itself, its position and suggestions; all lines after the first are
    /// indented by seven spaces. Without `--show-trace` only the first few
    /// frames are shown.
    pub fn render(&self, show_trace: bool) -> String {
        let mut body = String::new();
        if !self.trace.is_empty() {
            let mut seen: std::collections::HashSet<FrameKey> = std::collections::HashSet::new();
            let mut skipped: Vec<&TraceFrame> = Vec::new();
            let mut count = 0usize;
            let mut truncate = false;
            // Frames are pushed innermost first as the error unwinds.
            for frame in self.trace.iter().rev() {
                if frame.msg.is_empty() {
                    continue;
                }
                if !show_trace && count > 3 {
                    truncate = true;
                }
                if truncate && !frame.always {
                    continue;
                }
                if !seen.insert((frame.pos, frame.msg.as_str())) {
                    skipped.push(frame);
                    continue;
                }
                render_skipped(&mut body, &mut count, &mut skipped);
                count += 1;
                render_frame(&mut body, &mut count, frame);
            }
            render_skipped(&mut body, &mut count, &mut skipped);
            if truncate {
                body.push_str("\n(stack trace truncated; use '--show-trace' to show the full, detailed trace)\n");
            }
            body.push_str("\nerror: ");
        }
        body.push_str(&self.msg);
        body.push('\n');
        render_pos(&mut body, "", self.pos);
        if !self.suggestions.is_empty() {
            let shown = match self.suggestions.as_slice() {
                [one] => one.clone(),
                [first @ .., last] => format!("one of {} or {}", first.join(", "), last),
                [] => String::new(),
            };
            body.push_str(&format!("Did you mean {shown}?\n"));
        }
        indent_lines("error: ", "       ", body.trim_end())
    }
}
