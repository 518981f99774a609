//! Every raw system call of the xtask tasks, each behind a safe function
//! (the rest of the crate forbids `unsafe`).

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// Sends `SIGTERM` to our own child, which must not have been reaped yet
/// (so that its pid cannot name another process).
pub fn terminate(child: &Child) {
    // SAFETY: kill(2) touches no memory of ours; the pid is our unreaped
    // child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Makes this process a child subreaper: orphans of its descendants are
/// reparented to it (so that [`reap_with_peak_rss`] can reap them).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for our child `pid` and returns its peak RSS in KiB; `None` if
/// `pid` is not our child.
pub fn reap_with_peak_rss(pid: i32) -> Option<u64> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid for the kernel to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits only for `pid`; if it is not our child, wait4 fails
    // with ECHILD and writes nothing.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    (rc == pid).then_some(usage.ru_maxrss.max(0) as u64)
}

/// Has `command`'s child receive `SIGTERM` when this process dies.
pub fn terminate_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only prctl,
    // which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Has `command`'s child inherit descriptor `fd` as `as_fd` (without
/// close-on-exec). `fd` must stay open until the command is spawned, and
/// differ from `as_fd`.
pub fn inherit_fd(command: &mut Command, fd: RawFd, as_fd: RawFd) {
    // SAFETY: the closure runs between fork and exec and calls only dup2,
    // async-signal-safe, on integers captured by copy.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, as_fd) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
