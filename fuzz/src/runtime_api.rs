//! The runtime API as a hostile guest sees it: whatever bytes arrive on
//! whichever of its connections, in whatever order it reads the answers,
//! the host holds a bounded amount and never panics.

use std::time::Instant;

use mayfly_vm::runtime_api::{Connection, Now, MAX_BODY_BYTES_IN_FLIGHT};

const EVENT: &[u8] = br#"{"key":"value"}"#;
/// Connections the guest juggles (the network allows a few at once).
const CONNECTIONS: usize = 3;
/// What one answer may be beyond the event itself: a status line and
/// headers.
const ANSWER_HEAD_BYTES: usize = 4096;

fn now() -> Now {
    Now {
        instant: Instant::now(),
        epoch_ms: 1_700_000_000_000,
    }
}

/// Sends everything a connection has to send; returns how many bytes.
fn drain(conn: &mut Connection) -> usize {
    let mut total = 0;
    loop {
        let n = conn.pending_output().len();
        if n == 0 {
            return total;
        }
        total += n;
        conn.consume_output(n);
    }
}

/// The input is a script of steps `[op, len_lo, len_hi, data...]`: `op`
/// picks a connection and an action (send it `len` bytes, read its
/// answers, resume it, or close it and open a new one), as the VM's
/// network would drive it: input only while the connection wants it.
#[test]
fn runtime_api_script() {
    bolero::check!().for_each(|input: &[u8]| {
        let mut api = crate::guest::runtime_api(EVENT);
        let mut conns: Vec<Connection> = (0..CONNECTIONS).map(|_| Connection::new()).collect();
        let mut rest = input;
        while let [op, lo, hi, tail @ ..] = rest {
            let len = usize::from(u16::from_le_bytes([*lo, *hi])).min(tail.len());
            let (data, after) = tail.split_at(len);
            rest = after;
            let i = usize::from(op >> 2) % CONNECTIONS;
            match op % 4 {
                0 => {
                    if conns[i].wants_input() && !conns[i].should_close() {
                        conns[i].receive(&mut api, data, now());
                    }
                }
                1 => {
                    let sent = drain(&mut conns[i]);
                    // One answer at a time: never more than the event and
                    // a head, however many requests were sent.
                    assert!(
                        sent <= EVENT.len() + ANSWER_HEAD_BYTES,
                        "{sent} bytes buffered for one connection"
                    );
                    let _ = conns[i].resume(&mut api, now());
                }
                2 => {
                    let _ = conns[i].resume(&mut api, now());
                }
                _ => {
                    conns[i].release(&mut api);
                    conns[i] = Connection::new();
                }
            }
            assert!(api.body_bytes_in_flight() <= MAX_BODY_BYTES_IN_FLIGHT);
            let _ = api.take_events();
        }
    });
}
