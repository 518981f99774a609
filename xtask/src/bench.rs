//! `cargo xtask bench-run`: the cold-start cost of one invocation of the
//! echo image beside the QEMU floor, all measured alternately in the same
//! run so that every row sees the same machine.
//!
//! Rows:
//! - the floor: QEMU with exactly Mayfly's command line (from
//!   `mayfly_vm::qemu::argv`, NIC socket pair included) booting an ELF that
//!   powers off as its first instruction, from spawn to exit;
//! - `invoke()`: Mayfly's VM layer in this process, from call to result
//!   (boot, runtime API, function, teardown);
//! - `mayfly run`: the command line as a user runs it, wall time.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mayfly_proto::boot::BootConfig;
use mayfly_proto::exit;
use mayfly_runner::{InvocationResult, RunRequest};
use mayfly_vm::accel::{self, Accel, AccelRequest};
use mayfly_vm::run;
use mayfly_vm::{net, qemu};

use crate::{bootstrap, images, util};

const DEFAULT_RUNS: usize = 20;

/// Runs the benchmark: `--runs N` changes the number of runs.
pub fn run(args: &[String]) -> Result<()> {
    let runs = match args {
        [] => DEFAULT_RUNS,
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        _ => bail!("usage: cargo xtask bench-run [--runs N]"),
    };
    bootstrap::ensure_host_tools()?;
    let built = images::build()?;
    let mayfly = util::build_mayfly()?;
    let floor = util::images_dir().join("floor.elf");
    let echo = built
        .iter()
        .find(|i| i.name == "echo")
        .expect("echo is built")
        .elf
        .clone();
    let choice = accel::detect(AccelRequest::Auto).context("choosing the accelerator")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    // One unmeasured run of each warms the page cache.
    runtime.block_on(boot_floor(choice.accel, &floor))?;
    runtime.block_on(run_echo(choice.accel, &echo))?;
    let mut floor_ms = Vec::with_capacity(runs);
    let mut run_ms = Vec::with_capacity(runs);
    let mut cli_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        floor_ms.push(ms(runtime.block_on(boot_floor(choice.accel, &floor))?));
        run_ms.push(ms(runtime.block_on(run_echo(choice.accel, &echo))?));
        cli_ms.push(ms(run_cli(&mayfly, &echo)?));
    }
    let (floor_p50, floor_p90) = util::median_p90(&mut floor_ms);
    let (run_p50, run_p90) = util::median_p90(&mut run_ms);
    let (cli_p50, cli_p90) = util::median_p90(&mut cli_ms);
    println!(
        "accelerator: {} ({}); {runs} runs of each",
        choice.accel, choice.reason
    );
    println!();
    println!("| what | median | p90 | median / floor |");
    println!("|---|---|---|---|");
    println!("| QEMU floor: same flags, ELF that powers off at once | {floor_p50:.1} ms | {floor_p90:.1} ms | 1.00x |");
    println!(
        "| echo through `mayfly_vm::run` (in process) | {run_p50:.1} ms | {run_p90:.1} ms | {:.2}x |",
        run_p50 / floor_p50
    );
    println!(
        "| echo through `mayfly run` (whole command) | {cli_p50:.1} ms | {cli_p90:.1} ms | {:.2}x |",
        cli_p50 / floor_p50
    );
    println!();
    println!("goal: echo within 1.5x the floor");
    for image in &built {
        let size = std::fs::metadata(&image.elf)?.len();
        println!("image {:<10} {size:>7} bytes (stripped ELF)", image.name);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Spawn to exit of QEMU on the floor image, with Mayfly's flags.
async fn boot_floor(accel: Accel, floor: &Path) -> Result<Duration> {
    let boot = BootConfig::new("floor", 128);
    let config = qemu::VmConfig {
        accel,
        memory_mb: 128,
        vcpus: 1,
        kernel: floor,
        initrd: None,
        boot: &boot,
    };
    let binary = qemu::find_binary(
        accel,
        std::env::var_os(qemu::QEMU_ENV),
        std::env::var_os("PATH").as_deref(),
    );
    let started = Instant::now();
    let (_host_end, guest_end) = net::socket_pair()?;
    let mut vm = qemu::spawn(&binary, &config, guest_end, mayfly_vm::jail::Jail::none())?;
    let status = vm.wait().await?;
    let elapsed = started.elapsed();
    if status.code() != Some(exit::STATUS_OK) {
        bail!(
            "the floor image did not power off cleanly: {}",
            qemu::describe_status(status)
        );
    }
    Ok(elapsed)
}

/// One echo invocation through the VM layer, start to result.
async fn run_echo(accel: Accel, echo: &Path) -> Result<Duration> {
    let request = RunRequest {
        image: echo.to_path_buf(),
        linux: None,
        event: br#"{"bench":true}"#.to_vec().into(),
        memory_mb: 128,
        timeout: Duration::from_secs(10),
        env: Vec::new(),
        function_name: "echo".into(),
        function_version: "$LATEST".into(),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:echo".into(),
        request_id: "bench".into(),
        egress: None,
        stream: None,
    };
    let started = Instant::now();
    let outcome = run::run(&request, accel).await?;
    let elapsed = started.elapsed();
    match outcome.result {
        InvocationResult::Success(body) if body == request.event => Ok(elapsed),
        other => bail!("echo did not echo: {other:?}"),
    }
}

/// Wall time of `mayfly run echo.elf`.
fn run_cli(mayfly: &Path, echo: &Path) -> Result<Duration> {
    let started = Instant::now();
    let out = Command::new(mayfly)
        .arg("run")
        .arg(echo)
        .args(["--event", r#"{"bench":true}"#])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", mayfly.display()))?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "`mayfly run` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(elapsed)
}
