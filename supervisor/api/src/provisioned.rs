//! Provisioned concurrency: PutProvisionedConcurrencyConfig,
//! GetProvisionedConcurrencyConfig, DeleteProvisionedConcurrencyConfig and
//! ListProvisionedConcurrencyConfigs, over the host's warm pools.
//!
//! A configuration names a published version or an alias (never
//! `$LATEST`); the host then keeps that many VMs booted and waiting in
//! their first `GET /next`. Each still serves exactly one event.
//! Configurations count against the concurrency limits as Lambda counts
//! them: within the function's reserved concurrency when it has one, else
//! within what the account has left after every reservation and every other
//! unreserved function's provisioned concurrency.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_store::{Kind, ProvisionedConfig, StoreError, LATEST};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::request::{invalid_value, parse_json, Query};
use crate::{AppState, SharedState};
use mayfly_host::names::{function_arn, parse_function, FunctionRef};

/// Lambda's answer to a configuration on `$LATEST` (or on no qualifier).
pub const UNPUBLISHED: &str =
    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.";
/// The page size of ListProvisionedConcurrencyConfigs (and its maximum).
const MAX_LIST_ITEMS: usize = 50;

/// The query of the provisioned-concurrency operations.
#[derive(Debug, Default, Deserialize)]
pub struct ProvisionedQuery {
    /// The version or alias.
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    /// `ALL`: ListProvisionedConcurrencyConfigs.
    #[serde(rename = "List")]
    list: Option<String>,
    /// The list's pagination marker.
    #[serde(rename = "Marker")]
    marker: Option<String>,
    /// The list's page size (1–50).
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutProvisioned {
    provisioned_concurrent_executions: i64,
}

/// 404 `ProvisionedConcurrencyConfigNotFoundException`.
fn config_not_found(f: &FunctionRef) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "ProvisionedConcurrencyConfigNotFoundException",
        message: format!(
            "No Provisioned Concurrency Config found for this function: {}",
            function_arn(
                mayfly_host::names::DEFAULT_REGION,
                &f.name,
                f.qualifier.as_deref()
            )
        ),
        reason: None,
    }
}

/// The function and its published qualifier; `$LATEST` or none is refused
/// as Lambda refuses it.
fn published(param: &str, query: &ProvisionedQuery) -> ApiResult<(FunctionRef, String)> {
    let f = parse_function(param, query.qualifier.as_deref())?;
    match f.qualifier.clone() {
        Some(q) if q != LATEST => Ok((f, q)),
        _ => Err(ApiError::invalid_parameter(UNPUBLISHED)),
    }
}

/// The fields every answer shares.
fn fields(config: &ProvisionedConfig) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert(
        "RequestedProvisionedConcurrentExecutions".into(),
        json!(config.requested),
    );
    // Every allocated VM is waiting for an event: all are available.
    map.insert(
        "AvailableProvisionedConcurrentExecutions".into(),
        json!(config.allocated),
    );
    map.insert(
        "AllocatedProvisionedConcurrentExecutions".into(),
        json!(config.allocated),
    );
    map.insert("Status".into(), json!(config.status.as_str()));
    if let Some(reason) = &config.status_reason {
        map.insert("StatusReason".into(), json!(reason));
    }
    map.insert("LastModified".into(), json!(config.last_modified));
    map
}

/// `PUT /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=Q`.
pub async fn put(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<ProvisionedQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let (f, qualifier) = published(&param, &query)?;
    let req: PutProvisioned = parse_json(&body)?;
    let n = u32::try_from(req.provisioned_concurrent_executions)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            invalid_value(
                req.provisioned_concurrent_executions,
                "provisionedConcurrentExecutions",
                "Member must have value greater than or equal to 1",
            )
        })?;
    state.host.resolve(&f, &identity.region)?;
    let config = state.host.put_provisioned(&f.name, &qualifier, n).await?;
    Ok((StatusCode::ACCEPTED, Json(Value::Object(fields(&config)))).into_response())
}

/// `GET /2019-09-30/functions/{name}/provisioned-concurrency`: with
/// `?Qualifier=Q` one configuration, with `?List=ALL` all of the function's.
pub async fn get(
    State(state): State<SharedState>,
    Extension(identity): Extension<Identity>,
    Path(param): Path<String>,
    Query(query): Query<ProvisionedQuery>,
) -> ApiResult<Json<Value>> {
    if query.list.is_some() {
        return list(&state, &identity.region, &param, &query);
    }
    let (f, qualifier) = published(&param, &query)?;
    match state.store.get_provisioned_config(&f.name, &qualifier) {
        Ok(config) => Ok(Json(Value::Object(fields(&config)))),
        Err(StoreError::NotFound {
            kind: Kind::ProvisionedConcurrencyConfig,
            ..
        }) => Err(config_not_found(&f)),
        Err(e) => Err(e.into()),
    }
}

fn list(
    state: &AppState,
    region: &str,
    param: &str,
    query: &ProvisionedQuery,
) -> ApiResult<Json<Value>> {
    let f = parse_function(param, None)?;
    let max = query.max_items.unwrap_or(MAX_LIST_ITEMS);
    if !(1..=MAX_LIST_ITEMS).contains(&max) {
        return Err(invalid_value(
            max,
            "maxItems",
            &format!("Member must have value between 1 and {MAX_LIST_ITEMS}"),
        ));
    }
    let listed = state
        .store
        .list_provisioned_configs(&f.name, query.marker.as_deref(), max)?;
    Ok(crate::request::page(
        "ProvisionedConcurrencyConfigs",
        listed,
        |config| {
            let mut item = fields(config);
            let arn = function_arn(region, &config.function_name, Some(&config.qualifier));
            item.insert("FunctionArn".into(), json!(arn));
            Value::Object(item)
        },
    ))
}

/// `DELETE /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=Q`:
/// the pool's VMs are killed before the answer.
pub async fn delete(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    Query(query): Query<ProvisionedQuery>,
) -> ApiResult<StatusCode> {
    let (f, qualifier) = published(&param, &query)?;
    state.host.delete_provisioned(&f.name, &qualifier).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_qualifiers() {
        let q = |qualifier: Option<&str>| ProvisionedQuery {
            qualifier: qualifier.map(str::to_string),
            ..ProvisionedQuery::default()
        };
        assert_eq!(published("echo", &q(Some("1"))).unwrap().1, "1");
        assert_eq!(published("echo", &q(Some("live"))).unwrap().1, "live");
        for bad in [None, Some("$LATEST")] {
            let e = published("echo", &q(bad)).unwrap_err();
            assert_eq!(e.code, "InvalidParameterValueException");
            assert_eq!(e.message, UNPUBLISHED);
        }
    }
}
