//! A small raw HTTP/1.1 client, for what neither the AWS CLI nor boto3 can
//! send: unsigned requests, requests signed (with `mayfly-sigv4`) at another
//! time or for another request than the one sent. And Mayfly's own
//! endpoints: the invocation records and `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::server::{Server, REGION};

/// One raw HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// Asserts an AWS error: status, `X-Amzn-ErrorType` (which may carry a
    /// `:…` suffix) and a JSON body with that `Type`… or at least a message.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {code}, got {} {:?} {}",
            self.status,
            self.headers,
            self.text()
        );
        let header = self
            .header("x-amzn-errortype")
            .unwrap_or_else(|| panic!("no X-Amzn-ErrorType: {self:?}"));
        assert_eq!(
            header.split(':').next().unwrap(),
            code,
            "X-Amzn-ErrorType; body {}",
            self.text()
        );
        let body = self.json();
        let message = body.get("message").or_else(|| body.get("Message"));
        assert!(
            message
                .and_then(Value::as_str)
                .is_some_and(|m| !m.is_empty()),
            "no message in the error body: {body}"
        );
        body
    }
}

/// Header pairs as the `&str` pairs [`http`] takes.
pub fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect()
}

/// A plain HTTP/1.1 request with `Connection: close`; panics when the
/// connection fails.
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    try_http(addr, method, target, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{target}: {e}"))
}

/// A plain HTTP/1.1 request with `Connection: close`.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("host") {
        head.push_str(&format!("host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("content-length") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("connection: close\r\n\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unparsable response: {:?}", String::from_utf8_lossy(&raw)),
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..nl]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = out;
    }
    Some(HttpResponse {
        status,
        headers,
        body,
    })
}

impl Server {
    /// A request signed with the server's credentials, now.
    pub fn signed(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let signed = self.sign(method, target, headers, body, SystemTime::now(), None);
        http(self.addr, method, target, &as_refs(&signed), body)
    }

    /// The headers (given ones plus `host`, `x-amz-date`, `authorization`)
    /// of a request signed at `time` with `credentials` (default: the
    /// server's).
    pub fn sign(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
        credentials: Option<(&str, &str)>,
    ) -> Vec<(String, String)> {
        let (id, secret) = credentials.unwrap_or((&self.access_key_id, &self.secret_access_key));
        let creds = mayfly_sigv4::Credentials::new(id, secret);
        let uri: ::http::Uri = format!("http://{}{}", self.addr, target).parse().unwrap();
        let mut map = ::http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                ::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                ::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut params = mayfly_sigv4::SigningParams::new(&creds, REGION, "lambda");
        params.time = time;
        let added = mayfly_sigv4::sign(
            &::http::Method::from_bytes(method.as_bytes()).unwrap(),
            &uri,
            &map,
            body,
            &params,
        )
        .expect("sign");
        let mut out: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in &added {
            out.push((k.as_str().to_string(), v.to_str().unwrap().to_string()));
        }
        out
    }

    /// The invocation records of a function, newest first
    /// (`GET /mayfly/2025-01-01/functions/{name}/invocations?Limit=N`).
    pub fn invocations(&self, name: &str, limit: u32) -> Vec<Value> {
        let target = format!("/mayfly/2025-01-01/functions/{name}/invocations?Limit={limit}");
        let resp = self.signed("GET", &target, &[], b"");
        assert_eq!(resp.status, 200, "GET {target}: {}", resp.text());
        let v = resp.json();
        v["Invocations"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {target}: no Invocations array: {v}"))
            .clone()
    }

    /// Polls the invocation records until one satisfies `pred` (up to
    /// `within`), and returns it.
    pub fn wait_for_invocation(
        &self,
        name: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let records = self.invocations(name, 50);
            if let Some(r) = records.iter().find(|r| pred(r)) {
                return r.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching invocation record of {name} within {within:?}; records:\n{}",
                    serde_json::to_string_pretty(&records).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `GET /metrics` on the metrics port.
    pub fn metrics(&self) -> String {
        let addr = self.metrics_addr.expect("server started without metrics");
        let resp = http(addr, "GET", "/metrics", &[], b"");
        assert_eq!(resp.status, 200, "GET /metrics: {}", resp.text());
        resp.text()
    }
}

/// Sums the samples of a Prometheus metric (all label sets) in a text
/// exposition; `None` when the metric has no sample.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        // A timestamp may follow the value: take the second field after
        // the labels instead.
        let after_labels = match rest.find('}') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        let v = after_labels
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .or(value);
        if let Some(v) = v {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}
