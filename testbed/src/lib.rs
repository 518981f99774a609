//! Real servers for Mayfly's tests and benchmarks.
//!
//! Each is the component a user runs, from Debian's packages (`cargo xtask
//! bootstrap` installs them), never a stand-in: [`postgres::Postgres`],
//! [`mosquitto::Mosquitto`], [`rabbitmq::RabbitMq`], [`ceph::Ceph`]
//! (a monitor, a memstore OSD and radosgw) and [`nginx::Nginx`] (a reverse
//! proxy in front of hosts). Each starts in a temporary
//! directory of its own, listens on free ports of 127.0.0.1 only, and is
//! stopped (and its directory removed) when dropped, whatever happened.
//! They panic with what went wrong: they are for tests and benchmarks.
#![deny(missing_docs)]

pub mod ceph;
pub mod mosquitto;
pub mod nginx;
pub mod postgres;
pub mod rabbitmq;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// A free local port (bound, then released for a server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workspace's root (for the scripts under `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Waits until something listens on 127.0.0.1:`port`; panics, with what
/// `log` gives, if `child` (the server, named `what`) exits first or
/// `within` runs out.
pub(crate) fn wait_until_listening(
    child: &mut Child,
    port: u16,
    within: Duration,
    what: &str,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}); log:\n{}", log());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within {within:?}; log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
