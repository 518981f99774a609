//! Greets by name: `{"name":"Ada"}` gives `{"message":"Hello, Ada!"}`, with
//! the greeting taken from the `GREETING` environment variable if set.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use mayfly_kernel::{Context, Error};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Serialize)]
struct Reply {
    message: String,
}

fn handler(event: Request, ctx: &Context) -> Result<Reply, Error> {
    let greeting = ctx
        .env_var("GREETING")
        .unwrap_or_else(|| String::from("Hello"));
    let name = event.name.unwrap_or_else(|| String::from("World"));
    Ok(Reply {
        message: format!("{greeting}, {name}!"),
    })
}

mayfly_kernel::entry!(handler);
