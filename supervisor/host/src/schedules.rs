//! Schedules as a source of invocations: every fire time of an enabled
//! schedule becomes one async event of its target function, queued in the
//! same transaction that moves the schedule to its next fire
//! ([`Store::fire_schedule`]), so that a restart neither loses nor repeats
//! a fire. Fires missed while the host was down run on start if they are
//! still within the target's `RetryPolicy.MaximumEventAgeInSeconds`; older
//! ones are skipped.

use std::sync::Arc;
use std::time::Duration;

use mayfly_schedule::Schedule;
use mayfly_store::{now_ms, Event, FireTime, ScheduleRow, Store};
use serde_json::Value;

use crate::dispatch::Dispatcher;
use crate::error::blocking;
use crate::names::parse_function;
use crate::queue::AsyncQueue;
use crate::settings::AsyncSettings;
use crate::source::{Source, SourceFuture};

/// Scheduler's default `MaximumEventAgeInSeconds`.
pub const DEFAULT_MAX_EVENT_AGE_S: u64 = 86_400;
/// The longest the scheduler sleeps without looking at the store.
const TICK: Duration = Duration::from_millis(250);
/// Schedules fired per round.
const BATCH: usize = 32;
/// Missed fires of one schedule queued per round (more follow in the next).
const CATCH_UP: usize = 16;

/// What the scheduler needs of a schedule's stored configuration (the
/// API's JSON, checked when it was written).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    /// `at()`, `rate()` or `cron()`.
    pub expression: String,
    /// `ScheduleExpressionTimezone`.
    pub zone: Option<String>,
    /// `StartDate`, ms.
    pub start_ms: Option<i64>,
    /// `EndDate`, ms.
    pub end_ms: Option<i64>,
    /// `State` is `ENABLED`.
    pub enabled: bool,
    /// `FlexibleTimeWindow.MaximumWindowInMinutes` in ms (0: `OFF`).
    pub window_ms: u64,
    /// `Target.Arn`.
    pub target: String,
    /// `Target.Input`, the event (`{}` when none).
    pub input: String,
    /// `Target.RetryPolicy.MaximumEventAgeInSeconds`.
    pub max_age_s: u64,
    /// `ActionAfterCompletion` is `DELETE`.
    pub delete_after: bool,
}

fn date_ms(v: &Value) -> Option<i64> {
    v.as_f64().map(|s| (s * 1000.0).round() as i64)
}

impl ScheduleSpec {
    /// Reads a stored configuration.
    pub fn of(config: &Value) -> Option<ScheduleSpec> {
        let target = &config["Target"];
        Some(ScheduleSpec {
            expression: config["ScheduleExpression"].as_str()?.to_string(),
            zone: config["ScheduleExpressionTimezone"]
                .as_str()
                .map(str::to_string),
            start_ms: date_ms(&config["StartDate"]),
            end_ms: date_ms(&config["EndDate"]),
            enabled: config["State"].as_str() != Some("DISABLED"),
            window_ms: match config["FlexibleTimeWindow"]["Mode"].as_str() {
                Some("FLEXIBLE") => {
                    config["FlexibleTimeWindow"]["MaximumWindowInMinutes"]
                        .as_u64()
                        .unwrap_or(0)
                        * 60_000
                }
                _ => 0,
            },
            target: target["Arn"].as_str()?.to_string(),
            input: target["Input"].as_str().unwrap_or("{}").to_string(),
            max_age_s: target["RetryPolicy"]["MaximumEventAgeInSeconds"]
                .as_u64()
                .unwrap_or(DEFAULT_MAX_EVENT_AGE_S),
            delete_after: config["ActionAfterCompletion"].as_str() == Some("DELETE"),
        })
    }

    /// The expression with its zone and bounds.
    pub fn schedule(&self, created_ms: u64) -> Option<Schedule> {
        Schedule::new(
            &self.expression,
            self.zone.as_deref(),
            self.start_ms,
            self.end_ms,
            created_ms as i64,
        )
        .ok()
    }
}

/// FNV-1a, for a flexible window's offset that is the same on every host
/// and after every restart.
fn offset_ms(group: &str, name: &str, nominal_ms: u64, window_ms: u64) -> u64 {
    if window_ms == 0 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in group
        .bytes()
        .chain([0])
        .chain(name.bytes())
        .chain(nominal_ms.to_le_bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % window_ms
}

/// The schedule's first fire strictly after `after_ms`, if it is enabled
/// and has one.
pub fn next_fire(
    spec: &ScheduleSpec,
    group: &str,
    name: &str,
    created_ms: u64,
    after_ms: u64,
) -> Option<FireTime> {
    if !spec.enabled {
        return None;
    }
    let nominal = spec.schedule(created_ms)?.next_after(after_ms as i64)?;
    let nominal_ms = u64::try_from(nominal).ok()?;
    Some(FireTime {
        nominal_ms,
        due_ms: nominal_ms + offset_ms(group, name, nominal_ms, spec.window_ms),
    })
}

/// What firing a due schedule does.
#[derive(Debug)]
pub struct Plan {
    /// The events to queue, one per fire time within the maximum age, with
    /// that time.
    pub events: Vec<(u64, Event)>,
    /// The fire after them.
    pub next: Option<FireTime>,
    /// Whether the schedule is then deleted.
    pub delete: bool,
}

/// What firing a due schedule at `now` does (`None` if it is not due, or
/// its target is no function).
pub fn plan(row: &ScheduleRow, now: u64) -> Option<Plan> {
    let fired = row.next?;
    let Some(spec) = ScheduleSpec::of(&row.config) else {
        return Some(Plan {
            events: Vec::new(),
            next: None,
            delete: false,
        });
    };
    let target = parse_function(&spec.target, None).ok()?;
    let qualifier = target
        .qualifier
        .clone()
        .unwrap_or_else(|| mayfly_store::LATEST.to_string());
    let mut events = Vec::new();
    let mut at = Some(fired);
    while let Some(fire) = at {
        if fire.due_ms > now || events.len() == CATCH_UP {
            break;
        }
        if now - fire.nominal_ms <= spec.max_age_s * 1000 {
            let id = uuid::Uuid::new_v4().to_string();
            let mut event = Event::new(id, &target.name, &qualifier, spec.input.clone(), now);
            event.meta = serde_json::json!({
                "schedule": format!("{}/{}", row.group_name, row.name),
                "scheduledTime": fire.nominal_ms,
            });
            events.push((fire.nominal_ms, event));
        } else {
            tracing::warn!(
                schedule = %row.name,
                nominal_ms = fire.nominal_ms,
                "a fire older than its maximum event age is skipped"
            );
        }
        at = next_fire(
            &spec,
            &row.group_name,
            &row.name,
            row.created_ms,
            fire.nominal_ms,
        );
    }
    Some(Plan {
        events,
        next: at,
        delete: at.is_none() && spec.delete_after,
    })
}

/// The source that fires schedules.
#[derive(Debug)]
pub struct Scheduler {
    store: Store,
    queue: Arc<AsyncQueue>,
}

impl Scheduler {
    /// Fires the schedules in `store` into `queue`.
    pub fn new(store: Store, queue: Arc<AsyncQueue>) -> Arc<Scheduler> {
        Arc::new(Scheduler { store, queue })
    }

    /// Fires what is due now; how many events were queued.
    pub fn fire_due(&self) -> mayfly_store::Result<usize> {
        let now = now_ms();
        let mut queued = 0;
        for row in self.store.due_schedules(now, BATCH)? {
            let Some(fired) = row.next else { continue };
            let Some(Plan {
                events,
                next,
                delete,
            }) = plan(&row, now)
            else {
                continue;
            };
            let events: Vec<Event> = events
                .into_iter()
                .map(|(_, mut event)| {
                    let settings =
                        AsyncSettings::lookup(&self.store, &event.function_name, &event.qualifier);
                    event.max_retries = settings.max_retries;
                    event.max_age_s = settings.max_age_s;
                    event
                })
                .collect();
            if self
                .store
                .fire_schedule(&row.group_name, &row.name, fired, &events, next, delete)?
            {
                tracing::info!(schedule = %row.name, events = events.len(), "schedule fired");
                queued += events.len();
            }
        }
        if queued > 0 {
            self.queue.wake();
        }
        Ok(queued)
    }
}

impl Source for Scheduler {
    fn name(&self) -> &'static str {
        "schedules"
    }

    fn run(self: Arc<Self>, _dispatcher: Arc<Dispatcher>) -> SourceFuture {
        Box::pin(async move {
            loop {
                let this = self.clone();
                let fired = blocking("firing schedules", move || Ok(this.fire_due()?)).await;
                if let Err(error) = fired {
                    tracing::error!(%error, "firing schedules failed; trying again");
                }
                tokio::time::sleep(TICK).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(config: Value, created_ms: u64) -> ScheduleRow {
        let spec = ScheduleSpec::of(&config).unwrap();
        let next = next_fire(&spec, "default", "s", created_ms, created_ms);
        ScheduleRow {
            group_name: "default".into(),
            name: "s".into(),
            config,
            created_ms,
            modified_ms: created_ms,
            next,
        }
    }

    fn target() -> Value {
        json!({"Arn": "arn:aws:lambda:us-east-1:000000000000:function:f:live", "Input": "{\"a\":1}"})
    }

    #[test]
    fn a_due_rate_fire_is_one_event_of_its_target_and_moves_on() {
        let created = 1_000_000_000_000;
        let row = row(
            json!({"ScheduleExpression": "rate(1 minute)", "Target": target()}),
            created,
        );
        assert_eq!(row.next.unwrap().nominal_ms, created + 60_000);
        assert!(plan(&row, created + 30_000).unwrap().events.is_empty());
        let Plan {
            events,
            next,
            delete,
        } = plan(&row, created + 60_500).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0].1;
        assert_eq!(
            (event.function_name.as_str(), event.qualifier.as_str()),
            ("f", "live")
        );
        assert_eq!(&event.payload[..], b"{\"a\":1}");
        assert_eq!(next.unwrap().nominal_ms, created + 120_000);
        assert!(!delete);
    }

    #[test]
    fn missed_fires_within_the_maximum_age_run_and_older_ones_are_skipped() {
        let created = 1_000_000_000_000;
        let mut target = target();
        target["RetryPolicy"] = json!({"MaximumEventAgeInSeconds": 150});
        let row = row(
            json!({"ScheduleExpression": "rate(1 minute)", "Target": target}),
            created,
        );
        // Down for five minutes: fires at +1..+5 min; those within 150 s of
        // now (+5 min 10 s) are +3, +4 and +5.
        let now = created + 310_000;
        let Plan { events, next, .. } = plan(&row, now).unwrap();
        let times: Vec<u64> = events.iter().map(|(t, _)| t - created).collect();
        assert_eq!(times, [180_000, 240_000, 300_000]);
        assert_eq!(next.unwrap().nominal_ms, created + 360_000);
    }

    #[test]
    fn a_one_time_schedule_ends_and_is_deleted_when_asked() {
        let created = 1_900_000_000_000; // 2030-03-17T17:46:40Z
        let row = row(
            json!({"ScheduleExpression": "at(2030-03-17T18:00:00)",
                   "ActionAfterCompletion": "DELETE", "Target": target()}),
            created,
        );
        let due = row.next.unwrap().due_ms;
        let Plan {
            events,
            next,
            delete,
        } = plan(&row, due).unwrap();
        assert_eq!((events.len(), next, delete), (1, None, true));
        let disabled = json!({"ScheduleExpression": "rate(1 minute)", "State": "DISABLED",
                              "Target": target()});
        assert_eq!(row_next(disabled, created), None);
    }

    fn row_next(config: Value, created: u64) -> Option<FireTime> {
        row(config, created).next
    }

    #[test]
    fn a_flexible_window_delays_within_it_the_same_way_every_time() {
        let created = 1_000_000_000_000;
        let config = json!({"ScheduleExpression": "rate(1 hour)",
                            "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 10},
                            "Target": target()});
        let a = row_next(config.clone(), created).unwrap();
        let b = row_next(config, created).unwrap();
        assert_eq!(a, b);
        assert!(a.due_ms >= a.nominal_ms && a.due_ms < a.nominal_ms + 600_000);
    }
}
