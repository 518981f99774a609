//! A RabbitMQ 3.10 node (Debian's `rabbitmq-server`), its own Erlang node
//! on free ports, with the default `guest` user (loopback only).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use crate::{free_port, wait_until_listening};

/// A RabbitMQ node of its own, stopped when dropped.
pub struct RabbitMq {
    child: Child,
    /// Its AMQP port on 127.0.0.1 (user `guest`, password `guest`).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RabbitMq {
    /// Starts a node (no plugins) and waits until it listens.
    pub fn start() -> RabbitMq {
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
        let mut broker = RabbitMq { child, port, dir };
        let within = Duration::from_secs(60);
        wait_until_listening(&mut broker.child, port, within, "rabbitmq", String::new);
        broker
    }

    /// Declares the durable queue `queue` and publishes `messages` to it,
    /// persistent, each confirmed by the broker, on a connection of its
    /// own.
    pub fn publish(&self, queue: &str, messages: &[String]) {
        let publisher = self.publisher(queue);
        for message in messages {
            publisher.send(message);
        }
    }

    /// A connection that publishes to the durable queue `queue` (declared
    /// now), kept open between messages.
    pub fn publisher(&self, queue: &str) -> Publisher {
        let uri = format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (connection, channel) = runtime.block_on(async {
            let properties = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio);
            let connection = Connection::connect(&uri, properties).await.unwrap();
            let channel = connection.create_channel().await.unwrap();
            declare(&channel, queue).await;
            (connection, channel)
        });
        Publisher {
            runtime,
            connection,
            channel,
            queue: queue.to_string(),
        }
    }

    /// The queue's messages ready and unacknowledged.
    pub fn depth(&self, queue: &str) -> (u32, u32) {
        let out = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", self.dir.path())
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

/// An open connection publishing to one queue; closed when dropped.
pub struct Publisher {
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    channel: lapin::Channel,
    queue: String,
}

impl Publisher {
    /// Publishes `message` (persistent, JSON) and waits for the broker's
    /// confirmation.
    pub fn send(&self, message: &str) {
        self.runtime.block_on(async {
            self.channel
                .basic_publish(
                    "",
                    &self.queue,
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
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.connection.close(200, "done"));
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

impl Drop for RabbitMq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The Erlang VM's own processes (beam, epmd stays for others).
        let _ = Command::new("pkill")
            .args(["-f", &format!("mayfly{}@localhost", self.port)])
            .status();
    }
}
