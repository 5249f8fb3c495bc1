//! IPv4/UDP datagrams built whole, for the lab's attack tools that send
//! through a raw socket with a source address of their choosing (inside
//! the namespaces a test made). The one place besides [`crate::analyze`]
//! that knows the IP and UDP wire formats, so both use the same crate.

use std::net::SocketAddrV4;

/// The IPv4 header, the UDP header and `payload`, with both checksums,
/// from `src` to `dst` with time-to-live `ttl`.
///
/// # Errors
/// The payload does not fit in one IPv4 datagram.
pub fn ipv4_udp(
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ttl: u8,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let builder = etherparse::PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), ttl)
        .udp(src.port(), dst.port());
    let mut buf = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut buf, payload)
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_datagram_parses_back_with_its_addresses_and_payload() {
        let src: SocketAddrV4 = "198.18.0.9:123".parse().expect("address");
        let dst: SocketAddrV4 = "224.0.1.1:123".parse().expect("address");
        let bytes = ipv4_udp(src, dst, 1, b"hello").expect("fits");
        let p = etherparse::SlicedPacket::from_ip(&bytes).expect("parses");
        match p.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                assert_eq!(ip.header().source(), src.ip().octets());
                assert_eq!(ip.header().destination(), dst.ip().octets());
                assert_eq!(ip.header().ttl(), 1);
            }
            other => panic!("not IPv4: {other:?}"),
        }
        match p.transport {
            Some(etherparse::TransportSlice::Udp(u)) => {
                assert_eq!(u.source_port(), 123);
                assert_eq!(u.payload(), b"hello");
            }
            other => panic!("not UDP: {other:?}"),
        }
    }
}
