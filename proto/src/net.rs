//! The VM's private network: one Ethernet link whose only other end is the
//! supervisor. These are the defaults [`BootConfig::new`] hands the guest,
//! and the addresses the host side takes.
//!
//! ```
//! use mayfly_proto::{boot::BootConfig, net};
//! let config = BootConfig::new("echo", 128);
//! assert_eq!((config.guest_ip, config.host_ip), (net::GUEST_IP, net::HOST_IP));
//! assert_eq!(config.api_port, net::API_PORT);
//! ```
//!
//! [`BootConfig::new`]: crate::boot::BootConfig::new

/// MAC address of the guest's virtio-net card (locally administered:
/// `02:4d:46` is "MF").
pub const GUEST_MAC: [u8; 6] = [0x02, 0x4d, 0x46, 0x00, 0x00, 0x02];
/// MAC address of the host side of the link.
pub const HOST_MAC: [u8; 6] = [0x02, 0x4d, 0x46, 0x00, 0x00, 0x01];
/// The guest's IPv4 address.
pub const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
/// The host side's IPv4 address: where the runtime API listens.
pub const HOST_IP: [u8; 4] = [10, 0, 2, 2];
/// Prefix length of the private network (10.0.2.0/24).
pub const PREFIX_LEN: u8 = 24;
/// TCP port of the Lambda Runtime API at [`HOST_IP`].
pub const API_PORT: u16 = 9001;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_share_one_subnet_and_differ() {
        let mask = u32::MAX << (32 - u32::from(PREFIX_LEN));
        let guest = u32::from_be_bytes(GUEST_IP);
        let host = u32::from_be_bytes(HOST_IP);
        assert_eq!(guest & mask, host & mask);
        assert_ne!(guest, host);
        assert_ne!(GUEST_MAC, HOST_MAC);
        // Unicast and locally administered.
        for mac in [GUEST_MAC, HOST_MAC] {
            assert_eq!(mac[0] & 0b11, 0b10);
        }
    }
}
