//! Unit tests of the check verdict, one per finding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
use super::*;
use mcast_core::client::status::{
    CalibrationStatus, ClockModeStatus, DecisionStatus, FailureStatus, GroupStatus, SCHEMA_VERSION,
    ServerStatus,
};
use std::collections::BTreeMap;

fn server(addr: &str, tally: char) -> ServerStatus {
    ServerStatus {
        remote: addr.parse().unwrap(),
        name: format!("s-{addr}"),
        refid: "LOCL".into(),
        stratum: Some(2),
        t: 'b',
        when_s: Some(1.0),
        poll_s: 16,
        reach: 0o377,
        delay_ms: Some(0.4),
        offset_ms: Some(0.1),
        jitter_ms: Some(0.05),
        state: State::Tracking,
        calibration: CalibrationStatus::Calibrated {
            one_way_delay_ms: 0.2,
            exchanges: 6,
            restored: false,
        },
        unicast_sent: 6,
        rejected: BTreeMap::new(),
        tally,
        key: Some(1),
        keys: vec![1],
        last_key: Some(1),
        root_distance_ms: Some(1.0),
        accepted: 10,
        one_way_delay_ms: Some(0.2),
        calibrated: true,
        leap: Some(0),
    }
}

/// Two calibrated servers, both selected, 0.1 ms offset, fresh.
fn healthy() -> ClientStatus {
    ClientStatus {
        schema: SCHEMA_VERSION,
        version: "0.1.0".into(),
        uptime_s: 600.0,
        clock_mode: ClockModeStatus::Monitor,
        offset_ms: Some(0.1),
        selection_problem: None,
        freshest_s: Some(3.0),
        decision: Some(DecisionStatus {
            kind: "monitor".into(),
            offset_ms: 0.1,
            correction_ms: None,
            frequency_ppm: None,
            remaining_s: None,
        }),
        servers: vec![server("198.18.0.1", '*'), server("198.18.0.2", '+')],
        rejected: BTreeMap::new(),
        frequency_ppm: 0.0,
        jitter_ms: Some(0.05),
        min_agreeing: Some(2),
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

fn run(s: &ClientStatus) -> Verdict {
    verdict(s, &Thresholds::default())
}

#[test]
fn healthy_is_ok_with_every_perfdata_figure() {
    let v = run(&healthy());
    assert_eq!(v.findings, vec![]);
    assert_eq!(v.severity(), Severity::Ok);
    let (code, text) = render(&v, &Thresholds::default());
    assert_eq!(code, 0);
    assert!(
        text.starts_with(
            "OK - offset 0.000100 s, 2 of 2 servers selected, last broadcast 3 s ago|"
        ),
        "{text}"
    );
    let perf = text.split_once('|').unwrap().1;
    assert_eq!(
        perf,
        "offset=0.000100s;0.005;0.05 jitter=0.000050s;0.002 selected=2;2:;;0 \
         age=3.0s;64;128;0 stratum=3;5;;0;16"
    );
}

#[test]
fn an_uncalibrated_selected_server_is_a_warning() {
    let mut s = healthy();
    s.servers[1].calibrated = false;
    s.servers[1].one_way_delay_ms = Some(4.0);
    s.servers[1].calibration = CalibrationStatus::Fallback {
        one_way_delay_ms: 4.0,
        failure: Some(FailureStatus::NoReply {
            requests: 6,
            server: None,
            source_port: None,
        }),
        volleys: Some(4),
    };
    let v = run(&s);
    assert_eq!(
        v.findings,
        vec![Finding::Uncalibrated {
            server: "198.18.0.2".parse().unwrap(),
            name: "s-198.18.0.2".into(),
            one_way_delay_ms: Some(4.0),
        }]
    );
    let (code, text) = render(&v, &Thresholds::default());
    assert_eq!(code, 1);
    assert!(
        text.starts_with(
            "WARNING - s-198.18.0.2 (198.18.0.2) is tracked on the fallback delay \
             (4.000 ms assumed, uncalibrated); offset"
        ),
        "{text}"
    );
    // Not selected (a falseticker, say): not this check's business.
    s.servers[1].tally = 'x';
    assert!(
        !run(&s)
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Uncalibrated { .. }))
    );
}

#[test]
fn calibrating_is_not_the_fallback() {
    let mut s = healthy();
    s.servers[1].calibrated = false;
    s.servers[1].state = State::Calibrating;
    assert_eq!(run(&s).findings, vec![]);
}

#[test]
fn too_few_selected_for_min_agreeing_is_a_warning() {
    let mut s = healthy();
    s.min_agreeing = Some(3);
    s.servers.push(server("198.18.0.3", '-'));
    let v = run(&s);
    assert_eq!(
        v.findings,
        vec![Finding::TooFewAgreeing {
            selected: 2,
            min_agreeing: 3
        }]
    );
    assert_eq!(v.severity(), Severity::Warning);
    assert!(
        render(&v, &Thresholds::default())
            .1
            .contains("selected=2;3:;;0")
    );
    // The command line may say otherwise than the running client.
    let t = Thresholds {
        min_agreeing: Some(2),
        ..Thresholds::default()
    };
    assert_eq!(verdict(&s, &t).findings, vec![]);
}

#[test]
fn stale_multicast_warns_then_goes_critical_in_intervals() {
    // Longest interval 16 s: warning after 4 intervals, critical after 8.
    let mut s = healthy();
    s.freshest_s = Some(64.0);
    assert_eq!(run(&s).findings, vec![]);
    s.freshest_s = Some(65.0);
    assert_eq!(
        run(&s).findings,
        vec![Finding::Stale {
            age_s: 65.0,
            limit_s: 64.0,
            severity: Severity::Warning
        }]
    );
    s.freshest_s = Some(129.0);
    let v = run(&s);
    assert_eq!(v.severity(), Severity::Critical);
    assert_eq!(
        v.findings,
        vec![Finding::Stale {
            age_s: 129.0,
            limit_s: 128.0,
            severity: Severity::Critical
        }]
    );
    let t = Thresholds {
        stale_warning_intervals: 2.0,
        ..Thresholds::default()
    };
    s.freshest_s = Some(40.0);
    assert_eq!(verdict(&s, &t).severity(), Severity::Warning);
}

#[test]
fn no_broadcast_yet_and_nothing_selected_are_critical_with_perfdata() {
    let mut s = healthy();
    s.freshest_s = None;
    s.offset_ms = None;
    s.jitter_ms = None;
    s.selection_problem = Some(NoSelection::TooFewAgreeing {
        agreeing: 1,
        needed: 2,
        too_far: 0,
        max_root_distance_s: 1.5,
    });
    for v in &mut s.servers {
        v.tally = ' ';
    }
    let v = run(&s);
    assert_eq!(
        v.findings,
        vec![
            Finding::NoBroadcastYet,
            Finding::NothingSelected {
                reason: Some(NoSelection::TooFewAgreeing {
                    agreeing: 1,
                    needed: 2,
                    too_far: 0,
                    max_root_distance_s: 1.5,
                })
            }
        ]
    );
    let (code, text) = render(&v, &Thresholds::default());
    assert_eq!(code, 2);
    assert!(text.contains("min-agreeing requires 2"), "{text}");
    assert!(
        text.ends_with(
            "|offset=Us;0.005;0.05 jitter=Us;0.002 selected=0;2:;;0 age=Us;64;128;0 stratum=U;5;;0;16"
        ),
        "{text}"
    );
}

#[test]
fn offset_thresholds_are_on_its_magnitude() {
    let mut s = healthy();
    s.offset_ms = Some(-6.0);
    assert_eq!(
        run(&s).findings,
        vec![Finding::Offset {
            offset_s: -0.006,
            limit_s: 0.005,
            severity: Severity::Warning
        }]
    );
    s.offset_ms = Some(50.0);
    assert_eq!(run(&s).severity(), Severity::Critical);
}

#[test]
fn jitter_above_its_threshold_is_a_warning() {
    let mut s = healthy();
    s.jitter_ms = Some(2.5);
    assert_eq!(
        run(&s).findings,
        vec![Finding::Jitter {
            jitter_s: 0.0025,
            limit_s: 0.002
        }]
    );
    let t = Thresholds {
        jitter_warning_s: 0.003,
        ..Thresholds::default()
    };
    assert_eq!(verdict(&s, &t).findings, vec![]);
}

#[test]
fn the_clients_stratum_above_its_threshold_is_a_warning() {
    // The system peer is stratum 5: the client is 6.
    let mut s = healthy();
    s.servers[0].stratum = Some(5);
    assert_eq!(
        run(&s).findings,
        vec![Finding::Stratum {
            stratum: 6,
            limit: 5
        }]
    );
    let t = Thresholds {
        stratum_warning: 6,
        ..Thresholds::default()
    };
    assert_eq!(verdict(&s, &t).findings, vec![]);
}

#[test]
fn the_worst_finding_comes_first_and_decides() {
    let mut s = healthy();
    s.servers[0].calibrated = false;
    s.offset_ms = Some(80.0);
    let v = run(&s);
    assert_eq!(v.severity(), Severity::Critical);
    assert!(matches!(v.findings[0], Finding::Offset { .. }), "{v:?}");
    assert!(
        matches!(v.findings[1], Finding::Uncalibrated { .. }),
        "{v:?}"
    );
    assert!(
        render(&v, &Thresholds::default())
            .1
            .starts_with("CRITICAL - offset +0.080000 s beyond 0.05 s; ")
    );
}

#[test]
fn unknown_names_its_cause_and_still_has_perfdata() {
    let (code, text) = render_unknown(
        "no answer from /run/mcast-ntp/client.sock: No such file or directory",
        &Thresholds::default(),
    );
    assert_eq!(code, 3);
    assert!(
        text.starts_with("UNKNOWN - no answer from /run/mcast-ntp/client.sock: No such file"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "|offset=Us;0.005;0.05 jitter=Us;0.002 selected=U;1:;;0 age=Us;;;0 stratum=U;5;;0;16"
        ),
        "{text}"
    );
}

#[test]
fn a_silent_group_is_critical_and_says_why_it_may_be() {
    let mut s = healthy();
    s.group = Some(GroupStatus {
        silent: true,
        last_delivery_s: 200.0,
        silent_after_s: 192.0,
        silences: 1,
        rejoins: 2,
    });
    let v = run(&s);
    assert_eq!(
        v.findings.first(),
        Some(&Finding::GroupSilent {
            last_delivery_s: 200.0,
            silent_after_s: 192.0,
            rejoins: 2
        })
    );
    let (code, text) = render(&v, &Thresholds::default());
    assert_eq!(code, 2, "{text}");
    assert!(
        text.starts_with("CRITICAL - multicast group silent for 200 s"),
        "{text}"
    );
    for cause in ["querier", "snooping", "TTL", "interface"] {
        assert!(text.contains(cause), "names {cause}: {text}");
    }
    // Back: the same status with the group delivering is OK again.
    s.group = Some(GroupStatus {
        silent: false,
        last_delivery_s: 1.0,
        silent_after_s: 192.0,
        silences: 1,
        rejoins: 2,
    });
    assert_eq!(run(&s).severity(), Severity::Ok);
}
