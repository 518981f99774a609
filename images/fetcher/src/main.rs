//! Fetches `GET /` from a port of the host's loopback through egress,
//! with the SDK's TCP client: `{"port": P}` answers `{"status": "HTTP/1.0
//! 200 OK", "body": "..."}`; a connection the policy refuses is the
//! function's error.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use mayfly_kernel::tcp::{TcpStream, HOST};
use mayfly_kernel::{Context, Error};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Event {
    port: u16,
}

fn handler(event: Event, _ctx: &Context) -> Result<Value, Error> {
    let mut stream = TcpStream::connect(HOST, event.port)?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: host.mayfly.internal\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("");
    Ok(json!({ "status": status, "body": body }))
}

mayfly_kernel::entry!(handler);
