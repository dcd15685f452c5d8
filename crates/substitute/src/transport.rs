//! How a binary cache's files are fetched and written: a directory
//! (`file://`) or an HTTP server (`http://`, and `https://` with the `https`
//! feature). Names are relative to the cache root (`nix-cache-info`,
//! `<hash>.narinfo`, `nar/<filehash>.nar.xz`).
//!
//! HTTP follows CppNix's file transfers: `connect-timeout`,
//! `stalled-download-timeout` (no response, or no body bytes, for that long is
//! an error) and `download-attempts` (tries of one request). Transient
//! failures (5xx other than 501/505, 408, 429, refused or reset connections,
//! timeouts, bodies cut short) are retried after 250 ms, then twice as long
//! each time, plus up to 41% at random (CppNix's `2^(attempt-1+U(0,0.5))`);
//! 404, 403 and 410 mean "absent" and other answers are errors, neither
//! retried. A body that breaks off after some bytes were consumed is resumed
//! with a `Range` request when the server announced `Accept-Ranges: bytes`
//! and no `Content-Encoding` (as CppNix does); otherwise the read fails and
//! the caller (substitution) tries the next cache. Whole small files
//! (`get_string`: narinfos, `nix-cache-info`) are simply fetched again.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

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

/// The network settings of HTTP binary caches, CppNix's names in brackets.
#[derive(Clone)]
pub struct NetworkSettings {
    /// Establishing a connection (`connect-timeout`; 0 leaves curl's default
    /// of 300 s in CppNix, and here).
    pub connect_timeout: Duration,
    /// The longest wait for a response, or for the next bytes of a body
    /// (`stalled-download-timeout`, default 300 s; 0: no limit).
    pub stall_timeout: Option<Duration>,
    /// Tries of one request before giving up (`download-attempts`, default 5).
    pub attempts: u32,
    /// The wait before the first retry; it doubles for every further one.
    pub retry_base: Duration,
    /// Receives the retry warnings ("unable to download ...; retrying in N
    /// ms"); by default they go to stderr as `warning: ...`.
    pub warn: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for NetworkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkSettings")
            .field("connect_timeout", &self.connect_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("attempts", &self.attempts)
            .field("retry_base", &self.retry_base)
            .finish_non_exhaustive()
    }
}

/// curl's connect timeout, which CppNix's `connect-timeout = 0` leaves.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for NetworkSettings {
    /// CppNix's defaults.
    fn default() -> NetworkSettings {
        NetworkSettings {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: Some(Duration::from_secs(300)),
            attempts: 5,
            retry_base: Duration::from_millis(250),
            warn: Arc::new(|message| eprintln!("warning: {message}")),
        }
    }
}

/// Set by [`configure_network`]; `None`: read `nix.conf` when a cache opens.
static CONFIGURED: RwLock<Option<NetworkSettings>> = RwLock::new(None);

/// Makes `settings` the network settings of every HTTP cache opened from now
/// on in this process (settings are process-wide in CppNix too): the CLI
/// calls it once it has applied `--option` to `nix.conf`.
pub fn configure_network(settings: NetworkSettings) {
    if let Ok(mut configured) = CONFIGURED.write() {
        *configured = Some(settings);
    }
}

impl NetworkSettings {
    /// `connect-timeout`, `stalled-download-timeout` and `download-attempts`
    /// of `config` (CppNix's defaults where unset or not a number).
    pub fn from_config(config: &nivis_config::Config) -> NetworkSettings {
        let mut settings = NetworkSettings::default();
        if let Ok(Some(seconds)) = config.get_u64("connect-timeout")
            && seconds > 0
        {
            settings.connect_timeout = Duration::from_secs(seconds);
        }
        if let Ok(Some(seconds)) = config.get_u64("stalled-download-timeout") {
            settings.stall_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
        }
        if let Ok(Some(attempts)) = config.get_u64("download-attempts") {
            settings.attempts = attempts.clamp(1, u32::MAX as u64) as u32;
        }
        settings
    }

    /// What [`configure_network`] set, else what `nix.conf` says.
    pub fn current() -> NetworkSettings {
        if let Ok(configured) = CONFIGURED.read()
            && let Some(settings) = configured.as_ref()
        {
            return settings.clone();
        }
        match nivis_config::Config::load() {
            Ok(config) => NetworkSettings::from_config(&config),
            Err(_) => NetworkSettings::default(),
        }
    }

    /// The wait before retry number `attempt` (1 for the first retry):
    /// `retry_base * 2^(attempt - 1 + U(0, 0.5))`, as CppNix's.
    fn retry_delay(&self, attempt: u32) -> Duration {
        // Clock nanoseconds are random enough to keep clients apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let jitter = (nanos % 1000) as f64 / 2000.0;
        let exponent = (attempt.saturating_sub(1).min(16)) as f64 + jitter;
        self.retry_base.mul_f64(2f64.powf(exponent))
    }
}

/// Why one try of a request failed.
enum Failure {
    /// Worth another try (server trouble, network trouble, timeouts).
    Transient(String),
    /// Another try would fail the same way.
    Permanent(String),
}

/// Runs `once` up to `network.attempts` times while it fails transiently,
/// waiting between tries and warning about each retry.
fn with_retries<T>(
    network: &NetworkSettings,
    url: &str,
    mut once: impl FnMut() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let mut attempt = 1;
    loop {
        match once() {
            Ok(value) => return Ok(value),
            Err(Failure::Transient(reason)) if attempt < network.attempts => {
                let delay = network.retry_delay(attempt);
                (network.warn)(&format!("unable to download '{url}': {reason}; retrying in {} ms", delay.as_millis()));
                std::thread::sleep(delay);
                attempt += 1;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// Whether an HTTP status is worth retrying (CppNix's transient statuses).
fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || ((500..600).contains(&status) && !matches!(status, 501 | 505))
}

fn describe_status(response: &ureq::http::Response<ureq::Body>) -> String {
    let status = response.status();
    match status.canonical_reason() {
        Some(reason) => format!("HTTP error {} ('{reason}')", status.as_u16()),
        None => format!("HTTP error {}", status.as_u16()),
    }
}

/// Classifies an error of ureq before a response arrived.
fn classify(error: ureq::Error, network: &NetworkSettings) -> Failure {
    use ureq::Error as E;
    use ureq::Timeout as T;
    match error {
        E::Timeout(T::Connect | T::Resolve) => Failure::Transient(format!(
            "could not connect within {} seconds ('connect-timeout')",
            network.connect_timeout.as_secs()
        )),
        E::Timeout(_) => Failure::Transient(stalled(network)),
        E::BadUri(_) | E::HostNotFound | E::InvalidProxyUrl | E::TooManyRedirects | E::RedirectFailed
        | E::RequireHttpsOnly(_) | E::TlsRequired => Failure::Permanent(error.to_string()),
        E::Io(e) => Failure::Transient(describe_io(&e)),
        other => Failure::Transient(other.to_string()),
    }
}

fn stalled(network: &NetworkSettings) -> String {
    format!(
        "no data received for {} seconds ('stalled-download-timeout')",
        network.stall_timeout.map_or(0, |t| t.as_secs())
    )
}

/// An I/O error of a body read, in words (timeouts named after the setting).
fn describe_body_error(error: &io::Error, network: &NetworkSettings) -> String {
    if let Some(inner) = error.get_ref().and_then(|e| e.downcast_ref::<ureq::Error>()) {
        return match inner {
            ureq::Error::Timeout(_) => stalled(network),
            other => other.to_string(),
        };
    }
    match error.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => stalled(network),
        _ => describe_io(error),
    }
}

fn describe_io(error: &io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// A cache behind an HTTP server: GET and HEAD to read, PUT to write (as
/// CppNix's `HttpBinaryCacheStore`), with the retries and timeouts of
/// [`NetworkSettings`].
pub struct HttpTransport {
    base: String,
    agent: ureq::Agent,
    network: NetworkSettings,
    /// Set when a request failed transiently on every try: the cache is
    /// then passed over until this time, as CppNix disables it for a minute,
    /// so that a dead or stalled server costs its timeouts once, not once
    /// per path.
    disabled_until: std::sync::Mutex<Option<(std::time::Instant, String)>>,
}

/// How long a cache that failed stays disabled (CppNix's 60 s).
const DISABLE_FOR: Duration = Duration::from_secs(60);

/// What one GET found.
enum Got {
    Body(ureq::http::Response<ureq::Body>),
    Absent,
}

impl HttpTransport {
    /// `base` is the cache URL without parameters or trailing slash.
    pub fn new(base: String, network: &NetworkSettings) -> HttpTransport {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(network.connect_timeout))
            // A server that accepts but never answers, or stops sending in
            // the middle of a body, fails after the stall timeout.
            .timeout_recv_response(network.stall_timeout)
            .timeout_per_read(network.stall_timeout)
            .http_status_as_error(false)
            .build();
        HttpTransport { base, agent: config.into(), network: network.clone(), disabled_until: Default::default() }
    }

    /// Runs one request with retries, unless the cache is disabled; a
    /// transient failure that outlived its retries disables it.
    fn request<T>(&self, name: &str, once: impl FnMut() -> Result<T, Failure>) -> Result<T, SubstituteError> {
        let now = std::time::Instant::now();
        if let Ok(disabled) = self.disabled_until.lock()
            && let Some((until, why)) = disabled.as_ref()
            && now < *until
        {
            return Err(self.failure(name, format!("binary cache '{}' is disabled after an earlier failure ({why})", self.base)));
        }
        match with_retries(&self.network, &self.url(name), once) {
            Ok(value) => Ok(value),
            Err(Failure::Permanent(reason)) => Err(self.failure(name, reason)),
            Err(Failure::Transient(reason)) => {
                (self.network.warn)(&format!("disabling binary cache '{}' for {} seconds", self.base, DISABLE_FOR.as_secs()));
                if let Ok(mut disabled) = self.disabled_until.lock() {
                    *disabled = Some((std::time::Instant::now() + DISABLE_FOR, reason.clone()));
                }
                Err(self.failure(name, reason))
            }
        }
    }

    fn failure(&self, name: &str, reason: impl ToString) -> SubstituteError {
        SubstituteError::Download { url: self.url(name), reason: reason.to_string() }
    }

    /// One GET of `url` from byte `offset` on (a `Range` request if not 0).
    fn get_once(agent: &ureq::Agent, network: &NetworkSettings, url: &str, offset: u64) -> Result<Got, Failure> {
        let mut request = agent.get(url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
        }
        let response = request.call().map_err(|e| classify(e, network))?;
        let status = response.status().as_u16();
        match status {
            200..=299 if offset > 0 => {
                // Only a partial answer that starts where we stopped continues the body.
                let range = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
                if status == 206 && range.trim().starts_with(&format!("bytes {offset}-")) {
                    Ok(Got::Body(response))
                } else {
                    Err(Failure::Permanent(format!("the server did not resume the download at byte {offset}")))
                }
            }
            200..=299 => Ok(Got::Body(response)),
            // CppNix treats 403 like 404 too (S3 answers 403 for absent keys).
            404 | 403 | 410 => Ok(Got::Absent),
            status if transient_status(status) => Err(Failure::Transient(describe_status(&response))),
            _ => Err(Failure::Permanent(describe_status(&response))),
        }
    }
}

impl Transport for HttpTransport {
    fn url(&self, name: &str) -> String {
        format!("{}/{}", self.base, name)
    }

    fn get(&self, name: &str) -> Result<Option<Box<dyn Read + Send>>, SubstituteError> {
        let url = self.url(name);
        let got = self.request(name, || Self::get_once(&self.agent, &self.network, &url, 0))?;
        let Got::Body(response) = got else { return Ok(None) };
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let total = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
        let resumable = header("accept-ranges").is_some_and(|v| v.split(',').any(|unit| unit.trim() == "bytes"))
            && header("content-encoding").is_none_or(|v| v.trim() == "identity");
        Ok(Some(Box::new(ResumingReader {
            agent: self.agent.clone(),
            network: self.network.clone(),
            url,
            body: Some(response.into_body().into_reader()),
            offset: 0,
            total,
            resumable,
            retries: 0,
        })))
    }

    /// Fetches the whole file, again from the start after a transient
    /// failure at any point (these files are small).
    fn get_string(&self, name: &str) -> Result<Option<String>, SubstituteError> {
        let url = self.url(name);
        let text = self.request(name, || {
            let Got::Body(response) = Self::get_once(&self.agent, &self.network, &url, 0)? else { return Ok(None) };
            let expected = response.body().content_length();
            let mut bytes = Vec::new();
            response
                .into_body()
                .into_reader()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::Transient(describe_body_error(&e, &self.network)))?;
            if let Some(expected) = expected
                && (bytes.len() as u64) < expected
            {
                return Err(Failure::Transient(format!("got {} of {expected} bytes", bytes.len())));
            }
            String::from_utf8(bytes).map(Some).map_err(|_| Failure::Permanent("the file is not UTF-8 text".into()))
        })?;
        Ok(text)
    }

    fn exists(&self, name: &str) -> Result<bool, SubstituteError> {
        let url = self.url(name);
        self.request(name, || {
            let response = self.agent.head(&url).call().map_err(|e| classify(e, &self.network))?;
            match response.status().as_u16() {
                200..=299 => Ok(true),
                404 | 403 | 410 => Ok(false),
                status if transient_status(status) => Err(Failure::Transient(describe_status(&response))),
                _ => Err(Failure::Permanent(describe_status(&response))),
            }
        })
    }

    fn put_file(&self, name: &str, source: &Path, content_type: &str) -> Result<(), SubstituteError> {
        let data = std::fs::read(source).map_err(|e| SubstituteError::io(format!("reading '{}'", source.display()), e))?;
        self.put_bytes(name, &data, content_type)
    }

    fn put_bytes(&self, name: &str, data: &[u8], content_type: &str) -> Result<(), SubstituteError> {
        let url = self.url(name);
        // A PUT replaces the whole file, so trying it again is safe.
        with_retries(&self.network, &url, || {
            let response = self
                .agent
                .put(&url)
                .header("Content-Type", content_type)
                .send(data)
                .map_err(|e| classify(e, &self.network))?;
            match response.status().as_u16() {
                200..=299 => Ok(()),
                status if transient_status(status) => Err(Failure::Transient(describe_status(&response))),
                _ => Err(Failure::Permanent(describe_status(&response))),
            }
        })
        .map_err(|(Failure::Transient(reason) | Failure::Permanent(reason))| SubstituteError::Upload { url: url.clone(), reason })
    }
}

/// A response body that survives a broken connection: it starts over while
/// nothing was read, resumes with a `Range` request where the server allows,
/// and otherwise fails with a message naming the URL. A body shorter than its
/// `Content-Length` counts as broken off.
struct ResumingReader {
    agent: ureq::Agent,
    network: NetworkSettings,
    url: String,
    body: Option<ureq::BodyReader<'static>>,
    /// Bytes handed to the consumer so far.
    offset: u64,
    /// The whole body's length, if the first response said.
    total: Option<u64>,
    resumable: bool,
    /// Retries spent (of `network.attempts - 1`) on this body.
    retries: u32,
}

impl ResumingReader {
    fn fail(&self, reason: String) -> io::Error {
        io::Error::other(format!("unable to download '{}': {reason}", self.url))
    }

    /// After a failure: waits, then reopens the body at `offset`, as long
    /// as tries remain and the failure can be resumed from.
    fn reopen(&mut self, mut reason: String) -> io::Result<()> {
        self.body = None;
        loop {
            let can_resume = self.offset == 0 || self.resumable;
            if !can_resume || self.retries + 1 >= self.network.attempts {
                return Err(self.fail(reason));
            }
            self.retries += 1;
            let delay = self.network.retry_delay(self.retries);
            let from = if self.offset > 0 { format!(" from offset {}", self.offset) } else { String::new() };
            (self.network.warn)(&format!(
                "unable to download '{}': {reason}; retrying{from} in {} ms",
                self.url,
                delay.as_millis()
            ));
            std::thread::sleep(delay);
            match HttpTransport::get_once(&self.agent, &self.network, &self.url, self.offset) {
                Ok(Got::Body(response)) => {
                    self.body = Some(response.into_body().into_reader());
                    return Ok(());
                }
                Ok(Got::Absent) => return Err(self.fail("the file disappeared from the server".into())),
                Err(Failure::Transient(again)) => reason = again,
                Err(Failure::Permanent(again)) => return Err(self.fail(again)),
            }
        }
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(body) = self.body.as_mut() else {
                return Err(self.fail("the download failed before".into()));
            };
            let reason = match body.read(buf) {
                Ok(0) => match self.total {
                    Some(total) if self.offset < total => format!("the body broke off after {} of {total} bytes", self.offset),
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => match self.total {
                    Some(total) => format!("{} after {} of {total} bytes", describe_body_error(&e, &self.network), self.offset),
                    None => describe_body_error(&e, &self.network),
                },
            };
            self.reopen(reason)?;
        }
    }
}
