//! A real `mayfly serve` on a private port and data directory, and a small
//! blocking HTTP/1.1 client that signs with SigV4 (service `lambda`,
//! us-east-1) as the AWS CLI does. Blocking and one connection per request
//! keeps the client's own cost tiny and the same for every request, so that
//! the round trip measured is the server's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use mayfly_sigv4::{sign, Credentials, SigningParams};

const ACCESS_KEY_ID: &str = "AKIAMAYFLYBENCH00001";
const SECRET_ACCESS_KEY: &str = "mAyFlYbEnChSeCrEt/0123456789abcdefghijKL";
/// The event every invocation sends; echo must return it byte for byte.
pub const EVENT: &[u8] = br#"{"bench":true}"#;
const FUNCTION: &str = "echo";

/// A running `mayfly serve`, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its function URLs are served.
    pub urls_addr: SocketAddr,
    data_dir: PathBuf,
    /// Its log.
    pub log: PathBuf,
    creds: Credentials,
}

impl Server {
    /// Starts `mayfly serve` with a fresh data directory under `dir` and
    /// waits for `/healthz`.
    pub fn start(mayfly: &Path, dir: &Path) -> Result<Server> {
        let data_dir = dir.join("serve-data");
        let _ = std::fs::remove_dir_all(&data_dir);
        let log = dir.join("serve.log");
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let urls_port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let urls_addr = SocketAddr::from(([127, 0, 0, 1], urls_port));
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(mayfly);
        cmd.arg("serve")
            .args(["--listen", &addr.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--metrics-listen", "off", "--max-concurrency", "16"])
            .args(["--url-listen", &urls_addr.to_string()])
            .env("MAYFLY_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("MAYFLY_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // The server (and so its VMs) goes if the benchmark dies.
        crate::sys::terminate_with_parent(&mut cmd);
        let child = cmd.spawn().context("cannot start mayfly serve")?;
        let mut server = Server {
            child,
            addr,
            urls_addr,
            data_dir,
            log,
            creds: Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "mayfly serve exited ({status}); see {}",
                    server.log.display()
                );
            }
            if matches!(server.request("GET", "/healthz", &[], b"", false), Ok(r) if r.status == 200)
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!(
                    "mayfly serve did not answer /healthz in 20 s; see {}",
                    server.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One request, signed unless `unsigned`, on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        signed: bool,
    ) -> Result<Response> {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(http::HeaderName::from_bytes(k.as_bytes())?, v.parse()?);
        }
        if signed {
            let uri: http::Uri = format!("http://{}{target}", self.addr).parse()?;
            let params = SigningParams::new(&self.creds, "us-east-1", "lambda");
            let added = sign(&method.parse()?, &uri, &map, body, &params)?;
            map.extend(added);
        } else {
            map.insert(http::header::HOST, self.addr.to_string().parse()?);
        }
        for (k, v) in &map {
            head.push_str(&format!("{k}: {}\r\n", v.to_str()?));
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        parse_response(&exchange(self.addr, head, body)?)
    }

    /// CreateFunction of `echo` from `zip` (128 MB, 10 s).
    pub fn create_echo(&self, zip: &Path) -> Result<()> {
        self.create(FUNCTION, zip)
    }

    /// CreateFunction of `name` from `zip` (128 MB, 10 s): a native image
    /// or a static Linux `bootstrap`, as the server tells them apart.
    pub fn create(&self, name: &str, zip: &Path) -> Result<()> {
        self.create_sized(name, zip, 128, 10)
    }

    /// CreateFunction of `name` from `zip` with `memory_mb` and a timeout
    /// of `timeout_s` seconds.
    pub fn create_sized(
        &self,
        name: &str,
        zip: &Path,
        memory_mb: u32,
        timeout_s: u32,
    ) -> Result<()> {
        let code = base64::engine::general_purpose::STANDARD.encode(std::fs::read(zip)?);
        let body = serde_json::json!({
            "FunctionName": name, "Runtime": "provided.al2023", "Handler": "bootstrap",
            "Role": "arn:aws:iam::000000000000:role/mayfly", "MemorySize": memory_mb,
            "Timeout": timeout_s, "Code": {"ZipFile": code},
        });
        let r = self.json("POST", "/2015-03-31/functions", &body)?;
        r.expect(201, "CreateFunction")
    }

    /// PublishVersion of `echo`; returns the version.
    pub fn publish(&self) -> Result<String> {
        let r = self.json(
            "POST",
            "/2015-03-31/functions/echo/versions",
            &serde_json::json!({}),
        )?;
        r.expect(201, "PublishVersion")?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        v["Version"]
            .as_str()
            .map(str::to_owned)
            .context("PublishVersion answered no Version")
    }

    /// PutProvisionedConcurrencyConfig; `Ok(Err(why))` when the server does
    /// not know the operation (not implemented yet).
    pub fn put_provisioned(&self, version: &str, n: u32) -> Result<Result<(), String>> {
        let target =
            format!("/2019-09-30/functions/echo/provisioned-concurrency?Qualifier={version}");
        let body = serde_json::json!({"ProvisionedConcurrentExecutions": n});
        let r = self.json("PUT", &target, &body)?;
        if r.status == 404 {
            return Ok(Err(format!(
                "the server answered 404 {} to PutProvisionedConcurrencyConfig",
                r.header("x-amzn-errortype").unwrap_or("(no error type)")
            )));
        }
        r.expect_ok("PutProvisionedConcurrencyConfig")?;
        Ok(Ok(()))
    }

    /// The provisioned-concurrency `Status` (`IN_PROGRESS`, `READY`, ...).
    pub fn provisioned_status(&self, version: &str) -> Result<String> {
        let target =
            format!("/2019-09-30/functions/echo/provisioned-concurrency?Qualifier={version}");
        let r = self.request("GET", &target, &[], b"", true)?;
        r.expect_ok("GetProvisionedConcurrencyConfig")?;
        let v: serde_json::Value = serde_json::from_slice(&r.body)?;
        Ok(v["Status"].as_str().unwrap_or("?").to_owned())
    }

    /// One synchronous Invoke of echo (of `qualifier` if given): the round
    /// trip, and the decoded log tail when `tail`.
    pub fn invoke(
        &self,
        qualifier: Option<&str>,
        tail: bool,
    ) -> Result<(Duration, Option<String>)> {
        self.invoke_fn(FUNCTION, qualifier, tail)
    }

    /// One synchronous Invoke of `function`, which must echo [`EVENT`].
    pub fn invoke_fn(
        &self,
        function: &str,
        qualifier: Option<&str>,
        tail: bool,
    ) -> Result<(Duration, Option<String>)> {
        let (elapsed, body, log) = self.invoke_with(function, qualifier, EVENT, tail)?;
        if body != EVENT {
            bail!("{function} answered {:?}", String::from_utf8_lossy(&body));
        }
        Ok((elapsed, log))
    }

    /// One synchronous Invoke of `function` (of `qualifier` if given) with
    /// `event`: the round trip, the answer (an error if the function
    /// failed), and the decoded log tail when `tail`.
    pub fn invoke_with(
        &self,
        function: &str,
        qualifier: Option<&str>,
        event: &[u8],
        tail: bool,
    ) -> Result<(Duration, Vec<u8>, Option<String>)> {
        let target = match qualifier {
            Some(q) => format!("/2015-03-31/functions/{function}/invocations?Qualifier={q}"),
            None => format!("/2015-03-31/functions/{function}/invocations"),
        };
        let mut headers = vec![("content-type", "application/json")];
        if tail {
            headers.push(("x-amz-log-type", "Tail"));
        }
        let started = Instant::now();
        let r = self.request("POST", &target, &headers, event, true)?;
        let elapsed = started.elapsed();
        r.expect_ok("Invoke")?;
        if let Some(kind) = r.header("x-amz-function-error") {
            bail!(
                "{function} failed ({kind}): {}",
                String::from_utf8_lossy(&r.body)
            );
        }
        let log = match r.header("x-amz-log-result") {
            Some(b64) => Some(
                String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(b64)?)
                    .into_owned(),
            ),
            None => None,
        };
        Ok((elapsed, r.body, log))
    }

    /// Gives `function` a public (`NONE`) URL, with the statement that
    /// opens it; the URL's id.
    pub fn public_url(&self, function: &str) -> Result<String> {
        let statement = serde_json::json!({
            "StatementId": "public", "Action": "lambda:InvokeFunctionUrl",
            "Principal": "*", "FunctionUrlAuthType": "NONE",
        });
        let policy = format!("/2015-03-31/functions/{function}/policy");
        self.json("POST", &policy, &statement)?
            .expect(201, "AddPermission")?;
        let url = format!("/2021-10-31/functions/{function}/url");
        let r = self.json("POST", &url, &serde_json::json!({"AuthType": "NONE"}))?;
        r.expect(201, "CreateFunctionUrlConfig")?;
        let made: serde_json::Value = serde_json::from_slice(&r.body)?;
        let address = made["FunctionUrl"].as_str().unwrap_or("");
        let id = address
            .strip_prefix("http://")
            .and_then(|a| a.split('.').next())
            .context("CreateFunctionUrlConfig gave no URL")?;
        Ok(id.to_string())
    }

    /// One POST of `body` to the URL `url_id` (by path, on a fresh
    /// connection): the round trip, if it answered 200.
    pub fn call_url(&self, url_id: &str, body: &[u8]) -> Result<Duration> {
        let head = format!(
            "POST /lambda-url/{url_id}/bench HTTP/1.1\r\nhost: {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            self.urls_addr,
            body.len()
        );
        let started = Instant::now();
        let raw = exchange(self.urls_addr, head, body)?;
        let elapsed = started.elapsed();
        parse_response(&raw)?.expect_ok("the function URL")?;
        Ok(elapsed)
    }

    /// A signed request with a JSON body.
    pub fn json(&self, method: &str, target: &str, body: &serde_json::Value) -> Result<Response> {
        let bytes = serde_json::to_vec(body)?;
        self.request(
            method,
            target,
            &[("content-type", "application/json")],
            &bytes,
            true,
        )
    }
}

/// Sends `head` and `body` on a fresh connection to `addr` and reads the
/// answer to its end (the request says `connection: close`).
pub fn exchange(addr: SocketAddr, head: String, body: &[u8]) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body);
    stream.write_all(&wire)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child, not yet reaped (that happens below).
        crate::sys::terminate(&self.child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.data_dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a `REPORT` line in a log tail is a warm one (no `Init
/// Duration`); `None` when the tail has no REPORT line.
pub fn report_is_warm(log: &str) -> Option<bool> {
    log.lines()
        .rev()
        .find(|l| l.starts_with("REPORT"))
        .map(|l| !l.contains("Init Duration"))
}

/// The `Duration` of the last `REPORT` line in a log tail, in ms: the
/// function's own time, event delivered to response.
pub fn report_duration_ms(log: &str) -> Option<f64> {
    let report = log.lines().rev().find(|l| l.starts_with("REPORT"))?;
    let (_, rest) = report.split_once("\tDuration: ")?;
    rest.split(" ms").next()?.trim().parse().ok()
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails with the body unless the status is `status`.
    pub fn expect(&self, status: u16, op: &str) -> Result<()> {
        if self.status != status {
            bail!(
                "{op}: HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(())
    }

    fn expect_ok(&self, op: &str) -> Result<()> {
        if !(200..300).contains(&self.status) {
            bail!(
                "{op}: HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            );
        }
        Ok(())
    }
}

/// Parses a whole HTTP/1.1 response read until the connection closed.
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..split]).context("response head is not UTF-8")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len)
            .context("response body shorter than its content-length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..eol])?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).context("truncated chunk")?);
        data = data.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_content_length_response() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Amz-Log-Result: aGk=\r\n\r\nabc",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-amz-log-result"), Some("aGk="));
        assert_eq!(r.body, b"abc");
    }

    #[test]
    fn parses_a_chunked_response() {
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn tells_warm_from_cold_reports() {
        let cold = "START RequestId: a\nEND RequestId: a\nREPORT RequestId: a\tDuration: 1.00 ms\tInit Duration: 40.00 ms\n";
        let warm = "REPORT RequestId: b\tDuration: 1.00 ms\tBilled Duration: 1 ms\n";
        assert_eq!(report_is_warm(cold), Some(false));
        assert_eq!(report_is_warm(warm), Some(true));
        assert_eq!(report_is_warm("no report"), None);
    }

    #[test]
    fn reads_a_reports_duration() {
        let log = "START RequestId: a\nREPORT RequestId: a\tDuration: 1689.15 ms\tBilled Duration: 1690 ms\tMemory Size: 1769 MB\n";
        assert_eq!(report_duration_ms(log), Some(1689.15));
        assert_eq!(
            report_duration_ms("REPORT RequestId: a\tBilled Duration: 3 ms\n"),
            None
        );
        assert_eq!(report_duration_ms("nothing"), None);
    }
}
