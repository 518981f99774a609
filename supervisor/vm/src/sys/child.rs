//! The VM's process: cloned (into new namespaces when jailed), set up with
//! raw system calls only, then `execve`d with an empty environment.
//!
//! Between `clone` and `execve` the child is a copy of a multi-threaded
//! process with one thread: it may not allocate, take locks or call libc
//! functions that assume the other threads exist (glibc's `setuid` family
//! signals every thread it knows of, so the raw system calls are used).
//!
//! The child starts as a [`Stub`]: cloned into its namespaces, it joins
//! its cgroup ([`EarlySpec`]) and waits. Joining a cgroup v1 costs an RCU
//! grace period (about 10 ms here), so the host clones stubs ahead of
//! need. Used, a stub is sent the rest ([`LateSpec`], as flat records it
//! reads without allocating) with its descriptors, builds its root, drops
//! its privileges and executes QEMU. A failing step is reported as (step,
//! errno), through the stub's socket before it is used and through a
//! close-on-exec pipe after.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use super::check;

mod inside;

/// One change to the jail's root, done in the child's mount namespace.
/// Paths are absolute paths that already include the root directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootStep {
    /// A directory (mode 0755).
    Dir(CString),
    /// An empty file, to bind a file over.
    File(CString),
    /// `src` bound over `dst`, then made read-only with `flags` (the
    /// source mount's own `MS_NOSUID`/`MS_NODEV`/`MS_NOEXEC`, which a
    /// remount inside a user namespace must keep).
    Bind {
        /// What is bound.
        src: CString,
        /// Where.
        dst: CString,
        /// Extra remount flags.
        flags: libc::c_ulong,
    },
    /// A new file `dst` (mode 0400, owned by the VM's uid) holding a copy
    /// of `src`, which the VM's uid may not be able to read itself.
    Copy {
        /// The file copied.
        src: CString,
        /// The copy.
        dst: CString,
    },
    /// A new file `dst` (mode 0400, owned by the VM's uid) holding `bytes`.
    Write {
        /// The file.
        dst: CString,
        /// Its content.
        bytes: Vec<u8>,
    },
}

/// The minimal root: a tmpfs over `dir`, filled by `steps`, then made the
/// root with `pivot_root` and remounted read-only.
#[derive(Debug, Clone)]
pub struct RootSpec {
    /// An existing empty directory the tmpfs is mounted over (in the
    /// child's mount namespace only).
    pub dir: CString,
    /// The tmpfs's mount options (`size=`, `mode=`).
    pub tmpfs_options: CString,
    /// What the root holds.
    pub steps: Vec<RootStep>,
}

/// The uid and gid the program runs as, and its supplementary groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: libc::uid_t,
    /// Group id.
    pub gid: libc::gid_t,
    /// One supplementary group (the group of `/dev/kvm`), if any.
    pub group: Option<libc::gid_t>,
}

/// What a stub does as soon as it is cloned, before it waits to be used:
/// everything that is slow or that must precede the VM's first
/// instruction (its namespaces, its cgroup).
#[derive(Debug, Default)]
pub struct EarlySpec {
    /// `CLONE_NEW*` flags.
    pub namespaces: libc::c_int,
    /// With `CLONE_NEWUSER`: the host uid and gid mapped to themselves.
    pub user_map: Option<(CString, CString)>,
    /// `cgroup.procs` files the child writes itself into.
    pub cgroup_procs: Vec<CString>,
}

/// What a stub does once it is used, up to executing the program.
#[derive(Debug)]
pub struct LateSpec {
    /// The program, an absolute path (as seen after the root change).
    pub program: CString,
    /// Its arguments, the program's name first (at most 120).
    pub argv: Vec<CString>,
    /// The minimal root (needs `CLONE_NEWNS`).
    pub root: Option<RootSpec>,
    /// (resource, limit) pairs set as both soft and hard limits.
    pub rlimits: Vec<(libc::c_int, u64)>,
    /// Who the program runs as; `None` keeps the parent's ids.
    pub identity: Option<Identity>,
    /// `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
}

/// The step of the child's set-up that failed, by its number.
pub const STEPS: &[&str] = &[
    "write its user namespace's maps",
    "set its parent-death signal",
    "notice that the supervisor died",
    "join its cgroup",
    "receive its VM",
    "open /dev/null",
    "set up its descriptors",
    "make its mounts private",
    "mount its root tmpfs",
    "populate its root",
    "pivot into its root",
    "make its root read-only",
    "set its resource limits",
    "change its uid and gid",
    "set no_new_privs",
    "close inherited descriptors",
    "execute QEMU",
];

/// Why a child could not be started.
#[derive(Debug)]
pub struct SpawnFailure {
    /// What failed, from [`STEPS`] (or "clone" and friends in the parent).
    pub step: &'static str,
    /// The OS error.
    pub error: io::Error,
}

/// A started child: its pid (in this process's pid namespace) and a pidfd.
#[derive(Debug)]
pub struct Spawned {
    /// The pid.
    pub pid: libc::pid_t,
    /// A pidfd, readable once the child exited.
    pub pidfd: OwnedFd,
}

/// A pidfd of this process, which children poll to notice that it died
/// before their `PR_SET_PDEATHSIG` took effect (in a new pid namespace
/// `getppid` says 0, so it cannot tell).
fn own_pidfd() -> io::Result<RawFd> {
    static OWN: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    match OWN.get_or_init(|| pidfd_open(std::process::id() as libc::pid_t).map_err(errno_of)) {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
    }
}

fn errno_of(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `pidfd_open(2)`, close-on-exec.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is fresh and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Reaps `pid` if it exited: its raw wait status, or `None` while it runs.
pub fn try_reap(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into a live c_int.
    let rc = check(unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) })?;
    Ok((rc == pid).then_some(status))
}

/// Reaps `pid`, blocking until it exits.
pub fn reap_blocking(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into a live c_int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(status);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Tags of the records a stub is sent (see [`encode`]).
mod tag {
    pub const ROOT: u8 = 1;
    pub const DIR: u8 = 2;
    pub const FILE: u8 = 3;
    pub const BIND: u8 = 4;
    pub const COPY: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const PIVOT: u8 = 7;
    pub const RLIMIT: u8 = 8;
    pub const ID: u8 = 9;
    pub const NNP: u8 = 10;
    pub const PROGRAM: u8 = 11;
    pub const ARG: u8 = 12;
}

/// The most arguments a program is given.
pub const MAX_ARGS: usize = 120;
/// The largest message a stub reads.
const MESSAGE_MAX: usize = 64 * 1024;
/// The most descriptors a stub is given.
const FDS_MAX: usize = 8;
/// What a stub says when it is ready to be used.
const READY: u32 = u32::MAX;

fn record(out: &mut Vec<u8>, tag: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.push(tag);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

/// `late` as the flat records a stub reads without allocating: a tag, a
/// length, then the fields (strings with their NUL). The identity comes
/// first (the root's private files are created for it), the program last.
pub fn encode(late: &LateSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    if let Some(id) = late.identity {
        let group = id.group.unwrap_or(u32::MAX);
        let has = u32::from(id.group.is_some());
        let fields = [
            id.uid.to_ne_bytes(),
            id.gid.to_ne_bytes(),
            has.to_ne_bytes(),
            group.to_ne_bytes(),
        ];
        record(&mut out, tag::ID, &[&fields.concat()]);
    }
    if let Some(root) = &late.root {
        record(
            &mut out,
            tag::ROOT,
            &[
                root.dir.as_bytes_with_nul(),
                root.tmpfs_options.as_bytes_with_nul(),
            ],
        );
        for step in &root.steps {
            match step {
                RootStep::Dir(p) => record(&mut out, tag::DIR, &[p.as_bytes_with_nul()]),
                RootStep::File(p) => record(&mut out, tag::FILE, &[p.as_bytes_with_nul()]),
                RootStep::Bind { src, dst, flags } => record(
                    &mut out,
                    tag::BIND,
                    &[
                        &flags.to_ne_bytes(),
                        src.as_bytes_with_nul(),
                        dst.as_bytes_with_nul(),
                    ],
                ),
                RootStep::Copy { src, dst } => record(
                    &mut out,
                    tag::COPY,
                    &[src.as_bytes_with_nul(), dst.as_bytes_with_nul()],
                ),
                RootStep::Write { dst, bytes } => {
                    record(&mut out, tag::WRITE, &[dst.as_bytes_with_nul(), bytes])
                }
            }
        }
        record(&mut out, tag::PIVOT, &[]);
    }
    for &(resource, limit) in &late.rlimits {
        record(
            &mut out,
            tag::RLIMIT,
            &[&resource.to_ne_bytes(), &limit.to_ne_bytes()],
        );
    }
    if late.no_new_privs {
        record(&mut out, tag::NNP, &[]);
    }
    record(&mut out, tag::PROGRAM, &[late.program.as_bytes_with_nul()]);
    for arg in &late.argv {
        record(&mut out, tag::ARG, &[arg.as_bytes_with_nul()]);
    }
    out
}

/// A child cloned ahead of its use: in its namespaces and cgroup already,
/// waiting for [`Stub::go`]. Dropped unused, it is killed and reaped.
#[derive(Debug)]
pub struct Stub {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    control: Option<OwnedFd>,
}

impl Stub {
    /// Clones a stub and waits until it has carried out `early`.
    pub fn new(early: &EarlySpec) -> Result<Stub, SpawnFailure> {
        let parent = |step: &'static str| move |error| SpawnFailure { step, error };
        let parent_pidfd = own_pidfd().map_err(parent("open the supervisor's pidfd"))?;
        let (control, child_end) =
            super::seqpacket_pair().map_err(parent("make the stub's socket"))?;
        // Allocated here: the stub reads its message into its copy.
        let mut buffer = vec![0u8; MESSAGE_MAX];
        let flags = early.namespaces as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
        // SAFETY: clone without CLONE_VM and a null stack is fork(2) with
        // namespace flags: the child gets a copy of this address space and
        // continues on its copy of this stack. It runs only `stub_main`,
        // which never returns and makes only raw system calls on memory
        // prepared here (see the module's comment).
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        if pid < 0 {
            return Err(SpawnFailure {
                step: "clone",
                error: io::Error::last_os_error(),
            });
        }
        if pid == 0 {
            inside::stub_main(early, child_end.as_raw_fd(), parent_pidfd, &mut buffer);
        }
        drop(child_end);
        let mut stub = Stub {
            pid: pid as libc::pid_t,
            pidfd: None,
            control: Some(control),
        };
        let mut answer = [0u8; 8];
        let got = super::read(stub.control.as_ref().expect("set").as_fd(), &mut answer)
            .map_err(parent("hear from the stub"))?;
        let step = u32::from_ne_bytes(answer[..4].try_into().expect("4 bytes"));
        if got != answer.len() || step != READY {
            let errno = i32::from_ne_bytes(answer[4..].try_into().expect("4 bytes"));
            return Err(SpawnFailure {
                step: STEPS.get(step as usize).copied().unwrap_or("set itself up"),
                error: io::Error::from_raw_os_error(if got == 8 { errno } else { libc::EPIPE }),
            });
        }
        stub.pidfd = Some(pidfd_open(stub.pid).map_err(parent("open the child's pidfd"))?);
        Ok(stub)
    }

    /// The stub's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Sends the stub `late` and `fds` (its descriptors 1, 2, 3, ... in
    /// order) and returns once it has executed the program, or failed to.
    pub fn go(mut self, late: &LateSpec, fds: &[BorrowedFd<'_>]) -> Result<Spawned, SpawnFailure> {
        let parent = |step: &'static str| move |error| SpawnFailure { step, error };
        let message = encode(late);
        if message.len() > MESSAGE_MAX || fds.len() + 1 > FDS_MAX || late.argv.len() > MAX_ARGS {
            return Err(SpawnFailure {
                step: "describe the VM to its stub",
                error: io::Error::from_raw_os_error(libc::E2BIG),
            });
        }
        let (report_read, report_write) = super::pipe().map_err(parent("make the report pipe"))?;
        let mut all: Vec<BorrowedFd<'_>> = vec![report_write.as_fd()];
        all.extend_from_slice(fds);
        let control = self.control.take().expect("a stub is used once");
        super::send_with_fds(control.as_fd(), &message, &all)
            .map_err(parent("send the VM to its stub"))?;
        drop((control, report_write));
        let mut report = [0u8; 8];
        let mut got = 0;
        while got < report.len() {
            match super::read(report_read.as_fd(), &mut report[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if got == report.len() {
            let step = u32::from_ne_bytes(report[..4].try_into().expect("4 bytes")) as usize;
            let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
            // Dropping the stub reaps it.
            return Err(SpawnFailure {
                step: STEPS.get(step).copied().unwrap_or("set itself up"),
                error: io::Error::from_raw_os_error(errno),
            });
        }
        let pidfd = self.pidfd.take().expect("set when ready");
        let pid = self.pid;
        // Now QEMU: reaped by whoever holds the Spawned.
        self.pid = 0;
        Ok(Spawned { pid, pidfd })
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = reap_blocking(self.pid);
        }
    }
}

/// Clones a stub for `early` and uses it at once.
pub fn spawn(
    early: &EarlySpec,
    late: &LateSpec,
    fds: &[BorrowedFd<'_>],
) -> Result<Spawned, SpawnFailure> {
    Stub::new(early)?.go(late, fds)
}

/// Whether a child can be cloned into the namespaces `flags`: one is,
/// and exits at once.
pub fn probe_namespaces(flags: libc::c_int) -> io::Result<()> {
    let flags = flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: as in `spawn`: a fork with namespace flags; the child only
    // calls _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: _exit is async-signal-safe and ends the child.
        unsafe { libc::_exit(0) };
    }
    let status = reap_blocking(pid as libc::pid_t)?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other("the probe child failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(message: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = message;
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[1..5].try_into().unwrap()) as usize;
            out.push((rest[0], rest[5..5 + len].to_vec()));
            rest = &rest[5 + len..];
        }
        out
    }

    #[test]
    fn the_identity_comes_first_and_the_program_last() {
        let c = |s: &str| CString::new(s).unwrap();
        let late = LateSpec {
            program: c("/usr/bin/qemu"),
            argv: vec![c("/usr/bin/qemu"), c("-m")],
            root: Some(RootSpec {
                dir: c("/j"),
                tmpfs_options: c("size=1"),
                steps: vec![
                    RootStep::Dir(c("/j/d")),
                    RootStep::Write {
                        dst: c("/j/d/env"),
                        bytes: b"env=A=1".to_vec(),
                    },
                ],
            }),
            rlimits: vec![(libc::RLIMIT_CORE as libc::c_int, 0)],
            identity: Some(Identity {
                uid: 7,
                gid: 8,
                group: None,
            }),
            no_new_privs: true,
        };
        let got = records(&encode(&late));
        let tags: Vec<u8> = got.iter().map(|r| r.0).collect();
        assert_eq!(
            tags,
            [
                tag::ID,
                tag::ROOT,
                tag::DIR,
                tag::WRITE,
                tag::PIVOT,
                tag::RLIMIT,
                tag::NNP,
                tag::PROGRAM,
                tag::ARG,
                tag::ARG
            ]
        );
        assert_eq!(
            &got[0].1[..8],
            [7u32.to_ne_bytes(), 8u32.to_ne_bytes()].concat()
        );
        assert_eq!(got[1].1, b"/j\0size=1\0");
        assert_eq!(got[3].1, b"/j/d/env\0env=A=1");
        assert_eq!(got[9].1, b"-m\0");
    }

    #[test]
    fn a_stub_runs_a_program_and_reports_a_missing_one() {
        let c = |s: &str| CString::new(s).unwrap();
        let late = |program: &str| LateSpec {
            program: c(program),
            argv: vec![c(program)],
            root: None,
            rlimits: Vec::new(),
            identity: None,
            no_new_privs: true,
        };
        let (_r, w) = super::super::pipe().unwrap();
        let spawned = spawn(&EarlySpec::default(), &late("/bin/true"), &[w.as_fd()]).unwrap();
        let status = reap_blocking(spawned.pid).unwrap();
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        let failed = spawn(&EarlySpec::default(), &late("/nonexistent"), &[w.as_fd()]).unwrap_err();
        assert_eq!(failed.step, "execute QEMU");
        assert_eq!(failed.error.kind(), io::ErrorKind::NotFound);
    }
}
