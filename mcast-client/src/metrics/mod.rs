//! The client's status in the Prometheus text exposition format (version
//! 0.0.4), sans-I/O: [`format_metrics`] turns the [`ClientStatus`] that
//! `status` shows into the text the daemon serves on `GET /metrics`, so
//! both always agree.
//!
//! Per server, series are labelled `server` (address), `name` and `key`
//! (the key id, `none` when unauthenticated). Durations are in seconds.
//! A value the client does not have yet (no offset before the first sample)
//! is left out rather than reported as zero; every rejection `reason` (of
//! [`Rejection`] per server, of [`GlobalRejection`] globally) is always
//! there, at 0 until it happens, and `mcast_client_synchronized` is always
//! there, so alerts need no `absent()`.

use std::collections::BTreeMap;

use mcast_core::client::association::{Rejection, State};
use mcast_core::client::discipline::Decision;
use mcast_core::client::engine::GlobalRejection;
use mcast_core::client::status::{ClientStatus, ClockModeStatus, ServerStatus};
use mcast_sys::prometheus::{Exposition, Kind, flag};

fn secs(ms: Option<f64>) -> Option<f64> {
    ms.map(|v| v / 1e3)
}

/// A server's labels.
type Labels = Vec<(&'static str, String)>;

/// A per-server series with one value (or none) per server.
type PerServer = fn(&ServerStatus) -> Option<f64>;

/// Per-server gauges and counters without extra labels.
const SERVER_SERIES: [(&str, Kind, &str, PerServer); 15] = [
    (
        "mcast_client_server_offset_seconds",
        Kind::Gauge,
        "Filtered offset of the server's clock from ours (positive: ours is behind).",
        |s| secs(s.offset_ms),
    ),
    (
        "mcast_client_server_delay_seconds",
        Kind::Gauge,
        "Round-trip delay used for the server's samples (twice the calibrated one-way delay).",
        |s| secs(s.delay_ms),
    ),
    (
        "mcast_client_server_jitter_seconds",
        Kind::Gauge,
        "Jitter of the server's filtered offsets.",
        |s| secs(s.jitter_ms),
    ),
    (
        "mcast_client_server_root_distance_seconds",
        Kind::Gauge,
        "Root synchronization distance (RFC 5905 11.2.1) as selection judges it.",
        |s| secs(s.root_distance_ms),
    ),
    (
        "mcast_client_server_reach",
        Kind::Gauge,
        "Reachability register, 0 to 255 (one bit per broadcast interval, newest lowest).",
        |s| Some(f64::from(s.reach)),
    ),
    (
        "mcast_client_server_last_broadcast_age_seconds",
        Kind::Gauge,
        "Seconds since the server's last accepted broadcast.",
        |s| s.when_s,
    ),
    (
        "mcast_client_server_selected",
        Kind::Gauge,
        "1 when the server survived selection and its offset is combined (system peer included).",
        |s| Some(flag(matches!(s.tally, '*' | '+'))),
    ),
    (
        "mcast_client_server_system_peer",
        Kind::Gauge,
        "1 for the system peer.",
        |s| Some(flag(s.tally == '*')),
    ),
    (
        "mcast_client_server_falseticker",
        Kind::Gauge,
        "1 when selection found the server to be a falseticker.",
        |s| Some(flag(s.tally == 'x')),
    ),
    (
        "mcast_client_server_one_way_delay_seconds",
        Kind::Gauge,
        "One-way path delay the server's samples are corrected by: measured by calibration, or the fallback (see _calibrated).",
        |s| secs(s.one_way_delay_ms),
    ),
    (
        "mcast_client_server_stratum",
        Kind::Gauge,
        "Stratum of the server's last accepted broadcast.",
        |s| s.stratum.map(f64::from),
    ),
    (
        "mcast_client_server_leap",
        Kind::Gauge,
        "Leap indicator of the server's last accepted broadcast (0 none, 1 insert, 2 delete, 3 unsynchronized).",
        |s| s.leap.map(f64::from),
    ),
    (
        "mcast_client_server_calibrated",
        Kind::Gauge,
        "1 when the one-way delay was measured, 0 while calibrating or on the fallback delay.",
        |s| Some(flag(s.calibrated)),
    ),
    (
        "mcast_client_server_unicast_sent_total",
        Kind::Counter,
        "Unicast (calibration) requests sent to the server.",
        |s| Some(s.unicast_sent as f64),
    ),
    (
        "mcast_client_server_packets_received_total",
        Kind::Counter,
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

/// Every reason of `all` with its count (0 when it never happened), then
/// any other reason counted (none today; kept should a label be added
/// without its variant).
fn every_reason<'a>(
    all: &[&'static str],
    counted: &'a BTreeMap<String, u64>,
) -> Vec<(&'a str, u64)> {
    let mut out: Vec<(&str, u64)> = all
        .iter()
        .map(|r| (*r, counted.get(*r).copied().unwrap_or(0)))
        .collect();
    for (r, n) in counted {
        if !all.contains(&r.as_str()) {
            out.push((r, *n));
        }
    }
    out
}

/// The status as Prometheus text (exposition format 0.0.4).
pub fn format_metrics(s: &ClientStatus) -> String {
    let mut e = Exposition::new();
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
        "mcast_client_build_info",
        Kind::Gauge,
        "Always 1; the labels give the build.",
    );
    e.sample("mcast_client_build_info", &[("version", &s.version)], 1.0);
    e.single(
        "mcast_client_synchronized",
        Kind::Gauge,
        "1 when synchronized: a server is selected and (slew, step) the clock is within the \
         step threshold; what wait-sync waits for and READY=1 reports.",
        flag(s.synchronized),
    );
    if let Some(g) = &s.group {
        e.single(
            "mcast_client_group_silent",
            Kind::Gauge,
            "1 while the multicast group is silent: no authenticated broadcast from any server \
             for group-silent-intervals of the slowest poll (the client is re-joining).",
            flag(g.silent),
        );
        e.single(
            "mcast_client_group_silences_total",
            Kind::Counter,
            "Times the group fell silent since start.",
            g.silences as f64,
        );
        e.single(
            "mcast_client_group_rejoins_total",
            Kind::Counter,
            "Re-joins of the group (a fresh IGMP/MLD report) since start.",
            g.rejoins as f64,
        );
    }
    e.single(
        "mcast_client_frequency_ppm",
        Kind::Gauge,
        "Frequency correction in effect, ppm (0 in monitor mode).",
        s.frequency_ppm,
    );
    // The system's figures are the system peer's, as ntpd reports them.
    if let Some(peer) = s.servers.iter().find(|v| v.tally == '*') {
        if let Some(st) = peer.stratum {
            e.single(
                "mcast_client_stratum",
                Kind::Gauge,
                "The client's stratum: the system peer's plus one.",
                f64::from(st.saturating_add(1)),
            );
        }
        if let Some(li) = peer.leap {
            e.single(
                "mcast_client_leap",
                Kind::Gauge,
                "Leap indicator of the system peer (0 none, 1 insert, 2 delete, 3 unsynchronized).",
                f64::from(li),
            );
        }
        if let Some(d) = secs(peer.root_distance_ms) {
            e.single(
                "mcast_client_root_distance_seconds",
                Kind::Gauge,
                "Root synchronization distance of the system peer.",
                d,
            );
        }
    }
    e.family(
        "mcast_client_uptime_seconds",
        Kind::Gauge,
        "Seconds since the client started.",
    );
    e.sample::<&str>("mcast_client_uptime_seconds", &[], s.uptime_s);
    e.family(
        "mcast_client_clock_mode",
        Kind::Gauge,
        "What the client may do to the clock: 1 for the configured mode.",
    );
    for m in ClockModeStatus::ALL {
        e.sample(
            "mcast_client_clock_mode",
            &[("mode", m.name())],
            flag(s.clock_mode == m),
        );
    }
    e.family(
        "mcast_client_clock_decision",
        Kind::Gauge,
        "The last clock decision: 1 for the one made (in monitor mode, always monitor).",
    );
    for d in Decision::NAMES {
        e.sample(
            "mcast_client_clock_decision",
            &[("decision", d)],
            flag(s.decision.as_ref().map(|x| x.kind.as_str()) == Some(d)),
        );
    }
    if let Some(off) = s.offset_ms {
        e.family(
            "mcast_client_offset_seconds",
            Kind::Gauge,
            "Combined offset of the selected servers.",
        );
        e.sample::<&str>("mcast_client_offset_seconds", &[], off / 1e3);
    }
    if let Some(j) = secs(s.jitter_ms) {
        e.single(
            "mcast_client_jitter_seconds",
            Kind::Gauge,
            "System jitter of the selected servers (RFC 5905 11.2.3).",
            j,
        );
    }
    if let Some(age) = s.freshest_s {
        e.family(
            "mcast_client_last_verified_broadcast_age_seconds",
            Kind::Gauge,
            "Seconds since the newest accepted (verified) broadcast from any server.",
        );
        e.sample::<&str>("mcast_client_last_verified_broadcast_age_seconds", &[], age);
    }
    e.family(
        "mcast_client_packets_rejected_total",
        Kind::Counter,
        "Packets dropped before they could be tied to a server, by reason.",
    );
    for (reason, n) in every_reason(
        &GlobalRejection::ALL.map(GlobalRejection::label),
        &s.rejected,
    ) {
        e.sample(
            "mcast_client_packets_rejected_total",
            &[("reason", reason)],
            n as f64,
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
            Kind::Gauge,
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
            Kind::Counter,
            "Broadcasts from the server's address that were not used, by reason.",
        );
        for (v, l) in &servers {
            for (reason, n) in every_reason(&Rejection::ALL.map(Rejection::label), &v.rejected) {
                e.sample(name, &with(l, ("reason", reason)), n as f64);
            }
        }
    }
    e.finish()
}

#[cfg(test)]
mod tests;
