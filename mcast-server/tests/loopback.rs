//! `mcast-server run` on loopback, as a user would run it: broadcasts that
//! verify with the server's key at 2^poll intervals, a calibration reply
//! from the address the broadcasts come from, `status`, and a clean stop.
//! Traffic stays on 127.0.0.1 (multicast with IP_MULTICAST_IF = lo).
#![cfg(test)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, group_listener, keys_path, start, status_json};
use mcast_keys::{KeyStore, packet};
use mcast_proto::{Datagram, Header, Log2Seconds, Mode, NtpTimestamp};

#[test]
fn broadcasts_calibration_status_and_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let socket = dir.path().join("server.sock");
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "keys = {keys:?}\nport = {port}\ncontrol-socket = {socket:?}\nlab-allow-fast-poll = true\n\
             [[destination]]\naddress = \"224.0.1.1\"\ninterface = \"lo\"\nkey = 3\npoll = 1\n\
             [time-source]\nkind = \"local\"\nstratum = 8\n",
            keys = keys_path(),
        ),
    )
    .expect("write config");

    let listener = group_listener(port);

    let server = start(&config);
    let keys = KeyStore::load(&keys_path()).expect("keys");
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 512];
    while arrivals.len() < 3 {
        let (n, from) = listener
            .recv_from(&mut buf)
            .expect("a broadcast within 10 s");
        let raw = &buf[..n];
        let d = Datagram::parse(raw).expect("broadcast parses");
        if d.header.mode != Mode::Broadcast {
            continue;
        }
        assert_eq!(
            from,
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            "source = interface address, port"
        );
        assert!(
            packet::authenticate(&keys, raw, &d, Some(from.ip())).is_valid(),
            "verifies with key 3"
        );
        assert_eq!(
            (d.header.poll, d.header.stratum, d.header.version),
            (Log2Seconds(1), 8, 4)
        );
        assert!(!d.header.transmit.is_zero());
        arrivals.push(Instant::now());
    }
    for w in arrivals.windows(2) {
        // Never sooner than 2^poll (2 s); allow 50 ms for scheduling on the receive side.
        assert!(
            w[1] - w[0] >= Duration::from_millis(1950),
            "interval {:?}",
            w[1] - w[0]
        );
    }

    // A calibration request signed with key 3 gets a reply signed with key 3
    // from the address the broadcasts come from.
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut h = Header::new(Mode::Client);
    h.poll = Log2Seconds(1);
    h.transmit = NtpTimestamp::from_parts(0xeeac_0000, 0x1234_5678);
    let mut req = Vec::new();
    let key = keys
        .get(mcast_keys::KeyId::new(3).expect("id"))
        .expect("key 3");
    packet::sign(key, &Datagram::new(h), &mut req);
    client
        .send_to(&req, ("127.0.0.1", port))
        .expect("send request");
    let (n, from) = client.recv_from(&mut buf).expect("a reply within 5 s");
    assert_eq!(from, SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let reply = Datagram::parse(&buf[..n]).expect("reply parses");
    assert_eq!(reply.header.mode, Mode::Server);
    assert_eq!(
        reply.header.origin, h.transmit,
        "origin echoes our transmit"
    );
    assert!(packet::authenticate(&keys, &buf[..n], &reply, None).is_valid());
    assert_eq!(n, req.len(), "reply is no larger than the request");

    let json = status_json(&socket);
    assert_eq!(json["synchronized"], true);
    assert!(
        json["destinations"][0]["sent"].as_u64().unwrap_or(0) >= 3,
        "{json}"
    );
    assert_eq!(json["counters"]["replies_sent"], 1, "{json}");

    // SIGTERM stops it cleanly and removes the control socket.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let code = server.child.wait().expect("wait");
    assert!(code.success(), "exit status after SIGTERM: {code:?}");
    assert!(!socket.exists(), "control socket removed on exit");
}
