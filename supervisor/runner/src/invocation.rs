//! An invocation as the host and the VM layer see it: what to run, and
//! how it ended.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::linux::LinuxBoot;

/// Lambda's limit on the init phase: VM spawn to the first `next`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Error type of a timed-out invocation.
pub const ERROR_TIMEOUT: &str = "Sandbox.Timedout";
/// Error type of a VM that ended without answering.
pub const ERROR_EXIT: &str = "Runtime.ExitError";
/// Error type of a Linux program that touched more memory than its VM has.
pub const ERROR_OUT_OF_MEMORY: &str = mayfly_proto::runtime::ERROR_OUT_OF_MEMORY;

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The unikernel ELF QEMU boots (validated by
    /// [`crate::package::load`]); for a Linux program, the generic Linux
    /// kernel image.
    pub image: PathBuf,
    /// For a Linux program: its pack, program, arguments, `/tmp` and
    /// Lambda environment; `None` for a native image.
    pub linux: Option<LinuxBoot>,
    /// The event (JSON), delivered as is, never copied.
    pub event: Bytes,
    /// The VM's RAM, in MB.
    pub memory_mb: u32,
    /// The function's timeout, counted from event delivery.
    pub timeout: Duration,
    /// Environment variables, already validated.
    pub env: Vec<(String, String)>,
    /// The function's name.
    pub function_name: String,
    /// Its version (`$LATEST` or a number).
    pub function_version: String,
    /// The ARN the client invoked.
    pub invoked_arn: String,
    /// The request id.
    pub request_id: String,
    /// What the VM may reach beyond its runtime API; `None`: nothing.
    pub egress: Option<EgressPlan>,
    /// Where a response the function streams goes as it is written; `None`:
    /// a streamed response is gathered into the result, as a buffered
    /// invoke of a streaming function gets it.
    pub stream: Option<ResponseSink>,
}

/// Takes the bytes of a streamed response as the function writes them.
pub trait StreamSink: Send + Sync + std::fmt::Debug {
    /// One piece, in order; `false` when nobody reads any more (the client
    /// went away: the rest is dropped).
    fn write(&self, chunk: Bytes) -> bool;
}

/// A shared [`StreamSink`].
pub type ResponseSink = std::sync::Arc<dyn StreamSink>;

/// What a VM may reach beyond its runtime API: the host's rules (`mayfly
/// serve --egress`), narrowed by the function's (its `mayfly:egress` tag),
/// and the host's own Mayfly ports, never reachable (see `mayfly_egress`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPlan {
    /// The host's rules.
    pub host: mayfly_egress::Rules,
    /// The function's, if it has any.
    pub function: Option<mayfly_egress::Rules>,
    /// The host's API and metrics ports.
    pub mayfly_ports: Vec<u16>,
}

impl EgressPlan {
    /// No rule: every connection beyond the runtime API is refused (and
    /// the function's log says so).
    pub fn none() -> EgressPlan {
        EgressPlan {
            host: mayfly_egress::Rules::default(),
            function: None,
            mayfly_ports: Vec::new(),
        }
    }
}

impl RunRequest {
    /// The VM this request boots, without its event.
    pub fn template(&self) -> VmTemplate {
        VmTemplate {
            image: self.image.clone(),
            linux: self.linux.clone(),
            memory_mb: self.memory_mb,
            env: self.env.clone(),
            function_name: self.function_name.clone(),
            function_version: self.function_version.clone(),
            egress: self.egress.clone(),
        }
    }
}

/// What a VM is booted as: everything about an invocation but its event
/// (see [`crate::Runner::boot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmTemplate {
    /// The unikernel ELF (for a Linux program, the Linux kernel image).
    pub image: PathBuf,
    /// For a Linux program, what else it needs.
    pub linux: Option<LinuxBoot>,
    /// The VM's RAM, in MB.
    pub memory_mb: u32,
    /// Environment variables, already validated.
    pub env: Vec<(String, String)>,
    /// The function's name.
    pub function_name: String,
    /// Its version.
    pub function_version: String,
    /// What the VM may reach beyond its runtime API; `None`: nothing.
    pub egress: Option<EgressPlan>,
}

/// How the invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationResult {
    /// The function's response payload.
    Success(Bytes),
    /// The function (or its runtime, or its init) posted an error.
    FunctionError {
        /// `errorType`.
        error_type: String,
        /// `errorMessage`.
        error_message: String,
        /// The error document as posted.
        body: Bytes,
    },
    /// The VM was killed at its deadline: the function timeout after
    /// delivery, or [`INIT_TIMEOUT`] before it.
    Timeout {
        /// The limit that expired.
        after: Duration,
    },
    /// The VM ended without answering; the message says how.
    ExitError(String),
    /// A Linux program touched more memory than its VM has
    /// (`Runtime.OutOfMemory`); the message says how it ended.
    OutOfMemory(String),
}

impl InvocationResult {
    /// The Lambda error type, `None` on success.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            InvocationResult::Success(_) => None,
            InvocationResult::FunctionError { error_type, .. } => Some(error_type),
            InvocationResult::Timeout { .. } => Some(ERROR_TIMEOUT),
            InvocationResult::ExitError(_) => Some(ERROR_EXIT),
            InvocationResult::OutOfMemory(_) => Some(ERROR_OUT_OF_MEMORY),
        }
    }

    /// The Lambda error message, `None` on success.
    pub fn error_message(&self) -> Option<String> {
        match self {
            InvocationResult::Success(_) => None,
            InvocationResult::FunctionError { error_message, .. } => Some(error_message.clone()),
            InvocationResult::Timeout { after } => Some(timeout_message(*after)),
            InvocationResult::ExitError(message) | InvocationResult::OutOfMemory(message) => {
                Some(message.clone())
            }
        }
    }
}

/// `Task timed out after 3.00 seconds`.
pub fn timeout_message(after: Duration) -> String {
    format!("Task timed out after {:.2} seconds", after.as_secs_f64())
}

/// Everything known about a finished invocation.
#[derive(Debug, Clone)]
pub struct InvocationOutcome {
    /// The request id.
    pub request_id: String,
    /// How it ended.
    pub result: InvocationResult,
    /// VM spawn to the first `next`; `None` if the guest never asked.
    pub init_duration: Option<Duration>,
    /// Event delivery to result (or to the VM's end); spawn to the end when
    /// the event was never delivered.
    pub duration: Duration,
    /// `duration` rounded up to the millisecond.
    pub billed_duration_ms: u64,
    /// The most memory the guest reported using, in MB (rounded up); 0 if
    /// it never reported.
    pub max_memory_used_mb: u64,
    /// The guest console, capped (the VM layer caps it).
    pub log: Vec<u8>,
    /// Bytes the guest sent through egress.
    pub egress_sent_bytes: u64,
    /// Bytes the guest received through egress.
    pub egress_received_bytes: u64,
}

/// Why the host could not run the invocation at all (as opposed to the
/// guest failing, which is an [`InvocationResult`]).
#[derive(Debug, Error)]
pub enum RunError {
    /// The VM layer could not run it: its network, QEMU, the host's
    /// resources (the message says which and why).
    #[error(transparent)]
    Vm(Box<dyn std::error::Error + Send + Sync>),
    /// The cancellation future completed first; the VM was killed.
    #[error("the invocation was cancelled")]
    Cancelled,
    /// A VM booted ahead of its event ([`crate::Runner::boot`]) ended before asking for
    /// it; the outcome says how (its log included).
    #[error("the VM failed before asking for its event: {}", boot_failure(.0))]
    Boot(Box<InvocationOutcome>),
}

fn boot_failure(outcome: &InvocationOutcome) -> String {
    format!(
        "{}: {}",
        outcome.result.error_type().unwrap_or("Unknown"),
        outcome.result.error_message().unwrap_or_default()
    )
}
