//! The `lambda_runtime` crate's basic example exactly as its documentation
//! writes it, on tokio's default multi-thread runtime (worker threads
//! started with clone): it answers each event with the event itself.
//! Nothing in it knows about Mayfly.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let func = service_fn(func);
    lambda_runtime::run(func).await?;
    Ok(())
}

async fn func(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(event.payload)
}
