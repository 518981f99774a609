//! The engine's errors: what failed and why, for the API (or any other
//! source) to answer in its own terms.

use mayfly_runner::upload::UploadError;
use mayfly_runner::RunError;
use mayfly_store::StoreError;
use thiserror::Error;

use crate::admission::Throttle;
use crate::names::NameError;

/// Why the host could not do what was asked.
#[derive(Debug, Error)]
pub enum HostError {
    /// A concurrency or memory limit refused the invocation; nothing ran.
    #[error("{}", .0.message())]
    Throttled(Throttle),
    /// A bounded resource other than concurrency is full now (concurrent
    /// package uploads, a function's event queue): try again later.
    #[error("{0}")]
    Overloaded(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A function name or ARN is not acceptable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// An uploaded package was refused.
    #[error(transparent)]
    Package(#[from] UploadError),
    /// A request is valid in shape but not acceptable now (Lambda's
    /// `InvalidParameterValueException`), e.g. provisioned concurrency
    /// beyond what the limits leave.
    #[error("{0}")]
    Refused(String),
    /// The host cannot do this at all as it is set up (a Linux function
    /// on a host without the Linux kernel image); the message says what
    /// the operator must do.
    #[error("{0}")]
    Unavailable(String),
    /// The VM layer could not run the invocation (the guest failing is not
    /// an error: it is the invocation's result).
    #[error("the invocation could not run: {0}")]
    Run(#[source] RunError),
    /// A stored package could not be unpacked into its image.
    #[error("cannot unpack package {sha256}: {reason}")]
    Image {
        /// The package.
        sha256: String,
        /// Why.
        reason: String,
    },
    /// A file of the host's own could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A task of the host's own died (a panic, or the runtime shutting
    /// down).
    #[error("{what} failed: {reason}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Why it ended.
        reason: String,
    },
}

impl HostError {
    /// A join error of the task doing `what`.
    pub fn task(what: &'static str, error: tokio::task::JoinError) -> HostError {
        HostError::Task {
            what,
            reason: error.to_string(),
        }
    }
}

/// The result of a host operation.
pub type HostResult<T> = Result<T, HostError>;

/// Runs blocking work (store writes fsync) off the async workers.
pub async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> HostResult<T> + Send + 'static,
) -> HostResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HostError::task(what, e))?
}
