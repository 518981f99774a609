//! Provisioned concurrency: the VM layer's boot-then-deliver split on the
//! real echo image, and warm pools end to end through a real `mayfly serve`
//! driven by boto3 (tests/api/warm.py).

use crate::support as common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_no_qemu_for, image, processes_mentioning, root};
use mayfly::accel::Accel;
use mayfly::invoke::{self, InvocationResult, VmTemplate};

const ACCESS_KEY_ID: &str = "AKIAMAYFLYWARM000001";
const SECRET_ACCESS_KEY: &str = "mAyFlYwArMsEcReT/0123456789abcdefghijKLM";

fn template(elf: &Path) -> VmTemplate {
    VmTemplate {
        image: elf.to_path_buf(),
        memory_mb: 128,
        env: Vec::new(),
        function_name: "echo".into(),
        function_version: "1".into(),
        accel: mayfly::accel::detect(mayfly::accel::AccelRequest::Auto)
            .map_or(Accel::Tcg, |c| c.accel),
    }
}

#[tokio::test]
async fn a_booted_vm_waits_then_serves_one_event() {
    let echo = image("echo.elf");
    let vm = invoke::boot(&template(&echo.path)).await.expect("boot");
    assert!(vm.init_duration() > Duration::ZERO);
    // It waits as long as it must: well past INIT_TIMEOUT would be slow
    // to test; a moment shows that waiting is not a deadline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut vm = vm;
    assert!(vm.is_alive());
    let outcome = vm
        .deliver(
            br#"{"warm":true}"#.to_vec(),
            "11111111-0000-4000-8000-000000000001",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:1",
            Duration::from_secs(3),
            std::future::pending(),
        )
        .await
        .expect("deliver");
    assert_eq!(
        outcome.result,
        InvocationResult::Success(br#"{"warm":true}"#.to_vec())
    );
    assert_eq!(outcome.init_duration, None);
    assert_eq!(outcome.request_id, "11111111-0000-4000-8000-000000000001");
    assert_no_qemu_for(echo.dir());

    // A dropped VM is killed; one whose QEMU died is seen as dead.
    drop(invoke::boot(&template(&echo.path)).await.expect("boot"));
    assert_no_qemu_for(echo.dir());
    let mut vm = invoke::boot(&template(&echo.path)).await.expect("boot");
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

/// A `mayfly serve` killed (and its QEMUs checked) on drop.
struct Serve {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Serve {
    fn start() -> Serve {
        let dir = tempfile::Builder::new()
            .prefix("mayfly-warm-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mayfly"))
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--metrics-listen", "off", "--max-concurrency", "8"])
            .env("MAYFLY_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("MAYFLY_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mayfly serve");
        let serve = Serve { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !serve.healthy() {
            assert!(
                Instant::now() < deadline,
                "not healthy within 20 s; log:\n{}",
                serve.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.addr) else {
            return false;
        };
        let request = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert_no_qemu_for(&self.data_dir());
        }
    }
}

#[test]
fn provisioned_concurrency_end_to_end() {
    let images = root().join("target").join("images");
    assert!(
        images.join("echo.zip").exists(),
        "target/images/echo.zip is missing: run `cargo xtask images` first"
    );
    let serve = Serve::start();
    let output = Command::new("python3.11")
        .arg(root().join("tests").join("api").join("warm.py"))
        .env("MAYFLY_ENDPOINT", format!("http://{}", serve.addr))
        .env("MAYFLY_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("MAYFLY_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("MAYFLY_IMAGES", &images)
        .env("MAYFLY_DATA_DIR", serve.data_dir())
        .output()
        .expect("run python3.11 tests/api/warm.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("WARM OK"),
        "warm.py failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        serve.log()
    );
    for line in stdout.lines().filter(|l| l.starts_with("LATENCY")) {
        eprintln!("{line}");
    }
    // The script deleted the configuration: none of the pool's VMs is left,
    // while the server still runs.
    assert!(
        processes_mentioning(&serve.data_dir()).is_empty(),
        "QEMU left after the config was deleted: {:?}",
        processes_mentioning(&serve.data_dir())
    );
}
