//! Invoke: `RequestResponse`, `Event` and `DryRun`, and Mayfly's endpoint
//! for recent invocation records.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use bytes::Bytes;
use mayfly_store::{FunctionVersion, Resolved};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Identity;
use super::error::{ApiError, ApiResult};
use super::events;
use super::functions::QualifierQuery;
use super::invoker::Job;
use super::names::{function_arn, parse_function};
use super::{resolve, SharedState};

/// Lambda's limit on a synchronous payload.
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;
/// Lambda's limit on an asynchronous payload.
pub const MAX_ASYNC_PAYLOAD: usize = 262_144;
/// Bytes of log returned with `X-Amz-Log-Type: Tail`.
const TAIL_BYTES: usize = 4096;

/// The three invocation types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn invocation_type(headers: &HeaderMap) -> ApiResult<InvocationType> {
    match headers.get("x-amz-invocation-type").map(|v| v.to_str().unwrap_or("")) {
        None | Some("RequestResponse") => Ok(InvocationType::RequestResponse),
        Some("Event") => Ok(InvocationType::Event),
        Some("DryRun") => Ok(InvocationType::DryRun),
        Some(other) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: \
             Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
        ))),
    }
}

/// Checks a payload: at most `limit` bytes, JSON; empty means `{}`.
pub fn check_payload(body: &[u8], limit: usize) -> ApiResult<Vec<u8>> {
    if body.len() > limit {
        return Err(ApiError::too_large(format!(
            "Request must be smaller than {limit} bytes for the InvokeFunction operation"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(b"{}".to_vec());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| {
        ApiError::invalid_request_content(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        ))
    })?;
    Ok(body.to_vec())
}

/// The version an alias's routing picks: one of `AdditionalVersionWeights`
/// with its weight's probability, else the alias's own.
fn route(resolved: Resolved, store: &mayfly_store::Store) -> ApiResult<FunctionVersion> {
    let Some(weights) = resolved
        .routing_config
        .as_ref()
        .and_then(|r| r.get("AdditionalVersionWeights"))
        .and_then(Value::as_object)
    else {
        return Ok(resolved.version);
    };
    let draw = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
    let mut acc = 0.0;
    for (version, weight) in weights {
        acc += weight.as_f64().unwrap_or(0.0);
        if draw < acc {
            return Ok(store.get_version(&resolved.version.name, version)?);
        }
    }
    Ok(resolved.version)
}

/// `POST /2015-03-31/functions/{name}/invocations`.
pub async fn invoke(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let kind = invocation_type(&headers)?;
    let tail = match headers.get("x-amz-log-type").map(|v| v.to_str().unwrap_or("")) {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'logType' failed to satisfy constraint: \
                 Member must satisfy enum value set: [Tail, None]"
            )))
        }
    };
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let limit = if kind == InvocationType::Event {
        MAX_ASYNC_PAYLOAD
    } else {
        MAX_SYNC_PAYLOAD
    };
    let payload = check_payload(&body, limit)?;
    let version = route(resolve(&state, &f, &identity.region)?, &state.store)?;
    let arn = function_arn(&identity.region, &f.name, f.qualifier.as_deref());
    let request_id = uuid::Uuid::new_v4().to_string();
    match kind {
        InvocationType::DryRun => Ok(with_request_id(
            StatusCode::NO_CONTENT.into_response(),
            &request_id,
        )),
        InvocationType::Event => {
            let qualifier = f
                .qualifier
                .clone()
                .unwrap_or_else(|| mayfly_store::LATEST.to_string());
            events::accept(&state, &request_id, &f.name, &qualifier, payload).await?;
            Ok(with_request_id(
                StatusCode::ACCEPTED.into_response(),
                &request_id,
            ))
        }
        InvocationType::RequestResponse => {
            let job = Job {
                request_id: request_id.clone(),
                version,
                invoked_arn: arn,
                payload,
                invocation_type: "RequestResponse",
            };
            let warm = state
                .provisioned
                .take(&f.name, f.qualifier.as_deref(), &job.version);
            let completed = match warm {
                // Provisioned concurrency: a VM booted ahead, with its own slot.
                Some(warm) => warm.run(&state.invoker, job).await?,
                None => {
                    let slot = match state.invoker.try_acquire(&job.version.name)? {
                        Ok(slot) => slot,
                        Err(throttle) => {
                            state.invoker.record_throttle(&job).await;
                            return Err(ApiError::too_many_requests(throttle.reason()));
                        }
                    };
                    state.invoker.run(job, slot).await?
                }
            };
            let mut response = (StatusCode::OK, completed.payload()).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&completed.version) {
                headers.insert("x-amz-executed-version", v);
            }
            if completed.outcome.result.error_type().is_some() {
                headers.insert(
                    "x-amz-function-error",
                    HeaderValue::from_static("Unhandled"),
                );
            }
            if tail {
                let log = completed.framed_log.as_bytes();
                let tail = &log[log.len().saturating_sub(TAIL_BYTES)..];
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
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

/// `?Limit=`.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    /// How many records, newest first (default 20, at most 1000).
    #[serde(rename = "Limit")]
    limit: Option<usize>,
}

/// `GET /mayfly/2025-01-01/functions/{name}/invocations`: recent
/// invocation records, newest first.
pub async fn recent(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    Query(query): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let limit = query.limit.unwrap_or(20).clamp(1, 1000);
    let records = state.store.list_invocations(&f.name, limit)?;
    let records: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let started = mayfly_store::format_timestamp(r.started_at);
            let started = started
                .strip_suffix("+0000")
                .map(|s| format!("{s}Z"))
                .unwrap_or(started);
            json!({
                "requestId": r.request_id,
                "version": r.version,
                "invocationType": r.invocation_type,
                "status": r.status,
                "errorType": r.error_type,
                "startedAt": started,
                "durationMs": r.duration_ms,
                "billedDurationMs": r.billed_duration_ms,
                "initDurationMs": r.init_duration_ms,
                "memorySizeMb": r.memory_size_mb,
                "maxMemoryUsedMb": r.max_memory_used_mb,
                "log": r.log,
            })
        })
        .collect();
    Ok(Json(json!({ "Invocations": records })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(check_payload(b"", 10).unwrap(), b"{}");
        assert_eq!(check_payload(b" \n", 10).unwrap(), b"{}");
        assert_eq!(check_payload(br#"{"a":1}"#, 10).unwrap(), br#"{"a":1}"#);
        assert_eq!(
            check_payload(b"{nope", 10).unwrap_err().code,
            "InvalidRequestContentException"
        );
        assert_eq!(
            check_payload(&[b' '; 11], 10).unwrap_err().code,
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
