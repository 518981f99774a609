//! What every handler shares: the common query strings, JSON bodies, List
//! pages, Lambda's "validation error detected" messages, and running
//! blocking store work off the async workers.

use axum::extract::FromRequestParts;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::{AppState, SharedState};

/// A query string parsed into `T`; one that does not parse is answered
/// with Lambda's `ValidationException` (axum's own `Query` answers plain
/// text that names Rust types).
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or("")).map(Query)
    }
}

/// Parses a query string (without `?`) into `T`.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    serde_urlencoded::from_str(query).map_err(|e| {
        ApiError::validation(format!(
            "The query string is not valid for this operation: {e}"
        ))
    })
}

/// `?Qualifier=`.
#[derive(Debug, Default, Deserialize)]
pub struct QualifierQuery {
    /// The version or alias.
    #[serde(rename = "Qualifier")]
    pub qualifier: Option<String>,
}

/// `?Marker=&MaxItems=`.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    /// Where the previous page ended.
    #[serde(rename = "Marker")]
    pub marker: Option<String>,
    /// Page size, 1 to 50.
    #[serde(rename = "MaxItems")]
    pub max_items: Option<usize>,
    /// ListAliases: only aliases of this version.
    #[serde(rename = "FunctionVersion")]
    pub function_version: Option<String>,
}

impl PageQuery {
    /// The page size, capped at Lambda's 50.
    pub fn size(&self) -> ApiResult<usize> {
        match self.max_items {
            None => Ok(50),
            Some(n) if (1..=10_000).contains(&n) => Ok(n.min(50)),
            Some(n) => Err(invalid_value(
                n,
                "maxItems",
                "Member must have value between 1 and 10000",
            )),
        }
    }
}

/// Lambda's answer to one bad field:
/// `1 validation error detected: Value 'V' at 'field' failed to satisfy
/// constraint: ...` (`ValidationException`).
pub fn invalid_value(value: impl std::fmt::Display, field: &str, constraint: &str) -> ApiError {
    ApiError::validation(mayfly_host::names::validation_message(
        value, field, constraint,
    ))
}

/// A page of a List operation from what the store listed (its items and
/// the next marker), each item rendered: `{"<key>": [...], "NextMarker":
/// ...}`, the marker only when there is a next page.
pub fn page<T>(
    key: &str,
    (items, next): (Vec<T>, Option<String>),
    render: impl Fn(&T) -> serde_json::Value,
) -> axum::Json<serde_json::Value> {
    let mut body = serde_json::Map::new();
    let items = items.iter().map(render).collect();
    body.insert(key.to_string(), serde_json::Value::Array(items));
    if let Some(next) = next {
        body.insert("NextMarker".into(), serde_json::Value::String(next));
    }
    axum::Json(serde_json::Value::Object(body))
}

/// Parses a JSON request body.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!(
            "the request body is not valid for this operation: {e}"
        ))
    })
}

/// Runs blocking store work (writes fsync) off the async workers.
pub async fn blocking<T: Send + 'static>(
    state: &SharedState,
    f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "a store task failed");
            ApiError::service(crate::error::INTERNAL_MESSAGE)
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_parse_or_answer_lambdas_error() {
        let q: PageQuery = parse_query("Marker=m&MaxItems=5").unwrap();
        assert_eq!((q.marker.as_deref(), q.max_items), (Some("m"), Some(5)));
        let q: QualifierQuery = parse_query("").unwrap();
        assert!(q.qualifier.is_none());
        for bad in [
            "MaxItems=many",
            "MaxItems=-1",
            "MaxItems=99999999999999999999999",
        ] {
            let e = parse_query::<PageQuery>(bad).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "ValidationException"),
                "{bad}"
            );
            for internal in ["usize", "u64", "PageQuery", "::"] {
                assert!(!e.message.contains(internal), "{bad}: {}", e.message);
            }
        }
        let e = parse_query::<QualifierQuery>("Qualifier=1&Qualifier=2").unwrap_err();
        assert_eq!(e.code, "ValidationException");
    }
}
