//! The only module of the project with `unsafe` code.
//!
//! Everything else in `mcast-sys` goes through the safe wrappers of `nix` and
//! `socket2`. What is left here has no safe wrapper in either crate:
//!
//! - `IP_MULTICAST_IF` with a `struct ip_mreqn` (choosing the outgoing
//!   multicast interface by *index*; socket2 only takes an address);
//! - `clock_adjtime(2)`, both the read-only form (`modes = 0`) and the
//!   clock-changing form used by [`crate::adjust_clock`];
//! - `recvmsg(2)`, `sendmsg(2)`, `recvmmsg(2)` and `sendmmsg(2)` with
//!   control-message buffers that the one parser and encoder of
//!   [`crate::cmsg`] read and write as bytes (nix's wrappers either share one
//!   set of control messages among all datagrams of a `sendmmsg`, which
//!   rules out a per-reply source address, or never reset `msg_controllen`
//!   between `recvmmsg` calls, and each comes with a second control-message
//!   parser of its own), and reading the source address the kernel wrote.
//!
//! Each function is small, takes only safe types, and checks the C return
//! value itself.
#![allow(unsafe_code)]

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::{SockAddr, SockAddrStorage};

/// `setsockopt(IPPROTO_IP, IP_MULTICAST_IF, struct ip_mreqn { imr_ifindex })`.
///
/// Linux accepts three argument sizes for this option; the `ip_mreqn` form is
/// the only one that names the interface by index rather than by one of its
/// IPv4 addresses (an interface without an IPv4 address, or one whose address
/// changes, can still be selected).
pub(crate) fn set_multicast_if_v4_index(fd: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    let imr_ifindex = libc::c_int::try_from(ifindex).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface index {ifindex} does not fit a C int"),
        )
    })?;
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex,
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::ip_mreqn>())
        .map_err(|_| io::Error::other("sizeof(ip_mreqn) does not fit socklen_t"))?;
    // SAFETY: `fd` is a borrowed, open descriptor that outlives the call; the
    // pointer and length describe a fully initialised `ip_mreqn` on this stack
    // frame, alive for the whole call, which the kernel only reads.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            (&raw const mreqn).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An all-zero `struct timex`: `modes = 0`, i.e. "change nothing".
fn zeroed_timex() -> libc::timex {
    // SAFETY: `timex` is a C struct made only of integers, a `timeval` of
    // integers and integer padding; the all-zero bit pattern is a valid value
    // of every field.
    unsafe { std::mem::zeroed::<libc::timex>() }
}

/// Read the kernel's NTP state without changing anything.
///
/// Returns the `clock_adjtime` return value (the clock state, `TIME_OK` ..
/// `TIME_ERROR`) and the filled-in `timex`.
pub(crate) fn adjtime_read() -> io::Result<(libc::c_int, libc::timex)> {
    let mut tx = zeroed_timex();
    // Read-only by construction: no mode bit is set, so the kernel does not
    // need CAP_SYS_TIME and changes no clock or NTP variable.
    tx.modes = 0;
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` that lives for the
    // whole call; the kernel writes the current state into it. With
    // `modes == 0` the call has no side effect on the system.
    let rc = unsafe { libc::clock_adjtime(libc::CLOCK_REALTIME, &mut tx) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok((rc, tx))
    }
}

/// Build a `timex` for a clock change; the caller fills in `modes` and the
/// fields those modes read.
pub(crate) fn new_timex() -> libc::timex {
    zeroed_timex()
}

/// `clock_adjtime(CLOCK_REALTIME, tx)` with whatever modes `tx` carries.
///
/// THIS CHANGES THE MACHINE'S CLOCK when `tx.modes != 0`. Only
/// [`crate::adjust_clock`] calls it; no test does.
pub(crate) fn adjtime_write(tx: &mut libc::timex) -> io::Result<libc::c_int> {
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` alive for the whole
    // call; the kernel reads the fields selected by `tx.modes` and writes the
    // resulting state back into it. Memory safety does not depend on the
    // values; the system-wide effect is the caller's documented contract.
    let rc = unsafe { libc::clock_adjtime(libc::CLOCK_REALTIME, tx) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Most datagrams one [`recv_mmsg`] or [`send_mmsg`] call handles.
pub(crate) const MAX_BATCH: usize = 64;

/// Control-message space of one datagram: `in6_pktinfo` (40 bytes with its
/// header) plus `SCM_TIMESTAMPNS` (32) plus `SCM_TIMESTAMPING` (64), or on
/// the error queue `IP_RECVERR` with its offender address (64) and
/// `SCM_TIMESTAMPING`, with room to spare.
pub(crate) const CMSG_BYTES: usize = 256;

/// Control-message buffer of one datagram, aligned for `struct cmsghdr`.
#[repr(C, align(8))]
pub(crate) struct CmsgSpace(pub(crate) [u8; CMSG_BYTES]);

impl CmsgSpace {
    pub(crate) fn new() -> Self {
        Self([0; CMSG_BYTES])
    }
}

/// One datagram's worth of receive buffers for [`recv_mmsg`], and what the
/// kernel reported for it.
pub(crate) struct RecvSlot {
    /// Payload buffer.
    pub(crate) buf: Box<[u8]>,
    /// Source address, as the kernel writes it.
    name: SockAddrStorage,
    /// Control messages, as the kernel writes them.
    pub(crate) control: CmsgSpace,
    /// Payload bytes received.
    pub(crate) len: usize,
    /// Bytes of `name` written.
    namelen: libc::socklen_t,
    /// Bytes of `control` written.
    pub(crate) controllen: usize,
    /// `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`).
    pub(crate) flags: libc::c_int,
}

impl RecvSlot {
    pub(crate) fn new(size: usize) -> Self {
        RecvSlot {
            buf: vec![0; size].into_boxed_slice(),
            name: SockAddrStorage::zeroed(),
            control: CmsgSpace::new(),
            len: 0,
            namelen: 0,
            controllen: 0,
            flags: 0,
        }
    }

    /// The source address the last [`recv_mmsg`] wrote for this datagram.
    pub(crate) fn source(&mut self) -> Option<SocketAddr> {
        let storage = std::mem::replace(&mut self.name, SockAddrStorage::zeroed());
        socket_address(storage, self.namelen)
    }
}

/// The IP socket address the kernel wrote into `storage` (`len` bytes);
/// `None` for any other family or an impossible length.
fn socket_address(storage: SockAddrStorage, len: libc::socklen_t) -> Option<SocketAddr> {
    let fits = usize::try_from(len).is_ok_and(|l| l <= std::mem::size_of::<SockAddrStorage>());
    if !fits {
        return None;
    }
    // SAFETY: the kernel wrote a socket address of length `len` (checked to
    // fit) into `storage` during the `recvmsg`/`recvmmsg` that returned
    // `len`, starting with its family; the rest of the storage is zeroes
    // from `SockAddrStorage::zeroed`. `as_socket` reads only as much as the
    // family needs and returns `None` for any non-IP family.
    let addr = unsafe { SockAddr::new(storage, len) };
    addr.as_socket()
}

/// One datagram to send with [`send_mmsg`].
pub(crate) struct SendSlot {
    /// Payload.
    pub(crate) buf: Vec<u8>,
    /// Destination.
    pub(crate) to: SockAddr,
    /// Control messages (an `IP_PKTINFO`/`IPV6_PKTINFO`), `controllen` bytes.
    pub(crate) control: CmsgSpace,
    /// Bytes of `control` to pass; 0 for none.
    pub(crate) controllen: usize,
}

/// An all-zero `struct mmsghdr` array and `struct iovec` array for one call.
fn zeroed_headers() -> ([libc::mmsghdr; MAX_BATCH], [libc::iovec; MAX_BATCH]) {
    // SAFETY: `mmsghdr` (a `msghdr` and an unsigned int) and `iovec` are C
    // structs of integers and raw pointers; all-zero is a valid value of each
    // field (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

fn c_len(n: usize) -> io::Result<libc::c_uint> {
    libc::c_uint::try_from(n).map_err(|_| io::Error::other("batch size does not fit a C int"))
}

/// One non-blocking `recvmmsg(2)` into `slots` (at most [`MAX_BATCH`]).
/// Returns how many datagrams arrived (slots `0..n` are filled in);
/// `WouldBlock` when none was queued.
pub(crate) fn recv_mmsg(fd: BorrowedFd<'_>, slots: &mut [RecvSlot]) -> io::Result<usize> {
    let (mut hdrs, mut iovs) = zeroed_headers();
    let mut n = 0;
    for ((slot, hdr), iov) in slots.iter_mut().zip(hdrs.iter_mut()).zip(iovs.iter_mut()) {
        iov.iov_base = slot.buf.as_mut_ptr().cast::<libc::c_void>();
        iov.iov_len = slot.buf.len();
        let m = &mut hdr.msg_hdr;
        m.msg_name = (&raw mut slot.name).cast::<libc::c_void>();
        m.msg_namelen = slot.name.size_of();
        m.msg_iov = &raw mut *iov;
        m.msg_iovlen = 1;
        m.msg_control = slot.control.0.as_mut_ptr().cast::<libc::c_void>();
        m.msg_controllen = slot.control.0.len() as _;
        m.msg_flags = 0;
        n += 1;
    }
    // SAFETY: `fd` is an open descriptor borrowed for the call. For each of
    // the first `n` headers, every pointer (name, iovec, payload buffer,
    // control buffer) points into `slots`, `iovs` or `hdrs`, all of which
    // are exclusively borrowed or owned by this frame and outlive the call,
    // and every length is the size of the buffer it describes. The kernel
    // writes at most those lengths and the headers' result fields.
    let rc = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            c_len(n)?,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    let got = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
    // `msg_controllen` is a size_t in glibc but a socklen_t in musl.
    #[allow(clippy::useless_conversion)]
    for (slot, hdr) in slots.iter_mut().zip(hdrs.iter()).take(got) {
        slot.len = usize::try_from(hdr.msg_len)
            .unwrap_or(0)
            .min(slot.buf.len());
        slot.namelen = hdr.msg_hdr.msg_namelen;
        slot.controllen = usize::try_from(hdr.msg_hdr.msg_controllen)
            .unwrap_or(0)
            .min(slot.control.0.len());
        slot.flags = hdr.msg_hdr.msg_flags;
    }
    Ok(got)
}

/// One non-blocking `sendmmsg(2)` of `slots` (at most [`MAX_BATCH`]).
/// Returns how many were sent, from the first; an error only when the first
/// could not be sent (`WouldBlock` when the socket buffer is full).
pub(crate) fn send_mmsg(fd: BorrowedFd<'_>, slots: &[SendSlot]) -> io::Result<usize> {
    let (mut hdrs, mut iovs) = zeroed_headers();
    let mut n = 0;
    for ((slot, hdr), iov) in slots.iter().zip(hdrs.iter_mut()).zip(iovs.iter_mut()) {
        iov.iov_base = slot.buf.as_ptr().cast_mut().cast::<libc::c_void>();
        iov.iov_len = slot.buf.len();
        let m = &mut hdr.msg_hdr;
        m.msg_name = slot.to.as_ptr().cast_mut().cast::<libc::c_void>();
        m.msg_namelen = slot.to.len();
        m.msg_iov = &raw mut *iov;
        m.msg_iovlen = 1;
        if slot.controllen > 0 {
            m.msg_control = slot.control.0.as_ptr().cast_mut().cast::<libc::c_void>();
            m.msg_controllen = slot.controllen.min(slot.control.0.len()) as _;
        }
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: `fd` is an open descriptor borrowed for the call. For each of
    // the first `n` headers, the name, iovec, payload and control pointers
    // point into `slots` (shared-borrowed for the call) or into `iovs` and
    // `hdrs` on this frame, with the lengths of those buffers. `sendmmsg`
    // only reads them (despite the `*mut` in the C types) and writes the
    // headers' `msg_len` fields, which live in `hdrs`.
    let rc = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            hdrs.as_mut_ptr(),
            c_len(n)?,
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// An all-zero `struct msghdr`.
fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is a C struct of integers and raw pointers; all-zero
    // is a valid value of each field (null pointers, zero lengths).
    unsafe { std::mem::zeroed() }
}

/// What one [`recv_msg`] received.
pub(crate) struct Received {
    /// Payload bytes written into the buffer.
    pub(crate) len: usize,
    /// The sender (for the error queue: the original destination).
    pub(crate) source: Option<SocketAddr>,
    /// Bytes of the control buffer written.
    pub(crate) controllen: usize,
    /// `msg_flags` (`MSG_TRUNC`, `MSG_CTRUNC`, `MSG_ERRQUEUE`).
    pub(crate) flags: libc::c_int,
}

/// One non-blocking `recvmsg(2)` into `buf` and `control`, with `flags`
/// added to `MSG_DONTWAIT` (e.g. `MSG_ERRQUEUE`). `WouldBlock` when nothing
/// is queued.
pub(crate) fn recv_msg(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    control: &mut CmsgSpace,
    flags: libc::c_int,
) -> io::Result<Received> {
    let mut name = SockAddrStorage::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<libc::c_void>(),
        iov_len: buf.len(),
    };
    let mut hdr = zeroed_msghdr();
    hdr.msg_name = (&raw mut name).cast::<libc::c_void>();
    hdr.msg_namelen = name.size_of();
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast::<libc::c_void>();
    hdr.msg_controllen = control.0.len() as _;
    // SAFETY: `fd` is an open descriptor borrowed for the call; the name,
    // iovec, payload and control pointers point into `name`, `iov`, `buf`
    // and `control`, all alive and exclusively borrowed for the whole call,
    // each with the length of its buffer. The kernel writes at most those
    // lengths and the header's result fields.
    let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut hdr, flags | libc::MSG_DONTWAIT) };
    let len = usize::try_from(rc).map_err(|_| io::Error::last_os_error())?;
    // `msg_controllen` is a size_t in glibc but a socklen_t in musl.
    #[allow(clippy::useless_conversion)]
    let controllen = usize::try_from(hdr.msg_controllen)
        .unwrap_or(0)
        .min(control.0.len());
    Ok(Received {
        len: len.min(buf.len()),
        source: socket_address(name, hdr.msg_namelen),
        controllen,
        flags: hdr.msg_flags,
    })
}

/// One non-blocking `sendmsg(2)` of `buf` to `to` with the first
/// `controllen` bytes of `control` as control messages. Returns the bytes
/// sent; `WouldBlock` when the socket buffer is full.
pub(crate) fn send_msg(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    to: &SockAddr,
    control: &CmsgSpace,
    controllen: usize,
) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast::<libc::c_void>(),
        iov_len: buf.len(),
    };
    let mut hdr = zeroed_msghdr();
    hdr.msg_name = to.as_ptr().cast_mut().cast::<libc::c_void>();
    hdr.msg_namelen = to.len();
    hdr.msg_iov = &raw mut iov;
    hdr.msg_iovlen = 1;
    if controllen > 0 {
        hdr.msg_control = control.0.as_ptr().cast_mut().cast::<libc::c_void>();
        hdr.msg_controllen = controllen.min(control.0.len()) as _;
    }
    // SAFETY: `fd` is an open descriptor borrowed for the call; the name,
    // iovec, payload and control pointers point into `to`, `iov`, `buf` and
    // `control`, all alive for the whole call, with their lengths.
    // `sendmsg` only reads them (despite the `*mut` in the C types).
    let rc = unsafe { libc::sendmsg(fd.as_raw_fd(), &hdr, libc::MSG_DONTWAIT) };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}
