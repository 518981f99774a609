//! A blocking TCP client for native functions: connections beyond the
//! runtime API, which the host relays when the function's egress policy
//! allows them (`mayfly serve --egress`, the `mayfly:egress` tag) and
//! refuses otherwise. The host's own loopback services are at its address
//! on the VM's network, [`HOST`] (`host.mayfly.internal`).
//!
//! ```ignore
//! use mayfly_kernel::tcp::{TcpStream, HOST};
//! let mut stream = TcpStream::connect(HOST, 8080)?;
//! stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
//! let mut response = Vec::new();
//! stream.read_to_end(&mut response)?;
//! ```

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, Ordering};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, Ipv4Address};

use crate::arch;
use crate::net::Connection;
use crate::runtime::CLIENT;
use crate::sdk::Error;

/// The host's address on the VM's network: its loopback services, as
/// `host.mayfly.internal`.
pub const HOST: [u8; 4] = mayfly_proto::net::HOST_IP;
/// The error type of a failed connection (a handler may pass it on).
pub const ERROR_TYPE: &str = "Mayfly.TcpError";
/// Each connection's buffers, each way.
const BUFFER_BYTES: usize = 32 * 1024;

/// Connections opened so far: the next local port.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

fn error(message: impl Into<alloc::string::String>) -> Error {
    Error::new(ERROR_TYPE, message)
}

fn with_conn<R>(f: impl FnOnce(&mut Connection) -> R) -> Result<R, Error> {
    CLIENT
        .with(|client| client.as_mut().map(|c| f(&mut c.conn)))
        .flatten()
        .ok_or_else(|| error("the network is not up (or in use)"))
}

/// A TCP connection, closed when dropped.
#[derive(Debug)]
pub struct TcpStream {
    handle: SocketHandle,
    remote: ([u8; 4], u16),
}

impl TcpStream {
    /// Connects to `address`:`port`, waiting until the connection is
    /// established; an error if it is refused (by the policy or the
    /// destination) or reset.
    pub fn connect(address: [u8; 4], port: u16) -> Result<TcpStream, Error> {
        let remote = (IpAddress::Ipv4(Ipv4Address::from(address)), port);
        // 30000..50000, round and round (below the runtime API's ports).
        let local = 30_000 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % 20_000;
        let handle = with_conn(|conn| conn.open_to(remote, local, BUFFER_BYTES))?
            .map_err(|_| error(format!("cannot connect to {}:{port}", show(address))))?;
        let stream = TcpStream {
            handle,
            remote: (address, port),
        };
        loop {
            let state = stream.with_socket(|s| s.state())?;
            match state {
                tcp::State::Established => return Ok(stream),
                tcp::State::SynSent | tcp::State::SynReceived => arch::pause(),
                _ => {
                    return Err(error(format!(
                        "connection to {}:{port} refused",
                        show(address)
                    )))
                }
            }
        }
    }

    /// Runs the network once and `f` on this connection's socket.
    fn with_socket<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> Result<R, Error> {
        with_conn(|conn| {
            conn.poll();
            f(conn.extra(self.handle))
        })
    }

    fn closed(&self) -> Error {
        error(format!(
            "the connection to {}:{} was closed",
            show(self.remote.0),
            self.remote.1
        ))
    }

    /// Sends all of `data`.
    pub fn write_all(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            let sent = self.with_socket(|s| {
                if !s.may_send() {
                    return None;
                }
                s.send_slice(data).ok()
            })?;
            match sent {
                None => return Err(self.closed()),
                Some(0) => arch::pause(),
                Some(n) => data = &data[n..],
            }
        }
        Ok(())
    }

    /// Appends what has arrived to `out`, waiting for at least one byte;
    /// 0 once the other side has closed.
    pub fn read(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        loop {
            let got = self.with_socket(|s| {
                if s.can_recv() {
                    return s
                        .recv(|data| {
                            out.extend_from_slice(data);
                            (data.len(), data.len())
                        })
                        .ok();
                }
                if !s.may_recv() {
                    return Some(0);
                }
                None
            })?;
            match got {
                Some(n) => return Ok(n),
                None => arch::pause(),
            }
        }
    }

    /// Reads until the other side closes; how many bytes.
    pub fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        let start = out.len();
        while self.read(out)? > 0 {}
        Ok(out.len() - start)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let _ = with_conn(|conn| {
            conn.extra(self.handle).close();
            // The FIN goes out before the socket is forgotten.
            conn.poll();
            conn.remove_extra(self.handle);
        });
    }
}

fn show(a: [u8; 4]) -> alloc::string::String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}
