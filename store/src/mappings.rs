//! Event-source mappings: a source (by ARN or URI) feeding a function, kept
//! as the API's JSON (`EventSourceArn`, `BatchSize`, `Enabled`,
//! `DestinationConfig`...) with when it last changed. They go with their
//! function.

use rusqlite::{params, Row};
use serde_json::Value;

use crate::functions::require_function;
use crate::{
    json_text, parse_json, query_opt, query_rows, to_i64, to_u64, Kind, Result, Store, StoreError,
};

/// An event-source mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Its id.
    pub uuid: String,
    /// The function it invokes.
    pub function_name: String,
    /// The API's JSON.
    pub config: Value,
    /// When it last changed (ms since the epoch).
    pub modified_ms: u64,
}

const COLUMNS: &str = "uuid, function_name, config, modified_ms";

fn read(row: &Row<'_>) -> Result<Mapping> {
    Ok(Mapping {
        uuid: row.get(0)?,
        function_name: row.get(1)?,
        config: parse_json("event source mapping", &row.get::<_, String>(2)?)?,
        modified_ms: to_u64(row.get(3)?),
    })
}

fn not_found(uuid: &str) -> StoreError {
    StoreError::not_found(Kind::EventSourceMapping, uuid.to_string())
}

impl Store {
    /// Stores a new mapping for an existing function.
    pub fn create_mapping(&self, mapping: &Mapping) -> Result<()> {
        self.write("creating an event source mapping", |tx| {
            require_function(tx, &mapping.function_name)?;
            tx.execute(
                &format!("INSERT INTO event_source_mappings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4)"),
                params![
                    mapping.uuid,
                    mapping.function_name,
                    json_text("event source mapping", &mapping.config)?,
                    to_i64(mapping.modified_ms)
                ],
            )?;
            Ok(())
        })
    }

    /// A mapping.
    pub fn get_mapping(&self, uuid: &str) -> Result<Mapping> {
        self.read("reading an event source mapping", |conn| {
            query_opt(
                conn,
                &format!("SELECT {COLUMNS} FROM event_source_mappings WHERE uuid = ?1"),
                params![uuid],
                read,
            )?
            .ok_or_else(|| not_found(uuid))
        })
    }

    /// Changes a mapping in one transaction: `f` edits its JSON (and may
    /// refuse, changing nothing); `modified_ms` is set.
    pub fn update_mapping<E>(
        &self,
        uuid: &str,
        modified_ms: u64,
        f: impl FnOnce(&mut Mapping) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<Mapping, E>> {
        self.write("updating an event source mapping", |tx| {
            let mut mapping = query_opt(
                tx,
                &format!("SELECT {COLUMNS} FROM event_source_mappings WHERE uuid = ?1"),
                params![uuid],
                read,
            )?
            .ok_or_else(|| not_found(uuid))?;
            if let Err(e) = f(&mut mapping) {
                return Ok(Err(e));
            }
            require_function(tx, &mapping.function_name)?;
            mapping.modified_ms = modified_ms;
            tx.execute(
                "UPDATE event_source_mappings SET function_name = ?2, config = ?3, modified_ms = ?4
                 WHERE uuid = ?1",
                params![
                    uuid,
                    mapping.function_name,
                    json_text("event source mapping", &mapping.config)?,
                    to_i64(modified_ms)
                ],
            )?;
            Ok(Ok(mapping))
        })
    }

    /// Deletes a mapping; what it was.
    pub fn delete_mapping(&self, uuid: &str) -> Result<Mapping> {
        self.write_freeing("deleting an event source mapping", |tx| {
            let mapping = query_opt(
                tx,
                &format!("SELECT {COLUMNS} FROM event_source_mappings WHERE uuid = ?1"),
                params![uuid],
                read,
            )?
            .ok_or_else(|| not_found(uuid))?;
            tx.execute(
                "DELETE FROM event_source_mappings WHERE uuid = ?1",
                params![uuid],
            )?;
            Ok(mapping)
        })
    }

    /// Every mapping, by id (of one function when `function` is given).
    pub fn list_mappings(&self, function: Option<&str>) -> Result<Vec<Mapping>> {
        self.read("listing event source mappings", |conn| match function {
            Some(name) => query_rows(
                conn,
                &format!(
                    "SELECT {COLUMNS} FROM event_source_mappings WHERE function_name = ?1 ORDER BY uuid"
                ),
                params![name],
                read,
            ),
            None => query_rows(
                conn,
                &format!("SELECT {COLUMNS} FROM event_source_mappings ORDER BY uuid"),
                [],
                read,
            ),
        })
    }
}
