//! The lab of mcast-ntp: a room of network namespaces on one machine where
//! our servers and clients meet reference ntpd 4.2.8p15 ones on a bridged
//! LAN, and the tools that talk to them there.
//!
//! - [`netns`]: LANs of namespaces for a test or a benchmark run (prefix
//!   `mn`, 198.18.1.0 and up), removed when dropped; every process started
//!   in them runs without `CAP_SYS_TIME`, checked.
//! - [`labctl`]: the persistent lab behind `scripts/lab` (binary
//!   `mcast-lab`: `up`, `status`, `down`; prefix `mlab-`, 198.18.0.0/24),
//!   which outlives the command that built it.
//! - [`lab`]: our daemons on lab hosts (generated configuration, control
//!   socket, log), waiting for conditions, parsing captured NTP packets.
//! - [`refntpd`]: the reference ntpd started, queried with ntpq and parsed.
//! - [`probe`]: the logic of the `ntp-probe` tool.
//! - [`bins`]: the workspace's binaries, built on demand for a caller that
//!   is not their package.
//!
//! Binaries: `mcast-lab` (the persistent lab), `ntp-probe` (signed
//! requests from chosen sources), `ntp-load` (bounded load generator),
//! `ntp-liar` (a server that lies about the time), `udp-floor` (the
//! smallest batched UDP responder, the floor of the benchmarks) and
//! `lab-bench` (the client benchmarks of BENCHMARKS.md).
//!
//! Nothing here changes the machine's clock: clients run in monitor mode,
//! ntpd with `disable ntp` and `disable kernel`, and every process without
//! `CAP_SYS_TIME`. Traffic stays on loopback and in the namespaces'
//! 198.18.0.0/15.
//!
//! The test support (reference vectors, simulator, fuzz checks, packet
//! forger) is the `mcast-tests` package, which uses this one; this one
//! never uses it.
#![forbid(unsafe_code)]

pub mod attack;
pub mod bins;
pub mod lab;
pub mod labctl;
pub mod netns;
pub mod probe;
pub mod refntpd;
