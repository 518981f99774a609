//! The local APIC (xAPIC, memory-mapped, reached through the alias of
//! physical memory): its timer, end of interrupt, and inter-processor
//! interrupts.

use crate::heap;

/// The local APIC's registers' physical base.
const APIC_BASE: u64 = 0xfee0_0000;
/// Local APIC ID (bits 24..32).
pub const ID: u64 = 0x20;
/// End of interrupt.
pub const EOI: u64 = 0xb0;
/// Spurious-interrupt vector (and the APIC's enable bit).
pub const SVR: u64 = 0xf0;
/// Interrupt command, low half (writing it sends).
const ICR_LOW: u64 = 0x300;
/// Interrupt command, high half (the destination).
const ICR_HIGH: u64 = 0x310;
/// The timer's local vector table entry.
pub const LVT_TIMER: u64 = 0x320;
/// The timer's initial count.
pub const TIMER_INITIAL: u64 = 0x380;
/// The timer's current count.
pub const TIMER_CURRENT: u64 = 0x390;
/// The timer's divider.
pub const TIMER_DIVIDE: u64 = 0x3e0;
/// ICR: the previous command is still being delivered.
const ICR_PENDING: u32 = 1 << 12;

/// The alias address of a register (for the assembly stubs, which cannot
/// call [`write`]).
pub const fn register_address(reg: u64) -> u64 {
    crate::boot::PHYS_OFFSET + APIC_BASE + reg
}

/// Writes a register.
pub fn write(reg: u64, value: u32) {
    // SAFETY: the local APIC's register page, reached through the alias of
    // physical memory; the kernel writes only its timer, EOI, the spurious
    // vector and the interrupt command, none of which touches memory.
    unsafe { core::ptr::write_volatile(heap::phys_to_virt(APIC_BASE + reg) as *mut u32, value) };
}

/// Reads a register.
pub fn read(reg: u64) -> u32 {
    // SAFETY: as for `write`; reading these registers has no effect.
    unsafe { core::ptr::read_volatile(heap::phys_to_virt(APIC_BASE + reg) as *const u32) }
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    write(EOI, 0);
}

/// Where an inter-processor interrupt goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination {
    /// The CPU with this APIC ID.
    Cpu(u8),
    /// Every CPU but the sender.
    AllButSelf,
}

/// Sends `command` (vector and delivery mode bits of the ICR) to
/// `destination`, after the previous command has left.
pub fn send(destination: Destination, command: u32) {
    while read(ICR_LOW) & ICR_PENDING != 0 {
        crate::arch::pause();
    }
    match destination {
        Destination::Cpu(id) => {
            write(ICR_HIGH, u32::from(id) << 24);
            write(ICR_LOW, command);
        }
        Destination::AllButSelf => {
            write(ICR_HIGH, 0);
            write(ICR_LOW, command | (0b11 << 18));
        }
    }
}
