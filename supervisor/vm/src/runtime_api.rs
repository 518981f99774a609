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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use mayfly_proto::runtime::{self, Route};
use serde_json::Value;

/// Largest request body accepted: Lambda's 6 MB payload limit plus room for
/// an error envelope around a payload-sized message.
pub const MAX_BODY_BYTES: usize = mayfly_proto::limits::SYNC_PAYLOAD_BYTES + 64 * 1024;
/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Answers with a body up to this size go out as one chunk with their head.
const SMALL_BODY_BYTES: usize = 4096;

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
    /// The guest posted its result.
    Finished {
        /// When the complete request had arrived.
        at: Instant,
        /// What it posted.
        result: GuestResult,
    },
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
}

impl RuntimeApi {
    /// A server for `invocation`, waiting for the first `next`.
    pub fn new(invocation: Invocation) -> RuntimeApi {
        RuntimeApi {
            invocation: Some(invocation),
            phase: Phase::AwaitingNext,
            events: Vec::new(),
        }
    }

    /// A server with no event yet (a warm VM): the first `next` is held
    /// until [`deliver`](Self::deliver).
    pub fn without_event() -> RuntimeApi {
        RuntimeApi {
            invocation: None,
            phase: Phase::AwaitingNext,
            events: Vec::new(),
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

    /// Whether a held `next` can now be answered.
    fn can_answer_held(&self) -> bool {
        self.phase == Phase::Holding && self.invocation.is_some()
    }

    /// Events since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<ApiEvent> {
        std::mem::take(&mut self.events)
    }

    fn handle(&mut self, head: &Head, body: Bytes, now: Now) -> Reply {
        if let Some(bytes) = head.max_memory {
            self.events.push(ApiEvent::MaxMemory(bytes));
        }
        match &head.route {
            OwnedRoute::Next => self.next(now),
            OwnedRoute::Response(id) | OwnedRoute::Error(id) => {
                let expected = self.invocation.as_ref().map(|i| i.request_id.as_str());
                if expected != Some(id.as_str()) {
                    return Reply::error(
                        400,
                        "InvalidRequestID",
                        &format!("Invalid request ID: {id}"),
                    );
                }
                if self.phase != Phase::Delivered {
                    return invalid_state();
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
    let error_type = field("errorType")
        .or_else(|| head.error_type.clone())
        .unwrap_or_else(|| "Unhandled".to_owned());
    GuestResult::Error {
        error_type,
        error_message: field("errorMessage").unwrap_or_default(),
        body,
        init,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedRoute {
    Next,
    Response(String),
    Error(String),
    InitError,
    Unknown { method: String, path: String },
}

/// A parsed request head, kept while its body arrives.
#[derive(Debug, Clone)]
struct Head {
    len: usize,
    route: OwnedRoute,
    content_length: usize,
    close: bool,
    error_type: Option<String>,
    max_memory: Option<u64>,
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Error",
    }
}

/// One HTTP/1.1 keep-alive connection to the runtime API.
#[derive(Debug, Default)]
pub struct Connection {
    input: BytesMut,
    head: Option<Head>,
    /// Responses not yet sent, in order: heads and bodies as separate
    /// chunks, so that an event is sent from the caller's buffer.
    output: VecDeque<Bytes>,
    /// Bytes of `output`'s first chunk already sent.
    sent: usize,
    /// A `next` is waiting forever; later requests cannot be answered (HTTP
    /// answers in order), so they are ignored.
    parked: bool,
    /// A `next` is waiting for the event; input is kept until it is
    /// answered.
    held: bool,
    /// Whether the held `next` asked for `Connection: close`.
    held_close: bool,
    /// The connection is being closed: input is ignored.
    closing: bool,
}

impl Connection {
    /// A fresh connection.
    pub fn new() -> Connection {
        Connection::default()
    }

    /// Feeds bytes received from the guest and answers every complete
    /// request.
    pub fn receive(&mut self, api: &mut RuntimeApi, data: &[u8], now: Now) {
        if self.parked || self.closing {
            return;
        }
        self.input.extend_from_slice(data);
        self.process(api, now);
    }

    fn process(&mut self, api: &mut RuntimeApi, now: Now) {
        while !self.parked && !self.held && !self.closing && self.process_one(api, now) {}
    }

    /// Answers this connection's held `next` once the event has been
    /// [delivered](RuntimeApi::deliver), then handles what arrived behind
    /// it; whether it answered.
    pub fn resume(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        if !self.held || !api.can_answer_held() {
            return false;
        }
        self.held = false;
        match api.answer_next(now) {
            Reply::Http {
                status,
                headers,
                body,
            } => self.write_response(status, &headers, body, self.held_close),
            Reply::Never | Reply::Hold => self.parked = true,
        }
        self.process(api, now);
        true
    }

    /// Handles at most one request; whether another may follow in `input`.
    fn process_one(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        if self.head.is_none() {
            match parse_head(&self.input) {
                Ok(None) => {
                    if self.input.len() > MAX_HEAD_BYTES {
                        self.fail(431, "RequestTooLarge", "request head is too large");
                    }
                    return false;
                }
                Ok(Some(head)) => {
                    if head.content_length > MAX_BODY_BYTES {
                        self.fail(
                            413,
                            "RequestTooLarge",
                            &format!(
                                "request body of {} bytes exceeds the limit of {MAX_BODY_BYTES}",
                                head.content_length
                            ),
                        );
                        return false;
                    }
                    // Room for the whole request at once: a 6 MB body
                    // arriving in segments is not copied as the buffer grows.
                    self.input
                        .reserve((head.len + head.content_length).saturating_sub(self.input.len()));
                    self.head = Some(head);
                }
                Err((status, message)) => {
                    self.fail(status, "InvalidRequest", message);
                    return false;
                }
            }
        }
        let head = self.head.as_ref().expect("head parsed above");
        let end = head.len + head.content_length;
        if self.input.len() < end {
            return false;
        }
        let head = self.head.take().expect("head parsed above");
        // The request leaves the buffer without a copy: its body is handed
        // on as is.
        let body = self.input.split_to(end).freeze().slice(head.len..);
        let reply = api.handle(&head, body, now);
        match reply {
            Reply::Never => self.parked = true,
            Reply::Hold => {
                self.held = true;
                self.held_close = head.close;
            }
            Reply::Http {
                status,
                headers,
                body,
            } => self.write_response(status, &headers, body, head.close),
        }
        true
    }

    fn fail(&mut self, status: u16, error_type: &str, message: &str) {
        if let Reply::Http { body, .. } = Reply::error(status, error_type, message) {
            self.write_response(status, &[], body, true);
        }
    }

    fn write_response(
        &mut self,
        status: u16,
        headers: &[(&'static str, String)],
        body: Bytes,
        close: bool,
    ) {
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            reason(status),
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            head.push_str("Connection: close\r\n");
            self.closing = true;
            self.input.clear();
        }
        head.push_str("\r\n");
        if body.len() <= SMALL_BODY_BYTES {
            // One segment for a small answer.
            let mut whole = head.into_bytes();
            whole.extend_from_slice(&body);
            self.output.push_back(Bytes::from(whole));
        } else {
            self.output.push_back(Bytes::from(head));
            self.output.push_back(body);
        }
    }

    /// Bytes waiting to be sent: the rest of the first pending chunk (empty
    /// when everything is sent).
    pub fn pending_output(&self) -> &[u8] {
        self.output.front().map_or(&[], |chunk| &chunk[self.sent..])
    }

    /// Marks `n` bytes of [`pending_output`](Self::pending_output) as sent.
    pub fn consume_output(&mut self, n: usize) {
        self.sent += n;
        if self
            .output
            .front()
            .is_some_and(|chunk| self.sent >= chunk.len())
        {
            self.output.pop_front();
            self.sent = 0;
        }
    }

    /// Whether the server side should close: a `Connection: close` was
    /// answered (or an unrecoverable request error) and everything is sent.
    pub fn should_close(&self) -> bool {
        self.closing && self.pending_output().is_empty()
    }
}

/// Parses a request head: `Ok(None)` while incomplete, `Err((status,
/// message))` when malformed or unsupported.
fn parse_head(input: &[u8]) -> Result<Option<Head>, (u16, &'static str)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err((431, "too many headers")),
        Err(_) => return Err((400, "malformed HTTP request")),
    };
    let method = request.method.unwrap_or_default();
    let path = request.path.unwrap_or_default();
    let mut content_length = 0;
    let mut close = request.version == Some(0);
    let mut error_type = None;
    let mut max_memory = None;
    for header in request.headers.iter() {
        let value = std::str::from_utf8(header.value).map(str::trim);
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or((400, "malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err((
                501,
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            match value {
                Ok(v) if v.eq_ignore_ascii_case("close") => close = true,
                Ok(v) if v.eq_ignore_ascii_case("keep-alive") => close = false,
                _ => {}
            }
        } else if name.eq_ignore_ascii_case(runtime::HEADER_FUNCTION_ERROR_TYPE) {
            error_type = value.ok().map(str::to_owned);
        } else if name.eq_ignore_ascii_case(runtime::HEADER_MAX_MEMORY_BYTES) {
            max_memory = value.ok().and_then(|v| v.parse().ok());
        }
    }
    let route = match Route::parse(method, path) {
        Some(Route::Next) => OwnedRoute::Next,
        Some(Route::Response(id)) => OwnedRoute::Response(id.to_owned()),
        Some(Route::Error(id)) => OwnedRoute::Error(id.to_owned()),
        Some(Route::InitError) => OwnedRoute::InitError,
        None => OwnedRoute::Unknown {
            method: method.to_owned(),
            path: path.to_owned(),
        },
    };
    Ok(Some(Head {
        len,
        route,
        content_length,
        close,
        error_type,
        max_memory,
    }))
}

#[cfg(test)]
#[path = "runtime_api_tests.rs"]
mod tests;
