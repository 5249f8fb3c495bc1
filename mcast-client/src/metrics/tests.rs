//! Unit tests of the client's exposition.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
use super::*;
use mcast_core::client::status::{CalibrationStatus, DecisionStatus, GroupStatus, SCHEMA_VERSION};
use std::collections::BTreeMap;

fn server(name: &str, state: State, tally: char) -> ServerStatus {
    ServerStatus {
        remote: "198.18.0.1".parse().unwrap(),
        name: name.into(),
        refid: "127.0.0.1".into(),
        stratum: Some(2),
        t: 'b',
        when_s: Some(3.5),
        poll_s: 64,
        reach: 0o377,
        delay_ms: Some(0.5),
        offset_ms: Some(-1.25),
        jitter_ms: Some(0.125),
        state,
        calibration: CalibrationStatus::Calibrated {
            one_way_delay_ms: 0.25,
            exchanges: 6,
            restored: false,
        },
        unicast_sent: 6,
        rejected: BTreeMap::from([("bad-mac".to_string(), 2), ("replay".to_string(), 1)]),
        tally,
        key: Some(3),
        keys: vec![3],
        last_key: Some(3),
        root_distance_ms: Some(12.0),
        accepted: 40,
        one_way_delay_ms: Some(0.25),
        calibrated: true,
        leap: Some(0),
    }
}

fn status(servers: Vec<ServerStatus>) -> ClientStatus {
    ClientStatus {
        schema: SCHEMA_VERSION,
        version: "0.1.0".into(),
        uptime_s: 100.0,
        clock_mode: ClockModeStatus::Monitor,
        offset_ms: Some(-1.25),
        selection_problem: None,
        freshest_s: Some(3.5),
        decision: Some(DecisionStatus {
            kind: "monitor".into(),
            offset_ms: -1.25,
            correction_ms: None,
            frequency_ppm: None,
            remaining_s: None,
        }),
        servers,
        rejected: BTreeMap::from([("unknown-source".to_string(), 7)]),
        frequency_ppm: 0.0,
        jitter_ms: Some(0.125),
        min_agreeing: Some(1),
        synchronized: true,
        group: Some(GroupStatus {
            silent: false,
            last_delivery_s: 3.0,
            silent_after_s: 192.0,
            silences: 0,
            rejoins: 0,
        }),
    }
}

/// Checks the text against the exposition format (the shared
/// reader) and gives every sample's value by series.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let parsed = mcast_sys::prometheus::parse(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    parsed
        .samples
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

#[test]
fn exposition_format_with_help_type_and_escaped_labels() {
    let tricky = "lab \"a\\b\"\nnext";
    let text = format_metrics(&status(vec![server(tricky, State::Tracking, '*')]));
    let samples = parse(&text);
    let l = r#"server="198.18.0.1",name="lab \"a\\b\"\nnext",key="3""#;
    let get = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
    };
    assert_eq!(
        get(&format!("mcast_client_server_offset_seconds{{{l}}}")),
        -0.00125
    );
    assert_eq!(
        get(&format!("mcast_client_server_delay_seconds{{{l}}}")),
        0.0005
    );
    assert_eq!(
        get(&format!("mcast_client_server_jitter_seconds{{{l}}}")),
        0.000125
    );
    assert_eq!(
        get(&format!("mcast_client_server_root_distance_seconds{{{l}}}")),
        0.012
    );
    assert_eq!(get(&format!("mcast_client_server_reach{{{l}}}")), 255.0);
    assert_eq!(get(&format!("mcast_client_server_selected{{{l}}}")), 1.0);
    assert_eq!(get(&format!("mcast_client_server_system_peer{{{l}}}")), 1.0);
    assert_eq!(get(&format!("mcast_client_server_falseticker{{{l}}}")), 0.0);
    assert_eq!(get(&format!("mcast_client_server_calibrated{{{l}}}")), 1.0);
    assert_eq!(
        get(&format!("mcast_client_server_one_way_delay_seconds{{{l}}}")),
        0.00025
    );
    assert_eq!(
        get(&format!("mcast_client_server_unicast_sent_total{{{l}}}")),
        6.0
    );
    assert_eq!(
        get(&format!(
            "mcast_client_server_packets_received_total{{{l}}}"
        )),
        43.0
    );
    assert_eq!(
        get(&format!(
            "mcast_client_server_packets_rejected_total{{{l},reason=\"bad-mac\"}}"
        )),
        2.0
    );
    for (state, v) in [("listening", 0.0), ("calibrating", 0.0), ("tracking", 1.0)] {
        assert_eq!(
            get(&format!(
                "mcast_client_server_state{{{l},state=\"{state}\"}}"
            )),
            v
        );
    }
    assert_eq!(
        get("mcast_client_packets_rejected_total{reason=\"unknown-source\"}"),
        7.0
    );
    assert_eq!(get("mcast_client_last_verified_broadcast_age_seconds"), 3.5);
    assert_eq!(
        get("mcast_client_clock_decision{decision=\"monitor\"}"),
        1.0
    );
    assert_eq!(get("mcast_client_clock_decision{decision=\"step\"}"), 0.0);
    assert_eq!(get("mcast_client_clock_mode{mode=\"monitor\"}"), 1.0);
    assert_eq!(get("mcast_client_offset_seconds"), -0.00125);
    assert!(text.contains("# HELP mcast_client_server_offset_seconds Filtered offset"));
    assert!(text.contains("# TYPE mcast_client_server_unicast_sent_total counter\n"));
    assert!(text.contains("# TYPE mcast_client_server_reach gauge\n"));
    assert!(
        !text.contains("\nnext"),
        "a raw line feed in a label:\n{text}"
    );
}

#[test]
fn values_not_known_yet_are_left_out() {
    let mut v = server("quiet", State::Listening, ' ');
    v.offset_ms = None;
    v.jitter_ms = None;
    v.delay_ms = None;
    v.root_distance_ms = None;
    v.when_s = None;
    v.one_way_delay_ms = None;
    v.calibrated = false;
    v.key = None;
    let mut s = status(vec![v]);
    s.offset_ms = None;
    s.freshest_s = None;
    s.decision = None;
    let text = format_metrics(&s);
    let samples = parse(&text);
    assert!(
        !text.contains("mcast_client_server_offset_seconds"),
        "{text}"
    );
    assert!(!text.contains("mcast_client_offset_seconds"), "{text}");
    assert!(!text.contains("last_verified_broadcast_age"), "{text}");
    let l = r#"server="198.18.0.1",name="quiet",key="none""#;
    assert_eq!(
        samples[&format!("mcast_client_server_state{{{l},state=\"listening\"}}")],
        1.0
    );
    assert_eq!(
        samples[&format!("mcast_client_server_calibrated{{{l}}}")],
        0.0
    );
    assert!(
        Decision::NAMES
            .iter()
            .all(|d| samples[&format!("mcast_client_clock_decision{{decision=\"{d}\"}}")] == 0.0)
    );
}

#[test]
fn several_servers_share_one_family_each() {
    let mut b = server("b", State::Calibrating, 'x');
    b.remote = "198.18.0.2".parse().unwrap();
    let text = format_metrics(&status(vec![server("a", State::Tracking, '*'), b]));
    let samples = parse(&text);
    assert_eq!(
        samples[r#"mcast_client_server_falseticker{server="198.18.0.2",name="b",key="3"}"#],
        1.0
    );
    assert_eq!(
        text.matches("# TYPE mcast_client_server_offset_seconds")
            .count(),
        1
    );
}

#[test]
fn every_rejection_reason_is_there_at_zero_per_server_and_globally() {
    let text = format_metrics(&status(vec![server("a", State::Tracking, '*')]));
    let samples = parse(&text);
    let l = r#"server="198.18.0.1",name="a",key="3""#;
    for r in Rejection::ALL {
        let series = format!(
            "mcast_client_server_packets_rejected_total{{{l},reason=\"{}\"}}",
            r.label()
        );
        let want = match r {
            Rejection::BadMac => 2.0,
            Rejection::Replay => 1.0,
            _ => 0.0,
        };
        assert_eq!(samples.get(&series), Some(&want), "{series}");
    }
    for r in GlobalRejection::ALL {
        let series = format!(
            "mcast_client_packets_rejected_total{{reason=\"{}\"}}",
            r.label()
        );
        let want = if r == GlobalRejection::UnknownSource {
            7.0
        } else {
            0.0
        };
        assert_eq!(samples.get(&series), Some(&want), "{series}");
    }
    let labels: std::collections::BTreeSet<_> = Rejection::ALL.map(Rejection::label).into();
    assert_eq!(labels.len(), Rejection::ALL.len(), "labels are distinct");
    let labels: std::collections::BTreeSet<_> =
        GlobalRejection::ALL.map(GlobalRejection::label).into();
    assert_eq!(
        labels.len(),
        GlobalRejection::ALL.len(),
        "labels are distinct"
    );
}

#[test]
fn a_reason_counted_without_a_variant_is_still_shown() {
    let mut s = status(vec![]);
    s.rejected.insert("something-new".into(), 5);
    let samples = parse(&format_metrics(&s));
    assert_eq!(
        samples.get("mcast_client_packets_rejected_total{reason=\"something-new\"}"),
        Some(&5.0)
    );
}

#[test]
fn synchronized_build_info_and_the_system_peers_figures() {
    let mut peer = server("a", State::Tracking, '*');
    peer.leap = Some(1);
    let mut other = server("b", State::Tracking, '+');
    other.remote = "198.18.0.2".parse().unwrap();
    other.stratum = Some(5);
    other.leap = Some(0);
    let mut s = status(vec![other, peer]);
    s.frequency_ppm = -12.5;
    let samples = parse(&format_metrics(&s));
    assert_eq!(samples["mcast_client_build_info{version=\"0.1.0\"}"], 1.0);
    assert_eq!(samples["mcast_client_synchronized"], 1.0);
    assert_eq!(samples["mcast_client_group_silent"], 0.0);
    assert_eq!(samples["mcast_client_group_rejoins_total"], 0.0);
    assert_eq!(samples["mcast_client_frequency_ppm"], -12.5);
    assert_eq!(samples["mcast_client_jitter_seconds"], 0.000125);
    // The system peer's stratum 2 plus one, its leap, its root distance.
    assert_eq!(samples["mcast_client_stratum"], 3.0);
    assert_eq!(samples["mcast_client_leap"], 1.0);
    assert_eq!(samples["mcast_client_root_distance_seconds"], 0.012);
    let b = r#"server="198.18.0.2",name="b",key="3""#;
    assert_eq!(samples[&format!("mcast_client_server_stratum{{{b}}}")], 5.0);
    assert_eq!(samples[&format!("mcast_client_server_leap{{{b}}}")], 0.0);

    // Nothing selected: the gauge says 0 (it never disappears), and there
    // is no system peer to take figures from.
    let mut s = status(vec![server("a", State::Tracking, ' ')]);
    s.offset_ms = None;
    s.synchronized = false;
    let samples = parse(&format_metrics(&s));
    assert_eq!(samples["mcast_client_synchronized"], 0.0);
    assert!(!samples.contains_key("mcast_client_stratum"));
    s.group = Some(mcast_core::client::status::GroupStatus {
        silent: true,
        last_delivery_s: 200.0,
        silent_after_s: 192.0,
        silences: 2,
        rejoins: 5,
    });
    let samples = parse(&format_metrics(&s));
    assert_eq!(samples["mcast_client_group_silent"], 1.0);
    assert_eq!(samples["mcast_client_group_silences_total"], 2.0);
    assert_eq!(samples["mcast_client_group_rejoins_total"], 5.0);
    s.jitter_ms = None;
    let samples = parse(&format_metrics(&s));
    assert!(!samples.contains_key("mcast_client_jitter_seconds"));
    assert!(!samples.contains_key("mcast_client_leap"));
    assert!(!samples.contains_key("mcast_client_root_distance_seconds"));
}
