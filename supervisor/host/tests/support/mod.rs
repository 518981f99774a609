//! What the host's tests share: a runner that echoes (when let through)
//! and a host over a fresh store with one function.
#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mayfly_host::error::HostError;
use mayfly_host::names::FunctionRef;
use mayfly_host::{Host, HostConfig, HostLimits};
use mayfly_runner::{
    BoxFuture, Cancel, InvocationOutcome, InvocationResult, RunError, RunRequest, Runner,
    VmTemplate, WarmVm,
};
use mayfly_store::Store;
use tokio::sync::Semaphore;

/// Echoes each event once a permit is available (tests hold them back to
/// keep invocations running); counts what it ran.
#[derive(Debug)]
pub struct EchoRunner {
    /// A run answers once it gets a permit.
    pub gate: Arc<Semaphore>,
    /// How many runs started.
    pub runs: AtomicUsize,
}

impl EchoRunner {
    /// A runner that answers at once.
    pub fn open() -> Arc<EchoRunner> {
        Arc::new(EchoRunner {
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
            runs: AtomicUsize::new(0),
        })
    }
}

impl Runner for EchoRunner {
    fn run(
        &self,
        request: RunRequest,
        cancel: Cancel,
    ) -> BoxFuture<Result<InvocationOutcome, RunError>> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.clone();
        Box::pin(async move {
            tokio::select! {
                permit = gate.acquire_owned() => drop(permit),
                () = cancel => return Err(RunError::Cancelled),
            }
            // An event that asks for it fails, as a function error.
            let explode = request.event.windows(9).any(|w| w == b"\"explode\"");
            let result = if explode {
                InvocationResult::FunctionError {
                    error_type: "Exploded".into(),
                    error_message: "asked to".into(),
                    body: Bytes::from_static(br#"{"errorType":"Exploded"}"#),
                }
            } else {
                InvocationResult::Success(request.event)
            };
            Ok(InvocationOutcome {
                request_id: request.request_id,
                result,
                init_duration: Some(Duration::from_millis(1)),
                duration: Duration::from_millis(2),
                billed_duration_ms: 2,
                max_memory_used_mb: 1,
                log: b"hello from the runner\n".to_vec(),
                egress_sent_bytes: 0,
                egress_received_bytes: 0,
            })
        })
    }

    fn boot(&self, _template: VmTemplate) -> BoxFuture<Result<Box<dyn WarmVm>, RunError>> {
        Box::pin(async { Err(RunError::Vm("no warm VMs in this test".into())) })
    }
}

/// A host over a fresh store with the function `echo` (256 MB).
pub fn host(runner: Arc<EchoRunner>, max_concurrency: u32) -> (tempfile::TempDir, Arc<Host>) {
    host_with(runner, max_concurrency, HostLimits::for_this_host(None))
}

/// A bootable package.
pub fn package() -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("bootstrap", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&mayfly_runner::testing::pvh_elf(
        mayfly_runner::testing::EXIT_OK,
    ))
    .unwrap();
    zip.finish().unwrap().into_inner()
}

/// [`host`] within `limits`.
pub fn host_with(
    runner: Arc<EchoRunner>,
    max_concurrency: u32,
    limits: HostLimits,
) -> (tempfile::TempDir, Arc<Host>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let zip = package();
    let host = Host::new(
        store,
        &HostConfig {
            data_dir: dir.path().to_path_buf(),
            runner,
            max_concurrency,
            retry_base_delay: Duration::from_millis(10),
            limits,
            linux_kernel: Err(mayfly_runner::linux::KernelNotFound { looked: vec![] }),
            egress: mayfly_runner::EgressPlan::none(),
        },
    )
    .unwrap();
    let blob = host.store().put_blob(&zip).unwrap();
    host.store()
        .create_function(
            "echo",
            serde_json::json!({"MemorySize": 256, "Timeout": 5}),
            &blob.sha256_hex,
            blob.size,
        )
        .unwrap();
    (dir, host)
}

/// `echo`, unqualified.
pub fn echo() -> FunctionRef {
    FunctionRef {
        name: "echo".into(),
        qualifier: None,
    }
}

/// Invokes `echo` synchronously; its answer.
pub async fn invoke(host: &Host, id: &str, payload: &'static [u8]) -> Result<Bytes, HostError> {
    let resolved = host.resolve(&echo(), "us-east-1")?;
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:echo".to_string();
    let payload = Bytes::from_static(payload);
    let completed = host
        .invoke_sync(&echo(), resolved, arn, id.into(), payload)
        .await?;
    Ok(completed.payload())
}
