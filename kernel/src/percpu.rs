//! Each CPU's own kernel state, reached through GS.
//!
//! In the kernel, GS's base is the running CPU's [`PerCpu`]; in ring 3 it
//! is the program's, and `swapgs` exchanges the two at every crossing (the
//! entries from ring 3 and the returns to it). The entry code reads the
//! fields at fixed offsets ([`USER_RSP`], [`KSTACK_TOP`], [`CURRENT_FX`],
//! [`EXCEPTION_FX`]) before any register is free, so the layout is part of
//! its contract.

use core::arch::asm;
use core::ptr::addr_of_mut;

/// The most CPUs the kernel runs on (Lambda gives at most 6).
pub const MAX_CPUS: usize = 8;

/// Offset of the scratch slot where the `syscall` entry parks the
/// program's stack pointer.
pub const USER_RSP: usize = 0;
/// Offset of the running thread's kernel stack top.
pub const KSTACK_TOP: usize = 8;
/// Offset of the pointer to the running thread's FPU save area.
pub const CURRENT_FX: usize = 16;
/// Offset of the pointer to this CPU's exception FPU save area.
pub const EXCEPTION_FX: usize = 24;
/// Offset of this CPU's index.
const INDEX: usize = 32;

/// One CPU's state; the entry code's view of it (see the offsets above).
#[repr(C, align(64))]
pub struct PerCpu {
    user_rsp: u64,
    kstack_top: u64,
    current_fx: u64,
    exception_fx: u64,
    index: u64,
}

const _: () = {
    assert!(core::mem::offset_of!(PerCpu, user_rsp) == USER_RSP);
    assert!(core::mem::offset_of!(PerCpu, kstack_top) == KSTACK_TOP);
    assert!(core::mem::offset_of!(PerCpu, current_fx) == CURRENT_FX);
    assert!(core::mem::offset_of!(PerCpu, exception_fx) == EXCEPTION_FX);
    assert!(core::mem::offset_of!(PerCpu, index) == INDEX);
};

static mut PER_CPU: [PerCpu; MAX_CPUS] = [const {
    PerCpu {
        user_rsp: 0,
        kstack_top: 0,
        current_fx: 0,
        exception_fx: 0,
        index: 0,
    }
}; MAX_CPUS];

const MSR_GS_BASE: u32 = 0xC000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xC000_0102;

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: only GS's two base MSRs are written here, with this CPU's
    // area (which stays valid for the VM's life) or the program's initial
    // zero.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags));
    }
}

/// Makes CPU `index`'s area GS's base (and the program's GS base zero),
/// with `exception_fx` as where its exceptions save the FPU state. Called
/// once by each CPU, first thing, before any exception can come.
pub fn init(index: usize, exception_fx: u64) {
    assert!(index < MAX_CPUS);
    // SAFETY: each CPU writes only its own entry, once, before it reads it
    // through GS; no other CPU touches that entry.
    let area = unsafe { &mut (*addr_of_mut!(PER_CPU))[index] };
    area.index = index as u64;
    area.exception_fx = exception_fx;
    wrmsr(MSR_GS_BASE, area as *mut PerCpu as u64);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}

/// The running CPU's index (0 for the boot CPU).
pub fn index() -> usize {
    let index: u64;
    // SAFETY: in the kernel GS's base is this CPU's area (see the module
    // docs), whose `index` field is at INDEX.
    unsafe {
        asm!("mov {}, gs:[{off}]", out(reg) index, off = const INDEX,
            options(nostack, preserves_flags, readonly))
    };
    index as usize
}

/// Points the entry code at the thread this CPU now runs: its kernel
/// stack top and its FPU save area.
pub fn set_thread(kstack_top: u64, fx: u64) {
    // SAFETY: this CPU's own area, through GS, written with interrupts off
    // (the kernel's state): no entry can observe it half-written.
    unsafe {
        asm!("mov gs:[{k}], {top}", "mov gs:[{f}], {fx}",
            top = in(reg) kstack_top, fx = in(reg) fx,
            k = const KSTACK_TOP, f = const CURRENT_FX,
            options(nostack, preserves_flags));
    }
}
