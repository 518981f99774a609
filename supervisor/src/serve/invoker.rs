//! Running invocations for the service: concurrency slots, the VM layer,
//! invocation records and metrics, in one place whatever starts the
//! invocation (a sync invoke, an async event).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mayfly_store::{FunctionVersion, InvocationRecord, Store};
use tokio::sync::oneshot;

use super::code::ImageCache;
use super::error::{ApiError, ApiResult};
use super::metrics::{Metrics, Observation};
use super::model::run_settings;
use crate::accel::Accel;
use crate::invoke::{
    self, BootedVm, InvocationOutcome, InvocationRequest, InvocationResult, InvokeError,
};
use crate::report::{self, Report};

/// Bytes of log kept in an invocation record (the end of it).
const RECORD_LOG_BYTES: usize = 256 * 1024;

/// Why an invocation was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The function's reserved concurrency is in use (or is 0).
    Reserved,
    /// The account's unreserved concurrency is in use.
    Account,
}

impl Throttle {
    /// Lambda's `Reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Reserved => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account => "ConcurrentInvocationLimitExceeded",
        }
    }
}

#[derive(Debug, Default)]
struct Slots {
    unreserved: u32,
    per_function: HashMap<String, u32>,
}

/// Runs invocations within the concurrency limits.
#[derive(Debug)]
pub struct Invoker {
    store: Store,
    images: ImageCache,
    accel: Accel,
    max_concurrency: u32,
    slots: Mutex<Slots>,
    /// The metrics every invocation feeds.
    pub metrics: Metrics,
}

/// A held concurrency slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    invoker: Arc<Invoker>,
    function: String,
    reserved: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.invoker.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = slots.per_function.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                slots.per_function.remove(&self.function);
            }
        }
        if !self.reserved {
            slots.unreserved = slots.unreserved.saturating_sub(1);
        }
    }
}

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The request id.
    pub request_id: String,
    /// The version to run.
    pub version: FunctionVersion,
    /// The ARN the client invoked.
    pub invoked_arn: String,
    /// The event.
    pub payload: Vec<u8>,
    /// `RequestResponse` or `Event`.
    pub invocation_type: &'static str,
}

/// A finished invocation.
#[derive(Debug, Clone)]
pub struct Completed {
    /// What the VM layer reported.
    pub outcome: InvocationOutcome,
    /// The version that ran.
    pub version: String,
    /// START, the log, END and REPORT, as Lambda writes them.
    pub framed_log: String,
}

impl Completed {
    /// The body a client gets: the response, or `{"errorType", "errorMessage"}`.
    pub fn payload(&self) -> Vec<u8> {
        match &self.outcome.result {
            InvocationResult::Success(body) => body.clone(),
            other => serde_json::to_vec(&serde_json::json!({
                "errorType": other.error_type(),
                "errorMessage": other.error_message(),
            }))
            .unwrap_or_default(),
        }
    }
}

impl Invoker {
    /// An invoker over `store` allowing `max_concurrency` VMs at once.
    pub fn new(store: Store, images: ImageCache, accel: Accel, max_concurrency: u32) -> Invoker {
        Invoker {
            store,
            images,
            accel,
            max_concurrency,
            slots: Mutex::new(Slots::default()),
            metrics: Metrics::default(),
        }
    }

    /// The account-wide limit on running VMs.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// The accelerator VMs run under.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The bootable image of the package `sha256_hex`, unpacked once.
    pub async fn image(&self, sha256_hex: &str) -> ApiResult<std::path::PathBuf> {
        let (images, store, sha) = (
            self.images.clone(),
            self.store.clone(),
            sha256_hex.to_string(),
        );
        tokio::task::spawn_blocking(move || images.image(&store, &sha))
            .await
            .map_err(|e| ApiError::service(format!("unpacking the image failed: {e}")))?
    }

    /// Takes a slot for `function`, or says which limit refuses it. Never
    /// waits: over the limit is a 429 at once.
    pub fn try_acquire(self: &Arc<Self>, function: &str) -> ApiResult<Result<Slot, Throttle>> {
        let reserved = self.store.get_reserved_concurrency(function)?;
        let total_reserved = self.store.total_reserved_concurrency(None)?;
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let running = slots.per_function.get(function).copied().unwrap_or(0);
        match reserved {
            Some(limit) if running >= limit => return Ok(Err(Throttle::Reserved)),
            Some(_) => {}
            None => {
                let pool = u64::from(self.max_concurrency).saturating_sub(total_reserved);
                if u64::from(slots.unreserved) >= pool {
                    return Ok(Err(Throttle::Account));
                }
                slots.unreserved += 1;
            }
        }
        *slots.per_function.entry(function.to_string()).or_default() += 1;
        Ok(Ok(Slot {
            invoker: self.clone(),
            function: function.to_string(),
            reserved: reserved.is_some(),
        }))
    }

    /// Records a throttled invocation (metrics and record).
    pub async fn record_throttle(&self, job: &Job) {
        self.metrics.throttled(&job.version.name);
        let record = unran_record(job, "throttled", "TooManyRequestsException", String::new());
        self.insert_record(InvocationRecord {
            started_at: mayfly_store::now_ms(),
            ..record
        })
        .await;
    }

    async fn insert_record(&self, record: InvocationRecord) {
        let store = self.store.clone();
        let id = record.request_id.clone();
        let result = tokio::task::spawn_blocking(move || store.insert_invocation(&record)).await;
        if !matches!(result, Ok(Ok(()))) {
            tracing::error!(request_id = %id, ?result, "cannot record the invocation");
        }
    }

    /// Runs the job in its own task, holding `slot` until the VM is gone.
    /// Dropping the returned future (the client went away) kills the VM.
    pub async fn run(self: &Arc<Self>, job: Job, slot: Slot) -> ApiResult<Completed> {
        self.run_on(job, slot, None).await
    }

    /// [`run`](Self::run) on a warm VM (provisioned concurrency) that
    /// `slot` was held for, instead of a freshly booted one.
    pub async fn run_warm(
        self: &Arc<Self>,
        job: Job,
        slot: Slot,
        vm: BootedVm,
    ) -> ApiResult<Completed> {
        self.run_on(job, slot, Some(vm)).await
    }

    async fn run_on(
        self: &Arc<Self>,
        job: Job,
        slot: Slot,
        warm: Option<BootedVm>,
    ) -> ApiResult<Completed> {
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let invoker = self.clone();
        let task = tokio::spawn(async move {
            let result = invoker.run_in_task(job, cancel_rx, warm).await;
            drop(slot);
            result
        });
        let result = task.await;
        // Reached only if this future was not dropped: nothing to cancel.
        drop(cancel_tx);
        result.map_err(|e| ApiError::service(format!("invocation task failed: {e}")))?
    }

    async fn run_in_task(
        &self,
        mut job: Job,
        cancel: oneshot::Receiver<()>,
        warm: Option<BootedVm>,
    ) -> ApiResult<Completed> {
        let settings = run_settings(&job.version.config);
        let image = match warm {
            // A warm VM has its image loaded already.
            Some(_) => std::path::PathBuf::new(),
            None => self.image(&job.version.code_sha256).await?,
        };
        let request = InvocationRequest {
            image,
            // Up to 6 MB, and the job needs it no more: moved, not copied.
            event: std::mem::take(&mut job.payload),
            memory_mb: settings.memory_mb,
            timeout: Duration::from_secs(u64::from(settings.timeout_s)),
            env: settings.env,
            function_name: job.version.name.clone(),
            function_version: job.version.version.clone(),
            invoked_arn: job.invoked_arn.clone(),
            request_id: job.request_id.clone(),
            accel: self.accel,
        };
        let started_at = mayfly_store::now_ms();
        self.metrics.running_vms_add(1);
        // `run` holds the sender while it waits: when its future is dropped
        // (the client went away), the sender goes with it and this resolves.
        let cancelled = async move {
            let _ = cancel.await;
        };
        let result = match warm {
            Some(vm) => {
                let (event, id, arn) = (request.event, &request.request_id, &request.invoked_arn);
                vm.deliver(event, id, arn, request.timeout, cancelled).await
            }
            None => invoke::invoke_until(&request, cancelled).await,
        };
        self.metrics.running_vms_add(-1);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let status = if matches!(e, InvokeError::Cancelled) {
                    "cancelled"
                } else {
                    "failed"
                };
                tracing::warn!(request_id = %job.request_id, error = %e, "invocation did not run to its end");
                let record = unran_record(&job, status, "Mayfly.HostError", e.to_string());
                self.insert_record(InvocationRecord {
                    started_at,
                    ..record
                })
                .await;
                return Err(ApiError::service(format!(
                    "the invocation could not run: {e}"
                )));
            }
        };
        let framed_log = frame_log(&job, &outcome, settings.memory_mb);
        let status = match &outcome.result {
            InvocationResult::Success(_) => "success",
            InvocationResult::Timeout { .. } => "timeout",
            InvocationResult::FunctionError { .. } | InvocationResult::ExitError(_) => "error",
        };
        self.metrics.observe(
            &job.version.name,
            Observation {
                error: status != "success",
                duration_s: outcome.duration.as_secs_f64(),
                init_duration_s: outcome.init_duration.map(|d| d.as_secs_f64()),
                billed_ms: outcome.billed_duration_ms,
                memory_mb: settings.memory_mb,
            },
        );
        let log_start = framed_log.len().saturating_sub(RECORD_LOG_BYTES);
        let log_start = (log_start..framed_log.len())
            .find(|i| framed_log.is_char_boundary(*i))
            .unwrap_or(0);
        self.insert_record(InvocationRecord {
            status: status.into(),
            error_type: outcome.result.error_type().map(str::to_string),
            started_at,
            duration_ms: outcome.duration.as_secs_f64() * 1000.0,
            billed_duration_ms: outcome.billed_duration_ms,
            init_duration_ms: outcome.init_duration.map(|d| d.as_secs_f64() * 1000.0),
            max_memory_used_mb: outcome.max_memory_used_mb as u32,
            log: framed_log[log_start..].to_string(),
            ..unran_record(&job, "", "", String::new())
        })
        .await;
        Ok(Completed {
            outcome,
            version: job.version.version.clone(),
            framed_log,
        })
    }
}

/// The record of an invocation of `job` that did not run (yet): no
/// timings; the caller sets what it knows.
fn unran_record(job: &Job, status: &str, error_type: &str, log: String) -> InvocationRecord {
    InvocationRecord {
        request_id: job.request_id.clone(),
        function_name: job.version.name.clone(),
        version: job.version.version.clone(),
        invocation_type: job.invocation_type.to_string(),
        status: status.into(),
        error_type: Some(error_type.into()).filter(|t: &String| !t.is_empty()),
        started_at: 0,
        duration_ms: 0.0,
        billed_duration_ms: 0,
        init_duration_ms: None,
        memory_size_mb: run_settings(&job.version.config).memory_mb,
        max_memory_used_mb: 0,
        log,
    }
}

/// START, the log, END and REPORT, as Lambda writes them.
fn frame_log(job: &Job, outcome: &InvocationOutcome, memory_mb: u32) -> String {
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
        memory_size_mb: memory_mb,
        max_memory_used_mb: outcome.max_memory_used_mb,
        init_duration: outcome.init_duration,
    }));
    text.push('\n');
    text
}
