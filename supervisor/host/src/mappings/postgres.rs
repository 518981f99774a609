//! PostgreSQL table changes as an event source:
//! `postgresql://USER@HOST[:PORT]/DATABASE?table=TABLE`, the password in
//! the mapping's `SourceAccessConfigurations` (`BASIC_AUTH`), never in the
//! URI or a log. The consumer keeps a publication of the table and a
//! logical replication slot (`pgoutput`) named after the mapping, reads
//! the slot's changes without consuming them
//! (`pg_logical_slot_peek_binary_changes`), hands them to the function in
//! commit order as DynamoDB Streams records ([`super::pgoutput`]), and
//! advances the slot past a transaction only once all its changes were
//! settled: a crash or restart sends again what was not, so delivery is
//! at least once and nothing is skipped. `wal_level = logical` is needed
//! on the server, and `REPLICA IDENTITY FULL` for whole `OldImage`s.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

use super::pgoutput::{self, Message, Relation};
use super::{Delivery, Record};

/// The longest the consumer waits between two reads of an idle slot.
const POLL: Duration = Duration::from_millis(250);

/// Where a PostgreSQL mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The server's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The user.
    pub user: String,
    /// The database.
    pub database: String,
    /// The table (`name` or `schema.name`).
    pub table: String,
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !text.as_bytes()[0].is_ascii_digit()
}

impl Target {
    /// Parses `postgresql://USER@HOST[:PORT]/DATABASE?table=TABLE`.
    pub fn parse(uri: &str) -> Result<Target, String> {
        let rest = uri
            .strip_prefix("postgresql://")
            .or_else(|| uri.strip_prefix("postgres://"))
            .ok_or_else(|| format!("{uri} is not a postgresql:// URI"))?;
        let (location, query) = rest
            .split_once('?')
            .ok_or_else(|| format!("{uri} names no table (?table=NAME)"))?;
        let (authority, database) = location
            .split_once('/')
            .ok_or_else(|| format!("{uri} names no database"))?;
        let (user, host, port) = super::user_at_host(uri, authority, 5432)?;
        let table = query
            .split('&')
            .find_map(|p| p.strip_prefix("table="))
            .ok_or_else(|| format!("{uri} names no table (?table=NAME)"))?;
        let table_ok = table.split('.').count() <= 2 && table.split('.').all(is_identifier);
        if host.is_empty() || !is_identifier(database) || !table_ok || user.is_empty() {
            return Err(format!(
                "{uri}: the host, user, database and table must be plain names"
            ));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            user: user.to_string(),
            database: database.to_string(),
            table: table.to_string(),
        })
    }
}

/// An error with the server's own message, when it sent one.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// The slot's and the publication's name for a mapping.
fn slot_name(uuid: &str) -> String {
    format!("mayfly_{}", uuid.replace('-', "_").to_ascii_lowercase())
}

/// `X/Y`, PostgreSQL's text form of an LSN.
fn lsn_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

fn wrap(records: &[Record]) -> Value {
    json!({ "Records": records.iter().map(|r| r.body.clone()).collect::<Vec<_>>() })
}

async fn connect(target: &Target, password: Option<&str>) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&target.host)
        .port(target.port)
        .user(&target.user)
        .dbname(&target.database)
        .application_name("mayfly")
        .connect_timeout(Duration::from_secs(10));
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "the PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Creates the publication and the slot if they are not there yet; the
/// table's primary key columns.
async fn prepare(
    client: &Client,
    target: &Target,
    name: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let published = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await?;
    if published.is_none() {
        // Names were checked to be plain identifiers.
        client
            .batch_execute(&format!(
                "CREATE PUBLICATION {name} FOR TABLE {}",
                target.table
            ))
            .await?;
    }
    let slot = client
        .query_opt(
            "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
            &[&name],
        )
        .await?;
    if slot.is_none() {
        client
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&name],
            )
            .await?;
    }
    let keys = client
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
            &[&target.table],
        )
        .await?;
    Ok(keys.iter().map(|row| row.get(0)).collect())
}

/// Drops the slot and the publication of a deleted mapping, so that the
/// server keeps no WAL for it. The slot may still be held for a moment by
/// the consumer's closing connection: tried a few times.
pub async fn forget(target: Target, password: Option<String>, uuid: String) {
    let name = slot_name(&uuid);
    for _ in 0..10 {
        let client = match connect(&target, password.as_deref()).await {
            Ok(client) => client,
            Err(error) => {
                let error = describe(&error);
                tracing::warn!(mapping = %uuid, %error, "cannot connect to drop the slot; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let dropped = client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1",
                &[&name],
            )
            .await;
        match dropped {
            Ok(_) => {
                if let Err(error) = client
                    .batch_execute(&format!("DROP PUBLICATION IF EXISTS {name}"))
                    .await
                {
                    let error = describe(&error);
                    tracing::warn!(mapping = %uuid, %error, "cannot drop the publication");
                }
                tracing::info!(mapping = %uuid, slot = %name, "the deleted mapping's slot and publication are dropped");
                return;
            }
            Err(error) => {
                let error = describe(&error);
                tracing::debug!(mapping = %uuid, %error, "the slot is still held; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::warn!(mapping = %uuid, slot = %name, "the deleted mapping's replication slot could not be dropped: drop it by hand, or the server keeps WAL for it");
}

/// A change with the end of its transaction, and whether it is that
/// transaction's last.
struct Pending {
    record: Record,
    end_lsn: u64,
    last_of_transaction: bool,
}

/// One read of the slot: the changes of whole transactions, in commit
/// order.
async fn read(
    client: &Client,
    name: &str,
    limit: i32,
    relations: &mut HashMap<u32, Relation>,
    keys: &[String],
    source: &str,
    seq: &mut u64,
) -> Result<Vec<Pending>, String> {
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
             'proto_version', '1', 'publication_names', $3)",
            &[&name, &limit, &name],
        )
        .await
        .map_err(|e| describe(&e))?;
    let mut out = Vec::new();
    let mut transaction: Vec<Record> = Vec::new();
    for row in rows {
        let data: Vec<u8> = row.get(0);
        match pgoutput::parse(&data).map_err(|e| e.to_string())? {
            Message::Relation(relation) => {
                relations.insert(relation.id, relation);
            }
            Message::Begin { .. } => transaction.clear(),
            Message::Change(change) => {
                *seq += 1;
                // The LSN is the transaction's end, known at its commit.
                if let Some(body) = pgoutput::record(&change, relations, keys, 0, *seq, source) {
                    transaction.push(Record {
                        id: body["eventID"].as_str().unwrap_or("").to_string(),
                        body,
                    });
                }
            }
            Message::Commit { end_lsn } => {
                let n = transaction.len();
                for (i, mut record) in transaction.drain(..).enumerate() {
                    let seq_text = record.body["dynamodb"]["SequenceNumber"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let change_seq = &seq_text[seq_text.len().saturating_sub(10)..];
                    record.body["dynamodb"]["SequenceNumber"] =
                        json!(format!("{end_lsn:020}{change_seq}"));
                    record.body["eventID"] = json!(format!("{end_lsn:x}-{change_seq}"));
                    record.id = record.body["eventID"].as_str().unwrap_or("").to_string();
                    out.push(Pending {
                        record,
                        end_lsn,
                        last_of_transaction: i + 1 == n,
                    });
                }
                if n == 0 {
                    // A transaction with no change of the table still moves
                    // the slot on.
                    out.push(Pending {
                        record: Record {
                            id: String::new(),
                            body: Value::Null,
                        },
                        end_lsn,
                        last_of_transaction: true,
                    });
                }
            }
            Message::Other => {}
        }
    }
    Ok(out)
}

/// Reads `target` for `delivery`'s mapping until the task is stopped.
pub async fn consume(target: Target, password: Option<String>, delivery: Delivery) {
    let spec = delivery.spec().clone();
    let name = slot_name(&spec.uuid);
    let limit = i32::try_from(spec.batch_size.saturating_mul(10)).unwrap_or(i32::MAX);
    let mut seq = 0u64;
    loop {
        let client = match connect(&target, password.as_deref()).await {
            Ok(client) => client,
            Err(error) => {
                let error = describe(&error);
                tracing::warn!(mapping = %spec.uuid, %error, "cannot connect to PostgreSQL; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let keys = match prepare(&client, &target, &name).await {
            Ok(keys) => keys,
            Err(error) => {
                let error = describe(&error);
                tracing::warn!(mapping = %spec.uuid, %error, "cannot prepare the publication and slot; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut relations = HashMap::new();
        loop {
            let pending = match read(
                &client,
                &name,
                limit,
                &mut relations,
                &keys,
                &spec.source,
                &mut seq,
            )
            .await
            {
                Ok(pending) => pending,
                Err(error) => {
                    tracing::warn!(mapping = %spec.uuid, %error, "cannot read the slot; reconnecting");
                    break;
                }
            };
            if pending.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let mut failed = false;
            for batch in pending.chunks(spec.batch_size) {
                let records: Vec<Record> = batch
                    .iter()
                    .filter(|p| !p.record.body.is_null() && delivery.keeps(&p.record.body))
                    .map(|p| p.record.clone())
                    .collect();
                while let Err(error) = delivery.settle(records.clone(), wrap).await {
                    tracing::error!(mapping = %spec.uuid, %error, "a batch could not be settled; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Past the last transaction this batch completed.
                if let Some(done) = batch.iter().rev().find(|p| p.last_of_transaction) {
                    let advanced = client
                        .execute(
                            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
                            &[&name, &lsn_text(done.end_lsn)],
                        )
                        .await;
                    if let Err(error) = advanced {
                        let error = describe(&error);
                        tracing::warn!(mapping = %spec.uuid, %error, "cannot advance the slot; reconnecting");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_server_a_database_and_a_table() {
        assert_eq!(
            Target::parse("postgresql://mayfly@127.0.0.1:5433/shop?table=orders").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 5433,
                user: "mayfly".into(),
                database: "shop".into(),
                table: "orders".into(),
            }
        );
        assert_eq!(
            Target::parse("postgres://u@h/db?table=public.t")
                .unwrap()
                .port,
            5432
        );
        for bad in [
            "mysql://u@h/db?table=t",
            "postgresql://h/db?table=t",
            "postgresql://u:secret@h/db?table=t",
            "postgresql://u@h/db",
            "postgresql://u@h/db?table=t;drop",
            "postgresql://u@h/d-b?table=t",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lsns_and_slot_names() {
        assert_eq!(lsn_text(0x1_0000_00AB), "1/AB");
        assert_eq!(
            slot_name("11111111-2222-4333-8444-555555555555"),
            "mayfly_11111111_2222_4333_8444_555555555555"
        );
    }
}
