//! Streamed responses, shared by InvokeWithResponseStream and streamed
//! function URLs: the invocation runs in a task of its own, and what the
//! function writes comes out of a channel as [`Piece`]s while it runs,
//! the result last. A client that goes away does not stop the function
//! (as in Lambda); what it streams after that is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use mayfly_host::error::HostResult;
use mayfly_host::job::Completed;
use mayfly_host::names::FunctionRef;
use mayfly_runner::StreamSink;
use mayfly_store::Resolved;
use tokio::sync::mpsc;

use crate::SharedState;

/// What comes out of a streamed invocation.
#[derive(Debug)]
pub enum Piece {
    /// Bytes the function wrote.
    Chunk(Bytes),
    /// Its end (with nothing streamed, its whole answer).
    Done(Box<HostResult<Completed>>),
}

/// Hands the function's bytes to the channel.
#[derive(Debug)]
struct ChannelSink(mpsc::UnboundedSender<Piece>);

impl StreamSink for ChannelSink {
    fn write(&self, chunk: Bytes) -> bool {
        self.0.send(Piece::Chunk(chunk)).is_ok()
    }
}

/// Starts the invocation; its pieces, in order.
pub fn start(
    state: &SharedState,
    f: FunctionRef,
    resolved: Resolved,
    arn: String,
    request_id: String,
    payload: Bytes,
) -> mpsc::UnboundedReceiver<Piece> {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = state.clone();
    tokio::spawn(async move {
        let sink = std::sync::Arc::new(ChannelSink(tx.clone()));
        let done = state
            .host
            .invoke_streaming(&f, resolved, arn, request_id, payload, sink)
            .await;
        let _ = tx.send(Piece::Done(Box::new(done)));
    });
    rx
}

/// What a [`StreamedBody`] ends with, made from the invocation's result.
pub type Finish = Box<dyn FnMut(HostResult<Completed>) -> Option<Bytes> + Send>;

/// A response body made of what a function streams: each chunk through
/// `frame`, and `last` (from the result) at the end.
pub struct StreamedBody {
    first: Option<Bytes>,
    pieces: mpsc::UnboundedReceiver<Piece>,
    frame: fn(Bytes) -> Bytes,
    last: Finish,
    ended: bool,
}

impl StreamedBody {
    /// `first` (already taken from `pieces`), then the rest of `pieces`.
    pub fn new(
        first: Option<Bytes>,
        pieces: mpsc::UnboundedReceiver<Piece>,
        frame: fn(Bytes) -> Bytes,
        last: Finish,
    ) -> StreamedBody {
        StreamedBody {
            first,
            pieces,
            frame,
            last,
            ended: false,
        }
    }
}

impl http_body::Body for StreamedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            let framed = (self.frame)(first);
            return Poll::Ready(Some(Ok(Frame::data(framed))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match self.pieces.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Piece::Chunk(chunk))) => {
                let framed = (self.frame)(chunk);
                Poll::Ready(Some(Ok(Frame::data(framed))))
            }
            Poll::Ready(Some(Piece::Done(result))) => {
                self.ended = true;
                match (self.last)(*result) {
                    Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                    None => Poll::Ready(None),
                }
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
        }
    }
}
