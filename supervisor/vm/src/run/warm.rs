//! Warm VMs: booted ahead of their event, paused in their first `next`,
//! then given exactly one event.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{new_trace_id, Ending, InvocationOutcome, RunError, Running, VmTemplate, INIT_TIMEOUT};
use crate::accel::Accel;
use crate::jail::Jail;
use crate::runtime_api::{Invocation, RuntimeApi};
use crate::sys::Signal;

/// Boots a VM for `template` and runs it until its guest asks for its
/// event (the first `GET /next`), which is held unanswered. The VM is then
/// paused (SIGSTOP: a guest waiting for its event polls its network card
/// without pause, which would burn a host core per warm VM) until
/// [`BootedVm::deliver`].
///
/// Fails with [`RunError::Boot`] when the guest ends, fails its init or
/// takes longer than [`INIT_TIMEOUT`] before asking; the VM is gone then.
/// Dropping the future kills the VM.
pub async fn boot(template: &VmTemplate, accel: Accel) -> Result<BootedVm, RunError> {
    boot_in(template, accel, Jail::none()).await
}

/// [`boot`] with QEMU in `jail`.
pub async fn boot_in(
    template: &VmTemplate,
    accel: Accel,
    jail: &Jail,
) -> Result<BootedVm, RunError> {
    let mut running = Running::start(
        template,
        accel,
        jail,
        RuntimeApi::without_event(),
        Duration::ZERO,
        crate::console::CappedLog::default(),
    )?;
    let deadline = running.spawned_at + INIT_TIMEOUT;
    match running
        .drive(deadline, INIT_TIMEOUT, std::future::pending())
        .await?
    {
        Ending::Waiting(at) => {
            let init_duration = at - running.spawned_at;
            tracing::debug!(?init_duration, pid = ?running.vm.pid(), "warm VM waiting for its event");
            running.signal(Signal::Stop);
            Ok(BootedVm {
                running,
                init_duration,
            })
        }
        ending => {
            let outcome = running.finish(ending, "", false).await?;
            Err(RunError::Boot(Box::new(outcome)))
        }
    }
}

/// A VM booted by [`boot`], paused with its first `next` held: ready to
/// serve exactly one event. Dropping it kills its QEMU (reaped in the
/// background; [`shutdown`](Self::shutdown) waits for it).
#[derive(Debug)]
pub struct BootedVm {
    running: Running,
    init_duration: Duration,
}

impl BootedVm {
    /// VM spawn to its first `next`.
    pub fn init_duration(&self) -> Duration {
        self.init_duration
    }

    /// QEMU's process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.running.vm.pid()
    }

    /// Whether QEMU is still running; a VM that died while waiting is
    /// reaped here and must not be given an event.
    pub fn is_alive(&mut self) -> bool {
        // One poll of the reaping future: `waitpid(WNOHANG)` underneath,
        // so nothing blocks and nothing is left registered.
        let mut cx = Context::from_waker(Waker::noop());
        let wait = pin!(self.running.vm.wait());
        matches!(wait.poll(&mut cx), Poll::Pending)
    }

    /// Answers the held `next` with `event` and runs the invocation to its
    /// end, as [`run_until`](super::run_until) does from delivery on. The outcome has no
    /// `init_duration`: the init happened before the invocation, as for a
    /// provisioned Lambda environment.
    pub async fn deliver(
        mut self,
        event: bytes::Bytes,
        request_id: &str,
        invoked_arn: &str,
        timeout: Duration,
        stream: Option<mayfly_runner::ResponseSink>,
        cancel: impl Future<Output = ()>,
    ) -> Result<InvocationOutcome, RunError> {
        let running = &mut self.running;
        running.stream = stream;
        running.api.deliver(Invocation {
            request_id: request_id.to_string(),
            event,
            timeout,
            invoked_arn: invoked_arn.to_string(),
            trace_id: new_trace_id(),
        });
        running.timeout = timeout;
        running.signal(Signal::Continue);
        // The held `next` is answered on the network's first turn; the
        // timeout is counted from there (ApiEvent::Delivered), and from
        // now until then.
        let now = Instant::now();
        running.base = now;
        let ending = running.drive(now + timeout, timeout, cancel).await?;
        self.running.finish(ending, request_id, true).await
    }

    /// Kills and reaps QEMU.
    pub async fn shutdown(mut self) {
        let status = self.running.vm.kill().await;
        tracing::debug!(?status, "warm VM stopped");
    }
}
