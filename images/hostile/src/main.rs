//! A hostile guest, for tests: it attacks the host's runtime API instead of
//! answering. The mode comes from the event (`{"mode": ...}`) or, failing
//! that, the `HOSTILE_MODE` environment variable:
//!
//! - `pipeline`: requests without end on the runtime-API connection, never
//!   reading an answer;
//! - `connections`: connections opened and reset without end;
//! - `frames`: bare Ethernet frames as fast as the card takes them;
//! - `header`: a response whose head is 1 MiB of one header;
//! - `slow`: a response whose body arrives a byte every 200 ms;
//! - `other-id`: a response posted for another request id;
//! - `two-lengths`: a response with two `Content-Length`s;
//! - `bad-chunked`: a chunked response with an invalid chunk size;
//! - `endless-chunked`: a chunked response that never ends;
//! - `big-response`: a 7 MB result, through the SDK;
//! - `memory`: a response that claims the most memory a u64 can count;
//! - `chunked`: an honest chunked response (`{"chunked":true}`), which the
//!   host must accept.
//!
//! Every raw mode either ends by the host's hand or waits to be killed.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use mayfly_kernel::raw;
use mayfly_kernel::{Context, Error};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Request {
    mode: Option<String>,
}

/// Size of the one header of `header`.
const HUGE_HEADER_BYTES: usize = 1024 * 1024;
/// Size of the result of `big-response`: over Lambda's 6 MB.
const BIG_RESPONSE_BYTES: usize = 7 * 1024 * 1024;

fn handler(event: Request, ctx: &Context) -> Result<Value, Error> {
    let mode = event
        .mode
        .or_else(|| ctx.env_var("HOSTILE_MODE"))
        .unwrap_or_default();
    let response = format!(
        "/2018-06-01/runtime/invocation/{}/response",
        ctx.request_id()
    );
    let host = raw::host().map_err(raw_error)?;
    let post_head =
        |extra: &str| format!("POST {response} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
    match mode.as_str() {
        "pipeline" => {
            let request =
                format!("GET /2018-06-01/runtime/nothing HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let batch = request.repeat(64);
            loop {
                send(batch.as_bytes())?;
            }
        }
        "connections" => {
            let mut port = 30000u16;
            loop {
                let socket = raw::connect(port).map_err(raw_error)?;
                port = if port == 40000 { 30000 } else { port + 1 };
                let started = mayfly_kernel::uptime_ms();
                while !socket.is_established()
                    && !socket.is_closed()
                    && mayfly_kernel::uptime_ms() < started + 1000
                {
                    raw::poll();
                }
                socket.abort();
            }
        }
        "frames" => {
            let mac = raw::mac().map_err(raw_error)?;
            let mut frame = [0u8; 60];
            frame[..6].copy_from_slice(&[0xff; 6]);
            frame[6..12].copy_from_slice(&mac);
            // A local experimental EtherType: nothing on the host answers it.
            frame[12..14].copy_from_slice(&[0x88, 0xb5]);
            loop {
                if !raw::send_frame(&frame) {
                    raw::poll();
                }
            }
        }
        "header" => {
            send(format!("POST {response} HTTP/1.1\r\nHost: {host}\r\nX-Hostile: ").as_bytes())?;
            let filler = [b'a'; 4096];
            for _ in 0..HUGE_HEADER_BYTES / filler.len() {
                send(&filler)?;
            }
            send(b"\r\nContent-Length: 2\r\n\r\n{}")?;
            wait_forever()
        }
        "slow" => {
            let body =
                br#"{"slow":"a body trickled a byte at a time, far slower than any timeout"}"#;
            send(post_head(&format!("Content-Length: {}\r\n", body.len())).as_bytes())?;
            for byte in body {
                send(core::slice::from_ref(byte))?;
                raw::wait_ms(200);
            }
            wait_forever()
        }
        "other-id" => {
            let other =
                "/2018-06-01/runtime/invocation/00000000-0000-4000-8000-000000000000/response";
            send(
                format!("POST {other} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}")
                    .as_bytes(),
            )?;
            wait_forever()
        }
        "two-lengths" => {
            send(post_head("Content-Length: 2\r\nContent-Length: 12\r\n").as_bytes())?;
            send(br#"{}{"more":1}"#)?;
            wait_forever()
        }
        "bad-chunked" => {
            send(post_head("Transfer-Encoding: chunked\r\n").as_bytes())?;
            send(b"2\r\n{}\r\nzz\r\n")?;
            wait_forever()
        }
        "endless-chunked" => {
            send(post_head("Transfer-Encoding: chunked\r\n").as_bytes())?;
            let mut chunk = vec![b'"'; 65536 + 9];
            chunk[..7].copy_from_slice(b"10000\r\n");
            let end = chunk.len();
            chunk[end - 2..].copy_from_slice(b"\r\n");
            loop {
                send(&chunk)?;
            }
        }
        "big-response" => Ok(Value::String("x".repeat(BIG_RESPONSE_BYTES))),
        "memory" => {
            let body = br#"{"claimed":"18446744073709551615 bytes"}"#;
            let extra = format!(
                "Mayfly-Max-Memory-Bytes: 18446744073709551615\r\nContent-Length: {}\r\n",
                body.len()
            );
            send(post_head(&extra).as_bytes())?;
            send(body)?;
            wait_forever()
        }
        "chunked" => {
            send(post_head("Transfer-Encoding: chunked\r\n").as_bytes())?;
            send(b"3\r\n{\"c\r\n0b;ext=1\r\nhunked\":tru\r\n2\r\ne}\r\n0\r\n\r\n")?;
            wait_forever()
        }
        other => Err(Error::new("InvalidMode", format!("unknown mode `{other}`"))),
    }
}

fn raw_error(e: raw::RawError) -> Error {
    Error::new("Hostile.RawError", format!("{e}"))
}

fn send(data: &[u8]) -> Result<(), Error> {
    raw::send_all(data).map_err(raw_error)
}

/// Keeps the network going until the host ends the VM.
fn wait_forever() -> ! {
    loop {
        raw::poll();
    }
}

mayfly_kernel::entry!(handler);
