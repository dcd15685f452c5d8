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

/// Shows `pos` as CppNix does: `at FILE:LINE:COL:` then the previous, current and
/// next source lines, numbered, with a caret under the column.
pub fn render_pos(out: &mut String, pos: Pos) {
    use std::fmt::Write;
    let (Some(loc), Some(file)) = (pos.resolve(), pos.file()) else { return };
    let _ = write!(out, "\n       at {loc}:\n");
    let line = loc.line;
    let width = (line + 1).to_string().len().max(6);
    let mut shown_any = false;
    for l in line.saturating_sub(1).max(1)..=line + 1 {
        let Some(text) = source_line(file, l) else { continue };
        if !shown_any {
            out.push('\n');
            shown_any = true;
        }
        let text = String::from_utf8_lossy(&text);
        let _ = writeln!(out, "       {:>width$}| {}", l, text, width = width);
        if l == line {
            let pad: String = " ".repeat(loc.column.saturating_sub(1) as usize);
            let _ = writeln!(out, "       {:>width$}| {}^", "", pad, width = width);
        }
    }
}

impl EvalError {
    /// Renders the error as CppNix prints it to stderr (without a trailing newline).
    pub fn render(&self, show_trace: bool) -> String {
        // Continuation lines of a message are indented under its first line.
        let msg = self.msg.replace("\n", "\n       ").replace("\n       \n", "\n\n");
        let mut out = format!("error: {}\n", msg);
        render_pos(&mut out, self.pos);
        if !self.suggestions.is_empty() {
            let shown = match self.suggestions.as_slice() {
                [one] => one.clone(),
                [first @ .., last] => format!("one of {} or {}", first.join(", "), last),
                [] => String::new(),
            };
            out.push_str(&format!("       Did you mean {shown}?\n"));
        }
        if show_trace {
            // Innermost frame first, as CppNix prints them.
            for frame in self.trace.iter() {
                out.push_str(&format!("\n       … {}\n", frame.msg));
                render_pos(&mut out, frame.pos);
            }
        } else if !self.trace.is_empty() {
            out.push_str("(use '--show-trace' to show detailed location information)\n");
        }
        while out.ends_with('\n') {
            out.pop();
        }
        out
    }
}
