//! What Mayfly's supervisor and its unikernel guests agree on.
//!
//! Both sides link this crate, so an encoding cannot drift between them:
//!
//! - [`boot`]: the [`BootConfig`](boot::BootConfig) a VM receives on its
//!   kernel command line (network addresses, function identity, memory size,
//!   environment), encoded by the host and decoded by the guest.
//! - [`runtime`]: the Lambda Runtime API paths and headers, plus Mayfly's two
//!   extension headers.
//!
//! The crate is `no_std` with `alloc`, so the guest can use it as is.
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod boot;
pub mod runtime;
