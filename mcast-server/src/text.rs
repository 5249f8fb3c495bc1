//! Words made at the edge: the `status` report and the words of the
//! cores' typed outcomes (status, logs).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use mcast_core::server::broadcaster::Silence;
use mcast_core::server::status::Status;
use mcast_core::server::sync::Unsync;
use mcast_core::server::upstream::{Ignored, UpstreamProblem};

/// Why the server is not synchronized, in words.
pub fn unsync_words(u: &Unsync) -> String {
    match u {
        Unsync::KernelUnsynchronized => "the kernel reports the clock unsynchronized \
                                         (STA_UNSYNC or TIME_ERROR); is chronyd, ntpd or \
                                         phc2sys disciplining it?"
            .into(),
        Unsync::KernelUnreadable { error } => {
            format!("cannot read the kernel's time status: {error}")
        }
        Unsync::ReferenceLost => "the time source lost its reference".into(),
        Unsync::UpstreamNotRunning => "the upstream query task is not running".into(),
        Unsync::UpstreamNoSampleYet { upstream, problem } => format!(
            "no usable reply from upstream {upstream} yet: {}",
            problem.as_ref().map_or_else(
                || "waiting for the first reply".to_string(),
                |p| upstream_problem_words(*upstream, p)
            )
        ),
        Unsync::UpstreamStale {
            upstream,
            after_s,
            intervals,
            problem,
        } => format!(
            "no usable reply from upstream {upstream} for more than {after_s} s ({intervals} \
             query intervals): {}",
            upstream_problem_words(*upstream, problem)
        ),
        Unsync::UpstreamRefused { upstream, problem } => upstream_problem_words(*upstream, problem),
    }
}

/// What went wrong with upstream `at`, in words.
pub fn upstream_problem_words(at: std::net::SocketAddr, p: &UpstreamProblem) -> String {
    match p {
        UpstreamProblem::NoReply => format!(
            "no reply from upstream {at} (is chronyd or ntpd running and answering queries from \
             this host on that address?)"
        ),
        UpstreamProblem::SocketError { error } => {
            format!("sending to or receiving from upstream {at} failed: {error}")
        }
        UpstreamProblem::RateLimited { query_interval_s } => {
            format!("upstream {at} sent kiss-o'-death RATE: querying every {query_interval_s} s")
        }
        UpstreamProblem::Refused { kiss_code } if kiss_code == "DENY" || kiss_code == "RSTR" => {
            format!(
                "upstream {at} refuses to serve us (kiss-o'-death {kiss_code}): allow queries \
                 from this host in its configuration"
            )
        }
        UpstreamProblem::Refused { kiss_code } => {
            format!("upstream {at} sent kiss-o'-death {kiss_code}")
        }
        UpstreamProblem::Unsynchronized {
            leap,
            stratum,
            refid,
        } => format!(
            "upstream {at} is not synchronized (LI={leap}, stratum {stratum}, refid {refid})"
        ),
        UpstreamProblem::UnusableTime { detail } => format!(
            "upstream {at} sent unusable time ({})",
            detail.replace('-', " ")
        ),
        UpstreamProblem::StratumTooHigh { stratum } => format!(
            "upstream {at} is at stratum {stratum}: we would announce {}, and ntpd 4.2.8 \
             clients refuse stratum 15 and above",
            stratum.saturating_add(1)
        ),
        UpstreamProblem::ZeroReceive => format!("upstream {at} sent a zero receive timestamp"),
        UpstreamProblem::ReferenceAfterTransmit => {
            format!("upstream {at} sent a reference time later than its transmit time")
        }
    }
}

/// Why a datagram on the upstream socket was ignored, in words.
pub fn ignored_words(i: &Ignored) -> String {
    match i {
        Ignored::WrongSource(from) => format!("datagram from {from}, not from the upstream"),
        Ignored::Malformed => "malformed reply".into(),
        Ignored::NotAReply(mode) => format!("mode {mode:?} packet, not a reply"),
        Ignored::NoQueryOutstanding => "reply while no query is outstanding (duplicate?)".into(),
        Ignored::WrongOrigin => "reply whose origin is not our query's transmit".into(),
        Ignored::BogusKissOfDeath => "kiss-o'-death that does not echo our query's cookie in \
                                      origin, receive and transmit"
            .into(),
    }
}

/// Why an interval's broadcast was skipped, in words (`keys` names the
/// keys file a missing key was looked for in).
pub fn silence_words(s: &Silence, keys: Option<&Path>) -> String {
    match s {
        Silence::NotSynchronized { reason } => {
            format!("not synchronized: {}", unsync_words(reason))
        }
        Silence::KeyMissing { key } => match keys {
            Some(p) => format!("key {key} is no longer in {}", p.display()),
            None => format!("key {key} is no longer in the keys file"),
        },
        Silence::SendFailed { error } => format!("send failed: {error}"),
    }
}

/// Human-readable status, like `ntpq -c sysstats` plus the destinations.
pub fn format_status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "mcast-server {} up {:.0} s", s.version, s.uptime_s);
    match (&s.unsynchronized, s.stratum) {
        (None, Some(st)) => {
            let _ = writeln!(o, "synchronized, stratum {st}");
        }
        (Some(r), _) => {
            let _ = writeln!(o, "NOT synchronized: {}", unsync_words(r));
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
        if let (Some(p), Some(at)) = (&u.last_problem, u.address) {
            let _ = writeln!(o, "  last problem: {}", upstream_problem_words(at, p));
        }
    }
    // Address columns as wide as their longest entry (IPv6 included).
    let widest = |it: &mut dyn Iterator<Item = String>, least: usize| {
        it.map(|a| a.len()).max().unwrap_or(0).max(least)
    };
    let wd = widest(
        &mut s.destinations.iter().map(|d| d.address.to_string()),
        24,
    );
    let wi = widest(&mut s.destinations.iter().map(|d| d.interface.clone()), 10);
    let ws = widest(&mut s.destinations.iter().map(|d| d.source.to_string()), 18);
    let _ = writeln!(
        o,
        "\n{:<wd$} {:<wi$} {:<ws$} {:>4} {:>4} {:>8} {:>8}  problem",
        "destination", "interface", "source", "poll", "key", "sent", "skipped"
    );
    for d in &s.destinations {
        let key = d.key.map_or("-".to_string(), |k| k.to_string());
        let _ = writeln!(
            o,
            "{:<wd$} {:<wi$} {:<ws$} {:>4} {:>4} {:>8} {:>8}  {}",
            d.address.to_string(),
            d.interface,
            d.source.to_string(),
            d.poll,
            key,
            d.sent,
            d.skipped,
            d.last_problem
                .as_ref()
                .map_or_else(String::new, |p| silence_words(p, None))
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
        ("signed replies sent", c.signed_sent),
        ("sign-budget", c.sign_budget),
        ("sign-key-unknown", c.sign_key_unknown),
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
