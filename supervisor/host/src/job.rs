//! What is dispatched and what comes back: a [`Job`] (one invocation, its
//! settings parsed once) and its [`Completed`] result.

use bytes::Bytes;
use mayfly_runner::{InvocationOutcome, InvocationResult};
use mayfly_store::FunctionVersion;

use crate::settings::RunSettings;

/// How the caller waits for the invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationKind {
    /// The caller waits for the response (`RequestResponse`).
    Sync,
    /// The caller was answered already; the event is retried on failure
    /// (`Event`).
    Async,
}

impl InvocationKind {
    /// Lambda's name of the invocation type.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationKind::Sync => "RequestResponse",
            InvocationKind::Async => "Event",
        }
    }
}

/// One invocation to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// The request id.
    pub request_id: String,
    /// The version to run.
    pub version: FunctionVersion,
    /// The qualifier the caller named (an alias or version), if any: the
    /// warm pool of provisioned concurrency is looked up by it.
    pub qualifier: Option<String>,
    /// The ARN the client invoked.
    pub invoked_arn: String,
    /// The event; shared, never copied on its way to the guest.
    pub payload: Bytes,
    /// Sync or async.
    pub kind: InvocationKind,
    /// The version's run settings, parsed once.
    pub settings: RunSettings,
    /// Where a streamed response goes as it is written (InvokeWithResponseStream,
    /// streamed URLs); `None`: it is gathered into the result.
    pub stream: Option<mayfly_runner::ResponseSink>,
}

impl Job {
    /// A job for `version`, its run settings read from its configuration.
    pub fn new(
        request_id: String,
        version: FunctionVersion,
        qualifier: Option<String>,
        invoked_arn: String,
        payload: Bytes,
        kind: InvocationKind,
    ) -> Job {
        let settings = RunSettings::from_config(&version.config);
        Job {
            request_id,
            version,
            qualifier,
            invoked_arn,
            payload,
            kind,
            settings,
            stream: None,
        }
    }
}

/// A finished invocation.
#[derive(Debug, Clone)]
pub struct Completed {
    /// What the VM layer reported.
    pub outcome: InvocationOutcome,
    /// The version that ran.
    pub version: String,
    /// START, the log, END and REPORT, as Lambda writes them.
    pub framed_log: String,
}

impl Completed {
    /// The body a client gets: the response, or `{"errorType", "errorMessage"}`.
    pub fn payload(&self) -> Bytes {
        match &self.outcome.result {
            InvocationResult::Success(body) => body.clone(),
            other => serde_json::to_vec(&serde_json::json!({
                "errorType": other.error_type(),
                "errorMessage": other.error_message(),
            }))
            .unwrap_or_default()
            .into(),
        }
    }

    /// Whether the function failed (an error, a timeout, a VM that died).
    pub fn failed(&self) -> bool {
        self.outcome.result.error_type().is_some()
    }
}
