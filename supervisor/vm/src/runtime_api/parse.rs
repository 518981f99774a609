//! A runtime-API request head, parsed and judged: bytes in, a [`Head`] or
//! the reason it is refused out. Anything two HTTP implementations could
//! frame differently is refused, so that what the host takes for one
//! request is what the guest sent as one.

use mayfly_proto::runtime::{self, Route};

use super::{Refusal, ERROR_INVALID_REQUEST, ERROR_LIMIT};

/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 64;

/// What a request path names, owned so that it outlives the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OwnedRoute {
    Next,
    Response(String),
    Error(String),
    InitError,
    Unknown { method: String, path: String },
}

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length` (or no body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head, kept while its body arrives.
#[derive(Debug, Clone)]
pub(super) struct Head {
    pub len: usize,
    pub route: OwnedRoute,
    pub framing: Framing,
    pub close: bool,
    pub error_type: Option<String>,
    pub max_memory: Option<u64>,
    /// `Lambda-Runtime-Function-Response-Mode: streaming` on a chunked
    /// `response`: its data is handed on as it arrives.
    pub streaming: bool,
}

fn invalid(status: u16, message: impl Into<String>) -> Refusal {
    Refusal::new(status, ERROR_INVALID_REQUEST, message)
}

/// A `Content-Length` value: ASCII digits only (no sign, no list, no
/// inner space), as RFC 9110 defines it.
fn content_length(value: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(value).ok()?.trim_matches([' ', '\t']);
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a request head: `Ok(None)` while incomplete (and within
/// [`MAX_HEAD_BYTES`]), `Err` when it is refused.
pub(super) fn parse_head(input: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() <= MAX_HEAD_BYTES => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(Refusal::new(
                431,
                ERROR_LIMIT,
                format!("a runtime API request head exceeds {MAX_HEAD_BYTES} bytes"),
            ))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                431,
                ERROR_LIMIT,
                format!("a runtime API request has more than {MAX_HEADERS} headers"),
            ))
        }
        Err(e) => return Err(invalid(400, format!("malformed HTTP request: {e}"))),
    };
    if len > MAX_HEAD_BYTES {
        return Err(Refusal::new(
            431,
            ERROR_LIMIT,
            format!("a runtime API request head of {len} bytes exceeds {MAX_HEAD_BYTES} bytes"),
        ));
    }
    let method = request.method.unwrap_or_default();
    let path = request.path.unwrap_or_default();
    let http10 = request.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut close = http10;
    let mut error_type = None;
    let mut max_memory = None;
    let mut streaming = false;
    for header in request.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value).map(|v| v.trim_matches([' ', '\t']));
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(invalid(400, "two Content-Length headers in one request"));
            }
            length = Some(
                content_length(header.value)
                    .ok_or_else(|| invalid(400, "malformed Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked {
                return Err(invalid(400, "two Transfer-Encoding headers in one request"));
            }
            match value {
                Ok(v) if v.eq_ignore_ascii_case("chunked") => chunked = true,
                _ => return Err(invalid(501, "only Transfer-Encoding: chunked is supported")),
            }
        } else if name.eq_ignore_ascii_case("connection") {
            match value {
                Ok(v) if v.eq_ignore_ascii_case("close") => close = true,
                Ok(v) if v.eq_ignore_ascii_case("keep-alive") => close = false,
                _ => {}
            }
        } else if name.eq_ignore_ascii_case(runtime::HEADER_FUNCTION_ERROR_TYPE) {
            error_type = value.ok().map(str::to_owned);
        } else if name.eq_ignore_ascii_case(runtime::HEADER_MAX_MEMORY_BYTES) {
            max_memory = value.ok().and_then(|v| v.parse().ok());
        } else if name.eq_ignore_ascii_case(runtime::HEADER_RESPONSE_MODE) {
            streaming = value.is_ok_and(|v| v.eq_ignore_ascii_case("streaming"));
        }
    }
    let framing = match (length, chunked) {
        (Some(_), true) => {
            return Err(invalid(
                400,
                "Content-Length and Transfer-Encoding in one request",
            ))
        }
        (_, true) if http10 => return Err(invalid(400, "chunked coding in an HTTP/1.0 request")),
        (_, true) => Framing::Chunked,
        (length, false) => Framing::Length(length.unwrap_or(0)),
    };
    let route = match Route::parse(method, path) {
        Some(Route::Next) => OwnedRoute::Next,
        Some(Route::Response(id)) => OwnedRoute::Response(id.to_owned()),
        Some(Route::Error(id)) => OwnedRoute::Error(id.to_owned()),
        Some(Route::InitError) => OwnedRoute::InitError,
        None => OwnedRoute::Unknown {
            method: method.to_owned(),
            path: path.to_owned(),
        },
    };
    let streaming =
        streaming && framing == Framing::Chunked && matches!(route, OwnedRoute::Response(_));
    Ok(Some(Head {
        len,
        route,
        framing,
        close,
        error_type,
        max_memory,
        streaming,
    }))
}
