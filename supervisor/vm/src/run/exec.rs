//! `mayfly exec`: a plain Linux program (not a function) in a fresh VM,
//! run to its end or its timeout, its console passed on as it arrives.

use std::future::Future;
use std::time::{Duration, Instant};

use mayfly_proto::exit::{self as guest_exit, ProcessEnd};
use tokio::sync::mpsc::UnboundedSender;

use super::{Ending, RunError, Running, VmTemplate};
use crate::accel::Accel;
use crate::console::CappedLog;
use crate::jail::Jail;
use crate::runtime_api::RuntimeApi;

/// How a program run by [`exec_in`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    /// It exited, or a signal ended it (`None`: the kernel's exit code said
    /// so, but its console line saying how was missing).
    Process(Option<ProcessEnd>),
    /// It touched more memory than the VM has.
    OutOfMemory,
    /// It was still running at the timeout; the VM was killed.
    TimedOut(Duration),
    /// The VM ended some other way (a kernel fatal error, a CPU exception
    /// in the kernel, QEMU failing); the message says how.
    VmFailed(String),
}

/// What [`exec_in`] reports.
#[derive(Debug, Clone)]
pub struct ExecOutcome {
    /// How the program ended.
    pub end: ExecEnd,
    /// VM spawn to its end.
    pub duration: Duration,
}

/// Boots `template` (a Linux program: `template.linux` set) and runs it
/// until it ends or `timeout` (from the spawn) passes, sending the console
/// to `console` chunk by chunk as it arrives. The runtime API is there
/// but has no event: a program that asks for one waits. Cancelling
/// (`cancel` completing) kills the VM: [`RunError::Cancelled`].
pub async fn exec_in(
    template: &VmTemplate,
    accel: Accel,
    jail: &Jail,
    timeout: Duration,
    console: UnboundedSender<Vec<u8>>,
    cancel: impl Future<Output = ()>,
) -> Result<ExecOutcome, RunError> {
    let started = Instant::now();
    let mut running = Running::start(
        template,
        accel,
        jail,
        RuntimeApi::without_event(),
        timeout,
        CappedLog::default().with_tee(console),
    )?;
    let deadline = running.spawned_at + timeout;
    tokio::pin!(cancel);
    let ending = loop {
        match running.drive(deadline, timeout, &mut cancel).await? {
            // It asked the runtime API for an event: there is none; it
            // waits there until it ends or times out.
            Ending::Waiting(_) => continue,
            other => break other,
        }
    };
    let code = match &ending {
        Ending::Exited(status) => status.code().and_then(guest_exit::guest_code),
        _ => None,
    };
    let timed_out = match &ending {
        Ending::TimedOut(after) => Some(*after),
        _ => None,
    };
    let outcome = running.finish(ending, "", false).await?;
    let end = match (code, timed_out) {
        (_, Some(after)) => ExecEnd::TimedOut(after),
        (Some(guest_exit::PROCESS_EXITED | guest_exit::PROCESS_KILLED), _) => {
            ExecEnd::Process(process_end(&outcome.log))
        }
        (Some(guest_exit::OUT_OF_MEMORY), _) => ExecEnd::OutOfMemory,
        _ => ExecEnd::VmFailed(
            outcome
                .result
                .error_message()
                .unwrap_or_else(|| "the VM ended without the program ending".into()),
        ),
    };
    Ok(ExecOutcome {
        end,
        duration: started.elapsed(),
    })
}

/// The kernel's last `mayfly: process ...` line in `log`.
pub fn process_end(log: &[u8]) -> Option<ProcessEnd> {
    String::from_utf8_lossy(log)
        .lines()
        .rev()
        .filter_map(mayfly_proto::console::kernel_message)
        .find_map(ProcessEnd::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_end_is_the_last_kernel_line_that_says_it() {
        let log = b"out\nmayfly: unsupported syscall x (1)\nmayfly: process exited with status 4\n";
        assert_eq!(process_end(log), Some(ProcessEnd::Exited(4)));
        assert_eq!(process_end(b"mayfly: fatal: no disk\n"), None);
        assert_eq!(
            process_end(b"mayfly: process killed by signal 11 (segmentation fault)\n"),
            Some(ProcessEnd::Killed(11))
        );
    }
}
