//! `mayfly`: the command line. `mayfly run` boots one fresh VM for one
//! event; `deploy`, `invoke`, `ls`, `rm` and `logs` are clients of a host's
//! Lambda REST API (see `mayfly::commands`); the service (`mayfly serve`)
//! will join them as another subcommand.

mod serve_cmd;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mayfly::accel::{self, AccelRequest};
use mayfly::commands::{self, ClientCommand};
use mayfly::invoke::{self, InvocationOutcome, InvocationRequest, InvocationResult, InvokeError};
use mayfly::package;
use mayfly::report::{self, Report};
use tracing_subscriber::EnvFilter;

/// Lambda's limit on a synchronous invocation's payload.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;
/// Exit status for bad input (as clap uses for bad arguments).
const EXIT_USAGE: u8 = 2;
/// Exit status after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

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
    Run(RunArgs),
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

#[derive(Debug, Args)]
struct RunArgs {
    /// The function: an image.elf, or a package.zip whose `bootstrap` is one.
    image: PathBuf,
    /// The event, as JSON (default `{}`).
    #[arg(long, conflicts_with = "event_file")]
    event: Option<String>,
    /// Read the event (JSON) from a file.
    #[arg(long, value_name = "PATH")]
    event_file: Option<PathBuf>,
    /// Memory of the VM in MB (128 to 10240).
    #[arg(long, value_name = "MB", default_value_t = 128)]
    memory: u32,
    /// Timeout in seconds (1 to 900).
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    timeout: u32,
    /// An environment variable for the function; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
}

/// `mayfly run`'s input, checked.
#[derive(Debug, PartialEq)]
struct RunInput {
    event: Vec<u8>,
    memory_mb: u32,
    timeout: Duration,
    env: Vec<(String, String)>,
}

/// Checks `mayfly run`'s arguments as Lambda would check a function's
/// configuration and payload. `event_file` is the content of `--event-file`.
fn check_run_input(args: &RunArgs, event_file: Option<Vec<u8>>) -> Result<RunInput, String> {
    if !(128..=10240).contains(&args.memory) {
        return Err(format!(
            "--memory {} is out of range: Lambda allows 128 to 10240 MB",
            args.memory
        ));
    }
    if !(1..=900).contains(&args.timeout) {
        return Err(format!(
            "--timeout {} is out of range: Lambda allows 1 to 900 seconds",
            args.timeout
        ));
    }
    let mut event = match (&args.event, event_file) {
        (Some(json), _) => json.clone().into_bytes(),
        (None, Some(bytes)) => bytes,
        (None, None) => Vec::new(),
    };
    if event.iter().all(u8::is_ascii_whitespace) {
        event = b"{}".to_vec();
    }
    if event.len() > MAX_EVENT_BYTES {
        return Err(format!(
            "the event is {} bytes, over Lambda's limit of {MAX_EVENT_BYTES}",
            event.len()
        ));
    }
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&event) {
        return Err(format!("the event is not valid JSON: {e}"));
    }
    let mut env = Vec::new();
    for pair in &args.env {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--env {pair:?} is not of the form KEY=VALUE"))?;
        env.push((key.to_owned(), value.to_owned()));
    }
    mayfly_proto::boot::validate_env(&env).map_err(|e| e.to_string())?;
    Ok(RunInput {
        event,
        memory_mb: args.memory,
        timeout: Duration::from_secs(args.timeout.into()),
        env,
    })
}

/// The function's name: the image's file stem, as Lambda names a function.
fn function_name(image: &Path) -> String {
    image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "function".to_owned())
}

pub(crate) fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("mayfly: error: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let cli = match cli.command {
        Command::Serve(args) => return serve_cmd::serve(args),
        command => Cli { command },
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mayfly: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run(args) => runtime.block_on(run(args)),
        Command::Serve(_) => unreachable!("handled above"),
        Command::Client(command) => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            ExitCode::from(runtime.block_on(commands::execute(command, &mut out, &mut err)))
        }
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let event_file = match &args.event_file {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) => return usage_error(format!("cannot read {}: {e}", path.display())),
        },
        None => None,
    };
    let input = match check_run_input(&args, event_file) {
        Ok(input) => input,
        Err(message) => return usage_error(message),
    };
    let image = match package::load(&args.image) {
        Ok(image) => image,
        Err(e) => return usage_error(e),
    };
    let choice = match accel::detect(args.accel.into()) {
        Ok(choice) => choice,
        Err(e) => return usage_error(e),
    };
    tracing::debug!(accel = %choice.accel, reason = %choice.reason, "accelerator");

    let name = function_name(&args.image);
    let request = InvocationRequest {
        image: image.path().to_path_buf(),
        event: input.event,
        memory_mb: input.memory_mb,
        timeout: input.timeout,
        env: input.env,
        invoked_arn: format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
        function_name: name,
        function_version: "$LATEST".to_owned(),
        request_id: uuid::Uuid::new_v4().to_string(),
        accel: choice.accel,
    };
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler Ctrl-C kills the process; PDEATHSIG then
            // kills QEMU. Never report a cancellation that did not happen.
            std::future::pending::<()>().await;
        }
    };
    let outcome = match invoke::invoke_until(&request, interrupted).await {
        Ok(outcome) => outcome,
        Err(InvokeError::Cancelled) => {
            eprintln!("mayfly: interrupted; the VM was killed");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
        Err(e) => {
            eprintln!("mayfly: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(image);
    print_outcome(&request, &outcome)
}

fn print_outcome(request: &InvocationRequest, outcome: &InvocationOutcome) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "{}",
        report::start_line(&outcome.request_id, &request.function_version)
    );
    let _ = stderr.write_all(&outcome.log);
    if !outcome.log.is_empty() && !outcome.log.ends_with(b"\n") {
        let _ = writeln!(stderr);
    }
    let _ = writeln!(stderr, "{}", report::end_line(&outcome.request_id));
    let _ = writeln!(
        stderr,
        "{}",
        report::report_line(&Report {
            request_id: &outcome.request_id,
            duration: outcome.duration,
            billed_duration_ms: outcome.billed_duration_ms,
            memory_size_mb: request.memory_mb,
            max_memory_used_mb: outcome.max_memory_used_mb,
            init_duration: outcome.init_duration,
        })
    );
    drop(stderr);
    let mut stdout = std::io::stdout().lock();
    let code = match &outcome.result {
        InvocationResult::Success(body) => {
            let _ = stdout.write_all(body);
            ExitCode::SUCCESS
        }
        failed => {
            let error = serde_json::json!({
                "errorType": failed.error_type().unwrap_or_default(),
                "errorMessage": failed.error_message().unwrap_or_default(),
            });
            let _ = write!(stdout, "{error}");
            ExitCode::FAILURE
        }
    };
    let _ = writeln!(stdout);
    let _ = stdout.flush();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["mayfly", "run", "echo.elf"];
        argv.extend(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn defaults_are_lambdas() {
        let input = check_run_input(&args(&[]), None).unwrap();
        assert_eq!(
            input,
            RunInput {
                event: b"{}".to_vec(),
                memory_mb: 128,
                timeout: Duration::from_secs(3),
                env: vec![],
            }
        );
    }

    #[test]
    fn events() {
        let input = check_run_input(&args(&["--event", r#"{"a":1}"#]), None).unwrap();
        assert_eq!(input.event, br#"{"a":1}"#);
        let input = check_run_input(&args(&["--event", "  "]), None).unwrap();
        assert_eq!(input.event, b"{}");
        let input = check_run_input(&args(&[]), Some(b"[1, 2]\n".to_vec())).unwrap();
        assert_eq!(input.event, b"[1, 2]\n");
        let err = check_run_input(&args(&["--event", "{a:1}"]), None).unwrap_err();
        assert!(err.starts_with("the event is not valid JSON"), "{err}");
        let big = format!("\"{}\"", "x".repeat(MAX_EVENT_BYTES));
        let err = check_run_input(&args(&["--event", &big]), None).unwrap_err();
        assert!(err.contains("over Lambda's limit"), "{err}");
        assert!(
            Cli::try_parse_from(["mayfly", "run", "x", "--event", "{}", "--event-file", "f"])
                .is_err()
        );
    }

    #[test]
    fn limits() {
        for bad in [
            ["--memory", "127"],
            ["--memory", "10241"],
            ["--timeout", "0"],
            ["--timeout", "901"],
        ] {
            assert!(check_run_input(&args(&bad), None).is_err(), "{bad:?}");
        }
        let input =
            check_run_input(&args(&["--memory", "10240", "--timeout", "900"]), None).unwrap();
        assert_eq!((input.memory_mb, input.timeout.as_secs()), (10240, 900));
    }

    #[test]
    fn environment() {
        let input = check_run_input(
            &args(&["--env", "GREETING=Hi", "--env", "EMPTY=", "--env", "EQ=a=b"]),
            None,
        )
        .unwrap();
        assert_eq!(
            input.env,
            vec![
                ("GREETING".into(), "Hi".into()),
                ("EMPTY".into(), "".into()),
                ("EQ".into(), "a=b".into())
            ]
        );
        assert!(check_run_input(&args(&["--env", "NOEQUALS"]), None)
            .unwrap_err()
            .contains("KEY=VALUE"));
        assert!(check_run_input(&args(&["--env", "1X=y"]), None).is_err());
        assert!(check_run_input(&args(&["--env", "AB=1", "--env", "AB=2"]), None).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(function_name(Path::new("target/images/echo.zip")), "echo");
        assert_eq!(function_name(Path::new("hello.elf")), "hello");
        assert_eq!(function_name(Path::new("wordcount")), "wordcount");
    }

    #[test]
    fn accel_values() {
        assert!(matches!(args(&["--accel", "tcg"]).accel, AccelArg::Tcg));
        assert!(Cli::try_parse_from(["mayfly", "run", "x", "--accel", "xen"]).is_err());
    }
}
