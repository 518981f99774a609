//! Tags: key-value pairs on a function (Lambda tags a function, not its
//! versions or aliases), at most [`TAGS_PER_FUNCTION`] of them. They are
//! deleted with the function.
//!
//! The store checks only what needs the stored tags: that the function
//! exists and that the count stays within the limit, in the same
//! transaction as the write. What a key or value may be is the API's
//! business.

use std::collections::BTreeMap;

use mayfly_proto::limits::TAGS_PER_FUNCTION;
use rusqlite::{params, Connection};

use crate::functions::require_function;
use crate::{new_revision_id, query_rows, Result, Store, StoreError};

/// A function's tags, by key.
pub type Tags = BTreeMap<String, String>;

/// The tags of `name` (an existing function).
pub(crate) fn load_tags(conn: &Connection, name: &str) -> Result<Tags> {
    let rows = query_rows(
        conn,
        "SELECT key, value FROM tags WHERE function_name = ?1 ORDER BY key",
        [name],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(rows.into_iter().collect())
}

/// Adds `tags` to those of `name` (an existing function), replacing the
/// values of keys it has; fails with [`StoreError::TooManyTags`], writing
/// nothing, when it would have more than [`TAGS_PER_FUNCTION`].
pub(crate) fn add_tags(conn: &Connection, name: &str, tags: &Tags) -> Result<()> {
    if tags.is_empty() {
        return Ok(());
    }
    let kept = load_tags(conn, name)?
        .keys()
        .filter(|k| !tags.contains_key(*k))
        .count();
    let count = tags.len() + kept;
    if count > TAGS_PER_FUNCTION {
        return Err(StoreError::TooManyTags {
            name: name.to_string(),
            count,
            limit: TAGS_PER_FUNCTION,
        });
    }
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO tags (function_name, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (key, value) in tags {
        insert.execute(params![name, key, value])?;
    }
    Ok(())
}

/// Gives `$LATEST` of `name` a new revision id: Lambda's `RevisionId`
/// changes when the function's tags do.
fn new_latest_revision(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE versions SET revision_id = ?2 WHERE function_name = ?1 AND version_num = 0",
        params![name, new_revision_id()],
    )?;
    Ok(())
}

impl Store {
    /// A function's tags ([`StoreError::NotFound`] when it does not exist).
    pub fn get_tags(&self, name: &str) -> Result<Tags> {
        self.read("reading tags", |conn| {
            require_function(conn, name)?;
            load_tags(conn, name)
        })
    }

    /// Adds tags to a function, replacing the values of the keys it has,
    /// and gives its `$LATEST` a new revision id.
    ///
    /// Fails with [`StoreError::NotFound`] when the function does not exist
    /// and with [`StoreError::TooManyTags`] when it would have more than
    /// [`TAGS_PER_FUNCTION`] tags; then nothing changes.
    pub fn tag_function(&self, name: &str, tags: &Tags) -> Result<()> {
        self.write("tagging a function", |tx| {
            require_function(tx, name)?;
            add_tags(tx, name, tags)?;
            new_latest_revision(tx, name)
        })
    }

    /// Removes the tags with these keys from a function (keys it does not
    /// have are ignored) and gives its `$LATEST` a new revision id.
    /// [`StoreError::NotFound`] when the function does not exist. Works on a
    /// full disk.
    pub fn untag_function(&self, name: &str, keys: &[String]) -> Result<()> {
        self.write_freeing("untagging a function", |tx| {
            require_function(tx, name)?;
            let mut delete =
                tx.prepare_cached("DELETE FROM tags WHERE function_name = ?1 AND key = ?2")?;
            for key in keys {
                delete.execute(params![name, key])?;
            }
            new_latest_revision(tx, name)
        })
    }
}
