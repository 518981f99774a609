//! PublishVersion and ListVersionsByFunction.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_store::{BlobRef, LATEST};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::model::configuration;
use crate::request::{blocking, page, parse_json};
use crate::request::{PageQuery, Query};
use crate::{AppState, SharedState};
use mayfly_host::names::parse_function;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishRequest {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

/// `POST /2015-03-31/functions/{name}/versions`.
pub async fn publish(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let f = parse_function(&param, None)?;
    let req: PublishRequest = if body.is_empty() {
        PublishRequest::default()
    } else {
        parse_json(&body)?
    };
    let version = blocking(&state, move |state: &AppState| {
        if let Some(expected) = &req.code_sha256 {
            let latest = state.store.get_version(&f.name, LATEST)?;
            let actual = BlobRef::hex_to_base64(&latest.code_sha256)?;
            if *expected != actual {
                return Err(ApiError::invalid_parameter(format!(
                    "CodeSHA256 ({expected}) is different from current CodeSHA256 in $LATEST ({actual}). Please try again"
                )));
            }
        }
        Ok(state.store.publish_version(&f.name, req.revision_id.as_deref(), req.description.as_deref())?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(configuration(&version, &identity.region)),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/versions`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let listed = state
        .store
        .list_versions(&f.name, query.marker.as_deref(), query.size()?)?;
    Ok(page("Versions", listed, |v| {
        configuration(v, &identity.region)
    }))
}
