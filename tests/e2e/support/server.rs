//! A real `mayfly serve` for the API tests: its start, restarts and stop.
//!
//! Every [`Server`] has its own temporary directory (data directory, logs,
//! AWS CLI files) and its own ports. Dropping it stops the server (SIGTERM,
//! then SIGKILL) and asserts that no QEMU whose command line mentions its
//! data directory is left. The clients that drive it are in
//! [`super::aws`], [`super::http`] and [`super::python`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::http::try_http;
use super::process::{kill_qemus, no_qemu_within, qemus_mentioning};
use super::tail;

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
    /// `--data-dir` (default: `data` in the server's temporary directory).
    pub data_dir: Option<PathBuf>,
    /// Serve function URLs on a third local port (`--url-listen`).
    pub urls: bool,
}

impl Options {
    /// `--max-concurrency N`, and the async retries of events with a base
    /// delay of 300 ms (`--retry-base-delay-ms`), so that a test sees them.
    pub fn fast_retries(max_concurrency: u32) -> Options {
        Options {
            max_concurrency: Some(max_concurrency),
            extra_args: vec!["--retry-base-delay-ms".into(), "300".into()],
            ..Options::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            metrics: false,
            max_concurrency: None,
            env_credentials: true,
            extra_args: Vec::new(),
            data_dir: None,
            urls: false,
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
    /// `--url-listen`, when asked for.
    pub urls_addr: Option<SocketAddr>,
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
pub use mayfly_testbed::free_port;

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
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| tmp.path().join("data"));
        std::fs::write(tmp.path().join("aws-config"), "").unwrap();
        std::fs::write(tmp.path().join("aws-credentials"), "").unwrap();
        let mut server = Server {
            data_dir,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_addr: None,
            urls_addr: None,
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
            if server.options.urls {
                server.urls_addr = Some(SocketAddr::from(([127, 0, 0, 1], free_port())));
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
        match self.urls_addr {
            Some(u) => cmd.arg("--url-listen").arg(u.to_string()),
            None => cmd.arg("--url-listen").arg("off"),
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
                self.kill_9();
                return Err(format!(
                    "/healthz did not answer 200 within {READY_WITHIN:?}; log:\n{log}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
    /// moment for one already killed to go: on a loaded 2-core machine a
    /// killed QEMU, unmapping its guest's memory, has taken over 3 s).
    pub fn assert_no_qemu(&self) {
        if let Err(left) = no_qemu_within(&self.data_dir, Duration::from_secs(10)) {
            panic!(
                "QEMU processes left behind for {}: {left:?}\nserver log:\n{}",
                self.data_dir.display(),
                tail(&self.log(), 8000)
            );
        }
    }

    /// QEMU processes of this server right now.
    pub fn qemus(&self) -> Vec<u32> {
        qemus_mentioning(&self.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let stopped = self.stop();
        let left = self.qemus();
        let killed = matches!(stopped, Some((_, true)));
        if std::thread::panicking() {
            eprintln!("--- mayfly serve log (tail):\n{}", tail(&self.log(), 6000));
        }
        if !left.is_empty() {
            // Give a VM being torn down a moment, then clean up for the
            // next test whatever the verdict.
            std::thread::sleep(Duration::from_secs(2));
            let left = kill_qemus(&self.data_dir);
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
