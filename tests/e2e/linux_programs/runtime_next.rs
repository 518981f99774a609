//! The `next` call of the test runtimes on plain std sockets (each runtime
//! includes this file with `#[path]`; it is no program of its own).
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Asks the runtime API at `api` for the next event: its request id and
/// its body.
pub fn next(api: &str) -> (String, Vec<u8>) {
    let mut stream = TcpStream::connect(api).expect("connect to the runtime API");
    write!(stream, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let (mut id, mut len) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("lambda-runtime-aws-request-id:") {
            id = line[line.len() - v.trim_start().len()..].trim().to_string();
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut event = vec![0u8; len];
    reader.read_exact(&mut event).unwrap();
    (id, event)
}
