//! The Linux personality: runs an unmodified static x86_64 Linux program
//! from the package in ring 3, answering its syscalls.
//!
//! The pure parts (the ELF load plan, the initial stack, the address
//! space's regions, the file system, the descriptor table, Linux's
//! layouts) are the `mayfly-linux` crate, tested on the host. This module
//! adds what needs the machine:
//!
//! - [`paging`]: the program's page tables, filled on demand;
//! - [`entry`]: ring 3 and the `syscall` entry;
//! - [`memory`]: demand paging and copying to and from the program;
//! - [`syscall`]: the dispatch table, one file per syscall family;
//! - [`process`]: the process's state, its start and its end;
//! - [`sched`]: threads and their scheduler; [`timer`]: preemption;
//!   [`interrupt`]: the timer's and the signal kick's interrupts;
//! - [`smp`]: the other CPUs, the kernel lock, TLB shootdowns.

use alloc::format;
use core::fmt;

use mayfly_proto::exit;

use crate::boot::BootInfo;
use crate::exceptions::Frame;
use crate::{arch, console};

pub mod apic;
pub mod datagram;
pub mod entry;
pub mod interrupt;
pub mod memory;
pub mod net;
pub mod paging;
pub mod pipe;
pub mod process;
pub mod sched;
pub mod signal;
pub mod smp;
pub mod syscall;
pub mod timer;

/// From boot to power-off, for a Linux program.
pub fn run(boot: &'static BootInfo) -> ! {
    process::start(boot)
}

/// Reports a fatal error of the kernel on COM1 and ends the VM.
pub fn fatal(message: fmt::Arguments) -> ! {
    console::flush();
    console::kernel_line(format_args!("fatal: {message}"));
    arch::power_off(exit::FATAL)
}

/// An exception raised by the program: a page touched for the first time
/// is mapped and the program resumes; a fault its handler takes (Go's
/// nil-dereference panic, Rust's stack-overflow report) goes to that
/// handler; anything else ends it with the signal Linux would send.
pub fn user_exception(frame: &mut Frame) {
    use mayfly_proto::exit::signal::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
    const PAGE_FAULT: u64 = 14;
    let mut fault = signal::Fault {
        signal: SIGSEGV,
        code: 0x80, // SI_KERNEL
        addr: 0,
        trapno: frame.vector,
        err: frame.error_code,
    };
    if frame.vector == PAGE_FAULT {
        let addr = crate::exceptions::fault_address();
        let write = frame.error_code & 2 != 0;
        let fetch = frame.error_code & 16 != 0;
        fault.code = match process::with(|p| p.fault_in(addr, write, fetch)) {
            Some(Ok(())) => return,
            Some(Err(memory::FaultError::OutOfMemory)) => process::out_of_memory(),
            Some(Err(memory::FaultError::Denied)) => 2, // SEGV_ACCERR
            _ => 1,                                     // SEGV_MAPERR
        };
        fault.addr = addr;
    } else {
        (fault.signal, fault.code) = match frame.vector {
            0 => (SIGFPE, 1),      // FPE_INTDIV
            1 | 3 => (SIGTRAP, 1), // TRAP_BRKPT
            6 => (SIGILL, 2),      // ILL_ILLOPN
            16 | 19 => (SIGFPE, 0),
            17 => (SIGBUS, 1), // BUS_ADRALN
            _ => (SIGSEGV, 0x80),
        };
        if fault.signal != SIGSEGV {
            fault.addr = frame.rip;
        }
    }
    let mut ctx = signal::Context::of_interrupt(frame);
    let fx = crate::exceptions::interrupted_fpu();
    if let Some(Ok(true)) = process::with(|p| signal::deliver(p, fault, &mut ctx, &fx)) {
        ctx.enter(frame);
        return;
    }
    console::flush();
    if frame.vector == PAGE_FAULT {
        console::kernel_line(format_args!(
            "segmentation fault at {:#x} (rip {:#x}, {})",
            fault.addr,
            frame.rip,
            if frame.error_code & 2 != 0 {
                "write"
            } else if frame.error_code & 16 != 0 {
                "instruction fetch"
            } else {
                "read"
            }
        ));
    } else {
        let message = format!(
            "{} at rip {:#x} (vector {}, error code {:#x})",
            crate::exceptions::vector_name(frame.vector),
            frame.rip,
            frame.vector,
            frame.error_code
        );
        console::kernel_line(format_args!("{message}"));
    }
    process::killed(fault.signal)
}
