//! RabbitMQ queues as an event source (Lambda's Amazon MQ for RabbitMQ
//! source): `amqp://USER@HOST[:PORT]/VHOST/QUEUE` (`%2f` for the default
//! virtual host `/`), the password in `SourceAccessConfigurations`
//! (`BASIC_AUTH`). The consumer takes messages with a prefetch of two
//! batches and acknowledges each only after its batch was settled; a
//! message not acknowledged when the connection or the host goes is
//! requeued by the broker and delivered again (`redelivered: true`).
//!
//! The event is Lambda's: `{"eventSource": "aws:rmq", "eventSourceArn",
//! "rmqMessagesByQueue": {"QUEUE::VHOST": [{"basicProperties": {...},
//! "redelivered", "data": base64}]}}`.

use std::time::Duration;

use base64::Engine;
use futures_lite::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Map, Value};

use super::{Delivery, Record};

/// Where a RabbitMQ mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The broker's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The user.
    pub user: String,
    /// The virtual host, decoded (`/`).
    pub vhost: String,
    /// The queue.
    pub queue: String,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Target {
    /// Parses `amqp://USER@HOST[:PORT]/VHOST/QUEUE`.
    pub fn parse(uri: &str) -> Result<Target, String> {
        let rest = uri
            .strip_prefix("amqp://")
            .ok_or_else(|| format!("{uri} is not an amqp:// URI"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| format!("{uri} names no virtual host and queue"))?;
        let (user, host, port) = super::user_at_host(uri, authority, 5672)?;
        let (vhost, queue) = path
            .split_once('/')
            .ok_or_else(|| format!("{uri} names no queue (amqp://USER@HOST/VHOST/QUEUE)"))?;
        let queue = percent_decode(queue);
        if host.is_empty() || user.is_empty() || queue.is_empty() || queue.len() > 255 {
            return Err(format!("{uri} needs a user, a host and a queue"));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            user: percent_decode(user),
            vhost: percent_decode(vhost),
            queue,
        })
    }
}

/// A message's properties as Lambda shows them.
fn properties(delivery: &AmqpDelivery) -> Value {
    let p = &delivery.properties;
    let text = |v: &Option<lapin::types::ShortString>| {
        v.as_ref()
            .map_or(Value::Null, |s| Value::String(s.as_str().to_string()))
    };
    let headers = p.headers().as_ref().map_or(Value::Null, |table| {
        let map: Map<String, Value> = table
            .inner()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(format!("{v:?}"))))
            .collect();
        Value::Object(map)
    });
    json!({
        "contentType": text(p.content_type()),
        "contentEncoding": text(p.content_encoding()),
        "headers": headers,
        "deliveryMode": p.delivery_mode(),
        "priority": p.priority(),
        "correlationId": text(p.correlation_id()),
        "replyTo": text(p.reply_to()),
        "expiration": text(p.expiration()),
        "messageId": text(p.message_id()),
        "timestamp": p.timestamp(),
        "type": text(p.kind()),
        "userId": text(p.user_id()),
        "appId": text(p.app_id()),
        "clusterId": text(p.cluster_id()),
        "bodySize": delivery.data.len(),
    })
}

/// One message as a record of the queue named `key` (`QUEUE::VHOST`).
fn record(key: &str, delivery: &AmqpDelivery) -> Record {
    Record {
        id: delivery.delivery_tag.to_string(),
        body: json!({
            "queue": key,
            "message": {
                "basicProperties": properties(delivery),
                "redelivered": delivery.redelivered,
                "data": base64::engine::general_purpose::STANDARD.encode(&delivery.data),
            },
        }),
    }
}

/// What `FilterCriteria` see of a message, as Lambda's: its `data`
/// decoded (JSON, else text) and its properties.
fn filter_view(delivery: &AmqpDelivery) -> Value {
    let data = serde_json::from_slice::<Value>(&delivery.data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&delivery.data).into_owned()));
    json!({
        "data": data,
        "basicProperties": properties(delivery),
        "redelivered": delivery.redelivered,
    })
}

fn wrap(records: &[Record]) -> Value {
    let mut by_queue: Map<String, Value> = Map::new();
    let mut source = Value::Null;
    for r in records {
        let key = r.body["queue"].as_str().unwrap_or("").to_string();
        source = r.body["eventSourceArn"].clone();
        let list = by_queue.entry(key).or_insert_with(|| json!([]));
        if let Value::Array(list) = list {
            list.push(r.body["message"].clone());
        }
    }
    json!({
        "eventSource": "aws:rmq",
        "eventSourceArn": source,
        "rmqMessagesByQueue": by_queue,
    })
}

/// Reads `target` for `delivery`'s mapping until the task is stopped.
pub async fn consume(target: Target, password: Option<String>, delivery: Delivery) {
    let spec = delivery.spec().clone();
    let key = format!("{}::{}", target.queue, target.vhost);
    let uri = format!(
        "amqp://{}:{}@{}:{}/{}",
        percent_encode(&target.user),
        percent_encode(password.as_deref().unwrap_or("")),
        target.host,
        target.port,
        percent_encode(&target.vhost)
    );
    let prefetch = u16::try_from(spec.batch_size.saturating_mul(2)).unwrap_or(u16::MAX);
    loop {
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let connected = async {
            let connection = Connection::connect(&uri, properties).await?;
            let channel = connection.create_channel().await?;
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            let consumer = channel
                .basic_consume(
                    &target.queue,
                    &format!("mayfly-{}", spec.uuid),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            Ok::<_, lapin::Error>((connection, consumer))
        };
        let (connection, mut consumer) = match connected.await {
            Ok(pair) => pair,
            Err(error) => {
                // lapin's errors name no password.
                tracing::warn!(mapping = %spec.uuid, %error, "cannot consume from RabbitMQ; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        'consuming: loop {
            let first = match consumer.next().await {
                Some(Ok(first)) => first,
                Some(Err(error)) => {
                    tracing::warn!(mapping = %spec.uuid, %error, "the RabbitMQ consumer failed; reconnecting");
                    break 'consuming;
                }
                None => break 'consuming,
            };
            let mut batch = vec![first];
            let deadline = tokio::time::Instant::now() + spec.window;
            while batch.len() < spec.batch_size {
                let wait = if spec.window.is_zero() {
                    Duration::from_millis(1)
                } else {
                    deadline.saturating_duration_since(tokio::time::Instant::now())
                };
                match tokio::time::timeout(wait, consumer.next()).await {
                    Ok(Some(Ok(next))) => batch.push(next),
                    _ => break,
                }
            }
            let records: Vec<Record> = batch
                .iter()
                .filter(|d| delivery.keeps(&filter_view(d)))
                .map(|d| {
                    let mut r = record(&key, d);
                    r.body["eventSourceArn"] = json!(spec.source);
                    r
                })
                .collect();
            while let Err(error) = delivery.settle(records.clone(), wrap).await {
                tracing::error!(mapping = %spec.uuid, %error, "a batch could not be settled; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            for message in &batch {
                if let Err(error) = message.acker.ack(BasicAckOptions::default()).await {
                    tracing::warn!(mapping = %spec.uuid, %error, "cannot acknowledge a message; it will come again");
                    break 'consuming;
                }
            }
        }
        let _ = connection.close(200, "reconnecting").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_broker_a_virtual_host_and_a_queue() {
        assert_eq!(
            Target::parse("amqp://guest@127.0.0.1:5673/%2f/jobs").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 5673,
                user: "guest".into(),
                vhost: "/".into(),
                queue: "jobs".into(),
            }
        );
        assert_eq!(Target::parse("amqp://u@h/v/q").unwrap().port, 5672);
        for bad in [
            "amqps://u@h/v/q",
            "amqp://h/v/q",
            "amqp://u:secret@h/v/q",
            "amqp://u@h/v",
            "amqp://u@h/v/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_are_grouped_by_queue_as_lambda_does() {
        let records = vec![
            Record {
                id: "1".into(),
                body: json!({"queue": "jobs::/", "eventSourceArn": "amqp://u@h/%2f/jobs",
                             "message": {"data": "aGk=", "redelivered": false}}),
            },
            Record {
                id: "2".into(),
                body: json!({"queue": "jobs::/", "eventSourceArn": "amqp://u@h/%2f/jobs",
                             "message": {"data": "eW8=", "redelivered": true}}),
            },
        ];
        let event = wrap(&records);
        assert_eq!(event["eventSource"], "aws:rmq");
        assert_eq!(event["rmqMessagesByQueue"]["jobs::/"][1]["data"], "eW8=");
        assert_eq!(event["eventSourceArn"], "amqp://u@h/%2f/jobs");
        assert_eq!(percent_encode("/"), "%2F");
        assert_eq!(percent_decode("%2f"), "/");
    }
}
