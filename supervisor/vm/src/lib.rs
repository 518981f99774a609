//! Mayfly's VM layer: one invocation in one fresh VM.
//!
//! One invocation boots one fresh QEMU `microvm` running a unikernel image,
//! serves it the Lambda Runtime API over a private network that exists only
//! between this process and that VM, and destroys the VM as soon as it has
//! answered. [`run::run`] is the entry point (and [`run::boot`] with
//! [`run::BootedVm::deliver`] the same path in two steps, for VMs booted
//! ahead of their event); [`QemuRunner`] offers both to the host as its
//! [`mayfly_runner::Runner`]. The other modules are its parts, each usable
//! and testable on its own:
//!
//! - [`accel`]: KVM or TCG, decided by probing the host.
//! - [`qemu`]: the QEMU command line and the child process.
//! - [`jail`]: the jail QEMU runs in (identity, namespaces, root,
//!   seccomp, cgroups, rlimits), as far as the host allows.
//! - [`console`]: the guest console, captured with a hard cap.
//! - [`net`]: the host side of the VM's network (smoltcp on a socket pair).
//! - [`runtime_api`]: the Lambda Runtime API server, as a state machine.
//! - [`sweep`]: QEMU processes left behind by an earlier host, killed.
//! - [`sys`]: the raw system calls all of these need, behind safe functions.
//!
//! What a package is, the invocation's types and REPORT lines are shared
//! with the host through `mayfly-runner`. It knows nothing of HTTP APIs or
//! stored state: the host above it decides
//! what runs, and when.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod accel;
pub mod console;
pub mod egress;
pub mod jail;
pub mod net;
pub mod qemu;
mod qemu_runner;
pub mod run;
pub mod runtime_api;
pub mod sweep;
#[allow(unsafe_code)]
pub mod sys;

pub use qemu_runner::QemuRunner;
