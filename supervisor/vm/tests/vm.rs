//! The VM layer with real QEMU processes but hand-assembled guests (see
//! `mayfly_runner::testing`): exit statuses, console capture, cancellation and
//! reaping. The real unikernel images are exercised by the workspace's
//! end-to-end tests.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mayfly_runner::testing;
use mayfly_vm::accel::Accel;
use mayfly_vm::run::{self, InvocationResult, RunError, RunRequest};

fn qemu_available() -> bool {
    std::process::Command::new(mayfly_vm::qemu::QEMU_FULL)
        .arg("-version")
        .output()
        .is_ok()
}

fn write_image(dir: &tempfile::TempDir, name: &str, code: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, testing::pvh_elf(code)).unwrap();
    path
}

fn request(image: PathBuf) -> RunRequest {
    RunRequest {
        image,
        linux: None,
        event: b"{}".to_vec().into(),
        memory_mb: 128,
        timeout: Duration::from_secs(1),
        env: vec![("GREETING".into(), "Hi there".into())],
        function_name: "test".into(),
        function_version: "$LATEST".into(),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:test".into(),
        request_id: "00000000-0000-4000-8000-000000000000".into(),
        egress: None,
        stream: None,
    }
}

/// Processes whose parent is this test process (zombies included).
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            found.push(stat.split(')').next().unwrap_or_default().to_owned());
        }
    }
    found
}

async fn assert_no_children() {
    // A reaping task may still be running after a dropped future.
    for _ in 0..100 {
        if children().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("QEMU left behind: {:?}", children());
}

/// One test, run sequentially, so that "no child processes" is meaningful.
#[tokio::test]
async fn vm_lifecycle() {
    if !qemu_available() {
        eprintln!("skipped: {} is not installed", mayfly_vm::qemu::QEMU_FULL);
        return;
    }
    let dir = tempfile::tempdir().unwrap();

    // A guest that prints and powers off with value 0 without posting
    // anything: the console is captured, the result is an exit error.
    let image = write_image(
        &dir,
        "quiet.elf",
        &testing::print_then_exit(b"hello from the guest\n", 0),
    );
    let outcome = run::run(&request(image), Accel::Tcg).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outcome.log),
        "hello from the guest\n"
    );
    match &outcome.result {
        InvocationResult::ExitError(message) => assert!(message.contains("status 1"), "{message}"),
        other => panic!("expected an exit error, got {other:?}"),
    }
    assert_eq!(outcome.result.error_type(), Some("Runtime.ExitError"));
    assert_eq!(outcome.init_duration, None);
    assert_eq!(outcome.max_memory_used_mb, 0);
    assert_no_children().await;

    // The kernel's "fatal error" exit value.
    let image = write_image(&dir, "fatal.elf", &testing::print_then_exit(b"", 2));
    let outcome = run::run(&request(image), Accel::Tcg).await.unwrap();
    assert_eq!(
        outcome.result,
        InvocationResult::ExitError(
            "the VM exited without answering: the guest kernel hit a fatal error (QEMU exit status 5)"
                .into()
        )
    );
    assert_no_children().await;

    // Something QEMU refuses to boot: its own message is passed on.
    let garbage = dir.path().join("garbage.elf");
    std::fs::write(&garbage, b"not a kernel").unwrap();
    let outcome = run::run(&request(garbage), Accel::Tcg).await.unwrap();
    match &outcome.result {
        InvocationResult::ExitError(message) => {
            assert!(message.contains("QEMU said: qemu"), "{message}")
        }
        other => panic!("expected an exit error, got {other:?}"),
    }
    assert_no_children().await;

    // Cancellation kills and reaps before returning.
    let spin = write_image(&dir, "spin.elf", testing::SPIN);
    let started = Instant::now();
    let cancelled = run::run_until(
        &request(spin.clone()),
        Accel::Tcg,
        tokio::time::sleep(Duration::from_millis(300)),
    )
    .await;
    assert!(matches!(cancelled, Err(RunError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(children().is_empty(), "{:?}", children());

    // Dropping the future kills and reaps too.
    let dropped = tokio::time::timeout(
        Duration::from_millis(300),
        run::run(&request(spin), Accel::Tcg),
    )
    .await;
    assert!(dropped.is_err());
    assert_no_children().await;

    // No QEMU at all: a host error naming the binary.
    std::env::set_var(mayfly_vm::qemu::QEMU_ENV, "/nonexistent/qemu");
    let image = write_image(&dir, "ok.elf", testing::EXIT_OK);
    let err = run::run(&request(image), Accel::Tcg).await.unwrap_err();
    std::env::remove_var(mayfly_vm::qemu::QEMU_ENV);
    assert!(
        err.to_string().starts_with("/nonexistent/qemu not found"),
        "{err}"
    );
}

/// The init timeout is Lambda's 10 s, so this is slow; the end-to-end tests
/// cover the function timeout with real images.
#[tokio::test]
#[ignore = "takes 10 s"]
async fn a_guest_that_never_asks_times_out_after_init() {
    let dir = tempfile::tempdir().unwrap();
    let spin = write_image(&dir, "spin.elf", testing::SPIN);
    let started = Instant::now();
    let outcome = run::run(&request(spin), Accel::Tcg).await.unwrap();
    assert_eq!(
        outcome.result,
        InvocationResult::Timeout {
            after: run::INIT_TIMEOUT
        }
    );
    assert_eq!(
        outcome.result.error_message().unwrap(),
        "Task timed out after 10.00 seconds"
    );
    assert!(started.elapsed() < Duration::from_millis(10_500));
    assert_no_children().await;
}
