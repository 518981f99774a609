//! What the guest-facing targets share: the invocation a fuzzed guest is
//! booted for.

use std::time::Duration;

use bytes::Bytes;
use mayfly_vm::runtime_api::{Invocation, RuntimeApi};

/// The request id of the invocation.
pub const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// A runtime API with `event` waiting for the guest's `next`.
pub fn runtime_api(event: &'static [u8]) -> RuntimeApi {
    RuntimeApi::new(Invocation {
        request_id: REQUEST_ID.into(),
        event: Bytes::from_static(event),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        trace_id: "Root=1-00000001-000000000000000000000000;Parent=0000000000000000;Sampled=0"
            .into(),
    })
}
