//! Helpers shared by the loopback tests. Every socket here is bound to a
//! loopback address or to `lo`, and every destination is on loopback.
#![cfg(test)]
#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use mcast_sys::{EndpointOptions, RecvMeta, UdpEndpoint, interface_index};

/// How long a test waits for a datagram that should arrive.
pub const ARRIVAL: Duration = Duration::from_secs(2);
/// How long a test waits to be sure a datagram does *not* arrive.
pub const SILENCE: Duration = Duration::from_secs(1);

pub fn lo_index() -> u32 {
    interface_index("lo").expect("the loopback interface `lo` exists")
}

pub fn bind(addr: &str) -> UdpEndpoint {
    bind_with(addr, &EndpointOptions::new())
}

pub fn bind_with(addr: &str, opts: &EndpointOptions) -> UdpEndpoint {
    let addr: SocketAddr = addr.parse().expect("test address parses");
    UdpEndpoint::bind(addr, opts).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// Receive one datagram or fail the test after [`ARRIVAL`].
pub async fn recv_one(ep: &UdpEndpoint, buf: &mut [u8]) -> RecvMeta {
    tokio::time::timeout(ARRIVAL, ep.recv(buf))
        .await
        .unwrap_or_else(|_| panic!("expected a datagram within {ARRIVAL:?}, got none"))
        .expect("recv succeeds")
}

/// `t` is within one second of the current wall-clock time.
pub fn assert_recent(t: SystemTime, what: &str) {
    let now = SystemTime::now();
    let diff = match now.duration_since(t) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        diff < Duration::from_secs(1),
        "{what} should be within 1 s of now; it is {diff:?} away ({t:?} vs {now:?})"
    );
}
