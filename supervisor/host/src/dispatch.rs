//! The one dispatch path: every invocation, whatever produced it (a sync
//! invoke, an async event, and every later trigger), goes through
//! [`Dispatcher::dispatch`]. It chooses, in one place, between a warm VM
//! of provisioned concurrency, a concurrency slot for a fresh VM, and a
//! throttle; then runs the invocation in its own task, records it and
//! feeds the metrics.

use std::path::PathBuf;
use std::sync::Arc;

use mayfly_runner::linux::{InitializationType, LinuxBoot};
use mayfly_runner::{EgressPlan, RunError, RunRequest, Runner, WarmVm};
use mayfly_store::{now_ms, InvocationRecord, Store};
use tokio::sync::oneshot;

use crate::admission::{Admission, Slot};
use crate::error::{HostError, HostResult};
use crate::images::ImageCache;
use crate::job::{Completed, InvocationKind, Job};
use crate::launch;
use crate::metrics::{Metrics, Observation};
use crate::records;
use crate::warm::WarmPools;

/// Runs invocations within the limits.
#[derive(Debug)]
pub struct Dispatcher {
    store: Store,
    images: ImageCache,
    runner: Arc<dyn Runner>,
    admission: Arc<Admission>,
    pools: Arc<WarmPools>,
    metrics: Arc<Metrics>,
    /// What VMs may reach beyond their runtime API (the host's rules).
    egress: Arc<EgressPlan>,
}

impl Dispatcher {
    /// A dispatcher over these parts.
    pub fn new(
        store: Store,
        images: ImageCache,
        runner: Arc<dyn Runner>,
        admission: Arc<Admission>,
        pools: Arc<WarmPools>,
        metrics: Arc<Metrics>,
        egress: Arc<EgressPlan>,
    ) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            store,
            images,
            runner,
            admission,
            pools,
            metrics,
            egress,
        })
    }

    /// Runs `job`: on a warm VM of its qualifier's provisioned concurrency
    /// if one is ready, else on a fresh VM if a concurrency slot is free,
    /// else not at all ([`HostError::Throttled`]). Dropping the returned
    /// future (the client went away) kills the VM.
    pub async fn dispatch(&self, job: Job) -> HostResult<Completed> {
        let name = &job.version.name;
        if let Some(warm) = self
            .pools
            .take(name, job.qualifier.as_deref(), &job.version)
        {
            let (vm, slot, refill) = warm.into_parts();
            // The replacement boots once this invocation is over, not
            // during it: on a small host a boot beside the invocation slows
            // the very latency provisioned concurrency is for.
            let _refill = refill;
            return self.run_on(job, slot, Some(vm)).await;
        }
        match self.admission.try_acquire(name, job.settings.memory_mb)? {
            Ok(slot) => self.run_on(job, slot, None).await,
            Err(throttle) => {
                self.metrics.throttled(name);
                // A throttled async event goes back to its queue and is
                // recorded when it runs; a sync caller is answered now.
                if job.kind == InvocationKind::Sync {
                    let record = records::unran(
                        &job,
                        "throttled",
                        Some("TooManyRequestsException"),
                        now_ms(),
                    );
                    records::insert(&self.store, record).await;
                }
                Err(HostError::Throttled(throttle))
            }
        }
    }

    /// Runs the job in its own task, holding `slot` until the VM is gone.
    async fn run_on(
        &self,
        job: Job,
        slot: Slot,
        warm: Option<Box<dyn WarmVm>>,
    ) -> HostResult<Completed> {
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        // Pinned before its image is looked up, until the VM is gone.
        let pin = self.images.pin(&job.version.code_sha256);
        let (image, linux) = match warm {
            // A warm VM has its image loaded already.
            Some(_) => (PathBuf::new(), None),
            None => {
                let prepared = self.images.prepare(&job.version.code_sha256).await?;
                launch::boot_target(
                    prepared,
                    &job.settings,
                    &job.version.version,
                    InitializationType::OnDemand,
                )
            }
        };
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        let runner = self.runner.clone();
        let egress = launch::egress_plan(&self.store, &self.egress, &job.version.name);
        let task = tokio::spawn(async move {
            let boot = (image, linux, egress);
            let result = run_in_task(store, metrics, runner, boot, job, cancel_rx, warm).await;
            drop(slot);
            drop(pin);
            result
        });
        let result = task.await;
        // Reached only if this future was not dropped: nothing to cancel.
        drop(cancel_tx);
        result.map_err(|e| HostError::task("the invocation task", e))?
    }
}

async fn run_in_task(
    store: Store,
    metrics: Arc<Metrics>,
    runner: Arc<dyn Runner>,
    (image, linux, egress): (PathBuf, Option<LinuxBoot>, EgressPlan),
    job: Job,
    cancel: oneshot::Receiver<()>,
    warm: Option<Box<dyn WarmVm>>,
) -> HostResult<Completed> {
    let started_at = now_ms();
    metrics.running_vms_add(1);
    // `run_on` holds the sender while it waits: when its future is dropped
    // (the client went away), the sender goes with it and this resolves.
    let cancelled = Box::pin(async move {
        let _ = cancel.await;
    });
    let timeout = job.settings.timeout();
    let result = match warm {
        Some(vm) => {
            let (id, arn) = (job.request_id.clone(), job.invoked_arn.clone());
            let stream = job.stream.clone();
            vm.deliver(job.payload.clone(), id, arn, timeout, stream, cancelled)
                .await
        }
        None => {
            let request = RunRequest {
                image,
                linux,
                event: job.payload.clone(),
                memory_mb: job.settings.memory_mb,
                timeout,
                env: job.settings.env.clone(),
                function_name: job.version.name.clone(),
                function_version: job.version.version.clone(),
                invoked_arn: job.invoked_arn.clone(),
                request_id: job.request_id.clone(),
                egress: Some(egress),
                stream: job.stream.clone(),
            };
            runner.run(request, cancelled).await
        }
    };
    metrics.running_vms_add(-1);
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            let status = if matches!(e, RunError::Cancelled) {
                "cancelled"
            } else {
                "failed"
            };
            tracing::warn!(request_id = %job.request_id, error = %e, "invocation did not run to its end");
            let record = InvocationRecord {
                log: e.to_string(),
                ..records::unran(&job, status, Some("Mayfly.HostError"), started_at)
            };
            records::insert(&store, record).await;
            return Err(HostError::Run(e));
        }
    };
    let framed_log = records::frame_log(&job, &outcome);
    metrics.observe(
        &job.version.name,
        Observation {
            error: outcome.result.error_type().is_some(),
            duration_s: outcome.duration.as_secs_f64(),
            init_duration_s: outcome.init_duration.map(|d| d.as_secs_f64()),
            billed_ms: outcome.billed_duration_ms,
            memory_mb: job.settings.memory_mb,
            egress_sent_bytes: outcome.egress_sent_bytes,
            egress_received_bytes: outcome.egress_received_bytes,
        },
    );
    records::insert(
        &store,
        records::ran(&job, &outcome, &framed_log, started_at),
    )
    .await;
    Ok(Completed {
        outcome,
        version: job.version.version,
        framed_log,
    })
}
