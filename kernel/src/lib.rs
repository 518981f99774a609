//! Mayfly's unikernel: a library OS that a function links to become a
//! bootable image.
//!
//! The image is booted by QEMU (`microvm`, PVH entry), lives for one event
//! and powers off:
//!
//! 1. [`boot`] enters long mode with SSE on, zeroes `.bss`, and copies the
//!    command line and memory map;
//! 2. [`boot`] also unmaps a guard page below the stack, and [`heap`] puts
//!    the heap over all the VM's RAM;
//! 3. [`virtio`] finds the console and the network card, [`console`] takes
//!    the console, [`clock`] calibrates the TSC;
//!    [`fwcfg`] reads the function's environment from QEMU's `fw_cfg`;
//! 4. [`net`] brings up smoltcp with the host-given addresses and
//!    [`runtime`] asks the host's Lambda Runtime API for the event, runs
//!    the function registered with [`entry!`], posts the result, powers off.
//!
//! A function is written against [`sdk`]: see there for an example.
#![no_std]
#![deny(missing_docs)]

#[doc(hidden)]
pub extern crate alloc;

mod arch;
mod boot;
mod clock;
pub mod console;
mod exceptions;
mod fwcfg;
mod global;
mod heap;
mod http;
mod libc_mem;
pub mod linux;
mod net;
mod percpu;
pub mod raw;
mod runtime;
pub mod sdk;
pub mod tcp;
mod virtio;

pub use boot::BootInfo;
pub use sdk::{Context, Error};

/// Runs a native function (what [`entry!`] starts).
#[doc(hidden)]
pub fn start_native(boot: &'static BootInfo) -> ! {
    runtime::run(boot.cmdline())
}

/// Makes the image the generic kernel for Linux functions: it boots, reads
/// the package from the initrd and runs the program the boot configuration
/// names (see [`linux`]).
#[macro_export]
macro_rules! linux_entry {
    () => {
        #[no_mangle]
        fn __mayfly_start(boot: &'static $crate::BootInfo) -> ! {
            $crate::linux::run(boot)
        }
    };
}

/// Milliseconds since the VM booted, from the calibrated TSC.
pub fn uptime_ms() -> u64 {
    clock::millis()
}
