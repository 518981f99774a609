//! The jail's minimal root: what QEMU needs to start (its binary, its
//! shared libraries and loader, the loader's cache, the firmware microvm
//! loads, a few devices), bound read-only at their own paths into a tmpfs,
//! plus the VM's image and environment as private copies, and a Linux
//! function's pack bound read-only (it may be 250 MB: a copy per VM would
//! cost that much memory and time; the pack holds the function's code
//! only, never its environment).
//!
//! The file list is computed once per QEMU binary (`ldd` costs about as
//! much as a VM start); each spawn only turns it into [`RootStep`]s.

use std::collections::BTreeSet;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::sys::child::RootStep;

/// Where the image's environment file is inside the jail.
pub const ENV_FILE: &str = "/mayfly/env";

/// The firmware microvm loads when not told otherwise.
const MICROVM_FIRMWARE: &str = "qboot.rom";
/// The module a modular QEMU build loads for TCG.
const TCG_MODULE: &str = "accel-tcg-x86_64.so";

/// The TCG module, where QEMU looks for its modules: `<prefix>/lib/qemu`
/// or `<prefix>/lib/<multiarch>/qemu` (Debian); `None` for a QEMU built
/// without modules.
pub fn tcg_module(binary: &Path) -> Option<PathBuf> {
    let lib = normalize(&binary.parent().unwrap_or(Path::new("/")).join("../lib"));
    let direct = lib.join("qemu").join(TCG_MODULE);
    if direct.is_file() {
        return Some(direct);
    }
    std::fs::read_dir(&lib)
        .ok()?
        .flatten()
        .map(|e| e.path().join("qemu").join(TCG_MODULE))
        .find(|p| p.is_file())
}

/// `ldd`'s list of what `file` loads.
fn libraries(file: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(file)
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", file.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("not a dynamic executable") || stderr.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !output.status.success() {
        return Err(format!("ldd {} failed: {}", file.display(), stderr.trim()));
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&output.stdout)))
}

/// A file bound into the root, with the remount flags its mount needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The file (absolute; the same path inside the jail).
    pub path: PathBuf,
    /// `MS_*` flags for the read-only remount.
    pub flags: libc::c_ulong,
}

/// Everything a QEMU binary needs from the host's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuFiles {
    /// The files, bound read-only.
    pub files: Vec<Bound>,
}

/// The shared libraries `ldd` lists (the vDSO, which has no file, left
/// out).
pub fn parse_ldd(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.trim(),
                None => line,
            };
            let path = path.split(" (").next()?.trim();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Where QEMU looks for its firmware: `<binary's dir>/../share/qemu`, as
/// QEMU relocates its data directory relative to its executable.
pub fn firmware_path(binary: &Path) -> PathBuf {
    let dir = binary.parent().unwrap_or(Path::new("/"));
    normalize(&dir.join("../share/qemu").join(MICROVM_FIRMWARE))
}

/// `..` and `.` removed lexically (QEMU does the same with its path).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(p) => out.push(p),
            _ => {}
        }
    }
    out
}

impl QemuFiles {
    /// Finds what `binary` (an absolute path) needs: runs `ldd` on it and
    /// on its TCG module.
    pub fn find(binary: &Path) -> Result<QemuFiles, String> {
        let mut paths = vec![binary.to_path_buf()];
        paths.extend(libraries(binary)?);
        if let Some(module) = tcg_module(binary) {
            for library in libraries(&module)? {
                if !paths.contains(&library) {
                    paths.push(library);
                }
            }
            paths.push(module);
        }
        let cache = Path::new("/etc/ld.so.cache");
        if cache.exists() {
            paths.push(cache.to_path_buf());
        }
        let firmware = firmware_path(binary);
        if !firmware.exists() {
            return Err(format!(
                "QEMU's microvm firmware {} is missing",
                firmware.display()
            ));
        }
        paths.push(firmware);
        let mut files = Vec::new();
        for path in paths {
            let flags = crate::sys::mount_flags(&path)
                .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
            files.push(Bound {
                path,
                flags: flags | libc::MS_NOSUID | libc::MS_NODEV,
            });
        }
        Ok(QemuFiles { files })
    }
}

/// The devices QEMU opens: `/dev/null`, `/dev/urandom`, and `/dev/kvm`
/// with KVM.
pub fn devices(kvm: bool) -> Vec<Bound> {
    let mut devices = vec!["/dev/null", "/dev/urandom"];
    if kvm {
        devices.push("/dev/kvm");
    }
    devices
        .into_iter()
        .map(|d| Bound {
            path: d.into(),
            flags: crate::sys::mount_flags(Path::new(d)).unwrap_or(0)
                | libc::MS_NOSUID
                | libc::MS_NOEXEC,
        })
        .collect()
}

fn c_path(root: &Path, path: &Path) -> CString {
    let inside = path.strip_prefix("/").unwrap_or(path);
    CString::new(root.join(inside).into_os_string().as_bytes()).expect("paths have no NUL")
}

fn c_string(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL")
}

/// The steps that build the root at `root`: directories, then the bound
/// files and devices, the image copied (at its own path, so that the
/// start-up sweep still recognises the QEMU by its `-kernel`), the
/// initrd (a Linux function's pack) bound read-only at its own path, and
/// the environment file.
pub fn steps(
    root: &Path,
    files: &[Bound],
    devices: &[Bound],
    image: &Path,
    initrd: Option<&Bound>,
    env: Option<&[u8]>,
) -> Vec<RootStep> {
    let env_path = Path::new(ENV_FILE);
    let mut dirs = BTreeSet::new();
    let everything = files
        .iter()
        .chain(devices)
        .chain(initrd)
        .map(|b| b.path.as_path())
        .chain([image])
        .chain(env.map(|_| env_path));
    for path in everything {
        let mut parent = path.parent();
        // A relative path's last parent is "", which would be the root
        // itself.
        while let Some(dir) = parent.filter(|d| *d != Path::new("/") && !d.as_os_str().is_empty()) {
            dirs.insert(dir.to_path_buf());
            parent = dir.parent();
        }
    }
    // BTreeSet order puts every directory after its parent.
    let mut steps: Vec<RootStep> = dirs
        .iter()
        .map(|d| RootStep::Dir(c_path(root, d)))
        .collect();
    let mut seen = BTreeSet::new();
    for bound in files.iter().chain(devices).chain(initrd) {
        if !seen.insert(bound.path.as_os_str()) {
            continue;
        }
        steps.push(RootStep::File(c_path(root, &bound.path)));
        steps.push(RootStep::Bind {
            src: c_string(&bound.path),
            dst: c_path(root, &bound.path),
            flags: bound.flags,
        });
    }
    steps.push(RootStep::Copy {
        src: c_string(image),
        dst: c_path(root, image),
    });
    if let Some(bytes) = env {
        steps.push(RootStep::Write {
            dst: c_path(root, env_path),
            bytes: bytes.to_vec(),
        });
    }
    steps
}

/// Whether `name` (a path's file name) is a shared library: for tests and
/// logs.
pub fn is_library(name: &OsStr) -> bool {
    name.to_string_lossy().contains(".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_is_parsed() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd5a1e2000)\n\
                   \tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f0e)\n\
                   \tlibgone.so.2 => not found\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f0e5c)\n";
        assert_eq!(
            parse_ldd(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn firmware_is_found_relative_to_the_binary() {
        assert_eq!(
            firmware_path(Path::new("/usr/bin/qemu-system-x86_64")),
            PathBuf::from("/usr/share/qemu/qboot.rom")
        );
        assert_eq!(
            firmware_path(Path::new("/opt/qemu/bin/qemu")),
            PathBuf::from("/opt/qemu/share/qemu/qboot.rom")
        );
    }

    #[test]
    fn the_root_has_parents_first_binds_and_private_copies() {
        let files = [
            Bound {
                path: "/usr/bin/qemu".into(),
                flags: 1,
            },
            Bound {
                path: "/lib/x/libz.so".into(),
                flags: 2,
            },
        ];
        let devices = [Bound {
            path: "/dev/null".into(),
            flags: 4,
        }];
        let steps = steps(
            Path::new("/run/j"),
            &files,
            &devices,
            Path::new("/data/images/a.elf"),
            None,
            Some(b"env=A=1"),
        );
        let c = |s: &str| CString::new(s).unwrap();
        let dirs: Vec<RootStep> = [
            "/run/j/data",
            "/run/j/data/images",
            "/run/j/dev",
            "/run/j/lib",
            "/run/j/lib/x",
            "/run/j/mayfly",
            "/run/j/usr",
            "/run/j/usr/bin",
        ]
        .iter()
        .map(|d| RootStep::Dir(c(d)))
        .collect();
        assert_eq!(steps[..dirs.len()], dirs[..]);
        let rest = &steps[dirs.len()..];
        assert_eq!(rest[0], RootStep::File(c("/run/j/usr/bin/qemu")));
        assert_eq!(
            rest[1],
            RootStep::Bind {
                src: c("/usr/bin/qemu"),
                dst: c("/run/j/usr/bin/qemu"),
                flags: 1
            }
        );
        assert_eq!(
            rest[5],
            RootStep::Bind {
                src: c("/dev/null"),
                dst: c("/run/j/dev/null"),
                flags: 4
            }
        );
        assert_eq!(
            rest[6],
            RootStep::Copy {
                src: c("/data/images/a.elf"),
                dst: c("/run/j/data/images/a.elf")
            }
        );
        assert_eq!(
            rest[7],
            RootStep::Write {
                dst: c("/run/j/mayfly/env"),
                bytes: b"env=A=1".to_vec()
            }
        );
        assert_eq!(rest.len(), 8);
    }

    #[test]
    fn qemu_here_needs_its_libraries_and_firmware() {
        let Ok(binary) = which("qemu-system-x86_64") else {
            eprintln!("skipped: no QEMU");
            return;
        };
        let found = QemuFiles::find(&binary).unwrap();
        let names: Vec<&Path> = found.files.iter().map(|b| b.path.as_path()).collect();
        assert_eq!(names[0], binary);
        assert!(names.iter().any(|p| p.ends_with("qboot.rom")), "{names:?}");
        assert!(
            names
                .iter()
                .filter(|p| p.file_name().is_some_and(is_library))
                .count()
                > 10,
            "{names:?}"
        );
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        std::env::split_paths(&std::env::var_os("PATH").ok_or(())?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or(())
    }

    #[test]
    fn an_initrd_is_bound_read_only_not_copied() {
        let c = |s: &str| CString::new(s).unwrap();
        let initrd = Bound {
            path: "/data/images/abc.pack".into(),
            flags: 8,
        };
        let steps = steps(
            Path::new("/run/j"),
            &[],
            &[],
            Path::new("/k/linux.elf"),
            Some(&initrd),
            None,
        );
        assert!(steps.contains(&RootStep::Bind {
            src: c("/data/images/abc.pack"),
            dst: c("/run/j/data/images/abc.pack"),
            flags: 8,
        }));
        assert!(steps.contains(&RootStep::File(c("/run/j/data/images/abc.pack"))));
        assert!(steps.contains(&RootStep::Dir(c("/run/j/data/images"))));
        assert!(!steps.iter().any(
            |s| matches!(s, RootStep::Copy { src, .. } if *src == c("/data/images/abc.pack"))
        ));
    }

    #[test]
    fn a_relative_image_never_makes_the_root_itself() {
        let steps = steps(
            Path::new("/run/j"),
            &[],
            &[],
            Path::new("target/images/a.elf"),
            None,
            None,
        );
        let root = CString::new("/run/j").unwrap();
        let root_slash = CString::new("/run/j/").unwrap();
        assert!(
            !steps
                .iter()
                .any(|s| matches!(s, RootStep::Dir(d) if *d == root || *d == root_slash)),
            "{steps:?}"
        );
    }
}
