//! Load behaviour of `mayfly serve`, driven by boto3: concurrency limits
//! answer 429 at once, and async events are retried and delivered to
//! destinations. (That `kill -9` loses no accepted event is in `restart`.)

use crate::support::{Options, Server};

#[test]
fn throttles_answer_429_at_once_and_accepted_invokes_return_their_payload() {
    let server = Server::start_with(Options::fast_retries(4));
    server.python("boto3_throttle.py", &[]);
}

#[test]
fn async_events_are_retried_and_reach_their_destinations() {
    let server = Server::start_with(Options::fast_retries(4));
    server.python("boto3_async.py", &[]);
}
