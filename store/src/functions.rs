//! Functions and their `$LATEST` version.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tags::{add_tags, Tags};
use crate::time::{now_ms, now_timestamp};
use crate::{
    change_one, json_text, new_revision_id, parse_json, query_opt, query_page, to_i64, to_u64,
};
use crate::{Kind, Result, Store, StoreError};

/// The name of the unpublished, editable version of every function.
pub const LATEST: &str = "$LATEST";

/// One version of a function: `$LATEST` or a published number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    /// The function's name.
    pub name: String,
    /// `$LATEST` or a decimal version number (`"1"`, `"2"`, ...).
    pub version: String,
    /// The API layer's `FunctionConfiguration`, kept as given. The store
    /// only writes `Version` (and `Description` when one is given) into the
    /// copy that [`Store::publish_version`] makes; the columns below are
    /// authoritative for the fields they name.
    pub config: Value,
    /// SHA-256 of the package, lower-case hex (the blob's name).
    pub code_sha256: String,
    /// The package's size in bytes.
    pub code_size: u64,
    /// A UUID, new at every change of this version.
    pub revision_id: String,
    /// When this version was created, `2024-01-01T00:00:00.000+0000`.
    pub created: String,
    /// When this version last changed, same format.
    pub last_modified: String,
}

pub(crate) const VERSION_COLUMNS: &str =
    "function_name, version, config, code_sha256, code_size, revision_id, created, last_modified";

pub(crate) fn read_version(row: &Row<'_>) -> Result<FunctionVersion> {
    Ok(FunctionVersion {
        name: row.get(0)?,
        version: row.get(1)?,
        config: parse_json("function configuration", &row.get::<_, String>(2)?)?,
        code_sha256: row.get(3)?,
        code_size: to_u64(row.get(4)?),
        revision_id: row.get(5)?,
        created: row.get(6)?,
        last_modified: row.get(7)?,
    })
}

/// The number that orders a version: 0 for `$LATEST`, n for `"n"`; `None`
/// for anything that is not a version.
pub(crate) fn version_number(version: &str) -> Option<i64> {
    if version == LATEST {
        return Some(0);
    }
    if version.is_empty()
        || version.len() > 18
        || !version.bytes().all(|b| b.is_ascii_digit())
        || version.starts_with('0')
    {
        return None;
    }
    version.parse().ok()
}

pub(crate) fn function_exists(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM functions WHERE name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(crate) fn require_function(conn: &Connection, name: &str) -> Result<()> {
    if function_exists(conn, name)? {
        Ok(())
    } else {
        Err(StoreError::not_found(Kind::Function, name))
    }
}

/// Reads one version; NotFound names the function when it is missing, the
/// version otherwise.
pub(crate) fn load_version(
    conn: &Connection,
    name: &str,
    version: &str,
) -> Result<FunctionVersion> {
    let missing = || {
        if function_exists(conn, name)? {
            Ok(StoreError::not_found(
                Kind::Version,
                format!("{name}:{version}"),
            ))
        } else {
            Ok::<_, StoreError>(StoreError::not_found(Kind::Function, name))
        }
    };
    let Some(num) = version_number(version) else {
        return Err(missing()?);
    };
    let found = query_opt(
        conn,
        &format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE function_name = ?1 AND version_num = ?2"
        ),
        params![name, num],
        read_version,
    )?;
    match found {
        Some(version) => Ok(version),
        None => Err(missing()?),
    }
}

/// Fails with [`StoreError::RevisionMismatch`] unless `expected` is `None` or
/// equal to `actual`.
pub(crate) fn check_revision(
    kind: Kind,
    name: &str,
    expected: Option<&str>,
    actual: &str,
) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::RevisionMismatch {
            kind,
            name: name.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn write_version(conn: &Connection, v: &FunctionVersion) -> Result<()> {
    let num = version_number(&v.version).ok_or_else(|| {
        StoreError::invalid("version", format!("{:?} is not a version", v.version))
    })?;
    conn.execute(
        "INSERT OR REPLACE INTO versions (function_name, version_num, version, config, code_sha256,
             code_size, revision_id, created, last_modified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            v.name,
            num,
            v.version,
            json_text("function configuration", &v.config)?,
            v.code_sha256,
            to_i64(v.code_size),
            v.revision_id,
            v.created,
            v.last_modified
        ],
    )?;
    Ok(())
}

impl Store {
    /// Creates a function with its `$LATEST` version.
    ///
    /// Fails with [`StoreError::AlreadyExists`] when a function of that name
    /// exists. The blob `code_sha256` should have been stored by
    /// [`Store::put_blob`] first.
    pub fn create_function(
        &self,
        name: &str,
        config: Value,
        code_sha256: &str,
        code_size: u64,
    ) -> Result<FunctionVersion> {
        self.create_function_with_tags(name, config, code_sha256, code_size, &Tags::new())
    }

    /// [`Store::create_function`] with the function's tags, in the same
    /// transaction: [`StoreError::TooManyTags`] when there are more than
    /// [`mayfly_proto::limits::TAGS_PER_FUNCTION`], and nothing is created.
    pub fn create_function_with_tags(
        &self,
        name: &str,
        config: Value,
        code_sha256: &str,
        code_size: u64,
        tags: &Tags,
    ) -> Result<FunctionVersion> {
        if name.is_empty() {
            return Err(StoreError::invalid("function name", "it is empty"));
        }
        self.write("creating a function", |tx| {
            if function_exists(tx, name)? {
                return Err(StoreError::AlreadyExists {
                    kind: Kind::Function,
                    name: name.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO functions (name, created_ms) VALUES (?1, ?2)",
                params![name, to_i64(now_ms())],
            )?;
            let now = now_timestamp();
            let latest = FunctionVersion {
                name: name.to_string(),
                version: LATEST.to_string(),
                config,
                code_sha256: code_sha256.to_string(),
                code_size,
                revision_id: new_revision_id(),
                created: now.clone(),
                last_modified: now,
            };
            write_version(tx, &latest)?;
            add_tags(tx, name, tags)?;
            Ok(latest)
        })
    }

    /// Reads one version (`$LATEST` or a number) of a function.
    ///
    /// [`StoreError::NotFound`] names the function when it does not exist and
    /// the version (`name:version`) when only the version is missing.
    pub fn get_version(&self, name: &str, version: &str) -> Result<FunctionVersion> {
        self.read("reading a function version", |conn| {
            load_version(conn, name, version)
        })
    }

    /// True when the function exists.
    pub fn function_exists(&self, name: &str) -> Result<bool> {
        self.read("looking up a function", |conn| function_exists(conn, name))
    }

    /// Lists functions (their `$LATEST`) in name order, at most `max_items`
    /// (at least 1) after `marker`.
    ///
    /// Returns the page and the marker of the next page, `None` on the last
    /// page. Markers are opaque strings to pass back unchanged.
    pub fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<FunctionVersion>, Option<String>)> {
        self.read("listing functions", |conn| {
            query_page(
                conn,
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM versions
                     WHERE version_num = 0 AND function_name > ?1
                     ORDER BY function_name LIMIT ?2"
                ),
                &[&marker.unwrap_or("")],
                max_items,
                read_version,
                |v| v.name.clone(),
            )
        })
    }

    /// Changes `$LATEST` in one transaction: reads it, checks
    /// `expected_revision_id` ([`StoreError::RevisionMismatch`] when it
    /// differs), lets `f` change it, then gives it a new revision id and
    /// `last_modified`. `f` may change `config`, `code_sha256` and
    /// `code_size`; changes to the name, version, revision id and
    /// timestamps are ignored. Returns the new `$LATEST`.
    pub fn update_latest(
        &self,
        name: &str,
        expected_revision_id: Option<&str>,
        f: impl FnOnce(&mut FunctionVersion),
    ) -> Result<FunctionVersion> {
        self.write("updating a function", |tx| {
            let current = load_version(tx, name, LATEST)?;
            check_revision(
                Kind::Function,
                name,
                expected_revision_id,
                &current.revision_id,
            )?;
            let mut next = current.clone();
            f(&mut next);
            next.name = current.name;
            next.version = current.version;
            next.created = current.created;
            next.revision_id = new_revision_id();
            next.last_modified = now_timestamp();
            write_version(tx, &next)?;
            Ok(next)
        })
    }

    /// Deletes a function with everything of it: its versions, tags, aliases,
    /// reserved and provisioned concurrency and event-invoke configurations,
    /// its invocation records and its queued events (so that deleting every
    /// function gives the data directory back its space). Works on a full
    /// disk.
    pub fn delete_function(&self, name: &str) -> Result<()> {
        self.write_freeing("deleting a function", |tx| {
            change_one(
                tx,
                "DELETE FROM functions WHERE name = ?1",
                [name],
                Kind::Function,
                name,
            )?;
            tx.execute("DELETE FROM invocations WHERE function_name = ?1", [name])?;
            tx.execute("DELETE FROM events WHERE function_name = ?1", [name])?;
            Ok(())
        })
    }
}
