//! Builds the guest images, the generic kernel Linux functions boot with,
//! and the example Linux functions.
//!
//! Only the host target's standard library is installed, and no
//! `rust-src`, so a guest is a `#![no_std] #![no_main]` binary for
//! `x86_64-unknown-linux-gnu` linked freestanding against
//! `kernel/guest.ld`. The target is named explicitly so that these flags
//! reach the guest crates but not build scripts or proc-macros.
//!
//! The example Linux functions (`examples/linux/`) are ordinary static
//! Linux programs, built as their authors outside this repository would
//! build them: the Rust ones with the host toolchain and
//! `-C target-feature=+crt-static` (static-pie, static glibc), the C ones
//! with Debian's `musl-gcc -static -O2`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use zip::write::SimpleFileOptions;

use crate::{bootstrap, util};

/// Every image in `images/`, in the order they are built and demonstrated.
pub const IMAGES: &[&str] = &[
    "echo",
    "hello",
    "wordcount",
    "misbehave",
    "recorder",
    "fetcher",
    "hostile",
];
const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The guest crate (in `images/`) that is the one generic kernel Linux
/// functions are booted with. Not a function: it is copied to
/// `target/images/linux.elf` and not packaged.
const LINUX_KERNEL: &str = "linux";

/// How an example Linux function is built.
enum Build {
    /// A package of the Cargo workspace `examples/linux/`.
    Rust,
    /// One C file under `examples/linux/`, built with `musl-gcc -static -O2`.
    C(&'static str),
    /// A Go module under `examples/linux/`, built with `CGO_ENABLED=0`.
    Go(&'static str),
}

/// The example Linux functions, in the order they are built: each becomes
/// `target/images/<name>` (the bare static binary, for `mayfly exec` and
/// `mayfly deploy NAME binary`) and `target/images/<name>.zip` (the binary
/// as `bootstrap`).
const LINUX_EXAMPLES: &[(&str, Build)] = &[
    ("rust-echo", Build::Rust),
    ("rust-echo-mt", Build::Rust),
    ("rust-pg", Build::Rust),
    ("rust-probe", Build::Rust),
    ("rust-wordcount", Build::Rust),
    ("c-echo", Build::C("c-echo/echo.c")),
    ("c-probe", Build::C("c-probe/probe.c")),
    ("go-echo", Build::Go("go-echo")),
];

/// One built image.
pub struct Image {
    /// Its name.
    pub name: &'static str,
    /// The bootable ELF (a native image), or the stripped static program
    /// (an example Linux function, whose name is in [`LINUX_EXAMPLES`]).
    pub elf: PathBuf,
    /// The Lambda-style package (`bootstrap` = the ELF).
    pub zip: PathBuf,
}

/// `target/images/linux.elf`: the generic kernel the host boots Linux
/// functions with.
pub fn linux_kernel() -> PathBuf {
    util::images_dir().join(format!("{LINUX_KERNEL}.elf"))
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
/// the kernel and every image, built exactly as [`build`] builds them, and
/// the example Linux functions.
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
    lint_examples()
}

/// `cargo fmt --check` and clippy with `-D warnings` over the example Linux
/// functions' own workspace, built as `cargo xtask images` builds them.
fn lint_examples() -> Result<()> {
    let examples = util::root().join("examples").join("linux");
    let status = util::cargo_command()
        .current_dir(&examples)
        .args(["fmt", "--all", "--", "--check"])
        .status()
        .context("cannot run cargo fmt on the examples")?;
    if !status.success() {
        bail!("the examples are not formatted (cargo fmt --all in examples/linux fixes it)");
    }
    let status = util::cargo_command()
        .current_dir(&examples)
        .args([
            "clippy",
            "--quiet",
            "--locked",
            "--all-targets",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(examples_target_dir())
        .args(["--", "-D", "warnings"])
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("cannot run cargo clippy on the examples")?;
    if !status.success() {
        bail!("clippy found problems in the example Linux functions ({status})");
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

    let kernel_from = target_dir.join(TARGET).join("release").join(LINUX_KERNEL);
    let kernel = linux_kernel();
    fs::copy(&kernel_from, &kernel).with_context(|| {
        format!(
            "cannot copy {} to {}",
            kernel_from.display(),
            kernel.display()
        )
    })?;
    eprintln!(
        "xtask: kernel for Linux functions {:>7} bytes  {}",
        fs::metadata(&kernel)?.len(),
        kernel.display()
    );

    let linux = build_linux_examples(&out_dir)?;
    for (image, unstripped) in &linux {
        let size = fs::metadata(&image.elf)?.len();
        eprintln!(
            "xtask: image {:<10} {:>7} bytes  {} (Linux, {unstripped} bytes unstripped)",
            image.name,
            size,
            image.zip.display()
        );
    }
    built.extend(linux.into_iter().map(|(image, _)| image));
    Ok(built)
}

/// Where the example Linux functions are built, before they are stripped
/// into `target/images`.
fn examples_target_dir() -> PathBuf {
    util::root().join("target").join("examples")
}

/// Builds, strips and packages every example Linux function. Returns each
/// image with the size of its unstripped binary.
fn build_linux_examples(out_dir: &Path) -> Result<Vec<(Image, u64)>> {
    if !bootstrap::has_go() {
        bail!(
            "`{}` is missing: the Go example Linux function is built with it; \
             `cargo xtask bootstrap` installs it (Debian's golang-go)",
            bootstrap::go()
        );
    }
    if !bootstrap::has_musl_gcc() {
        bail!(
            "`{}` is missing: the C example Linux functions are built with it; \
             `cargo xtask bootstrap` installs it (Debian's musl-tools)",
            bootstrap::musl_gcc()
        );
    }
    let examples = util::root().join("examples").join("linux");
    let target_dir = examples_target_dir();

    // One cargo run for the Rust examples: they share a workspace and its
    // lock file. The host toolchain, the host's target named explicitly so
    // that +crt-static reaches the programs but not build scripts or
    // proc-macros (which cannot be static).
    let mut cmd = util::cargo_command();
    cmd.current_dir(&examples)
        .args([
            "build",
            "--release",
            "--quiet",
            "--locked",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static");
    for (name, build) in LINUX_EXAMPLES {
        if matches!(build, Build::Rust) {
            cmd.args(["--package", name]);
        }
    }
    let status = cmd
        .status()
        .context("cannot run cargo to build the example Linux functions")?;
    if !status.success() {
        bail!("building the Rust example Linux functions failed ({status})");
    }

    let c_dir = target_dir.join("c");
    fs::create_dir_all(&c_dir).with_context(|| format!("cannot create {}", c_dir.display()))?;
    let mut built = Vec::new();
    for (name, build) in LINUX_EXAMPLES {
        let unstripped = match build {
            Build::Rust => target_dir.join(TARGET).join("release").join(name),
            Build::C(source) => {
                let output = c_dir.join(name);
                let status = Command::new(bootstrap::musl_gcc())
                    .args(["-static", "-O2", "-Wall", "-Wextra", "-o"])
                    .arg(&output)
                    .arg(examples.join(source))
                    .status()
                    .with_context(|| format!("cannot run {}", bootstrap::musl_gcc()))?;
                if !status.success() {
                    bail!("building {name} with musl-gcc failed ({status})");
                }
                output
            }
            Build::Go(module) => {
                let output = target_dir.join("go").join(name);
                let status = Command::new(bootstrap::go())
                    .current_dir(examples.join(module))
                    .args(["build", "-trimpath", "-o"])
                    .arg(&output)
                    .arg(".")
                    .env("CGO_ENABLED", "0")
                    .env("GOOS", "linux")
                    .env("GOARCH", "amd64")
                    .env("GOFLAGS", "-mod=mod")
                    .env("GOCACHE", target_dir.join("go-cache"))
                    .env("GOPATH", target_dir.join("go-path"))
                    .status()
                    .with_context(|| format!("cannot run {}", bootstrap::go()))?;
                if !status.success() {
                    bail!("building {name} with go failed ({status})");
                }
                output
            }
        };
        let elf = out_dir.join(name);
        strip(&unstripped, &elf)?;
        let zip = out_dir.join(format!("{name}.zip"));
        write_package(&elf, &zip)?;
        let size = fs::metadata(&unstripped)?.len();
        built.push((Image { name, elf, zip }, size));
    }
    Ok(built)
}

/// `strip` (binutils, which gcc and so musl-gcc need anyway) from `from`
/// into `to`: the symbols and debug information go, the program stays.
fn strip(from: &Path, to: &Path) -> Result<()> {
    // strip writes a new file; a stale read-only one in the way is removed.
    let _ = fs::remove_file(to);
    let status = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(to)
        .arg(from)
        .status()
        .context("cannot run strip (binutils)")?;
    if !status.success() {
        bail!("strip {} failed ({status})", from.display());
    }
    Ok(())
}

/// Writes a Lambda-style package: a zip whose `bootstrap` entry is the ELF.
fn write_package(elf: &Path, zip_path: &Path) -> Result<()> {
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
