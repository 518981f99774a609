//! Starting and stopping the service.

use std::sync::Arc;

use mayfly_store::Store;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::code::ImageCache;
use super::invoker::Invoker;
use super::{events, metrics_router, router, AppState, ServeConfig};
use crate::credentials::{self, Origin};

/// Why the service could not start or stopped.
#[derive(Debug, Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("cannot open the data directory {dir}: {source}")]
    Store {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Why.
        source: mayfly_store::StoreError,
    },
    /// The credentials could not be loaded or created.
    #[error("{0}")]
    Credentials(#[from] credentials::CredentialsError),
    /// A listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The image cache could not be created.
    #[error("cannot create the image cache: {0}")]
    Images(std::io::Error),
    /// The server failed while running.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the service until `shutdown` completes.
pub async fn run(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = Store::open(&config.data_dir).map_err(|source| ServeError::Store {
        dir: config.data_dir.clone(),
        source,
    })?;
    let recovered = store
        .recover_after_restart()
        .map_err(|source| ServeError::Store {
            dir: config.data_dir.clone(),
            source,
        })?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "events whose run was cut short by the previous process will run again"
        );
    }
    let (credentials, origin) = credentials::load_or_create(&config.data_dir)?;
    match &origin {
        Origin::Generated(path) => eprintln!(
            "mayfly: generated credentials (saved to {}, readable by you only):\n  \
             AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}",
            path.display(),
            credentials.access_key_id,
            credentials.secret_access_key
        ),
        Origin::File(path) => eprintln!(
            "mayfly: using the credentials in {} (access key {})",
            path.display(),
            credentials.access_key_id
        ),
        Origin::Environment => eprintln!(
            "mayfly: using the credentials from MAYFLY_ACCESS_KEY_ID (access key {})",
            credentials.access_key_id
        ),
    }
    let images = ImageCache::new(&config.data_dir).map_err(ServeError::Images)?;
    let swept = super::sweep::kill_orphans(images.dir());
    if swept > 0 {
        eprintln!("mayfly: killed {swept} QEMU process(es) left by a previous run");
    }
    let invoker = Arc::new(Invoker::new(
        store.clone(),
        images,
        config.accel,
        config.max_concurrency,
    ));
    let state = Arc::new(AppState {
        provisioned: super::provisioned::WarmPools::new(store.clone(), invoker.clone()),
        store,
        credentials,
        invoker,
        events_ready: Notify::new(),
        retry_base_delay: config.retry_base_delay,
    });

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(ServeError::Serve)?;
    if let Some(addr) = config.metrics_listen {
        let metrics = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen { addr, source })?;
        let app = metrics_router(state.clone());
        eprintln!(
            "mayfly: metrics on http://{}/metrics",
            metrics.local_addr().map_err(ServeError::Serve)?
        );
        tokio::spawn(async move {
            if let Err(e) = axum::serve(metrics, app).await {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
    }
    tokio::spawn(events::worker(state.clone()));
    tokio::spawn(state.provisioned.clone().restore());
    eprintln!(
        "mayfly: serving the Lambda API on http://{local} (accelerator {}, at most {} VMs at once)",
        config.accel, config.max_concurrency
    );
    // On the signal, stop accepting and let in-flight requests finish for a
    // while; past that (or on a second Ctrl-C), drop them: dropping an
    // invocation kills its VM.
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let graceful = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let serving = axum::serve(listener, router(state)).with_graceful_shutdown(graceful);
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
            eprintln!("mayfly: invocations still running after {} s are ended", DRAIN.as_secs());
            Ok(())
        }
    }
}

/// How long a stopping server waits for in-flight requests.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);
