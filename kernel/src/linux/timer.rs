//! The preemption timer: the local APIC's, periodic, on vector
//! [`TIMER_VECTOR`]. It only ever interrupts ring 3 (the kernel runs with
//! interrupts off), saves the thread's registers and FPU state on its
//! kernel stack and lets the scheduler run another thread.

use core::arch::global_asm;

use crate::{arch, clock, exceptions, heap};

/// The timer's vector: the first after the CPU's exceptions.
pub const TIMER_VECTOR: u8 = 32;
/// The APIC's spurious-interrupt vector.
const SPURIOUS_VECTOR: u8 = 0xff;
/// How long a thread runs before another gets the CPU.
const QUANTUM_MICROS: u64 = 4_000;

/// The local APIC's registers (xAPIC, memory-mapped).
const APIC_BASE: u64 = 0xfee0_0000;
const APIC_EOI: u64 = 0xb0;
const APIC_SVR: u64 = 0xf0;
const APIC_LVT_TIMER: u64 = 0x320;
const APIC_TIMER_INITIAL: u64 = 0x380;
const APIC_TIMER_CURRENT: u64 = 0x390;
const APIC_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

fn apic_write(reg: u64, value: u32) {
    // SAFETY: the local APIC's register page, reached through the alias of
    // physical memory; these writes configure only the timer, EOI and the
    // spurious vector.
    unsafe { core::ptr::write_volatile(heap::phys_to_virt(APIC_BASE + reg) as *mut u32, value) };
}

fn apic_read(reg: u64) -> u32 {
    // SAFETY: as for `apic_write`; reading these registers has no effect.
    unsafe { core::ptr::read_volatile(heap::phys_to_virt(APIC_BASE + reg) as *const u32) }
}

extern "C" {
    fn mayfly_timer_interrupt();
    fn mayfly_spurious_interrupt();
}

// Entered from ring 3 only, on the running thread's kernel stack (IST 0,
// TSS.rsp0): the CPU has pushed SS, RSP, RFLAGS, CS, RIP (40 bytes, from a
// 16-byte aligned top), and the 15 pushes below keep the stack aligned for
// the call.
global_asm!(
    r#"
    .section .text.timer, "ax"
    .global mayfly_timer_interrupt
mayfly_timer_interrupt:
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rax, [rip + MAYFLY_CURRENT_FX]
    fxsave [rax]
    call {tick}
    mov rax, [rip + MAYFLY_CURRENT_FX]
    fxrstor [rax]
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    iretq
    .global mayfly_spurious_interrupt
mayfly_spurious_interrupt:
    iretq
    "#,
    tick = sym timer_tick,
);

extern "C" fn timer_tick() {
    apic_write(APIC_EOI, 0);
    super::sched::tick();
}

/// TSC time when [`start_calibration`] set the APIC counting.
static CALIBRATION_START: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Sets the local APIC's timer counting down, masked, so that [`init`]
/// can tell its rate from how far it got meanwhile: the calibration
/// overlaps the process's start instead of waiting.
pub fn start_calibration() {
    apic_write(APIC_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    apic_write(APIC_TIMER_DIVIDE, 0x3); // divide by 16
    apic_write(APIC_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    apic_write(APIC_TIMER_INITIAL, u32::MAX);
    CALIBRATION_START.store(clock::micros(), core::sync::atomic::Ordering::Relaxed);
}

/// Masks the legacy PIC (its vectors would collide with the CPU's
/// exceptions), and starts the local APIC's timer, periodic, with its rate
/// measured against the TSC since [`start_calibration`] (waiting only if
/// that was under 250 µs ago).
pub fn init() {
    // SAFETY: the 8259's data ports: writing 0xff masks every line.
    unsafe {
        arch::outb(0x21, 0xff);
        arch::outb(0xa1, 0xff);
    }
    exceptions::set_interrupt_handler(TIMER_VECTOR, mayfly_timer_interrupt as *const () as u64);
    exceptions::set_interrupt_handler(
        SPURIOUS_VECTOR,
        mayfly_spurious_interrupt as *const () as u64,
    );
    let start = CALIBRATION_START.load(core::sync::atomic::Ordering::Relaxed);
    while clock::micros() - start < 250 {
        arch::pause();
    }
    let elapsed = (clock::micros() - start).max(1);
    let counted = u64::from(u32::MAX - apic_read(APIC_TIMER_CURRENT)).max(1);
    let count = (counted * QUANTUM_MICROS / elapsed).clamp(1, u64::from(u32::MAX)) as u32;
    apic_write(APIC_LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    apic_write(APIC_TIMER_INITIAL, count);
}
