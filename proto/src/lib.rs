//! What Mayfly's supervisor and its unikernel guests agree on.
//!
//! Both sides link this crate, so a convention cannot drift between them:
//!
//! - [`boot`]: the [`BootConfig`](boot::BootConfig) a VM receives on its
//!   kernel command line (network addresses, function identity, memory size,
//!   environment), encoded by the host and decoded by the guest.
//! - [`runtime`]: the Lambda Runtime API paths and headers, plus Mayfly's two
//!   extension headers.
//! - [`net`]: the addresses and port of the VM's private network.
//! - [`exit`]: the `isa-debug-exit` port, the exit codes the guest writes
//!   there and the QEMU exit statuses they become.
//! - [`console`]: COM1 and the prefix of the kernel's own console lines.
//! - [`date`]: calendar dates from day numbers and back.
//! - [`limits`]: Lambda's limits (payloads, memory, timeout, environment,
//!   package sizes, tags).
//! - [`pack`]: the flat archive a Linux function's package becomes for its
//!   VM (the initrd), written by the host and read in place by the guest.
//!
//! The crate is `no_std` with `alloc`, so the guest can use it as is.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod date;
pub mod exit;
pub mod limits;
pub mod net;
pub mod pack;
pub mod runtime;
