//! Asynchronous invocations: an event is committed to the store before the
//! client hears 202, then run by workers within the concurrency limits,
//! retried on function error with growing delays, and kept waiting while
//! throttled, until its maximum age. After a crash, events whose run was
//! cut short are leased again and run again with the same request id.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mayfly_store::{now_ms, Enqueued, Event, Store};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::dispatch::Dispatcher;
use crate::error::{blocking, HostError, HostResult};
use crate::job::{Completed, InvocationKind, Job};
use crate::names::{function_arn, parse_function, DEFAULT_REGION};
use crate::settings::AsyncSettings;
use crate::source::{Source, SourceFuture};

/// How long a worker holds an event: beyond the longest timeout (900 s)
/// plus boot, so a live run is never taken over.
const LEASE_MS: u64 = 16 * 60 * 1000;
/// How long a throttled event waits before trying again.
const THROTTLE_RETRY_MS: u64 = 500;
/// How long the receipt of a pushed event is kept: a sender retrying
/// within a day is recognised (Ceph RGW retries a persistent topic's push
/// until it is answered).
pub const RECEIPTS_KEPT_MS: u64 = 24 * 60 * 60 * 1000;
/// Events claimed per round.
const CLAIM_BATCH: usize = 8;
/// The longest the worker sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// The durable queue of async events, and the source that runs them.
#[derive(Debug)]
pub struct AsyncQueue {
    store: Store,
    /// Woken when an event is queued.
    ready: Notify,
    /// The first retry delay of a failed event.
    retry_base_delay: Duration,
    /// Events waiting per function, at most.
    max_per_function: u32,
}

impl AsyncQueue {
    /// The queue in `store`, holding at most `max_per_function` events of
    /// each function; failed events are first retried after
    /// `retry_base_delay`.
    pub fn new(store: Store, retry_base_delay: Duration, max_per_function: u32) -> Arc<AsyncQueue> {
        Arc::new(AsyncQueue {
            store,
            ready: Notify::new(),
            retry_base_delay,
            max_per_function,
        })
    }

    /// Tells the workers that events were queued (by another writer than
    /// [`accept`](Self::accept): the schedules).
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Commits an event; the caller answers 202 only after this returns.
    /// When the function has its most events queued already, nothing is
    /// queued: [`HostError::Overloaded`].
    pub async fn accept(
        &self,
        request_id: &str,
        function: &str,
        qualifier: &str,
        payload: Bytes,
    ) -> HostResult<()> {
        let event = Event::new(request_id, function, qualifier, payload, now_ms());
        self.commit(event, |store, event, max| {
            Ok(if store.enqueue_event_within(event, max)? {
                Enqueued::Queued
            } else {
                Enqueued::Full
            })
        })
        .await
        .map(|_| ())
    }

    /// Commits a pushed event once per `receipt` (a push retried by its
    /// sender after a lost answer is recognised for [`RECEIPTS_KEPT_MS`]):
    /// `Ok(false)` when the receipt was seen and nothing was queued.
    pub async fn accept_once(
        &self,
        receipt: &str,
        function: &str,
        qualifier: &str,
        payload: Bytes,
    ) -> HostResult<bool> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let event = Event::new(request_id, function, qualifier, payload, now_ms());
        let receipt = receipt.to_string();
        let done = self
            .commit(event, move |store, event, max| {
                store.enqueue_event_once(event, &receipt, max, RECEIPTS_KEPT_MS)
            })
            .await?;
        Ok(done == Enqueued::Queued)
    }

    /// Gives `event` the function's retry and age settings, has `enqueue`
    /// commit it (within the per-function bound it is given), and wakes
    /// the workers; a full queue is [`HostError::Overloaded`].
    async fn commit(
        &self,
        mut event: Event,
        enqueue: impl FnOnce(&Store, &Event, u64) -> mayfly_store::Result<Enqueued> + Send + 'static,
    ) -> HostResult<Enqueued> {
        let store = self.store.clone();
        let max = self.max_per_function;
        let done = blocking("queueing the event", move || {
            let settings = AsyncSettings::lookup(&store, &event.function_name, &event.qualifier);
            event.max_retries = settings.max_retries;
            event.max_age_s = settings.max_age_s;
            match enqueue(&store, &event, u64::from(max))? {
                Enqueued::Full => Err(HostError::Overloaded(format!(
                    "Rate Exceeded: the event queue of function {} is full ({max} events \
                     waiting); try again once it has drained.",
                    event.function_name
                ))),
                done => Ok(done),
            }
        })
        .await?;
        if done == Enqueued::Queued {
            self.ready.notify_one();
        }
        Ok(done)
    }

    /// Sets when the event `id` (tried `attempts` times) is due again.
    async fn retry_at(&self, id: &str, due_ms: u64, attempts: u32) -> HostResult<()> {
        let (store, id) = (self.store.clone(), id.to_string());
        blocking("rescheduling the event", move || {
            Ok(store.retry_event(&id, due_ms, attempts)?)
        })
        .await
    }
}

impl Source for AsyncQueue {
    fn name(&self) -> &'static str {
        "async event queue"
    }

    fn run(self: Arc<Self>, dispatcher: Arc<Dispatcher>) -> SourceFuture {
        Box::pin(worker(self, dispatcher))
    }
}

/// The delay before retry number `attempt` (1-based): Lambda waits about a
/// minute, then two; the base is configurable so tests run in seconds.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    base * 2u32.saturating_pow(attempt.saturating_sub(1))
}

/// Runs queued events until the process ends.
async fn worker(queue: Arc<AsyncQueue>, dispatcher: Arc<Dispatcher>) {
    loop {
        let claimed = {
            let store = queue.store.clone();
            tokio::task::spawn_blocking(move || {
                store.claim_due_events(now_ms(), CLAIM_BATCH, LEASE_MS)
            })
            .await
        };
        let events = match claimed {
            Ok(Ok(events)) => events,
            other => {
                tracing::error!(?other, "cannot read the event queue");
                Vec::new()
            }
        };
        let busy = events.len() == CLAIM_BATCH;
        for event in events {
            tokio::spawn(process(queue.clone(), dispatcher.clone(), event));
        }
        if !busy {
            let _ = tokio::time::timeout(IDLE_POLL, queue.ready.notified()).await;
        }
    }
}

async fn process(queue: Arc<AsyncQueue>, dispatcher: Arc<Dispatcher>, event: Event) {
    let id = event.request_id.clone();
    let attempts = event.attempts;
    if let Err(e) = process_inner(&queue, &dispatcher, event).await {
        // A failure of the host (not of the function): give the event back
        // to the queue for a later try, without counting it as a retry,
        // rather than leave it leased until its lease runs out.
        let delay = retry_delay(queue.retry_base_delay, 1);
        tracing::error!(request_id = %id, error = %e, ?delay, "event processing failed; it will be tried again");
        let due = now_ms() + delay.as_millis() as u64;
        if let Err(e) = queue.retry_at(&id, due, attempts).await {
            tracing::error!(error = %e, "cannot release the event; it runs again when its lease ends");
        }
    }
}

async fn process_inner(
    queue: &AsyncQueue,
    dispatcher: &Dispatcher,
    event: Event,
) -> HostResult<()> {
    let now = now_ms();
    let id = event.request_id.clone();
    if now.saturating_sub(event.enqueued_at_ms) > u64::from(event.max_age_s) * 1000 {
        tracing::warn!(request_id = %id, "event dropped: older than its maximum age");
        let failed = Finish::Failed {
            condition: "EventAgeExceeded",
            completed: None,
        };
        return finish(queue, &event, failed).await;
    }
    let version = match queue
        .store
        .resolve(&event.function_name, Some(&event.qualifier))
    {
        Ok(resolved) => resolved.version,
        Err(e) if e.is_not_found() => {
            tracing::warn!(request_id = %id, function = %event.function_name, "event dropped: function gone");
            return finish(queue, &event, Finish::Dropped).await;
        }
        Err(e) => return Err(e.into()),
    };
    let qualifier = (event.qualifier != mayfly_store::LATEST).then(|| event.qualifier.clone());
    let job = Job::new(
        id.clone(),
        version,
        qualifier.clone(),
        function_arn(DEFAULT_REGION, &event.function_name, qualifier.as_deref()),
        event.payload.clone(),
        InvocationKind::Async,
    );
    let completed = match dispatcher.dispatch(job).await {
        Ok(completed) => completed,
        Err(HostError::Throttled(_)) => {
            return queue
                .retry_at(&id, now_ms() + THROTTLE_RETRY_MS, event.attempts)
                .await;
        }
        Err(e) => return Err(e),
    };
    if !completed.failed() {
        return finish(queue, &event, Finish::Succeeded(completed)).await;
    }
    if event.attempts >= event.max_retries {
        let failed = Finish::Failed {
            condition: "RetriesExhausted",
            completed: Some(completed),
        };
        return finish(queue, &event, failed).await;
    }
    let attempts = event.attempts + 1;
    let delay = retry_delay(queue.retry_base_delay, attempts);
    tracing::info!(request_id = %id, attempts, ?delay, "event failed; retrying");
    queue
        .retry_at(&id, now_ms() + delay.as_millis() as u64, attempts)
        .await
}

/// How an event's processing ended for good.
enum Finish {
    /// The function answered.
    Succeeded(Completed),
    /// Retries or age ran out.
    Failed {
        condition: &'static str,
        completed: Option<Completed>,
    },
    /// Nothing to report to (the function is gone).
    Dropped,
}

/// Completes the event and, in the same transaction, queues the invocation
/// record for its destination, if one is configured for that outcome.
async fn finish(queue: &AsyncQueue, event: &Event, how: Finish) -> HostResult<()> {
    let settings = AsyncSettings::lookup(&queue.store, &event.function_name, &event.qualifier);
    let (destination, condition, completed) = match &how {
        Finish::Succeeded(c) => (settings.on_success, "Success", Some(c)),
        Finish::Failed {
            condition,
            completed,
        } => (settings.on_failure, *condition, completed.as_ref()),
        Finish::Dropped => (None, "", None),
    };
    let mut follow_up = Vec::new();
    if let Some(arn) = destination {
        match parse_function(&arn, None) {
            Ok(target) => {
                let record = invocation_record(event, condition, completed);
                let qualifier = target
                    .qualifier
                    .unwrap_or_else(|| mayfly_store::LATEST.to_string());
                let payload = serde_json::to_vec(&record).unwrap_or_default();
                let mut next = Event::new(
                    uuid::Uuid::new_v4().to_string(),
                    target.name,
                    qualifier,
                    payload,
                    now_ms(),
                );
                let target_settings =
                    AsyncSettings::lookup(&queue.store, &next.function_name, &next.qualifier);
                next.max_retries = target_settings.max_retries;
                next.max_age_s = target_settings.max_age_s;
                follow_up.push(next);
            }
            Err(e) => {
                tracing::warn!(destination = %arn, error = %e, "destination is not a function")
            }
        }
    }
    let id = event.request_id.clone();
    let queued = !follow_up.is_empty();
    let store = queue.store.clone();
    blocking("completing the event", move || {
        Ok(store
            .complete_event_and_enqueue(&id, &follow_up)
            .map(|_| ())?)
    })
    .await?;
    if queued {
        queue.ready.notify_one();
    }
    Ok(())
}

/// Lambda's invocation record, as sent to a destination.
fn invocation_record(event: &Event, condition: &str, completed: Option<&Completed>) -> Value {
    let payload = |bytes: &[u8]| {
        serde_json::from_slice::<Value>(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into()))
    };
    let timestamp = mayfly_store::format_rfc3339(now_ms());
    let mut record = json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn(DEFAULT_REGION, &event.function_name, Some(&event.qualifier)),
            "condition": condition,
            "approximateInvokeCount": event.attempts + u32::from(completed.is_some()),
        },
        "requestPayload": payload(&event.payload),
    });
    if let Some(completed) = completed {
        let mut context = json!({ "statusCode": 200, "executedVersion": completed.version });
        if completed.failed() {
            context["functionError"] = json!("Unhandled");
        }
        record["responseContext"] = context;
        record["responsePayload"] = payload(&completed.payload());
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double() {
        let base = Duration::from_secs(60);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(60));
        assert_eq!(retry_delay(base, 2), Duration::from_secs(120));
    }
}
