//! The inputs and outputs of the client's operations, shaped as the Lambda
//! REST API sends them (PascalCase JSON) or, for Mayfly's own invocation
//! records, camelCase.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `CreateFunction` needs; the runtime, role and handler are Mayfly's
/// fixed values ([`RUNTIME`](super::RUNTIME), [`ROLE`](super::ROLE),
/// [`HANDLER`](super::HANDLER)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateFunctionInput {
    /// The function's name.
    pub function_name: String,
    /// The package: a zip whose `bootstrap` is the unikernel image.
    pub zip_file: Vec<u8>,
    /// Memory in MB; the server's default (128) when `None`.
    pub memory_size: Option<u32>,
    /// Timeout in seconds; the server's default (3) when `None`.
    pub timeout: Option<u32>,
    /// Environment variables; none when `None`.
    pub environment: Option<Vec<(String, String)>>,
}

/// The settings `UpdateFunctionConfiguration` changes; `None` leaves a
/// setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigurationUpdate {
    /// New memory in MB.
    pub memory_size: Option<u32>,
    /// New timeout in seconds.
    pub timeout: Option<u32>,
    /// The new environment, replacing the whole old one (as Lambda does).
    pub environment: Option<Vec<(String, String)>>,
}

impl ConfigurationUpdate {
    /// Whether this changes nothing (then there is no call to make).
    pub fn is_empty(&self) -> bool {
        self.memory_size.is_none() && self.timeout.is_none() && self.environment.is_none()
    }
}

/// A synchronous (`RequestResponse`) invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InvokeInput {
    /// The function's name or ARN.
    pub function_name: String,
    /// A version or alias; `$LATEST` when `None`.
    pub qualifier: Option<String>,
    /// The event (JSON).
    pub payload: Vec<u8>,
    /// Ask for the last 4 KB of the log (`X-Amz-Log-Type: Tail`).
    pub tail: bool,
}

/// What an invocation answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeOutput {
    /// The HTTP status (200 for `RequestResponse`).
    pub status_code: u16,
    /// `X-Amz-Function-Error` (`Handled` or `Unhandled`) when the function
    /// failed; the payload is then the error JSON.
    pub function_error: Option<String>,
    /// The decoded `X-Amz-Log-Result`, when a tail was asked for.
    pub log_result: Option<String>,
    /// `X-Amz-Executed-Version`.
    pub executed_version: Option<String>,
    /// The response payload.
    pub payload: Vec<u8>,
}

/// A function's configuration, as `GetFunction`, `CreateFunction`,
/// `Update*` and `ListFunctions` answer it. Only the fields the commands
/// use are kept; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct FunctionConfiguration {
    /// The function's name.
    pub function_name: String,
    /// Its ARN.
    pub function_arn: Option<String>,
    /// The runtime (`provided.al2023`, ...).
    pub runtime: Option<String>,
    /// The handler.
    pub handler: Option<String>,
    /// The package's size in bytes.
    pub code_size: u64,
    /// The package's SHA-256, base64.
    pub code_sha256: Option<String>,
    /// Memory in MB.
    pub memory_size: Option<u32>,
    /// Timeout in seconds.
    pub timeout: Option<u32>,
    /// ISO 8601 time of the last change.
    pub last_modified: Option<String>,
    /// The version (`$LATEST` or a number).
    pub version: Option<String>,
    /// The environment.
    pub environment: Option<EnvironmentResponse>,
    /// `Active`, `Pending`, ...
    pub state: Option<String>,
}

/// A configuration's `Environment`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EnvironmentResponse {
    /// The variables.
    pub variables: BTreeMap<String, String>,
}

/// `GetFunction`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionOutput {
    /// The configuration.
    pub configuration: FunctionConfiguration,
}

/// One page of `ListFunctions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListFunctionsOutput {
    /// The functions of this page.
    pub functions: Vec<FunctionConfiguration>,
    /// Where the next page starts, if there is one.
    pub next_marker: Option<String>,
}

/// One invocation record from Mayfly's recent-invocations call.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvocationRecord {
    /// The request id.
    pub request_id: String,
    /// The version that ran.
    pub version: String,
    /// `RequestResponse`, `Event`, ...
    pub invocation_type: String,
    /// `success`, `error`, `timeout`, `throttled`, ...
    pub status: String,
    /// The error type of a failed invocation.
    pub error_type: Option<String>,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Event delivery to result, in milliseconds.
    pub duration_ms: f64,
    /// What was billed, in whole milliseconds.
    pub billed_duration_ms: u64,
    /// The boot waited for, in milliseconds; `null` when none was.
    pub init_duration_ms: Option<f64>,
    /// The configured memory.
    pub memory_size_mb: u32,
    /// The most memory the guest used.
    pub max_memory_used_mb: u64,
    /// The invocation's log.
    #[serde(default)]
    pub log: String,
}

/// The body of the notification-endpoint call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct NotificationEndpointOutput {
    pub(crate) endpoint: String,
}

/// The body of the recent-invocations call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ListInvocationsOutput {
    pub(crate) invocations: Vec<InvocationRecord>,
}
