//! Mayfly end to end: the real `mayfly` binary on the real images, so QEMU
//! boots a real VM every time. One test binary, a module per area; the
//! helpers they share are in `support`.
//!
//! Needs the images (`cargo xtask images`), `aws` (the AWS CLI v1) and
//! python3.11 with boto3 (`cargo xtask test` installs them).

mod support;

mod async_events;
mod boto3;
mod cli;
mod restart;
mod run;
mod run_input;
mod warm;
