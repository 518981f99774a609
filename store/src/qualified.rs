//! What the two tables of per-qualifier configurations share: one row per
//! function and qualifier (`$LATEST`, a version number or an alias name),
//! read, deleted and listed the same way, and deleted together with the
//! version or alias they configure.

use rusqlite::{params, Connection, Row};

use crate::concurrency::PROVISIONED_CONFIGS;
use crate::event_configs::EVENT_INVOKE_CONFIGS;
use crate::functions::require_function;
use crate::{change_one, query_opt, query_page, Kind, Result, StoreError};

/// A table of per-qualifier configurations, keyed by `function_name` and
/// `qualifier`.
pub(crate) struct QualifierTable<T> {
    /// The table's name.
    pub(crate) table: &'static str,
    /// The columns that `read` reads, in its order.
    pub(crate) columns: &'static str,
    /// What a missing row is called in [`StoreError::NotFound`].
    pub(crate) kind: Kind,
    /// Reads one row.
    pub(crate) read: fn(&Row<'_>) -> Result<T>,
    /// The qualifier of a row read: the marker of the page after it.
    pub(crate) qualifier: fn(&T) -> String,
}

impl<T> QualifierTable<T> {
    /// [`StoreError::NotFound`] for `name:qualifier`.
    pub(crate) fn not_found(&self, name: &str, qualifier: &str) -> StoreError {
        StoreError::not_found(self.kind, format!("{name}:{qualifier}"))
    }

    /// The configuration of `name:qualifier`; NotFound names the function
    /// when it does not exist.
    pub(crate) fn get(&self, conn: &Connection, name: &str, qualifier: &str) -> Result<T> {
        require_function(conn, name)?;
        let sql = format!(
            "SELECT {} FROM {} WHERE function_name = ?1 AND qualifier = ?2",
            self.columns, self.table
        );
        query_opt(conn, &sql, params![name, qualifier], self.read)?
            .ok_or_else(|| self.not_found(name, qualifier))
    }

    /// Deletes the configuration of `name:qualifier`; NotFound names the
    /// function when it does not exist.
    pub(crate) fn delete(&self, conn: &Connection, name: &str, qualifier: &str) -> Result<()> {
        require_function(conn, name)?;
        let sql = format!(
            "DELETE FROM {} WHERE function_name = ?1 AND qualifier = ?2",
            self.table
        );
        change_one(
            conn,
            &sql,
            params![name, qualifier],
            self.kind,
            &format!("{name}:{qualifier}"),
        )
    }

    /// A page of the function's configurations by qualifier, at most
    /// `max_items` after `marker`, and the next page's marker.
    pub(crate) fn list(
        &self,
        conn: &Connection,
        name: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<T>, Option<String>)> {
        require_function(conn, name)?;
        let sql = format!(
            "SELECT {} FROM {} WHERE function_name = ?1 AND qualifier > ?2
             ORDER BY qualifier LIMIT ?3",
            self.columns, self.table
        );
        query_page(
            conn,
            &sql,
            &[&name, &marker.unwrap_or("")],
            max_items,
            self.read,
            self.qualifier,
        )
    }
}

/// Deletes every configuration of `name:qualifier`, whose version or alias
/// is being deleted.
pub(crate) fn delete_configs_of(conn: &Connection, name: &str, qualifier: &str) -> Result<()> {
    for table in [
        EVENT_INVOKE_CONFIGS.table,
        PROVISIONED_CONFIGS.table,
        crate::urls::FUNCTION_URLS.table,
        "permissions",
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE function_name = ?1 AND qualifier = ?2"),
            params![name, qualifier],
        )?;
    }
    Ok(())
}
