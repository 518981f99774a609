//! A real `mayfly serve` for the API end-to-end tests, and the clients that
//! drive it: the real AWS CLI (`aws`, v1), the boto3 scripts under
//! `tests/api/`, and a small raw HTTP client (signed with `mayfly-sigv4`, or
//! not signed at all) for what neither client can send.
//!
//! Include it from a test file beside `common`:
//!
//! ```ignore
//! mod common;
//! #[path = "common/server.rs"]
//! mod server;
//! ```
//!
//! Every [`Server`] has its own temporary directory (data directory, log,
//! AWS CLI files) and its own ports. Dropping it stops the server (SIGTERM,
//! then SIGKILL) and asserts that no QEMU whose command line mentions its
//! data directory is left.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde_json::Value;

use super::{processes_mentioning, root};

/// The access key id the tests give the server through the environment.
pub const ACCESS_KEY_ID: &str = "AKIAMAYFLYTEST000001";
/// The matching secret (40 characters, as AWS's).
pub const SECRET_ACCESS_KEY: &str = "mAyFlYtEsTsEcReT/0123456789abcdefghijKLM";
/// The region every client uses.
pub const REGION: &str = "us-east-1";
/// The role every create-function names.
pub const ROLE: &str = "arn:aws:iam::000000000000:role/lambda";
/// The account id in ARNs.
pub const ACCOUNT: &str = "000000000000";

/// How long a server may take to answer `/healthz`.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// How long a SIGTERM'd server may take to exit before SIGKILL.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Serve `/metrics` on a second local port (`--metrics-listen`).
    pub metrics: bool,
    /// `--max-concurrency N`.
    pub max_concurrency: Option<u32>,
    /// Give the credentials through `MAYFLY_ACCESS_KEY_ID` /
    /// `MAYFLY_SECRET_ACCESS_KEY`; when false the server generates them into
    /// `DIR/credentials` and the tests read them from there.
    pub env_credentials: bool,
    /// More arguments for `mayfly serve`.
    pub extra_args: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            metrics: false,
            max_concurrency: None,
            env_credentials: true,
            extra_args: Vec::new(),
        }
    }
}

/// A running `mayfly serve` on its own data directory.
pub struct Server {
    tmp: tempfile::TempDir,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--listen`.
    pub addr: SocketAddr,
    /// `--metrics-listen`, when asked for.
    pub metrics_addr: Option<SocketAddr>,
    /// The key pair clients sign with.
    pub access_key_id: String,
    /// The key pair clients sign with.
    pub secret_access_key: String,
    options: Options,
    child: Option<Child>,
    /// How many times the server was started (each start has its own log).
    starts: u32,
}

/// A free local port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts a server with the default options and waits until it is ready.
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    /// Starts a server and waits until `/healthz` answers 200.
    pub fn start_with(options: Options) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("mayfly-api-")
            .tempdir()
            .expect("temporary directory");
        let data_dir = tmp.path().join("data");
        std::fs::write(tmp.path().join("aws-config"), "").unwrap();
        std::fs::write(tmp.path().join("aws-credentials"), "").unwrap();
        let mut server = Server {
            data_dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: None,
            access_key_id: String::new(),
            secret_access_key: String::new(),
            options,
            child: None,
            starts: 0,
            tmp,
        };
        // A port picked by binding port 0 can be taken by another test
        // before the server binds it: try again with fresh ports.
        for attempt in 1..=3 {
            server.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if server.options.metrics {
                server.metrics_addr = Some(SocketAddr::from(([127, 0, 0, 1], free_port())));
            }
            match server.spawn_and_wait() {
                Ok(()) => break,
                Err(log) if attempt < 3 && log.contains("in use") => continue,
                Err(log) => panic!("mayfly serve did not become ready:\n{log}"),
            }
        }
        if server.options.env_credentials {
            server.access_key_id = ACCESS_KEY_ID.into();
            server.secret_access_key = SECRET_ACCESS_KEY.into();
        } else {
            let (id, secret) = read_credentials_file(&server.data_dir.join("credentials"));
            server.access_key_id = id;
            server.secret_access_key = secret;
        }
        server
    }

    /// The temporary directory of this server (data directory, logs).
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The log (stdout and stderr) of the current, or the last, start.
    pub fn log(&self) -> String {
        self.log_of(self.starts)
    }

    /// The log of the `n`th start (from 1).
    pub fn log_of(&self, n: u32) -> String {
        std::fs::read_to_string(self.tmp.path().join(format!("serve-{n}.log"))).unwrap_or_default()
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        self.starts += 1;
        let log_path = self.tmp.path().join(format!("serve-{}.log", self.starts));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mayfly"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        // Always given: the default port would be shared by parallel tests.
        match self.metrics_addr {
            Some(m) => cmd.arg("--metrics-listen").arg(m.to_string()),
            None => cmd.arg("--metrics-listen").arg("off"),
        };
        if let Some(n) = self.options.max_concurrency {
            cmd.arg("--max-concurrency").arg(n.to_string());
        }
        cmd.args(&self.options.extra_args);
        if self.options.env_credentials {
            cmd.env("MAYFLY_ACCESS_KEY_ID", ACCESS_KEY_ID)
                .env("MAYFLY_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        } else {
            cmd.env_remove("MAYFLY_ACCESS_KEY_ID")
                .env_remove("MAYFLY_SECRET_ACCESS_KEY");
        }
        cmd.env("TMPDIR", self.tmp.path())
            .env(
                "RUST_LOG",
                std::env::var("MAYFLY_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // If the test process dies, so does its server (which then reaps its
        // VMs): the signal goes when the thread that spawned it ends, and
        // every test stops its server on that thread before returning.
        // SAFETY: the closure runs in the child between fork and exec and
        // makes one async-signal-safe call.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn mayfly serve");
        self.child = Some(child);

        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!(
                    "exited with {status} before answering /healthz; log:\n{}",
                    self.log()
                ));
            }
            if let Ok(resp) = try_http(self.addr, "GET", "/healthz", &[], b"") {
                if resp.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                let log = self.log();
                self.kill();
                return Err(format!(
                    "/healthz did not answer 200 within {READY_WITHIN:?}; log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 15 s). Returns
    /// the exit status and whether SIGKILL was needed.
    pub fn stop(&mut self) -> Option<(ExitStatus, bool)> {
        let mut child = self.child.take()?;
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_WITHIN;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some((status, false));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Some((child.wait().unwrap(), true));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (as a crash would) and reaps it.
    pub fn kill_9(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully and asserts that it exited by itself
    /// (not SIGKILL) and left no QEMU behind.
    pub fn stop_cleanly(&mut self) {
        let (status, killed) = self.stop().expect("server running");
        assert!(
            !killed,
            "mayfly serve ignored SIGTERM for {STOP_WITHIN:?}; log:\n{}",
            self.log()
        );
        let _ = status; // exit code after SIGTERM: 0 or 143 are both fine
        self.assert_no_qemu();
    }

    /// Starts the server again on the same data directory and port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop_cleanly();
        }
        // The old listener is closed; the port is ours to take again.
        if let Err(log) = self.spawn_and_wait() {
            panic!("restarted mayfly serve did not become ready:\n{log}");
        }
    }

    /// Asserts that no QEMU names a path under the data directory (waiting a
    /// moment for one already killed to go).
    pub fn assert_no_qemu(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let left = processes_mentioning(&self.data_dir);
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "QEMU processes left behind for {}: {left:?}\nserver log:\n{}",
                    self.data_dir.display(),
                    tail(&self.log(), 8000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// QEMU processes of this server right now.
    pub fn qemus(&self) -> Vec<u32> {
        processes_mentioning(&self.data_dir)
    }

    // ----------------------------------------------------------------------
    // The AWS CLI

    /// Runs `aws lambda ARGS --endpoint-url … --region us-east-1 --output
    /// json` with the server's credentials.
    pub fn aws(&self, args: &[&str]) -> Cli {
        self.aws_as(&self.access_key_id, &self.secret_access_key, args)
    }

    /// The same with another key pair.
    pub fn aws_as(&self, key: &str, secret: &str, args: &[&str]) -> Cli {
        let mut cmd = self.aws_command();
        cmd.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        cmd.args(args);
        Cli::run(cmd, args)
    }

    /// A bare `aws lambda … --endpoint-url … --region … --output json`
    /// command with a clean AWS environment (no credentials set).
    pub fn aws_command(&self) -> Command {
        let mut cmd = Command::new("aws");
        clean_aws_env(&mut cmd);
        cmd.env("AWS_CONFIG_FILE", self.tmp.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.tmp.path().join("aws-credentials"),
            )
            .arg("lambda")
            .arg("--endpoint-url")
            .arg(self.endpoint())
            .arg("--region")
            .arg(REGION)
            .arg("--output")
            .arg("json");
        cmd
    }

    /// `aws lambda create-function` of `target/images/<image>.zip` (or any
    /// zip path) with the given extra arguments; asserts success.
    pub fn create(&self, name: &str, zip: &Path, extra: &[&str]) -> Value {
        let code = format!("fileb://{}", zip.display());
        let mut args = vec![
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            ROLE,
            "--zip-file",
            &code,
        ];
        args.extend_from_slice(extra);
        self.aws(&args).ok()
    }

    /// `aws lambda invoke` writing the payload to a file; returns the CLI's
    /// JSON output and the payload.
    pub fn invoke(&self, name: &str, extra: &[&str]) -> (Value, Vec<u8>) {
        let out = self.invoke_raw(name, extra);
        let payload = out.1;
        (out.0.ok(), payload)
    }

    /// `aws lambda invoke` without asserting success.
    pub fn invoke_raw(&self, name: &str, extra: &[&str]) -> (Cli, Vec<u8>) {
        let outfile = tempfile::NamedTempFile::new_in(self.tmp.path()).unwrap();
        let outpath = outfile.path().to_str().unwrap().to_string();
        let mut args = vec!["invoke", "--function-name", name];
        args.extend_from_slice(extra);
        args.push(&outpath);
        let cli = self.aws(&args);
        let payload = std::fs::read(outfile.path()).unwrap_or_default();
        (cli, payload)
    }

    // ----------------------------------------------------------------------
    // Raw HTTP

    /// An unsigned request.
    pub fn unsigned(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http(self.addr, method, target, headers, body)
    }

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
        let uri: http::Uri = format!("http://{}{}", self.addr, target).parse().unwrap();
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut params = mayfly_sigv4::SigningParams::new(&creds, REGION, "lambda");
        params.time = time;
        let added = mayfly_sigv4::sign(
            &http::Method::from_bytes(method.as_bytes()).unwrap(),
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

    // ----------------------------------------------------------------------
    // boto3

    /// Runs `python3.11 tests/api/<script> ARGS` with the endpoint,
    /// credentials and images in the environment; asserts that it exits 0,
    /// printing its output either way.
    pub fn python(&self, script: &str, args: &[&str]) -> Output {
        let path = root().join("tests").join("api").join(script);
        let mut cmd = Command::new("python3.11");
        clean_aws_env(&mut cmd);
        cmd.arg(&path)
            .args(args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("AWS_CONFIG_FILE", self.tmp.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.tmp.path().join("aws-credentials"),
            )
            .env("MAYFLY_ENDPOINT", self.endpoint())
            .env("MAYFLY_ACCESS_KEY_ID", &self.access_key_id)
            .env("MAYFLY_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("MAYFLY_IMAGES", root().join("target").join("images"))
            .env("MAYFLY_TMP", self.tmp.path());
        if let Some(m) = self.metrics_addr {
            cmd.env("MAYFLY_METRICS", format!("http://{m}"));
        }
        let started = Instant::now();
        let out = cmd.output().expect("run python3.11");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "--- {script} ({:.1} s) stdout:\n{stdout}\n--- stderr:\n{stderr}",
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "{script} failed ({}):\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
            out.status,
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let stopped = self.stop();
        let left = processes_mentioning(&self.data_dir);
        let killed = matches!(stopped, Some((_, true)));
        if std::thread::panicking() {
            eprintln!("--- mayfly serve log (tail):\n{}", tail(&self.log(), 6000));
        }
        if !left.is_empty() {
            // Give a VM being torn down a moment, then clean up for the
            // next test whatever the verdict.
            std::thread::sleep(Duration::from_secs(2));
            let left = processes_mentioning(&self.data_dir);
            for pid in &left {
                // SAFETY: kill(2) on a QEMU this test's server left; at
                // worst it is gone already and the call fails.
                unsafe {
                    libc::kill(*pid as i32, libc::SIGKILL);
                }
            }
            if !left.is_empty() && !std::thread::panicking() {
                panic!(
                    "QEMU processes left behind after mayfly serve exited: {left:?}\nserver log (tail):\n{}",
                    tail(&self.log(), 8000)
                );
            }
        }
        if killed && !std::thread::panicking() {
            panic!(
                "mayfly serve ignored SIGTERM for {STOP_WITHIN:?}; log (tail):\n{}",
                tail(&self.log(), 8000)
            );
        }
    }
}

/// Removes every `AWS_*` / `BOTO_*` variable of this machine from `cmd`,
/// and turns retries and the pager off.
pub fn clean_aws_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AWS_") || k.starts_with("BOTO") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_PAGER", "")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// Reads `aws_access_key_id` and `aws_secret_access_key` of profile
/// `[mayfly]` from a shared-credentials file.
pub fn read_credentials_file(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read the generated credentials {}: {e}",
            path.display()
        )
    });
    let mut in_profile = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_profile = line == "[mayfly]";
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_string()),
                "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    (
        id.unwrap_or_else(|| {
            panic!(
                "no aws_access_key_id in [mayfly] of {}:\n{text}",
                path.display()
            )
        }),
        secret.unwrap_or_else(|| {
            panic!("no aws_secret_access_key in [mayfly] of {}", path.display())
        }),
    )
}

/// What one `aws` command did.
#[derive(Debug)]
pub struct Cli {
    /// The arguments after `aws lambda …`.
    pub args: Vec<String>,
    /// Exit status code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Cli {
    fn run(mut cmd: Command, args: &[&str]) -> Cli {
        let out = cmd
            .output()
            .expect("run aws (the AWS CLI v1 must be installed)");
        Cli {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a.len() > 200 {
                    format!("{}…({} bytes)", &a[..60], a.len())
                } else {
                    a.clone()
                }
            })
            .collect();
        format!(
            "aws lambda {}\nexit {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts success and returns stdout as JSON (`Null` when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "the AWS CLI failed:\n{}", self.describe());
        if self.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    /// Asserts failure with `An error occurred (CODE) when calling the …
    /// operation: …` and returns the message after the colon.
    pub fn fails_with(&self, code: &str) -> String {
        self.fails_with_any(&[code])
    }

    /// As [`Cli::fails_with`], accepting any of several error codes.
    pub fn fails_with_any(&self, codes: &[&str]) -> String {
        assert_ne!(
            self.code,
            0,
            "expected {codes:?}, but the AWS CLI succeeded:\n{}",
            self.describe()
        );
        let found = codes.iter().find(|c| {
            self.stderr
                .contains(&format!("An error occurred ({c}) when calling the "))
        });
        assert!(
            found.is_some(),
            "expected `An error occurred ({codes:?}) when calling the …`:\n{}",
            self.describe()
        );
        // `… when calling the Op operation[ (reached max retries: 0)]: message`
        let message = self
            .stderr
            .split_once(" when calling the ")
            .and_then(|(_, rest)| rest.split_once(" operation"))
            .map(|(_, rest)| match rest.strip_prefix(" (") {
                Some(r) => r.split_once(')').map_or("", |(_, r)| r),
                None => rest,
            })
            .and_then(|rest| rest.strip_prefix(": "))
            .map(|m| m.trim().to_string())
            .unwrap_or_default();
        assert!(
            !message.is_empty(),
            "the error has no message:\n{}",
            self.describe()
        );
        message
    }
}

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

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
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

/// `base64(sha256(bytes))`, as Lambda's `CodeSha256`.
pub fn code_sha256(bytes: &[u8]) -> String {
    let hex = mayfly_sigv4::canonical::sha256_hex(bytes);
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Decodes standard base64.
pub fn b64decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

/// `target/images/<file>`.
pub fn image_path(file: &str) -> PathBuf {
    let p = root().join("target").join("images").join(file);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask images` first",
        p.display()
    );
    p
}

/// Writes a zip with the given entries (stored) to `path`.
pub fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for (name, data) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755);
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// `floor.elf` with its PVH note's type changed from 18 to 17: an x86_64
/// ELF that QEMU cannot boot by PVH.
pub fn floor_without_pvh() -> Vec<u8> {
    let mut floor = std::fs::read(image_path("floor.elf")).unwrap();
    let at = floor
        .windows(4)
        .position(|w| w == b"Xen\0")
        .expect("Xen note")
        - 4;
    assert_eq!(floor[at], 18, "XEN_ELFNOTE_PHYS32_ENTRY");
    floor[at] = 17;
    floor
}

/// The last `n` bytes of a text (on a character boundary).
pub fn tail(text: &str, n: usize) -> &str {
    if text.len() <= n {
        return text;
    }
    let mut start = text.len() - n;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
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
