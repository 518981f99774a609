//! The AWS Lambda REST API over Mayfly's host.
//!
//! The AWS CLI and boto3 work against it with `--endpoint-url`. Requests
//! are authenticated ([`auth`], SigV4), routed by one table ([`routes`]) to
//! one module per resource, and turned into typed calls on
//! [`mayfly_host::Host`]; answers and errors take Lambda's shapes
//! ([`error`]). No handler decides how an invocation runs: that is the
//! host's job.
//!
//! Resources: [`functions`] (with [`model`], the configuration's checks
//! and JSON), [`versions`], [`aliases`], [`concurrency`] (reserved and
//! account settings), [`provisioned`], [`event_config`], [`tags`],
//! [`permissions`] (the resource policy), [`urls`] (function URLs, served by
//! [`url_front`]), [`s3_events`] (object-store notifications, received on
//! the same listener), [`invoke`] and [`invocations`] (Mayfly's recent records),
//! and EventBridge Scheduler's [`schedules`]; shared helpers in
//! [`request`]; the listeners in [`server`], each connection's timeouts in
//! [`conn`], the body caps and limits in [`front`], and what every response
//! carries (a request id, errors in Lambda's shape) in [`edge`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aliases;
pub mod auth;
pub mod concurrency;
pub mod conn;
pub mod edge;
pub mod error;
pub mod event_config;
pub mod event_stream;
pub mod front;
pub mod functions;
pub mod invocations;
pub mod invoke;
pub mod invoke_stream;
pub mod mappings;
pub mod model;
pub mod permissions;
pub mod provisioned;
pub mod request;
pub mod routes;
pub mod s3_events;
pub mod schedules;
pub mod server;
pub mod streaming;
pub mod tags;
pub mod url_front;
pub mod urls;
pub mod versions;

use std::sync::Arc;

use mayfly_host::Host;
use mayfly_sigv4::Credentials;
use mayfly_store::Store;

use crate::auth::Gate;
use crate::front::{Front, FrontLimits};

/// What the API shares between requests.
#[derive(Debug)]
pub struct AppState {
    /// The engine.
    pub host: Arc<Host>,
    /// The host's store (the engine's, for configuration reads and
    /// writes).
    pub store: Store,
    /// The credentials and the front door's limits.
    pub gate: Arc<Gate>,
    /// Where function URLs are served.
    pub url_front: url_front::UrlFront,
}

impl AppState {
    /// The state over `host`, accepting requests signed with `credentials`,
    /// with the default limits.
    pub fn new(host: Arc<Host>, credentials: Credentials) -> SharedState {
        AppState::with_limits(host, credentials, FrontLimits::default())
    }

    /// The state over `host` with the front door's `limits`.
    pub fn with_limits(
        host: Arc<Host>,
        credentials: Credentials,
        limits: FrontLimits,
    ) -> SharedState {
        AppState::build(host, credentials, limits, url_front::UrlFront::default())
    }

    /// The state over `host` with the front door's `limits`, its function
    /// URLs served at `url_front`.
    pub fn build(
        host: Arc<Host>,
        credentials: Credentials,
        limits: FrontLimits,
        url_front: url_front::UrlFront,
    ) -> SharedState {
        Arc::new(AppState {
            url_front,
            store: host.store().clone(),
            host,
            gate: Arc::new(Gate {
                credentials,
                front: Front::new(limits),
            }),
        })
    }
}

/// The state as handlers receive it.
pub type SharedState = Arc<AppState>;
