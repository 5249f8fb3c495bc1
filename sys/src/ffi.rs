//! The only module of the project with `unsafe` code.
//!
//! Everything else in `mcast-sys` goes through the safe wrappers of `nix` and
//! `socket2`. What is left here has no safe wrapper in either crate:
//!
//! - `IP_MULTICAST_IF` with a `struct ip_mreqn` (choosing the outgoing
//!   multicast interface by *index*; socket2 only takes an address);
//! - registering a socket with the tokio reactor (`AsyncFd::register`,
//!   unsafe since tokio 1.5x because the reactor trusts the raw descriptor);
//! - `clock_adjtime(2)`, both the read-only form (`modes = 0`) and the
//!   clock-changing form used by [`crate::adjust_clock`].
//!
//! Each function is small, takes only safe types, and checks the C return
//! value itself.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::Socket;
use tokio::io::unix::AsyncFd;

/// Register an owned socket with the current tokio reactor.
///
/// Panics (inside tokio) when the current runtime has no I/O driver; the
/// caller checks for a runtime first.
pub(crate) fn register_socket(sock: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: `Socket` owns its descriptor (an `OwnedFd` inside): it is open
    // from creation until the `Socket` is dropped, and `as_raw_fd` always
    // returns that same descriptor. The `AsyncFd` takes the `Socket` by value
    // and drops it only after deregistering, and `UdpEndpoint` hands out only
    // `&Socket`, through which the descriptor can be neither closed nor
    // replaced.
    unsafe { AsyncFd::register(sock) }.map_err(io::Error::from)
}

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
