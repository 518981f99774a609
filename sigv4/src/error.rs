//! Errors of signing, verification and credential generation.

use thiserror::Error;

/// AWS's message for a signature that does not match.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match \
     the signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";

/// AWS's message for an unknown access key id.
pub const UNKNOWN_KEY_MESSAGE: &str = "The security token included in the request is invalid.";

/// AWS's message for a request without authentication.
pub const MISSING_AUTH_MESSAGE: &str = "Missing Authentication Token";

/// Why a request failed verification.
///
/// Every variant maps to one of the three AWS error codes a Lambda endpoint
/// answers with HTTP 403 ([`VerifyError::aws_error_code`]); the `Display`
/// text is AWS's message where AWS's wording is known, and otherwise says
/// precisely what was wrong. The server sends it as the `message` of the
/// error body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Neither an `Authorization` header nor presigned query parameters.
    #[error("{MISSING_AUTH_MESSAGE}")]
    MissingAuthentication,

    /// The access key id in the credential is not known.
    #[error("{UNKNOWN_KEY_MESSAGE}")]
    UnknownAccessKey {
        /// The access key id the request named.
        access_key_id: String,
    },

    /// The signature is well formed but wrong (wrong secret, or anything
    /// covered by the signature was changed: method, path, query, a signed
    /// header, the body).
    #[error("{SIGNATURE_MISMATCH_MESSAGE}")]
    SignatureMismatch {
        /// The canonical request the verifier computed, for server-side logs
        /// (never send it to the client in production: it is harmless, but
        /// AWS does not send it either for Lambda).
        canonical_request: String,
        /// The string to sign the verifier computed.
        string_to_sign: String,
    },

    /// The request time is more than the allowed skew before the server's
    /// clock. `request_time`, `earliest` and `now` are `YYYYMMDDTHHMMSSZ`.
    #[error(
        "Signature expired: {request_time} is now earlier than {earliest} ({now} - {minutes} min.)"
    )]
    SignatureExpired {
        /// The request's timestamp.
        request_time: String,
        /// `now` minus the allowed skew.
        earliest: String,
        /// The server's time.
        now: String,
        /// The allowed skew in minutes.
        minutes: u64,
    },

    /// The request time is more than the allowed skew after the server's clock.
    #[error("Signature not yet current: {request_time} is still later than {latest} ({now} + {minutes} min.)")]
    SignatureNotYetCurrent {
        /// The request's timestamp.
        request_time: String,
        /// `now` plus the allowed skew.
        latest: String,
        /// The server's time.
        now: String,
        /// The allowed skew in minutes.
        minutes: u64,
    },

    /// A presigned URL whose `X-Amz-Expires` has passed.
    #[error(
        "Signature expired: the presigned request was valid until {expired_at} and it is now {now}"
    )]
    PresignedUrlExpired {
        /// When the URL stopped being valid (`YYYYMMDDTHHMMSSZ`).
        expired_at: String,
        /// The server's time.
        now: String,
    },

    /// The `Authorization` header or the presigned query parameters could not
    /// be parsed, or a required part of them is missing.
    #[error("Malformed authorization: {0}")]
    Malformed(String),

    /// The algorithm is not `AWS4-HMAC-SHA256`.
    #[error("Unsupported signature algorithm '{0}': only AWS4-HMAC-SHA256 is accepted")]
    UnsupportedAlgorithm(String),

    /// The credential scope is for another service.
    #[error("Credential should be scoped to correct service: '{expected}'. (got '{got}')")]
    WrongService {
        /// The service this endpoint is (`lambda`).
        expected: String,
        /// The service named in the credential scope.
        got: String,
    },

    /// The credential scope names a region this endpoint does not accept.
    #[error("Credential should be scoped to a valid region, not '{0}'.")]
    WrongRegion(String),

    /// The credential scope does not end in `aws4_request`, or has the wrong
    /// number of parts.
    #[error("Credential should be scoped with a valid terminator: 'aws4_request', not '{0}'.")]
    BadScope(String),

    /// The date of the credential scope is not the day of the request time.
    #[error("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{request_date}', from '{request_time}'.")]
    ScopeDateMismatch {
        /// The `YYYYMMDD` of the credential scope.
        scope_date: String,
        /// The `YYYYMMDD` of the request time.
        request_date: String,
        /// The request time, `YYYYMMDDTHHMMSSZ`.
        request_time: String,
    },

    /// Neither `X-Amz-Date` nor `Date` is present.
    #[error(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )]
    MissingDate,

    /// The `X-Amz-Date` or `Date` value cannot be parsed.
    #[error(
        "Invalid date '{0}': expected YYYYMMDD'T'HHMMSS'Z' (X-Amz-Date) or an IMF-fixdate (Date)"
    )]
    InvalidDate(String),

    /// A header that must be signed (`host`, and `x-amz-date` or `date`) is
    /// not in `SignedHeaders`.
    #[error("'{0}' must be a 'SignedHeader' in the AWS Authorization.")]
    HeaderNotSigned(&'static str),

    /// A header named in `SignedHeaders` is not in the request.
    #[error("The header '{0}' is listed in SignedHeaders but is not present in the request.")]
    SignedHeaderMissing(String),

    /// `x-amz-content-sha256` is neither `UNSIGNED-PAYLOAD` (when allowed)
    /// nor the SHA-256 of the body.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,

    /// `x-amz-content-sha256` is `UNSIGNED-PAYLOAD` but the verifier was
    /// configured to require a signed body, or it is a streaming mode.
    #[error("Unsupported x-amz-content-sha256 value '{0}': the body must be signed")]
    UnsupportedPayloadHash(String),

    /// `x-amz-*` headers that `SignedHeaders` does not name, when every
    /// one must be signed (the names, lowercase, joined by `, `).
    #[error("There were headers present in the request which were not signed: {0}. Every x-amz-* header sent must be listed in SignedHeaders.")]
    HeadersNotSigned(String),

    /// Presigned (query-string) authentication, when it is not accepted.
    #[error("Presigned (query-string) authentication is not accepted by this endpoint: sign the request with an Authorization header")]
    PresignedNotAccepted,

    /// Both an `Authorization` header and presigned query parameters.
    #[error("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified")]
    AmbiguousAuthentication,

    /// The server's `now` cannot be represented (before 1970 or after 9999).
    #[error("The server clock is outside the supported range")]
    ClockOutOfRange,
}

impl VerifyError {
    /// The AWS error code the server answers with (HTTP 403, in the
    /// `X-Amzn-ErrorType` header and the `Type` of the body):
    /// `MissingAuthenticationTokenException`, `UnrecognizedClientException`
    /// or `InvalidSignatureException`.
    ///
    /// ```
    /// use mayfly_sigv4::VerifyError;
    /// assert_eq!(
    ///     VerifyError::MissingAuthentication.aws_error_code(),
    ///     "MissingAuthenticationTokenException"
    /// );
    /// ```
    pub fn aws_error_code(&self) -> &'static str {
        match self {
            VerifyError::MissingAuthentication => "MissingAuthenticationTokenException",
            VerifyError::UnknownAccessKey { .. } => "UnrecognizedClientException",
            _ => "InvalidSignatureException",
        }
    }

    /// The HTTP status to answer with: always 403, as AWS does for these codes.
    pub fn http_status(&self) -> u16 {
        403
    }

    /// Whether the request failed only because of the clock (expired, not yet
    /// current, or a presigned URL past its expiry).
    pub fn is_time_skew(&self) -> bool {
        matches!(
            self,
            VerifyError::SignatureExpired { .. }
                | VerifyError::SignatureNotYetCurrent { .. }
                | VerifyError::PresignedUrlExpired { .. }
        )
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignError {
    /// No `Host` header and no authority in the URI: SigV4 must sign the host.
    #[error("cannot sign a request without a host: set a Host header or use an absolute URI")]
    MissingHost,
    /// The signing time is before 1970 or after 9999.
    #[error("the signing time is outside the supported range")]
    TimeOutOfRange,
    /// Region, service or access key id is empty or contains `/`.
    #[error("invalid {0}: it must be non-empty and must not contain '/' or whitespace")]
    InvalidScopePart(&'static str),
    /// A computed header value is not a valid HTTP header value.
    #[error("a header value for '{0}' is not a valid HTTP header value")]
    InvalidHeaderValue(&'static str),
}

/// The operating system's random number generator failed.
#[derive(Debug, Error)]
#[error("the OS random number generator failed: {0}")]
pub struct RandomError(#[from] pub(crate) getrandom::Error);
