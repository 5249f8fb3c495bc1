//! Multicast on the loopback interface only: senders are bound to a loopback
//! address and to `lo` (SO_BINDTODEVICE), send through `lo`
//! (IP_MULTICAST_IF / IPV6_MULTICAST_IF) with TTL/hops 1, to admin-scoped or
//! link-local-scoped transient groups.
#![cfg(test)]

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{SILENCE, assert_recent, bind_with, lo_index, recv_one};
use mcast_sys::{EndpointOptions, UdpEndpoint};

const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 255, 0, 1);
/// Transient (T flag), link-local scope: "ff12::" + "NTP1".
const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff12, 0, 0, 0, 0, 0, 0x4e54, 0x5031);

fn receiver(addr: &str) -> UdpEndpoint {
    let ep = bind_with(addr, &EndpointOptions::new().reuse_addr(true));
    ep.enable_rx_metadata().expect("enable rx metadata");
    ep
}

fn sender(addr: &str) -> UdpEndpoint {
    let ep = bind_with(addr, &EndpointOptions::new().bind_device("lo"));
    ep.set_multicast_loop(true).expect("multicast loop on");
    ep
}

/// Nothing arrives within [`SILENCE`].
async fn assert_silent(ep: &UdpEndpoint, what: &str) {
    let mut buf = [0u8; 64];
    if let Ok(got) = tokio::time::timeout(SILENCE, ep.recv(&mut buf)).await {
        panic!("{what}: expected no datagram, got {got:?}");
    }
}

/// Works whether or not `lo` has `IFF_MULTICAST`: IPv4 multicast output with
/// an explicit `IP_MULTICAST_IF` needs no multicast route.
#[tokio::test]
async fn ipv4_multicast_on_lo() {
    let lo = lo_index();
    // The first receiver picks a free ephemeral port; the others share it.
    let joined = receiver("0.0.0.0:0");
    let port = joined.local_addr().unwrap().port();
    joined.set_multicast_all_v4(false).unwrap();
    joined
        .join_v4(GROUP_V4, lo)
        .expect("join 239.255.0.1 on lo");

    let bound = format!("0.0.0.0:{port}");
    let not_joined = receiver(&bound);
    not_joined.set_multicast_all_v4(false).unwrap();
    // Linux default (IP_MULTICAST_ALL on): gets every group joined on the host.
    let default_all = receiver(&bound);

    let tx = sender("127.0.0.1:0");
    tx.set_multicast_if_v4_index(lo)
        .expect("IP_MULTICAST_IF = lo by index");
    tx.set_multicast_ttl_v4(1).unwrap();
    tx.set_tos(0xb8).unwrap();
    tx.send_to(b"mode5", SocketAddr::new(GROUP_V4.into(), port))
        .await
        .expect("send to the group through lo");

    let mut buf = [0u8; 64];
    let meta = recv_one(&joined, &mut buf).await;
    assert_eq!(buf.get(..meta.len), Some(&b"mode5"[..]));
    assert_eq!(meta.ifindex, Some(lo), "arrived on lo");
    assert_eq!(
        meta.dest,
        Some(IpAddr::V4(GROUP_V4)),
        "destination is the group"
    );
    assert_eq!(meta.source, tx.local_addr().unwrap());
    assert_recent(
        meta.kernel_rx.expect("rx timestamp"),
        "multicast rx timestamp",
    );

    let meta = recv_one(&default_all, &mut buf).await;
    assert_eq!(
        meta.dest,
        Some(IpAddr::V4(GROUP_V4)),
        "IP_MULTICAST_ALL default delivers"
    );

    assert_silent(
        &not_joined,
        "socket with IP_MULTICAST_ALL off that did not join",
    )
    .await;
    // One copy only (loop + lo must not duplicate).
    assert_silent(&joined, "a second copy to the joined socket").await;

    joined.leave_v4(GROUP_V4, lo).expect("leave the group");
}

/// Whether `lo` carries `IFF_MULTICAST` (read from sysfs, read-only).
fn lo_has_multicast_flag() -> bool {
    const IFF_MULTICAST: u32 = 0x1000;
    let flags = std::fs::read_to_string("/sys/class/net/lo/flags").expect("read lo flags");
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).expect("hex flags");
    flags & IFF_MULTICAST != 0
}

/// IPv6 multicast needs a `multicast ff00::/8` route on the outgoing
/// interface, which the kernel installs only on interfaces with
/// `IFF_MULTICAST`. Where `lo` lacks the flag (as on the machine this was
/// written on), sending fails with `ENETUNREACH`; the test then checks exactly
/// that, and says so, rather than changing the interface.
#[tokio::test]
async fn ipv6_multicast_on_lo() {
    let lo = lo_index();
    let joined = receiver("[::]:0");
    let port = joined.local_addr().unwrap().port();
    joined.set_multicast_all_v4(false).unwrap();
    joined
        .join_v6(GROUP_V6, lo)
        .expect("join ff12::4e54:5031 on lo");
    let not_joined = receiver(&format!("[::]:{port}"));
    not_joined.set_multicast_all_v4(false).unwrap();

    let tx = sender("[::1]:0");
    tx.set_multicast_if_v6(lo).expect("IPV6_MULTICAST_IF = lo");
    tx.set_multicast_hops_v6(1).unwrap();
    tx.set_tos(0xb8).unwrap();
    let sent = tx
        .send_to(b"mode5", SocketAddr::new(GROUP_V6.into(), port))
        .await;

    if !lo_has_multicast_flag() {
        let err = sent.expect_err("without IFF_MULTICAST on lo, IPv6 multicast has no route");
        assert_eq!(err.raw_os_error(), Some(libc::ENETUNREACH), "got {err}");
        eprintln!("NOTE: lo lacks IFF_MULTICAST; IPv6 multicast on lo is refused (ENETUNREACH)");
        joined.leave_v6(GROUP_V6, lo).expect("leave the group");
        return;
    }
    sent.expect("send to the IPv6 group through lo");
    let mut buf = [0u8; 64];
    let meta = recv_one(&joined, &mut buf).await;
    assert_eq!(meta.ifindex, Some(lo), "arrived on lo");
    assert_eq!(
        meta.dest,
        Some(IpAddr::V6(GROUP_V6)),
        "destination is the group"
    );
    assert_eq!(meta.source.ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_silent(&not_joined, "IPv6 socket that did not join").await;
    joined.leave_v6(GROUP_V6, lo).expect("leave the group");
}

#[tokio::test]
async fn family_mismatch_is_refused() {
    let v4 = bind_with("127.0.0.1:0", &EndpointOptions::new());
    assert!(v4.join_v6(GROUP_V6, lo_index()).is_err());
    assert!(v4.set_multicast_if_v6(lo_index()).is_err());
    let v6 = bind_with("[::1]:0", &EndpointOptions::new());
    assert!(v6.join_v4(GROUP_V4, lo_index()).is_err());
    assert!(v6.set_multicast_if_v4_index(lo_index()).is_err());
}

#[tokio::test]
async fn reuse_port_lets_workers_share_a_port() {
    let opts = EndpointOptions::new().reuse_port(true);
    let a = bind_with("127.0.0.1:0", &opts);
    let port = a.local_addr().unwrap().port();
    let b = bind_with(&format!("127.0.0.1:{port}"), &opts);
    assert_eq!(b.local_addr().unwrap().port(), port);
    // Without SO_REUSEPORT (or SO_REUSEADDR) the same bind fails.
    assert!(
        UdpEndpoint::bind(
            format!("127.0.0.1:{port}").parse().unwrap(),
            &EndpointOptions::new()
        )
        .is_err()
    );
    a.set_broadcast(true).unwrap();
}
