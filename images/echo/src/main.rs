//! Returns its event unchanged, byte for byte.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;
use mayfly_kernel::{Context, Error};
use serde_json::value::RawValue;

fn handler(event: Box<RawValue>, _ctx: &Context) -> Result<Box<RawValue>, Error> {
    Ok(event)
}

mayfly_kernel::entry!(handler);
