//! Sources of invocations. Anything that produces invocations on its own
//! (the async queue today; schedules and event-source mappings next)
//! implements [`Source`]: the host starts it once with the dispatcher, and
//! it calls [`Dispatcher::dispatch`] for every event it has, so that every
//! invocation meets the same admission, pools, records and metrics.
//! Requests that arrive through the API call the dispatcher directly.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::dispatch::Dispatcher;

/// What a source runs as: a task for as long as the host lives.
pub type SourceFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A producer of invocations.
pub trait Source: Send + Sync + std::fmt::Debug + 'static {
    /// What it is, for the logs.
    fn name(&self) -> &'static str;

    /// Produces invocations through `dispatcher` until the host stops.
    fn run(self: Arc<Self>, dispatcher: Arc<Dispatcher>) -> SourceFuture;
}
