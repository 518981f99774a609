//! The front door's limits: how long a client may take to send a request,
//! how many connections and large bodies are served at once, and how large
//! a body each operation accepts.
//!
//! Nothing here trusts the client: the caps are known from the method,
//! the route and the invocation type before a byte of body is read, and a
//! body is only read once the request's signature headers have been
//! checked ([`crate::auth`]).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::MatchedPath;
use http::request::Parts;
use http::Method;
use mayfly_proto::limits;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap on a body of any operation that carries no code and no payload
/// (configuration, aliases, concurrency...): 256 KiB, far above what any
/// of them needs (an environment is at most 4 KB).
pub const SMALL_REQUEST_BYTES: usize = 256 << 10;

/// The cap on a CreateFunction or UpdateFunctionCode body: Lambda's 50 MB
/// zip in base64, plus room for the rest of the JSON (environment,
/// description, ...).
pub const CODE_REQUEST_BYTES: usize =
    base64_len(limits::ZIPPED_PACKAGE_BYTES as usize) + (256 << 10);

/// A body is "large" (and takes one of [`FrontLimits::max_large_bodies`])
/// past this size, or when its size is not declared and its cap is larger.
pub const LARGE_BODY_BYTES: usize = SMALL_REQUEST_BYTES;

/// How much of an oversized body, at least, is read and thrown away so that
/// a client that sends its whole request before it reads the answer (the
/// AWS CLI does) receives the 413 instead of a reset connection. Only
/// authenticated requests are drained, and never past the body timeout.
const MIN_DRAIN_BYTES: usize = 16 << 20;

/// Descriptors left for everything but client connections: the store, the
/// logs, the VMs and their sockets.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// The fewest connections the cap is lowered to, however low the limit on
/// open files.
const MIN_CONNECTIONS: usize = 16;

const fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// The time and concurrency limits of the API's listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontLimits {
    /// From a request's first byte to the end of its headers. A slower
    /// client (slowloris) is disconnected without an answer.
    pub header_timeout: Duration,
    /// From a request's headers to the end of its body; past it the request
    /// is answered 408 and the connection closed.
    pub body_timeout: Duration,
    /// How long a connection may stay open without a request (after it is
    /// opened or after its last response).
    pub idle_timeout: Duration,
    /// Connections open at once; one more is answered 429 at once and
    /// closed.
    pub max_connections: usize,
    /// Bodies larger than [`LARGE_BODY_BYTES`] being read at once (a code
    /// upload keeps its place until it is answered, as its handler holds
    /// it whole); one more is answered 429 at once.
    pub max_large_bodies: usize,
}

impl Default for FrontLimits {
    fn default() -> Self {
        FrontLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_large_bodies: 4,
        }
    }
}

impl FrontLimits {
    /// Lowers `max_connections` so that connections cannot take the
    /// descriptors the rest of the host needs under a soft limit of
    /// `open_files` (past it `accept` fails, but so do the store's files
    /// and the VMs' sockets). Returns what it changed, to report.
    pub fn fit_to_open_files(&mut self, open_files: u64) -> Option<String> {
        let room = open_files.saturating_sub(RESERVED_DESCRIPTORS);
        let room = usize::try_from(room)
            .unwrap_or(usize::MAX)
            .max(MIN_CONNECTIONS);
        if self.max_connections <= room {
            return None;
        }
        let asked = self.max_connections;
        self.max_connections = room;
        Some(format!(
            "at most {room} connections, not {asked}: the limit on open files is {open_files} \
             and {RESERVED_DESCRIPTORS} are kept for the rest of the host (raise it with ulimit -n)"
        ))
    }
}

/// The soft limit on this process's open files, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The limits and the counters they are enforced with, shared by all
/// connections.
#[derive(Debug)]
pub struct Front {
    /// The configured limits.
    pub limits: FrontLimits,
    large_bodies: Arc<Semaphore>,
}

impl Front {
    /// The counters for `limits`.
    pub fn new(limits: FrontLimits) -> Front {
        Front {
            large_bodies: Arc::new(Semaphore::new(limits.max_large_bodies)),
            limits,
        }
    }

    /// A place among the large bodies being read, or `None` when all are
    /// taken.
    pub fn large_body(&self) -> Option<OwnedSemaphorePermit> {
        self.large_bodies.clone().try_acquire_owned().ok()
    }
}

impl Default for Front {
    fn default() -> Self {
        Front::new(FrontLimits::default())
    }
}

/// What a request's body may be, by operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCap {
    /// The operation's name, for messages.
    pub operation: &'static str,
    /// The most bytes accepted.
    pub limit: usize,
}

impl BodyCap {
    /// The cap of the operation `parts` names. It needs the route that
    /// matched (axum's [`MatchedPath`]): a request that matched none gets
    /// the small cap.
    pub fn of(parts: &Parts) -> BodyCap {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("");
        let route = route.strip_suffix('/').unwrap_or(route);
        let event = parts
            .headers
            .get("x-amz-invocation-type")
            .is_some_and(|v| v.as_bytes() == b"Event");
        let (operation, limit) = match (&parts.method, route) {
            (&Method::POST, "/2015-03-31/functions") => ("CreateFunction", CODE_REQUEST_BYTES),
            (&Method::PUT, "/2015-03-31/functions/{name}/code") => {
                ("UpdateFunctionCode", CODE_REQUEST_BYTES)
            }
            (&Method::POST, "/2015-03-31/functions/{name}/invocations") if event => {
                ("InvokeAsync", limits::ASYNC_PAYLOAD_BYTES)
            }
            (&Method::POST, "/2015-03-31/functions/{name}/invocations") => {
                ("InvokeFunction", limits::SYNC_PAYLOAD_BYTES)
            }
            (&Method::POST, "/2021-11-15/functions/{name}/response-streaming-invocations") => {
                ("InvokeWithResponseStream", limits::SYNC_PAYLOAD_BYTES)
            }
            _ => ("this", SMALL_REQUEST_BYTES),
        };
        BodyCap { operation, limit }
    }

    /// Whether the place among the large bodies is kept until the request
    /// is answered: for code, which the handler decodes and unpacks. An
    /// invocation's payload is held by a running VM, and those are bounded
    /// by admission instead.
    pub fn held_until_answered(&self) -> bool {
        self.limit == CODE_REQUEST_BYTES
    }

    /// Whether a body of `declared` bytes (`None`: not declared, chunked)
    /// counts against [`FrontLimits::max_large_bodies`].
    pub fn is_large(&self, declared: Option<u64>) -> bool {
        self.limit > LARGE_BODY_BYTES && declared.is_none_or(|n| n > LARGE_BODY_BYTES as u64)
    }

    /// How many bytes of an oversized body are read and discarded before
    /// the connection is given up.
    pub fn drain_limit(&self) -> usize {
        self.limit.saturating_mul(2).max(MIN_DRAIN_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::any;
    use axum::Router;
    use tower::ServiceExt;

    /// The cap the router gives `method target` with `headers`.
    async fn cap(method: &str, target: &str, headers: &[(&str, &str)]) -> BodyCap {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let seen = move |request: axum::extract::Request| {
            let tx = tx.clone();
            async move {
                let (parts, _) = request.into_parts();
                tx.send(BodyCap::of(&parts)).unwrap();
            }
        };
        let app = Router::new()
            .route("/2015-03-31/functions", any(seen.clone()))
            .route("/2015-03-31/functions/", any(seen.clone()))
            .route("/2015-03-31/functions/{name}/code", any(seen.clone()))
            .route(
                "/2015-03-31/functions/{name}/invocations",
                any(seen.clone()),
            )
            .route("/2015-03-31/functions/{name}", any(seen.clone()))
            .fallback(seen);
        let mut request = http::Request::builder().method(method).uri(target);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app.oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        rx.recv().await.unwrap()
    }

    #[tokio::test]
    async fn caps_by_operation() {
        let invoke = "/2015-03-31/functions/f/invocations";
        for (method, target, headers, limit) in [
            ("POST", "/2015-03-31/functions", &[][..], CODE_REQUEST_BYTES),
            ("POST", "/2015-03-31/functions/", &[], CODE_REQUEST_BYTES),
            (
                "PUT",
                "/2015-03-31/functions/f/code",
                &[],
                CODE_REQUEST_BYTES,
            ),
            ("POST", invoke, &[], limits::SYNC_PAYLOAD_BYTES),
            (
                "POST",
                invoke,
                &[("x-amz-invocation-type", "RequestResponse")],
                limits::SYNC_PAYLOAD_BYTES,
            ),
            (
                "POST",
                invoke,
                &[("x-amz-invocation-type", "Event")],
                limits::ASYNC_PAYLOAD_BYTES,
            ),
            ("GET", "/2015-03-31/functions", &[], SMALL_REQUEST_BYTES),
            ("PUT", invoke, &[], SMALL_REQUEST_BYTES),
            ("PUT", "/2015-03-31/functions/f", &[], SMALL_REQUEST_BYTES),
            ("POST", "/nowhere/at/all", &[], SMALL_REQUEST_BYTES),
        ] {
            let got = cap(method, target, headers).await;
            assert_eq!(got.limit, limit, "{method} {target} {headers:?}: {got:?}");
        }
    }

    #[test]
    fn code_cap_holds_a_50_mb_zip_in_base64() {
        const ZIP: usize = limits::ZIPPED_PACKAGE_BYTES as usize;
        const { assert!(CODE_REQUEST_BYTES > ZIP * 4 / 3 + 1000) };
        const { assert!(CODE_REQUEST_BYTES < 71 << 20) };
        assert_eq!(base64_len(3), 4);
        assert_eq!(base64_len(4), 8);
        let invoke = BodyCap {
            operation: "InvokeFunction",
            limit: limits::SYNC_PAYLOAD_BYTES,
        };
        assert!(invoke.is_large(None));
        assert!(invoke.is_large(Some(2 << 20)));
        assert!(!invoke.is_large(Some(1000)));
        assert!(!invoke.held_until_answered());
        let event = BodyCap {
            operation: "InvokeAsync",
            limit: limits::ASYNC_PAYLOAD_BYTES,
        };
        assert!(!event.is_large(None));
        assert!(!event.is_large(Some(limits::ASYNC_PAYLOAD_BYTES as u64)));
        assert_eq!(event.drain_limit(), MIN_DRAIN_BYTES);
    }

    #[test]
    fn connections_leave_descriptors_for_the_host() {
        let mut limits = FrontLimits::default();
        assert_eq!(limits.fit_to_open_files(20_000), None);
        assert_eq!(limits.max_connections, 1024);
        let note = limits.fit_to_open_files(1024).unwrap();
        assert_eq!(limits.max_connections, 768);
        assert!(note.contains("768") && note.contains("1024"), "{note}");
        limits.fit_to_open_files(100);
        assert_eq!(limits.max_connections, MIN_CONNECTIONS);
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn large_bodies_are_counted() {
        let front = Front::new(FrontLimits {
            max_large_bodies: 2,
            ..FrontLimits::default()
        });
        let a = front.large_body().unwrap();
        let _b = front.large_body().unwrap();
        assert!(front.large_body().is_none());
        drop(a);
        assert!(front.large_body().is_some());
    }
}
