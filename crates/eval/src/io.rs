//! The evaluator's edge: every file-system and store operation goes through
//! [`EvalIO`], which the embedding program implements (the CLI over the real file
//! system, the glue crate over a store). Operations without an implementation fail
//! with [`IoError::Unsupported`], which the evaluator turns into a clear error.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    Unknown,
}

impl FileType {
    /// The name `builtins.readDir` and `readFileType` use.
    pub fn nix_name(self) -> &'static str {
        match self {
            FileType::Regular => "regular",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Unknown => "unknown",
        }
    }
}

/// An I/O error worded as C's `strerror` (as CppNix shows it), without Rust's
/// " (os error N)" suffix.
pub fn strerror(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl IoError {
    /// The message with I/O errors worded as `strerror`.
    pub fn reason(&self) -> String {
        match self {
            IoError::Io(e) => strerror(e),
            other => other.to_string(),
        }
    }

    /// "CONTEXT: REASON" (`opening file '/x': No such file or directory`), except
    /// for [`IoError::Forbidden`], which CppNix reports on its own.
    pub fn in_context(&self, context: impl std::fmt::Display) -> String {
        match self {
            IoError::Forbidden(message) => message.clone(),
            other => format!("{context}: {}", other.reason()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Message(String),
    /// Access refused by `restrict-eval`/`pure-eval` (CppNix's `RestrictedPathError`).
    #[error("{0}")]
    Forbidden(String),
    /// A failure CppNix ends the process with a status other than 1 for: 102 for
    /// a hash mismatch, 100 for a failed import-from-derivation build.
    #[error("{message}")]
    WithStatus { message: String, exit_status: u8 },
    #[error("{0} is not available in this evaluator (no store is configured)")]
    Unsupported(&'static str),
}

/// What `derivationStrict` hands to the store side after evaluating the attributes:
/// every attribute already coerced to a string (or JSON for `__structuredAttrs`).
/// Values are bytes, as Nix strings are: CppNix writes them into the `.drv`
/// as they are, valid UTF-8 or not. Handed over by value, so the store side
/// keeps the strings instead of copying them.
#[derive(Debug, Clone, Default)]
pub struct DerivationRequest {
    pub name: String,
    pub system: Vec<u8>,
    pub builder: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    pub outputs: Vec<String>,
    /// Attributes that become environment variables (all but `args`), in name order.
    pub env: Vec<(String, Vec<u8>)>,
    /// The JSON of all attributes when `__structuredAttrs = true`.
    pub structured_attrs: Option<Vec<u8>>,
    /// The union of the string contexts of all attributes (CppNix encoding).
    pub context: Vec<String>,
}

/// What the store side returns: the `.drv` path and each output's path.
#[derive(Debug, Clone)]
pub struct DerivationResult {
    pub drv_path: String,
    pub outputs: Vec<(String, String)>,
}

/// An argument or result attribute of a fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchValue {
    String(String),
    Bool(bool),
    Int(i64),
}

/// A filter for `builtins.path`/`filterSource`: called with each path and its
/// type; returns whether to include it.
pub type PathFilter<'a> = dyn FnMut(&Path, FileType) -> Result<bool, IoError> + 'a;

pub trait EvalIO {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, IoError>;
    /// Entries of a directory (names only, sorted), with their types.
    fn read_dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, FileType)>, IoError>;
    fn path_exists(&self, path: &Path) -> Result<bool, IoError>;
    /// The type of `path` without following a final symlink.
    fn file_type(&self, path: &Path) -> Result<FileType, IoError>;
    /// Whether `path` is a directory, following symlinks (for `import ./dir`).
    fn is_directory(&self, path: &Path) -> Result<bool, IoError> {
        Ok(self.file_type(path)? == FileType::Directory)
    }
    /// The bytes of the file `import` would read at `path` when that is a
    /// regular file, not a symlink; `None` for anything else (a directory, a
    /// symlink, a path that cannot be opened), which the caller then looks
    /// at by `file_type` and reports on as before. What `import` asks first:
    /// an implementation may answer with one path lookup where status then
    /// read takes two.
    fn read_source_file(&self, path: &Path) -> Result<Option<Vec<u8>>, IoError> {
        match self.file_type(path) {
            Ok(FileType::Regular) => self.read_file(path).map(Some),
            _ => Ok(None),
        }
    }
    fn store_dir(&self) -> String {
        "/nix/store".to_string()
    }
    /// Copies `path` into the store as `name` (recursive/NAR ingestion unless
    /// `recursive` is false), keeping only what `filter` accepts; returns the store path.
    fn add_to_store(
        &self,
        _path: &Path,
        _name: &str,
        _recursive: bool,
        _filter: Option<&mut PathFilter<'_>>,
    ) -> Result<String, IoError> {
        Err(IoError::Unsupported("copying paths to the store"))
    }
    /// `builtins.toFile`: a text file in the store with the given references.
    fn to_file(&self, _name: &str, _contents: &[u8], _references: &[String]) -> Result<String, IoError> {
        Err(IoError::Unsupported("builtins.toFile"))
    }
    /// `derivationStrict`: writes the `.drv` and computes the output paths.
    fn derivation_strict(&self, _request: DerivationRequest) -> Result<DerivationResult, IoError> {
        Err(IoError::Unsupported("derivationStrict"))
    }
    /// Makes sure a store path is valid (built or substituted) before it is read,
    /// for import-from-derivation.
    fn realise(&self, _store_path: &str) -> Result<(), IoError> {
        Ok(())
    }
    /// Makes one string-context element (`/nix/store/…`, `=DRV` or `!OUT!DRV`,
    /// CppNix's encoding) readable before a path carrying it is read. The default
    /// hands the store path to [`EvalIO::realise`]; stores that care about the
    /// kind (import-from-derivation builds only `!OUT!DRV`) override this.
    fn realise_context(&self, element: &str) -> Result<(), IoError> {
        let store_path = if let Some(rest) = element.strip_prefix('=') {
            rest
        } else if let Some(rest) = element.strip_prefix('!') {
            rest.find('!').map(|i| &rest[i + 1..]).unwrap_or(rest)
        } else {
            element
        };
        self.realise(store_path)
    }
    /// The references of a valid store path (printed paths), for `readFile`'s
    /// context; empty when the path is not valid or there is no store.
    fn store_path_references(&self, _store_path: &str) -> Vec<String> {
        Vec::new()
    }
    /// Whether store paths are only computed, never written (`--readonly-mode`):
    /// `builtins.storePath` then does not insist that its path is valid.
    fn read_only(&self) -> bool {
        false
    }
    /// `builtins.storePath`: checks that the path is a valid store path.
    fn is_valid_store_path(&self, _store_path: &str) -> Result<bool, IoError> {
        Err(IoError::Unsupported("builtins.storePath"))
    }
    /// `fetchurl`, `fetchTarball`, `fetchGit`, `fetchTree`, `fetchMercurial`
    /// (`kind` is `file`, `tarball`, `git`, `tree` or `hg`): given the evaluated
    /// arguments (already checked for names and types as CppNix's primop does),
    /// returns the result attributes; `outPath` is a store path. `fetchurl` and
    /// `fetchTarball` return only `outPath`.
    fn fetch(&self, _kind: &str, _args: &[(String, FetchValue)]) -> Result<Vec<(String, FetchValue)>, IoError> {
        Err(IoError::Unsupported("fetchers"))
    }
    /// A search-path entry that is a URL (`https://.../nixpkgs.tar.gz`,
    /// `channel:NAME`): the directory it unpacks to, or `None` when it cannot
    /// be had (CppNix warns and skips the entry). Embedders without fetchers
    /// skip such entries.
    fn resolve_search_path_url(&self, _url: &str) -> Option<String> {
        None
    }
}

/// CppNix's `isPseudoUrl`: a search-path entry to download rather than a path.
pub fn is_pseudo_url(entry: &str) -> bool {
    if entry.starts_with("channel:") {
        return true;
    }
    match entry.split_once("://") {
        Some((scheme, _)) => ["http", "https", "file", "channel", "git", "s3", "ssh"].contains(&scheme),
        None => false,
    }
}

/// An [`EvalIO`] that reads the real file system and has no store.
#[derive(Default)]
pub struct FsIO;

fn file_type_of(ft: std::fs::FileType) -> FileType {
    if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_dir() {
        FileType::Directory
    } else if ft.is_file() {
        FileType::Regular
    } else {
        FileType::Unknown
    }
}

/// Bytes read before asking a file for its size.
const FIRST_READ: usize = 16 * 1024;

thread_local! {
    /// The buffer of [`read_small_first`]'s first read, zeroed once per thread.
    static FIRST_READ_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A file's contents. Most Nix files are small: one read into a buffer gets
/// all of one, and a second read that returns nothing confirms its end,
/// without the status call `std::fs::read` makes first for the size (one
/// system call fewer per imported file). A larger file is read on from there.
fn read_small_first(path: &Path) -> Result<Vec<u8>, IoError> {
    Ok(read_open_file(std::fs::File::open(path)?)?)
}

/// [`read_small_first`] on a file already opened.
fn read_open_file(mut file: std::fs::File) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = FIRST_READ_BUF.with(|buf| -> std::io::Result<Vec<u8>> {
        let mut buf = buf.borrow_mut();
        if buf.len() < FIRST_READ {
            buf.resize(FIRST_READ, 0);
        }
        let mut filled = 0;
        while filled < FIRST_READ {
            match file.read(&mut buf[filled..]) {
                Ok(0) => return Ok(buf[..filled].to_vec()),
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf[..filled].to_vec())
    })?;
    if out.len() == FIRST_READ {
        file.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// [`EvalIO::read_source_file`] with one path lookup: the file is opened
/// without following a final symlink (ELOOP: a symlink) and read, a
/// directory refusing the read (EISDIR). Checking the type first by path, as
/// `file_type` does, walked the path twice: a third of the system time of
/// importing many small files.
fn read_regular_source(path: &Path) -> Result<Option<Vec<u8>>, IoError> {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) else {
        return Ok(None);
    };
    match read_open_file(file) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl EvalIO for FsIO {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, IoError> {
        read_small_first(path)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, FileType)>, IoError> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            out.push((entry.file_name().as_bytes().to_vec(), file_type_of(entry.file_type()?)));
        }
        out.sort();
        Ok(out)
    }
    fn path_exists(&self, path: &Path) -> Result<bool, IoError> {
        Ok(std::fs::symlink_metadata(path).is_ok())
    }
    fn file_type(&self, path: &Path) -> Result<FileType, IoError> {
        Ok(file_type_of(std::fs::symlink_metadata(path)?.file_type()))
    }
    fn is_directory(&self, path: &Path) -> Result<bool, IoError> {
        Ok(std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false))
    }
    fn read_source_file(&self, path: &Path) -> Result<Option<Vec<u8>>, IoError> {
        read_regular_source(path)
    }
}

#[cfg(test)]
mod read_tests {
    /// `read_small_first` gives a file's bytes whatever its size relative to
    /// the first read (below, exactly, above, several times above), and the
    /// same errors as `std::fs::read`.
    #[test]
    fn reads_files_of_every_size_as_std_does() {
        let dir = std::env::temp_dir().join(format!("nivis-read-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for size in [0, 1, 55, super::FIRST_READ - 1, super::FIRST_READ, super::FIRST_READ + 1, 5 * super::FIRST_READ + 7] {
            let path = dir.join(format!("f{size}"));
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(super::read_small_first(&path).unwrap(), bytes, "size {size}");
        }
        let missing = super::read_small_first(&dir.join("missing")).unwrap_err();
        assert!(matches!(missing, super::IoError::Io(e) if e.kind() == std::io::ErrorKind::NotFound));
        assert!(super::read_small_first(&dir).is_err(), "a directory is not a file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `read_regular_source` reads a regular file and leaves everything else
    /// (a directory, a symlink to a file or to a directory, a missing path) to
    /// the caller's general way.
    #[test]
    fn reads_only_regular_files_as_sources() {
        let dir = std::env::temp_dir().join(format!("nivis-source-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.nix"), b"{ x = 1; }").unwrap();
        std::os::unix::fs::symlink(dir.join("a.nix"), dir.join("link.nix")).unwrap();
        std::os::unix::fs::symlink(dir.join("sub"), dir.join("link-dir")).unwrap();
        assert_eq!(super::read_regular_source(&dir.join("a.nix")).unwrap(), Some(b"{ x = 1; }".to_vec()));
        for other in ["sub", "link.nix", "link-dir", "missing.nix"] {
            assert_eq!(super::read_regular_source(&dir.join(other)).unwrap(), None, "{other}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
