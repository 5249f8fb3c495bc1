//! The server's status in the Prometheus text exposition format, sans-I/O:
//! [`format_metrics`] turns the [`Status`] that `status` shows into the text
//! the daemon serves on `GET /metrics` (with `metrics = "ADDRESS:PORT"`), so
//! both always agree. The writer is the one the client uses
//! ([`mcast_sys::prometheus`]).
//!
//! Series:
//! - `mcast_server_build_info{version}` 1, `mcast_server_uptime_seconds`;
//! - `mcast_server_synchronized` (0/1, always present), `mcast_server_stratum`
//!   (while synchronized);
//! - per destination, labelled `destination` (group or broadcast address)
//!   and `interface`: `mcast_server_destination_packets_sent_total`,
//!   `_intervals_skipped_total`, `_problem` (1 while the last interval was
//!   skipped);
//! - every responder counter of `status` as
//!   `mcast_server_responder_<counter>_total` (driven by the counters'
//!   serialization, so a new counter is exported as it is added);
//! - `mcast_server_mru_entries`;
//! - `mcast_server_unicast_pollers` (how many clients keep polling by
//!   unicast after their volley) and `mcast_server_unicast_poller_requests{client}`
//!   for the [`POLLERS_SHOWN`] busiest, the rest summed under
//!   `client="other"` (so the page stays bounded with any number of pollers);
//! - with `kind = "upstream"`, labelled `upstream`:
//!   `mcast_server_upstream_queries_total`, `_replies_total`,
//!   `_ignored_total`, and from the latest usable reply `_offset_seconds`,
//!   `_delay_seconds`, `_stratum`, `_last_reply_age_seconds`,
//!   `_root_delay_seconds`, `_root_dispersion_seconds`.

use mcast_core::server::responder::ResponderCounters;
use mcast_core::server::status::{PollerStatus, Status};
use mcast_sys::prometheus::{Exposition, Kind, flag};

/// Unicast pollers given a series of their own (the busiest); the others
/// are summed under `client="other"`.
pub const POLLERS_SHOWN: usize = 10;

/// HELP of each responder counter, by its field name in `status --json`.
const COUNTER_HELP: [(&str, &str); 16] = [
    ("received", "Packets handed to the calibration responder."),
    ("current_version", "NTPv4 requests that parsed."),
    ("older_version", "NTPv1-3 requests that parsed."),
    (
        "bad_format",
        "Packets that did not parse (length, version, mode 0, framing): dropped.",
    ),
    (
        "auth_failed",
        "Requests whose MAC failed or named a key we lack (answered with a crypto-NAK).",
    ),
    ("declined", "Packets of modes the server does not answer."),
    (
        "restricted",
        "Packets refused by policy (mode 6/7, no MAC where one is required, key not allowed for the source).",
    ),
    ("rate_limited", "Requests over the rate limit."),
    ("kod_sent", "Kiss-o'-Death RATE packets sent."),
    ("replies_sent", "Normal replies sent."),
    ("crypto_naks_sent", "Crypto-NAKs sent."),
    (
        "multicast_destination",
        "Requests sent to a multicast or broadcast address: dropped.",
    ),
    (
        "unverified_limited",
        "Unauthenticated packets over their source's budget: dropped silently.",
    ),
    ("signed_sent", "Replies signed with an Ed25519 signing key."),
    (
        "sign_budget",
        "Requests for a signed reply over the global signing budget (responder.sign-rate): dropped silently.",
    ),
    (
        "sign_key_unknown",
        "Requests for a signed reply naming a key the server does not hold: dropped.",
    ),
];

/// The responder counters by field name (in the field names' order).
fn counters(c: &ResponderCounters) -> Vec<(String, u64)> {
    match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_u64().map(|n| (k, n)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The pollers' series: the [`POLLERS_SHOWN`] with the most requests, then
/// the rest summed as `other` (only when there is a rest).
fn pollers(list: &[PollerStatus]) -> Vec<(String, u64)> {
    let mut sorted: Vec<&PollerStatus> = list.iter().collect();
    sorted.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.address.cmp(&b.address)));
    let mut out: Vec<(String, u64)> = sorted
        .iter()
        .take(POLLERS_SHOWN)
        .map(|p| (p.address.to_string(), u64::from(p.requests)))
        .collect();
    if sorted.len() > POLLERS_SHOWN {
        let rest = sorted
            .iter()
            .skip(POLLERS_SHOWN)
            .map(|p| u64::from(p.requests))
            .sum();
        out.push(("other".to_string(), rest));
    }
    out
}

/// The status as Prometheus text (exposition format 0.0.4).
pub fn format_metrics(s: &Status) -> String {
    let mut e = Exposition::new();
    e.family(
        "mcast_server_build_info",
        Kind::Gauge,
        "Always 1; the labels give the build.",
    );
    e.sample("mcast_server_build_info", &[("version", &s.version)], 1.0);
    e.single(
        "mcast_server_uptime_seconds",
        Kind::Gauge,
        "Seconds since the server started.",
        s.uptime_s,
    );
    e.single(
        "mcast_server_synchronized",
        Kind::Gauge,
        "1 when the server vouches for its time (its broadcasts carry LI != 3), 0 when not.",
        flag(s.synchronized),
    );
    if let (true, Some(st)) = (s.synchronized, s.stratum) {
        e.single(
            "mcast_server_stratum",
            Kind::Gauge,
            "Stratum the server advertises.",
            f64::from(st),
        );
    }

    if !s.destinations.is_empty() {
        let labels: Vec<[(&str, String); 2]> = s
            .destinations
            .iter()
            .map(|d| {
                [
                    ("destination", d.address.to_string()),
                    ("interface", d.interface.clone()),
                ]
            })
            .collect();
        type Get = fn(&mcast_core::server::status::DestinationStatus) -> f64;
        let series: [(&str, Kind, &str, Get); 3] = [
            (
                "mcast_server_destination_packets_sent_total",
                Kind::Counter,
                "Broadcasts sent to the destination.",
                |d| d.sent as f64,
            ),
            (
                "mcast_server_destination_intervals_skipped_total",
                Kind::Counter,
                "Broadcast intervals skipped (not synchronized, key missing, send error).",
                |d| d.skipped as f64,
            ),
            (
                "mcast_server_destination_problem",
                Kind::Gauge,
                "1 when the destination's last interval was skipped (status names why).",
                |d| flag(d.last_problem.is_some()),
            ),
        ];
        for (name, kind, help, get) in series {
            e.family(name, kind, help);
            for (d, l) in s.destinations.iter().zip(&labels) {
                e.sample(name, l, get(d));
            }
        }
    }

    for (field, n) in counters(&s.counters) {
        let help = COUNTER_HELP
            .iter()
            .find(|(f, _)| *f == field)
            .map_or("A calibration responder counter.", |(_, h)| h);
        e.single(
            &format!("mcast_server_responder_{field}_total"),
            Kind::Counter,
            help,
            n as f64,
        );
    }
    e.single(
        "mcast_server_mru_entries",
        Kind::Gauge,
        "Sources remembered by the rate limiter.",
        s.mru_entries as f64,
    );
    e.single(
        "mcast_server_unicast_pollers",
        Kind::Gauge,
        "Clients that keep polling by unicast after their calibration volley.",
        s.unicast_polling_clients.len() as f64,
    );
    let shown = pollers(&s.unicast_polling_clients);
    if !shown.is_empty() {
        let name = "mcast_server_unicast_poller_requests";
        e.family(
            name,
            Kind::Gauge,
            "Requests of a client polling by unicast after its volley (the busiest by address, the rest as \"other\").",
        );
        for (client, n) in shown {
            e.sample(name, &[("client", client)], n as f64);
        }
    }

    if let Some(u) = &s.upstream {
        let addr = u
            .address
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let l = [("upstream", addr.as_str())];
        let mut one = |name: &str, kind: Kind, help: &str, v: Option<f64>| {
            if let Some(v) = v {
                e.family(name, kind, help);
                e.sample(name, &l, v);
            }
        };
        one(
            "mcast_server_upstream_queries_total",
            Kind::Counter,
            "Queries sent to the upstream daemon.",
            Some(u.queries as f64),
        );
        one(
            "mcast_server_upstream_replies_total",
            Kind::Counter,
            "Replies that answered a query (usable or not).",
            Some(u.replies as f64),
        );
        one(
            "mcast_server_upstream_ignored_total",
            Kind::Counter,
            "Datagrams on the upstream socket that answered no query.",
            Some(u.ignored as f64),
        );
        one(
            "mcast_server_upstream_last_reply_age_seconds",
            Kind::Gauge,
            "Seconds since the latest usable reply.",
            u.last_reply_ago_s,
        );
        one(
            "mcast_server_upstream_stratum",
            Kind::Gauge,
            "The upstream's stratum in its latest usable reply.",
            u.stratum.map(f64::from),
        );
        one(
            "mcast_server_upstream_offset_seconds",
            Kind::Gauge,
            "Upstream's clock minus ours in the latest usable reply.",
            u.offset_s,
        );
        one(
            "mcast_server_upstream_delay_seconds",
            Kind::Gauge,
            "Round-trip delay of the latest usable reply.",
            u.delay_s,
        );
        one(
            "mcast_server_upstream_root_delay_seconds",
            Kind::Gauge,
            "The upstream's own root delay.",
            u.upstream_root_delay_s,
        );
        one(
            "mcast_server_upstream_root_dispersion_seconds",
            Kind::Gauge,
            "The upstream's own root dispersion.",
            u.upstream_root_dispersion_s,
        );
    }
    e.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use mcast_core::server::status::DestinationStatus;
    use mcast_core::server::upstream::UpstreamReport;
    use std::net::IpAddr;

    fn status() -> Status {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        Status {
            schema: mcast_core::server::status::SCHEMA_VERSION,
            version: "0.1.0".into(),
            uptime_s: 12.5,
            synchronized: true,
            unsynchronized: None,
            stratum: Some(3),
            destinations: vec![
                DestinationStatus {
                    address: ip("224.0.1.1"),
                    interface: "bond0".into(),
                    source: ip("198.18.0.1"),
                    poll: 6,
                    key: Some(3),
                    sent: 40,
                    skipped: 2,
                    last_problem: None,
                },
                DestinationStatus {
                    address: ip("ff05::101"),
                    interface: "eth\"1".into(),
                    source: ip("2001:db8::1"),
                    poll: 6,
                    key: None,
                    sent: 7,
                    skipped: 0,
                    last_problem: Some(mcast_core::server::broadcaster::Silence::KeyMissing {
                        key: 9,
                    }),
                },
            ],
            counters: ResponderCounters {
                received: 100,
                replies_sent: 90,
                kod_sent: 4,
                unverified_limited: 1,
                ..ResponderCounters::default()
            },
            mru_entries: 17,
            top_clients: Vec::new(),
            unicast_polling_clients: Vec::new(),
            upstream: None,
        }
    }

    fn poller(i: u32) -> PollerStatus {
        PollerStatus {
            address: format!("198.18.1.{i}").parse().unwrap(),
            requests: 10 + i,
            average_interval_s: 8.0,
            last_request_ago_s: 1.0,
        }
    }

    fn parse(text: &str) -> mcast_sys::prometheus::Parsed {
        mcast_sys::prometheus::parse(text).unwrap_or_else(|e| panic!("{e}:\n{text}"))
    }

    #[test]
    fn sync_destinations_counters_and_build_info() {
        let text = format_metrics(&status());
        let p = parse(&text);
        let get = |series: &str| {
            p.get(series)
                .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
        };
        assert_eq!(get(r#"mcast_server_build_info{version="0.1.0"}"#), 1.0);
        assert_eq!(get("mcast_server_synchronized"), 1.0);
        assert_eq!(get("mcast_server_stratum"), 3.0);
        assert_eq!(get("mcast_server_uptime_seconds"), 12.5);
        let d0 = r#"destination="224.0.1.1",interface="bond0""#;
        let d1 = r#"destination="ff05::101",interface="eth\"1""#;
        assert_eq!(
            get(&format!(
                "mcast_server_destination_packets_sent_total{{{d0}}}"
            )),
            40.0
        );
        assert_eq!(
            get(&format!(
                "mcast_server_destination_intervals_skipped_total{{{d0}}}"
            )),
            2.0
        );
        assert_eq!(
            get(&format!(
                "mcast_server_destination_packets_sent_total{{{d1}}}"
            )),
            7.0
        );
        assert_eq!(
            get(&format!("mcast_server_destination_problem{{{d0}}}")),
            0.0
        );
        assert_eq!(
            get(&format!("mcast_server_destination_problem{{{d1}}}")),
            1.0
        );
        assert_eq!(get("mcast_server_responder_received_total"), 100.0);
        assert_eq!(get("mcast_server_responder_replies_sent_total"), 90.0);
        assert_eq!(get("mcast_server_responder_kod_sent_total"), 4.0);
        assert_eq!(get("mcast_server_responder_unverified_limited_total"), 1.0);
        assert_eq!(get("mcast_server_responder_bad_format_total"), 0.0);
        assert_eq!(get("mcast_server_mru_entries"), 17.0);
        assert_eq!(get("mcast_server_unicast_pollers"), 0.0);
        assert!(!text.contains("mcast_server_unicast_poller_requests"));
        assert!(!text.contains("upstream"), "{text}");
    }

    #[test]
    fn every_responder_counter_is_exported_with_its_own_help() {
        let fields: std::collections::BTreeSet<String> = counters(&ResponderCounters::default())
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        let helped: std::collections::BTreeSet<String> =
            COUNTER_HELP.iter().map(|(f, _)| f.to_string()).collect();
        assert_eq!(fields, helped, "COUNTER_HELP lists every counter");
        let p = parse(&format_metrics(&status()));
        for f in &fields {
            let name = format!("mcast_server_responder_{f}_total");
            assert_eq!(p.families.get(&name).map(String::as_str), Some("counter"));
        }
    }

    #[test]
    fn unsynchronized_has_a_zero_gauge_and_no_stratum() {
        let mut s = status();
        s.synchronized = false;
        s.unsynchronized = Some(mcast_core::server::sync::Unsync::KernelUnsynchronized);
        s.stratum = None;
        let p = parse(&format_metrics(&s));
        assert_eq!(p.get("mcast_server_synchronized"), Some(0.0));
        assert_eq!(p.get("mcast_server_stratum"), None);
    }

    #[test]
    fn pollers_are_bounded_with_the_rest_as_other() {
        let mut s = status();
        s.unicast_polling_clients = (1..=3).map(poller).collect();
        let p = parse(&format_metrics(&s));
        assert_eq!(p.get("mcast_server_unicast_pollers"), Some(3.0));
        assert_eq!(
            p.get(r#"mcast_server_unicast_poller_requests{client="198.18.1.3"}"#),
            Some(13.0)
        );
        assert_eq!(
            p.get(r#"mcast_server_unicast_poller_requests{client="other"}"#),
            None
        );

        let n = POLLERS_SHOWN as u32 + 25;
        s.unicast_polling_clients = (1..=n).map(poller).collect();
        let p = parse(&format_metrics(&s));
        assert_eq!(p.get("mcast_server_unicast_pollers"), Some(f64::from(n)));
        let series: Vec<_> = p.of("mcast_server_unicast_poller_requests").collect();
        assert_eq!(series.len(), POLLERS_SHOWN + 1, "bounded");
        // The busiest have their own series; the rest sum up under other.
        assert_eq!(
            p.get(&format!(
                r#"mcast_server_unicast_poller_requests{{client="198.18.1.{n}"}}"#
            )),
            Some(f64::from(10 + n))
        );
        let all: u32 = (1..=n).map(|i| 10 + i).sum();
        let total: f64 = series.iter().map(|s| s.value).sum();
        assert_eq!(total, f64::from(all), "nothing lost in the aggregate");
        assert_eq!(
            p.get(r#"mcast_server_unicast_poller_requests{client="198.18.1.1"}"#),
            None,
            "the quietest is in other"
        );
    }

    #[test]
    fn upstream_series_carry_its_address_and_only_known_values() {
        let mut s = status();
        s.upstream = Some(UpstreamReport {
            address: Some("127.0.0.1:123".parse().unwrap()),
            query_interval_s: 16.0,
            queries: 9,
            replies: 8,
            ignored: 1,
            last_reply_ago_s: Some(3.0),
            stratum: Some(2),
            offset_s: Some(-0.000_25),
            delay_s: Some(0.000_1),
            upstream_root_delay_s: None,
            upstream_root_dispersion_s: None,
            last_problem: None,
        });
        let text = format_metrics(&s);
        let p = parse(&text);
        let l = r#"{upstream="127.0.0.1:123"}"#;
        assert_eq!(
            p.get(&format!("mcast_server_upstream_queries_total{l}")),
            Some(9.0)
        );
        assert_eq!(
            p.get(&format!("mcast_server_upstream_offset_seconds{l}")),
            Some(-0.000_25)
        );
        assert_eq!(
            p.get(&format!("mcast_server_upstream_stratum{l}")),
            Some(2.0)
        );
        assert!(!text.contains("root_delay"), "{text}");
    }
}
