//! The `status --json` documents of both daemons are a versioned schema
//! (docs/status-json.md). This test serializes documents that hold every
//! variant of every typed field, reduces them to their shape (each path, its
//! JSON type and, for enumerations, its values) and compares it with the
//! shape recorded for the current `SCHEMA_VERSION` in
//! docs/status-json/v<N>.shape. A change of shape without a new version
//! fails here; so does a new enum variant left out of the samples (the
//! `witness_*` matches below stop compiling).
//!
//! To record a new version: raise `SCHEMA_VERSION` in
//! core/src/client/status.rs, run this test with `STATUS_SCHEMA_WRITE=1`
//! (it writes only a file that does not exist yet), and describe the change
//! in docs/status-json.md. Earlier versions' files stay.
#![allow(clippy::panic, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use mcast_core::client::association::State;
use mcast_core::client::discipline::Decision;
use mcast_core::client::select::NoSelection;
use mcast_core::client::status::{
    CalibrationStatus, ClientStatus, ClockModeStatus, DecisionStatus, FailureStatus, GroupStatus,
    ReplyProblemStatus, SCHEMA_VERSION, ServerStatus,
};
use mcast_core::server::broadcaster::Silence;
use mcast_core::server::responder::ResponderCounters;
use mcast_core::server::status::{
    ClientStatus as TopClient, DestinationStatus, PollerStatus, Status,
};
use mcast_core::server::sync::Unsync;
use mcast_core::server::upstream::{UpstreamProblem, UpstreamReport};
use serde_json::Value;

/// Fields whose string values are an enumeration: their values are part of
/// the shape.
const ENUM_FIELDS: [&str; 6] = ["kind", "phase", "state", "clock_mode", "t", "tally"];
/// Fields that are maps with free keys (reason labels).
const MAP_FIELDS: [&str; 1] = ["rejected"];

fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            // Internally tagged enums: children are filed under the tag.
            let tag = ["kind", "phase"]
                .iter()
                .find_map(|t| {
                    m.get(*t)
                        .and_then(Value::as_str)
                        .map(|v| format!("<{t}={v}>"))
                })
                .unwrap_or_default();
            let here = format!("{path}{tag}");
            out.insert(format!("{here}: object"));
            for (k, child) in m {
                let p = format!("{here}.{k}");
                if MAP_FIELDS.contains(&k.as_str()) {
                    out.insert(format!("{p}: map"));
                    if let Value::Object(entries) = child {
                        for e in entries.values() {
                            shape(e, &format!("{p}{{*}}"), out);
                        }
                    }
                } else {
                    shape(child, &p, out);
                }
                if ENUM_FIELDS.contains(&k.as_str())
                    && let Value::String(s) = child
                {
                    out.insert(format!("{p} = {s:?}"));
                }
            }
        }
        Value::Array(a) => {
            out.insert(format!("{path}: array"));
            for e in a {
                shape(e, &format!("{path}[]"), out);
            }
        }
        Value::Null => {
            out.insert(format!("{path}: null"));
        }
        Value::Bool(_) => {
            out.insert(format!("{path}: bool"));
        }
        Value::Number(n) => {
            let kind = if n.is_f64() { "number" } else { "integer" };
            out.insert(format!("{path}: {kind}"));
        }
        Value::String(_) => {
            out.insert(format!("{path}: string"));
        }
    }
}

// Witnesses: each match lists every variant, so a new one stops this test
// compiling until it is added to the samples below.
fn witness_calibration(c: &CalibrationStatus) {
    match c {
        CalibrationStatus::AwaitingBroadcast
        | CalibrationStatus::Waiting { .. }
        | CalibrationStatus::Volley { .. }
        | CalibrationStatus::Calibrated { .. }
        | CalibrationStatus::Fallback { .. }
        | CalibrationStatus::Untrusted { .. } => {}
    }
}

fn witness_failure(f: &FailureStatus) {
    match f {
        FailureStatus::NoReply { .. }
        | FailureStatus::DelayTooLarge { .. }
        | FailureStatus::SlowerThanUnicast { .. }
        | FailureStatus::StaleBroadcasts { .. }
        | FailureStatus::NoPairableBroadcast
        | FailureStatus::NoUsableReply { .. }
        | FailureStatus::Refused { .. } => {}
    }
}

fn witness_problem(p: &ReplyProblemStatus) {
    match p {
        ReplyProblemStatus::CryptoNak { .. }
        | ReplyProblemStatus::Unsigned
        | ReplyProblemStatus::Authentication { .. }
        | ReplyProblemStatus::UnusableTime { .. } => {}
    }
}

fn witness_selection(n: &NoSelection) {
    match n {
        NoSelection::NoServers
        | NoSelection::AllTooFar { .. }
        | NoSelection::NoMajority { .. }
        | NoSelection::TooFewAgreeing { .. }
        | NoSelection::NoSurvivors => {}
    }
}

fn witness_state(s: State) {
    match s {
        State::Listening | State::Calibrating | State::Tracking | State::Untrusted => {}
    }
}

fn witness_unsync(u: &Unsync) {
    match u {
        Unsync::KernelUnsynchronized
        | Unsync::KernelUnreadable { .. }
        | Unsync::ReferenceLost
        | Unsync::UpstreamNotRunning
        | Unsync::UpstreamNoSampleYet { .. }
        | Unsync::UpstreamStale { .. }
        | Unsync::UpstreamRefused { .. } => {}
    }
}

fn witness_upstream(p: &UpstreamProblem) {
    match p {
        UpstreamProblem::NoReply
        | UpstreamProblem::SocketError { .. }
        | UpstreamProblem::RateLimited { .. }
        | UpstreamProblem::Refused { .. }
        | UpstreamProblem::Unsynchronized { .. }
        | UpstreamProblem::UnusableTime { .. }
        | UpstreamProblem::StratumTooHigh { .. }
        | UpstreamProblem::ZeroReceive
        | UpstreamProblem::ReferenceAfterTransmit => {}
    }
}

fn witness_silence(s: &Silence) {
    match s {
        Silence::NotSynchronized { .. }
        | Silence::KeyMissing { .. }
        | Silence::SendFailed { .. } => {}
    }
}

fn failures() -> Vec<FailureStatus> {
    let server: SocketAddr = "198.18.0.1:123".parse().expect("address");
    vec![
        FailureStatus::NoReply {
            requests: 6,
            server: Some(server),
            source_port: Some(41230),
        },
        FailureStatus::NoReply {
            requests: 6,
            server: None,
            source_port: None,
        },
        FailureStatus::DelayTooLarge {
            round_trip_ms: 60.5,
            bound_ms: 50.5,
        },
        FailureStatus::SlowerThanUnicast {
            one_way_delay_ms: 5.5,
            round_trip_ms: 0.5,
        },
        FailureStatus::StaleBroadcasts { count: 3 },
        FailureStatus::NoPairableBroadcast,
        FailureStatus::NoUsableReply {
            problems: vec![
                ReplyProblemStatus::CryptoNak { key: 3 },
                ReplyProblemStatus::Unsigned,
                ReplyProblemStatus::Authentication {
                    detail: "invalid-mac".into(),
                },
                ReplyProblemStatus::UnusableTime {
                    detail: "unsynchronized".into(),
                },
            ],
            more: 1,
        },
        FailureStatus::Refused {
            kiss_code: "DENY".into(),
        },
    ]
}

fn calibrations() -> Vec<CalibrationStatus> {
    let mut all = vec![
        CalibrationStatus::AwaitingBroadcast,
        CalibrationStatus::Waiting { attempt: 1 },
        CalibrationStatus::Volley {
            attempt: 0,
            sent: 2,
        },
        CalibrationStatus::Calibrated {
            one_way_delay_ms: 0.25,
            exchanges: 6,
            restored: true,
        },
        CalibrationStatus::Fallback {
            one_way_delay_ms: 4.5,
            failure: None,
            volleys: None,
        },
    ];
    for f in failures() {
        all.push(CalibrationStatus::Fallback {
            one_way_delay_ms: 4.5,
            failure: Some(f.clone()),
            volleys: Some(4),
        });
        all.push(CalibrationStatus::Untrusted { failure: f });
    }
    all
}

fn no_selections() -> Vec<NoSelection> {
    vec![
        NoSelection::NoServers,
        NoSelection::AllTooFar {
            candidates: 2,
            max_root_distance_s: 1.5,
        },
        NoSelection::NoMajority {
            agreeing: 1,
            usable: 2,
            too_far: 0,
            max_root_distance_s: 1.5,
        },
        NoSelection::TooFewAgreeing {
            agreeing: 1,
            needed: 2,
            too_far: 1,
            max_root_distance_s: 1.5,
        },
        NoSelection::NoSurvivors,
    ]
}

fn server_row(i: usize, calibration: CalibrationStatus, full: bool) -> ServerStatus {
    let states = [
        State::Listening,
        State::Calibrating,
        State::Tracking,
        State::Untrusted,
    ];
    let some = |x: f64| full.then_some(x);
    ServerStatus {
        remote: IpAddr::from([198, 18, 0, 1]),
        name: format!("s{i}"),
        refid: "GPS".into(),
        stratum: full.then_some(1),
        t: ['b', 'u', '-', '!'][i % 4],
        when_s: some(3.5),
        poll_s: 64,
        reach: 255,
        delay_ms: some(0.5),
        offset_ms: some(-0.25),
        jitter_ms: some(0.05),
        state: states[i % states.len()],
        calibration,
        unicast_sent: 6,
        rejected: BTreeMap::from([("bad-mac".to_string(), 2)]),
        tally: ['*', '+', 'x', '-', ' '][i % 5],
        key: full.then_some(3),
        keys: if full { vec![3, 5] } else { Vec::new() },
        last_key: full.then_some(5),
        root_distance_ms: some(12.5),
        accepted: 40,
        one_way_delay_ms: some(0.25),
        calibrated: full,
        leap: full.then_some(1),
    }
}

fn client_documents() -> Vec<ClientStatus> {
    // Every decision kind, each with the figures that kind carries.
    let decisions: Vec<DecisionStatus> = Decision::NAMES
        .iter()
        .map(|&kind| DecisionStatus {
            kind: kind.into(),
            offset_ms: 0.5,
            correction_ms: (kind == "slew").then_some(0.25),
            frequency_ppm: (kind == "slew").then_some(1.5),
            remaining_s: matches!(kind, "waiting-for-stepout" | "slew-in-progress")
                .then_some(600.5),
        })
        .collect();
    let rows: Vec<ServerStatus> = calibrations()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            witness_calibration(&c);
            if let CalibrationStatus::Untrusted { failure } = &c {
                witness_failure(failure);
                if let FailureStatus::NoUsableReply { problems, .. } = failure {
                    problems.iter().for_each(witness_problem);
                }
            }
            witness_state(State::Tracking);
            server_row(i, c, i % 2 == 0)
        })
        .collect();
    let mut docs = Vec::new();
    let modes = ClockModeStatus::ALL.iter().cycle();
    for (i, &mode) in modes.take(decisions.len() + 1).enumerate() {
        docs.push(ClientStatus {
            schema: SCHEMA_VERSION,
            version: "0.0.0".into(),
            uptime_s: 100.5,
            clock_mode: mode,
            offset_ms: Some(-1.25),
            selection_problem: None,
            freshest_s: Some(3.5),
            decision: decisions.get(i).cloned(),
            servers: rows.clone(),
            rejected: BTreeMap::from([("unknown-source".to_string(), 7)]),
            frequency_ppm: 1.5,
            jitter_ms: Some(0.05),
            min_agreeing: Some(2),
            synchronized: true,
            group: Some(GroupStatus {
                silent: i % 2 == 0,
                last_delivery_s: 2.5,
                silent_after_s: 192.0,
                silences: 1,
                rejoins: 3,
            }),
        });
    }
    for n in no_selections() {
        witness_selection(&n);
        docs.push(ClientStatus {
            schema: SCHEMA_VERSION,
            version: "0.0.0".into(),
            uptime_s: 100.5,
            clock_mode: ClockModeStatus::Monitor,
            offset_ms: None,
            selection_problem: Some(n),
            freshest_s: None,
            decision: None,
            servers: Vec::new(),
            rejected: BTreeMap::new(),
            frequency_ppm: 0.0,
            jitter_ms: None,
            min_agreeing: None,
            synchronized: false,
            group: None,
        });
    }
    docs
}

fn upstream_problems() -> Vec<UpstreamProblem> {
    vec![
        UpstreamProblem::NoReply,
        UpstreamProblem::SocketError {
            error: "Connection refused".into(),
        },
        UpstreamProblem::RateLimited {
            query_interval_s: 16,
        },
        UpstreamProblem::Refused {
            kiss_code: "DENY".into(),
        },
        UpstreamProblem::Unsynchronized {
            leap: 3,
            stratum: 16,
            refid: "INIT".into(),
        },
        UpstreamProblem::UnusableTime {
            detail: "stratum-too-high".into(),
        },
        UpstreamProblem::StratumTooHigh { stratum: 15 },
        UpstreamProblem::ZeroReceive,
        UpstreamProblem::ReferenceAfterTransmit,
    ]
}

fn unsyncs() -> Vec<Unsync> {
    let upstream: SocketAddr = "127.0.0.1:123".parse().expect("address");
    let mut all = vec![
        Unsync::KernelUnsynchronized,
        Unsync::KernelUnreadable {
            error: "Operation not permitted".into(),
        },
        Unsync::ReferenceLost,
        Unsync::UpstreamNotRunning,
        Unsync::UpstreamNoSampleYet {
            upstream,
            problem: None,
        },
    ];
    for p in upstream_problems() {
        witness_upstream(&p);
        all.push(Unsync::UpstreamNoSampleYet {
            upstream,
            problem: Some(p.clone()),
        });
        all.push(Unsync::UpstreamStale {
            upstream,
            after_s: 50,
            intervals: 3,
            problem: p.clone(),
        });
        all.push(Unsync::UpstreamRefused {
            upstream,
            problem: p,
        });
    }
    all
}

fn server_documents() -> Vec<Status> {
    let mut silences = vec![
        Silence::KeyMissing { key: 3 },
        Silence::SendFailed {
            error: "Network is unreachable".into(),
        },
    ];
    let mut docs = Vec::new();
    let destination = |last_problem: Option<Silence>| DestinationStatus {
        address: IpAddr::from([224, 0, 1, 1]),
        interface: "bond0".into(),
        source: IpAddr::from([198, 18, 0, 1]),
        poll: 6,
        key: Some(3),
        sent: 10,
        skipped: 1,
        last_problem,
    };
    for u in unsyncs() {
        witness_unsync(&u);
        silences.push(Silence::NotSynchronized { reason: u.clone() });
        docs.push(Status {
            schema: SCHEMA_VERSION,
            version: "0.0.0".into(),
            uptime_s: 100.5,
            synchronized: false,
            unsynchronized: Some(u),
            stratum: None,
            destinations: vec![destination(None)],
            counters: ResponderCounters::default(),
            mru_entries: 0,
            top_clients: Vec::new(),
            unicast_polling_clients: Vec::new(),
            upstream: None,
        });
    }
    silences.iter().for_each(witness_silence);
    docs.push(Status {
        schema: SCHEMA_VERSION,
        version: "0.0.0".into(),
        uptime_s: 100.5,
        synchronized: true,
        unsynchronized: None,
        stratum: Some(2),
        destinations: silences.into_iter().map(|s| destination(Some(s))).collect(),
        counters: ResponderCounters::default(),
        mru_entries: 3,
        top_clients: vec![TopClient {
            address: IpAddr::from([198, 18, 0, 2]),
            count: 4,
            average_interval_s: Some(2.5),
            last_seen_ago_s: 1.5,
            mode: 3,
            key_id: Some(3),
        }],
        unicast_polling_clients: vec![PollerStatus {
            address: IpAddr::from([198, 18, 0, 3]),
            requests: 40,
            average_interval_s: 64.5,
            last_request_ago_s: 3.5,
        }],
        upstream: Some(UpstreamReport {
            address: Some("127.0.0.1:123".parse().expect("address")),
            query_interval_s: 16.5,
            queries: 4,
            replies: 4,
            ignored: 0,
            last_reply_ago_s: Some(3.5),
            stratum: Some(1),
            offset_s: Some(0.5),
            delay_s: Some(0.5),
            upstream_root_delay_s: Some(0.5),
            upstream_root_dispersion_s: Some(0.5),
            last_problem: Some(UpstreamProblem::NoReply),
        }),
    });
    docs
}

fn current_shape() -> String {
    let mut out = BTreeSet::new();
    for d in client_documents() {
        shape(
            &serde_json::to_value(&d).expect("serializes"),
            "client",
            &mut out,
        );
    }
    for d in server_documents() {
        shape(
            &serde_json::to_value(&d).expect("serializes"),
            "server",
            &mut out,
        );
    }
    let mut text = format!("# status --json schema {SCHEMA_VERSION}\n");
    for line in out {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn shape_file(version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/status-json")
        .join(format!("v{version}.shape"))
}

#[test]
fn the_status_schema_changes_only_with_its_version() {
    let now = current_shape();
    let path = shape_file(SCHEMA_VERSION);
    if !path.exists() && std::env::var_os("STATUS_SCHEMA_WRITE").is_some() {
        std::fs::write(&path, &now).expect("write the new version's shape");
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no recorded shape for schema {SCHEMA_VERSION} at {} ({e}); run this test with \
             STATUS_SCHEMA_WRITE=1 to record it",
            path.display()
        )
    });
    if recorded != now {
        let old: BTreeSet<&str> = recorded.lines().collect();
        let new: BTreeSet<&str> = now.lines().collect();
        panic!(
            "the status JSON changed but SCHEMA_VERSION is still {SCHEMA_VERSION}: raise it in \
             core/src/client/status.rs, record the new shape (STATUS_SCHEMA_WRITE=1) and \
             describe the change in docs/status-json.md.\nremoved: {:#?}\nadded: {:#?}",
            old.difference(&new).collect::<Vec<_>>(),
            new.difference(&old).collect::<Vec<_>>()
        );
    }
    let missing: Vec<u32> = (1..=SCHEMA_VERSION)
        .filter(|&v| !shape_file(v).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "the shapes of earlier schemas must stay recorded: missing {missing:?}"
    );
}

#[test]
fn documents_round_trip_through_their_own_types() {
    for d in client_documents() {
        let text = serde_json::to_string(&d).expect("serializes");
        let back: ClientStatus = serde_json::from_str(&text).expect("parses back");
        assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
    }
    for d in server_documents() {
        let text = serde_json::to_string(&d).expect("serializes");
        let back: Status = serde_json::from_str(&text).expect("parses back");
        assert_eq!(serde_json::to_string(&back).expect("serializes"), text);
    }
}
