//! Non-blocking `recvmsg`/`sendmsg` with control messages, and reading
//! transmit timestamps from the error queue. Each function does one system
//! call on a non-blocking socket and returns `WouldBlock` when there is
//! nothing to do; [`crate::UdpEndpoint`] adds the waiting. The control
//! messages are read and written by [`crate::cmsg`], the batched receive of
//! [`crate::RecvBatch`] included.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::time::SystemTime;

use socket2::SockAddr;

use crate::cmsg;
use crate::ffi::{self, CmsgSpace};

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

/// One non-blocking `recvmsg`.
pub(crate) fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<RecvMeta> {
    let mut control = CmsgSpace::new();
    let got = ffi::recv_msg(fd, buf, &mut control, 0)?;
    let source = got.source.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "datagram without an IP source address",
        )
    })?;
    let parsed = cmsg::parse(control.0.get(..got.controllen).unwrap_or_default());
    Ok(parsed.meta(got.len, got.flags, source))
}

/// One non-blocking `sendmsg` whose source address (and, when `ifindex` is
/// not 0, outgoing interface) is chosen with an `IP_PKTINFO`/`IPV6_PKTINFO`
/// control message.
pub(crate) fn send_from(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    dest: SocketAddr,
    source: IpAddr,
    ifindex: u32,
) -> io::Result<usize> {
    if i32::try_from(ifindex).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface index out of range",
        ));
    }
    let mut control = CmsgSpace::new();
    let controllen = cmsg::encode_pktinfo(&mut control, source, ifindex);
    ffi::send_msg(fd, buf, &SockAddr::from(dest), &control, controllen)
}

/// Read error-queue messages until one carries a transmit timestamp.
/// `WouldBlock` when the queue is empty.
pub(crate) fn take_tx_timestamp(fd: BorrowedFd<'_>) -> io::Result<TxTimestamp> {
    loop {
        // With SOF_TIMESTAMPING_OPT_TSONLY the payload is empty; the buffer
        // only has to exist.
        let mut data = [0u8; 64];
        let mut control = CmsgSpace::new();
        let got = ffi::recv_msg(fd, &mut data, &mut control, libc::MSG_ERRQUEUE)?;
        let parsed = cmsg::parse(control.0.get(..got.controllen).unwrap_or_default());
        if let Some(time) = parsed.timestamping {
            return Ok(TxTimestamp {
                time,
                id: parsed.timestamp_id,
            });
        }
        // Not a timestamp (e.g. a queued ICMP error): consumed, look further.
    }
}
