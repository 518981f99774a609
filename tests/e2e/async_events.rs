//! Asynchronous invocations (`InvocationType=Event`), driven by boto3:
//! events are retried and delivered to their destinations. (That `kill -9`
//! loses no accepted event is in `restart`.)

use crate::support::{Options, Server};

#[test]
fn async_events_are_retried_and_reach_their_destinations() {
    let server = Server::start_with(Options::fast_retries(4));
    server.python("boto3_async.py", &[]);
}
