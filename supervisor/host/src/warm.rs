//! The warm pools behind provisioned concurrency.
//!
//! One pool per (function, qualifier) with a configuration, each kept by its
//! own task (the reconciler), which owns every change but taking a VM:
//!
//! - it keeps `requested` VMs booted ([`Runner::boot`]) and paused
//!   in their first `GET /next`, each holding a concurrency slot from
//!   [`Admission::try_acquire`] for as long as it exists, so warm VMs count
//!   against the limits (their memory against the memory budget); when no
//!   slot is free it tries again shortly;
//! - about once a second it checks the store: a configuration that is gone
//!   (deleted with its function, alias or version) drops the pool and kills
//!   its VMs; a qualifier that now names another version replaces them; a
//!   new size from the store wins over the one in memory;
//! - it drops VMs whose QEMU died, and persists the status (`IN_PROGRESS`
//!   until the requested size is first reached, then `READY`; `FAILED`
//!   after repeated boot failures) with the number of VMs ready.
//!
//! An invocation [takes](WarmPools::take) a VM (with its slot): that VM
//! serves the one event and is destroyed, and the reconciler is woken to
//! boot its replacement once the invocation on it is over.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mayfly_store::{FunctionVersion, ProvisionedStatus, Store, StoreError};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinSet};

use mayfly_runner::{EgressPlan, Runner, VmTemplate, WarmVm};

use crate::admission::{Admission, Slot};
use crate::images::ImageCache;
use crate::settings::RunSettings;

/// How often a pool looks at its configuration in the store.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How soon a pool tries again when no concurrency slot was free.
const SLOT_RETRY: Duration = Duration::from_millis(250);
/// Consecutive boot failures after which the status is `FAILED` (the pool
/// keeps trying, more and more slowly).
const FAILURES_BEFORE_FAILED: u32 = 3;
/// The longest wait between boot attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A booted VM of a pool, with the concurrency slot it holds.
#[derive(Debug)]
pub struct PooledVm {
    vm: Box<dyn WarmVm>,
    slot: Slot,
    version: FunctionVersion,
    /// The egress it booted with: a VM whose function's policy changed
    /// since (its `mayfly:egress` tag) is replaced.
    egress: EgressPlan,
    /// The pool to refill once this VM's invocation is over.
    taken_from: Option<Arc<Pool>>,
}

/// Wakes a pool's reconciler when dropped: after the invocation on a taken
/// VM ends, however it ends.
#[derive(Debug)]
pub struct RefillWhenDone(Option<Arc<Pool>>);

impl Drop for RefillWhenDone {
    fn drop(&mut self) {
        if let Some(pool) = &self.0 {
            pool.wake.notify_one();
        }
    }
}

impl PooledVm {
    /// The VM, the slot it holds, and the guard that boots its replacement
    /// when dropped (hold it until the invocation on the VM is over).
    pub fn into_parts(self) -> (Box<dyn WarmVm>, Slot, RefillWhenDone) {
        (self.vm, self.slot, RefillWhenDone(self.taken_from))
    }
}

type Key = (String, String);

/// Every warm pool of the host.
#[derive(Debug)]
pub struct WarmPools {
    store: Store,
    admission: Arc<Admission>,
    images: ImageCache,
    runner: Arc<dyn Runner>,
    /// What VMs may reach beyond their runtime API (the host's rules).
    egress: Arc<EgressPlan>,
    pools: Mutex<HashMap<Key, Arc<Pool>>>,
}

/// The warm pool of one function and qualifier.
#[derive(Debug)]
struct Pool {
    key: Key,
    inner: Mutex<Inner>,
    /// Wakes the reconciler: a VM was taken, or the size changed.
    wake: Notify,
    task: Mutex<Option<AbortHandle>>,
}

#[derive(Debug)]
struct Inner {
    requested: u32,
    /// Oldest first.
    ready: VecDeque<PooledVm>,
    /// The size changed: the status is `IN_PROGRESS` until it is reached.
    resized: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The status to persist: `READY` once the size was reached, `FAILED` after
/// repeated failures before that, `IN_PROGRESS` otherwise.
pub fn status_of(reached_full: bool, failures: u32) -> ProvisionedStatus {
    if reached_full {
        ProvisionedStatus::Ready
    } else if failures >= FAILURES_BEFORE_FAILED {
        ProvisionedStatus::Failed
    } else {
        ProvisionedStatus::InProgress
    }
}

/// The wait before the next boot after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

impl WarmPools {
    /// No pools yet; see [`restore`](Self::restore) and [`set`](Self::set).
    pub fn new(
        store: Store,
        admission: Arc<Admission>,
        images: ImageCache,
        runner: Arc<dyn Runner>,
        egress: Arc<EgressPlan>,
    ) -> Arc<WarmPools> {
        Arc::new(WarmPools {
            store,
            admission,
            images,
            runner,
            egress,
            pools: Mutex::new(HashMap::new()),
        })
    }

    /// Starts a pool for every configuration in the store (at start-up: the
    /// VMs of a previous process are gone).
    pub async fn restore(self: Arc<Self>) {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.list_all_provisioned_configs()).await {
            Ok(Ok(configs)) => {
                for config in configs {
                    tracing::info!(function = %config.function_name, qualifier = %config.qualifier,
                        requested = config.requested, "restoring a warm pool");
                    self.set(&config.function_name, &config.qualifier, config.requested);
                }
            }
            other => tracing::error!(?other, "cannot read the provisioned concurrency configs"),
        }
    }

    /// Creates or resizes the pool of `function:qualifier`.
    pub fn set(self: &Arc<Self>, function: &str, qualifier: &str, requested: u32) {
        let key = (function.to_string(), qualifier.to_string());
        let mut pools = lock(&self.pools);
        if let Some(pool) = pools.get(&key) {
            let mut inner = lock(&pool.inner);
            inner.requested = requested;
            inner.resized = true;
            drop(inner);
            pool.wake.notify_one();
            return;
        }
        let pool = Arc::new(Pool {
            key: key.clone(),
            inner: Mutex::new(Inner {
                requested,
                ready: VecDeque::new(),
                resized: true,
            }),
            wake: Notify::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(reconcile(self.clone(), pool.clone()));
        *lock(&pool.task) = Some(task.abort_handle());
        pools.insert(key, pool);
    }

    /// Stops the pool of `function:qualifier` and kills its VMs.
    pub async fn remove(&self, function: &str, qualifier: &str) {
        let key = (function.to_string(), qualifier.to_string());
        let pool = lock(&self.pools).remove(&key);
        if let Some(pool) = pool {
            // Dropping the reconciler drops its boots in flight: their VMs
            // are killed too.
            if let Some(task) = lock(&pool.task).take() {
                task.abort();
            }
            pool.shut_down().await;
        }
    }

    /// A warm VM of `function:qualifier` booted as `version`, if one is
    /// ready. Its replacement starts booting when its invocation is over.
    pub fn take(
        &self,
        function: &str,
        qualifier: Option<&str>,
        version: &FunctionVersion,
    ) -> Option<PooledVm> {
        let key = (function.to_string(), qualifier?.to_string());
        let pool = lock(&self.pools).get(&key)?.clone();
        let mut dead = Vec::new();
        let taken = {
            let mut inner = lock(&pool.inner);
            let mut taken = None;
            // An alias's weighted routing may have picked another version
            // than the pool's: only a VM of the chosen one will do.
            while let Some(i) = inner
                .ready
                .iter()
                .position(|w| same_version(&w.version, version))
            {
                let mut warm = inner.ready.remove(i).expect("position is in range");
                if warm.vm.is_alive() {
                    taken = Some(warm);
                    break;
                }
                dead.push(warm);
            }
            taken
        };
        if !dead.is_empty() {
            tracing::warn!(function, dead = dead.len(), "warm VMs had died");
        }
        drop(dead);
        match taken {
            Some(mut warm) => {
                warm.taken_from = Some(pool);
                Some(warm)
            }
            None => {
                pool.wake.notify_one();
                None
            }
        }
    }

    /// The configuration's size and the version its qualifier names now;
    /// `None` when either is gone.
    async fn lookup(&self, key: &Key) -> Result<Option<(u32, FunctionVersion)>, String> {
        let (store, (function, qualifier)) = (self.store.clone(), key.clone());
        let found = tokio::task::spawn_blocking(move || {
            let config = store.get_provisioned_config(&function, &qualifier)?;
            let resolved = store.resolve(&function, Some(&qualifier))?;
            Ok::<_, StoreError>((config.requested, resolved.version))
        })
        .await
        .map_err(|e| e.to_string())?;
        match found {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Persists a pool's status; `Ok(false)` when its configuration is gone.
    async fn write_status(&self, key: &Key, written: &Written) -> Result<bool, String> {
        let (store, (function, qualifier)) = (self.store.clone(), key.clone());
        let (status, allocated, reason) = written.clone();
        let result = tokio::task::spawn_blocking(move || {
            store.update_provisioned_status(
                &function,
                &qualifier,
                status,
                allocated,
                reason.as_deref(),
            )
        })
        .await
        .map_err(|e| e.to_string())?;
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Drops `pool` (if it is still the one in the map) and kills its VMs.
    async fn forget(&self, pool: &Arc<Pool>) {
        {
            let mut pools = lock(&self.pools);
            if pools.get(&pool.key).is_some_and(|p| Arc::ptr_eq(p, pool)) {
                pools.remove(&pool.key);
            }
        }
        pool.shut_down().await;
    }
}

fn same_version(a: &FunctionVersion, b: &FunctionVersion) -> bool {
    a.name == b.name && a.version == b.version && a.code_sha256 == b.code_sha256
}

impl Pool {
    /// Kills and reaps the ready VMs.
    async fn shut_down(&self) {
        let ready: Vec<PooledVm> = lock(&self.inner).ready.drain(..).collect();
        for warm in ready {
            warm.vm.shutdown().await;
        }
    }
}

/// (status, allocated, reason) as last written.
type Written = (ProvisionedStatus, u32, Option<String>);

/// Boots one VM of `version`, holding `slot`.
async fn boot_one(
    images: ImageCache,
    runner: Arc<dyn Runner>,
    egress: EgressPlan,
    version: FunctionVersion,
    slot: Slot,
) -> Result<PooledVm, String> {
    // The boot needs the image until QEMU has loaded it.
    let _pin = images.pin(&version.code_sha256);
    let prepared = images
        .prepare(&version.code_sha256)
        .await
        .map_err(|e| e.to_string())?;
    let settings = RunSettings::from_config(&version.config);
    let (image, linux) = crate::launch::boot_target(
        prepared,
        &settings,
        &version.version,
        mayfly_runner::linux::InitializationType::ProvisionedConcurrency,
    );
    let template = VmTemplate {
        image,
        linux,
        memory_mb: settings.memory_mb,
        env: settings.env,
        function_name: version.name.clone(),
        function_version: version.version.clone(),
        egress: Some(egress.clone()),
    };
    let vm = runner.boot(template).await.map_err(|e| e.to_string())?;
    tracing::debug!(function = %version.name, version = %version.version,
        init = ?vm.init_duration(), "warm VM ready");
    Ok(PooledVm {
        vm,
        slot,
        version,
        egress,
        taken_from: None,
    })
}

/// Keeps `pool` at its size until its configuration is gone (or the task
/// is aborted by [`WarmPools::remove`]).
async fn reconcile(pools: Arc<WarmPools>, pool: Arc<Pool>) {
    let function = pool.key.0.clone();
    let mut boots: JoinSet<Result<PooledVm, String>> = JoinSet::new();
    let mut current: Option<FunctionVersion> = None;
    let mut reached_full = false;
    let mut failures = 0u32;
    let mut last_error: Option<String> = None;
    let mut not_before = Instant::now();
    let mut written: Option<Written> = None;
    let mut checked: Option<Instant> = None;
    let mut egress_now: Option<EgressPlan> = None;
    loop {
        if checked.is_none_or(|at| at.elapsed() >= CHECK_EVERY) {
            checked = Some(Instant::now());
            match pools.lookup(&pool.key).await {
                Ok(Some((requested, version))) => {
                    // The function's egress (its tag) may have changed: read
                    // before the pool is locked.
                    let plan = crate::launch::egress_plan(&pools.store, &pools.egress, &function);
                    let mut inner = lock(&pool.inner);
                    if inner.requested != requested {
                        inner.requested = requested;
                        inner.resized = true;
                    }
                    if current.as_ref().is_some_and(|c| !same_version(c, &version)) {
                        tracing::info!(%function, qualifier = %pool.key.1, version = %version.version,
                            "the qualifier names another version: replacing the warm VMs");
                        inner.ready.clear();
                        // Boots in flight finish as the old version and are dropped.
                    }
                    let before = inner.ready.len();
                    inner.ready.retain(|w| w.egress == plan);
                    if inner.ready.len() < before {
                        tracing::info!(%function, qualifier = %pool.key.1,
                            "the function's egress changed: replacing the warm VMs");
                    }
                    egress_now = Some(plan);
                    current = Some(version);
                }
                Ok(None) => {
                    tracing::info!(%function, qualifier = %pool.key.1, "provisioned concurrency config gone: stopping its pool");
                    pools.forget(&pool).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(%function, error = %e, "cannot check a warm pool's config")
                }
            }
        }
        let (ready, requested) = {
            let mut inner = lock(&pool.inner);
            inner.ready.retain_mut(|w| w.vm.is_alive());
            while inner.ready.len() + boots.len() > inner.requested as usize
                && !inner.ready.is_empty()
            {
                inner.ready.pop_back();
            }
            if std::mem::take(&mut inner.resized) {
                reached_full = false;
                written = None;
            }
            (inner.ready.len(), inner.requested as usize)
        };
        let mut no_slot = false;
        if let Some(version) = &current {
            let memory_mb = RunSettings::from_config(&version.config).memory_mb;
            while Instant::now() >= not_before && ready + boots.len() < requested {
                match pools.admission.try_acquire(&function, memory_mb) {
                    Ok(Ok(slot)) => {
                        let (images, runner) = (pools.images.clone(), pools.runner.clone());
                        let egress =
                            crate::launch::egress_plan(&pools.store, &pools.egress, &version.name);
                        boots.spawn(boot_one(images, runner, egress, version.clone(), slot));
                    }
                    Ok(Err(_)) | Err(_) => {
                        no_slot = true;
                        break;
                    }
                }
            }
        }
        if ready >= requested {
            reached_full = true;
        }
        let status = status_of(reached_full, failures);
        let reason = (status != ProvisionedStatus::Ready)
            .then(|| last_error.clone())
            .flatten();
        let now: Written = (status, ready as u32, reason);
        if written.as_ref() != Some(&now) {
            match pools.write_status(&pool.key, &now).await {
                Ok(true) => written = Some(now),
                Ok(false) => {
                    pools.forget(&pool).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(%function, error = %e, "cannot record a warm pool's status")
                }
            }
        }

        let mut wait = CHECK_EVERY;
        if no_slot {
            wait = SLOT_RETRY;
        } else if current.is_some() && ready + boots.len() < requested {
            // Backing off after a failed boot.
            let backing_off = not_before.saturating_duration_since(Instant::now());
            wait = wait.min(backing_off.max(Duration::from_millis(10)));
        }
        tokio::select! {
            () = pool.wake.notified() => {}
            Some(joined) = boots.join_next() => {
                let booted = joined.map_err(|e| e.to_string()).and_then(|r| r);
                match booted {
                    Ok(warm) => {
                        failures = 0;
                        last_error = None;
                        let mut inner = lock(&pool.inner);
                        let wanted = inner.ready.len() < inner.requested as usize;
                        let same_egress = egress_now.as_ref().is_none_or(|e| *e == warm.egress);
                        if wanted
                            && same_egress
                            && current.as_ref().is_some_and(|c| same_version(c, &warm.version))
                        {
                            inner.ready.push_back(warm);
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(%function, failures, error = %e, "a warm VM failed to boot");
                        last_error = Some(e);
                        not_before = Instant::now() + backoff(failures);
                    }
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status_of(false, 0), ProvisionedStatus::InProgress);
        assert_eq!(status_of(false, 2), ProvisionedStatus::InProgress);
        assert_eq!(status_of(false, 3), ProvisionedStatus::Failed);
        assert_eq!(status_of(true, 5), ProvisionedStatus::Ready);
    }

    #[test]
    fn backoff_grows_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(20), MAX_BACKOFF);
    }
}
