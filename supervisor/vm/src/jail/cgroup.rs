//! One cgroup per VM, with a memory and a pids limit: cgroup v2 where this
//! process's cgroup offers both controllers, else the v1 `memory` and
//! `pids` hierarchies.
//!
//! Each VM's cgroup is `<parent>/mayfly/vm-<supervisor pid>-<n>`: created
//! before its QEMU runs (the child writes itself into it before exec) and
//! removed once QEMU is reaped. A supervisor that crashed leaves its
//! cgroups behind; the next one to start kills what is left in them and
//! removes them ([`Cgroups::sweep`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The directory under the supervisor's own cgroup that holds the VMs'.
pub const PARENT_NAME: &str = "mayfly";

/// Which hierarchy, and where the VMs' cgroups go in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: one directory.
    V2(PathBuf),
    /// cgroup v1: the memory and pids hierarchies' directories.
    V1 {
        /// Under the `memory` controller's mount.
        memory: PathBuf,
        /// Under the `pids` controller's mount.
        pids: PathBuf,
    },
}

impl Hierarchy {
    /// The per-VM limits as (file, value), per directory of a VM's cgroup.
    pub fn limits(&self, memory_bytes: u64, pids: u32) -> Vec<(PathBuf, &'static str, String)> {
        match self {
            Hierarchy::V2(dir) => vec![
                (dir.clone(), "memory.max", memory_bytes.to_string()),
                (dir.clone(), "memory.swap.max", "0".into()),
                (dir.clone(), "pids.max", pids.to_string()),
            ],
            Hierarchy::V1 { memory, pids: dir } => vec![
                (
                    memory.clone(),
                    "memory.limit_in_bytes",
                    memory_bytes.to_string(),
                ),
                (dir.clone(), "pids.max", pids.to_string()),
            ],
        }
    }

    /// The parent directories (one per hierarchy).
    pub fn parents(&self) -> Vec<&Path> {
        match self {
            Hierarchy::V2(dir) => vec![dir],
            Hierarchy::V1 { memory, pids } => vec![memory, pids],
        }
    }
}

/// One line of `/proc/self/mountinfo`: (mount root, mount point, fs type,
/// super options).
fn mount_entries(mountinfo: &str) -> impl Iterator<Item = (&str, &str, &str, &str)> {
    mountinfo.lines().filter_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        let fstype = right.next()?;
        let _source = right.next()?;
        let options = right.next().unwrap_or("");
        Some((*left.get(3)?, *left.get(4)?, fstype, options))
    })
}

/// This process's cgroup path in the hierarchy `wanted` (`""` for v2, or
/// a v1 controller's name), from `/proc/self/cgroup`.
fn own_path<'a>(proc_cgroup: &'a str, wanted: &str) -> Option<&'a str> {
    proc_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let matches = if wanted.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == wanted)
        };
        matches.then_some(path)
    })
}

/// Where this process's cgroup is in the mount of `mount_root` at
/// `mount_point`.
fn own_dir(mount_root: &str, mount_point: &str, own: &str) -> PathBuf {
    let relative = own
        .strip_prefix(mount_root)
        .unwrap_or(own)
        .trim_start_matches('/');
    Path::new(mount_point).join(relative)
}

/// The v2 directory of this process's cgroup, if a cgroup2 hierarchy is
/// mounted.
pub fn find_v2(mountinfo: &str, proc_cgroup: &str) -> Option<PathBuf> {
    let (root, point, _, _) = mount_entries(mountinfo).find(|e| e.2 == "cgroup2")?;
    Some(own_dir(root, point, own_path(proc_cgroup, "")?))
}

/// The v1 directory of this process's cgroup for `controller`, if that
/// controller's hierarchy is mounted.
pub fn find_v1(mountinfo: &str, proc_cgroup: &str, controller: &str) -> Option<PathBuf> {
    let (root, point, _, _) = mount_entries(mountinfo)
        .find(|e| e.2 == "cgroup" && e.3.split(',').any(|o| o == controller))?;
    Some(own_dir(root, point, own_path(proc_cgroup, controller)?))
}

/// Picks the hierarchy: v2 when its `cgroup.controllers` (as read by
/// `read`) lists memory and pids, else v1 with both controllers mounted.
/// The error says why neither can be used.
pub fn choose(
    mountinfo: &str,
    proc_cgroup: &str,
    read: impl Fn(&Path) -> Option<String>,
) -> Result<Hierarchy, String> {
    let mut why = Vec::new();
    match find_v2(mountinfo, proc_cgroup) {
        Some(dir) => {
            let controllers = read(&dir.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            if has("memory") && has("pids") {
                return Ok(Hierarchy::V2(dir.join(PARENT_NAME)));
            }
            why.push(format!(
                "cgroup v2 at {} offers [{}], not memory and pids",
                dir.display(),
                controllers.trim()
            ));
        }
        None => why.push("no cgroup v2 hierarchy is mounted".into()),
    }
    match (
        find_v1(mountinfo, proc_cgroup, "memory"),
        find_v1(mountinfo, proc_cgroup, "pids"),
    ) {
        (Some(memory), Some(pids)) => Ok(Hierarchy::V1 {
            memory: memory.join(PARENT_NAME),
            pids: pids.join(PARENT_NAME),
        }),
        (memory, _) => {
            let missing = if memory.is_none() { "memory" } else { "pids" };
            why.push(format!("no cgroup v1 {missing} hierarchy is mounted"));
            Err(why.join("; "))
        }
    }
}

/// The VMs' cgroups on this host.
#[derive(Debug)]
pub struct Cgroups {
    hierarchy: Hierarchy,
}

/// Numbers the VMs' cgroups of this process (for all its [`Cgroups`]).
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A VM's cgroup; removed by [`VmCgroup::remove`] or, failing that, when
/// dropped.
#[derive(Debug)]
pub struct VmCgroup {
    dirs: Vec<PathBuf>,
    /// Where its memory limit is written.
    memory_limit: PathBuf,
}

impl Cgroups {
    /// Finds the hierarchy from this process's mounts and cgroup and makes
    /// the `mayfly` parent directories (enabling the controllers for
    /// children under v2).
    pub fn detect() -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let hierarchy = choose(&mountinfo, &proc_cgroup, |p| {
            std::fs::read_to_string(p).ok()
        })?;
        for parent in hierarchy.parents() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            // The parent may exist (made by another user) without this
            // user being allowed to make cgroups in it.
            let probe = parent.join(format!("probe-{}", std::process::id()));
            std::fs::create_dir(&probe)
                .and_then(|()| std::fs::remove_dir(&probe))
                .map_err(|e| format!("cannot create cgroups under {}: {e}", parent.display()))?;
        }
        if let Hierarchy::V2(dir) = &hierarchy {
            let own = dir.parent().unwrap_or(dir);
            for (at, what) in [(own, "+memory +pids"), (dir.as_path(), "+memory +pids")] {
                std::fs::write(at.join("cgroup.subtree_control"), what).map_err(|e| {
                    format!(
                        "cannot enable memory and pids for the cgroups under {} ({e}); start mayfly in a delegated cgroup of its own",
                        at.display()
                    )
                })?;
            }
        }
        Ok(Cgroups { hierarchy })
    }

    /// The hierarchy in use.
    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// A new cgroup with these limits (the memory limit may be set later,
    /// see [`VmCgroup::set_memory_limit`]); its `cgroup.procs` files are
    /// for the child to join.
    pub fn create(
        &self,
        memory_bytes: Option<u64>,
        pids: u32,
    ) -> io::Result<(VmCgroup, Vec<PathBuf>)> {
        let name = format!(
            "vm-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let memory_limit = match &self.hierarchy {
            Hierarchy::V2(dir) => dir.join(&name).join("memory.max"),
            Hierarchy::V1 { memory, .. } => memory.join(&name).join("memory.limit_in_bytes"),
        };
        let mut cgroup = VmCgroup {
            dirs: Vec::new(),
            memory_limit,
        };
        for parent in self.hierarchy.parents() {
            let dir = parent.join(&name);
            std::fs::create_dir(&dir)?;
            cgroup.dirs.push(dir);
        }
        let dir_of = |parent: &Path| parent.join(&name);
        for (parent, file, value) in self.hierarchy.limits(memory_bytes.unwrap_or(0), pids) {
            if memory_bytes.is_none() && file.starts_with("memory.") && file != "memory.swap.max" {
                continue;
            }
            let path = dir_of(&parent).join(file);
            // memory.swap.max is absent where swap accounting is off.
            if file == "memory.swap.max" && !path.exists() {
                continue;
            }
            std::fs::write(&path, &value)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        let procs = cgroup.dirs.iter().map(|d| d.join("cgroup.procs")).collect();
        Ok((cgroup, procs))
    }

    /// Kills what is left in cgroups of supervisors that are gone and
    /// removes those cgroups; returns how many.
    pub fn sweep(&self) -> usize {
        let mut removed = 0;
        for parent in self.hierarchy.parents() {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(owner) = owner_pid(&name.to_string_lossy()) else {
                    continue;
                };
                if owner == std::process::id() as i32 || crate::sys::is_alive(owner) {
                    continue;
                }
                let dir = entry.path();
                kill_members(&dir);
                if remove_dir_patiently(&dir).is_ok() {
                    removed += 1;
                    tracing::warn!(cgroup = %dir.display(), "removed a cgroup left by a previous run");
                }
            }
        }
        removed
    }
}

/// The supervisor pid in a VM cgroup's name `vm-<pid>-<n>`.
pub fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("vm-")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn kill_members(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = crate::sys::kill(pid, crate::sys::Signal::Kill);
    }
}

/// `rmdir`, retried for a moment while the kernel still counts a process
/// that has just exited.
fn remove_dir_patiently(dir: &Path) -> io::Result<()> {
    let mut last = None;
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
            Err(e) => return Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(if attempt < 10 {
            1
        } else {
            10
        }));
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EBUSY)))
}

impl VmCgroup {
    /// Sets the memory limit.
    pub fn set_memory_limit(&self, bytes: u64) -> io::Result<()> {
        std::fs::write(&self.memory_limit, bytes.to_string())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.memory_limit.display())))
    }

    /// Removes the cgroup; its processes must be gone (reaped).
    pub fn remove(mut self) {
        self.remove_now();
    }

    fn remove_now(&mut self) {
        for dir in self.dirs.drain(..) {
            if let Err(error) = remove_dir_patiently(&dir) {
                tracing::warn!(cgroup = %dir.display(), %error, "cannot remove a VM's cgroup");
            }
        }
    }
}

impl Drop for VmCgroup {
    fn drop(&mut self) {
        if !self.dirs.is_empty() {
            for dir in &self.dirs {
                kill_members(dir);
            }
            self.remove_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
1 0 0:1 / / rw,relatime - overlay overlay rw
30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:36 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const PROC_CGROUP_V1: &str = "12:pids:/\n5:memory:/\n0::/\n";

    #[test]
    fn an_empty_v2_hierarchy_falls_back_to_v1() {
        let read = |p: &Path| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/unified/cgroup.controllers"));
            Some(String::new())
        };
        assert_eq!(
            choose(MOUNTINFO_V1, PROC_CGROUP_V1, read).unwrap(),
            Hierarchy::V1 {
                memory: "/sys/fs/cgroup/memory/mayfly".into(),
                pids: "/sys/fs/cgroup/pids/mayfly".into(),
            }
        );
    }

    #[test]
    fn v2_with_both_controllers_is_preferred() {
        let mountinfo = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let proc_cgroup = "0::/system.slice/mayfly.service\n";
        let read = |_: &Path| Some("cpuset cpu io memory pids\n".to_string());
        assert_eq!(
            choose(mountinfo, proc_cgroup, read).unwrap(),
            Hierarchy::V2("/sys/fs/cgroup/system.slice/mayfly.service/mayfly".into())
        );
    }

    #[test]
    fn a_cgroup_namespace_root_is_stripped() {
        let mountinfo =
            "35 30 0:31 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                         39 30 0:35 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";
        let proc_cgroup = "3:memory:/docker/abc/x\n4:pids:/docker/abc/x\n";
        assert_eq!(
            find_v1(mountinfo, proc_cgroup, "memory").unwrap(),
            PathBuf::from("/sys/fs/cgroup/memory/x")
        );
    }

    #[test]
    fn neither_hierarchy_says_why() {
        let mountinfo = "35 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let err = choose(mountinfo, "5:memory:/\n", |_| None).unwrap_err();
        assert!(err.contains("no cgroup v2"), "{err}");
        assert!(err.contains("no cgroup v1 pids"), "{err}");
    }

    #[test]
    fn limits_per_hierarchy() {
        let v1 = Hierarchy::V1 {
            memory: "/m".into(),
            pids: "/p".into(),
        };
        assert_eq!(
            v1.limits(192 << 20, 32),
            vec![
                (
                    PathBuf::from("/m"),
                    "memory.limit_in_bytes",
                    "201326592".to_string()
                ),
                (PathBuf::from("/p"), "pids.max", "32".to_string()),
            ]
        );
        let v2 = Hierarchy::V2("/c".into());
        let files: Vec<&str> = v2.limits(1, 2).iter().map(|l| l.1).collect();
        assert_eq!(files, ["memory.max", "memory.swap.max", "pids.max"]);
    }

    #[test]
    fn owners_are_read_from_names() {
        assert_eq!(owner_pid("vm-1234-7"), Some(1234));
        assert_eq!(owner_pid("vm-1234"), None);
        assert_eq!(owner_pid("other"), None);
    }
}
