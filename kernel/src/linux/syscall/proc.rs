//! The process and its identity: exit, ids, limits, the thread pointer,
//! signals as far as a single-threaded program needs them, futex.

use mayfly_linux::abi;
use mayfly_linux::errno::{Errno, SysResult};
use mayfly_proto::exit::signal;

use super::Args;
use crate::linux::entry;
use crate::linux::process::{self, Process};

/// The program's pid (and tid: one thread).
pub const PID: u64 = 1;
/// Lambda's sandbox user and group.
const UID: u64 = 993;
const GID: u64 = 990;

/// exit: with one thread, the same as exit_group.
pub fn exit(p: &mut Process, a: &Args) -> SysResult {
    exit_group(p, a)
}

/// exit_group: everything written reaches the host, then the VM ends.
pub fn exit_group(p: &mut Process, a: &Args) -> SysResult {
    p.net.flush();
    process::exited(a[0] as u8)
}

/// getpid.
pub fn getpid(_: &mut Process, _: &Args) -> SysResult {
    Ok(PID)
}

/// gettid.
pub fn gettid(_: &mut Process, _: &Args) -> SysResult {
    Ok(PID)
}

/// getppid: the kernel, as far as the program can tell.
pub fn getppid(_: &mut Process, _: &Args) -> SysResult {
    Ok(0)
}

/// getuid and geteuid.
pub fn getuid(_: &mut Process, _: &Args) -> SysResult {
    Ok(UID)
}

/// getgid and getegid.
pub fn getgid(_: &mut Process, _: &Args) -> SysResult {
    Ok(GID)
}

/// set_tid_address: kept; returns the tid.
pub fn set_tid_address(p: &mut Process, a: &Args) -> SysResult {
    p.clear_child_tid = a[0];
    Ok(PID)
}

/// set_robust_list: accepted (there is no other thread to wake at exit).
pub fn set_robust_list(_: &mut Process, _: &Args) -> SysResult {
    Ok(0)
}

/// arch_prctl: the FS and GS bases.
pub fn arch_prctl(p: &mut Process, a: &Args) -> SysResult {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    match a[0] {
        ARCH_SET_FS => {
            if a[1] >= 0x0000_8000_0000_0000 {
                return Err(Errno::EPERM);
            }
            entry::set_fs_base(a[1]);
            Ok(0)
        }
        ARCH_GET_FS => {
            p.write_user(a[1], &entry::fs_base().to_le_bytes())?;
            Ok(0)
        }
        ARCH_SET_GS | ARCH_GET_GS => Err(Errno::EINVAL),
        _ => Err(Errno::EINVAL),
    }
}

/// uname: Linux as Lambda reports it.
pub fn uname(p: &mut Process, a: &Args) -> SysResult {
    let bytes = abi::utsname_bytes(
        "Linux",
        "169.254.100.1",
        "5.10.0-mayfly",
        "#1 SMP Mayfly",
        "x86_64",
        "(none)",
    );
    p.write_user(a[0], &bytes)?;
    Ok(0)
}

/// umask.
pub fn umask(p: &mut Process, a: &Args) -> SysResult {
    let old = p.umask;
    p.umask = (a[0] & 0o777) as u32;
    Ok(u64::from(old))
}

const RLIMIT_STACK: u64 = 3;
const RLIMIT_NOFILE: u64 = 7;
const RLIM_INFINITY: u64 = u64::MAX;

fn limit(p: &Process, resource: u64) -> SysResult<(u64, u64)> {
    Ok(match resource {
        RLIMIT_STACK => (8 << 20, RLIM_INFINITY),
        RLIMIT_NOFILE => (1024, 1024),
        // RLIMIT_AS, DATA, RSS, MEMLOCK: the VM's memory bounds them.
        2 | 5 | 9 | 8 => {
            let bytes = u64::from(p.config.memory_mb) << 20;
            (bytes, bytes)
        }
        r if r < 16 => (RLIM_INFINITY, RLIM_INFINITY),
        _ => return Err(Errno::EINVAL),
    })
}

/// Writes a `struct rlimit` (current, maximum) for `resource` at `addr`.
fn write_limit(p: &mut Process, resource: u64, addr: u64) -> SysResult {
    let (cur, max) = limit(p, resource)?;
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&cur.to_le_bytes());
    out[8..].copy_from_slice(&max.to_le_bytes());
    p.write_user(addr, &out)?;
    Ok(0)
}

/// getrlimit.
pub fn getrlimit(p: &mut Process, a: &Args) -> SysResult {
    write_limit(p, a[0], a[1])
}

/// prlimit64 on itself: reads the limit; setting one is accepted and
/// ignored (the VM's bounds hold whatever the program asks).
pub fn prlimit64(p: &mut Process, a: &Args) -> SysResult {
    if a[0] != 0 && a[0] != PID {
        return Err(Errno::ESRCH);
    }
    if a[3] == 0 {
        return limit(p, a[1]).map(|_| 0);
    }
    write_limit(p, a[1], a[3])
}

/// sched_getaffinity: one CPU.
pub fn sched_getaffinity(p: &mut Process, a: &Args) -> SysResult {
    let len = a[1] as usize;
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut mask = [0u8; 8];
    mask[0] = 1;
    p.write_user(a[2], &mask)?;
    Ok(8)
}

/// sched_yield: nothing else to run.
pub fn sched_yield(p: &mut Process, _: &Args) -> SysResult {
    p.net.poll();
    Ok(0)
}

/// rt_sigaction: accepted; no signal is delivered to a handler in this
/// part (a fault ends the program, as with no handler).
pub fn rt_sigaction(p: &mut Process, a: &Args) -> SysResult {
    if a[0] == 0 || a[0] > 64 || a[0] == 9 || a[0] == 19 {
        return Err(Errno::EINVAL);
    }
    if a[2] != 0 {
        // No handler was ever installed: the old action is the default.
        p.write_user(a[2], &[0u8; 32])?;
    }
    Ok(0)
}

/// rt_sigprocmask: accepted; the old mask reads empty.
pub fn rt_sigprocmask(p: &mut Process, a: &Args) -> SysResult {
    if a[2] != 0 {
        p.write_user(a[2], &[0u8; 8])?;
    }
    Ok(0)
}

/// sigaltstack: accepted; the old one reads disabled.
pub fn sigaltstack(p: &mut Process, a: &Args) -> SysResult {
    if a[1] != 0 {
        let mut old = [0u8; 24];
        old[8..12].copy_from_slice(&2u32.to_le_bytes()); // SS_DISABLE
        p.write_user(a[1], &old)?;
    }
    Ok(0)
}

/// prctl: PR_SET_NAME and friends are accepted.
pub fn prctl(_: &mut Process, a: &Args) -> SysResult {
    const PR_SET_NAME: u64 = 15;
    const PR_GET_NAME: u64 = 16;
    const PR_SET_VMA: u64 = 0x5356_4d41;
    match a[0] {
        PR_SET_NAME | PR_GET_NAME | PR_SET_VMA => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// A signal sent to the process by itself: 0 checks, the fatal ones end
/// it (abort() raises SIGABRT this way), others are ignored.
fn signal_self(p: &mut Process, sig: u64) -> SysResult {
    match sig {
        0 => Ok(0),
        s if s > 64 => Err(Errno::EINVAL),
        // Ignored by default: SIGCHLD, SIGURG, SIGWINCH, SIGCONT.
        17 | 23 | 28 | 18 => Ok(0),
        s => {
            p.net.flush();
            process::killed(s as u8)
        }
    }
}

/// kill.
pub fn kill(p: &mut Process, a: &Args) -> SysResult {
    if a[0] as i64 != PID as i64 && a[0] as i64 != 0 && a[0] as i64 != -1 {
        return Err(Errno::ESRCH);
    }
    signal_self(p, a[1])
}

/// tkill.
pub fn tkill(p: &mut Process, a: &Args) -> SysResult {
    if a[0] != PID {
        return Err(Errno::ESRCH);
    }
    signal_self(p, a[1])
}

/// tgkill.
pub fn tgkill(p: &mut Process, a: &Args) -> SysResult {
    if a[0] != PID || a[1] != PID {
        return Err(Errno::ESRCH);
    }
    signal_self(p, a[2])
}

/// futex with one thread: a wait whose value matches could only be woken
/// by a timeout (or never: that is a deadlock, which ends the program as
/// SIGKILL with a line saying so); wakes wake nobody.
pub fn futex(p: &mut Process, a: &Args) -> SysResult {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAKE: u64 = 1;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_WAKE_BITSET: u64 = 10;
    let op = a[1] & 0x7f;
    match op {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(0),
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let current = u32::from_le_bytes(p.read_array::<4>(a[0])?);
            if current != a[2] as u32 {
                return Err(Errno::EAGAIN);
            }
            if a[3] == 0 {
                crate::console::flush();
                crate::console::kernel_line(format_args!(
                    "the program waits on a futex no other thread can wake (a deadlock)"
                ));
                p.net.flush();
                process::killed(signal::SIGKILL)
            }
            let ts = p.read_array::<16>(a[3])?;
            let (sec, nsec) = abi::read_timespec(&ts).ok_or(Errno::EINVAL)?;
            let absolute = op == FUTEX_WAIT_BITSET;
            let clock_realtime = a[1] & 256 != 0;
            super::time::sleep_until(p, sec, nsec, absolute, clock_realtime)?;
            Err(Errno::ETIMEDOUT)
        }
        _ => Err(Errno::ENOSYS),
    }
}
