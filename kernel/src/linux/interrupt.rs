//! The interrupts a Linux program's CPUs take: the preemption timer's
//! ([`super::timer`]) and the signal kick, an IPI that makes a CPU running
//! a thread with a signal pending enter the kernel at once to deliver it.
//!
//! From ring 3 the stub saves the thread's registers as an exception's
//! [`Frame`] and its FPU state, takes the kernel lock, and on the way back
//! delivers a signal pending for the thread that runs then. From ring 0
//! (only ever an idle CPU's `hlt`) it just acknowledges: the idle loop
//! looks for work itself.

use core::arch::global_asm;

use super::{apic, process, sched, signal, smp, timer};
use crate::exceptions::{self, restore_general_registers, save_general_registers, Frame};

/// The signal kick's vector.
pub const SIGNAL_VECTOR: u8 = 0xf1;

extern "C" {
    fn mayfly_timer_interrupt();
    fn mayfly_signal_interrupt();
    fn mayfly_spurious_interrupt();
}

// Entered on the running thread's kernel stack (IST 0, TSS.rsp0): the CPU
// has pushed SS, RSP, RFLAGS, CS, RIP (40 bytes, from a 16-byte aligned
// top); an error code and the vector, then the 15 registers, make a
// `Frame` and keep the stack aligned for the call.
global_asm!(
    r#"
    .macro USER_INTERRUPT name, vector, handler
    .section .text.interrupts, "ax"
    .global \name
\name:
    test qword ptr [rsp + 8], 3
    jz 1f
    swapgs
    push 0
    push \vector
    "#,
    save_general_registers!(),
    r#"
    mov rax, gs:[{current_fx}]
    fxsave [rax]
    mov rdi, rsp
    call \handler
    mov rax, gs:[{current_fx}]
    fxrstor [rax]
    "#,
    restore_general_registers!(),
    r#"
    add rsp, 16
    swapgs
    iretq
1:
    push rax
    movabs rax, {apic_eoi}
    mov dword ptr [rax], 0
    pop rax
    iretq
    .endm

    USER_INTERRUPT mayfly_timer_interrupt, {timer_vector}, {tick}
    USER_INTERRUPT mayfly_signal_interrupt, {signal_vector}, {kick}

    .global mayfly_spurious_interrupt
mayfly_spurious_interrupt:
    iretq
    "#,
    tick = sym timer_tick,
    kick = sym signal_kick,
    timer_vector = const timer::TIMER_VECTOR,
    signal_vector = const SIGNAL_VECTOR,
    current_fx = const crate::percpu::CURRENT_FX,
    apic_eoi = const apic::register_address(apic::EOI),
);

/// Points the timer's, the signal kick's and the APIC's spurious vectors
/// at their stubs (the boot CPU, before the others start).
pub fn install() {
    exceptions::set_interrupt_handler(
        timer::TIMER_VECTOR,
        mayfly_timer_interrupt as *const () as u64,
    );
    exceptions::set_interrupt_handler(SIGNAL_VECTOR, mayfly_signal_interrupt as *const () as u64);
    exceptions::set_interrupt_handler(
        timer::SPURIOUS_VECTOR,
        mayfly_spurious_interrupt as *const () as u64,
    );
}

/// The timer's tick from ring 3: another thread gets the CPU.
extern "C" fn timer_tick(frame: *mut Frame) {
    apic::eoi();
    smp::enter_kernel();
    sched::tick();
    deliver_pending(frame);
    smp::leave_kernel();
}

/// The signal kick from ring 3: the thread gets its signal now.
extern "C" fn signal_kick(frame: *mut Frame) {
    apic::eoi();
    smp::enter_kernel();
    deliver_pending(frame);
    smp::leave_kernel();
}

/// A signal pending for the thread that runs now enters its handler when
/// the interrupt returns.
fn deliver_pending(frame: *mut Frame) {
    if sched::current().pending == 0 {
        return;
    }
    // SAFETY: the stub passes the frame it built on this thread's kernel
    // stack (the thread resumed here after any switch is the one that was
    // interrupted), which nothing else uses until the stub pops it.
    let frame = unsafe { &mut *frame };
    let mut ctx = signal::Context::of_interrupt(frame);
    let fx = *sched::current_fx();
    if process::with(|p| signal::deliver_pending(p, &mut ctx, &fx)) == Some(true) {
        ctx.enter(frame);
    }
}

/// Makes `cpu`, the CPU running a thread (if another CPU than this one), enter the
/// kernel now, so that a signal just sent reaches it without waiting for
/// its next tick.
pub fn kick(cpu: Option<usize>) {
    if let Some(cpu) = cpu.filter(|&c| c != crate::percpu::index()) {
        apic::send(apic::Destination::Cpu(cpu as u8), u32::from(SIGNAL_VECTOR));
    }
}
