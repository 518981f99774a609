//! The database schema and its migrations, applied at open.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each
//! migration runs in its own transaction together with the bump of
//! `user_version`, so a crash during a migration leaves the previous schema.

use std::time::Duration;

use rusqlite::Connection;

use crate::{Result, StoreError};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The migrations, in order; migration `i` brings the schema from version `i`
/// to `i + 1`. Never edit one that has shipped: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE functions (
    name                 TEXT PRIMARY KEY NOT NULL,
    -- the number the next published version gets; never reused while the
    -- function exists (Lambda restarts at 1 when it is re-created)
    next_version         INTEGER NOT NULL DEFAULT 1,
    reserved_concurrency INTEGER,
    created_ms           INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE versions (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    -- 0 for $LATEST, n for version "n": orders $LATEST first
    version_num   INTEGER NOT NULL,
    version       TEXT NOT NULL,
    config        TEXT NOT NULL,
    code_sha256   TEXT NOT NULL,
    code_size     INTEGER NOT NULL,
    revision_id   TEXT NOT NULL,
    created       TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, version_num)
) WITHOUT ROWID;
CREATE INDEX versions_by_code ON versions(code_sha256);

CREATE TABLE aliases (
    function_name    TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    function_version TEXT NOT NULL,
    description      TEXT NOT NULL,
    routing_config   TEXT,
    revision_id      TEXT NOT NULL,
    PRIMARY KEY (function_name, name)
) WITHOUT ROWID;

CREATE TABLE event_invoke_configs (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    qualifier     TEXT NOT NULL,
    config        TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, qualifier)
) WITHOUT ROWID;

CREATE TABLE provisioned_configs (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    qualifier     TEXT NOT NULL,
    requested     INTEGER NOT NULL,
    allocated     INTEGER NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, qualifier)
) WITHOUT ROWID;

-- invocation records outlive their function on purpose (no foreign key)
CREATE TABLE invocations (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id         TEXT NOT NULL,
    function_name      TEXT NOT NULL,
    version            TEXT NOT NULL,
    invocation_type    TEXT NOT NULL,
    status             TEXT NOT NULL,
    error_type         TEXT,
    started_at_ms      INTEGER NOT NULL,
    duration_ms        REAL NOT NULL,
    billed_duration_ms INTEGER NOT NULL,
    init_duration_ms   REAL,
    memory_size_mb     INTEGER NOT NULL,
    max_memory_used_mb INTEGER NOT NULL,
    log                TEXT NOT NULL
);
CREATE INDEX invocations_by_function ON invocations(function_name, seq);
CREATE INDEX invocations_by_request ON invocations(request_id);

-- the durable asynchronous event queue; a row is deleted when the event is
-- done. lease_until_ms is set while a worker runs it.
CREATE TABLE events (
    request_id         TEXT PRIMARY KEY NOT NULL,
    function_name      TEXT NOT NULL,
    qualifier          TEXT NOT NULL,
    payload            BLOB NOT NULL,
    enqueued_at_ms     INTEGER NOT NULL,
    attempts           INTEGER NOT NULL,
    next_attempt_at_ms INTEGER NOT NULL,
    max_age_s          INTEGER NOT NULL,
    max_retries        INTEGER NOT NULL,
    lease_until_ms     INTEGER,
    meta               TEXT NOT NULL
);
CREATE INDEX events_due ON events(next_attempt_at_ms, enqueued_at_ms);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 2: the queue is bounded per function, so it is counted per function.
    r#"
CREATE INDEX events_by_function ON events(function_name);
"#,
    // 3: tags, per function (Lambda tags a function, not its versions or
    // aliases); they go with the function.
    r#"
CREATE TABLE tags (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (function_name, key)
) WITHOUT ROWID;
"#,
    // 4: bytes an invocation moved through egress.
    r#"
ALTER TABLE invocations ADD COLUMN egress_sent_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE invocations ADD COLUMN egress_received_bytes INTEGER NOT NULL DEFAULT 0;
"#,
    // 5: function URLs (one per function and qualifier, `$LATEST` or an
    // alias, found by their id) and resource-policy statements (per function
    // and qualifier, '' for the function itself).
    r#"
CREATE TABLE function_urls (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    qualifier     TEXT NOT NULL,
    url_id        TEXT NOT NULL UNIQUE,
    config        TEXT NOT NULL,
    created       TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, qualifier)
) WITHOUT ROWID;

CREATE TABLE permissions (
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    qualifier     TEXT NOT NULL,
    statement_id  TEXT NOT NULL,
    statement     TEXT NOT NULL,
    added_ms      INTEGER NOT NULL,
    PRIMARY KEY (function_name, qualifier, statement_id)
) WITHOUT ROWID;
"#,
    // 6: schedules (EventBridge Scheduler's), kept as the API's JSON with
    // the next fire time (nominal, and due: nominal plus the flexible
    // window's offset), NULL when disabled or none is left.
    r#"
CREATE TABLE schedules (
    group_name   TEXT NOT NULL,
    name         TEXT NOT NULL,
    config       TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    modified_ms  INTEGER NOT NULL,
    next_fire_ms INTEGER,
    due_ms       INTEGER,
    PRIMARY KEY (group_name, name)
) WITHOUT ROWID;
CREATE INDEX schedules_due ON schedules(due_ms);
"#,
    // 7: event-source mappings, kept as the API's JSON with their state.
    r#"
CREATE TABLE event_source_mappings (
    uuid          TEXT PRIMARY KEY NOT NULL,
    function_name TEXT NOT NULL REFERENCES functions(name) ON DELETE CASCADE,
    config        TEXT NOT NULL,
    modified_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_source_mappings_by_function ON event_source_mappings(function_name);
"#,
    // 8: receipts of pushed events (object-store notifications): a push
    // retried after its answer was lost is recognised and not queued
    // twice, for as long as its receipt is kept.
    r#"
CREATE TABLE event_receipts (
    receipt     TEXT PRIMARY KEY NOT NULL,
    received_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX event_receipts_by_age ON event_receipts(received_ms);
"#,
];

/// How long a connection waits for a lock held by another connection
/// (another process on the same directory) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the connection's pragmas: WAL, full synchronous commits, foreign
/// keys, the busy timeout.
pub(crate) fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(())
}

/// Brings the schema up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    let found = user_version(conn).map_err(|e| e.in_op("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = index as u32 + 1;
        let apply = |conn: &mut Connection| -> Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
            // Another process may have migrated meanwhile.
            if user_version(&tx)? >= to {
                return Ok(());
            }
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", to)?;
            tx.commit()?;
            Ok(())
        };
        apply(conn).map_err(|e| e.in_op("migrating the schema"))?;
    }
    Ok(())
}

/// The schema version recorded in the database.
pub(crate) fn user_version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(crate::to_u32(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as a build of schema version `version` left it (2: the
    /// last one without tags).
    fn database_at(version: usize) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for sql in &MIGRATIONS[..version] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", version as u32)
            .unwrap();
        conn
    }

    #[test]
    fn version_2_gains_tags_and_keeps_its_functions() {
        let mut conn = database_at(2);
        conn.execute(
            "INSERT INTO functions (name, created_ms) VALUES ('f', 1)",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let kept: i64 = conn
            .query_row("SELECT COUNT(*) FROM functions WHERE name = 'f'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, 1);
        conn.execute(
            "INSERT INTO tags (function_name, key, value) VALUES ('f', 'k', 'v')",
            [],
        )
        .unwrap();
        // A tag needs its function, and goes with it.
        assert!(conn
            .execute(
                "INSERT INTO tags (function_name, key, value) VALUES ('g', 'k', 'v')",
                [],
            )
            .is_err());
        conn.execute("DELETE FROM functions WHERE name = 'f'", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM tags", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        // Migrating again changes nothing.
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
    }
}
