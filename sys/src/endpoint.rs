//! A UDP socket registered with tokio, with the options an NTP server and
//! client need: receive metadata, source-address selection, multicast and
//! transmit timestamps.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use nix::sys::socket::{TimestampingFlag, setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::io::Interest;

use crate::batch::{RecvBatch, SendBatch, SendOutcome};
use crate::ffi;
use crate::msg::{self, RecvMeta, TxTimestamp};

/// How to create a [`UdpEndpoint`]. Builder style:
///
/// ```no_run
/// # use mcast_sys::EndpointOptions;
/// let opts = EndpointOptions::new().reuse_addr(true).bind_device("bond0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointOptions {
    reuse_addr: bool,
    reuse_port: bool,
    bind_device: Option<String>,
    v6_only: bool,
}

impl Default for EndpointOptions {
    fn default() -> Self {
        Self {
            reuse_addr: false,
            reuse_port: false,
            bind_device: None,
            v6_only: true,
        }
    }
}

impl EndpointOptions {
    /// Defaults: no address or port reuse, no device binding, IPv6 sockets
    /// IPv6-only.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SO_REUSEADDR`: several sockets may bind the same port when they bind
    /// different addresses (or all set it, for multicast receivers).
    #[must_use]
    pub fn reuse_addr(mut self, on: bool) -> Self {
        self.reuse_addr = on;
        self
    }

    /// `SO_REUSEPORT`: several sockets (workers) share one address and port;
    /// the kernel spreads unicast datagrams among them and gives each a copy
    /// of multicast ones.
    #[must_use]
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_BINDTODEVICE`: send and receive only through interface `name`
    /// (needs `CAP_NET_RAW` on older kernels).
    #[must_use]
    pub fn bind_device(mut self, name: impl Into<String>) -> Self {
        self.bind_device = Some(name.into());
        self
    }

    /// `IPV6_V6ONLY` for IPv6 sockets (default on, so an IPv4 and an IPv6
    /// socket can share a port). Ignored for IPv4 sockets.
    #[must_use]
    pub fn v6_only(mut self, on: bool) -> Self {
        self.v6_only = on;
        self
    }
}

/// A non-blocking UDP socket, made and configured with `socket2` and
/// registered with the tokio reactor as a [`tokio::net::UdpSocket`] (tokio's
/// safe registration; it owns the descriptor). The system calls tokio does
/// not offer (`recvmsg` with control messages, `recvmmsg`, `sendmmsg`, the
/// error queue) run inside its `async_io`/`try_io`.
///
/// All methods take `&self`; the endpoint can be shared (e.g. in an `Arc`)
/// between a receiving and a sending task.
#[derive(Debug)]
pub struct UdpEndpoint {
    sock: tokio::net::UdpSocket,
    domain: Domain,
    v6_only: bool,
}

fn invalid_input(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

impl UdpEndpoint {
    /// Create a UDP socket, apply `options`, bind it to `addr` and register it
    /// with the current tokio runtime.
    ///
    /// # Errors
    /// Any failing socket call, or `Other` when called outside a tokio
    /// runtime.
    ///
    /// # Panics
    /// Inside tokio, when the current runtime was built without the I/O
    /// driver (`enable_io`/`enable_all`).
    pub fn bind(addr: SocketAddr, options: &EndpointOptions) -> io::Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(io::Error::other(
                "UdpEndpoint::bind must be called inside a tokio runtime",
            ));
        }
        let domain = Domain::for_address(addr);
        let sock = Socket::new(
            domain,
            Type::DGRAM.nonblocking().cloexec(),
            Some(Protocol::UDP),
        )?;
        if options.reuse_addr {
            sock.set_reuse_address(true)?;
        }
        if options.reuse_port {
            sock.set_reuse_port(true)?;
        }
        if let Some(dev) = &options.bind_device {
            sock.bind_device(Some(dev.as_bytes()))
                .map_err(|e| io::Error::new(e.kind(), format!("SO_BINDTODEVICE {dev:?}: {e}")))?;
        }
        let v6_only = addr.is_ipv6() && options.v6_only;
        if addr.is_ipv6() {
            sock.set_only_v6(options.v6_only)?;
        }
        sock.bind(&SockAddr::from(addr))
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
        Ok(Self {
            sock: tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock))?,
            domain,
            v6_only,
        })
    }

    /// The underlying socket, for options this type does not wrap.
    pub fn socket(&self) -> SockRef<'_> {
        SockRef::from(&self.sock)
    }

    /// The address the socket is bound to (with the port the kernel chose
    /// when bound to port 0).
    ///
    /// # Errors
    /// `getsockname(2)` failure, or a non-IP address (cannot happen).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket()
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("socket has a non-IP local address"))
    }

    /// Connect to `peer` (`connect(2)`): the kernel then delivers only
    /// datagrams from `peer`, and an ICMP "port unreachable" from it
    /// becomes a pending `ECONNREFUSED` (read it with
    /// `socket().take_error()`; the next send fails with it too), which
    /// says "nothing listens there" better than a silent timeout.
    ///
    /// # Errors
    /// The failing `connect(2)` (e.g. a family mismatch).
    pub fn connect(&self, peer: SocketAddr) -> io::Result<()> {
        self.socket()
            .connect(&SockAddr::from(peer))
            .map_err(|e| io::Error::new(e.kind(), format!("connect {peer}: {e}")))
    }

    fn is_v4(&self) -> bool {
        self.domain == Domain::IPV4
    }

    fn require_v4(&self, what: &str) -> io::Result<()> {
        if self.is_v4() {
            Ok(())
        } else {
            Err(invalid_input(&format!("{what} needs an IPv4 socket")))
        }
    }

    fn require_v6(&self, what: &str) -> io::Result<()> {
        if self.is_v4() {
            Err(invalid_input(&format!("{what} needs an IPv6 socket")))
        } else {
            Ok(())
        }
    }

    // ---- receive ------------------------------------------------------

    /// Ask the kernel for per-datagram metadata: destination address and
    /// arrival interface (`IP_PKTINFO` or `IPV6_RECVPKTINFO`) and a software
    /// receive timestamp (`SO_TIMESTAMPNS`). Fills the `dest`, `ifindex` and
    /// `kernel_rx` fields of [`RecvMeta`].
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn enable_rx_metadata(&self) -> io::Result<()> {
        let fd = self.sock.as_fd();
        if self.is_v4() {
            setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
        } else {
            setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true)?;
            if !self.v6_only {
                // IPv4-mapped datagrams on a dual-stack socket.
                setsockopt(&fd, sockopt::Ipv4PacketInfo, &true)?;
            }
        }
        setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
        Ok(())
    }

    /// Ask only for the kernel receive timestamp (`SO_TIMESTAMPNS`), not the
    /// destination address: enough for a socket bound to one address, which
    /// is every datagram's destination. Fills [`RecvMeta::kernel_rx`].
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn enable_rx_timestamps(&self) -> io::Result<()> {
        setsockopt(&self.sock.as_fd(), sockopt::ReceiveTimestampns, &true)?;
        Ok(())
    }

    /// Receive one datagram into `buf`, waiting until one arrives.
    ///
    /// # Errors
    /// The failing `recvmsg(2)` (e.g. `ECONNREFUSED` after an ICMP error on a
    /// connected socket).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        self.sock
            .async_io(Interest::READABLE, || {
                msg::recv(self.sock.as_fd(), &mut *buf)
            })
            .await
    }

    /// Receive one datagram if one is queued; `WouldBlock` otherwise.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is queued, or the failing `recvmsg(2)`.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<RecvMeta> {
        msg::recv(self.sock.as_fd(), buf)
    }

    /// Receive up to [`RecvBatch::capacity`] datagrams with one
    /// `recvmmsg(2)` into buffers reused from call to call, waiting until at
    /// least one is there. With [`UdpEndpoint::enable_rx_metadata`], each
    /// comes with its destination address, interface and kernel receive
    /// timestamp. Returns how many arrived ([`RecvBatch::iter`]).
    ///
    /// # Errors
    /// The failing `recvmmsg(2)`.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        self.sock
            .async_io(Interest::READABLE, || batch.receive(self.sock.as_fd()))
            .await
    }

    // ---- send ---------------------------------------------------------

    /// Send every datagram queued in `batch` with as few `sendmmsg(2)`
    /// calls as the kernel allows (one, unless the socket buffer fills up
    /// or a datagram is refused), waiting for buffer space when needed. A
    /// refused datagram (e.g. `ENETUNREACH`) is skipped and counted; the
    /// others are still sent. The batch is left as it was (call
    /// [`SendBatch::clear`] before reuse).
    pub async fn send_batch(&self, batch: &SendBatch) -> SendOutcome {
        let mut out = SendOutcome::default();
        let mut next = 0;
        while next < batch.len() {
            let pending = batch.pending(next);
            let result = self
                .sock
                .async_io(Interest::WRITABLE, || {
                    ffi::send_mmsg(self.sock.as_fd(), pending)
                })
                .await;
            match result {
                Ok(0) => {
                    // Nothing accepted and no error: give up on this one
                    // rather than spin.
                    out.failed += 1;
                    next += 1;
                }
                Ok(n) => {
                    out.sent += n;
                    next += n;
                }
                Err(e) => {
                    out.failed += 1;
                    out.last_error = Some(e);
                    next += 1;
                }
            }
        }
        out
    }

    /// Send `buf` to `dest`, waiting for buffer space if needed.
    ///
    /// # Errors
    /// The failing `sendto(2)`.
    pub async fn send_to(&self, buf: &[u8], dest: SocketAddr) -> io::Result<usize> {
        let to = SockAddr::from(dest);
        self.sock
            .async_io(Interest::WRITABLE, || self.socket().send_to(buf, &to))
            .await
    }

    /// Send `buf` to `dest` with source address `source_ip` (which must be an
    /// address of this host, of the socket's family), chosen per datagram with
    /// `IP_PKTINFO`/`IPV6_PKTINFO`. A server bound to the wildcard address
    /// uses this so a reply leaves from the address the request was sent to.
    ///
    /// # Errors
    /// `InvalidInput` for a family mismatch; `ENETUNREACH` (Linux 6.x; older
    /// kernels: `EINVAL`) when `source_ip` is not an address of this host.
    pub async fn send_from(
        &self,
        buf: &[u8],
        dest: SocketAddr,
        source_ip: IpAddr,
    ) -> io::Result<usize> {
        self.send_from_on(buf, dest, source_ip, 0).await
    }

    /// Like [`UdpEndpoint::send_from`], also forcing the outgoing interface
    /// (needed for an IPv6 link-local source). `ifindex` 0 lets routing choose.
    ///
    /// # Errors
    /// As for [`UdpEndpoint::send_from`].
    pub async fn send_from_on(
        &self,
        buf: &[u8],
        dest: SocketAddr,
        source_ip: IpAddr,
        ifindex: u32,
    ) -> io::Result<usize> {
        if source_ip.is_ipv4() != dest.is_ipv4() || source_ip.is_ipv4() != self.is_v4() {
            return Err(invalid_input(
                "send_from: source, destination and socket must be the same IP family",
            ));
        }
        self.sock
            .async_io(Interest::WRITABLE, || {
                msg::send_from(self.sock.as_fd(), buf, dest, source_ip, ifindex)
            })
            .await
    }

    // ---- multicast and IP options ---------------------------------------

    /// `IP_MULTICAST_IF` by interface index (`struct ip_mreqn`): the interface
    /// IPv4 multicast is sent through.
    ///
    /// # Errors
    /// `InvalidInput` on an IPv6 socket; `ENODEV` for an unknown index.
    pub fn set_multicast_if_v4_index(&self, ifindex: u32) -> io::Result<()> {
        self.require_v4("IP_MULTICAST_IF")?;
        ffi::set_multicast_if_v4_index(self.sock.as_fd(), ifindex)
    }

    /// `IPV6_MULTICAST_IF`: the interface IPv6 multicast is sent through.
    ///
    /// # Errors
    /// `InvalidInput` on an IPv4 socket, or the failing `setsockopt(2)`.
    pub fn set_multicast_if_v6(&self, ifindex: u32) -> io::Result<()> {
        self.require_v6("IPV6_MULTICAST_IF")?;
        self.socket().set_multicast_if_v6(ifindex)
    }

    /// `IP_MULTICAST_TTL`: how many routers IPv4 multicast may cross (1 = this
    /// link only, the default).
    ///
    /// # Errors
    /// `InvalidInput` on an IPv6 socket, or the failing `setsockopt(2)`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.require_v4("IP_MULTICAST_TTL")?;
        self.socket().set_multicast_ttl_v4(ttl)
    }

    /// `IPV6_MULTICAST_HOPS`: the IPv6 equivalent of the multicast TTL.
    ///
    /// # Errors
    /// `InvalidInput` on an IPv4 socket, or the failing `setsockopt(2)`.
    pub fn set_multicast_hops_v6(&self, hops: u32) -> io::Result<()> {
        self.require_v6("IPV6_MULTICAST_HOPS")?;
        self.socket().set_multicast_hops_v6(hops)
    }

    /// `IP_MULTICAST_LOOP` / `IPV6_MULTICAST_LOOP`: whether this host's own
    /// sockets get a copy of what this socket sends to a group (needed when
    /// server and client share a machine).
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn set_multicast_loop(&self, on: bool) -> io::Result<()> {
        if self.is_v4() {
            self.socket().set_multicast_loop_v4(on)
        } else {
            self.socket().set_multicast_loop_v6(on)?;
            if !self.v6_only {
                self.socket().set_multicast_loop_v4(on)?;
            }
            Ok(())
        }
    }

    /// `SO_BROADCAST`: allow sending to broadcast addresses.
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket().set_broadcast(on)
    }

    /// Join IPv4 group `group` on the interface with index `ifindex`
    /// (`IP_ADD_MEMBERSHIP` with `struct ip_mreqn`).
    ///
    /// # Errors
    /// `InvalidInput` on an IPv6 socket, or the failing `setsockopt(2)`
    /// (`EADDRINUSE` if already joined there).
    pub fn join_v4(&self, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
        self.require_v4("IP_ADD_MEMBERSHIP")?;
        self.socket()
            .join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
    }

    /// Leave an IPv4 group joined with [`UdpEndpoint::join_v4`].
    ///
    /// # Errors
    /// `InvalidInput` on an IPv6 socket, or the failing `setsockopt(2)`.
    pub fn leave_v4(&self, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
        self.require_v4("IP_DROP_MEMBERSHIP")?;
        self.socket()
            .leave_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex))
    }

    /// Join IPv6 group `group` on interface `ifindex` (`IPV6_ADD_MEMBERSHIP`).
    ///
    /// # Errors
    /// `InvalidInput` on an IPv4 socket, or the failing `setsockopt(2)`.
    pub fn join_v6(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.require_v6("IPV6_ADD_MEMBERSHIP")?;
        self.socket().join_multicast_v6(&group, ifindex)
    }

    /// Leave an IPv6 group joined with [`UdpEndpoint::join_v6`].
    ///
    /// # Errors
    /// `InvalidInput` on an IPv4 socket, or the failing `setsockopt(2)`.
    pub fn leave_v6(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.require_v6("IPV6_DROP_MEMBERSHIP")?;
        self.socket().leave_multicast_v6(&group, ifindex)
    }

    /// `IP_MULTICAST_ALL` (and `IPV6_MULTICAST_ALL` on IPv6 sockets). Linux
    /// defaults it to on, which delivers to a socket bound to the wildcard
    /// address the traffic of *every* group any socket on the host joined on
    /// that port; turn it off so a socket gets only the groups it joined.
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn set_multicast_all_v4(&self, on: bool) -> io::Result<()> {
        if self.is_v4() {
            self.socket().set_multicast_all_v4(on)
        } else {
            self.socket().set_multicast_all_v6(on)?;
            if !self.v6_only {
                self.socket().set_multicast_all_v4(on)?;
            }
            Ok(())
        }
    }

    /// The IPv4 TOS byte or IPv6 traffic class of outgoing datagrams; ntpd
    /// uses DSCP EF, `0xb8`.
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn set_tos(&self, tos: u8) -> io::Result<()> {
        if self.is_v4() {
            self.socket().set_tos_v4(u32::from(tos))
        } else {
            self.socket().set_tclass_v6(u32::from(tos))
        }
    }

    // ---- transmit timestamps -------------------------------------------

    /// Ask the kernel for a software transmit timestamp of every datagram
    /// sent from now on (`SO_TIMESTAMPING` with `TX_SOFTWARE | SOFTWARE |
    /// OPT_ID | OPT_TSONLY`), queued on the socket's error queue for
    /// [`UdpEndpoint::take_tx_timestamp`]. The `OPT_ID` counter restarts at 0.
    ///
    /// # Errors
    /// The failing `setsockopt(2)`.
    pub fn enable_tx_timestamps(&self) -> io::Result<()> {
        let flags = TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_ID
            | TimestampingFlag::SOF_TIMESTAMPING_OPT_TSONLY;
        setsockopt(&self.sock.as_fd(), sockopt::Timestamping, &flags)?;
        Ok(())
    }

    /// The oldest transmit timestamp in the error queue, if there is one now.
    ///
    /// # Errors
    /// The failing `recvmsg(2)` (`MSG_ERRQUEUE`).
    pub fn try_take_tx_timestamp(&self) -> io::Result<Option<TxTimestamp>> {
        match msg::take_tx_timestamp(self.sock.as_fd()) {
            Ok(ts) => Ok(Some(ts)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The oldest transmit timestamp, waiting up to `wait` for the kernel to
    /// queue it (on loopback it is there at once; a busy NIC queue can take
    /// longer). `None` if none came.
    ///
    /// # Errors
    /// The failing `recvmsg(2)` (`MSG_ERRQUEUE`).
    pub async fn take_tx_timestamp_within(
        &self,
        wait: Duration,
    ) -> io::Result<Option<TxTimestamp>> {
        if let Some(ts) = self.try_take_tx_timestamp()? {
            return Ok(Some(ts));
        }
        let waiting = self.sock.async_io(Interest::ERROR, || {
            msg::take_tx_timestamp(self.sock.as_fd())
        });
        match tokio::time::timeout(wait, waiting).await {
            Ok(result) => result.map(Some),
            Err(_elapsed) => Ok(None),
        }
    }

    /// The kernel transmit time of the oldest datagram not yet reported,
    /// waiting up to [`DEFAULT_TX_TIMESTAMP_WAIT`] for it. For interleaved
    /// mode: packet N+1 carries packet N's kernel transmit time.
    ///
    /// # Errors
    /// The failing `recvmsg(2)` (`MSG_ERRQUEUE`).
    pub async fn take_tx_timestamp(&self) -> io::Result<Option<SystemTime>> {
        Ok(self
            .take_tx_timestamp_within(DEFAULT_TX_TIMESTAMP_WAIT)
            .await?
            .map(|ts| ts.time))
    }
}

/// How long [`UdpEndpoint::take_tx_timestamp`] waits for the kernel.
pub const DEFAULT_TX_TIMESTAMP_WAIT: Duration = Duration::from_millis(100);
