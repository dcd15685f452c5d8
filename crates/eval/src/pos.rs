//! Source files and positions.
//!
//! A [`Pos`] is a (file, byte offset) pair, eight bytes; line and column are
//! computed only when a position is shown. Sources are registered in a
//! thread-local table and never freed (their syntax trees are leaked too).

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

/// Where a source text came from.
#[derive(Clone, Debug)]
pub enum Origin {
    File(PathBuf),
    /// An expression given on the command line (`-E`), shown as `«string»`.
    String,
    Stdin,
}

struct Source {
    origin: Origin,
    text: Rc<[u8]>,
    line_starts: Vec<u32>,
}

thread_local! {
    static SOURCES: RefCell<Vec<Source>> = const { RefCell::new(Vec::new()) };
}

/// A position in a registered source.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Pos {
    pub file: u32,
    pub offset: u32,
}

/// A position resolved to line and column (both 1-based).
#[derive(Clone, Debug)]
pub struct Location {
    pub origin: Origin,
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const NONE: Pos = Pos { file: u32::MAX, offset: 0 };

    pub fn is_none(self) -> bool {
        self.file == u32::MAX
    }

    pub fn resolve(self) -> Option<Location> {
        if self.is_none() {
            return None;
        }
        SOURCES.with(|s| {
            let s = s.borrow();
            let src = s.get(self.file as usize)?;
            let line_index = match src.line_starts.binary_search(&self.offset) {
                Ok(i) => i,
                Err(i) => i - 1,
            };
            let line_start = src.line_starts[line_index] as usize;
            let upto = (self.offset as usize).min(src.text.len());
            // CppNix counts columns in bytes, starting at 1.
            let column = (upto - line_start) as u32 + 1;
            Some(Location { origin: src.origin.clone(), line: line_index as u32 + 1, column })
        })
    }
}

/// Registers a source text and returns its file id.
pub fn add_source(origin: Origin, text: Rc<[u8]>) -> u32 {
    let mut line_starts = vec![0u32];
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            line_starts.push(i as u32 + 1);
        }
    }
    SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        s.push(Source { origin, text, line_starts });
        (s.len() - 1) as u32
    })
}

/// The text of line `line` (1-based) of file `file`, without its newline.
pub fn source_line(file: u32, line: u32) -> Option<Vec<u8>> {
    SOURCES.with(|s| {
        let s = s.borrow();
        let src = s.get(file as usize)?;
        let start = *src.line_starts.get(line.checked_sub(1)? as usize)? as usize;
        let end = src.line_starts.get(line as usize).map(|e| *e as usize - 1).unwrap_or(src.text.len());
        if start > src.text.len() || (start == src.text.len() && line as usize > 1 && end <= start) {
            return None;
        }
        let end = end.max(start);
        Some(src.text[start..end].to_vec())
    })
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::String => f.write_str("«string»"),
            Origin::Stdin => f.write_str("«stdin»"),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.origin, self.line, self.column)
    }
}
