//! The function SDK: what a function crate sees.
//!
//! A function is a `no_std` binary crate with one handler over serde types,
//! registered with [`entry!`](crate::entry):
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! use mayfly_kernel::{Context, Error};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Request { name: alloc::string::String }
//! #[derive(Serialize)]
//! struct Reply { message: alloc::string::String }
//!
//! fn handler(event: Request, ctx: &Context) -> Result<Reply, Error> {
//!     mayfly_kernel::log!("{} ms left", ctx.remaining_time_ms());
//!     Ok(Reply { message: alloc::format!("Hello, {}!", event.name) })
//! }
//! mayfly_kernel::entry!(handler);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use mayfly_proto::boot::BootConfig;
use mayfly_proto::runtime::{ERROR_MARSHAL, ERROR_UNMARSHAL};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock;

/// A function's error: becomes the invocation's `errorType` and
/// `errorMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The error's type, for example `ValidationError`.
    pub error_type: String,
    /// What went wrong, for a person.
    pub error_message: String,
}

impl Error {
    /// An error of type `error_type`.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Error {
        Error {
            error_type: error_type.into(),
            error_message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

/// What a handler knows about its invocation and its function.
pub struct Context {
    request_id: String,
    invoked_function_arn: String,
    trace_id: String,
    deadline_ms: u64,
    /// Host epoch milliseconds minus guest uptime milliseconds.
    clock_offset_ms: i64,
    config: &'static BootConfig,
}

impl Context {
    pub(crate) fn new(
        request_id: String,
        invoked_function_arn: String,
        trace_id: String,
        deadline_ms: u64,
        host_clock_ms: u64,
        config: &'static BootConfig,
    ) -> Context {
        let clock_offset_ms = host_clock_ms as i64 - clock::millis() as i64;
        Context {
            request_id,
            invoked_function_arn,
            trace_id,
            deadline_ms,
            clock_offset_ms,
            config,
        }
    }

    /// The invocation's request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The ARN the client invoked, with its qualifier if it had one.
    pub fn invoked_function_arn(&self) -> &str {
        &self.invoked_function_arn
    }

    /// The trace id (`Root=...;Parent=...;Sampled=...`).
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// When the invocation times out, in milliseconds since the Unix epoch.
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    /// The current time, in milliseconds since the Unix epoch, from the
    /// host's clock at delivery plus the guest's monotonic clock since.
    pub fn now_ms(&self) -> u64 {
        (self.clock_offset_ms + clock::millis() as i64).max(0) as u64
    }

    /// Milliseconds left before the host ends the VM.
    pub fn remaining_time_ms(&self) -> u64 {
        self.deadline_ms.saturating_sub(self.now_ms())
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.config.function_name
    }

    /// The function's version (`$LATEST` or a number).
    pub fn function_version(&self) -> &str {
        &self.config.function_version
    }

    /// The memory given to the VM, in MB.
    pub fn memory_limit_mb(&self) -> u32 {
        self.config.memory_mb
    }

    /// An environment variable: the function's own, then those Lambda
    /// defines (`AWS_LAMBDA_FUNCTION_NAME`, `AWS_LAMBDA_FUNCTION_VERSION`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub fn env_var(&self, key: &str) -> Option<String> {
        if let Some(value) = self.config.env_var(key) {
            return Some(value.to_string());
        }
        match key {
            "AWS_LAMBDA_FUNCTION_NAME" => Some(self.config.function_name.clone()),
            "AWS_LAMBDA_FUNCTION_VERSION" => Some(self.config.function_version.clone()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some(self.config.memory_mb.to_string()),
            _ => None,
        }
    }

    /// The function's own environment variables, in the order given.
    pub fn env_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.config
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Decodes the event, runs the handler and encodes its result. Used by
/// [`entry!`](crate::entry); not meant to be called directly.
#[doc(hidden)]
pub fn dispatch<E: DeserializeOwned, R: Serialize>(
    event: &[u8],
    ctx: &Context,
    handler: fn(E, &Context) -> Result<R, Error>,
) -> Result<Vec<u8>, Error> {
    let event: E = serde_json::from_slice(event).map_err(|e| {
        Error::new(
            ERROR_UNMARSHAL,
            alloc::format!("cannot decode the event: {e}"),
        )
    })?;
    let result = handler(event, ctx)?;
    serde_json::to_vec(&result).map_err(|e| {
        Error::new(
            ERROR_MARSHAL,
            alloc::format!("cannot encode the result: {e}"),
        )
    })
}

/// Registers a function's handler: `fn(E, &Context) -> Result<R, Error>`
/// where `E: DeserializeOwned` and `R: Serialize`.
#[macro_export]
macro_rules! entry {
    ($handler:path) => {
        #[no_mangle]
        fn __mayfly_handler(
            event: &[u8],
            ctx: &$crate::Context,
        ) -> ::core::result::Result<$crate::alloc::vec::Vec<u8>, $crate::Error> {
            $crate::sdk::dispatch(event, ctx, $handler)
        }

        #[no_mangle]
        fn __mayfly_start(boot: &'static $crate::BootInfo) -> ! {
            $crate::start_native(boot)
        }
    };
}
