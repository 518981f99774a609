//! Builds the guest images.
//!
//! Only the host target's standard library is installed, and no
//! `rust-src`, so a guest is a `#![no_std] #![no_main]` binary for
//! `x86_64-unknown-linux-gnu` linked freestanding against
//! `kernel/guest.ld`. The target is named explicitly so that these flags
//! reach the guest crates but not build scripts or proc-macros.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;

use crate::util;

/// Every image in `images/`, in the order they are built and demonstrated.
pub const IMAGES: &[&str] = &[
    "echo",
    "hello",
    "wordcount",
    "misbehave",
    "recorder",
    "hostile",
];
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// One built image.
pub struct Image {
    /// Its name.
    pub name: &'static str,
    /// The bootable ELF.
    pub elf: PathBuf,
    /// The Lambda-style package (`bootstrap` = the ELF).
    pub zip: PathBuf,
}

fn guest_rustflags() -> String {
    let script = util::root().join("kernel").join("guest.ld");
    let flags = [
        "-C".to_string(),
        "relocation-model=static".to_string(),
        "-C".to_string(),
        "link-arg=-nostartfiles".to_string(),
        "-C".to_string(),
        "link-arg=-nostdlib".to_string(),
        "-C".to_string(),
        "link-arg=-static".to_string(),
        "-C".to_string(),
        "link-arg=-no-pie".to_string(),
        "-C".to_string(),
        format!("link-arg=-Wl,-T,{}", script.display()),
        "-C".to_string(),
        "link-arg=-Wl,--gc-sections".to_string(),
        "-C".to_string(),
        "link-arg=-Wl,--build-id=none".to_string(),
    ];
    flags.join("\x1f")
}

/// Where the guest's build goes: its own directory, since its flags differ
/// from the host's.
fn guest_target_dir() -> PathBuf {
    util::root().join("target").join("guest")
}

/// `cargo <subcommand> --release --quiet` in the guest's workspace
/// (`images/`, which the kernel belongs to), for the guest's target, with
/// the guest's link flags and target directory. Further arguments may be
/// appended.
fn guest_cargo(subcommand: &str) -> Command {
    let mut cmd = util::cargo_command();
    cmd.current_dir(util::root().join("images"))
        .args([subcommand, "--release", "--quiet", "--target", TARGET])
        .arg("--target-dir")
        .arg(guest_target_dir())
        .env_remove("RUSTFLAGS")
        .env("CARGO_ENCODED_RUSTFLAGS", guest_rustflags());
    cmd
}

/// Lints the guest: `cargo fmt --check` and clippy with `-D warnings` over
/// the kernel and every image, built exactly as [`build`] builds them.
/// Clippy checks the library and the binaries only: a test harness needs
/// `std`'s panic handler and `main`, which a freestanding guest replaces.
pub fn lint() -> Result<()> {
    let status = util::cargo_command()
        .current_dir(util::root().join("images"))
        .args(["fmt", "--all", "--", "--check"])
        .status()
        .context("cannot run cargo fmt on the guest")?;
    if !status.success() {
        bail!("the guest is not formatted (cargo fmt --all in images/ fixes it)");
    }
    let status = guest_cargo("clippy")
        .args(["--workspace", "--lib", "--bins", "--", "-D", "warnings"])
        .status()
        .context("cannot run cargo clippy on the guest")?;
    if !status.success() {
        bail!("clippy found problems in the guest ({status})");
    }
    Ok(())
}

/// Builds every image (release profile) into `target/images`.
pub fn build() -> Result<Vec<Image>> {
    let target_dir = guest_target_dir();
    let status = guest_cargo("build")
        .status()
        .context("cannot run cargo to build the images")?;
    if !status.success() {
        bail!("building the guest images failed ({status})");
    }
    let out_dir = util::images_dir();
    fs::create_dir_all(&out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let mut built = Vec::new();
    for &name in IMAGES {
        let from = target_dir.join(TARGET).join("release").join(name);
        let elf = out_dir.join(format!("{name}.elf"));
        fs::copy(&from, &elf)
            .with_context(|| format!("cannot copy {} to {}", from.display(), elf.display()))?;
        let zip = out_dir.join(format!("{name}.zip"));
        write_package(&elf, &zip)?;
        built.push(Image { name, elf, zip });
    }
    let floor = crate::floor::write(&out_dir)?;
    eprintln!(
        "xtask: floor image (powers off at once): {}",
        floor.display()
    );
    for image in &built {
        let size = fs::metadata(&image.elf)?.len();
        eprintln!(
            "xtask: image {:<10} {:>7} bytes  {}",
            image.name,
            size,
            image.zip.display()
        );
    }
    Ok(built)
}

/// Writes a Lambda-style package: a zip whose `bootstrap` entry is the ELF.
fn write_package(elf: &PathBuf, zip_path: &PathBuf) -> Result<()> {
    let bytes = fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let file = fs::File::create(zip_path)
        .with_context(|| format!("cannot create {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&bytes)?;
    zip.finish()?;
    Ok(())
}
