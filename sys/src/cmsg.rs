//! Control messages (`struct cmsghdr` chains), read and written as bytes:
//! the one parser of every message the kernel hands us (receive metadata on
//! ordinary and batched receives, transmit timestamps on the error queue)
//! and the one encoder of the `IP_PKTINFO`/`IPV6_PKTINFO` we send with.
//!
//! Our own code rather than nix's `ControlMessageOwned`: nix parses only the
//! buffer of a `recvmsg` it made itself, and our batched `recvmmsg` (see
//! `ffi`) reuses buffers nix cannot wrap. One parser serves both.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ffi::CmsgSpace;
use crate::msg::RecvMeta;

const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
/// `CMSG_ALIGN`: control messages are aligned to `sizeof(size_t)`.
const ALIGN: usize = std::mem::size_of::<usize>();

fn cmsg_align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// What the control messages of one datagram said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Control {
    /// Header destination (`ipi_addr` / `ipi6_addr`): for multicast, the group.
    pub(crate) dest: Option<IpAddr>,
    /// Arrival interface.
    pub(crate) ifindex: Option<u32>,
    /// `SCM_TIMESTAMPNS`.
    pub(crate) timestampns: Option<SystemTime>,
    /// The software stamp of `SCM_TIMESTAMPING` (receive, or transmit on the
    /// error queue).
    pub(crate) timestamping: Option<SystemTime>,
    /// `ee_data` of a `sock_extended_err` whose origin is
    /// `SO_EE_ORIGIN_TIMESTAMPING`: the `SOF_TIMESTAMPING_OPT_ID` counter.
    pub(crate) timestamp_id: Option<u32>,
}

impl Control {
    /// The receive metadata of a datagram of `len` bytes from `source` with
    /// `msg_flags` `flags`.
    pub(crate) fn meta(&self, len: usize, flags: libc::c_int, source: SocketAddr) -> RecvMeta {
        RecvMeta {
            len,
            truncated: flags & libc::MSG_TRUNC != 0,
            source,
            dest: self.dest,
            ifindex: self.ifindex,
            kernel_rx: self.timestampns.or(self.timestamping),
        }
    }
}

fn ne_u32(data: &[u8], at: usize) -> Option<u32> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
}

fn ne_i32(data: &[u8], at: usize) -> Option<i32> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
}

/// Reads a chain of control messages. Unknown messages are skipped; a
/// truncated or malformed header ends the walk (what was read so far stays).
pub(crate) fn parse(mut buf: &[u8]) -> Control {
    let mut out = Control::default();
    while buf.len() >= HDR {
        let Some(len) = buf
            .get(..ALIGN)
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        let (Some(level), Some(kind)) = (ne_i32(buf, ALIGN), ne_i32(buf, ALIGN + 4)) else {
            break;
        };
        if len < cmsg_align(HDR) || len > buf.len() {
            break;
        }
        let data = buf.get(cmsg_align(HDR)..len).unwrap_or_default();
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= 12 => {
                // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
                out.ifindex = ne_i32(data, 0).and_then(|i| u32::try_from(i).ok());
                let addr: Option<[u8; 4]> = data.get(8..12).and_then(|b| b.try_into().ok());
                out.dest = addr.map(IpAddr::from);
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data.len() >= 20 => {
                // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
                let addr: Option<[u8; 16]> = data.get(..16).and_then(|b| b.try_into().ok());
                out.dest = addr.map(IpAddr::from);
                out.ifindex = ne_u32(data, 16);
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => out.timestampns = timespec(data),
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) => out.timestamping = timespec(data),
            // struct sock_extended_err { u32 ee_errno; u8 ee_origin; u8
            // ee_type; u8 ee_code; u8 ee_pad; u32 ee_info; u32 ee_data; }
            (libc::IPPROTO_IP, libc::IP_RECVERR) | (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
                if data.get(4) == Some(&libc::SO_EE_ORIGIN_TIMESTAMPING) =>
            {
                out.timestamp_id = ne_u32(data, 12);
            }
            _ => {}
        }
        buf = buf.get(cmsg_align(len)..).unwrap_or_default();
    }
    out
}

/// A `struct timespec` (the first one, for `SCM_TIMESTAMPING`) as a time;
/// `None` for zero.
fn timespec(data: &[u8]) -> Option<SystemTime> {
    let field = std::mem::size_of::<libc::time_t>();
    let read = |at: usize| -> Option<i64> {
        let b = data.get(at..at + field)?;
        match field {
            8 => b.try_into().ok().map(i64::from_ne_bytes),
            4 => b.try_into().ok().map(i32::from_ne_bytes).map(i64::from),
            _ => None,
        }
    };
    let (secs, nanos) = (read(0)?, read(field)?);
    if secs == 0 && nanos == 0 {
        return None;
    }
    let d = Duration::new(u64::try_from(secs).ok()?, u32::try_from(nanos).ok()?);
    UNIX_EPOCH.checked_add(d)
}

/// Writes one `IP_PKTINFO` (`ipi_spec_dst` = `ip`, `ipi_ifindex` = `ifindex`)
/// or `IPV6_PKTINFO` (`ipi6_addr` = `ip`, `ipi6_ifindex` = `ifindex`) control
/// message into `space`; returns its `CMSG_SPACE`. `ifindex` 0 lets routing
/// choose the interface.
pub(crate) fn encode_pktinfo(space: &mut CmsgSpace, ip: IpAddr, ifindex: u32) -> usize {
    let mut data = [0u8; 20];
    let data_len = match ip {
        IpAddr::V4(v4) => {
            if let Some(dst) = data.get_mut(..4) {
                dst.copy_from_slice(&ifindex.to_ne_bytes());
            }
            if let Some(dst) = data.get_mut(4..8) {
                dst.copy_from_slice(&v4.octets());
            }
            std::mem::size_of::<libc::in_pktinfo>()
        }
        IpAddr::V6(v6) => {
            if let Some(dst) = data.get_mut(..16) {
                dst.copy_from_slice(&v6.octets());
            }
            if let Some(dst) = data.get_mut(16..20) {
                dst.copy_from_slice(&ifindex.to_ne_bytes());
            }
            std::mem::size_of::<libc::in6_pktinfo>()
        }
    };
    let (level, kind) = if ip.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_PKTINFO)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
    };
    let cmsg_len = cmsg_align(HDR) + data_len;
    let space_len = cmsg_align(cmsg_len);
    let buf = &mut space.0;
    buf.fill(0);
    let len_bytes = cmsg_len.to_ne_bytes();
    let fields = [
        (0, &len_bytes[..]),
        (ALIGN, &level.to_ne_bytes()[..]),
        (ALIGN + 4, &kind.to_ne_bytes()[..]),
        (cmsg_align(HDR), data.get(..data_len).unwrap_or_default()),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    space_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn pktinfo_round_trips_through_the_parser() {
        for ip in [
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0x198, 0x18, 0, 0, 0, 0, 1)),
        ] {
            let mut space = CmsgSpace::new();
            let n = encode_pktinfo(&mut space, ip, 7);
            // CMSG_SPACE on 64-bit Linux: a 16-byte header, data padded to 8.
            let want = if ip.is_ipv4() { 16 + 16 } else { 16 + 24 };
            #[cfg(target_pointer_width = "64")]
            assert_eq!(n, want, "CMSG_SPACE for {ip}");
            let got = parse(space.0.get(..n).unwrap_or_default());
            assert_eq!(got.ifindex, Some(7), "{ip}");
            // The receive side reads ipi_addr (offset 8), the send side
            // writes ipi_spec_dst (offset 4): for IPv4, check the bytes.
            match ip {
                IpAddr::V6(_) => assert_eq!(got.dest, Some(ip)),
                IpAddr::V4(v4) => {
                    assert_eq!(got.dest, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
                    assert_eq!(space.0.get(HDR + 4..HDR + 8), Some(&v4.octets()[..]));
                }
            }
        }
    }

    #[test]
    fn truncated_control_data_is_ignored() {
        let mut space = CmsgSpace::new();
        let n = encode_pktinfo(&mut space, IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        assert_eq!(
            parse(space.0.get(..n - 10).unwrap_or_default()),
            Control::default()
        );
        assert_eq!(parse(&[0xff; 7]), Control::default());
    }

    /// A hand-built error-queue chain: `SCM_TIMESTAMPING` then
    /// `IP_RECVERR` with origin `SO_EE_ORIGIN_TIMESTAMPING` and id 41.
    #[test]
    fn error_queue_timestamp_and_its_id_are_read() {
        let mut chain = Vec::new();
        let mut push = |level: libc::c_int, kind: libc::c_int, data: &[u8]| {
            let len = cmsg_align(HDR) + data.len();
            let mut msg = vec![0u8; cmsg_align(len)];
            msg[..ALIGN].copy_from_slice(&len.to_ne_bytes());
            msg[ALIGN..ALIGN + 4].copy_from_slice(&level.to_ne_bytes());
            msg[ALIGN + 4..ALIGN + 8].copy_from_slice(&kind.to_ne_bytes());
            msg[cmsg_align(HDR)..len].copy_from_slice(data);
            chain.extend_from_slice(&msg);
        };
        let field = std::mem::size_of::<libc::time_t>();
        let mut ts = vec![0u8; 6 * field];
        ts[..field].copy_from_slice(&1_700_000_000i64.to_ne_bytes()[..field]);
        ts[field..2 * field].copy_from_slice(&5i64.to_ne_bytes()[..field]);
        push(libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &ts);
        let mut ee = [0u8; 16];
        ee[4] = libc::SO_EE_ORIGIN_TIMESTAMPING;
        ee[12..16].copy_from_slice(&41u32.to_ne_bytes());
        push(libc::IPPROTO_IP, libc::IP_RECVERR, &ee);
        let got = parse(&chain);
        assert_eq!(got.timestamp_id, Some(41));
        assert_eq!(
            got.timestamping,
            UNIX_EPOCH.checked_add(Duration::new(1_700_000_000, 5))
        );
        assert_eq!(got.timestampns, None);
    }
}
