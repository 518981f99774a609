//! `mayfly serve`: arguments and start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mayfly::accel::{self, AccelRequest};
use mayfly::serve::{self, ServeConfig};

use crate::AccelArg;

/// `mayfly serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the Lambda API listens.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The data directory: store, packages, credentials.
    #[arg(long, value_name = "DIR", default_value = "./.mayfly")]
    data_dir: PathBuf,
    /// Where Prometheus metrics are served, unauthenticated (`off` for
    /// nowhere). Keep it on a loopback address.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9464")]
    metrics_listen: String,
    /// The most VMs running at once (default: from the host's memory and
    /// cores).
    #[arg(long, value_name = "N")]
    max_concurrency: Option<u32>,
    /// The delay before the first retry of a failed async event, in
    /// milliseconds (Lambda waits about a minute; the next retry waits
    /// twice as long).
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    retry_base_delay_ms: u64,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn serve(args: ServeArgs) -> ExitCode {
    let metrics_listen = match args.metrics_listen.as_str() {
        "off" => None,
        addr => match addr.parse() {
            Ok(addr) => Some(addr),
            Err(e) => return crate::usage_error(format!("--metrics-listen {addr}: {e}")),
        },
    };
    if args.max_concurrency == Some(0) {
        return crate::usage_error("--max-concurrency must be at least 1");
    }
    let choice = match accel::detect(AccelRequest::from(args.accel)) {
        Ok(choice) => choice,
        Err(e) => return crate::usage_error(e),
    };
    eprintln!("mayfly: accelerator {}: {}", choice.accel, choice.reason);
    let config = ServeConfig {
        listen: args.listen,
        metrics_listen,
        data_dir: args.data_dir,
        accel: choice.accel,
        max_concurrency: args
            .max_concurrency
            .unwrap_or_else(serve::default_max_concurrency),
        retry_base_delay: Duration::from_millis(args.retry_base_delay_ms),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mayfly: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(config, shutdown_signal())) {
        Ok(()) => {
            eprintln!("mayfly: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mayfly: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("mayfly: shutting down");
}
