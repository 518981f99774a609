//! `--jail require|auto|off`, shared by `mayfly serve` and `mayfly run`.

use std::sync::Arc;

use clap::ValueEnum;
use mayfly_vm::accel::Accel;
use mayfly_vm::jail::{Jail, JailMode};
use mayfly_vm::qemu;

/// How much of the jail around QEMU to insist on.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum JailArg {
    /// Every part (own uid, namespaces, read-only root, seccomp, cgroup
    /// limits, rlimits), or refuse to start.
    Require,
    /// Every part this host allows.
    Auto,
    /// No jail: QEMU as this user, in this host's namespaces.
    Off,
}

impl From<JailArg> for JailMode {
    fn from(arg: JailArg) -> JailMode {
        match arg {
            JailArg::Require => JailMode::Require,
            JailArg::Auto => JailMode::Auto,
            JailArg::Off => JailMode::Off,
        }
    }
}

/// Detects the jail for VMs under `accel` and logs which parts are in
/// force; the error is for the user.
pub(crate) fn detect(arg: JailArg, accel: Accel) -> Result<Arc<Jail>, String> {
    let path = std::env::var_os("PATH");
    let binary = qemu::find_binary(accel, std::env::var_os(qemu::QEMU_ENV), path.as_deref());
    let binary = qemu::resolve_binary(&binary, path.as_deref()).map_err(|e| e.to_string())?;
    let jail = Jail::detect(arg.into(), &binary).map_err(|e| e.to_string())?;
    jail.log();
    Ok(Arc::new(jail))
}

/// One line for the operator: the parts in force, and those not.
pub(crate) fn summary(jail: &Jail) -> String {
    let (on, off): (Vec<_>, Vec<_>) = jail.parts().into_iter().partition(|(_, s)| s.is_ok());
    let names = |parts: Vec<(&str, Result<String, String>)>| {
        parts.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    };
    match (on.is_empty(), off.is_empty()) {
        (_, true) => format!("jail {}: all in force ({})", jail.mode(), names(on)),
        (true, _) => format!("jail {}: none in force", jail.mode()),
        _ => format!(
            "jail {}: in force: {}; not in force: {} (RUST_LOG=info says why)",
            jail.mode(),
            names(on),
            names(off)
        ),
    }
}
