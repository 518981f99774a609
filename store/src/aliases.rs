//! Aliases: named pointers to a version, with optional weighted routing.

use rusqlite::{params, Connection, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::functions::{check_revision, load_version, require_function, version_number};
use crate::qualified::delete_configs_of;
use crate::{
    change_one, json_text, new_revision_id, parse_json, query_opt, query_page, query_rows,
};
use crate::{Kind, Result, Store, StoreError};

/// An alias of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    /// The function it belongs to.
    pub function_name: String,
    /// The alias's name (never a version number).
    pub name: String,
    /// The version it points at (`$LATEST` or a number).
    pub function_version: String,
    /// Its description.
    pub description: String,
    /// Lambda's `RoutingConfig` (`{"AdditionalVersionWeights": {"2": 0.1}}`),
    /// kept as given; the versions it names must exist.
    pub routing_config: Option<Value>,
    /// A UUID, new at every change.
    pub revision_id: String,
}

/// A partial update of an alias: `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AliasUpdate {
    /// A new version to point at.
    pub function_version: Option<String>,
    /// A new description.
    pub description: Option<String>,
    /// A new routing configuration: `Some(None)` removes it.
    pub routing_config: Option<Option<Value>>,
}

const ALIAS_COLUMNS: &str =
    "function_name, name, function_version, description, routing_config, revision_id";

fn read_alias(row: &Row<'_>) -> Result<Alias> {
    let routing: Option<String> = row.get(4)?;
    Ok(Alias {
        function_name: row.get(0)?,
        name: row.get(1)?,
        function_version: row.get(2)?,
        description: row.get(3)?,
        routing_config: routing
            .map(|text| parse_json("alias routing configuration", &text))
            .transpose()?,
        revision_id: row.get(5)?,
    })
}

/// The versions an alias's routing configuration names.
fn routing_versions(routing: Option<&Value>) -> Vec<String> {
    routing
        .and_then(|r| r.get("AdditionalVersionWeights"))
        .and_then(Value::as_object)
        .map(|weights| weights.keys().cloned().collect())
        .unwrap_or_default()
}

/// Checks an alias name: 1 to 128 of `[A-Za-z0-9_-]`, and not a version
/// number.
pub(crate) fn validate_alias_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 128 {
        return Err(StoreError::invalid(
            "alias name",
            format!("{name:?} must be 1 to 128 characters long"),
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(StoreError::invalid(
            "alias name",
            format!("{name:?} may contain only letters, digits, '-' and '_'"),
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StoreError::invalid(
            "alias name",
            format!("{name:?} looks like a version number"),
        ));
    }
    Ok(())
}

pub(crate) fn load_alias(conn: &Connection, function: &str, name: &str) -> Result<Alias> {
    query_opt(
        conn,
        &format!("SELECT {ALIAS_COLUMNS} FROM aliases WHERE function_name = ?1 AND name = ?2"),
        params![function, name],
        read_alias,
    )?
    .ok_or_else(|| StoreError::not_found(Kind::Alias, format!("{function}:{name}")))
}

/// The aliases of `function` that point at `version`, directly or through
/// their routing configuration.
pub(crate) fn alias_names_using_version(
    conn: &Connection,
    function: &str,
    version: &str,
) -> Result<Vec<String>> {
    let aliases = query_rows(
        conn,
        &format!("SELECT {ALIAS_COLUMNS} FROM aliases WHERE function_name = ?1 ORDER BY name"),
        [function],
        read_alias,
    )?;
    Ok(aliases
        .into_iter()
        .filter(|alias| {
            alias.function_version == version
                || routing_versions(alias.routing_config.as_ref())
                    .iter()
                    .any(|v| v == version)
        })
        .map(|alias| alias.name)
        .collect())
}

/// Checks that the alias's version and the versions of its routing exist.
fn check_targets(conn: &Connection, alias: &Alias) -> Result<()> {
    load_version(conn, &alias.function_name, &alias.function_version)?;
    for version in routing_versions(alias.routing_config.as_ref()) {
        if version_number(&version).is_none() {
            return Err(StoreError::invalid(
                "routing configuration",
                format!("{version:?} is not a version"),
            ));
        }
        load_version(conn, &alias.function_name, &version)?;
    }
    Ok(())
}

fn write_alias(conn: &Connection, alias: &Alias) -> Result<()> {
    let routing = alias
        .routing_config
        .as_ref()
        .map(|r| json_text("alias routing configuration", r))
        .transpose()?;
    conn.execute(
        "INSERT OR REPLACE INTO aliases
             (function_name, name, function_version, description, routing_config, revision_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            alias.function_name,
            alias.name,
            alias.function_version,
            alias.description,
            routing,
            alias.revision_id
        ],
    )?;
    Ok(())
}

impl Store {
    /// Creates an alias pointing at an existing version.
    ///
    /// Fails with [`StoreError::InvalidArgument`] for a name that is not a
    /// valid alias name (it must not look like a version number),
    /// [`StoreError::NotFound`] when the function or a version is missing,
    /// [`StoreError::AlreadyExists`] when the alias exists.
    pub fn create_alias(
        &self,
        function_name: &str,
        name: &str,
        function_version: &str,
        description: &str,
        routing_config: Option<Value>,
    ) -> Result<Alias> {
        validate_alias_name(name)?;
        let alias = Alias {
            function_name: function_name.to_string(),
            name: name.to_string(),
            function_version: function_version.to_string(),
            description: description.to_string(),
            routing_config,
            revision_id: new_revision_id(),
        };
        self.write("creating an alias", |tx| {
            require_function(tx, function_name)?;
            match load_alias(tx, function_name, name) {
                Ok(_) => {
                    return Err(StoreError::AlreadyExists {
                        kind: Kind::Alias,
                        name: format!("{function_name}:{name}"),
                    })
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            check_targets(tx, &alias)?;
            write_alias(tx, &alias)?;
            Ok(alias)
        })
    }

    /// Reads an alias.
    pub fn get_alias(&self, function_name: &str, name: &str) -> Result<Alias> {
        self.read("reading an alias", |conn| {
            require_function(conn, function_name)?;
            load_alias(conn, function_name, name)
        })
    }

    /// Changes an alias; checks `expected_revision_id` when given
    /// ([`StoreError::RevisionMismatch`]). Returns the alias with its new
    /// revision id.
    pub fn update_alias(
        &self,
        function_name: &str,
        name: &str,
        expected_revision_id: Option<&str>,
        update: AliasUpdate,
    ) -> Result<Alias> {
        self.write("updating an alias", |tx| {
            require_function(tx, function_name)?;
            let mut alias = load_alias(tx, function_name, name)?;
            check_revision(
                Kind::Alias,
                &format!("{function_name}:{name}"),
                expected_revision_id,
                &alias.revision_id,
            )?;
            if let Some(version) = update.function_version {
                alias.function_version = version;
            }
            if let Some(description) = update.description {
                alias.description = description;
            }
            if let Some(routing) = update.routing_config {
                alias.routing_config = routing;
            }
            check_targets(tx, &alias)?;
            alias.revision_id = new_revision_id();
            write_alias(tx, &alias)?;
            Ok(alias)
        })
    }

    /// Deletes an alias with the event-invoke and provisioned concurrency
    /// configurations of that qualifier.
    pub fn delete_alias(&self, function_name: &str, name: &str) -> Result<()> {
        self.write_freeing("deleting an alias", |tx| {
            require_function(tx, function_name)?;
            change_one(
                tx,
                "DELETE FROM aliases WHERE function_name = ?1 AND name = ?2",
                params![function_name, name],
                Kind::Alias,
                &format!("{function_name}:{name}"),
            )?;
            delete_configs_of(tx, function_name, name)
        })
    }

    /// Lists a function's aliases by name, only those pointing at
    /// `function_version` when given (directly, not through routing), at most
    /// `max_items` (at least 1) after `marker`; returns the page and the next
    /// page's marker.
    pub fn list_aliases(
        &self,
        function_name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<Alias>, Option<String>)> {
        self.read("listing aliases", |conn| {
            require_function(conn, function_name)?;
            query_page(
                conn,
                &format!(
                    "SELECT {ALIAS_COLUMNS} FROM aliases
                     WHERE function_name = ?1 AND name > ?2 AND (?3 IS NULL OR function_version = ?3)
                     ORDER BY name LIMIT ?4"
                ),
                &[&function_name, &marker.unwrap_or(""), &function_version],
                max_items,
                read_alias,
                |a| a.name.clone(),
            )
        })
    }
}
