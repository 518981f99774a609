//! PutFunctionEventInvokeConfig, UpdateFunctionEventInvokeConfig,
//! GetFunctionEventInvokeConfig, DeleteFunctionEventInvokeConfig and
//! ListFunctionEventInvokeConfigs: retries, maximum event age and
//! destinations of asynchronous invocations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_store::{EventInvokeConfig, Store, LATEST};
use serde_json::{json, Map, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, invalid_value, page, parse_json};
use crate::request::{PageQuery, QualifierQuery, Query};
use crate::{AppState, SharedState};
use mayfly_host::names::{function_arn, parse_function, FunctionRef};

/// Checks the fields of a Put or Update request; returns them as stored.
fn check(body: &Value, store: &Store) -> ApiResult<Map<String, Value>> {
    let Some(fields) = body.as_object() else {
        return Err(ApiError::validation(
            "the request body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    if let Some(v) = fields.get("MaximumRetryAttempts").filter(|v| !v.is_null()) {
        match v.as_u64() {
            Some(n) if n <= 2 => out.insert("MaximumRetryAttempts".into(), json!(n)),
            _ => {
                return Err(invalid_value(
                    v,
                    "maximumRetryAttempts",
                    "Member must have value less than or equal to 2",
                ))
            }
        };
    }
    if let Some(v) = fields
        .get("MaximumEventAgeInSeconds")
        .filter(|v| !v.is_null())
    {
        match v.as_u64() {
            Some(n) if (60..=21600).contains(&n) => {
                out.insert("MaximumEventAgeInSeconds".into(), json!(n))
            }
            _ => {
                return Err(invalid_value(
                    v,
                    "maximumEventAgeInSeconds",
                    "Member must have value between 60 and 21600",
                ))
            }
        };
    }
    if let Some(destinations) = fields.get("DestinationConfig").filter(|v| !v.is_null()) {
        let mut checked = Map::new();
        for which in ["OnSuccess", "OnFailure"] {
            let Some(arn) = destinations
                .pointer(&format!("/{which}/Destination"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            let target = parse_function(arn, None)
                .ok()
                .filter(|_| arn.starts_with("arn:aws:lambda:"));
            let Some(target) = target else {
                return Err(ApiError::invalid_parameter(format!(
                    "The destination ARN {arn} is not supported: Mayfly delivers invocation records to \
                     Lambda functions (arn:aws:lambda:<region>:<account>:function:<name>)"
                )));
            };
            if store
                .resolve(&target.name, target.qualifier.as_deref())
                .is_err()
            {
                return Err(ApiError::invalid_parameter(format!(
                    "The destination function {arn} does not exist"
                )));
            }
            checked.insert(which.into(), json!({ "Destination": arn }));
        }
        out.insert("DestinationConfig".into(), Value::Object(checked));
    }
    Ok(out)
}

fn answer(config: &EventInvokeConfig, region: &str) -> Value {
    let mut body = match &config.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let qualifier = Some(config.qualifier.as_str());
    body.insert(
        "FunctionArn".into(),
        json!(function_arn(region, &config.function_name, qualifier)),
    );
    let seconds =
        mayfly_store::parse_timestamp_ms(&config.last_modified).map(|ms| ms as f64 / 1000.0);
    body.insert("LastModified".into(), json!(seconds.unwrap_or(0.0)));
    body.entry("DestinationConfig").or_insert_with(|| json!({}));
    Value::Object(body)
}

fn target(param: &str, query: &QualifierQuery) -> ApiResult<(FunctionRef, String)> {
    let f = parse_function(param, query.qualifier.as_deref())?;
    let qualifier = f.qualifier.clone().unwrap_or_else(|| LATEST.to_string());
    Ok((f, qualifier))
}

fn not_found(
    f: &FunctionRef,
    qualifier: &str,
    region: &str,
) -> impl Fn(mayfly_store::StoreError) -> ApiError {
    let arn = function_arn(region, &f.name, Some(qualifier));
    move |e| {
        if e.is_not_found() {
            ApiError::not_found(format!(
                "The function {arn} doesn't have an EventInvokeConfig"
            ))
        } else {
            e.into()
        }
    }
}

/// `PUT /2019-09-25/functions/{name}/event-invoke-config`: replaces.
pub async fn put(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    save(state, identity, &param, &query, &body, false).await
}

/// `POST /2019-09-25/functions/{name}/event-invoke-config`: merges into
/// an existing configuration.
pub async fn update(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    save(state, identity, &param, &query, &body, true).await
}

/// Checks the request's fields, then replaces the configuration with them
/// or (`merge`) merges them into the one there is.
async fn save(
    state: SharedState,
    identity: Identity,
    param: &str,
    query: &QualifierQuery,
    body: &[u8],
    merge: bool,
) -> ApiResult<Json<Value>> {
    let (f, qualifier) = target(param, query)?;
    let body: Value = parse_json(body)?;
    let region = identity.region.clone();
    let saved = blocking(&state, move |state: &AppState| {
        let fields = check(&body, &state.store)?;
        if !merge {
            let config = Value::Object(fields);
            return Ok(state
                .store
                .put_event_invoke_config(&f.name, &qualifier, config)?);
        }
        let missing = not_found(&f, &qualifier, &region);
        state
            .store
            .update_event_invoke_config(&f.name, &qualifier, |config| {
                if let Value::Object(map) = config {
                    map.extend(fields);
                }
            })
            .map_err(missing)
    })
    .await?;
    Ok(Json(answer(&saved, &identity.region)))
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config`.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<Json<Value>> {
    let (f, qualifier) = target(&param, &query)?;
    let config = state
        .store
        .get_event_invoke_config(&f.name, &qualifier)
        .map_err(not_found(&f, &qualifier, &identity.region))?;
    Ok(Json(answer(&config, &identity.region)))
}

/// `DELETE /2019-09-25/functions/{name}/event-invoke-config`.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<QualifierQuery>,
) -> ApiResult<StatusCode> {
    let (f, qualifier) = target(&param, &query)?;
    let region = identity.region.clone();
    blocking(&state, move |state: &AppState| {
        let missing = not_found(&f, &qualifier, &region);
        state
            .store
            .delete_event_invoke_config(&f.name, &qualifier)
            .map_err(missing)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config/list`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let listed =
        state
            .store
            .list_event_invoke_configs(&f.name, query.marker.as_deref(), query.size()?)?;
    Ok(page("FunctionEventInvokeConfigs", listed, |c| {
        answer(c, &identity.region)
    }))
}
