//! One client connection: HTTP/1.1 over hyper, with the header and idle
//! timeouts of [`FrontLimits`], and the answer given to a connection beyond
//! [`FrontLimits::max_connections`].
//!
//! hyper's own header timeout starts when a connection is ready for a
//! request, so it would also close idle keep-alive connections after the
//! (short) header timeout. The [`Clock`] tells the phases apart instead: a
//! connection is idle until a byte of a request arrives, then reading a
//! head until the request reaches the router, then handled (the body
//! timeout of [`crate::auth`] applies, then the handler runs as long as the
//! invocation), then writing its response until that is written. The
//! watchdog closes it when it is idle, reading a head, or writing without
//! progress (a client that does not read its answers, which would hold the
//! connection forever) for too long.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::edge::RequestId;
use crate::front::FrontLimits;

/// The most bytes of request line and headers hyper buffers for one
/// request (it answers 431 past them). The AWS CLI sends about 1 KB.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// How long a refused connection is given to take its answer.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a connection is in its life, for its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way, since then.
    Idle(Instant),
    /// A request's first byte arrived then; its head is not complete.
    Head(Instant),
    /// A request is being handled.
    Handling,
    /// A response is being written; the last bytes went out then.
    Writing(Instant),
}

/// Which timeout closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No request came within the idle timeout.
    Idle,
    /// A request's head did not arrive within the header timeout.
    Head,
    /// The client read nothing of its answer within the idle timeout.
    Write,
}

/// A connection's phase, shared by its socket (bytes arrive), its service
/// (requests start and end) and its watchdog.
#[derive(Debug)]
pub struct Clock {
    phase: Mutex<State>,
    changed: Notify,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Requests started and not yet answered (hyper answers one at a time;
    /// counted so that the phase cannot turn idle under a second one).
    answering: usize,
}

impl Clock {
    /// A clock for a connection opened now.
    pub fn new() -> Arc<Clock> {
        Arc::new(Clock {
            phase: Mutex::new(State {
                phase: Phase::Idle(Instant::now()),
                answering: 0,
            }),
            changed: Notify::new(),
        })
    }

    /// Changes the state; the watchdog is woken when the kind of phase
    /// changes (a later time in the same phase it finds when it wakes).
    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let before = std::mem::discriminant(&state.phase);
        f(&mut state);
        if std::mem::discriminant(&state.phase) != before {
            self.changed.notify_one();
        }
    }

    /// Bytes came in.
    pub fn bytes_arrived(&self) {
        self.update(|state| {
            if let Phase::Idle(_) = state.phase {
                state.phase = Phase::Head(Instant::now());
            }
        });
    }

    /// Bytes went out.
    pub fn bytes_sent(&self) {
        self.update(|state| {
            if let Phase::Writing(_) = state.phase {
                state.phase = Phase::Writing(Instant::now());
            }
        });
    }

    /// A request's head is complete and it is being handled; the returned
    /// guard marks its end when dropped (after its response is written, or
    /// when the connection is dropped).
    pub fn request_started(self: &Arc<Clock>) -> Answering {
        self.update(|state| {
            state.answering += 1;
            state.phase = Phase::Handling;
        });
        Answering(self.clone())
    }

    /// The handler has answered; its response is being written.
    pub fn response_ready(&self) {
        self.update(|state| state.phase = Phase::Writing(Instant::now()));
    }

    fn deadline(&self, limits: &FrontLimits) -> Option<(Instant, Expiry)> {
        match self.phase.lock().unwrap_or_else(|e| e.into_inner()).phase {
            Phase::Idle(since) => Some((since + limits.idle_timeout, Expiry::Idle)),
            Phase::Head(since) => Some((since + limits.header_timeout, Expiry::Head)),
            Phase::Handling => None,
            Phase::Writing(since) => Some((since + limits.idle_timeout, Expiry::Write)),
        }
    }

    /// Completes when the connection has been idle or reading a head for
    /// too long.
    pub async fn expired(&self, limits: &FrontLimits) -> Expiry {
        loop {
            match self.deadline(limits) {
                None => self.changed.notified().await,
                Some((at, expiry)) if Instant::now() >= at => return expiry,
                Some((at, _)) => {
                    // Woken early by a change, or at the deadline: look again.
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request being answered (see [`Clock::request_started`]).
#[derive(Debug)]
pub struct Answering(Arc<Clock>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.update(|state| {
            state.answering = state.answering.saturating_sub(1);
            if state.answering == 0 {
                state.phase = Phase::Idle(Instant::now());
            }
        });
    }
}

/// The socket, telling the clock when bytes arrive.
struct Tracked {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.bytes_arrived();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.bytes_sent();
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.clock.bytes_sent();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one connection until the client closes it, a timeout closes it,
/// or, once `stopping` turns true, its request in flight is answered.
pub async fn serve(
    stream: TcpStream,
    app: Router,
    limits: FrontLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let clock = Clock::new();
    let io = TokioIo::new(Tracked {
        stream,
        clock: clock.clone(),
    });
    let service_clock = clock.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let answering = service_clock.request_started();
        let app = app.clone();
        let clock = service_clock.clone();
        async move {
            let response = app.oneshot(request.map(axum::body::Body::new)).await?;
            clock.response_ready();
            // The guard lives as long as the response body, which hyper
            // drops once it is written.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(body.map_err(move |e| {
                    let _ = &answering;
                    e
                }))
            }))
        }
    });
    let connection = http1::Builder::new()
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let expired = clock.expired(&limits);
    tokio::pin!(expired);
    let mut stop_asked = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            expiry = &mut expired => {
                tracing::debug!(?expiry, "connection closed by its timeout");
                return;
            }
            _ = stopping.wait_for(|stopping| *stopping), if !stop_asked => {
                stop_asked = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Answers a connection beyond the cap with a 429 in Lambda's shape and
/// closes it, reading (and discarding) a little of what the client sends
/// meanwhile so that closing does not reset the answer away.
pub async fn refuse(mut stream: TcpStream, max_connections: usize) {
    let id = RequestId::new();
    let body = serde_json::json!({
        "Type": "User",
        "message": format!("Too many connections are open (at most {max_connections}); retry later"),
        "Reason": "CallerRateLimitExceeded",
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         x-amzn-errortype: TooManyRequestsException\r\nx-amzn-requestid: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        id.0,
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async move {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        io::Result::Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FrontLimits {
        FrontLimits {
            header_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            ..FrontLimits::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_head_phases_have_their_own_timeouts() {
        let limits = limits();
        let clock = Clock::new();
        let start = Instant::now();
        assert_eq!(clock.expired(&limits).await, Expiry::Idle);
        assert_eq!(start.elapsed(), limits.idle_timeout);

        // A byte of a request: the header timeout, from that byte.
        let clock = Clock::new();
        tokio::time::sleep(Duration::from_secs(5)).await;
        clock.bytes_arrived();
        let at_first_byte = Instant::now();
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.bytes_arrived();
        assert_eq!(clock.expired(&limits).await, Expiry::Head);
        assert_eq!(at_first_byte.elapsed(), limits.header_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handled_request_never_expires_and_the_connection_is_idle_after() {
        let limits = limits();
        let clock = Clock::new();
        clock.bytes_arrived();
        let answering = clock.request_started();
        let watch = {
            let clock = clock.clone();
            let limits = limits.clone();
            tokio::spawn(async move { clock.expired(&limits).await })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watch.is_finished());
        // Bytes while busy (a body, a pipelined request) do not start a
        // head timeout.
        clock.bytes_arrived();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!watch.is_finished());
        let done = Instant::now();
        drop(answering);
        assert_eq!(watch.await.unwrap(), Expiry::Idle);
        assert_eq!(done.elapsed(), limits.idle_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_nobody_reads_expires_at_the_idle_timeout() {
        let limits = limits();
        let clock = Clock::new();
        let _answering = clock.request_started();
        clock.response_ready();
        // Progress keeps it open...
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(8)).await;
            clock.bytes_sent();
        }
        // ...until the client stops reading.
        let stalled = Instant::now();
        assert_eq!(clock.expired(&limits).await, Expiry::Write);
        assert_eq!(stalled.elapsed(), limits.idle_timeout);
    }
}
