//! Schedules (EventBridge Scheduler's), per group and name, kept as the
//! API's JSON with their next fire time. A fire is one transaction: the
//! async events it makes go into the queue and the next fire time is set
//! (or the schedule deleted) together, so a crash either fires it or does
//! not, never twice.

use rusqlite::{params, Connection, Row};
use serde_json::Value;

use crate::events::insert;
use crate::{
    json_text, parse_json, query_opt, query_rows, to_i64, to_u64, Event, Kind, Result, Store,
    StoreError,
};

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRow {
    /// Its group (`default`).
    pub group_name: String,
    /// Its name.
    pub name: String,
    /// The API's JSON (expression, zone, dates, state, target...).
    pub config: Value,
    /// When it was made (ms since the epoch).
    pub created_ms: u64,
    /// When it last changed.
    pub modified_ms: u64,
    /// When it next fires, if it does.
    pub next: Option<FireTime>,
}

/// A fire time: the expression's (`nominal`), and when it is due (later
/// within a flexible time window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FireTime {
    /// The expression's time.
    pub nominal_ms: u64,
    /// When it runs.
    pub due_ms: u64,
}

const COLUMNS: &str = "group_name, name, config, created_ms, modified_ms, next_fire_ms, due_ms";

fn read(row: &Row<'_>) -> Result<ScheduleRow> {
    let nominal: Option<i64> = row.get(5)?;
    let due: Option<i64> = row.get(6)?;
    Ok(ScheduleRow {
        group_name: row.get(0)?,
        name: row.get(1)?,
        config: parse_json("schedule", &row.get::<_, String>(2)?)?,
        created_ms: to_u64(row.get(3)?),
        modified_ms: to_u64(row.get(4)?),
        next: nominal.zip(due).map(|(n, d)| FireTime {
            nominal_ms: to_u64(n),
            due_ms: to_u64(d),
        }),
    })
}

fn load(conn: &Connection, group: &str, name: &str) -> Result<Option<ScheduleRow>> {
    query_opt(
        conn,
        &format!("SELECT {COLUMNS} FROM schedules WHERE group_name = ?1 AND name = ?2"),
        params![group, name],
        read,
    )
}

fn save(conn: &Connection, row: &ScheduleRow) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO schedules ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            row.group_name,
            row.name,
            json_text("schedule", &row.config)?,
            to_i64(row.created_ms),
            to_i64(row.modified_ms),
            row.next.map(|n| to_i64(n.nominal_ms)),
            row.next.map(|n| to_i64(n.due_ms)),
        ],
    )?;
    Ok(())
}

fn not_found(group: &str, name: &str) -> StoreError {
    StoreError::not_found(Kind::Schedule, format!("{group}/{name}"))
}

impl Store {
    /// Stores a new schedule ([`StoreError::AlreadyExists`] if the group
    /// has one of that name).
    pub fn create_schedule(&self, row: &ScheduleRow) -> Result<()> {
        self.write("creating a schedule", |tx| {
            if load(tx, &row.group_name, &row.name)?.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: Kind::Schedule,
                    name: format!("{}/{}", row.group_name, row.name),
                });
            }
            save(tx, row)
        })
    }

    /// A schedule.
    pub fn get_schedule(&self, group: &str, name: &str) -> Result<ScheduleRow> {
        self.read("reading a schedule", |conn| {
            load(conn, group, name)?.ok_or_else(|| not_found(group, name))
        })
    }

    /// Replaces an existing schedule's configuration and next fire time
    /// (keeping when it was made); what it became.
    pub fn update_schedule(
        &self,
        group: &str,
        name: &str,
        config: Value,
        modified_ms: u64,
        next: Option<FireTime>,
    ) -> Result<ScheduleRow> {
        self.write("updating a schedule", |tx| {
            let mut row = load(tx, group, name)?.ok_or_else(|| not_found(group, name))?;
            row.config = config;
            row.modified_ms = modified_ms;
            row.next = next;
            save(tx, &row)?;
            Ok(row)
        })
    }

    /// Deletes a schedule.
    pub fn delete_schedule(&self, group: &str, name: &str) -> Result<()> {
        self.write_freeing("deleting a schedule", |tx| {
            let n = tx.execute(
                "DELETE FROM schedules WHERE group_name = ?1 AND name = ?2",
                params![group, name],
            )?;
            if n == 0 {
                return Err(not_found(group, name));
            }
            Ok(())
        })
    }

    /// A page of a group's schedules by name, those whose name starts with
    /// `prefix`, at most `max_items` after `marker`, and the next marker.
    pub fn list_schedules(
        &self,
        group: &str,
        prefix: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<ScheduleRow>, Option<String>)> {
        self.read("listing schedules", |conn| {
            let rows = query_rows(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM schedules
                     WHERE group_name = ?1 AND name > ?2 AND substr(name, 1, length(?3)) = ?3
                     ORDER BY name LIMIT ?4"
                ),
                params![group, marker.unwrap_or(""), prefix, (max_items + 1) as i64],
                read,
            )?;
            let mut rows = rows;
            let next = if rows.len() > max_items {
                rows.truncate(max_items);
                rows.last().map(|r| r.name.clone())
            } else {
                None
            };
            Ok((rows, next))
        })
    }

    /// Schedules due at `now_ms`, soonest first, at most `limit`.
    pub fn due_schedules(&self, now_ms: u64, limit: usize) -> Result<Vec<ScheduleRow>> {
        self.read("finding due schedules", |conn| {
            query_rows(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM schedules WHERE due_ms <= ?1 ORDER BY due_ms LIMIT ?2"
                ),
                params![to_i64(now_ms), limit as i64],
                read,
            )
        })
    }

    /// The soonest due time of any schedule.
    pub fn next_due_schedule(&self) -> Result<Option<u64>> {
        self.read("finding the next schedule", |conn| {
            let due: Option<i64> =
                conn.query_row("SELECT min(due_ms) FROM schedules", [], |r| r.get(0))?;
            Ok(due.map(to_u64))
        })
    }

    /// Fires a schedule whose next fire is still `fired` (else it changed
    /// meanwhile, and `Ok(false)`): queues `events`, then sets its next fire
    /// to `next`, or deletes it when `delete`; all in one transaction.
    pub fn fire_schedule(
        &self,
        group: &str,
        name: &str,
        fired: FireTime,
        events: &[Event],
        next: Option<FireTime>,
        delete: bool,
    ) -> Result<bool> {
        self.write("firing a schedule", |tx| {
            let Some(mut row) = load(tx, group, name)? else {
                return Ok(false);
            };
            if row.next != Some(fired) {
                return Ok(false);
            }
            for event in events {
                insert(tx, event)?;
            }
            if delete {
                tx.execute(
                    "DELETE FROM schedules WHERE group_name = ?1 AND name = ?2",
                    params![group, name],
                )?;
            } else {
                row.next = next;
                save(tx, &row)?;
            }
            Ok(true)
        })
    }
}
