//! Batches of datagrams for one `recvmmsg(2)` or `sendmmsg(2)` each, with
//! buffers allocated once and reused: a busy responder receives up to
//! [`MAX_BATCH`] requests per system call and answers them with one more,
//! each reply from the address its request was sent to.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use socket2::SockAddr;

use crate::ffi::{self, CmsgSpace, RecvSlot, SendSlot};
use crate::msg::RecvMeta;

/// Most datagrams in one batch.
pub const MAX_BATCH: usize = ffi::MAX_BATCH;

/// Receive buffers for up to `capacity` datagrams, filled by
/// [`crate::UdpEndpoint::recv_batch`].
pub struct RecvBatch {
    slots: Vec<RecvSlot>,
    /// What the kernel said about each datagram, and its slot.
    metas: Vec<(RecvMeta, usize)>,
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.slots.len())
            .field("received", &self.metas.len())
            .finish()
    }
}

impl RecvBatch {
    /// Room for `capacity` datagrams (1..=[`MAX_BATCH`]) of up to
    /// `datagram_size` bytes each; longer ones are cut and flagged
    /// [`RecvMeta::truncated`].
    pub fn new(capacity: usize, datagram_size: usize) -> Self {
        let n = capacity.clamp(1, MAX_BATCH);
        RecvBatch {
            slots: (0..n)
                .map(|_| RecvSlot::new(datagram_size.max(1)))
                .collect(),
            metas: Vec::with_capacity(n),
        }
    }

    /// How many datagrams fit.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Datagrams received by the last call.
    pub fn len(&self) -> usize {
        self.metas.len()
    }

    /// Whether the last call received nothing.
    pub fn is_empty(&self) -> bool {
        self.metas.is_empty()
    }

    /// The datagrams received by the last call, in arrival order: what the
    /// kernel said about each, and its payload.
    pub fn iter(&self) -> impl Iterator<Item = (&RecvMeta, &[u8])> {
        self.metas.iter().map(|(meta, i)| {
            let bytes = self
                .slots
                .get(*i)
                .and_then(|slot| slot.buf.get(..meta.len))
                .unwrap_or_default();
            (meta, bytes)
        })
    }

    /// One non-blocking `recvmmsg`; `WouldBlock` when nothing is queued.
    pub(crate) fn receive(&mut self, sock: &socket2::Socket) -> io::Result<usize> {
        use std::os::fd::AsFd;
        self.metas.clear();
        let n = ffi::recv_mmsg(sock.as_fd(), &mut self.slots)?;
        for (i, slot) in self.slots.iter_mut().enumerate().take(n) {
            // A datagram without an IP source cannot be answered (the
            // kernel never gives one on a UDP socket): left out.
            let Some(source) = slot.source() else {
                continue;
            };
            let control = slot.control.0.get(..slot.controllen).unwrap_or_default();
            let mut meta = RecvMeta {
                len: slot.len,
                truncated: slot.flags & libc::MSG_TRUNC != 0,
                source,
                dest: None,
                ifindex: None,
                kernel_rx: None,
            };
            parse_cmsgs(control, &mut meta);
            self.metas.push((meta, i));
        }
        Ok(self.metas.len())
    }
}

/// Datagrams queued for one [`crate::UdpEndpoint::send_batch`].
pub struct SendBatch {
    slots: Vec<SendSlot>,
    len: usize,
}

impl std::fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendBatch")
            .field("capacity", &self.slots.len())
            .field("queued", &self.len)
            .finish()
    }
}

/// What [`crate::UdpEndpoint::send_batch`] did.
#[derive(Debug, Default)]
pub struct SendOutcome {
    /// Datagrams the kernel accepted.
    pub sent: usize,
    /// Datagrams refused (each skipped, the rest still sent).
    pub failed: usize,
    /// The last refusal's error.
    pub last_error: Option<io::Error>,
}

impl SendBatch {
    /// Room for `capacity` datagrams (1..=[`MAX_BATCH`]).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(1, MAX_BATCH);
        let unspecified = SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0)));
        SendBatch {
            slots: (0..n)
                .map(|_| SendSlot {
                    buf: Vec::with_capacity(128),
                    to: unspecified.clone(),
                    control: CmsgSpace::new(),
                    controllen: 0,
                })
                .collect(),
            len: 0,
        }
    }

    /// How many datagrams fit.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the queued datagrams (their buffers are kept).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The (emptied) payload buffer of the next datagram, to write into
    /// before [`SendBatch::commit`]; `None` when the batch is full.
    pub fn next_payload(&mut self) -> Option<&mut Vec<u8>> {
        let slot = self.slots.get_mut(self.len)?;
        slot.buf.clear();
        Some(&mut slot.buf)
    }

    /// Queues the payload written into [`SendBatch::next_payload`] for
    /// `dest`, leaving from `source_ip` when given (an address of this
    /// host, chosen with `IP_PKTINFO`/`IPV6_PKTINFO` as in
    /// [`crate::UdpEndpoint::send_from`]); otherwise from the socket's
    /// address as routing chooses.
    ///
    /// # Errors
    /// `InvalidInput` when the batch is full or `source_ip` and `dest` are
    /// of different IP families.
    pub fn commit(&mut self, dest: SocketAddr, source_ip: Option<IpAddr>) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(self.len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "send batch is full",
            ));
        };
        if source_ip.is_some_and(|s| s.is_ipv4() != dest.is_ipv4()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination must be the same IP family",
            ));
        }
        slot.to = SockAddr::from(dest);
        slot.controllen = match source_ip {
            Some(ip) => encode_pktinfo(&mut slot.control, ip),
            None => 0,
        };
        self.len += 1;
        Ok(())
    }

    /// The queued slots from `first`.
    pub(crate) fn pending(&self, first: usize) -> &[SendSlot] {
        self.slots.get(first..self.len).unwrap_or_default()
    }
}

const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
/// `CMSG_ALIGN`: control messages are aligned to `sizeof(size_t)`.
const ALIGN: usize = std::mem::size_of::<usize>();

fn cmsg_align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Writes one `IP_PKTINFO` (`ipi_spec_dst` = `ip`) or `IPV6_PKTINFO`
/// (`ipi6_addr` = `ip`) control message into `space`; returns its
/// `CMSG_SPACE`.
fn encode_pktinfo(space: &mut CmsgSpace, ip: IpAddr) -> usize {
    let (level, kind, data): (libc::c_int, libc::c_int, [u8; 20]) = match ip {
        IpAddr::V4(v4) => {
            // struct in_pktinfo { int ipi_ifindex; in_addr ipi_spec_dst; in_addr ipi_addr; }
            let mut d = [0u8; 20];
            if let Some(dst) = d.get_mut(4..8) {
                dst.copy_from_slice(&v4.octets());
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO, d)
        }
        IpAddr::V6(v6) => {
            // struct in6_pktinfo { in6_addr ipi6_addr; unsigned ipi6_ifindex; }
            let mut d = [0u8; 20];
            if let Some(dst) = d.get_mut(..16) {
                dst.copy_from_slice(&v6.octets());
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, d)
        }
    };
    let data_len = if ip.is_ipv4() {
        std::mem::size_of::<libc::in_pktinfo>()
    } else {
        std::mem::size_of::<libc::in6_pktinfo>()
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

/// Reads the control messages of one received datagram into `meta`:
/// `IP_PKTINFO`/`IPV6_PKTINFO` (destination address, interface),
/// `SCM_TIMESTAMPNS` and, failing that, `SCM_TIMESTAMPING`'s software stamp.
fn parse_cmsgs(mut buf: &[u8], meta: &mut RecvMeta) {
    let mut timestamping = None;
    while buf.len() >= HDR {
        let word = |at: usize, n: usize| buf.get(at..at + n);
        let Some(len) = word(0, ALIGN)
            .and_then(|b| b.try_into().ok())
            .map(usize::from_ne_bytes)
        else {
            break;
        };
        let int = |at: usize| {
            word(at, 4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
        };
        let (Some(level), Some(kind)) = (int(ALIGN), int(ALIGN + 4)) else {
            break;
        };
        if len < cmsg_align(HDR) || len > buf.len() {
            break;
        }
        let data = buf.get(cmsg_align(HDR)..len).unwrap_or_default();
        match (level, kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data.len() >= 12 => {
                let ifindex = data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes);
                let addr: Option<[u8; 4]> = data.get(8..12).and_then(|b| b.try_into().ok());
                meta.ifindex = ifindex.and_then(|i| u32::try_from(i).ok());
                meta.dest = addr.map(IpAddr::from);
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data.len() >= 20 => {
                let addr: Option<[u8; 16]> = data.get(..16).and_then(|b| b.try_into().ok());
                let ifindex = data
                    .get(16..20)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_ne_bytes);
                meta.dest = addr.map(IpAddr::from);
                meta.ifindex = ifindex;
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => meta.kernel_rx = timespec(data),
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPING) => timestamping = timespec(data),
            _ => {}
        }
        buf = buf.get(cmsg_align(len)..).unwrap_or_default();
    }
    if meta.kernel_rx.is_none() {
        meta.kernel_rx = timestamping;
    }
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
            let n = encode_pktinfo(&mut space, ip);
            // CMSG_SPACE on 64-bit Linux: a 16-byte header, data padded to 8.
            let want = if ip.is_ipv4() { 16 + 16 } else { 16 + 24 };
            #[cfg(target_pointer_width = "64")]
            assert_eq!(n, want, "CMSG_SPACE for {ip}");
            let mut meta = RecvMeta {
                len: 0,
                truncated: false,
                source: SocketAddr::from(([127, 0, 0, 1], 1)),
                dest: None,
                ifindex: None,
                kernel_rx: None,
            };
            // The receive side reads ipi_addr (offset 8), the send side
            // writes ipi_spec_dst (offset 4): for IPv4, check the bytes.
            parse_cmsgs(space.0.get(..n).unwrap_or_default(), &mut meta);
            match ip {
                IpAddr::V6(_) => assert_eq!(meta.dest, Some(ip)),
                IpAddr::V4(v4) => {
                    assert_eq!(meta.dest, Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
                    assert_eq!(space.0.get(HDR + 4..HDR + 8), Some(&v4.octets()[..]));
                }
            }
        }
    }

    #[test]
    fn truncated_control_data_is_ignored() {
        let mut meta = RecvMeta {
            len: 0,
            truncated: false,
            source: SocketAddr::from(([127, 0, 0, 1], 1)),
            dest: None,
            ifindex: None,
            kernel_rx: None,
        };
        let mut space = CmsgSpace::new();
        let n = encode_pktinfo(&mut space, IpAddr::V4(Ipv4Addr::LOCALHOST));
        parse_cmsgs(space.0.get(..n - 10).unwrap_or_default(), &mut meta);
        assert_eq!(meta.dest, None);
        parse_cmsgs(&[0xff; 7], &mut meta);
        assert_eq!(meta.dest, None);
    }
}
