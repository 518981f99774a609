//! The Lambda Runtime API (version 2018-06-01) as Mayfly speaks it.
//!
//! The guest is the client, the supervisor's host-side network stack the
//! server. Everything here is the public Lambda contract except the two
//! `Mayfly-*` headers, which carry what a real Lambda sandbox learns from its
//! own operating system: the wall-clock time and the memory it used.

/// Path prefix of every runtime-API request.
pub const API_PREFIX: &str = "/2018-06-01/runtime";
/// `GET`: blocks until an event is available, then returns it.
pub const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
/// `POST`: reports that initialisation failed.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
/// Path segment between the request id and `response`/`error`.
pub const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";

/// Request id of the event being delivered.
pub const HEADER_REQUEST_ID: &str = "Lambda-Runtime-Aws-Request-Id";
/// Deadline of the invocation, in milliseconds since the Unix epoch.
pub const HEADER_DEADLINE_MS: &str = "Lambda-Runtime-Deadline-Ms";
/// ARN the client invoked (it may carry a version or alias qualifier).
pub const HEADER_FUNCTION_ARN: &str = "Lambda-Runtime-Invoked-Function-Arn";
/// X-Ray style trace id.
pub const HEADER_TRACE_ID: &str = "Lambda-Runtime-Trace-Id";
/// Error type of a posted error, as a header (the body carries it too); in
/// a streamed response, a trailer.
pub const HEADER_FUNCTION_ERROR_TYPE: &str = "Lambda-Runtime-Function-Error-Type";
/// In a streamed response, the trailer with the error document, base64.
pub const HEADER_FUNCTION_ERROR_BODY: &str = "Lambda-Runtime-Function-Error-Body";
/// On `response`: `streaming` when the function streams its response
/// (chunked, errors in trailers).
pub const HEADER_RESPONSE_MODE: &str = "Lambda-Runtime-Function-Response-Mode";
/// Mayfly extension on `next`: the host's clock, in milliseconds since the
/// Unix epoch, when the response was written. The guest has no wall clock of
/// its own, and needs one to turn the deadline into a remaining time.
pub const HEADER_HOST_CLOCK_MS: &str = "Mayfly-Host-Clock-Ms";
/// Mayfly extension on `response` and `error`: the most memory the guest had
/// in use (kernel image, stacks and peak heap), in bytes. Lambda reports this
/// as "Max Memory Used"; only the guest can measure it.
pub const HEADER_MAX_MEMORY_BYTES: &str = "Mayfly-Max-Memory-Bytes";

/// Error type posted when the function's heap was exhausted.
pub const ERROR_OUT_OF_MEMORY: &str = "Runtime.OutOfMemory";
/// Error type posted when the function panicked.
pub const ERROR_PANIC: &str = "Runtime.Panic";
/// Error type posted when the event could not be decoded into the
/// function's input type.
pub const ERROR_UNMARSHAL: &str = "Runtime.UnmarshalError";
/// Error type posted when the function's result could not be encoded.
pub const ERROR_MARSHAL: &str = "Runtime.MarshalError";

/// What a runtime-API request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `GET /2018-06-01/runtime/invocation/next`.
    Next,
    /// `POST /2018-06-01/runtime/invocation/{id}/response`.
    Response(&'a str),
    /// `POST /2018-06-01/runtime/invocation/{id}/error`.
    Error(&'a str),
    /// `POST /2018-06-01/runtime/init/error`.
    InitError,
}

impl<'a> Route<'a> {
    /// Classifies a request by method and path; `None` for anything the
    /// runtime API does not define.
    ///
    /// ```
    /// use mayfly_proto::runtime::Route;
    /// assert_eq!(Route::parse("GET", "/2018-06-01/runtime/invocation/next"), Some(Route::Next));
    /// assert_eq!(
    ///     Route::parse("POST", "/2018-06-01/runtime/invocation/abc/response"),
    ///     Some(Route::Response("abc"))
    /// );
    /// assert_eq!(Route::parse("GET", "/2018-06-01/runtime/invocation/abc/response"), None);
    /// ```
    pub fn parse(method: &str, path: &'a str) -> Option<Route<'a>> {
        match (method, path) {
            ("GET", NEXT_PATH) => Some(Route::Next),
            ("POST", INIT_ERROR_PATH) => Some(Route::InitError),
            ("POST", _) => {
                let rest = path.strip_prefix(INVOCATION_PREFIX)?;
                let (id, action) = rest.split_once('/')?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                match action {
                    "response" => Some(Route::Response(id)),
                    "error" => Some(Route::Error(id)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse("POST", INIT_ERROR_PATH),
            Some(Route::InitError)
        );
        assert_eq!(
            Route::parse("POST", "/2018-06-01/runtime/invocation/x-1/error"),
            Some(Route::Error("x-1"))
        );
        assert_eq!(
            Route::parse("POST", "/2018-06-01/runtime/invocation//error"),
            None
        );
        assert_eq!(
            Route::parse("POST", "/2018-06-01/runtime/invocation/a/b/error"),
            None
        );
        assert_eq!(Route::parse("PUT", NEXT_PATH), None);
        assert_eq!(Route::parse("GET", "/"), None);
    }
}
