//! The durable queue of asynchronous (`Event`) invocations.
//!
//! An event is committed to disk before [`Store::enqueue_event`] returns, so
//! the server may answer 202 right after. A worker claims due events with
//! [`Store::claim_due_events`], which gives each a lease; the event is
//! removed by [`Store::complete_event_and_enqueue`] or rescheduled by
//! [`Store::retry_event`]. An event whose lease runs out (its worker died,
//! or the whole server was killed) is due again: delivery is at least once,
//! with the same request id. At start-up [`Store::recover_after_restart`]
//! ends every lease at once, since the process that held them is gone.

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::{
    change_one, json_text, parse_json, query_rows, to_i64, to_u32, to_u64, Kind, Result, Store,
    StoreError,
};

/// Lambda's default `MaximumEventAgeInSeconds`.
pub const DEFAULT_MAX_AGE_S: u32 = 21_600;
/// Lambda's default `MaximumRetryAttempts`.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// What [`Store::enqueue_event_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Committed.
    Queued,
    /// Its receipt was seen: queued before, not again.
    Duplicate,
    /// The function has its most events queued: nothing was.
    Full,
}

/// An asynchronous invocation waiting in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The request id (the queue's key; the same at every attempt).
    pub request_id: String,
    /// The function to invoke.
    pub function_name: String,
    /// `$LATEST`, a version number or an alias name.
    pub qualifier: String,
    /// The payload (shared: the queue hands it on without a copy).
    pub payload: Bytes,
    /// When it was accepted, milliseconds since the Unix epoch.
    pub enqueued_at_ms: u64,
    /// Attempts that ended in a function error so far (the server's count).
    pub attempts: u32,
    /// Not to be run before this time (ms since the epoch).
    pub next_attempt_at_ms: u64,
    /// `MaximumEventAgeInSeconds` in force for this event.
    pub max_age_s: u32,
    /// `MaximumRetryAttempts` in force for this event.
    pub max_retries: u32,
    /// While a worker holds it: when its lease ends. Set by the store.
    pub lease_until_ms: Option<u64>,
    /// Whatever else the server keeps with the event (client context, the
    /// record of a destination invocation, the last error...); `Null` when
    /// nothing.
    pub meta: Value,
}

impl Event {
    /// A new event due at once, with Lambda's default age and retry limits.
    pub fn new(
        request_id: impl Into<String>,
        function_name: impl Into<String>,
        qualifier: impl Into<String>,
        payload: impl Into<Bytes>,
        now_ms: u64,
    ) -> Event {
        Event {
            request_id: request_id.into(),
            function_name: function_name.into(),
            qualifier: qualifier.into(),
            payload: payload.into(),
            enqueued_at_ms: now_ms,
            attempts: 0,
            next_attempt_at_ms: now_ms,
            max_age_s: DEFAULT_MAX_AGE_S,
            max_retries: DEFAULT_MAX_RETRIES,
            lease_until_ms: None,
            meta: Value::Null,
        }
    }
}

const COLUMNS: &str = "request_id, function_name, qualifier, payload, enqueued_at_ms, attempts,
    next_attempt_at_ms, max_age_s, max_retries, lease_until_ms, meta";

fn read_event(row: &Row<'_>) -> Result<Event> {
    Ok(Event {
        request_id: row.get(0)?,
        function_name: row.get(1)?,
        qualifier: row.get(2)?,
        payload: Bytes::from(row.get::<_, Vec<u8>>(3)?),
        enqueued_at_ms: to_u64(row.get(4)?),
        attempts: to_u32(row.get(5)?),
        next_attempt_at_ms: to_u64(row.get(6)?),
        max_age_s: to_u32(row.get(7)?),
        max_retries: to_u32(row.get(8)?),
        lease_until_ms: row.get::<_, Option<i64>>(9)?.map(to_u64),
        meta: parse_json("event metadata", &row.get::<_, String>(10)?)?,
    })
}

/// How many events of `function_name` are queued, in `conn`'s view.
fn queued(conn: &Connection, function_name: &str) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM events WHERE function_name = ?1",
        [function_name],
        |r| r.get(0),
    )?;
    Ok(crate::to_u64(n))
}

pub(crate) fn insert(conn: &Connection, event: &Event) -> Result<()> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM events WHERE request_id = ?1",
            [&event.request_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists {
        return Err(StoreError::AlreadyExists {
            kind: Kind::Event,
            name: event.request_id.clone(),
        });
    }
    conn.execute(
        &format!(
            "INSERT INTO events ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10)"
        ),
        params![
            event.request_id,
            event.function_name,
            event.qualifier,
            &event.payload[..],
            to_i64(event.enqueued_at_ms),
            event.attempts,
            to_i64(event.next_attempt_at_ms),
            event.max_age_s,
            event.max_retries,
            json_text("event metadata", &event.meta)?
        ],
    )?;
    Ok(())
}

impl Store {
    /// Adds an event to the queue; it is on disk when this returns
    /// ([`StoreError::AlreadyExists`] when its request id is queued already).
    /// `lease_until_ms` is ignored: a new event is not in flight.
    pub fn enqueue_event(&self, event: &Event) -> Result<()> {
        self.write("enqueueing an event", |tx| insert(tx, event))
    }

    /// [`enqueue_event`](Self::enqueue_event) unless the function has
    /// `max_per_function` events queued already (counted in the same
    /// transaction); `Ok(false)` when it has.
    pub fn enqueue_event_within(&self, event: &Event, max_per_function: u64) -> Result<bool> {
        self.write("enqueueing an event", |tx| {
            if queued(tx, &event.function_name)? >= max_per_function {
                return Ok(false);
            }
            insert(tx, event)?;
            Ok(true)
        })
    }

    /// [`enqueue_event_within`](Self::enqueue_event_within) once per
    /// `receipt`: an event whose receipt was seen in the last `keep_ms` is
    /// not queued again ([`Enqueued::Duplicate`]). The receipt is kept in
    /// the same transaction as the event; receipts older than `keep_ms`
    /// are forgotten.
    pub fn enqueue_event_once(
        &self,
        event: &Event,
        receipt: &str,
        max_per_function: u64,
        keep_ms: u64,
    ) -> Result<Enqueued> {
        self.write("enqueueing a pushed event", |tx| {
            let now = to_i64(event.enqueued_at_ms);
            tx.execute(
                "DELETE FROM event_receipts WHERE received_ms < ?1",
                [now.saturating_sub(to_i64(keep_ms))],
            )?;
            let seen: Option<i64> = tx
                .query_row(
                    "SELECT received_ms FROM event_receipts WHERE receipt = ?1",
                    [receipt],
                    |r| r.get(0),
                )
                .optional()?;
            if seen.is_some() {
                return Ok(Enqueued::Duplicate);
            }
            if queued(tx, &event.function_name)? >= max_per_function {
                return Ok(Enqueued::Full);
            }
            insert(tx, event)?;
            tx.execute(
                "INSERT INTO event_receipts (receipt, received_ms) VALUES (?1, ?2)",
                params![receipt, now],
            )?;
            Ok(Enqueued::Queued)
        })
    }

    /// How many events of `function_name` are queued (waiting or running).
    pub fn queued_events(&self, function_name: &str) -> Result<u64> {
        self.read("counting queued events", |conn| queued(conn, function_name))
    }

    /// Claims up to `limit` events due at `now_ms` (not in flight, or whose
    /// lease has run out), oldest due first, and leases them until
    /// `now_ms + lease_ms`. The lease should outlast the invocation (the
    /// function's timeout plus boot); otherwise the event may be claimed
    /// again while it runs.
    pub fn claim_due_events(&self, now_ms: u64, limit: usize, lease_ms: u64) -> Result<Vec<Event>> {
        let until = now_ms.saturating_add(lease_ms);
        self.write("claiming events", |tx| {
            let mut claimed = query_rows(
                tx,
                &format!(
                    "SELECT {COLUMNS} FROM events
                     WHERE next_attempt_at_ms <= ?1 AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)
                     ORDER BY next_attempt_at_ms, enqueued_at_ms LIMIT ?2"
                ),
                params![to_i64(now_ms), to_i64(limit as u64)],
                read_event,
            )?;
            let mut update =
                tx.prepare("UPDATE events SET lease_until_ms = ?2 WHERE request_id = ?1")?;
            for event in &mut claimed {
                update.execute(params![event.request_id, to_i64(until)])?;
                event.lease_until_ms = Some(until);
            }
            Ok(claimed)
        })
    }

    /// Removes a processed event and queues `follow_ups` (for example the
    /// invocation of an `OnSuccess`/`OnFailure` destination; none to just
    /// remove it) in the same transaction, so a crash loses neither and does
    /// not run the event again once its destination is queued. Returns false
    /// when the event was not queued, for example completed already by
    /// another worker after a lease ran out (the follow-ups are queued all
    /// the same).
    pub fn complete_event_and_enqueue(
        &self,
        request_id: &str,
        follow_ups: &[Event],
    ) -> Result<bool> {
        self.write("completing an event", |tx| {
            let n = tx.execute("DELETE FROM events WHERE request_id = ?1", [request_id])?;
            for event in follow_ups {
                insert(tx, event)?;
            }
            Ok(n > 0)
        })
    }

    /// Puts an event in flight back in the queue, due at
    /// `next_attempt_at_ms`, with `attempts` recorded, and ends its lease.
    pub fn retry_event(
        &self,
        request_id: &str,
        next_attempt_at_ms: u64,
        attempts: u32,
    ) -> Result<()> {
        self.write("rescheduling an event", |tx| {
            change_one(
                tx,
                "UPDATE events SET next_attempt_at_ms = ?2, attempts = ?3, lease_until_ms = NULL
                 WHERE request_id = ?1",
                params![request_id, to_i64(next_attempt_at_ms), attempts],
                Kind::Event,
                request_id,
            )
        })
    }

    /// Ends every lease at once: call at start-up, before the workers, since
    /// the process that held them is gone. Returns how many events were in
    /// flight; they are due again (with the same request ids).
    pub fn recover_after_restart(&self) -> Result<u64> {
        self.write("releasing event leases", |tx| {
            let n = tx.execute(
                "UPDATE events SET lease_until_ms = NULL WHERE lease_until_ms IS NOT NULL",
                [],
            )?;
            Ok(n as u64)
        })
    }
}
