//! The jail with real QEMU processes and hand-assembled guests: a jailed
//! QEMU runs with its own uid, seccomp, no_new_privs, new namespaces and a
//! cgroup with limits, nothing secret on its command line, and leaves no
//! cgroup behind. Needs root (as the jail's uid switch and cgroups do).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mayfly_runner::testing;
use mayfly_vm::accel::Accel;
use mayfly_vm::jail::{Jail, JailMode};
use mayfly_vm::run::{self, InvocationResult, RunError, RunRequest};

const SECRET: &str = "hunter2-jail-test-secret";

fn qemu() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(mayfly_vm::qemu::QEMU_FULL))
        .find(|p| p.is_file())
}

/// QEMU, where the jail's tests can run (root, cgroup v1's memory
/// controller, whose files they check); `None`, said on stderr, where not.
fn qemu_to_jail() -> Option<PathBuf> {
    let Some(binary) = qemu() else {
        eprintln!("skipped: no QEMU");
        return None;
    };
    if mayfly_vm::sys::euid() != 0 || !Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: needs root and cgroup v1 memory (this test checks v1 files)");
        return None;
    }
    Some(binary)
}

fn request(image: PathBuf, timeout: Duration) -> RunRequest {
    RunRequest {
        image,
        linux: None,
        event: b"{}".to_vec().into(),
        memory_mb: 128,
        timeout,
        env: vec![("DB_PASSWORD".into(), SECRET.into())],
        function_name: "test".into(),
        function_version: "$LATEST".into(),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:test".into(),
        request_id: "00000000-0000-4000-8000-000000000000".into(),
        egress: None,
        stream: None,
    }
}

fn write_image(dir: &Path, name: &str, code: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, testing::pvh_elf(code)).unwrap();
    // As packages are unpacked: readable by root alone.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o500)).unwrap();
    path
}

/// The pids of this process's children.
fn children() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let after = stat.rsplit_once(')')?.1;
            (after.split_whitespace().nth(1)? == me).then_some(pid)
        })
        .collect()
}

fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

fn cgroup_of(pid: u32, controller: &str) -> PathBuf {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _ = parts.next();
            let controllers = parts.next()?;
            controllers
                .split(',')
                .any(|c| c == controller)
                .then(|| parts.next().unwrap().to_string())
        })
        .unwrap();
    PathBuf::from(format!("/sys/fs/cgroup/{controller}")).join(path.trim_start_matches('/'))
}

#[tokio::test]
async fn a_jailed_vm_is_confined_and_leaves_nothing() {
    let Some(binary) = qemu_to_jail() else {
        return;
    };
    let jail = Jail::detect(JailMode::Require, &binary).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // A jailed guest boots, prints and exits: the root, the image copy and
    // the environment file are all there.
    let quiet = write_image(
        dir.path(),
        "quiet.elf",
        &testing::print_then_exit(b"jailed\n", 0),
    );
    let outcome = run::run_in(
        &request(quiet, Duration::from_secs(3)),
        Accel::Tcg,
        &jail,
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outcome.log),
        "jailed\n",
        "{:?}",
        outcome.result
    );
    assert!(
        matches!(outcome.result, InvocationResult::ExitError(ref m) if m.contains("status 1")),
        "{:?}",
        outcome.result
    );

    // A spinning guest, inspected while it runs.
    let spin = write_image(dir.path(), "spin.elf", testing::SPIN);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = {
        let request = request(spin, Duration::from_secs(20));
        tokio::spawn(async move {
            // With stubs cloned ahead, as `mayfly serve` runs: a stub
            // waiting in the pool must hold no copy of this VM's pipes,
            // or the console never ends after the kill below.
            let jail = Jail::detect(JailMode::Require, &qemu().unwrap()).unwrap();
            jail.keep_ready(1);
            tokio::time::sleep(Duration::from_millis(100)).await;
            run::run_in(&request, Accel::Tcg, &jail, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let mut qemu_pid = None;
    let spin_path = dir.path().join("spin.elf");
    for _ in 0..200 {
        // Past exec (its command line names the image) and its uid set.
        qemu_pid = children().into_iter().find(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(spin_path.to_str().unwrap()))
                && status_field(pid, "Uid") != "0\t0\t0\t0"
        });
        if qemu_pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = qemu_pid.expect("a jailed QEMU child");
    let uid: u32 = status_field(pid, "Uid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(uid >= mayfly_vm::jail::UID_BASE, "uid {uid}");
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");
    // QEMU installs its filter while it starts.
    for _ in 0..200 {
        if status_field(pid, "Seccomp") == "2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status_field(pid, "Seccomp"), "2");
    assert_eq!(status_field(pid, "CapEff"), "0000000000000000");
    // QEMU is its namespace's pid 1.
    assert!(
        status_field(pid, "NSpid").ends_with("\t1"),
        "{}",
        status_field(pid, "NSpid")
    );
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns} namespace shared");
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(SECRET));
    assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    // Only stdin, stdout, stderr and the NIC, plus what QEMU opened itself
    // (none of them the supervisor's).
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_link(e.path()).unwrap().display().to_string())
        .collect();
    assert!(
        !fds.iter()
            .any(|f| f.contains(".mayfly") || f.ends_with(".elf")),
        "{fds:?}"
    );
    let memory = cgroup_of(pid, "memory");
    let pids = cgroup_of(pid, "pids");
    assert!(
        memory.to_string_lossy().contains("/mayfly/vm-"),
        "{}",
        memory.display()
    );
    let limit: u64 = std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit, (128 + mayfly_vm::jail::OVERHEAD_MB) << 20);
    assert_eq!(
        std::fs::read_to_string(pids.join("pids.max"))
            .unwrap()
            .trim(),
        mayfly_vm::jail::PIDS_MAX.to_string()
    );
    // The secret is nowhere in the jail's root as others see it.
    assert_eq!(
        std::fs::read_dir(mayfly_vm::jail::ROOT_DIR_AS_ROOT)
            .unwrap()
            .count(),
        0
    );

    stop.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ended, Err(RunError::Cancelled)));
    for _ in 0..100 {
        if !memory.exists() && !pids.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!memory.exists(), "{} left", memory.display());
    assert!(!pids.exists(), "{} left", pids.display());
    // (Other tests' VMs and stubs may be children too: only ours count.)
    let ours: Vec<u32> = children()
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(dir.path().to_str().unwrap()))
        })
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
}

/// A Linux function's VM of 10,240 MB asks for six vCPUs: under
/// multi-threaded TCG that is a QEMU thread each, which the jail's
/// seccomp filter, its pids limit and its rlimits must all allow; its
/// cgroup allows a little memory for each vCPU beyond the first.
#[tokio::test]
async fn six_vcpus_under_multi_threaded_tcg_run_in_the_jail() {
    let Some(binary) = qemu_to_jail() else {
        return;
    };
    let jail = Jail::detect(JailMode::Require, &binary).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spin = write_image(dir.path(), "spin6.elf", testing::SPIN);
    let boot = mayfly_proto::boot::BootConfig::new("six", 10240);
    let config = mayfly_vm::qemu::VmConfig {
        accel: Accel::Tcg,
        memory_mb: 10240,
        vcpus: 6,
        kernel: &spin,
        initrd: None,
        boot: &boot,
    };
    let (_host, guest) = mayfly_vm::net::socket_pair().unwrap();
    let mut vm = mayfly_vm::qemu::spawn(&binary, &config, guest, &jail).unwrap();
    drop(vm.take_console());
    let pid = vm.pid().unwrap();
    // QEMU has started every vCPU's thread once it runs the guest; the
    // boot processor spins, the others wait for a startup IPI.
    let mut threads = 0;
    for _ in 0..300 {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            threads = status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            if threads >= 7 && status_field(pid, "Seccomp") == "2" {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        (7..=mayfly_vm::jail::PIDS_MAX).contains(&threads),
        "{threads} threads"
    );
    let memory = cgroup_of(pid, "memory");
    let limit: u64 = std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit, mayfly_vm::jail::cgroup_memory_bytes(10240, 6));
    // Still running: no thread was refused.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), vm.wait())
            .await
            .is_err(),
        "QEMU ended: {}",
        vm.stderr_tail().await
    );
    let status = vm.kill().await.unwrap();
    assert_eq!(status.signal(), Some(9), "{}", vm.stderr_tail().await);
}

#[tokio::test]
async fn an_unjailed_vm_still_gets_its_environment_privately() {
    if qemu().is_none() {
        eprintln!("skipped: no QEMU");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let quiet = write_image(
        dir.path(),
        "quiet.elf",
        &testing::print_then_exit(b"free\n", 0),
    );
    let outcome = run::run(&request(quiet, Duration::from_secs(3)), Accel::Tcg)
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&outcome.log), "free\n");
}

/// What the jail adds to a cold start: the floor guest (powers off at
/// once) spawned unjailed and jailed, interleaved; prints medians of
/// spawn-to-exec and spawn-to-reaped. A measurement, not a check:
/// `cargo test -p mayfly-vm --test jail -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement"]
async fn what_the_jail_costs() {
    let Some(binary) = qemu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let floor = write_image(dir.path(), "floor.elf", testing::EXIT_OK);
    let jailed = Jail::detect(JailMode::Auto, &binary).unwrap();
    let mut boot = mayfly_proto::boot::BootConfig::new("floor", 128);
    boot.env.push(("DB_PASSWORD".into(), SECRET.into()));
    let config = mayfly_vm::qemu::VmConfig {
        accel: Accel::Tcg,
        memory_mb: 128,
        vcpus: 1,
        kernel: &floor,
        initrd: None,
        boot: &boot,
    };
    let ready = Jail::detect(JailMode::Auto, &binary).unwrap();
    ready.keep_ready(1);
    let runs = 40;
    let jails = [Jail::none(), &jailed, &ready];
    let mut times = vec![(Vec::new(), Vec::new()); jails.len()];
    for round in 0..=runs {
        for (i, jail) in jails.iter().enumerate() {
            let (_host, guest) = mayfly_vm::net::socket_pair().unwrap();
            let started = std::time::Instant::now();
            let mut vm = mayfly_vm::qemu::spawn(&binary, &config, guest, jail).unwrap();
            let spawned = started.elapsed();
            drop(vm.take_console());
            vm.wait().await.unwrap();
            let reaped = started.elapsed();
            if round > 0 {
                times[i].0.push(spawned.as_secs_f64() * 1000.0);
                times[i].1.push(reaped.as_secs_f64() * 1000.0);
            }
            // As between invocations: the pool refills meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|(s, r)| (median(s), median(r)))
        .collect();
    println!("{runs} runs each, medians (spawn to exec, spawn to reaped):");
    for (name, (s, r)) in [
        "unjailed",
        "jailed, cloned on demand",
        "jailed, cloned ahead",
    ]
    .iter()
    .zip(&m)
    {
        println!(
            "  {name}: {s:.2} ms, {r:.2} ms (+{:.2} ms over unjailed)",
            r - m[0].1
        );
    }
}
