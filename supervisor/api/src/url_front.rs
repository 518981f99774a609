//! The URL front: the listener of function URLs (`mayfly serve
//! --url-listen`). A request names its URL by host name or path
//! ([`mayfly_function_url::address`]); it is authorised by the URL's auth
//! type (`AWS_IAM`: a SigV4 signature, service `lambda`, by the host's
//! key; `NONE`: a statement of the function's policy that opens it to
//! everyone), becomes the payload format 2.0 event, is invoked through the
//! host's one dispatch path like any invocation, and the answer is mapped
//! back as Lambda does. CORS preflights are answered here. Object-store
//! pushes (`/s3-events/...`, on a host that names no URL) are handed to
//! [`crate::s3_events`].
//!
//! Its own errors take Lambda's URL shape, `{"Message": "..."}`: 403
//! Forbidden for a caller not let in, 404 for no such URL, 413 for a body
//! over 6 MB, 502 when the function failed.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use http::header::{HOST, ORIGIN};
use http::{HeaderName, HeaderValue, StatusCode};
use mayfly_function_url::config::{AuthType, Cors, InvokeMode, UrlConfig};
use mayfly_function_url::event::{self, Context, IamCaller};
use mayfly_function_url::response::{
    from_answer, prelude, streamed_default, HttpResponse, Prelude,
};
use mayfly_function_url::{address, cors, policy};
use mayfly_host::names::{function_arn, FunctionRef, ACCOUNT_ID};
use mayfly_sigv4::{check_headers, RequestParts, VerifyOptions};
use mayfly_store::LATEST;
use tokio::time::Instant;

use crate::auth::{read_capped, BodyError};
use crate::error::ApiError;
use crate::streaming::{self, Piece, StreamedBody};
use crate::SharedState;

/// The most a request's body may be (Lambda's synchronous payload limit).
pub const MAX_BODY: usize = mayfly_proto::limits::SYNC_PAYLOAD_BYTES;

/// Where the URL front is reached, for the URLs the API shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFront {
    /// The domain under which URLs are named (`localhost`).
    pub domain: String,
    /// The listener's port.
    pub port: u16,
}

impl Default for UrlFront {
    fn default() -> Self {
        UrlFront {
            domain: "localhost".into(),
            port: 9002,
        }
    }
}

/// The client's address, put in each request by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The URL front's router over `state`: every path and method.
pub fn url_router(state: SharedState) -> Router {
    Router::new().fallback(serve).with_state(state)
}

/// What the URL answers: whole, or as the function streams it.
enum Answer {
    Whole(HttpResponse),
    Streamed(HttpResponse, StreamedBody),
}

impl From<HttpResponse> for Answer {
    fn from(response: HttpResponse) -> Answer {
        Answer::Whole(response)
    }
}

fn respond(answer: Answer, request_id: &str) -> Response {
    let (head, body) = match answer {
        Answer::Whole(mut response) => {
            let body = Body::from(std::mem::take(&mut response.body));
            (response, body)
        }
        Answer::Streamed(head, body) => (head, Body::new(body)),
    };
    let mut out = Response::builder()
        .status(StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in &head.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out = out.header(name, value);
        }
    }
    out = out.header("x-amzn-requestid", request_id);
    out.body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

fn forbidden() -> HttpResponse {
    let mut response = HttpResponse::message(403, "Forbidden");
    response
        .headers
        .push(("x-amzn-errortype".into(), "AccessDeniedException".into()));
    response
}

/// An error of the host (throttled, not found) as the URL front answers it.
fn host_error(error: ApiError) -> HttpResponse {
    let status = error.status.as_u16();
    let message = match status {
        429 => "Rate Exceeded.".to_string(),
        _ => error.message,
    };
    let mut response = HttpResponse::message(status, &message);
    response
        .headers
        .push(("x-amzn-errortype".into(), error.code.to_string()));
    response
}

async fn serve(
    State(state): State<SharedState>,
    peer: Option<Extension<Peer>>,
    request: Request,
) -> Response {
    let host = request.headers().get(HOST).and_then(|h| h.to_str().ok());
    if crate::s3_events::is_push_path(request.uri().path())
        && host
            .and_then(|h| address::url_id_of_host(h, &state.url_front.domain))
            .is_none()
    {
        let (parts, body) = request.into_parts();
        return crate::s3_events::receive(&state, parts, body).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let answer = handle(&state, peer.map(|p| p.0 .0), request, &request_id).await;
    respond(answer, &request_id)
}

async fn handle(
    state: &SharedState,
    peer: Option<SocketAddr>,
    request: Request,
    request_id: &str,
) -> Answer {
    match prepare(state, peer, request, request_id).await {
        Err(refused) => Answer::Whole(refused),
        Ok(ready) => ready.run(state, request_id).await,
    }
}

/// A request let in, its event made, ready to invoke.
struct Ready {
    f: FunctionRef,
    resolved: mayfly_store::Resolved,
    arn: String,
    payload: bytes::Bytes,
    mode: InvokeMode,
    cors: Option<(Cors, Option<String>)>,
}

impl Ready {
    async fn run(self, state: &SharedState, request_id: &str) -> Answer {
        let Ready {
            f,
            resolved,
            arn,
            payload,
            mode,
            cors,
        } = self;
        let with_cors = |mut response: HttpResponse| {
            if let Some((config, origin)) = &cors {
                cors::apply(config, origin.as_deref(), &mut response);
            }
            response
        };
        if mode == InvokeMode::ResponseStream {
            let id = request_id.to_string();
            let pieces = streaming::start(state, f, resolved, arn, id, payload);
            return stream(pieces, with_cors).await;
        }
        let completed = match state
            .host
            .invoke_sync(&f, resolved, arn, request_id.to_string(), payload)
            .await
        {
            Ok(completed) => completed,
            Err(e) => return host_error(e.into()).into(),
        };
        let response = if completed.failed() {
            HttpResponse::bad_gateway()
        } else {
            from_answer(&completed.payload())
        };
        Answer::Whole(with_cors(response))
    }
}

/// A stream that ended before its head was sent: answered whole.
fn gathered(start: &[u8]) -> HttpResponse {
    let (mut head, at) = match prelude(start, true) {
        Prelude::Found(head, at) => (head, at),
        _ => (streamed_default(), 0),
    };
    head.body = start[at..].to_vec();
    head
}

/// Answers as the function streams: its prelude (or a 200) as the head,
/// once it has come, then the body as it is written.
async fn stream(
    mut pieces: tokio::sync::mpsc::UnboundedReceiver<Piece>,
    with_cors: impl Fn(HttpResponse) -> HttpResponse,
) -> Answer {
    let mut start: Vec<u8> = Vec::new();
    let (head, at) = loop {
        match pieces.recv().await {
            Some(Piece::Chunk(chunk)) => {
                start.extend_from_slice(&chunk);
                match prelude(&start, false) {
                    Prelude::NeedMore => continue,
                    Prelude::Found(head, at) => break (head, at),
                    Prelude::Absent => break (streamed_default(), 0),
                }
            }
            Some(Piece::Done(done)) => match *done {
                Err(e) => return host_error(e.into()).into(),
                Ok(completed) if start.is_empty() => {
                    // The function did not stream: its answer, mapped whole.
                    let response = if completed.failed() {
                        HttpResponse::bad_gateway()
                    } else {
                        from_answer(&completed.payload())
                    };
                    return Answer::Whole(with_cors(response));
                }
                Ok(_) => return Answer::Whole(with_cors(gathered(&start))),
            },
            None => return Answer::Whole(with_cors(gathered(&start))),
        }
    };
    let rest = bytes::Bytes::from(start).slice(at..);
    let first = (!rest.is_empty()).then_some(rest);
    // A failure after the head went is the body's end: the status cannot
    // change any more.
    let body = StreamedBody::new(first, pieces, |chunk| chunk, Box::new(|_| None));
    Answer::Streamed(with_cors(head), body)
}

async fn prepare(
    state: &SharedState,
    peer: Option<SocketAddr>,
    request: Request,
    request_id: &str,
) -> Result<Ready, HttpResponse> {
    let received = SystemTime::now();
    let (parts, body) = request.into_parts();
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok());
    let path = parts.uri.path();
    let Some(target) = address::target(host, path, &state.url_front.domain) else {
        return Err(HttpResponse::message(404, "Not Found"));
    };
    let url = match state.store.function_url_by_id(target.url_id) {
        Ok(Some(url)) => url,
        Ok(None) => return Err(HttpResponse::message(404, "Not Found")),
        Err(e) => return Err(host_error(e.into())),
    };
    let Ok(config) = serde_json::from_value::<UrlConfig>(url.config.clone()) else {
        return Err(HttpResponse::bad_gateway());
    };
    let region = url.config["Region"]
        .as_str()
        .unwrap_or("us-east-1")
        .to_string();
    let deadline = Instant::now() + state.gate.front.limits.body_timeout;
    let body = match read_capped(body, MAX_BODY, MAX_BODY, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return Err(HttpResponse::message(
                413,
                "Request must be smaller than 6291456 bytes",
            ))
        }
        Err(_) => {
            return Err(HttpResponse::message(
                400,
                "The request body could not be read",
            ))
        }
    };
    let origin = parts.headers.get(ORIGIN).and_then(|h| h.to_str().ok());
    let header = |name: &str| parts.headers.get(name).and_then(|h| h.to_str().ok());
    if let Some(cors_config) = &config.cors {
        let asked = header("access-control-request-method");
        if cors::is_preflight(parts.method.as_str(), origin, asked) {
            return Err(cors::preflight(
                cors_config,
                origin.unwrap_or(""),
                asked.unwrap_or(""),
                header("access-control-request-headers"),
            ));
        }
    }
    let qualifier = (url.qualifier != LATEST).then(|| url.qualifier.clone());
    let iam = match config.auth_type {
        AuthType::AwsIam => {
            let verified = check_headers(
                RequestParts::from(&parts),
                &state.gate.credentials,
                SystemTime::now(),
                &VerifyOptions::strict("lambda"),
            )
            .and_then(|pending| pending.verify_body(&body));
            match verified {
                Ok(_) => Some(IamCaller {
                    access_key: state.gate.credentials.access_key_id.clone(),
                    account_id: ACCOUNT_ID.to_string(),
                }),
                Err(e) => {
                    tracing::info!(url = %url.url_id, error = %e, "function URL request refused");
                    return Err(forbidden());
                }
            }
        }
        AuthType::None => match state.store.policy(&url.function_name, qualifier.as_deref()) {
            Ok((statements, _)) if policy::allows_public_url(&statements) => None,
            Ok(_) => return Err(forbidden()),
            Err(e) => return Err(host_error(e.into())),
        },
    };
    let source_ip = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let protocol = format!("{:?}", parts.version);
    let request = event::Request {
        method: parts.method.as_str(),
        path: target.path,
        query: parts.uri.query().unwrap_or(""),
        headers,
        body: &body,
        source_ip,
        protocol: &protocol,
    };
    let time_epoch_ms = received
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let event = event::event(
        &request,
        &Context {
            url_id: &url.url_id,
            domain_name: host.map_or("", |h| h.split(':').next().unwrap_or(h)),
            account_id: ACCOUNT_ID,
            request_id,
            time_epoch_ms,
            iam,
        },
    );
    let payload = bytes::Bytes::from(event.to_string());
    let f = FunctionRef {
        name: url.function_name.clone(),
        qualifier,
    };
    let resolved = state
        .host
        .resolve(&f, &region)
        .map_err(|e| host_error(e.into()))?;
    let arn = function_arn(&region, &f.name, f.qualifier.as_deref());
    Ok(Ready {
        f,
        resolved,
        arn,
        payload,
        mode: config.invoke_mode,
        cors: config.cors.map(|c| (c, origin.map(str::to_string))),
    })
}
