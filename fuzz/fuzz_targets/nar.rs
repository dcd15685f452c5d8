//! The NAR reader: never panics; an archive it accepts is canonical, so writing
//! the same entries again gives back exactly the bytes it consumed.
#![no_main]

use std::io::Read;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nivis_formats::nar::{self, NarError, NarVisitor, NarWriter};

struct Rewrite(NarWriter<Vec<u8>>);

impl Rewrite {
    fn enter(&mut self, path: &Path) -> Result<(), NarError> {
        // The root is the empty path; every other node is an entry of its parent.
        if let Some(name) = path.file_name() {
            use std::os::unix::ffi::OsStrExt;
            self.0.entry(name.as_bytes())?;
        }
        Ok(())
    }
}

impl NarVisitor for Rewrite {
    fn directory(&mut self, path: &Path) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.begin_directory()
    }
    fn end_directory(&mut self, _path: &Path) -> Result<(), NarError> {
        self.0.end_directory()
    }
    fn regular_file(
        &mut self,
        path: &Path,
        executable: bool,
        size: u64,
        contents: &mut dyn Read,
    ) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.regular_file(executable, size, contents)
    }
    fn symlink(&mut self, path: &Path, target: &[u8]) -> Result<(), NarError> {
        self.enter(path)?;
        self.0.symlink(target)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    let mut rewrite = Rewrite(NarWriter::new(Vec::new()).unwrap());
    if nar::parse(&mut reader, &mut rewrite).is_err() {
        return;
    }
    let consumed = data.len() - reader.len();
    let rewritten = rewrite.0.finish().expect("a parsed NAR is complete");
    assert_eq!(rewritten, &data[..consumed]);
});
