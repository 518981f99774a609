//! One VM's jail, planned: its stub and what the stub does ([`LateSpec`]) from what
//! the host allows, with the VM's cgroup and uid held until it is reaped.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{cgroup_memory_bytes, root, Identity, Jail, JailError};
use crate::sys::child::{self, LateSpec, RootSpec, Stub};

/// The first uid (and gid) given to VMs when the host is root: far above
/// any user's or container's range, so no file on the host belongs to it.
pub const UID_BASE: u32 = 1_800_000_000;
/// How many VM uids there are.
pub const UID_COUNT: u32 = 65_536;
/// Descriptors QEMU may hold.
const NOFILE: u64 = 256;
/// Processes and threads per VM uid (RLIMIT_NPROC counts per uid, so it
/// is set only when the uid is the VM's own).
const NPROC: u64 = 64;

/// The `CLONE_NEW*` flags for `identity`.
pub fn namespace_flags(identity: Option<&Identity>) -> libc::c_int {
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if matches!(identity, Some(Identity::UserNamespace { .. })) {
        flags |= libc::CLONE_NEWUSER;
    }
    flags
}

/// The VM uids in use in this process.
#[derive(Debug, Clone)]
pub struct UidPool {
    used: Arc<Mutex<(BTreeSet<u32>, u32)>>,
}

/// A VM uid, free again when dropped (once its QEMU is reaped).
#[derive(Debug)]
pub struct UidLease {
    pool: UidPool,
    offset: u32,
}

impl UidLease {
    /// The uid (also used as the gid).
    pub fn uid(&self) -> u32 {
        UID_BASE + self.offset
    }
}

impl Drop for UidLease {
    fn drop(&mut self) {
        self.pool
            .used
            .lock()
            .expect("not poisoned")
            .0
            .remove(&self.offset);
    }
}

impl UidPool {
    /// An empty pool. Each process starts at its own place in the range
    /// (from its pid), so that two supervisors on one host rarely pick the
    /// same uid.
    pub fn new() -> UidPool {
        let start = std::process::id().wrapping_mul(4099) % UID_COUNT;
        UidPool {
            used: Arc::new(Mutex::new((BTreeSet::new(), start))),
        }
    }

    /// The next free uid after the last one given (not the lowest free,
    /// so that a uid is not reused at once).
    pub fn lease(&self) -> Option<UidLease> {
        let mut guard = self.used.lock().expect("not poisoned");
        let (used, next) = &mut *guard;
        for i in 0..UID_COUNT {
            let offset = (*next + i) % UID_COUNT;
            if used.insert(offset) {
                *next = (offset + 1) % UID_COUNT;
                return Some(UidLease {
                    pool: self.clone(),
                    offset,
                });
            }
        }
        None
    }
}

impl Default for UidPool {
    fn default() -> UidPool {
        UidPool::new()
    }
}

/// One VM's jail, ready to spawn.
#[derive(Debug)]
pub struct Prepared {
    /// The VM's process, not yet QEMU.
    pub stub: Stub,
    /// What it does to become QEMU.
    pub late: LateSpec,
    /// The VM's cgroup: remove it once QEMU is reaped.
    pub cgroup: Option<super::VmCgroup>,
    /// The VM's uid: give it back once QEMU is reaped.
    pub uid: Option<UidLease>,
    /// More descriptors for QEMU (after stdout, stderr and the NIC), kept
    /// open until the spawn.
    pub fds: Vec<OwnedFd>,
}

/// What one VM needs.
#[derive(Debug)]
pub struct VmNeeds<'a> {
    /// QEMU, an absolute path.
    pub binary: &'a Path,
    /// Its arguments, without the binary.
    pub args: &'a [std::ffi::OsString],
    /// The image.
    pub image: &'a Path,
    /// The initrd (a Linux function's pack), if any: an absolute path,
    /// readable by everyone (the VM's uid reads it through a bind mount).
    pub initrd: Option<&'a Path>,
    /// RAM, in MB.
    pub memory_mb: u32,
    /// Virtual CPUs (each a QEMU thread).
    pub vcpus: u32,
    /// Whether QEMU uses KVM.
    pub kvm: bool,
    /// The environment file's content, if any.
    pub env: Option<&'a [u8]>,
}

fn c_string(bytes: &[u8]) -> CString {
    CString::new(bytes).expect("no NUL in paths and arguments")
}

impl Jail {
    /// Where QEMU reads the environment file (`-fw_cfg ...,file=`): in the
    /// jail's root, or an inherited memfd when there is none.
    pub fn env_path(&self) -> &'static str {
        match self.root_dir {
            Ok(_) => root::ENV_FILE,
            Err(_) => "/dev/fd/4",
        }
    }

    /// Plans one VM's jail: takes a uid, creates its cgroup, lists its
    /// root.
    pub fn prepare(&self, needs: &VmNeeds<'_>) -> Result<Prepared, JailError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |source| JailError::Prepare { what, source }
        };
        let mut fds = Vec::new();
        let mut root = None;
        if let (Err(_), Some(env)) = (&self.root_dir, needs.env) {
            fds.push(crate::sys::memfd_with(env).map_err(io("write the environment"))?);
        }
        let uid = match &self.identity {
            Ok(Identity::PerVm) => Some(self.uids.lease().ok_or_else(|| JailError::Prepare {
                what: "take a VM uid".into(),
                source: std::io::Error::from_raw_os_error(libc::EAGAIN),
            })?),
            _ => None,
        };
        let identity = uid.as_ref().map(|lease| child::Identity {
            uid: lease.uid(),
            gid: lease.uid(),
            group: if needs.kvm {
                crate::sys::group_needed(Path::new("/dev/kvm"))
            } else {
                None
            },
        });
        if let Ok(dir) = &self.root_dir {
            let files = self.files_for(needs.binary)?;
            let devices = root::devices(needs.kvm);
            let image_len = std::fs::metadata(needs.image).map(|m| m.len()).unwrap_or(0);
            let initrd = needs.initrd.map(|path| root::Bound {
                path: path.to_path_buf(),
                flags: crate::sys::mount_flags(path).unwrap_or(0)
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC,
            });
            root = Some(RootSpec {
                dir: c_string(dir.as_os_str().as_bytes()),
                tmpfs_options: c_string(
                    format!("size={},mode=755,nr_inodes=4096", image_len + (1 << 20)).as_bytes(),
                ),
                steps: root::steps(
                    dir,
                    &files.files,
                    &devices,
                    needs.image,
                    initrd.as_ref(),
                    needs.env,
                ),
            });
        }
        let ready = self.stubs.take().map_err(|e| JailError::Prepare {
            what: "clone the VM's process".into(),
            source: std::io::Error::other(e),
        })?;
        if let Some(cgroup) = &ready.cgroup {
            let bytes = cgroup_memory_bytes(needs.memory_mb, needs.vcpus);
            cgroup
                .set_memory_limit(bytes)
                .map_err(io("set the VM's memory limit"))?;
        }
        let jailed = self.mode != super::JailMode::Off;
        let mut rlimits = Vec::new();
        if jailed {
            rlimits.push((libc::RLIMIT_CORE as libc::c_int, 0));
            rlimits.push((libc::RLIMIT_NOFILE as libc::c_int, NOFILE));
            rlimits.push((libc::RLIMIT_FSIZE as libc::c_int, 0));
            if identity.is_some() {
                rlimits.push((libc::RLIMIT_NPROC as libc::c_int, NPROC));
            }
        }
        let program = c_string(needs.binary.as_os_str().as_bytes());
        let mut argv = vec![program.clone()];
        argv.extend(needs.args.iter().map(|a| c_string(a.as_bytes())));
        let late = LateSpec {
            program,
            argv,
            root,
            rlimits,
            identity,
            no_new_privs: jailed,
        };
        Ok(Prepared {
            stub: ready.stub,
            late,
            cgroup: ready.cgroup,
            uid,
            fds,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_and_come_back() {
        let pool = UidPool::new();
        let a = pool.lease().unwrap();
        let b = pool.lease().unwrap();
        assert_ne!(a.uid(), b.uid());
        assert!((UID_BASE..UID_BASE + UID_COUNT).contains(&a.uid()));
        let freed = a.uid();
        drop(a);
        assert!(!pool.used.lock().unwrap().0.contains(&(freed - UID_BASE)));
    }

    #[test]
    fn user_namespaces_only_without_root() {
        let base = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS;
        assert_eq!(namespace_flags(Some(&Identity::PerVm)), base);
        assert_eq!(
            namespace_flags(Some(&Identity::UserNamespace {
                uid: 1000,
                gid: 1000
            })),
            base | libc::CLONE_NEWUSER
        );
    }
}
