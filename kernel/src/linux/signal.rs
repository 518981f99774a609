//! Signals, as far as real runtimes need them: the program's actions
//! (rt_sigaction), masks and alternate stacks, and the delivery of a
//! synchronous fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP) to the
//! program's handler with Linux's x86_64 signal frame, so that Go turns a
//! nil dereference into its panic and Rust reports a stack overflow;
//! rt_sigreturn returns from it. A fault with no handler ends the program,
//! as before.
//!
//! Signals sent by the program to itself (kill, tkill, tgkill: Go's
//! preemption requests, SIGURG) wait in the target thread's pending set
//! and are delivered when it next crosses back to ring 3: at the end of a
//! syscall (a waiting one is interrupted, then restarted or answered
//! EINTR as Linux does), or at the timer's tick, so within one quantum
//! for a thread that runs without syscalls.

use mayfly_linux::errno::{Errno, SysResult};
pub use mayfly_linux::signal::Disposition;
use mayfly_linux::signal::{self as rules};

use super::entry::SyscallFrame;
use super::process::Process;
use super::sched;
use crate::exceptions::Frame;

/// `sa_flags` bits.
pub const SA_SIGINFO: u64 = 4;
/// Run the handler on the alternate stack.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `sa_restorer` is set (glibc and Go always set it).
pub const SA_RESTORER: u64 = 0x0400_0000;
/// Do not block the signal while its handler runs.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// Reset the action to the default once delivered.
pub const SA_RESETHAND: u64 = 0x8000_0000;
/// `sigaltstack` flags.
const SS_ONSTACK: u32 = 1;
const SS_DISABLE: u32 = 2;

/// One signal's action, as `struct kernel_sigaction` has it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Action {
    /// The handler (0: default, 1: ignore).
    pub handler: u64,
    /// `SA_*`.
    pub flags: u64,
    /// Where the handler returns to (the rt_sigreturn trampoline).
    pub restorer: u64,
    /// Signals blocked while it runs.
    pub mask: u64,
}

/// The program's registers at a point where it stopped (a fault) or will
/// resume (rt_sigreturn), in the order `struct sigcontext` stores them.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Context {
    /// r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, rflags.
    pub regs: [u64; 18],
}

impl Context {
    /// The registers an interrupt or exception from ring 3 saved.
    pub fn of_interrupt(f: &Frame) -> Context {
        Context {
            regs: [
                f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx,
                f.rdx, f.rax, f.rcx, f.rsp, f.rip, f.rflags,
            ],
        }
    }

    /// The registers the program will have after the syscall `f` (its
    /// result already in `rax`): rcx and r11 hold the return address and
    /// RFLAGS, as the `syscall` instruction left them.
    pub fn of_syscall(f: &SyscallFrame) -> Context {
        Context {
            regs: [
                f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx,
                f.rdx, f.rax, f.rcx, f.rsp, f.rcx, f.r11,
            ],
        }
    }

    /// Writes into `f` the registers a handler's entry sets, so that the
    /// interrupt's return enters the handler.
    pub fn enter(&self, f: &mut Frame) {
        let r = &self.regs;
        f.rdi = r[reg::RDI];
        f.rsi = r[reg::RSI];
        f.rdx = r[reg::RDX];
        f.rax = r[reg::RAX];
        f.rsp = r[reg::RSP];
        f.rip = r[reg::RIP];
        f.rflags = r[reg::RFLAGS];
    }
}

/// Indices into [`Context::regs`].
#[allow(missing_docs)]
pub mod reg {
    pub const R8: usize = 0;
    pub const R9: usize = 1;
    pub const R10: usize = 2;
    pub const R11: usize = 3;
    pub const R12: usize = 4;
    pub const R13: usize = 5;
    pub const R14: usize = 6;
    pub const R15: usize = 7;
    pub const RDI: usize = 8;
    pub const RSI: usize = 9;
    pub const RBP: usize = 10;
    pub const RBX: usize = 11;
    pub const RDX: usize = 12;
    pub const RAX: usize = 13;
    pub const RCX: usize = 14;
    pub const RSP: usize = 15;
    pub const RIP: usize = 16;
    pub const RFLAGS: usize = 17;
}

/// What a fault tells the handler (`siginfo_t`'s fields that matter).
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// The signal.
    pub signal: u8,
    /// `si_code` (SEGV_MAPERR 1, SEGV_ACCERR 2, ILL_ILLOPN 2, ...).
    pub code: i32,
    /// `si_addr`: the faulting address (or instruction).
    pub addr: u64,
    /// The CPU's vector and error code, for `trapno` and `err`.
    pub trapno: u64,
    /// The CPU's error code.
    pub err: u64,
}

impl Fault {
    /// A signal sent with kill (`SI_USER`, 0) or tkill/tgkill
    /// (`SI_TKILL`, -6): `siginfo_t` then holds the sender's pid and uid
    /// where a fault's holds `si_addr`.
    pub fn sent(signal: u8, code: i32, pid: u32, uid: u32) -> Fault {
        Fault {
            signal,
            code,
            addr: u64::from(pid) | (u64::from(uid) << 32),
            trapno: 0,
            err: 0,
        }
    }
}

/// `si_code` of a signal sent by kill.
pub const SI_USER: i32 = 0;
/// `si_code` of a signal sent by tkill or tgkill.
pub const SI_TKILL: i32 = -6;

/// Where `signal` (1..=64) goes if sent now to a thread with `mask`.
pub fn disposition(p: &Process, signal: u8, mask: u64) -> Disposition {
    rules::disposition(p.actions[usize::from(signal) - 1].handler, signal, mask)
}

/// The next pending signal the running thread must take now: the lowest
/// unblocked one with a handler. Pending signals that have meanwhile
/// become ignored are dropped; one whose default action is fatal ends the
/// program here.
pub fn next_pending(p: &mut Process) -> Option<(u8, Action)> {
    loop {
        let thread = sched::current();
        let ready = thread.pending & !thread.sigmask;
        if ready == 0 {
            return None;
        }
        let signal = ready.trailing_zeros() as u8 + 1;
        let action = p.actions[usize::from(signal) - 1];
        match action.handler {
            0 if !rules::ignored_by_default(signal) => {
                p.net.flush();
                super::process::killed(signal)
            }
            0 | 1 => thread.pending &= !(1 << (signal - 1)),
            _ => return Some((signal, action)),
        }
    }
}

/// Delivers the next pending signal of the running thread, if one is
/// ready, at a return to ring 3 with registers `ctx` and FPU state `fx`:
/// `ctx` then enters the handler. Whether one was delivered; a frame that
/// cannot be written ends the program with SIGSEGV, as on Linux.
pub fn deliver_pending(p: &mut Process, ctx: &mut Context, fx: &[u8; 512]) -> bool {
    let Some((signal, _)) = next_pending(p) else {
        return false;
    };
    let thread = sched::current();
    let bit = 1u64 << (signal - 1);
    thread.pending &= !bit;
    let code = if thread.pending_from_kill & bit != 0 {
        SI_USER
    } else {
        SI_TKILL
    };
    thread.pending_from_kill &= !bit;
    let info = Fault::sent(
        signal,
        code,
        super::syscall::proc::PID as u32,
        super::syscall::proc::UID,
    );
    match deliver(p, info, ctx, fx) {
        Ok(true) => true,
        Ok(false) => false,
        Err(_) => {
            p.net.flush();
            super::process::killed(mayfly_proto::exit::signal::SIGSEGV)
        }
    }
}

/// SIGKILL's and SIGSTOP's bits: never blocked.
const UNBLOCKABLE: u64 = (1 << 8) | (1 << 18);

/// rt_sigsuspend, ppoll, pselect6 and epoll_pwait wait with the signal
/// mask they are given (so a program can unblock a signal for the wait
/// alone, without a race): sets it for the running thread, keeping its own until
/// [`restore_wait_mask`] (or a handler's frame, which records it).
pub fn set_wait_mask(p: &mut Process, nr: u64, a: &[u64; 6]) -> SysResult<()> {
    const RT_SIGSUSPEND: u64 = 130;
    const PSELECT6: u64 = 270;
    const PPOLL: u64 = 271;
    const EPOLL_PWAIT: u64 = 281;
    let (addr, size) = match nr {
        RT_SIGSUSPEND => (a[0], a[1]),
        PSELECT6 if a[5] != 0 => {
            let raw = p.read_array::<16>(a[5])?;
            (get(&raw, 0), get(&raw, 8))
        }
        PPOLL => (a[3], a[4]),
        EPOLL_PWAIT => (a[4], a[5]),
        _ => return Ok(()),
    };
    if addr == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let mask = p.read_u64(addr)? & !UNBLOCKABLE;
    let thread = sched::current();
    thread.saved_sigmask = Some(thread.sigmask);
    thread.sigmask = mask;
    Ok(())
}

/// Gives the running thread its own mask back after a wait under one it
/// gave, unless a handler's frame took it (rt_sigreturn restores it then).
pub fn restore_wait_mask() {
    let thread = sched::current();
    if let Some(mask) = thread.saved_sigmask.take() {
        thread.sigmask = mask;
    }
}

/// Bytes of the kernel's `struct ucontext` before `uc_mcontext`.
const UC_MCONTEXT: u64 = 40;
/// Bytes of `struct ucontext`.
const UCONTEXT_BYTES: usize = 304;
/// Bytes of `siginfo_t`.
const SIGINFO_BYTES: usize = 128;
/// Bytes of the FXSAVE area the frame carries.
const FPSTATE_BYTES: u64 = 512;
/// RFLAGS bits a program may set through rt_sigreturn (Linux's
/// FIX_EFLAGS without TF); IF is always on.
const USER_FLAGS: u64 = 0x4_0cd5;

/// rt_sigaction.
pub fn rt_sigaction(p: &mut Process, a: &[u64; 6]) -> SysResult {
    let sig = a[0] as usize;
    if sig == 0 || sig > 64 || a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let old = p.actions[sig - 1];
    if a[1] != 0 {
        if sig == 9 || sig == 19 {
            return Err(Errno::EINVAL);
        }
        let raw = p.read_array::<32>(a[1])?;
        let word =
            |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        p.actions[sig - 1] = Action {
            handler: word(0),
            flags: word(1),
            restorer: word(2),
            mask: word(3),
        };
    }
    if a[2] != 0 {
        let mut out = [0u8; 32];
        for (i, v) in [old.handler, old.flags, old.restorer, old.mask]
            .iter()
            .enumerate()
        {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        p.write_user(a[2], &out)?;
    }
    Ok(0)
}

/// rt_sigprocmask: the thread's mask (kept; synchronous faults ignore it,
/// as Linux forces them).
pub fn rt_sigprocmask(p: &mut Process, a: &[u64; 6]) -> SysResult {
    if a[3] != 8 {
        return Err(Errno::EINVAL);
    }
    let thread = sched::current();
    let old = thread.sigmask;
    if a[1] != 0 {
        let set = p.read_u64(a[1])? & !UNBLOCKABLE;
        thread.sigmask = match a[0] {
            0 => old | set,
            1 => old & !set,
            2 => set,
            _ => return Err(Errno::EINVAL),
        };
    }
    if a[2] != 0 {
        p.write_user(a[2], &old.to_le_bytes())?;
    }
    Ok(0)
}

/// rt_sigpending: the thread's pending signals that its mask blocks.
pub fn rt_sigpending(p: &mut Process, a: &[u64; 6]) -> SysResult {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let thread = sched::current();
    let mask = thread.saved_sigmask.unwrap_or(thread.sigmask);
    p.write_user(a[0], &(thread.pending & mask).to_le_bytes())?;
    Ok(0)
}

/// sigaltstack: the thread's alternate signal stack.
pub fn sigaltstack(p: &mut Process, a: &[u64; 6]) -> SysResult {
    let thread = sched::current();
    let (sp, size, flags) = thread.altstack;
    if a[1] != 0 {
        let mut old = [0u8; 24];
        old[..8].copy_from_slice(&sp.to_le_bytes());
        old[8..12].copy_from_slice(&(if size == 0 { SS_DISABLE } else { flags }).to_le_bytes());
        old[16..].copy_from_slice(&size.to_le_bytes());
        p.write_user(a[1], &old)?;
    }
    if a[0] != 0 {
        let raw = p.read_array::<24>(a[0])?;
        let new_sp = u64::from_le_bytes(raw[..8].try_into().unwrap_or([0; 8]));
        let new_flags = u32::from_le_bytes(raw[8..12].try_into().unwrap_or([0; 4]));
        let new_size = u64::from_le_bytes(raw[16..].try_into().unwrap_or([0; 8]));
        let thread = sched::current();
        if new_flags & SS_DISABLE != 0 {
            thread.altstack = (0, 0, SS_DISABLE);
        } else if new_flags & !SS_ONSTACK != 0 {
            return Err(Errno::EINVAL);
        } else if new_size < 2048 {
            return Err(Errno::ENOMEM);
        } else {
            thread.altstack = (new_sp, new_size, 0);
        }
    }
    Ok(0)
}

fn put(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn get(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// Delivers `fault` to the program's handler, if it has one: writes the
/// signal frame (with `ctx` and the FPU state `fx`) on the handler's
/// stack and points `ctx` at the handler. `Ok(false)`: no handler (the
/// program ends); `Err`: the frame could not be written (it ends too).
pub fn deliver(
    p: &mut Process,
    fault: Fault,
    ctx: &mut Context,
    fx: &[u8; 512],
) -> SysResult<bool> {
    let index = usize::from(fault.signal) - 1;
    let action = p.actions[index];
    if action.handler <= 1 {
        return Ok(false);
    }
    let thread = sched::current();
    // The mask rt_sigreturn restores: the thread's own, even if it waited
    // under another (ppoll, pselect6, epoll_pwait).
    let frame_mask = thread.saved_sigmask.take().unwrap_or(thread.sigmask);
    let (alt_sp, alt_size, _) = thread.altstack;
    let rsp = ctx.regs[reg::RSP];
    let on_alt = alt_size != 0 && rsp > alt_sp && rsp <= alt_sp + alt_size;
    let mut sp = if action.flags & SA_ONSTACK != 0 && alt_size != 0 && !on_alt {
        alt_sp + alt_size
    } else {
        rsp.wrapping_sub(128) // the red zone
    };
    sp = (sp - FPSTATE_BYTES) & !63;
    let fpstate = sp;
    let frame_bytes = (8 + UCONTEXT_BYTES + SIGINFO_BYTES) as u64;
    sp = ((sp - frame_bytes) & !15) - 8;
    let frame = sp;

    let mut bytes = [0u8; 8 + UCONTEXT_BYTES + SIGINFO_BYTES];
    put(&mut bytes, 0, action.restorer);
    let uc = 8;
    // uc_flags, uc_link 0; uc_stack: the alternate stack.
    put(&mut bytes, uc + 16, alt_sp);
    bytes[uc + 24..uc + 28].copy_from_slice(
        &(if alt_size == 0 {
            SS_DISABLE
        } else if on_alt {
            SS_ONSTACK
        } else {
            0
        })
        .to_le_bytes(),
    );
    put(&mut bytes, uc + 32, alt_size);
    let mc = uc + UC_MCONTEXT as usize;
    for (i, value) in ctx.regs.iter().enumerate() {
        put(&mut bytes, mc + i * 8, *value);
    }
    // cs, gs, fs, ss.
    bytes[mc + 144..mc + 146].copy_from_slice(&crate::exceptions::USER_CODE_SELECTOR.to_le_bytes());
    bytes[mc + 150..mc + 152].copy_from_slice(&crate::exceptions::USER_DATA_SELECTOR.to_le_bytes());
    put(&mut bytes, mc + 152, fault.err);
    put(&mut bytes, mc + 160, fault.trapno);
    put(&mut bytes, mc + 168, frame_mask);
    put(&mut bytes, mc + 176, fault.addr);
    put(&mut bytes, mc + 184, fpstate);
    put(&mut bytes, uc + 296, frame_mask);
    let info = 8 + UCONTEXT_BYTES;
    bytes[info..info + 4].copy_from_slice(&i32::from(fault.signal).to_le_bytes());
    bytes[info + 8..info + 12].copy_from_slice(&fault.code.to_le_bytes());
    put(&mut bytes, info + 16, fault.addr);

    p.write_user(fpstate, fx)?;
    p.write_user(frame, &bytes)?;

    let thread = sched::current();
    if action.flags & SA_NODEFER == 0 {
        thread.sigmask |= 1 << index;
    }
    thread.sigmask |= action.mask;
    if action.flags & SA_RESETHAND != 0 {
        p.actions[index] = Action::default();
    }
    ctx.regs[reg::RDI] = u64::from(fault.signal);
    ctx.regs[reg::RSI] = frame + info as u64;
    ctx.regs[reg::RDX] = frame + uc as u64;
    ctx.regs[reg::RAX] = 0;
    ctx.regs[reg::RSP] = frame;
    ctx.regs[reg::RIP] = action.handler;
    ctx.regs[reg::RFLAGS] &= !(0x400 | 0x100); // DF, TF
    Ok(true)
}

/// rt_sigreturn: reads back the context and FPU state the frame at
/// `rsp - 8` holds (the handler's `ret` popped the return address),
/// sanitised so that the program cannot give itself kernel privileges.
pub fn sigreturn(p: &mut Process, rsp: u64) -> SysResult<(Context, [u8; 512])> {
    let frame = rsp.wrapping_sub(8);
    let uc = frame + 8;
    let mc = p.read_array::<192>(uc + UC_MCONTEXT)?;
    let mut ctx = Context::default();
    for (i, value) in ctx.regs.iter_mut().enumerate() {
        *value = get(&mc, i * 8);
    }
    if ctx.regs[reg::RIP] >= 0x0000_8000_0000_0000 || ctx.regs[reg::RSP] >= 0x0000_8000_0000_0000 {
        return Err(Errno::EFAULT);
    }
    ctx.regs[reg::RFLAGS] = (ctx.regs[reg::RFLAGS] & USER_FLAGS) | 0x202;
    let fpstate = get(&mc, 184);
    let mut fx = [0u8; 512];
    if fpstate != 0 {
        p.read_user(fpstate, &mut fx)?;
        // Reserved MXCSR bits would make FXRSTOR fault in the kernel.
        let mxcsr = u32::from_le_bytes(fx[24..28].try_into().unwrap_or([0; 4])) & 0xffbf;
        fx[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    } else {
        fx[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
    }
    sched::current().sigmask = p.read_u64(uc + 296)?;
    Ok((ctx, fx))
}
