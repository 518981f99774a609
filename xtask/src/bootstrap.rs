//! Makes sure the host tools are installed: Debian's `qemu-system-x86`
//! (QEMU), `musl-tools` (`musl-gcc`, which builds the C example Linux
//! functions), `golang-go` (the Go one) and `postgresql` (the database
//! the end-to-end tests write into through egress) are installed when
//! missing and we are root; otherwise the error says exactly what to
//! install.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};

/// The binary Mayfly runs (overridable as the supervisor allows).
fn qemu_binary() -> String {
    std::env::var("MAYFLY_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

fn qemu_version() -> Option<String> {
    let out = Command::new(qemu_binary()).arg("-version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// `(major, minor)` from QEMU's first `-version` line.
fn parse_version(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt_get(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `apt-get install -y PACKAGE`, after one `apt-get update` per run of
/// xtask (however many packages are installed).
fn apt_install(package: &str) -> Result<()> {
    static UPDATED: AtomicBool = AtomicBool::new(false);
    if !UPDATED.load(Ordering::Relaxed) {
        apt_get(&["update", "-q"])?;
        UPDATED.store(true, Ordering::Relaxed);
    }
    apt_get(&["install", "-y", "-q", package])
}

/// Installs QEMU if needed; fails with instructions if it cannot.
pub fn ensure_qemu() -> Result<()> {
    if qemu_version().is_none() {
        if !is_root() {
            bail!(
                "QEMU is not installed. As root, run:\n  apt-get update && apt-get install -y qemu-system-x86\n\
                 (or set MAYFLY_QEMU to a qemu-system-x86_64 of version 7.2 or later)"
            );
        }
        eprintln!("xtask: QEMU is missing; installing qemu-system-x86 with apt-get");
        apt_install("qemu-system-x86")?;
    }
    let line = qemu_version().context("QEMU still does not run after installing it")?;
    match parse_version(&line) {
        Some(v) if v >= (7, 2) => Ok(()),
        Some((major, minor)) => bail!(
            "QEMU {major}.{minor} is too old: Mayfly needs 7.2 or later for `-netdev dgram` ({line})"
        ),
        None => bail!("cannot read QEMU's version from `{line}`"),
    }
}

/// The C compiler the example Linux functions in `examples/linux/` are
/// built with (overridable like QEMU's binary).
pub fn musl_gcc() -> String {
    std::env::var("MAYFLY_MUSL_GCC").unwrap_or_else(|_| "musl-gcc".into())
}

/// Whether `musl-gcc` runs. It is a wrapper script around gcc that takes
/// gcc's options, so `-dumpversion` answers with gcc's version.
pub fn has_musl_gcc() -> bool {
    Command::new(musl_gcc())
        .arg("-dumpversion")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Debian's `musl-tools` (which provides `musl-gcc`) if needed;
/// fails with instructions if it cannot.
pub fn ensure_musl() -> Result<()> {
    ensure_tool(
        has_musl_gcc,
        "musl-gcc",
        "the C example Linux functions are built with it",
        "musl-tools",
        "set MAYFLY_MUSL_GCC to a musl-gcc",
    )
}

/// Installs Debian's `package` when `present` says the tool `tool` (which
/// `why` is needed for, and `instead` says how to name another) is
/// missing; fails with instructions if it cannot.
fn ensure_tool(
    present: impl Fn() -> bool,
    tool: &str,
    why: &str,
    package: &str,
    instead: &str,
) -> Result<()> {
    if present() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "{tool} is not installed ({why}). As root, run:\n  \
             apt-get update && apt-get install -y {package}\n\
             (or {instead})"
        );
    }
    eprintln!("xtask: {tool} is missing; installing {package} with apt-get");
    apt_install(package)?;
    if !present() {
        bail!("{tool} still does not run after installing {package}");
    }
    Ok(())
}

/// Everything `cargo xtask bootstrap` installs: QEMU, musl-gcc, Go,
/// PostgreSQL, curl, Mosquitto (with its clients), RabbitMQ, Ceph (a
/// monitor, an OSD and the S3 gateway) and nginx. The package index is updated at most once, before
/// the first install.
pub fn ensure_host_tools() -> Result<()> {
    ensure_qemu()?;
    ensure_musl()?;
    ensure_go()?;
    ensure_postgres()?;
    ensure_curl()?;
    ensure_tool(
        has_mosquitto_broker,
        "Mosquitto",
        "the MQTT event-source tests start a broker and publish to it",
        "mosquitto",
        "install mosquitto and mosquitto-clients",
    )?;
    ensure_tool(
        has_mosquitto_pub,
        "mosquitto_pub",
        "the MQTT event-source tests publish with it",
        "mosquitto-clients",
        "install mosquitto-clients",
    )?;
    ensure_tool(
        has_rabbitmq,
        "RabbitMQ",
        "the RabbitMQ event-source tests start a broker",
        "rabbitmq-server",
        "install rabbitmq-server",
    )?;
    for (binary, package) in CEPH {
        ensure_tool(
            || has_binary(binary),
            package,
            "the object-upload tests start a one-node Ceph cluster with its S3 gateway",
            package,
            &format!("install {package}"),
        )?;
    }
    let (binary, package) = NGINX;
    ensure_tool(
        || has_binary(binary),
        package,
        "the load-balancer tests put hosts behind it",
        package,
        "install nginx",
    )
}

/// Debian's nginx, the load balancer of the tests that put hosts behind
/// one.
const NGINX: (&str, &str) = ("/usr/sbin/nginx", "nginx");

/// The Ceph daemons the object-upload tests start, and their packages
/// (`ceph-common`, with the `ceph`, `rados` and `radosgw-admin` commands,
/// comes with them).
const CEPH: [(&str, &str); 3] = [
    ("/usr/bin/ceph-mon", "ceph-mon"),
    ("/usr/bin/ceph-osd", "ceph-osd"),
    ("/usr/bin/radosgw", "radosgw"),
];

/// Whether the file `path` is there.
fn has_binary(path: &str) -> bool {
    std::path::Path::new(path).is_file()
}

/// Whether Debian's RabbitMQ server is there (the tests start its own
/// node, not the system's service).
pub fn has_rabbitmq() -> bool {
    std::path::Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server").is_file()
}

/// Whether Debian's Mosquitto broker is there.
pub fn has_mosquitto_broker() -> bool {
    std::path::Path::new("/usr/sbin/mosquitto").is_file()
}

/// Whether `mosquitto_pub` runs.
pub fn has_mosquitto_pub() -> bool {
    Command::new("mosquitto_pub").arg("--help").output().is_ok()
}

/// Whether curl runs.
pub fn has_curl() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Debian's `curl` if needed: the function URL tests call URLs
/// with it as a user would (and sign requests with `--aws-sigv4`).
pub fn ensure_curl() -> Result<()> {
    ensure_tool(
        has_curl,
        "curl",
        "the function URL tests call URLs with it",
        "curl",
        "put a curl on PATH",
    )
}

/// The Go compiler: `$MAYFLY_GO`, or `go`.
pub fn go() -> String {
    std::env::var("MAYFLY_GO").unwrap_or_else(|_| "go".into())
}

/// Whether the Go compiler runs.
pub fn has_go() -> bool {
    Command::new(go())
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Debian's `golang-go` if needed (the Go example Linux function
/// is built with it); fails with instructions if it cannot.
pub fn ensure_go() -> Result<()> {
    ensure_tool(
        has_go,
        "go",
        "the Go example Linux function is built with it",
        "golang-go",
        "set MAYFLY_GO to a go",
    )
}

/// PostgreSQL's programs (`initdb`, `pg_ctl`, `postgres`, `psql`):
/// `$MAYFLY_PG_BIN`, or the newest of Debian's
/// `/usr/lib/postgresql/<version>/bin` (the end-to-end tests look there
/// the same way).
pub fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MAYFLY_PG_BIN") {
        return Some(dir.into());
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
        .max()
        .map(|(_, dir)| dir.join("bin"))
}

/// Whether PostgreSQL's server and client programs are there.
pub fn has_postgres() -> bool {
    pg_bin().is_some_and(|bin| {
        ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|p| bin.join(p).is_file())
    })
}

/// Installs Debian's `postgresql` if needed (an end-to-end test runs a
/// real server that a Linux function writes into through egress); fails
/// with instructions if it cannot.
pub fn ensure_postgres() -> Result<()> {
    ensure_tool(
        has_postgres,
        "PostgreSQL",
        "an end-to-end test writes into a real PostgreSQL through egress",
        "postgresql",
        "set MAYFLY_PG_BIN to the directory of its initdb, pg_ctl, postgres and psql",
    )
}

/// The real AWS clients the end-to-end tests drive: the AWS CLI (`aws`)
/// and boto3 for `python3.11`. Installed from PyPI with pip when missing.
pub fn ensure_aws_clients() -> Result<()> {
    let has_boto3 = Command::new("python3.11")
        .args(["-c", "import boto3, botocore"])
        .output()
        .is_ok_and(|o| o.status.success());
    let has_cli = Command::new("aws")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_boto3 && has_cli {
        return Ok(());
    }
    eprintln!("xtask: installing the AWS CLI and boto3 for python3.11 with pip");
    let status = Command::new("python3.11")
        .args(["-m", "pip", "install", "--quiet", "awscli", "boto3"])
        .status()
        .context("cannot run python3.11 -m pip (the end-to-end tests need Python 3.11)")?;
    if !status.success() {
        bail!(
            "installing the AWS CLI and boto3 failed ({status}); install them with\n  \
             python3.11 -m pip install awscli boto3"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn reads_debian_version_lines() {
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
            Some((7, 2))
        );
        assert_eq!(parse_version("QEMU emulator version 10.0.2"), Some((10, 0)));
        assert_eq!(parse_version("something else"), None);
    }
}
