//! Non-blocking `recvmsg`/`sendmsg`/`recvmmsg` with control messages, and
//! reading transmit timestamps from the error queue. Each function does one
//! system call on a non-blocking socket and returns `WouldBlock` when there is
//! nothing to do; [`crate::UdpEndpoint`] adds the waiting.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, RecvMsg, SockaddrStorage,
    recvmmsg, recvmsg, sendmsg,
};
use nix::sys::time::TimeSpec;
use socket2::Socket;

/// What the kernel told us about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes of payload written into the buffer.
    pub len: usize,
    /// True when the datagram was longer than the buffer and the rest was
    /// discarded (`MSG_TRUNC`).
    pub truncated: bool,
    /// The sender's address and port.
    pub source: SocketAddr,
    /// The datagram's destination address (for multicast, the group) from
    /// `IP_PKTINFO`/`IPV6_PKTINFO`; `None` unless
    /// [`crate::UdpEndpoint::enable_rx_metadata`] was called.
    pub dest: Option<IpAddr>,
    /// Index of the interface the datagram arrived on; `None` unless
    /// [`crate::UdpEndpoint::enable_rx_metadata`] was called.
    pub ifindex: Option<u32>,
    /// Kernel software receive timestamp (`SO_TIMESTAMPNS`, taken when the
    /// packet entered the network stack, before any scheduling delay of this
    /// process); `None` unless enabled.
    pub kernel_rx: Option<SystemTime>,
}

/// A transmit timestamp read from the socket's error queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxTimestamp {
    /// When the kernel handed the datagram to the device driver (software
    /// timestamp, `SCM_TSTAMP_SND`).
    pub time: SystemTime,
    /// Which datagram: the `SOF_TIMESTAMPING_OPT_ID` counter, 0 for the first
    /// datagram sent after [`crate::UdpEndpoint::enable_tx_timestamps`], then
    /// 1, 2, ... `None` if the kernel did not say.
    pub id: Option<u32>,
}

/// Room for every control message we ask for: `in6_pktinfo` (or the smaller
/// `in_pktinfo`), a `timespec` (`SCM_TIMESTAMPNS`), three `timespec`s
/// (`SCM_TIMESTAMPING`, delivered as well once `SO_TIMESTAMPING` is on) and
/// a `sock_extended_err` with its offender address on the error queue.
const CMSG_CAPACITY: usize = 512;

/// A control-message buffer aligned for `struct cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_CAPACITY]);

impl CmsgBuf {
    fn new() -> Self {
        Self([0; CMSG_CAPACITY])
    }
}

fn timespec_to_system(ts: &TimeSpec) -> Option<SystemTime> {
    if ts.tv_sec() == 0 && ts.tv_nsec() == 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u32::try_from(ts.tv_nsec()).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

pub(crate) fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(sin) = addr.as_sockaddr_in() {
        Some(SocketAddr::from(*sin))
    } else {
        addr.as_sockaddr_in6().map(|sin6| SocketAddr::from(*sin6))
    }
}

fn meta_from(msg: &RecvMsg<'_, '_, SockaddrStorage>) -> io::Result<RecvMeta> {
    let source = msg.address.as_ref().and_then(to_std).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without an IP source address",
        )
    })?;
    let mut meta = RecvMeta {
        len: msg.bytes,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
        source,
        dest: None,
        ifindex: None,
        kernel_rx: None,
    };
    let mut timestamping_rx = None;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        match cmsg {
            ControlMessageOwned::Ipv4PacketInfo(pi) => {
                // ipi_addr is the header destination (the group, for
                // multicast); ipi_spec_dst is merely the local address.
                meta.dest = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
                meta.ifindex = u32::try_from(pi.ipi_ifindex).ok();
            }
            ControlMessageOwned::Ipv6PacketInfo(pi) => {
                meta.dest = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                meta.ifindex = Some(pi.ipi6_ifindex);
            }
            ControlMessageOwned::ScmTimestampns(ts) => {
                meta.kernel_rx = timespec_to_system(&ts);
            }
            ControlMessageOwned::ScmTimestampsns(ts) => {
                timestamping_rx = timespec_to_system(&ts.system);
            }
            _ => {}
        }
    }
    if meta.kernel_rx.is_none() {
        meta.kernel_rx = timestamping_rx;
    }
    Ok(meta)
}

/// One non-blocking `recvmsg`.
pub(crate) fn recv(sock: &Socket, buf: &mut [u8]) -> io::Result<RecvMeta> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = CmsgBuf::new();
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg.0),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    meta_from(&msg)
}

/// Per-datagram control buffer size for `recvmmsg` (same content as
/// [`CmsgBuf`], without the error-queue part).
const MMSG_CMSG_CAPACITY: usize = 256;

/// One non-blocking `recvmmsg` into `bufs` (one datagram per buffer).
pub(crate) fn recv_many<B: AsMut<[u8]>>(
    sock: &Socket,
    bufs: &mut [B],
) -> io::Result<Vec<RecvMeta>> {
    if bufs.is_empty() {
        return Ok(Vec::new());
    }
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(
        bufs.len(),
        Some(Vec::with_capacity(MMSG_CMSG_CAPACITY)),
    );
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
        .iter_mut()
        .map(|b| [IoSliceMut::new(b.as_mut())])
        .collect();
    let results = recvmmsg(
        sock.as_raw_fd(),
        &mut headers,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    results.map(|m| meta_from(&m)).collect()
}

/// One non-blocking `sendmsg` whose source address (and, when `ifindex` is
/// given, outgoing interface) is chosen with an `IP_PKTINFO`/`IPV6_PKTINFO`
/// control message.
pub(crate) fn send_from(
    sock: &Socket,
    buf: &[u8],
    dest: SocketAddr,
    source: IpAddr,
    ifindex: u32,
) -> io::Result<usize> {
    let iov = [IoSlice::new(buf)];
    let to = SockaddrStorage::from(dest);
    let flags = MsgFlags::MSG_DONTWAIT;
    let fd = sock.as_raw_fd();
    let sent = match source {
        IpAddr::V4(ip) => {
            let pi = libc::in_pktinfo {
                ipi_ifindex: libc::c_int::try_from(ifindex).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "interface index out of range")
                })?,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv4PacketInfo(&pi)],
                flags,
                Some(&to),
            )
        }
        IpAddr::V6(ip) => {
            let pi = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                ipi6_ifindex: ifindex,
            };
            sendmsg(
                fd,
                &iov,
                &[ControlMessage::Ipv6PacketInfo(&pi)],
                flags,
                Some(&to),
            )
        }
    };
    sent.map_err(io::Error::from)
}

/// Read error-queue messages until one carries a transmit timestamp.
/// `WouldBlock` when the queue is empty.
pub(crate) fn take_tx_timestamp(sock: &Socket) -> io::Result<TxTimestamp> {
    loop {
        // With SOF_TIMESTAMPING_OPT_TSONLY the payload is empty; the buffer
        // only has to exist.
        let mut data = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut data)];
        let mut cmsg = CmsgBuf::new();
        let msg = recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg.0),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let mut time = None;
        let mut id = None;
        for c in msg.cmsgs().map_err(io::Error::from)? {
            match c {
                ControlMessageOwned::ScmTimestampsns(ts) => time = timespec_to_system(&ts.system),
                ControlMessageOwned::Ipv4RecvErr(ee, _)
                | ControlMessageOwned::Ipv6RecvErr(ee, _)
                    if ee.ee_origin == libc::SO_EE_ORIGIN_TIMESTAMPING =>
                {
                    id = Some(ee.ee_data);
                }
                _ => {}
            }
        }
        if let Some(time) = time {
            return Ok(TxTimestamp { time, id });
        }
        // Not a timestamp (e.g. a queued ICMP error): consumed, look further.
    }
}
