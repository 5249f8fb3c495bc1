#![cfg(test)]
//! `mcast-server run` on namespace LANs, as a datacenter would run it:
//! interoperation with reference ntpd 4.2.8p15 multicast clients (MD5,
//! SHA1 and AES128CMAC keys), IPv6 multicast and IPv4 subnet broadcast
//! destinations, an unsynchronized kernel time source, rate limiting over
//! the wire, interleaved broadcasts, and dropping privileges after binding
//! port 123. Needs root and `scripts/install-deps`; fails loudly
//! (never skips) without them.
//!
//! Every process runs in a namespace of the test's own Lan without
//! `CAP_SYS_TIME` (see `mcast_lab::netns`); all traffic stays on the
//! Lan's bridge (198.18.0.0/15, fd00:198:18::/48, ff05::101, 224.0.1.1).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mcast_core::server::broadcaster::Silence;
use mcast_core::server::status::Status;
use mcast_core::server::sync::Unsync;
use mcast_keys::signed::ServerKey;
use mcast_lab::lab::{
    GROUP, GROUP6, NTP_PORT, Ntp, OurServer, assert_intervals, broadcasts, destination, epoch_now,
    keys, lab_required, listen, local_source, parse_all, probe, stop_capture, wait_for,
};
use mcast_lab::netns::{Host, Lan};
use mcast_lab::probe::{ListenArgs, ProbeArgs};
use mcast_lab::refntpd::{PeerRow, RefNtpd};
use mcast_proto::{LeapIndicator, Log2Seconds, Mode, NtpTimestamp};
use mcast_tests::vectors;

// ---------------------------------------------------------------------------
// 1. Interoperation with reference ntpd multicast clients.
// ---------------------------------------------------------------------------

#[test]
fn reference_ntpd_multicast_client_accepts_md5_sha1_and_cmac_servers() {
    lab_required("reference_ntpd_multicast_client_accepts_md5_sha1_and_cmac_servers");
    const POLL: u8 = 3;
    const TAIL_INTERVALS: u32 = 4;
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let keys = keys();
    let lan = Lan::new(4).expect("build a 4-host LAN");
    let client_host = lan.host(4);
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("interop.pcap"))
        .expect("start tcpdump on the bridge");

    // (host, key id, stratum, MAC length, Ed25519-signed): h1 and h3 also
    // sign every broadcast (the signature field before the MAC, the MAC
    // over both), which ntpd must skip while it checks the MAC.
    let plan: [(usize, u16, u8, usize, bool); 3] = [
        (1, 1, 2, 16, true),
        (2, 2, 3, 20, false),
        (3, 3, 4, 16, true),
    ];
    let signers: Vec<Option<ServerKey>> = plan
        .iter()
        .map(|&(h, .., signed)| {
            signed.then(|| ServerKey::from_seed(&[u8::try_from(h).unwrap_or(0); 32]))
        })
        .collect();
    let servers: Vec<OurServer> = plan
        .iter()
        .zip(&signers)
        .map(|(&(h, key, stratum, ..), signer)| {
            let extra = match signer {
                Some(k) => {
                    let path = work.path().join(format!("h{h}.ed25519"));
                    mcast_lab::lab::write_private(&path, &k.to_file_text());
                    format!("signing-key = {:?}\n", path.display().to_string())
                }
                None => String::new(),
            };
            let body = format!(
                "{}{}",
                destination(&GROUP.to_string(), key, POLL, &extra),
                local_source(stratum)
            );
            OurServer::start(&lan.host(h), work.path(), &format!("h{h}"), &body)
        })
        .collect();
    let client = RefNtpd::multicast_client(
        &client_host,
        &vectors::keys_file(),
        &[1, 2, 3],
        IpAddr::V4(GROUP),
        "",
    )
    .expect("start reference ntpd multicastclient in h4");

    // Wait until ntpd lists all three as broadcast associations (t = b)
    // that heard the last 8 broadcasts (reach 377). Record every change of
    // (t, reach) per server for the post-mortem.
    let addrs: Vec<String> = plan
        .iter()
        .map(|&(h, ..)| lan.host(h).addr().to_string())
        .collect();
    let mut timeline: BTreeMap<String, Vec<(u64, char, u8)>> = BTreeMap::new();
    let mut last_rows: Vec<PeerRow> = Vec::new();
    let record = |rows: &[PeerRow], timeline: &mut BTreeMap<String, Vec<(u64, char, u8)>>| {
        for r in rows {
            let t = timeline.entry(r.remote.clone()).or_default();
            if t.last().map(|&(_, k, reach)| (k, reach)) != Some((r.kind, r.reach)) {
                t.push((started.elapsed().as_secs(), r.kind, r.reach));
            }
        }
    };
    // ntpd shifts the reach register on its own timer, shortly after each
    // broadcast has set bit 0, so one association shows 377 only for a
    // second or two per interval (376 otherwise), and three servers' windows
    // need not overlap: each must be *seen* at 377, sampled twice a second.
    let mut seen_377: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    let all_377 = loop {
        if let Ok(rows) = client.lpeers() {
            record(&rows, &mut timeline);
            for r in &rows {
                if r.kind == 'b' && r.reach == 0o377 && !seen_377.contains(&r.remote) {
                    seen_377.push(r.remote.clone());
                }
            }
            last_rows = rows;
        }
        let done = addrs.iter().all(|a| seen_377.contains(a));
        if done || Instant::now() > deadline {
            break done;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "interop: ntpd lpeers after {:?}: {last_rows:#?}\ntimeline (s, t, reach): {timeline:?}",
        started.elapsed()
    );
    assert!(
        all_377,
        "within 150 s ntpd in h4 should show each of {addrs:?} as t=b, reach 377 (seen: \
         {seen_377:?}); last lpeers: {last_rows:#?}\ntimeline (s, t, reach): {timeline:?}\nntpd log:\n{}\nsysstats: {:?}",
        client.log(),
        client.sysstats()
    );
    for (h, a) in addrs.iter().enumerate() {
        let r = last_rows
            .iter()
            .find(|r| &r.remote == a)
            .unwrap_or_else(|| panic!("ntpd no longer lists {a}: {last_rows:#?}"));
        assert!(
            r.kind == 'b' && r.reach >= 0o376,
            "{a} stays a broadcast association hearing every broadcast: {r:?}"
        );
        assert_eq!(
            r.stratum, plan[h].2,
            "ntpd sees {}'s configured stratum",
            r.remote
        );
        assert_eq!(r.poll, 1 << POLL, "ntpd polls {} at 2^{POLL}", r.remote);
    }
    // Optional soak (MCAST_LAB_SOAK_S seconds more): the known ntpd
    // failure is a multicast client that goes back to polling one keyed
    // server by unicast every 64-1024 s; the capture checks below catch
    // any mode-3 request after the volley.
    let soak = std::env::var("MCAST_LAB_SOAK_S")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if soak > 0 {
        let until = Instant::now() + Duration::from_secs(soak);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_secs(2));
            if let Ok(rows) = client.lpeers() {
                record(&rows, &mut timeline);
                last_rows = rows;
            }
        }
        eprintln!("interop: after a {soak} s soak, lpeers {last_rows:#?}\ntimeline: {timeline:?}");
        for a in &addrs {
            assert!(
                last_rows
                    .iter()
                    .any(|r| &r.remote == a && r.kind == 'b' && r.reach != 0),
                "after the soak ntpd should still hear {a} as t=b: {last_rows:#?}\n\
                 timeline: {timeline:?}"
            );
        }
    }

    let statuses: Vec<Status> = servers.iter().map(OurServer::status).collect();
    let capture_end = epoch_now();
    let raw = stop_capture(capture);
    let packets = parse_all(&raw);
    let h4 = IpAddr::V4(client_host.addr());
    let tail_start =
        capture_end.saturating_sub(Duration::from_secs(u64::from(TAIL_INTERVALS) << POLL));

    for (i, &(h, key, stratum, mac_len, signed)) in plan.iter().enumerate() {
        let addr = SocketAddr::new(IpAddr::V4(lan.host(h).addr()), NTP_PORT);
        let name = format!("h{h} (key {key})");

        // Broadcasts: signed with the server's key, its stratum, poll 3,
        // every 8 s (+ jitter).
        let bcasts: Vec<&Ntp<'_>> = packets
            .iter()
            .filter(|p| {
                p.udp.src == addr
                    && p.udp.dst == SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT)
                    && p.mode() == Mode::Broadcast
            })
            .collect();
        assert!(
            bcasts.len() >= 8,
            "{name}: at least 8 broadcasts in the capture, got {}",
            bcasts.len()
        );
        for b in &bcasts {
            assert!(
                b.auth(&keys).is_valid() && b.key_id() == Some(u32::from(key)),
                "{name}: broadcast must verify with key {key}: {} {:?}",
                b.auth(&keys),
                b.d.mac
            );
            let field = if signed { 100 } else { 0 };
            assert_eq!(
                b.udp.payload.len(),
                48 + field + 4 + mac_len,
                "{name}: signature field and MAC length"
            );
            if let Some(k) = &signers[i] {
                assert_eq!(
                    mcast_keys::signed::check_field(
                        k.public(),
                        &b.d,
                        &[SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT)]
                    ),
                    Ok(()),
                    "{name}: the Ed25519 signature verifies"
                );
            }
            let hd = &b.d.header;
            assert_eq!(
                (hd.version, hd.leap, hd.stratum, hd.poll),
                (
                    4,
                    LeapIndicator::NoWarning,
                    stratum,
                    Log2Seconds(POLL as i8)
                ),
                "{name}: broadcast header"
            );
            assert!(!hd.transmit.is_zero(), "{name}: transmit set");
        }
        let times: Vec<Duration> = bcasts.iter().map(|b| b.udp.time).collect();
        assert_intervals(&name, &times, POLL);

        // ntpd's calibration volley: mode-3 requests from h4, signed with
        // the server's key, all before the tail of the capture.
        let requests: Vec<&Ntp<'_>> = packets
            .iter()
            .filter(|p| p.udp.src.ip() == h4 && p.udp.dst == addr && p.mode() == Mode::Client)
            .collect();
        assert!(
            !requests.is_empty(),
            "{name}: ntpd in h4 should have sent calibration requests"
        );
        for r in &requests {
            assert!(
                r.auth(&keys).is_valid() && r.key_id() == Some(u32::from(key)),
                "{name}: ntpd's request must be signed with key {key}: {}",
                r.auth(&keys)
            );
        }
        let first = requests[0].udp.time;
        let last = requests[requests.len() - 1].udp.time;
        assert!(
            requests.len() <= 8 && last - first <= Duration::from_secs(30),
            "{name}: ntpd's requests should be one calibration volley (<= 8 requests within \
             30 s), got {} over {:?}: {:?}",
            requests.len(),
            last - first,
            requests.iter().map(|r| r.udp.time).collect::<Vec<_>>()
        );
        let late: Vec<Duration> = requests
            .iter()
            .map(|r| r.udp.time)
            .filter(|t| *t >= tail_start)
            .collect();
        assert!(
            late.is_empty(),
            "{name}: ntpd in h4 kept polling by unicast: mode-3 requests in the last \
             {TAIL_INTERVALS} intervals of the capture at {late:?} (capture end {capture_end:?}); \
             all requests at {:?}",
            requests.iter().map(|r| r.udp.time).collect::<Vec<_>>()
        );

        // Our replies: from the address the request went to, signed with
        // the request's key, origin = the request's transmit timestamp.
        let replies: Vec<&Ntp<'_>> = packets
            .iter()
            .filter(|p| p.udp.src == addr && p.udp.dst.ip() == h4 && p.mode() == Mode::Server)
            .collect();
        for r in &requests {
            let reply = replies
                .iter()
                .find(|p| p.d.header.origin == r.d.header.transmit)
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: no reply with origin = request transmit {:?}",
                        r.d.header.transmit
                    )
                });
            assert_eq!(
                reply.udp.dst, r.udp.src,
                "{name}: reply to the request's port"
            );
            assert!(
                reply.auth(&keys).is_valid() && reply.key_id() == Some(u32::from(key)),
                "{name}: reply must verify with key {key}: {}",
                reply.auth(&keys)
            );
            let hd = &reply.d.header;
            assert_eq!(hd.stratum, stratum, "{name}: reply stratum");
            assert!(
                hd.kiss_code().is_none() && !hd.receive.is_zero() && !hd.transmit.is_zero(),
                "{name}: a time reply, not a KoD: {hd:?}"
            );
            assert!(
                reply.udp.payload.len() <= r.udp.payload.len(),
                "no amplification"
            );
        }
        assert_eq!(
            replies.len(),
            requests.len(),
            "{name}: one reply per request"
        );

        let st = &statuses[i];
        assert!(st.synchronized, "{name}: synchronized: {st:?}");
        assert!(
            st.counters.replies_sent > 0
                && st.counters.replies_sent == requests.len() as u64
                && st.counters.kod_sent == 0,
            "{name}: replies_sent = the {} requests captured, no KoD: {:?}",
            requests.len(),
            st.counters
        );
        assert!(
            st.unicast_polling_clients.is_empty(),
            "{name}: no client should be listed as polling by unicast: {:?}",
            st.unicast_polling_clients
        );
        assert!(
            st.destinations[0].sent >= 8,
            "{name}: {:?}",
            st.destinations
        );
        eprintln!(
            "interop {name}: {} broadcasts, {} requests from h4 over {:?} (first at +{:?} \
             after the first broadcast), {} replies",
            bcasts.len(),
            requests.len(),
            last - first,
            first.saturating_sub(times[0]),
            replies.len()
        );
    }
    eprintln!(
        "interop: ntpd sysstats {:?}; total {:?}",
        client.sysstats().unwrap_or_default(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 2. IPv6 multicast and IPv4 subnet broadcast destinations.
// ---------------------------------------------------------------------------

#[test]
fn ipv6_multicast_and_ipv4_broadcast_destinations_reach_listeners() {
    lab_required("ipv6_multicast_and_ipv4_broadcast_destinations_reach_listeners");
    const POLL: u8 = 3;
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(4).expect("build a 4-host LAN");
    let (h1, h2, h3, h4) = (lan.host(1), lan.host(2), lan.host(3), lan.host(4));
    let [a, b, c, _] = lan.subnet().octets();
    let bcast = Ipv4Addr::new(a, b, c, 255);
    let body = format!(
        "{}{}{}",
        destination(&GROUP6.to_string(), 3, POLL, ""),
        destination(&bcast.to_string(), 2, POLL, "broadcast = true\n"),
        local_source(3)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    // And a reference ntpd listening to ff05::101 (AES128CMAC key 3),
    // which calibrates against our responder over IPv6.
    let ntpd6 = RefNtpd::multicast_client(&h4, &vectors::keys_file(), &[3], IpAddr::V6(GROUP6), "")
        .expect("start reference ntpd multicastclient ff05::101 in h4");

    let v6_args = ListenArgs {
        bind: IpAddr::V6(GROUP6),
        port: NTP_PORT,
        group: Some(IpAddr::V6(GROUP6)),
        iface: "eth0".into(),
        keys: vectors::keys_file(),
        duration: Duration::from_secs(40),
        max_broadcasts: Some(3),
    };
    let v4_args = ListenArgs {
        bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        port: NTP_PORT,
        group: None,
        iface: "eth0".into(),
        keys: vectors::keys_file(),
        duration: Duration::from_secs(40),
        max_broadcasts: Some(3),
    };
    let (v6, v4) = std::thread::scope(|s| {
        let v6 = s.spawn(|| listen(&h2, &v6_args));
        let v4 = s.spawn(|| listen(&h3, &v4_args));
        (
            v6.join().expect("IPv6 listener thread"),
            v4.join().expect("IPv4 listener thread"),
        )
    });
    let cases = [
        (
            "IPv6 ff05::101 listener in h2",
            &v6,
            SocketAddr::new(IpAddr::V6(h1.addr6()), NTP_PORT),
            3u32,
        ),
        (
            "IPv4 broadcast listener in h3",
            &v4,
            SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT),
            2u32,
        ),
    ];
    for (what, report, source, key) in cases {
        let bcasts: Vec<_> = report.packets.iter().filter(|p| p.mode == 5).collect();
        assert_eq!(
            bcasts.len(),
            3,
            "{what}: 3 broadcasts within 40 s; got {report:?}\nserver log:\n{}",
            server.log()
        );
        for p in &bcasts {
            assert_eq!(
                p.from, source,
                "{what}: source = h1's interface address, port 123"
            );
            assert!(
                p.auth == "valid" && p.key_id == Some(key),
                "{what}: must verify with key {key}: {p:?}"
            );
            assert_eq!(
                (p.version, p.leap, p.stratum, p.poll),
                (4, 0, 3, POLL as i8),
                "{what}: header fields"
            );
            assert!(p.transmit != 0, "{what}: transmit set");
        }
        let times: Vec<Duration> = bcasts
            .iter()
            .map(|p| Duration::from_millis(p.at_ms))
            .collect();
        assert_intervals(what, &times, POLL);
    }
    let st = server.status();
    assert_eq!(st.destinations.len(), 2, "{st:?}");
    assert_eq!(st.destinations[0].source, IpAddr::V6(h1.addr6()), "{st:?}");
    assert_eq!(st.destinations[1].source, IpAddr::V4(h1.addr()), "{st:?}");
    assert!(
        st.destinations
            .iter()
            .all(|d| d.sent >= 3 && d.skipped == 0),
        "{:?}",
        st.destinations
    );
    let h1_v6 = h1.addr6().to_string();
    let row = wait_for(
        &format!("ntpd in h4 to list {h1_v6} as t=b with reach > 0"),
        Duration::from_secs(40),
        Duration::from_secs(1),
        || {
            let rows = ntpd6.lpeers().unwrap_or_default();
            rows.into_iter()
                .find(|r| r.remote == h1_v6 && r.kind == 'b' && r.reach > 0)
        },
        || format!("lpeers: {:?}\nntpd log:\n{}", ntpd6.lpeers(), ntpd6.log()),
    );
    assert_eq!(
        (row.stratum, row.poll),
        (3, 1 << POLL),
        "ntpd's view of the IPv6 server: {row:?}"
    );
    eprintln!("ipv6: ntpd in h4 shows {row:?}");
    eprintln!("ipv6/broadcast: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// 3. An unsynchronized kernel time source.
// ---------------------------------------------------------------------------

#[test]
fn unsynchronized_kernel_source_stays_silent_or_sends_alarm() {
    lab_required("unsynchronized_kernel_source_stays_silent_or_sends_alarm");
    let kernel_unsynced = || {
        let k = mcast_sys::kernel_time_status().expect("read adjtimex (read-only)");
        assert!(
            !k.synchronized,
            "this test needs a kernel clock that reports UNsynchronized (STA_UNSYNC set), \
             but this machine's kernel says synchronized (status bits {:#x}, state {}): \
             something (chronyd, ntpd, systemd-timesyncd) disciplines the clock here. \
             The test cannot show that an unsynchronized server stays silent on this \
             machine; run it where no daemon disciplines the clock (e.g. a CI VM/container \
             whose host does not set STA_UNSYNC off) instead of letting it pass",
            k.status_bits, k.state
        );
    };
    kernel_unsynced();
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let keys = keys();
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("unsync.pcap"))
        .expect("start tcpdump on the bridge");
    let kernel = |extra: &str| {
        format!(
            "lab-allow-fast-poll = true\n{}[time-source]\nkind = \"kernel\"\nstratum = 2\n{extra}",
            destination(&GROUP.to_string(), 1, 1, "")
        )
    };
    let silent = OurServer::start(&h1, work.path(), "silent", &kernel(""));
    let alarm = OurServer::start(
        &h2,
        work.path(),
        "alarm",
        &kernel("unsynchronized = \"send-alarm\"\n"),
    );
    // 3 intervals of 2 s: wait for the servers' own account of them.
    wait_for(
        "3 skipped intervals (silent) and 3 sent alarms",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let (s, a) = (silent.status(), alarm.status());
            (s.destinations[0].skipped >= 3 && a.destinations[0].sent >= 3).then_some(())
        },
        || format!("{:?}\n{:?}", silent.status(), alarm.status()),
    );
    let (s, a) = (silent.status(), alarm.status());
    kernel_unsynced();
    let raw = stop_capture(capture);
    let packets = parse_all(&raw);

    for (name, st) in [("silent", &s), ("send-alarm", &a)] {
        assert!(!st.synchronized, "{name}: synchronized = false: {st:?}");
        assert_eq!(
            st.unsynchronized,
            Some(Unsync::KernelUnsynchronized),
            "{name}: the reason names the kernel"
        );
    }
    let from = |h: &Host| SocketAddr::new(IpAddr::V4(h.addr()), NTP_PORT);
    let silent_bcasts = packets
        .iter()
        .filter(|p| p.udp.src == from(&h1) && p.mode() == Mode::Broadcast)
        .count();
    assert_eq!(
        silent_bcasts, 0,
        "an unsynchronized server must send no broadcasts"
    );
    assert_eq!(s.destinations[0].sent, 0, "{s:?}");
    assert_eq!(
        s.destinations[0].last_problem,
        Some(Silence::NotSynchronized {
            reason: Unsync::KernelUnsynchronized
        }),
        "silent: status says why the interval was skipped"
    );
    assert!(
        silent
            .status_text()
            .contains("not synchronized: the kernel reports"),
        "silent: the status text says why:\n{}",
        silent.status_text()
    );
    assert!(
        silent.log().contains("not synchronized"),
        "silent: the log says so:\n{}",
        silent.log()
    );

    let alarms: Vec<_> = packets
        .iter()
        .filter(|p| p.udp.src == from(&h2) && p.mode() == Mode::Broadcast)
        .collect();
    assert!(alarms.len() >= 3, "send-alarm: >= 3 broadcasts captured");
    for p in &alarms {
        let hd = &p.d.header;
        assert_eq!(
            (hd.leap, hd.stratum),
            (LeapIndicator::Unsynchronized, 16),
            "send-alarm: LI=3, stratum 16"
        );
        assert!(
            p.auth(&keys).is_valid() && p.key_id() == Some(1),
            "send-alarm: still signed with key 1: {}",
            p.auth(&keys)
        );
    }
    eprintln!(
        "unsynchronized: silent skipped {} intervals, alarm sent {} ({} captured); {:?}",
        s.destinations[0].skipped,
        a.destinations[0].sent,
        alarms.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 4. Rate limiting over the wire.
// ---------------------------------------------------------------------------

#[test]
fn rate_limit_kod_then_silence_while_200_sources_get_full_volleys() {
    lab_required("rate_limit_kod_then_silence_while_200_sources_get_full_volleys");
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let body = format!(
        "{}{}",
        destination(&GROUP.to_string(), 1, 6, ""),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    let target = SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT);

    // A burst: 20 requests 10 ms apart from one address.
    let burst = probe(
        &h2,
        &ProbeArgs {
            wait: Duration::from_secs(3),
            ..ProbeArgs::signed(target, IpAddr::V4(h2.addr()), 20, Duration::from_millis(10))
        },
    );
    let src = &burst.sources[0];
    assert_eq!(src.sent.len(), 20, "burst sent: {:?}", src.errors);
    assert_eq!(
        src.replies.len(),
        2,
        "a burst gets one reply, one KoD, then silence; got {:#?}",
        src.replies
    );
    let (normal, kod) = (&src.replies[0], &src.replies[1]);
    assert!(
        normal.is_valid_time_reply()
            && normal.from == target
            && normal.origin == src.sent[0].transmit,
        "first answer: a normal signed reply to request 1: {normal:?}"
    );
    assert_eq!(
        kod.kiss.as_deref(),
        Some("RATE"),
        "second answer: KoD RATE: {kod:?}"
    );
    assert_eq!(
        (kod.mode, kod.leap, kod.stratum, kod.from),
        (4, 3, 0, target),
        "KoD header: {kod:?}"
    );
    assert!(
        kod.origin == src.sent[1].transmit
            && kod.receive == kod.origin
            && kod.transmit == kod.origin,
        "KoD: origin = receive = transmit = request 2's transmit: {kod:?}"
    );
    assert_eq!(kod.auth, "valid", "KoD signed with the request's key");
    let st = server.status();
    assert_eq!(
        (
            st.counters.replies_sent,
            st.counters.kod_sent,
            st.counters.rate_limited
        ),
        (1, 1, 19),
        "{:?}",
        st.counters
    );

    // 200 distinct sources, each one 6-request volley 2 s apart, interleaved.
    let [a, b, c, _] = lan.subnet().octets();
    let extra: Vec<Ipv4Addr> = (20..220).map(|d| Ipv4Addr::new(a, b, c, d)).collect();
    h3.add_ipv4_addresses(&extra, 24)
        .expect("add 200 addresses to h3");
    let many = probe(
        &h3,
        &ProbeArgs {
            sources: extra.iter().map(|a| IpAddr::V4(*a)).collect(),
            wait: Duration::from_secs(3),
            ..ProbeArgs::signed(target, IpAddr::V4(h2.addr()), 6, Duration::from_secs(2))
        },
    );
    assert_eq!(many.sources.len(), 200);
    let mut short = Vec::new();
    for s in &many.sources {
        let good = s
            .replies
            .iter()
            .filter(|r| r.is_valid_time_reply() && r.from == target)
            .count();
        let mut origins: Vec<u64> = s.replies.iter().map(|r| r.origin).collect();
        origins.sort_unstable();
        origins.dedup();
        if s.sent.len() != 6 || good != 6 || s.replies.len() != 6 || origins.len() != 6 {
            short.push(format!(
                "{}: sent {}, {} replies ({} valid): {:?}",
                s.local,
                s.sent.len(),
                s.replies.len(),
                good,
                s.replies
            ));
        }
    }
    assert!(
        short.is_empty(),
        "every source should get 6 valid replies to its 6 requests; {} did not:\n{}",
        short.len(),
        short.join("\n")
    );
    let st = server.status();
    assert_eq!(
        (
            st.counters.replies_sent,
            st.counters.kod_sent,
            st.mru_entries
        ),
        (1 + 200 * 6, 1, 201),
        "{:?}",
        st.counters
    );
    // The burst's 20 requests do count as polling; no volley does.
    let volley_pollers: Vec<_> = st
        .unicast_polling_clients
        .iter()
        .filter(|p| p.address != IpAddr::V4(h2.addr()))
        .collect();
    assert!(
        volley_pollers.is_empty(),
        "a 6-request volley is not unicast polling: {volley_pollers:?}"
    );
    eprintln!(
        "rate limit: 200 sources x 6 requests sent over {} ms; total {:?}",
        many.send_span_ms,
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 5. Interleaved broadcasts (RFC 9769, ntpd `xleave`).
// ---------------------------------------------------------------------------

/// The capture time of a packet as an NTP timestamp.
fn ntp_time(epoch: Duration) -> NtpTimestamp {
    let secs = i64::try_from(epoch.as_secs()).expect("capture time fits");
    NtpTimestamp::from_unix(secs, epoch.subsec_nanos())
}

#[test]
fn interleaved_broadcasts_carry_the_previous_packets_kernel_transmit_time() {
    lab_required("interleaved_broadcasts_carry_the_previous_packets_kernel_transmit_time");
    const POLL: u8 = 1;
    // Kernel transmit stamp vs. the transmit field (read just before the
    // MAC and the send) and vs. tcpdump's stamp in the listener's host.
    const CLOSE: f64 = 0.005;
    let work = tempfile::tempdir().expect("temp dir");
    let keys = keys();
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    let capture = h2
        .capture(NTP_PORT, &work.path().join("xleave.pcap"))
        .expect("start tcpdump in h2");
    let body = format!(
        "lab-allow-fast-poll = true\n{}{}",
        destination(&GROUP.to_string(), 3, POLL, "interleave = true\n"),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    // Calibration requests answered from the same address meanwhile: their
    // replies must not be taken for broadcasts' transmit times.
    let volley = probe(
        &h2,
        &ProbeArgs {
            target: server.addr(),
            keys: vectors::keys_file(),
            key: Some(3),
            sources: vec![IpAddr::V4(h2.addr())],
            source_port: 0,
            count: 5,
            spacing: Duration::from_millis(1500),
            wait: Duration::from_secs(1),
            poll: 6,
        },
    );
    let answered = volley.sources[0]
        .replies
        .iter()
        .filter(|r| r.is_valid_time_reply())
        .count();
    assert_eq!(answered, 5, "the volley is answered: {volley:?}");
    wait_for(
        "7 interleaved broadcasts",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (server.status().destinations[0].sent >= 7).then_some(()),
        || server.log(),
    );
    let raw = stop_capture(capture);
    let packets = parse_all(&raw);
    let group = SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT);
    let bcasts = broadcasts(&packets, server.addr(), group);
    assert!(bcasts.len() >= 7, "7 broadcasts captured: {}", bcasts.len());
    for b in &bcasts {
        assert!(
            b.auth(&keys).is_valid() && b.key_id() == Some(3),
            "every interleaved broadcast verifies with key 3: {}",
            b.auth(&keys)
        );
    }
    assert!(
        bcasts[0].d.header.origin.is_zero(),
        "the first packet has no previous one: origin 0, got {}",
        bcasts[0].d.header.origin
    );
    let mut report = Vec::new();
    for w in bcasts.windows(2) {
        let (n, next) = (&w[0].d.header, &w[1].d.header);
        let origin = next.origin;
        let after_transmit = (origin - n.transmit).as_seconds_f64();
        let vs_capture = (origin - ntp_time(w[0].udp.time)).as_seconds_f64();
        report.push((after_transmit, vs_capture));
        assert!(
            origin != n.transmit,
            "packet N+1's origin is packet N's kernel transmit time, not its transmit \
             field {}",
            n.transmit
        );
        assert!(
            after_transmit > 0.0 && after_transmit < CLOSE && vs_capture.abs() < CLOSE,
            "packet N+1's origin {origin} should be packet N's kernel transmit time: \
             {after_transmit:.6} s after its transmit field {} and {vs_capture:+.6} s from \
             its capture time (want 0 .. {CLOSE} s and within {CLOSE} s)",
            n.transmit
        );
    }
    eprintln!(
        "interleave: {} broadcasts; origin(N+1) - transmit(N), origin(N+1) - capture(N) in s: \
         {report:?}",
        bcasts.len()
    );
}

// ---------------------------------------------------------------------------
// 6. Privileges dropped after binding port 123.
// ---------------------------------------------------------------------------

/// The uid and gid of `user` from /etc/passwd.
fn passwd_ids(user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .unwrap_or_else(|| {
            panic!("this test needs a user {user:?} in /etc/passwd (Debian's nobody/nogroup)")
        })
}

/// The value of `field:` in a /proc status file, whitespace-normalized.
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

#[test]
fn started_as_root_it_drops_to_nobody_after_binding_and_keeps_working() {
    lab_required("started_as_root_it_drops_to_nobody_after_binding_and_keeps_working");
    const POLL: u8 = 1;
    let (uid, gid) = passwd_ids("nobody");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    let body = format!(
        "user = \"nobody\"\nlab-allow-fast-poll = true\n{}{}",
        destination(&GROUP.to_string(), 1, POLL, ""),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    assert!(
        server.log().contains("dropped privileges"),
        "the log says so:\n{}",
        server.log()
    );

    // Every thread: the user's ids, no supplementary group but its own, no
    // capability left (setuid from root without keep-caps clears them).
    let pid = server.child().pid();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    let mut threads = 0;
    for task in tasks {
        let path = task.expect("thread entry").path().join("status");
        let Ok(status) = std::fs::read_to_string(&path) else {
            continue; // a thread that just ended
        };
        threads += 1;
        let name = status_field(&status, "Name");
        assert_eq!(
            status_field(&status, "Uid"),
            format!("{uid} {uid} {uid} {uid}"),
            "thread {name}: real, effective, saved and fs uid are nobody's"
        );
        assert_eq!(
            status_field(&status, "Gid"),
            format!("{gid} {gid} {gid} {gid}"),
            "thread {name}: gids are nogroup's"
        );
        assert_eq!(
            status_field(&status, "Groups"),
            gid.to_string(),
            "thread {name}: no other group"
        );
        for cap in ["CapEff", "CapPrm", "CapAmb"] {
            assert_eq!(
                status_field(&status, cap),
                "0000000000000000",
                "thread {name}: {cap} must be empty"
            );
        }
    }
    assert!(
        threads >= 3,
        "main, broadcast and receive threads: {threads}"
    );

    // Still broadcasting, still answering, and the control socket still
    // works (these status calls).
    let before = server.status().destinations[0].sent;
    let heard = listen(
        &h2,
        &ListenArgs {
            bind: IpAddr::V4(GROUP),
            port: NTP_PORT,
            group: Some(IpAddr::V4(GROUP)),
            iface: "eth0".into(),
            keys: vectors::keys_file(),
            duration: Duration::from_secs(10),
            max_broadcasts: Some(2),
        },
    );
    let bcasts: Vec<_> = heard.packets.iter().filter(|p| p.mode == 5).collect();
    assert_eq!(bcasts.len(), 2, "2 broadcasts within 10 s: {heard:?}");
    for p in &bcasts {
        assert!(
            p.from == server.addr() && p.auth == "valid" && p.key_id == Some(1),
            "from h1:123, signed with key 1: {p:?}"
        );
    }
    let answer = probe(
        &h2,
        &ProbeArgs::signed(
            server.addr(),
            IpAddr::V4(h2.addr()),
            1,
            Duration::from_millis(10),
        ),
    );
    let replies = &answer.sources[0].replies;
    assert!(
        replies.len() == 1 && replies[0].is_valid_time_reply() && replies[0].from == server.addr(),
        "a signed request is answered from h1:123: {replies:?}"
    );
    let st = server.status();
    assert!(
        st.destinations[0].sent >= before + 2 && st.counters.replies_sent == 1,
        "status after the drop: {st:?}"
    );
    eprintln!(
        "privileges: {threads} threads as uid {uid} gid {gid}, no capabilities; {} broadcasts, \
         1 reply",
        st.destinations[0].sent
    );
}
