//! Words made at the edge: the `status` report.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mcast_core::server::status::Status;

/// Human-readable status, like `ntpq -c sysstats` plus the destinations.
pub fn format_status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mcast-server {} up {:.0} s", s.version, s.uptime_s);
    match (&s.unsynchronized_reason, s.stratum) {
        (None, Some(st)) => {
            let _ = writeln!(o, "synchronized, stratum {st}");
        }
        (Some(r), _) => {
            let _ = writeln!(o, "NOT synchronized: {r}");
        }
        _ => {}
    }
    if let Some(u) = &s.upstream {
        let addr = u.address.map_or_else(|| "?".to_string(), |a| a.to_string());
        let _ = write!(
            o,
            "upstream {addr}: {} queries, {} replies, every {:.0} s",
            u.queries, u.replies, u.query_interval_s
        );
        match (u.last_reply_ago_s, u.stratum, u.offset_s, u.delay_s) {
            (Some(age), Some(st), Some(off), Some(delay)) => {
                let _ = writeln!(
                    o,
                    "; last usable reply {age:.0} s ago: stratum {st}, offset {:+.6} s, \
                     delay {:.6} s",
                    off, delay
                );
            }
            _ => {
                let _ = writeln!(o, "; no usable reply yet");
            }
        }
        if let Some(p) = &u.last_problem {
            let _ = writeln!(o, "  last problem: {p}");
        }
    }
    let _ = writeln!(
        o,
        "\n{:<24} {:<10} {:<18} {:>4} {:>4} {:>8} {:>8}  problem",
        "destination", "interface", "source", "poll", "key", "sent", "skipped"
    );
    for d in &s.destinations {
        let key = d.key.map_or("-".to_string(), |k| k.to_string());
        let _ = writeln!(
            o,
            "{:<24} {:<10} {:<18} {:>4} {:>4} {:>8} {:>8}  {}",
            d.address.to_string(),
            d.interface,
            d.source.to_string(),
            d.poll,
            key,
            d.sent,
            d.skipped,
            d.last_problem.as_deref().unwrap_or("")
        );
    }
    let c = &s.counters;
    let rows: BTreeMap<usize, (&str, u64)> = [
        ("packets received", c.received),
        ("current version", c.current_version),
        ("older version", c.older_version),
        ("bad length or format", c.bad_format),
        ("authentication failed", c.auth_failed),
        ("declined", c.declined),
        ("restricted", c.restricted),
        ("rate limited", c.rate_limited),
        ("KoD responses", c.kod_sent),
        ("replies sent", c.replies_sent),
        ("crypto-NAKs sent", c.crypto_naks_sent),
        ("multicast-destination", c.multicast_destination),
        ("unverified-limited", c.unverified_limited),
    ]
    .into_iter()
    .enumerate()
    .collect();
    let _ = writeln!(o);
    for (label, n) in rows.values() {
        let _ = writeln!(o, "{:<24} {n}", format!("{label}:"));
    }
    let _ = writeln!(o, "{:<24} {}", "sources remembered:", s.mru_entries);
    if !s.unicast_polling_clients.is_empty() {
        let _ = writeln!(o, "\nclients polling by unicast after their volley:");
        for p in &s.unicast_polling_clients {
            let _ = writeln!(
                o,
                "  {:<40} {:>6} requests, every {:.0} s, last {:.0} s ago",
                p.address.to_string(),
                p.requests,
                p.average_interval_s,
                p.last_request_ago_s
            );
        }
    }
    if !s.top_clients.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<40} {:>8} {:>8} {:>8} {:>4} {:>5}",
            "top sources", "count", "avgint", "lstint", "mode", "key"
        );
        for t in &s.top_clients {
            let _ = writeln!(
                o,
                "{:<40} {:>8} {:>8} {:>8.0} {:>4} {:>5}",
                t.address.to_string(),
                t.count,
                t.average_interval_s
                    .map_or("-".to_string(), |a| format!("{a:.0}")),
                t.last_seen_ago_s,
                t.mode,
                t.key_id.map_or("-".to_string(), |k| k.to_string())
            );
        }
    }
    o
}
