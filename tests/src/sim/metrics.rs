//! What a run measured, and the figures a user cares about: how far each
//! client's clock was from true time (RMS, maximum, when it settled), how
//! often it was stepped, how much unicast it sent after calibration, and
//! which servers the selection believed.

use std::fmt::Write as _;
use std::time::Duration;

use super::client::{ClientTrace, Sample};
use super::server::ServerTrace;

/// RMS and maximum of a client's true clock error over a time window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OffsetStats {
    /// Mean (a bias: positive means ahead), microseconds.
    pub mean_us: f64,
    /// Root mean square, microseconds.
    pub rms_us: f64,
    /// Largest absolute error, microseconds.
    pub max_us: f64,
    /// Samples in the window.
    pub samples: usize,
}

impl OffsetStats {
    /// Statistics of `errors` (seconds).
    pub fn of(errors: impl Iterator<Item = f64>) -> Self {
        let (mut n, mut sum, mut sq, mut max) = (0usize, 0.0f64, 0.0f64, 0.0f64);
        for e in errors {
            n += 1;
            sum += e;
            sq += e * e;
            max = max.max(e.abs());
        }
        OffsetStats {
            mean_us: if n == 0 { 0.0 } else { sum / n as f64 * 1e6 },
            rms_us: if n == 0 {
                0.0
            } else {
                (sq / n as f64).sqrt() * 1e6
            },
            max_us: max * 1e6,
            samples: n,
        }
    }
}

impl ClientTrace {
    /// Samples taken in `[from, to)`.
    pub fn window(&self, from: Duration, to: Duration) -> impl Iterator<Item = &Sample> {
        self.samples
            .iter()
            .filter(move |s| s.at >= from && s.at < to)
    }

    /// Error statistics over `[from, to)`.
    pub fn stats(&self, from: Duration, to: Duration) -> OffsetStats {
        OffsetStats::of(self.window(from, to).map(|s| s.error_s))
    }

    /// The first sample time in `[from, to)` from which `holds` is true for
    /// every later sample of the window; `None` if it is false at the end.
    pub fn settles(
        &self,
        from: Duration,
        to: Duration,
        holds: impl Fn(&Sample) -> bool,
    ) -> Option<Duration> {
        let mut settled = None;
        for s in self.window(from, to) {
            if !holds(s) {
                settled = None;
            } else if settled.is_none() {
                settled = Some(s.at);
            }
        }
        settled
    }

    /// The first sample time at or after `from` from which the clock error
    /// stays below `limit_s` (seconds) in every later sample before `to`;
    /// `None` if it is over the limit at the end of the window.
    pub fn settled_at(&self, limit_s: f64, from: Duration, to: Duration) -> Option<Duration> {
        self.settles(from, to, |s| s.error_s.abs() < limit_s)
    }

    /// The first sample time at or after `from` at which `holds` is true.
    pub fn first(&self, from: Duration, holds: impl Fn(&Sample) -> bool) -> Option<Duration> {
        self.samples
            .iter()
            .find(|s| s.at >= from && holds(s))
            .map(|s| s.at)
    }

    /// Unicast requests sent to a server after its calibration finished.
    pub fn unicast_after_calibration(&self) -> usize {
        self.unicast
            .iter()
            .filter(|(at, s)| {
                self.calibrations
                    .get(*s)
                    .copied()
                    .flatten()
                    .is_some_and(|c| *at > c.at)
            })
            .count()
    }

    /// Steps of this client's clock by its discipline.
    pub fn steps(&self) -> &[(Duration, mcast_proto::NtpDuration)] {
        &self.ops.steps
    }

    /// Share of the samples in `[from, to)` in which `pick` is true.
    pub fn share(&self, from: Duration, to: Duration, pick: impl Fn(&Sample) -> bool) -> f64 {
        let (mut n, mut yes) = (0usize, 0usize);
        for s in self.window(from, to) {
            n += 1;
            yes += usize::from(pick(s));
        }
        if n == 0 { 0.0 } else { yes as f64 / n as f64 }
    }

    /// Share of the samples in `[from, to)` in which server `s` was a
    /// falseticker.
    pub fn falseticker_share(&self, s: usize, from: Duration, to: Duration) -> f64 {
        self.share(from, to, |x| x.falseticker(s))
    }

    /// Share of the samples in `[from, to)` in which server `s` survived
    /// selection (its offset went into the clock).
    pub fn survivor_share(&self, s: usize, from: Duration, to: Duration) -> f64 {
        self.share(from, to, |x| x.survivor(s))
    }

    /// One line per `every` of true time: the clock error and each
    /// server's standing in the selection at the last sample of the period
    /// (`*` system peer, `+` survivor, `-` truechimer pruned by clustering,
    /// `x` falseticker, `.` not a candidate), as `status` would show it.
    pub fn timeline(&self, servers: usize, every: Duration) -> String {
        let period = |at: Duration| at.as_nanos() / every.as_nanos().max(1);
        let mut o = String::new();
        for (k, s) in self.samples.iter().enumerate() {
            if self
                .samples
                .get(k + 1)
                .is_some_and(|n| period(n.at) == period(s.at))
            {
                continue;
            }
            let tally: String = (0..servers)
                .map(|i| {
                    if s.system_peer == Some(i) {
                        '*'
                    } else if s.survivor(i) {
                        '+'
                    } else if s.falseticker(i) {
                        'x'
                    } else if s.selectable(i) {
                        '-'
                    } else {
                        '.'
                    }
                })
                .collect();
            let _ = writeln!(
                o,
                "{:>8.0} s  {tally}  {:>+12.1} us",
                s.at.as_secs_f64(),
                s.error_s * 1e6
            );
        }
        o
    }

    /// Decisions of one kind ([`super::client::decision_kind`]).
    pub fn decisions_of(&self, kind: &str) -> usize {
        self.decisions
            .iter()
            .filter(|(_, d)| super::client::decision_kind(d) == kind)
            .count()
    }

    /// Packets from server `s` rejected for `reason` (a rejection label).
    pub fn rejected(&self, s: usize, reason: &str) -> u64 {
        self.status
            .as_ref()
            .and_then(|st| st.servers.get(s))
            .and_then(|v| v.rejected.get(reason))
            .copied()
            .unwrap_or(0)
    }
}

/// Bit of server `s` in a sample's server sets.
pub fn bit(s: usize) -> u32 {
    1u32.checked_shl(u32::try_from(s).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

impl Sample {
    /// Whether server `s` was selectable (a truechimer, survivor or not).
    pub fn selectable(&self, s: usize) -> bool {
        (self.truechimers | self.survivors) & bit(s) != 0
    }

    /// Whether server `s` was a falseticker.
    pub fn falseticker(&self, s: usize) -> bool {
        self.falsetickers & bit(s) != 0
    }

    /// Whether server `s` survived selection.
    pub fn survivor(&self, s: usize) -> bool {
        self.survivors & bit(s) != 0
    }
}

/// Everything a run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Simulated time.
    pub duration: Duration,
    /// Per client, in configuration order.
    pub clients: Vec<ClientTrace>,
    /// Per server, in configuration order.
    pub servers: Vec<ServerTrace>,
}

impl Report {
    /// The largest of `f` over the clients.
    pub fn worst(&self, f: impl Fn(&ClientTrace) -> f64) -> f64 {
        self.clients.iter().map(f).fold(f64::NEG_INFINITY, f64::max)
    }

    /// Error statistics over `[from, to)` of all clients' samples together.
    pub fn stats(&self, from: Duration, to: Duration) -> OffsetStats {
        OffsetStats::of(
            self.clients
                .iter()
                .flat_map(|c| c.window(from, to).map(|s| s.error_s)),
        )
    }

    /// When the last client settled below `limit_s` (see
    /// [`ClientTrace::settled_at`]); `None` if one never did.
    pub fn all_settled_at(&self, limit_s: f64, from: Duration) -> Option<Duration> {
        self.clients
            .iter()
            .map(|c| c.settled_at(limit_s, from, self.duration))
            .try_fold(Duration::ZERO, |m, s| s.map(|s| m.max(s)))
    }

    /// Steps by all clients' disciplines.
    pub fn steps(&self) -> usize {
        self.clients.iter().map(|c| c.steps().len()).sum()
    }

    /// Unicast requests sent after calibration, all clients.
    pub fn unicast_after_calibration(&self) -> usize {
        self.clients
            .iter()
            .map(ClientTrace::unicast_after_calibration)
            .sum()
    }

    /// A plain-text summary: per client its figures, per server its counts.
    /// Error statistics are over `[from, end)`.
    pub fn summary(&self, from: Duration) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "simulated {:.1} h; clock error statistics from {:.0} s",
            self.duration.as_secs_f64() / 3600.0,
            from.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "{:>6} {:>10} {:>10} {:>12} {:>5} {:>8} {:>8} {:>9}",
            "client", "rms us", "max us", "<1ms after s", "steps", "unicast", "after", "one-way"
        );
        for (j, c) in self.clients.iter().enumerate() {
            let st = c.stats(from, self.duration);
            let settled = c
                .settled_at(1e-3, Duration::ZERO, self.duration)
                .map_or("never".into(), |t| format!("{:.0}", t.as_secs_f64()));
            let one_way: Vec<String> = c
                .calibrations
                .iter()
                .map(|r| match r {
                    Some(r) if r.fallback => "fallback".into(),
                    Some(r) => r
                        .one_way
                        .map_or("-".into(), |d| format!("{:.0}", d.as_seconds_f64() * 1e6)),
                    None => "none".into(),
                })
                .collect();
            let _ = writeln!(
                o,
                "{:>6} {:>10.1} {:>10.1} {:>12} {:>5} {:>8} {:>8} {:>9}",
                j + 1,
                st.rms_us,
                st.max_us,
                settled,
                c.steps().len(),
                c.unicast.len(),
                c.unicast_after_calibration(),
                one_way.join("/")
            );
        }
        let all = self.stats(from, self.duration);
        let _ = writeln!(
            o,
            "all clients: RMS {:.1} us, max {:.1} us over {} samples; {} steps; {} unicast after calibration",
            all.rms_us,
            all.max_us,
            all.samples,
            self.steps(),
            self.unicast_after_calibration()
        );
        for (i, s) in self.servers.iter().enumerate() {
            let falseticker = self
                .clients
                .iter()
                .map(|c| c.falseticker_share(i, from, self.duration))
                .sum::<f64>()
                / self.clients.len().max(1) as f64;
            let survivor = self
                .clients
                .iter()
                .map(|c| c.survivor_share(i, from, self.duration))
                .sum::<f64>()
                / self.clients.len().max(1) as f64;
            let _ = writeln!(
                o,
                "server {}: {} broadcasts, {} silent, {} requests, {} replies, {} KoD, {} restarts; \
                 survivor {:.0} %, falseticker {:.0} % of samples",
                i + 1,
                s.broadcasts,
                s.silent,
                s.responder.received,
                s.responder.replies_sent,
                s.responder.kod_sent,
                s.restarts,
                survivor * 100.0,
                falseticker * 100.0
            );
        }
        o
    }

    /// The figures of a scale run, without a line per client: how
    /// calibration went for every client, the clock error, and each
    /// server's load.
    pub fn scale_summary(&self, from: Duration) -> String {
        fn pct(v: &mut [f64], p: f64) -> f64 {
            v.sort_by(f64::total_cmp);
            if v.is_empty() {
                return f64::NAN;
            }
            let i = ((v.len() - 1) as f64 * p).round() as usize;
            v.get(i).copied().unwrap_or(f64::NAN)
        }
        let mut o = String::new();
        let n = self.clients.len();
        let (mut calibrated, mut fallback, mut never) = (0usize, 0usize, 0usize);
        let mut tracking_s = Vec::new();
        let mut one_way_us = Vec::new();
        for c in &self.clients {
            for r in &c.calibrations {
                match r {
                    Some(r) if r.fallback => fallback += 1,
                    Some(r) => {
                        calibrated += 1;
                        tracking_s.push(r.at.as_secs_f64());
                        if let Some(d) = r.one_way {
                            one_way_us.push(d.as_seconds_f64() * 1e6);
                        }
                    }
                    None => never += 1,
                }
            }
        }
        let unicast: usize = self.clients.iter().map(|c| c.unicast.len()).sum();
        let most = self
            .clients
            .iter()
            .map(|c| c.unicast.len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            o,
            "{n} clients x {} servers, simulated {:.1} h",
            self.servers.len(),
            self.duration.as_secs_f64() / 3600.0
        );
        let _ = writeln!(
            o,
            "calibrations: {calibrated} calibrated, {fallback} on the fallback delay, {never} never finished"
        );
        let _ = writeln!(
            o,
            "tracking from (s after the common start): median {:.1}, p99 {:.1}, max {:.1}",
            pct(&mut tracking_s.clone(), 0.5),
            pct(&mut tracking_s.clone(), 0.99),
            pct(&mut tracking_s, 1.0)
        );
        let _ = writeln!(
            o,
            "calibrated one-way delay (us): min {:.1}, median {:.1}, p99 {:.1}, max {:.1}",
            pct(&mut one_way_us.clone(), 0.0),
            pct(&mut one_way_us.clone(), 0.5),
            pct(&mut one_way_us.clone(), 0.99),
            pct(&mut one_way_us, 1.0)
        );
        let _ = writeln!(
            o,
            "unicast requests: {unicast} in all ({:.2} per client and server, at most {most} by one client); {} after calibration",
            unicast as f64 / (n * self.servers.len()).max(1) as f64,
            self.unicast_after_calibration()
        );
        let all = self.stats(from, self.duration);
        let _ = writeln!(
            o,
            "clock error from {:.0} s: RMS {:.1} us, max {:.1} us over {} samples; {} steps",
            from.as_secs_f64(),
            all.rms_us,
            all.max_us,
            all.samples,
            self.steps()
        );
        for (i, s) in self.servers.iter().enumerate() {
            let _ = writeln!(
                o,
                "server {}: {} broadcasts; {} requests, peak {} per second; {} replies, {} KoD, {} rate-limited",
                i + 1,
                s.broadcasts,
                s.responder.received,
                s.peak_requests_per_second(),
                s.responder.replies_sent,
                s.responder.kod_sent,
                s.responder.rate_limited
            );
        }
        o
    }
}
