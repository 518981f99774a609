//! The VM's process: cloned (into new namespaces when jailed), set up with
//! raw system calls only, then `execve`d with an empty environment.
//!
//! Between `clone` and `execve` the child is a copy of a multi-threaded
//! process with one thread: it may not allocate, take locks or call libc
//! functions that assume the other threads exist (glibc's `setuid` family
//! signals every thread it knows of, so the raw system calls are used).
//! Everything it needs is prepared by the parent in a [`ChildSpec`]; a
//! failing step is reported through a close-on-exec pipe as (step, errno).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use super::check;

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

/// Everything the child does, prepared by the parent.
#[derive(Debug)]
pub struct ChildSpec {
    /// The program, an absolute path (as seen after the root change).
    pub program: CString,
    /// Its arguments, the program's name first.
    pub argv: Vec<CString>,
    /// Descriptors the program gets as 1, 2, 3, 4...: `None` leaves that
    /// number closed. Each must be numbered above all targets.
    pub fds: Vec<Option<RawFd>>,
    /// `CLONE_NEW*` flags.
    pub namespaces: libc::c_int,
    /// With `CLONE_NEWUSER`: the host uid and gid mapped to themselves.
    pub user_map: Option<(CString, CString)>,
    /// `cgroup.procs` files the child writes itself into, first of all.
    pub cgroup_procs: Vec<CString>,
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

/// Starts the child described by `spec`; returns once it has executed
/// the program (or failed to).
pub fn spawn(spec: &ChildSpec) -> Result<Spawned, SpawnFailure> {
    let parent = |step: &'static str| move |error| SpawnFailure { step, error };
    let parent_pidfd = own_pidfd().map_err(parent("open the supervisor's pidfd"))?;
    let (report_read, report_write) = super::pipe().map_err(parent("make the report pipe"))?;
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let flags = spec.namespaces as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and a null stack is fork(2) with
    // namespace flags: the child gets a copy of this address space and
    // continues on its copy of this stack. It runs only `child_main`,
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
        child_main(spec, &argv, &envp, report_write.as_raw_fd(), parent_pidfd);
    }
    let pid = pid as libc::pid_t;
    drop(report_write);
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
        // The child failed before exec and has exited: reap it.
        let _ = reap_blocking(pid);
        let step = u32::from_ne_bytes(report[..4].try_into().expect("4 bytes")) as usize;
        let errno = i32::from_ne_bytes(report[4..].try_into().expect("4 bytes"));
        return Err(SpawnFailure {
            step: STEPS.get(step).copied().unwrap_or("set itself up"),
            error: io::Error::from_raw_os_error(errno),
        });
    }
    match pidfd_open(pid) {
        Ok(pidfd) => Ok(Spawned { pid, pidfd }),
        Err(error) => {
            // SAFETY: kill(2) on our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reap_blocking(pid);
            Err(SpawnFailure {
                step: "open the child's pidfd",
                error,
            })
        }
    }
}

/// Reports step `step` as failed with the current errno and exits.
fn fail(report: RawFd, step: usize) -> ! {
    // SAFETY: errno is thread-local and this is the only thread; write
    // and _exit are async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&(step as u32).to_ne_bytes());
        message[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(report, message.as_ptr().cast(), message.len());
        libc::_exit(127)
    }
}

fn step_name(name: &str) -> usize {
    STEPS.iter().position(|s| *s == name).expect("a known step")
}

/// Writes `bytes` into the file at `path` (which exists).
///
/// # Safety
/// Only in the child: raw system calls on caller-owned memory.
unsafe fn write_file(path: &CStr, bytes: &[u8]) -> bool {
    // SAFETY: path is NUL-terminated; bytes is valid for its length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize;
        libc::close(fd);
        ok
    }
}

/// A new file at `path`, 0400, owned by `owner`: its descriptor.
///
/// # Safety
/// Only in the child.
unsafe fn create_private(path: &CString, owner: Option<Identity>) -> libc::c_int {
    // SAFETY: path is NUL-terminated.
    unsafe {
        let fd = libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o400,
        );
        if fd >= 0 {
            if let Some(id) = owner {
                if libc::fchown(fd, id.uid, id.gid) != 0 {
                    libc::close(fd);
                    return -1;
                }
            }
        }
        fd
    }
}

/// Carries out one root step; false on failure (errno set).
///
/// # Safety
/// Only in the child, inside its own mount namespace.
unsafe fn root_step(step: &RootStep, owner: Option<Identity>) -> bool {
    // SAFETY: every pointer is a NUL-terminated CString or a slice the
    // parent prepared; the calls have no other memory effects.
    unsafe {
        match step {
            RootStep::Dir(path) => libc::mkdir(path.as_ptr(), 0o755) == 0,
            RootStep::File(path) => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                    0o444,
                );
                fd >= 0 && libc::close(fd) == 0
            }
            RootStep::Bind { src, dst, flags } => {
                libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ) == 0
                    && libc::mount(
                        std::ptr::null(),
                        dst.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                        std::ptr::null(),
                    ) == 0
            }
            RootStep::Copy { src, dst } => {
                let from = libc::open(src.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if from < 0 {
                    return false;
                }
                let to = create_private(dst, owner);
                if to < 0 {
                    libc::close(from);
                    return false;
                }
                let ok = loop {
                    let n = libc::sendfile(to, from, std::ptr::null_mut(), 1 << 30);
                    if n <= 0 {
                        break n == 0;
                    }
                };
                libc::close(from);
                libc::close(to);
                ok
            }
            RootStep::Write { dst, bytes } => {
                let fd = create_private(dst, owner);
                if fd < 0 {
                    return false;
                }
                let ok =
                    libc::write(fd, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize;
                libc::close(fd);
                ok
            }
        }
    }
}

/// The child, from `clone` to `execve`. Never returns.
fn child_main(
    spec: &ChildSpec,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: RawFd,
    parent_pidfd: RawFd,
) -> ! {
    let step = step_name;
    // SAFETY: this is the cloned child (see `spawn`): one thread, its own
    // copy of memory; every call below is a raw system call on memory the
    // parent prepared, and the function ends in execve or _exit.
    unsafe {
        if let Some((uid_map, gid_map)) = &spec.user_map {
            let ok = write_file(c"/proc/self/setgroups", b"deny")
                && write_file(c"/proc/self/uid_map", uid_map.as_bytes())
                && write_file(c"/proc/self/gid_map", gid_map.as_bytes());
            if !ok {
                fail(report, step("write its user namespace's maps"));
            }
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(report, step("set its parent-death signal"));
        }
        let mut poll = libc::pollfd {
            fd: parent_pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, 0) != 0 {
            *libc::__errno_location() = libc::ESRCH;
            fail(report, step("notice that the supervisor died"));
        }
        for procs in &spec.cgroup_procs {
            if !write_file(procs, b"0") {
                fail(report, step("join its cgroup"));
            }
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 {
            fail(report, step("open /dev/null"));
        }
        if libc::dup2(null, 0) < 0 {
            fail(report, step("set up its descriptors"));
        }
        for (i, fd) in spec.fds.iter().enumerate() {
            let target = i as libc::c_int + 1;
            let ok = match fd {
                Some(fd) => libc::dup2(*fd, target) >= 0,
                None => libc::close(target) == 0 || *libc::__errno_location() == libc::EBADF,
            };
            if !ok {
                fail(report, step("set up its descriptors"));
            }
        }
        if let Some(root) = &spec.root {
            let none = std::ptr::null();
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                none.cast(),
            ) != 0
            {
                fail(report, step("make its mounts private"));
            }
            if libc::mount(
                c"tmpfs".as_ptr(),
                root.dir.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                root.tmpfs_options.as_ptr().cast(),
            ) != 0
            {
                fail(report, step("mount its root tmpfs"));
            }
            for item in &root.steps {
                if !root_step(item, spec.identity) {
                    fail(report, step("populate its root"));
                }
            }
            // pivot_root(".", ".") stacks the old root under the new one,
            // where the detaching unmount removes it.
            if libc::chdir(root.dir.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                fail(report, step("pivot into its root"));
            }
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_BIND
                    | libc::MS_REMOUNT
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                none.cast(),
            ) != 0
            {
                fail(report, step("make its root read-only"));
            }
        }
        for &(resource, limit) in &spec.rlimits {
            let value = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(resource as _, &value) != 0 {
                fail(report, step("set its resource limits"));
            }
        }
        if let Some(id) = spec.identity {
            let groups: [libc::gid_t; 1] = [id.group.unwrap_or(id.gid)];
            let count = usize::from(id.group.is_some());
            if libc::syscall(libc::SYS_setgroups, count, groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setresgid, id.gid, id.gid, id.gid) != 0
                || libc::syscall(libc::SYS_setresuid, id.uid, id.uid, id.uid) != 0
            {
                fail(report, step("change its uid and gid"));
            }
        }
        if spec.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(report, step("set no_new_privs"));
        }
        // Everything above the program's descriptors closes at exec; the
        // report pipe stays usable until then.
        let first = spec.fds.len() as libc::c_uint + 1;
        if libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            fail(report, step("close inherited descriptors"));
        }
        libc::execve(spec.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(report, step("execute QEMU"))
    }
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
