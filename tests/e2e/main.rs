//! Mayfly end to end: the real `mayfly` binary on the real images, so QEMU
//! boots a real VM every time, and every test proves that it left no QEMU
//! behind. One test binary, a module per area; what they share is in
//! `support`.
//!
//! Needs the images (`cargo xtask images`), `aws` (the AWS CLI v1) and
//! python3.11 with boto3 (`cargo xtask test` installs them).

mod support;

// `mayfly run` and `mayfly exec`.
mod egress;
mod egress_postgres;
mod egress_udp;
mod linux;
mod linux_cargo_test;
mod linux_examples;
mod linux_signals;
mod linux_threads;
mod linux_vcpus;
mod run;
mod run_input;

// `mayfly serve`, driven by the AWS CLI, boto3 and raw HTTP.
mod abuse_api;
mod async_events;
mod auth;
mod behind_nginx;
mod boto3;
mod concurrency;
mod errors;
mod function_urls;
mod functions;
mod hostile;
mod invoke;
mod jail;
mod limits;
mod mappings_mqtt;
mod mappings_postgres;
mod mappings_rabbitmq;
mod metrics;
mod object_events;
mod restart;
mod schedules;
mod storage;
mod streaming;
mod tags;
mod versions;
mod warm;
