//! MQTT as an event source: `mqtt://HOST[:PORT]/TOPIC-FILTER` (the filter,
//! which may hold `+` and `#`, is the URI's path). The consumer keeps a
//! persistent session (`clean_session` off, client id `mayfly-<mapping
//! uuid>`) subscribed at QoS 1 and acknowledges each message (PUBACK) only
//! after its batch was settled, so messages published while the host was
//! away, or not settled before it stopped, arrive when it is back.
//! Ordering is the broker's (per topic).
//!
//! Each record is what an AWS IoT rule hands a function, with where it came
//! from: `{"eventSourceArn", "topic", "qos", "retain", "payload"}`
//! (`payload` the message's JSON when it is JSON, else its text; else
//! `payloadBase64`), in an event `{"eventSource": "mayfly:mqtt",
//! "Records": [...]}`.

use std::time::Duration;

use base64::Engine;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Publish, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{Delivery, Record};

/// Where an MQTT mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The broker's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The topic filter.
    pub filter: String,
}

impl Target {
    /// Parses `mqtt://HOST[:PORT]/FILTER`.
    pub fn parse(uri: &str) -> Result<Target, String> {
        let rest = uri
            .strip_prefix("mqtt://")
            .ok_or_else(|| format!("{uri} is not an mqtt:// URI"))?;
        let (authority, filter) = rest
            .split_once('/')
            .ok_or_else(|| format!("{uri} names no topic filter"))?;
        let (host, port) = super::host_port(uri, authority, 1883)?;
        if host.is_empty() || filter.is_empty() {
            return Err(format!("{uri} needs a host and a topic filter"));
        }
        let levels: Vec<&str> = filter.split('/').collect();
        let valid = levels.iter().enumerate().all(|(i, level)| {
            (*level == "#" && i == levels.len() - 1) || *level == "+" || !level.contains(['#', '+'])
        });
        if !valid {
            return Err(format!("{uri}: {filter} is not an MQTT topic filter"));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            filter: filter.to_string(),
        })
    }
}

/// One message of `source` as a record; `seq` makes its id unique.
pub fn record(source: &str, publish: &Publish, seq: u64) -> Record {
    let (key, payload) = match serde_json::from_slice::<Value>(&publish.payload) {
        Ok(json) => ("payload", json),
        Err(_) => match std::str::from_utf8(&publish.payload) {
            Ok(text) => ("payload", Value::String(text.to_string())),
            Err(_) => (
                "payloadBase64",
                Value::String(base64::engine::general_purpose::STANDARD.encode(&publish.payload)),
            ),
        },
    };
    let mut body = json!({
        "eventSourceArn": source,
        "topic": publish.topic,
        "qos": publish.qos as u8,
        "retain": publish.retain,
    });
    body[key] = payload;
    Record {
        id: format!("{}-{seq}", publish.pkid),
        body,
    }
}

fn wrap(records: &[Record]) -> Value {
    json!({
        "eventSource": "mayfly:mqtt",
        "Records": records.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
    })
}

/// Reads `target` for `delivery`'s mapping until the task is stopped.
pub async fn consume(target: Target, delivery: Delivery) {
    let spec = delivery.spec().clone();
    let mut options = MqttOptions::new(format!("mayfly-{}", spec.uuid), &target.host, target.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (messages_tx, mut messages) = mpsc::channel::<Publish>(1024);
    let subscriber = client.clone();
    let filter = target.filter.clone();
    let network = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                // Every (re)connection subscribes again: harmless on a
                // session the broker kept, needed on one it did not.
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    if let Err(error) = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(%error, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(publish))) => {
                    if messages_tx.send(publish).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "the MQTT connection failed; reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    let _network = AbortOnDrop(network);
    let mut seq = 0u64;
    while let Some(first) = messages.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + spec.window;
        while batch.len() < spec.batch_size {
            let next = if spec.window.is_zero() {
                messages.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, messages.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(publish) => batch.push(publish),
                None => break,
            }
        }
        let records: Vec<Record> = batch
            .iter()
            .map(|p| {
                seq += 1;
                record(&spec.source, p, seq)
            })
            .filter(|r| delivery.keeps(&r.body))
            .collect();
        while let Err(error) = delivery.settle(records.clone(), wrap).await {
            tracing::error!(mapping = %spec.uuid, %error, "a batch could not be settled; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        for publish in &batch {
            if let Err(error) = client.ack(publish).await {
                tracing::warn!(%error, "cannot acknowledge an MQTT message");
            }
        }
    }
}

/// Stops a task when dropped (the consumer's network loop goes with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_a_broker_and_a_topic_filter() {
        assert_eq!(
            Target::parse("mqtt://127.0.0.1:1883/sensors/#").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 1883,
                filter: "sensors/#".into()
            }
        );
        assert_eq!(Target::parse("mqtt://broker/a/+/c").unwrap().port, 1883);
        for bad in [
            "amqp://h/q",
            "mqtt://h",
            "mqtt://h:x/t",
            "mqtt://h/a/#/b",
            "mqtt://h/a+",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_text_and_binary_payloads_become_records() {
        let source = "mqtt://h/sensors/#";
        let json_message = Publish::new("sensors/a", QoS::AtLeastOnce, br#"{"t":21.5}"#.to_vec());
        assert_eq!(record(source, &json_message, 1).body["payload"]["t"], 21.5);
        let text = Publish::new("sensors/a", QoS::AtLeastOnce, b"hello".to_vec());
        assert_eq!(record(source, &text, 2).body["payload"], "hello");
        let binary = Publish::new("sensors/a", QoS::AtLeastOnce, vec![0xff, 0x00]);
        let r = record(source, &binary, 3);
        assert_eq!(r.body["payloadBase64"], "/wA=");
        assert_eq!(r.body["topic"], "sensors/a");
        assert_eq!(r.body["eventSourceArn"], source);
    }
}
