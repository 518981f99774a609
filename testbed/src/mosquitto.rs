//! A Mosquitto 2.0 broker (Debian's `mosquitto`; `mosquitto_pub` from
//! `mosquitto-clients`), anonymous, with persistence.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_until_listening};

/// A Mosquitto broker of its own, stopped when dropped.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts a broker with persistence (QoS 1 sessions survive its
    /// restart) and waits until it listens.
    pub fn start() -> Mosquitto {
        let dir = tempfile::Builder::new()
            .prefix("mayfly-mqtt-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}/\nmax_queued_messages 10000\nlog_dest stderr\n",
                data.display()
            ),
        )
        .unwrap();
        // Run as root, Mosquitto becomes the `mosquitto` user, which must
        // own its persistence directory (else it silently keeps nothing).
        // SAFETY: geteuid takes no arguments and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            let _ = Command::new("chown")
                .args(["-R", "mosquitto:mosquitto"])
                .arg(dir.path())
                .status();
        }
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (cargo xtask bootstrap installs it)");
        let mut broker = Mosquitto {
            child,
            port,
            _dir: dir,
        };
        let within = Duration::from_secs(10);
        wait_until_listening(&mut broker.child, port, within, "mosquitto", String::new);
        broker
    }

    /// Publishes each of `messages` at QoS 1 on `topic`.
    pub fn publish(&self, topic: &str, messages: &[String]) {
        if let [message] = messages {
            // One message as an argument: `-l` reads its standard input in
            // a loop that adds about 100 ms before the first publish.
            let status = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-q", "1", "-t", topic, "-m", message])
                .status()
                .expect("run mosquitto_pub");
            assert!(status.success());
            return;
        }
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-q", "1", "-t", topic, "-l"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run mosquitto_pub");
        let mut stdin = child.stdin.take().unwrap();
        for message in messages {
            writeln!(stdin, "{message}").unwrap();
        }
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
