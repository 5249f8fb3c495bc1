//! mcast-diag: the diagnostics behind `mcast-client analyze` and
//! `mcast-client listen`, for an operator asking what the NTP traffic on a
//! segment says.
//!
//! - [`analyze`]: a tcpdump capture (pcap or pcapng) read frame by frame,
//!   the UDP datagrams to or from the NTP port decoded, and a [`Report`]
//!   per host and host pair, with the multicast clients that keep polling
//!   a server by unicast, Kiss-o'-Death and crypto-NAK senders and, with a
//!   keys file, every MAC checked.
//! - [`listen`]: one received datagram turned into a line for a person (or
//!   a JSON object) with its header fields and MAC verdict, and the
//!   summary and exit status of a listening session.
//!
//! Sans-I/O apart from reading the capture file: no sockets, no clock, no
//! runtime. The command line (`mcast-client`) owns the socket, the signals
//! and the output. Nothing received can panic: what does not decode is
//! counted or reported.
//!
//! - [`craft`]: an IPv4/UDP datagram built whole, for the lab's tools that
//!   send with a chosen source address.
//!
//! [`Report`]: analyze::Report
#![forbid(unsafe_code)]

pub mod analyze;
pub mod craft;
pub mod listen;
