//! The process and its identity: exit, ids, limits, the thread pointer,
//! signals as far as a single-threaded program needs them, futex.

use mayfly_linux::abi;
use mayfly_linux::errno::{Errno, SysResult};
use mayfly_proto::exit::signal;

use super::Args;
use crate::linux::entry::{self, SyscallFrame};
use crate::linux::process::{self, Process};
use crate::linux::sched;
use crate::linux::signal::{self as signals, Disposition};

/// The program's pid (and tid: one thread).
pub const PID: u64 = 1;
/// Lambda's sandbox user and group.
pub const UID: u32 = 993;
const GID: u64 = 990;

/// exit: the thread ends (its clear-child-tid word is zeroed and woken, as
/// glibc's pthread_join waits for); the last thread's exit ends the
/// process.
pub fn exit(p: &mut Process, a: &Args) -> SysResult {
    if sched::live_threads() <= 1 {
        return exit_group(p, a);
    }
    let thread = sched::current();
    if thread.clear_child_tid != 0 {
        let addr = thread.clear_child_tid;
        // A bad address is the thread's loss alone, as on Linux.
        if p.write_user(addr, &0u32.to_le_bytes()).is_ok() {
            sched::futex_wake(addr, 1);
        }
    }
    thread.exiting = true;
    Ok(0)
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
    Ok(u64::from(sched::current().tid))
}

/// getppid: the kernel, as far as the program can tell.
pub fn getppid(_: &mut Process, _: &Args) -> SysResult {
    Ok(0)
}

/// getuid and geteuid.
pub fn getuid(_: &mut Process, _: &Args) -> SysResult {
    Ok(u64::from(UID))
}

/// getgid and getegid.
pub fn getgid(_: &mut Process, _: &Args) -> SysResult {
    Ok(GID)
}

/// set_tid_address: kept for the thread's exit; returns the tid.
pub fn set_tid_address(_: &mut Process, a: &Args) -> SysResult {
    let thread = sched::current();
    thread.clear_child_tid = a[0];
    Ok(u64::from(thread.tid))
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

/// sched_getaffinity: every CPU the VM has.
pub fn sched_getaffinity(p: &mut Process, a: &Args) -> SysResult {
    let len = a[1] as usize;
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let cpus = crate::linux::smp::configured();
    let mask = ((1u64 << cpus) - 1).to_le_bytes();
    p.write_user(a[2], &mask)?;
    Ok(8)
}

/// rt_sigaction.
pub fn rt_sigaction(p: &mut Process, a: &Args) -> SysResult {
    signals::rt_sigaction(p, a)
}

/// rt_sigprocmask.
pub fn rt_sigprocmask(p: &mut Process, a: &Args) -> SysResult {
    signals::rt_sigprocmask(p, a)
}

/// rt_sigpending: the signals waiting for the thread that it blocks.
pub fn rt_sigpending(p: &mut Process, a: &Args) -> SysResult {
    signals::rt_sigpending(p, a)
}

/// rt_sigsuspend: waits, under the mask it is given, until a signal's
/// handler runs; then EINTR, as always.
pub fn rt_sigsuspend(_: &mut Process, _: &Args) -> SysResult {
    // The dispatcher set the mask (`set_wait_mask`); a signal with a
    // handler ends the wait with EINTR, and the frame restores the mask.
    Err(Errno::ERESTARTNOINTR)
}

/// sigaltstack.
pub fn sigaltstack(p: &mut Process, a: &Args) -> SysResult {
    signals::sigaltstack(p, a)
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

/// A signal the process sends itself, to thread `tid` (kill: any
/// thread that does not block it, this one first): 0 only checks; one it
/// handles (or blocks) waits in the thread's pending set, delivered when
/// the thread next returns to ring 3; an ignored one goes; a fatal one
/// ends the process (abort() raises SIGABRT this way).
fn send_signal(p: &mut Process, tid: Option<u32>, sig: u64) -> SysResult {
    if sig > 64 {
        return Err(Errno::EINVAL);
    }
    if sig == 0 {
        return Ok(0);
    }
    let signal = sig as u8;
    let bit = 1u64 << (signal - 1);
    let target = match tid {
        Some(tid) => sched::thread(tid).filter(|t| !t.exiting),
        None => {
            let me = sched::current().tid;
            let unblocked = sched::find_thread(|t| !t.exiting && t.sigmask & bit == 0);
            let chosen = if sched::current().sigmask & bit == 0 {
                me
            } else {
                unblocked.unwrap_or(me)
            };
            sched::thread(chosen)
        }
    };
    let Some(target) = target else {
        return Err(Errno::ESRCH);
    };
    match signals::disposition(p, signal, target.sigmask) {
        Disposition::Discard => {}
        Disposition::Queue => {
            target.pending |= bit;
            if tid.is_none() {
                target.pending_from_kill |= bit;
            } else {
                target.pending_from_kill &= !bit;
            }
            crate::linux::interrupt::kick(target.cpu);
        }
        Disposition::Kill => {
            p.net.flush();
            process::killed(signal)
        }
    }
    Ok(0)
}

/// kill.
pub fn kill(p: &mut Process, a: &Args) -> SysResult {
    if a[0] as i64 != PID as i64 && a[0] as i64 != 0 && a[0] as i64 != -1 {
        return Err(Errno::ESRCH);
    }
    send_signal(p, None, a[1])
}

/// tkill.
pub fn tkill(p: &mut Process, a: &Args) -> SysResult {
    let tid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
    send_signal(p, Some(tid), a[1])
}

/// tgkill.
pub fn tgkill(p: &mut Process, a: &Args) -> SysResult {
    if a[0] != PID {
        return Err(Errno::ESRCH);
    }
    let tid = u32::try_from(a[1]).map_err(|_| Errno::ESRCH)?;
    send_signal(p, Some(tid), a[2])
}

/// clone, for threads: CLONE_VM with CLONE_THREAD, as glibc's
/// pthread_create and Go's newosproc ask. The child returns 0 from the
/// same syscall on its own stack (the parent's registers otherwise, which
/// Go's child relies on), with its own thread pointer under CLONE_SETTLS.
pub fn clone(p: &mut Process, frame: &SyscallFrame) -> SysResult {
    const CLONE_VM: u64 = 0x100;
    const CLONE_THREAD: u64 = 0x10000;
    const CLONE_SETTLS: u64 = 0x80000;
    const CLONE_PARENT_SETTID: u64 = 0x100000;
    const CLONE_CHILD_CLEARTID: u64 = 0x200000;
    const CLONE_CHILD_SETTID: u64 = 0x1000000;
    let (flags, stack, parent_tid, child_tid, tls) =
        (frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8);
    if flags & (CLONE_VM | CLONE_THREAD) != CLONE_VM | CLONE_THREAD {
        // fork and vfork: one process per VM.
        if p.reported.insert(56) {
            crate::console::flush();
            crate::console::kernel_line(format_args!(
                "unsupported syscall clone (56) without CLONE_THREAD (flags {flags:#x}): a VM runs one process"
            ));
        }
        return Err(Errno::ENOSYS);
    }
    let mut child = *frame;
    child.rax = 0;
    if stack != 0 {
        child.rsp = stack;
    }
    let fs_base = if flags & CLONE_SETTLS != 0 {
        tls
    } else {
        entry::fs_base()
    };
    let tid = sched::spawn(&child, fs_base).map_err(|e| match e {
        sched::SpawnError::NoMemory => Errno::ENOMEM,
        sched::SpawnError::TooMany => Errno::EAGAIN,
    })?;
    let tid_bytes = tid.to_le_bytes();
    if flags & CLONE_PARENT_SETTID != 0 {
        p.write_user(parent_tid, &tid_bytes)?;
    }
    if flags & CLONE_CHILD_SETTID != 0 {
        p.write_user(child_tid, &tid_bytes)?;
    }
    if flags & CLONE_CHILD_CLEARTID != 0 {
        if let Some(t) = sched::thread(tid) {
            t.clear_child_tid = child_tid;
        }
    }
    Ok(u64::from(tid))
}

/// futex: WAIT and WAIT_BITSET (with timeouts: relative for WAIT, absolute
/// for WAIT_BITSET, on the realtime clock with FUTEX_CLOCK_REALTIME), WAKE
/// and WAKE_BITSET (the bitset is treated as all ones: a spurious wake is
/// allowed). Private and shared are the same in a one-process VM. A wait
/// no other thread could end, and with no timeout, is a deadlock: the
/// program ends as SIGKILL with a line saying so.
pub fn futex(p: &mut Process, a: &Args) -> SysResult {
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAKE: u64 = 1;
    const FUTEX_WAIT_BITSET: u64 = 9;
    const FUTEX_WAKE_BITSET: u64 = 10;
    let op = a[1] & 0x7f;
    match op {
        FUTEX_WAKE | FUTEX_WAKE_BITSET => Ok(sched::futex_wake(a[0], a[2] as u32 as usize) as u64),
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let thread = sched::current();
            if thread.woken {
                thread.woken = false;
                thread.futex = None;
                return Ok(0);
            }
            if thread.futex.is_none() {
                let current = u32::from_le_bytes(p.read_array::<4>(a[0])?);
                if current != a[2] as u32 {
                    return Err(Errno::EAGAIN);
                }
                if a[3] == 0 && sched::live_threads() <= 1 {
                    crate::console::flush();
                    crate::console::kernel_line(format_args!(
                        "the program waits on a futex no other thread can wake (a deadlock)"
                    ));
                    p.net.flush();
                    process::killed(signal::SIGKILL)
                }
                match a[3] {
                    0 => super::deadline(|| u64::MAX),
                    ts => {
                        super::time::user_deadline(p, ts, op == FUTEX_WAIT_BITSET, a[1] & 256 != 0)?
                    }
                };
                sched::current().futex = Some(a[0]);
            }
            p.net.poll();
            if super::deadline(|| u64::MAX) <= super::time::monotonic_ns() {
                sched::current().futex = None;
                return Err(Errno::ETIMEDOUT);
            }
            Err(Errno::ERESTARTNOINTR)
        }
        _ => Err(Errno::ENOSYS),
    }
}
