//! Published versions and qualifier resolution.

use rusqlite::{params, Connection};
use serde_json::Value;

use crate::aliases::{alias_names_using_version, load_alias};
use crate::functions::{
    check_revision, load_version, read_version, require_function, version_number, write_version,
    FunctionVersion, LATEST, VERSION_COLUMNS,
};
use crate::qualified::delete_configs_of;
use crate::time::now_timestamp;
use crate::{new_revision_id, query_opt, query_page, Kind, Result, Store, StoreError};

/// Keys of the configuration JSON that [`Store::publish_version`] ignores
/// when it decides whether `$LATEST` changed since the last published
/// version: they differ between versions without being a change of the
/// function (or, for `Description`, publishing sets them).
pub const PUBLISH_IGNORED_KEYS: &[&str] = &[
    "Version",
    "FunctionArn",
    "MasterArn",
    "LastModified",
    "RevisionId",
    "Description",
    "State",
    "StateReason",
    "StateReasonCode",
    "LastUpdateStatus",
    "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode",
    "CodeSha256",
    "CodeSize",
];

/// What a qualifier selects: the version to run and the alias that led to
/// it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The version the qualifier names (for an alias, its primary version;
    /// weighted routing between versions is the caller's choice, from
    /// `routing_config`).
    pub version: FunctionVersion,
    /// The alias name when the qualifier was an alias.
    pub alias: Option<String>,
    /// The alias's routing configuration (`AdditionalVersionWeights`), if any.
    pub routing_config: Option<Value>,
}

/// The configuration without the keys that do not count as a change.
fn comparable(config: &Value) -> Value {
    let mut config = config.clone();
    if let Value::Object(map) = &mut config {
        for key in PUBLISH_IGNORED_KEYS {
            map.remove(*key);
        }
    }
    config
}

fn last_published(conn: &Connection, name: &str) -> Result<Option<FunctionVersion>> {
    query_opt(
        conn,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE function_name = ?1 AND version_num > 0
             ORDER BY version_num DESC LIMIT 1"
        ),
        [name],
        read_version,
    )
}

impl Store {
    /// Publishes `$LATEST` as the next version number.
    ///
    /// Checks `expected_revision_id` against `$LATEST`'s. When the code and
    /// the configuration (less [`PUBLISH_IGNORED_KEYS`]) of `$LATEST` are
    /// those of the last published version, returns that version and
    /// publishes nothing, as Lambda does. Otherwise the new version is a copy
    /// of `$LATEST` whose config gets `"Version": "<n>"` and, when given,
    /// `"Description"`. Numbers are never reused while the function exists.
    pub fn publish_version(
        &self,
        name: &str,
        expected_revision_id: Option<&str>,
        description: Option<&str>,
    ) -> Result<FunctionVersion> {
        self.write("publishing a version", |tx| {
            let latest = load_version(tx, name, LATEST)?;
            check_revision(
                Kind::Function,
                name,
                expected_revision_id,
                &latest.revision_id,
            )?;
            if let Some(last) = last_published(tx, name)? {
                if last.code_sha256 == latest.code_sha256
                    && comparable(&last.config) == comparable(&latest.config)
                {
                    return Ok(last);
                }
            }
            let number: i64 = tx.query_row(
                "UPDATE functions SET next_version = next_version + 1 WHERE name = ?1
                 RETURNING next_version - 1",
                [name],
                |r| r.get(0),
            )?;
            let now = now_timestamp();
            let mut version = latest;
            version.version = number.to_string();
            if let Value::Object(map) = &mut version.config {
                map.insert("Version".into(), Value::String(version.version.clone()));
                if let Some(description) = description {
                    map.insert("Description".into(), Value::String(description.into()));
                }
            }
            version.revision_id = new_revision_id();
            version.created = now.clone();
            version.last_modified = now;
            write_version(tx, &version)?;
            Ok(version)
        })
    }

    /// Lists the versions of a function, `$LATEST` first then by number, at
    /// most `max_items` (at least 1) after `marker`; returns the page and the
    /// next page's marker (`None` on the last page).
    pub fn list_versions(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<FunctionVersion>, Option<String>)> {
        let after = match marker {
            None => -1,
            Some(m) => version_number(m)
                .ok_or_else(|| StoreError::invalid("marker", format!("{m:?} is not a marker")))?,
        };
        self.read("listing versions", |conn| {
            require_function(conn, name)?;
            query_page(
                conn,
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM versions WHERE function_name = ?1 AND version_num > ?2
                     ORDER BY version_num LIMIT ?3"
                ),
                &[&name, &after],
                max_items,
                read_version,
                |v| v.version.clone(),
            )
        })
    }

    /// Deletes a published version with its event-invoke and provisioned
    /// concurrency configurations.
    ///
    /// `$LATEST` cannot be deleted ([`StoreError::InvalidArgument`]; delete
    /// the function). A version that an alias points at, as its version or
    /// in its routing configuration, is not deleted: [`StoreError::Conflict`].
    pub fn delete_version(&self, name: &str, version: &str) -> Result<()> {
        if version == LATEST {
            return Err(StoreError::invalid(
                "version",
                "$LATEST cannot be deleted; delete the function instead",
            ));
        }
        self.write_freeing("deleting a version", |tx| {
            load_version(tx, name, version)?;
            let users = alias_names_using_version(tx, name, version)?;
            if !users.is_empty() {
                return Err(StoreError::Conflict {
                    kind: Kind::Version,
                    name: format!("{name}:{version}"),
                    reason: format!("aliases {} point at it", users.join(", ")),
                });
            }
            let num = version_number(version).unwrap_or(-1);
            tx.execute(
                "DELETE FROM versions WHERE function_name = ?1 AND version_num = ?2",
                params![name, num],
            )?;
            delete_configs_of(tx, name, version)
        })
    }

    /// Resolves a qualifier: `None` or `$LATEST`, a version number, or an
    /// alias name.
    pub fn resolve(&self, name: &str, qualifier: Option<&str>) -> Result<Resolved> {
        self.read("resolving a qualifier", |conn| {
            resolve_in(conn, name, qualifier.unwrap_or(LATEST))
        })
    }
}

pub(crate) fn resolve_in(conn: &Connection, name: &str, qualifier: &str) -> Result<Resolved> {
    if version_number(qualifier).is_some() {
        return Ok(Resolved {
            version: load_version(conn, name, qualifier)?,
            alias: None,
            routing_config: None,
        });
    }
    require_function(conn, name)?;
    let alias = load_alias(conn, name, qualifier)?;
    Ok(Resolved {
        version: load_version(conn, name, &alias.function_version)?,
        alias: Some(alias.name),
        routing_config: alias.routing_config,
    })
}
