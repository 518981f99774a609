//! nginx (Debian's `nginx`) as a reverse proxy in front of one or more
//! Mayfly hosts, configured as the README's "behind a load balancer"
//! section says: the client's `Host` passed on (SigV4 signs it), HTTP/1.1
//! to the upstreams, no buffering either way (streamed responses and
//! large uploads pass as they come), Lambda's longest timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_until_listening};

/// A running nginx; stopped when dropped.
pub struct Nginx {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The `http` block's configuration for `upstreams`, listening on
/// `listen`: what the README shows.
pub fn proxy_config(upstreams: &[SocketAddr], listen: SocketAddr) -> String {
    let servers: String = upstreams
        .iter()
        .map(|a| format!("        server {a};\n"))
        .collect();
    format!(
        "    upstream mayfly {{
{servers}        keepalive 16;
    }}
    server {{
        listen {listen};
        # CreateFunction and UpdateFunctionCode carry a 50 MB zip in base64.
        client_max_body_size 80m;
        location / {{
            proxy_pass http://mayfly;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            # SigV4 signs the host the client named.
            proxy_set_header Host $http_host;
            # Streamed responses and uploads pass as they come.
            proxy_buffering off;
            proxy_request_buffering off;
            # A synchronous invocation may run 900 s.
            proxy_read_timeout 960s;
            proxy_send_timeout 960s;
        }}
    }}
"
    )
}

impl Nginx {
    /// Starts nginx in front of `upstreams` and waits until it listens.
    pub fn start(upstreams: &[SocketAddr]) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("mayfly-nginx-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{}}}
",
            proxy_config(upstreams, SocketAddr::from(([127, 0, 0, 1], port)))
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        // Run as root, nginx's workers become `nobody`: they must reach
        // the directory.
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let child = Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (cargo xtask bootstrap installs it)");
        let mut nginx = Nginx { child, port, dir };
        let log = nginx.dir.path().join("error.log");
        wait_until_listening(
            &mut nginx.child,
            port,
            Duration::from_secs(20),
            "nginx",
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
        nginx
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its error log.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Its access log (one line a request).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// Debian's nginx.
fn binary() -> PathBuf {
    PathBuf::from("/usr/sbin/nginx")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then itself.
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
