//! `mayfly run`: one fresh VM for one event, its answer on stdout and its
//! log, framed as Lambda frames it, on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use mayfly_client::commands::{check_memory, check_timeout, parse_env, parse_event};
use mayfly_host::names::{function_arn, DEFAULT_REGION};
use mayfly_proto::limits;
use mayfly_runner::linux::{self, InitializationType, LambdaEnv, LinuxBoot};
use mayfly_runner::report::{self, Report};
use mayfly_runner::{package, InvocationOutcome, InvocationResult, RunError, RunRequest};
use mayfly_vm::{accel, run};

use crate::jail_arg::JailArg;
use crate::{usage_error, AccelArg};

/// Exit status after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

/// `mayfly run`'s arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The function: an image.elf or a static Linux program, or a
    /// package.zip whose `bootstrap` is one.
    image: PathBuf,
    /// The event, as JSON (default `{}`).
    #[arg(long, conflicts_with = "event_file")]
    event: Option<String>,
    /// Read the event (JSON) from a file.
    #[arg(long, value_name = "PATH")]
    event_file: Option<PathBuf>,
    /// Memory of the VM in MB (128 to 10240).
    #[arg(long, value_name = "MB", default_value_t = limits::DEFAULT_MEMORY_MB)]
    memory: u32,
    /// Timeout in seconds (1 to 900).
    #[arg(long, value_name = "SECONDS", default_value_t = limits::DEFAULT_TIMEOUT_S)]
    timeout: u32,
    /// An environment variable for the function; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// The jail around QEMU.
    #[arg(long, value_enum, default_value_t = JailArg::Auto)]
    jail: JailArg,
    /// The Linux kernel image a Linux function boots (default:
    /// target/images/linux.elf beside this binary, or
    /// $MAYFLY_LINUX_KERNEL).
    #[arg(long, value_name = "PATH")]
    linux_kernel: Option<PathBuf>,
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
/// configuration and payload (the same checks as `mayfly deploy` and
/// `mayfly invoke`). `event_file` is the content of `--event-file`.
fn check_run_input(args: &RunArgs, event_file: Option<Vec<u8>>) -> Result<RunInput, String> {
    let memory_mb = check_memory(args.memory).map_err(|e| e.to_string())?;
    let timeout_s = check_timeout(args.timeout).map_err(|e| e.to_string())?;
    let event = match (&args.event, &event_file) {
        (Some(json), _) => Some(json.as_bytes()),
        (None, Some(bytes)) => Some(bytes.as_slice()),
        (None, None) => None,
    };
    Ok(RunInput {
        event: parse_event(event).map_err(|e| e.to_string())?,
        memory_mb,
        timeout: Duration::from_secs(timeout_s.into()),
        env: parse_env(&args.env).map_err(|e| e.to_string())?,
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

/// Runs `mayfly run`.
pub async fn run(args: RunArgs) -> ExitCode {
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
    let jail = match crate::jail_arg::detect(args.jail, choice.accel) {
        Ok(jail) => jail,
        Err(e) => return usage_error(e),
    };

    let name = function_name(&args.image);
    let (boot_image, linux) = match image.pack() {
        None => (image.path().to_path_buf(), None),
        Some(pack) => {
            let kernel = match linux::find_kernel(args.linux_kernel.as_deref()) {
                Ok(kernel) => kernel,
                Err(e) => return usage_error(e),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let lambda = LambdaEnv {
                region: DEFAULT_REGION.to_string(),
                handler: "bootstrap".to_string(),
                runtime: "provided.al2023".to_string(),
                initialization_type: InitializationType::OnDemand,
                log_stream: linux::log_stream_name(now, "$LATEST", uuid::Uuid::new_v4().as_u128()),
            };
            let boot =
                LinuxBoot::function(pack.to_path_buf(), limits::DEFAULT_EPHEMERAL_MB, lambda);
            (kernel, Some(boot))
        }
    };
    let request = RunRequest {
        image: boot_image,
        linux,
        event: Bytes::from(input.event),
        memory_mb: input.memory_mb,
        timeout: input.timeout,
        env: input.env,
        invoked_arn: function_arn(DEFAULT_REGION, &name, None),
        function_name: name,
        function_version: "$LATEST".to_owned(),
        request_id: uuid::Uuid::new_v4().to_string(),
        egress: Some(mayfly_runner::EgressPlan::none()),
        stream: None,
    };
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler Ctrl-C kills the process; PDEATHSIG then
            // kills QEMU. Never report a cancellation that did not happen.
            std::future::pending::<()>().await;
        }
    };
    let outcome = match run::run_in(&request, choice.accel, &jail, interrupted).await {
        Ok(outcome) => outcome,
        Err(RunError::Cancelled) => {
            say!("mayfly: interrupted; the VM was killed");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
        Err(e) => {
            say!("mayfly: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    drop(image);
    print_outcome(&request, &outcome)
}

fn print_outcome(request: &RunRequest, outcome: &InvocationOutcome) -> ExitCode {
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
    use crate::{Cli, Command};
    use clap::Parser;

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
        let big = format!("\"{}\"", "x".repeat(limits::SYNC_PAYLOAD_BYTES));
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
