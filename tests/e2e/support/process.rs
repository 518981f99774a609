//! Which QEMU processes are alive. Every VM a test starts names a file of
//! that test's own temporary directory on its command line, so a test can
//! tell its VMs from those of the tests running beside it, and prove that
//! it left none behind.

use std::path::Path;
use std::time::{Duration, Instant};

/// Process ids of the live QEMU processes whose command line mentions
/// `needle`.
pub fn qemus_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.unwrap();
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty command line: reaping is checked by the
        // supervisor's own tests, a live VM here.
        if cmdline.contains("qemu-system") && cmdline.contains(&needle) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `within` until no QEMU mentions `dir`; otherwise returns
/// those still there.
pub fn no_qemu_within(dir: &Path, within: Duration) -> Result<(), Vec<u32>> {
    let deadline = Instant::now() + within;
    loop {
        let left = qemus_mentioning(dir);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(left);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that no QEMU process names a file under `dir`, allowing a
/// moment for a process already killed to disappear.
pub fn assert_no_qemu_for(dir: &Path) {
    if let Err(left) = no_qemu_within(dir, Duration::from_secs(2)) {
        panic!("QEMU processes left behind in {}: {left:?}", dir.display());
    }
}

/// Waits up to `within` until a QEMU mentioning `dir` runs.
pub fn wait_for_qemu(dir: &Path, within: Duration) {
    let deadline = Instant::now() + within;
    while qemus_mentioning(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no QEMU of {} started within {within:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGKILL to every QEMU mentioning `dir`, and returns their ids.
pub fn kill_qemus(dir: &Path) -> Vec<u32> {
    let found = qemus_mentioning(dir);
    for pid in &found {
        // SAFETY: kill(2) on a QEMU this test left; at worst it is gone
        // already and the call fails.
        unsafe {
            libc::kill(*pid as i32, libc::SIGKILL);
        }
    }
    found
}
