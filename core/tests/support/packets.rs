//! Packets for the tests that drive the cores directly: a plausible
//! server header and signing with a key of the store, or none.

#![allow(
    clippy::panic,
    reason = "test support: a fixture that names a missing key fails the test that called it"
)]

use std::time::Duration;

use mcast_core::client::discipline::{Clock, KernelState, Ppm};
use mcast_core::client::engine::{Action, ClientCore, Incoming};
use mcast_keys::{KeyId, KeyStore, packet};
use mcast_proto::{Datagram, Header, Log2Seconds, Mode, NtpDuration, NtpTimestamp, RefId};

/// The tests' time zero: 2027-01-15, well inside NTP era 0.
pub fn epoch() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

/// A header as a synchronized stratum-2 server sends it: poll 3,
/// precision 2^-20, refid GPS, reference time [`epoch`]. Timestamps zero.
pub fn server_header(mode: Mode) -> Header {
    let mut h = Header::new(mode);
    h.stratum = 2;
    h.poll = Log2Seconds(3);
    h.precision = Log2Seconds(-20);
    h.reference_id = RefId::from_code("GPS");
    h.reference = epoch();
    h
}

/// `h` on the wire, signed with key `key` of `keys`, or unsigned for `None`.
///
/// # Panics
/// If `key` is not in `keys` (a broken fixture, not a test outcome).
pub fn sign(keys: &KeyStore, key: Option<u16>, h: Header) -> Vec<u8> {
    let d = Datagram::new(h);
    let Some(id) = key else {
        return d.to_bytes();
    };
    let key = KeyId::new(u32::from(id))
        .and_then(|id| keys.get(id))
        .unwrap_or_else(|| panic!("key {id} is not in {}", keys.path().display()));
    let mut out = Vec::new();
    packet::sign(key, &d, &mut out);
    out
}

/// The clock given to a client core in monitor mode by the tests: it reads
/// the epoch and refuses every change (a monitor-mode core never asks).
pub struct NoClock;

impl Clock for NoClock {
    fn now(&self) -> NtpTimestamp {
        epoch()
    }
    fn step(&mut self, _: NtpDuration) -> Result<(), String> {
        Err("a test clock is never stepped".into())
    }
    fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
        Err("a test clock is never slewed".into())
    }
    fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
        Err("a test clock's frequency is never set".into())
    }
    fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
        Err("a test clock's kernel state is never set".into())
    }
}

/// Hands `core` a broadcast from `source` (an `address:port`) that arrived
/// when the client's clock read `rx`, `t` seconds after the core started
/// (monotonic), with a monitor-mode clock; returns the core's actions.
///
/// # Panics
/// If `source` is not an address and port (a broken fixture).
pub fn deliver_broadcast(
    core: &mut ClientCore,
    source: &str,
    bytes: &[u8],
    rx: NtpTimestamp,
    t: f64,
) -> Vec<Action> {
    let source = source
        .parse()
        .unwrap_or_else(|e| panic!("{source} is no address: {e}"));
    core.on_broadcast(
        Incoming {
            bytes,
            source,
            rx,
            mono: Duration::from_secs_f64(t),
        },
        7,
        &mut NoClock,
    )
}
