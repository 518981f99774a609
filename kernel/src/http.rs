//! Just enough HTTP/1.1 to be a runtime-API client: requests with a
//! `Content-Length` body on a kept-alive connection, responses read by
//! `Content-Length`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::net::{Connection, NetError};

/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Headers parsed at most.
const MAX_HEADERS: usize = 32;

/// A received response.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (as received) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum HttpError {
    /// The connection failed.
    Net(NetError),
    /// The server's answer was not understood.
    Malformed(&'static str),
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HttpError::Net(e) => write!(f, "{e}"),
            HttpError::Malformed(what) => write!(f, "malformed response: {what}"),
        }
    }
}

impl From<NetError> for HttpError {
    fn from(e: NetError) -> Self {
        HttpError::Net(e)
    }
}

/// Sends one request and reads its response.
pub fn exchange(
    conn: &mut Connection,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let mut head = String::with_capacity(256);
    let _ = write!(head, "{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if method != "GET" || !body.is_empty() {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    // One write, so that head and body can travel in one segment.
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    conn.send_all(&request)?;
    read_response(conn)
}

fn read_response(conn: &mut Connection) -> Result<Response, HttpError> {
    let mut data = Vec::with_capacity(4096);
    loop {
        conn.receive_some(&mut data)?;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&data) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response
                    .code
                    .ok_or(HttpError::Malformed("no status code"))?;
                let mut content_length = 0usize;
                let mut owned = Vec::with_capacity(response.headers.len());
                for h in response.headers.iter() {
                    let value = core::str::from_utf8(h.value)
                        .map_err(|_| HttpError::Malformed("header value is not UTF-8"))?;
                    if h.name.eq_ignore_ascii_case("content-length") {
                        content_length = value
                            .trim()
                            .parse()
                            .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
                    }
                    owned.push((h.name.to_string(), value.to_string()));
                }
                let mut body = data.split_off(head_len);
                body.reserve(content_length.saturating_sub(body.len()));
                while body.len() < content_length {
                    conn.receive_some(&mut body)?;
                }
                body.truncate(content_length);
                return Ok(Response {
                    status,
                    headers: owned,
                    body,
                });
            }
            Ok(httparse::Status::Partial) if data.len() < MAX_HEAD_BYTES => continue,
            Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("head too large")),
            Err(_) => return Err(HttpError::Malformed("unparseable response")),
        }
    }
}
