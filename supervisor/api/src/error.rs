//! Lambda's error responses: status code, `X-Amzn-ErrorType` header and a
//! JSON body with `Type` and `message`, so that the AWS CLI and boto3 name
//! the exception and print the message.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mayfly_host::error::HostError;
use mayfly_host::names::NameError;
use mayfly_store::StoreError;
use serde_json::json;

/// One Lambda API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The exception's name, e.g. `ResourceNotFoundException`.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// `Reason` of a `TooManyRequestsException`.
    pub reason: Option<&'static str>,
}

/// What a client is told of a failure on the host; the details, which may
/// name files of the data directory, go to the server's log.
pub const INTERNAL_MESSAGE: &str =
    "An internal error occurred; the server's log has the details of this request id";

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            reason: None,
        }
    }

    /// 404: the function, version or alias does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }

    /// 409: it exists already, or is in use.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "ResourceConflictException", message)
    }

    /// 400: a parameter has an unacceptable value.
    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    /// 400: the request does not have the required shape.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// 400: the invocation payload is not JSON.
    pub fn invalid_request_content(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            message,
        )
    }

    /// 413: the request or package is too large.
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            message,
        )
    }

    /// 412: the revision id given does not match.
    pub fn precondition_failed(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
            message,
        )
    }

    /// 429: over a concurrency limit.
    pub fn too_many_requests(reason: &'static str) -> ApiError {
        ApiError {
            reason: Some(reason),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "Rate Exceeded.",
            )
        }
    }

    /// 429 at once: the front door is at a limit (connections, large
    /// bodies), with why; a client retries later.
    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError {
            reason: Some("CallerRateLimitExceeded"),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                message,
            )
        }
    }

    /// 408: the request did not arrive in time.
    pub fn request_timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeoutException",
            message,
        )
    }

    /// The error a response with `status` but no Lambda shape (an axum
    /// rejection, a bare status) stands for, with a message that names no
    /// internal type.
    pub fn for_status(status: StatusCode) -> ApiError {
        match status.as_u16() {
            404 | 405 => ApiError::unknown_operation(),
            413 => ApiError::too_large("The request is too large for this operation"),
            415 => ApiError::new(
                status,
                "UnsupportedMediaTypeException",
                "The request's content type is not supported",
            ),
            408 => ApiError::request_timeout("The request did not arrive in time"),
            429 => ApiError::too_many_requests("CallerRateLimitExceeded"),
            500..=599 => ApiError::service(INTERNAL_MESSAGE),
            _ => ApiError {
                status,
                ..ApiError::validation("The request is not valid for this operation")
            },
        }
    }

    /// 403: authentication failed, with the exception AWS uses.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 for a path the API does not define.
    pub fn unknown_operation() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            "Unknown operation",
        )
    }

    /// 500: something failed on the host.
    pub fn service(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            message,
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } | StoreError::Conflict { .. } => {
                ApiError::conflict(e.to_string())
            }
            StoreError::RevisionMismatch { .. } => ApiError::precondition_failed(e.to_string()),
            StoreError::InvalidArgument { .. } => ApiError::invalid_parameter(e.to_string()),
            StoreError::TooManyTags { .. } => {
                ApiError::invalid_parameter(crate::tags::TOO_MANY_MESSAGE)
            }
            _ if e.is_disk_full() => {
                tracing::error!(error = %e, "the disk is full");
                ApiError {
                    status: StatusCode::INSUFFICIENT_STORAGE,
                    ..ApiError::service(format!(
                        "The host's disk is full; delete functions or versions to free space \
                         ({e})"
                    ))
                }
            }
            _ => {
                tracing::error!(error = %e, "store failure");
                ApiError::service(INTERNAL_MESSAGE)
            }
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> ApiError {
        match e {
            NameError::Invalid(message) => ApiError::validation(message),
            NameError::NotFound(message) => ApiError::not_found(message),
            NameError::Conflicting(message) => ApiError::invalid_parameter(message),
        }
    }
}

/// The API's edge: each of the host's errors as Lambda answers it.
impl From<HostError> for ApiError {
    fn from(e: HostError) -> ApiError {
        match e {
            HostError::Throttled(throttle) => ApiError {
                message: throttle.message(),
                ..ApiError::too_many_requests(throttle.reason())
            },
            HostError::Overloaded(message) => ApiError {
                message,
                reason: None,
                ..ApiError::too_many_requests("")
            },
            HostError::Store(e) => e.into(),
            HostError::Name(e) => e.into(),
            HostError::Package(e) if e.is_too_large() => ApiError::too_large(e.to_string()),
            HostError::Package(e) if e.is_disk_full() => ApiError {
                status: StatusCode::INSUFFICIENT_STORAGE,
                ..ApiError::service(format!(
                    "The host's disk is full; delete functions or versions to free space \
                         (cannot unpack the package: {e})"
                ))
            },
            HostError::Package(e) if e.is_host_failure() => {
                tracing::error!(error = %e, "cannot check a package");
                ApiError::service(e.to_string())
            }
            HostError::Package(e) => ApiError::invalid_parameter(e.to_string()),
            HostError::Refused(message) => ApiError::invalid_parameter(message),
            HostError::Unavailable(message) => {
                tracing::error!(%message, "cannot run the function on this host");
                ApiError::service(message)
            }
            e @ (HostError::Run(_)
            | HostError::Image { .. }
            | HostError::Io { .. }
            | HostError::Task { .. }) => {
                tracing::error!(error = %e, "host failure");
                ApiError::service(INTERNAL_MESSAGE)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "Type": "User", "message": self.message });
        if let Some(reason) = self.reason {
            body["Reason"] = json!(reason);
        }
        if self.status.is_server_error() {
            body["Type"] = json!("Service");
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        response
    }
}
