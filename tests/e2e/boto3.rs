//! `mayfly serve` driven by boto3: each test starts its own server and runs
//! one script of `tests/api/` against it with `python3.11` (the scripts
//! assert, print what they check and exit non-zero on the first failure).
//!
//! Needs python3.11 with boto3 and the images (`cargo xtask images`).

use crate::support::{Options, Server};

#[test]
fn boto3_functions_versions_aliases_invokes_and_throttles() {
    let s = Server::start();
    s.python("boto3_functions.py", &[]);
    s.assert_no_qemu();
}

#[test]
fn boto3_gets_aws_errors_and_rejected_packages_are_not_stored() {
    let s = Server::start();
    s.python("boto3_errors.py", &[]);
}

#[test]
fn boto3_tags_functions_as_lambda_does() {
    let s = Server::start();
    s.python("boto3_tags.py", &[]);
}

#[test]
fn boto3_signatures_are_checked() {
    let s = Server::start();
    s.python("boto3_auth.py", &[]);
}

#[test]
fn boto3_sixteen_concurrent_invokes_each_get_their_own_payload() {
    let s = Server::start_with(Options {
        metrics: true,
        max_concurrency: Some(32),
        ..Options::default()
    });
    s.python("boto3_concurrency.py", &[]);
    s.assert_no_qemu();
}

#[test]
fn boto3_the_host_concurrency_limit_throttles() {
    let s = Server::start_with(Options {
        max_concurrency: Some(2),
        ..Options::default()
    });
    s.python("boto3_account_limit.py", &[]);
    s.assert_no_qemu();
}
