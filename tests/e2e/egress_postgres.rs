//! A Linux function writes into a real PostgreSQL through egress: the
//! example `rust-pg` (lambda_runtime and tokio-postgres) on a server
//! started with `--egress host.mayfly.internal:PORT` inserts a row into a
//! PostgreSQL the test runs on the host's 127.0.0.1, and psql finds it
//! there afterwards; on a server without the rule the same function
//! answers a function error naming the refused connection, and nothing
//! is written.
//!
//! PostgreSQL is [`mayfly_testbed::postgres`]'s, Debian's on a free port.

use mayfly_testbed::postgres::{Postgres, PASSWORD, USER};
use serde_json::{json, Value};

use crate::linux_examples::example;
use crate::support::fixtures::b64decode;
use crate::support::{payload_json, Options, Server};

/// Deploys rust-pg on a server started with `rules`, pointed at `pg`, and
/// invokes it with `{"insert": body}`: the CLI's answer, the payload and
/// the log.
fn insert_through(rules: &[String], pg: &Postgres, body: &str) -> (Value, Value, String) {
    let extra_args = rules
        .iter()
        .flat_map(|rule| ["--egress".to_string(), rule.clone()])
        .collect();
    let s = Server::start_with(Options {
        extra_args,
        ..Default::default()
    });
    let environment = json!({"Variables": {
        "PGPORT": pg.port.to_string(),
        "PGUSER": USER,
        "PGPASSWORD": PASSWORD,
        "PGDATABASE": "postgres",
    }});
    s.create(
        "notes",
        &example("rust-pg.zip"),
        &["--environment", &environment.to_string(), "--timeout", "30"],
    );
    let event = json!({ "insert": body }).to_string();
    let (meta, payload) = s.invoke("notes", &["--payload", &event, "--log-type", "Tail"]);
    let log = String::from_utf8_lossy(&b64decode(meta["LogResult"].as_str().unwrap())).into_owned();
    s.assert_no_qemu();
    (meta, payload_json(&payload), log)
}

#[test]
fn a_function_writes_a_row_into_postgres_through_egress_and_is_refused_without_the_rule() {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE notes (id serial PRIMARY KEY, body text)");
    let rule = format!("host.mayfly.internal:{}", pg.port);

    let (meta, answer, log) = insert_through(&[rule], &pg, "written from a VM");
    assert!(
        meta.get("FunctionError").is_none(),
        "{meta}\n{answer}\n{log}"
    );
    assert_eq!(answer, json!({"id": 1, "count": 1}), "{log}");
    assert_eq!(pg.psql("SELECT body FROM notes"), "written from a VM");

    // Without the rule: the connection is refused, the function says so,
    // and nothing is written.
    let (meta, answer, log) = insert_through(&[], &pg, "never written");
    assert_eq!(
        meta["FunctionError"], "Unhandled",
        "{meta}\n{answer}\n{log}"
    );
    assert_eq!(answer["errorType"], "PostgresError", "{answer}");
    assert_eq!(
        answer["errorMessage"], "error connecting to server: Connection refused (os error 111)",
        "{answer}\n{log}"
    );
    assert!(
        log.contains(&format!(
            "mayfly: egress to 10.0.2.2:{} refused by policy",
            pg.port
        )),
        "{log}"
    );
    assert_eq!(pg.psql("SELECT body FROM notes"), "written from a VM");
}
