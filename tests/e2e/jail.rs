//! The jail around QEMU, seen from outside as an attacker on the host
//! would look: during an invocation whose function has `DB_PASSWORD` in
//! its environment, no process's command line or environment holds it;
//! QEMU runs with a uid of its own, `no_new_privs`, seccomp, namespaces of
//! its own and a cgroup with limits; afterwards no cgroup and nothing in
//! the jail's directory remain. And `--jail require|off` on `mayfly run`.
//!
//! The full jail needs root and cgroup v1 or v2 memory and pids (this
//! machine's); elsewhere the tests say so and pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::command::{self, mayfly_with};
use crate::support::process::qemus_mentioning;
use crate::support::{image, image_path, payload_json, Options, Server};
use serde_json::json;

fn full_jail_possible() -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && (Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists())
}

fn status_field(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
}

/// Every process whose command line or environment contains `needle`.
fn processes_holding(needle: &str) -> Vec<(u32, &'static str, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        for what in ["cmdline", "environ"] {
            let Ok(bytes) = std::fs::read(entry.path().join(what)) else {
                continue;
            };
            if String::from_utf8_lossy(&bytes).contains(needle) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push((pid, what, comm.trim().to_string()));
            }
        }
    }
    found
}

/// The v1 (`/sys/fs/cgroup/<controller>/...`) or v2 directory of `pid`'s
/// cgroup for `controller`.
fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == controller) {
            return Some(Path::new("/sys/fs/cgroup").join(controller).join(path));
        }
        if controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Some(Path::new("/sys/fs/cgroup").join(path));
        }
    }
    None
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn a_jailed_invocation_keeps_its_secret_and_its_limits() {
    if !full_jail_possible() {
        eprintln!("skipped: the full jail needs root and cgroup memory and pids");
        return;
    }
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let s = Server::start_with(Options {
        extra_args: vec!["--jail".into(), "require".into()],
        ..Options::default()
    });
    assert!(
        s.log().contains("jail require: all in force"),
        "{}",
        s.log()
    );
    let env = format!("Variables={{DB_PASSWORD={secret},GREETING=Hi}}");
    s.create(
        "jail-hello",
        &image_path("hello.zip"),
        &["--environment", &env],
    );
    s.create(
        "jail-slow",
        &image_path("misbehave.zip"),
        &["--environment", &env, "--timeout", "6"],
    );

    // The environment reaches a jailed guest.
    let (_, out) = s.invoke("jail-hello", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));

    // A VM that runs until its timeout, inspected meanwhile.
    let slow = std::thread::scope(|scope| {
        let invocation =
            scope.spawn(|| s.invoke_raw("jail-slow", &["--payload", r#"{"mode":"loop"}"#]));
        let deadline = Instant::now() + Duration::from_secs(20);
        // A QEMU past its exec and its own set-up: its uid changed and
        // its seccomp filter installed.
        let pid = loop {
            let ready = qemus_mentioning(&s.data_dir).into_iter().find(|&pid| {
                status_field(pid, "Seccomp").as_deref() == Some("2")
                    && status_field(pid, "Uid").is_some_and(|u| !u.starts_with("0\t"))
            });
            if let Some(pid) = ready {
                break pid;
            }
            assert!(Instant::now() < deadline, "no jailed QEMU ran\n{}", s.log());
            std::thread::sleep(Duration::from_millis(20));
        };

        let holders = processes_holding(&secret);
        assert!(
            holders.is_empty(),
            "the secret is readable in /proc: {holders:?}"
        );

        let uid: u32 = status_field(pid, "Uid")
            .unwrap()
            .split('\t')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(uid >= mayfly_vm::jail::UID_BASE, "QEMU runs as uid {uid}");
        assert_eq!(status_field(pid, "NoNewPrivs").as_deref(), Some("1"));
        assert_eq!(status_field(pid, "Seccomp").as_deref(), Some("2"));
        assert_eq!(
            status_field(pid, "CapEff").as_deref(),
            Some("0000000000000000")
        );
        let server = status_field(pid, "PPid").unwrap();
        for ns in ["mnt", "pid", "net", "ipc", "uts"] {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            let servers = std::fs::read_link(format!("/proc/{server}/ns/{ns}")).unwrap();
            assert_ne!(theirs, servers, "QEMU shares the server's {ns} namespace");
        }
        // Only its own descriptors: nothing of the server's (store,
        // sockets to clients, the image cache).
        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|l| l.display().to_string())
            .collect();
        let data = s.data_dir.display().to_string();
        assert!(!fds.iter().any(|f| f.contains(&data)), "{fds:?}");

        let memory = cgroup_dir(pid, "memory").unwrap();
        let pids = cgroup_dir(pid, "pids").unwrap();
        assert!(
            memory.to_string_lossy().contains("/mayfly/vm-"),
            "{}",
            memory.display()
        );
        let limit_file = ["memory.limit_in_bytes", "memory.max"]
            .iter()
            .map(|f| memory.join(f))
            .find(|p| p.exists())
            .unwrap();
        let limit: u64 = read_trimmed(&limit_file).parse().unwrap();
        assert_eq!(limit, (128 + mayfly_vm::jail::OVERHEAD_MB) << 20);
        assert_eq!(
            read_trimmed(&pids.join("pids.max")),
            mayfly_vm::jail::PIDS_MAX.to_string()
        );

        let (cli, out) = invocation.join().unwrap();
        (cli, out, memory, pids)
    });
    let (cli, out, memory, pids) = slow;
    let meta = cli.ok();
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    assert!(
        String::from_utf8_lossy(&out).contains("Task timed out"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // Nothing left: no QEMU, no cgroup, nothing in the jail's directory.
    s.assert_no_qemu();
    let deadline = Instant::now() + Duration::from_secs(3);
    while memory.exists() || pids.exists() {
        assert!(
            Instant::now() < deadline,
            "the VM's cgroup was left: {}",
            memory.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let jail_dir = Path::new(mayfly_vm::jail::ROOT_DIR_AS_ROOT);
    assert_eq!(
        std::fs::read_dir(jail_dir).unwrap().count(),
        0,
        "{}",
        jail_dir.display()
    );
}

#[test]
fn run_with_the_jail_required_and_off() {
    let hello = image("hello.zip");
    for jail in ["off", "require"] {
        if jail == "require" && !full_jail_possible() {
            eprintln!("skipped: --jail require needs root and cgroup memory and pids");
            continue;
        }
        let run = command::run(
            &hello,
            &[
                "--jail",
                jail,
                "--env",
                "GREETING=Salut",
                "--event",
                r#"{"name":"Ada"}"#,
            ],
        );
        assert_eq!(run.code, 0, "--jail {jail}: {}", run.stderr);
        assert_eq!(
            run.json(),
            json!({"message": "Salut, Ada!"}),
            "--jail {jail}"
        );
    }
    let bad = mayfly_with(&["run", "x.elf", "--jail", "sometimes"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}
