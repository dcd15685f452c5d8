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
}

pub type Result<T> = std::result::Result<T, Box<EvalError>>;

impl EvalError {
    pub fn new(kind: ErrorKind, msg: impl Into<String>, pos: Pos) -> Box<EvalError> {
        Box::new(EvalError { kind, msg: msg.into(), pos, trace: Vec::new() })
    }
    pub fn is_catchable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throw | ErrorKind::Assert)
    }
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
    let Some(loc) = pos.resolve() else { return };
    let _ = write!(out, "\n       at {loc}:\n");
    let line = loc.line;
    let width = (line + 1).to_string().len().max(6);
    let mut shown_any = false;
    for l in line.saturating_sub(1).max(1)..=line + 1 {
        let Some(text) = source_line(pos.file, l) else { continue };
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
        if show_trace {
            for frame in self.trace.iter().rev() {
                out.push_str(&format!("\n… {}\n", frame.msg));
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
