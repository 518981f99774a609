//! A monotonic clock: the TSC, with its rate taken from the hypervisor's
//! CPUID timing leaves where present, or else measured against the PIT.
//!
//! PIT calibration is overlapped with boot: channel 0 starts counting down
//! in the first instructions of `kernel_main`, and the rate is computed once
//! the devices are up, so measuring costs no waiting unless boot took under
//! [`MIN_CALIBRATION_TICKS`].

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, cpuid, inb, outb, rdtsc};

/// The PIT's input clock, in Hz.
const PIT_HZ: u64 = 1_193_182;
/// The fewest PIT ticks (1 ms) a calibration may rest on: one tick of
/// reading error is then under 0.1%.
const MIN_CALIBRATION_TICKS: u64 = 1_193;
/// Used only if no source works at all.
const FALLBACK_TSC_HZ: u64 = 2_000_000_000;

// Channel 0, not the customary channel 2: `microvm` has no port 0x61 (the
// speaker gate that channel 2 needs). Interrupts stay off, so channel 0's
// IRQ at terminal count is never delivered.
const PIT_CHANNEL0: u16 = 0x40;
const PIT_COMMAND: u16 = 0x43;
/// Channel 0, low then high byte, mode 0 (one-shot), binary.
const PIT_START_ONE_SHOT: u8 = 0b0011_0000;
/// Read-back: latch the count and the status of channel 0.
const PIT_READ_BACK: u8 = 0b1100_0010;
/// In the status byte: the channel's output, high once the count ran out.
const PIT_STATUS_OUT: u8 = 0x80;

static TSC_AT_START: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Starts PIT channel 0 counting down from 0xffff (one-shot, mode 0).
pub fn start_calibration() {
    // SAFETY: ports 0x40 and 0x43 are the PIT; no memory is involved.
    unsafe {
        outb(PIT_COMMAND, PIT_START_ONE_SHOT);
        outb(PIT_CHANNEL0, 0xff);
        outb(PIT_CHANNEL0, 0xff);
    }
    TSC_AT_START.store(rdtsc(), Ordering::Relaxed);
}

/// Ticks elapsed on channel 0, or `None` once it has run out (55 ms).
fn pit_elapsed() -> Option<u64> {
    // SAFETY: PIT ports, as above. The read-back command latches status
    // and count together; they are read in that order.
    let (count, out) = unsafe {
        outb(PIT_COMMAND, PIT_READ_BACK);
        let status = inb(PIT_CHANNEL0);
        let lo = inb(PIT_CHANNEL0);
        let hi = inb(PIT_CHANNEL0);
        (
            u64::from(lo) | (u64::from(hi) << 8),
            status & PIT_STATUS_OUT != 0,
        )
    };
    if out {
        None
    } else {
        Some(0xffff - count)
    }
}

/// The TSC rate from CPUID, if the hypervisor or CPU states it.
fn tsc_hz_from_cpuid() -> Option<u64> {
    let hypervisor = cpuid(1).ecx & (1 << 31) != 0;
    if hypervisor && cpuid(0x4000_0000).eax >= 0x4000_0010 {
        let khz = cpuid(0x4000_0010).eax;
        if khz != 0 {
            return Some(u64::from(khz) * 1000);
        }
    }
    if cpuid(0).eax >= 0x15 {
        let leaf = cpuid(0x15);
        if leaf.eax != 0 && leaf.ebx != 0 && leaf.ecx != 0 {
            return Some(u64::from(leaf.ecx) * u64::from(leaf.ebx) / u64::from(leaf.eax));
        }
    }
    None
}

/// Fixes the TSC rate. Call once the devices are up; waits only if boot so
/// far took less than 1 ms.
pub fn finish_calibration() {
    let hz = tsc_hz_from_cpuid().unwrap_or_else(|| {
        loop {
            let start = TSC_AT_START.load(Ordering::Relaxed);
            let tsc = rdtsc();
            match pit_elapsed() {
                Some(ticks) if ticks >= MIN_CALIBRATION_TICKS => {
                    break (tsc - start) * PIT_HZ / ticks;
                }
                Some(_) => arch::pause(),
                None => {
                    // Boot took over 55 ms: measure afresh.
                    start_calibration();
                }
            }
        }
    });
    TSC_HZ.store(
        if hz == 0 { FALLBACK_TSC_HZ } else { hz },
        Ordering::Relaxed,
    );
}

/// Microseconds since boot.
pub fn micros() -> u64 {
    let hz = match TSC_HZ.load(Ordering::Relaxed) {
        0 => FALLBACK_TSC_HZ,
        hz => hz,
    };
    let ticks = rdtsc().wrapping_sub(TSC_AT_START.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000 / u128::from(hz)) as u64
}

/// Milliseconds since boot.
pub fn millis() -> u64 {
    micros() / 1000
}
