//! Helpers shared by the end-to-end tests, by concern:
//!
//! - [`fixtures`]: the built images, zips and ELFs made from them, encodings;
//! - [`process`]: which QEMU processes are alive (no test may leave one);
//! - [`command`]: the `mayfly` binary run directly (`mayfly run`);
//! - [`server`]: a real `mayfly serve` on its own data directory and ports;
//! - [`aws`]: the real AWS CLI (`aws lambda …`, v1) against a server;
//! - [`http`]: a small raw HTTP client, signed with `mayfly-sigv4` or not at
//!   all, for what no AWS client can send, and Mayfly's own endpoints;
//! - [`python`]: the boto3 scripts of `tests/api/` against a server;
//! - [`recorder`]: what the `recorder` image was given;
//! - the real servers the tests start (PostgreSQL, Mosquitto, RabbitMQ,
//!   Ceph) are `mayfly-testbed`'s;
//! - [`abuse`]: raw connections that stall, and the server's memory, for
//!   the abuse tests.

pub mod abuse;
pub mod aws;
pub mod command;
pub mod fixtures;
pub mod http;
pub mod process;
pub mod python;
pub mod recorder;
pub mod server;

use std::path::{Path, PathBuf};

pub use fixtures::{image, image_path, payload_json};
pub use server::{Options, Server};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The last `n` bytes of a text (on a character boundary).
pub fn tail(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    let mut start = text.len() - n;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
