//! A binary cache HTTP server over a store (`nivis serve`, like nix-serve or
//! harmonia): `GET`/`HEAD` of `/nix-cache-info`, `/<hashpart>.narinfo` (made
//! from the store's database, signed on the fly when a key is given) and
//! `/nar/<nar hash, nix32>.nar[?hash=<hashpart>]` (the uncompressed NAR,
//! streamed from the store with its length known in advance).
//!
//! Plain HTTP/1.1 on `std::net` with a thread per connection and keep-alive;
//! each connection opens its own store handle (a database connection), as
//! CppNix's daemon does per client. Store paths are found by hash part through
//! an index of the valid paths, rebuilt (at most once a second) when a lookup
//! misses, because the `Store` trait has no query by hash part.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nivis_formats::{HashEncoding, NarInfo, SecretKey, StoreDir, StorePath};
use nivis_store::{Store, StoreError};

/// Opens a store handle for one connection.
pub type StoreFactory = dyn Fn() -> Result<Box<dyn Store>, StoreError> + Send + Sync;

/// What the server announces and signs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Signs every narinfo served (in addition to the store's own signatures).
    pub secret_key: Option<SecretKey>,
    /// `Priority` in `nix-cache-info`.
    pub priority: u64,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig { secret_key: None, priority: 30, max_connections: 64 }
    }
}

struct Shared {
    open_store: Arc<StoreFactory>,
    store_dir: StoreDir,
    config: ServeConfig,
    /// Hash part to store path, of the paths valid at the last rebuild.
    index: Mutex<(HashMap<String, StorePath>, Option<Instant>)>,
    active: AtomicUsize,
}

/// Serves requests on `listener` until the process ends.
pub fn serve(listener: TcpListener, open_store: Arc<StoreFactory>, config: ServeConfig) -> Result<(), StoreError> {
    let store_dir = open_store()?.store_dir().clone();
    let shared = Arc::new(Shared {
        open_store,
        store_dir,
        config,
        index: Mutex::new((HashMap::new(), None)),
        active: AtomicUsize::new(0),
    });
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // Wait for a free slot rather than refuse: clients retry badly.
        while shared.active.load(Ordering::Acquire) >= shared.config.max_connections {
            std::thread::sleep(Duration::from_millis(2));
        }
        shared.active.fetch_add(1, Ordering::AcqRel);
        let shared = shared.clone();
        std::thread::spawn(move || {
            let _ = handle_connection(&shared, stream);
            shared.active.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

struct Request {
    method: String,
    target: String,
    keep_alive: bool,
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
    let mut keep_alive = version == "HTTP/1.1";
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
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("connection")
        {
            let value = value.trim();
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    Ok(Some(Request { method: method.to_string(), target: target.to_string(), keep_alive }))
}

fn handle_connection(shared: &Shared, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(256 * 1024, stream);
    let mut store: Option<Box<dyn Store>> = None;
    while let Some(request) = read_request(&mut reader)? {
        let keep_alive = request.keep_alive;
        if store.is_none() {
            match (shared.open_store)() {
                Ok(opened) => store = Some(opened),
                Err(e) => {
                    respond(&mut writer, 500, "text/plain", e.to_string().as_bytes(), false, request.method == "HEAD")?;
                    return Ok(());
                }
            }
        }
        let store = store.as_deref().expect("opened above");
        handle_request(shared, store, &request, &mut writer)?;
        writer.flush()?;
        if !keep_alive {
            break;
        }
    }
    Ok(())
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Internal Server Error",
    }
}

fn head(writer: &mut impl Write, status: u16, content_type: &str, length: u64, keep_alive: bool) -> io::Result<()> {
    write!(
        writer,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: {}\r\n\r\n",
        status_text(status),
        if keep_alive { "keep-alive" } else { "close" }
    )
}

fn respond(
    writer: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    head(writer, status, content_type, body.len() as u64, keep_alive)?;
    if !head_only {
        writer.write_all(body)?;
    }
    Ok(())
}

fn handle_request(shared: &Shared, store: &dyn Store, request: &Request, writer: &mut impl Write) -> io::Result<()> {
    let head_only = match request.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return respond(writer, 405, "text/plain", b"method not allowed\n", request.keep_alive, false),
    };
    let keep_alive = request.keep_alive;
    let (path, query) = request.target.split_once('?').unwrap_or((&request.target, ""));
    let not_found = |writer: &mut _| respond(writer, 404, "text/plain", b"not found\n", keep_alive, head_only);
    let server_error = |writer: &mut _, e: StoreError| {
        respond(writer, 500, "text/plain", format!("{e}\n").as_bytes(), keep_alive, head_only)
    };

    if path == "/nix-cache-info" {
        let body = format!(
            "StoreDir: {}\nWantMassQuery: 1\nPriority: {}\n",
            shared.store_dir.as_str(),
            shared.config.priority
        );
        return respond(writer, 200, "text/x-nix-cache-info", body.as_bytes(), keep_alive, head_only);
    }

    if let Some(hash_part) = path.strip_prefix('/').and_then(|p| p.strip_suffix(".narinfo")) {
        let info = match lookup(shared, store, hash_part) {
            Ok(Some(info)) => info,
            Ok(None) => return not_found(writer),
            Err(e) => return server_error(writer, e),
        };
        let nar_hash = info.nar_hash.encode(HashEncoding::Nix32, false);
        let mut narinfo = NarInfo {
            store_path: info.path.clone(),
            url: format!("nar/{nar_hash}.nar?hash={}", info.path.hash_part()),
            compression: "none".into(),
            // The file served is the NAR itself.
            file_hash: Some(info.nar_hash),
            file_size: info.nar_size,
            nar_hash: info.nar_hash,
            nar_size: info.nar_size,
            references: info.references.clone(),
            deriver: info.deriver.clone(),
            system: String::new(),
            signatures: info.sigs.clone(),
            ca: info.ca,
        };
        if let Some(key) = &shared.config.secret_key
            && let Err(e) = narinfo.sign(&shared.store_dir, key)
        {
            return server_error(writer, StoreError::BadInput(e.to_string()));
        }
        let body = narinfo.to_text(&shared.store_dir);
        return respond(writer, 200, "text/x-nix-narinfo", body.as_bytes(), keep_alive, head_only);
    }

    if let Some(nar_hash) = path.strip_prefix("/nar/").and_then(|p| p.strip_suffix(".nar")) {
        let hint = query.split('&').find_map(|p| p.strip_prefix("hash="));
        let info = match find_by_nar_hash(shared, store, nar_hash, hint) {
            Ok(Some(info)) => info,
            Ok(None) => return not_found(writer),
            Err(e) => return server_error(writer, e),
        };
        head(writer, 200, "application/x-nix-nar", info.nar_size, keep_alive)?;
        if head_only {
            return Ok(());
        }
        // A failure here has already sent the head: dropping the connection
        // is the only way to tell the client, which then sees a short body.
        let mut counting = CountingWriter { inner: writer, count: 0 };
        if let Err(e) = store.nar_from_path(&info.path, &mut counting) {
            return Err(io::Error::other(e.to_string()));
        }
        if counting.count != info.nar_size {
            return Err(io::Error::other("NAR size differs from the database's"));
        }
        return Ok(());
    }

    not_found(writer)
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

/// The info of the valid path with this hash part.
fn lookup(shared: &Shared, store: &dyn Store, hash_part: &str) -> Result<Option<nivis_store::ValidPathInfo>, StoreError> {
    if hash_part.len() != 32 || !hash_part.bytes().all(nivis_formats::nixbase32::is_nix32_char) {
        return Ok(None);
    }
    let known = shared.index.lock().ok().and_then(|index| index.0.get(hash_part).cloned());
    let path = match known {
        Some(path) => Some(path),
        None => {
            let mut index = shared.index.lock().map_err(|_| StoreError::BadInput("server index poisoned".into()))?;
            let stale = index.1.is_none_or(|built| built.elapsed() > Duration::from_secs(1));
            if stale {
                index.0 = store
                    .query_all_valid_paths()?
                    .into_iter()
                    .map(|p| (p.hash_part().to_string(), p))
                    .collect();
                index.1 = Some(Instant::now());
            }
            index.0.get(hash_part).cloned()
        }
    };
    match path {
        Some(path) => store.query_path_info(&path),
        None => Ok(None),
    }
}

/// The info of the path whose NAR hash is `nar_hash` (nix32), using the
/// `hash=` hint of our own URLs, else a scan of the index.
fn find_by_nar_hash(
    shared: &Shared,
    store: &dyn Store,
    nar_hash: &str,
    hint: Option<&str>,
) -> Result<Option<nivis_store::ValidPathInfo>, StoreError> {
    let matches = |info: &nivis_store::ValidPathInfo| info.nar_hash.encode(HashEncoding::Nix32, false) == nar_hash;
    if let Some(hash_part) = hint {
        return Ok(lookup(shared, store, hash_part)?.filter(matches));
    }
    // Without a hint (a URL made by hand), look at every path: slow but rare.
    let _ = lookup(shared, store, "00000000000000000000000000000000")?;
    let candidates: Vec<StorePath> =
        shared.index.lock().map(|index| index.0.values().cloned().collect()).unwrap_or_default();
    for path in candidates {
        if let Some(info) = store.query_path_info(&path)?
            && matches(&info)
        {
            return Ok(Some(info));
        }
    }
    Ok(None)
}
