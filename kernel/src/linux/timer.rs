//! The preemption timer: each CPU's local APIC timer, periodic, on vector
//! [`TIMER_VECTOR`]. It interrupts ring 3 (the kernel runs with interrupts
//! off), saves the thread's registers and FPU state on its kernel stack
//! and lets the scheduler run another thread; or it ends an idle CPU's
//! `hlt`, so that it looks for a thread again.

use core::arch::global_asm;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::apic;
use crate::{arch, clock, exceptions};

/// The timer's vector: the first after the CPU's exceptions.
pub const TIMER_VECTOR: u8 = 32;
/// The APIC's spurious-interrupt vector.
const SPURIOUS_VECTOR: u8 = 0xff;
/// How long a thread runs before another gets the CPU.
const QUANTUM_MICROS: u64 = 4_000;

/// The APIC timer's initial count for one quantum, measured by the boot
/// CPU and used by every CPU.
static QUANTUM_COUNT: AtomicU32 = AtomicU32::new(0);
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

extern "C" {
    fn mayfly_timer_interrupt();
    fn mayfly_spurious_interrupt();
}

// From ring 3, on the running thread's kernel stack (IST 0, TSS.rsp0):
// the CPU has pushed SS, RSP, RFLAGS, CS, RIP (40 bytes, from a 16-byte
// aligned top), and the 15 pushes below keep the stack aligned for the
// call. From ring 0 (only ever an idle CPU's `hlt`), it just acknowledges.
global_asm!(
    r#"
    .section .text.timer, "ax"
    .global mayfly_timer_interrupt
mayfly_timer_interrupt:
    test qword ptr [rsp + 8], 3
    jz 1f
    swapgs
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
    mov rax, gs:[{current_fx}]
    fxsave [rax]
    call {tick}
    mov rax, gs:[{current_fx}]
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
    swapgs
    iretq
1:
    push rax
    movabs rax, {apic_eoi}
    mov dword ptr [rax], 0
    pop rax
    iretq
    .global mayfly_spurious_interrupt
mayfly_spurious_interrupt:
    iretq
    "#,
    tick = sym timer_tick,
    current_fx = const crate::percpu::CURRENT_FX,
    apic_eoi = const apic::register_address(apic::EOI),
);

extern "C" fn timer_tick() {
    apic::eoi();
    super::smp::enter_kernel();
    super::sched::tick();
    super::smp::leave_kernel();
}

/// TSC time when [`start_calibration`] set the APIC counting.
static CALIBRATION_START: AtomicU64 = AtomicU64::new(0);

/// Sets the local APIC's timer counting down, masked, so that [`init`]
/// can tell its rate from how far it got meanwhile: the calibration
/// overlaps the process's start instead of waiting.
pub fn start_calibration() {
    apic::write(apic::SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    apic::write(apic::TIMER_DIVIDE, 0x3); // divide by 16
    apic::write(apic::LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    apic::write(apic::TIMER_INITIAL, u32::MAX);
    CALIBRATION_START.store(clock::micros(), Ordering::Relaxed);
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
    let start = CALIBRATION_START.load(Ordering::Relaxed);
    while clock::micros() - start < 250 {
        arch::pause();
    }
    let elapsed = (clock::micros() - start).max(1);
    let counted = u64::from(u32::MAX - apic::read(apic::TIMER_CURRENT)).max(1);
    let count = (counted * QUANTUM_MICROS / elapsed).clamp(1, u64::from(u32::MAX)) as u32;
    QUANTUM_COUNT.store(count, Ordering::Relaxed);
    start_this_cpu();
}

/// Starts this CPU's timer, periodic, at the rate [`init`] measured (the
/// APIC enabled first: the other CPUs' come up disabled).
pub fn start_this_cpu() {
    apic::write(apic::SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    apic::write(apic::TIMER_DIVIDE, 0x3);
    apic::write(apic::LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    apic::write(apic::TIMER_INITIAL, QUANTUM_COUNT.load(Ordering::Relaxed));
}
