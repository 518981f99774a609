//! Invocation records: what `mayfly logs` shows.

use rusqlite::{params, Row};
use serde::Serialize;

use crate::{query_rows, to_i64, to_u32, to_u64, Result, Store};

/// Invocation records kept per function unless
/// [`Store::set_records_per_function`] says otherwise; older ones are
/// deleted when a new one is inserted.
pub const DEFAULT_RECORDS_PER_FUNCTION: u64 = 1000;

/// One invocation's outcome, timings and log. Serialized, it is the wire
/// form of Mayfly's recent-invocations endpoint (camelCase, `startedAt` in
/// RFC 3339), which `mayfly logs` reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRecord {
    /// The request id.
    pub request_id: String,
    /// The function.
    pub function_name: String,
    /// The version that ran (`$LATEST` or a number).
    pub version: String,
    /// `RequestResponse`, `Event` or `DryRun`.
    pub invocation_type: String,
    /// `success`, `error`, `timeout`, `throttled`, ...
    pub status: String,
    /// The function error's type, when there was one.
    pub error_type: Option<String>,
    /// When it started, milliseconds since the Unix epoch.
    #[serde(serialize_with = "rfc3339")]
    pub started_at: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: f64,
    /// The billed duration (rounded up to 1 ms).
    pub billed_duration_ms: u64,
    /// How long the boot that was waited for took; `None` when warm.
    pub init_duration_ms: Option<f64>,
    /// The configured memory.
    pub memory_size_mb: u32,
    /// The peak memory used.
    pub max_memory_used_mb: u32,
    /// Bytes the function sent through egress.
    pub egress_sent_bytes: u64,
    /// Bytes the function received through egress.
    pub egress_received_bytes: u64,
    /// The log (the caller caps its length).
    pub log: String,
}

fn rfc3339<S: serde::Serializer>(ms: &u64, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::format_rfc3339(*ms))
}

const COLUMNS: &str = "request_id, function_name, version, invocation_type, status, error_type,
    started_at_ms, duration_ms, billed_duration_ms, init_duration_ms, memory_size_mb,
    max_memory_used_mb, log, egress_sent_bytes, egress_received_bytes";

fn read_record(row: &Row<'_>) -> Result<InvocationRecord> {
    Ok(InvocationRecord {
        request_id: row.get(0)?,
        function_name: row.get(1)?,
        version: row.get(2)?,
        invocation_type: row.get(3)?,
        status: row.get(4)?,
        error_type: row.get(5)?,
        started_at: to_u64(row.get(6)?),
        duration_ms: row.get(7)?,
        billed_duration_ms: to_u64(row.get(8)?),
        init_duration_ms: row.get(9)?,
        memory_size_mb: to_u32(row.get(10)?),
        max_memory_used_mb: to_u32(row.get(11)?),
        log: row.get(12)?,
        egress_sent_bytes: to_u64(row.get(13)?),
        egress_received_bytes: to_u64(row.get(14)?),
    })
}

impl Store {
    /// Keeps the newest `n` (at least 1) invocation records per function
    /// from the next insert on.
    pub fn set_records_per_function(&self, n: u64) {
        self.inner
            .records_per_function
            .store(n.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Records an invocation, then deletes the function's oldest records
    /// beyond the newest [`DEFAULT_RECORDS_PER_FUNCTION`] (or the number
    /// set).
    pub fn insert_invocation(&self, record: &InvocationRecord) -> Result<()> {
        let keep = to_i64(
            self.inner
                .records_per_function
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        self.write("recording an invocation", |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO invocations ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                ),
                params![
                    record.request_id,
                    record.function_name,
                    record.version,
                    record.invocation_type,
                    record.status,
                    record.error_type,
                    to_i64(record.started_at),
                    record.duration_ms,
                    to_i64(record.billed_duration_ms),
                    record.init_duration_ms,
                    record.memory_size_mb,
                    record.max_memory_used_mb,
                    record.log,
                    to_i64(record.egress_sent_bytes),
                    to_i64(record.egress_received_bytes)
                ],
            )?;
            tx.execute(
                "DELETE FROM invocations WHERE function_name = ?1 AND seq <= (
                     SELECT seq FROM invocations WHERE function_name = ?1
                     ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![record.function_name, keep],
            )?;
            Ok(())
        })
    }

    /// The function's most recent invocation records, newest first, at most
    /// `limit`.
    pub fn list_invocations(
        &self,
        function_name: &str,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>> {
        self.read("listing invocations", |conn| {
            query_rows(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM invocations WHERE function_name = ?1
                     ORDER BY seq DESC LIMIT ?2"
                ),
                params![function_name, to_i64(limit as u64)],
                read_record,
            )
        })
    }
}
