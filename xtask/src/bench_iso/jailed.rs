//! The "QEMU floor, jailed" row: the floor image booted by Mayfly's own
//! spawn path in the jail `--jail auto` gives on this host (own uid, new
//! namespaces, read-only root, seccomp, cgroup, rlimits), from spawn to
//! reaped exit with the VM's cgroup removed, with VM processes cloned
//! ahead into their namespaces and cgroups as `mayfly serve` keeps them.
//! Its median minus the floor's is what the jail adds to a cold start.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mayfly_proto::boot::BootConfig;
use mayfly_proto::exit;
use mayfly_vm::jail::{Jail, JailMode};
use mayfly_vm::{net, qemu};

use super::procs::{Qemu, Run};

/// Boots the floor image jailed.
pub struct JailedFloor {
    qemu: Qemu,
    jail: Jail,
    runtime: tokio::runtime::Runtime,
}

impl JailedFloor {
    /// Detects the jail for `qemu`'s binary.
    pub fn new(qemu: &Qemu) -> Result<JailedFloor> {
        let path = std::env::var_os("PATH");
        let binary = qemu::resolve_binary(&qemu.binary, path.as_deref())?;
        let jail = Jail::detect(JailMode::Auto, &binary).context("detecting the jail")?;
        // As `mayfly serve` does: VM processes cloned ahead.
        jail.keep_ready(2);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(JailedFloor {
            qemu: Qemu {
                binary,
                accel: qemu.accel,
            },
            jail,
            runtime,
        })
    }

    /// The parts in force, for the report.
    pub fn parts(&self) -> String {
        let parts = self.jail.parts();
        let on: Vec<&str> = parts.iter().filter(|p| p.1.is_ok()).map(|p| p.0).collect();
        let off: Vec<String> = parts
            .iter()
            .filter_map(|(n, s)| s.as_ref().err().map(|why| format!("{n} ({why})")))
            .collect();
        match off.is_empty() {
            true => format!("jail parts in force: {}", on.join(", ")),
            false => format!(
                "jail parts in force: {}; not in force: {}",
                on.join(", "),
                off.join("; ")
            ),
        }
    }

    /// One boot, with an environment variable so that the environment
    /// file is part of the cost.
    pub fn boot(&self, floor: &Path) -> Result<Run> {
        let mut boot = BootConfig::new("bench", 128);
        boot.env.push(("DB_PASSWORD".into(), "bench".into()));
        let config = qemu::VmConfig {
            accel: self.qemu.accel,
            memory_mb: 128,
            vcpus: 1,
            kernel: floor,
            initrd: None,
            boot: &boot,
        };
        self.runtime.block_on(async {
            let (_host, guest) = net::socket_pair()?;
            let started = Instant::now();
            let mut vm = qemu::spawn(&self.qemu.binary, &config, guest, &self.jail)?;
            drop(vm.take_console());
            let status = vm.wait().await?;
            let wall: Duration = started.elapsed();
            if status.code() != Some(exit::STATUS_OK) {
                let stderr = vm.stderr_tail().await;
                bail!(
                    "the jailed floor did not power off cleanly: {}; {stderr}",
                    qemu::describe_status(status)
                );
            }
            Ok(Run {
                wall,
                code: status.code(),
            })
        })
    }
}
