//! Test support for mcast-ntp: the reference vectors captured from ntpd
//! 4.2.8p15, the deterministic simulator ([`sim`]), the fuzz checks, the
//! loopback harness and the packet forger. The network-namespace lab and
//! the tool binaries are the `mcast-lab` package.
#![forbid(unsafe_code)]

pub mod fuzz_checks;
pub mod loopback;
pub mod pcapng;
pub mod sim;
pub mod vectors;
