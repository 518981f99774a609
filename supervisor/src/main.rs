//! `mayfly`: the command line, and the wiring of Mayfly's crates.
//!
//! `mayfly run` boots one fresh VM for one event (`mayfly_vm`), `mayfly
//! exec` one for a plain Linux program; `mayfly
//! serve` runs the Lambda REST API (`mayfly_api`) over the engine
//! (`mayfly_host`) over the VM layer; `deploy`, `invoke`, `ls`, `rm` and
//! `logs` are clients of a host's API (`mayfly_client`).
#![forbid(unsafe_code)]

/// `eprintln!` that never panics: when stderr cannot be written (a log
/// file on a full disk), the line is lost and the server keeps running.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod exec_cmd;
mod front_args;
mod jail_arg;
mod run_cmd;
mod serve_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use mayfly_client::commands::{self, ClientCommand};
use mayfly_vm::accel::AccelRequest;
use tracing_subscriber::EnvFilter;

/// Exit status for bad input (as clap uses for bad arguments).
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "mayfly",
    version,
    about = "Lambda-style functions, each invocation in a fresh unikernel VM"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Boot one fresh VM for one event and print the function's response.
    Run(run_cmd::RunArgs),
    /// Run a static Linux program (not a function) in a fresh VM: its
    /// output passed through, its exit status returned.
    Exec(exec_cmd::ExecArgs),
    /// Serve the AWS Lambda REST API: each invocation in a fresh VM.
    Serve(serve_cmd::ServeArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AccelArg {
    /// KVM when it is real hardware virtualisation, TCG otherwise.
    Auto,
    /// KVM, or fail.
    Kvm,
    /// TCG (emulation), even where KVM works.
    Tcg,
}

impl From<AccelArg> for AccelRequest {
    fn from(arg: AccelArg) -> AccelRequest {
        match arg {
            AccelArg::Auto => AccelRequest::Auto,
            AccelArg::Kvm => AccelRequest::Kvm,
            AccelArg::Tcg => AccelRequest::Tcg,
        }
    }
}

pub(crate) fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    say!("mayfly: error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// A tokio runtime, or the reason there is none.
pub(crate) fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        say!("mayfly: error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // A log line that cannot be written is dropped: the subscriber would
    // otherwise report it with `eprintln!`, which panics on the same
    // unwritable stderr.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    if let Command::Serve(args) = cli.command {
        return serve_cmd::serve(args);
    }
    let runtime = match runtime(false) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run_cmd::run(args)),
        Command::Exec(args) => runtime.block_on(exec_cmd::exec(args)),
        Command::Serve(_) => unreachable!("handled above"),
        Command::Client(command) => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            ExitCode::from(runtime.block_on(commands::execute(command, &mut out, &mut err)))
        }
    }
}
