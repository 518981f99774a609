//! Admission: concurrency slots within the account's limit and each
//! function's reservation, and memory within the host's
//! [`MemoryLimits`](crate::memory::MemoryLimits). A slot is held for as
//! long as a VM exists for it (running an event, or waiting warm for one)
//! and holds that VM's memory; over a limit the answer is a throttle at
//! once, never a wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mayfly_store::{Store, StoreError};

use crate::memory::MemoryLimits;

/// Why an invocation was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The function's reserved concurrency is in use (or is 0).
    Reserved,
    /// The account's unreserved concurrency is in use.
    Account,
    /// The memory budget (or the host's RAM) cannot hold one more VM of
    /// this size now.
    Memory {
        /// What the VM would hold, in MB (its memory, plus QEMU's overhead
        /// when the host limit refused it).
        needed_mb: u64,
        /// What the running and warm VMs hold, in MB.
        in_use_mb: u64,
        /// The bound that refused it, in MB.
        limit_mb: u64,
        /// Whether it was the host limit (RAM less its reserve) rather than
        /// the budget.
        host: bool,
    },
}

impl Throttle {
    /// Lambda's `Reason`. A memory throttle is an account-level limit as
    /// Lambda has it (clients know no other reason); the message says which.
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Reserved => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account | Throttle::Memory { .. } => "ConcurrentInvocationLimitExceeded",
        }
    }

    /// The error message for a person.
    pub fn message(self) -> String {
        match self {
            Throttle::Reserved | Throttle::Account => "Rate Exceeded.".into(),
            Throttle::Memory {
                needed_mb,
                in_use_mb,
                limit_mb,
                host: false,
            } => format!(
                "Rate Exceeded: the host's memory budget is spent ({in_use_mb} MB of \
                 {limit_mb} MB held by running and warm VMs; this invocation needs {needed_mb} MB)."
            ),
            Throttle::Memory {
                needed_mb,
                in_use_mb,
                limit_mb,
                host: true,
            } => format!(
                "Rate Exceeded: the host's memory for VMs is spent ({in_use_mb} MB of \
                 {limit_mb} MB held by VMs with QEMU's overhead; this invocation needs {needed_mb} MB)."
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    unreserved: u32,
    per_function: HashMap<String, u32>,
    /// Guest memory held, in MB.
    guest_mb: u64,
    /// Guest memory plus QEMU's overhead held, in MB.
    host_mb: u64,
}

/// The host's concurrency slots and memory.
#[derive(Debug)]
pub struct Admission {
    store: Store,
    max_concurrency: u32,
    memory: MemoryLimits,
    counts: Mutex<Counts>,
}

/// What the VMs hold now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// VMs (running and warm).
    pub vms: u32,
    /// Their guest memory, in MB.
    pub guest_mb: u64,
    /// Their guest memory plus QEMU's overhead, in MB.
    pub host_mb: u64,
}

/// A held concurrency slot with its memory; released on drop.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    function: String,
    reserved: bool,
    memory_mb: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.admission.lock();
        if let Some(n) = counts.per_function.get_mut(&self.function) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_function.remove(&self.function);
            }
        }
        if !self.reserved {
            counts.unreserved = counts.unreserved.saturating_sub(1);
        }
        counts.guest_mb = counts.guest_mb.saturating_sub(self.memory_mb);
        counts.host_mb = counts
            .host_mb
            .saturating_sub(self.memory_mb + self.admission.memory.overhead_mb);
    }
}

impl Admission {
    /// Slots for at most `max_concurrency` VMs at once within `memory`,
    /// reservations read from `store`.
    pub fn new(store: Store, max_concurrency: u32, memory: MemoryLimits) -> Arc<Admission> {
        Arc::new(Admission {
            store,
            max_concurrency,
            memory,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The account-wide limit on running VMs.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    /// The memory bounds.
    pub fn memory_limits(&self) -> MemoryLimits {
        self.memory
    }

    /// What the running and warm VMs hold now.
    pub fn usage(&self) -> Usage {
        let counts = self.lock();
        Usage {
            vms: counts.per_function.values().sum(),
            guest_mb: counts.guest_mb,
            host_mb: counts.host_mb,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock leaves plain counts behind.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a VM of `function` with `memory_mb` of memory, or
    /// says which limit refuses it.
    pub fn try_acquire(
        self: &Arc<Self>,
        function: &str,
        memory_mb: u32,
    ) -> Result<Result<Slot, Throttle>, StoreError> {
        let reserved = self.store.get_reserved_concurrency(function)?;
        let total_reserved = self.store.total_reserved_concurrency(None)?;
        let memory_mb = u64::from(memory_mb);
        let mut counts = self.lock();
        let running = counts.per_function.get(function).copied().unwrap_or(0);
        match reserved {
            Some(limit) if running >= limit => return Ok(Err(Throttle::Reserved)),
            Some(_) => {}
            None => {
                let pool = u64::from(self.max_concurrency).saturating_sub(total_reserved);
                if u64::from(counts.unreserved) >= pool {
                    return Ok(Err(Throttle::Account));
                }
            }
        }
        if counts.guest_mb.saturating_add(memory_mb) > self.memory.budget_mb {
            return Ok(Err(Throttle::Memory {
                needed_mb: memory_mb,
                in_use_mb: counts.guest_mb,
                limit_mb: self.memory.budget_mb,
                host: false,
            }));
        }
        let with_qemu = memory_mb + self.memory.overhead_mb;
        if counts.host_mb.saturating_add(with_qemu) > self.memory.host_limit_mb {
            return Ok(Err(Throttle::Memory {
                needed_mb: with_qemu,
                in_use_mb: counts.host_mb,
                limit_mb: self.memory.host_limit_mb,
                host: true,
            }));
        }
        if reserved.is_none() {
            counts.unreserved += 1;
        }
        counts.guest_mb += memory_mb;
        counts.host_mb += with_qemu;
        *counts.per_function.entry(function.to_string()).or_default() += 1;
        Ok(Ok(Slot {
            admission: self.clone(),
            function: function.to_string(),
            reserved: reserved.is_some(),
            memory_mb,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with functions `f` and `g`.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = store.put_blob(b"package").unwrap();
        for name in ["f", "g"] {
            store
                .create_function(name, serde_json::json!({}), &blob.sha256_hex, blob.size)
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn the_account_limit_holds_and_slots_come_back() {
        let (_dir, store) = store();
        let admission = Admission::new(store, 2, MemoryLimits::unlimited());
        let a = admission.try_acquire("f", 128).unwrap().unwrap();
        let _b = admission.try_acquire("g", 128).unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("f", 128).unwrap().unwrap_err(),
            Throttle::Account
        );
        drop(a);
        assert!(admission.try_acquire("f", 128).unwrap().is_ok());
    }

    #[test]
    fn a_reservation_is_the_function_own_and_leaves_the_rest_to_others() {
        let (_dir, store) = store();
        store.put_reserved_concurrency("f", 1).unwrap();
        let admission = Admission::new(store, 2, MemoryLimits::unlimited());
        let _f = admission.try_acquire("f", 128).unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("f", 128).unwrap().unwrap_err(),
            Throttle::Reserved
        );
        // One of two is reserved for f: g gets the other, and no more.
        let _g = admission.try_acquire("g", 128).unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("g", 128).unwrap().unwrap_err(),
            Throttle::Account
        );
    }

    #[test]
    fn memory_is_admitted_within_the_budget_and_comes_back() {
        let (_dir, store) = store();
        let limits = MemoryLimits {
            budget_mb: 1024,
            host_limit_mb: 10_000,
            overhead_mb: 40,
        };
        let admission = Admission::new(store, 16, limits);
        let a = admission.try_acquire("f", 512).unwrap().unwrap();
        let _b = admission.try_acquire("g", 512).unwrap().unwrap();
        let refused = admission.try_acquire("f", 128).unwrap().unwrap_err();
        assert_eq!(
            refused,
            Throttle::Memory {
                needed_mb: 128,
                in_use_mb: 1024,
                limit_mb: 1024,
                host: false
            }
        );
        assert!(
            refused.message().contains("memory budget"),
            "{}",
            refused.message()
        );
        assert_eq!(
            admission.usage(),
            Usage {
                vms: 2,
                guest_mb: 1024,
                host_mb: 1104
            }
        );
        drop(a);
        assert_eq!(admission.usage().guest_mb, 512);
        assert!(admission.try_acquire("f", 512).unwrap().is_ok());
    }

    #[test]
    fn qemu_overhead_counts_against_the_host_limit() {
        let (_dir, store) = store();
        let limits = MemoryLimits {
            budget_mb: 10_000,
            host_limit_mb: 1_100,
            overhead_mb: 40,
        };
        let admission = Admission::new(store, 16, limits);
        let _a = admission.try_acquire("f", 512).unwrap().unwrap();
        // 552 + 552 > 1100, though 1024 of guest memory is within budget.
        let refused = admission.try_acquire("g", 512).unwrap().unwrap_err();
        assert!(matches!(
            refused,
            Throttle::Memory {
                host: true,
                needed_mb: 552,
                ..
            }
        ));
        assert!(admission.try_acquire("g", 128).unwrap().is_ok());
    }

    #[test]
    fn a_refusal_takes_nothing() {
        let (_dir, store) = store();
        let limits = MemoryLimits {
            budget_mb: 256,
            host_limit_mb: 10_000,
            overhead_mb: 40,
        };
        let admission = Admission::new(store, 1, limits);
        assert!(admission.try_acquire("f", 512).unwrap().is_err());
        // The refused attempt neither took the one slot nor any memory.
        assert!(admission.try_acquire("g", 256).unwrap().is_ok());
    }
}
