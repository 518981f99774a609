//! The listeners: the API (authenticated), `/metrics` and the function
//! URLs ([`crate::url_front`]), and a graceful stop that lets in-flight
//! requests drain.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::conn;
use crate::routes::{metrics_router, router};
use crate::url_front::{url_router, Peer};
use crate::SharedState;

/// How long a stopping server waits for in-flight requests.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The pause after a failed `accept` (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the API could not be served.
#[derive(Debug, Error)]
pub enum ServeError {
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// The API's listening sockets, bound before anything is served so that
/// the caller can report the addresses.
#[derive(Debug)]
pub struct Listeners {
    api: TcpListener,
    metrics: Option<TcpListener>,
    urls: Option<TcpListener>,
}

impl Listeners {
    /// Binds the API's address and, if given, the metrics and function
    /// URL addresses.
    pub async fn bind(
        api: SocketAddr,
        metrics: Option<SocketAddr>,
        urls: Option<SocketAddr>,
    ) -> Result<Listeners, ServeError> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Listen { addr, source })
        };
        let api = bind(api).await?;
        let metrics = match metrics {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let urls = match urls {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { api, metrics, urls })
    }

    /// The function URLs' address, if they are served.
    pub fn urls_addr(&self) -> Result<Option<SocketAddr>, ServeError> {
        self.urls
            .as_ref()
            .map(|m| m.local_addr().map_err(ServeError::Serve))
            .transpose()
    }

    /// The API's address.
    pub fn api_addr(&self) -> Result<SocketAddr, ServeError> {
        self.api.local_addr().map_err(ServeError::Serve)
    }

    /// The metrics address, if metrics are served.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ServeError> {
        self.metrics
            .as_ref()
            .map(|m| m.local_addr().map_err(ServeError::Serve))
            .transpose()
    }
}

/// Connections to `/metrics` open at once.
const METRICS_CONNECTIONS: usize = 16;

/// At most this many over-cap connections are being answered at once;
/// beyond, they are closed without an answer.
const MAX_REFUSALS: usize = 64;

/// Serves the API until `shutdown` completes, then stops accepting and
/// lets in-flight requests finish for [`DRAIN`]; past that (or on a
/// second Ctrl-C) they are dropped, and dropping an invocation kills its
/// VM.
///
/// Each connection gets the header, body and idle timeouts of the state's
/// [`crate::front::FrontLimits`]; one beyond `max_connections` is answered
/// 429 and closed at once.
pub async fn serve(
    listeners: Listeners,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let limits = state.gate.front.limits.clone();
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    if let Some(metrics) = listeners.metrics {
        let app = metrics_router(state.clone());
        tokio::spawn(serve_side(
            metrics,
            app,
            limits.clone(),
            stopping.clone(),
            METRICS_CONNECTIONS,
        ));
    }
    if let Some(urls) = listeners.urls {
        let app = url_router(state.clone());
        let max = limits.max_connections;
        tokio::spawn(serve_side(urls, app, limits.clone(), stopping.clone(), max));
    }
    let app = router(state);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listeners.api.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, mostly: the clients already
                    // connected keep being served; try again shortly.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        match connections.clone().try_acquire_owned() {
            Ok(permit) => {
                let (app, limits, stopping) = (app.clone(), limits.clone(), stopping.clone());
                tokio::spawn(async move {
                    conn::serve(stream, app, limits, stopping).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection refused: too many open"
                );
                if let Ok(permit) = refusals.clone().try_acquire_owned() {
                    let max = limits.max_connections;
                    tokio::spawn(async move {
                        conn::refuse(stream, max).await;
                        drop(permit);
                    });
                }
            }
        }
    }
    drop(listeners.api);
    let _ = stopping_tx.send(true);
    // Every connection holds a permit until it ends: all of them back
    // means all connections are done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    tokio::select! {
        _ = connections.acquire_many(all) => {}
        _ = tokio::time::sleep(DRAIN) => {
            // Not `eprintln!`, which panics when stderr cannot be written.
            let _ = writeln!(
                std::io::stderr(),
                "mayfly: invocations still running after {} s are ended",
                DRAIN.as_secs()
            );
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

/// Serves a listener beside the API (`/metrics`, the function URLs) with
/// the API's timeouts and a cap of its own on connections (beyond it a
/// connection is closed at once): a slow client there must not take the
/// descriptors the API needs. Each request carries its client's address
/// ([`Peer`]).
async fn serve_side(
    listener: TcpListener,
    app: axum::Router,
    limits: crate::front::FrontLimits,
    stopping: tokio::sync::watch::Receiver<bool>,
    max_connections: usize,
) {
    let connections = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let app = app.clone().layer(axum::Extension(Peer(peer)));
        let (limits, stopping) = (limits.clone(), stopping.clone());
        tokio::spawn(async move {
            conn::serve(stream, app, limits, stopping).await;
            drop(permit);
        });
    }
}
