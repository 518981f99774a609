//! CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions,
//! UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_store::LATEST;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::model::{self, configuration, CreateFunction, UpdateCode, UpdateConfiguration};
use crate::request::{blocking, page, parse_json, PageQuery, QualifierQuery, Query};
use crate::tags::check_tags;
use crate::{AppState, SharedState};
use mayfly_host::names::{check_name, parse_function};

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `POST /2015-03-31/functions`.
pub async fn create(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateFunction = parse_json(&body)?;
    check_name(&req.function_name)?;
    let settings = model::settings_for_create(&req)?;
    let tags = req.tags.clone().unwrap_or_default();
    check_tags(&tags)?;
    let zip = model::decode_zip(
        req.code.zip_file.as_deref(),
        req.code.s3_bucket.is_some(),
        req.code.image_uri.is_some(),
    )?;
    let name = req.function_name.clone();
    let publish = req.publish;
    let version = blocking(&state, move |state: &AppState| {
        if state.store.function_exists(&name)? {
            return Err(ApiError::conflict(format!(
                "Function already exist: {name}"
            )));
        }
        let blob = state.host.store_package(&zip)?;
        let latest = state.store.create_function_with_tags(
            &name,
            settings,
            &blob.sha256_hex,
            blob.size,
            &tags,
        )?;
        if publish {
            return Ok(state.store.publish_version(&name, None, None)?);
        }
        Ok(latest)
    })
    .await?;
    tracing::info!(function = %version.name, sha256 = %version.code_sha256, "function created");
    Ok(created(configuration(&version, &identity.region)))
}

/// `GET /2015-03-31/functions/{name}`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let version = state.host.resolve(&f, &identity.region)?.version;
    let mut body = json!({
        "Configuration": configuration(&version, &identity.region),
        "Code": {
            "RepositoryType": "Mayfly",
            "Location": format!("mayfly://blobs/{}", version.code_sha256),
        },
    });
    // The function's tags, whatever the qualifier; none: no `Tags`, as
    // Lambda answers.
    let tags = state.store.get_tags(&f.name)?;
    if !tags.is_empty() {
        body["Tags"] = json!(tags);
    }
    if let Some(n) = state.store.get_reserved_concurrency(&f.name)? {
        body["Concurrency"] = json!({ "ReservedConcurrentExecutions": n });
    }
    Ok(Json(body))
}

/// `GET /2015-03-31/functions/{name}/configuration`.
pub async fn get_configuration(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    let version = state.host.resolve(&f, &identity.region)?.version;
    Ok(Json(configuration(&version, &identity.region)))
}

/// `GET /2015-03-31/functions`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let listed = state
        .store
        .list_functions(query.marker.as_deref(), query.size()?)?;
    Ok(page("Functions", listed, |v| {
        configuration(v, &identity.region)
    }))
}

/// `PUT /2015-03-31/functions/{name}/code`.
pub async fn update_code(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let req: UpdateCode = parse_json(&body)?;
    let zip = model::decode_zip(
        req.zip_file.as_deref(),
        req.s3_bucket.is_some(),
        req.image_uri.is_some(),
    )?;
    let version = blocking(&state, move |state: &AppState| {
        state.store.get_version(&f.name, LATEST)?;
        let blob = state.host.store_package(&zip)?;
        let latest = state
            .store
            .update_latest(&f.name, req.revision_id.as_deref(), |v| {
                v.code_sha256 = blob.sha256_hex.clone();
                v.code_size = blob.size;
            })?;
        if req.publish {
            return Ok(state.store.publish_version(&f.name, None, None)?);
        }
        Ok(latest)
    })
    .await?;
    state.host.collect_soon();
    tracing::info!(function = %version.name, sha256 = %version.code_sha256, "code updated");
    Ok(Json(configuration(&version, &identity.region)))
}

/// `PUT /2015-03-31/functions/{name}/configuration`.
pub async fn update_configuration(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let req: UpdateConfiguration = parse_json(&body)?;
    let version = blocking(&state, move |state: &AppState| {
        let current = state.store.get_version(&f.name, LATEST)?;
        // Checked here, so that the update below cannot fail half-way.
        model::apply_update(&current.config, &req)?;
        Ok(state
            .store
            .update_latest(&f.name, req.revision_id.as_deref(), |v| {
                if let Ok(next) = model::apply_update(&v.config, &req) {
                    v.config = next;
                }
            })?)
    })
    .await?;
    Ok(Json(configuration(&version, &identity.region)))
}

/// `DELETE /2015-03-31/functions/{name}`: the whole function, or one
/// published version with `Qualifier`.
pub async fn delete(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<StatusCode> {
    let f = parse_function(&param, query.qualifier.as_deref())?;
    blocking(&state, move |state: &AppState| {
        match f.qualifier.as_deref() {
            None => Ok(state.store.delete_function(&f.name)?),
            Some(LATEST) => Err(ApiError::invalid_parameter(
                "$LATEST version cannot be deleted without deleting the function.",
            )),
            Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(state.store.delete_version(&f.name, q)?)
            }
            Some(q) => Err(ApiError::invalid_parameter(format!(
            "Deletion of aliases is not supported through DeleteFunction; use DeleteAlias for {q}"
        ))),
        }
    })
    .await?;
    state.host.collect_soon();
    Ok(StatusCode::NO_CONTENT)
}
