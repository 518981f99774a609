//! Provisioned concurrency: the VM layer's boot-then-deliver split on the
//! real echo image, and warm pools end to end through a real `mayfly serve`
//! driven by boto3 (tests/api/warm.py).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::process::assert_no_qemu_for;
use crate::support::{image, image_path};
use crate::support::{Options, Server};
use mayfly_runner::{InvocationResult, VmTemplate};
use mayfly_vm::accel::{self, Accel, AccelRequest};
use mayfly_vm::run;

fn template(elf: &Path) -> VmTemplate {
    VmTemplate {
        image: elf.to_path_buf(),
        linux: None,
        memory_mb: 128,
        env: Vec::new(),
        function_name: "echo".into(),
        function_version: "1".into(),
        egress: None,
    }
}

fn host_accel() -> Accel {
    accel::detect(AccelRequest::Auto).map_or(Accel::Tcg, |c| c.accel)
}

#[tokio::test]
async fn a_booted_vm_waits_then_serves_one_event() {
    let echo = image("echo.elf");
    let vm = run::boot(&template(&echo.path), host_accel())
        .await
        .expect("boot");
    assert!(vm.init_duration() > Duration::ZERO);
    // It waits as long as it must: well past INIT_TIMEOUT would be slow
    // to test; a moment shows that waiting is not a deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut vm = vm;
    assert!(vm.is_alive());
    let outcome = vm
        .deliver(
            bytes::Bytes::from_static(br#"{"warm":true}"#),
            "11111111-0000-4000-8000-000000000001",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:1",
            Duration::from_secs(3),
            None,
            std::future::pending(),
        )
        .await
        .expect("deliver");
    assert_eq!(
        outcome.result,
        InvocationResult::Success(bytes::Bytes::from_static(br#"{"warm":true}"#))
    );
    assert_eq!(outcome.init_duration, None);
    assert_eq!(outcome.request_id, "11111111-0000-4000-8000-000000000001");
    assert_no_qemu_for(echo.dir());

    // A dropped VM is killed; one whose QEMU died is seen as dead.
    drop(
        run::boot(&template(&echo.path), host_accel())
            .await
            .expect("boot"),
    );
    assert_no_qemu_for(echo.dir());
    let mut vm = run::boot(&template(&echo.path), host_accel())
        .await
        .expect("boot");
    let pid = vm.pid().expect("running");
    // SAFETY: kill(2) on our own unreaped child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while vm.is_alive() {
        assert!(Instant::now() < deadline, "a killed VM still looks alive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(vm);
    assert_no_qemu_for(echo.dir());
}

#[test]
fn provisioned_concurrency_end_to_end() {
    image_path("echo.zip"); // says how to build the images when they are missing
    let serve = Server::start_with(Options {
        max_concurrency: Some(8),
        ..Options::default()
    });
    let output = serve.python("warm.py", &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("WARM OK"),
        "warm.py did not finish:\n{stdout}"
    );
    for line in stdout.lines().filter(|l| l.starts_with("LATENCY")) {
        eprintln!("{line}");
    }
    // The script deleted the configuration: none of the pool's VMs is left,
    // while the server still runs.
    assert!(
        serve.qemus().is_empty(),
        "QEMU left after the config was deleted: {:?}",
        serve.qemus()
    );
}
