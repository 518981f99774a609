//! The listeners: the API (authenticated) and `/metrics`, and a graceful
//! stop that lets in-flight requests drain.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;

use crate::routes::{metrics_router, router};
use crate::SharedState;

/// How long a stopping server waits for in-flight requests.
pub const DRAIN: Duration = Duration::from_secs(10);

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
}

impl Listeners {
    /// Binds the API's address and, if given, the metrics address.
    pub async fn bind(
        api: SocketAddr,
        metrics: Option<SocketAddr>,
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
        Ok(Listeners { api, metrics })
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

/// Serves the API until `shutdown` completes, then stops accepting and
/// lets in-flight requests finish for [`DRAIN`]; past that (or on a
/// second Ctrl-C) they are dropped, and dropping an invocation kills its
/// VM.
pub async fn serve(
    listeners: Listeners,
    state: SharedState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(metrics) = listeners.metrics {
        let app = metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, app).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let graceful = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let serving = axum::serve(listeners.api, router(state)).with_graceful_shutdown(graceful);
    let deadline = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::select! {
            _ = tokio::time::sleep(DRAIN) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tokio::select! {
        result = serving => result.map_err(ServeError::Serve),
        _ = deadline => {
            // Not `eprintln!`, which panics when stderr cannot be written.
            let _ = writeln!(
                std::io::stderr(),
                "mayfly: invocations still running after {} s are ended",
                DRAIN.as_secs()
            );
            Ok(())
        }
    }
}
