//! Mayfly's host: the VM layer shared by `mayfly run` and the coming
//! service.
//!
//! One invocation boots one fresh QEMU `microvm` running a unikernel image,
//! serves it the Lambda Runtime API over a private network that exists only
//! between this process and that VM, and destroys the VM as soon as it has
//! answered. [`invoke::invoke`] is the entry point; the other modules are its
//! parts, each usable and testable on its own:
//!
//! - [`accel`]: KVM or TCG, decided by probing the host.
//! - [`package`]: an `image.elf` or a Lambda-style `package.zip`, validated.
//! - [`qemu`]: the QEMU command line and the child process.
//! - [`console`]: the guest console, captured with a hard cap.
//! - [`net`]: the host side of the VM's network (smoltcp on a socket pair).
//! - [`runtime_api`]: the Lambda Runtime API server, as a state machine.
//! - [`report`]: Lambda-style `START`/`END`/`REPORT` log lines.
//!
//! And the client side of the service:
//!
//! - [`credentials`]: the host's access key pair (environment or
//!   `<data-dir>/credentials`), shared by `mayfly serve` and the client.
//! - [`client`]: a SigV4-signed client of the Lambda REST API.
//! - [`commands`]: `mayfly deploy`, `invoke`, `ls`, `rm` and `logs`.
#![deny(missing_docs)]

pub mod accel;
pub mod client;
pub mod commands;
pub mod console;
pub mod credentials;
pub mod invoke;
pub mod net;
pub mod package;
pub mod qemu;
pub mod report;
pub mod runtime_api;
pub mod serve;

#[doc(hidden)]
pub mod testing;
