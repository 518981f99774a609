//! Invocation records and logs: START, the function's log, END and REPORT
//! framed as Lambda writes them, and the record kept of every invocation
//! (what `mayfly logs` shows).

use mayfly_runner::report::{self, Report};
use mayfly_runner::{InvocationOutcome, InvocationResult};
use mayfly_store::{InvocationRecord, Store};

use crate::job::Job;

/// Bytes of log kept in an invocation record (the end of it).
const RECORD_LOG_BYTES: usize = 256 * 1024;

/// A record's `status` for how the invocation ended.
pub fn status(result: &InvocationResult) -> &'static str {
    match result {
        InvocationResult::Success(_) => "success",
        InvocationResult::Timeout { .. } => "timeout",
        InvocationResult::FunctionError { .. }
        | InvocationResult::ExitError(_)
        | InvocationResult::OutOfMemory(_) => "error",
    }
}

/// The record of an invocation of `job` that did not run (yet): no
/// timings; the caller sets what it knows.
pub fn unran(
    job: &Job,
    status: &str,
    error_type: Option<&str>,
    started_at: u64,
) -> InvocationRecord {
    InvocationRecord {
        request_id: job.request_id.clone(),
        function_name: job.version.name.clone(),
        version: job.version.version.clone(),
        invocation_type: job.kind.as_str().to_string(),
        status: status.into(),
        error_type: error_type.map(str::to_string),
        started_at,
        duration_ms: 0.0,
        billed_duration_ms: 0,
        init_duration_ms: None,
        memory_size_mb: job.settings.memory_mb,
        max_memory_used_mb: 0,
        log: String::new(),
        egress_sent_bytes: 0,
        egress_received_bytes: 0,
    }
}

/// The record of an invocation that ran, its log capped to its end.
pub fn ran(
    job: &Job,
    outcome: &InvocationOutcome,
    framed_log: &str,
    started_at: u64,
) -> InvocationRecord {
    let log_start = framed_log.len().saturating_sub(RECORD_LOG_BYTES);
    let log_start = (log_start..framed_log.len())
        .find(|i| framed_log.is_char_boundary(*i))
        .unwrap_or(0);
    InvocationRecord {
        duration_ms: outcome.duration.as_secs_f64() * 1000.0,
        billed_duration_ms: outcome.billed_duration_ms,
        init_duration_ms: outcome.init_duration.map(|d| d.as_secs_f64() * 1000.0),
        max_memory_used_mb: outcome.max_memory_used_mb as u32,
        log: framed_log[log_start..].to_string(),
        egress_sent_bytes: outcome.egress_sent_bytes,
        egress_received_bytes: outcome.egress_received_bytes,
        ..unran(
            job,
            status(&outcome.result),
            outcome.result.error_type(),
            started_at,
        )
    }
}

/// Stores `record` off the async workers; a failure is logged, never
/// fatal to the invocation it describes.
pub async fn insert(store: &Store, record: InvocationRecord) {
    let store = store.clone();
    let id = record.request_id.clone();
    let result = tokio::task::spawn_blocking(move || store.insert_invocation(&record)).await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::error!(request_id = %id, ?result, "cannot record the invocation");
    }
}

/// START, the log, END and REPORT, as Lambda writes them.
pub fn frame_log(job: &Job, outcome: &InvocationOutcome) -> String {
    let mut text = report::start_line(&job.request_id, &job.version.version);
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&outcome.log));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    if let Some(error_type) = outcome.result.error_type() {
        if !matches!(outcome.result, InvocationResult::FunctionError { .. }) {
            let message = outcome.result.error_message().unwrap_or_default();
            text.push_str(&format!("{error_type}: {message}\n"));
        }
    }
    text.push_str(&report::end_line(&job.request_id));
    text.push('\n');
    text.push_str(&report::report_line(&Report {
        request_id: &job.request_id,
        duration: outcome.duration,
        billed_duration_ms: outcome.billed_duration_ms,
        memory_size_mb: job.settings.memory_mb,
        max_memory_used_mb: outcome.max_memory_used_mb,
        init_duration: outcome.init_duration,
    }));
    text.push('\n');
    text
}
