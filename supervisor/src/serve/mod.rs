//! `mayfly serve`: the AWS Lambda REST API over the VM layer.
//!
//! The AWS CLI and boto3 work against it with `--endpoint-url`. Function
//! configurations, versions, aliases, concurrency settings, invocation
//! records and the async event queue live in the store under the data
//! directory; packages are content-addressed blobs beside it. Every
//! invocation, whatever starts it, goes through [`invoker::Invoker`] and
//! from there through [`crate::invoke`]: one fresh VM per event.
//!
//! Modules: [`auth`] (SigV4), [`error`] (Lambda's error shape), [`names`]
//! (names and ARNs), [`model`] (configuration), [`code`] (packages),
//! [`functions`], [`versions`], [`concurrency`], [`invoke`] (the
//! operations), [`invoker`] (slots, runs, records), [`events`] (the async
//! queue), [`metrics`].

pub mod auth;
pub mod code;
pub mod concurrency;
pub mod error;
pub mod event_config;
pub mod events;
pub mod functions;
pub mod invoke;
pub mod invoker;
pub mod metrics;
pub mod model;
pub mod names;
pub mod provisioned;
mod server;
pub mod sweep;
pub mod versions;

pub use server::run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use axum::Router;
use mayfly_sigv4::Credentials;
use mayfly_store::Store;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::accel::Accel;
use error::{ApiError, ApiResult};
use invoker::Invoker;

/// What the service shares between requests.
#[derive(Debug)]
pub struct AppState {
    /// The embedded store.
    pub store: Store,
    /// The host's credentials.
    pub credentials: Credentials,
    /// Runs invocations.
    pub invoker: Arc<Invoker>,
    /// Woken when an event is queued.
    pub events_ready: Notify,
    /// The first retry delay of a failed async event.
    pub retry_base_delay: Duration,
    /// The warm pools of provisioned concurrency.
    pub provisioned: Arc<provisioned::WarmPools>,
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;

/// Runs blocking store work (writes fsync) off the async workers.
pub async fn blocking<T: Send + 'static>(
    state: &SharedState,
    f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| ApiError::service(format!("a store task failed: {e}")))?
}

/// Resolves a function reference to its version (and alias routing);
/// 404 with Lambda's message when it does not exist.
pub fn resolve(
    state: &AppState,
    f: &names::FunctionRef,
    region: &str,
) -> ApiResult<mayfly_store::Resolved> {
    state
        .store
        .resolve(&f.name, f.qualifier.as_deref())
        .map_err(|e| {
            if e.is_not_found() {
                let arn = names::function_arn(region, &f.name, f.qualifier.as_deref());
                ApiError::not_found(format!("Function not found: {arn}"))
            } else {
                e.into()
            }
        })
}

/// A page of a List operation: `{"<key>": [...], "NextMarker": ...}`, the
/// marker only when there is a next page.
pub fn page(
    key: &str,
    items: Vec<serde_json::Value>,
    next: Option<String>,
) -> axum::Json<serde_json::Value> {
    let mut body = serde_json::Map::new();
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

/// How to run the service.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Where `/metrics` listens (unauthenticated), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The accelerator.
    pub accel: Accel,
    /// The account-wide limit on running VMs.
    pub max_concurrency: u32,
    /// The first retry delay of a failed async event.
    pub retry_base_delay: Duration,
}

/// The API router over `state`.
pub fn router(state: SharedState) -> Router {
    let api = Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/",
            post(functions::create).get(functions::list),
        )
        .route(
            "/2015-03-31/functions/{name}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(versions::publish).get(versions::list),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(versions::create_alias).get(versions::list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(versions::get_alias)
                .put(versions::update_alias)
                .delete(versions::delete_alias),
        )
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(concurrency::put).delete(concurrency::delete),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            put(provisioned::put)
                .get(provisioned::get)
                .delete(provisioned::delete),
        )
        .route(
            "/2016-08-19/account-settings",
            get(concurrency::account_settings),
        )
        .route(
            "/2016-08-19/account-settings/",
            get(concurrency::account_settings),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            put(event_config::put)
                .post(event_config::update)
                .get(event_config::get)
                .delete(event_config::delete),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_config::list),
        )
        .route(
            "/mayfly/2025-01-01/functions/{name}/invocations",
            get(invoke::recent),
        )
        .fallback(|| async { ApiError::unknown_operation() })
        .method_not_allowed_fallback(|| async { ApiError::unknown_operation() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .with_state(state)
}

/// The `/metrics` router.
pub fn metrics_router(state: SharedState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<SharedState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    state.invoker.metrics.render(),
                )
            }),
        )
        .with_state(state)
}

/// A sensible account-wide concurrency limit for this host: as many VMs as
/// fit in three quarters of its memory at 128 MB (plus about 48 MB of QEMU
/// each), and no more than 8 per core.
pub fn default_max_concurrency() -> u32 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u64;
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(4096);
    let by_memory = mem_mb * 3 / 4 / (128 + 48);
    by_memory.min(cores * 8).max(1) as u32
}
