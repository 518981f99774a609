//! The Linux microVM row's guest: Debian's kernel and `busybox-static`,
//! fetched with `apt-get download` into a cache, turned into what PVH on
//! `microvm` boots (an uncompressed `vmlinux` ELF: Debian ships only the
//! bzImage, whose payload is the xz-compressed vmlinux) and a gzip'd cpio
//! initramfs whose `/init` says it ran and reboots, which `reboot=t` plus
//! QEMU's `-no-reboot` turn into QEMU exiting.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// What `/init` prints, to tell a booted Linux from a panicked one.
pub const MARKER: &str = "MAYFLY-BENCH-INIT-RAN";

/// The guest's command line. `tsc_early_khz=` because under TCG Linux's
/// timer calibration can hang without it; `panic=-1 reboot=t` so that any
/// end, good or bad, ends QEMU.
pub const CMDLINE: &str = "console=ttyS0 quiet tsc_early_khz=2000 panic=-1 reboot=t";

const INIT: &str = "#!/bin/sh\necho MAYFLY-BENCH-INIT-RAN\n/bin/busybox reboot -f\n";

/// What the function guest's `/init` prints once its network is up.
pub const NET_MARKER: &str = "MAYFLY-BENCH-NET-UP";

/// The modules the function guest loads, in dependency order: Debian
/// builds virtio, virtio-mmio and virtio-net as modules.
pub const NET_MODULES: [&str; 6] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "failover",
    "net_failover",
    "virtio_net",
];

/// QEMU user networking's view: the guest's address, and the host's
/// loopback as the guest reaches it.
pub const GUEST_ADDR: &str = "10.0.2.15/24";
/// The host (its 127.0.0.1) from the guest, under `-netdev user`.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// A bootable Linux guest.
#[derive(Debug, Clone)]
pub struct Guest {
    /// The kernel, uncompressed, with its PVH note.
    pub vmlinux: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The Debian package the kernel came from.
    pub kernel_package: String,
    /// Busybox, static.
    pub busybox: PathBuf,
    /// [`NET_MODULES`], as `NAME.ko` files.
    pub modules: PathBuf,
}

/// Fetches (once) and prepares the guest under `cache`.
pub fn prepare(cache: &Path) -> Result<Guest> {
    std::fs::create_dir_all(cache)?;
    let kernel_package = kernel_package()?;
    let kernel_deb = download(cache, &kernel_package)?;
    let busybox_deb = download(cache, "busybox-static")?;

    let vmlinux = cache.join(format!("{kernel_package}.vmlinux"));
    let modules = cache.join(format!("{kernel_package}.modules"));
    let have_modules = NET_MODULES
        .iter()
        .all(|m| modules.join(format!("{m}.ko")).is_file());
    if !vmlinux.is_file() || !have_modules {
        let root = unpack(cache, &kernel_deb, "kernel-root")?;
        std::fs::create_dir_all(&modules)?;
        for m in NET_MODULES {
            let ko = find_file(&root.join("lib/modules"), &format!("{m}.ko"))
                .with_context(|| format!("the kernel package has no {m}.ko"))?;
            std::fs::copy(&ko, modules.join(format!("{m}.ko")))?;
        }
        let vmlinuz = std::fs::read_dir(root.join("boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
            })
            .context("the kernel package has no boot/vmlinuz-*")?;
        let elf = extract_vmlinux(&std::fs::read(&vmlinuz)?)?;
        std::fs::write(&vmlinux, elf)?;
        // What was needed is out; the unpacked package is some 400 MB.
        let _ = std::fs::remove_dir_all(&root);
    }

    let root = unpack(cache, &busybox_deb, "busybox-root")?;
    let busybox_path = root.join("bin/busybox");
    let busybox = std::fs::read(&busybox_path).context("busybox-static has no bin/busybox")?;
    let initrd = cache.join("initramfs.cpio.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&initramfs(&busybox))?;
    std::fs::write(&initrd, gz.finish()?)?;
    Ok(Guest {
        vmlinux,
        initrd,
        kernel_package,
        busybox: busybox_path,
        modules,
    })
}

/// The first file called `name` under `dir`, depth first.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries.iter().find_map(|p| {
        if p.is_dir() {
            find_file(p, name)
        } else {
            (p.file_name().is_some_and(|n| n == name)).then(|| p.clone())
        }
    })
}

/// The function guest's `/init`: load the NIC's modules, bring up
/// `eth0` on QEMU user networking, then run `/var/task/bootstrap` with
/// the runtime API at the host's `port`.
pub fn function_init(port: u16, env: &[(&str, &str)]) -> String {
    let mut s = String::from("#!/bin/sh\nB=/bin/busybox\n");
    s.push_str(&format!(
        "for m in {}; do $B insmod /lib/modules/$m.ko || exit 1; done\n",
        NET_MODULES.join(" ")
    ));
    s.push_str(&format!("$B ip addr add {GUEST_ADDR} dev eth0\n"));
    s.push_str("$B ip link set eth0 up\n");
    s.push_str(&format!("echo {NET_MARKER}\n"));
    s.push_str(&format!(
        "export AWS_LAMBDA_RUNTIME_API={HOST_FROM_GUEST}:{port}\n"
    ));
    for (k, v) in env {
        s.push_str(&format!("export {k}='{v}'\n"));
    }
    s.push_str("/var/task/bootstrap\necho bootstrap exited $?\n$B reboot -f\n");
    s
}

/// The function guest's initramfs for the function `name`, written to
/// `cache` (one per function, so that several rows can share a run):
/// busybox, the NIC's modules, `bootstrap` at `/var/task/bootstrap`,
/// [`function_init`].
pub fn function_initrd(
    g: &Guest,
    cache: &Path,
    name: &str,
    bootstrap: &Path,
    port: u16,
    env: &[(&str, &str)],
) -> Result<PathBuf> {
    let mut cpio = Cpio::default();
    for dir in [
        "dev",
        "proc",
        "sys",
        "tmp",
        "bin",
        "lib",
        "lib/modules",
        "var",
        "var/task",
    ] {
        cpio.entry(dir, 0o040755, 0, &[]);
    }
    cpio.entry("dev/console", 0o020600, (5 << 8) | 1, &[]);
    cpio.entry("bin/busybox", 0o100755, 0, &std::fs::read(&g.busybox)?);
    cpio.entry("bin/sh", 0o120777, 0, b"busybox");
    for m in NET_MODULES {
        let ko = std::fs::read(g.modules.join(format!("{m}.ko")))?;
        cpio.entry(&format!("lib/modules/{m}.ko"), 0o100644, 0, &ko);
    }
    let program =
        std::fs::read(bootstrap).with_context(|| format!("cannot read {}", bootstrap.display()))?;
    cpio.entry("var/task/bootstrap", 0o100755, 0, &program);
    cpio.entry("init", 0o100755, 0, function_init(port, env).as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&cpio.finish())?;
    let initrd = cache.join(format!("initramfs-function-{name}.cpio.gz"));
    std::fs::write(&initrd, gz.finish()?)?;
    Ok(initrd)
}

/// The real package behind `linux-image-amd64` (a metapackage).
fn kernel_package() -> Result<String> {
    let ask = || {
        Command::new("apt-cache")
            .args(["depends", "linux-image-amd64"])
            .output()
            .ok()
            .and_then(|o| parse_depends(&String::from_utf8_lossy(&o.stdout)))
    };
    if let Some(p) = ask() {
        return Ok(p);
    }
    // Fresh containers often have no package lists yet.
    if is_root() {
        let _ = Command::new("apt-get")
            .args(["update", "-q"])
            .stdout(Stdio::null())
            .status();
    }
    ask().context("apt-cache knows no linux-image-amd64 (no Debian package lists?)")
}

fn is_root() -> bool {
    crate::sys::is_root()
}

/// The `linux-image-<version>-amd64` that `apt-cache depends
/// linux-image-amd64` names.
pub fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .find(|p| {
            p.starts_with("linux-image-") && p.ends_with("-amd64") && p != &"linux-image-amd64"
        })
        .map(str::to_owned)
}

/// `apt-get download PACKAGE` into `cache` unless a .deb of it is there.
fn download(cache: &Path, package: &str) -> Result<PathBuf> {
    let find = || -> Option<PathBuf> {
        std::fs::read_dir(cache)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                name.starts_with(&format!("{package}_")) && name.ends_with(".deb")
            })
    };
    if let Some(deb) = find() {
        return Ok(deb);
    }
    let out = Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(cache)
        .output()
        .context("cannot run apt-get")?;
    if !out.status.success() {
        bail!(
            "apt-get download {package} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    find().with_context(|| format!("apt-get download {package} left no .deb"))
}

/// `dpkg-deb -x` into a fresh `cache/dir`.
fn unpack(cache: &Path, deb: &Path, dir: &str) -> Result<PathBuf> {
    let root = cache.join(dir);
    let _ = std::fs::remove_dir_all(&root);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(&root)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb -x {} failed", deb.display());
    }
    Ok(root)
}

/// The compressors a bzImage payload may use: magic, then the command that
/// decompresses one stream from stdin (trailing bytes ignored).
const COMPRESSORS: &[(&[u8], &[&str])] = &[
    (b"\xfd7zXZ\x00", &["xz", "-dc", "--single-stream"]),
    (b"\x28\xb5\x2f\xfd", &["zstd", "-dc"]),
    (b"\x1f\x8b\x08", &["gzip", "-dc"]),
];

/// Offsets of `magic` in `data`.
pub fn find_all(data: &[u8], magic: &[u8]) -> Vec<usize> {
    data.windows(magic.len())
        .enumerate()
        .filter_map(|(i, w)| (w == magic).then_some(i))
        .collect()
}

/// The vmlinux inside a bzImage, as the kernel's `extract-vmlinux` finds
/// it: try each compressed stream's start until one decompresses to an ELF.
fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    for (magic, cmd) in COMPRESSORS {
        for offset in find_all(bzimage, magic) {
            let Ok(mut child) = Command::new(cmd[0])
                .args(&cmd[1..])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
            else {
                continue;
            };
            let mut stdin = child.stdin.take().expect("piped");
            let payload = bzimage[offset..].to_vec();
            let feeder = std::thread::spawn(move || {
                let _ = stdin.write_all(&payload);
            });
            let out = child.wait_with_output()?;
            let _ = feeder.join();
            if out.stdout.starts_with(b"\x7fELF") {
                return Ok(out.stdout);
            }
        }
    }
    bail!("found no compressed vmlinux ELF in the bzImage (xz, zstd and gzip tried)")
}

/// A cpio (newc) archive: `/init`, `/bin/busybox`, `/bin/sh` → busybox,
/// `/dev/console`, `/proc`.
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut cpio = Cpio::default();
    cpio.entry("dev", 0o040755, 0, &[]);
    cpio.entry("dev/console", 0o020600, (5 << 8) | 1, &[]);
    cpio.entry("proc", 0o040755, 0, &[]);
    cpio.entry("bin", 0o040755, 0, &[]);
    cpio.entry("bin/busybox", 0o100755, 0, busybox);
    cpio.entry("bin/sh", 0o120777, 0, b"busybox");
    cpio.entry("init", 0o100755, 0, INIT.as_bytes());
    cpio.finish()
}

/// A cpio `newc` writer, just what an initramfs needs.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    /// Adds an entry; `rdev` is `major << 8 | minor` for device nodes.
    pub fn entry(&mut self, name: &str, mode: u32, rdev: u32, data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            data.len() as u32,
            0,
            0,
            rdev >> 8,
            rdev & 0xff,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Adds the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", 0, 0, &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_package_from_apt_cache() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            parse_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(parse_depends("linux-image-amd64\n"), None);
    }

    #[test]
    fn function_init_loads_the_nic_then_runs_bootstrap() {
        let init = function_init(4242, &[("AWS_LAMBDA_FUNCTION_NAME", "f")]);
        assert!(init.starts_with("#!/bin/sh\n"));
        let insmod = init.find("insmod").unwrap();
        let up = init.find("ip link set eth0 up").unwrap();
        let run = init.find("/var/task/bootstrap\n").unwrap();
        assert!(insmod < up && up < run, "{init}");
        assert!(init.contains("AWS_LAMBDA_RUNTIME_API=10.0.2.2:4242\n"));
        assert!(init.contains("export AWS_LAMBDA_FUNCTION_NAME='f'\n"));
        assert!(init.contains("virtio_ring virtio virtio_mmio failover net_failover virtio_net"));
    }

    #[test]
    fn finds_every_magic() {
        assert_eq!(find_all(b"..ab.ab", b"ab"), vec![2, 5]);
        assert!(find_all(b"a", b"ab").is_empty());
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::default();
        c.entry("init", 0o100755, 0, b"hi!");
        let out = c.finish();
        // Header: magic + 13 fields of 8 hex digits = 110 bytes.
        assert_eq!(&out[..6], b"070701");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&out[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        assert_eq!(field(1), 0o100755);
        assert_eq!(field(6), 3); // file size
        assert_eq!(field(11), 5); // "init" plus NUL
                                  // 110 + 5 = 115, padded to 116; data 3 padded to 4.
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..119], b"hi!");
        assert_eq!(&out[120..126], b"070701");
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
        assert_eq!(out.len() % 4, 0);
    }

    #[test]
    fn device_node_numbers() {
        let mut c = Cpio::default();
        c.entry("dev/console", 0o020600, (5 << 8) | 1, &[]);
        let out = c.finish();
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&out[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        assert_eq!((field(9), field(10)), (5, 1));
    }
}
