//! Ring 3 and back: the first entry into the program (`iretq`), and the
//! `syscall` entry, which saves the program's registers and FPU state,
//! switches to the kernel's stack, calls [`crate::linux::syscall::dispatch`]
//! and returns with `sysretq`.
//!
//! The kernel stack and the FPU save area are the running thread's, found
//! in this CPU's [`crate::percpu`] area through GS (`swapgs` at every
//! crossing of the ring boundary); the first thread's stack is the boot
//! stack (nothing below `run` is ever returned to). A new thread starts at
//! `mayfly_syscall_return` with a copy of its parent's frame. Every return
//! to ring 3 goes through [`super::smp::leave_kernel`].

use core::arch::{asm, global_asm};

use crate::exceptions::{KERNEL_DATA_SELECTOR, USER_CODE_SELECTOR, USER_DATA_SELECTOR};
use crate::percpu;

const MSR_EFER: u32 = 0xC000_0080;
const MSR_STAR: u32 = 0xC000_0081;
const MSR_LSTAR: u32 = 0xC000_0082;
const MSR_FMASK: u32 = 0xC000_0084;
/// FS's base: the program's thread pointer (arch_prctl(ARCH_SET_FS)).
pub const MSR_FS_BASE: u32 = 0xC000_0100;
/// Cleared on `syscall`: TF, IF, DF, IOPL, NT, AC.
const FMASK: u64 = 0x0004_7700;
/// The program's RFLAGS at its start: interrupts on (the timer preempts
/// ring 3; the kernel itself runs with them off, and the legacy PIC is
/// masked, so the only interrupt is the local APIC's timer).
const USER_RFLAGS: u64 = 0x202;

/// The program's registers at a `syscall`, as the entry saves them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SyscallFrame {
    /// The syscall number in, the result out.
    pub rax: u64,
    /// Argument 1.
    pub rdi: u64,
    /// Argument 2.
    pub rsi: u64,
    /// Argument 3.
    pub rdx: u64,
    /// Argument 4.
    pub r10: u64,
    /// Argument 5.
    pub r8: u64,
    /// Argument 6.
    pub r9: u64,
    #[allow(missing_docs)]
    pub rbx: u64,
    #[allow(missing_docs)]
    pub rbp: u64,
    #[allow(missing_docs)]
    pub r12: u64,
    #[allow(missing_docs)]
    pub r13: u64,
    #[allow(missing_docs)]
    pub r14: u64,
    #[allow(missing_docs)]
    pub r15: u64,
    /// The program's instruction pointer after the `syscall`.
    pub rcx: u64,
    /// The program's RFLAGS.
    pub r11: u64,
    /// The program's stack pointer.
    pub rsp: u64,
}

extern "C" {
    fn mayfly_syscall_entry();
}

// The frame is built by pushes in the reverse order of `SyscallFrame`'s
// fields. A non-canonical return address would make `sysretq` fault in
// ring 0 (with the program's stack): the dispatcher never changes rcx, and
// the CPU only saves canonical ones.
global_asm!(
    r#"
    .section .text.syscall, "ax"
    .global mayfly_syscall_entry
mayfly_syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kstack_top}]
    push qword ptr gs:[{user_rsp}]
    push r11
    push rcx
    push r15
    push r14
    push r13
    push r12
    push rbp
    push rbx
    push r9
    push r8
    push r10
    push rdx
    push rsi
    push rdi
    push rax
    mov rax, gs:[{current_fx}]
    fxsave [rax]
    mov rdi, rsp
    call {dispatch}
    .global mayfly_syscall_return
mayfly_syscall_return:
    call {leave_kernel}
    mov rax, gs:[{current_fx}]
    fxrstor [rax]
    pop rax
    pop rdi
    pop rsi
    pop rdx
    pop r10
    pop r8
    pop r9
    pop rbx
    pop rbp
    pop r12
    pop r13
    pop r14
    pop r15
    pop rcx
    pop r11
    pop rsp
    swapgs
    sysretq
    "#,
    user_rsp = const percpu::USER_RSP,
    kstack_top = const percpu::KSTACK_TOP,
    current_fx = const percpu::CURRENT_FX,
    dispatch = sym syscall_entry_rust,
    leave_kernel = sym leave_kernel,
);

extern "C" fn leave_kernel() {
    super::smp::leave_kernel();
}

extern "C" fn syscall_entry_rust(frame: *mut SyscallFrame) {
    // SAFETY: the entry passes the frame it just built on the kernel stack;
    // nothing else refers to it until the entry pops it.
    let frame = unsafe { &mut *frame };
    super::smp::enter_kernel();
    crate::linux::syscall::dispatch(frame);
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: only the MSRs named in this module are written, each with a
    // value that keeps the kernel running (see `init`).
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags));
    }
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an architectural MSR has no side effects.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Sets FS's base (the program's thread pointer).
pub fn set_fs_base(value: u64) {
    wrmsr(MSR_FS_BASE, value);
}

/// FS's base.
pub fn fs_base() -> u64 {
    rdmsr(MSR_FS_BASE)
}

/// Enables `syscall`: its entry point, the selectors it and `sysret` load,
/// and the flags it clears.
pub fn init() {
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);
    // SYSCALL loads CS = 0x08, SS = 0x10; SYSRET loads SS = 0x10 + 8 and
    // CS = 0x10 + 16, with RPL 3.
    let star = (u64::from(KERNEL_DATA_SELECTOR) << 48) | (0x08u64 << 32);
    wrmsr(MSR_STAR, star);
    wrmsr(MSR_LSTAR, mayfly_syscall_entry as *const () as usize as u64);
    wrmsr(MSR_FMASK, FMASK);
    debug_assert_eq!(USER_DATA_SELECTOR, (KERNEL_DATA_SELECTOR + 8) | 3);
    debug_assert_eq!(USER_CODE_SELECTOR, (KERNEL_DATA_SELECTOR + 16) | 3);
}

/// Enters the program at `entry` with its stack at `sp`, every general
/// register zero (rdx too: no exit function for the program to register)
/// and the FPU in its initial state. Never returns: the kernel comes back
/// only through `syscall` and exceptions.
pub fn enter_user(entry: u64, sp: u64) -> ! {
    super::smp::leave_kernel();
    // SAFETY: `entry` and `sp` lie in the program's mapped half (checked by
    // the loader); the selectors are the GDT's user ones. iretq switches to
    // ring 3 atomically; the kernel's state is not needed again.
    unsafe {
        asm!(
            "fninit",
            "push {ss}",
            "push {sp}",
            "push {rflags}",
            "push {cs}",
            "push {entry}",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor edi, edi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            "swapgs",
            "iretq",
            ss = in(reg) u64::from(USER_DATA_SELECTOR),
            sp = in(reg) sp,
            rflags = in(reg) USER_RFLAGS,
            cs = in(reg) u64::from(USER_CODE_SELECTOR),
            entry = in(reg) entry,
            options(noreturn)
        )
    }
}

/// Resumes the program with every register as `ctx` gives it and the FPU
/// state saved for the running thread (rt_sigreturn): through `iretq`,
/// since `sysretq` would lose rcx and r11. `ctx`'s rip and rsp are user
/// addresses and its RFLAGS sanitised (see [`super::signal::sigreturn`]).
pub fn resume(ctx: &super::signal::Context) -> ! {
    super::smp::leave_kernel();
    // SAFETY: the selectors are the GDT's user ones; the kernel stack this
    // runs on is abandoned (the next entry starts at its top again), and
    // `ctx`, on that stack above the pushes, is read before iretq (the
    // running thread's stack, which no other CPU uses or frees while this
    // one runs it, lock or not).
    unsafe {
        asm!(
            "mov rax, gs:[{current_fx}]",
            "fxrstor [rax]",
            "push {ss}",
            "push qword ptr [rdi + 120]",
            "push qword ptr [rdi + 136]",
            "push {cs}",
            "push qword ptr [rdi + 128]",
            "mov r8, [rdi]",
            "mov r9, [rdi + 8]",
            "mov r10, [rdi + 16]",
            "mov r11, [rdi + 24]",
            "mov r12, [rdi + 32]",
            "mov r13, [rdi + 40]",
            "mov r14, [rdi + 48]",
            "mov r15, [rdi + 56]",
            "mov rsi, [rdi + 72]",
            "mov rbp, [rdi + 80]",
            "mov rbx, [rdi + 88]",
            "mov rdx, [rdi + 96]",
            "mov rax, [rdi + 104]",
            "mov rcx, [rdi + 112]",
            "mov rdi, [rdi + 64]",
            "swapgs",
            "iretq",
            in("rdi") ctx.regs.as_ptr(),
            current_fx = const percpu::CURRENT_FX,
            ss = const USER_DATA_SELECTOR as u64,
            cs = const USER_CODE_SELECTOR as u64,
            options(noreturn)
        )
    }
}
