//! Misbehaves on request, for tests: `{"mode": ...}` with `error`, `panic`,
//! `loop`, `oom`, `spam`, `state` or `overflow` (recurses until the stack
//! runs into its guard page).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use mayfly_kernel::{Context, Error};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
struct Request {
    mode: String,
}

/// Bytes `spam` writes to the console.
const SPAM_BYTES: usize = 20 * 1024 * 1024;
/// Incremented on every invocation this VM serves: a fresh VM answers 1.
static INVOCATIONS_SEEN: AtomicU64 = AtomicU64::new(0);

fn handler(event: Request, _ctx: &Context) -> Result<Value, Error> {
    let seen = INVOCATIONS_SEEN.fetch_add(1, Ordering::Relaxed) + 1;
    match event.mode.as_str() {
        "error" => Err(Error::new("MisbehaveError", "failing on purpose, as asked")),
        "panic" => panic!("panicking on purpose, as asked"),
        "loop" => loop {
            core::hint::spin_loop();
        },
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page so the memory is really used.
                hoard.push(vec![0xa5; 1 << 20]);
            }
        }
        "spam" => {
            let line = [b'x'; 1023];
            let mut written = 0;
            while written < SPAM_BYTES {
                mayfly_kernel::console::write_bytes(&line);
                mayfly_kernel::console::write_bytes(b"\n");
                written += line.len() + 1;
            }
            Ok(json!({ "spammed_bytes": written }))
        }
        "state" => Ok(json!({ "invocations_seen": seen })),
        "overflow" => Ok(json!({ "depth": recurse(0) })),
        other => Err(Error::new(
            "InvalidMode",
            alloc::format!("unknown mode `{other}`"),
        )),
    }
}

/// Recursion that cannot be optimised into a loop: each frame keeps a
/// buffer alive across the call. Endless on purpose.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[depth as usize % 64]
}

mayfly_kernel::entry!(handler);
