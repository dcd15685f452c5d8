//! Downloading one URL to a local file, as CppNix's `FileTransfer` does it with
//! curl: `http://` (and `https://` with the `https` cargo feature) through ureq,
//! `file://` by reading the file. Errors are worded as CppNix's
//! (`unable to download 'URL': HTTP error 404 ('Not Found')`, `Couldn't connect to
//! server (7)`), and transient failures (connection errors, timeouts, HTTP 5xx)
//! are retried `download-attempts` times with CppNix's growing delays.
//!
//! Differences from curl: the HTTP reason phrase is the standard one for the
//! status code (ureq does not keep the server's); `Content-Encoding` is
//! decoded for gzip, xz, bzip2 and zstd only.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::{FetchError, FetchSettings};

/// What a finished transfer tells about the resource.
#[derive(Debug, Clone, Default)]
pub struct TransferResult {
    /// The URL after redirects.
    pub effective_url: String,
    /// The `ETag` header, or empty.
    pub etag: String,
    /// The server answered 304 to the `If-None-Match` we sent: nothing was
    /// written and the cached copy is current.
    pub not_modified: bool,
}

/// Options of one transfer.
#[derive(Debug, Clone, Default)]
pub struct TransferRequest<'a> {
    pub url: &'a str,
    /// Sent as `If-None-Match`.
    pub expected_etag: Option<&'a str>,
    /// Decode a `Content-Encoding` (CppNix's `decompress`, on except for
    /// `nix-prefetch-url` and `builtin:fetchurl`).
    pub decompress: bool,
    /// Skip TLS certificate checks, as `builtin:fetchurl` does (the
    /// fixed-output hash is checked instead).
    pub insecure_tls: bool,
}

/// Downloads `url` into `destination` (created or truncated), following
/// redirects, with `If-None-Match` when an ETag is given.
pub fn download_to(
    settings: &FetchSettings,
    request: &TransferRequest,
    destination: &Path,
) -> Result<TransferResult, FetchError> {
    let attempts = settings.download_attempts.max(1);
    let mut attempt = 1;
    loop {
        match download_once(settings, request, destination) {
            Ok(result) => return Ok(result),
            Err(FetchError::Transfer {
                url,
                message,
                transient: true,
            }) if attempt < attempts => {
                // CppNix: 250 ms doubled on every attempt, plus up to 10% jitter.
                let base = 250u64 << (attempt - 1).min(16);
                let jitter = (std::process::id() as u64
                    ^ std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos() as u64)
                        .unwrap_or(0))
                    % (base / 10 + 1);
                let delay = base + jitter;
                (settings.warn)(&format!("error: {message}; retrying in {delay} ms"));
                let _ = url;
                std::thread::sleep(Duration::from_millis(delay));
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}

fn failure(url: &str, reason: impl std::fmt::Display, transient: bool) -> FetchError {
    FetchError::Transfer {
        url: url.to_string(),
        message: format!("unable to download '{url}': {reason}"),
        transient,
    }
}

fn create(destination: &Path) -> Result<File, FetchError> {
    File::create(destination).map_err(|e| FetchError::io(format!("creating '{}'", destination.display()), e))
}

fn scheme_of(url: &str) -> &str {
    url.split_once("://").map(|(scheme, _)| scheme).unwrap_or("")
}

fn download_once(
    settings: &FetchSettings,
    request: &TransferRequest,
    destination: &Path,
) -> Result<TransferResult, FetchError> {
    let url = request.url;
    match scheme_of(url) {
        "file" => download_file_url(url, destination),
        "http" => download_http(settings, request, destination),
        "https" if cfg!(feature = "https") => download_http(settings, request, destination),
        "https" => Err(failure(
            url,
            "this build of nivis has no https:// support (rebuild nivis-fetch with the cargo feature 'https')",
            false,
        )),
        _ => Err(failure(url, "Unsupported protocol (1)", false)),
    }
}

/// `file://` URLs, which curl also serves: the path is percent-decoded.
fn download_file_url(url: &str, destination: &Path) -> Result<TransferResult, FetchError> {
    let rest = &url["file://".len()..];
    // An authority (`file://localhost/x`) is allowed and ignored, as curl does.
    let path = match rest.find('/') {
        Some(0) => rest.to_string(),
        Some(i) => rest[i..].to_string(),
        None => return Err(failure(url, "URL using bad/illegal format or missing URL (3)", false)),
    };
    let path = percent_decode(path.split(['?', '#']).next().unwrap_or(""));
    let mut source = File::open(&path).map_err(|_| failure(url, "Couldn't read a file:// file (37)", false))?;
    if source.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(failure(url, "Couldn't read a file:// file (37)", false));
    }
    let mut out = create(destination)?;
    io::copy(&mut source, &mut out).map_err(|e| failure(url, e, false))?;
    Ok(TransferResult {
        effective_url: url.to_string(),
        etag: String::new(),
        not_modified: false,
    })
}

fn percent_decode(text: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out).into()
}

fn agent(settings: &FetchSettings, insecure_tls: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .user_agent(concat!("curl/7.85.0 Nix/2.8.0 nivis/", env!("CARGO_PKG_VERSION")))
        .max_redirects(10);
    #[cfg(feature = "https")]
    {
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .disable_verification(insecure_tls)
                .build(),
        );
    }
    #[cfg(not(feature = "https"))]
    let _ = insecure_tls;
    if settings.connect_timeout > 0 {
        config = config.timeout_connect(Some(Duration::from_secs(settings.connect_timeout)));
    }
    config.build().into()
}

/// curl's wording for connection-level failures.
fn describe_ureq_error(error: &ureq::Error) -> (String, bool) {
    match error {
        ureq::Error::HostNotFound => ("Couldn't resolve host name (6)".into(), true),
        ureq::Error::ConnectionFailed => ("Couldn't connect to server (7)".into(), true),
        ureq::Error::Timeout(_) => ("Timeout was reached (28)".into(), true),
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            ("Couldn't connect to server (7)".into(), true)
        }
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => ("Timeout was reached (28)".into(), true),
        ureq::Error::Io(e) if e.to_string().contains("certificate") => (
            format!(
                "SSL peer certificate or SSH remote key was not OK (60): {}",
                crate::error_text(e)
            ),
            false,
        ),
        ureq::Error::Io(e) => (
            format!(
                "Failure when receiving data from the peer (56): {}",
                crate::error_text(e)
            ),
            true,
        ),
        #[cfg(feature = "https")]
        ureq::Error::Rustls(e) => (format!("SSL connect error (35): {e}"), true),
        ureq::Error::TooManyRedirects => ("Number of redirects hit maximum amount (47)".into(), false),
        ureq::Error::BadUri(_) => ("URL using bad/illegal format or missing URL (3)".into(), false),
        other => (other.to_string(), true),
    }
}

fn download_http(
    settings: &FetchSettings,
    request: &TransferRequest,
    destination: &Path,
) -> Result<TransferResult, FetchError> {
    use ureq::ResponseExt;
    let url = request.url;
    let mut call = agent(settings, request.insecure_tls).get(url);
    if let Some(etag) = request.expected_etag.filter(|e| !e.is_empty()) {
        call = call.header("If-None-Match", etag);
    }
    let response = call.call().map_err(|e| {
        let (reason, transient) = describe_ureq_error(&e);
        failure(url, reason, transient)
    })?;
    let status = response.status();
    let effective_url = response.get_uri().to_string();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header("etag").unwrap_or_default();
    let encoding = header("content-encoding").unwrap_or_default();
    if status.as_u16() == 304 && request.expected_etag.is_some() {
        return Ok(TransferResult {
            effective_url,
            etag,
            not_modified: true,
        });
    }
    let mut body = response.into_body().into_reader();
    if !status.is_success() {
        let code = status.as_u16();
        let mut text = Vec::new();
        let _ = body.by_ref().take(64 * 1024).read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let mut reason = format!("HTTP error {code} ('{}')", status.canonical_reason().unwrap_or(""));
        // CppNix shows short or HTML bodies: servers often explain there.
        if !text.is_empty() && (text.len() < 1024 || text.contains("<html>")) {
            reason.push_str(&format!("\n\nresponse body:\n\n{}", text.trim_end_matches('\n')));
        }
        // 5xx are transient (but not 501, 505, 511), as in CppNix.
        let transient = (500..600).contains(&code) && ![501, 505, 511].contains(&code);
        return Err(failure(url, reason, transient));
    }
    let mut out = create(destination)?;
    let copied = if request.decompress && !encoding.is_empty() && encoding != "identity" {
        let mut decoded = crate::unpack::decompressor(&encoding, Box::new(body)).map_err(|e| failure(url, e, false))?;
        io::copy(&mut decoded, &mut out)
    } else {
        io::copy(&mut body, &mut out)
    };
    copied.map_err(|e| {
        failure(
            url,
            format!(
                "Failure when receiving data from the peer (56): {}",
                crate::error_text(&e)
            ),
            true,
        )
    })?;
    out.flush()
        .map_err(|e| FetchError::io(format!("writing '{}'", destination.display()), e))?;
    Ok(TransferResult {
        effective_url,
        etag,
        not_modified: false,
    })
}

/// The file name part of a URL, as CppNix's `baseNameOf` (a trailing slash is
/// ignored; the query stays).
pub fn url_base_name(url: &str) -> &str {
    let trimmed = url.strip_suffix('/').unwrap_or(url);
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}
