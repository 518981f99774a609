//! Asynchronous invocations: an event is committed to the store before the
//! client hears 202, then run by workers within the concurrency limits,
//! retried on function error with growing delays, and kept waiting while
//! throttled, until its maximum age. After a crash, events whose run was
//! cut short are leased again and run again with the same request id.

use std::time::Duration;

use mayfly_store::{now_ms, Event};

use super::error::ApiResult;
use super::invoker::Job;
use super::names::{function_arn, DEFAULT_REGION};
use super::{blocking, AppState, SharedState};

/// How long a worker holds an event: beyond the longest timeout (900 s)
/// plus boot, so a live run is never taken over.
const LEASE_MS: u64 = 16 * 60 * 1000;
/// How long a throttled event waits before trying again.
const THROTTLE_RETRY_MS: u64 = 500;
/// Events claimed per round.
const CLAIM_BATCH: usize = 8;
/// The longest the worker sleeps without looking at the queue.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Commits an event; the caller answers 202 only after this returns.
pub async fn accept(
    state: &SharedState,
    request_id: &str,
    function: &str,
    qualifier: &str,
    payload: Vec<u8>,
) -> ApiResult<()> {
    let event = Event::new(request_id, function, qualifier, payload, now_ms());
    blocking(state, move |state: &AppState| {
        Ok(state.store.enqueue_event(&event)?)
    })
    .await?;
    state.events_ready.notify_one();
    Ok(())
}

/// The delay before retry number `attempt` (1-based): Lambda waits about a
/// minute, then two; the base is configurable so tests run in seconds.
pub fn retry_delay(base: Duration, attempt: u32) -> Duration {
    base * 2u32.saturating_pow(attempt.saturating_sub(1))
}

/// Runs queued events until the process ends.
pub async fn worker(state: SharedState) {
    loop {
        let claimed = {
            let store = state.store.clone();
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
            tokio::spawn(process(state.clone(), event));
        }
        if !busy {
            let _ = tokio::time::timeout(IDLE_POLL, state.events_ready.notified()).await;
        }
    }
}

async fn process(state: SharedState, event: Event) {
    let id = event.request_id.clone();
    if let Err(e) = process_inner(&state, event).await {
        tracing::error!(request_id = %id, error = %e.message, "event processing failed; it will be retried");
    }
}

async fn process_inner(state: &SharedState, event: Event) -> ApiResult<()> {
    let now = now_ms();
    let id = event.request_id.clone();
    let complete = |state: &SharedState| {
        let id = id.clone();
        let state = state.clone();
        async move {
            blocking(&state, move |state: &AppState| {
                Ok(state.store.complete_event(&id).map(|_| ())?)
            })
            .await
        }
    };
    if now.saturating_sub(event.enqueued_at_ms) > u64::from(event.max_age_s) * 1000 {
        tracing::warn!(request_id = %id, "event dropped: older than its maximum age");
        return complete(state).await;
    }
    let version = match state
        .store
        .resolve(&event.function_name, Some(&event.qualifier))
    {
        Ok(resolved) => resolved.version,
        Err(e) if e.is_not_found() => {
            tracing::warn!(request_id = %id, function = %event.function_name, "event dropped: function gone");
            return complete(state).await;
        }
        Err(e) => return Err(e.into()),
    };
    let qualifier = (event.qualifier != mayfly_store::LATEST).then_some(event.qualifier.as_str());
    let job = Job {
        request_id: id.clone(),
        invoked_arn: function_arn(DEFAULT_REGION, &event.function_name, qualifier),
        version,
        payload: event.payload.clone(),
        invocation_type: "Event",
    };
    let slot = match state.invoker.try_acquire(&job.version.name)? {
        Ok(slot) => slot,
        Err(_) => {
            state.invoker.metrics.throttled(&job.version.name);
            let attempts = event.attempts;
            return blocking(state, move |state: &AppState| {
                Ok(state
                    .store
                    .retry_event(&id, now_ms() + THROTTLE_RETRY_MS, attempts)?)
            })
            .await;
        }
    };
    let completed = state.invoker.run(job, slot).await?;
    if completed.outcome.result.error_type().is_none() || event.attempts >= event.max_retries {
        return complete(state).await;
    }
    let attempts = event.attempts + 1;
    let delay = retry_delay(state.retry_base_delay, attempts);
    tracing::info!(request_id = %id, attempts, ?delay, "event failed; retrying");
    blocking(state, move |state: &AppState| {
        Ok(state
            .store
            .retry_event(&id, now_ms() + delay.as_millis() as u64, attempts)?)
    })
    .await
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
