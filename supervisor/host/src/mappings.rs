//! Event-source mappings as a source of invocations: the supervisor keeps
//! one consumer task per enabled mapping (started, restarted when the
//! mapping changes, stopped when it goes), each reading its source
//! ([`mqtt`], [`postgres`], [`rabbitmq`]) and handing batches to [`Delivery::settle`], which
//! invokes the function through the one dispatch path, retries as the
//! mapping says (`MaximumRetryAttempts`, `BisectBatchOnFunctionError`,
//! `ReportBatchItemFailures`) and sends what still fails to the mapping's
//! on-failure destination (another function, through the durable async
//! queue). A batch is acknowledged to its source only after `settle`
//! returns: at-least-once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mayfly_store::{now_ms, Event, Mapping, Store};
use serde_json::{json, Value};

use crate::dispatch::Dispatcher;
use crate::error::{HostError, HostResult};
use crate::job::{InvocationKind, Job};
use crate::names::{function_arn, parse_function, DEFAULT_REGION};
use crate::queue::AsyncQueue;
use crate::source::{Source, SourceFuture};

pub mod filter;
pub mod mqtt;
pub mod pgoutput;
pub mod postgres;
pub mod rabbitmq;

/// A secret that never shows in a log or a `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

/// How often the supervisor looks for changed mappings.
const SCAN: Duration = Duration::from_secs(1);
/// The pause between two tries of a failing batch.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The pause after a throttled invocation.
const THROTTLED_PAUSE: Duration = Duration::from_millis(250);

/// What a consumer needs of its mapping's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingSpec {
    /// The mapping's id.
    pub uuid: String,
    /// The function and its qualifier.
    pub function: String,
    /// `$LATEST`, a version or an alias.
    pub qualifier: Option<String>,
    /// The source, by URI (`mqtt://127.0.0.1:1883/sensors/#`).
    pub source: String,
    /// Records per invocation, at most.
    pub batch_size: usize,
    /// How long a batch may wait to fill.
    pub window: Duration,
    /// Retries of a failing batch; `None`: until it succeeds.
    pub max_retries: Option<u32>,
    /// Split a failing batch in two and retry the halves.
    pub bisect: bool,
    /// The function answers `batchItemFailures`.
    pub report_failures: bool,
    /// Where records that still fail go: a function ARN.
    pub on_failure: Option<String>,
    /// The source's password (`SourceAccessConfigurations`, `BASIC_AUTH`).
    pub password: Option<Secret>,
    /// `FilterCriteria`: which records reach the function.
    pub filters: filter::Filters,
}

impl MappingSpec {
    /// Reads a stored mapping; `None` when it is disabled.
    pub fn of(mapping: &Mapping) -> Option<MappingSpec> {
        let c = &mapping.config;
        if c["State"].as_str().is_some_and(|s| s != "Enabled") {
            return None;
        }
        let arn = c["FunctionArn"].as_str()?;
        let f = parse_function(arn, None).ok()?;
        Some(MappingSpec {
            uuid: mapping.uuid.clone(),
            function: f.name,
            qualifier: f.qualifier,
            source: c["EventSourceArn"].as_str()?.to_string(),
            batch_size: c["BatchSize"].as_u64().unwrap_or(100).max(1) as usize,
            window: Duration::from_secs(c["MaximumBatchingWindowInSeconds"].as_u64().unwrap_or(0)),
            max_retries: c["MaximumRetryAttempts"]
                .as_i64()
                .filter(|n| *n >= 0)
                .map(|n| n as u32),
            bisect: c["BisectBatchOnFunctionError"].as_bool().unwrap_or(false),
            report_failures: c["FunctionResponseTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "ReportBatchItemFailures")),
            on_failure: c["DestinationConfig"]["OnFailure"]["Destination"]
                .as_str()
                .map(str::to_string),
            password: c["SourceAccessConfigurations"]
                .as_array()
                .and_then(|list| list.iter().find(|a| a["Type"] == "BASIC_AUTH"))
                .and_then(|a| a["URI"].as_str())
                .map(|p| Secret(p.to_string())),
            // Checked when written; one that no longer parses keeps nothing
            // out rather than everything.
            filters: filter::Filters::parse(&c["FilterCriteria"]).unwrap_or_default(),
        })
    }
}

/// One record of a batch: its id (for `batchItemFailures`) and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its `itemIdentifier`.
    pub id: String,
    /// What the function gets of it.
    pub body: Value,
}

/// How a batch's records are wrapped into an event.
pub type Wrap = fn(&[Record]) -> Value;

/// Invokes a mapping's function with batches, and settles them.
#[derive(Debug, Clone)]
pub struct Delivery {
    store: Store,
    dispatcher: Arc<Dispatcher>,
    queue: Arc<AsyncQueue>,
    spec: MappingSpec,
}

/// How one try of a batch went.
enum Tried {
    Succeeded,
    /// Only these records failed (`ReportBatchItemFailures`).
    Partly(Vec<Record>),
    Failed(Value),
}

impl Delivery {
    /// Delivery for `spec`.
    pub fn new(
        store: Store,
        dispatcher: Arc<Dispatcher>,
        queue: Arc<AsyncQueue>,
        spec: MappingSpec,
    ) -> Delivery {
        Delivery {
            store,
            dispatcher,
            queue,
            spec,
        }
    }

    /// The mapping.
    pub fn spec(&self) -> &MappingSpec {
        &self.spec
    }

    /// Whether a record, seen as `view`, passes the mapping's filters (one
    /// that does not is acknowledged without invoking the function).
    pub fn keeps(&self, view: &Value) -> bool {
        self.spec.filters.matches(view)
    }

    async fn try_once(&self, records: &[Record], wrap: Wrap) -> HostResult<Tried> {
        let resolved = self
            .store
            .resolve(&self.spec.function, self.spec.qualifier.as_deref())?;
        let payload = Bytes::from(wrap(records).to_string());
        let job = Job::new(
            uuid::Uuid::new_v4().to_string(),
            resolved.version,
            self.spec.qualifier.clone(),
            function_arn(
                DEFAULT_REGION,
                &self.spec.function,
                self.spec.qualifier.as_deref(),
            ),
            payload,
            InvocationKind::Sync,
        );
        let completed = self.dispatcher.dispatch(job).await?;
        if completed.failed() {
            let answer = serde_json::from_slice(&completed.payload()).unwrap_or(Value::Null);
            return Ok(Tried::Failed(answer));
        }
        if self.spec.report_failures {
            let answer: Value = serde_json::from_slice(&completed.payload()).unwrap_or(Value::Null);
            if let Some(failures) = answer["batchItemFailures"].as_array() {
                let failed: Vec<Record> = records
                    .iter()
                    .filter(|r| {
                        failures
                            .iter()
                            .any(|f| f["itemIdentifier"] == r.id.as_str())
                    })
                    .cloned()
                    .collect();
                if !failed.is_empty() {
                    return Ok(Tried::Partly(failed));
                }
            }
        }
        Ok(Tried::Succeeded)
    }

    /// Invokes the function with `records` until they succeed, or retries
    /// run out and they are sent to the on-failure destination (or, with
    /// none, dropped and logged). Returns when the batch may be
    /// acknowledged; `Err` only when the host itself failed (then nothing
    /// may be acknowledged).
    pub async fn settle(&self, records: Vec<Record>, wrap: Wrap) -> HostResult<()> {
        let mut pending = vec![(records, 0u32)];
        while let Some((batch, attempts)) = pending.pop() {
            if batch.is_empty() {
                continue;
            }
            let tried = match self.try_once(&batch, wrap).await {
                Ok(tried) => tried,
                Err(HostError::Throttled(_)) => {
                    tokio::time::sleep(THROTTLED_PAUSE).await;
                    pending.push((batch, attempts));
                    continue;
                }
                Err(e) if is_missing(&e) => {
                    tracing::warn!(mapping = %self.spec.uuid, error = %e, "the mapping's function is gone; the batch is dropped");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let (failed, answer) = match tried {
                Tried::Succeeded => continue,
                Tried::Partly(failed) => (failed, Value::Null),
                Tried::Failed(answer) => (batch, answer),
            };
            if self.spec.max_retries.is_none_or(|max| attempts < max) {
                tokio::time::sleep(RETRY_PAUSE).await;
                if self.spec.bisect && failed.len() > 1 {
                    let mut first = failed;
                    let second = first.split_off(first.len() / 2);
                    pending.push((second, attempts + 1));
                    pending.push((first, attempts + 1));
                } else {
                    pending.push((failed, attempts + 1));
                }
                continue;
            }
            self.give_up(&failed, attempts + 1, &answer, wrap).await?;
        }
        Ok(())
    }

    /// Records that failed every try: to the on-failure destination, committed
    /// to the async queue before the batch is acknowledged.
    async fn give_up(
        &self,
        records: &[Record],
        invokes: u32,
        answer: &Value,
        wrap: Wrap,
    ) -> HostResult<()> {
        let Some(destination) = &self.spec.on_failure else {
            tracing::warn!(mapping = %self.spec.uuid, records = records.len(), "a batch failed every try and the mapping has no on-failure destination: dropped");
            return Ok(());
        };
        let target = parse_function(destination, None)?;
        let record = json!({
            "version": "1.0",
            "timestamp": mayfly_store::format_rfc3339(now_ms()),
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": function_arn(DEFAULT_REGION, &self.spec.function, self.spec.qualifier.as_deref()),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invokes,
            },
            "responseContext": {"functionError": "Unhandled", "response": answer},
            "eventSourceMappingUuid": self.spec.uuid,
            "eventSourceArn": self.spec.source,
            "payload": wrap(records),
        });
        let qualifier = target
            .qualifier
            .clone()
            .unwrap_or_else(|| mayfly_store::LATEST.to_string());
        let event = Event::new(
            uuid::Uuid::new_v4().to_string(),
            &target.name,
            &qualifier,
            record.to_string(),
            now_ms(),
        );
        let store = self.store.clone();
        crate::error::blocking("queueing an on-failure record", move || {
            Ok(store.enqueue_event(&event)?)
        })
        .await?;
        self.queue.wake();
        Ok(())
    }
}

/// `HOST[:PORT]` of a source's URI (`uri`, for the errors).
fn host_port<'a>(uri: &str, authority: &'a str, default: u16) -> Result<(&'a str, u16), String> {
    match authority.rsplit_once(':') {
        Some((host, port)) => port
            .parse()
            .map(|port| (host, port))
            .map_err(|_| format!("{uri}: the port {port} is not a number")),
        None => Ok((authority, default)),
    }
}

/// `USER@HOST[:PORT]` of a source's URI; a password there is refused (it
/// goes in `SourceAccessConfigurations`, never in a URI that is shown).
fn user_at_host<'a>(
    uri: &str,
    authority: &'a str,
    default: u16,
) -> Result<(&'a str, &'a str, u16), String> {
    let (user, hostport) = authority
        .split_once('@')
        .ok_or_else(|| format!("{uri} names no user (USER@HOST)"))?;
    if user.contains(':') {
        return Err(format!(
            "{uri}: the password goes in SourceAccessConfigurations (BASIC_AUTH), not the URI"
        ));
    }
    let (host, port) = host_port(uri, hostport, default)?;
    Ok((user, host, port))
}

/// What a deleted mapping leaves at its source is removed (a PostgreSQL
/// replication slot would keep the server's WAL for ever).
fn forget(spec: &MappingSpec) {
    if let Ok(target) = postgres::Target::parse(&spec.source) {
        let password = spec.password.clone().map(|p| p.0);
        tokio::spawn(postgres::forget(target, password, spec.uuid.clone()));
    }
}

/// A mapping whose source cannot be read (checked when it was written, so
/// only after a change of this host's rules): said once, then idle.
fn unreadable(uuid: &str, why: &str) -> tokio::task::JoinHandle<()> {
    tracing::error!(mapping = %uuid, %why, "the mapping's source cannot be read");
    tokio::spawn(std::future::pending())
}

fn is_missing(e: &HostError) -> bool {
    matches!(e, HostError::Store(s) if s.is_not_found())
}

/// The source that runs every enabled mapping's consumer.
#[derive(Debug)]
pub struct Mappings {
    store: Store,
    queue: Arc<AsyncQueue>,
}

impl Mappings {
    /// The mappings in `store`; on-failure records go into `queue`.
    pub fn new(store: Store, queue: Arc<AsyncQueue>) -> Arc<Mappings> {
        Arc::new(Mappings { store, queue })
    }
}

impl Source for Mappings {
    fn name(&self) -> &'static str {
        "event source mappings"
    }

    fn run(self: Arc<Self>, dispatcher: Arc<Dispatcher>) -> SourceFuture {
        Box::pin(async move {
            let mut running: HashMap<String, (MappingSpec, tokio::task::JoinHandle<()>)> =
                HashMap::new();
            loop {
                let store = self.store.clone();
                let listed = tokio::task::spawn_blocking(move || store.list_mappings(None)).await;
                let mappings = match listed {
                    Ok(Ok(mappings)) => mappings,
                    other => {
                        tracing::error!(?other, "cannot read the event source mappings");
                        tokio::time::sleep(SCAN).await;
                        continue;
                    }
                };
                let wanted: HashMap<String, MappingSpec> = mappings
                    .iter()
                    .filter_map(MappingSpec::of)
                    .map(|spec| (spec.uuid.clone(), spec))
                    .collect();
                running.retain(|uuid, (spec, task)| {
                    let keep = wanted.get(uuid) == Some(spec) && !task.is_finished();
                    if !keep {
                        task.abort();
                        let deleted = !mappings.iter().any(|m| &m.uuid == uuid);
                        if deleted {
                            forget(spec);
                        }
                    }
                    keep
                });
                for (uuid, spec) in wanted {
                    if running.contains_key(&uuid) {
                        continue;
                    }
                    let delivery = Delivery::new(
                        self.store.clone(),
                        dispatcher.clone(),
                        self.queue.clone(),
                        spec.clone(),
                    );
                    let task = if spec.source.starts_with("mqtt://") {
                        match mqtt::Target::parse(&spec.source) {
                            Ok(target) => tokio::spawn(mqtt::consume(target, delivery)),
                            Err(why) => unreadable(&uuid, &why),
                        }
                    } else if spec.source.starts_with("amqp://") {
                        match rabbitmq::Target::parse(&spec.source) {
                            Ok(target) => {
                                let password = spec.password.clone().map(|p| p.0);
                                tokio::spawn(rabbitmq::consume(target, password, delivery))
                            }
                            Err(why) => unreadable(&uuid, &why),
                        }
                    } else {
                        match postgres::Target::parse(&spec.source) {
                            Ok(target) => {
                                let password = spec.password.clone().map(|p| p.0);
                                tokio::spawn(postgres::consume(target, password, delivery))
                            }
                            Err(why) => unreadable(&uuid, &why),
                        }
                    };
                    tracing::info!(mapping = %uuid, source = %spec.source, "consuming");
                    running.insert(uuid, (spec, task));
                }
                tokio::time::sleep(SCAN).await;
            }
        })
    }
}
