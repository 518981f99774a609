//! Object-store notifications without I/O.
//!
//! A store that can push S3 event notifications over HTTP (Ceph RGW's
//! bucket notifications to a topic with a `push-endpoint`) posts
//! `{"Records": [...]}` to the host. This crate decides what such a push
//! means, bytes in and values out:
//!
//! - [`endpoint`]: the push endpoint's path names the function and carries
//!   a token only the host can make (an HMAC of the function under the
//!   host's secret), since a store cannot sign its pushes;
//! - [`record`]: the body checked ([`record::parse`]) and each record made
//!   into what Lambda's S3 trigger sends, so existing handlers work, with
//!   a receipt that identifies a redelivered push.
//!
//! ```
//! use mayfly_object_events::{endpoint, record};
//!
//! let token = endpoint::token("host secret", "thumbnailer", None);
//! let path = endpoint::path("thumbnailer", None, &token);
//! let target = endpoint::Target::parse(&path).unwrap();
//! assert!(target.token_is_valid("host secret"));
//!
//! let body = br#"{"Records":[{"eventName":"ObjectCreated:Put","eventSource":"ceph:s3",
//!   "awsRegion":"","s3":{"bucket":{"name":"photos"},"object":{"key":"a b.jpg"}}}]}"#;
//! let records = record::parse(body, "us-east-1").unwrap();
//! assert_eq!(records[0].bucket, "photos");
//! assert_eq!(records[0].record["s3"]["object"]["key"], "a+b.jpg");
//! assert_eq!(records[0].record["eventSource"], "aws:s3");
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod endpoint;
pub mod record;
