//! Pipes: a bounded byte queue between a read end and a write end, as
//! Go's runtime uses one to wake its network poller.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use core::cell::RefCell;

use mayfly_linux::errno::{Errno, SysResult};

use super::net::events;

/// Bytes a pipe holds, as Linux's default.
pub const CAPACITY: usize = 64 * 1024;

/// The queue both ends share.
#[derive(Default)]
pub struct Queue {
    data: VecDeque<u8>,
    readers: usize,
    writers: usize,
    /// Writes and reads that found nothing (each an edge for epoll).
    edges: u64,
}

/// One end of a pipe.
pub struct End {
    queue: Rc<RefCell<Queue>>,
    /// The read end (else the write end).
    pub read: bool,
    /// O_NONBLOCK.
    pub nonblocking: bool,
}

impl Drop for End {
    fn drop(&mut self) {
        let mut q = self.queue.borrow_mut();
        if self.read {
            q.readers -= 1;
        } else {
            q.writers -= 1;
        }
        q.edges += 1;
    }
}

/// A new pipe: (read end, write end).
pub fn new(nonblocking: bool) -> (End, End) {
    let queue = Rc::new(RefCell::new(Queue {
        readers: 1,
        writers: 1,
        ..Queue::default()
    }));
    (
        End {
            queue: queue.clone(),
            read: true,
            nonblocking,
        },
        End {
            queue,
            read: false,
            nonblocking,
        },
    )
}

impl End {
    /// Takes up to `out.len()` bytes: `Ok(0)` at the end (no writer left),
    /// EAGAIN while empty.
    pub fn read(&self, out: &mut [u8]) -> SysResult<usize> {
        if !self.read {
            return Err(Errno::EBADF);
        }
        let mut q = self.queue.borrow_mut();
        if q.data.is_empty() {
            if q.writers == 0 {
                return Ok(0);
            }
            q.edges += 1;
            return Err(Errno::EAGAIN);
        }
        let n = out.len().min(q.data.len());
        for (slot, byte) in out.iter_mut().zip(q.data.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }

    /// Adds what fits of `data`: EPIPE with no reader left, EAGAIN while
    /// full.
    pub fn write(&self, data: &[u8]) -> SysResult<usize> {
        if self.read {
            return Err(Errno::EBADF);
        }
        let mut q = self.queue.borrow_mut();
        if q.readers == 0 {
            return Err(Errno::EPIPE);
        }
        let n = data.len().min(CAPACITY - q.data.len());
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        q.data.extend(&data[..n]);
        q.edges += 1;
        Ok(n)
    }

    /// Readiness (epoll bits).
    pub fn events(&self) -> u32 {
        let q = self.queue.borrow();
        if self.read {
            let mut ready = 0;
            if !q.data.is_empty() {
                ready |= events::IN;
            }
            if q.writers == 0 {
                ready |= events::HUP;
            }
            ready
        } else if q.readers == 0 {
            events::ERR
        } else if q.data.len() < CAPACITY {
            events::OUT
        } else {
            0
        }
    }

    /// Events so far, for edge-triggered epoll.
    pub fn edges(&self) -> u64 {
        self.queue.borrow().edges
    }
}
