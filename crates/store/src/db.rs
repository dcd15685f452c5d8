//! The store database: CppNix 2.8's SQLite schema (version 10), byte for byte the
//! same tables, indexes and trigger, the same pragmas, the same NULL conventions
//! (a missing deriver, zero narSize, false `ultimate`, no signatures and no CA are
//! stored as NULL), so either implementation can read what the other wrote.
//!
//! The schema text below was written to reproduce exactly what `sqlite3 .schema`
//! shows for a database CppNix 2.8 created (whitespace and comments included, since
//! SQLite keeps the text verbatim in `sqlite_master`).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::error::StoreError;

/// CppNix's `nixSchemaVersion`, written (without a newline) to `db/schema`.
pub const SCHEMA_VERSION: u32 = 10;

/// The tables of schema version 10.
pub const SCHEMA_SQL: &str = r#"create table if not exists ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null,
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null implies "false"
    sigs             text, -- space-separated
    ca               text -- if not null, an assertion that the path is content-addressed; see ValidPathInfo
);

create table if not exists Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);

create index if not exists IndexReferrer on Refs(referrer);
create index if not exists IndexReference on Refs(reference);

-- Paths can refer to themselves, causing a tuple (x, x) in the Refs
-- table.  This causes a deletion of the corresponding row in
-- ValidPaths to cause a foreign key constraint violation (due to `on
-- delete restrict' on the `reference' column).  Therefore, explicitly
-- get rid of self-references.
create trigger if not exists DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;

create table if not exists DerivationOutputs (
    drv  integer not null,
    id   text not null, -- symbolic output id, usually "out"
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);

create index if not exists IndexDerivationOutputs on DerivationOutputs(path);
"#;

/// One row of `ValidPaths`, as stored (paths as printed strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRow {
    pub id: i64,
    pub path: String,
    /// `sha256:<base16>`.
    pub hash: String,
    pub registration_time: i64,
    pub deriver: Option<String>,
    pub nar_size: Option<u64>,
    pub ultimate: bool,
    pub sigs: Vec<String>,
    pub ca: Option<String>,
}

/// What to insert for one path.
#[derive(Debug, Clone)]
pub struct NewPathRow<'a> {
    pub path: &'a str,
    pub hash: &'a str,
    pub registration_time: i64,
    pub deriver: Option<&'a str>,
    pub nar_size: u64,
    pub ultimate: bool,
    pub sigs: &'a [String],
    pub ca: Option<&'a str>,
}

fn sql_error(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Database { context: context.to_string(), error: e }
}

/// Opens (creating when `create`) the database file and applies CppNix's pragmas.
pub fn open(db_path: &Path, create: bool, read_only: bool) -> Result<Connection, StoreError> {
    let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if read_only {
        flags |= OpenFlags::SQLITE_OPEN_READ_ONLY;
    } else {
        flags |= OpenFlags::SQLITE_OPEN_READ_WRITE;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
    }
    let context = format!("opening the store database '{}'", db_path.display());
    let conn = Connection::open_with_flags(db_path, flags).map_err(sql_error(&context))?;
    // CppNix waits up to an hour for a busy database rather than failing.
    conn.busy_timeout(Duration::from_secs(60 * 60)).map_err(sql_error(&context))?;
    conn.execute_batch("pragma foreign_keys = 1;").map_err(sql_error(&context))?;
    if !read_only {
        // "normal" is CppNix's default (fsync-metadata = true).
        conn.execute_batch("pragma synchronous = normal;").map_err(sql_error(&context))?;
        let mode: String = conn
            .query_row("pragma main.journal_mode;", [], |r| r.get(0))
            .map_err(sql_error(&context))?;
        if mode != "wal" {
            conn.query_row("pragma main.journal_mode = wal;", [], |_| Ok(()))
                .map_err(sql_error(&context))?;
        }
        // Large enough that registering a big closure costs one fsync.
        conn.query_row("pragma wal_autocheckpoint = 40000;", [], |_| Ok(()))
            .map_err(sql_error(&context))?;
    }
    if create {
        conn.execute_batch(SCHEMA_SQL).map_err(sql_error("creating the store schema"))?;
    }
    Ok(conn)
}

const ROW_COLUMNS: &str =
    "id, path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca";

fn row_to_path_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<PathRow> {
    let sigs: Option<String> = row.get(7)?;
    let nar_size: Option<i64> = row.get(5)?;
    let deriver: Option<String> = row.get(4)?;
    Ok(PathRow {
        id: row.get(0)?,
        path: row.get(1)?,
        hash: row.get(2)?,
        registration_time: row.get(3)?,
        // CppNix reads an empty deriver as "none" too.
        deriver: deriver.filter(|d| !d.is_empty()),
        nar_size: nar_size.map(|n| n as u64),
        ultimate: row.get::<_, Option<i64>>(6)?.unwrap_or(0) != 0,
        sigs: sigs
            .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        ca: row.get::<_, Option<String>>(8)?.filter(|c| !c.is_empty()),
    })
}

pub fn query_path(conn: &Connection, path: &str) -> Result<Option<PathRow>, StoreError> {
    conn.prepare_cached(&format!("select {ROW_COLUMNS} from ValidPaths where path = ?"))
        .and_then(|mut s| s.query_row([path], row_to_path_row).optional())
        .map_err(sql_error("querying path info"))
}

pub fn path_id(conn: &Connection, path: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("select id from ValidPaths where path = ?")
        .and_then(|mut s| s.query_row([path], |r| r.get(0)).optional())
        .map_err(sql_error("querying path validity"))
}

pub fn all_paths(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached("select path from ValidPaths")
        .map_err(sql_error("listing valid paths"))?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql_error("listing valid paths"))?;
    Ok(rows)
}

pub fn references(conn: &Connection, id: i64) -> Result<Vec<String>, StoreError> {
    strings(
        conn,
        "select path from Refs join ValidPaths on reference = id where referrer = ?",
        id,
        "querying references",
    )
}

pub fn referrers(conn: &Connection, path: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "select path from Refs join ValidPaths on referrer = id \
             where reference = (select id from ValidPaths where path = ?)",
        )
        .map_err(sql_error("querying referrers"))?;
    stmt.query_map([path], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql_error("querying referrers"))
}

pub fn valid_derivers(conn: &Connection, output_path: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "select v.path from DerivationOutputs d join ValidPaths v on d.drv = v.id \
             where d.path = ?",
        )
        .map_err(sql_error("querying derivers"))?;
    stmt.query_map([output_path], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql_error("querying derivers"))
}

pub fn derivation_outputs(
    conn: &Connection,
    drv_id: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn
        .prepare_cached("select id, path from DerivationOutputs where drv = ?")
        .map_err(sql_error("querying derivation outputs"))?;
    stmt.query_map([drv_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql_error("querying derivation outputs"))
}

fn strings(conn: &Connection, sql: &str, id: i64, context: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error(context))?;
    stmt.query_map([id], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(sql_error(context))
}

/// Inserts a new row and returns its id (CppNix's `addValidPath`).
pub fn insert_path(conn: &Connection, row: &NewPathRow<'_>) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "insert into ValidPaths (path, hash, registrationTime, deriver, narSize, ultimate, sigs, ca) \
         values (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.path,
            row.hash,
            row.registration_time,
            row.deriver,
            (row.nar_size != 0).then_some(row.nar_size as i64),
            row.ultimate.then_some(1i64),
            (!row.sigs.is_empty()).then(|| row.sigs.join(" ")),
            row.ca,
        ])
    })
    .map_err(sql_error("registering a valid path"))?;
    Ok(conn.last_insert_rowid())
}

/// Updates the mutable fields of an existing row (CppNix's `updatePathInfo`).
pub fn update_path(conn: &Connection, row: &NewPathRow<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(
        "update ValidPaths set narSize = ?, hash = ?, ultimate = ?, sigs = ?, ca = ? where path = ?",
    )
    .and_then(|mut s| {
        s.execute(params![
            (row.nar_size != 0).then_some(row.nar_size as i64),
            row.hash,
            row.ultimate.then_some(1i64),
            (!row.sigs.is_empty()).then(|| row.sigs.join(" ")),
            row.ca,
            row.path,
        ])
    })
    .map_err(sql_error("updating path info"))?;
    Ok(())
}

pub fn set_sigs(conn: &Connection, path: &str, sigs: &[String]) -> Result<(), StoreError> {
    conn.prepare_cached("update ValidPaths set sigs = ? where path = ?")
        .and_then(|mut s| s.execute(params![(!sigs.is_empty()).then(|| sigs.join(" ")), path]))
        .map_err(sql_error("updating signatures"))?;
    Ok(())
}

pub fn insert_reference(conn: &Connection, referrer: i64, reference: i64) -> Result<(), StoreError> {
    conn.prepare_cached("insert or replace into Refs (referrer, reference) values (?, ?)")
        .and_then(|mut s| s.execute(params![referrer, reference]))
        .map_err(sql_error("registering references"))?;
    Ok(())
}

pub fn insert_derivation_output(
    conn: &Connection,
    drv_id: i64,
    output_name: &str,
    output_path: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("insert or replace into DerivationOutputs (drv, id, path) values (?, ?, ?)")
        .and_then(|mut s| s.execute(params![drv_id, output_name, output_path]))
        .map_err(sql_error("registering derivation outputs"))?;
    Ok(())
}

pub fn delete_path(conn: &Connection, path: &str) -> Result<(), StoreError> {
    conn.prepare_cached("delete from ValidPaths where path = ?")
        .and_then(|mut s| s.execute([path]))
        .map_err(sql_error("invalidating a path"))?;
    Ok(())
}

pub fn update_hash(conn: &Connection, path: &str, hash: &str, nar_size: u64) -> Result<(), StoreError> {
    conn.prepare_cached("update ValidPaths set hash = ?, narSize = ? where path = ?")
        .and_then(|mut s| s.execute(params![hash, (nar_size != 0).then_some(nar_size as i64), path]))
        .map_err(sql_error("updating a path's hash"))?;
    Ok(())
}
