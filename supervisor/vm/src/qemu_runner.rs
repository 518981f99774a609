//! [`QemuRunner`]: the [`Runner`] the host is given, each invocation in a
//! fresh QEMU VM under the chosen accelerator.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mayfly_runner::{
    BoxFuture, Cancel, InvocationOutcome, RunError, RunRequest, Runner, VmTemplate, WarmVm,
};

use crate::accel::Accel;
use crate::jail::Jail;
use crate::run::{self, BootedVm};

/// Runs invocations in fresh QEMU VMs.
#[derive(Debug, Clone)]
pub struct QemuRunner {
    accel: Accel,
    jail: Arc<Jail>,
}

impl QemuRunner {
    /// A runner whose VMs use `accel` (see [`crate::accel::detect`]),
    /// unjailed.
    pub fn new(accel: Accel) -> QemuRunner {
        QemuRunner::jailed(accel, Arc::new(Jail::off()))
    }

    /// A runner whose VMs use `accel`, each QEMU in `jail` (see
    /// [`Jail::detect`]).
    pub fn jailed(accel: Accel, jail: Arc<Jail>) -> QemuRunner {
        QemuRunner { accel, jail }
    }
}

impl Runner for QemuRunner {
    fn run(
        &self,
        request: RunRequest,
        cancel: Cancel,
    ) -> BoxFuture<Result<InvocationOutcome, RunError>> {
        let (accel, jail) = (self.accel, self.jail.clone());
        Box::pin(async move { run::run_in(&request, accel, &jail, cancel).await })
    }

    fn boot(&self, template: VmTemplate) -> BoxFuture<Result<Box<dyn WarmVm>, RunError>> {
        let (accel, jail) = (self.accel, self.jail.clone());
        Box::pin(async move {
            let vm = run::boot_in(&template, accel, &jail).await?;
            Ok(Box::new(vm) as Box<dyn WarmVm>)
        })
    }
}

impl WarmVm for BootedVm {
    fn init_duration(&self) -> Duration {
        BootedVm::init_duration(self)
    }

    fn is_alive(&mut self) -> bool {
        BootedVm::is_alive(self)
    }

    fn deliver(
        self: Box<Self>,
        event: Bytes,
        request_id: String,
        invoked_arn: String,
        timeout: Duration,
        stream: Option<mayfly_runner::ResponseSink>,
        cancel: Cancel,
    ) -> BoxFuture<Result<InvocationOutcome, RunError>> {
        Box::pin(async move {
            (*self)
                .deliver(event, &request_id, &invoked_arn, timeout, stream, cancel)
                .await
        })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<()> {
        Box::pin((*self).shutdown())
    }
}
