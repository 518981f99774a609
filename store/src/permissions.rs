//! A function's resource policy: the statements AddPermission added, per
//! function and qualifier ('' for the function itself, else a version or
//! an alias), each kept as the JSON GetPolicy shows. The policy's revision
//! is that of what it is attached to (`$LATEST` for the function itself),
//! which a change of the policy renews, as Lambda's `RevisionId` does.

use rusqlite::{params, Connection};
use serde_json::Value;

use crate::functions::{check_revision, require_function, version_number};
use crate::versions::resolve_in;
use crate::{
    change_one, json_text, new_revision_id, now_ms, parse_json, query_opt, query_rows, Kind,
    Result, Store, StoreError, LATEST,
};

/// The revision of what a policy on `qualifier` is attached to, and the
/// statement to renew it.
fn revision(conn: &Connection, name: &str, qualifier: &str) -> Result<(String, RevisionOf)> {
    if qualifier.is_empty() || qualifier == LATEST {
        require_function(conn, name)?;
        return Ok((
            version_revision(conn, name, LATEST)?,
            RevisionOf::Version(0),
        ));
    }
    if let Some(number) = version_number(qualifier) {
        return Ok((
            version_revision(conn, name, qualifier)?,
            RevisionOf::Version(number),
        ));
    }
    resolve_in(conn, name, qualifier)?;
    let alias: String = query_opt(
        conn,
        "SELECT revision_id FROM aliases WHERE function_name = ?1 AND name = ?2",
        params![name, qualifier],
        |row| Ok(row.get(0)?),
    )?
    .ok_or_else(|| StoreError::not_found(Kind::Alias, format!("{name}:{qualifier}")))?;
    Ok((alias, RevisionOf::Alias))
}

enum RevisionOf {
    Version(i64),
    Alias,
}

fn version_revision(conn: &Connection, name: &str, version: &str) -> Result<String> {
    let number = version_number(version).unwrap_or(0);
    query_opt(
        conn,
        "SELECT revision_id FROM versions WHERE function_name = ?1 AND version_num = ?2",
        params![name, number],
        |row| Ok(row.get(0)?),
    )?
    .ok_or_else(|| StoreError::not_found(Kind::Version, format!("{name}:{version}")))
}

fn renew(conn: &Connection, name: &str, qualifier: &str, of: RevisionOf) -> Result<()> {
    let fresh = new_revision_id();
    match of {
        RevisionOf::Version(number) => conn.execute(
            "UPDATE versions SET revision_id = ?3 WHERE function_name = ?1 AND version_num = ?2",
            params![name, number, fresh],
        )?,
        RevisionOf::Alias => conn.execute(
            "UPDATE aliases SET revision_id = ?3 WHERE function_name = ?1 AND name = ?2",
            params![name, qualifier, fresh],
        )?,
    };
    Ok(())
}

/// The key a qualifier's statements are kept under: '' for the function.
fn key(qualifier: Option<&str>) -> &str {
    match qualifier {
        None | Some(LATEST) => "",
        Some(q) => q,
    }
}

fn statements(conn: &Connection, name: &str, qualifier: &str) -> Result<Vec<Value>> {
    let texts: Vec<String> = query_rows(
        conn,
        "SELECT statement FROM permissions WHERE function_name = ?1 AND qualifier = ?2
         ORDER BY added_ms, statement_id",
        params![name, qualifier],
        |row| Ok(row.get(0)?),
    )?;
    texts
        .iter()
        .map(|t| parse_json("policy statement", t))
        .collect()
}

impl Store {
    /// Adds `statement` with id `sid` to the policy of `name` (or of its
    /// version or alias `qualifier`): [`StoreError::AlreadyExists`] if the
    /// id is taken, [`StoreError::RevisionMismatch`] if `revision_id` is not
    /// the current one.
    pub fn add_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        sid: &str,
        statement: &Value,
        revision_id: Option<&str>,
    ) -> Result<()> {
        let qualifier = key(qualifier);
        self.write("adding a permission", |tx| {
            let (current, of) = revision(tx, name, qualifier)?;
            check_revision(Kind::Function, name, revision_id, &current)?;
            let taken: Option<i64> = query_opt(
                tx,
                "SELECT 1 FROM permissions
                 WHERE function_name = ?1 AND qualifier = ?2 AND statement_id = ?3",
                params![name, qualifier, sid],
                |row| Ok(row.get(0)?),
            )?;
            if taken.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: Kind::Permission,
                    name: sid.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO permissions (function_name, qualifier, statement_id, statement, added_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    name,
                    qualifier,
                    sid,
                    json_text("policy statement", statement)?,
                    crate::to_i64(now_ms())
                ],
            )?;
            renew(tx, name, qualifier, of)
        })
    }

    /// Removes statement `sid` from the policy of `name` (or `qualifier`).
    pub fn remove_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        sid: &str,
        revision_id: Option<&str>,
    ) -> Result<()> {
        let qualifier = key(qualifier);
        self.write_freeing("removing a permission", |tx| {
            let (current, of) = revision(tx, name, qualifier)?;
            check_revision(Kind::Function, name, revision_id, &current)?;
            change_one(
                tx,
                "DELETE FROM permissions
                 WHERE function_name = ?1 AND qualifier = ?2 AND statement_id = ?3",
                params![name, qualifier, sid],
                Kind::Permission,
                sid,
            )?;
            renew(tx, name, qualifier, of)
        })
    }

    /// The statements of the policy of `name` (or `qualifier`), oldest
    /// first, and its revision id.
    pub fn policy(&self, name: &str, qualifier: Option<&str>) -> Result<(Vec<Value>, String)> {
        let qualifier = key(qualifier);
        self.read("reading a policy", |conn| {
            let (current, _) = revision(conn, name, qualifier)?;
            Ok((statements(conn, name, qualifier)?, current))
        })
    }
}
