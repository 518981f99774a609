//! What the API abuse tests need beyond [`super::http`]: raw connections
//! that send part of a request and stall, the time until the server closes
//! one, and the server's resident memory.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::http::HttpResponse;
use super::Server;

/// The pid of the `mayfly serve` process of `server` (the one whose
/// arguments are `serve ... --data-dir DIR`).
pub fn server_pid(server: &Server) -> u32 {
    let dir = server.data_dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) == Some("serve") && args.contains(&dir) {
            return pid;
        }
    }
    panic!("no mayfly serve process for {dir}");
}

/// The resident memory of a process, in KiB (`VmRSS` of
/// `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// A raw client connection.
pub struct Raw {
    stream: TcpStream,
    opened: Instant,
}

impl Raw {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            opened: Instant::now(),
        }
    }

    /// When the connection was opened.
    pub fn opened(&self) -> Instant {
        self.opened
    }

    /// Sends bytes; false when the server has closed the connection.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// A request head (`Host` added), ending with the blank line.
    pub fn head(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> String {
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\n");
        for (k, v) in headers {
            if !k.eq_ignore_ascii_case("host") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        head
    }

    /// Reads one response (head and `Content-Length` body) within `within`.
    pub fn response(&mut self, within: Duration) -> Option<HttpResponse> {
        let deadline = Instant::now() + within;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let length: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                if raw.len() >= end + 4 + length {
                    return Some(HttpResponse {
                        status,
                        headers,
                        body: raw[end + 4..end + 4 + length].to_vec(),
                    });
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits (up to `within`) for the server to close the connection,
    /// discarding what it sends; the time from `since` to the close, or
    /// `None` if it stayed open.
    pub fn closed_within(&mut self, since: Instant, within: Duration) -> Option<Duration> {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(since.elapsed()),
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(_) => return Some(since.elapsed()),
            }
        }
    }

    /// A second handle on the same connection (to write from another
    /// thread while this one reads).
    pub fn try_clone(&self) -> Raw {
        Raw {
            stream: self.stream.try_clone().unwrap(),
            opened: self.opened,
        }
    }
}

/// Asserts what every error must carry: a request id, Lambda's shape, and
/// no internal path or Rust name in the message. Returns the message.
pub fn assert_lambda_error(response: &HttpResponse, status: u16, code: &str) -> String {
    let body = response.assert_error(status, code);
    let id = response
        .header("x-amzn-requestid")
        .unwrap_or_else(|| panic!("no x-amzn-RequestId: {response:?}"));
    assert_eq!(id.len(), 36, "request id {id:?} is not a UUID");
    assert!(
        matches!(body["Type"].as_str(), Some("User" | "Service")),
        "no Type in {body}"
    );
    let message = body["message"].as_str().unwrap().to_string();
    for internal in ["/tmp", "/root", ".rs", "::", "mayfly_", "usize", "u32"] {
        assert!(
            !message.contains(internal),
            "{code}: message names {internal:?}: {message}"
        );
    }
    message
}
