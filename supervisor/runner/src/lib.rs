//! The contract between Mayfly's host and a VM layer.
//!
//! The host decides what runs and when; a VM layer ([`Runner`]) runs it,
//! each invocation in a fresh VM. Between the two: what to run
//! ([`invocation::RunRequest`], [`invocation::VmTemplate`] for a VM booted
//! ahead of its event), how it ended ([`invocation::InvocationOutcome`]),
//! what a package is ([`package`] for an image or zip on disk, [`upload`]
//! for a zip as a client uploads it) and Lambda's `REPORT` lines
//! ([`report`]). The host links none of a VM layer's machinery (QEMU,
//! the VM's network stack): `mayfly-vm` implements [`Runner`] and the
//! binary hands it to the host.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod elf;
pub mod invocation;
pub mod linux;
pub mod pack;
pub mod package;
pub mod report;
pub mod upload;

#[doc(hidden)]
pub mod bomb;
#[doc(hidden)]
pub mod testing;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

pub use invocation::{
    EgressPlan, InvocationOutcome, InvocationResult, ResponseSink, RunError, RunRequest,
    StreamSink, VmTemplate,
};

/// A boxed future, as the traits return them.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Completes when the caller gives up on an invocation (its client went
/// away): the VM is then killed.
pub type Cancel = BoxFuture<()>;

/// Runs invocations, each in a VM that has run nothing before.
pub trait Runner: Send + Sync + Debug + 'static {
    /// Boots a fresh VM for `request`, delivers its event, and runs it to
    /// its end (or until `cancel` completes: [`RunError::Cancelled`]). The
    /// VM is gone when the future completes, or when it is dropped.
    fn run(
        &self,
        request: RunRequest,
        cancel: Cancel,
    ) -> BoxFuture<Result<InvocationOutcome, RunError>>;

    /// Boots a fresh VM for `template` and keeps it waiting for its one
    /// event (provisioned concurrency). Fails with [`RunError::Boot`] when
    /// the guest ends or fails its init before asking for its event.
    fn boot(&self, template: VmTemplate) -> BoxFuture<Result<Box<dyn WarmVm>, RunError>>;
}

/// A VM booted ahead of its event, waiting for it: ready to serve exactly
/// one. Dropping it kills the VM.
pub trait WarmVm: Send + Debug {
    /// VM spawn to its first request for an event.
    fn init_duration(&self) -> Duration;

    /// Whether the VM still runs; one that died while waiting must not be
    /// given an event.
    fn is_alive(&mut self) -> bool;

    /// Delivers `event` and runs the invocation to its end, as
    /// [`Runner::run`] does from delivery on; the outcome has no init
    /// duration (the init happened before the invocation).
    fn deliver(
        self: Box<Self>,
        event: Bytes,
        request_id: String,
        invoked_arn: String,
        timeout: Duration,
        stream: Option<ResponseSink>,
        cancel: Cancel,
    ) -> BoxFuture<Result<InvocationOutcome, RunError>>;

    /// Kills the VM and waits until it is gone.
    fn shutdown(self: Box<Self>) -> BoxFuture<()>;
}
