//! CreateAlias, GetAlias, UpdateAlias (with weighted `RoutingConfig`),
//! DeleteAlias and ListAliases.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_host::names::{function_arn, parse_function};
use mayfly_store::{Alias, AliasUpdate};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::ApiResult;
use crate::request::{blocking, invalid_value, page, parse_json, PageQuery, Query};
use crate::{AppState, SharedState};

fn alias_configuration(alias: &Alias, region: &str) -> Value {
    let mut body = json!({
        "AliasArn": function_arn(region, &alias.function_name, Some(&alias.name)),
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    });
    if let Some(routing) = &alias.routing_config {
        body["RoutingConfig"] = routing.clone();
    }
    body
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAlias {
    name: String,
    function_version: String,
    #[serde(default)]
    description: String,
    routing_config: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateAlias {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<Value>,
    revision_id: Option<String>,
}

fn check_alias_name(name: &str) -> ApiResult<()> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !name.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid_value(
            name,
            "name",
            "Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)",
        ))
    }
}

/// `POST /2015-03-31/functions/{name}/aliases`.
pub async fn create(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let f = parse_function(&param, None)?;
    let req: CreateAlias = parse_json(&body)?;
    check_alias_name(&req.name)?;
    let alias = blocking(&state, move |state: &AppState| {
        Ok(state.store.create_alias(
            &f.name,
            &req.name,
            &req.function_version,
            &req.description,
            req.routing_config,
        )?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(alias_configuration(&alias, &identity.region)),
    )
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path((param, alias)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let alias = state.store.get_alias(&f.name, &alias)?;
    Ok(Json(alias_configuration(&alias, &identity.region)))
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`.
pub async fn update(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path((param, alias)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let req: UpdateAlias = if body.is_empty() {
        UpdateAlias::default()
    } else {
        parse_json(&body)?
    };
    let update = AliasUpdate {
        function_version: req.function_version,
        description: req.description,
        routing_config: req.routing_config.map(|r| (!r.is_null()).then_some(r)),
    };
    let alias = blocking(&state, move |state: &AppState| {
        Ok(state
            .store
            .update_alias(&f.name, &alias, req.revision_id.as_deref(), update)?)
    })
    .await?;
    Ok(Json(alias_configuration(&alias, &identity.region)))
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`.
pub async fn delete(
    State(state): State<SharedState>,
    Path((param, alias)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let f = parse_function(&param, None)?;
    blocking(&state, move |state: &AppState| {
        Ok(state.store.delete_alias(&f.name, &alias)?)
    })
    .await?;
    state.host.collect_soon();
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2015-03-31/functions/{name}/aliases`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let listed = state.store.list_aliases(
        &f.name,
        query.function_version.as_deref(),
        query.marker.as_deref(),
        query.size()?,
    )?;
    Ok(page("Aliases", listed, |a| {
        alias_configuration(a, &identity.region)
    }))
}
