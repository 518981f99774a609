//! Mayfly's own endpoint for recent invocation records (what `mayfly
//! logs` shows), in the store's record's wire form.

use axum::extract::{Path, State};
use axum::Json;
use mayfly_host::names::parse_function;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::request::Query;
use crate::SharedState;

/// `?Limit=`.
#[derive(Debug, Deserialize)]
pub struct LimitQuery {
    /// How many records, newest first (default 20, at most 1000).
    #[serde(rename = "Limit")]
    limit: Option<usize>,
}

/// `GET /mayfly/2025-01-01/functions/{name}/invocations`: recent
/// invocation records, newest first.
pub async fn recent(
    State(state): State<SharedState>,
    Path(param): Path<String>,
    Query(query): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    let f = parse_function(&param, None)?;
    let limit = query.limit.unwrap_or(20).clamp(1, 1000);
    let records = state.store.list_invocations(&f.name, limit)?;
    Ok(Json(json!({ "Invocations": records })))
}
