#![cfg(test)]
//! `mcast-server` with `kind = "upstream"` against a real NTP daemon: the
//! reference ntpd 4.2.8p15 on 127.0.0.1:123 in the server's own namespace
//! (its LOCAL clock driver as source, no clock control), our server next to
//! it broadcasting on the LAN, a capture on the LAN's bridge. Needs root and
//! `scripts/install-deps`; fails loudly (never skips) without them.
//!
//! Every process runs in a namespace of the test's own Lan without
//! `CAP_SYS_TIME`; the queries stay on the namespace's loopback and the
//! broadcasts on the Lan's bridge (198.18.0.0/15, 224.0.1.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mcast_core::server::status::Status;
use mcast_core::server::upstream::{MISSED_INTERVALS, REPLY_TIMEOUT};
use mcast_keys::KeyStore;
use mcast_lab::lab::{
    NTP_PORT, OurServer, destination, epoch_now, lab_required, parse_all, wait_for,
};
use mcast_lab::netns::{Lan, read_pcap_udp};
use mcast_lab::refntpd::RefNtpd;
use mcast_proto::{LeapIndicator, Mode, RefId};
use mcast_tests::vectors;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
/// Broadcast every 2 s (poll 1: fine for our own capture, not for ntpd clients).
const POLL: u8 = 1;
/// The default and smallest query interval.
const QUERY_INTERVAL: Duration = Duration::from_secs(16);

/// Our server's configuration: upstream source, one fast destination.
fn upstream_server(extra_time_source: &str) -> String {
    format!(
        "lab-allow-fast-poll = true\n{}[time-source]\nkind = \"upstream\"\n{extra_time_source}",
        destination(&GROUP.to_string(), 1, POLL, "")
    )
}

fn unsync_reason(st: &Status) -> String {
    st.unsynchronized
        .as_ref()
        .map(mcast_server::text::unsync_words)
        .unwrap_or_default()
}

#[test]
fn server_follows_reference_ntpd_then_goes_silent_when_it_stops() {
    lab_required("server_follows_reference_ntpd_then_goes_silent_when_it_stops");
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let keys = KeyStore::load(&vectors::keys_file()).expect("load the vector keys");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let h1 = lan.host(1);
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("upstream.pcap"))
        .expect("start tcpdump on the bridge");
    // LOCAL fudged to stratum 3: ntpd serves stratum 4 once synchronized
    // (after ~10 s as an orphan at stratum 15, when we must stay silent).
    let ntpd = RefNtpd::loopback_upstream(&h1, Some(3), 15)
        .expect("start reference ntpd on 127.0.0.1:123 in h1");
    let server = OurServer::start(&h1, work.path(), "h1", &upstream_server(""));

    // Until ntpd is synchronized we are not; record what status says.
    let mut reasons: Vec<String> = Vec::new();
    let st = wait_for(
        "our server to synchronize to ntpd",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let st = server.status();
            if st.synchronized {
                return Some(st);
            }
            let r = unsync_reason(&st);
            if reasons.last() != Some(&r) {
                reasons.push(r);
            }
            None
        },
        || format!("ntpd: {:?}\nserver log:\n{}", ntpd.sysvars(), server.log()),
    );
    let synced_after = started.elapsed();
    eprintln!("upstream: synchronized after {synced_after:?}; reasons before: {reasons:#?}");
    for r in &reasons {
        assert!(
            r.contains("127.0.0.1:123"),
            "an unsynchronized status names the upstream: {r:?}"
        );
    }
    let vars = ntpd.sysvars().expect("ntpq rv 0");
    let ntpd_stratum: u8 = vars["stratum"].parse().expect("ntpd stratum");
    let ntpd_leap = LeapIndicator::from_bits(u8::from_str_radix(&vars["leap"], 2).expect("leap"));
    assert_eq!(
        ntpd_stratum, 4,
        "ntpd on LOCAL at stratum 3 serves 4: {vars:?}"
    );
    assert_eq!(
        st.stratum,
        Some(ntpd_stratum + 1),
        "we announce ntpd's + 1: {st:?}"
    );
    let up = st.upstream.clone().expect("status shows the upstream");
    assert_eq!(
        up.address,
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 123))
    );
    assert_eq!(up.stratum, Some(ntpd_stratum), "{up:?}");
    let (offset, delay) = (up.offset_s.expect("offset"), up.delay_s.expect("delay"));
    assert!(
        offset.abs() < 0.005 && delay > 0.0 && delay < 0.005,
        "ntpd shares our clock and answers over loopback: offset {offset} s, delay {delay} s"
    );
    assert!(
        up.last_reply_ago_s
            .is_some_and(|a| a < QUERY_INTERVAL.as_secs_f64() + 2.0),
        "{up:?}"
    );
    let text = server.status_text();
    eprintln!("upstream: mcast-server status once synchronized:\n{text}");
    assert!(
        text.contains(&format!("synchronized, stratum {}", ntpd_stratum + 1))
            && text.contains("upstream 127.0.0.1:123:")
            && text.contains(&format!("stratum {ntpd_stratum}, offset")),
        "status shows the upstream, its stratum, offset and delay:\n{text}"
    );

    // A few broadcasts, then stop ntpd.
    wait_for(
        "3 broadcasts",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || (server.status().destinations[0].sent >= 3).then_some(()),
        || format!("{:?}", server.status()),
    );
    ntpd.stop().expect("stop ntpd");
    let stopped = Instant::now();
    let stopped_epoch = epoch_now();
    let st = wait_for(
        "our server to declare itself unsynchronized after ntpd stopped",
        Duration::from_secs(80),
        Duration::from_millis(250),
        || {
            let st = server.status();
            (!st.synchronized).then_some(st)
        },
        || server.log(),
    );
    let unsync_after = stopped.elapsed();
    let unsync_epoch = epoch_now();
    let limit = QUERY_INTERVAL * MISSED_INTERVALS + REPLY_TIMEOUT;
    // The last good reply came at most one query interval before the stop.
    assert!(
        unsync_after + QUERY_INTERVAL + Duration::from_secs(1) >= limit
            && unsync_after <= limit + Duration::from_secs(3),
        "unsynchronized {unsync_after:?} after ntpd stopped; documented: {limit:?} after the \
         last good reply"
    );
    let reason = unsync_reason(&st);
    assert!(
        reason.contains("no usable reply from upstream 127.0.0.1:123 for more than 50 s")
            && (reason.contains("connection refused") || reason.contains("no reply")),
        "status says why: {reason:?}"
    );
    let skipped_before = st.destinations[0].skipped;
    let st = wait_for(
        "2 silent intervals",
        Duration::from_secs(10),
        Duration::from_millis(250),
        || {
            let st = server.status();
            (st.destinations[0].skipped >= skipped_before + 2).then_some(st)
        },
        || format!("{:?}", server.status()),
    );
    let problem = st.destinations[0]
        .last_problem
        .as_ref()
        .map(|p| mcast_server::text::silence_words(p, None))
        .unwrap_or_default();
    assert!(
        problem.contains("127.0.0.1:123"),
        "the skipped interval says why: {problem:?}"
    );
    eprintln!(
        "upstream: mcast-server status after ntpd stopped:\n{}",
        server.status_text()
    );
    let log = server.log();
    assert!(
        log.contains("not synchronized: no usable reply from upstream 127.0.0.1:123"),
        "the log says so:\n{log}"
    );
    let pcap = capture.stop().expect("stop tcpdump");
    let raw = read_pcap_udp(&pcap).expect("read the capture");
    let packets = parse_all(&raw);
    let from = SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT);
    let bcasts: Vec<_> = packets
        .iter()
        .filter(|p| p.udp.src == from && p.mode() == Mode::Broadcast)
        .collect();
    assert!(bcasts.len() >= 3, "at least 3 broadcasts captured");
    for b in &bcasts {
        let h = &b.d.header;
        assert!(b.auth(&keys).is_valid(), "signed with key 1");
        assert_eq!(
            (h.leap, h.stratum, h.reference_id),
            (ntpd_leap, ntpd_stratum + 1, RefId([127, 0, 0, 1])),
            "every broadcast: ntpd's leap, its stratum + 1, refid 127.0.0.1 (none sent while \
             ntpd was an orphan at stratum 15)"
        );
        let root_delay = h.root_delay.as_seconds_f64();
        assert!(
            root_delay > 0.0 && root_delay < 0.005,
            "root delay = ntpd's (0) + the loopback round trip: {root_delay}"
        );
        assert!(
            h.root_dispersion.as_seconds_f64() > 0.0,
            "root dispersion accumulates"
        );
        let age = h.transmit - h.reference;
        assert!(
            !h.reference.is_zero() && age.as_seconds_f64() >= 0.0 && age.as_seconds_f64() < 60.0,
            "reference time = ntpd's recent reference time: {} (transmit {})",
            h.reference,
            h.transmit
        );
        assert!(
            b.udp.time <= unsync_epoch + Duration::from_secs(1),
            "no broadcast after we became unsynchronized ({:?} > {unsync_epoch:?})",
            b.udp.time
        );
    }
    let after_stop = bcasts.iter().filter(|b| b.udp.time > stopped_epoch).count();
    eprintln!(
        "upstream: {} broadcasts ({after_stop} after ntpd stopped), unsynchronized {unsync_after:?} \
         after the stop: {reason}; total {:?}",
        bcasts.len(),
        started.elapsed()
    );
    assert!(
        after_stop >= 10,
        "we keep broadcasting on the last good reply until the limit: {after_stop}"
    );
}

#[test]
fn upstream_at_stratum_14_is_refused_and_send_alarm_says_so() {
    lab_required("upstream_at_stratum_14_is_refused_and_send_alarm_says_so");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let h1 = lan.host(1);
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("stratum14.pcap"))
        .expect("start tcpdump on the bridge");
    // No source at all: ntpd stays an orphan at stratum 14 (leap 0).
    let ntpd = RefNtpd::loopback_upstream(&h1, None, 14)
        .expect("start reference ntpd on 127.0.0.1:123 in h1");
    let server = OurServer::start(
        &h1,
        work.path(),
        "h1",
        &upstream_server("unsynchronized = \"send-alarm\"\n"),
    );
    let st = wait_for(
        "status to refuse the stratum-14 upstream and 3 alarms sent",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let st = server.status();
            (unsync_reason(&st).contains("stratum 14") && st.destinations[0].sent >= 3)
                .then_some(st)
        },
        || format!("{:?}\nntpd: {:?}", server.status(), ntpd.sysvars()),
    );
    assert_eq!(ntpd.sysvars().expect("ntpq")["stratum"], "14");
    let reason = unsync_reason(&st);
    assert!(
        reason.contains("upstream 127.0.0.1:123 is at stratum 14: we would announce 15")
            && reason.contains("refuse stratum 15"),
        "{reason}"
    );
    let up = st.upstream.clone().expect("status shows the upstream");
    assert!(
        up.replies >= 1 && up.stratum.is_none(),
        "replies came, none usable: {up:?}"
    );
    let text = server.status_text();
    assert!(
        text.contains("NOT synchronized: upstream 127.0.0.1:123 is at stratum 14")
            && text.contains("no usable reply yet"),
        "{text}"
    );
    let pcap = capture.stop().expect("stop tcpdump");
    let raw = read_pcap_udp(&pcap).expect("read the capture");
    let from = SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT);
    let alarms: Vec<_> = parse_all(&raw)
        .into_iter()
        .filter(|p| p.udp.src == from && p.mode() == Mode::Broadcast)
        .map(|p| (p.d.header.leap, p.d.header.stratum))
        .collect();
    assert!(
        alarms.len() >= 3
            && alarms
                .iter()
                .all(|&a| a == (LeapIndicator::Unsynchronized, 16)),
        "send-alarm: LI=3, stratum 16 only: {alarms:?}"
    );
}
