//! Provisioned concurrency: PutProvisionedConcurrencyConfig,
//! GetProvisionedConcurrencyConfig, DeleteProvisionedConcurrencyConfig and
//! ListProvisionedConcurrencyConfigs, over the warm pools of [`pool`].
//!
//! A configuration names a published version or an alias (never
//! `$LATEST`); the host then keeps that many VMs booted and waiting in
//! their first `GET /next`. Each still serves exactly one event.
//! Configurations count against the concurrency limits as Lambda counts
//! them: within the function's reserved concurrency when it has one, else
//! within what the account has left after every reservation and every other
//! unreserved function's provisioned concurrency.

pub mod pool;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use mayfly_store::{Kind, ProvisionedConfig, StoreError, LATEST};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Identity;
use super::error::{ApiError, ApiResult};
use super::names::{function_arn, parse_function, FunctionRef};
use super::{blocking, parse_json, resolve, AppState, SharedState};

pub use pool::{WarmPools, WarmVm};

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
                super::names::DEFAULT_REGION,
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

/// What a new configuration must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The account-wide limit.
    pub account_limit: u32,
    /// The function's reserved concurrency, if any.
    pub reserved: Option<u32>,
    /// The function's other configurations (other qualifiers), summed.
    pub same_function: u64,
    /// Every function's reserved concurrency, summed.
    pub all_reserved: u64,
    /// The configurations of functions without a reservation, other than
    /// this function's, summed.
    pub other_unreserved_provisioned: u64,
}

/// Whether `requested` more provisioned VMs fit; the error message if not.
pub fn check_budget(requested: u32, budget: &Budget) -> Result<(), String> {
    let wanted = budget.same_function + u64::from(requested);
    match budget.reserved {
        Some(reserved) if wanted > u64::from(reserved) => Err(format!(
            "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution \
             for function ({reserved}; its other provisioned configurations hold {}).",
            budget.same_function
        )),
        Some(_) => Ok(()),
        None => {
            let free = u64::from(budget.account_limit)
                .saturating_sub(budget.all_reserved)
                .saturating_sub(budget.other_unreserved_provisioned);
            if wanted > free {
                Err(format!(
                    "Specified ConcurrentExecutions for function is greater than account's unreserved \
                     concurrency [{free}] (its other provisioned configurations hold {}).",
                    budget.same_function
                ))
            } else {
                Ok(())
            }
        }
    }
}

fn budget_for(state: &AppState, function: &str, qualifier: &str) -> ApiResult<Budget> {
    let mut budget = Budget {
        account_limit: state.invoker.max_concurrency(),
        reserved: state.store.get_reserved_concurrency(function)?,
        same_function: 0,
        all_reserved: state.store.total_reserved_concurrency(None)?,
        other_unreserved_provisioned: 0,
    };
    for config in state.store.list_all_provisioned_configs()? {
        if config.function_name == function {
            if config.qualifier != qualifier {
                budget.same_function += u64::from(config.requested);
            }
        } else if state
            .store
            .get_reserved_concurrency(&config.function_name)?
            .is_none()
        {
            budget.other_unreserved_provisioned += u64::from(config.requested);
        }
    }
    Ok(budget)
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
            ApiError::validation(format!(
                "1 validation error detected: Value '{}' at 'provisionedConcurrentExecutions' failed \
                 to satisfy constraint: Member must have value greater than or equal to 1",
                req.provisioned_concurrent_executions
            ))
        })?;
    resolve(&state, &f, &identity.region)?;
    let config = blocking(&state, {
        let (name, qualifier) = (f.name.clone(), qualifier.clone());
        move |state: &AppState| {
            check_budget(n, &budget_for(state, &name, &qualifier)?)
                .map_err(ApiError::invalid_parameter)?;
            Ok(state.store.put_provisioned_config(&name, &qualifier, n)?)
        }
    })
    .await?;
    state.provisioned.set(&f.name, &qualifier, n);
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
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: \
             Member must have value between 1 and {MAX_LIST_ITEMS}"
        )));
    }
    let (page, next) =
        state
            .store
            .list_provisioned_configs(&f.name, query.marker.as_deref(), max)?;
    let items: Vec<Value> = page
        .iter()
        .map(|config| {
            let mut item = fields(config);
            let arn = function_arn(region, &config.function_name, Some(&config.qualifier));
            item.insert("FunctionArn".into(), json!(arn));
            Value::Object(item)
        })
        .collect();
    Ok(super::page("ProvisionedConcurrencyConfigs", items, next))
}

/// `DELETE /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=Q`:
/// the pool's VMs are killed before the answer.
pub async fn delete(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    Query(query): Query<ProvisionedQuery>,
) -> ApiResult<StatusCode> {
    let (f, qualifier) = published(&param, &query)?;
    blocking(&state, {
        let (name, qualifier) = (f.name.clone(), qualifier.clone());
        move |state: &AppState| Ok(state.store.delete_provisioned_config(&name, &qualifier)?)
    })
    .await?;
    state.provisioned.remove(&f.name, &qualifier).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            account_limit: 10,
            reserved: None,
            same_function: 0,
            all_reserved: 0,
            other_unreserved_provisioned: 0,
        }
    }

    #[test]
    fn reserved_concurrency_bounds_the_function() {
        let b = Budget {
            reserved: Some(3),
            same_function: 1,
            ..budget()
        };
        assert!(check_budget(2, &b).is_ok());
        assert!(check_budget(3, &b)
            .unwrap_err()
            .contains("reservedConcurrentExecution"));
    }

    #[test]
    fn unreserved_functions_share_what_is_left() {
        let b = Budget {
            all_reserved: 4,
            other_unreserved_provisioned: 3,
            same_function: 1,
            ..budget()
        };
        assert!(check_budget(2, &b).is_ok());
        assert!(check_budget(3, &b).unwrap_err().contains("[3]"));
        let full = Budget {
            all_reserved: 12,
            ..budget()
        };
        assert!(check_budget(1, &full).is_err());
    }

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
