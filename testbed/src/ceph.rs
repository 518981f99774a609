//! A single-node Ceph cluster with its S3 gateway (Debian's `ceph-mon`,
//! `ceph-osd` and `radosgw`, which `cargo xtask bootstrap` installs),
//! started in a temporary directory on free loopback ports and stopped
//! when dropped: one monitor, one OSD on `memstore` (RAM, so nothing is
//! written to the disk and it starts in a second), and one radosgw.
//! Authentication inside the cluster is off (it is reachable from
//! loopback only); the gateway's S3 user has its own keys.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, wait_until_listening, workspace_root};

/// The gateway's S3 user.
pub const ACCESS_KEY: &str = "MAYFLYRGWTESTKEY0000";
/// The gateway's S3 user's secret.
pub const SECRET_KEY: &str = "mayfly-rgw-test-secret";

/// How long a daemon gets to come up.
const START_WITHIN: Duration = Duration::from_secs(90);

/// A running cluster; its daemons are killed when it is dropped.
pub struct Ceph {
    dir: tempfile::TempDir,
    /// The S3 gateway's port on 127.0.0.1.
    pub rgw_port: u16,
    mon: Child,
    /// Started once the monitor knows the OSD.
    osd: Option<Child>,
    rgw: Option<Child>,
}

fn run(what: &str, cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (cargo xtask bootstrap installs Ceph)"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn daemon(binary: &str, conf: &Path, args: &[&str]) -> Child {
    Command::new(binary)
        .arg("-f")
        .arg("-c")
        .arg(conf)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e} (cargo xtask bootstrap installs Ceph)"))
}

impl Ceph {
    /// Starts the cluster and the gateway, and creates the S3 user.
    pub fn start() -> Ceph {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("mayfly-ceph-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["mon", "osd", "rgw", "run", "log"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let (mon_port, rgw_port) = (free_port(), free_port());
        let fsid = uuid();
        let conf = d.join("ceph.conf");
        std::fs::write(&conf, config(d, &fsid, mon_port, rgw_port)).unwrap();
        let monmap = d.join("monmap");
        run(
            "monmaptool",
            Command::new("monmaptool")
                .args(["--create", "--fsid", &fsid, "--add", "a"])
                .arg(format!("v2:127.0.0.1:{mon_port}"))
                .arg(&monmap),
        );
        run(
            "ceph-mon --mkfs",
            Command::new("ceph-mon")
                .arg("-c")
                .arg(&conf)
                .args(["--mkfs", "-i", "a", "--monmap"])
                .arg(&monmap),
        );
        let mon = daemon("ceph-mon", &conf, &["-i", "a"]);
        let osd_uuid = uuid();
        // Built now, so that a failure below still stops the monitor.
        let mut ceph = Ceph {
            rgw_port,
            mon,
            osd: None,
            rgw: None,
            dir,
        };
        ceph.ceph(&["osd", "new", &osd_uuid]);
        run(
            "ceph-osd --mkfs",
            Command::new("ceph-osd").arg("-c").arg(&conf).args([
                "--mkfs",
                "-i",
                "0",
                "--osd-uuid",
                &osd_uuid,
            ]),
        );
        ceph.osd = Some(daemon("ceph-osd", &conf, &["-i", "0"]));
        ceph.start_rgw();
        run(
            "radosgw-admin user create",
            Command::new("radosgw-admin")
                .arg("-c")
                .arg(&conf)
                .args(["-n", "client.rgw", "user", "create", "--uid", "mayfly-test"])
                .args(["--display-name", "Mayfly test", "--access-key", ACCESS_KEY])
                .args(["--secret", SECRET_KEY]),
        );
        eprintln!("ceph: cluster and gateway up in {:?}", started.elapsed());
        ceph
    }

    /// The cluster's configuration file.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("ceph.conf")
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.rgw_port)
    }

    /// Runs the `ceph` command against the cluster.
    pub fn ceph(&self, args: &[&str]) -> String {
        let out = run(
            &format!("ceph {}", args.join(" ")),
            Command::new("ceph")
                .arg("-c")
                .arg(self.conf())
                .args(["--connect-timeout", "60"])
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn start_rgw(&mut self) {
        self.rgw = Some(daemon("radosgw", &self.conf(), &["-n", "client.rgw"]));
        let dir = self.dir.path().to_path_buf();
        let rgw = self.rgw.as_mut().expect("just started");
        wait_until_listening(rgw, self.rgw_port, START_WITHIN, "radosgw", || {
            rgw_log(&dir)
        });
    }

    /// Restarts the gateway, handing its notification queues over at once.
    ///
    /// Ceph 16.2's persistent-topic worker can wait for ever after failed
    /// pushes (its wait for the pushes of a round is armed after they may
    /// already have finished; Ceph 17 checks first), so a queue that kept
    /// events while their endpoint was down may stay unsent until the
    /// gateway restarts. A restarted gateway takes a queue over only once
    /// the old owner's 30 s lock has run out, so the lock is broken here:
    /// the old owner is dead.
    pub fn restart_rgw(&mut self) {
        if let Some(mut rgw) = self.rgw.take() {
            let _ = rgw.kill();
            let _ = rgw.wait();
        }
        let rados = |args: &[&str]| {
            let out = run(
                &format!("rados {}", args.join(" ")),
                Command::new("rados")
                    .arg("-c")
                    .arg(self.conf())
                    .args(["-p", "default.rgw.log", "-N", "notif"])
                    .args(args),
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for queue in rados(&["ls"]).lines() {
            if queue == "queues_list_object" {
                continue;
            }
            let lock = format!("{queue}_lock");
            let info: serde_json::Value =
                serde_json::from_str(&rados(&["lock", "info", queue, &lock])).unwrap_or_default();
            for locker in info["lockers"].as_array().into_iter().flatten() {
                let (Some(name), Some(cookie)) =
                    (locker["name"].as_str(), locker["cookie"].as_str())
                else {
                    continue;
                };
                rados(&["lock", "break", queue, &lock, name, "--lock-cookie", cookie]);
            }
        }
        self.start_rgw();
    }

    /// The gateway's log.
    pub fn rgw_log(&self) -> String {
        rgw_log(self.dir.path())
    }

    /// `python3.11 tests/api/rgw.py ARGS` with the gateway's endpoint and
    /// keys (boto3's `s3` and `sns` clients); its output when it exits 0.
    pub fn boto3(&self, args: &[&str]) -> String {
        let out = Command::new("python3.11")
            .arg(workspace_root().join("tests").join("api").join("rgw.py"))
            .args(args)
            .env("RGW_ENDPOINT", self.endpoint())
            .env("RGW_ACCESS_KEY", ACCESS_KEY)
            .env("RGW_SECRET_KEY", SECRET_KEY)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .output()
            .expect("python3.11");
        assert!(
            out.status.success(),
            "rgw.py {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        for child in [self.rgw.as_mut(), self.osd.as_mut(), Some(&mut self.mon)]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The gateway's log in the cluster's directory `dir`.
fn rgw_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log").join("client.rgw.log")).unwrap_or_default()
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The cluster's `ceph.conf`: everything under `d`, one replica, no
/// authentication, and the settings a one-OSD cluster on a busy disk needs.
fn config(d: &Path, fsid: &str, mon_port: u16, rgw_port: u16) -> String {
    let d = d.display();
    format!(
        "[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{mon_port}
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
# radosgw does not start against a monitor in secure mode without this.
ms mon client mode = crc
ms client mode = crc
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
# The monitor stops below 5 % free disk by default; this one holds kilobytes.
mon data avail crit = 0
mon data avail warn = 0
run dir = {d}/run
log file = {d}/log/$name.log
admin socket = {d}/run/$name.asok
pid file = {d}/run/$name.pid
mon data = {d}/mon
osd data = {d}/osd
osd objectstore = memstore
memstore device bytes = 536870912
osd max object name len = 460
osd max object namespace len = 64
[client.rgw]
rgw data = {d}/rgw
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
"
    )
}
