//! A function that writes into PostgreSQL with `tokio-postgres`, over
//! plain TCP (`NoTls`): the event `{"insert": "some text"}` inserts a row
//! into `notes(id serial primary key, body text)` and the answer is
//! `{"id": N, "count": C}`, the new row's id and how many rows the table
//! holds. The connection comes from the usual libpq variables: `PGHOST`
//! (default `host.mayfly.internal`, the host as Mayfly's guests see it),
//! `PGPORT` (5432), `PGUSER` (postgres), `PGPASSWORD` and `PGDATABASE`
//! (the user's name). A connection or a statement that fails is the
//! invocation's error (`PostgresError`), with its message and its causes.
//! Nothing in it knows about Mayfly but the default host name.

use std::env;

use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Config, NoTls};

#[derive(Debug, Deserialize)]
struct Request {
    insert: String,
}

#[derive(Debug, Serialize)]
struct Response {
    id: i32,
    count: i64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await?;
    Ok(())
}

/// The connection's parameters, from the environment.
fn config() -> Result<Config, Diagnostic> {
    let var = |name: &str, default: &str| env::var(name).unwrap_or_else(|_| default.to_string());
    let user = var("PGUSER", "postgres");
    let mut config = Config::new();
    config
        .host(var("PGHOST", "host.mayfly.internal"))
        .port(
            var("PGPORT", "5432")
                .parse()
                .map_err(|e| format!("PGPORT: {e}"))?,
        )
        .dbname(var("PGDATABASE", &user))
        .user(user);
    if let Ok(password) = env::var("PGPASSWORD") {
        config.password(password);
    }
    Ok(config)
}

/// A tokio-postgres error as the invocation's error: its message and its
/// causes, as in `error connecting to server: Connection refused (os error
/// 111)`.
fn failure(e: tokio_postgres::Error) -> Diagnostic {
    let mut message = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(e) = cause {
        message = format!("{message}: {e}");
        cause = e.source();
    }
    Diagnostic {
        error_type: "PostgresError".into(),
        error_message: message,
    }
}

async fn handler(event: LambdaEvent<Request>) -> Result<Response, Diagnostic> {
    let (client, connection) = config()?.connect(NoTls).await.map_err(failure)?;
    // The connection does the talking, on a task of its own, until the
    // client is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("connection error: {e}");
        }
    });
    let row = client
        .query_one(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id",
            &[&event.payload.insert],
        )
        .await
        .map_err(failure)?;
    let id = row.get(0);
    let count = client
        .query_one("SELECT count(*) FROM notes", &[])
        .await
        .map_err(failure)?
        .get(0);
    Ok(Response { id, count })
}
