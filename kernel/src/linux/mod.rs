//! The Linux personality: runs an unmodified static x86_64 Linux program
//! from the package in ring 3, answering its syscalls.

use crate::boot::BootInfo;
use crate::{arch, console};
use mayfly_proto::exit;

/// From boot to power-off, for a Linux program.
pub fn run(_boot: &'static BootInfo) -> ! {
    console::kernel_line(format_args!(
        "fatal: the Linux personality is not built yet"
    ));
    arch::power_off(exit::FATAL)
}
