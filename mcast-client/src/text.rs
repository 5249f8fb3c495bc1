//! Words made at the edge: the `status` table, the `check` verdict and the
//! log line of each core event.

use std::fmt::Write as _;

use mcast_core::client::calibration::{Failure, FallbackReason, Phase};
use mcast_core::client::engine::{CheckReason, Event, KeyLoss, KeyLossReason};
use mcast_core::client::status::ClientStatus;

/// The log line of a core event.
pub fn event_line(e: &Event) -> String {
    match e {
        Event::Calibrating { server } => {
            format!("{server}: first authenticated broadcast; calibrating")
        }
        Event::Unpaired { server, count } => format!(
            "{server}: {count} broadcasts in a row whose origin is not the previous \
             broadcast's send time; is `interleave = true` set for it on the server too?"
        ),
        Event::KissOfDeath { server, code } => {
            format!("{server}: kiss-o'-death {code} in reply to calibration")
        }
        Event::CalibrationDone {
            server,
            to,
            local_port,
            phase,
            summary,
        } => {
            let no_reply = matches!(
                phase,
                Phase::Fallback {
                    reason: FallbackReason::Failed {
                        failure: Failure::NoReply { .. },
                        ..
                    },
                    ..
                }
            );
            if no_reply {
                let from =
                    local_port.map_or("an ephemeral port".to_string(), |p| format!("port {p}"));
                format!(
                    "{server}: no reply from {to} to requests sent from {from}; check that UDP \
                     replies to that port are allowed ({summary})"
                )
            } else {
                format!("{server}: {summary}")
            }
        }
        Event::Checking { server, why } => match why {
            CheckReason::Spot => {
                format!("{server}: spot check of its offset by unicast (spot-check-hours)")
            }
            CheckReason::Backstep => format!(
                "{server}: packets behind the last accepted one keep coming and the newer \
                 stream stopped; checking by unicast whether its clock went back"
            ),
            CheckReason::Stale => format!(
                "{server}: broadcasts disagree with the last measured offset (a clock jump, \
                 packets held back, or a replay); not selectable until a unicast check confirms \
                 it"
            ),
        },
        Event::CheckUnanswered { server, retry_in } => format!(
            "{server}: no usable reply to the unicast check; not selectable; next check in {} s",
            retry_in.as_secs()
        ),
        Event::SteppedBack { server } => {
            format!(
                "{server}: server clock stepped back, confirmed by a unicast check; following it"
            )
        }
        Event::BackstepRefuted { server } => format!(
            "{server}: older packets looked like a backward step of its clock, but the unicast \
             check disagrees with them: dropped as a replay"
        ),
        Event::ClockAdjustmentFailed { error } => format!("clock adjustment failed: {error}"),
    }
}

/// Why a reload was refused: each server it would cut off.
pub fn key_loss(lost: &[KeyLoss]) -> String {
    let each: Vec<String> = lost
        .iter()
        .map(|l| match l.why {
            KeyLossReason::Missing => {
                format!(
                    "key {} of server {} is not in the new keys file",
                    l.key, l.server
                )
            }
            KeyLossReason::AddressNotAllowed => format!(
                "key {} no longer allows the address of server {}",
                l.key, l.server
            ),
        })
        .collect();
    format!(
        "{}; the client would send unsigned requests to it and reject its broadcasts (restart \
         with a matching configuration to change a server's key)",
        each.join("; ")
    )
}

/// The status table, like `ntpq -pn` plus our columns.
pub fn format_status(s: &ClientStatus) -> String {
    let mut o = String::new();
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    let _ = writeln!(
        o,
        "     {:<24} {:<16} {:>2} t {:>5} {:>5} {:>4} {:>9} {:>9} {:>8}",
        "remote", "refid", "st", "when", "poll", "reach", "delay", "offset", "jitter"
    );
    let _ = writeln!(o, "{}", "=".repeat(99));
    for v in &s.servers {
        let _ = writeln!(
            o,
            "{}    {:<24} {:<16} {:>2} {} {:>5} {:>5} {:>4o} {:>9} {:>9} {:>8}",
            v.tally,
            v.remote.to_string(),
            v.refid,
            v.stratum.map_or("-".to_string(), |s| s.to_string()),
            v.t,
            opt(v.when_s, 0),
            v.poll_s,
            v.reach,
            opt(v.delay_ms, 3),
            opt(v.offset_ms, 3),
            opt(v.jitter_ms, 3),
        );
    }
    let _ = writeln!(o);
    for v in &s.servers {
        let rejected = if v.rejected.is_empty() {
            "none".to_string()
        } else {
            v.rejected
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "{} ({}): {:?}; {}; unicast sent {}; rejected: {}",
            v.remote, v.name, v.state, v.calibration, v.unicast_sent, rejected
        );
    }
    let _ = writeln!(o);
    match (s.offset_ms, &s.selection_problem) {
        (Some(off), _) => {
            let _ = writeln!(
                o,
                "selected offset {off:.3} ms; clock mode {}",
                s.clock_mode
            );
        }
        (None, Some(p)) => {
            let _ = writeln!(o, "nothing selected: {p}; clock mode {}", s.clock_mode);
        }
        (None, None) => {
            let _ = writeln!(o, "nothing selected yet; clock mode {}", s.clock_mode);
        }
    }
    if !s.rejected.is_empty() {
        let list = s
            .rejected
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(o, "dropped before matching a server: {list}");
    }
    o
}

/// The monitoring-plugin verdict: exit code (0 OK, 1 WARNING, 2 CRITICAL)
/// and the text, from the selected offset and how fresh reception is.
pub fn check_verdict(s: &ClientStatus, warning_s: f64, critical_s: f64) -> (u8, String) {
    let stale_after = s
        .servers
        .iter()
        .map(|v| v.poll_s as f64 * 8.0)
        .fold(0.0, f64::max)
        .max(64.0);
    let perf = |off: f64| format!("|offset={:.6}s;{warning_s};{critical_s}", off / 1e3);
    match (s.offset_ms, s.freshest_s) {
        (_, None) => (
            2,
            "CRITICAL - no authenticated broadcast received yet".into(),
        ),
        (_, Some(age)) if age > stale_after => (
            2,
            format!("CRITICAL - no authenticated broadcast for {age:.0} s"),
        ),
        (None, _) => (
            2,
            format!(
                "CRITICAL - no server selected: {}",
                s.selection_problem
                    .as_deref()
                    .unwrap_or("not enough servers")
            ),
        ),
        (Some(off), Some(age)) => {
            let abs = off.abs() / 1e3;
            let text = format!(
                "offset {:.6} s, last broadcast {age:.0} s ago{}",
                off / 1e3,
                perf(off)
            );
            if abs >= critical_s {
                (2, format!("CRITICAL - {text}"))
            } else if abs >= warning_s {
                (1, format!("WARNING - {text}"))
            } else {
                (0, format!("OK - {text}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unpaired_warning_names_the_setting_to_check() {
        let line = event_line(&Event::Unpaired {
            server: "s1".into(),
            count: 8,
        });
        assert!(line.starts_with("s1: 8 broadcasts"), "{line}");
        assert!(line.contains("`interleave = true`"), "{line}");
    }

    #[test]
    fn no_reply_says_which_port_replies_must_reach() {
        let line = event_line(&Event::CalibrationDone {
            server: "s1".into(),
            to: "198.18.0.1:123".parse().expect("address"),
            local_port: Some(41230),
            phase: Phase::Fallback {
                one_way: mcast_proto::NtpDuration::from_millis(4),
                reason: FallbackReason::Failed {
                    failure: Failure::NoReply {
                        requests: 6,
                        route: None,
                    },
                    volleys: Some(4),
                },
            },
            summary: "UNCALIBRATED".into(),
        });
        assert!(
            line.contains("no reply from 198.18.0.1:123 to requests sent from port 41230"),
            "{line}"
        );
    }
}
