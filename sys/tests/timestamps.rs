//! Kernel transmit timestamps from the error queue, on loopback only.
#![cfg(test)]

mod common;

use std::time::Duration;

use common::{assert_recent, bind, recv_one};

async fn tx_timestamps(addr: &str) {
    let rx = bind(addr);
    let tx = bind(addr);
    tx.enable_tx_timestamps().expect("SO_TIMESTAMPING");
    let dest = rx.local_addr().unwrap();

    assert_eq!(
        tx.try_take_tx_timestamp().unwrap(),
        None,
        "nothing sent yet"
    );

    let mut last = None;
    for i in 0..3u32 {
        tx.send_to(&[0u8; 48], dest).await.unwrap();
        let ts = tx
            .take_tx_timestamp_within(Duration::from_secs(1))
            .await
            .expect("read the error queue")
            .unwrap_or_else(|| panic!("transmit timestamp {i} within 1 s"));
        assert_recent(ts.time, "kernel transmit timestamp");
        assert_eq!(ts.id, Some(i), "OPT_ID counts datagrams from 0");
        if let Some(prev) = last {
            assert!(ts.time >= prev, "timestamps do not go backwards");
        }
        last = Some(ts.time);
    }
    // The plain form used by the broadcaster.
    tx.send_to(&[0u8; 48], dest).await.unwrap();
    let t = tx.take_tx_timestamp().await.unwrap().expect("timestamp");
    assert_recent(t, "kernel transmit timestamp");
    assert_eq!(tx.try_take_tx_timestamp().unwrap(), None, "queue drained");

    let mut buf = [0u8; 64];
    for _ in 0..4 {
        assert_eq!(recv_one(&rx, &mut buf).await.len, 48);
    }
}

#[tokio::test]
async fn ipv4_tx_timestamp() {
    tx_timestamps("127.0.0.1:0").await;
}

#[tokio::test]
async fn ipv6_tx_timestamp() {
    tx_timestamps("[::1]:0").await;
}

#[tokio::test]
async fn no_timestamp_without_enabling() {
    let rx = bind("127.0.0.1:0");
    let tx = bind("127.0.0.1:0");
    tx.send_to(b"x", rx.local_addr().unwrap()).await.unwrap();
    let got = tx
        .take_tx_timestamp_within(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(got, None, "no timestamps unless enabled");
}
