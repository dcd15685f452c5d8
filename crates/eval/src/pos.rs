//! Source files and positions.
//!
//! A [`Pos`] is four bytes: an offset into one space that all registered
//! sources share end to end (as CppNix's `PosIdx`), so an attribute (symbol,
//! value, position) takes 24 bytes. The file, line and column are computed
//! only when a position is shown. Sources are registered in a thread-local
//! table and never freed (their syntax trees are leaked too).

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
    /// Where this source's first byte sits in the shared position space.
    base: u32,
    origin: Origin,
    text: Rc<[u8]>,
    /// Where each line starts, found the first time a position in this source
    /// is shown: most sources (every imported file) never have one shown.
    line_starts: std::cell::OnceCell<Vec<u32>>,
}

impl Source {
    fn line_starts(&self) -> &[u32] {
        self.line_starts.get_or_init(|| line_starts_of(&self.text))
    }
}

/// The offsets where lines start. A line ends at `\n`, `\r\n` or a lone `\r`,
/// as CppNix's lexer counts lines.
fn line_starts_of(text: &[u8]) -> Vec<u32> {
    let mut line_starts = vec![0u32];
    for i in memchr::memchr2_iter(b'\n', b'\r', text) {
        if text[i] == b'\n' || text.get(i + 1) != Some(&b'\n') {
            line_starts.push(i as u32 + 1);
        }
    }
    line_starts
}

thread_local! {
    static SOURCES: RefCell<Vec<Source>> = const { RefCell::new(Vec::new()) };
}

/// A position in a registered source.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
pub struct Pos(u32);

/// A position resolved to line and column (both 1-based).
#[derive(Clone, Debug)]
pub struct Location {
    pub origin: Origin,
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub const NONE: Pos = Pos(u32::MAX);

    /// The position of byte `offset` of source `file` (none when the sources
    /// read so far exceed the 4 GiB position space).
    pub fn new(file: u32, offset: u32) -> Pos {
        SOURCES.with(|s| match s.borrow().get(file as usize) {
            Some(src) => match src.base.checked_add(offset) {
                Some(p) if p != u32::MAX => Pos(p),
                _ => Pos::NONE,
            },
            None => Pos::NONE,
        })
    }

    pub fn is_none(self) -> bool {
        self == Pos::NONE
    }

    /// The source file id and the byte offset in it.
    pub fn file_and_offset(self) -> Option<(u32, u32)> {
        if self.is_none() {
            return None;
        }
        SOURCES.with(|s| {
            let s = s.borrow();
            let index = s.partition_point(|src| src.base <= self.0).checked_sub(1)?;
            Some((index as u32, self.0 - s[index].base))
        })
    }

    /// The source file id, if any.
    pub fn file(self) -> Option<u32> {
        self.file_and_offset().map(|(file, _)| file)
    }

    pub fn resolve(self) -> Option<Location> {
        let (file, offset) = self.file_and_offset()?;
        SOURCES.with(|s| {
            let s = s.borrow();
            let src = s.get(file as usize)?;
            let line_starts = src.line_starts();
            let line_index = match line_starts.binary_search(&offset) {
                Ok(i) => i,
                Err(i) => i - 1,
            };
            let line_start = line_starts[line_index] as usize;
            let upto = (offset as usize).min(src.text.len());
            // CppNix counts columns in bytes, starting at 1.
            let column = (upto - line_start) as u32 + 1;
            Some(Location { origin: src.origin.clone(), line: line_index as u32 + 1, column })
        })
    }
}

/// Registers a source text and returns its file id.
pub fn add_source(origin: Origin, text: Rc<[u8]>) -> u32 {
    let line_starts = std::cell::OnceCell::new();
    SOURCES.with(|s| {
        let mut s = s.borrow_mut();
        // One past the end of the previous source, so that its end-of-file
        // position stays its own; saturating, positions past 4 GiB are none.
        let base = match s.last() {
            Some(prev) => {
                let len = u32::try_from(prev.text.len()).unwrap_or(u32::MAX);
                prev.base.saturating_add(len).saturating_add(1)
            }
            None => 0,
        };
        s.push(Source { base, origin, text, line_starts });
        (s.len() - 1) as u32
    })
}

/// The text of line `line` (1-based) of file `file`, without its newline.
pub fn source_line(file: u32, line: u32) -> Option<Vec<u8>> {
    SOURCES.with(|s| {
        let s = s.borrow();
        let src = s.get(file as usize)?;
        let line_starts = src.line_starts();
        let start = *line_starts.get(line.checked_sub(1)? as usize)? as usize;
        let end = line_starts.get(line as usize).map(|e| *e as usize - 1).unwrap_or(src.text.len());
        // The empty line after a final newline counts (current CppNix shows
        // it in excerpts); only lines past the end do not.
        if start > src.text.len() {
            return None;
        }
        let mut end = end.max(start);
        // Without the line break's `\r` (of `\r\n`, or a lone one).
        if end > start && src.text.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
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

#[cfg(test)]
mod line_tests {
    /// Lines end at `\n`, `\r\n` and a lone `\r`; a final line break starts
    /// an (empty) last line.
    #[test]
    fn line_starts_follow_cppnix_line_breaks() {
        assert_eq!(super::line_starts_of(b""), vec![0]);
        assert_eq!(super::line_starts_of(b"a"), vec![0]);
        assert_eq!(super::line_starts_of(b"a\nb\n"), vec![0, 2, 4]);
        assert_eq!(super::line_starts_of(b"a\r\nb\rc"), vec![0, 3, 5]);
        assert_eq!(super::line_starts_of(b"\r\r\n\n\r"), vec![0, 1, 3, 4, 5]);
    }
}
