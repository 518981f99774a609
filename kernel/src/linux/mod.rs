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
//! - [`sched`]: threads and their scheduler; [`timer`]: preemption.

use alloc::format;
use core::fmt;

use mayfly_proto::exit;

use crate::boot::BootInfo;
use crate::exceptions::Frame;
use crate::{arch, console};

pub mod entry;
pub mod memory;
pub mod net;
pub mod paging;
pub mod pipe;
pub mod process;
pub mod sched;
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
/// is mapped and the program resumes; anything else ends it with the
/// signal Linux would send.
pub fn user_exception(frame: &mut Frame) {
    use mayfly_proto::exit::signal::{SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP};
    const PAGE_FAULT: u64 = 14;
    if frame.vector == PAGE_FAULT {
        let addr = crate::exceptions::fault_address();
        let write = frame.error_code & 2 != 0;
        let fetch = frame.error_code & 16 != 0;
        match process::with(|p| p.fault_in(addr, write, fetch)) {
            Some(Ok(())) => return,
            Some(Err(memory::FaultError::OutOfMemory)) => process::out_of_memory(),
            _ => {}
        }
        console::flush();
        console::kernel_line(format_args!(
            "segmentation fault at {addr:#x} (rip {:#x}, {})",
            frame.rip,
            if write {
                "write"
            } else if fetch {
                "instruction fetch"
            } else {
                "read"
            }
        ));
        process::killed(SIGSEGV);
    }
    let signal = match frame.vector {
        0 => SIGFPE,
        3 | 1 => SIGTRAP,
        6 => SIGILL,
        16 | 19 => SIGFPE,
        17 => SIGBUS,
        _ => SIGSEGV,
    };
    console::flush();
    let message = format!(
        "{} at rip {:#x} (vector {}, error code {:#x})",
        crate::exceptions::vector_name(frame.vector),
        frame.rip,
        frame.vector,
        frame.error_code
    );
    console::kernel_line(format_args!("{message}"));
    process::killed(signal)
}
