//! The guest console, captured as the invocation's log.
//!
//! Two constraints pull against each other: a guest may write without bound
//! (a test image writes 20 MB), and QEMU blocks the guest's console writes
//! when the pipe is full. So the pipe is always drained, at full speed, and
//! only a bounded amount is kept: the first [`HEAD_BYTES`] (how the function
//! started) and a ring of the most recent bytes (how it ended), with a marker
//! saying how much was dropped between them.

use std::collections::VecDeque;

use std::os::fd::{AsFd, BorrowedFd};

use mayfly_proto::console::KERNEL_PREFIX;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::oneshot;

/// Bytes kept from the start of the console.
pub const HEAD_BYTES: usize = 64 * 1024;
/// Bytes kept in all (head and tail together).
pub const MAX_KEPT_BYTES: usize = 1024 * 1024;

/// A console log with a hard size cap.
#[derive(Debug, Clone)]
pub struct CappedLog {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    head_cap: usize,
    tail_cap: usize,
    dropped: u64,
    /// Where every chunk also goes as it arrives (`mayfly exec`).
    tee: Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>,
}

impl Default for CappedLog {
    fn default() -> Self {
        CappedLog::new(HEAD_BYTES, MAX_KEPT_BYTES - HEAD_BYTES)
    }
}

impl CappedLog {
    /// A log keeping the first `head_cap` bytes and the last `tail_cap`.
    pub fn new(head_cap: usize, tail_cap: usize) -> CappedLog {
        CappedLog {
            head: Vec::new(),
            tail: VecDeque::new(),
            head_cap,
            tail_cap,
            dropped: 0,
            tee: None,
        }
    }

    /// This log, also sending every chunk to `tee` as it arrives (whatever
    /// is kept); a receiver that went away is ignored.
    pub fn with_tee(mut self, tee: tokio::sync::mpsc::UnboundedSender<Vec<u8>>) -> CappedLog {
        self.tee = Some(tee);
        self
    }

    /// Appends console output.
    pub fn push(&mut self, mut data: &[u8]) {
        if let Some(tee) = &self.tee {
            if tee.send(data.to_vec()).is_err() {
                self.tee = None;
            }
        }
        if self.head.len() < self.head_cap {
            let n = data.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&data[..n]);
            data = &data[n..];
        }
        if data.len() >= self.tail_cap {
            // The chunk alone overflows the ring: everything in the ring and
            // the chunk's own start are dropped.
            self.dropped += (self.tail.len() + data.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - self.tail_cap..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..overflow);
        self.dropped += overflow as u64;
        self.tail.extend(data);
    }

    /// Bytes that were written but not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept log: head, a `[... N bytes dropped ...]` line if anything was
    /// dropped, then the tail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 64);
        out.extend_from_slice(&self.head);
        if self.dropped > 0 {
            if !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(format!("[... {} bytes dropped ...]\n", self.dropped).as_bytes());
        }
        out.extend(self.tail.iter());
        out
    }
}

/// Reads `reader` to its end (or first error) into a [`CappedLog`].
pub async fn capture<R: AsyncRead + Unpin>(mut reader: R, mut log: CappedLog) -> CappedLog {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => log.push(&buf[..n]),
            Err(e) => {
                tracing::warn!(error = %e, "reading the guest console failed");
                break;
            }
        }
    }
    log
}

/// Like [`capture`], but stops early when `cut` fires: then it takes what
/// the pipe holds at that moment, without waiting for its end. The guest
/// flushes its console before it posts its result, so once the result has
/// arrived everything it logged is already in the pipe; cutting there lets
/// the caller answer without waiting for QEMU to exit. `notes` are the
/// host's own lines for the log (egress refusals), written with the
/// kernel's prefix between the guest's lines.
pub async fn capture_until<R: AsyncRead + AsFd + Unpin>(
    mut reader: R,
    mut log: CappedLog,
    mut cut: oneshot::Receiver<()>,
    mut notes: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> CappedLog {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cut_armed = true;
    let mut notes_open = true;
    // The host's own lines wait for the guest's line to end, so that they
    // never split one.
    let mut waiting: Vec<String> = Vec::new();
    let mut at_line_start = true;
    loop {
        if at_line_start {
            for note in waiting.drain(..) {
                log.push(format!("{KERNEL_PREFIX}{note}\n").as_bytes());
            }
        }
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    log.push(&buf[..n]);
                    at_line_start = buf[n - 1] == b'\n';
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the guest console failed");
                    break;
                }
            },
            note = notes.recv(), if notes_open => match note {
                Some(note) => waiting.push(note),
                None => notes_open = false,
            },
            fired = &mut cut, if cut_armed => {
                if fired.is_err() {
                    // No cut will come: read to the end.
                    cut_armed = false;
                    continue;
                }
                drain_now(reader.as_fd(), &mut buf, &mut log);
                break;
            }
        }
    }
    while let Ok(note) = notes.try_recv() {
        waiting.push(note);
    }
    if !waiting.is_empty() && !at_line_start {
        log.push(b"\n");
    }
    for note in waiting {
        log.push(format!("{KERNEL_PREFIX}{note}\n").as_bytes());
    }
    log
}

/// Reads whatever `fd` (non-blocking) holds right now.
fn drain_now(fd: BorrowedFd<'_>, buf: &mut [u8], log: &mut CappedLog) {
    loop {
        match crate::sys::read(fd, buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => log.push(&buf[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_logs_are_kept_whole() {
        let mut log = CappedLog::new(4, 8);
        log.push(b"hello ");
        log.push(b"world");
        assert_eq!(log.to_bytes(), b"hello world");
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn the_middle_is_dropped_and_marked() {
        let mut log = CappedLog::new(4, 8);
        log.push(b"abcd");
        for chunk in [&b"0123"[..], b"456789", b"XYZ"] {
            log.push(chunk);
        }
        // 13 bytes after the head, 8 kept.
        assert_eq!(log.dropped(), 5);
        assert_eq!(
            log.to_bytes(),
            b"abcd\n[... 5 bytes dropped ...]\n56789XYZ".to_vec()[..]
        );
    }

    #[test]
    fn one_huge_chunk_keeps_only_its_end() {
        let mut log = CappedLog::new(2, 3);
        log.push(b"ab");
        log.push(b"c");
        log.push(b"0123456789");
        assert_eq!(log.dropped(), 8);
        assert_eq!(
            log.to_bytes(),
            b"ab\n[... 8 bytes dropped ...]\n789".to_vec()[..]
        );
    }

    #[test]
    fn a_flood_stays_within_the_cap() {
        let mut log = CappedLog::default();
        let chunk = vec![b'x'; 65536];
        for _ in 0..320 {
            log.push(&chunk);
        }
        let bytes = log.to_bytes();
        assert!(bytes.len() <= MAX_KEPT_BYTES + 64);
        assert_eq!(log.dropped(), 320 * 65536 - MAX_KEPT_BYTES as u64);
    }

    #[tokio::test]
    async fn capture_reads_to_the_end() {
        let data: &[u8] = b"line 1\nline 2\n";
        let log = capture(data, CappedLog::default()).await;
        assert_eq!(log.to_bytes(), data);
    }
}
