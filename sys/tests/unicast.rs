//! Unicast receive metadata and source-address selection, on loopback only.
#![cfg(test)]

mod common;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use common::{assert_recent, bind, lo_index, recv_one};

async fn metadata_roundtrip(receiver_addr: &str, sender_addr: &str, dest_ip: IpAddr) {
    let rx = bind(receiver_addr);
    rx.enable_rx_metadata().expect("enable rx metadata");
    let tx = bind(sender_addr);
    let dest = SocketAddr::new(dest_ip, rx.local_addr().expect("local addr").port());

    let sent = tx.send_to(b"hello", dest).await.expect("send_to");
    assert_eq!(sent, 5, "the whole datagram should be sent");

    let mut buf = [0u8; 64];
    let meta = recv_one(&rx, &mut buf).await;
    assert_eq!(buf.get(..meta.len), Some(&b"hello"[..]), "payload");
    assert!(!meta.truncated, "a 5-byte datagram fits a 64-byte buffer");
    assert_eq!(meta.source, tx.local_addr().expect("sender addr"), "source");
    assert_eq!(meta.dest, Some(dest_ip), "destination address from PKTINFO");
    assert_eq!(
        meta.ifindex,
        Some(lo_index()),
        "arrival interface should be lo"
    );
    let rx_time = meta
        .kernel_rx
        .expect("SO_TIMESTAMPNS receive timestamp present");
    assert_recent(rx_time, "kernel receive timestamp");
    assert!(
        rx_time <= std::time::SystemTime::now(),
        "the kernel stamped the datagram before we read it"
    );
}

#[tokio::test]
async fn ipv4_unicast_metadata() {
    metadata_roundtrip("127.0.0.1:0", "127.0.0.1:0", Ipv4Addr::LOCALHOST.into()).await;
}

#[tokio::test]
async fn ipv4_wildcard_receiver_sees_which_loopback_address_was_used() {
    // 127.0.0.0/8 is all local on lo; a wildcard socket learns the address.
    metadata_roundtrip(
        "0.0.0.0:0",
        "127.0.0.1:0",
        Ipv4Addr::new(127, 0, 0, 3).into(),
    )
    .await;
}

#[tokio::test]
async fn ipv6_unicast_metadata() {
    metadata_roundtrip("[::1]:0", "[::1]:0", Ipv6Addr::LOCALHOST.into()).await;
}

#[tokio::test]
async fn without_metadata_the_fields_are_empty() {
    let rx = bind("127.0.0.1:0");
    let tx = bind("127.0.0.1:0");
    tx.send_to(b"x", rx.local_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 8];
    let meta = recv_one(&rx, &mut buf).await;
    assert_eq!(
        (meta.dest, meta.ifindex, meta.kernel_rx),
        (None, None, None)
    );
}

#[tokio::test]
async fn rx_timestamps_alone_leave_out_the_destination() {
    let rx = bind("127.0.0.1:0");
    rx.enable_rx_timestamps().unwrap();
    let tx = bind("127.0.0.1:0");
    tx.send_to(b"x", rx.local_addr().unwrap()).await.unwrap();
    let mut batch = mcast_sys::RecvBatch::new(4, 16);
    let n = tokio::time::timeout(common::ARRIVAL, rx.recv_batch(&mut batch))
        .await
        .expect("a datagram within the timeout")
        .expect("recvmmsg");
    assert_eq!(n, 1);
    let (meta, _) = batch.iter().next().unwrap();
    assert_recent(meta.kernel_rx.expect("timestamp"), "rx timestamp");
    assert_eq!(
        (meta.dest, meta.ifindex),
        (None, None),
        "no IP_PKTINFO asked for"
    );
}

#[tokio::test]
async fn try_recv_would_block_then_truncates_long_datagram() {
    let rx = bind("127.0.0.1:0");
    let mut buf = [0u8; 4];
    let err = rx.try_recv(&mut buf).expect_err("nothing queued yet");
    assert_eq!(
        err.kind(),
        io::ErrorKind::WouldBlock,
        "empty queue means WouldBlock"
    );

    let tx = bind("127.0.0.1:0");
    tx.send_to(b"0123456789", rx.local_addr().unwrap())
        .await
        .unwrap();
    let meta = recv_one(&rx, &mut buf).await;
    assert_eq!(meta.len, 4, "only the buffer's worth is returned");
    assert!(meta.truncated, "MSG_TRUNC must be reported");
}

#[tokio::test]
async fn recv_batch_gets_queued_datagrams_in_order() {
    let rx = bind("127.0.0.1:0");
    rx.enable_rx_metadata().unwrap();
    let tx = bind("127.0.0.1:0");
    let dest = rx.local_addr().unwrap();
    for i in 0..5u8 {
        tx.send_to(&[i; 3], dest).await.unwrap();
    }
    let mut batch = mcast_sys::RecvBatch::new(8, 16);
    let mut got = Vec::new();
    while got.len() < 5 {
        let n = tokio::time::timeout(common::ARRIVAL, rx.recv_batch(&mut batch))
            .await
            .expect("a batch within the timeout")
            .expect("recvmmsg");
        assert!(n > 0, "recv_batch returns at least one datagram");
        for (meta, bytes) in batch.iter() {
            assert_eq!(meta.ifindex, Some(common::lo_index()));
            assert_recent(meta.kernel_rx.expect("timestamp"), "batched rx timestamp");
            got.push(bytes.to_vec());
        }
    }
    let expected: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 3]).collect();
    assert_eq!(got, expected, "all five datagrams, in order");
}

/// A wildcard "server" gets requests sent to three loopback addresses in
/// one `recv_batch`, with each one's destination and kernel timestamp, and
/// answers them all with one `send_batch`, each reply from the address its
/// request went to; a reply that cannot be sent is skipped, not the rest.
async fn batch_roundtrip(server_addr: &str, client_addr: &str, dests: &[IpAddr]) {
    use mcast_sys::{RecvBatch, SendBatch};
    let server = bind(server_addr);
    server.enable_rx_metadata().unwrap();
    let client = bind(client_addr);
    let port = server.local_addr().unwrap().port();
    for (i, d) in dests.iter().enumerate() {
        let n = u8::try_from(i).unwrap();
        client
            .send_to(&[n; 5], SocketAddr::new(*d, port))
            .await
            .unwrap();
    }
    let mut rx = RecvBatch::new(8, 64);
    let mut tx = SendBatch::new(8);
    let mut seen = Vec::new();
    while seen.len() < dests.len() {
        let n = tokio::time::timeout(common::ARRIVAL, server.recv_batch(&mut rx))
            .await
            .expect("a batch within the timeout")
            .expect("recvmmsg");
        assert!(
            n > 0 && n == rx.len(),
            "recv_batch returns what it received"
        );
        for (meta, bytes) in rx.iter() {
            assert_eq!(meta.source, client.local_addr().unwrap(), "source");
            assert_eq!(meta.ifindex, Some(lo_index()), "arrived on lo");
            assert_recent(meta.kernel_rx.expect("timestamp"), "batched rx timestamp");
            let i = usize::from(bytes[0]);
            assert_eq!(bytes, &[bytes[0]; 5], "payload intact");
            assert_eq!(meta.dest, Some(dests[i]), "destination of request {i}");
            let out = tx.next_payload().expect("room in the batch");
            out.extend_from_slice(&[bytes[0]; 3]);
            tx.commit(meta.source, meta.dest).unwrap();
            seen.push(i);
        }
    }
    // One more that the kernel refuses: its source is not an address here.
    let foreign: IpAddr = if dests[0].is_ipv4() {
        Ipv4Addr::new(198, 51, 100, 7).into()
    } else {
        "2001:db8::7".parse().unwrap()
    };
    tx.next_payload().unwrap().push(0xee);
    tx.commit(client.local_addr().unwrap(), Some(foreign))
        .unwrap();
    let out = server.send_batch(&tx).await;
    assert_eq!(
        (out.sent, out.failed),
        (dests.len(), 1),
        "every reply sent but the one from a foreign address: {out:?}"
    );
    for _ in 0..dests.len() {
        let mut buf = [0u8; 16];
        let meta = recv_one(&client, &mut buf).await;
        let i = usize::from(buf[0]);
        assert_eq!(meta.len, 3, "reply payload");
        assert_eq!(
            meta.source,
            SocketAddr::new(dests[i], port),
            "reply {i} comes from the address request {i} was sent to"
        );
    }
}

#[tokio::test]
async fn batch_replies_leave_from_each_requests_ipv4_destination() {
    let dests: Vec<IpAddr> = (1..=3)
        .map(|d| Ipv4Addr::new(127, 0, 0, d).into())
        .collect();
    batch_roundtrip("0.0.0.0:0", "127.0.0.1:0", &dests).await;
}

#[tokio::test]
async fn batch_replies_leave_from_the_ipv6_destination() {
    batch_roundtrip("[::]:0", "[::1]:0", &[Ipv6Addr::LOCALHOST.into()]).await;
}

#[tokio::test]
async fn batch_commit_refuses_a_family_mismatch_and_a_full_batch() {
    let mut tx = mcast_sys::SendBatch::new(1);
    let v4: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let err = tx
        .commit(v4, Some(Ipv6Addr::LOCALHOST.into()))
        .expect_err("IPv6 source for an IPv4 destination");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    tx.next_payload().unwrap().push(1);
    tx.commit(v4, None).unwrap();
    assert!(
        tx.next_payload().is_none(),
        "a full batch has no next payload"
    );
    assert!(
        tx.commit(v4, None).is_err(),
        "nor room for another datagram"
    );
}

#[tokio::test]
async fn send_from_sets_the_ipv4_source_address() {
    let rx = bind("127.0.0.1:0");
    let tx = bind("0.0.0.0:0");
    let source_ip: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
    tx.send_from(b"reply", rx.local_addr().unwrap(), source_ip)
        .await
        .expect("send_from 127.0.0.2");
    let mut buf = [0u8; 16];
    let meta = recv_one(&rx, &mut buf).await;
    assert_eq!(
        meta.source,
        SocketAddr::new(source_ip, tx.local_addr().unwrap().port()),
        "the reply must come from the requested address, port unchanged"
    );
}

#[tokio::test]
async fn send_from_sets_the_ipv6_source_address() {
    let rx = bind("[::1]:0");
    let tx = bind("[::]:0");
    tx.send_from(
        b"reply",
        rx.local_addr().unwrap(),
        Ipv6Addr::LOCALHOST.into(),
    )
    .await
    .expect("send_from ::1");
    let mut buf = [0u8; 16];
    let meta = recv_one(&rx, &mut buf).await;
    assert_eq!(meta.source.ip(), IpAddr::from(Ipv6Addr::LOCALHOST));
    assert_eq!(meta.source.port(), tx.local_addr().unwrap().port());
}

#[tokio::test]
async fn send_from_refuses_a_foreign_source_and_a_family_mismatch() {
    let rx = bind("127.0.0.1:0");
    let tx = bind("0.0.0.0:0");
    let dest = rx.local_addr().unwrap();
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: the kernel
    // refuses before anything is sent (and the destination is loopback anyway).
    let err = tx
        .send_from(b"x", dest, Ipv4Addr::new(192, 0, 2, 1).into())
        .await
        .expect_err("a non-local source address must be refused");
    // Linux 6.x says ENETUNREACH (no route from that source); older kernels
    // said EINVAL.
    assert!(
        matches!(err.raw_os_error(), Some(libc::ENETUNREACH | libc::EINVAL)),
        "expected ENETUNREACH or EINVAL, got {err}"
    );

    let err = tx
        .send_from(b"x", dest, Ipv6Addr::LOCALHOST.into())
        .await
        .expect_err("IPv6 source on an IPv4 socket");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn a_connected_socket_hears_only_its_peer_and_reports_a_closed_port() {
    let peer = bind("127.0.0.1:0");
    let stranger = bind("127.0.0.1:0");
    let client = bind("127.0.0.1:0");
    let peer_addr = peer.local_addr().expect("peer addr");
    client.connect(peer_addr).expect("connect to the peer");
    let me = client.local_addr().expect("client addr");
    stranger.send_to(b"stranger", me).await.expect("send");
    peer.send_to(b"peer", me).await.expect("send");
    let mut buf = [0u8; 64];
    let meta = recv_one(&client, &mut buf).await;
    assert_eq!(
        (meta.source, buf.get(..meta.len)),
        (peer_addr, Some(&b"peer"[..])),
        "only the connected peer's datagram is delivered"
    );

    // A port nobody listens on: the ICMP port unreachable becomes a
    // pending ECONNREFUSED (SO_ERROR).
    let closed = {
        let s = bind("127.0.0.1:0");
        s.local_addr().expect("addr")
    };
    let lonely = bind("127.0.0.1:0");
    lonely.connect(closed).expect("connect");
    lonely.send_to(b"anyone?", closed).await.expect("send");
    let deadline = std::time::Instant::now() + common::ARRIVAL;
    let err = loop {
        if let Some(e) = lonely.socket().take_error().expect("SO_ERROR") {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ECONNREFUSED within {:?} after sending to a closed port",
            common::ARRIVAL
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}
