//! The memory a host may give its VMs, and what one VM costs.
//!
//! Admission counts memory, not VMs: a running or warm VM holds its
//! configured `MemorySize` (a guest that touches all of it costs that much
//! host RAM) plus QEMU's own overhead. Two bounds hold at once:
//!
//! - the **budget** (`mayfly serve --memory-budget-mb`): the guest memory
//!   that VMs may hold together, what an operator sizes;
//! - the **host limit**: `MemTotal` minus a reserve for the host itself,
//!   against which each VM costs its memory plus [`QEMU_OVERHEAD_MB`], so
//!   that however the budget is set, the VMs cannot take the host's RAM.

/// QEMU's own resident memory per VM, beyond the guest RAM it touches, in
/// MB. Measured on the development host (QEMU 7.2, TCG, `microvm` with the
/// virtio-net and console devices Mayfly uses): an idle VM (misbehave in
/// its `loop` mode) had a VmRSS of 42 MB at 128, 512 and 2048 MB of
/// memory, of which 6 MB was guest RAM (its smaps); a VM paused before its
/// first instruction (`-S`) had 36.6 MB. 40 leaves room for TCG's code
/// buffer, which grows with the guest code run.
pub const QEMU_OVERHEAD_MB: u64 = 40;

/// What the host keeps for itself (the server, the page cache of the
/// store, the rest of the system): a quarter of its RAM, at least 512 MB.
pub fn host_reserve_mb(mem_total_mb: u64) -> u64 {
    (mem_total_mb / 4).max(512)
}

/// `MemTotal` of `/proc/meminfo`, in MB; `None` where it cannot be read.
pub fn mem_total_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total_mb(&text)
}

/// `MemTotal` of a `/proc/meminfo` text, in MB.
pub fn parse_mem_total_mb(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
}

/// The memory bounds admission holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// Guest memory of every running and warm VM together, in MB.
    pub budget_mb: u64,
    /// Guest memory plus QEMU's overhead of every VM together, in MB.
    pub host_limit_mb: u64,
    /// QEMU's overhead charged per VM against the host limit, in MB.
    pub overhead_mb: u64,
}

impl MemoryLimits {
    /// The limits of a host with `mem_total_mb` of RAM: the host limit is
    /// what the reserve leaves; the budget is `budget_mb` when set, else
    /// the host limit (the overhead then is what keeps the VMs within it).
    pub fn for_host(mem_total_mb: u64, budget_mb: Option<u64>) -> MemoryLimits {
        let host_limit_mb = mem_total_mb.saturating_sub(host_reserve_mb(mem_total_mb));
        MemoryLimits {
            budget_mb: budget_mb.unwrap_or(host_limit_mb),
            host_limit_mb,
            overhead_mb: QEMU_OVERHEAD_MB,
        }
    }

    /// The limits of this host (4 GB assumed where `/proc/meminfo` cannot
    /// be read).
    pub fn detect(budget_mb: Option<u64>) -> MemoryLimits {
        MemoryLimits::for_host(mem_total_mb().unwrap_or(4096), budget_mb)
    }

    /// Bounds that never refuse (for tests of other limits).
    pub fn unlimited() -> MemoryLimits {
        MemoryLimits {
            budget_mb: u64::MAX,
            host_limit_mb: u64::MAX,
            overhead_mb: QEMU_OVERHEAD_MB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_mb() {
        let text = "MemTotal:       24683944 kB\nMemFree:         9570912 kB\n";
        assert_eq!(parse_mem_total_mb(text), Some(24105));
        assert_eq!(parse_mem_total_mb("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn the_host_keeps_a_reserve_and_the_budget_defaults_to_the_rest() {
        let limits = MemoryLimits::for_host(24_000, None);
        assert_eq!(limits.host_limit_mb, 18_000);
        assert_eq!(limits.budget_mb, 18_000);
        let small = MemoryLimits::for_host(1_024, Some(256));
        assert_eq!(small.host_limit_mb, 512);
        assert_eq!(small.budget_mb, 256);
    }
}
