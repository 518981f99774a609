//! The start-up sweep: QEMU processes left by a previous `mayfly serve` on
//! the same data directory are killed.
//!
//! Each QEMU already dies with its parent (`PR_SET_PDEATHSIG`), so this
//! only matters when that could not happen (the supervisor's thread that
//! spawned it outlived the process, say, or a foreign parent). Such a VM
//! is recognised by its `-kernel`, which is an image unpacked under this
//! data directory's `images/`, or (a Linux function, whose kernel is the
//! generic image) by its `-initrd`, the package's pack there.

use std::path::Path;

/// The pids of QEMU processes booting an image from `images_dir`.
pub fn find_orphans(images_dir: &Path) -> Vec<i32> {
    let needle = format!("{}/", images_dir.display());
    let own = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let is_qemu = args
                .first()
                .is_some_and(|a| String::from_utf8_lossy(a).contains("qemu-system"));
            let ours = args.windows(2).any(|w| {
                (w[0] == b"-kernel" || w[0] == b"-initrd")
                    && String::from_utf8_lossy(w[1]).starts_with(&needle)
            });
            (is_qemu && ours && pid != own).then_some(pid)
        })
        .collect()
}

/// Kills what [`find_orphans`] finds; returns how many.
pub fn kill_orphans(images_dir: &Path) -> usize {
    let orphans = find_orphans(images_dir);
    for &pid in &orphans {
        // At worst the process is gone already and the call fails harmlessly.
        let _ = crate::sys::kill(pid, crate::sys::Signal::Kill);
        tracing::warn!(pid, "killed a QEMU left by a previous run");
    }
    orphans.len()
}
