//! Makes sure QEMU is installed: installs Debian's `qemu-system-x86` when
//! it is missing and we are root, otherwise says exactly what to install.

use std::process::Command;

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
        apt_get(&["update", "-q"])?;
        apt_get(&["install", "-y", "-q", "qemu-system-x86"])?;
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
