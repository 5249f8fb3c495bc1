#![cfg(test)]
//! A key rollover on a live namespace LAN with no interval lost: the
//! client lists `keys = [1, 5]` for the server, the server signs with key 1
//! and `next-key = 5` from a time a few seconds ahead. Every broadcast is
//! accepted across the switch (reach stays 377, the accepted count grows
//! with the server's sent count), nothing is recalibrated (unicast_sent
//! unchanged), and from the switch on the packets on the wire carry key 5.
//! Needs root; fails loudly (never skips) without it.
//!
//! Both processes run in the test's own Lan without `CAP_SYS_TIME`, the
//! client in monitor mode; traffic stays on the Lan's bridge.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcast_core::client::association::State;
use mcast_lab::lab::{
    Daemon, GROUP, NTP_PORT, Program, broadcasts, destination, epoch_now, lab_required,
    local_source, parse_all, stop_capture, wait_for,
};
use mcast_lab::netns::Lan;

/// Seconds from the server's start to its switch to key 5: room for the
/// client to calibrate and fill its reach register (8 intervals of 2 s).
const SWITCH_AFTER: u64 = 36;
/// Intervals watched after the switch.
const AFTER: u64 = 6;

#[test]
fn a_key_rollover_loses_no_interval_and_recalibrates_nothing() {
    lab_required("a_key_rollover_loses_no_interval_and_recalibrates_nothing");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("rollover.pcap"))
        .expect("start tcpdump on the bridge");

    let switch_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + SWITCH_AFTER;
    let from = jiff::Timestamp::from_second(i64::try_from(switch_unix).expect("secs"))
        .expect("a valid time")
        .to_string();
    let server_host = lan.host(1);
    let server = Daemon::start(
        Program::Server,
        &server_host,
        work.path(),
        "server",
        NTP_PORT,
        &format!(
            "lab-allow-fast-poll = true\n{}{}",
            destination(
                &GROUP.to_string(),
                1,
                1,
                &format!("next-key = 5\nnext-key-from = \"{from}\"\n")
            ),
            local_source(3)
        ),
    );
    let server_ip = IpAddr::V4(server_host.addr());
    let client = Daemon::start(
        Program::Client,
        &lan.host(2),
        work.path(),
        "client",
        NTP_PORT,
        &format!(
            "[[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
             [calibration]\nstart-delay-max-s = 1\nrequests = 4\nspacing-s = 2\n\
             [selection]\nmin-agreeing = 1\n[clock]\nmode = \"monitor\"\n\
             [[server]]\naddress = \"{server_ip}\"\nkeys = [1, 5]\nname = \"rolling\"\n"
        ),
    );
    let diag = || {
        format!(
            "client status:\n{}\nclient log:\n{}\nserver log:\n{}",
            client.status_text(),
            client.log(),
            server.log()
        )
    };
    let row = || {
        let s = client.client_status();
        s.servers
            .iter()
            .find(|r| r.remote == server_ip)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {server_ip}: {s:#?}"))
    };
    let sent = || {
        server
            .server_status()
            .destinations
            .first()
            .map(|d| (d.sent, d.key))
            .expect("one destination")
    };

    // Calibrated, tracking, every one of the last 8 intervals heard.
    let start = wait_for(
        "the client to calibrate and reach 377",
        Duration::from_secs(SWITCH_AFTER - 4),
        Duration::from_millis(200),
        || {
            let r = row();
            (r.state == State::Tracking && r.calibration.is_calibrated() && r.reach == 0o377)
                .then_some(r)
        },
        diag,
    );
    let (sent_at_start, key_at_start) = sent();
    assert_eq!(
        key_at_start,
        Some(1),
        "before the switch the server signs with key 1"
    );
    assert_eq!(start.keys, vec![1, 5]);
    assert_eq!(start.last_key, Some(1));
    let switch = Duration::from_secs(switch_unix);
    assert!(
        epoch_now() + Duration::from_secs(4) < switch,
        "tracking before the switch, with time to spare"
    );

    // Watch every 250 ms until AFTER intervals past the switch.
    let end = switch + Duration::from_secs(2 * AFTER);
    let mut last = start.clone();
    while epoch_now() < end {
        std::thread::sleep(Duration::from_millis(250));
        let r = row();
        assert_eq!(
            r.reach,
            0o377,
            "an interval was lost at {:?}: {}",
            epoch_now(),
            diag()
        );
        assert!(
            r.rejected.is_empty(),
            "rejected {:?}: {}",
            r.rejected,
            diag()
        );
        assert_eq!(
            r.unicast_sent,
            start.unicast_sent,
            "no recalibration: {}",
            diag()
        );
        assert!(r.calibration.is_calibrated(), "{:?}", r.calibration);
        last = r;
    }
    let (sent_at_end, key_at_end) = sent();
    assert_eq!(
        key_at_end,
        Some(5),
        "after the switch the server signs with key 5"
    );
    assert_eq!(
        last.last_key,
        Some(5),
        "and the client accepts key 5: {}",
        diag()
    );
    let sent_delta = sent_at_end - sent_at_start;
    let accepted_delta = last.accepted - start.accepted;
    assert!(
        sent_delta >= (end - switch).as_secs() / 2 + 2,
        "the server kept sending: {sent_delta}"
    );
    // One accepted per interval sent (one may still be on its way).
    assert!(
        accepted_delta + 1 >= sent_delta && accepted_delta <= sent_delta + 1,
        "accepted {accepted_delta} of {sent_delta} broadcasts: {}",
        diag()
    );

    // On the wire: key 1 before the switch, key 5 from it on, none missing.
    let packets = stop_capture(capture);
    let ntp = parse_all(&packets);
    let from_server = SocketAddr::new(server_ip, NTP_PORT);
    let to_group = SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT);
    let casts = broadcasts(&ntp, from_server, to_group);
    let slack = Duration::from_millis(500);
    let before: Vec<_> = casts
        .iter()
        .filter(|p| p.udp.time + slack < switch)
        .map(|p| p.key_id())
        .collect();
    let after: Vec<_> = casts
        .iter()
        .filter(|p| p.udp.time > switch + slack)
        .map(|p| p.key_id())
        .collect();
    assert!(
        before.len() >= 8 && before.iter().all(|k| *k == Some(1)),
        "{before:?}"
    );
    assert!(
        after.len() >= usize::try_from(AFTER).unwrap_or(0) - 1
            && after.iter().all(|k| *k == Some(5)),
        "{after:?}"
    );
    let times: Vec<Duration> = casts.iter().map(|p| p.udp.time).collect();
    mcast_lab::lab::assert_intervals_within(
        "the broadcasts across the switch",
        &times,
        1,
        Duration::from_millis(300),
    );
}
