//! Function URLs: one per function and qualifier (`$LATEST` or an alias),
//! each with a unique id the URL front finds it by, its configuration kept
//! as the API's JSON (`AuthType`, `Cors`, `InvokeMode`).

use rusqlite::{params, Connection, Row};
use serde_json::Value;

use crate::qualified::QualifierTable;
use crate::time::now_timestamp;
use crate::versions::resolve_in;
use crate::{json_text, parse_json, query_opt, Kind, Result, Store, StoreError, LATEST};

/// A function URL.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionUrl {
    /// The function.
    pub function_name: String,
    /// `$LATEST` or an alias name.
    pub qualifier: String,
    /// The URL's id (its host name's first label).
    pub url_id: String,
    /// The configuration, as the API's JSON.
    pub config: Value,
    /// When it was made, `2024-01-01T00:00:00.000+0000`.
    pub created: String,
    /// When it last changed.
    pub last_modified: String,
}

pub(crate) const FUNCTION_URLS: QualifierTable<FunctionUrl> = QualifierTable {
    table: "function_urls",
    columns: "function_name, qualifier, url_id, config, created, last_modified",
    kind: Kind::FunctionUrlConfig,
    read,
    qualifier: |u| u.qualifier.clone(),
};

fn read(row: &Row<'_>) -> Result<FunctionUrl> {
    Ok(FunctionUrl {
        function_name: row.get(0)?,
        qualifier: row.get(1)?,
        url_id: row.get(2)?,
        config: parse_json("function url config", &row.get::<_, String>(3)?)?,
        created: row.get(4)?,
        last_modified: row.get(5)?,
    })
}

fn save(conn: &Connection, url: &FunctionUrl) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO function_urls
             (function_name, qualifier, url_id, config, created, last_modified)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            url.function_name,
            url.qualifier,
            url.url_id,
            json_text("function url config", &url.config)?,
            url.created,
            url.last_modified
        ],
    )?;
    Ok(())
}

/// A URL's qualifier must name `$LATEST` or an existing alias (not a
/// version, as Lambda has it).
fn require_url_qualifier(conn: &Connection, name: &str, qualifier: &str) -> Result<()> {
    if qualifier == LATEST {
        return crate::functions::require_function(conn, name);
    }
    if crate::functions::version_number(qualifier).is_some() {
        return Err(StoreError::invalid(
            "qualifier",
            "a function URL is for $LATEST or an alias, not a version",
        ));
    }
    resolve_in(conn, name, qualifier).map(|_| ())
}

impl Store {
    /// Makes the URL of `name:qualifier` with id `url_id`
    /// ([`StoreError::AlreadyExists`] if that qualifier has one).
    pub fn create_function_url(
        &self,
        name: &str,
        qualifier: &str,
        url_id: &str,
        config: Value,
    ) -> Result<FunctionUrl> {
        self.write("creating a function url", |tx| {
            require_url_qualifier(tx, name, qualifier)?;
            let exists: Option<String> = query_opt(
                tx,
                "SELECT url_id FROM function_urls WHERE function_name = ?1 AND qualifier = ?2",
                params![name, qualifier],
                |row| Ok(row.get(0)?),
            )?;
            if exists.is_some() {
                return Err(StoreError::AlreadyExists {
                    kind: Kind::FunctionUrlConfig,
                    name: format!("{name}:{qualifier}"),
                });
            }
            let now = now_timestamp();
            let url = FunctionUrl {
                function_name: name.to_string(),
                qualifier: qualifier.to_string(),
                url_id: url_id.to_string(),
                config,
                created: now.clone(),
                last_modified: now,
            };
            save(tx, &url)?;
            Ok(url)
        })
    }

    /// The URL of `name:qualifier`.
    pub fn get_function_url(&self, name: &str, qualifier: &str) -> Result<FunctionUrl> {
        self.read("reading a function url", |conn| {
            FUNCTION_URLS.get(conn, name, qualifier)
        })
    }

    /// The URL whose id is `url_id`, if there is one.
    pub fn function_url_by_id(&self, url_id: &str) -> Result<Option<FunctionUrl>> {
        self.read("finding a function url", |conn| {
            query_opt(
                conn,
                "SELECT function_name, qualifier, url_id, config, created, last_modified
                 FROM function_urls WHERE url_id = ?1",
                params![url_id],
                read,
            )
        })
    }

    /// Changes the URL of `name:qualifier` in one transaction: `f` edits
    /// its configuration; `last_modified` is bumped.
    pub fn update_function_url(
        &self,
        name: &str,
        qualifier: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<FunctionUrl> {
        self.write("updating a function url", |tx| {
            let mut url = FUNCTION_URLS.get(tx, name, qualifier)?;
            f(&mut url.config);
            url.last_modified = now_timestamp();
            save(tx, &url)?;
            Ok(url)
        })
    }

    /// Deletes the URL of `name:qualifier`.
    pub fn delete_function_url(&self, name: &str, qualifier: &str) -> Result<()> {
        self.write_freeing("deleting a function url", |tx| {
            FUNCTION_URLS.delete(tx, name, qualifier)
        })
    }

    /// A page of the function's URLs by qualifier, and the next marker.
    pub fn list_function_urls(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: usize,
    ) -> Result<(Vec<FunctionUrl>, Option<String>)> {
        self.read("listing function urls", |conn| {
            FUNCTION_URLS.list(conn, name, marker, max_items)
        })
    }
}
