#![cfg(test)]
//! "A flood of junk on port 123 never delays a broadcast; malformed packets
//! are counted and dropped." `mcast-server run` in h1 (two receive threads,
//! broadcasts every 2 s from their own thread) is flooded from h3 with
//! malformed datagrams (`ntp-load --junk`, bounded in rate and time) while
//! tcpdump in h2 records when each broadcast arrives (kernel timestamps).
//!
//! Its own test binary, so that no other lab test runs during the flood.
//! Needs root and `scripts/install-deps`; fails loudly without them. All
//! traffic stays on the test's own Lan (198.18.0.0/15, 224.0.1.1).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mcast_lab::lab::{
    GROUP, NTP_PORT, OurServer, assert_intervals_within, broadcasts, destination, epoch_now, keys,
    lab_required, local_source, parse_all, stop_capture, tool_bin, wait_for,
};
use mcast_lab::netns::Lan;

/// Broadcast interval, log2 s (2 s: a lab-only poll).
const POLL: u8 = 1;
/// How long the flood lasts.
const FLOOD: Duration = Duration::from_secs(14);
/// Scheduling and capture tolerance on top of 2^poll + jitter (the other
/// lab tests allow 300 ms without a flood).
const SLACK: Duration = Duration::from_millis(100);

/// CPU time (user + system, all threads) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f[11] + f[12]
}

#[test]
fn junk_flood_is_counted_and_dropped_and_never_delays_a_broadcast() {
    lab_required("junk_flood_is_counted_and_dropped_and_never_delays_a_broadcast");
    let work = tempfile::tempdir().expect("temp dir");
    let keys = keys();
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let capture = h2
        .capture(NTP_PORT, &work.path().join("flood.pcap"))
        .expect("start tcpdump in h2");
    let body = format!(
        "lab-allow-fast-poll = true\n{}{}[responder]\nrequire-auth = false\nworkers = 2\n",
        destination(&GROUP.to_string(), 3, POLL, ""),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    let target = server.addr();
    // A broadcast before the flood, so every flood interval has a start.
    wait_for(
        "the first broadcast",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (server.status().destinations[0].sent >= 1).then_some(()),
        || server.log(),
    );

    let cpu0 = cpu_ticks(server.child().pid());
    let flood_start = epoch_now();
    let out = h3
        .exec(
            &tool_bin("ntp-load"),
            &[
                "--junk",
                "--server",
                &target.to_string(),
                "--sources",
                "1",
                "--sockets",
                "4",
                "--rate",
                "2000000",
                "--seconds",
                &FLOOD.as_secs().to_string(),
            ],
        )
        .expect("run ntp-load --junk in h3");
    let flood_end = epoch_now();
    let cpu = cpu_ticks(server.child().pid()) - cpu0;
    assert!(
        out.status.success(),
        "ntp-load --junk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let load: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("ntp-load prints JSON");
    let sent = load["sent"].as_u64().expect("sent");
    let answered = load["invalid"].as_u64().expect("invalid");
    // One more interval, so the last one of the flood is complete.
    std::thread::sleep(Duration::from_secs(3));
    let st = server.status();
    let raw = stop_capture(capture);
    let packets = parse_all(&raw);
    let group = SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT);
    let bcasts = broadcasts(&packets, target, group);
    let times: Vec<Duration> = bcasts.iter().map(|b| b.udp.time).collect();

    let hz = 100.0; // USER_HZ: /proc reports clock ticks of 10 ms on Linux
    let cpu_share = cpu as f64 / hz / (flood_end - flood_start).as_secs_f64();
    let c = &st.counters;
    eprintln!(
        "flood: {sent} junk datagrams in {:?} ({:.0}/s) from h3; server counted {} received, \
         {} bad format, used {:.0} % of a CPU; {} broadcasts captured in h2 at {:?}",
        flood_end - flood_start,
        sent as f64 / (flood_end - flood_start).as_secs_f64(),
        c.received,
        c.bad_format,
        cpu_share * 100.0,
        times.len(),
        times
    );

    // Malformed packets are counted and dropped.
    assert!(
        sent >= 100_000,
        "the flood should be a flood: {sent} datagrams in {FLOOD:?}"
    );
    assert!(
        c.bad_format >= sent / 10 && c.bad_format <= sent && c.received == c.bad_format,
        "the server counts what it received of the {sent} junk datagrams as bad format \
         (some may be dropped by the kernel under the flood): {c:?}"
    );
    assert_eq!(
        (c.replies_sent, c.kod_sent, c.crypto_naks_sent, answered),
        (0, 0, 0, 0),
        "junk gets no answer of any kind: {c:?}"
    );

    // Broadcasts: on time all along, each signed.
    let during: Vec<Duration> = times
        .iter()
        .copied()
        .filter(|t| *t >= flood_start && *t <= flood_end)
        .collect();
    let expected = FLOOD.as_secs() / (1 << POLL) - 1;
    assert!(
        during.len() as u64 >= expected,
        "at least {expected} broadcasts during the {FLOOD:?} flood, got {} at {times:?}",
        during.len()
    );
    for b in &bcasts {
        assert!(
            b.auth(&keys).is_valid() && b.key_id() == Some(3),
            "every broadcast verifies with key 3: {}",
            b.auth(&keys)
        );
    }
    assert_intervals_within("broadcasts during the junk flood", &times, POLL, SLACK);
    assert!(
        st.destinations[0].skipped == 0 && st.destinations[0].last_problem.is_none(),
        "no interval skipped: {:?}",
        st.destinations
    );
}
