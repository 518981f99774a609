//! Mayfly's engine: everything between a request to run a function and the
//! VM that runs it, with no HTTP in sight.
//!
//! [`Host`] holds the parts and offers the operations that the API (or any
//! other front end) turns requests into. Every invocation goes through
//! [`dispatch::Dispatcher::dispatch`]:
//!
//! - [`admission`]: concurrency slots within the account's limit and each
//!   function's reservation, and memory within [`memory`]'s bounds; over a
//!   limit, a throttle at once.
//! - [`warm`]: the warm pools of provisioned concurrency, and
//!   [`provisioned`] the budget a configuration must fit in.
//! - [`images`]: stored packages unpacked once into bootable images;
//!   [`gc`] deletes the packages and images nothing refers to any more.
//! - [`launch`]: what a version's VM boots (its image, or the Linux
//!   kernel with its pack).
//! - [`job`]: what is dispatched ([`job::Job`]) and what comes back.
//! - [`records`]: invocation records and Lambda's framed logs.
//! - [`metrics`]: Prometheus series fed by every invocation.
//! - [`source`]: the [`source::Source`] trait of every producer of
//!   invocations; [`queue`] is the first, the durable async event queue,
//!   and [`schedules`] the second, which fires schedules into it.
//! - [`settings`] (run and async settings parsed from stored
//!   configuration), [`names`] (function names and ARNs), [`error`].
//!
//! Below it, a [`mayfly_runner::Runner`] (QEMU's is `mayfly_vm`'s, handed
//! over by the binary) runs one invocation in one fresh VM; beside it,
//! `mayfly_store` keeps the state.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod admission;
pub mod dispatch;
pub mod error;
pub mod gc;
pub mod images;
pub mod job;
pub mod launch;
pub mod mappings;
pub mod memory;
pub mod metrics;
pub mod names;
pub mod provisioned;
pub mod queue;
pub mod records;
pub mod schedules;
pub mod settings;
pub mod source;
pub mod warm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mayfly_runner::Runner;
use mayfly_store::{BlobRef, FunctionVersion, ProvisionedConfig, Resolved, Store};
use serde_json::Value;

use admission::{Admission, Usage};
use dispatch::Dispatcher;
use error::{blocking, HostError, HostResult};
use gc::Collector;
use images::ImageCache;
use job::{Completed, InvocationKind, Job};
use memory::MemoryLimits;
use metrics::Metrics;
use names::{function_arn, FunctionRef, NameError};
use queue::AsyncQueue;
use source::Source;
use warm::WarmPools;

/// How to run the host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The data directory (images are unpacked under it).
    pub data_dir: PathBuf,
    /// The VM layer every invocation runs on.
    pub runner: Arc<dyn Runner>,
    /// The account-wide limit on running VMs.
    pub max_concurrency: u32,
    /// The first retry delay of a failed async event.
    pub retry_base_delay: Duration,
    /// The bounds on memory and storage.
    pub limits: HostLimits,
    /// The generic kernel image Linux functions boot (see
    /// `mayfly_runner::linux::find_kernel`), or why there is none: then
    /// Linux functions can be deployed but not run.
    pub linux_kernel: Result<PathBuf, mayfly_runner::linux::KernelNotFound>,
    /// What VMs may reach beyond their runtime API: the host's rules
    /// (`mayfly serve --egress`; none: nothing) and its own ports.
    pub egress: mayfly_runner::EgressPlan,
}

/// What the host bounds besides concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// The memory VMs may hold.
    pub memory: MemoryLimits,
    /// Invocation records kept per function (the newest).
    pub records_per_function: u32,
    /// Async events waiting per function (beyond it, an `Event` invoke is
    /// throttled).
    pub queued_events_per_function: u32,
    /// Package uploads checked at once (beyond it, a throttle).
    pub concurrent_uploads: u32,
}

/// Invocation records kept per function by default.
pub const DEFAULT_RECORDS_PER_FUNCTION: u32 = 1000;
/// Async events waiting per function by default: at Lambda's 256 KB per
/// event, at most 256 MB of queue per function.
pub const DEFAULT_QUEUED_EVENTS_PER_FUNCTION: u32 = 1000;
/// Package uploads checked at once by default: each may unzip up to 250 MB
/// into a temporary file and hold its 50 MB zip in memory.
pub const DEFAULT_CONCURRENT_UPLOADS: u32 = 4;

impl HostLimits {
    /// The defaults, with the memory limits of this host and `budget_mb`
    /// when set.
    pub fn for_this_host(budget_mb: Option<u64>) -> HostLimits {
        HostLimits {
            memory: MemoryLimits::detect(budget_mb),
            records_per_function: DEFAULT_RECORDS_PER_FUNCTION,
            queued_events_per_function: DEFAULT_QUEUED_EVENTS_PER_FUNCTION,
            concurrent_uploads: DEFAULT_CONCURRENT_UPLOADS,
        }
    }
}

/// The engine, shared by every request and source.
#[derive(Debug)]
pub struct Host {
    store: Store,
    images: ImageCache,
    admission: Arc<Admission>,
    pools: Arc<WarmPools>,
    dispatcher: Arc<Dispatcher>,
    queue: Arc<AsyncQueue>,
    metrics: Arc<Metrics>,
    collector: Arc<Collector>,
    limits: HostLimits,
    /// Permits of concurrent package checks.
    uploads: tokio::sync::Semaphore,
}

impl Host {
    /// The host over `store`; nothing runs until [`start`](Self::start).
    pub fn new(store: Store, config: &HostConfig) -> std::io::Result<Arc<Host>> {
        let images = ImageCache::new(&config.data_dir, store.clone())?
            .with_linux_kernel(config.linux_kernel.clone());
        store.set_records_per_function(u64::from(config.limits.records_per_function));
        let collector = Collector::new(store.clone(), images.clone());
        let admission = Admission::new(store.clone(), config.max_concurrency, config.limits.memory);
        let egress = Arc::new(config.egress.clone());
        let pools = WarmPools::new(
            store.clone(),
            admission.clone(),
            images.clone(),
            config.runner.clone(),
            egress.clone(),
        );
        let metrics = Arc::new(Metrics::default());
        let dispatcher = Dispatcher::new(
            store.clone(),
            images.clone(),
            config.runner.clone(),
            admission.clone(),
            pools.clone(),
            metrics.clone(),
            egress,
        );
        let queue = AsyncQueue::new(
            store.clone(),
            config.retry_base_delay,
            config.limits.queued_events_per_function,
        );
        Ok(Arc::new(Host {
            store,
            images,
            admission,
            pools,
            dispatcher,
            queue,
            metrics,
            collector,
            limits: config.limits,
            uploads: tokio::sync::Semaphore::new(config.limits.concurrent_uploads as usize),
        }))
    }

    /// Starts the sources (the async queue, the schedules) and the warm pools of the
    /// stored provisioned-concurrency configurations.
    pub fn start(&self) {
        self.start_source(self.queue.clone());
        self.start_source(schedules::Scheduler::new(
            self.store.clone(),
            self.queue.clone(),
        ));
        self.start_source(mappings::Mappings::new(
            self.store.clone(),
            self.queue.clone(),
        ));
        tokio::spawn(self.pools.clone().restore());
        tokio::spawn(self.collector.clone().run());
    }

    /// Asks for the collection of packages and images that nothing refers
    /// to any more; call it after deleting a function, a version or an
    /// alias, and after replacing a function's code.
    pub fn collect_soon(&self) {
        self.collector.soon();
    }

    /// Collects unreferenced packages and images now (blocking).
    pub fn collect_now(&self) -> HostResult<gc::Collected> {
        self.collector.collect()
    }

    /// Delivery of batches for a mapping `spec` through this host's
    /// dispatcher (what each mapping's consumer uses).
    pub fn delivery(&self, spec: mappings::MappingSpec) -> mappings::Delivery {
        mappings::Delivery::new(
            self.store.clone(),
            self.dispatcher.clone(),
            self.queue.clone(),
            spec,
        )
    }

    /// Runs `source` for as long as the host lives.
    pub fn start_source(&self, source: Arc<dyn Source>) {
        tracing::info!(source = source.name(), "starting a source of invocations");
        tokio::spawn(source.run(self.dispatcher.clone()));
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The image cache.
    pub fn images(&self) -> &ImageCache {
        &self.images
    }

    /// Where unpacked images live.
    pub fn images_dir(&self) -> &Path {
        self.images.dir()
    }

    /// The one dispatch path.
    pub fn dispatcher(&self) -> &Arc<Dispatcher> {
        &self.dispatcher
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The account-wide limit on running VMs.
    pub fn max_concurrency(&self) -> u32 {
        self.admission.max_concurrency()
    }

    /// The memory bounds admission holds.
    pub fn memory_limits(&self) -> MemoryLimits {
        self.admission.memory_limits()
    }

    /// What the running and warm VMs hold now.
    pub fn usage(&self) -> Usage {
        self.admission.usage()
    }

    /// Resolves a function reference to its version (and alias routing);
    /// not found with Lambda's message when it does not exist.
    pub fn resolve(&self, f: &FunctionRef, region: &str) -> HostResult<Resolved> {
        self.store
            .resolve(&f.name, f.qualifier.as_deref())
            .map_err(|e| {
                if e.is_not_found() {
                    let arn = function_arn(region, &f.name, f.qualifier.as_deref());
                    NameError::NotFound(format!("Function not found: {arn}")).into()
                } else {
                    e.into()
                }
            })
    }

    /// Runs `payload` on `resolved` (following an alias's weighted routing)
    /// and waits for the result.
    pub async fn invoke_sync(
        &self,
        f: &FunctionRef,
        resolved: Resolved,
        invoked_arn: String,
        request_id: String,
        payload: Bytes,
    ) -> HostResult<Completed> {
        let job = self.sync_job(f, resolved, invoked_arn, request_id, payload)?;
        self.dispatcher.dispatch(job).await
    }

    /// The job of a synchronous invocation of `resolved` (an alias's
    /// routing decided now).
    fn sync_job(
        &self,
        f: &FunctionRef,
        resolved: Resolved,
        invoked_arn: String,
        request_id: String,
        payload: Bytes,
    ) -> HostResult<Job> {
        let version = self.route(resolved)?;
        Ok(Job::new(
            request_id,
            version,
            f.qualifier.clone(),
            invoked_arn,
            payload,
            InvocationKind::Sync,
        ))
    }

    /// Runs `payload` on `resolved` as [`invoke_sync`](Self::invoke_sync)
    /// does, with what the function streams handed to `stream` as it is
    /// written (a function that does not stream answers once, at its end,
    /// in the result).
    pub async fn invoke_streaming(
        &self,
        f: &FunctionRef,
        resolved: Resolved,
        invoked_arn: String,
        request_id: String,
        payload: Bytes,
        stream: mayfly_runner::ResponseSink,
    ) -> HostResult<Completed> {
        let mut job = self.sync_job(f, resolved, invoked_arn, request_id, payload)?;
        job.stream = Some(stream);
        self.dispatcher.dispatch(job).await
    }

    /// Queues `payload` for `f` durably; returns once it is committed.
    pub async fn invoke_async(
        &self,
        f: &FunctionRef,
        request_id: &str,
        payload: Bytes,
    ) -> HostResult<()> {
        let qualifier = f.qualifier.as_deref().unwrap_or(mayfly_store::LATEST);
        self.queue
            .accept(request_id, &f.name, qualifier, payload)
            .await
    }

    /// Queues `payload` for `f` durably once per `receipt` (an event
    /// pushed to the host, which its sender may push again); returns once
    /// it is committed, `false` when the receipt was seen before and
    /// nothing was queued.
    pub async fn invoke_async_once(
        &self,
        f: &FunctionRef,
        receipt: &str,
        payload: Bytes,
    ) -> HostResult<bool> {
        let qualifier = f.qualifier.as_deref().unwrap_or(mayfly_store::LATEST);
        self.queue
            .accept_once(receipt, &f.name, qualifier, payload)
            .await
    }

    /// The version an alias's routing picks: one of
    /// `AdditionalVersionWeights` with its weight's probability, else the
    /// alias's own.
    fn route(&self, resolved: Resolved) -> HostResult<FunctionVersion> {
        let Some(weights) = resolved
            .routing_config
            .as_ref()
            .and_then(|r| r.get("AdditionalVersionWeights"))
            .and_then(Value::as_object)
        else {
            return Ok(resolved.version);
        };
        let draw = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        let mut acc = 0.0;
        for (version, weight) in weights {
            acc += weight.as_f64().unwrap_or(0.0);
            if draw < acc {
                return Ok(self.store.get_version(&resolved.version.name, version)?);
            }
        }
        Ok(resolved.version)
    }

    /// Checks an uploaded package and stores it content-addressed.
    /// Blocking (it writes and syncs the blob): call it off the async
    /// workers, with the store work it belongs to, and keep what it
    /// returns until the version that refers to the package is stored (the
    /// collector waits for it).
    ///
    /// At most [`HostLimits::concurrent_uploads`] are checked at once (each
    /// may unpack 250 MB); beyond that the answer is a throttle at once.
    /// The `bootstrap` unpacked by the check becomes the package's image.
    pub fn store_package(&self, zip: &[u8]) -> HostResult<StoredPackage<'_>> {
        let _permit = self.uploads.try_acquire().map_err(|_| {
            HostError::Overloaded(format!(
                "Too many package uploads are being checked at once (at most {}); \
                 try again shortly.",
                self.limits.concurrent_uploads
            ))
        })?;
        let checked = mayfly_runner::upload::check(zip, self.images.dir())?;
        let hold = self.collector.hold();
        let blob = self.store.put_blob(zip)?;
        if let Err(e) = self.images.adopt(&blob.sha256_hex, checked.bootstrap) {
            // Not fatal: the image is unpacked again at its first run.
            tracing::warn!(sha256 = %blob.sha256_hex, error = %e, "cannot keep the unpacked image");
        }
        if checked.kind == mayfly_runner::elf::PackageKind::Linux {
            // Written now, so that the first invocation does not wait for
            // it; not fatal either (written again at the first run).
            if let Err(e) = self.images.adopt_pack(&blob.sha256_hex, zip) {
                tracing::warn!(sha256 = %blob.sha256_hex, error = %e, "cannot write the pack");
            }
        }
        Ok(StoredPackage { blob, _hold: hold })
    }

    /// Reserves `n` of the account's concurrency for `function` alone, if
    /// the other functions' reservations leave that much and its warm VMs
    /// (which hold slots of its reservation) fit in it.
    pub async fn put_reserved_concurrency(&self, function: &str, n: u32) -> HostResult<()> {
        let (store, limit) = (self.store.clone(), self.max_concurrency());
        let name = function.to_string();
        blocking("storing the reserved concurrency", move || {
            store.get_version(&name, mayfly_store::LATEST)?;
            let others = store.total_reserved_concurrency(Some(&name))?;
            if others + u64::from(n) > u64::from(limit) {
                return Err(HostError::Refused(format!(
                    "Specified ReservedConcurrentExecutions for function decreases account's \
                     UnreservedConcurrentExecution below its minimum value of [0]: the account limit \
                     is {limit} and other functions reserve {others}."
                )));
            }
            let provisioned: u64 = store
                .list_all_provisioned_configs()?
                .iter()
                .filter(|c| c.function_name == name)
                .map(|c| u64::from(c.requested))
                .sum();
            if u64::from(n) < provisioned {
                return Err(HostError::Refused(format!(
                    "ReservedConcurrentExecutions {n} is less than the function's provisioned \
                     concurrency ({provisioned}); lower or delete its \
                     ProvisionedConcurrencyConfigs first."
                )));
            }
            Ok(store.put_reserved_concurrency(&name, n)?)
        })
        .await
    }

    /// Sets the provisioned concurrency of `function:qualifier` to `n`
    /// warm VMs, if that fits in what the limits leave; its pool follows.
    pub async fn put_provisioned(
        &self,
        function: &str,
        qualifier: &str,
        n: u32,
    ) -> HostResult<ProvisionedConfig> {
        let (store, limit) = (self.store.clone(), self.max_concurrency());
        let memory = self.memory_limits();
        let (name, q) = (function.to_string(), qualifier.to_string());
        let config = blocking("storing the provisioned concurrency", move || {
            let budget = provisioned::budget_for(&store, limit, &name, &q)?;
            provisioned::check_budget(n, &budget).map_err(HostError::Refused)?;
            provisioned::check_memory(&store, &memory, &name, &q, n)?
                .map_err(HostError::Refused)?;
            Ok(store.put_provisioned_config(&name, &q, n)?)
        })
        .await?;
        self.pools.set(function, qualifier, n);
        Ok(config)
    }

    /// Deletes the provisioned concurrency of `function:qualifier`; its
    /// warm VMs are killed before this returns.
    pub async fn delete_provisioned(&self, function: &str, qualifier: &str) -> HostResult<()> {
        let store = self.store.clone();
        let (name, q) = (function.to_string(), qualifier.to_string());
        blocking("deleting the provisioned concurrency", move || {
            Ok(store.delete_provisioned_config(&name, &q)?)
        })
        .await?;
        self.pools.remove(function, qualifier).await;
        Ok(())
    }
}

/// A package just stored, kept from the collector until dropped: drop it
/// once the version that refers to it is stored.
#[derive(Debug)]
pub struct StoredPackage<'a> {
    blob: BlobRef,
    _hold: std::sync::RwLockReadGuard<'a, ()>,
}

impl std::ops::Deref for StoredPackage<'_> {
    type Target = BlobRef;
    fn deref(&self) -> &BlobRef {
        &self.blob
    }
}

/// A sensible account-wide concurrency limit for this host: as many VMs as
/// fit in three quarters of its memory at 128 MB (plus about 48 MB of QEMU
/// each), and no more than 8 per core.
pub fn default_max_concurrency() -> u32 {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as u64;
    let mem_mb = memory::mem_total_mb().unwrap_or(4096);
    let by_memory = mem_mb * 3 / 4 / (128 + 48);
    by_memory.min(cores * 8).max(1) as u32
}
