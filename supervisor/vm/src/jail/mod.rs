//! The jail around QEMU, after Firecracker's jailer: the guest is hostile,
//! and so, once it has escaped into it, is QEMU.
//!
//! Every QEMU starts with an empty environment and only its own
//! descriptors (stdin `/dev/null`, the console, stderr, the NIC). Where
//! the host allows, also (each part detected once, at start):
//!
//! - **identity**: a uid and gid of its own from a high range when the
//!   host runs as root (VMs cannot signal or trace each other), else the
//!   host's own user inside a user namespace;
//! - **namespaces**: new mount, pid (QEMU is its pid 1), network, IPC and
//!   UTS namespaces;
//! - **root**: a read-only tmpfs root holding only QEMU's binary,
//!   libraries and firmware, `/dev/null`, `/dev/urandom` (`/dev/kvm`), and
//!   private copies of the image and of the environment file;
//! - **seccomp**: QEMU's own sandbox ([`SANDBOX`]);
//! - **cgroup**: a memory limit (the VM's memory plus [`OVERHEAD_MB`],
//!   and [`OVERHEAD_PER_VCPU_MB`] for each vCPU beyond the first) and a
//!   pids limit, per VM;
//! - **rlimits**: no core dumps, bounded descriptors, file size and (with
//!   a uid of its own) processes; and `no_new_privs`.
//!
//! [`JailMode::Require`] refuses to start unless every part is in force.
//!
//! Joining a cgroup v1 waits for an RCU grace period (about 12 ms here),
//! so a long-running host keeps VM processes cloned ahead, already in
//! their namespaces and cgroups ([`Jail::keep_ready`]); with one ready,
//! the jail adds about 1–2 ms to a cold start. Cgroups of a supervisor
//! that died are removed by the next one to start ([`Jail::detect`]).

mod cgroup;
mod plan;
pub mod root;
mod stubs;

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use thiserror::Error;

pub use cgroup::{Cgroups, Hierarchy, VmCgroup};
pub use plan::{Prepared, UidLease, VmNeeds, UID_BASE, UID_COUNT};

/// QEMU's `-sandbox` setting: its seccomp filter, denying obsolete system
/// calls, privilege changes, new processes and resource-control calls.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
/// Memory a VM's cgroup allows beyond the VM's RAM: QEMU's own (its
/// binary and libraries, TCG's translation cache, device state; about
/// 45 MB measured at the floor), the image copy and the environment.
pub const OVERHEAD_MB: u64 = 96;
/// What each vCPU beyond the first adds to [`OVERHEAD_MB`]: its thread's
/// stack and CPU state and, under multi-threaded TCG, its own region of
/// the translation cache (measured: about 3 MB for a second vCPU of a
/// CPU-bound guest; the rest is margin).
pub const OVERHEAD_PER_VCPU_MB: u64 = 8;
/// Tasks (processes and threads) a VM's cgroup allows: QEMU runs a
/// handful of threads, one more per vCPU (at most
/// [`crate::qemu::MAX_VCPUS`]).
pub const PIDS_MAX: u32 = 64;
// QEMU's own threads (main, RCU, a few helpers) and one per vCPU fit.
const _: () = assert!(PIDS_MAX >= 16 + crate::qemu::MAX_VCPUS);

/// The memory limit of the cgroup of a VM with `memory_mb` of RAM and
/// `vcpus` vCPUs, in bytes.
pub fn cgroup_memory_bytes(memory_mb: u32, vcpus: u32) -> u64 {
    let extra_vcpus = u64::from(vcpus.max(1) - 1);
    (u64::from(memory_mb) + OVERHEAD_MB + extra_vcpus * OVERHEAD_PER_VCPU_MB) << 20
}
/// Where the jail's tmpfs is mounted, in each QEMU's own mount namespace
/// only (so the directory stays empty for everyone else).
pub const ROOT_DIR_AS_ROOT: &str = "/run/mayfly-jail";

/// `--jail`: how much of the jail to insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JailMode {
    /// Every part, or refuse to start.
    Require,
    /// Every part the host allows.
    #[default]
    Auto,
    /// None: QEMU as the host's user, in the host's namespaces.
    Off,
}

impl FromStr for JailMode {
    type Err = String;
    fn from_str(s: &str) -> Result<JailMode, String> {
        match s {
            "require" => Ok(JailMode::Require),
            "auto" => Ok(JailMode::Auto),
            "off" => Ok(JailMode::Off),
            other => Err(format!(
                "--jail must be require, auto or off, not `{other}`"
            )),
        }
    }
}

impl fmt::Display for JailMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JailMode::Require => "require",
            JailMode::Auto => "auto",
            JailMode::Off => "off",
        })
    }
}

/// Why the jail cannot be set up as asked.
#[derive(Debug, Error)]
pub enum JailError {
    /// `--jail require` on a host that lacks some parts.
    #[error("--jail require: this host cannot jail QEMU fully: {0}")]
    Missing(String),
    /// Preparing one VM's jail failed.
    #[error("cannot prepare the VM's jail: {what}: {source}")]
    Prepare {
        /// What failed.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// QEMU's files could not be found for the root.
    #[error("cannot build the jail's root: {0}")]
    Root(String),
}

/// How QEMU's identity is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// A uid and gid of its own per VM (the host is root).
    PerVm,
    /// The host's own user, mapped into a new user namespace.
    UserNamespace {
        /// The host's uid.
        uid: u32,
        /// The host's gid.
        gid: u32,
    },
}

/// One part of the jail: in force, or why not.
pub type Part<T> = Result<T, String>;

/// The jail this host can give its VMs: detected once, shared by all.
#[derive(Debug)]
pub struct Jail {
    mode: JailMode,
    identity: Part<Identity>,
    namespaces: Part<()>,
    seccomp: Part<()>,
    cgroups: Part<Arc<Cgroups>>,
    root_dir: Part<PathBuf>,
    /// QEMU's files, per binary.
    files: Mutex<HashMap<PathBuf, Arc<root::QemuFiles>>>,
    uids: plan::UidPool,
    stubs: stubs::StubPool,
}

impl Jail {
    /// A shared [`Jail::off`], for callers that jail nothing.
    pub fn none() -> &'static Jail {
        static OFF: std::sync::LazyLock<Jail> = std::sync::LazyLock::new(Jail::off);
        &OFF
    }

    /// No jail at all (`--jail off`).
    pub fn off() -> Jail {
        fn off<T>() -> Part<T> {
            Err("--jail off".to_string())
        }
        Jail {
            mode: JailMode::Off,
            identity: off(),
            namespaces: off(),
            seccomp: off(),
            cgroups: off(),
            root_dir: off(),
            files: Mutex::new(HashMap::new()),
            uids: plan::UidPool::new(),
            stubs: stubs::StubPool::new(stubs::Recipe::default(), 0),
        }
    }

    /// Detects what this host allows for VMs started from `binary`; with
    /// [`JailMode::Require`], fails naming every part that is missing.
    /// Also removes cgroups left by earlier supervisors that died.
    pub fn detect(mode: JailMode, binary: &Path) -> Result<Jail, JailError> {
        if mode == JailMode::Off {
            return Ok(Jail::off());
        }
        let root_user = crate::sys::euid() == 0;
        let identity = if root_user {
            Ok(Identity::PerVm)
        } else {
            Ok(Identity::UserNamespace {
                uid: crate::sys::euid(),
                gid: crate::sys::egid(),
            })
        };
        let namespaces =
            crate::sys::child::probe_namespaces(plan::namespace_flags(identity.as_ref().ok()))
                .map_err(|e| format!("cannot create namespaces ({e})"));
        // Without the namespaces, a user namespace identity is none.
        let identity = match (&identity, &namespaces) {
            (Ok(Identity::UserNamespace { .. }), Err(why)) => Err(format!(
                "not root, and user namespaces are unavailable: {why}"
            )),
            _ => identity,
        };
        let root_dir = match &namespaces {
            Ok(()) => make_root_dir(root_user),
            Err(why) => Err(format!("needs a mount namespace: {why}")),
        };
        // The image is readable by root alone: a VM uid reads it only as
        // the private copy in the jail's root.
        let identity = match (&identity, &root_dir) {
            (Ok(Identity::PerVm), Err(why)) => Err(format!("needs the jail's root ({why})")),
            _ => identity,
        };
        // The two slow probes (QEMU's `-version`, and `ldd` on QEMU and its
        // module) run at once: a one-shot `mayfly run` waits for both.
        let (seccomp, found) = std::thread::scope(|scope| {
            let sandbox = scope.spawn(|| probe_sandbox(binary));
            let found = root_dir
                .is_ok()
                .then(|| root::QemuFiles::find(binary).map(Arc::new));
            let seccomp = sandbox
                .join()
                .unwrap_or_else(|_| Err("the -sandbox probe panicked".to_string()));
            (seccomp, found)
        });
        let cgroups = Cgroups::detect().map(Arc::new);
        if let Ok(cgroups) = &cgroups {
            cgroups.sweep();
        }
        let recipe = stubs::Recipe {
            namespaces: match &namespaces {
                Ok(()) => plan::namespace_flags(identity.as_ref().ok()),
                Err(_) => 0,
            },
            user_map: match (&identity, &namespaces) {
                (Ok(Identity::UserNamespace { uid, gid }), Ok(())) => Some((
                    CString::new(format!("{uid} {uid} 1")).expect("no NUL"),
                    CString::new(format!("{gid} {gid} 1")).expect("no NUL"),
                )),
                _ => None,
            },
            cgroups: cgroups.as_ref().ok().cloned(),
            pids_max: PIDS_MAX,
        };
        let mut jail = Jail {
            mode,
            identity,
            namespaces,
            seccomp,
            cgroups,
            root_dir,
            files: Mutex::new(HashMap::new()),
            uids: plan::UidPool::new(),
            stubs: stubs::StubPool::new(recipe, 0),
        };
        // Without QEMU's files there is no root, and no VM uid (which reads
        // the image only from it).
        match found {
            Some(Ok(files)) => {
                jail.files
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(binary.to_path_buf(), files);
            }
            Some(Err(e)) => {
                let e = JailError::Root(e);
                jail.root_dir = Err(e.to_string());
                if let Ok(Identity::PerVm) = jail.identity {
                    jail.identity = Err(format!("needs the jail's root ({e})"));
                }
            }
            None => {}
        }
        if mode == JailMode::Require {
            let missing: Vec<String> = jail
                .parts()
                .into_iter()
                .filter_map(|(name, state)| state.err().map(|why| format!("{name}: {why}")))
                .collect();
            if !missing.is_empty() {
                return Err(JailError::Missing(missing.join("; ")));
            }
        }
        Ok(jail)
    }

    /// Keeps `n` VM processes cloned ahead, in their namespaces and
    /// cgroups, so that a spawn does not wait for that (about 10 ms with
    /// cgroup v1). For a long-running host; 0 (the default) clones each on
    /// demand.
    pub fn keep_ready(&self, n: usize) {
        self.stubs.set_target(n);
    }

    /// The mode asked for.
    pub fn mode(&self) -> JailMode {
        self.mode
    }

    /// Each part's name and what it is, or why it is not in force.
    pub fn parts(&self) -> Vec<(&'static str, Part<String>)> {
        let identity = self.identity.as_ref().map(|id| match id {
            Identity::PerVm => format!(
                "a uid and gid of its own per VM ({}..{})",
                UID_BASE,
                UID_BASE + UID_COUNT
            ),
            Identity::UserNamespace { uid, .. } => {
                format!("the host's uid {uid}, in a user namespace")
            }
        });
        let rlimits = match &self.identity {
            Ok(Identity::PerVm) => "no core dumps, 256 descriptors, no file writes, 64 processes",
            _ => "no core dumps, 256 descriptors, no file writes",
        };
        vec![
            ("identity", identity.map_err(Clone::clone)),
            (
                "namespaces",
                self.namespaces
                    .clone()
                    .map(|()| "mount, pid, network, IPC, UTS".to_string()),
            ),
            (
                "root",
                self.root_dir
                    .as_ref()
                    .map(|d| {
                        format!(
                            "a read-only tmpfs at {} in the VM's mount namespace",
                            d.display()
                        )
                    })
                    .map_err(Clone::clone),
            ),
            (
                "seccomp",
                self.seccomp.clone().map(|()| format!("-sandbox {SANDBOX}")),
            ),
            (
                "cgroup",
                self.cgroups
                    .as_ref()
                    .map(|c| match c.hierarchy() {
                        Hierarchy::V2(dir) => {
                            format!("v2 memory and pids limits under {}", dir.display())
                        }
                        Hierarchy::V1 { memory, pids } => format!(
                            "v1 memory and pids limits under {} and {}",
                            memory.display(),
                            pids.display()
                        ),
                    })
                    .map_err(Clone::clone),
            ),
            (
                "rlimits",
                match self.mode {
                    JailMode::Off => Err("--jail off".into()),
                    _ => Ok(rlimits.to_string()),
                },
            ),
        ]
    }

    /// Logs which limits are in force and which are not, and why.
    pub fn log(&self) {
        for (part, state) in self.parts() {
            match state {
                Ok(what) => tracing::info!(jail = %self.mode, part, "in force: {what}"),
                Err(why) => tracing::info!(jail = %self.mode, part, "not in force: {why}"),
            }
        }
    }

    /// Whether QEMU gets `-sandbox`.
    pub fn seccomp(&self) -> bool {
        self.seccomp.is_ok()
    }

    fn files_for(&self, binary: &Path) -> Result<Arc<root::QemuFiles>, JailError> {
        let mut files = self.files.lock().expect("not poisoned");
        if let Some(found) = files.get(binary) {
            return Ok(found.clone());
        }
        let found = Arc::new(root::QemuFiles::find(binary).map_err(JailError::Root)?);
        files.insert(binary.to_path_buf(), found.clone());
        Ok(found)
    }
}

/// Whether `binary` accepts [`SANDBOX`] (it was built with seccomp): QEMU
/// checks `-sandbox` while parsing, before `-version` exits.
fn probe_sandbox(binary: &Path) -> Part<()> {
    let output = std::process::Command::new(binary)
        .args(["-sandbox", SANDBOX, "-version"])
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} does not accept -sandbox: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The empty directory each jail's tmpfs is mounted over.
fn make_root_dir(root_user: bool) -> Part<PathBuf> {
    let dir = if root_user {
        PathBuf::from(ROOT_DIR_AS_ROOT)
    } else {
        std::env::temp_dir().join(format!("mayfly-jail-{}", crate::sys::euid()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cgroup_allows_the_vms_memory_the_overhead_and_a_little_per_extra_vcpu() {
        assert_eq!(cgroup_memory_bytes(128, 1), (128 + OVERHEAD_MB) << 20);
        assert_eq!(cgroup_memory_bytes(128, 0), (128 + OVERHEAD_MB) << 20);
        assert_eq!(
            cgroup_memory_bytes(3538, 2),
            (3538 + OVERHEAD_MB + OVERHEAD_PER_VCPU_MB) << 20
        );
        assert_eq!(
            cgroup_memory_bytes(10240, 6),
            (10240 + OVERHEAD_MB + 5 * OVERHEAD_PER_VCPU_MB) << 20
        );
    }
}
