//! The few x86_64 instructions the kernel needs, each behind a safe or
//! documented-unsafe function.

use core::arch::asm;

use mayfly_proto::exit::DEBUG_EXIT_PORT;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device whose write has no effect on memory
/// safety (all the ports the kernel uses: COM1, the PIT, isa-debug-exit).
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`]: the port's device must not touch memory on this write
/// (the `fw_cfg` selector).
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for [`outb`]: reading the port must have no effect on memory safety.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter; CR4.TSD is clear at ring 0.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The registers of CPUID's answer that the kernel reads returns for a leaf.
#[derive(Debug, Clone, Copy)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
}

/// Executes CPUID for `leaf`, sub-leaf 0.
pub fn cpuid(leaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
    }
}

/// Invalidates the TLB entry for one address.
///
/// # Safety
/// Must only follow a change to the page tables for that address.
pub unsafe fn invlpg(addr: usize) {
    // SAFETY: invalidating a TLB entry is always harmless by itself.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) };
}

/// Ends the VM with one of the exit codes of [`mayfly_proto::exit`]. QEMU
/// exits with status `(code << 1) | 1` through `isa-debug-exit` (at the
/// port the supervisor configures, [`DEBUG_EXIT_PORT`]); where that device
/// is absent, a triple fault ends it instead (the supervisor runs QEMU with
/// `-no-reboot`).
pub fn power_off(code: u8) -> ! {
    // SAFETY: writing to isa-debug-exit terminates the VM; on a machine
    // without the device the port is unassigned and the write is ignored.
    unsafe { outb(DEBUG_EXIT_PORT, code) };
    triple_fault()
}

/// Forces a shutdown by loading an empty IDT and raising an exception.
fn triple_fault() -> ! {
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let empty = Idtr { limit: 0, base: 0 };
    // SAFETY: deliberately unrecoverable: any exception with an empty IDT
    // escalates to a triple fault, which ends the VM.
    unsafe {
        asm!("lidt [{}]", "int3", in(reg) &empty, options(noreturn));
    }
}

/// Spins politely for a moment.
pub fn pause() {
    core::hint::spin_loop();
}
