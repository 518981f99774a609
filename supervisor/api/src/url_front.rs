//! The URL front: the listener of function URLs (`mayfly serve
//! --url-listen`). A request names its URL by host name or path
//! ([`mayfly_function_url::address`]); it is authorised by the URL's auth
//! type (`AWS_IAM`: a SigV4 signature, service `lambda`, by the host's
//! key; `NONE`: a statement of the function's policy that opens it to
//! everyone), becomes the payload format 2.0 event, is invoked through the
//! host's one dispatch path like any invocation, and the answer is mapped
//! back as Lambda does. CORS preflights are answered here.
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
use mayfly_function_url::config::{AuthType, UrlConfig};
use mayfly_function_url::event::{self, Context, IamCaller};
use mayfly_function_url::response::{from_answer, HttpResponse};
use mayfly_function_url::{address, cors, policy};
use mayfly_host::names::{function_arn, FunctionRef, ACCOUNT_ID};
use mayfly_sigv4::{check_headers, RequestParts, VerifyOptions};
use mayfly_store::LATEST;
use tokio::time::Instant;

use crate::auth::{read_capped, BodyError};
use crate::error::ApiError;
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

fn respond(response: HttpResponse, request_id: &str) -> Response {
    let mut out = Response::builder()
        .status(StatusCode::from_u16(response.status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in &response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out = out.header(name, value);
        }
    }
    out = out.header("x-amzn-requestid", request_id);
    out.body(Body::from(response.body))
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
    let request_id = uuid::Uuid::new_v4().to_string();
    let answer = handle(&state, peer.map(|p| p.0 .0), request, &request_id).await;
    respond(answer, &request_id)
}

async fn handle(
    state: &SharedState,
    peer: Option<SocketAddr>,
    request: Request,
    request_id: &str,
) -> HttpResponse {
    let received = SystemTime::now();
    let (parts, body) = request.into_parts();
    let host = parts.headers.get(HOST).and_then(|h| h.to_str().ok());
    let path = parts.uri.path();
    let Some(target) = address::target(host, path, &state.url_front.domain) else {
        return HttpResponse::message(404, "Not Found");
    };
    let url = match state.store.function_url_by_id(target.url_id) {
        Ok(Some(url)) => url,
        Ok(None) => return HttpResponse::message(404, "Not Found"),
        Err(e) => return host_error(e.into()),
    };
    let Ok(config) = serde_json::from_value::<UrlConfig>(url.config.clone()) else {
        return HttpResponse::bad_gateway();
    };
    let region = url.config["Region"]
        .as_str()
        .unwrap_or("us-east-1")
        .to_string();
    let deadline = Instant::now() + state.gate.front.limits.body_timeout;
    let body = match read_capped(body, MAX_BODY, MAX_BODY, deadline).await {
        Ok(body) => body,
        Err(BodyError::TooLarge { .. }) => {
            return HttpResponse::message(413, "Request must be smaller than 6291456 bytes")
        }
        Err(_) => return HttpResponse::message(400, "The request body could not be read"),
    };
    let origin = parts.headers.get(ORIGIN).and_then(|h| h.to_str().ok());
    let header = |name: &str| parts.headers.get(name).and_then(|h| h.to_str().ok());
    if let Some(cors_config) = &config.cors {
        let asked = header("access-control-request-method");
        if cors::is_preflight(parts.method.as_str(), origin, asked) {
            return cors::preflight(
                cors_config,
                origin.unwrap_or(""),
                asked.unwrap_or(""),
                header("access-control-request-headers"),
            );
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
                    return forbidden();
                }
            }
        }
        AuthType::None => match state.store.policy(&url.function_name, qualifier.as_deref()) {
            Ok((statements, _)) if policy::allows_public_url(&statements) => None,
            Ok(_) => return forbidden(),
            Err(e) => return host_error(e.into()),
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
    let resolved = match state.host.resolve(&f, &region) {
        Ok(resolved) => resolved,
        Err(e) => return host_error(e.into()),
    };
    let arn = function_arn(&region, &f.name, f.qualifier.as_deref());
    let completed = match state
        .host
        .invoke_sync(&f, resolved, arn, request_id.to_string(), payload)
        .await
    {
        Ok(completed) => completed,
        Err(e) => return host_error(e.into()),
    };
    let mut response = if completed.failed() {
        HttpResponse::bad_gateway()
    } else {
        from_answer(&completed.payload())
    };
    if let Some(cors_config) = &config.cors {
        cors::apply(cors_config, origin, &mut response);
    }
    response
}
