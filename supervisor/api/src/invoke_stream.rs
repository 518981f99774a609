//! InvokeWithResponseStream: the function's response as it writes it, in
//! AWS's event-stream encoding ([`crate::event_stream`]): `PayloadChunk`
//! events, then `InvokeComplete` (`ErrorCode` and `ErrorDetails` when the
//! function failed, `LogResult` with `X-Amz-Log-Type: Tail`). A function
//! that does not stream gives its whole answer as one chunk.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use mayfly_host::names::{function_arn, parse_function};
use serde_json::json;

use crate::auth::Identity;
use crate::edge::RequestId;
use crate::error::{ApiError, ApiResult};
use crate::event_stream::{event, payload_chunk};
use crate::invoke::{check_payload, log_result, log_tail, MAX_SYNC_PAYLOAD};
use crate::request::{invalid_value, QualifierQuery, Query};
use crate::streaming::{self, Piece, StreamedBody};
use crate::SharedState;

/// `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
pub async fn invoke(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let dry_run = match header("x-amz-invocation-type") {
        None | Some("RequestResponse") => false,
        Some("DryRun") => true,
        Some(other) => {
            return Err(invalid_value(
                other,
                "invocationType",
                "Member must satisfy enum value set: [RequestResponse, DryRun]",
            ))
        }
    };
    let tail = log_tail(&headers)?;
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let payload = check_payload(body, MAX_SYNC_PAYLOAD)?;
    let resolved = state.host.resolve(&f, &identity.region)?;
    if dry_run {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let arn = function_arn(&identity.region, &f.name, f.qualifier.as_deref());
    let mut pieces = streaming::start(&state, f, resolved, arn, request_id.clone(), payload);
    // Until the first piece, a refusal (throttled, ...) is still an error
    // response of its own.
    let first = match pieces.recv().await {
        Some(Piece::Chunk(chunk)) => Some(chunk),
        Some(Piece::Done(done)) => {
            let completed = (*done)?;
            // Nothing streamed: the whole answer, then its end.
            let answer = completed.payload();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let _ = tx.send(Piece::Done(Box::new(Ok(completed))));
            let body = StreamedBody::new(Some(answer), rx, payload_chunk, complete(tail));
            return Ok(respond(body, &request_id));
        }
        None => return Err(ApiError::service(crate::error::INTERNAL_MESSAGE)),
    };
    let body = StreamedBody::new(first, pieces, payload_chunk, complete(tail));
    Ok(respond(body, &request_id))
}

fn respond(body: StreamedBody, request_id: &str) -> Response {
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    response
}

/// The `InvokeComplete` event for a result.
fn complete(tail: bool) -> streaming::Finish {
    Box::new(move |result| {
        let mut body = json!({});
        match result {
            Ok(completed) => {
                if completed.failed() {
                    body["ErrorCode"] =
                        json!(completed.outcome.result.error_type().unwrap_or("Unhandled"));
                    body["ErrorDetails"] =
                        json!(String::from_utf8_lossy(&completed.payload()).into_owned());
                }
                if tail {
                    body["LogResult"] = json!(log_result(&completed.framed_log));
                }
            }
            Err(e) => {
                let e: ApiError = e.into();
                body["ErrorCode"] = json!(e.code);
                body["ErrorDetails"] = json!(e.message);
            }
        }
        Some(event(
            "InvokeComplete",
            "application/json",
            body.to_string().as_bytes(),
        ))
    })
}
