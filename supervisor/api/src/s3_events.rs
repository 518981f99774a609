//! Object-store notifications: the push endpoint that a store's bucket
//! notifications post S3 event records to (served on the URL front's
//! listener, `/s3-events/<function>/<token>`), and Mayfly's API call that
//! tells a user the endpoint of a function.
//!
//! A push is let in by the token in its path (the store cannot sign), then
//! by the function's resource policy, as S3 is: a statement must let
//! `s3.amazonaws.com` invoke the function for the record's bucket
//! (AddPermission with `--source-arn arn:aws:s3:::BUCKET`). Each record is
//! then committed to the durable async queue, once per receipt, before the
//! store hears 200; the store keeps a push it was not answered 2xx (a
//! persistent topic) and pushes it again. Answers: 200 (queued, or queued
//! before), 400 for a body without S3 records, 403 for a wrong token or a
//! bucket the policy does not name, 404 for no such function, 429 when the
//! function's queue is full.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use http::request::Parts;
use http::StatusCode;
use mayfly_function_url::policy::allows_service;
use mayfly_host::metrics::Pushed;
use mayfly_host::names::{function_arn, parse_function, FunctionRef, ACCOUNT_ID};
use mayfly_object_events::{endpoint, record};
use serde_json::{json, Value};

use crate::auth::{read_capped, Identity};
use crate::error::{ApiError, ApiResult};
use crate::request::QualifierQuery;
use crate::request::Query;
use crate::SharedState;

/// The most a push's body may be: S3 records are a few kilobytes.
pub const MAX_PUSH_BYTES: usize = 256 * 1024;

/// The service a store's pushes act as, for the function's policy.
pub const SERVICE: &str = "s3.amazonaws.com";

/// A store retries a refused push at once and without end (Ceph RGW
/// hundreds of times a second): a refusal is logged at most this often.
const REFUSALS_LOGGED_EVERY: Duration = Duration::from_secs(10);

static LAST_REFUSAL_LOGGED: Mutex<Option<Instant>> = Mutex::new(None);

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({ "Message": text }))).into_response()
}

/// Logs why a push was refused, if no refusal was logged lately.
fn log_refusal(path: &str, why: &str) {
    let mut last = LAST_REFUSAL_LOGGED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| at.elapsed() >= REFUSALS_LOGGED_EVERY) {
        *last = Some(Instant::now());
        tracing::warn!(
            path,
            why,
            "object-store notification refused (further refusals are logged every 10 s)"
        );
    }
}

fn refused(state: &SharedState, path: &str, status: StatusCode, why: &str) -> Response {
    state.host.metrics().pushed(Pushed::Refused);
    log_refusal(path, why);
    message(status, why)
}

/// Whether `path` is the push endpoint's (the URL front hands such
/// requests here, unless their host names a function URL).
pub fn is_push_path(path: &str) -> bool {
    path.starts_with(endpoint::PREFIX)
}

/// Receives one push: `POST /s3-events/<function>[:<qualifier>]/<token>`.
pub async fn receive(state: &SharedState, parts: Parts, body: Body) -> Response {
    let path = parts.uri.path().to_string();
    let Some(target) = endpoint::Target::parse(&path) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    if parts.method != http::Method::POST {
        return message(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    if !target.token_is_valid(&state.gate.credentials.secret_access_key) {
        return refused(state, &path, StatusCode::FORBIDDEN, "Forbidden");
    }
    let f = FunctionRef {
        name: target.function.to_string(),
        qualifier: target.qualifier.map(str::to_string),
    };
    let deadline = tokio::time::Instant::now() + state.gate.front.limits.body_timeout;
    let body = match read_capped(body, MAX_PUSH_BYTES, MAX_PUSH_BYTES, deadline).await {
        Ok(body) => body,
        Err(e) => return refused(state, &path, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let region = mayfly_host::names::DEFAULT_REGION;
    if let Err(e) = state.host.resolve(&f, region) {
        let error: ApiError = e.into();
        return refused(state, &path, error.status, &error.message);
    }
    let events = match record::parse(&body, region) {
        Ok(events) => events,
        Err(e) => return refused(state, &path, StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let statements = match state.store.policy(&f.name, f.qualifier.as_deref()) {
        Ok((statements, _)) => statements,
        Err(e) => {
            let error = ApiError::from(e);
            return refused(state, &path, error.status, &error.message);
        }
    };
    if let Some(denied) = events
        .iter()
        .find(|e| !allows_service(&statements, SERVICE, &e.source_arn(), ACCOUNT_ID))
    {
        let why = format!(
            "the policy of {} does not let {SERVICE} invoke it for {} (add a permission \
             with --principal {SERVICE} --source-arn {})",
            function_arn(region, &f.name, f.qualifier.as_deref()),
            denied.source_arn(),
            denied.source_arn()
        );
        return refused(state, &path, StatusCode::FORBIDDEN, &why);
    }
    let qualifier = f.qualifier.as_deref().unwrap_or(mayfly_store::LATEST);
    for event in &events {
        // A receipt per function: one record may be pushed to several.
        let receipt = format!("s3:{}:{qualifier}:{}", f.name, event.receipt);
        let payload = Bytes::from(event.payload().to_string());
        match state.host.invoke_async_once(&f, &receipt, payload).await {
            Ok(queued) => {
                let outcome = if queued {
                    Pushed::Queued
                } else {
                    Pushed::Duplicate
                };
                state.host.metrics().pushed(outcome);
                tracing::info!(
                    function = %f.name,
                    bucket = %event.bucket,
                    event = %event.event_name,
                    duplicate = !queued,
                    "object-store notification queued"
                )
            }
            Err(e) => {
                let error: ApiError = e.into();
                return refused(state, &path, error.status, &error.message);
            }
        }
    }
    (StatusCode::OK, Json(json!({}))).into_response()
}

/// `GET /mayfly/2025-01-01/functions/{name}/notification-endpoint`: where
/// a store pushes the function's S3 event notifications (its topic's
/// `push-endpoint`).
pub async fn endpoint_of(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    state.host.resolve(&f, &identity.region)?;
    let token = endpoint::token(
        &state.gate.credentials.secret_access_key,
        &f.name,
        f.qualifier.as_deref(),
    );
    let front = &state.url_front;
    Ok(Json(json!({
        "FunctionArn": function_arn(&identity.region, &f.name, f.qualifier.as_deref()),
        "Endpoint": format!(
            "http://{}:{}{}",
            front.domain,
            front.port,
            endpoint::path(&f.name, f.qualifier.as_deref(), &token)
        ),
        "Principal": SERVICE,
    })))
}
