//! The syscall layer: one dispatch table ([`handler`]) and one file per
//! family. A syscall is added by writing its function in its family's file
//! and one line in the table.
//!
//! A number without an entry answers `ENOSYS`, and is named once in the
//! function's log (`mayfly: unsupported syscall io_uring_setup (425)`), so
//! that what a program missed is visible without stopping it.

use mayfly_linux::errno::{to_return, Errno, SysResult};
use mayfly_linux::names::syscall_name;

use super::entry::SyscallFrame;
use super::process::{self, Process};
use super::{sched, signal};
use crate::console;

pub mod datagram;
pub mod fd;
pub mod fs;
pub mod mem;
pub mod net;
pub mod poll;
pub mod proc;
pub mod random;
pub mod time;

/// A syscall's six arguments (rdi, rsi, rdx, r10, r8, r9).
pub type Args = [u64; 6];

/// A syscall's implementation.
pub type Handler = fn(&mut Process, &Args) -> SysResult;

/// The dispatch table: syscall number to implementation.
fn handler(nr: u64) -> Option<Handler> {
    Some(match nr {
        0 => fs::read,
        1 => fs::write,
        2 => fs::open,
        3 => fd::close,
        4 => fs::stat,
        5 => fs::fstat,
        6 => fs::lstat,
        7 => poll::poll,
        8 => fs::lseek,
        9 => mem::mmap,
        10 => mem::mprotect,
        11 => mem::munmap,
        12 => mem::brk,
        13 => proc::rt_sigaction,
        14 => proc::rt_sigprocmask,
        16 => fd::ioctl,
        17 => fs::pread64,
        18 => fs::pwrite64,
        19 => fs::readv,
        20 => fs::writev,
        21 => fs::access,
        22 => fd::pipe,
        28 => mem::madvise,
        32 => fd::dup,
        33 => fd::dup2,
        35 => time::nanosleep,
        39 => proc::getpid,
        41 => net::socket,
        42 => net::connect,
        44 => net::sendto,
        45 => net::recvfrom,
        46 => net::sendmsg,
        47 => net::recvmsg,
        48 => net::shutdown,
        49 => net::bind,
        51 => net::getsockname,
        52 => net::getpeername,
        54 => net::setsockopt,
        55 => net::getsockopt,
        60 => proc::exit,
        62 => proc::kill,
        63 => proc::uname,
        72 => fd::fcntl,
        74 | 75 => fs::fsync,
        77 => fs::ftruncate,
        79 => fs::getcwd,
        80 => fs::chdir,
        82 => fs::rename,
        83 => fs::mkdir,
        84 => fs::rmdir,
        87 => fs::unlink,
        89 => fs::readlink,
        95 => proc::umask,
        96 => time::gettimeofday,
        97 => proc::getrlimit,
        102 | 107 => proc::getuid,
        104 | 108 => proc::getgid,
        110 => proc::getppid,
        127 => proc::rt_sigpending,
        130 => proc::rt_sigsuspend,
        131 => proc::sigaltstack,
        157 => proc::prctl,
        158 => proc::arch_prctl,
        186 => proc::gettid,
        200 => proc::tkill,
        201 => time::time,
        202 => proc::futex,
        204 => proc::sched_getaffinity,
        213 => poll::epoll_create,
        217 => fs::getdents64,
        218 => proc::set_tid_address,
        228 => time::clock_gettime,
        229 => time::clock_getres,
        230 => time::clock_nanosleep,
        231 => proc::exit_group,
        232 => poll::epoll_wait,
        233 => poll::epoll_ctl,
        234 => proc::tgkill,
        257 => fs::openat,
        258 => fs::mkdirat,
        262 => fs::newfstatat,
        263 => fs::unlinkat,
        264 => fs::renameat,
        267 => fs::readlinkat,
        269 => fs::faccessat,
        270 => poll::pselect6,
        271 => poll::ppoll,
        273 => proc::set_robust_list,
        281 => poll::epoll_pwait,
        284 => poll::eventfd,
        290 => poll::eventfd2,
        291 => poll::epoll_create1,
        292 => fd::dup3,
        293 => fd::pipe2,
        302 => proc::prlimit64,
        307 => net::sendmmsg,
        316 => fs::renameat2,
        318 => random::getrandom,
        332 => fs::statx,
        439 => fs::faccessat2,
        _ => return None,
    })
}

/// Syscalls answered `ENOSYS` on purpose and without a line in the log:
/// programs probe for them and fall back (LINUX-ABI.md).
fn quietly_unsupported(nr: u64) -> bool {
    matches!(
        nr,
        334 /* rseq */ | 435 /* clone3: glibc falls back to clone */ | 25 /* mremap */ | 324 /* membarrier */
    )
}

/// clone: needs the caller's whole frame (the child starts from a copy).
const SYS_CLONE: u64 = 56;
/// sched_yield: gives the CPU away, which no handler may do while it
/// holds the process.
const SYS_SCHED_YIELD: u64 = 24;
/// rt_sigreturn: resumes the program where its signal frame says, with
/// every register (so not through sysret, which loses rcx and r11).
const SYS_RT_SIGRETURN: u64 = 15;

/// Runs the syscall the program made; its result goes back in `rax`.
///
/// A syscall that must wait answers [`Errno::ERESTARTNOINTR`]: the
/// process is let go, other threads run, and the syscall is made again
/// (waiting syscalls keep their deadline in their thread meanwhile),
/// until it completes or a signal with a handler interrupts it. A thread
/// that called exit leaves the CPU here, for good. On the way back, a
/// pending signal enters its handler (see [`super::signal`]).
pub fn dispatch(frame: &mut SyscallFrame) {
    let nr = frame.rax;
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let (result, interrupted) =
        match process::with(|p| signal::set_wait_mask(p, nr, &args)).unwrap_or(Ok(())) {
            Ok(()) => complete(frame, nr, &args),
            Err(e) => (Err(e), None),
        };
    sched::current().waiting = false;
    sched::current().deadline = None;
    frame.rax = to_return(result);
    if sched::current().exiting {
        sched::exit_current();
    }
    if nr == SYS_RT_SIGRETURN {
        return_from_handler();
    }
    if sched::current().pending != 0 {
        let mut ctx = signal::Context::of_syscall(frame);
        if interrupted == Some(true) {
            // As Linux restarts: the `syscall` instruction (2 bytes) again,
            // with its number.
            ctx.regs[signal::reg::RAX] = nr;
            ctx.regs[signal::reg::RIP] = frame.rcx - 2;
        }
        let fx = *sched::current_fx();
        if process::with(|p| signal::deliver_pending(p, &mut ctx, &fx)) == Some(true) {
            super::entry::resume(&ctx)
        }
    }
    signal::restore_wait_mask();
}

/// Makes the syscall, again while it must wait, until it completes or a
/// signal with a handler interrupts it; then whether it is to be made
/// again after the handler (`Some(true)`) or answers EINTR.
fn complete(frame: &mut SyscallFrame, nr: u64, args: &Args) -> (SysResult, Option<bool>) {
    loop {
        if nr == SYS_SCHED_YIELD {
            process::with(|p| p.net.poll());
            sched::yield_now();
            return (Ok(0), None);
        }
        let result = process::with(|p| attempt(p, frame, nr, args)).unwrap_or(Err(Errno::EFAULT));
        if result != Err(Errno::ERESTARTNOINTR) {
            return (result, None);
        }
        if let Some(Some((_, action))) = process::with(signal::next_pending) {
            let restart = mayfly_linux::signal::restarts_after_handler(action.flags, nr, args);
            return (Err(Errno::EINTR), Some(restart));
        }
        sched::current().waiting = true;
        if sched::another_cpu_polls() {
            // One CPU making waiting syscalls again is enough; this one
            // runs something else or halts.
            sched::park();
            continue;
        }
        sched::yield_now();
        // Under TCG, PAUSE also lets QEMU's I/O thread in (it leaves the
        // translated code): without it, a lone thread polling the network
        // waits for the next timer tick to see its packets. Meanwhile the
        // other CPUs may have the kernel.
        super::smp::unlock();
        crate::arch::pause();
        super::smp::lock();
    }
}

/// One attempt at syscall `nr`.
fn attempt(p: &mut Process, frame: &SyscallFrame, nr: u64, args: &Args) -> SysResult {
    if nr == SYS_CLONE {
        return proc::clone(p, frame);
    }
    if nr == SYS_RT_SIGRETURN {
        let resume = super::signal::sigreturn(p, frame.rsp)?;
        sched::current().resume = Some(alloc::boxed::Box::new(resume));
        return Ok(0);
    }
    match handler(nr) {
        Some(f) => f(p, args),
        None => {
            if !quietly_unsupported(nr) && p.reported.insert(nr) {
                console::flush();
                console::kernel_line(format_args!(
                    "unsupported syscall {} ({nr})",
                    syscall_name(nr).unwrap_or("unknown")
                ));
            }
            Err(Errno::ENOSYS)
        }
    }
}

/// rt_sigreturn: the program resumes where its signal frame says (or,
/// with a frame it broke, ends with SIGSEGV as on Linux).
fn return_from_handler() -> ! {
    match sched::current().resume.take() {
        Some(resume) => {
            let (mut ctx, fx) = *resume;
            *sched::current_fx() = fx;
            // The restored mask may let a pending signal in.
            process::with(|p| signal::deliver_pending(p, &mut ctx, &fx));
            super::entry::resume(&ctx)
        }
        None => {
            console::flush();
            console::kernel_line(format_args!("rt_sigreturn with a bad signal frame"));
            process::with(|p| p.net.flush());
            process::killed(mayfly_proto::exit::signal::SIGSEGV)
        }
    }
}

/// The deadline of the waiting syscall being made: `compute`d (in
/// monotonic ns, `u64::MAX` for none) on its first attempt, the same on
/// every restart.
pub fn deadline(compute: impl FnOnce() -> u64) -> u64 {
    let thread = sched::current();
    *thread.deadline.get_or_insert_with(compute)
}
