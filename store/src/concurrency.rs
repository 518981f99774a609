//! Reserved concurrency (per function) and provisioned concurrency
//! configurations (per function and qualifier).

use std::fmt;
use std::str::FromStr;

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::functions::LATEST;
use crate::qualified::QualifierTable;
use crate::time::now_timestamp;
use crate::versions::resolve_in;
use crate::{change_one, query_rows, to_u32, to_u64, Kind, Result, Store, StoreError};

/// The state of a provisioned concurrency configuration, as Lambda names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProvisionedStatus {
    /// `IN_PROGRESS`: warm VMs are being booted.
    #[serde(rename = "IN_PROGRESS")]
    InProgress,
    /// `READY`: the requested number of VMs is waiting.
    #[serde(rename = "READY")]
    Ready,
    /// `FAILED`: they could not be booted (see the reason).
    #[serde(rename = "FAILED")]
    Failed,
}

impl ProvisionedStatus {
    /// Lambda's name: `IN_PROGRESS`, `READY` or `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisionedStatus::InProgress => "IN_PROGRESS",
            ProvisionedStatus::Ready => "READY",
            ProvisionedStatus::Failed => "FAILED",
        }
    }
}

impl fmt::Display for ProvisionedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProvisionedStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "IN_PROGRESS" => Ok(ProvisionedStatus::InProgress),
            "READY" => Ok(ProvisionedStatus::Ready),
            "FAILED" => Ok(ProvisionedStatus::Failed),
            other => Err(StoreError::Corrupt(format!(
                "unknown provisioned concurrency status {other:?}"
            ))),
        }
    }
}

/// A provisioned concurrency configuration of a version or alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    /// The function.
    pub function_name: String,
    /// The version number or alias name.
    pub qualifier: String,
    /// `RequestedProvisionedConcurrentExecutions`.
    pub requested: u32,
    /// `AllocatedProvisionedConcurrentExecutions`: VMs booted and waiting.
    pub allocated: u32,
    /// The state.
    pub status: ProvisionedStatus,
    /// Why it failed, when it did.
    pub status_reason: Option<String>,
    /// When it last changed, `2024-01-01T00:00:00.000+0000`.
    pub last_modified: String,
}

pub(crate) const PROVISIONED_CONFIGS: QualifierTable<ProvisionedConfig> = QualifierTable {
    table: "provisioned_configs",
    columns: "function_name, qualifier, requested, allocated, status, status_reason, last_modified",
    kind: Kind::ProvisionedConcurrencyConfig,
    read: read_provisioned,
    qualifier: |c| c.qualifier.clone(),
};

fn read_provisioned(row: &Row<'_>) -> Result<ProvisionedConfig> {
    Ok(ProvisionedConfig {
        function_name: row.get(0)?,
        qualifier: row.get(1)?,
        requested: to_u32(row.get(2)?),
        allocated: to_u32(row.get(3)?),
        status: row.get::<_, String>(4)?.parse()?,
        status_reason: row.get(5)?,
        last_modified: row.get(6)?,
    })
}

impl Store {
    /// Sets a function's reserved concurrency (0 blocks every invocation).
    pub fn put_reserved_concurrency(&self, name: &str, n: u32) -> Result<()> {
        self.set_reserved_concurrency("setting reserved concurrency", name, Some(n))
    }

    /// A function's reserved concurrency; `None` when it has none.
    pub fn get_reserved_concurrency(&self, name: &str) -> Result<Option<u32>> {
        self.read("reading reserved concurrency", |conn| {
            let row: Option<Option<i64>> = conn
                .query_row(
                    "SELECT reserved_concurrency FROM functions WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()?;
            match row {
                None => Err(StoreError::not_found(Kind::Function, name)),
                Some(n) => Ok(n.map(to_u32)),
            }
        })
    }

    /// Removes a function's reserved concurrency (no error when it had none).
    pub fn delete_reserved_concurrency(&self, name: &str) -> Result<()> {
        self.set_reserved_concurrency("deleting reserved concurrency", name, None)
    }

    fn set_reserved_concurrency(&self, op: &'static str, name: &str, n: Option<u32>) -> Result<()> {
        self.write(op, |tx| {
            change_one(
                tx,
                "UPDATE functions SET reserved_concurrency = ?2 WHERE name = ?1",
                params![name, n],
                Kind::Function,
                name,
            )
        })
    }

    /// The sum of all functions' reserved concurrency, leaving out
    /// `excluding` (the function whose reservation is being changed).
    pub fn total_reserved_concurrency(&self, excluding: Option<&str>) -> Result<u64> {
        self.read("summing reserved concurrency", |conn| {
            let total: i64 = conn.query_row(
                "SELECT COALESCE(SUM(reserved_concurrency), 0) FROM functions
                 WHERE ?1 IS NULL OR name <> ?1",
                [excluding],
                |r| r.get(0),
            )?;
            Ok(to_u64(total))
        })
    }

    /// Creates or replaces the provisioned concurrency configuration of a
    /// version or alias (not `$LATEST`: [`StoreError::InvalidArgument`]).
    /// It starts `IN_PROGRESS` with nothing allocated.
    pub fn put_provisioned_config(
        &self,
        name: &str,
        qualifier: &str,
        requested: u32,
    ) -> Result<ProvisionedConfig> {
        if qualifier == LATEST {
            return Err(StoreError::invalid(
                "qualifier",
                "provisioned concurrency cannot be configured on $LATEST",
            ));
        }
        self.write("putting a provisioned concurrency config", |tx| {
            resolve_in(tx, name, qualifier)?;
            let config = ProvisionedConfig {
                function_name: name.to_string(),
                qualifier: qualifier.to_string(),
                requested,
                allocated: 0,
                status: ProvisionedStatus::InProgress,
                status_reason: None,
                last_modified: now_timestamp(),
            };
            tx.execute(
                "INSERT OR REPLACE INTO provisioned_configs
                     (function_name, qualifier, requested, allocated, status, status_reason, last_modified)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    config.function_name,
                    config.qualifier,
                    config.requested,
                    config.allocated,
                    config.status.as_str(),
                    config.status_reason,
                    config.last_modified
                ],
            )?;
            Ok(config)
        })
    }

    /// Reads the provisioned concurrency configuration of a qualifier.
    pub fn get_provisioned_config(&self, name: &str, qualifier: &str) -> Result<ProvisionedConfig> {
        self.read("reading a provisioned concurrency config", |conn| {
            PROVISIONED_CONFIGS.get(conn, name, qualifier)
        })
    }

    /// Records the progress of a provisioned concurrency configuration.
    pub fn update_provisioned_status(
        &self,
        name: &str,
        qualifier: &str,
        status: ProvisionedStatus,
        allocated: u32,
        status_reason: Option<&str>,
    ) -> Result<()> {
        self.write("updating a provisioned concurrency status", |tx| {
            change_one(
                tx,
                "UPDATE provisioned_configs
                 SET status = ?3, allocated = ?4, status_reason = ?5, last_modified = ?6
                 WHERE function_name = ?1 AND qualifier = ?2",
                params![
                    name,
                    qualifier,
                    status.as_str(),
                    allocated,
                    status_reason,
                    now_timestamp()
                ],
                PROVISIONED_CONFIGS.kind,
                &format!("{name}:{qualifier}"),
            )
        })
    }

    /// Deletes the provisioned concurrency configuration of a qualifier.
    pub fn delete_provisioned_config(&self, name: &str, qualifier: &str) -> Result<()> {
        self.write_freeing("deleting a provisioned concurrency config", |tx| {
            PROVISIONED_CONFIGS.delete(tx, name, qualifier)
        })
    }

    /// Lists a function's provisioned concurrency configurations by
    /// qualifier, at most `max_items` (at least 1) after `marker`; returns
    /// the page and the next page's marker.
    pub fn list_provisioned_configs(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<ProvisionedConfig>, Option<String>)> {
        self.read("listing provisioned concurrency configs", |conn| {
            PROVISIONED_CONFIGS.list(conn, name, marker, max_items)
        })
    }

    /// Every provisioned concurrency configuration of every function (what
    /// the server's warm pools must hold at start-up).
    pub fn list_all_provisioned_configs(&self) -> Result<Vec<ProvisionedConfig>> {
        self.read("listing provisioned concurrency configs", |conn| {
            query_rows(
                conn,
                &format!(
                    "SELECT {} FROM provisioned_configs ORDER BY function_name, qualifier",
                    PROVISIONED_CONFIGS.columns
                ),
                [],
                read_provisioned,
            )
        })
    }
}
