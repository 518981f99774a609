//! Invoke: `RequestResponse`, `Event` and `DryRun`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine;
use bytes::Bytes;
use mayfly_host::names::{function_arn, parse_function};
use mayfly_proto::limits;

use crate::auth::Identity;
use crate::edge::RequestId;
use crate::error::{ApiError, ApiResult};
use crate::request::{invalid_value, QualifierQuery, Query};
use crate::SharedState;

/// Lambda's limit on a synchronous payload.
pub const MAX_SYNC_PAYLOAD: usize = limits::SYNC_PAYLOAD_BYTES;
/// Lambda's limit on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = limits::ASYNC_PAYLOAD_BYTES;
/// Bytes of log returned with `X-Amz-Log-Type: Tail`.
const TAIL_BYTES: usize = limits::LOG_TAIL_BYTES;

/// The three invocation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn invocation_type(headers: &HeaderMap) -> ApiResult<InvocationType> {
    match headers
        .get("x-amz-invocation-type")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(invalid_value(
            other,
            "invocationType",
            "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
        )),
    }
}

/// `X-Amz-Log-Type`: whether the log's tail is asked for.
pub fn log_tail(headers: &HeaderMap) -> ApiResult<bool> {
    match headers
        .get("x-amz-log-type")
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(invalid_value(
            other,
            "logType",
            "Member must satisfy enum value set: [Tail, None]",
        )),
    }
}

/// The last [`TAIL_BYTES`] of a framed log, base64, as `LogResult`.
pub fn log_result(framed_log: &str) -> String {
    let log = framed_log.as_bytes();
    let tail = &log[log.len().saturating_sub(TAIL_BYTES)..];
    base64::engine::general_purpose::STANDARD.encode(tail)
}

/// Checks a payload: at most `limit` bytes, JSON; empty means `{}`. The
/// body is passed on as it came, never copied.
pub fn check_payload(body: Bytes, limit: usize) -> ApiResult<Bytes> {
    if body.len() > limit {
        return Err(ApiError::too_large(format!(
            "Request must be smaller than {limit} bytes for the InvokeFunction operation"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| {
        ApiError::invalid_request_content(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        ))
    })?;
    Ok(body)
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub async fn invoke(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let kind = invocation_type(&headers)?;
    let tail = log_tail(&headers)?;
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let limit = if kind == InvocationType::Event {
        MAX_ASYNC_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    let payload = check_payload(body, limit)?;
    let resolved = state.host.resolve(&f, &identity.region)?;
    let arn = function_arn(&identity.region, &f.name, f.qualifier.as_deref());
    match kind {
        InvocationType::DryRun => Ok(with_request_id(
            StatusCode::NO_CONTENT.into_response(),
            &request_id,
        )),
        InvocationType::Event => {
            state.host.invoke_async(&f, &request_id, payload).await?;
            Ok(with_request_id(
                StatusCode::ACCEPTED.into_response(),
                &request_id,
            ))
        }
        InvocationType::RequestResponse => {
            let completed = state
                .host
                .invoke_sync(&f, resolved, arn, request_id.clone(), payload)
                .await?;
            let mut response = (StatusCode::OK, completed.payload()).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&completed.version) {
                headers.insert("x-amz-executed-version", v);
            }
            if completed.failed() {
                headers.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            }
            if tail {
                let encoded = log_result(&completed.framed_log);
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    headers.insert("x-amz-log-result", v);
                }
            }
            Ok(with_request_id(response, &request_id))
        }
    }
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        let check = |body: &'static [u8]| check_payload(Bytes::from_static(body), 10);
        assert_eq!(check(b"").unwrap(), &b"{}"[..]);
        assert_eq!(check(b" \n").unwrap(), &b"{}"[..]);
        assert_eq!(check(br#"{"a":1}"#).unwrap(), &br#"{"a":1}"#[..]);
        assert_eq!(
            check(b"{nope").unwrap_err().code,
            "InvalidRequestContentException"
        );
        assert_eq!(
            check(&[b' '; 11]).unwrap_err().code,
            "RequestEntityTooLargeException"
        );
    }

    #[test]
    fn invocation_types() {
        let mut headers = HeaderMap::new();
        assert_eq!(
            invocation_type(&headers).unwrap(),
            InvocationType::RequestResponse
        );
        headers.insert("x-amz-invocation-type", HeaderValue::from_static("Event"));
        assert_eq!(invocation_type(&headers).unwrap(), InvocationType::Event);
        headers.insert("x-amz-invocation-type", HeaderValue::from_static("Later"));
        assert_eq!(
            invocation_type(&headers).unwrap_err().code,
            "ValidationException"
        );
    }
}
