//! How a binary cache's files are fetched and written: a directory
//! (`file://`) or an HTTP server (`http://`, and `https://` with the `https`
//! feature). Names are relative to the cache root (`nix-cache-info`,
//! `<hash>.narinfo`, `nar/<filehash>.nar.xz`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::error::SubstituteError;

/// A readable (and maybe writable) tree of cache files.
pub trait Transport: Send + Sync {
    /// The full address of `name`, for messages.
    fn url(&self, name: &str) -> String;

    /// Opens `name` for reading; `None` if the cache does not have it.
    fn get(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, SubstituteError>;

    /// Whether the cache has `name`.
    fn exists(&self, name: &str) -> Result<bool, SubstituteError>;

    /// Writes `name` from a local file, replacing any previous version.
    fn put_file(&self, name: &str, source: &Path, content_type: &str) -> Result<(), SubstituteError>;

    /// Writes `name` with `data`.
    fn put_bytes(&self, name: &str, data: &[u8], content_type: &str) -> Result<(), SubstituteError>;

    /// Reads all of `name` as text; `None` if absent.
    fn get_string(&self, name: &str) -> Result<Option<String>, SubstituteError> {
        let Some(mut reader) = self.get(name)? else { return Ok(None) };
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| SubstituteError::Download { url: self.url(name), reason: e.to_string() })?;
        Ok(Some(text))
    }
}

/// A cache in a local directory.
pub struct FileTransport {
    root: PathBuf,
}

impl FileTransport {
    pub fn new(root: PathBuf) -> FileTransport {
        FileTransport { root }
    }

    /// Writes through a temporary sibling and a rename, so that readers never
    /// see half a file (a narinfo is the commit point of an upload).
    fn write_atomically(&self, name: &str, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<(), SubstituteError> {
        let target = self.root.join(name);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent)
            .map_err(|e| SubstituteError::io(format!("creating directory '{}'", parent.display()), e))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&parent)
            .map_err(|e| SubstituteError::io(format!("creating a file in '{}'", parent.display()), e))?;
        write(temp.as_file_mut()).map_err(|e| SubstituteError::io(format!("writing '{}'", target.display()), e))?;
        // Cache files are world-readable, as CppNix leaves them (umask aside).
        let _ = std::fs::set_permissions(temp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644));
        temp.persist(&target)
            .map_err(|e| SubstituteError::io(format!("renaming into '{}'", target.display()), e.error))?;
        Ok(())
    }
}

impl Transport for FileTransport {
    fn url(&self, name: &str) -> String {
        format!("file://{}/{}", self.root.display(), name)
    }

    fn get(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, SubstituteError> {
        let path = self.root.join(name);
        match File::open(&path) {
            Ok(file) => Ok(Some(Box::new(file))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SubstituteError::io(format!("opening '{}'", path.display()), e)),
        }
    }

    fn exists(&self, name: &str) -> Result<bool, SubstituteError> {
        let path = self.root.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SubstituteError::io(format!("getting status of '{}'", path.display()), e)),
        }
    }

    fn put_file(&self, name: &str, source: &Path, _content_type: &str) -> Result<(), SubstituteError> {
        let mut input =
            File::open(source).map_err(|e| SubstituteError::io(format!("opening '{}'", source.display()), e))?;
        self.write_atomically(name, |out| io::copy(&mut input, out).map(drop))
    }

    fn put_bytes(&self, name: &str, data: &[u8], _content_type: &str) -> Result<(), SubstituteError> {
        self.write_atomically(name, |out| io::Write::write_all(out, data))
    }
}

/// A cache behind an HTTP server: GET and HEAD to read, PUT to write (as
/// CppNix's `HttpBinaryCacheStore`).
pub struct HttpTransport {
    base: String,
    agent: ureq::Agent,
}

impl HttpTransport {
    /// `base` is the cache URL without parameters or trailing slash.
    pub fn new(base: String) -> HttpTransport {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
            .http_status_as_error(false)
            .build();
        HttpTransport { base, agent: config.into() }
    }

    fn failure(&self, name: &str, reason: impl ToString) -> SubstituteError {
        SubstituteError::Download { url: self.url(name), reason: reason.to_string() }
    }
}

impl Transport for HttpTransport {
    fn url(&self, name: &str) -> String {
        format!("{}/{}", self.base, name)
    }

    fn get(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, SubstituteError> {
        let response = self.agent.get(&self.url(name)).call().map_err(|e| self.failure(name, e))?;
        match response.status().as_u16() {
            200..=299 => Ok(Some(Box::new(response.into_body().into_reader()))),
            // CppNix treats 403 like 404 too (S3 answers 403 for absent keys).
            404 | 403 | 410 => Ok(None),
            status => Err(self.failure(name, format!("HTTP error {status}"))),
        }
    }

    fn exists(&self, name: &str) -> Result<bool, SubstituteError> {
        let response = self.agent.head(&self.url(name)).call().map_err(|e| self.failure(name, e))?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            404 | 403 | 410 => Ok(false),
            status => Err(self.failure(name, format!("HTTP error {status}"))),
        }
    }

    fn put_file(&self, name: &str, source: &Path, content_type: &str) -> Result<(), SubstituteError> {
        let data = std::fs::read(source).map_err(|e| SubstituteError::io(format!("reading '{}'", source.display()), e))?;
        self.put_bytes(name, &data, content_type)
    }

    fn put_bytes(&self, name: &str, data: &[u8], content_type: &str) -> Result<(), SubstituteError> {
        let upload_failure = |reason: String| SubstituteError::Upload { url: self.url(name), reason };
        let response = self
            .agent
            .put(&self.url(name))
            .header("Content-Type", content_type)
            .send(data)
            .map_err(|e| upload_failure(e.to_string()))?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            status => Err(upload_failure(format!("HTTP error {status}"))),
        }
    }
}
