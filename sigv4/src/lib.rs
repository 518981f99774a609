//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for Mayfly.
//!
//! Two users:
//!
//! * `mayfly serve` authenticates every Lambda REST API call with
//!   [`verify`]: it passes the request's [`RequestParts`] (method, target
//!   exactly as received, headers), the complete body, a
//!   [`CredentialLookup`] and its clock, and answers any [`VerifyError`]
//!   with HTTP 403, [`VerifyError::aws_error_code`] as the error type and the
//!   error's `Display` text as the message — the same codes and wording as
//!   AWS (`MissingAuthenticationTokenException`,
//!   `UnrecognizedClientException`, `InvalidSignatureException`).
//! * The `mayfly` client signs its own requests with [`sign`] or
//!   [`sign_request`], building paths with
//!   [`canonical::encode_path_segment`] as botocore does.
//!
//! [`generate_credentials`] makes an AWS-shaped key pair from the OS RNG.
//!
//! The interface uses the `http` crate's [`Method`](http::Method),
//! [`Uri`](http::Uri) and [`HeaderMap`](http::HeaderMap), which hyper and
//! axum hand to a middleware directly.
//!
//! # Compatibility
//!
//! The canonical request is built as botocore (AWS CLI v1, boto3) builds it
//! for every service but S3, and the tests check fixtures that botocore
//! signed and requests the real AWS CLI sent:
//!
//! * The **path** is taken as received (botocore escapes each Lambda path
//!   parameter completely: `:` → `%3A`, `$` → `%24`), normalised (dot
//!   segments and repeated slashes removed) and then **escaped again**, so
//!   `/functions/f%3A%24LATEST` is signed as `/functions/f%253A%2524LATEST`.
//! * The **query** is decoded and re-encoded with AWS URI encoding and sorted
//!   by key, then value; empty values are written `key=`.
//! * **Headers** named in `SignedHeaders` are canonicalised (lowercase name,
//!   trimmed value with runs of whitespace collapsed, repeated headers joined
//!   by `,`). botocore signs every header it sets except `User-Agent` and
//!   hop-by-hop headers; for Lambda that is usually `host;x-amz-date` plus
//!   `content-type` and `x-amz-*` headers such as `x-amz-invocation-type`.
//! * The **payload hash** is computed from the body; botocore sends no
//!   `x-amz-content-sha256` for Lambda. If that header is present it must
//!   equal the body's hash (or be `UNSIGNED-PAYLOAD`, which
//!   [`VerifyOptions::strict`] refuses).
//! * **Strict rules** ([`VerifyOptions::strict`], what `mayfly serve`
//!   applies): every `x-amz-*` header sent must be signed, the body must be
//!   signed and presigned URLs are refused. botocore meets them for Lambda.
//! * **Two steps**: [`check_headers`] checks everything but the body and
//!   returns a [`PendingSignature`]; its
//!   [`verify_body`](PendingSignature::verify_body) checks the body. A
//!   server reads no body before the first step passes.
//! * The **time** comes from `X-Amz-Date`, or from `Date` when botocore was
//!   configured to sign that instead, and must be within 5 minutes of the
//!   server's clock.
//!
//! Session tokens (`X-Amz-Security-Token`) are signed like any header but
//! not otherwise checked; Mayfly has no temporary credentials.
//!
//! # Example
//!
//! ```
//! use std::time::SystemTime;
//! use http::{Method, Request};
//! use mayfly_sigv4::{generate_credentials, sign_request, verify, RequestParts, SigningParams};
//!
//! let creds = generate_credentials().unwrap();
//! let mut req = Request::builder()
//!     .method(Method::GET)
//!     .uri("http://127.0.0.1:9000/2015-03-31/functions?MaxItems=2&Marker=x")
//!     .body(Vec::new())
//!     .unwrap();
//! sign_request(&mut req, &SigningParams::new(&creds, "us-east-1", "lambda")).unwrap();
//!
//! let who = verify(RequestParts::from(&req), req.body(), &creds, SystemTime::now(), "lambda").unwrap();
//! assert_eq!(who.access_key_id, creds.access_key_id);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod canonical;
mod credentials;
mod date;
mod error;
mod pending;
mod sign;
mod verify;

pub use credentials::{generate_credentials, CredentialLookup, Credentials, ACCESS_KEY_PREFIX};
pub use error::{
    RandomError, SignError, VerifyError, MISSING_AUTH_MESSAGE, SIGNATURE_MISMATCH_MESSAGE,
    UNKNOWN_KEY_MESSAGE,
};
pub use pending::PendingSignature;
pub use sign::{
    presign, sign, sign_request, SigningParams, UNSIGNED_HEADERS, X_AMZ_CONTENT_SHA256, X_AMZ_DATE,
};
pub use verify::{
    check_headers, verify, verify_with_options, RequestParts, VerifiedIdentity, VerifyOptions,
    MAX_PRESIGNED_EXPIRES,
};

/// Formats a time as an `X-Amz-Date` value (`YYYYMMDDTHHMMSSZ`, UTC), or
/// `None` before 1970 or after 9999.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160);
/// assert_eq!(mayfly_sigv4::format_amz_date(t).as_deref(), Some("20150830T123600Z"));
/// assert_eq!(mayfly_sigv4::parse_amz_date("20150830T123600Z"), Some(t));
/// ```
pub fn format_amz_date(time: std::time::SystemTime) -> Option<String> {
    date::unix_seconds(time).map(date::format_amz_date)
}

/// Parses an `X-Amz-Date` value (`YYYYMMDDTHHMMSSZ`), or `None` if malformed.
pub fn parse_amz_date(value: &str) -> Option<std::time::SystemTime> {
    date::parse_amz_date(value).map(date::from_unix_seconds)
}
