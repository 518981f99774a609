//! `mayfly serve`: arguments, and the wiring of store, credentials, VM
//! layer, host and API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use mayfly_api::front::FrontLimits;
use mayfly_api::server::{self, Listeners, ServeError};
use mayfly_api::url_front::UrlFront;
use mayfly_api::AppState;
use mayfly_client::credentials::{self, CredentialsError, Origin};
use mayfly_host::{Host, HostConfig, HostLimits};
use mayfly_sigv4::Credentials;
use mayfly_store::Store;
use mayfly_vm::accel::{self, Accel, AccelRequest};
use mayfly_vm::QemuRunner;
use thiserror::Error;

use crate::front_args::FrontArgs;
use crate::jail_arg::JailArg;
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
    /// Where function URLs are served (`off` for nowhere): by host name,
    /// `http://<url-id>.lambda-url.<region>.<url-domain>:<port>/`, or by
    /// path, `http://ADDR/lambda-url/<url-id>/`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9002")]
    url_listen: String,
    /// The domain function URLs are named under (`localhost` resolves to
    /// loopback in curl and browsers; a real deployment points a wildcard
    /// DNS name at the listener).
    #[arg(long, value_name = "DOMAIN", default_value = "localhost")]
    url_domain: String,
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
    /// The guest memory that running and warm VMs may hold at once, in MB
    /// (default: the host's RAM less a reserve of a quarter, at least
    /// 512 MB; QEMU's own overhead of about 40 MB a VM is held against
    /// that remainder too).
    #[arg(long, value_name = "MB")]
    memory_budget_mb: Option<u64>,
    /// Invocation records kept per function (the newest).
    #[arg(long, value_name = "N", default_value_t = mayfly_host::DEFAULT_RECORDS_PER_FUNCTION)]
    records_per_function: u32,
    /// Async events waiting per function; beyond it an `Event` invoke is
    /// answered 429.
    #[arg(long, value_name = "N", default_value_t = mayfly_host::DEFAULT_QUEUED_EVENTS_PER_FUNCTION)]
    max_queued_events: u32,
    /// Package uploads checked at once; beyond it an upload is answered 429.
    #[arg(long, value_name = "N", default_value_t = mayfly_host::DEFAULT_CONCURRENT_UPLOADS)]
    max_concurrent_uploads: u32,
    /// Limits on clients.
    #[command(flatten)]
    front: FrontArgs,
    /// The jail around each QEMU.
    #[arg(long, value_enum, default_value_t = JailArg::Auto)]
    jail: JailArg,
    /// The Linux kernel image Linux functions boot (default:
    /// target/images/linux.elf beside this binary, or
    /// $MAYFLY_LINUX_KERNEL). Without one, Linux functions can be deployed
    /// but not invoked.
    #[arg(long, value_name = "PATH")]
    linux_kernel: Option<PathBuf>,
    /// A destination functions may connect to, relayed by the host:
    /// CIDR[:PORTS], NAME[:PORTS] or `*`; `host.mayfly.internal[:PORTS]`
    /// for this host's loopback (functions connect to 10.0.2.2);
    /// repeatable. Default: none (no egress). The API and metrics ports
    /// are never reachable.
    #[arg(long = "egress", value_name = "RULE")]
    egress: Vec<String>,
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
    let url_listen = match args.url_listen.as_str() {
        "off" => None,
        addr => match addr.parse() {
            Ok(addr) => Some(addr),
            Err(e) => return crate::usage_error(format!("--url-listen {addr}: {e}")),
        },
    };
    if args.url_domain.is_empty()
        || !args
            .url_domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return crate::usage_error(format!(
            "--url-domain {}: a DNS name (letters, digits, '-' and '.')",
            args.url_domain
        ));
    }
    if args.max_concurrency == Some(0) {
        return crate::usage_error("--max-concurrency must be at least 1");
    }
    if args
        .memory_budget_mb
        .is_some_and(|mb| mb < u64::from(mayfly_proto::limits::MIN_MEMORY_MB))
    {
        return crate::usage_error(format!(
            "--memory-budget-mb must be at least {} (the smallest VM)",
            mayfly_proto::limits::MIN_MEMORY_MB
        ));
    }
    if args.records_per_function == 0
        || args.max_queued_events == 0
        || args.max_concurrent_uploads == 0
    {
        return crate::usage_error(
            "--records-per-function, --max-queued-events and --max-concurrent-uploads \
             must be at least 1",
        );
    }
    let limits = HostLimits {
        records_per_function: args.records_per_function,
        queued_events_per_function: args.max_queued_events,
        concurrent_uploads: args.max_concurrent_uploads,
        ..HostLimits::for_this_host(args.memory_budget_mb)
    };
    let front = match args.front.limits() {
        Ok(front) => front,
        Err(e) => return crate::usage_error(e),
    };
    let choice = match accel::detect(AccelRequest::from(args.accel)) {
        Ok(choice) => choice,
        Err(e) => return crate::usage_error(e),
    };
    say!("mayfly: accelerator {}: {}", choice.accel, choice.reason);
    let jail = match crate::jail_arg::detect(args.jail, choice.accel) {
        Ok(jail) => jail,
        Err(e) => return crate::usage_error(e),
    };
    say!("mayfly: {}", crate::jail_arg::summary(&jail));
    // A cold invocation should not wait for its VM's namespaces and
    // cgroup: two are kept cloned ahead.
    jail.keep_ready(2);
    let linux_kernel = mayfly_runner::linux::find_kernel(args.linux_kernel.as_deref());
    match &linux_kernel {
        Ok(kernel) => say!("mayfly: Linux functions boot {}", kernel.display()),
        Err(e) if args.linux_kernel.is_some() => return crate::usage_error(e),
        Err(e) => say!("mayfly: Linux functions cannot run: {e}"),
    }
    let egress_rules =
        match mayfly_egress::Rules::parse_each(args.egress.iter().map(String::as_str)) {
            Ok(rules) => rules,
            Err(e) => return crate::usage_error(format!("--egress: {e}")),
        };
    if egress_rules.is_empty() {
        say!("mayfly: egress: none (functions reach only their runtime API)");
    } else {
        say!("mayfly: egress: {egress_rules}");
    }
    let mut mayfly_ports = vec![args.listen.port()];
    mayfly_ports.extend(metrics_listen.map(|a: SocketAddr| a.port()));
    mayfly_ports.extend(url_listen.map(|a: SocketAddr| a.port()));
    let config = HostConfig {
        data_dir: args.data_dir,
        runner: Arc::new(QemuRunner::jailed(choice.accel, jail)),
        max_concurrency: args
            .max_concurrency
            .unwrap_or_else(mayfly_host::default_max_concurrency),
        retry_base_delay: Duration::from_millis(args.retry_base_delay_ms),
        limits,
        linux_kernel,
        egress: mayfly_runner::EgressPlan {
            host: egress_rules,
            function: None,
            mayfly_ports,
        },
    };
    let runtime = match crate::runtime(true) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(run(
        config,
        front,
        choice.accel,
        Listen {
            api: args.listen,
            metrics: metrics_listen,
            urls: url_listen,
            url_domain: args.url_domain,
        },
    )) {
        Ok(()) => {
            say!("mayfly: stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            say!("mayfly: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the service could not start or stopped.
#[derive(Debug, Error)]
enum StartError {
    /// The store could not be opened.
    #[error("cannot open the data directory {dir}: {source}")]
    Store {
        dir: PathBuf,
        source: mayfly_store::StoreError,
    },
    /// The credentials could not be loaded or created.
    #[error("{0}")]
    Credentials(#[from] CredentialsError),
    /// The image cache could not be created.
    #[error("cannot create the image cache: {0}")]
    Images(std::io::Error),
    /// The API could not be served.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Where `mayfly serve` listens.
struct Listen {
    api: SocketAddr,
    metrics: Option<SocketAddr>,
    urls: Option<SocketAddr>,
    url_domain: String,
}

/// Opens the store, the credentials and the host, then serves the API.
async fn run(
    config: HostConfig,
    front: FrontLimits,
    accel: Accel,
    listen: Listen,
) -> Result<(), StartError> {
    let dir = config.data_dir.clone();
    let store_error = |source| StartError::Store {
        dir: dir.clone(),
        source,
    };
    let store = Store::open(&config.data_dir).map_err(store_error)?;
    let recovered = store.recover_after_restart().map_err(store_error)?;
    if recovered > 0 {
        tracing::warn!(
            recovered,
            "events whose run was cut short by the previous process will run again"
        );
    }
    let (credentials, origin) = credentials::load_or_create(&config.data_dir)?;
    announce_credentials(&credentials, &origin);
    let host = Host::new(store, &config).map_err(StartError::Images)?;
    let swept = mayfly_vm::sweep::kill_orphans(host.images_dir());
    if swept > 0 {
        say!("mayfly: killed {swept} QEMU process(es) left by a previous run");
    }
    let listeners = Listeners::bind(listen.api, listen.metrics, listen.urls).await?;
    if let Some(addr) = listeners.metrics_addr()? {
        say!("mayfly: metrics on http://{addr}/metrics");
    }
    let url_front = match listeners.urls_addr()? {
        Some(addr) => {
            say!(
                "mayfly: function URLs on http://{addr}/ (http://<url-id>.lambda-url.<region>.{}:{}/)",
                listen.url_domain,
                addr.port()
            );
            UrlFront {
                domain: listen.url_domain,
                port: addr.port(),
            }
        }
        None => UrlFront {
            domain: listen.url_domain,
            ..UrlFront::default()
        },
    };
    host.start();
    let memory = config.limits.memory;
    say!(
        "mayfly: serving the Lambda API on http://{} (accelerator {accel}, at most {} VMs at once, \
         memory budget {} MB of guest memory, {} MB for VMs with QEMU's overhead)",
        listeners.api_addr()?,
        config.max_concurrency,
        memory.budget_mb,
        memory.host_limit_mb
    );
    say!("mayfly: {}", crate::front_args::describe(&front));
    let state = AppState::build(host, credentials, front, url_front);
    Ok(server::serve(listeners, state, shutdown_signal()).await?)
}

fn announce_credentials(credentials: &Credentials, origin: &Origin) {
    match origin {
        Origin::Generated(path) => say!(
            "mayfly: generated credentials (saved to {}, readable by you only):\n  \
             AWS_ACCESS_KEY_ID={}\n  AWS_SECRET_ACCESS_KEY={}",
            path.display(),
            credentials.access_key_id,
            credentials.secret_access_key
        ),
        Origin::File(path) => say!(
            "mayfly: using the credentials in {} (access key {})",
            path.display(),
            credentials.access_key_id
        ),
        Origin::Environment => say!(
            "mayfly: using the credentials from MAYFLY_ACCESS_KEY_ID (access key {})",
            credentials.access_key_id
        ),
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
    say!("mayfly: shutting down");
}
