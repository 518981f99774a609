//! The middleware over a real router: the order (headers, then body), the
//! caps, the timeouts and the signed-headers rule.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body::Frame;
use mayfly_sigv4::{Credentials, SigningParams};
use tower::ServiceExt;

use super::*;
use crate::front::{Front, FrontLimits};
use mayfly_proto::limits;

const INVOKE: &str = "/2015-03-31/functions/f/invocations";

fn credentials() -> Credentials {
    Credentials::new(
        "AKIAEXAMPLE000000000",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
}

/// A body that hands out its chunks, counting the bytes taken, then
/// stalls (as a client that stops sending) unless told to end.
struct Trickle {
    chunks: VecDeque<Bytes>,
    taken: Arc<AtomicUsize>,
    ends: bool,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.chunks.pop_front() {
            Some(chunk) => {
                self.taken.fetch_add(chunk.len(), Ordering::SeqCst);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            None if self.ends => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

fn trickle(chunks: &[&[u8]], ends: bool) -> (Body, Arc<AtomicUsize>) {
    let taken = Arc::new(AtomicUsize::new(0));
    let body = Trickle {
        chunks: chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect(),
        taken: taken.clone(),
        ends,
    };
    (Body::new(body), taken)
}

fn app(limits: FrontLimits) -> Router {
    let gate = Arc::new(Gate {
        credentials: credentials(),
        front: Front::new(limits),
    });
    let echo = |body: Bytes| async move { body };
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(echo))
        .route("/2015-03-31/functions", post(echo))
        .layer(axum::middleware::from_fn_with_state(gate, authenticate))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

fn limits() -> FrontLimits {
    FrontLimits {
        body_timeout: Duration::from_millis(300),
        ..FrontLimits::default()
    }
}

/// A POST to `target` signed over `signed_body` and `headers`, sent with
/// `body` and a `content-length` of `length`.
fn request(
    target: &str,
    headers: &[(&'static str, &'static str)],
    signed_body: Option<&[u8]>,
    body: Body,
    length: Option<usize>,
) -> Request<Body> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    map.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    if let Some(signed_body) = signed_body {
        let creds = credentials();
        let uri: Uri = format!("http://127.0.0.1:9000{target}").parse().unwrap();
        let params = SigningParams::new(&creds, "us-east-1", "lambda");
        let added = mayfly_sigv4::sign(&Method::POST, &uri, &map, signed_body, &params).unwrap();
        for (k, v) in &added {
            map.insert(k.clone(), v.clone());
        }
    }
    if let Some(length) = length {
        map.insert("content-length", HeaderValue::from(length));
    }
    let mut request = Request::builder().method("POST").uri(target);
    *request.headers_mut().unwrap() = map;
    request.body(body).unwrap()
}

async fn send(app: Router, request: Request<Body>) -> Response {
    tokio::time::timeout(Duration::from_secs(5), app.oneshot(request))
        .await
        .expect("answered within 5 s")
        .unwrap()
}

fn code(response: &Response) -> &str {
    response.headers()["x-amzn-errortype"].to_str().unwrap()
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_before_their_body_is_read() {
    let app = app(limits());
    let seventy_mb = 70 << 20;
    for (what, headers, signed) in [
        ("no signature", &[][..], None),
        ("another service", &[][..], Some(&b"x"[..])),
    ] {
        let (body, taken) = trickle(&[&[b'x'; 4096]], false);
        let mut request = request(INVOKE, headers, signed, body, Some(seventy_mb));
        if what == "another service" {
            let auth = request.headers()["authorization"].to_str().unwrap();
            let auth = auth.replace("/lambda/", "/s3/");
            request
                .headers_mut()
                .insert("authorization", HeaderValue::from_str(&auth).unwrap());
        }
        let response = send(app.clone(), request).await;
        assert_eq!(response.status(), 403, "{what}");
        assert_eq!(response.headers()["connection"], "close", "{what}");
        assert_eq!(taken.load(Ordering::SeqCst), 0, "{what}: body was read");
    }
    // A wrong key: refused as unknown, body untouched.
    let (body, taken) = trickle(&[b"{}"], false);
    let mut request = request(INVOKE, &[], Some(b"{}"), body, Some(2));
    let auth = request.headers()["authorization"].to_str().unwrap();
    let auth = auth.replace("AKIAEXAMPLE000000000", "AKIAOTHER00000000000");
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let response = send(app, request).await;
    assert_eq!(code(&response), "UnrecognizedClientException");
    assert_eq!(taken.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn signed_requests_reach_the_handler_with_their_body() {
    let app = app(limits());
    let body = br#"{"hello":"world"}"#;
    let (stream, _) = trickle(&[&body[..8], &body[8..]], true);
    let response = send(
        app.clone(),
        request(INVOKE, &[], Some(body), stream, Some(body.len())),
    )
    .await;
    assert_eq!(response.status(), 200);
    let got = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&got[..], body);

    // A body other than the one signed is found out once read.
    let (stream, _) = trickle(&[b"{}"], true);
    let response = send(app, request(INVOKE, &[], Some(body), stream, Some(2))).await;
    assert_eq!(code(&response), "InvalidSignatureException");
}

#[tokio::test]
async fn bodies_are_capped_by_operation() {
    let app = app(limits());
    // Declared larger than can be drained: 413 at once, nothing read.
    let (body, taken) = trickle(&[&[b' '; 1024]], false);
    let response = send(
        app.clone(),
        request(INVOKE, &[], Some(b""), body, Some(70 << 20)),
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(code(&response), "RequestEntityTooLargeException");
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(taken.load(Ordering::SeqCst), 0);

    // An Event invoke over 256 KB (signed as such): drained, then 413.
    let big = vec![b' '; limits::ASYNC_PAYLOAD_BYTES + 1];
    let (body, taken) = trickle(&[&big], true);
    let event = [("x-amz-invocation-type", "Event")];
    let response = send(
        app.clone(),
        request(INVOKE, &event, Some(&big), body, Some(big.len())),
    )
    .await;
    assert_eq!(response.status(), 413);
    assert_eq!(taken.load(Ordering::SeqCst), big.len());
    assert!(response.headers().get("connection").is_none());
    // The same body as a RequestResponse invoke is within its 6 MB.
    let (body, _) = trickle(&[&big], true);
    let response = send(app, request(INVOKE, &[], Some(&big), body, Some(big.len()))).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_at_the_body_timeout() {
    let app = app(limits());
    let body = b"{\"a\":1}";
    let (stream, taken) = trickle(&[&body[..3]], false);
    let started = tokio::time::Instant::now();
    let response = send(
        app,
        request(INVOKE, &[], Some(body), stream, Some(body.len())),
    )
    .await;
    assert_eq!(response.status(), 408);
    assert_eq!(code(&response), "RequestTimeoutException");
    assert_eq!(response.headers()["connection"], "close");
    assert_eq!(taken.load(Ordering::SeqCst), 3);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn large_bodies_beyond_the_limit_are_refused_at_once() {
    let app = app(FrontLimits {
        max_large_bodies: 1,
        body_timeout: Duration::from_secs(30),
        ..FrontLimits::default()
    });
    let zip_json = vec![b' '; 3 << 20];
    // One large upload, stalled: it holds the only place.
    let (stalled, _) = trickle(&[&zip_json[..1000]], false);
    let first = tokio::spawn(app.clone().oneshot(request(
        "/2015-03-31/functions",
        &[],
        Some(&zip_json),
        stalled,
        Some(zip_json.len()),
    )));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (body, taken) = trickle(&[&zip_json], true);
    let response = send(
        app.clone(),
        request(
            "/2015-03-31/functions",
            &[],
            Some(&zip_json),
            body,
            Some(zip_json.len()),
        ),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert_eq!(code(&response), "TooManyRequestsException");
    assert_eq!(taken.load(Ordering::SeqCst), 0);
    // Small bodies are not counted.
    let (body, _) = trickle(&[b"{}"], true);
    let response = send(
        app.clone(),
        request(INVOKE, &[], Some(b"{}"), body, Some(2)),
    )
    .await;
    assert_eq!(response.status(), 200);
    first.abort();
    let _ = first.await;
    // The place is free again once the first request is gone.
    let (body, _) = trickle(&[&zip_json], true);
    let response = send(
        app,
        request(
            "/2015-03-31/functions",
            &[],
            Some(&zip_json),
            body,
            Some(zip_json.len()),
        ),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unsigned_x_amz_headers_are_refused() {
    let app = app(limits());
    for (name, value) in [
        ("x-amz-invocation-type", "Event"),
        ("x-amz-log-type", "Tail"),
    ] {
        let (body, taken) = trickle(&[b"{}"], true);
        let mut request = request(INVOKE, &[], Some(b"{}"), body, Some(2));
        request.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        let response = send(app.clone(), request).await;
        assert_eq!(response.status(), 403, "{name}");
        assert_eq!(code(&response), "InvalidSignatureException");
        assert_eq!(taken.load(Ordering::SeqCst), 0, "{name}");
    }
    // Signed, the same header is fine.
    let (body, _) = trickle(&[b"{}"], true);
    let signed = [("x-amz-log-type", "Tail")];
    let response = send(app, request(INVOKE, &signed, Some(b"{}"), body, Some(2))).await;
    assert_eq!(response.status(), 200);
}

#[test]
fn declared_lengths() {
    let mut headers = HeaderMap::new();
    assert_eq!(declared_length(&headers), Some(0));
    headers.insert("content-length", HeaderValue::from_static("12"));
    assert_eq!(declared_length(&headers), Some(12));
    headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
    assert_eq!(declared_length(&headers), None);
    let _ = SystemTime::now();
}
