//! The on-disk narinfo cache, CppNix's `binary-cache-v6.sqlite` in
//! `$XDG_CACHE_HOME/nix` (or `~/.cache/nix`): what each HTTP binary cache said
//! about each path it was asked for (present, with the narinfo, or absent), and
//! each cache's `nix-cache-info`. The schema and the encoding of every column
//! are CppNix 2.8's, so both tools share one file and each benefits from the
//! other's lookups.
//!
//! Entries expire: absent ones after `narinfo-cache-negative-ttl` (1 hour),
//! present ones after `narinfo-cache-positive-ttl` (30 days), cache infos after
//! 7 days. Expired rows are purged once a day. The cache is only an
//! optimisation: any failure to open or use it is ignored, and lookups go to
//! the network as if it were empty.

use std::path::PathBuf;
use std::sync::Mutex;

use nivis_formats::{ContentAddress, Hash, NarInfo, StorePath};
use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &str = "
create table if not exists BinaryCaches (
    id        integer primary key autoincrement not null,
    url       text unique not null,
    timestamp integer not null,
    storeDir  text not null,
    wantMassQuery integer not null,
    priority  integer not null
);

create table if not exists NARs (
    cache            integer not null,
    hashPart         text not null,
    namePart         text,
    url              text,
    compression      text,
    fileHash         text,
    fileSize         integer,
    narHash          text,
    narSize          integer,
    refs             text,
    deriver          text,
    sigs             text,
    ca               text,
    timestamp        integer not null,
    present          integer not null,
    primary key (cache, hashPart),
    foreign key (cache) references BinaryCaches(id) on delete cascade
);

create table if not exists Realisations (
    cache integer not null,
    outputId text not null,
    content blob, -- Json serialisation of the realisation, or null if the realisation is absent
    timestamp        integer not null,
    primary key (cache, outputId),
    foreign key (cache) references BinaryCaches(id) on delete cascade
);

create table if not exists LastPurge (
    dummy            text primary key,
    value            integer
);
";

/// How long a cache's `nix-cache-info` is trusted.
const CACHE_INFO_TTL: i64 = 7 * 24 * 3600;
const PURGE_INTERVAL: i64 = 24 * 3600;

/// Time-to-live settings, CppNix's `narinfo-cache-negative-ttl` and
/// `narinfo-cache-positive-ttl` (seconds).
#[derive(Debug, Clone, Copy)]
pub struct NarInfoCacheTtl {
    pub negative: i64,
    pub positive: i64,
}

impl Default for NarInfoCacheTtl {
    fn default() -> Self {
        NarInfoCacheTtl { negative: 3600, positive: 30 * 24 * 3600 }
    }
}

/// What the cache remembers of a binary cache's `nix-cache-info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedCacheInfo {
    pub id: i64,
    pub store_dir: String,
    pub want_mass_query: bool,
    pub priority: u64,
}

/// An open narinfo cache.
pub struct NarInfoDiskCache {
    db: Mutex<Connection>,
    ttl: NarInfoCacheTtl,
}

fn now() -> i64 {
    crate::now()
}

/// `$XDG_CACHE_HOME/nix/binary-cache-v6.sqlite`, as CppNix's `getCacheDir`.
pub fn default_path() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("nix/binary-cache-v6.sqlite"))
}

impl NarInfoDiskCache {
    /// Opens (creating if needed) the cache at the default place; `None` if
    /// it cannot be opened, which only means no caching.
    pub fn open_default(ttl: NarInfoCacheTtl) -> Option<NarInfoDiskCache> {
        Self::open(&default_path()?, ttl)
    }

    pub fn open(path: &std::path::Path, ttl: NarInfoCacheTtl) -> Option<NarInfoDiskCache> {
        std::fs::create_dir_all(path.parent()?).ok()?;
        let db = Connection::open(path).ok()?;
        db.busy_timeout(std::time::Duration::from_secs(60)).ok()?;
        // A cache: losing the last writes on a crash is acceptable, waiting for
        // the disk on every lookup is not (CppNix's `isCache`).
        db.execute_batch("pragma synchronous = off; pragma main.journal_mode = truncate;").ok()?;
        db.execute_batch(SCHEMA).ok()?;
        let cache = NarInfoDiskCache { db: Mutex::new(db), ttl };
        cache.purge();
        Some(cache)
    }

    fn purge(&self) {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let last: Option<i64> = db
            .query_row("select value from LastPurge where dummy = ''", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten();
        let now = now();
        if last.is_some_and(|last| now - last < PURGE_INTERVAL) {
            return;
        }
        let _ = db.execute(
            "delete from NARs where ((present = 0 and timestamp < ?1) or (present = 1 and timestamp < ?2))",
            params![now - self.ttl.negative, now - self.ttl.positive],
        );
        let _ = db.execute("insert or replace into LastPurge(dummy, value) values ('', ?1)", params![now]);
    }

    /// The remembered `nix-cache-info` of the cache at `uri`, if fresh.
    pub fn cache_info(&self, uri: &str) -> Option<CachedCacheInfo> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.query_row(
            "select id, storeDir, wantMassQuery, priority from BinaryCaches where url = ?1 and timestamp > ?2",
            params![uri, now() - CACHE_INFO_TTL],
            |r| {
                Ok(CachedCacheInfo {
                    id: r.get(0)?,
                    store_dir: r.get(1)?,
                    want_mass_query: r.get::<_, i64>(2)? != 0,
                    priority: r.get::<_, i64>(3)?.max(0) as u64,
                })
            },
        )
        .optional()
        .ok()
        .flatten()
    }

    /// Records the `nix-cache-info` of the cache at `uri`; returns its id.
    pub fn create_cache(&self, uri: &str, store_dir: &str, want_mass_query: bool, priority: u64) -> Option<i64> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.execute(
            "insert or replace into BinaryCaches(url, timestamp, storeDir, wantMassQuery, priority) values (?1, ?2, ?3, ?4, ?5)",
            params![uri, now(), store_dir, want_mass_query as i64, priority as i64],
        )
        .ok()?;
        db.query_row("select id from BinaryCaches where url = ?1", params![uri], |r| r.get(0)).ok()
    }

    /// What the cache `cache_id` said of the path with `hash_part`:
    /// `None` if nothing fresh is known, `Some(None)` if it lacks the path.
    pub fn lookup(&self, cache_id: i64, hash_part: &str) -> Option<Option<NarInfo>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let now = now();
        type Row = (
            i64,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let row: Row = db
            .query_row(
                "select present, namePart, url, compression, fileHash, fileSize, narHash, narSize, refs, deriver, sigs, ca \
                 from NARs where cache = ?1 and hashPart = ?2 and \
                 ((present = 0 and timestamp > ?3) or (present = 1 and timestamp > ?4))",
                params![cache_id, hash_part, now - self.ttl.negative, now - self.ttl.positive],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                    ))
                },
            )
            .optional()
            .ok()??;
        let (present, name, url, compression, file_hash, file_size, nar_hash, nar_size, refs, deriver, sigs, ca) = row;
        if present == 0 {
            return Some(None);
        }
        // A row we cannot read is treated as unknown: the network decides.
        let parse_path = |base: &str| StorePath::from_base_name(base).ok();
        let store_path = parse_path(&format!("{hash_part}-{}", name?))?;
        let mut info = NarInfo {
            store_path,
            url: url?,
            compression: compression.filter(|c| !c.is_empty()).unwrap_or_else(|| "bzip2".into()),
            file_hash: match file_hash {
                Some(h) => Some(Hash::parse_any(&h, None).ok()?),
                None => None,
            },
            file_size: file_size.unwrap_or(0).max(0) as u64,
            nar_hash: Hash::parse_any(&nar_hash?, None).ok()?,
            nar_size: nar_size.unwrap_or(0).max(0) as u64,
            references: Default::default(),
            deriver: None,
            system: String::new(),
            signatures: Default::default(),
            ca: ContentAddress::parse_opt(ca.as_deref().unwrap_or("")).ok()?,
        };
        for reference in refs.unwrap_or_default().split(' ').filter(|r| !r.is_empty()) {
            info.references.insert(parse_path(reference)?);
        }
        if let Some(deriver) = deriver.filter(|d| !d.is_empty()) {
            info.deriver = Some(parse_path(&deriver)?);
        }
        info.signatures = sigs.unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(String::from).collect();
        Some(Some(info))
    }

    /// Remembers what the cache `cache_id` said of `hash_part`.
    pub fn upsert(&self, cache_id: i64, hash_part: &str, info: Option<&NarInfo>) {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let now = now();
        let _ = match info {
            None => db.execute(
                "insert or replace into NARs(cache, hashPart, timestamp, present) values (?1, ?2, ?3, 0)",
                params![cache_id, hash_part, now],
            ),
            Some(info) => {
                let refs: Vec<&str> = info.references.iter().map(|r| r.base_name()).collect();
                let sigs: Vec<&str> = info.signatures.iter().map(String::as_str).collect();
                db.execute(
                    "insert or replace into NARs(cache, hashPart, namePart, url, compression, fileHash, fileSize, \
                     narHash, narSize, refs, deriver, sigs, ca, timestamp, present) \
                     values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1)",
                    params![
                        cache_id,
                        hash_part,
                        info.store_path.name(),
                        info.url,
                        info.compression,
                        info.file_hash.as_ref().map(|h| format!("{}:{}", h.algorithm(), h.to_nix32())),
                        (info.file_size != 0).then_some(info.file_size as i64),
                        format!("{}:{}", info.nar_hash.algorithm(), info.nar_hash.to_nix32()),
                        info.nar_size as i64,
                        refs.join(" "),
                        info.deriver.as_ref().map(|d| d.base_name().to_string()),
                        sigs.join(" "),
                        info.ca.as_ref().map(ToString::to_string).unwrap_or_default(),
                        now,
                    ],
                )
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NarInfo {
        let text = "StorePath: /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello\n\
                    URL: nar/0bbb.nar.xz\nCompression: xz\n\
                    FileHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s\nFileSize: 120\n\
                    NarHash: sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73\nNarSize: 400\n\
                    References: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-dep\n\
                    Deriver: cccccccccccccccccccccccccccccccc-hello.drv\n\
                    Sig: cache.example.org-1:c2lnbmF0dXJl\n";
        NarInfo::parse(&nivis_formats::StoreDir::new("/nix/store").unwrap(), text).unwrap()
    }

    #[test]
    fn entries_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nix/binary-cache-v6.sqlite");
        let cache = NarInfoDiskCache::open(&path, NarInfoCacheTtl::default()).unwrap();
        assert_eq!(cache.cache_info("http://example.org"), None);
        let id = cache.create_cache("http://example.org", "/nix/store", true, 40).unwrap();
        let known = cache.cache_info("http://example.org").unwrap();
        assert_eq!((known.id, known.want_mass_query, known.priority), (id, true, 40));

        assert_eq!(cache.lookup(id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), None);
        let info = sample();
        cache.upsert(id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Some(&info));
        cache.upsert(id, "dddddddddddddddddddddddddddddddd", None);
        let mut expected = info.clone();
        expected.system = String::new(); // not kept, as in CppNix
        assert_eq!(cache.lookup(id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), Some(Some(expected)));
        assert_eq!(cache.lookup(id, "dddddddddddddddddddddddddddddddd"), Some(None));

        // With no time to live, nothing is fresh.
        let stale = NarInfoDiskCache::open(&path, NarInfoCacheTtl { negative: -1, positive: -1 }).unwrap();
        assert_eq!(stale.lookup(id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(stale.lookup(id, "dddddddddddddddddddddddddddddddd"), None);
    }

    #[test]
    fn a_file_that_is_not_a_database_means_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binary-cache-v6.sqlite");
        std::fs::write(&path, b"this is not sqlite, just bytes that are long enough to be read").unwrap();
        assert!(NarInfoDiskCache::open(&path, NarInfoCacheTtl::default()).is_none());
    }
}
