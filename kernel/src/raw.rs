//! Raw access to the VM's network, for test images that play a hostile
//! guest (`images/hostile`): bytes on the runtime-API connection that the
//! SDK would never send, more connections, bare Ethernet frames. Nothing
//! here is needed by an honest function, and nothing here changes what the
//! SDK does; a function that uses it is on its own, and the host may end
//! its invocation at any moment.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use smoltcp::iface::SocketHandle;

use crate::net::Connection;
use crate::runtime::CLIENT;
use crate::{arch, clock};

/// Why a raw operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawError(&'static str);

impl fmt::Display for RawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

const NOT_UP: RawError = RawError("the runtime client is not up (or in use)");
const CLOSED: RawError = RawError("the runtime API closed the connection");

fn with_conn<R>(f: impl FnOnce(&mut Connection) -> R) -> Result<R, RawError> {
    CLIENT
        .with(|client| client.as_mut().map(|c| f(&mut c.conn)))
        .flatten()
        .ok_or(NOT_UP)
}

/// `address:port` of the runtime API, for a `Host` header.
pub fn host() -> Result<String, RawError> {
    CLIENT
        .with(|client| client.as_ref().map(|c| c.host.clone()))
        .flatten()
        .ok_or(NOT_UP)
}

/// The VM's MAC address.
pub fn mac() -> Result<[u8; 6], RawError> {
    with_conn(|conn| conn.mac())
}

/// Runs the network stack once.
pub fn poll() {
    let _ = with_conn(|conn| conn.poll());
}

/// Keeps the network going for `ms` milliseconds.
pub fn wait_ms(ms: u64) {
    let until = clock::millis() + ms;
    while clock::millis() < until {
        poll();
        arch::pause();
    }
}

/// Sends all of `data` on the runtime-API connection and reads nothing:
/// it waits, without end, for as long as the host does not take it.
pub fn send_all(mut data: &[u8]) -> Result<(), RawError> {
    while !data.is_empty() {
        let sent = with_conn(|conn| conn.try_send(data))?.map_err(|_| CLOSED)?;
        data = &data[sent..];
        if sent == 0 {
            arch::pause();
        }
    }
    Ok(())
}

/// Appends what has arrived on the runtime-API connection to `out`,
/// waiting for at least one byte.
pub fn receive_some(out: &mut Vec<u8>) -> Result<usize, RawError> {
    with_conn(|conn| conn.receive_some(out))?.map_err(|_| CLOSED)
}

/// Another TCP connection to the runtime API.
#[derive(Debug)]
pub struct RawSocket(SocketHandle);

/// Opens another connection to the runtime API from `local_port`, without
/// waiting for it to be established.
pub fn connect(local_port: u16) -> Result<RawSocket, RawError> {
    with_conn(|conn| conn.open_extra(local_port))?
        .map(RawSocket)
        .map_err(|_| RawError("cannot open another connection"))
}

impl RawSocket {
    /// Whether the connection is established.
    pub fn is_established(&self) -> bool {
        with_conn(|conn| conn.extra(self.0).may_send()).unwrap_or(false)
    }

    /// Whether the connection is over (refused, reset or closed).
    pub fn is_closed(&self) -> bool {
        with_conn(|conn| !conn.extra(self.0).is_open()).unwrap_or(true)
    }

    /// Resets the connection and forgets it.
    pub fn abort(self) {
        let _ = with_conn(|conn| {
            conn.extra(self.0).abort();
            // The reset goes out before the socket is dropped.
            conn.poll();
            conn.remove_extra(self.0);
        });
    }
}

/// Sends one Ethernet frame past the TCP/IP stack; false if the card had
/// no room for it.
pub fn send_frame(frame: &[u8]) -> bool {
    with_conn(|conn| conn.send_frame(frame)).unwrap_or(false)
}
