//! Writes its event to the log and answers `{"recorded": <bytes>}`: a sink
//! for destinations, whose deliveries then show in the invocation records.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use mayfly_kernel::{Context, Error};
use serde_json::value::RawValue;
use serde_json::{json, Value};

// `RawValue` is unsized: an owned event (what `entry!` hands over) can only
// be boxed.
#[allow(clippy::boxed_local)]
fn handler(event: Box<RawValue>, _ctx: &Context) -> Result<Value, Error> {
    mayfly_kernel::log!("event: {}", event.get());
    Ok(json!({ "recorded": event.get().len() }))
}

mayfly_kernel::entry!(handler);
