//! The Lambda Runtime API (2018-06-01) server for one invocation, as a pure
//! state machine: bytes in, bytes out, events for the invocation. The
//! network module feeds it from TCP sockets; tests feed it directly.
//!
//! One VM lives for one event: the first `next` gets the event, a second
//! `next` is never answered (the guest should have powered off), and the
//! first posted response or error ends the invocation.
//!
//! A warm VM is booted before its event exists ([`RuntimeApi::without_event`]):
//! its first `next` is held unanswered ([`ApiEvent::Waiting`]) until
//! [`RuntimeApi::deliver`] gives the event and the connection holding it
//! is resumed ([`Connection::resume`]).
//!
//! The guest is not trusted. What it can make the host hold is bounded: a
//! connection is not read while an answer to it is unsent (so a guest that
//! pipelines requests and never reads meets TCP's back-pressure, not a
//! growing buffer), one request at a time is buffered, within
//! [`MAX_HEAD_BYTES`] and [`MAX_BODY_BYTES`], and the memory it reports is
//! clamped to the VM's. Ambiguous framing, a request id that is not the
//! current one, or a limit broken ends the invocation with a
//! [`Violation`] ([`ApiEvent::Violated`]) after answering the request.

use std::time::{Duration, Instant};

use bytes::Bytes;

use mayfly_proto::runtime;
use serde_json::Value;

mod chunked;
mod connection;
mod parse;

pub use chunked::{MAX_SIZE_LINE_BYTES, MAX_TRAILER_BYTES};
pub use connection::Connection;
pub use parse::{MAX_HEADERS, MAX_HEAD_BYTES};

use parse::{Framing, Head, OwnedRoute};

/// Largest response body accepted: Lambda's 6 MB payload limit.
pub const MAX_RESPONSE_BYTES: usize = mayfly_proto::limits::SYNC_PAYLOAD_BYTES;
/// Largest body of any other request: the payload limit plus room for an
/// error envelope around a payload-sized message.
pub const MAX_BODY_BYTES: usize = MAX_RESPONSE_BYTES + 64 * 1024;
/// Body bytes being received at once over all of a VM's connections: one
/// request of the largest size, and small ones beside it. A runtime sends
/// one body at a time; two large ones at once would double what the host
/// holds for this VM.
pub const MAX_BODY_BYTES_IN_FLIGHT: usize = MAX_BODY_BYTES + 64 * 1024;

/// Longest error type kept from what a guest posts (longer ones are cut).
pub const MAX_ERROR_TYPE_BYTES: usize = 256;

/// Error type of an invocation whose guest broke one of the runtime API's
/// limits (head size, connections, frames).
pub const ERROR_LIMIT: &str = "Runtime.ApiLimitExceeded";
/// Error type of an invocation whose guest sent a request the runtime API
/// refuses: malformed or ambiguous HTTP, or another request id.
pub const ERROR_INVALID_REQUEST: &str = "Runtime.InvalidApiRequest";
/// Error type of an invocation whose response was over the payload limit
/// (Lambda's own).
pub const ERROR_RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
/// Lambda's limit on a streamed response.
pub const MAX_STREAMED_BYTES: usize = 20 * 1024 * 1024;

/// The event this VM is booted for.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event, delivered as the body of `next` (shared, never copied).
    pub event: Bytes,
    /// The function's timeout, from event delivery.
    pub timeout: Duration,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: String,
}

/// An X-Ray style trace id: `Root=1-<8 hex epoch s>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub fn format_trace_id(epoch_secs: u64, root: [u8; 12], parent: [u8; 8]) -> String {
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_secs as u32,
        hex(&root),
        hex(&parent)
    )
}

/// The time, as both clocks see it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic, for durations.
    pub instant: Instant,
    /// Milliseconds since the Unix epoch, for the deadline and the
    /// `Mayfly-Host-Clock-Ms` header.
    pub epoch_ms: u64,
}

impl Now {
    /// The current time.
    pub fn current() -> Now {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Now {
            instant: Instant::now(),
            epoch_ms,
        }
    }
}

/// How the guest ended the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestResult {
    /// `POST invocation/{id}/response`: the function's result.
    Response(Bytes),
    /// `POST invocation/{id}/error` or `POST init/error`.
    Error {
        /// `errorType` from the body, else the error-type header, else
        /// `Unhandled`.
        error_type: String,
        /// `errorMessage` from the body (empty when absent).
        error_message: String,
        /// The body as posted.
        body: Bytes,
        /// Whether it came from `init/error`.
        init: bool,
    },
}

/// Something the invocation needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiEvent {
    /// The first `next` arrived before there was an event to give: it is
    /// held unanswered until [`RuntimeApi::deliver`].
    Waiting {
        /// When.
        at: Instant,
    },
    /// The first `next` arrived and the event was written in answer.
    Delivered {
        /// When.
        at: Instant,
        /// The deadline given to the guest (epoch ms).
        deadline_ms: u64,
    },
    /// The guest reported its memory use (`Mayfly-Max-Memory-Bytes`).
    MaxMemory(u64),
    /// Bytes of a streamed response, as they arrived (its end is
    /// [`ApiEvent::Finished`]).
    ResponseChunk(Bytes),
    /// The guest posted its result.
    Finished {
        /// When the complete request had arrived.
        at: Instant,
        /// What it posted.
        result: GuestResult,
    },
    /// The guest broke a rule or a limit of the runtime API: the
    /// invocation ends with this error.
    Violated(Violation),
}

/// A rule or limit of the runtime API that the guest broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invocation's `errorType`: [`ERROR_LIMIT`],
    /// [`ERROR_INVALID_REQUEST`] or [`ERROR_RESPONSE_TOO_LARGE`].
    pub error_type: &'static str,
    /// What was broken, for a person.
    pub message: String,
}

impl Violation {
    /// A limit broken ([`ERROR_LIMIT`]).
    pub fn limit(message: impl Into<String>) -> Violation {
        Violation {
            error_type: ERROR_LIMIT,
            message: message.into(),
        }
    }
}

/// A request refused: the answer's status, and the violation that ends the
/// invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    status: u16,
    violation: Violation,
}

impl Refusal {
    fn new(status: u16, error_type: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            violation: Violation {
                error_type,
                message: message.into(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingNext,
    /// A `next` arrived with no event to give; its connection waits.
    Holding,
    Delivered,
    Done,
}

/// The server's state for the one invocation, shared by all connections.
#[derive(Debug)]
pub struct RuntimeApi {
    invocation: Option<Invocation>,
    phase: Phase,
    events: Vec<ApiEvent>,
    /// The most memory the guest can have used: what it reports is clamped
    /// to this.
    memory_limit: u64,
    /// The most memory reported so far.
    max_memory: u64,
    /// The guest broke a rule: nothing it says counts any more.
    violated: bool,
    /// Body bytes claimed by requests being received, on all connections.
    in_flight: usize,
}

impl RuntimeApi {
    /// A server for `invocation`, waiting for the first `next`.
    pub fn new(invocation: Invocation) -> RuntimeApi {
        RuntimeApi {
            invocation: Some(invocation),
            phase: Phase::AwaitingNext,
            events: Vec::new(),
            memory_limit: u64::MAX,
            max_memory: 0,
            violated: false,
            in_flight: 0,
        }
    }

    /// A server with no event yet (a warm VM): the first `next` is held
    /// until [`deliver`](Self::deliver).
    pub fn without_event() -> RuntimeApi {
        RuntimeApi {
            invocation: None,
            phase: Phase::AwaitingNext,
            events: Vec::new(),
            memory_limit: u64::MAX,
            max_memory: 0,
            violated: false,
            in_flight: 0,
        }
    }

    /// Gives the event to a server made by [`without_event`](Self::without_event).
    /// A held `next` is answered when its connection is next
    /// [resumed](Connection::resume). Ignored if there is an event already:
    /// a VM serves one event.
    pub fn deliver(&mut self, invocation: Invocation) {
        if self.invocation.is_none() {
            self.invocation = Some(invocation);
        }
    }

    /// Clamps the memory the guest reports to `bytes`, the VM's memory: a
    /// guest cannot have used more, whatever it says.
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.memory_limit = bytes;
    }

    /// Ends the invocation with `violation`, unless it has ended already.
    pub fn violate(&mut self, violation: Violation) {
        if self.phase == Phase::Done {
            return;
        }
        tracing::info!(error_type = violation.error_type, message = %violation.message, "the guest broke the runtime API");
        self.phase = Phase::Done;
        self.violated = true;
        self.events.push(ApiEvent::Violated(violation));
    }

    /// Claims room for `n` more body bytes being received; false (and
    /// nothing claimed) when that would pass [`MAX_BODY_BYTES_IN_FLIGHT`].
    fn claim(&mut self, n: usize) -> bool {
        match self.in_flight.checked_add(n) {
            Some(total) if total <= MAX_BODY_BYTES_IN_FLIGHT => {
                self.in_flight = total;
                true
            }
            _ => false,
        }
    }

    /// Returns what [`claim`](Self::claim) took.
    fn release(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_sub(n);
    }

    /// Body bytes claimed by requests being received.
    pub fn body_bytes_in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the invocation has ended (result posted or rule broken).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether a held `next` can now be answered.
    fn can_answer_held(&self) -> bool {
        self.phase == Phase::Holding && self.invocation.is_some()
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ApiEvent> {
        std::mem::take(&mut self.events)
    }

    /// Whether a streamed `response` may begin: for the current request id,
    /// after delivery. `Err` is the answer that refuses it.
    fn start_stream(&mut self, head: &Head) -> Result<(), Reply> {
        if self.violated {
            return Err(Reply::Never);
        }
        match self.check_post(&head.route) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Hands on bytes of a streamed response.
    fn stream_chunk(&mut self, chunk: Bytes) {
        if !self.violated && !chunk.is_empty() {
            self.events.push(ApiEvent::ResponseChunk(chunk));
        }
    }

    /// Whether a post on `route` is refused: another request id, or not
    /// after delivery.
    fn check_post(&self, route: &OwnedRoute) -> Option<Reply> {
        let (OwnedRoute::Response(id) | OwnedRoute::Error(id)) = route else {
            return None;
        };
        let expected = self.invocation.as_ref().map(|i| i.request_id.as_str());
        if expected != Some(id.as_str()) {
            // A VM serves one event: a post for any other id is never a
            // runtime's honest mistake. The id is the guest's: quoted, and
            // only its start.
            let id: String = id.chars().take(64).collect();
            let message = match expected {
                Some(current) => format!(
                    "the guest posted for request id {id:?}, but the current one is {current}"
                ),
                None => format!("the guest posted for request id {id:?} before it had an event"),
            };
            return Some(Reply::Refuse(Refusal::new(
                400,
                ERROR_INVALID_REQUEST,
                message,
            )));
        }
        if self.phase != Phase::Delivered {
            return Some(invalid_state());
        }
        None
    }

    /// The end of a streamed response: its trailers say whether it failed.
    fn end_stream(&mut self, trailers: &[(String, String)], now: Now) -> Reply {
        if self.violated {
            return Reply::Never;
        }
        let trailer = |name: &str| {
            trailers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let result = match trailer(runtime::HEADER_FUNCTION_ERROR_TYPE) {
            None => GuestResult::Response(Bytes::new()),
            Some(error_type) => {
                use base64::Engine;
                let body = trailer(runtime::HEADER_FUNCTION_ERROR_BODY)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .unwrap_or_default();
                let head = Head {
                    len: 0,
                    route: OwnedRoute::InitError,
                    framing: Framing::Length(0),
                    close: false,
                    error_type: Some(error_type),
                    max_memory: None,
                    streaming: false,
                };
                error_result(&head, Bytes::from(body), false)
            }
        };
        self.finish(now, result)
    }

    fn handle(&mut self, head: &Head, body: Bytes, now: Now) -> Reply {
        if self.violated {
            return Reply::Never;
        }
        if let Some(bytes) = head.max_memory {
            let bytes = bytes.min(self.memory_limit);
            // Only news is an event: a guest repeating itself adds nothing.
            if bytes > self.max_memory {
                self.max_memory = bytes;
                self.events.push(ApiEvent::MaxMemory(bytes));
            }
        }
        match &head.route {
            OwnedRoute::Next => self.next(now),
            OwnedRoute::Response(_) | OwnedRoute::Error(_) => {
                if let Some(refused) = self.check_post(&head.route) {
                    return refused;
                }
                let result = match head.route {
                    OwnedRoute::Response(_) => GuestResult::Response(body),
                    _ => error_result(head, body, false),
                };
                self.finish(now, result)
            }
            OwnedRoute::InitError => {
                if self.phase != Phase::AwaitingNext {
                    return invalid_state();
                }
                self.finish(now, error_result(head, body, true))
            }
            OwnedRoute::Unknown { method, path } => Reply::error(
                404,
                "NotFound",
                &format!("{method} {path} is not part of the runtime API"),
            ),
        }
    }

    fn next(&mut self, now: Now) -> Reply {
        if self.phase != Phase::AwaitingNext {
            // The VM lives for one event; there will never be another.
            return Reply::Never;
        }
        self.answer_next(now)
    }

    /// Answers the first `next`: with the event, or by holding it.
    fn answer_next(&mut self, now: Now) -> Reply {
        let Some(inv) = &self.invocation else {
            self.phase = Phase::Holding;
            self.events.push(ApiEvent::Waiting { at: now.instant });
            return Reply::Hold;
        };
        self.phase = Phase::Delivered;
        let deadline_ms = now.epoch_ms + inv.timeout.as_millis() as u64;
        self.events.push(ApiEvent::Delivered {
            at: now.instant,
            deadline_ms,
        });
        Reply::Http {
            status: 200,
            headers: vec![
                (runtime::HEADER_REQUEST_ID, inv.request_id.clone()),
                (runtime::HEADER_DEADLINE_MS, deadline_ms.to_string()),
                (runtime::HEADER_FUNCTION_ARN, inv.invoked_arn.clone()),
                (runtime::HEADER_TRACE_ID, inv.trace_id.clone()),
                (runtime::HEADER_HOST_CLOCK_MS, now.epoch_ms.to_string()),
            ],
            body: inv.event.clone(),
        }
    }

    fn finish(&mut self, now: Now, result: GuestResult) -> Reply {
        self.phase = Phase::Done;
        self.events.push(ApiEvent::Finished {
            at: now.instant,
            result,
        });
        Reply::Http {
            status: 202,
            headers: Vec::new(),
            body: Bytes::from_static(br#"{"status":"OK"}"#),
        }
    }
}

fn invalid_state() -> Reply {
    Reply::error(
        403,
        "InvalidStateTransition",
        "State transition is not allowed",
    )
}

fn error_result(head: &Head, body: Bytes, init: bool) -> GuestResult {
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut error_type = field("errorType")
        .or_else(|| head.error_type.clone())
        .unwrap_or_else(|| "Unhandled".to_owned());
    // An error type names a kind of error; it is kept in every invocation
    // record, so a guest does not get to make it a payload.
    if error_type.len() > MAX_ERROR_TYPE_BYTES {
        let mut end = MAX_ERROR_TYPE_BYTES;
        while !error_type.is_char_boundary(end) {
            end -= 1;
        }
        error_type.truncate(end);
    }
    GuestResult::Error {
        error_type,
        error_message: field("errorMessage").unwrap_or_default(),
        body,
        init,
    }
}

impl OwnedRoute {
    /// The largest body this request may carry, and the violation when it
    /// carries more.
    fn body_limit(&self) -> usize {
        match self {
            OwnedRoute::Response(_) => MAX_RESPONSE_BYTES,
            _ => MAX_BODY_BYTES,
        }
    }

    fn too_large(&self, size: Option<u64>) -> Refusal {
        let limit = self.body_limit();
        // A chunked body is refused as soon as it passes the limit: its
        // whole size is never known.
        let size = size.map_or_else(String::new, |n| format!(" ({n} bytes)"));
        match self {
            OwnedRoute::Response(_) => Refusal::new(
                413,
                ERROR_RESPONSE_TOO_LARGE,
                format!(
                    "Response payload size{size} exceeded maximum allowed payload size ({limit} bytes)."
                ),
            ),
            _ => Refusal::new(
                413,
                ERROR_LIMIT,
                format!("a runtime API request body{size} exceeds {limit} bytes"),
            ),
        }
    }
}

enum Reply {
    Http {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    /// Park the connection: no answer, ever.
    Never,
    /// Park the connection until the event is delivered.
    Hold,
    /// Answer with an error, close, and end the invocation.
    Refuse(Refusal),
}

impl Reply {
    fn error(status: u16, error_type: &str, message: &str) -> Reply {
        let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
        Reply::Http {
            status,
            headers: Vec::new(),
            body: Bytes::from(body.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "runtime_api_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "runtime_api_abuse_tests.rs"]
mod abuse_tests;
