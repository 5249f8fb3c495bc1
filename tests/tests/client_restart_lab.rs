#![cfg(test)]
//! Issue 15: what a client persists survives a restart on a real LAN.
//!
//! A monitor-mode client with a state directory calibrates against our
//! server on a namespace LAN while the bridge is recorded, and is stopped
//! the way systemd stops it (SIGTERM). Restarted within the reuse age
//! (a day), it takes back the calibration: it tracks the server from its
//! first broadcast with the restored delay and sends no unicast request
//! at all (checked in its status and on the bridge). Its replay floor is
//! kept as well: a keyless host replays the recording made before the
//! restart into the restarted client (with the server's source address,
//! at the broadcast cadence), and every replayed packet is counted as
//! `replay` while the offset stays within the LAN's normal error.
//!
//! Needs root; fails loudly (never skips) without it. Every process runs
//! in the test's own Lan without `CAP_SYS_TIME`, the client in monitor
//! mode; traffic stays on the Lan's bridge (198.18.0.0/15, 224.0.1.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use mcast_core::client::association::State;
use mcast_core::client::status::CalibrationStatus;
use mcast_lab::lab::{
    Attacker, Daemon, GROUP, NTP_PORT, Program, destination, lab_required, local_source, parse_all,
    rejected, server_row as row, stop_capture, wait_for,
};
use mcast_lab::netns::{Host, Lan, UdpDatagram};
use mcast_proto::Mode;

/// The error a client on this LAN normally has, ms.
const NORMAL_ERROR_MS: f64 = 5.0;

/// A monitor-mode client of `server` (key 1) keeping its state in `state`.
fn client(host: &Host, work: &Path, name: &str, server: Ipv4Addr, state: &Path) -> Daemon {
    let body = format!(
        "state-directory = {state:?}\n\
         [[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
         [calibration]\nstart-delay-max-s = 1\nrequests = 4\nspacing-s = 2\nretries = 1\n\
         [selection]\nmin-agreeing = 1\n\
         [clock]\nmode = \"monitor\"\n\
         [[server]]\naddress = \"{server}\"\nkey = 1\n"
    );
    Daemon::start(Program::Client, host, work, name, NTP_PORT, &body)
}

#[test]
fn a_restarted_client_reuses_its_calibration_and_its_replay_floor() {
    lab_required("a_restarted_client_reuses_its_calibration_and_its_replay_floor");
    let work = tempfile::tempdir().expect("temp dir");
    let state = work.path().join("state");
    std::fs::create_dir(&state).expect("state directory");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let recording = work.path().join("before.pcap");
    let capture = lan
        .capture_switch(NTP_PORT, &recording)
        .expect("tcpdump on the bridge");
    let server = Daemon::start(
        Program::Server,
        &h1,
        work.path(),
        "server",
        NTP_PORT,
        &format!(
            "lab-allow-fast-poll = true\n{}{}",
            destination(&GROUP.to_string(), 1, 1, ""),
            local_source(2)
        ),
    );

    // First life: calibrate (4 requests), then stop as systemd does.
    let first = client(&h2, work.path(), "client", h1.addr(), &state);
    let calibrated = wait_for(
        "the first client to track with a measured delay",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let r = row(&first.client_status(), h1.addr());
            (r.state == State::Tracking && r.calibrated && r.accepted >= 8).then_some(r)
        },
        || format!("{}\n{}", first.status_text(), first.log()),
    );
    assert_eq!(calibrated.unicast_sent, 4, "one volley: {calibrated:#?}");
    let CalibrationStatus::Calibrated {
        one_way_delay_ms: delay_before,
        restored: false,
        ..
    } = calibrated.calibration.clone()
    else {
        panic!("measured, not restored: {:?}", calibrated.calibration);
    };
    first.stop();
    drop(first);
    let packets_before = stop_capture(capture);
    let saved = std::fs::read_to_string(state.join("client-state.json"))
        .expect("the client wrote its state at exit");
    let saved: serde_json::Value = serde_json::from_str(&saved).expect("state is JSON");
    let entry = &saved["servers"][0];
    assert_eq!(entry["address"], h1.addr().to_string(), "{saved:#}");
    assert!(
        entry["last_transmit"].as_u64().unwrap_or(0) > 0,
        "{saved:#}"
    );
    assert!(entry["calibration"]["one_way_ns"].is_i64(), "{saved:#}");

    // Second life, with the bridge recorded again: no unicast from h2.
    let after = work.path().join("after.pcap");
    let capture = lan
        .capture_switch(NTP_PORT, &after)
        .expect("tcpdump on the bridge");
    let restart = Instant::now();
    let second = client(&h2, work.path(), "client-restarted", h1.addr(), &state);
    let diag = || {
        format!(
            "client status:\n{}\nclient log:\n{}\nserver log:\n{}",
            second.status_text(),
            second.log(),
            server.log()
        )
    };
    let tracked = wait_for(
        "the restarted client to track from its first broadcast",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || {
            let r = row(&second.client_status(), h1.addr());
            (r.state == State::Tracking && r.offset_ms.is_some()).then_some(r)
        },
        diag,
    );
    let CalibrationStatus::Calibrated {
        one_way_delay_ms: delay_after,
        restored,
        ..
    } = tracked.calibration.clone()
    else {
        panic!("calibrated after the restart: {}", diag());
    };
    assert!(restored, "the delay is the restored one: {}", diag());
    assert!(
        (delay_after - delay_before).abs() < 1e-6,
        "restored {delay_after} ms, measured {delay_before} ms before"
    );

    // The recording of the first life, replayed into the second one.
    let attacker = Attacker::start(
        &h3,
        work.path(),
        "replay",
        &[
            "replay-startup",
            "--server",
            &h1.addr().to_string(),
            "--pcap",
            &recording.to_string_lossy(),
            "--count",
            "8",
            "--duration-s",
            "30",
        ]
        .map(String::from),
    );
    let mut worst = 0f64;
    while attacker.is_running() && restart.elapsed() < Duration::from_secs(60) {
        let s = second.client_status();
        for o in [s.offset_ms, row(&s, h1.addr()).offset_ms]
            .into_iter()
            .flatten()
        {
            worst = worst.max(o.abs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let replayed = attacker.finish(Duration::from_secs(10));
    assert!(
        replayed.sent >= 6,
        "the attacker replayed too little: {replayed:?}"
    );
    let s = second.client_status();
    let r = row(&s, h1.addr());
    assert!(
        worst < NORMAL_ERROR_MS,
        "the replay moved the restarted client: worst |offset| {worst:.2} ms\n{}",
        diag()
    );
    assert!(
        rejected(&r, &s, "replay") >= replayed.sent.saturating_sub(1),
        "{} of {} replayed packets counted as `replay`: {:?}\n{}",
        rejected(&r, &s, "replay"),
        replayed.sent,
        r.rejected,
        diag()
    );
    assert_eq!(r.state, State::Tracking, "{}", diag());
    assert_eq!(r.unicast_sent, 0, "no second volley: {}", diag());
    assert!(
        r.accepted > tracked.accepted,
        "the genuine stream is still followed: {}",
        diag()
    );

    // On the wire: the first life's 4 requests, none from the second.
    let requests = |packets: &[UdpDatagram]| {
        parse_all(packets)
            .iter()
            .filter(|p| {
                p.mode() == Mode::Client
                    && p.udp.src.ip() == IpAddr::V4(h2.addr())
                    && p.udp.dst == SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT)
            })
            .count()
    };
    assert_eq!(requests(&packets_before), 4, "the first life's volley");
    let packets_after = stop_capture(capture);
    assert_eq!(
        requests(&packets_after),
        0,
        "the restarted client sent a request: {}",
        diag()
    );
}
