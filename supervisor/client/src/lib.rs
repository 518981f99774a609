//! The client side of Mayfly: a SigV4-signed client of a host's Lambda
//! REST API and the `mayfly` commands built on it.
//!
//! - [`credentials`]: the host's access key pair (environment or
//!   `<data-dir>/credentials`), which `mayfly serve` creates and the client
//!   signs with.
//! - [`client`]: the signed client of the Lambda REST API.
//! - [`commands`]: `mayfly deploy`, `invoke`, `ls`, `rm` and `logs`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod commands;
pub mod credentials;
