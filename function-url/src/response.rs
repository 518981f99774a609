//! The function's answer as the URL's HTTP response, as Lambda maps it: an
//! object with `statusCode` gives the status, `headers`, `cookies` (each a
//! `set-cookie`), `body` and `isBase64Encoded`; any other JSON is the body
//! of a 200 `application/json`; a function error, or an answer that is not
//! JSON or has a bad shape, is a 502.

use base64::Engine;
use serde_json::Value;

/// An HTTP response, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, in order (`set-cookie` may repeat).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a JSON `{"Message": message}` body, as Lambda's
    /// URL front answers its own errors.
    pub fn message(status: u16, message: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({ "Message": message })
                .to_string()
                .into_bytes(),
        }
    }

    /// The 502 a function error gives.
    pub fn bad_gateway() -> HttpResponse {
        HttpResponse {
            status: 502,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"Message":"Internal Server Error"}"#.to_vec(),
        }
    }

    /// The value of header `name` (any case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether a header name and value can be written as they are.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// The response for a function's successful answer `payload`.
pub fn from_answer(payload: &[u8]) -> HttpResponse {
    let Ok(value) = serde_json::from_slice::<Value>(payload) else {
        return HttpResponse::bad_gateway();
    };
    let Some(object) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        return HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: payload.to_vec(),
        };
    };
    let status = match object.get("statusCode").and_then(Value::as_u64) {
        Some(code @ 100..=599) => code as u16,
        _ => return HttpResponse::bad_gateway(),
    };
    let mut headers = Vec::new();
    match object.get("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, value) in map {
                let value = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return HttpResponse::bad_gateway(),
                };
                if !is_token(name) || !is_value(&value) {
                    return HttpResponse::bad_gateway();
                }
                headers.push((name.to_ascii_lowercase(), value));
            }
        }
        Some(_) => return HttpResponse::bad_gateway(),
    }
    match object.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                match cookie.as_str() {
                    Some(c) if is_value(c) => headers.push(("set-cookie".into(), c.to_string())),
                    _ => return HttpResponse::bad_gateway(),
                }
            }
        }
        Some(_) => return HttpResponse::bad_gateway(),
    }
    let base64 = object
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let body = match object.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if base64 => {
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(bytes) => bytes,
                Err(_) => return HttpResponse::bad_gateway(),
            }
        }
        Some(Value::String(text)) => text.clone().into_bytes(),
        // Lambda writes a non-string body as its JSON.
        Some(other) => other.to_string().into_bytes(),
    };
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// The end of a streamed response's prelude: eight NUL bytes.
pub const PRELUDE_END: [u8; 8] = [0; 8];
/// The longest prelude looked for.
pub const MAX_PRELUDE: usize = 64 * 1024;

/// What the start of a streamed response says about its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prelude {
    /// Not enough yet to tell.
    NeedMore,
    /// The function sent a prelude (`{"statusCode":…,"headers":…,
    /// "cookies":…}` and [`PRELUDE_END`]): the head it gives (no body),
    /// and where the body starts.
    Found(HttpResponse, usize),
    /// No prelude: the bytes are the body of a 200.
    Absent,
}

/// Looks for a prelude at the start of a streamed response (`complete`:
/// nothing more will come).
pub fn prelude(start: &[u8], complete: bool) -> Prelude {
    let text_start = start.iter().position(|b| !b.is_ascii_whitespace());
    match text_start {
        None if complete => return Prelude::Absent,
        None => return Prelude::NeedMore,
        Some(at) if start[at] != b'{' => return Prelude::Absent,
        Some(_) => {}
    }
    let end = start
        .windows(PRELUDE_END.len())
        .position(|w| w == PRELUDE_END);
    let Some(end) = end else {
        return if complete || start.len() > MAX_PRELUDE {
            Prelude::Absent
        } else {
            Prelude::NeedMore
        };
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&start[..end]) else {
        return Prelude::Absent;
    };
    if let Some(object) = value.as_object_mut() {
        object.remove("body");
        object.remove("isBase64Encoded");
        object.entry("statusCode").or_insert(Value::from(200));
    }
    let mut head = from_answer(value.to_string().as_bytes());
    head.body.clear();
    Prelude::Found(head, end + PRELUDE_END.len())
}

/// The head of a streamed response without a prelude.
pub fn streamed_default() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/octet-stream".into())],
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_shape_maps_to_status_headers_cookies_and_body() {
        let response = from_answer(
            br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-N":7},
                "cookies":["a=1; Path=/","b=2"],"body":"made"}"#,
        );
        assert_eq!(response.status, 201);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.header("x-n"), Some("7"));
        let cookies: Vec<_> = response
            .headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cookies, ["a=1; Path=/", "b=2"]);
        assert_eq!(response.body, b"made");
    }

    #[test]
    fn json_without_a_status_is_a_200_json_body() {
        let response = from_answer(br#"{"hello":"world"}"#);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert_eq!(response.body, br#"{"hello":"world"}"#);
        assert_eq!(from_answer(b"\"text\"").body, b"\"text\"");
    }

    #[test]
    fn base64_bodies_are_decoded() {
        let response =
            from_answer(br#"{"statusCode":200,"body":"AJ+Slg==","isBase64Encoded":true}"#);
        assert_eq!(response.body, [0, 159, 146, 150]);
    }

    #[test]
    fn bad_shapes_are_a_502() {
        for bad in [
            &b"not json"[..],
            br#"{"statusCode":"200"}"#,
            br#"{"statusCode":99}"#,
            br#"{"statusCode":200,"headers":["x"]}"#,
            br#"{"statusCode":200,"headers":{"bad name":"x"}}"#,
            br#"{"statusCode":200,"headers":{"x":"a\nb"}}"#,
            br#"{"statusCode":200,"cookies":[1]}"#,
            br#"{"statusCode":200,"body":"!!","isBase64Encoded":true}"#,
        ] {
            assert_eq!(
                from_answer(bad).status,
                502,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_streamed_prelude_gives_the_head_and_where_the_body_starts() {
        let mut wire =
            br#"{"statusCode":201,"headers":{"content-type":"text/plain"},"cookies":["a=1"]}"#
                .to_vec();
        assert_eq!(prelude(&wire, false), Prelude::NeedMore);
        wire.extend_from_slice(&PRELUDE_END);
        wire.extend_from_slice(b"first");
        let Prelude::Found(head, at) = prelude(&wire, false) else {
            panic!("a prelude")
        };
        assert_eq!(head.status, 201);
        assert_eq!(head.header("content-type"), Some("text/plain"));
        assert_eq!(head.header("set-cookie"), Some("a=1"));
        assert!(head.body.is_empty());
        assert_eq!(&wire[at..], b"first");
        assert_eq!(prelude(b"plain text", false), Prelude::Absent);
        assert_eq!(prelude(b"{not a prelude", true), Prelude::Absent);
        assert_eq!(prelude(b"", false), Prelude::NeedMore);
    }
}
