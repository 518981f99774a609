//! A Lambda custom runtime that streams its response (the runtime API's
//! streaming mode: `Lambda-Runtime-Function-Response-Mode: streaming`, a
//! chunked body, errors in trailers), on plain std sockets. The event says
//! how: `count` chunks (`chunk 0\n`, `chunk 1\n`, ...) `gap_ms` apart,
//! read from a JSON event (`{"count":3,"gap_ms":200}`) or a function URL's
//! query string (`?count=10&gap_ms=1000`); a URL's event (it has a
//! `rawPath`) gets Lambda's HTTP prelude first (`{"statusCode":200,
//! "headers":{"content-type":"text/plain"}}` and eight NUL bytes); an event
//! that says `fail` ends with an error in the trailers after its chunks.
#[path = "runtime_next.rs"]
mod runtime_next;
use std::io::{Read, Write};
use std::net::TcpStream;

/// The number after `name=` or `"name":` in `text`.
fn number(text: &str, name: &str) -> Option<u64> {
    for key in [format!("{name}="), format!("\"{name}\":")] {
        if let Some(rest) = text.split(&key).nth(1) {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(n) = digits.parse() {
                return Some(n);
            }
        }
    }
    None
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn chunk(stream: &mut TcpStream, data: &[u8]) {
    write!(stream, "{:x}\r\n", data.len()).unwrap();
    stream.write_all(data).unwrap();
    stream.write_all(b"\r\n").unwrap();
    stream.flush().unwrap();
}

fn main() {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap();
    loop {
        let (id, event) = runtime_next::next(&api);
        let text = String::from_utf8_lossy(&event).to_string();
        let count = number(&text, "count").unwrap_or(3);
        let gap = std::time::Duration::from_millis(number(&text, "gap_ms").unwrap_or(100));
        let mut post = TcpStream::connect(&api).unwrap();
        let _ = post.set_nodelay(true);
        write!(
            post,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\n\
             Lambda-Runtime-Function-Response-Mode: streaming\r\n\
             Content-Type: application/vnd.awslambda.http-integration-response\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .unwrap();
        if text.contains("\"rawPath\"") {
            let mut prelude = br#"{"statusCode":200,"headers":{"content-type":"text/plain","x-streamed":"yes"}}"#.to_vec();
            prelude.extend_from_slice(&[0; 8]);
            chunk(&mut post, &prelude);
        }
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(gap);
            }
            chunk(&mut post, format!("chunk {i}\n").as_bytes());
        }
        if text.contains("fail") {
            let body = br#"{"errorType":"Stream.Failed","errorMessage":"failed midway"}"#;
            write!(
                post,
                "0\r\nLambda-Runtime-Function-Error-Type: Stream.Failed\r\n\
                 Lambda-Runtime-Function-Error-Body: {}\r\n\r\n",
                base64(body)
            )
            .unwrap();
        } else {
            post.write_all(b"0\r\n\r\n").unwrap();
        }
        let mut answer = [0u8; 512];
        let _ = post.read(&mut answer);
    }
}
