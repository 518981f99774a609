//! One invocation: boot a fresh VM, serve it its event, collect its answer,
//! destroy it. The entry point shared by `mayfly run` and the service.
//!
//! The same path in two steps, for warm pools: [`boot`] a VM ahead of its
//! event (it waits in its first `next`), then [`BootedVm::deliver`] the
//! event when one comes. Either way a VM serves one event.
//!
//! The outcome is returned as soon as the guest has answered; QEMU is then
//! killed and reaped before [`run`] returns (a VM that has answered has
//! nothing left to do, so this costs only the kill itself). Every other path
//! (timeouts, QEMU dying, host errors, cancellation, the future being
//! dropped) also ends with QEMU killed and reaped.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use mayfly_runner::invocation::{
    timeout_message, InvocationOutcome, InvocationResult, RunError, RunRequest, VmTemplate,
    ERROR_EXIT, ERROR_TIMEOUT, INIT_TIMEOUT,
};
use mayfly_runner::report;

use crate::accel::Accel;
use crate::console::{self, CappedLog};
use crate::egress::{EgressConfig, EgressLimits, Metered};
use crate::jail::Jail;
use crate::net::{self, HostAddress, HostStack, NetError};
use crate::qemu::{self, SpawnError, VmConfig};
use crate::runtime_api::{self, ApiEvent, GuestResult, Invocation, RuntimeApi, Violation};
use crate::sys::{self, Signal};

/// How long the network keeps running after QEMU exits, so that a result
/// still in the socket pair's buffers is not mistaken for no result.
const EXIT_GRACE: Duration = Duration::from_millis(50);

impl From<NetError> for RunError {
    fn from(e: NetError) -> RunError {
        RunError::Vm(Box::new(e))
    }
}

impl From<SpawnError> for RunError {
    fn from(e: SpawnError) -> RunError {
        RunError::Vm(Box::new(e))
    }
}

mod exec;
mod linux;
mod warm;
pub use exec::{exec_in, ExecEnd, ExecOutcome};
pub use linux::{boot_config, linux_end};
pub use warm::{boot, boot_in, BootedVm};

enum Ending {
    /// A warm VM's guest asked for its event; nothing was delivered.
    Waiting(Instant),
    Finished(Instant, GuestResult),
    /// The guest broke a rule or limit of the runtime API.
    Violated(Violation),
    Exited(std::process::ExitStatus),
    TimedOut(Duration),
    NetFailed(NetError),
    Cancelled,
}

/// Runs one invocation to its end, unjailed.
pub async fn run(request: &RunRequest, accel: Accel) -> Result<InvocationOutcome, RunError> {
    run_until(request, accel, std::future::pending()).await
}

/// Runs one invocation unjailed, or kills its VM and returns
/// [`RunError::Cancelled`] as soon as `cancel` completes.
pub async fn run_until(
    request: &RunRequest,
    accel: Accel,
    cancel: impl Future<Output = ()>,
) -> Result<InvocationOutcome, RunError> {
    run_in(request, accel, Jail::none(), cancel).await
}

/// Runs one invocation with its QEMU in `jail`, or kills its VM and
/// returns [`RunError::Cancelled`] as soon as `cancel` completes.
pub async fn run_in(
    request: &RunRequest,
    accel: Accel,
    jail: &Jail,
    cancel: impl Future<Output = ()>,
) -> Result<InvocationOutcome, RunError> {
    // The event is known before boot: the first `next` is answered at once.
    let api = RuntimeApi::new(Invocation {
        request_id: request.request_id.clone(),
        event: request.event.clone(),
        timeout: request.timeout,
        invoked_arn: request.invoked_arn.clone(),
        trace_id: new_trace_id(),
    });
    let mut running = Running::start(
        &request.template(),
        accel,
        jail,
        api,
        request.timeout,
        CappedLog::default(),
    )?;
    running.stream = request.stream.clone();
    let deadline = running.spawned_at + INIT_TIMEOUT;
    let ending = running.drive(deadline, INIT_TIMEOUT, cancel).await?;
    running.finish(ending, &request.request_id, false).await
}

/// The vCPUs of `template`'s VM: a Linux program's by its memory, as
/// Lambda's (see [`qemu::vcpus_for`]), capped by this host's CPUs; a
/// native image's, one.
pub fn vcpus(template: &VmTemplate) -> u32 {
    match template.linux {
        Some(_) => qemu::vcpus_for(template.memory_mb, qemu::host_cpus()),
        None => 1,
    }
}

/// One VM and everything that serves it.
struct Running {
    vm: qemu::Vm,
    stack: HostStack,
    api: RuntimeApi,
    console: Option<JoinHandle<CappedLog>>,
    /// Tells the console capture to stop at what the pipe holds now.
    console_cut: Option<oneshot::Sender<()>>,
    /// Our handle on the console pipe's write side, until the guest first
    /// speaks (see [`qemu::make_writes_blocking`]).
    console_writer: Option<std::os::fd::OwnedFd>,
    events_tx: mpsc::UnboundedSender<ApiEvent>,
    events: mpsc::UnboundedReceiver<ApiEvent>,
    spawned_at: Instant,
    /// What a duration is counted from when no event was delivered: the
    /// spawn, or a warm VM's delivery call.
    base: Instant,
    delivered_at: Option<Instant>,
    max_memory: Option<u64>,
    /// The VM's memory, in MB: what a VM that ran out of it used.
    memory_mb: u32,
    /// The function's timeout, from delivery.
    timeout: Duration,
    /// The bytes relayed through egress, if it is on.
    metered: Option<Arc<Metered>>,
    /// Where a streamed response goes; without one it is gathered here.
    stream: Option<mayfly_runner::ResponseSink>,
    /// A streamed response gathered for a caller that takes it whole.
    streamed: bytes::BytesMut,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("pid", &self.vm.pid())
            .field("spawned_at", &self.spawned_at)
            .field("delivered_at", &self.delivered_at)
            .finish_non_exhaustive()
    }
}

impl Running {
    fn start(
        template: &VmTemplate,
        accel: Accel,
        jail: &Jail,
        mut api: RuntimeApi,
        timeout: Duration,
        log: CappedLog,
    ) -> Result<Running, RunError> {
        api.set_memory_limit(u64::from(template.memory_mb) * 1024 * 1024);
        let boot = boot_config(template);

        let (host_end, guest_end) = net::socket_pair()?;
        let mut stack = HostStack::new(
            host_end,
            HostAddress {
                ip: boot.host_ip,
                prefix_len: boot.prefix_len,
                port: boot.api_port,
            },
        )?;
        let (notes, notes_rx) = mpsc::unbounded_channel();
        let mut metered = None;
        if let Some(plan) = &template.egress {
            // Without the host's addresses the policy could not keep them
            // (and the API on them) out of reach: no egress at all then.
            let (rules, host_addresses) = match sys::host_addresses() {
                Ok(addresses) => (plan.host.clone(), addresses),
                Err(error) => {
                    tracing::warn!(%error, "cannot list the host's addresses: egress refused");
                    (mayfly_egress::Rules::default(), Vec::new())
                }
            };
            let policy = mayfly_egress::Policy::new(
                rules,
                plan.function.clone(),
                plan.mayfly_ports.clone(),
                host_addresses,
            );
            metered = Some(stack.with_egress(EgressConfig {
                policy,
                notes,
                limits: EgressLimits::default(),
            }));
        }
        let binary = qemu::find_binary(
            accel,
            std::env::var_os(qemu::QEMU_ENV),
            std::env::var_os("PATH").as_deref(),
        );
        // The jail copies the image to the same path inside its root, and
        // the sweep recognises a VM by it: both need it absolute (`mayfly
        // run target/images/echo.elf` gives a relative one).
        let image = std::path::absolute(&template.image).unwrap_or_else(|_| template.image.clone());
        let initrd = template
            .linux
            .as_ref()
            .map(|linux| std::path::absolute(&linux.pack).unwrap_or_else(|_| linux.pack.clone()));
        let config = VmConfig {
            accel,
            memory_mb: template.memory_mb,
            vcpus: vcpus(template),
            kernel: &image,
            initrd: initrd.as_deref(),
            boot: &boot,
        };
        let spawned_at = Instant::now();
        let mut vm = qemu::spawn(&binary, &config, guest_end, jail)?;
        let (console_cut, cut) = oneshot::channel();
        let console = vm
            .take_console()
            .map(|stdout| tokio::spawn(console::capture_until(stdout, log, cut, notes_rx)));
        let console_writer = vm.take_console_writer();
        let (events_tx, events) = mpsc::unbounded_channel();
        Ok(Running {
            vm,
            stack,
            api,
            console,
            console_cut: Some(console_cut),
            console_writer,
            events_tx,
            events,
            spawned_at,
            base: spawned_at,
            delivered_at: None,
            max_memory: None,
            memory_mb: template.memory_mb,
            timeout,
            metered,
            stream: None,
            streamed: bytes::BytesMut::new(),
        })
    }

    /// Sends `signal` to QEMU, while it is not reaped (so its pid is ours).
    fn signal(&self, signal: Signal) {
        // While the child is unreaped its pid cannot name another process.
        let Some(pid) = self.vm.pid() else { return };
        if let Err(error) = sys::kill(pid as i32, signal) {
            // Already dead: the next wait reports it.
            tracing::debug!(pid, ?signal, %error, "cannot signal QEMU");
        }
    }

    /// Serves the VM until the invocation ends one way or another, or (a
    /// warm boot) the guest waits for an event that is not there.
    async fn drive(
        &mut self,
        deadline: Instant,
        limit: Duration,
        cancel: impl Future<Output = ()>,
    ) -> Result<Ending, RunError> {
        let Running {
            vm,
            stack,
            api,
            events_tx,
            events,
            spawned_at,
            delivered_at,
            max_memory,
            timeout,
            console_writer,
            stream,
            streamed,
            ..
        } = self;
        let spawned_at = *spawned_at;
        let timeout = *timeout;
        let network = stack.run(api, events_tx);
        tokio::pin!(network);
        tokio::pin!(cancel);
        let mut deadline = deadline;
        let mut limit = limit;
        let mut handle = |event, deadline: &mut Instant, limit: &mut Duration| {
            // The guest speaks: QEMU's chardevs are long set up.
            if let Some(writer) = console_writer.take() {
                qemu::make_writes_blocking(&writer);
            }
            match event {
                ApiEvent::Waiting { at } => Some(Ending::Waiting(at)),
                ApiEvent::Delivered { at, .. } => {
                    tracing::debug!(since_spawn = ?at - spawned_at, ?timeout, "event delivered");
                    *delivered_at = Some(at);
                    *deadline = at + timeout;
                    *limit = timeout;
                    None
                }
                ApiEvent::MaxMemory(bytes) => {
                    *max_memory = Some(bytes);
                    None
                }
                ApiEvent::ResponseChunk(chunk) => match stream {
                    Some(sink) => {
                        // A client that went away does not stop the
                        // function; what it streams is dropped.
                        let _ = sink.write(chunk);
                        None
                    }
                    None if streamed.len() + chunk.len() > crate::runtime_api::MAX_RESPONSE_BYTES => {
                        Some(Ending::Violated(Violation {
                            error_type: crate::runtime_api::ERROR_RESPONSE_TOO_LARGE,
                            message: format!(
                                "Response payload size exceeded maximum allowed payload size ({} bytes).",
                                crate::runtime_api::MAX_RESPONSE_BYTES
                            ),
                        }))
                    }
                    None => {
                        streamed.extend_from_slice(&chunk);
                        None
                    }
                },
                ApiEvent::Finished { at, result } => Some(Ending::Finished(at, result)),
                ApiEvent::Violated(violation) => Some(Ending::Violated(violation)),
            }
        };
        let ending = loop {
            tokio::select! {
                biased;
                () = &mut cancel => break Ending::Cancelled,
                Some(event) = events.recv() => {
                    if let Some(ending) = handle(event, &mut deadline, &mut limit) {
                        break ending;
                    }
                }
                error = &mut network => break Ending::NetFailed(error),
                status = vm.wait() => match status {
                    Ok(status) => break Ending::Exited(status),
                    Err(e) => {
                        let _ = vm.kill().await;
                        return Err(RunError::Vm(format!("cannot wait for QEMU: {e}").into()));
                    }
                },
                () = tokio::time::sleep_until(deadline.into()) => break Ending::TimedOut(limit),
            }
        };
        Ok(match ending {
            Ending::Exited(status) => {
                // The guest may have posted its result and powered off
                // before the frames carrying it were read.
                let grace = tokio::time::sleep(EXIT_GRACE);
                tokio::pin!(grace);
                loop {
                    tokio::select! {
                        biased;
                        Some(event) = events.recv() => {
                            if let Some(finished) = handle(event, &mut deadline, &mut limit) {
                                break finished;
                            }
                        }
                        _ = &mut network => break Ending::Exited(status),
                        () = &mut grace => break Ending::Exited(status),
                    }
                }
            }
            other => other,
        })
    }

    /// The console as captured: complete once QEMU is gone (the pipe ends)
    /// or the capture was cut (see `finish`).
    async fn collect_console(&mut self) -> Vec<u8> {
        // While we hold the write side, the pipe cannot end.
        drop(self.console_writer.take());
        match self.console.take() {
            Some(task) => task.await.map(|log| log.to_bytes()).unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Kills and reaps QEMU (in the background once the guest has
    /// answered), collects the console and says how the invocation ended.
    async fn finish(
        mut self,
        ending: Ending,
        request_id: &str,
        warm: bool,
    ) -> Result<InvocationOutcome, RunError> {
        // A result's time is when it arrived, not when the VM was torn down.
        let ended_at = match &ending {
            Ending::Finished(at, _) => *at,
            _ => Instant::now(),
        };

        let log = if matches!(ending, Ending::Finished(..)) {
            // The guest has answered, and flushed its console before it
            // did: take the log as the pipe holds it and tear the VM down
            // in the background, so that the caller has its result without
            // waiting for QEMU to exit (a few ms of unmapping its memory).
            if let Some(cut) = self.console_cut.take() {
                let _ = cut.send(());
            }
            let log = self.collect_console().await;
            let mut vm = std::mem::replace(&mut self.vm, qemu::Vm::gone());
            tokio::spawn(async move {
                let status = vm.kill().await;
                tracing::debug!(status = ?status, "QEMU reaped");
            });
            log
        } else {
            tracing::trace!("killing QEMU");
            let status = self.vm.kill().await;
            tracing::debug!(status = ?status, "QEMU reaped");
            // QEMU is gone, so the pipe is at its end: this finishes promptly.
            self.collect_console().await
        };
        tracing::trace!("console collected");

        let result = match ending {
            Ending::Finished(_, GuestResult::Response(body)) if !self.streamed.is_empty() => {
                // A streamed response, gathered for a caller that takes it
                // whole.
                let _ = body;
                InvocationResult::Success(std::mem::take(&mut self.streamed).freeze())
            }
            Ending::Finished(_, GuestResult::Response(body)) => InvocationResult::Success(body),
            Ending::Finished(
                _,
                GuestResult::Error {
                    error_type,
                    error_message,
                    body,
                    ..
                },
            ) => InvocationResult::FunctionError {
                error_type,
                error_message,
                body,
            },
            Ending::TimedOut(after) => InvocationResult::Timeout { after },
            Ending::Violated(Violation {
                error_type,
                message,
            }) => {
                let body = serde_json::json!({ "errorMessage": message, "errorType": error_type });
                InvocationResult::FunctionError {
                    error_type: error_type.to_owned(),
                    error_message: message,
                    body: body.to_string().into(),
                }
            }
            Ending::Exited(status) => match linux_end(status.code(), &log) {
                // A Linux program ended by itself: the kernel said how.
                Some(result) => result,
                None => {
                    let stderr = self.vm.stderr_tail().await;
                    let mut message = exit_message(&qemu::describe_status(status), &stderr);
                    // The kernel's own last words (a CPU exception, a fatal
                    // error) say more than the exit status.
                    if let Some(said) = last_kernel_line(&log) {
                        message.push_str("; the guest said: ");
                        message.push_str(&said);
                    }
                    InvocationResult::ExitError(message)
                }
            },
            Ending::Waiting(_) => {
                InvocationResult::ExitError("the VM was never given its event".into())
            }
            Ending::NetFailed(e) => return Err(e.into()),
            Ending::Cancelled => return Err(RunError::Cancelled),
        };
        let duration = ended_at.saturating_duration_since(self.delivered_at.unwrap_or(self.base));
        let init_duration = match warm {
            true => None,
            false => self.delivered_at.map(|at| at - self.spawned_at),
        };
        // A VM that ran out of memory used all of it, as Lambda reports.
        let max_memory_used_mb = match result {
            InvocationResult::OutOfMemory(_) => u64::from(self.memory_mb),
            _ => self.max_memory.map_or(0, |b: u64| b.div_ceil(1024 * 1024)),
        };
        Ok(InvocationOutcome {
            request_id: request_id.to_string(),
            result,
            init_duration,
            duration,
            billed_duration_ms: report::billed_ms(duration),
            max_memory_used_mb,
            log,
            egress_sent_bytes: self
                .metered
                .as_ref()
                .map_or(0, |m| m.sent.load(Ordering::Relaxed)),
            egress_received_bytes: self
                .metered
                .as_ref()
                .map_or(0, |m| m.received.load(Ordering::Relaxed)),
        })
    }
}

/// The last line the kernel itself wrote (`mayfly: ...`), if any.
fn last_kernel_line(log: &[u8]) -> Option<String> {
    String::from_utf8_lossy(log)
        .lines()
        .rev()
        .find_map(|l| mayfly_proto::console::kernel_message(l).map(str::to_string))
}

/// The `Runtime.ExitError` message: how QEMU ended, and its last words.
pub fn exit_message(status: &str, qemu_stderr: &str) -> String {
    match qemu_stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
    {
        Some(last) => format!("the VM exited without answering: {status}; QEMU said: {last}"),
        None => format!("the VM exited without answering: {status}"),
    }
}

fn new_trace_id() -> String {
    let epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let a = uuid::Uuid::new_v4().into_bytes();
    let b = uuid::Uuid::new_v4().into_bytes();
    let root: [u8; 12] = a[..12].try_into().expect("12 bytes");
    let parent: [u8; 8] = b[..8].try_into().expect("8 bytes");
    runtime_api::format_trace_id(epoch, root, parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            timeout_message(Duration::from_secs(3)),
            "Task timed out after 3.00 seconds"
        );
        assert_eq!(
            InvocationResult::Timeout {
                after: Duration::from_secs(900)
            }
            .error_message()
            .unwrap(),
            "Task timed out after 900.00 seconds"
        );
        assert_eq!(
            exit_message("QEMU exited with status 2", "warning: x\nqemu: could not load kernel 'k'\n\n"),
            "the VM exited without answering: QEMU exited with status 2; QEMU said: qemu: could not load kernel 'k'"
        );
        assert_eq!(exit_message("s", ""), "the VM exited without answering: s");
        assert_eq!(
            InvocationResult::ExitError("m".into()).error_type(),
            Some("Runtime.ExitError")
        );
        assert_eq!(
            InvocationResult::Success(bytes::Bytes::new()).error_type(),
            None
        );
    }

    #[test]
    fn only_a_linux_programs_vm_gets_vcpus_by_memory() {
        let template = |memory_mb, linux: bool| VmTemplate {
            image: "/k/linux.elf".into(),
            linux: linux.then(|| mayfly_runner::linux::LinuxBoot {
                pack: "/p.pack".into(),
                program: "/var/task/bootstrap".into(),
                args: vec!["bootstrap".into()],
                tmp_mb: 512,
                lambda: None,
            }),
            memory_mb,
            env: Vec::new(),
            function_name: "f".into(),
            function_version: "$LATEST".into(),
            egress: None,
        };
        let host = qemu::host_cpus() as u32;
        assert_eq!(vcpus(&template(1769, true)), 1);
        assert_eq!(vcpus(&template(3538, true)), 2.min(host));
        assert_eq!(vcpus(&template(10240, true)), 6.min(host));
        // A native image has one thread of control, whatever its memory.
        assert_eq!(vcpus(&template(10240, false)), 1);
    }
}
