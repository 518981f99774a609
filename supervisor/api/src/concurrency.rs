//! PutFunctionConcurrency, GetFunctionConcurrency,
//! DeleteFunctionConcurrency and GetAccountSettings.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::request::{blocking, parse_json};
use crate::{AppState, SharedState};
use mayfly_host::names::parse_function;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutConcurrency {
    reserved_concurrent_executions: u32,
}

/// `PUT /2017-10-31/functions/{name}/concurrency`.
pub async fn put(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let req: PutConcurrency = parse_json(&body)?;
    let n = req.reserved_concurrent_executions;
    state.host.put_reserved_concurrency(&f.name, n).await?;
    Ok(Json(json!({ "ReservedConcurrentExecutions": n })))
}

/// `GET /2019-09-30/functions/{name}/concurrency`.
pub async fn get(
    State(state): State<SharedState>,
    Path(param): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    state.store.get_version(&f.name, mayfly_store::LATEST)?;
    Ok(Json(
        match state.store.get_reserved_concurrency(&f.name)? {
            Some(n) => json!({ "ReservedConcurrentExecutions": n }),
            None => json!({}),
        },
    ))
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`.
pub async fn delete(
    State(state): State<SharedState>,
    Path(param): Path<String>,
) -> ApiResult<StatusCode> {
    let f = parse_function(&param, None)?;
    blocking(&state, move |state: &AppState| {
        state.store.get_version(&f.name, mayfly_store::LATEST)?;
        Ok(state.store.delete_reserved_concurrency(&f.name)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2016-08-19/account-settings`.
pub async fn account_settings(State(state): State<SharedState>) -> ApiResult<Json<Value>> {
    let limit = u64::from(state.host.max_concurrency());
    let reserved = state.store.total_reserved_concurrency(None)?;
    let mut total_code = 0u64;
    let mut count = 0u64;
    let mut marker: Option<String> = None;
    loop {
        let (page, next) = state.store.list_functions(marker.as_deref(), 50)?;
        for v in &page {
            total_code += v.code_size;
            count += 1;
        }
        match next {
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    // The memory fields are Mayfly's own: the AWS CLI and boto3 read only
    // the members of their model and skip these; raw clients see them.
    let memory = state.host.memory_limits();
    let usage = state.host.usage();
    Ok(Json(json!({
        "AccountLimit": {
            "TotalCodeSize": 80_530_636_800u64,
            "CodeSizeUnzipped": mayfly_proto::limits::UNZIPPED_PACKAGE_BYTES,
            "CodeSizeZipped": mayfly_proto::limits::ZIPPED_PACKAGE_BYTES,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": limit.saturating_sub(reserved),
            "MayflyMemoryBudgetMB": memory.budget_mb,
            "MayflyHostMemoryLimitMB": memory.host_limit_mb,
            "MayflyQemuOverheadMB": memory.overhead_mb,
        },
        "AccountUsage": {
            "TotalCodeSize": total_code,
            "FunctionCount": count,
            "MayflyVms": usage.vms,
            "MayflyMemoryInUseMB": usage.guest_mb,
            "MayflyHostMemoryInUseMB": usage.host_mb,
        },
    })))
}
