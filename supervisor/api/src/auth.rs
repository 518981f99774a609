//! Authentication: every API call but `/healthz` carries an AWS Signature
//! Version 4 made with the host's credentials, verified as AWS does (see
//! `mayfly-sigv4`) with the strict rules: every `x-amz-*` header signed,
//! the body signed, no presigned URLs.
//!
//! The order is what keeps an unauthenticated client from costing memory:
//! the `Authorization` header (format, key, scope, date) is checked first;
//! only then is the body read, under the operation's cap
//! ([`crate::front::BodyCap`]) and the body timeout, and finally checked
//! against the signature. A request refused before its body was read is
//! answered at once with `Connection: close`, and the rest of its body is
//! never read.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use mayfly_sigv4::{check_headers, Credentials, RequestParts, VerifyOptions};
use std::sync::Arc;
use thiserror::Error;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::front::{BodyCap, Front};

/// What the middleware needs: the key pair and the front door's limits.
#[derive(Debug)]
pub struct Gate {
    /// The credentials every request must be signed with.
    pub credentials: Credentials,
    /// The limits on bodies.
    pub front: Front,
}

/// Who made a verified request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The region of the signature's scope, used in ARNs.
    pub region: String,
}

/// Why a body was not read whole.
#[derive(Debug, Error)]
pub enum BodyError {
    /// It was larger than the cap (`seen` bytes were read, then given up or
    /// drained to the end).
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The cap.
        limit: usize,
        /// Whether the whole body was read (so the connection can be kept).
        drained: bool,
    },
    /// It did not arrive by the deadline.
    #[error("the body did not arrive in time")]
    Timeout,
    /// The connection failed or the framing was wrong.
    #[error("the body could not be read: {0}")]
    Read(axum::Error),
}

/// Reads a body up to `limit` bytes by `deadline`. A larger one is read on
/// and discarded up to `drain_limit` bytes, so that its client receives the
/// error. A body that arrived in one chunk is passed on as that chunk; one
/// in several is joined with a single copy.
pub async fn read_capped(
    body: Body,
    limit: usize,
    drain_limit: usize,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let read = async move {
        let mut body = body;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(BodyError::Read)?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            seen = seen.saturating_add(chunk.len());
            if seen <= limit {
                chunks.push(chunk);
            } else if seen > drain_limit {
                return Err(BodyError::TooLarge {
                    limit,
                    drained: false,
                });
            } else {
                chunks.clear();
            }
        }
        if seen > limit {
            return Err(BodyError::TooLarge {
                limit,
                drained: true,
            });
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => {
                let mut joined = BytesMut::with_capacity(seen);
                for chunk in &chunks {
                    joined.extend_from_slice(chunk);
                }
                joined.freeze()
            }
        })
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

/// The declared body length: `Some(0)` for none, `None` when chunked (not
/// known until read). hyper has already refused a malformed or ambiguous
/// `Content-Length`.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    match headers.get(CONTENT_LENGTH) {
        None => Some(0),
        Some(v) => v.to_str().ok().and_then(|v| v.trim().parse().ok()),
    }
}

/// `error`, and the connection closed after it when the body was left
/// unread (reading it would be the very cost the refusal avoids).
fn refuse(error: ApiError, body_unread: bool) -> Response {
    let mut response = error.into_response();
    if body_unread {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The middleware.
pub async fn authenticate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let declared = declared_length(&parts.headers);
    let has_body = declared != Some(0);
    // EventBridge Scheduler's operations are signed for their own service.
    let service = if parts.uri.path().starts_with("/schedules") {
        "scheduler"
    } else {
        "lambda"
    };
    let pending = match check_headers(
        RequestParts::from(&parts),
        &gate.credentials,
        SystemTime::now(),
        &VerifyOptions::strict(service),
    ) {
        Ok(pending) => pending,
        Err(e) => {
            tracing::info!(method = %parts.method, uri = %parts.uri, error = %e, "request refused");
            return refuse(
                ApiError::forbidden(e.aws_error_code(), e.to_string()),
                has_body,
            );
        }
    };

    let cap = BodyCap::of(&parts);
    let too_large = || {
        ApiError::too_large(format!(
            "Request must be smaller than {} bytes for the {} operation",
            cap.limit, cap.operation
        ))
    };
    if declared.is_some_and(|n| n > cap.drain_limit() as u64) {
        return refuse(too_large(), true);
    }
    let large = if cap.is_large(declared) {
        match gate.front.large_body() {
            Some(permit) => Some(permit),
            None => {
                return refuse(
                    ApiError::overloaded(format!(
                    "Too many large requests are being received at once (at most {}); retry later",
                    gate.front.limits.max_large_bodies
                )),
                    has_body,
                )
            }
        }
    } else {
        None
    };
    let deadline = Instant::now() + gate.front.limits.body_timeout;
    let bytes = match read_capped(body, cap.limit, cap.drain_limit(), deadline).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge { drained, .. }) => return refuse(too_large(), !drained),
        Err(BodyError::Timeout) => {
            return refuse(
                ApiError::request_timeout(format!(
                    "The request body did not arrive within {} s",
                    gate.front.limits.body_timeout.as_secs_f64()
                )),
                true,
            )
        }
        Err(e @ BodyError::Read(_)) => {
            return refuse(ApiError::validation(e.to_string()), true);
        }
    };
    // A code upload keeps its place until answered: the handler holds the
    // body and what it decodes from it that long.
    let _large = large.filter(|_| cap.held_until_answered());
    match pending.verify_body(&bytes) {
        Ok(identity) => {
            parts.extensions.insert(Identity {
                region: identity.region,
            });
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            tracing::info!(method = %parts.method, uri = %parts.uri, error = ?e, "request refused");
            ApiError::forbidden(e.aws_error_code(), e.to_string()).into_response()
        }
    }
}

#[cfg(test)]
mod tests;
