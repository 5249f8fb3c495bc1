//! `mcast-client check`, the monitoring plugin (Nagios, Icinga): a pure
//! verdict from a status snapshot and thresholds ([`verdict`]), made of
//! typed [`Finding`]s, and its one line of text with performance data
//! ([`render`], [`render_unknown`]).
//!
//! Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no status: the
//! socket or the configuration could not be read). Performance data, on
//! every exit status (`U` where a value is unknown): `offset` (s, with the
//! -w/-c thresholds), `jitter` (s), `selected` (servers, warning below
//! min-agreeing), `age` (s since the last verified broadcast, with the
//! stale thresholds), `stratum`.

use std::fmt::Write as _;
use std::net::IpAddr;

use mcast_core::client::association::State;
use mcast_core::client::select::NoSelection;
use mcast_core::client::status::ClientStatus;

/// What the check is run with (command-line options; defaults in
/// [`Thresholds::default`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// |offset| at or above this is WARNING, seconds (`-w`).
    pub offset_warning_s: f64,
    /// |offset| at or above this is CRITICAL, seconds (`-c`).
    pub offset_critical_s: f64,
    /// System jitter above this is WARNING, seconds (`--jitter`, 0.002).
    pub jitter_warning_s: f64,
    /// A client stratum (the system peer's plus one) above this is WARNING
    /// (`--stratum`, 5).
    pub stratum_warning: u8,
    /// No verified broadcast for this many of the longest broadcast
    /// interval is WARNING (`--stale-intervals`, 4).
    pub stale_warning_intervals: f64,
    /// ... and this many CRITICAL (`--stale-critical-intervals`, 8).
    pub stale_critical_intervals: f64,
    /// Servers that must be selected; `None`: the running client's
    /// `selection.min-agreeing` (`--min-agreeing`).
    pub min_agreeing: Option<usize>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            offset_warning_s: 0.005,
            offset_critical_s: 0.050,
            jitter_warning_s: 0.002,
            stratum_warning: 5,
            stale_warning_intervals: 4.0,
            stale_critical_intervals: 8.0,
            min_agreeing: None,
        }
    }
}

/// How bad a finding is (the plugin's exit status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// 0.
    Ok,
    /// 1.
    Warning,
    /// 2.
    Critical,
    /// 3: the state could not be read.
    Unknown,
}

impl Severity {
    /// The exit status.
    pub fn code(self) -> u8 {
        match self {
            Severity::Ok => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
            Severity::Unknown => 3,
        }
    }

    fn word(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Unknown => "UNKNOWN",
        }
    }
}

/// One thing wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// No verified broadcast from any server yet.
    NoBroadcastYet,
    /// The newest verified broadcast is older than the stale threshold.
    Stale {
        /// Its age, seconds.
        age_s: f64,
        /// The threshold passed, seconds.
        limit_s: f64,
        /// Warning or critical.
        severity: Severity,
    },
    /// Selection combined no offset.
    NothingSelected {
        /// Why, as selection says.
        reason: Option<NoSelection>,
    },
    /// |offset| at or above a threshold.
    Offset {
        /// The offset, seconds.
        offset_s: f64,
        /// The threshold, seconds.
        limit_s: f64,
        /// Warning or critical.
        severity: Severity,
    },
    /// A selected server is tracked on the fallback delay: its calibration
    /// failed, and its offset is off by about that delay.
    Uncalibrated {
        /// Its address.
        server: IpAddr,
        /// Its configured name.
        name: String,
        /// The one-way delay assumed, ms.
        one_way_delay_ms: Option<f64>,
    },
    /// Fewer servers selected than must agree.
    TooFewAgreeing {
        /// Servers selected.
        selected: usize,
        /// min-agreeing.
        min_agreeing: usize,
    },
    /// System jitter above the threshold.
    Jitter {
        /// The jitter, seconds.
        jitter_s: f64,
        /// The threshold, seconds.
        limit_s: f64,
    },
    /// The multicast group stopped delivering: no authenticated broadcast
    /// from any server for longer than the client's `group-silent-intervals`
    /// allow; the client is re-joining.
    GroupSilent {
        /// Seconds since the last authenticated broadcast.
        last_delivery_s: f64,
        /// The client's silence threshold, seconds.
        silent_after_s: f64,
        /// Re-joins since start.
        rejoins: u64,
    },
    /// The client's stratum above the threshold.
    Stratum {
        /// The client's stratum.
        stratum: u8,
        /// The threshold.
        limit: u8,
    },
}

impl Finding {
    /// How bad it is.
    pub fn severity(&self) -> Severity {
        match self {
            Finding::NoBroadcastYet
            | Finding::NothingSelected { .. }
            | Finding::GroupSilent { .. } => Severity::Critical,
            Finding::Stale { severity, .. } | Finding::Offset { severity, .. } => *severity,
            Finding::Uncalibrated { .. }
            | Finding::TooFewAgreeing { .. }
            | Finding::Jitter { .. }
            | Finding::Stratum { .. } => Severity::Warning,
        }
    }

    fn words(&self) -> String {
        match self {
            Finding::NoBroadcastYet => "no authenticated broadcast received yet".into(),
            Finding::Stale { age_s, limit_s, .. } => {
                format!("no authenticated broadcast for {age_s:.0} s (limit {limit_s:.0} s)")
            }
            Finding::NothingSelected { reason } => format!(
                "no server selected: {}",
                reason.as_ref().map_or_else(
                    || "not enough servers".into(),
                    crate::text::no_selection_words
                )
            ),
            Finding::Offset {
                offset_s, limit_s, ..
            } => format!("offset {offset_s:+.6} s beyond {limit_s} s"),
            Finding::Uncalibrated {
                server,
                name,
                one_way_delay_ms,
            } => {
                let who = if name == &server.to_string() {
                    server.to_string()
                } else {
                    format!("{name} ({server})")
                };
                match one_way_delay_ms {
                    Some(d) => format!(
                        "{who} is tracked on the fallback delay ({d:.3} ms assumed, uncalibrated)"
                    ),
                    None => format!("{who} is tracked on the fallback delay (uncalibrated)"),
                }
            }
            Finding::TooFewAgreeing {
                selected,
                min_agreeing,
            } => format!("{selected} servers selected, min-agreeing is {min_agreeing}"),
            Finding::Jitter { jitter_s, limit_s } => {
                format!("jitter {jitter_s:.6} s above {limit_s} s")
            }
            Finding::Stratum { stratum, limit } => format!("stratum {stratum} above {limit}"),
            Finding::GroupSilent {
                last_delivery_s,
                silent_after_s,
                rejoins,
            } => crate::text::group_silent_check(*last_delivery_s, *silent_after_s, *rejoins),
        }
    }
}

/// The figures reported as performance data.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Figures {
    /// Selected offset, seconds.
    pub offset_s: Option<f64>,
    /// System jitter, seconds.
    pub jitter_s: Option<f64>,
    /// Servers selected (system peer and survivors).
    pub selected: Option<usize>,
    /// Servers configured or discovered.
    pub servers: Option<usize>,
    /// Seconds since the newest verified broadcast.
    pub age_s: Option<f64>,
    /// The client's stratum.
    pub stratum: Option<u8>,
    /// min-agreeing in effect.
    pub min_agreeing: usize,
    /// Stale thresholds in effect, seconds.
    pub stale_s: Option<(f64, f64)>,
}

/// The check's result: what is wrong (nothing when OK) and the figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Every finding, most severe first.
    pub findings: Vec<Finding>,
    /// The figures.
    pub figures: Figures,
}

impl Verdict {
    /// The worst finding's severity, OK when there is none.
    pub fn severity(&self) -> Severity {
        self.findings
            .iter()
            .map(Finding::severity)
            .max()
            .unwrap_or(Severity::Ok)
    }
}

/// The verdict on a status snapshot.
pub fn verdict(s: &ClientStatus, t: &Thresholds) -> Verdict {
    let mut findings = Vec::new();
    let interval = s.servers.iter().map(|v| v.poll_s).max().unwrap_or(0).max(1) as f64;
    let stale = (
        interval * t.stale_warning_intervals,
        interval * t.stale_critical_intervals,
    );
    let selected: Vec<_> = s
        .servers
        .iter()
        .filter(|v| matches!(v.tally, '*' | '+'))
        .collect();
    let min_agreeing = t.min_agreeing.or(s.min_agreeing).unwrap_or(1).max(1);
    let stratum = s
        .servers
        .iter()
        .find(|v| v.tally == '*')
        .and_then(|v| v.stratum)
        .map(|st| st.saturating_add(1));

    match s.freshest_s {
        None => findings.push(Finding::NoBroadcastYet),
        Some(age) if age > stale.1 => findings.push(Finding::Stale {
            age_s: age,
            limit_s: stale.1,
            severity: Severity::Critical,
        }),
        Some(age) if age > stale.0 => findings.push(Finding::Stale {
            age_s: age,
            limit_s: stale.0,
            severity: Severity::Warning,
        }),
        Some(_) => {}
    }
    if let Some(g) = s.group.filter(|g| g.silent) {
        findings.push(Finding::GroupSilent {
            last_delivery_s: g.last_delivery_s,
            silent_after_s: g.silent_after_s,
            rejoins: g.rejoins,
        });
    }
    match s.offset_ms.map(|o| o / 1e3) {
        None => findings.push(Finding::NothingSelected {
            reason: s.selection_problem,
        }),
        Some(off) if off.abs() >= t.offset_critical_s => findings.push(Finding::Offset {
            offset_s: off,
            limit_s: t.offset_critical_s,
            severity: Severity::Critical,
        }),
        Some(off) if off.abs() >= t.offset_warning_s => findings.push(Finding::Offset {
            offset_s: off,
            limit_s: t.offset_warning_s,
            severity: Severity::Warning,
        }),
        Some(_) => {}
    }
    if s.offset_ms.is_some() && selected.len() < min_agreeing {
        findings.push(Finding::TooFewAgreeing {
            selected: selected.len(),
            min_agreeing,
        });
    }
    for v in &selected {
        if v.state == State::Tracking && !v.calibrated {
            findings.push(Finding::Uncalibrated {
                server: v.remote,
                name: v.name.clone(),
                one_way_delay_ms: v.one_way_delay_ms,
            });
        }
    }
    let jitter_s = s.jitter_ms.map(|j| j / 1e3);
    if let Some(j) = jitter_s.filter(|j| *j > t.jitter_warning_s) {
        findings.push(Finding::Jitter {
            jitter_s: j,
            limit_s: t.jitter_warning_s,
        });
    }
    if let Some(st) = stratum.filter(|st| *st > t.stratum_warning) {
        findings.push(Finding::Stratum {
            stratum: st,
            limit: t.stratum_warning,
        });
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity()));
    Verdict {
        findings,
        figures: Figures {
            offset_s: s.offset_ms.map(|o| o / 1e3),
            jitter_s,
            selected: Some(selected.len()),
            servers: Some(s.servers.len()),
            age_s: s.freshest_s,
            stratum,
            min_agreeing,
            stale_s: Some(stale),
        },
    }
}

fn or_u(v: Option<String>) -> String {
    v.unwrap_or_else(|| "U".into())
}

/// Performance data (after the `|`): every figure, `U` when unknown.
fn perfdata(f: &Figures, t: &Thresholds) -> String {
    let (sw, sc) = f.stale_s.map_or((String::new(), String::new()), |(w, c)| {
        (w.to_string(), c.to_string())
    });
    format!(
        "offset={}s;{};{} jitter={}s;{} selected={};{}:;;0 age={}s;{sw};{sc};0 stratum={};{};;0;16",
        or_u(f.offset_s.map(|o| format!("{o:.6}"))),
        t.offset_warning_s,
        t.offset_critical_s,
        or_u(f.jitter_s.map(|j| format!("{j:.6}"))),
        t.jitter_warning_s,
        or_u(f.selected.map(|n| n.to_string())),
        f.min_agreeing,
        or_u(f.age_s.map(|a| format!("{a:.1}"))),
        or_u(f.stratum.map(|s| s.to_string())),
        t.stratum_warning,
    )
}

/// The plugin's line (without the `MCAST-NTP ` prefix) and exit status.
pub fn render(v: &Verdict, t: &Thresholds) -> (u8, String) {
    let sev = v.severity();
    let f = &v.figures;
    let mut o = format!("{} - ", sev.word());
    let mut summary = Vec::new();
    if let Some(off) = f.offset_s {
        summary.push(format!("offset {off:.6} s"));
    }
    if let (Some(n), Some(of)) = (f.selected, f.servers) {
        summary.push(format!("{n} of {of} servers selected"));
    }
    if let Some(age) = f.age_s {
        summary.push(format!("last broadcast {age:.0} s ago"));
    }
    let problems: Vec<String> = v.findings.iter().map(Finding::words).collect();
    if !problems.is_empty() {
        o.push_str(&problems.join("; "));
        if !summary.is_empty() {
            o.push_str("; ");
        }
    }
    o.push_str(&summary.join(", "));
    let _ = write!(o, "|{}", perfdata(f, t));
    (sev.code(), o)
}

/// The UNKNOWN line when no status could be read, with the cause; the
/// performance data is all `U`.
pub fn render_unknown(cause: &str, t: &Thresholds) -> (u8, String) {
    let figures = Figures {
        min_agreeing: t.min_agreeing.unwrap_or(1),
        ..Figures::default()
    };
    (
        Severity::Unknown.code(),
        format!("UNKNOWN - {cause}|{}", perfdata(&figures, t)),
    )
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
