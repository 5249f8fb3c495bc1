//! Test support for mcast-ntp: the reference vectors captured from ntpd
//! 4.2.8p15, and (in later work) the simulator, the network-namespace lab
//! harness and the packet forger.
#![forbid(unsafe_code)]

pub mod bins;
pub mod fuzz_checks;
pub mod lab;
pub mod netns;
pub mod probe;
pub mod refntpd;
pub mod vectors;
