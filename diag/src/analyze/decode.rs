//! From a captured frame to its UDP datagram: link layer (Ethernet with
//! 802.1Q/802.1ad tags, Linux cooked SLL and SLL2, raw IP, BSD loopback),
//! IPv4 and IPv6 (fragments recognised, not reassembled), UDP. The header
//! parsing is etherparse's; this module only picks the entry point per
//! link type and sorts the outcome.

use std::net::IpAddr;

use etherparse::{
    EtherType, Ipv6ExtensionSlice, NetSlice, SlicedPacket, TransportSlice, UdpSlice,
    err::packet::SliceError,
};

/// Link types (tcpdump.org/linktypes.html) this module reads.
pub mod link_type {
    /// BSD loopback: a 4-byte address family in host byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II, with or without VLAN tags.
    pub const ETHERNET: u32 = 1;
    /// Raw IP, as some systems number it in pcap files.
    pub const RAW_12: u32 = 12;
    /// Raw IP (OpenBSD's number).
    pub const RAW_14: u32 = 14;
    /// Raw IPv4 or IPv6.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1 (`tcpdump -i any -y LINUX_SLL`).
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2 (`tcpdump -i any`, libpcap 1.10 and later).
    pub const LINUX_SLL2: u32 = 276;
}

/// The name of a link type, for the report.
pub fn link_type_name(link_type: u32) -> String {
    match link_type {
        link_type::NULL => "BSD loopback".into(),
        link_type::ETHERNET => "Ethernet".into(),
        link_type::RAW_12 | link_type::RAW_14 | link_type::RAW => "raw IP".into(),
        link_type::LOOP => "OpenBSD loopback".into(),
        link_type::LINUX_SLL => "Linux cooked (SLL)".into(),
        link_type::IPV4 => "raw IPv4".into(),
        link_type::IPV6 => "raw IPv6".into(),
        link_type::LINUX_SLL2 => "Linux cooked v2 (SLL2)".into(),
        other => format!("link type {other}"),
    }
}

/// A UDP datagram found in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Udp<'a> {
    /// IP source.
    pub src: IpAddr,
    /// IP destination.
    pub dst: IpAddr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Length of the whole IP packet (header, extensions, UDP header and
    /// payload) as its header states it: the "bytes" of the report.
    pub ip_len: usize,
    /// The UDP payload.
    pub payload: &'a [u8],
}

/// What a frame turned out to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole UDP datagram.
    Udp(Udp<'a>),
    /// The first fragment of a fragmented UDP datagram: its ports are
    /// known, its payload is incomplete (`payload` holds what this fragment
    /// carries). Fragments are not reassembled.
    FirstFragment(Udp<'a>),
    /// A later IP fragment: no UDP header, so its ports are unknown.
    LaterFragment,
    /// An IP packet that is not UDP, or a non-IP frame (ARP, LLDP ...).
    NotUdp,
    /// A link type this module does not read.
    UnsupportedLinkType,
    /// Headers that do not parse (truncated capture, garbage).
    Undecodable(String),
}

/// Decodes one captured frame of link type `link_type`.
pub fn decode(link_type: u32, frame: &[u8]) -> Decoded<'_> {
    let sliced = match link_type {
        link_type::ETHERNET => SlicedPacket::from_ethernet(frame),
        link_type::LINUX_SLL => match cooked(frame, 14, 16) {
            Ok((ether_type, rest)) => SlicedPacket::from_ether_type(ether_type, rest),
            Err(e) => return e,
        },
        link_type::LINUX_SLL2 => match cooked(frame, 0, 20) {
            Ok((ether_type, rest)) => SlicedPacket::from_ether_type(ether_type, rest),
            Err(e) => return e,
        },
        link_type::RAW_12 | link_type::RAW_14 | link_type::RAW => SlicedPacket::from_ip(frame),
        link_type::IPV4 => SlicedPacket::from_ether_type(EtherType::IPV4, frame),
        link_type::IPV6 => SlicedPacket::from_ether_type(EtherType::IPV6, frame),
        link_type::NULL | link_type::LOOP => match frame.get(4..) {
            // The family word is in the writer's byte order (NULL) or
            // network order (LOOP), and IPv6 has three BSD values: the IP
            // version nibble says the same thing more simply.
            Some(rest) => SlicedPacket::from_ip(rest),
            None => return Decoded::Undecodable("frame shorter than its loopback header".into()),
        },
        _ => return Decoded::UnsupportedLinkType,
    };
    match sliced {
        Ok(p) => classify(&p),
        Err(e) => Decoded::Undecodable(describe(&e)),
    }
}

/// The protocol field at `at` and the packet after a cooked header of
/// `header_len` bytes.
fn cooked(frame: &[u8], at: usize, header_len: usize) -> Result<(EtherType, &[u8]), Decoded<'_>> {
    let proto = frame
        .get(at..at + 2)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_be_bytes);
    match (proto, frame.get(header_len..)) {
        (Some(p), Some(rest)) => Ok((EtherType(p), rest)),
        _ => Err(Decoded::Undecodable(format!(
            "frame of {} bytes is shorter than its {header_len}-byte cooked header",
            frame.len()
        ))),
    }
}

fn describe(e: &SliceError) -> String {
    e.to_string()
}

fn classify<'a>(p: &SlicedPacket<'a>) -> Decoded<'a> {
    let Some(net) = &p.net else {
        return Decoded::NotUdp;
    };
    let (src, dst, ip_len, payload) = match net {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            let ip_len = usize::from(h.total_len());
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                ip_len,
                v4.payload(),
            )
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                40 + usize::from(h.payload_length()),
                v6.payload(),
            )
        }
        NetSlice::Arp(_) => return Decoded::NotUdp,
    };
    if payload.ip_number != etherparse::IpNumber::UDP {
        return if payload.fragmented && !is_first_fragment(net) {
            Decoded::LaterFragment
        } else {
            Decoded::NotUdp
        };
    }
    if payload.fragmented {
        if !is_first_fragment(net) {
            return Decoded::LaterFragment;
        }
        // The first fragment starts with the UDP header; its length field
        // speaks of the whole datagram, so read it laxly.
        return match UdpSlice::from_slice_lax(payload.payload) {
            Ok(udp) => Decoded::FirstFragment(Udp {
                src,
                dst,
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                ip_len,
                payload: udp.payload(),
            }),
            Err(e) => Decoded::Undecodable(e.to_string()),
        };
    }
    match &p.transport {
        Some(TransportSlice::Udp(udp)) => Decoded::Udp(Udp {
            src,
            dst,
            src_port: udp.source_port(),
            dst_port: udp.destination_port(),
            ip_len,
            payload: udp.payload(),
        }),
        _ => Decoded::Undecodable("UDP header missing".into()),
    }
}

/// Whether a fragmented packet is the first fragment (offset 0).
fn is_first_fragment(net: &NetSlice<'_>) -> bool {
    match net {
        NetSlice::Ipv4(v4) => v4.header().fragments_offset().value() == 0,
        NetSlice::Ipv6(v6) => v6.extensions().clone().into_iter().all(|ext| match ext {
            Ipv6ExtensionSlice::Fragment(f) => f.fragment_offset().value() == 0,
            _ => true,
        }),
        NetSlice::Arp(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const PAYLOAD: [u8; 48] = [0x23; 48];

    fn v4_udp(builder: etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Vec<u8> {
        let b = builder.udp(40000, 123);
        let mut out = Vec::with_capacity(b.size(PAYLOAD.len()));
        b.write(&mut out, &PAYLOAD).unwrap();
        out
    }

    fn expect_udp(d: Decoded<'_>, src: IpAddr, dst: IpAddr) {
        match d {
            Decoded::Udp(u) => {
                assert_eq!((u.src, u.dst), (src, dst));
                assert_eq!((u.src_port, u.dst_port), (40000, 123));
                assert_eq!(u.payload, &PAYLOAD[..]);
            }
            other => panic!("expected a UDP datagram, got {other:?}"),
        }
    }

    const A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn ethernet_ipv4_udp() {
        let frame =
            v4_udp(PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(A.octets(), B.octets(), 1));
        let d = decode(link_type::ETHERNET, &frame);
        if let Decoded::Udp(u) = &d {
            assert_eq!(
                u.ip_len,
                20 + 8 + 48,
                "IP bytes count header, UDP and payload"
            );
        }
        expect_udp(d, A.into(), B.into());
    }

    #[test]
    fn ethernet_vlan_ipv6_udp() {
        let (s6, d6) = (
            Ipv6Addr::new(0xfd00, 0x198, 0x18, 1, 0, 0, 0, 1),
            Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x101),
        );
        let frame = v4_udp(
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .single_vlan(etherparse::VlanId::try_new(42).unwrap())
                .ipv6(s6.octets(), d6.octets(), 1),
        );
        expect_udp(decode(link_type::ETHERNET, &frame), s6.into(), d6.into());
    }

    #[test]
    fn cooked_v1_and_v2_and_raw() {
        let ip = v4_udp(PacketBuilder::ipv4(A.octets(), B.octets(), 64));
        let mut sll = vec![0, 4, 0, 1, 0, 6, 2, 0, 0xc6, 0, 0, 1, 0, 0, 0x08, 0x00];
        sll.extend(&ip);
        expect_udp(decode(link_type::LINUX_SLL, &sll), A.into(), B.into());
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0xc6, 0, 0, 1, 0, 0,
        ];
        sll2.extend(&ip);
        expect_udp(decode(link_type::LINUX_SLL2, &sll2), A.into(), B.into());
        expect_udp(decode(link_type::RAW, &ip), A.into(), B.into());
        expect_udp(decode(link_type::IPV4, &ip), A.into(), B.into());
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend(&ip);
        expect_udp(decode(link_type::NULL, &null), A.into(), B.into());
    }

    #[test]
    fn fragments_are_told_apart() {
        let ip = v4_udp(PacketBuilder::ipv4(A.octets(), B.octets(), 64));
        // First fragment: set MF (flags byte 6, bit 0x20).
        let mut first = ip.clone();
        first[6] |= 0x20;
        fix_v4_checksum(&mut first);
        match decode(link_type::RAW, &first) {
            Decoded::FirstFragment(u) => assert_eq!((u.src_port, u.dst_port), (40000, 123)),
            other => panic!("expected a first fragment, got {other:?}"),
        }
        // A later fragment: offset 185 (x8 bytes), no UDP header.
        let mut later = ip;
        later[6] = 0;
        later[7] = 185;
        fix_v4_checksum(&mut later);
        assert_eq!(decode(link_type::RAW, &later), Decoded::LaterFragment);
    }

    fn fix_v4_checksum(p: &mut [u8]) {
        p[10] = 0;
        p[11] = 0;
        let h = etherparse::Ipv4HeaderSlice::from_slice(p)
            .unwrap()
            .to_header();
        let c = h.calc_header_checksum();
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }

    #[test]
    fn garbage_and_other_protocols_never_panic() {
        assert_eq!(decode(9999, &[1, 2, 3]), Decoded::UnsupportedLinkType);
        assert!(matches!(
            decode(link_type::ETHERNET, &[0; 10]),
            Decoded::Undecodable(_)
        ));
        assert!(matches!(
            decode(link_type::LINUX_SLL2, &[8, 0, 1]),
            Decoded::Undecodable(_)
        ));
        // ARP over Ethernet.
        let mut arp = vec![0xff; 6];
        arp.extend([2; 6]);
        arp.extend([0x08, 0x06]);
        arp.extend([0; 28]);
        assert!(matches!(
            decode(link_type::ETHERNET, &arp),
            Decoded::NotUdp | Decoded::Undecodable(_)
        ));
        // Every prefix of a good frame decodes to something.
        let frame =
            v4_udp(PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(A.octets(), B.octets(), 1));
        for n in 0..frame.len() {
            let _ = decode(link_type::ETHERNET, &frame[..n]);
        }
    }
}
