//! The client's status in the Prometheus text exposition format (version
//! 0.0.4), sans-I/O: [`format_metrics`] turns the [`ClientStatus`] that
//! `status` shows into the text the daemon serves on `GET /metrics`, so
//! both always agree.
//!
//! Per server, series are labelled `server` (address), `name` and `key`
//! (the key id, `none` when unauthenticated). Durations are in seconds.
//! A value the client does not have yet (no offset before the first sample)
//! is left out rather than reported as zero.

use std::fmt::Write as _;

use mcast_core::client::association::State;
use mcast_core::client::discipline::Decision;
use mcast_core::client::status::{ClientStatus, ServerStatus};

/// The content type of [`format_metrics`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes HELP text: backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus writes it (`NaN`, `+Inf`, `-Inf`).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Writes metric families: one HELP and one TYPE line, then the samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample<S: AsRef<str>>(&mut self, name: &str, labels: &[(&str, S)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(val.as_ref()));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value(v));
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

fn secs(ms: Option<f64>) -> Option<f64> {
    ms.map(|v| v / 1e3)
}

/// A server's labels.
type Labels = Vec<(&'static str, String)>;

/// A per-server series with one value (or none) per server.
type PerServer = fn(&ServerStatus) -> Option<f64>;

/// Per-server gauges and counters without extra labels.
const SERVER_SERIES: [(&str, &str, &str, PerServer); 13] = [
    (
        "mcast_client_server_offset_seconds",
        "gauge",
        "Filtered offset of the server's clock from ours (positive: ours is behind).",
        |s| secs(s.offset_ms),
    ),
    (
        "mcast_client_server_delay_seconds",
        "gauge",
        "Round-trip delay used for the server's samples (twice the calibrated one-way delay).",
        |s| secs(s.delay_ms),
    ),
    (
        "mcast_client_server_jitter_seconds",
        "gauge",
        "Jitter of the server's filtered offsets.",
        |s| secs(s.jitter_ms),
    ),
    (
        "mcast_client_server_root_distance_seconds",
        "gauge",
        "Root synchronization distance (RFC 5905 11.2.1) as selection judges it.",
        |s| secs(s.root_distance_ms),
    ),
    (
        "mcast_client_server_reach",
        "gauge",
        "Reachability register, 0 to 255 (one bit per broadcast interval, newest lowest).",
        |s| Some(f64::from(s.reach)),
    ),
    (
        "mcast_client_server_last_broadcast_age_seconds",
        "gauge",
        "Seconds since the server's last accepted broadcast.",
        |s| s.when_s,
    ),
    (
        "mcast_client_server_selected",
        "gauge",
        "1 when the server survived selection and its offset is combined (system peer included).",
        |s| Some(flag(matches!(s.tally, '*' | '+'))),
    ),
    (
        "mcast_client_server_system_peer",
        "gauge",
        "1 for the system peer.",
        |s| Some(flag(s.tally == '*')),
    ),
    (
        "mcast_client_server_falseticker",
        "gauge",
        "1 when selection found the server to be a falseticker.",
        |s| Some(flag(s.tally == 'x')),
    ),
    (
        "mcast_client_server_calibration_delay_seconds",
        "gauge",
        "One-way delay the server's samples use: measured by calibration, or the fallback.",
        |s| secs(s.one_way_delay_ms),
    ),
    (
        "mcast_client_server_calibrated",
        "gauge",
        "1 when the one-way delay was measured, 0 while calibrating or on the fallback delay.",
        |s| Some(flag(s.calibrated)),
    ),
    (
        "mcast_client_server_unicast_sent_total",
        "counter",
        "Unicast (calibration) requests sent to the server.",
        |s| Some(s.unicast_sent as f64),
    ),
    (
        "mcast_client_server_packets_received_total",
        "counter",
        "Broadcasts received from the server's address, accepted or rejected.",
        |s| Some((s.accepted + s.rejected.values().sum::<u64>()) as f64),
    ),
];

const STATES: [(State, &str); 4] = [
    (State::Listening, "listening"),
    (State::Calibrating, "calibrating"),
    (State::Tracking, "tracking"),
    (State::Untrusted, "untrusted"),
];

const CLOCK_MODES: [&str; 3] = ["monitor", "slew", "step"];

/// The status as Prometheus text (exposition format 0.0.4).
pub fn format_metrics(s: &ClientStatus) -> String {
    let mut e = Exposition { out: String::new() };
    let servers: Vec<(&ServerStatus, Labels)> = s
        .servers
        .iter()
        .map(|v| {
            let key = v.key.map_or_else(|| "none".to_string(), |k| k.to_string());
            let labels = vec![
                ("server", v.remote.to_string()),
                ("name", v.name.clone()),
                ("key", key),
            ];
            (v, labels)
        })
        .collect();
    let with = |base: &Labels, extra: (&'static str, &str)| {
        let mut l = base.clone();
        l.push((extra.0, extra.1.to_string()));
        l
    };

    e.family(
        "mcast_client_info",
        "gauge",
        "Always 1; the labels give the version.",
    );
    e.sample("mcast_client_info", &[("version", &s.version)], 1.0);
    e.family(
        "mcast_client_uptime_seconds",
        "gauge",
        "Seconds since the client started.",
    );
    e.sample::<&str>("mcast_client_uptime_seconds", &[], s.uptime_s);
    e.family(
        "mcast_client_clock_mode",
        "gauge",
        "What the client may do to the clock: 1 for the configured mode.",
    );
    for m in CLOCK_MODES {
        e.sample(
            "mcast_client_clock_mode",
            &[("mode", m)],
            flag(s.clock_mode == m),
        );
    }
    e.family(
        "mcast_client_clock_decision",
        "gauge",
        "The last clock decision: 1 for the one made (in monitor mode, always monitor).",
    );
    for d in Decision::NAMES {
        e.sample(
            "mcast_client_clock_decision",
            &[("decision", d)],
            flag(s.decision.as_deref() == Some(d)),
        );
    }
    if let Some(off) = s.offset_ms {
        e.family(
            "mcast_client_offset_seconds",
            "gauge",
            "Combined offset of the selected servers.",
        );
        e.sample::<&str>("mcast_client_offset_seconds", &[], off / 1e3);
    }
    if let Some(age) = s.freshest_s {
        e.family(
            "mcast_client_last_verified_broadcast_age_seconds",
            "gauge",
            "Seconds since the newest accepted (verified) broadcast from any server.",
        );
        e.sample::<&str>("mcast_client_last_verified_broadcast_age_seconds", &[], age);
    }
    e.family(
        "mcast_client_packets_rejected_total",
        "counter",
        "Packets dropped before they could be tied to a server, by reason.",
    );
    for (reason, n) in &s.rejected {
        e.sample(
            "mcast_client_packets_rejected_total",
            &[("reason", reason)],
            *n as f64,
        );
    }

    for (name, kind, help, get) in SERVER_SERIES {
        let values: Vec<_> = servers
            .iter()
            .filter_map(|(v, l)| get(v).map(|x| (l, x)))
            .collect();
        if values.is_empty() {
            continue;
        }
        e.family(name, kind, help);
        for (l, x) in values {
            e.sample(name, l, x);
        }
    }
    if !servers.is_empty() {
        let name = "mcast_client_server_state";
        e.family(
            name,
            "gauge",
            "The server's association state: 1 for the current one.",
        );
        for (v, l) in &servers {
            for (state, label) in STATES {
                e.sample(name, &with(l, ("state", label)), flag(v.state == state));
            }
        }
        let name = "mcast_client_server_packets_rejected_total";
        e.family(
            name,
            "counter",
            "Broadcasts from the server's address that were not used, by reason.",
        );
        for (v, l) in &servers {
            for (reason, n) in &v.rejected {
                e.sample(name, &with(l, ("reason", reason)), *n as f64);
            }
        }
    }
    e.out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

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
            calibration: "calibrated".into(),
            unicast_sent: 6,
            rejected: BTreeMap::from([("bad-mac".to_string(), 2), ("replay".to_string(), 1)]),
            tally,
            key: Some(3),
            root_distance_ms: Some(12.0),
            accepted: 40,
            one_way_delay_ms: Some(0.25),
            calibrated: true,
        }
    }

    fn status(servers: Vec<ServerStatus>) -> ClientStatus {
        ClientStatus {
            version: "0.1.0".into(),
            uptime_s: 100.0,
            clock_mode: "monitor".into(),
            offset_ms: Some(-1.25),
            selection_problem: None,
            freshest_s: Some(3.5),
            last_decision: Some("Monitor { .. }".into()),
            decision: Some("monitor".into()),
            servers,
            rejected: BTreeMap::from([("unknown-source".to_string(), 7)]),
        }
    }

    /// Checks the text against the exposition format: every sample belongs
    /// to the family announced just before it by exactly one HELP and one
    /// TYPE line, no family appears twice, label values are quoted with
    /// escapes, values parse as floats.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut families = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut typed = false;
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(families.insert(name.clone()), "family {name} twice");
                current = Some(name);
                typed = false;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                assert_eq!(it.next(), current.as_deref(), "TYPE after its HELP: {line}");
                assert!(matches!(it.next(), Some("gauge" | "counter")), "{line}");
                assert!(!typed, "one TYPE line: {line}");
                typed = true;
            } else {
                let fam = current.as_deref().expect("a sample after HELP");
                assert!(typed, "TYPE before samples: {line}");
                let name_end = line.find(['{', ' ']).unwrap();
                assert_eq!(&line[..name_end], fam, "{line}");
                let (series, v) = line.rsplit_once(' ').unwrap();
                let v: f64 = v.parse().unwrap_or_else(|_| panic!("value in {line}"));
                if let Some(labels) = series.get(name_end..).filter(|l| !l.is_empty()) {
                    assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                    // Every unescaped quote pairs up; no raw line feed.
                    let mut quotes = 0;
                    let mut esc = false;
                    for c in labels.chars() {
                        match (esc, c) {
                            (true, _) => esc = false,
                            (false, '\\') => esc = true,
                            (false, '"') => quotes += 1,
                            _ => {}
                        }
                    }
                    assert_eq!(quotes % 2, 0, "{line}");
                }
                assert!(samples.insert(series.to_string(), v).is_none(), "{line}");
            }
        }
        samples
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
            get(&format!(
                "mcast_client_server_calibration_delay_seconds{{{l}}}"
            )),
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
            Decision::NAMES.iter().all(|d| samples
                [&format!("mcast_client_clock_decision{{decision=\"{d}\"}}")]
                == 0.0)
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
    fn special_values() {
        assert_eq!(value(f64::NAN), "NaN");
        assert_eq!(value(f64::INFINITY), "+Inf");
        assert_eq!(value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(value(1e-7), "0.0000001");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
