//! `BinaryCacheStore`: a store kept as files in CppNix's binary cache layout,
//! in a directory (`file://DIR`) or behind HTTP (`http://HOST/PATH`).
//!
//! Layout: `nix-cache-info` (`StoreDir`, `WantMassQuery`, `Priority`),
//! `<hashpart>.narinfo` per path, and `nar/<file hash, nix32>.nar[.xz|.zst|.bz2]`.
//! URI parameters: `compression=xz|zstd|bzip2|none` (default xz),
//! `secret-key=FILE` (sign narinfos written), `priority=N`,
//! `want-mass-query=true|false`. Unknown parameters are ignored, as CppNix
//! only warns about them.
//!
//! Writing a path uploads the NAR first and the narinfo last, so a reader never
//! finds a narinfo whose NAR is missing. Reading checks `FileHash`/`FileSize`
//! when present and `NarHash`/`NarSize` always (see [`crate::verify`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::narinfo_cache::{NarInfoCacheTtl, NarInfoDiskCache};

use nivis_formats::{HashAlgorithm, HashEncoding, Hasher, NarInfo, SecretKey, StoreDir, StorePath};
use nivis_store::{Store, StoreError, StoreSettings, ValidPathInfo};

use crate::compression::{Compression, Encoder};
use crate::error::SubstituteError;
use crate::transport::{FileTransport, HttpTransport, NetworkSettings, Transport};
use crate::verify::{NarExpectation, VerifyingNarReader};

/// CppNix's default priority of a binary cache without a `Priority` line.
pub const DEFAULT_PRIORITY: u64 = 50;

/// A binary cache opened from a URI.
pub struct BinaryCacheStore {
    uri: String,
    transport: Box<dyn Transport>,
    store_dir: StoreDir,
    compression: Compression,
    secret_key: Option<SecretKey>,
    priority: u64,
    want_mass_query: bool,
    /// Narinfos already fetched (`None`: known absent), by hash part.
    narinfos: Mutex<HashMap<String, Option<NarInfo>>>,
    /// The shared on-disk narinfo cache and this cache's id in it (HTTP caches only).
    disk_cache: Option<(NarInfoDiskCache, i64)>,
}

/// Whether `uri` names a binary cache this crate opens.
pub fn is_binary_cache_uri(uri: &str) -> bool {
    uri.starts_with("file://") || uri.starts_with("http://") || uri.starts_with("https://")
}

fn split_params(uri: &str) -> (&str, BTreeMap<String, String>) {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), percent_decode(v)),
            None => (p.to_string(), String::new()),
        })
        .collect();
    (base, params)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 3 <= bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        if let Some(byte) = escaped {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_bool(uri: &str, name: &str, value: &str) -> Result<bool, SubstituteError> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(SubstituteError::BadUri { uri: uri.to_string(), reason: format!("'{name}' must be true or false") }),
    }
}

/// `narinfo-cache-negative-ttl` and `narinfo-cache-positive-ttl` from the
/// configuration (defaults when unset or unreadable).
fn cache_ttl() -> NarInfoCacheTtl {
    let mut ttl = NarInfoCacheTtl::default();
    if let Ok(config) = nivis_config::Config::load() {
        if let Ok(Some(n)) = config.get_u64("narinfo-cache-negative-ttl") {
            ttl.negative = n as i64;
        }
        if let Ok(Some(n)) = config.get_u64("narinfo-cache-positive-ttl") {
            ttl.positive = n as i64;
        }
    }
    ttl
}

impl BinaryCacheStore {
    /// Opens (and for a `file://` cache, creates) the cache named by `uri`,
    /// with the process's network settings ([`NetworkSettings::current`]).
    pub fn open(uri: &str, settings: &StoreSettings) -> Result<BinaryCacheStore, SubstituteError> {
        Self::open_with_network(uri, settings, &NetworkSettings::current())
    }

    /// [`Self::open`] with explicit network settings (HTTP caches only use them).
    pub fn open_with_network(
        uri: &str,
        settings: &StoreSettings,
        network: &NetworkSettings,
    ) -> Result<BinaryCacheStore, SubstituteError> {
        let bad = |reason: &str| SubstituteError::BadUri { uri: uri.to_string(), reason: reason.to_string() };
        let (base, params) = split_params(uri);
        let (transport, writable_dir): (Box<dyn Transport>, Option<PathBuf>) =
            if let Some(dir) = base.strip_prefix("file://") {
                if !dir.starts_with('/') {
                    return Err(bad("the directory of a file:// cache must be absolute"));
                }
                let dir = PathBuf::from(dir.trim_end_matches('/'));
                (Box::new(FileTransport::new(dir.clone())), Some(dir))
            } else if base.starts_with("http://") || base.starts_with("https://") {
                if base.starts_with("https://") && !cfg!(feature = "https") {
                    return Err(bad("this nivis was built without TLS support (feature 'https')"));
                }
                (Box::new(HttpTransport::new(base.trim_end_matches('/').to_string(), network)), None)
            } else {
                return Err(bad("not a binary cache URI (file://, http:// or https://)"));
            };
        let store_dir = StoreDir::new(&settings.store_dir).map_err(|e| bad(&e.to_string()))?;

        let mut compression = Compression::Xz;
        let mut secret_key = None;
        let mut priority = None;
        let mut want_mass_query = None;
        for (name, value) in &params {
            match name.as_str() {
                "compression" => compression = Compression::parse(value)?,
                "secret-key" if !value.is_empty() => {
                    let text = std::fs::read_to_string(value)
                        .map_err(|e| SubstituteError::io(format!("reading secret key '{value}'"), e))?;
                    secret_key = Some(SecretKey::parse(text.trim())?);
                }
                "priority" => {
                    priority = Some(value.parse().map_err(|_| bad("'priority' must be a number"))?);
                }
                "want-mass-query" => want_mass_query = Some(parse_bool(uri, name, value)?),
                _ => {}
            }
        }

        let mut store = BinaryCacheStore {
            uri: base.to_string(),
            transport,
            store_dir,
            compression,
            secret_key,
            priority: DEFAULT_PRIORITY,
            want_mass_query: false,
            narinfos: Mutex::new(HashMap::new()),
            disk_cache: None,
        };
        // HTTP caches remember their nix-cache-info and narinfos on disk, as
        // CppNix's do (in the same file); a local directory is cheap to ask.
        let disk_cache = if writable_dir.is_none() { NarInfoDiskCache::open_default(cache_ttl()) } else { None };
        let known = disk_cache
            .as_ref()
            .and_then(|cache| cache.cache_info(&store.uri))
            .filter(|known| known.store_dir == store.store_dir.as_str());
        if let Some(known) = known {
            store.want_mass_query = known.want_mass_query;
            store.priority = known.priority;
            store.disk_cache = disk_cache.map(|cache| (cache, known.id));
        } else {
            store.init_cache_info(uri, writable_dir.as_deref())?;
            if let Some(cache) = disk_cache {
                let id = cache.create_cache(&store.uri, store.store_dir.as_str(), store.want_mass_query, store.priority);
                store.disk_cache = id.map(|id| (cache, id));
            }
        }
        if let Some(priority) = priority {
            store.priority = priority;
        }
        if let Some(want) = want_mass_query {
            store.want_mass_query = want;
        }
        Ok(store)
    }

    /// Reads `nix-cache-info`, or writes one (with the store directory) into a
    /// cache that has none, as CppNix does.
    fn init_cache_info(&mut self, uri: &str, writable_dir: Option<&std::path::Path>) -> Result<(), SubstituteError> {
        let store = self;
        match store.transport.get_string("nix-cache-info")? {
            Some(info) => store.read_cache_info(&info)?,
            None => {
                // CppNix initialises an empty cache with its store directory.
                if let Some(dir) = writable_dir {
                    std::fs::create_dir_all(dir.join("nar"))
                        .map_err(|e| SubstituteError::io(format!("creating directory '{}'", dir.display()), e))?;
                }
                let text = format!("StoreDir: {}\n", store.store_dir.as_str());
                store.transport.put_bytes("nix-cache-info", text.as_bytes(), "text/x-nix-cache-info").map_err(
                    |e| match e {
                        SubstituteError::Upload { .. } => {
                            SubstituteError::BadUri { uri: uri.to_string(), reason: "does not appear to be a binary cache".into() }
                        }
                        other => other,
                    },
                )?;
            }
        }
        Ok(())
    }

    fn read_cache_info(&mut self, text: &str) -> Result<(), SubstituteError> {
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else { continue };
            let value = value.trim();
            match name.trim() {
                "StoreDir" if value != self.store_dir.as_str() => {
                    return Err(SubstituteError::WrongStoreDir {
                        cache: self.uri.clone(),
                        theirs: value.to_string(),
                        ours: self.store_dir.as_str().to_string(),
                    });
                }
                "WantMassQuery" => self.want_mass_query = value == "1",
                "Priority" => {
                    if let Ok(priority) = value.parse() {
                        self.priority = priority;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Lower numbers are tried first.
    pub fn priority(&self) -> u64 {
        self.priority
    }

    pub fn want_mass_query(&self) -> bool {
        self.want_mass_query
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    fn narinfo_name(path: &StorePath) -> String {
        format!("{}.narinfo", path.hash_part())
    }

    /// The narinfo of `path`, or `None` if the cache does not have it.
    pub fn narinfo(&self, path: &StorePath) -> Result<Option<NarInfo>, SubstituteError> {
        let key = path.hash_part().to_string();
        if let Some(known) = self.narinfos.lock().ok().and_then(|cache| cache.get(&key).cloned()) {
            return Ok(known);
        }
        if let Some((cache, id)) = &self.disk_cache
            && let Some(known) = cache.lookup(*id, &key)
            && known.as_ref().is_none_or(|n| &n.store_path == path)
        {
            if let Ok(mut memory) = self.narinfos.lock() {
                memory.insert(key, known.clone());
            }
            return Ok(known);
        }
        let name = Self::narinfo_name(path);
        let narinfo = match self.transport.get_string(&name)? {
            None => None,
            Some(text) => {
                let narinfo = NarInfo::parse(&self.store_dir, &text)
                    .map_err(|source| SubstituteError::NarInfo { url: self.transport.url(&name), source })?;
                if &narinfo.store_path != path {
                    return Err(SubstituteError::NarInfoMismatch {
                        url: self.transport.url(&name),
                        found: self.store_dir.print_path(&narinfo.store_path),
                        wanted: self.store_dir.print_path(path),
                    });
                }
                Some(narinfo)
            }
        };
        if let Some((cache, id)) = &self.disk_cache {
            cache.upsert(*id, &key, narinfo.as_ref());
        }
        if let Ok(mut cache) = self.narinfos.lock() {
            cache.insert(key, narinfo.clone());
        }
        Ok(narinfo)
    }

    /// A reader of `path`'s NAR, decompressed and checked against its narinfo.
    pub fn nar_reader(&self, path: &StorePath) -> Result<(NarInfo, VerifyingNarReader), SubstituteError> {
        let narinfo = self
            .narinfo(path)?
            .ok_or_else(|| SubstituteError::Store(StoreError::InvalidPath(self.store_dir.print_path(path))))?;
        let raw = self.transport.get(&narinfo.url)?.ok_or_else(|| SubstituteError::Download {
            url: self.transport.url(&narinfo.url),
            reason: "file does not exist in the binary cache".into(),
        })?;
        let expect = NarExpectation {
            path: self.store_dir.print_path(path),
            compression: Compression::parse(&narinfo.compression)?,
            file_hash: narinfo.file_hash,
            file_size: narinfo.file_size,
            nar_hash: narinfo.nar_hash,
            nar_size: narinfo.nar_size,
        };
        let reader = VerifyingNarReader::new(raw, expect)?;
        Ok((narinfo, reader))
    }

    /// Streams the NAR of `path`, decompressed and checked (its hash only if
    /// `check_nar_hash`: see `Store::nar_from_path_for_checking_consumer`).
    fn write_checked_nar(&self, path: &StorePath, sink: &mut dyn Write, check_nar_hash: bool) -> Result<(), StoreError> {
        let (_, mut reader) = self.nar_reader(path).map_err(SubstituteError::into_store_error)?;
        if !check_nar_hash {
            reader.leave_nar_hash_to_consumer();
        }
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) => {
                    return Err(match reader.take_error() {
                        Some(precise) => precise.into_store_error(),
                        None => StoreError::io(format!("reading the NAR of '{}'", self.print_store_path(path)), e),
                    });
                }
            };
            sink.write_all(&buffer[..n])
                .map_err(|e| StoreError::io(format!("writing the NAR of '{}'", self.print_store_path(path)), e))?;
        }
    }

    fn write_narinfo(&self, narinfo: &NarInfo) -> Result<(), SubstituteError> {
        let name = Self::narinfo_name(&narinfo.store_path);
        self.transport.put_bytes(&name, narinfo.to_text(&self.store_dir).as_bytes(), "text/x-nix-narinfo")?;
        if let Ok(mut cache) = self.narinfos.lock() {
            cache.insert(narinfo.store_path.hash_part().to_string(), Some(narinfo.clone()));
        }
        Ok(())
    }

    /// Compresses `nar` into a temporary file, checking it against `info`, and
    /// uploads file and narinfo.
    fn add_nar_inner(&self, info: &ValidPathInfo, nar: &mut dyn Read) -> Result<(), SubstituteError> {
        let printed = self.store_dir.print_path(&info.path);
        let spool = tempfile::NamedTempFile::new()
            .map_err(|e| SubstituteError::io("creating a temporary file for a NAR", e))?;
        let file_writer = HashingWriter { inner: io::BufWriter::new(spool.as_file()), hasher: Hasher::new(HashAlgorithm::Sha256), count: 0 };
        let mut encoder = Encoder::new(self.compression, file_writer)
            .map_err(|e| SubstituteError::io("starting compression", e))?;
        let mut nar_hasher = Hasher::new(HashAlgorithm::Sha256);
        let mut nar_size = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match nar.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(SubstituteError::io(format!("reading the NAR of '{printed}'"), e)),
            };
            nar_hasher.update(&buffer[..n]);
            nar_size += n as u64;
            encoder.write_all(&buffer[..n]).map_err(|e| SubstituteError::io("compressing a NAR", e))?;
        }
        let nar_hash = nar_hasher.finish();
        if nar_hash != info.nar_hash {
            return Err(SubstituteError::HashMismatch {
                what: "NAR",
                path: printed,
                expected: info.nar_hash.encode(HashEncoding::Nix32, true),
                actual: nar_hash.encode(HashEncoding::Nix32, true),
            });
        }
        if info.nar_size != 0 && info.nar_size != nar_size {
            return Err(SubstituteError::SizeMismatch { what: "NAR", path: printed, expected: info.nar_size, actual: nar_size });
        }
        let mut file_writer = encoder.finish().map_err(|e| SubstituteError::io("compressing a NAR", e))?;
        file_writer.inner.flush().map_err(|e| SubstituteError::io("writing a compressed NAR", e))?;
        let HashingWriter { inner, hasher, count: file_size } = file_writer;
        drop(inner);
        let file_hash = hasher.finish();

        let url = format!(
            "nar/{}.nar{}",
            file_hash.encode(HashEncoding::Nix32, false),
            self.compression.extension()
        );
        // Identical contents were uploaded before: keep that file.
        if !self.transport.exists(&url)? {
            self.transport.put_file(&url, spool.path(), nar_content_type(self.compression))?;
        }
        let mut narinfo = NarInfo {
            store_path: info.path.clone(),
            url,
            compression: self.compression.name().to_string(),
            file_hash: Some(file_hash),
            file_size,
            nar_hash,
            nar_size,
            references: info.references.clone(),
            deriver: info.deriver.clone(),
            system: String::new(),
            signatures: info.sigs.clone(),
            ca: info.ca,
        };
        if let Some(key) = &self.secret_key {
            narinfo.sign(&self.store_dir, key)?;
        }
        self.write_narinfo(&narinfo)
    }
}

fn nar_content_type(compression: Compression) -> &'static str {
    match compression {
        Compression::Xz => "application/x-xz",
        Compression::Bzip2 => "application/x-bzip2",
        Compression::Zstd => "application/zstd",
        Compression::None => "application/x-nix-nar",
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The store-level view of a narinfo.
pub fn narinfo_to_path_info(narinfo: &NarInfo) -> ValidPathInfo {
    ValidPathInfo {
        path: narinfo.store_path.clone(),
        deriver: narinfo.deriver.clone(),
        nar_hash: narinfo.nar_hash,
        references: narinfo.references.clone(),
        registration_time: crate::now(),
        nar_size: narinfo.nar_size,
        ultimate: false,
        sigs: narinfo.signatures.clone(),
        ca: narinfo.ca,
    }
}

impl Store for BinaryCacheStore {
    fn store_dir(&self) -> &StoreDir {
        &self.store_dir
    }

    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn query_path_info(&self, path: &StorePath) -> Result<Option<ValidPathInfo>, StoreError> {
        Ok(self.narinfo(path).map_err(SubstituteError::into_store_error)?.as_ref().map(narinfo_to_path_info))
    }

    fn download_size(&self, path: &StorePath) -> Result<Option<u64>, StoreError> {
        Ok(self.narinfo(path).map_err(SubstituteError::into_store_error)?.map(|n| n.file_size))
    }

    fn is_valid_path(&self, path: &StorePath) -> Result<bool, StoreError> {
        let known = self.narinfos.lock().ok().and_then(|cache| cache.get(path.hash_part()).map(Option::is_some));
        match known {
            Some(valid) => Ok(valid),
            None => self.transport.exists(&Self::narinfo_name(path)).map_err(SubstituteError::into_store_error),
        }
    }

    fn add_nar(&self, info: &ValidPathInfo, nar: &mut dyn Read, repair: bool) -> Result<(), StoreError> {
        if !repair && self.is_valid_path(&info.path)? {
            // CppNix drains the source and keeps what the cache has.
            io::copy(nar, &mut io::sink()).map_err(|e| StoreError::io("reading a NAR".into(), e))?;
            return Ok(());
        }
        self.add_nar_inner(info, nar).map_err(SubstituteError::into_store_error)
    }

    fn nar_from_path(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        self.write_checked_nar(path, sink, true)
    }

    fn nar_from_path_for_checking_consumer(&self, path: &StorePath, sink: &mut dyn Write) -> Result<(), StoreError> {
        self.write_checked_nar(path, sink, false)
    }

    fn as_shared(&self) -> Option<&(dyn Store + Sync)> {
        Some(self)
    }

    fn add_signatures(&self, path: &StorePath, sigs: &[String]) -> Result<(), StoreError> {
        let mut narinfo = self
            .narinfo(path)
            .map_err(SubstituteError::into_store_error)?
            .ok_or_else(|| StoreError::InvalidPath(self.print_store_path(path)))?;
        narinfo.signatures.extend(sigs.iter().cloned());
        self.write_narinfo(&narinfo).map_err(SubstituteError::into_store_error)
    }
}

