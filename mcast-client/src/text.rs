//! Words made at the edge: the `status` table and the log line of each
//! core event (the `check` verdict is [`crate::check`]).

use std::fmt::Write as _;
use std::net::IpAddr;

use mcast_core::client::engine::{CheckReason, Event, KeyLoss, KeyLossReason, StepNowError};
use mcast_core::client::select::NoSelection;
use mcast_core::client::status::{
    CalibrationStatus, ClientStatus, DecisionStatus, FailureStatus, ReplyProblemStatus,
};

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
        } => {
            let status = CalibrationStatus::of(Some(phase));
            let summary = calibration_words(&status);
            let no_reply = matches!(
                status,
                CalibrationStatus::Fallback {
                    failure: Some(FailureStatus::NoReply { .. }),
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
        Event::GroupSilent { .. } => group_silent_line(e, &[]),
        Event::GroupBack { .. } => group_back_line(e, &[]),
    }
}

/// `group 224.0.1.1 on eth0, group ff05::101 on eth1` (or `the group`).
fn listeners_words(listeners: &[(IpAddr, String)]) -> String {
    if listeners.is_empty() {
        return "the group".into();
    }
    let each: Vec<String> = listeners
        .iter()
        .map(|(g, i)| format!("group {g} on {i}"))
        .collect();
    each.join(", ")
}

/// The likely causes of a silent group, most likely first.
const GROUP_SILENT_CAUSES: &str = "no IGMP/MLD querier on a switch that snoops IGMP (its \
     membership ages out a few minutes after the last query), the switch's snooping dropped \
     the membership, a TTL too small on the servers (`ttl` of their [[destination]]) or a \
     router in between that does not forward the group, or the wrong interface in [[listen]]";

/// The one log line of a silence ([`Event::GroupSilent`]), naming every
/// group and interface the client listens on.
pub fn group_silent_line(e: &Event, listeners: &[(IpAddr, String)]) -> String {
    let Event::GroupSilent {
        intervals,
        silent_for,
        expected_interval,
        ignored,
        ..
    } = e
    else {
        return String::new();
    };
    let causes = if *ignored > 0 {
        format!(
            "{ignored} datagram(s) did arrive meanwhile but none was an authentic, new \
             broadcast of a configured server, so the path works: check the servers' keys \
             (status: rejected by reason), or a host replaying or forging packets. Otherwise: \
             {GROUP_SILENT_CAUSES}"
        )
    } else {
        format!("nothing arrived at all. Likely causes: {GROUP_SILENT_CAUSES}")
    };
    format!(
        "{}: no authenticated broadcast from any server for {} s ({intervals} x the slowest \
         poll interval, {} s); re-joining the group (a fresh IGMP/MLD report) and reporting \
         CRITICAL until broadcasts return; {causes}",
        listeners_words(listeners),
        silent_for.as_secs(),
        expected_interval.as_secs()
    )
}

/// The one log line of the group's recovery ([`Event::GroupBack`]).
pub fn group_back_line(e: &Event, listeners: &[(IpAddr, String)]) -> String {
    let Event::GroupBack {
        silent_for,
        rejoins,
    } = e
    else {
        return String::new();
    };
    format!(
        "{}: authenticated broadcasts are back after {} s of silence ({rejoins} re-join(s))",
        listeners_words(listeners),
        silent_for.as_secs()
    )
}

/// A re-join that failed (the membership could not be dropped or added).
pub fn rejoin_failed(group: IpAddr, interface: &str, attempt: u32, error: &str) -> String {
    format!("re-join {attempt} of group {group} on {interface} failed: {error}")
}

/// The `status` line of the group, once it has ever been silent.
pub fn group_words(g: &mcast_core::client::status::GroupStatus) -> String {
    if g.silent {
        format!(
            "group SILENT: no authenticated broadcast for {:.0} s (limit {:.0} s); re-joined {} \
             time(s) so far; see the log for the likely causes",
            g.last_delivery_s, g.silent_after_s, g.rejoins
        )
    } else {
        format!(
            "group delivering; silent {} time(s) since start, {} re-join(s)",
            g.silences, g.rejoins
        )
    }
}

/// The `check` words of a silent group.
pub fn group_silent_check(last_delivery_s: f64, silent_after_s: f64, rejoins: u64) -> String {
    format!(
        "multicast group silent for {last_delivery_s:.0} s (limit {silent_after_s:.0} s, \
         {rejoins} re-joins): check the IGMP querier and snooping on the switch, the servers' \
         TTL and the [[listen]] interface"
    )
}

/// `igmp-version`/`mld-version` was applied (or already in force).
pub fn multicast_version_applied(path: &str, old: &str, new: u8) -> String {
    if old == new.to_string() {
        format!("{path} is already {new}")
    } else {
        format!("set {path} to {new} (was {old})")
    }
}

/// `igmp-version`/`mld-version` could not be applied: the kernel's
/// default stays; how to set it instead.
pub fn multicast_version_failed(path: &str, new: u8, error: &str) -> String {
    // sysctl's name: components joined by dots, a dot within one (a VLAN
    // interface such as bond0.100) written as a slash.
    let key: Vec<String> = path
        .trim_start_matches("/proc/sys/")
        .split('/')
        .map(|c| c.replace('.', "/"))
        .collect();
    let key = key.join(".");
    format!(
        "could not write {new} to {path} ({error}); the kernel's version stays. Set it for \
         the host instead, e.g. `{key} = {new}` in /etc/sysctl.d/60-mcast-ntp.conf (the \
         packaged unit may not write kernel settings)"
    )
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

/// Where a server's calibration stands, in words (the `status` detail line,
/// the lab's note and the calibration log line).
pub fn calibration_words(c: &CalibrationStatus) -> String {
    match c {
        CalibrationStatus::AwaitingBroadcast => {
            "waiting for the first authenticated broadcast".into()
        }
        CalibrationStatus::Waiting { attempt: 0 } => "calibration starts shortly".into(),
        CalibrationStatus::Waiting { attempt } => format!("retry {attempt} pending"),
        CalibrationStatus::Volley { attempt, sent } => {
            format!("volley {}: {sent} requests sent", u32::from(*attempt) + 1)
        }
        CalibrationStatus::Calibrated {
            one_way_delay_ms,
            exchanges,
            restored,
        } => format!(
            "calibrated: one-way delay {one_way_delay_ms:.3} ms from {exchanges} exchanges{}",
            if *restored {
                " (measured before the restart)"
            } else {
                ""
            }
        ),
        CalibrationStatus::Fallback {
            one_way_delay_ms,
            failure,
            volleys,
        } => {
            let why = match (failure, volleys) {
                (None, _) => "a fixed delay is configured".to_string(),
                (Some(f), Some(n)) => format!("{} (after {n} volleys)", failure_words(f)),
                (Some(f), None) => failure_words(f),
            };
            format!("UNCALIBRATED (using {one_way_delay_ms:.3} ms): {why}")
        }
        CalibrationStatus::Untrusted { failure } => format!(
            "UNTRUSTED: {}; its broadcasts are not used (mcast-client recalibrate measures \
             again)",
            failure_words(failure)
        ),
    }
}

/// Why a calibration failed, in words.
pub fn failure_words(f: &FailureStatus) -> String {
    match f {
        FailureStatus::NoReply {
            requests,
            server: Some(server),
            source_port: Some(port),
        } => format!(
            "no reply from {server} to {requests} requests sent from port {port}; check that \
             UDP replies to that port are allowed"
        ),
        FailureStatus::NoReply { requests, .. } => format!("no reply to {requests} requests"),
        FailureStatus::DelayTooLarge {
            round_trip_ms,
            bound_ms,
        } => format!(
            "calibrated round trip {round_trip_ms:.1} ms exceeds the {bound_ms:.1} ms bound"
        ),
        FailureStatus::SlowerThanUnicast {
            one_way_delay_ms,
            round_trip_ms,
        } => format!(
            "broadcasts arrive {one_way_delay_ms:.3} ms after they were sent, more than the best \
             unicast round trip ({round_trip_ms:.3} ms) allows: are they held back on the path?"
        ),
        FailureStatus::StaleBroadcasts { count } => format!(
            "the {count} broadcasts heard disagree with the server's unicast time by more than \
             the round-trip bound: a replayed recording?"
        ),
        FailureStatus::NoPairableBroadcast => "no usable reply: no broadcast arrived close enough \
                                               in time to pair with the replies"
            .into(),
        FailureStatus::NoUsableReply { problems, more } => {
            let mut each: Vec<String> = problems.iter().map(reply_problem_words).collect();
            if *more > 0 {
                each.push(format!("and {more} more"));
            }
            format!("no usable reply: {}", each.join("; "))
        }
        FailureStatus::Refused { kiss_code } => {
            format!("the server refused unicast (KoD {kiss_code})")
        }
    }
}

fn reply_problem_words(p: &ReplyProblemStatus) -> String {
    match p {
        ReplyProblemStatus::CryptoNak { key } => {
            format!("the server answered with a crypto-NAK: it does not accept key {key}")
        }
        ReplyProblemStatus::Unsigned => "the reply was not signed".into(),
        ReplyProblemStatus::Authentication { detail } => {
            format!(
                "the reply failed authentication ({})",
                detail.replace('-', " ")
            )
        }
        ReplyProblemStatus::UnusableTime { detail } => format!(
            "the server's reply is not usable time ({})",
            detail.replace('-', " ")
        ),
    }
}

/// Why nothing is selected, in words.
pub fn no_selection_words(n: &NoSelection) -> String {
    let far = |too_far: usize, limit: f64| match too_far {
        0 => String::new(),
        1 => format!("; 1 server too far (root distance over {limit} s)"),
        n => format!("; {n} servers too far (root distance over {limit} s)"),
    };
    match *n {
        NoSelection::NoServers => "no servers to select from".into(),
        NoSelection::AllTooFar {
            candidates,
            max_root_distance_s,
        } => format!(
            "no usable server: all {candidates} too far (root distance over \
             {max_root_distance_s} s)"
        ),
        NoSelection::NoMajority {
            agreeing,
            usable,
            too_far,
            max_root_distance_s,
        } => format!(
            "no majority: {agreeing} of {usable} servers agree{}",
            far(too_far, max_root_distance_s)
        ),
        NoSelection::TooFewAgreeing {
            agreeing,
            needed,
            too_far,
            max_root_distance_s,
        } => format!(
            "only {agreeing} {}, min-agreeing requires {needed}{}",
            if agreeing == 1 {
                "server agrees"
            } else {
                "servers agree"
            },
            far(too_far, max_root_distance_s)
        ),
        NoSelection::NoSurvivors => "no survivors after clustering".into(),
    }
}

/// The last clock decision, in words.
pub fn decision_words(d: &DecisionStatus) -> String {
    let mut w = format!("{} at offset {:.3} ms", d.kind, d.offset_ms);
    if let (Some(c), Some(f)) = (d.correction_ms, d.frequency_ppm) {
        let _ = write!(w, " (slewing {c:.3} ms, frequency {f:.3} ppm)");
    }
    if let Some(r) = d.remaining_s {
        let _ = write!(w, " ({r:.0} s left)");
    }
    w
}

/// The status table, like `ntpq -pn` plus our columns.
pub fn format_status(s: &ClientStatus) -> String {
    let mut o = String::new();
    let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |x| format!("{x:.p$}"));
    // The address column is as wide as the longest address (IPv6 ones
    // included), never narrower than ntpq's.
    let w = s
        .servers
        .iter()
        .map(|v| v.remote.to_string().len())
        .max()
        .unwrap_or(0)
        .max(24);
    let _ = writeln!(
        o,
        "     {:<w$} {:<16} {:>2} t {:>5} {:>5} {:>4} {:>9} {:>9} {:>8}",
        "remote", "refid", "st", "when", "poll", "reach", "delay", "offset", "jitter"
    );
    let _ = writeln!(o, "{}", "=".repeat(75 + w));
    for v in &s.servers {
        let _ = writeln!(
            o,
            "{}    {:<w$} {:<16} {:>2} {} {:>5} {:>5} {:>4o} {:>9} {:>9} {:>8}",
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
            v.remote,
            v.name,
            v.state,
            calibration_words(&v.calibration),
            v.unicast_sent,
            rejected
        );
    }
    let _ = writeln!(o);
    match (s.offset_ms, &s.selection_problem) {
        (Some(off), _) => {
            let _ = writeln!(
                o,
                "selected offset {off:.3} ms; clock mode {}",
                s.clock_mode.name()
            );
        }
        (None, Some(p)) => {
            let _ = writeln!(
                o,
                "nothing selected: {}; clock mode {}",
                no_selection_words(p),
                s.clock_mode.name()
            );
        }
        (None, None) => {
            let _ = writeln!(
                o,
                "nothing selected yet; clock mode {}",
                s.clock_mode.name()
            );
        }
    }
    if let Some(d) = &s.decision {
        let _ = writeln!(o, "last clock decision: {}", decision_words(d));
    }
    if let Some(g) = s.group.filter(|g| g.silent || g.silences > 0) {
        let _ = writeln!(o, "{}", group_words(&g));
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

/// The log line of an offset the panic threshold refuses: what happened
/// and the command that sets the clock.
pub const PANIC_LINE: &str = "offset over the panic threshold: refusing to adjust the clock; \
    run `mcast-client step-now` to step it to the selected time";

/// Why `step-now` did not step the clock, in words.
pub fn step_now_refusal(e: &StepNowError) -> String {
    match e {
        StepNowError::Monitor => {
            "refused: the client is in monitor mode ([clock] mode = \"monitor\") \
                                  and never touches the clock"
                .into()
        }
        StepNowError::NothingSelected => {
            "refused: no server is selected, so there is no time to step to; see \
             `mcast-client status`"
                .into()
        }
        StepNowError::Clock(error) => format!("the clock refused the step: {error}"),
    }
}

/// The one-line summary sent to systemd as `STATUS=` (what `systemctl
/// status` shows): synchronized or not, to whom, and how the servers are.
pub fn status_line(s: &ClientStatus) -> String {
    let tracking = s.servers.iter().filter(|v| v.t == 'b').count();
    let calibrating = s.servers.iter().filter(|v| v.t == 'u').count();
    let servers = format!(
        "{tracking} of {} servers tracking{}",
        s.servers.len(),
        if calibrating > 0 {
            format!(", {calibrating} calibrating")
        } else {
            String::new()
        }
    );
    let peer = s
        .servers
        .iter()
        .find(|v| v.tally == '*')
        .map(|v| format!("{} ({})", v.name, v.remote));
    match (s.offset_ms, peer) {
        (Some(offset), Some(peer)) if s.synchronized => {
            format!("synchronized to {peer}, offset {offset:+.3} ms; {servers}")
        }
        (Some(offset), Some(peer)) => format!(
            "selected {peer}, offset {offset:+.3} ms, clock not yet within the step \
             threshold; {servers}"
        ),
        _ => format!(
            "no server selected{}; {servers}",
            s.selection_problem
                .as_ref()
                .map(|p| format!(" ({})", no_selection_words(p)))
                .unwrap_or_default()
        ),
    }
}

/// A ClockBound time as RFC 3339 UTC with nanoseconds.
fn rfc3339(t: std::time::SystemTime) -> String {
    jiff::Timestamp::try_from(t).map_or_else(|_| "out of range".into(), |t| format!("{t:.9}"))
}

fn bound_status_word(s: mcast_core::client::bound::BoundStatus) -> &'static str {
    use mcast_core::client::bound::BoundStatus;
    match s {
        BoundStatus::Unknown => "unknown",
        BoundStatus::Synchronized => "synchronized",
        BoundStatus::FreeRunning => "free-running",
    }
}

/// `mcast-client now`, as lines.
pub fn now_lines(r: &crate::clockbound::Reading) -> String {
    let mut out = String::new();
    match r.interval() {
        Some((earliest, latest)) => {
            let _ = writeln!(out, "earliest  {}", rfc3339(earliest));
            let _ = writeln!(out, "latest    {}", rfc3339(latest));
            let _ = writeln!(
                out,
                "bound     {:.3} ms (written {:.1} s ago, growing at {:.1} ppm)",
                r.bound_ns.unwrap_or(0) as f64 / 1e6,
                r.age.as_secs_f64(),
                f64::from(r.max_drift_ppb) / 1e3
            );
        }
        None => {
            let _ = writeln!(out, "now       {}", rfc3339(r.now));
            let _ = writeln!(out, "bound     none: the time cannot be bounded");
        }
    }
    let _ = writeln!(out, "status    {}", bound_status_word(r.status));
    out
}

/// `mcast-client now --json`.
pub fn now_json(r: &crate::clockbound::Reading) -> String {
    let nanos = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    };
    let interval = r.interval();
    serde_json::json!({
        "now_ns": nanos(r.now).to_string(),
        "earliest_ns": interval.map(|(e, _)| nanos(e).to_string()),
        "latest_ns": interval.map(|(_, l)| nanos(l).to_string()),
        "bound_ns": r.bound_ns,
        "status": bound_status_word(r.status),
        "age_s": r.age.as_secs_f64(),
        "max_drift_ppb": r.max_drift_ppb,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_core::client::calibration::{Failure, FallbackReason, Phase};

    #[test]
    fn the_panic_line_names_the_command_that_sets_the_clock() {
        assert!(
            PANIC_LINE.contains("`mcast-client step-now`"),
            "{PANIC_LINE}"
        );
        // And that command exists.
        use clap::CommandFactory as _;
        let cli = crate::cli::Cli::command();
        assert!(cli.get_subcommands().any(|c| c.get_name() == "step-now"));
    }

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
        });
        assert!(
            line.contains("no reply from 198.18.0.1:123 to requests sent from port 41230"),
            "{line}"
        );
    }

    #[test]
    fn a_silent_group_names_its_groups_and_tells_nothing_arriving_from_failing_keys() {
        let silent = |ignored| Event::GroupSilent {
            intervals: 3,
            since: std::time::Duration::from_secs(10),
            silent_for: std::time::Duration::from_secs(200),
            expected_interval: std::time::Duration::from_secs(64),
            ignored,
        };
        let joined = [
            ("224.0.1.1".parse().unwrap(), "bond0".to_string()),
            ("ff05::101".parse().unwrap(), "bond1".to_string()),
        ];
        let nothing = group_silent_line(&silent(0), &joined);
        assert!(
            nothing.starts_with(
                "group 224.0.1.1 on bond0, group ff05::101 on bond1: no authenticated broadcast \
                 from any server for 200 s (3 x the slowest poll interval, 64 s)"
            ),
            "{nothing}"
        );
        assert!(nothing.contains("nothing arrived at all"), "{nothing}");
        for cause in ["querier", "snooping", "TTL", "interface"] {
            assert!(nothing.contains(cause), "{cause}: {nothing}");
        }
        let junk = group_silent_line(&silent(42), &joined);
        assert!(
            junk.contains("42 datagram(s) did arrive") && junk.contains("keys"),
            "{junk}"
        );
        let back = group_back_line(
            &Event::GroupBack {
                silent_for: std::time::Duration::from_secs(300),
                rejoins: 2,
            },
            &joined[..1],
        );
        assert_eq!(
            back,
            "group 224.0.1.1 on bond0: authenticated broadcasts are back after 300 s of silence \
             (2 re-join(s))"
        );
    }
}
