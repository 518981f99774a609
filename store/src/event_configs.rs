//! Function event-invoke configurations (retries, maximum event age,
//! destinations), per function and qualifier, kept as the API's JSON.

use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qualified::QualifierTable;
use crate::time::now_timestamp;
use crate::versions::resolve_in;
use crate::{json_text, parse_json, Kind, Result, Store};

/// The asynchronous invocation settings of a function, version or alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    /// The function.
    pub function_name: String,
    /// `$LATEST`, a version number or an alias name.
    pub qualifier: String,
    /// The API's `FunctionEventInvokeConfig` JSON
    /// (`MaximumRetryAttempts`, `MaximumEventAgeInSeconds`,
    /// `DestinationConfig`), kept as given.
    pub config: Value,
    /// When it last changed, `2024-01-01T00:00:00.000+0000`.
    pub last_modified: String,
}

pub(crate) const EVENT_INVOKE_CONFIGS: QualifierTable<EventInvokeConfig> = QualifierTable {
    table: "event_invoke_configs",
    columns: "function_name, qualifier, config, last_modified",
    kind: Kind::EventInvokeConfig,
    read,
    qualifier: |c| c.qualifier.clone(),
};

fn read(row: &Row<'_>) -> Result<EventInvokeConfig> {
    Ok(EventInvokeConfig {
        function_name: row.get(0)?,
        qualifier: row.get(1)?,
        config: parse_json("event invoke config", &row.get::<_, String>(2)?)?,
        last_modified: row.get(3)?,
    })
}

fn save(conn: &Connection, config: &EventInvokeConfig) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO event_invoke_configs (function_name, qualifier, config, last_modified)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            config.function_name,
            config.qualifier,
            json_text("event invoke config", &config.config)?,
            config.last_modified
        ],
    )?;
    Ok(())
}

impl Store {
    /// Creates or replaces the event-invoke configuration of a qualifier
    /// (`$LATEST`, a version or an alias, which must exist).
    pub fn put_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
        config: Value,
    ) -> Result<EventInvokeConfig> {
        self.write("putting an event invoke config", |tx| {
            resolve_in(tx, name, qualifier)?;
            let config = EventInvokeConfig {
                function_name: name.to_string(),
                qualifier: qualifier.to_string(),
                config,
                last_modified: now_timestamp(),
            };
            save(tx, &config)?;
            Ok(config)
        })
    }

    /// Reads the event-invoke configuration of a qualifier.
    pub fn get_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<EventInvokeConfig> {
        self.read("reading an event invoke config", |conn| {
            EVENT_INVOKE_CONFIGS.get(conn, name, qualifier)
        })
    }

    /// Changes an existing event-invoke configuration in one transaction:
    /// `f` edits the JSON (for example merges the fields of an
    /// `UpdateFunctionEventInvokeConfig` request); `last_modified` is bumped.
    pub fn update_event_invoke_config(
        &self,
        name: &str,
        qualifier: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<EventInvokeConfig> {
        self.write("updating an event invoke config", |tx| {
            let mut config = EVENT_INVOKE_CONFIGS.get(tx, name, qualifier)?;
            f(&mut config.config);
            config.last_modified = now_timestamp();
            save(tx, &config)?;
            Ok(config)
        })
    }

    /// Deletes the event-invoke configuration of a qualifier.
    pub fn delete_event_invoke_config(&self, name: &str, qualifier: &str) -> Result<()> {
        self.write_freeing("deleting an event invoke config", |tx| {
            EVENT_INVOKE_CONFIGS.delete(tx, name, qualifier)
        })
    }

    /// Lists a function's event-invoke configurations by qualifier, at most
    /// `max_items` (at least 1) after `marker`; returns the page and the next
    /// page's marker.
    pub fn list_event_invoke_configs(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<EventInvokeConfig>, Option<String>)> {
        self.read("listing event invoke configs", |conn| {
            EVENT_INVOKE_CONFIGS.list(conn, name, marker, max_items)
        })
    }
}
