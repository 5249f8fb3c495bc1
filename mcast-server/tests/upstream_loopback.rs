//! `mcast-server run` with `kind = "upstream"` against a scripted upstream
//! daemon on 127.0.0.1: what the queries look like on the wire, that a
//! reply not echoing the query's cookie is ignored, and that a good reply's
//! fields (leap warning included) reach the broadcasts and `status`.
//! Traffic stays on 127.0.0.1 (multicast with IP_MULTICAST_IF = lo).
#![cfg(test)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use common::{free_port, group_listener, keys_path, start, status_json, status_output};
use mcast_proto::{
    Datagram, Header, LeapIndicator, Log2Seconds, Mode, NtpDuration, NtpShort, NtpTimestamp, RefId,
};

/// Receives one query on the scripted upstream.
fn recv_query(upstream: &UdpSocket) -> (Header, SocketAddr, Instant) {
    let mut buf = [0u8; 512];
    let (n, from) = upstream
        .recv_from(&mut buf)
        .expect("a query within the read timeout");
    let h = Header::parse(&buf[..n]).expect("the query parses");
    (h, from, Instant::now())
}

/// Polls `status --json` until `check` holds (10 s at most).
fn wait_status(socket: &std::path::Path, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let json = status_json(socket);
        if check(&json) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: status {json}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn upstream_source_follows_a_scripted_daemon_on_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let socket = dir.path().join("server.sock");
    let config = dir.path().join("server.toml");
    let upstream = UdpSocket::bind("127.0.0.1:0").expect("bind the scripted upstream");
    upstream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let up = upstream.local_addr().expect("upstream addr");
    std::fs::write(
        &config,
        format!(
            "keys = {keys:?}\nport = {port}\ncontrol-socket = {socket:?}\nlab-allow-fast-poll = true\n\
             [[destination]]\naddress = \"224.0.1.1\"\ninterface = \"lo\"\nkey = 3\npoll = 1\n\
             [time-source]\nkind = \"upstream\"\nupstream = \"{up}\"\nquery-interval-s = 16\n",
            keys = keys_path(),
        ),
    )
    .expect("write config");
    let listener = group_listener(port);
    let _server = start(&config);

    // The first query comes at once. Answer it with a wrong origin: ignored.
    let (q1, server_addr, t_q1) = recv_query(&upstream);
    assert_eq!(
        (q1.mode, q1.version, q1.poll),
        (Mode::Client, 4, Log2Seconds(4)),
        "a v4 client-mode query, poll 2^4 = the 16 s interval"
    );
    assert!(
        q1.origin.is_zero() && q1.receive.is_zero() && q1.reference.is_zero(),
        "only the transmit field is set: {q1:?}"
    );
    let mut bogus = Header::new(Mode::Server);
    bogus.stratum = 2;
    bogus.origin = NtpTimestamp::from_bits(q1.transmit.to_bits() ^ 1);
    bogus.receive = NtpTimestamp::from_system_time(SystemTime::now());
    bogus.transmit = bogus.receive;
    upstream
        .send_to(&bogus.to_bytes(), server_addr)
        .expect("send the bogus reply");
    wait_status(&socket, "the bogus reply ignored", |j| {
        j["upstream"]["ignored"] == 1 && j["synchronized"] == false
    });

    // Unsynchronized, the next query follows 2 s later with a new cookie.
    let (q2, from2, t_q2) = recv_query(&upstream);
    assert_eq!(from2, server_addr, "queries come from one socket");
    let gap = t_q2 - t_q1;
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(10),
        "fast retry while unsynchronized: {gap:?} after the first query"
    );
    assert_ne!(q1.transmit, q2.transmit, "a fresh random cookie per query");
    let now = NtpTimestamp::from_system_time(SystemTime::now());
    let near_now = |t: NtpTimestamp| (t - now).abs() < NtpDuration::from_secs(86_400);
    assert!(
        !(near_now(q1.transmit) && near_now(q2.transmit)),
        "the transmit field is a random cookie, not our clock: {} {}",
        q1.transmit,
        q2.transmit
    );

    // A good reply: stratum 5, leap second announced.
    let mut good = Header::new(Mode::Server);
    good.leap = LeapIndicator::AddSecond;
    good.stratum = 5;
    good.precision = Log2Seconds(-20);
    good.root_delay = NtpShort::from_duration(NtpDuration::from_millis(1));
    good.root_dispersion = NtpShort::from_duration(NtpDuration::from_millis(2));
    good.reference_id = RefId([198, 18, 0, 7]);
    good.origin = q2.transmit;
    good.receive = NtpTimestamp::from_system_time(SystemTime::now());
    good.transmit = good.receive;
    good.reference = good.receive - NtpDuration::from_secs(10);
    upstream
        .send_to(&good.to_bytes(), server_addr)
        .expect("send the reply");

    // The broadcasts carry what the upstream said, accumulated.
    let mut buf = [0u8; 512];
    let b = loop {
        let (n, _) = listener
            .recv_from(&mut buf)
            .expect("a broadcast within 10 s");
        let d = Datagram::parse(&buf[..n]).expect("broadcast parses");
        if d.header.mode == Mode::Broadcast {
            break d.header;
        }
    };
    assert_eq!(
        (b.leap, b.stratum, b.reference_id, b.reference),
        (
            LeapIndicator::AddSecond,
            6,
            RefId([127, 0, 0, 1]),
            good.reference
        ),
        "the first broadcast: upstream's leap, stratum + 1, refid = upstream address, \
         upstream's reference time"
    );
    let (rd, rdisp) = (b.root_delay.to_duration(), b.root_dispersion.to_duration());
    assert!(
        rd > good.root_delay.to_duration()
            && rd < good.root_delay.to_duration() + NtpDuration::from_millis(50),
        "root delay = upstream's 1 ms + the loopback round trip: {rd}"
    );
    assert!(
        rdisp > good.root_dispersion.to_duration(),
        "root dispersion = upstream's 2 ms + ours: {rdisp}"
    );

    let json = status_json(&socket);
    assert_eq!(json["synchronized"], true, "{json}");
    assert_eq!(json["stratum"], 6, "{json}");
    let u = &json["upstream"];
    assert_eq!(u["address"], up.to_string(), "{json}");
    assert_eq!(
        (u["stratum"].clone(), u["replies"].clone()),
        (5.into(), 1.into())
    );
    let text = status_output(&socket, &[]);
    assert!(
        text.contains(&format!("upstream {up}: "))
            && text.contains("1 replies, every 16 s; last usable reply")
            && text.contains("stratum 5, offset"),
        "{text}"
    );
}
