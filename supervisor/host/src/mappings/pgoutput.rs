//! PostgreSQL's logical replication protocol (`pgoutput`, version 1), the
//! messages a slot hands out, parsed from their bytes with no I/O, and
//! table changes turned into DynamoDB Streams records (`eventName`
//! INSERT/MODIFY/REMOVE, `dynamodb.Keys`, `NewImage`, `OldImage` with typed
//! attribute values, `SequenceNumber`), so that handlers written for
//! DynamoDB work unchanged.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a malformed pgoutput message: {0}")]
pub struct Malformed(&'static str);

/// A column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Part of the replica identity (the key).
    pub key: bool,
    /// Its type's OID.
    pub type_oid: u32,
}

/// A table as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Its OID.
    pub id: u32,
    /// Its schema.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
}

/// One column's value in a row: text, NULL, or unchanged (TOASTed, not
/// sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datum {
    /// `NULL`.
    Null,
    /// An unchanged TOASTed value, not sent.
    Unchanged,
    /// The value in PostgreSQL's text form.
    Text(String),
}

/// A row change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A row inserted.
    Insert {
        /// The table's OID.
        relation: u32,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row updated: the old row (its key, or all of it with `REPLICA
    /// IDENTITY FULL`) when sent.
    Update {
        /// The table's OID.
        relation: u32,
        /// The old row, if sent.
        old: Option<Vec<Datum>>,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row deleted: its key (or all of it).
    Delete {
        /// The table's OID.
        relation: u32,
        /// The old row.
        old: Vec<Datum>,
    },
}

/// One message of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A transaction begins.
    Begin {
        /// Its xid.
        xid: u32,
    },
    /// It committed; `end_lsn` is where the slot may advance to.
    Commit {
        /// The end of the transaction's WAL.
        end_lsn: u64,
    },
    /// A table's description (sent before its first change in a session).
    Relation(Relation),
    /// A row change.
    Change(Change),
    /// Anything else (types, origins, truncations, messages): skipped.
    Other,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().unwrap_or([0; 2]),
        ))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn string(&mut self) -> Result<String, Malformed> {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0)
            .ok_or(Malformed("an unterminated string"))?;
        let text = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = &self.0[end + 1..];
        Ok(text)
    }
    fn tuple(&mut self) -> Result<Vec<Datum>, Malformed> {
        let n = self.u16()?;
        (0..n)
            .map(|_| match self.u8()? {
                b'n' => Ok(Datum::Null),
                b'u' => Ok(Datum::Unchanged),
                b't' => {
                    let len = self.u32()? as usize;
                    Ok(Datum::Text(
                        String::from_utf8_lossy(self.take(len)?).into_owned(),
                    ))
                }
                _ => Err(Malformed("an unknown column kind")),
            })
            .collect()
    }
}

/// Parses one message.
pub fn parse(bytes: &[u8]) -> Result<Message, Malformed> {
    let mut r = Reader(bytes);
    Ok(match r.u8()? {
        b'B' => {
            let _final_lsn = r.u64()?;
            let _timestamp = r.u64()?;
            Message::Begin { xid: r.u32()? }
        }
        b'C' => {
            let _flags = r.u8()?;
            let _commit_lsn = r.u64()?;
            let end_lsn = r.u64()?;
            Message::Commit { end_lsn }
        }
        b'R' => {
            let id = r.u32()?;
            let namespace = r.string()?;
            let name = r.string()?;
            let _identity = r.u8()?;
            let n = r.u16()?;
            let columns = (0..n)
                .map(|_| {
                    let flags = r.u8()?;
                    let name = r.string()?;
                    let type_oid = r.u32()?;
                    let _typmod = r.u32()?;
                    Ok(Column {
                        name,
                        key: flags & 1 != 0,
                        type_oid,
                    })
                })
                .collect::<Result<_, Malformed>>()?;
            Message::Relation(Relation {
                id,
                namespace,
                name,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            if r.u8()? != b'N' {
                return Err(Malformed("an insert without its new row"));
            }
            Message::Change(Change::Insert {
                relation,
                new: r.tuple()?,
            })
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(Malformed("an update without its new row"));
            }
            Message::Change(Change::Update {
                relation,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let relation = r.u32()?;
            match r.u8()? {
                b'K' | b'O' => {}
                _ => return Err(Malformed("a delete without its old row")),
            }
            Message::Change(Change::Delete {
                relation,
                old: r.tuple()?,
            })
        }
        _ => Message::Other,
    })
}

/// A value as a DynamoDB attribute value: numbers as `N`, booleans as
/// `BOOL`, NULL as `NULL`, anything else as `S`.
fn attribute(type_oid: u32, datum: &Datum) -> Option<Value> {
    // int2, int4, int8, float4, float8, numeric, oid.
    const NUMBERS: &[u32] = &[21, 23, 20, 700, 701, 1700, 26];
    const BOOL: u32 = 16;
    match datum {
        Datum::Unchanged => None,
        Datum::Null => Some(json!({"NULL": true})),
        Datum::Text(text) if NUMBERS.contains(&type_oid) => Some(json!({ "N": text })),
        Datum::Text(text) if type_oid == BOOL => Some(json!({ "BOOL": text == "t" })),
        Datum::Text(text) => Some(json!({ "S": text })),
    }
}

/// The row's columns as attribute values: all of them, or only `keys`
/// (by name; when there are none, the replica identity's).
fn image(relation: &Relation, row: &[Datum], keys: Option<&[String]>) -> Map<String, Value> {
    relation
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| match keys {
            None => true,
            Some([]) => c.key,
            Some(keys) => keys.contains(&c.name),
        })
        .filter_map(|(c, d)| Some((c.name.clone(), attribute(c.type_oid, d)?)))
        .collect()
}

/// The DynamoDB Streams record of `change` (the `seq`th of the stream,
/// its transaction ending at `lsn`), for the mapping's `source`; `keys`
/// name the table's primary key (with `REPLICA IDENTITY FULL` every column
/// is in the replica identity, so the stream cannot tell).
pub fn record(
    change: &Change,
    relations: &HashMap<u32, Relation>,
    keys: &[String],
    lsn: u64,
    seq: u64,
    source: &str,
) -> Option<Value> {
    let (name, relation, old, new) = match change {
        Change::Insert { relation, new } => ("INSERT", relation, None, Some(new)),
        Change::Update { relation, old, new } => ("MODIFY", relation, old.as_ref(), Some(new)),
        Change::Delete { relation, old } => ("REMOVE", relation, Some(old), None),
    };
    let relation = relations.get(relation)?;
    let keys = image(relation, new.or(old)?, Some(keys));
    let mut dynamodb = json!({
        "Keys": keys,
        "SequenceNumber": format!("{lsn:020}{seq:010}"),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    let mut size = 0usize;
    if let Some(new) = new {
        let new = Value::Object(image(relation, new, None));
        size += new.to_string().len();
        dynamodb["NewImage"] = new;
    }
    if let Some(old) = old {
        // A delete or update sends the key only, unless the table has
        // REPLICA IDENTITY FULL.
        let old = Value::Object(image(relation, old, None));
        size += old.to_string().len();
        dynamodb["OldImage"] = old;
    }
    dynamodb["SizeBytes"] = json!(size);
    Some(json!({
        "eventID": format!("{lsn:x}-{seq}"),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "mayfly:postgresql",
        "awsRegion": crate::names::DEFAULT_REGION,
        "eventSourceARN": source,
        "tableName": format!("{}.{}", relation.namespace, relation.name),
        "dynamodb": dynamodb,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_message() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&16_384u32.to_be_bytes());
        m.extend_from_slice(b"public\0orders\0");
        m.push(b'f');
        m.extend_from_slice(&3u16.to_be_bytes());
        for (flags, name, oid) in [(1u8, "id", 23u32), (0, "item", 25), (0, "paid", 16)] {
            m.push(flags);
            m.extend_from_slice(name.as_bytes());
            m.push(0);
            m.extend_from_slice(&oid.to_be_bytes());
            m.extend_from_slice(&(-1i32).to_be_bytes());
        }
        m
    }

    fn tuple(values: &[Option<&str>]) -> Vec<u8> {
        let mut t = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                None => t.push(b'n'),
                Some(text) => {
                    t.push(b't');
                    t.extend_from_slice(&(text.len() as u32).to_be_bytes());
                    t.extend_from_slice(text.as_bytes());
                }
            }
        }
        t
    }

    #[test]
    fn relations_and_changes_parse_into_dynamodb_records() {
        let Message::Relation(relation) = parse(&relation_message()).unwrap() else {
            panic!("a relation")
        };
        assert_eq!(relation.name, "orders");
        assert!(relation.columns[0].key && !relation.columns[1].key);
        let relations = HashMap::from([(relation.id, relation)]);
        let mut insert = vec![b'I'];
        insert.extend_from_slice(&16_384u32.to_be_bytes());
        insert.push(b'N');
        insert.extend(tuple(&[Some("7"), Some("tea"), Some("t")]));
        let Message::Change(change) = parse(&insert).unwrap() else {
            panic!("a change")
        };
        let r = record(
            &change,
            &relations,
            &[],
            0x1234,
            1,
            "postgresql://h/db?table=orders",
        )
        .unwrap();
        assert_eq!(r["eventName"], "INSERT");
        assert_eq!(r["dynamodb"]["Keys"], json!({"id": {"N": "7"}}));
        assert_eq!(
            r["dynamodb"]["NewImage"],
            json!({"id": {"N": "7"}, "item": {"S": "tea"}, "paid": {"BOOL": true}})
        );
        assert!(r["dynamodb"].get("OldImage").is_none());
        // An update with the full old row, a delete with the key only.
        let mut update = vec![b'U'];
        update.extend_from_slice(&16_384u32.to_be_bytes());
        update.push(b'O');
        update.extend(tuple(&[Some("7"), Some("tea"), Some("t")]));
        update.push(b'N');
        update.extend(tuple(&[Some("7"), None, Some("f")]));
        let Message::Change(change) = parse(&update).unwrap() else {
            panic!()
        };
        let r = record(&change, &relations, &["id".into()], 0x1235, 2, "s").unwrap();
        assert_eq!(r["dynamodb"]["Keys"], json!({"id": {"N": "7"}}));
        assert_eq!(r["eventName"], "MODIFY");
        assert_eq!(r["dynamodb"]["NewImage"]["item"], json!({"NULL": true}));
        assert_eq!(r["dynamodb"]["OldImage"]["item"], json!({"S": "tea"}));
        let mut delete = vec![b'D'];
        delete.extend_from_slice(&16_384u32.to_be_bytes());
        delete.push(b'K');
        delete.extend(tuple(&[Some("7"), None, None]));
        let Message::Change(change) = parse(&delete).unwrap() else {
            panic!()
        };
        let r = record(&change, &relations, &[], 0x1236, 3, "s").unwrap();
        assert_eq!(r["eventName"], "REMOVE");
        assert_eq!(r["dynamodb"]["Keys"], json!({"id": {"N": "7"}}));
        // Sequence numbers order as the stream does.
        assert!(r["dynamodb"]["SequenceNumber"].as_str().unwrap() > "00000000000000004661");
    }

    #[test]
    fn begin_commit_and_garbage() {
        let mut commit = vec![b'C', 0];
        commit.extend_from_slice(&10u64.to_be_bytes());
        commit.extend_from_slice(&20u64.to_be_bytes());
        commit.extend_from_slice(&0u64.to_be_bytes());
        assert_eq!(parse(&commit).unwrap(), Message::Commit { end_lsn: 20 });
        assert!(parse(b"I\0\0").is_err());
        assert!(parse(b"").is_err());
        assert_eq!(parse(b"Yanything").unwrap(), Message::Other);
        let mut unterminated = vec![b'R'];
        unterminated.extend_from_slice(&1u32.to_be_bytes());
        unterminated.extend_from_slice(b"public");
        assert!(parse(&unterminated).is_err());
    }
}
