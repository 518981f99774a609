//! The route table: every operation of the API, its method and path, in
//! one place.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::Router;

use crate::error::ApiError;
use crate::{
    aliases, auth, concurrency, edge, event_config, functions, invocations, invoke, invoke_stream,
    mappings, permissions, provisioned, s3_events, schedules, tags, urls, versions, SharedState,
};

/// Every operation: its path and its handler for each method. The
/// service's version dates are part of the paths, as in AWS's API.
fn operations() -> Vec<(&'static str, MethodRouter<SharedState>)> {
    use functions as f;
    vec![
        ("/2015-03-31/functions", post(f::create).get(f::list)),
        (
            "/2015-03-31/functions/{name}",
            get(f::get).delete(f::delete),
        ),
        (
            "/2015-03-31/functions/{name}/configuration",
            get(f::get_configuration).put(f::update_configuration),
        ),
        ("/2015-03-31/functions/{name}/code", put(f::update_code)),
        (
            "/2015-03-31/functions/{name}/versions",
            post(versions::publish).get(versions::list),
        ),
        (
            "/2015-03-31/functions/{name}/aliases",
            post(aliases::create).get(aliases::list),
        ),
        (
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        ),
        (
            "/2015-03-31/functions/{name}/invocations",
            post(invoke::invoke),
        ),
        (
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(invoke_stream::invoke),
        ),
        (
            "/2017-10-31/functions/{name}/concurrency",
            put(concurrency::put).delete(concurrency::delete),
        ),
        (
            "/2019-09-30/functions/{name}/concurrency",
            get(concurrency::get),
        ),
        (
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            put(provisioned::put)
                .get(provisioned::get)
                .delete(provisioned::delete),
        ),
        (
            "/2016-08-19/account-settings",
            get(concurrency::account_settings),
        ),
        (
            "/2019-09-25/functions/{name}/event-invoke-config",
            put(event_config::put)
                .post(event_config::update)
                .get(event_config::get)
                .delete(event_config::delete),
        ),
        (
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(event_config::list),
        ),
        (
            "/2015-03-31/functions/{name}/policy",
            post(permissions::add).get(permissions::get),
        ),
        (
            "/2015-03-31/functions/{name}/policy/{sid}",
            delete(permissions::remove),
        ),
        (
            "/2021-10-31/functions/{name}/url",
            post(urls::create)
                .get(urls::get)
                .put(urls::update)
                .delete(urls::delete),
        ),
        ("/2021-10-31/functions/{name}/urls", get(urls::list)),
        (
            "/2017-03-31/tags/{arn}",
            post(tags::tag).get(tags::list).delete(tags::untag),
        ),
        (
            "/2015-03-31/event-source-mappings",
            post(mappings::create).get(mappings::list),
        ),
        (
            "/2015-03-31/event-source-mappings/{uuid}",
            get(mappings::get)
                .put(mappings::update)
                .delete(mappings::delete),
        ),
        // EventBridge Scheduler's, on the same endpoint.
        ("/schedules", get(schedules::list)),
        (
            "/schedules/{name}",
            post(schedules::create)
                .get(schedules::get)
                .put(schedules::update)
                .delete(schedules::delete),
        ),
        (
            "/mayfly/2025-01-01/functions/{name}/invocations",
            get(invocations::recent),
        ),
        (
            "/mayfly/2025-01-01/functions/{name}/notification-endpoint",
            get(s3_events::endpoint_of),
        ),
    ]
}

/// Paths that clients also send with a trailing slash.
const ALSO_WITH_SLASH: &[&str] = &[
    "/2015-03-31/functions",
    "/2016-08-19/account-settings",
    "/2015-03-31/event-source-mappings",
];

/// The API router over `state`.
pub fn router(state: SharedState) -> Router {
    let mut api = Router::new();
    for (path, handlers) in operations() {
        if ALSO_WITH_SLASH.contains(&path) {
            api = api.route(&format!("{path}/"), handlers.clone());
        }
        api = api.route(path, handlers);
    }
    let api = api
        .fallback(|| async { ApiError::unknown_operation() })
        .method_not_allowed_fallback(|| async { ApiError::unknown_operation() })
        .layer(axum::middleware::from_fn_with_state(
            state.gate.clone(),
            auth::authenticate,
        ))
        // The authentication middleware reads bodies, under their caps.
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(api)
        .layer(axum::middleware::from_fn(edge::edge))
        .with_state(state)
}

/// The `/metrics` router (unauthenticated: keep it on a loopback address).
pub fn metrics_router(state: SharedState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<SharedState>| async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    state.host.metrics().render(),
                )
            }),
        )
        .with_state(state)
}
