//! A RabbitMQ queue as an event source, with a real RabbitMQ node
//! (Debian's `rabbitmq-server`, which `cargo xtask bootstrap` installs)
//! started in a temporary directory on free loopback ports: the queue
//! drains into the function as Lambda's `rmqMessagesByQueue` events, and
//! messages are acknowledged only after success (a failing function leaves
//! them in the queue; pointed at a working one, they arrive).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};

use crate::support::fixtures::{b64decode, image_path};
use crate::support::recorder::{events, wait_for};
use crate::support::server::free_port;
use crate::support::Server;

/// A RabbitMQ node of its own, stopped when dropped.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("mayfly-rmq-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        let (port, dist) = (free_port(), free_port());
        let node = format!("mayfly{port}@localhost");
        let child = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server")
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.path().join("log"))
            .env(
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                dir.path().join("enabled_plugins"),
            )
            .env("RABBITMQ_PID_FILE", dir.path().join("pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rabbitmq-server (cargo xtask bootstrap installs it)");
        let broker = Broker {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rabbitmq did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        broker
    }

    /// Declares the durable queue `queue` and publishes `messages` to it,
    /// persistent, each confirmed by the broker.
    fn publish(&self, queue: &str, messages: &[String]) {
        let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let properties = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio);
            let connection = Connection::connect(&uri, properties).await.unwrap();
            let channel = connection.create_channel().await.unwrap();
            declare(&channel, queue).await;
            for message in messages {
                channel
                    .basic_publish(
                        "",
                        queue,
                        BasicPublishOptions::default(),
                        message.as_bytes(),
                        BasicProperties::default()
                            .with_delivery_mode(2)
                            .with_content_type("application/json".into()),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
            connection.close(200, "done").await.unwrap();
        });
    }

    /// The queue's messages ready and unacknowledged.
    fn depth(&self, queue: &str) -> (u32, u32) {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", self._dir.path())
            .args(["-n", &format!("mayfly{}@localhost", self.port)])
            .args([
                "list_queues",
                "-q",
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .output()
            .expect("run rabbitmqctl");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.first() == Some(&queue)).then(|| {
                    (
                        fields[1].parse().unwrap_or(0),
                        fields[2].parse().unwrap_or(0),
                    )
                })
            })
            .unwrap_or((0, 0))
    }
}

async fn declare(channel: &lapin::Channel, queue: &str) {
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The Erlang VM's own processes (beam, epmd stays for others).
        let _ = Command::new("pkill")
            .args(["-f", &format!("mayfly{}@localhost", self.port)])
            .status();
    }
}

/// The `n`s the recorder `function` got from the queue `key`.
fn received(s: &Server, function: &str, key: &str) -> Vec<u64> {
    events(s, function)
        .iter()
        .flat_map(|e| {
            e["rmqMessagesByQueue"][key]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| {
            let body = b64decode(m["data"].as_str()?);
            serde_json::from_slice::<Value>(&body).ok()?["n"].as_u64()
        })
        .collect()
}

#[test]
fn a_queue_drains_into_the_function_and_is_acknowledged_only_after_success() {
    let broker = Broker::start();
    let s = Server::start();
    s.create("rmq-failing", &image_path("misbehave.zip"), &[]);
    s.create("rmq-sink", &image_path("recorder.zip"), &[]);
    let messages: Vec<String> = (0..50).map(|n| json!({ "n": n }).to_string()).collect();
    broker.publish("jobs", &messages);
    let source = format!("amqp://guest@127.0.0.1:{}/%2f/jobs", broker.port);
    let access = json!([{"Type": "BASIC_AUTH", "URI": "guest"}]).to_string();
    // A function that always fails: nothing is acknowledged.
    let made = s
        .aws(&[
            "create-event-source-mapping",
            "--function-name",
            "rmq-failing",
            "--event-source-arn",
            &source,
            "--batch-size",
            "10",
            "--source-access-configurations",
            &access,
        ])
        .ok();
    let uuid = made["UUID"].as_str().unwrap().to_string();
    wait_for(
        Duration::from_secs(30),
        "the failing function tried",
        || !s.invocations("rmq-failing", 5).is_empty(),
    );
    let (ready, unacked) = broker.depth("jobs");
    assert_eq!(ready + unacked, 50, "nothing acknowledged while failing");
    // Pointed at a function that works, the queue drains into it.
    s.aws(&[
        "update-event-source-mapping",
        "--uuid",
        &uuid,
        "--function-name",
        "rmq-sink",
    ])
    .ok();
    wait_for(Duration::from_secs(60), "all 50 messages", || {
        let got = received(&s, "rmq-sink", "jobs::/");
        (0..50).all(|n| got.contains(&n))
    });
    let first = &events(&s, "rmq-sink")[0];
    assert_eq!(first["eventSource"], "aws:rmq");
    assert_eq!(first["eventSourceArn"], source.as_str());
    let message = &first["rmqMessagesByQueue"]["jobs::/"][0];
    assert_eq!(
        message["basicProperties"]["contentType"],
        "application/json"
    );
    wait_for(Duration::from_secs(30), "an empty queue", || {
        broker.depth("jobs") == (0, 0)
    });
}
