//! Admission: concurrency slots within the account's limit and each
//! function's reservation. A slot is held for as long as a VM exists for
//! it (running an event, or waiting warm for one); over a limit the answer
//! is a throttle at once, never a wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mayfly_store::{Store, StoreError};

/// Why an invocation was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// The function's reserved concurrency is in use (or is 0).
    Reserved,
    /// The account's unreserved concurrency is in use.
    Account,
}

impl Throttle {
    /// Lambda's `Reason`.
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Reserved => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account => "ConcurrentInvocationLimitExceeded",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    unreserved: u32,
    per_function: HashMap<String, u32>,
}

/// The host's concurrency slots.
#[derive(Debug)]
pub struct Admission {
    store: Store,
    max_concurrency: u32,
    counts: Mutex<Counts>,
}

/// A held concurrency slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    function: String,
    reserved: bool,
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
    }
}

impl Admission {
    /// Slots for at most `max_concurrency` VMs at once, reservations read
    /// from `store`.
    pub fn new(store: Store, max_concurrency: u32) -> Arc<Admission> {
        Arc::new(Admission {
            store,
            max_concurrency,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The account-wide limit on running VMs.
    pub fn max_concurrency(&self) -> u32 {
        self.max_concurrency
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock leaves plain counts behind.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for `function`, or says which limit refuses it.
    pub fn try_acquire(
        self: &Arc<Self>,
        function: &str,
    ) -> Result<Result<Slot, Throttle>, StoreError> {
        let reserved = self.store.get_reserved_concurrency(function)?;
        let total_reserved = self.store.total_reserved_concurrency(None)?;
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
                counts.unreserved += 1;
            }
        }
        *counts.per_function.entry(function.to_string()).or_default() += 1;
        Ok(Ok(Slot {
            admission: self.clone(),
            function: function.to_string(),
            reserved: reserved.is_some(),
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
        let admission = Admission::new(store, 2);
        let a = admission.try_acquire("f").unwrap().unwrap();
        let _b = admission.try_acquire("g").unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("f").unwrap().unwrap_err(),
            Throttle::Account
        );
        drop(a);
        assert!(admission.try_acquire("f").unwrap().is_ok());
    }

    #[test]
    fn a_reservation_is_the_function_own_and_leaves_the_rest_to_others() {
        let (_dir, store) = store();
        store.put_reserved_concurrency("f", 1).unwrap();
        let admission = Admission::new(store, 2);
        let _f = admission.try_acquire("f").unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("f").unwrap().unwrap_err(),
            Throttle::Reserved
        );
        // One of two is reserved for f: g gets the other, and no more.
        let _g = admission.try_acquire("g").unwrap().unwrap();
        assert_eq!(
            admission.try_acquire("g").unwrap().unwrap_err(),
            Throttle::Account
        );
    }
}
