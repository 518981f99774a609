//! Mayfly's embedded store: the state of `mayfly serve` under one data
//! directory.
//!
//! ```text
//! <data-dir>/              mode 0700 when the store creates it
//!   mayfly.db              SQLite, WAL mode (+ mayfly.db-wal, mayfly.db-shm)
//!   blobs/<hex[0..2]>/<hex> package zips, content-addressed by SHA-256
//!   blobs/tmp/             blobs being written (emptied at open)
//!   reserve                space given up so that deletes work on a full
//!                          disk (see `space`)
//! ```
//!
//! The database holds functions and their versions (the API layer's
//! `FunctionConfiguration` JSON beside the indexed columns), their tags,
//! aliases, reserved and provisioned concurrency, event-invoke
//! configurations, invocation records and the durable asynchronous event
//! queue.
//!
//! # Durability
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: every method that writes
//! commits one transaction and that commit is on disk (fsynced) before the
//! method returns, so an acknowledged write survives `kill -9` and power loss.
//! Blobs are written to a temporary file, fsynced, renamed to their final
//! name, and the directory is fsynced: a crash never leaves a partial blob
//! under its final name.
//!
//! # Concurrency
//!
//! [`Store`] is `Clone + Send + Sync`; clones share one SQLite connection
//! behind a mutex, so every method is one short, serialised transaction.
//! Every method is synchronous and blocking: reads take microseconds, but a
//! write waits for an fsync (typically 0.1–10 ms, more on a busy disk), and
//! blob methods do file I/O proportional to the package size. From async code
//! call the writing methods, [`Store::put_blob`], [`Store::read_blob`] and
//! [`Store::gc_blobs`] through `tokio::task::spawn_blocking`; quick reads
//! (`get_*`, `resolve`, `list_*`) may be called directly.
//!
//! One `mayfly serve` process should own a data directory at a time: SQLite
//! keeps several processes consistent, but [`Store::recover_after_restart`]
//! assumes that no other live process holds event leases.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod aliases;
mod blobs;
mod concurrency;
mod error;
mod event_configs;
mod events;
mod functions;
mod invocations;
mod mappings;
mod permissions;
mod qualified;
mod schedules;
mod schema;
mod space;
mod tags;
mod time;
mod urls;
mod versions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, Params, Row, ToSql, Transaction, TransactionBehavior};

pub use aliases::{Alias, AliasUpdate};
pub use blobs::{BlobRef, GcReport};
pub use concurrency::{ProvisionedConfig, ProvisionedStatus};
pub use error::{Kind, Result, StoreError};
pub use event_configs::EventInvokeConfig;
pub use events::{Enqueued, Event, DEFAULT_MAX_AGE_S, DEFAULT_MAX_RETRIES};
pub use functions::{FunctionVersion, LATEST};
pub use invocations::InvocationRecord;
pub use mappings::Mapping;
pub use schedules::{FireTime, ScheduleRow};
pub use schema::SCHEMA_VERSION;
pub use space::{io_is_disk_full, RESERVE_BYTES, RESERVE_FILE};
pub use tags::Tags;
pub use time::{format_rfc3339, format_timestamp, now_ms, parse_timestamp_ms};
pub use urls::FunctionUrl;
pub use versions::{Resolved, PUBLISH_IGNORED_KEYS};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "mayfly.db";

/// The embedded store. Cheap to clone; clones share the same connection.
///
/// See the [crate documentation](crate) for durability and for which
/// methods to call from `spawn_blocking`.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    dir: PathBuf,
    /// Invocation records kept per function.
    records_per_function: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// Creates the directory (mode 0700), the database and the blob
    /// directories, migrates the schema to [`SCHEMA_VERSION`], and removes
    /// half-written blobs left by a crash.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        create_private_dir(&dir)?;
        blobs::prepare(&dir)?;
        let db_path = dir.join(DB_FILE);
        let mut conn = Connection::open(&db_path).map_err(|source| StoreError::Sqlite {
            op: "opening the database",
            source,
        })?;
        schema::configure(&conn).map_err(|e| e.in_op("configuring the database"))?;
        schema::migrate(&mut conn)?;
        space::use_incremental_vacuum(&conn)
            .map_err(|e| e.in_op("turning on incremental vacuum"))?;
        space::ensure_reserve(&dir)?;
        Ok(Store {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                dir,
                records_per_function: std::sync::atomic::AtomicU64::new(
                    invocations::DEFAULT_RECORDS_PER_FUNCTION,
                ),
            }),
        })
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `f` in one immediate (write-locking) transaction and commits it.
    /// Database errors are named after `op`.
    pub(crate) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        };
        run(&mut conn).map_err(|e| e.in_op(op))
    }

    /// [`write`](Self::write) for a delete, which must work on a full disk:
    /// when the disk is full, the reserve is given up and `f` tried once
    /// more.
    pub(crate) fn write_freeing<T>(
        &self,
        op: &'static str,
        f: impl Fn(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.write(op, &f) {
            Err(e) if e.is_disk_full() => {
                let reserve = self.dir().join(space::RESERVE_FILE);
                if std::fs::remove_file(&reserve).is_err() {
                    return Err(e);
                }
                tracing::warn!(op, "the disk is full: the reserve is given up for a delete");
                self.write(op, f)
            }
            other => other,
        }
    }

    /// Runs `f` on the connection (one statement or a read transaction).
    pub(crate) fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.lock();
        f(&conn).map_err(|e| e.in_op(op))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock drops (rolls back) its transaction,
        // so the connection is still consistent: carry on.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Creates `dir` and its parents; a directory the store creates gets mode
/// 0700 because the host keeps its credentials there too. An existing one
/// that others may enter is made 0700 when this process owns it, and
/// refused otherwise.
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return space::make_private(dir);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::io(format!("creating data directory {}", dir.display()), e))
}

/// Converts a count to SQLite's integer type.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Converts SQLite's integer to a count (negative values read as 0).
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Converts SQLite's integer to a 32-bit count (clamped).
pub(crate) fn to_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// Runs a statement that changes (or deletes) one row; fails with
/// [`StoreError::NotFound`] for `kind` and `name` when it changes none.
pub(crate) fn change_one(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    kind: Kind,
    name: &str,
) -> Result<()> {
    if conn.execute(sql, params)? == 0 {
        return Err(StoreError::not_found(kind, name));
    }
    Ok(())
}

/// Runs a query and reads each row with `read`.
pub(crate) fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut read: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        values.push(read(row)?);
    }
    Ok(values)
}

/// Runs a query and reads its first row with `read`; `None` when it has no
/// row.
pub(crate) fn query_opt<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    read: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query(params)?;
    rows.next()?.map(read).transpose()
}

/// Reads one page of a listing, at most `max_items` rows (1 to 10 000;
/// asking for 0 gets 1): `sql` ends in `LIMIT ?n`, `?n` being the parameter
/// after `args`. Returns the page and, when more rows follow, the key of its
/// last row, which is the marker of the next page.
pub(crate) fn query_page<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    max_items: usize,
    read: impl FnMut(&Row<'_>) -> Result<T>,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>)> {
    let max = max_items.clamp(1, 10_000);
    // one row more than the page only says that a next page exists
    let limit = to_i64(max as u64 + 1);
    let mut params: Vec<&dyn ToSql> = args.to_vec();
    params.push(&limit);
    let mut rows = query_rows(conn, sql, params.as_slice(), read)?;
    if rows.len() > max {
        rows.truncate(max);
        let next = rows.last().map(&key);
        Ok((rows, next))
    } else {
        Ok((rows, None))
    }
}

/// Reads a JSON column.
pub(crate) fn parse_json(what: &'static str, text: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|source| StoreError::Json { what, source })
}

/// Writes a JSON column.
pub(crate) fn json_text(what: &'static str, value: &serde_json::Value) -> Result<String> {
    serde_json::to_string(value).map_err(|source| StoreError::Json { what, source })
}

/// A new revision id (a random UUID, as Lambda's).
pub(crate) fn new_revision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
