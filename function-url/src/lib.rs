//! Lambda Function URLs without I/O: everything the URL front decides,
//! tested without a listener, a store or a VM.
//!
//! - [`config`]: a URL's `AuthType`, `Cors` and `InvokeMode`, with
//!   Lambda's checks;
//! - [`address`]: which URL a request is for (host name or path form), and
//!   the URL the API shows;
//! - [`policy`]: the resource policy's statements (AddPermission,
//!   GetPolicy) and whether they open a `NONE` URL to everyone;
//! - [`event`]: the request as the payload format 2.0 event;
//! - [`response`]: the function's answer as the HTTP response;
//! - [`cors`]: preflights and the headers on every response.
//!
//! ```
//! use mayfly_function_url::response::from_answer;
//!
//! let response = from_answer(br#"{"statusCode": 201, "body": "made"}"#);
//! assert_eq!((response.status, &response.body[..]), (201, &b"made"[..]));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod address;
pub mod config;
pub mod cors;
pub mod event;
pub mod policy;
pub mod response;
