//! The preemption timer: each CPU's local APIC timer, periodic, on vector
//! [`TIMER_VECTOR`], calibrated against the TSC. Its interrupt is handled
//! in [`super::interrupt`].

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::apic;
use crate::{arch, clock};

/// The timer's vector: the first after the CPU's exceptions.
pub const TIMER_VECTOR: u8 = 32;
/// The APIC's spurious-interrupt vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// How long a thread runs before another gets the CPU.
const QUANTUM_MICROS: u64 = 4_000;

/// The APIC timer's initial count for one quantum, measured by the boot
/// CPU and used by every CPU.
static QUANTUM_COUNT: AtomicU32 = AtomicU32::new(0);
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;

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
    super::interrupt::install();
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
