//! The client commands of the `mayfly` command line: `deploy`, `invoke`,
//! `ls`, `rm`, `logs` and `notification-endpoint`, each one or a few signed calls to a Mayfly host's
//! Lambda REST API through [`crate::client`].
//!
//! Exit status: 0 on success; 1 when an invoked function failed (its error
//! JSON is the payload); 2 for bad input, missing credentials, and errors
//! the API or the connection report.

pub mod output;
pub mod package;

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use thiserror::Error;

use crate::client::{
    self, Client, ClientError, ConfigurationUpdate, CreateFunctionInput, InvokeInput,
};
use crate::credentials::{self, CredentialsError};
use mayfly_proto::limits;
use package::PackageFileError;

/// Exit status when an invoked function returned an error.
pub const EXIT_FUNCTION_ERROR: u8 = 1;
/// Exit status for bad input and failed calls.
pub const EXIT_FAILURE: u8 = 2;
/// Lambda's limit on a synchronous invocation's payload.
pub const MAX_EVENT_BYTES: usize = limits::SYNC_PAYLOAD_BYTES;
/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./.mayfly";

/// The client subcommands, flattened into `mayfly`'s own.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a function on a Mayfly host, or update its code and settings.
    Deploy(DeployArgs),
    /// Invoke a function synchronously and print its response.
    Invoke(InvokeArgs),
    /// List the host's functions.
    Ls(LsArgs),
    /// Delete a function.
    Rm(RmArgs),
    /// Show a function's recent invocations and their logs.
    Logs(LogsArgs),
    /// Print the URL an object store (Ceph RGW) pushes a function's S3
    /// event notifications to: its topic's `push-endpoint`.
    NotificationEndpoint(NotificationEndpointArgs),
}

/// Which host to talk to, and where its credentials are.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The host's API endpoint [default: $MAYFLY_ENDPOINT, else http://127.0.0.1:9000].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The host's data directory, holding its `credentials` (not read when
    /// MAYFLY_ACCESS_KEY_ID and MAYFLY_SECRET_ACCESS_KEY are set).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

/// `mayfly deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The function's name.
    pub name: String,
    /// A package.zip, or a bare ELF (a Mayfly image.elf or a static Linux
    /// program), zipped as `bootstrap` (mode 0755).
    #[arg(value_name = "ELF_OR_ZIP")]
    pub package: PathBuf,
    /// Memory in MB (128 to 10240) [default on create: 128].
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// Timeout in seconds (1 to 900) [default on create: 3].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// An environment variable; repeatable. Given on an update, the
    /// variables replace the function's whole environment.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// `mayfly invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function's name or ARN.
    pub name: String,
    /// The event, as JSON (default `{}`).
    #[arg(long, value_name = "JSON")]
    pub event: Option<String>,
    /// Print the last 4 KB of the invocation's log to stderr.
    #[arg(long)]
    pub tail: bool,
    /// A version or alias (default `$LATEST`).
    #[arg(long, value_name = "Q")]
    pub qualifier: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// `mayfly ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// `mayfly rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The function's name or ARN.
    pub name: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// `mayfly logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function's name.
    pub function: String,
    /// How many recent invocations to show [default: the host's].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// One JSON object a line per invocation, newest first.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// `mayfly notification-endpoint`.
#[derive(Debug, Args)]
pub struct NotificationEndpointArgs {
    /// The function's name.
    pub function: String,
    /// The version or alias the notifications invoke [default: $LATEST].
    #[arg(long, value_name = "VERSION|ALIAS")]
    pub qualifier: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub connection: Connection,
}

/// Why a command failed.
#[derive(Debug, Error)]
pub enum CommandError {
    /// An argument is out of range or malformed.
    #[error("{0}")]
    Input(String),
    /// The host's credentials could not be had.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The file to deploy is unusable.
    #[error(transparent)]
    Package(#[from] PackageFileError),
    /// A call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// stdout or stderr could not be written.
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl CommandError {
    /// The line to print: API errors exactly as the AWS CLI prints them,
    /// everything else after `mayfly: error: `.
    pub fn render(&self) -> String {
        match self {
            CommandError::Client(ClientError::Api(e)) => e.to_string(),
            other => format!("mayfly: error: {other}"),
        }
    }
}

/// Checks `--memory` as Lambda does.
pub fn check_memory(mb: u32) -> Result<u32, CommandError> {
    if limits::MEMORY_MB.contains(&mb) {
        Ok(mb)
    } else {
        Err(CommandError::Input(format!(
            "--memory {mb} is out of range: Lambda allows {} to {} MB",
            limits::MIN_MEMORY_MB,
            limits::MAX_MEMORY_MB
        )))
    }
}

/// Checks `--timeout` as Lambda does.
pub fn check_timeout(seconds: u32) -> Result<u32, CommandError> {
    if limits::TIMEOUT_S.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(CommandError::Input(format!(
            "--timeout {seconds} is out of range: Lambda allows {} to {} seconds",
            limits::MIN_TIMEOUT_S,
            limits::MAX_TIMEOUT_S
        )))
    }
}

/// Splits and checks `--env KEY=VALUE` arguments as Lambda checks an
/// environment.
pub fn parse_env(pairs: &[String]) -> Result<Vec<(String, String)>, CommandError> {
    let mut env = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            CommandError::Input(format!("--env {pair:?} is not of the form KEY=VALUE"))
        })?;
        env.push((key.to_owned(), value.to_owned()));
    }
    mayfly_proto::boot::validate_env(&env).map_err(|e| CommandError::Input(e.to_string()))?;
    Ok(env)
}

/// The event to send: `{}` when absent or blank; otherwise it must be JSON
/// within Lambda's payload limit.
pub fn parse_event(event: Option<&[u8]>) -> Result<Vec<u8>, CommandError> {
    let event = match event {
        Some(e) if !e.iter().all(u8::is_ascii_whitespace) => e,
        _ => return Ok(b"{}".to_vec()),
    };
    if event.len() > MAX_EVENT_BYTES {
        return Err(CommandError::Input(format!(
            "the event is {} bytes, over Lambda's limit of {MAX_EVENT_BYTES}",
            event.len()
        )));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(event)
        .map_err(|e| CommandError::Input(format!("the event is not valid JSON: {e}")))?;
    Ok(event.to_vec())
}

/// A client for `connection`, with the endpoint from the flag or
/// `MAYFLY_ENDPOINT` and the credentials from the environment or the data
/// directory.
pub fn connect(connection: &Connection) -> Result<Client, CommandError> {
    let env = std::env::var(client::ENDPOINT_ENV).ok();
    let endpoint = client::resolve_endpoint(connection.endpoint.as_deref(), env.as_deref());
    let credentials = credentials::load_for_client(&connection.data_dir)?;
    Ok(Client::new(&endpoint, credentials)?)
}

/// Runs `command`, printing to `out` and `err`; returns the exit status.
pub async fn execute(command: ClientCommand, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let result = match command {
        ClientCommand::Deploy(args) => deploy(args, out).await,
        ClientCommand::Invoke(args) => invoke(args, out, err).await,
        ClientCommand::Ls(args) => ls(args, out).await,
        ClientCommand::Rm(args) => rm(args, out).await,
        ClientCommand::Logs(args) => logs(args, out).await,
        ClientCommand::NotificationEndpoint(args) => notification_endpoint(args, out).await,
    };
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "{}", e.render());
            EXIT_FAILURE
        }
    }
}

/// `mayfly deploy`: create, or update code then the settings given.
async fn deploy(args: DeployArgs, out: &mut dyn Write) -> Result<u8, CommandError> {
    let memory_size = args.memory.map(check_memory).transpose()?;
    let timeout = args.timeout.map(check_timeout).transpose()?;
    let environment = match args.env.is_empty() {
        true => None,
        false => Some(parse_env(&args.env)?),
    };
    let zip = package::load_package(&args.package)?;
    let client = connect(&args.connection)?;
    let (config, action) = match client.get_function(&args.name).await {
        Ok(_) => {
            let mut config = client.update_function_code(&args.name, &zip).await?;
            let update = ConfigurationUpdate {
                memory_size,
                timeout,
                environment,
            };
            if !update.is_empty() {
                config = client
                    .update_function_configuration(&args.name, &update)
                    .await?;
            }
            (config, "updated")
        }
        Err(ClientError::Api(e)) if e.is_not_found() => {
            let input = CreateFunctionInput {
                function_name: args.name.clone(),
                zip_file: zip,
                memory_size,
                timeout,
                environment,
            };
            (client.create_function(&input).await?, "created")
        }
        Err(e) => return Err(e.into()),
    };
    out.write_all(output::deploy_summary(&config, action).as_bytes())?;
    Ok(0)
}

/// `mayfly invoke`: the payload to `out`, the tail of the log to `err`.
async fn invoke(
    args: InvokeArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u8, CommandError> {
    let payload = parse_event(args.event.as_deref().map(str::as_bytes))?;
    let client = connect(&args.connection)?;
    let input = InvokeInput {
        function_name: args.name,
        qualifier: args.qualifier,
        payload,
        tail: args.tail,
    };
    let result = client.invoke(&input).await?;
    // Only when asked: a log nobody asked for would clutter stderr.
    if let Some(log) = result.log_result.as_ref().filter(|_| input.tail) {
        err.write_all(log.as_bytes())?;
        if !log.is_empty() && !log.ends_with('\n') {
            writeln!(err)?;
        }
    }
    out.write_all(&result.payload)?;
    if !result.payload.ends_with(b"\n") {
        writeln!(out)?;
    }
    Ok(match result.function_error {
        Some(_) => EXIT_FUNCTION_ERROR,
        None => 0,
    })
}

/// `mayfly ls`: every function, all pages, as a table.
async fn ls(args: LsArgs, out: &mut dyn Write) -> Result<u8, CommandError> {
    let client = connect(&args.connection)?;
    let functions = client.list_functions().await?;
    out.write_all(output::functions_table(&functions).as_bytes())?;
    Ok(0)
}

/// `mayfly rm`.
async fn rm(args: RmArgs, out: &mut dyn Write) -> Result<u8, CommandError> {
    let client = connect(&args.connection)?;
    client.delete_function(&args.name).await?;
    writeln!(out, "Deleted function {}", args.name)?;
    Ok(0)
}

/// `mayfly logs`.
async fn logs(args: LogsArgs, out: &mut dyn Write) -> Result<u8, CommandError> {
    if args.limit == Some(0) {
        return Err(CommandError::Input("--limit must be at least 1".to_owned()));
    }
    let client = connect(&args.connection)?;
    let records = client.list_invocations(&args.function, args.limit).await?;
    let text = match args.json {
        true => output::logs_json(&records),
        false => output::logs_text(&records),
    };
    out.write_all(text.as_bytes())?;
    Ok(0)
}

/// `mayfly notification-endpoint`.
async fn notification_endpoint(
    args: NotificationEndpointArgs,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let client = connect(&args.connection)?;
    let endpoint = client
        .notification_endpoint(&args.function, args.qualifier.as_deref())
        .await?;
    writeln!(out, "{endpoint}")?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_as_lambda() {
        assert!(check_memory(128).is_ok() && check_memory(10240).is_ok());
        assert!(check_memory(127).is_err() && check_memory(10241).is_err());
        assert!(check_timeout(1).is_ok() && check_timeout(900).is_ok());
        let err = check_timeout(0).unwrap_err();
        assert_eq!(
            err.render(),
            "mayfly: error: --timeout 0 is out of range: Lambda allows 1 to 900 seconds"
        );
        assert!(check_timeout(901).is_err());
    }

    #[test]
    fn environments() {
        let env = parse_env(&["A1=x".into(), "EMPTY=".into(), "EQ=a=b".into()]).unwrap();
        assert_eq!(env[2], ("EQ".to_owned(), "a=b".to_owned()));
        assert!(parse_env(&["NOEQUALS".into()])
            .unwrap_err()
            .to_string()
            .contains("KEY=VALUE"));
        assert!(parse_env(&["1X=y".into()]).is_err());
        assert!(parse_env(&["AB=1".into(), "AB=2".into()]).is_err());
    }

    #[test]
    fn events() {
        assert_eq!(parse_event(None).unwrap(), b"{}");
        assert_eq!(parse_event(Some(b" ")).unwrap(), b"{}");
        assert_eq!(parse_event(Some(br#"{"a":1}"#)).unwrap(), br#"{"a":1}"#);
        let err = parse_event(Some(b"{a:1}")).unwrap_err();
        assert!(
            err.to_string().starts_with("the event is not valid JSON"),
            "{err}"
        );
        let big = format!("\"{}\"", "x".repeat(MAX_EVENT_BYTES));
        assert!(parse_event(Some(big.as_bytes()))
            .unwrap_err()
            .to_string()
            .contains("over Lambda's limit"));
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(argv: &[&str]) -> Result<ClientCommand, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("mayfly").chain(argv.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn command_lines() {
        let ClientCommand::Deploy(d) = parse(&[
            "deploy", "echo", "echo.elf", "--memory", "256", "--env", "A1=x", "--env", "B1=y",
        ])
        .unwrap() else {
            panic!("not deploy")
        };
        assert_eq!(
            (d.name.as_str(), d.memory, d.timeout, d.env.len()),
            ("echo", Some(256), None, 2)
        );
        assert_eq!(d.connection.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(d.connection.endpoint, None);
        let ClientCommand::Invoke(i) = parse(&[
            "invoke",
            "echo",
            "--tail",
            "--qualifier",
            "1",
            "--endpoint",
            "http://h:1",
            "--data-dir",
            "/d",
        ])
        .unwrap() else {
            panic!("not invoke")
        };
        assert!(i.tail && i.event.is_none());
        assert_eq!(
            (i.qualifier.as_deref(), i.connection.endpoint.as_deref()),
            (Some("1"), Some("http://h:1"))
        );
        assert!(matches!(
            parse(&["logs", "f", "--limit", "3", "--json"]).unwrap(),
            ClientCommand::Logs(LogsArgs {
                limit: Some(3),
                json: true,
                ..
            })
        ));
        assert!(matches!(parse(&["ls"]).unwrap(), ClientCommand::Ls(_)));
        assert!(matches!(parse(&["rm", "f"]).unwrap(), ClientCommand::Rm(_)));
        assert!(parse(&["rm"]).is_err());
        assert!(parse(&["deploy", "echo"]).is_err());
        assert!(parse(&["logs", "f", "--limit", "-1"]).is_err());
    }

    #[test]
    fn api_errors_print_bare() {
        let e = CommandError::Client(ClientError::Api(client::ErrorResponse {
            operation: "DeleteFunction",
            status: 404,
            code: "ResourceNotFoundException".into(),
            message: "Function not found".into(),
        }));
        assert_eq!(
            e.render(),
            "An error occurred (ResourceNotFoundException) when calling the DeleteFunction operation: Function not found"
        );
    }
}
