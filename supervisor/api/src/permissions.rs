//! AddPermission, RemovePermission and GetPolicy: a function's resource
//! policy (which callers may invoke it, and whether its `NONE` URL is open
//! to everyone). Statements take Lambda's shapes
//! ([`mayfly_function_url::policy`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_function_url::policy::{document, statement, AddPermission};
use mayfly_host::names::{function_arn, parse_function, FunctionRef};
use mayfly_store::StoreError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, invalid_value, parse_json, QualifierQuery, Query};
use crate::{AppState, SharedState};

/// `?Qualifier=&RevisionId=` of RemovePermission.
#[derive(Debug, Default, Deserialize)]
pub struct RemoveQuery {
    /// The version or alias.
    #[serde(rename = "Qualifier")]
    pub qualifier: Option<String>,
    /// Only if the policy's revision is still this one.
    #[serde(rename = "RevisionId")]
    pub revision_id: Option<String>,
}

/// The function's ARN as the policy's `Resource` names it.
fn resource(f: &FunctionRef, region: &str) -> String {
    function_arn(region, &f.name, f.qualifier.as_deref())
}

/// A store error as Lambda answers it for the policy of `f`.
fn policy_error(f: &FunctionRef, region: &str) -> impl Fn(StoreError) -> ApiError {
    let arn = resource(f, region);
    move |e| match e {
        StoreError::NotFound {
            kind: mayfly_store::Kind::Permission,
            ..
        } => ApiError::not_found("The resource you requested does not exist."),
        e if e.is_not_found() => ApiError::not_found(format!("Function not found: {arn}")),
        StoreError::AlreadyExists { .. } => ApiError::conflict(
            "The statement id (sid) provided already exists. Please provide a new statement id, \
             or remove the existing statement.",
        ),
        StoreError::RevisionMismatch { .. } => ApiError::precondition_failed(
            "The Revision Id provided does not match the latest Revision Id. Call the \
             GetFunction/GetAlias API to retrieve the latest Revision Id",
        ),
        other => other.into(),
    }
}

/// `POST /2015-03-31/functions/{name}/policy`.
pub async fn add(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let input: AddPermission = parse_json(&body)?;
    let statement = statement(&input, &resource(&f, &identity.region))
        .map_err(|e| invalid_value(&e.value, e.field, &e.constraint))?;
    let region = identity.region.clone();
    let added = statement.clone();
    blocking(&state, move |state: &AppState| {
        state
            .store
            .add_permission(
                &f.name,
                f.qualifier.as_deref(),
                &input.statement_id,
                &added,
                input.revision_id.as_deref(),
            )
            .map_err(policy_error(&f, &region))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Statement": statement.to_string() })),
    ))
}

/// `DELETE /2015-03-31/functions/{name}/policy/{sid}`.
pub async fn remove(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path((param, sid)): Path<(String, String)>,
    Query(query): Query<RemoveQuery>,
) -> ApiResult<StatusCode> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let region = identity.region.clone();
    blocking(&state, move |state: &AppState| {
        state
            .store
            .remove_permission(
                &f.name,
                f.qualifier.as_deref(),
                &sid,
                query.revision_id.as_deref(),
            )
            .map_err(policy_error(&f, &region))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2015-03-31/functions/{name}/policy`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let (statements, revision) = state
        .store
        .policy(&f.name, f.qualifier.as_deref())
        .map_err(policy_error(&f, &identity.region))?;
    if statements.is_empty() {
        return Err(ApiError::not_found(
            "The resource you requested does not exist.",
        ));
    }
    Ok(Json(json!({
        "Policy": document(&statements),
        "RevisionId": revision,
    })))
}
