//! Test support for mcast-ntp: the reference vectors captured from ntpd
//! 4.2.8p15, the deterministic simulator ([`sim`]), the network-namespace
//! lab harness and the packet forger.
#![forbid(unsafe_code)]

pub mod bins;
pub mod fuzz_checks;
pub mod lab;
pub mod labctl;
pub mod loopback;
pub mod netns;
pub mod packets;
pub mod pcapng;
pub mod probe;
pub mod refntpd;
pub mod sim;
pub mod vectors;
