//! The guest's network: virtio-net under smoltcp, and one TCP connection to
//! the runtime API, driven by polling (the guest has no interrupts and
//! nothing else to do while it waits).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address};
use virtio_drivers::device::net::{RxBuffer, VirtIONet};
use virtio_drivers::transport::mmio::MmioTransport;

use crate::virtio::KernelHal;
use crate::{arch, clock};

/// Descriptors per virtqueue.
const QUEUE_SIZE: usize = 32;
/// Receive buffer size: a full Ethernet frame plus the virtio-net header.
const RX_BUFFER_BYTES: usize = 2048;
/// TCP buffers: a 64 KiB window keeps a 6 MB payload streaming on a link
/// whose round trip is well under a millisecond, and costs little to zero
/// at boot.
pub(crate) const TCP_BUFFER_BYTES: usize = 64 * 1024;
/// First local port; varied by the clock so a restarted guest never reuses
/// the previous connection's 4-tuple.
const LOCAL_PORT_BASE: u16 = 49152;

type Nic = VirtIONet<KernelHal, MmioTransport<'static>, QUEUE_SIZE>;

/// Why the network failed.
#[derive(Debug)]
pub enum NetError {
    /// The virtio-net device could not be initialised.
    Device,
    /// The connection to the runtime API could not be opened.
    Connect,
    /// The runtime API closed the connection.
    Closed,
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            NetError::Device => "the virtio-net device could not be initialised",
            NetError::Connect => "the connection to the runtime API was refused",
            NetError::Closed => "the runtime API closed the connection",
        })
    }
}

/// smoltcp's view of the virtio-net card.
pub(crate) struct VirtioPhy {
    nic: RefCell<Nic>,
}

pub(crate) struct RxToken<'a> {
    nic: &'a RefCell<Nic>,
    buffer: RxBuffer,
}

pub(crate) struct TxToken<'a> {
    nic: &'a RefCell<Nic>,
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let result = f(self.buffer.packet());
        // A buffer that cannot be recycled shrinks the ring by one; the
        // connection still works with the rest.
        let _ = self.nic.borrow_mut().recycle_rx_buffer(self.buffer);
        result
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut nic = self.nic.borrow_mut();
        let mut buffer = nic.new_tx_buffer(len);
        let result = f(buffer.packet_mut());
        // A lost frame is retransmitted by TCP.
        let _ = nic.send(buffer);
        result
    }
}

impl Device for VirtioPhy {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let buffer = {
            let mut nic = self.nic.borrow_mut();
            if !nic.can_recv() {
                return None;
            }
            nic.receive().ok()?
        };
        Some((
            RxToken {
                nic: &self.nic,
                buffer,
            },
            TxToken { nic: &self.nic },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.nic.borrow().can_send() {
            Some(TxToken { nic: &self.nic })
        } else {
            None
        }
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.max_transmission_unit = 1514;
        caps.max_burst_size = Some(QUEUE_SIZE / 2);
        caps.medium = Medium::Ethernet;
        caps
    }
}

/// smoltcp's clock: the TSC.
pub(crate) fn now() -> Instant {
    Instant::from_micros(clock::micros() as i64)
}

/// Brings the card up under smoltcp with the host-given address.
pub(crate) fn bring_up(
    transport: MmioTransport<'static>,
    mac: [u8; 6],
    ip: [u8; 4],
    prefix_len: u8,
) -> Result<(VirtioPhy, Interface), NetError> {
    let nic = Nic::new(transport, RX_BUFFER_BYTES).map_err(|_| NetError::Device)?;
    let mut phy = VirtioPhy {
        nic: RefCell::new(nic),
    };
    let mut config = Config::new(EthernetAddress(mac).into());
    config.random_seed = arch::rdtsc();
    let mut iface = Interface::new(config, &mut phy, now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(
            IpAddress::Ipv4(Ipv4Address::from(ip)),
            prefix_len,
        ));
    });
    Ok((phy, iface))
}

/// A TCP connection to the runtime API over the VM's only network card.
pub struct Connection {
    phy: VirtioPhy,
    iface: Interface,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    /// The runtime API's address, for [`raw`](crate::raw) connections.
    remote: (IpAddress, u16),
}

impl Connection {
    /// Brings the card up with the host-given addresses and connects to
    /// `host:port`.
    pub fn open(
        transport: MmioTransport<'static>,
        mac: [u8; 6],
        ip: [u8; 4],
        prefix_len: u8,
        host: [u8; 4],
        port: u16,
    ) -> Result<Connection, NetError> {
        let (phy, mut iface) = bring_up(transport, mac, ip, prefix_len)?;
        // Other networks through the host (egress, under its policy).
        let _ = iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::from(host));
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
        );
        // Delayed ACKs and Nagle each cost a round of waiting on a
        // request/response exchange: off.
        socket.set_ack_delay(None);
        socket.set_nagle_enabled(false);
        let local_port = LOCAL_PORT_BASE + (arch::rdtsc() % 8192) as u16;
        socket
            .connect(
                iface.context(),
                (IpAddress::Ipv4(Ipv4Address::from(host)), port),
                local_port,
            )
            .map_err(|_| NetError::Connect)?;
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        let mut conn = Connection {
            phy,
            iface,
            sockets,
            handle,
            remote: (IpAddress::Ipv4(Ipv4Address::from(host)), port),
        };
        conn.wait(|s| s.may_send() || !s.is_open());
        if !conn.socket().may_send() {
            return Err(NetError::Connect);
        }
        Ok(conn)
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }

    /// Runs the stack once: frames in and out, timers.
    pub(crate) fn poll(&mut self) {
        self.iface.poll(now(), &mut self.phy, &mut self.sockets);
    }

    /// Polls until `done` holds for the socket.
    fn wait(&mut self, mut done: impl FnMut(&tcp::Socket<'static>) -> bool) {
        loop {
            self.poll();
            if done(self.sockets.get::<tcp::Socket>(self.handle)) {
                return;
            }
            arch::pause();
        }
    }

    /// Sends all of `data`.
    pub fn send_all(&mut self, mut data: &[u8]) -> Result<(), NetError> {
        while !data.is_empty() {
            let socket = self.socket();
            if !socket.may_send() {
                return Err(NetError::Closed);
            }
            let sent = socket.send_slice(data).map_err(|_| NetError::Closed)?;
            data = &data[sent..];
            self.poll();
        }
        Ok(())
    }

    /// Appends whatever has arrived to `out`, waiting until at least one
    /// byte has.
    pub fn receive_some(&mut self, out: &mut Vec<u8>) -> Result<usize, NetError> {
        loop {
            self.poll();
            let socket = self.socket();
            if socket.can_recv() {
                let n = socket
                    .recv(|data| {
                        out.extend_from_slice(data);
                        (data.len(), data.len())
                    })
                    .map_err(|_| NetError::Closed)?;
                return Ok(n);
            }
            if !socket.may_recv() {
                return Err(NetError::Closed);
            }
            arch::pause();
        }
    }

    /// Waits until everything sent has been acknowledged, so that powering
    /// off cannot lose the last bytes.
    pub fn drain(&mut self) {
        self.wait(|s| s.send_queue() == 0 || !s.is_open());
    }

    /// Queues what fits of `data` on the runtime-API connection without
    /// waiting; how much it took.
    pub(crate) fn try_send(&mut self, data: &[u8]) -> Result<usize, NetError> {
        self.poll();
        let socket = self.socket();
        if !socket.may_send() {
            return Err(NetError::Closed);
        }
        let sent = socket.send_slice(data).map_err(|_| NetError::Closed)?;
        self.poll();
        Ok(sent)
    }

    /// Opens another connection to the runtime API (small buffers: these
    /// are for [`raw`](crate::raw) use, not payloads), without waiting for
    /// it to be established.
    pub(crate) fn open_extra(&mut self, local_port: u16) -> Result<SocketHandle, NetError> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 2048]),
            tcp::SocketBuffer::new(vec![0; 2048]),
        );
        socket
            .connect(self.iface.context(), self.remote, local_port)
            .map_err(|_| NetError::Connect)?;
        Ok(self.sockets.add(socket))
    }

    /// Opens a connection to `remote` from `local_port` with buffers of
    /// `buffer_bytes` each way, without waiting for it to be established
    /// (the SDK's [`TcpStream`](crate::tcp::TcpStream)).
    pub(crate) fn open_to(
        &mut self,
        remote: (IpAddress, u16),
        local_port: u16,
        buffer_bytes: usize,
    ) -> Result<SocketHandle, NetError> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer_bytes]),
            tcp::SocketBuffer::new(vec![0; buffer_bytes]),
        );
        socket.set_ack_delay(None);
        socket.set_nagle_enabled(false);
        socket
            .connect(self.iface.context(), remote, local_port)
            .map_err(|_| NetError::Connect)?;
        Ok(self.sockets.add(socket))
    }

    /// A socket added by [`open_extra`](Self::open_extra).
    pub(crate) fn extra(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    /// Forgets a socket added by [`open_extra`](Self::open_extra).
    pub(crate) fn remove_extra(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
    }

    /// The card's MAC address.
    pub(crate) fn mac(&self) -> [u8; 6] {
        match self.iface.hardware_addr() {
            smoltcp::wire::HardwareAddress::Ethernet(EthernetAddress(mac)) => mac,
        }
    }

    /// Sends one Ethernet frame as it is, past the TCP/IP stack; false if
    /// the card had no room for it.
    pub(crate) fn send_frame(&mut self, frame: &[u8]) -> bool {
        let mut nic = self.phy.nic.borrow_mut();
        if !nic.can_send() {
            return false;
        }
        let mut buffer = nic.new_tx_buffer(frame.len());
        buffer.packet_mut().copy_from_slice(frame);
        nic.send(buffer).is_ok()
    }
}
