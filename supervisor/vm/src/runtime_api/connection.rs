//! One keep-alive HTTP/1.1 connection of the runtime API: framing in,
//! answers out, one request at a time.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::chunked::{ChunkError, Chunked};
use super::parse::{parse_head, Framing, Head};
use super::{
    Now, Refusal, Reply, RuntimeApi, ERROR_INVALID_REQUEST, ERROR_LIMIT, MAX_BODY_BYTES_IN_FLIGHT,
    MAX_STREAMED_BYTES,
};

/// An answer's head and up to this much of its body go out as one chunk
/// (one write): a client that reads the head and finds no body with it
/// may give up on the connection (`lambda_runtime`'s hyper opens a new one
/// per event when the head arrives alone; see LINUX-ABI.md). The rest of a
/// larger body is sent from the caller's buffer, never copied.
const COALESCED_BODY_BYTES: usize = 16 * 1024;

/// One HTTP/1.1 keep-alive connection to the runtime API.
///
/// It takes input only while it has nothing left to send
/// ([`wants_input`](Self::wants_input)), and answers one request at a time:
/// so the host buffers at most one request and one answer per connection,
/// however the guest pipelines.
#[derive(Debug, Default)]
pub struct Connection {
    pub(super) input: BytesMut,
    head: Option<Head>,
    /// The body of a chunked request, decoded as it arrives.
    chunked: Option<(Chunked, BytesMut)>,
    /// Responses not yet sent, in order: heads and bodies as separate
    /// chunks, so that an event is sent from the caller's buffer.
    pub(super) output: VecDeque<Bytes>,
    /// Bytes of `output`'s first chunk already sent.
    pub(super) sent: usize,
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
    /// Body bytes this connection has claimed from the VM's budget
    /// ([`RuntimeApi::claim`]).
    claimed: usize,
}

impl Connection {
    /// A fresh connection.
    pub fn new() -> Connection {
        Connection::default()
    }

    /// Whether the connection should be given more input: only when its
    /// answers are all sent and no `next` is held, so that a guest that does
    /// not read what it asked for is slowed by TCP's window rather than
    /// buffered without bound.
    pub fn wants_input(&self) -> bool {
        self.output.is_empty() && !self.held
    }

    /// Feeds bytes received from the guest and answers the first complete
    /// request; the rest waits until that answer is sent
    /// ([`resume`](Self::resume)).
    pub fn receive(&mut self, api: &mut RuntimeApi, data: &[u8], now: Now) {
        if self.parked || self.closing {
            return;
        }
        self.input.extend_from_slice(data);
        self.process(api, now);
    }

    /// Handles requests while there is nothing to send; whether it handled
    /// any.
    fn process(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        let mut handled = false;
        while self.output.is_empty()
            && !self.parked
            && !self.held
            && !self.closing
            && self.process_one(api, now)
        {
            handled = true;
        }
        handled
    }

    /// Answers this connection's held `next` once the event has been
    /// [delivered](RuntimeApi::deliver), and handles the next buffered
    /// request once the last answer is sent; whether it did anything.
    pub fn resume(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        let mut moved = false;
        if self.held && api.can_answer_held() {
            self.held = false;
            moved = true;
            match api.answer_next(now) {
                Reply::Http {
                    status,
                    headers,
                    body,
                } => self.write_response(status, &headers, body, self.held_close),
                Reply::Never | Reply::Hold | Reply::Refuse(_) => self.parked = true,
            }
        }
        self.process(api, now) || moved
    }

    /// Handles at most one request; whether one was handled (another may
    /// follow in `input`).
    fn process_one(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        if self.head.is_none() {
            let head = match parse_head(&self.input) {
                Ok(None) => return false,
                Ok(Some(head)) => head,
                Err(refusal) => {
                    self.refuse(api, refusal);
                    return false;
                }
            };
            match head.framing {
                Framing::Length(n) if n > head.route.body_limit() => {
                    self.refuse(api, head.route.too_large(Some(n as u64)));
                    return false;
                }
                Framing::Length(n) => {
                    if !api.claim(n) {
                        self.refuse(api, in_flight_refusal());
                        return false;
                    }
                    self.claimed = n;
                    // Room for the whole request at once: a 6 MB body
                    // arriving in segments is not copied as the buffer
                    // grows.
                    self.input
                        .reserve((head.len + n).saturating_sub(self.input.len()));
                }
                Framing::Chunked if head.streaming => {
                    // A streamed response: checked before its data flows,
                    // then handed on chunk by chunk, never held whole.
                    if let Err(refused) = api.start_stream(&head) {
                        self.input.advance(head.len);
                        self.answer_refused(api, refused, head.close);
                        return false;
                    }
                    self.input.advance(head.len);
                    self.chunked = Some((Chunked::new(MAX_STREAMED_BYTES), BytesMut::new()));
                }
                Framing::Chunked => {
                    self.input.advance(head.len);
                    self.chunked = Some((Chunked::new(head.route.body_limit()), BytesMut::new()));
                }
            }
            self.head = Some(head);
        }
        if self.head.as_ref().is_some_and(|h| h.streaming) {
            return self.stream(api, now);
        }
        let body = match self.chunked.as_mut() {
            Some((decoder, body)) => match decoder.feed(&self.input, body) {
                Ok((used, done)) => {
                    self.input.advance(used);
                    // A chunked body claims its bytes as they come.
                    let grown = body.len() - self.claimed;
                    if !api.claim(grown) {
                        self.refuse(api, in_flight_refusal());
                        return false;
                    }
                    self.claimed = body.len();
                    if !done {
                        return false;
                    }
                    let body = std::mem::take(body).freeze();
                    self.chunked = None;
                    body
                }
                Err(error) => {
                    let route = &self.head.as_ref().expect("head parsed above").route;
                    let refusal = match error {
                        ChunkError::BodyTooLarge => route.too_large(None),
                        ChunkError::FramingTooLarge => Refusal::new(
                            413,
                            ERROR_LIMIT,
                            "the framing of a chunked request body is out of proportion to its data",
                        ),
                        ChunkError::Invalid(why) => Refusal::new(
                            400,
                            ERROR_INVALID_REQUEST,
                            format!("invalid chunked request body: {why}"),
                        ),
                    };
                    self.refuse(api, refusal);
                    return false;
                }
            },
            None => {
                let head = self.head.as_ref().expect("head parsed above");
                let Framing::Length(length) = head.framing else {
                    unreachable!("a chunked head has a decoder")
                };
                let end = head.len + length;
                if self.input.len() < end {
                    return false;
                }
                // The request leaves the buffer without a copy: its body is
                // handed on as is.
                self.input.split_to(end).freeze().slice(head.len..)
            }
        };
        let head = self.head.take().expect("head parsed above");
        self.release(api);
        match api.handle(&head, body, now) {
            Reply::Never => self.parked = true,
            Reply::Hold => {
                self.held = true;
                self.held_close = head.close;
            }
            Reply::Refuse(refusal) => self.refuse(api, refusal),
            Reply::Http {
                status,
                headers,
                body,
            } => self.write_response(status, &headers, body, head.close),
        }
        true
    }

    /// Takes what has arrived of a streamed response and hands it on; at
    /// its end, answers as for any response. Whether the request ended.
    fn stream(&mut self, api: &mut RuntimeApi, now: Now) -> bool {
        let Some((decoder, body)) = self.chunked.as_mut() else {
            return false;
        };
        match decoder.feed(&self.input, body) {
            Ok((used, done)) => {
                self.input.advance(used);
                api.stream_chunk(body.split().freeze());
                if !done {
                    return false;
                }
                let trailers = decoder.trailers();
                self.chunked = None;
                let head = self.head.take().expect("a streamed response has its head");
                let reply = api.end_stream(&trailers, now);
                self.answer_refused(api, reply, head.close);
                true
            }
            Err(error) => {
                let refusal = match error {
                    ChunkError::BodyTooLarge => Refusal::new(
                        413,
                        super::ERROR_RESPONSE_TOO_LARGE,
                        format!(
                            "the function streamed more than {MAX_STREAMED_BYTES} bytes, Lambda's                              limit on a streamed response"
                        ),
                    ),
                    ChunkError::FramingTooLarge => Refusal::new(
                        413,
                        ERROR_LIMIT,
                        "the framing of a streamed response is out of proportion to its data",
                    ),
                    ChunkError::Invalid(why) => Refusal::new(
                        400,
                        ERROR_INVALID_REQUEST,
                        format!("invalid chunked response stream: {why}"),
                    ),
                };
                self.refuse(api, refusal);
                false
            }
        }
    }

    /// Writes `reply` (an answer, a refusal, or nothing for a request that
    /// is never answered).
    fn answer_refused(&mut self, api: &mut RuntimeApi, reply: Reply, close: bool) {
        match reply {
            Reply::Never | Reply::Hold => self.parked = true,
            Reply::Refuse(refusal) => self.refuse(api, refusal),
            Reply::Http {
                status,
                headers,
                body,
            } => self.write_response(status, &headers, body, close),
        }
    }

    /// Answers a refused request, closes, and ends the invocation.
    fn refuse(&mut self, api: &mut RuntimeApi, refusal: Refusal) {
        let Refusal { status, violation } = refusal;
        if let Reply::Http { body, .. } =
            Reply::error(status, violation.error_type, &violation.message)
        {
            self.write_response(status, &[], body, true);
        }
        self.head = None;
        self.chunked = None;
        self.release(api);
        api.violate(violation);
    }

    /// Gives back the body bytes this connection claimed: its request is
    /// complete, refused, or the connection is gone. Call it before
    /// dropping a connection.
    pub fn release(&mut self, api: &mut RuntimeApi) {
        api.release(std::mem::take(&mut self.claimed));
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
            self.input = BytesMut::new();
        }
        head.push_str("\r\n");
        let together = body.len().min(COALESCED_BODY_BYTES);
        let mut first = head.into_bytes();
        first.extend_from_slice(&body[..together]);
        self.output.push_back(Bytes::from(first));
        if body.len() > together {
            self.output.push_back(body.slice(together..));
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

fn in_flight_refusal() -> Refusal {
    Refusal::new(
        413,
        ERROR_LIMIT,
        format!(
            "request bodies being received on several connections at once exceed {MAX_BODY_BYTES_IN_FLIGHT} bytes"
        ),
    )
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
