//! A binary cache HTTP server over a store (`nivis serve`, like nix-serve or
//! harmonia). `GET` and `HEAD` of:
//! - `/nix-cache-info`;
//! - `/<hashpart>.narinfo`: the path found by hash part with one indexed query
//!   ([`Store::query_path_from_hash_part`]), its info from the database, signed
//!   on the fly when a key is given (signatures remembered by fingerprint);
//! - `/nar/<nar hash, nix32>.nar?hash=<hashpart>`: the uncompressed NAR,
//!   streamed from the store with its length known in advance, with single
//!   byte ranges (`Range: bytes=a-b`, 206 or 416);
//! - `/nar/<nar hash>.nar.zst?hash=<hashpart>`: the NAR compressed with zstd
//!   while it streams, sent with chunked transfer encoding (its compressed
//!   size is not known in advance, so its narinfo has no `FileHash`/`FileSize`,
//!   as harmonia's);
//! - `/log/<drv base name>`: the build log, decompressed (the local store keeps
//!   it bzip2-compressed under `<log dir>/drvs/<2 chars>/<rest>.bz2`).
//!
//! Plain HTTP/1.1 on `std::net`: a fixed pool of worker threads takes
//! connections from a bounded queue, so a burst of clients costs no thread
//! creation and an unbounded one cannot exhaust the machine. Each worker keeps
//! its own store handle (its own database connection) across connections.
//! A connection holds its worker only while it is being served or within the
//! keep-alive idle timeout (cut to a short grace period while other
//! connections wait for a worker); every read and write has a timeout, so a
//! client that stalls frees its worker and never holds up the other workers.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nivis_formats::{HashEncoding, NarInfo, SecretKey, StoreDir, StorePath};
use nivis_store::{Store, StoreError, ValidPathInfo};

/// Opens a store handle for one worker.
pub type StoreFactory = dyn Fn() -> Result<Box<dyn Store>, StoreError> + Send + Sync;

/// How the NARs that narinfos point at are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NarCompression {
    /// The NAR itself (`nar/<hash>.nar`), as nix-serve; supports byte ranges.
    None,
    /// zstd while streaming (`nar/<hash>.nar.zst`).
    Zstd,
}

impl NarCompression {
    pub fn parse(name: &str) -> Option<NarCompression> {
        match name {
            "none" => Some(NarCompression::None),
            "zstd" => Some(NarCompression::Zstd),
            _ => None,
        }
    }
}

/// What the server announces, signs with and how it treats connections.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Signs every narinfo served (in addition to the store's own signatures).
    pub secret_key: Option<SecretKey>,
    /// `Priority` in `nix-cache-info`.
    pub priority: u64,
    /// The compression narinfos announce. Both NAR forms are always served.
    pub compression: NarCompression,
    /// zstd level for `.nar.zst` (3 is zstd's default).
    pub zstd_level: i32,
    /// Worker threads, i.e. connections served at once; more wait in a queue.
    pub workers: usize,
    /// How long a kept-alive connection may sit idle between requests, and how
    /// long a request head may take to arrive.
    pub idle_timeout: Duration,
    /// How long one write to the client may block (a stalled reader).
    pub write_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            secret_key: None,
            priority: 30,
            compression: NarCompression::None,
            zstd_level: 3,
            workers: 64,
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
        }
    }
}

struct Shared {
    open_store: Arc<StoreFactory>,
    store_dir: StoreDir,
    config: ServeConfig,
    signatures: SignatureCache,
    /// Connections accepted and not yet taken by a worker.
    waiting: AtomicUsize,
}

/// Signatures already made, by fingerprint. Ed25519 signatures are
/// deterministic, so a remembered one is exactly what signing again would
/// give; signing is most of a narinfo's cost, and clients ask for the same
/// narinfos again and again. A changed path has another fingerprint.
struct SignatureCache {
    made: Mutex<std::collections::HashMap<String, String>>,
}

impl SignatureCache {
    /// Entries kept before the cache starts afresh (a fingerprint is a few
    /// hundred bytes for a path with a handful of references).
    const CAPACITY: usize = 16_384;

    fn sign(&self, key: &SecretKey, fingerprint: String) -> String {
        if let Some(signature) = self.made.lock().unwrap_or_else(|p| p.into_inner()).get(&fingerprint) {
            return signature.clone();
        }
        let signature = key.sign(fingerprint.as_bytes()).to_string();
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        if made.len() >= Self::CAPACITY {
            made.clear();
        }
        made.insert(fingerprint, signature.clone());
        signature
    }
}

/// Serves requests on `listener` until the process ends.
pub fn serve(listener: TcpListener, open_store: Arc<StoreFactory>, config: ServeConfig) -> Result<(), StoreError> {
    let store_dir = open_store()?.store_dir().clone();
    let workers = config.workers.max(1);
    let signatures = SignatureCache { made: Mutex::new(std::collections::HashMap::new()) };
    let shared = Arc::new(Shared { open_store, store_dir, config, signatures, waiting: AtomicUsize::new(0) });
    // A short queue: when every worker is busy, further clients wait in it
    // and then in the kernel's listen backlog rather than being refused.
    let (sender, receiver) = sync_channel::<TcpStream>(workers);
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..workers {
        let shared = shared.clone();
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("serve-{index}"))
            .spawn(move || worker(&shared, &receiver))
            .map_err(|error| StoreError::Io { context: "starting the server's threads".into(), error })?;
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // Out of file descriptors, say: wait for connections to end
            // rather than spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        shared.waiting.fetch_add(1, Ordering::AcqRel);
        if sender.send(stream).is_err() {
            break;
        }
    }
    Ok(())
}

fn worker(shared: &Shared, receiver: &Mutex<Receiver<TcpStream>>) {
    let mut store: Option<Box<dyn Store>> = None;
    loop {
        let stream = {
            let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            match receiver.recv() {
                Ok(stream) => {
                    shared.waiting.fetch_sub(1, Ordering::AcqRel);
                    stream
                }
                Err(_) => return,
            }
        };
        let _ = handle_connection(shared, &mut store, stream);
    }
}

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    /// HTTP/1.1 or later: chunked transfer encoding may be used.
    http11: bool,
    range: Option<String>,
}

/// Reads one request head; `None` at a clean end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.by_ref().take(8192).read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let http11 = version == "HTTP/1.1";
    let mut request =
        Request { method: method.to_string(), target: target.to_string(), keep_alive: http11, http11, range: None };
    let mut header_bytes = 0;
    loop {
        let mut header = String::new();
        let n = reader.by_ref().take(8192).read_line(&mut header)?;
        header_bytes += n;
        if n == 0 || header_bytes > 64 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request headers"));
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                request.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                request.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("range") {
            request.range = Some(value.to_string());
        } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
            || name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A body we do not read would be taken for the next request.
            request.keep_alive = false;
        }
    }
    Ok(Some(request))
}

fn handle_connection(shared: &Shared, store: &mut Option<Box<dyn Store>>, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(shared.config.idle_timeout))?;
    stream.set_write_timeout(Some(shared.config.write_timeout))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(128 * 1024, stream);
    while wait_for_request(shared, &mut reader)? {
        let Some(request) = read_request(&mut reader)? else { break };
        if store.is_none() {
            match (shared.open_store)() {
                Ok(opened) => *store = Some(opened),
                Err(e) => {
                    let response = Response::new(&request, 500).close();
                    response.send_body(&mut writer, "text/plain", format!("{e}\n").as_bytes())?;
                    return writer.flush();
                }
            }
        }
        let store = store.as_deref().expect("opened above");
        let keep_alive = handle_request(shared, store, &request, &mut writer)?;
        writer.flush()?;
        if !keep_alive {
            break;
        }
    }
    Ok(())
}

/// How often an idle connection looks whether other clients wait.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Waits for the next request's first bytes; `false` when the connection
/// should end: closed by the client, idle for the idle timeout, or idle
/// while other connections wait for a worker (an idle kept-alive client
/// must not keep a new one out; HTTP clients reconnect when a kept-alive
/// connection turns out closed).
fn wait_for_request(shared: &Shared, reader: &mut BufReader<TcpStream>) -> io::Result<bool> {
    if !reader.buffer().is_empty() {
        return Ok(true);
    }
    reader.get_ref().set_read_timeout(Some(IDLE_POLL.min(shared.config.idle_timeout)))?;
    let idle_since = std::time::Instant::now();
    loop {
        match reader.fill_buf() {
            Ok(bytes) => {
                let more = !bytes.is_empty();
                reader.get_ref().set_read_timeout(Some(shared.config.idle_timeout))?;
                return Ok(more);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if shared.waiting.load(Ordering::Acquire) > 0 || idle_since.elapsed() >= shared.config.idle_timeout {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Internal Server Error",
    }
}

/// One response's status line and headers, then its body.
struct Response {
    status: u16,
    keep_alive: bool,
    head_only: bool,
    extra_headers: String,
}

impl Response {
    fn new(request: &Request, status: u16) -> Response {
        Response { status, keep_alive: request.keep_alive, head_only: request.method == "HEAD", extra_headers: String::new() }
    }

    fn close(mut self) -> Response {
        self.keep_alive = false;
        self
    }

    fn header(mut self, name: &str, value: &str) -> Response {
        self.extra_headers.push_str(&format!("{name}: {value}\r\n"));
        self
    }

    /// Writes the head; `length` is the body's length, if known in advance.
    fn send_head(&self, writer: &mut impl Write, content_type: &str, length: Option<u64>) -> io::Result<()> {
        write!(writer, "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\n", self.status, status_text(self.status))?;
        match length {
            Some(length) => write!(writer, "Content-Length: {length}\r\n")?,
            None if self.keep_alive => write!(writer, "Transfer-Encoding: chunked\r\n")?,
            None => {}
        }
        write!(writer, "{}Connection: {}\r\n\r\n", self.extra_headers, if self.keep_alive { "keep-alive" } else { "close" })
    }

    /// Writes the head and the body; returns whether to keep the connection.
    fn send_body(&self, writer: &mut impl Write, content_type: &str, body: &[u8]) -> io::Result<bool> {
        self.send_head(writer, content_type, Some(body.len() as u64))?;
        if !self.head_only {
            writer.write_all(body)?;
        }
        Ok(self.keep_alive)
    }
}

/// Answers one request; returns whether the connection may serve another.
fn handle_request(shared: &Shared, store: &dyn Store, request: &Request, writer: &mut impl Write) -> io::Result<bool> {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::new(request, 405).close().header("Allow", "GET, HEAD").send_body(
            writer,
            "text/plain",
            b"method not allowed\n",
        );
    }
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let not_found = |writer: &mut _| Response::new(request, 404).send_body(writer, "text/plain", b"not found\n");
    let server_error = |writer: &mut _, e: StoreError| {
        Response::new(request, 500).send_body(writer, "text/plain", format!("{e}\n").as_bytes())
    };

    if path == "/nix-cache-info" {
        let body = format!(
            "StoreDir: {}\nWantMassQuery: 1\nPriority: {}\n",
            shared.store_dir.as_str(),
            shared.config.priority
        );
        return Response::new(request, 200).send_body(writer, "text/x-nix-cache-info", body.as_bytes());
    }

    if let Some(hash_part) = path.strip_prefix('/').and_then(|p| p.strip_suffix(".narinfo")) {
        let info = match lookup(store, hash_part) {
            Ok(Some(info)) => info,
            Ok(None) => return not_found(writer),
            Err(e) => return server_error(writer, e),
        };
        return match narinfo_text(shared, &info) {
            Ok(body) => Response::new(request, 200).send_body(writer, "text/x-nix-narinfo", body.as_bytes()),
            Err(e) => server_error(writer, e),
        };
    }

    if let Some(file) = path.strip_prefix("/nar/") {
        let (nar_hash, compression) = if let Some(hash) = file.strip_suffix(".nar") {
            (hash, NarCompression::None)
        } else if let Some(hash) = file.strip_suffix(".nar.zst") {
            (hash, NarCompression::Zstd)
        } else {
            return not_found(writer);
        };
        // Our URLs name the path by `hash=`: without it, finding a NAR by its
        // hash alone would take a scan of every path, which we refuse to do.
        let Some(hash_part) = query.split('&').find_map(|p| p.strip_prefix("hash=")) else {
            return not_found(writer);
        };
        let info = match lookup(store, hash_part) {
            Ok(Some(info)) if info.nar_hash.encode(HashEncoding::Nix32, false) == nar_hash => info,
            Ok(_) => return not_found(writer),
            Err(e) => return server_error(writer, e),
        };
        return match compression {
            NarCompression::None => send_nar(store, &info, request, writer),
            NarCompression::Zstd => send_nar_zstd(shared, store, &info, request, writer),
        };
    }

    if let Some(drv_name) = path.strip_prefix("/log/") {
        return match read_log(store, drv_name) {
            Ok(Some(log)) => Response::new(request, 200).send_body(writer, "text/plain; charset=utf-8", &log),
            Ok(None) => not_found(writer),
            Err(e) => server_error(writer, e),
        };
    }

    not_found(writer)
}

/// The info of the valid path with this hash part.
fn lookup(store: &dyn Store, hash_part: &str) -> Result<Option<ValidPathInfo>, StoreError> {
    match store.query_path_from_hash_part(hash_part)? {
        Some(path) => store.query_path_info(&path),
        None => Ok(None),
    }
}

fn narinfo_text(shared: &Shared, info: &ValidPathInfo) -> Result<String, StoreError> {
    let nar_hash = info.nar_hash.encode(HashEncoding::Nix32, false);
    let hash_part = info.path.hash_part();
    let (url, compression, file_hash) = match shared.config.compression {
        // The file served is the NAR itself.
        NarCompression::None => (format!("nar/{nar_hash}.nar?hash={hash_part}"), "none", Some(info.nar_hash)),
        NarCompression::Zstd => (format!("nar/{nar_hash}.nar.zst?hash={hash_part}"), "zstd", None),
    };
    let mut narinfo = NarInfo {
        store_path: info.path.clone(),
        url,
        compression: compression.into(),
        file_hash,
        file_size: if file_hash.is_some() { info.nar_size } else { 0 },
        nar_hash: info.nar_hash,
        nar_size: info.nar_size,
        references: info.references.clone(),
        deriver: info.deriver.clone(),
        system: String::new(),
        signatures: info.sigs.clone(),
        ca: info.ca,
    };
    if let Some(key) = &shared.config.secret_key {
        let fingerprint = narinfo.fingerprint(&shared.store_dir).map_err(|e| StoreError::BadInput(e.to_string()))?;
        narinfo.signatures.insert(shared.signatures.sign(key, fingerprint));
    }
    let text = narinfo.to_text(&shared.store_dir);
    // The compressed size is not known before streaming: say nothing rather
    // than a wrong size (CppNix and nivis treat the line as optional).
    Ok(if file_hash.is_none() { text.replacen("\nFileSize: 0\n", "\n", 1) } else { text })
}

/// A single byte range of a body of `size` bytes.
enum ByteRange {
    /// No usable `Range` header (absent, several ranges, or malformed: RFC
    /// 9110 says to ignore those): the whole body.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    Unsatisfiable,
}

fn parse_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return ByteRange::Whole };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return ByteRange::Whole };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last `n` bytes.
        return match last.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if size == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part { start: size.saturating_sub(n), end: size - 1 },
            Err(_) => ByteRange::Whole,
        };
    }
    let Ok(start) = first.parse::<u64>() else { return ByteRange::Whole };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return ByteRange::Whole,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part { start, end: end.min(size - 1) }
}

fn send_nar(store: &dyn Store, info: &ValidPathInfo, request: &Request, writer: &mut impl Write) -> io::Result<bool> {
    let size = info.nar_size;
    let (response, start, length) = match parse_range(request.range.as_deref(), size) {
        ByteRange::Whole => (Response::new(request, 200), 0, size),
        ByteRange::Part { start, end } => (
            Response::new(request, 206).header("Content-Range", &format!("bytes {start}-{end}/{size}")),
            start,
            end - start + 1,
        ),
        ByteRange::Unsatisfiable => {
            return Response::new(request, 416)
                .header("Content-Range", &format!("bytes */{size}"))
                .send_body(writer, "text/plain", b"range not satisfiable\n");
        }
    };
    let response = response.header("Accept-Ranges", "bytes");
    response.send_head(writer, "application/x-nix-nar", Some(length))?;
    if response.head_only {
        return Ok(response.keep_alive);
    }
    // A failure from here on has already sent the head: dropping the
    // connection is the only way to tell the client, which sees a short body.
    let mut window = RangeWriter { inner: writer, skip: start, remaining: length, seen: 0 };
    let result = store.nar_from_path(&info.path, &mut window);
    // Stopping the dump once the range is sent makes it fail; that is success.
    if window.remaining != 0 {
        return Err(io::Error::other(match result {
            Err(e) => format!("dumping '{}': {e}", info.path.base_name()),
            Ok(()) => format!("the NAR of '{}' is shorter than the database says", info.path.base_name()),
        }));
    }
    if result.is_ok() && window.seen != size {
        return Err(io::Error::other(format!("the NAR of '{}' differs in size from the database's", info.path.base_name())));
    }
    Ok(response.keep_alive)
}

/// Passes on `remaining` bytes after skipping `skip`, then refuses more.
struct RangeWriter<'a, W: Write> {
    inner: &'a mut W,
    skip: u64,
    remaining: u64,
    seen: u64,
}

impl<W: Write> Write for RangeWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(0);
            }
            return Err(io::Error::other("the requested range has been sent"));
        }
        let skipped = self.skip.min(buf.len() as u64) as usize;
        self.skip -= skipped as u64;
        let wanted = (self.remaining.min((buf.len() - skipped) as u64)) as usize;
        self.inner.write_all(&buf[skipped..skipped + wanted])?;
        self.remaining -= wanted as u64;
        self.seen += (skipped + wanted) as u64;
        Ok(skipped + wanted)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn send_nar_zstd(
    shared: &Shared,
    store: &dyn Store,
    info: &ValidPathInfo,
    request: &Request,
    writer: &mut impl Write,
) -> io::Result<bool> {
    // HTTP/1.0 clients get the body delimited by the end of the connection.
    let response = if request.http11 { Response::new(request, 200) } else { Response::new(request, 200).close() };
    response.send_head(writer, "application/x-nix-nar", None)?;
    if response.head_only {
        return Ok(response.keep_alive);
    }
    let chunked = response.keep_alive;
    let mut body = ChunkedWriter { inner: writer, chunked, buffer: Vec::with_capacity(CHUNK) };
    let mut encoder = zstd::stream::write::Encoder::new(&mut body, shared.config.zstd_level)?;
    let mut counting = CountingWriter { inner: &mut encoder, count: 0 };
    if let Err(e) = store.nar_from_path(&info.path, &mut counting) {
        return Err(io::Error::other(format!("dumping '{}': {e}", info.path.base_name())));
    }
    if counting.count != info.nar_size {
        return Err(io::Error::other(format!("the NAR of '{}' differs in size from the database's", info.path.base_name())));
    }
    encoder.finish()?;
    body.finish()?;
    Ok(response.keep_alive)
}

const CHUNK: usize = 64 * 1024;

/// Chunked transfer encoding (or the raw bytes, for a body that ends with
/// the connection), in chunks of up to 64 KiB.
struct ChunkedWriter<'a, W: Write> {
    inner: &'a mut W,
    chunked: bool,
    buffer: Vec<u8>,
}

impl<W: Write> ChunkedWriter<'_, W> {
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if self.chunked {
            write!(self.inner, "{:x}\r\n", self.buffer.len())?;
            self.inner.write_all(&self.buffer)?;
            self.inner.write_all(b"\r\n")?;
        } else {
            self.inner.write_all(&self.buffer)?;
        }
        self.buffer.clear();
        Ok(())
    }

    /// Sends what is buffered and the last chunk: only a complete body ends
    /// with it, so a client can tell a failed stream from a finished one.
    fn finish(&mut self) -> io::Result<()> {
        self.send_chunk()?;
        if self.chunked {
            self.inner.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    }
}

impl<W: Write> Write for ChunkedWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() == CHUNK {
            self.send_chunk()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The build log of the derivation `drv_name` (a `.drv` base name), from a
/// local store's log directory: bzip2-compressed as nivis and CppNix write
/// it, or plain as CppNix writes with `compress-build-log = false`.
fn read_log(store: &dyn Store, drv_name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let Ok(drv_path) = StorePath::from_base_name(drv_name) else { return Ok(None) };
    if !drv_path.is_derivation() {
        return Ok(None);
    }
    let Some(local) = store.as_local() else {
        return Err(StoreError::Unsupported { operation: "getBuildLog".into(), store: store.uri() });
    };
    let base = drv_path.base_name();
    let dir = local.config().log_dir.join("drvs").join(&base[..2]);
    let io_error = |file: &std::path::Path, error| StoreError::Io { context: format!("reading '{}'", file.display()), error };
    let compressed = dir.join(format!("{}.bz2", &base[2..]));
    match std::fs::File::open(&compressed) {
        Ok(file) => {
            let mut log = Vec::new();
            bzip2::read::MultiBzDecoder::new(file).read_to_end(&mut log).map_err(|e| io_error(&compressed, e))?;
            return Ok(Some(log));
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error(&compressed, e)),
        Err(_) => {}
    }
    let plain = dir.join(&base[2..]);
    match std::fs::read(&plain) {
        Ok(log) => Ok(Some(log)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&plain, e)),
    }
}
