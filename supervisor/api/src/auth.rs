//! Authentication: every API call but `/healthz` carries an AWS Signature
//! Version 4 made with the host's credentials, verified exactly as AWS
//! does (see `mayfly-sigv4`), over the whole body.
//!
//! The body is read here, once, with a cap; a larger one is read to its end
//! and discarded so that the client, which sends its whole request before
//! it reads the answer, receives the 413 instead of a broken connection.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use mayfly_sigv4::{verify, RequestParts};

use crate::error::ApiError;
use crate::SharedState;

/// The largest request accepted: CreateFunction's limit for a base64 zip.
pub const MAX_REQUEST_BYTES: usize = 69_905_067;
/// Past this, an oversized body is no longer drained: the connection closes.
const MAX_DRAIN_BYTES: usize = 512 * 1024 * 1024;

/// Who made a verified request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The region of the signature's scope, used in ARNs.
    pub region: String,
}

/// Reads a body up to `limit` bytes; `Ok(None)` when it was larger (and was
/// drained up to [`MAX_DRAIN_BYTES`]). A body that arrived in one chunk is
/// passed on as that chunk; one in several is joined with a single copy.
async fn read_capped(body: Body, limit: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(chunk) = frame.into_data() {
            seen += chunk.len();
            if seen <= limit {
                chunks.push(chunk);
            } else if seen > MAX_DRAIN_BYTES {
                break;
            } else {
                chunks.clear();
            }
        }
    }
    if seen > limit {
        return Ok(None);
    }
    Ok(Some(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = BytesMut::with_capacity(seen);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    }))
}

/// The middleware.
pub async fn authenticate(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let bytes = match read_capped(body, MAX_REQUEST_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return ApiError::too_large(format!(
                "Request must be smaller than {MAX_REQUEST_BYTES} bytes for this operation"
            ))
            .into_response()
        }
        Err(e) => {
            return ApiError::validation(format!("cannot read the request body: {e}"))
                .into_response()
        }
    };
    match verify(
        RequestParts::from(&parts),
        &bytes,
        &state.credentials,
        SystemTime::now(),
        "lambda",
    ) {
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
