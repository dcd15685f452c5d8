//! The one crate that joins the evaluator to the store. It implements
//! [`nivis_eval::EvalIO`] over a [`nivis_store::Store`]: `derivationStrict` builds a
//! [`nivis_formats::Derivation`], computes its output paths with
//! `hashDerivationModulo` and writes the `.drv`; path coercion, `builtins.path` and
//! `filterSource` copy files into the store; `toFile` writes text files.
//!
//! Assumptions: one [`StoreEvalIO`] serves one evaluation on one thread (the
//! evaluator is `Rc`-based). In read-only mode (`nix-instantiate --eval`, `nix
//! eval`), paths are computed exactly as they would be written, but nothing is
//! written; the hash modulo and output names of derivations computed in this
//! evaluation are remembered in memory so that derivations depending on them
//! hash correctly without a `.drv` on disk.
//!
//! [`EvalRestrictions`] (`restrict-eval`, `pure-eval`, `allowed-uris`,
//! `allow-import-from-derivation`) are enforced here, at every read, fetch and
//! realised string context; import-from-derivation builds through the
//! [`IfdBuilder`] the embedder installs (the glue crate cannot build).

mod derivation;
mod fetch;
mod path_import;
mod restrict;

pub use fetch::{format_last_modified_date, set_thread_fetch_settings};
pub use nivis_fetch::FetchSettings;
pub use restrict::EvalRestrictions;

/// Builds one output of a derivation for import-from-derivation: given the store,
/// the `.drv` and the output name.
pub type IfdBuilder = Box<dyn Fn(&dyn Store, &StorePath, &str) -> Result<(), IoError>>;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::path::{Path, PathBuf};

use nivis_eval::io::{DerivationRequest, DerivationResult, FetchValue, FileType, PathFilter};
use nivis_eval::{EvalIO, FsIO, IoError};
use nivis_formats::{DrvHashCache, HashPart, StoreDir, StorePath, StorePathBuildHasher, StorePathSet};
use nivis_store::Store;

/// An [`EvalIO`] over a store: the real file system for reading, the store for
/// everything that creates store paths.
pub struct StoreEvalIO {
    store: Box<dyn Store>,
    read_only: bool,
    fs: FsIO,
    /// Hash modulo of every derivation met so far (CppNix's `drvHashes`).
    drv_hashes: RefCell<DrvHashCache>,
    /// Output names of the derivations computed in this evaluation, by path,
    /// for `=drv` contexts in read-only mode. One entry per derivation, so
    /// keyed by hash part (no text of its own) and with the few distinct lists
    /// of names shared (`output_name_lists`).
    computed_outputs: RefCell<HashMap<HashPart, Arc<[String]>, StorePathBuildHasher>>,
    output_name_lists: RefCell<HashSet<Arc<[String]>>>,
    /// Reused for the `.drv` text of each derivation (see `derivation_strict`).
    aterm_buffer: RefCell<Vec<u8>>,
    restrictions: RefCell<EvalRestrictions>,
    ifd_builder: RefCell<Option<IfdBuilder>>,
    /// Search-path URLs already downloaded (or failed), as CppNix resolves each once.
    resolved_search_path: RefCell<HashMap<String, Option<String>>>,
}

impl StoreEvalIO {
    /// `read_only`: compute store paths without writing anything to the store.
    pub fn new(store: Box<dyn Store>, read_only: bool) -> StoreEvalIO {
        StoreEvalIO {
            store,
            read_only,
            fs: FsIO,
            drv_hashes: RefCell::new(DrvHashCache::new()),
            computed_outputs: RefCell::new(HashMap::default()),
            output_name_lists: RefCell::new(HashSet::new()),
            aterm_buffer: RefCell::new(Vec::new()),
            restrictions: RefCell::new(EvalRestrictions::default()),
            ifd_builder: RefCell::new(None),
            resolved_search_path: RefCell::new(HashMap::new()),
        }
    }

    /// Puts `restrictions` in force for the reads and fetches that follow.
    pub fn set_restrictions(&self, restrictions: EvalRestrictions) {
        *self.restrictions.borrow_mut() = restrictions;
    }

    /// How import-from-derivation builds a missing output; without one, reading
    /// an output that is not valid fails with a clear error.
    pub fn set_ifd_builder(&self, builder: IfdBuilder) {
        *self.ifd_builder.borrow_mut() = Some(builder);
    }

    /// CppNix's `checkSourcePath`: `path` itself if it may be read, else the
    /// "access to absolute path ... is forbidden" error.
    pub fn check_source_path(&self, path: &Path) -> Result<PathBuf, IoError> {
        self.restrictions.borrow().check_source_path(path)
    }

    /// The path to read on disk: checked, then, for a path inside the logical
    /// store directory of a store kept elsewhere (`--store DIR`), moved to where
    /// that store keeps it (CppNix's `toRealPath`).
    fn physical_path(&self, path: &Path) -> Result<PathBuf, IoError> {
        let path = self.check_source_path(path)?;
        let Ok(rest) = path.strip_prefix(self.store_dir().as_str()) else { return Ok(path) };
        let mut components = rest.components();
        let Some(first) = components.next() else { return Ok(path) };
        let Ok(store_path) = StorePath::from_base_name(&first.as_os_str().to_string_lossy()) else { return Ok(path) };
        match self.store.real_path(&store_path) {
            // `join("")` would add a trailing slash, which a file does not take.
            Some(real) if components.as_path().as_os_str().is_empty() => Ok(real),
            Some(real) => Ok(real.join(components.as_path())),
            None => Ok(path),
        }
    }

    fn allow_path(&self, path: &Path) {
        self.restrictions.borrow_mut().allow_path(path);
    }

    /// Realises one context element as CppNix's `realiseContext`: the path (or the
    /// `.drv`) must be valid; an output of a derivation is built when missing,
    /// unless import-from-derivation is disabled. Realised paths become readable
    /// in restricted mode.
    fn realise_context_element(&self, element: &str) -> Result<(), IoError> {
        let (printed, output) = if let Some(rest) = element.strip_prefix('=') {
            (rest, None)
        } else if let Some(rest) = element.strip_prefix('!') {
            match rest.split_once('!') {
                Some((output, drv)) => (drv, Some(output)),
                None => (rest, None),
            }
        } else {
            (element, None)
        };
        let path = self.parse_path(printed)?;
        if !self.store.is_valid_path(&path).map_err(store_error)? {
            return Err(IoError::Message(format!("path '{printed}' is not valid")));
        }
        let Some(output) = output.filter(|_| path.is_derivation()) else {
            self.allow_path(Path::new(printed));
            return Ok(());
        };
        if !self.restrictions.borrow().allow_import_from_derivation {
            return Err(IoError::Message(format!(
                "cannot build '{printed}' during evaluation because the option 'allow-import-from-derivation' is disabled"
            )));
        }
        let drv = derivation::read_derivation(self, &path)?;
        let output_path = drv.outputs.get(output).and_then(|o| o.path().cloned());
        let valid = match &output_path {
            Some(out) => self.store.is_valid_path(out).map_err(store_error)?,
            None => false,
        };
        if !valid {
            match &*self.ifd_builder.borrow() {
                Some(build) => build(&*self.store, &path, output)?,
                None => {
                    return Err(IoError::Message(format!(
                        "cannot build '{printed}' during evaluation: this command cannot build derivations"
                    )));
                }
            }
        }
        if let Some(out) = output_path {
            self.allow_path(Path::new(&self.store.print_store_path(&out)));
        }
        Ok(())
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    fn store_dir(&self) -> &StoreDir {
        self.store.store_dir()
    }

    fn parse_path(&self, printed: &str) -> Result<StorePath, IoError> {
        self.store_dir()
            .parse_path(printed)
            .map_err(|e| IoError::Message(format!("path '{printed}' is not a valid store path: {e}")))
    }

    fn parse_references(&self, references: &[String]) -> Result<StorePathSet, IoError> {
        references.iter().map(|r| self.parse_path(r)).collect()
    }
}

fn store_error(error: nivis_store::StoreError) -> IoError {
    IoError::Message(error.to_string())
}

impl EvalIO for StoreEvalIO {
    fn read_file(&self, path: &Path) -> Result<Vec<u8>, IoError> {
        self.fs.read_file(&self.physical_path(path)?)
    }
    fn read_dir(&self, path: &Path) -> Result<Vec<(Vec<u8>, FileType)>, IoError> {
        self.fs.read_dir(&self.physical_path(path)?)
    }
    fn path_exists(&self, path: &Path) -> Result<bool, IoError> {
        // CppNix 2.8 answers `false` for a path it may not look at.
        match self.physical_path(path) {
            Ok(path) => self.fs.path_exists(&path),
            Err(_) => Ok(false),
        }
    }
    fn file_type(&self, path: &Path) -> Result<FileType, IoError> {
        self.fs.file_type(&self.physical_path(path)?)
    }
    fn is_directory(&self, path: &Path) -> Result<bool, IoError> {
        self.fs.is_directory(&self.physical_path(path)?)
    }
    fn read_source_file(&self, path: &Path) -> Result<Option<Vec<u8>>, IoError> {
        self.fs.read_source_file(&self.physical_path(path)?)
    }
    fn store_dir(&self) -> String {
        self.store_dir().as_str().to_string()
    }

    fn add_to_store(
        &self,
        path: &Path,
        name: &str,
        recursive: bool,
        filter: Option<&mut PathFilter<'_>>,
    ) -> Result<String, IoError> {
        let path = self.physical_path(path)?;
        let store_path = path_import::add_path(self, &path, name, recursive, filter)?;
        Ok(self.store_dir().print_path(&store_path))
    }

    fn to_file(&self, name: &str, contents: &[u8], references: &[String]) -> Result<String, IoError> {
        let references = self.parse_references(references)?;
        let path = if self.read_only {
            self.store_dir().compute_text_path(name, contents, &references)
                .map_err(|e| IoError::Message(e.to_string()))?
        } else {
            self.store.add_text_to_store(name, contents, &references, false).map_err(store_error)?
        };
        Ok(self.store_dir().print_path(&path))
    }

    fn derivation_strict(&self, request: DerivationRequest) -> Result<DerivationResult, IoError> {
        derivation::derivation_strict(self, request)
    }

    fn realise_context(&self, element: &str) -> Result<(), IoError> {
        self.realise_context_element(element)
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn store_path_references(&self, store_path: &str) -> Vec<String> {
        let Ok(path) = self.parse_path(store_path) else { return Vec::new() };
        match self.store.query_path_info(&path) {
            Ok(Some(info)) => info.references.iter().map(|r| self.store.print_store_path(r)).collect(),
            _ => Vec::new(),
        }
    }

    fn is_valid_store_path(&self, store_path: &str) -> Result<bool, IoError> {
        self.check_source_path(Path::new(store_path))?;
        let path = self.parse_path(store_path)?;
        self.store.is_valid_path(&path).map_err(store_error)
    }

    fn resolve_search_path_url(&self, url: &str) -> Option<String> {
        if let Some(known) = self.resolved_search_path.borrow().get(url) {
            return known.clone();
        }
        // `channel:NAME` is a channel's expressions on nixos.org.
        let download_url = match url.strip_prefix("channel:") {
            Some(name) => format!("https://nixos.org/channels/{name}/nixexprs.tar.xz"),
            None => url.to_string(),
        };
        // As CppNix, the entries are downloaded outside the URI restrictions
        // (they are the user's own configuration) and become readable.
        let args = [("url".to_string(), FetchValue::String(download_url))];
        let resolved = match fetch::fetch(&*self.store, "tarball", &args) {
            Ok(result) => result.into_iter().find_map(|(name, value)| match value {
                FetchValue::String(path) if name == "outPath" => Some(path),
                _ => None,
            }),
            Err(_) => None,
        };
        match &resolved {
            Some(path) => self.allow_path(Path::new(path)),
            None => eprintln!("warning: Nix search path entry '{url}' cannot be downloaded, ignoring"),
        }
        self.resolved_search_path.borrow_mut().insert(url.to_string(), resolved.clone());
        resolved
    }

    fn fetch(&self, kind: &str, args: &[(String, FetchValue)]) -> Result<Vec<(String, FetchValue)>, IoError> {
        if let Some((_, FetchValue::String(url))) = args.iter().find(|(name, _)| name == "url") {
            self.restrictions.borrow().check_uri(url)?;
        }
        let result = fetch::fetch(&*self.store, kind, args)?;
        if let Some((_, FetchValue::String(out_path))) = result.iter().find(|(name, _)| name == "outPath") {
            self.allow_path(Path::new(out_path));
        }
        Ok(result)
    }
}
