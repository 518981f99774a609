//! PostgreSQL table changes as an event source, with a real PostgreSQL
//! (Debian's, started in a temporary directory with `wal_level =
//! logical`): an INSERT, an UPDATE and a DELETE reach the function as
//! DynamoDB Streams records in commit order; 1,000 inserts in one
//! transaction arrive in batches of the mapping's size; after `kill -9` of
//! the host and a restart every change is delivered at least once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fixtures::image_path;
use crate::support::recorder::{records as received, wait_for};
use crate::support::Server;
use mayfly_testbed::postgres::{Postgres, PASSWORD, USER};

fn map(s: &Server, pg: &Postgres, function: &str, batch: &str) -> Value {
    let source = format!(
        "postgresql://{USER}@127.0.0.1:{}/postgres?table=orders",
        pg.port
    );
    let access = json!([{"Type": "BASIC_AUTH", "URI": PASSWORD}]).to_string();
    s.aws(&[
        "create-event-source-mapping",
        "--function-name",
        function,
        "--event-source-arn",
        &source,
        "--batch-size",
        batch,
        "--source-access-configurations",
        &access,
    ])
    .ok()
}

#[test]
fn table_changes_arrive_as_dynamodb_records_in_commit_order_and_survive_a_kill() {
    let pg = Postgres::start();
    pg.psql(
        "CREATE TABLE orders (id int PRIMARY KEY, item text, paid bool);
         ALTER TABLE orders REPLICA IDENTITY FULL;",
    );
    let mut s = Server::start();
    s.create("pg-sink", &image_path("recorder.zip"), &[]);
    let made = map(&s, &pg, "pg-sink", "100");
    // The password is kept, never shown.
    assert_eq!(made["SourceAccessConfigurations"][0]["URI"], "****");
    assert!(!made.to_string().contains(PASSWORD));
    let slot = format!(
        "mayfly_{}",
        made["UUID"].as_str().unwrap().replace('-', "_")
    );
    wait_for(Duration::from_secs(30), "the slot", || {
        pg.psql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )) == "1"
    });
    pg.psql("INSERT INTO orders VALUES (1, 'tea', false)");
    pg.psql("UPDATE orders SET paid = true WHERE id = 1");
    pg.psql("DELETE FROM orders WHERE id = 1");
    wait_for(Duration::from_secs(30), "three changes", || {
        received(&s, "pg-sink").len() >= 3
    });
    let got = received(&s, "pg-sink");
    let names: Vec<&str> = got[..3]
        .iter()
        .map(|r| r["eventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["INSERT", "MODIFY", "REMOVE"]);
    assert_eq!(got[0]["dynamodb"]["Keys"], json!({"id": {"N": "1"}}));
    assert_eq!(
        got[0]["dynamodb"]["NewImage"],
        json!({"id": {"N": "1"}, "item": {"S": "tea"}, "paid": {"BOOL": false}})
    );
    assert_eq!(
        got[1]["dynamodb"]["OldImage"]["paid"],
        json!({"BOOL": false})
    );
    assert_eq!(
        got[1]["dynamodb"]["NewImage"]["paid"],
        json!({"BOOL": true})
    );
    assert_eq!(got[2]["dynamodb"]["OldImage"]["item"], json!({"S": "tea"}));
    let sequence = |r: &Value| {
        r["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(sequence(&got[0]) < sequence(&got[1]) && sequence(&got[1]) < sequence(&got[2]));

    // 1,000 inserts in one transaction: batches of at most 100.
    let before = s.invocations("pg-sink", 1000).len();
    pg.psql("INSERT INTO orders SELECT n, 'bulk', false FROM generate_series(1000, 1999) n");
    wait_for(Duration::from_secs(120), "1,000 inserts", || {
        received(&s, "pg-sink").len() >= 1003
    });
    let batches = s.invocations("pg-sink", 1000).len() - before;
    assert!(batches >= 10, "{batches} invocations for 1,000 changes");

    // kill -9 with changes on their way; after the restart every one
    // arrives (at least once).
    pg.psql("INSERT INTO orders SELECT n, 'late', false FROM generate_series(3000, 3299) n");
    s.kill_9();
    pg.psql("INSERT INTO orders SELECT n, 'later', false FROM generate_series(4000, 4099) n");
    s.restart();
    wait_for(
        Duration::from_secs(120),
        "every change after the restart",
        || {
            let got = received(&s, "pg-sink");
            let ids: std::collections::HashSet<String> = got
                .iter()
                .filter_map(|r| {
                    r["dynamodb"]["Keys"]["id"]["N"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect();
            (3000..3300)
                .chain(4000..4100)
                .all(|n| ids.contains(&n.to_string()))
        },
    );

    // Deleted, the mapping leaves no slot behind to keep the server's WAL.
    let uuid = made["UUID"].as_str().unwrap();
    s.aws(&["delete-event-source-mapping", "--uuid", uuid]).ok();
    wait_for(Duration::from_secs(30), "the slot dropped", || {
        pg.psql(&format!(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
        )) == "0"
    });
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM pg_publication WHERE pubname = '{slot}'"
        )),
        "0"
    );
}
