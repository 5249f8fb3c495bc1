//! The one-time measurement of a server's broadcast path delay, sans-I/O.
//!
//! After the first authenticated broadcast from a server, the client waits a
//! random 0..N s (so hundreds of clients that start together do not hit the
//! server at once), then sends a short volley of authenticated mode-3
//! requests. With θ the clock offset (server minus client) and `d` the
//! one-way delay, each valid reply gives the request's way out,
//! `T2 - T1 = θ + d`, and each broadcast (sent at T3 on the server's clock,
//! received at T4 on ours) gives `T3 - T4 = θ - d`; so
//! `d = ((T2 - T1) - (T3 - T4)) / 2`, the one-way delay that every later
//! broadcast sample adds.
//!
//! ntpd takes θ from the whole exchange instead (`delay = 2·|θ - (T3 - T4)|`),
//! which also brings in the reply's transmit timestamp. That timestamp is
//! read before the server signs and sends the reply, so ntpd's delay, and
//! every broadcast offset after it, is off by half the server's send
//! latency (tens of microseconds on a busy host). The way out needs only
//! T1 (our kernel's transmit time) and T2 (the server's kernel receive
//! time), and with interleaved broadcasts T3 is the kernel's transmit time
//! too, so nothing read before a send enters the calibration.
//!
//! The way-out values are taken from the lowest-delay replies and carried
//! to each broadcast's arrival time along the trend of the volley, and our
//! own clock adjustments between the two are subtracted, so a step or slew
//! during calibration does not corrupt it.
//!
//! The state machine is explicit and bounded: a volley, then up to
//! `retries` more volleys with backoff, then the configured fallback delay.
//! Nothing here ever leads to polling a server by unicast for good.

use std::net::SocketAddr;
use std::time::Duration;

use mcast_keys::{KeyId, PacketAuth};

use crate::client::association::Rejection;
use mcast_proto::{KissCode, NtpDuration, Unusable};

/// Calibration settings (the `[calibration]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrationConfig {
    /// Upper bound of the random wait before the first request.
    pub start_delay_max: Duration,
    /// Requests per volley.
    pub requests: u8,
    /// Spacing between requests (at least 2 s, ntpd's default minimum).
    pub spacing: Duration,
    /// A calibrated round trip (2 x one-way delay) above this is rejected.
    pub max_round_trip: Duration,
    /// Volleys after the first one that failed.
    pub retries: u8,
    /// One-way delay assumed when calibration fails.
    pub fallback_delay: Duration,
    /// A spot check of each tracked server about once per this period
    /// (at a random time within it); `None`: never.
    pub spot_check: Option<Duration>,
    /// A persisted calibration younger than this is reused at start (the
    /// server is tracked from its first broadcast, no volley); zero: never
    /// reused (`reuse-max-age-s`, default a day).
    pub reuse_max_age: Duration,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        CalibrationConfig {
            start_delay_max: Duration::from_secs(5),
            requests: 6,
            spacing: Duration::from_secs(2),
            max_round_trip: Duration::from_millis(50),
            retries: 3,
            fallback_delay: Duration::from_millis(4),
            spot_check: None,
            reuse_max_age: Duration::from_secs(86_400),
        }
    }
}

/// One valid unicast exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Clock offset, server minus client: ((T2-T1) + (T3-T4)) / 2.
    pub offset: NtpDuration,
    /// Round-trip delay: (T4-T1) - (T3-T2).
    pub delay: NtpDuration,
    /// The request's way out, T2 - T1: θ plus the one-way delay.
    pub forward: NtpDuration,
    /// When the reply arrived (monotonic).
    pub at: Duration,
    /// Our cumulative clock adjustment (what we have added to our clock by
    /// steps and slews since start) when the reply arrived. An observed
    /// offset plus the adjustment is the offset free of our own corrections.
    pub adjustment: NtpDuration,
}

impl Exchange {
    /// The way out, θ + d, free of our own adjustments (seconds).
    fn free_forward(&self) -> f64 {
        (self.forward + self.adjustment).as_seconds_f64()
    }
}

/// A broadcast seen during calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastObservation {
    /// T3 - T4 of the broadcast.
    pub apparent_offset: NtpDuration,
    /// When it arrived (monotonic).
    pub at: Duration,
    /// Our cumulative clock adjustment when it arrived.
    pub adjustment: NtpDuration,
}

/// Why a volley, or the whole calibration, failed: in plain words for status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No reply at all.
    NoReply {
        /// Requests sent.
        requests: u32,
        /// The server's address and our source port, when known.
        route: Option<(SocketAddr, u16)>,
    },
    /// The calibrated round trip exceeds the bound.
    DelayTooLarge {
        /// The round trip measured.
        round_trip: NtpDuration,
        /// The bound.
        bound: Duration,
    },
    /// The broadcasts' one-way delay is longer than the best unicast round
    /// trip allows: broadcasts held back on the path (a delay attack) or
    /// a broadcast path far slower than the unicast one.
    SlowerThanUnicast {
        /// The one-way delay the broadcasts showed.
        one_way: NtpDuration,
        /// The best round trip of the volley.
        round_trip: NtpDuration,
    },
    /// The only broadcasts to pair with disagreed with the server's
    /// unicast time by more than the round-trip bound (an old recording).
    StaleBroadcasts {
        /// How many were set aside.
        count: u32,
    },
    /// Replies came and were usable, but no broadcast arrived close
    /// enough in time to pair with them (interleaved calibration).
    NoPairableBroadcast,
    /// Replies came, but none was usable (bad MAC, crypto-NAK, unusable time).
    NoUsableReply {
        /// The distinct problems, the first [`MAX_PROBLEMS`] of them.
        problems: Vec<ReplyProblem>,
        /// Distinct problems beyond those.
        more: u32,
    },
    /// The server said DENY or RSTR: no more unicast to it.
    Refused(KissCode),
}

/// Why a reply that answered one of our requests could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyProblem {
    /// A crypto-NAK: the server does not accept the key we sign with.
    CryptoNak {
        /// Our key id for it.
        key: KeyId,
    },
    /// No MAC, though the server has a key.
    Unsigned,
    /// The MAC did not verify with the server's key.
    Authentication(PacketAuth),
    /// A server pinned by its public key: the reply's signature was
    /// refused for this reason ([`Rejection::label`] names it).
    Signature(Rejection),
    /// Authentic, but not usable as time.
    UnusableTime(Unusable),
}

/// Where the calibration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting until `at` before the first request of volley `attempt`.
    Waiting {
        /// When the volley starts.
        at: Duration,
        /// Volley number, 0 for the first.
        attempt: u8,
    },
    /// A volley is under way.
    Volley {
        /// Volley number.
        attempt: u8,
        /// Requests sent so far in this volley.
        sent: u8,
        /// When the next request is due.
        next_at: Duration,
    },
    /// Done: the delay was measured.
    Calibrated {
        /// The one-way delay.
        one_way: NtpDuration,
        /// Valid exchanges it rests on.
        exchanges: usize,
    },
    /// Done: the round trip was out of bounds, so the broadcast stream
    /// disagrees with the server's unicast time (an old recording, or a
    /// path too slow to trust). Its broadcasts are never used, and the
    /// fallback delay never stands in.
    Untrusted {
        /// What was measured.
        failure: Failure,
    },
    /// Done: calibration failed; the fallback delay is in use.
    Fallback {
        /// The one-way delay assumed.
        one_way: NtpDuration,
        /// Why.
        reason: FallbackReason,
    },
}

/// Why the fallback delay is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FallbackReason {
    /// Calibration failed: the last failure, and after how many volleys
    /// (none when the server refused at once).
    Failed {
        /// What went wrong.
        failure: Failure,
        /// Volleys sent.
        volleys: Option<u32>,
    },
    /// A fixed delay was configured (no volley).
    Fixed,
}

/// What the calibration wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send a request now.
    SendRequest,
    /// Nothing until this monotonic time.
    WaitUntil(Duration),
    /// Finished (calibrated or fallback): never any more unicast.
    Done,
}

/// What a reply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyEffect {
    /// A valid exchange was recorded.
    Recorded,
    /// The reply was a KoD RATE: the rest of the volley is spaced further apart.
    BackedOff,
    /// DENY or RSTR: calibration ended with the fallback.
    Refused,
}

/// The calibration of one server.
#[derive(Debug, Clone)]
pub struct Calibration {
    config: CalibrationConfig,
    phase: Phase,
    exchanges: Vec<Exchange>,
    broadcasts: Vec<BroadcastObservation>,
    replies_this_volley: u32,
    problems: Vec<ReplyProblem>,
    /// Distinct problems beyond the ones kept.
    more_problems: u32,
    /// A volley measured a round trip over the bound.
    too_large: Option<Failure>,
    /// Broadcasts set aside this volley as disagreeing with a reply.
    set_aside: u32,
    requests_sent: u32,
    spacing: Duration,
    failures: Vec<Failure>,
    route: Option<(SocketAddr, u16)>,
}

/// Most broadcasts kept for pairing.
const MAX_BROADCASTS: usize = 16;

/// Most distinct problems with replies kept for the words of a failure.
pub const MAX_PROBLEMS: usize = 4;

impl Calibration {
    /// A calibration starting after the first authenticated broadcast at
    /// `now`; `random` in 0..=u32::MAX picks the start within the window.
    pub fn new(config: CalibrationConfig, now: Duration, random: u32) -> Self {
        let wait = config
            .start_delay_max
            .mul_f64(f64::from(random) / f64::from(u32::MAX));
        Calibration {
            config,
            phase: Phase::Waiting {
                at: now + wait,
                attempt: 0,
            },
            exchanges: Vec::new(),
            broadcasts: Vec::new(),
            replies_this_volley: 0,
            problems: Vec::new(),
            more_problems: 0,
            too_large: None,
            set_aside: 0,
            requests_sent: 0,
            spacing: config.spacing,
            failures: Vec::new(),
            route: None,
        }
    }

    /// Where the requests go and the port they leave from, for the words
    /// of a failure ("no reply from ... sent from port ...").
    pub fn set_route(&mut self, server: SocketAddr, local_port: u16) {
        self.route = Some((server, local_port));
    }

    /// A calibration that is already done with a fixed delay (no volley,
    /// like ntpd's `broadcastdelay D`).
    pub fn fixed(config: CalibrationConfig, one_way: NtpDuration) -> Self {
        let mut c = Calibration::new(config, Duration::ZERO, 0);
        c.phase = Phase::Fallback {
            one_way,
            reason: FallbackReason::Fixed,
        };
        c
    }

    /// A calibration done before a restart, taken back: already
    /// [`Phase::Calibrated`] with the delay it measured.
    pub fn restored(config: CalibrationConfig, one_way: NtpDuration, exchanges: usize) -> Self {
        let mut c = Calibration::new(config, Duration::ZERO, 0);
        c.phase = Phase::Calibrated { one_way, exchanges };
        c
    }

    /// The current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Total requests sent, all volleys.
    pub fn requests_sent(&self) -> u32 {
        self.requests_sent
    }

    /// Failures of earlier volleys, oldest first.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// When something is next due (a request, or the end of a volley), if
    /// anything still is.
    pub fn next_event(&self) -> Option<Duration> {
        match self.phase {
            Phase::Waiting { at, .. } => Some(at),
            Phase::Volley { next_at, .. } => Some(next_at),
            Phase::Calibrated { .. } | Phase::Fallback { .. } | Phase::Untrusted { .. } => None,
        }
    }

    /// Whether no more unicast will ever be sent.
    pub fn is_done(&self) -> bool {
        matches!(
            self.phase,
            Phase::Calibrated { .. } | Phase::Fallback { .. } | Phase::Untrusted { .. }
        )
    }

    /// The one-way delay to use for broadcast samples now: final when done,
    /// provisional once a reply has been paired with a broadcast, else none.
    pub fn one_way_delay(&self) -> Option<NtpDuration> {
        match &self.phase {
            Phase::Calibrated { one_way, .. } | Phase::Fallback { one_way, .. } => Some(*one_way),
            Phase::Untrusted { .. } => None,
            _ => self.estimate().filter(|d| self.within_bound(*d)),
        }
    }

    /// How far the one-way delay in use may be from the true one, for the
    /// error bound of [`crate::client::bound`]: a one-way delay lies between
    /// zero and the round trip, so with the smallest round trip measured δ
    /// and the estimate d the error is at most max(d, δ − d). Without
    /// exchanges (a fixed, restored or fallback delay) the path is taken to
    /// be no more asymmetric than all one way: d. `None` until a delay is
    /// in use.
    pub fn uncertainty(&self) -> Option<NtpDuration> {
        let d = self.one_way_delay()?;
        let Some(min_rtt) = self.exchanges.iter().map(|e| e.delay).min() else {
            return Some(d.abs());
        };
        Some(d.abs().max((min_rtt - d).abs()))
    }

    /// Keeps only the broadcasts `keep` approves of (those that agree with
    /// an authenticated measurement).
    pub fn retain_broadcasts(&mut self, keep: impl Fn(&BroadcastObservation) -> bool) {
        let before = self.broadcasts.len();
        self.broadcasts.retain(|b| keep(b));
        let removed = before - self.broadcasts.len();
        self.set_aside = self
            .set_aside
            .saturating_add(u32::try_from(removed).unwrap_or(u32::MAX));
    }

    /// Records a broadcast from this server (apparent offset T3 - T4).
    pub fn observe_broadcast(&mut self, b: BroadcastObservation) {
        if self.is_done() {
            return;
        }
        if self.broadcasts.len() == MAX_BROADCASTS {
            self.broadcasts.remove(0);
        }
        self.broadcasts.push(b);
    }

    /// What to do at monotonic time `now`. On [`Step::SendRequest`] the
    /// caller sends one request and calls [`Calibration::request_sent`].
    pub fn poll(&mut self, now: Duration) -> Step {
        loop {
            match self.phase.clone() {
                Phase::Waiting { at, attempt } => {
                    if now < at {
                        return Step::WaitUntil(at);
                    }
                    self.replies_this_volley = 0;
                    self.problems.clear();
                    self.more_problems = 0;
                    self.phase = Phase::Volley {
                        attempt,
                        sent: 0,
                        next_at: at,
                    };
                }
                Phase::Volley {
                    attempt,
                    sent,
                    next_at,
                } => {
                    if sent < self.config.requests {
                        if now < next_at {
                            return Step::WaitUntil(next_at);
                        }
                        return Step::SendRequest;
                    }
                    // The last request's reply gets one spacing to arrive.
                    if now < next_at {
                        return Step::WaitUntil(next_at);
                    }
                    self.end_volley(now, attempt);
                }
                Phase::Calibrated { .. } | Phase::Fallback { .. } | Phase::Untrusted { .. } => {
                    return Step::Done;
                }
            }
        }
    }

    /// Records that a request was sent at `now`.
    pub fn request_sent(&mut self, now: Duration) {
        if let Phase::Volley { attempt, sent, .. } = self.phase {
            self.requests_sent += 1;
            self.phase = Phase::Volley {
                attempt,
                sent: sent + 1,
                next_at: now + self.spacing,
            };
        }
    }

    /// Records a reply that matched an outstanding request (origin equals
    /// our transmit) and whose MAC verified.
    pub fn reply(&mut self, ex: Exchange) -> ReplyEffect {
        self.replies_this_volley += 1;
        self.exchanges.push(ex);
        ReplyEffect::Recorded
    }

    /// Records a reply that matched a request but cannot be used, and why
    /// (bad MAC, crypto-NAK, unsynchronized server ...).
    pub fn unusable_reply(&mut self, why: ReplyProblem) {
        self.replies_this_volley += 1;
        // Forged replies that echo the cookie can bring any number of
        // different complaints: keep the first few, count the rest.
        if self.problems.contains(&why) {
            return;
        }
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(why);
        } else {
            self.more_problems = self.more_problems.saturating_add(1);
        }
    }

    /// Records a validated Kiss-o'-Death.
    pub fn kiss_of_death(&mut self, code: KissCode, now: Duration) -> ReplyEffect {
        self.replies_this_volley += 1;
        match code {
            KissCode::Deny | KissCode::Rstr => {
                let failure = Failure::Refused(code);
                self.phase = Phase::Fallback {
                    one_way: self.fallback(),
                    reason: FallbackReason::Failed {
                        failure: failure.clone(),
                        volleys: None,
                    },
                };
                self.failures.push(failure);
                ReplyEffect::Refused
            }
            KissCode::Rate | KissCode::Experimental(_) => {
                // Back off: double the spacing for the rest of calibration.
                self.spacing = (self.spacing * 2).min(Duration::from_secs(64));
                if let Phase::Volley { attempt, sent, .. } = self.phase {
                    self.phase = Phase::Volley {
                        attempt,
                        sent,
                        next_at: now + self.spacing,
                    };
                }
                ReplyEffect::BackedOff
            }
        }
    }

    /// Starts a new calibration on request (`mcast-client recalibrate`):
    /// one volley plus the configured retries, as at startup.
    pub fn restart(&mut self, now: Duration) {
        self.exchanges.clear();
        self.broadcasts.clear();
        self.failures.clear();
        self.too_large = None;
        self.spacing = self.config.spacing;
        self.phase = Phase::Waiting {
            at: now,
            attempt: 0,
        };
    }

    fn fallback(&self) -> NtpDuration {
        NtpDuration::from_std(self.config.fallback_delay)
    }

    fn within_bound(&self, one_way: NtpDuration) -> bool {
        one_way * 2 <= NtpDuration::from_std(self.config.max_round_trip)
    }

    fn end_volley(&mut self, now: Duration, attempt: u8) {
        let best_round_trip = self
            .exchanges
            .iter()
            .map(|e| e.delay)
            .min()
            .map(|r| r.max(NtpDuration::ZERO));
        let failure = match self.estimate() {
            Some(d)
                if self.within_bound(d)
                    && best_round_trip.is_some_and(|r| !slower_than_unicast(d, r)) =>
            {
                self.phase = Phase::Calibrated {
                    one_way: d,
                    exchanges: self.exchanges.len(),
                };
                return;
            }
            Some(d) if !self.within_bound(d) => Failure::DelayTooLarge {
                round_trip: d * 2,
                bound: self.config.max_round_trip,
            },
            Some(d) => Failure::SlowerThanUnicast {
                one_way: d,
                round_trip: best_round_trip.unwrap_or(NtpDuration::ZERO),
            },
            None if self.replies_this_volley == 0 => Failure::NoReply {
                requests: u32::from(self.config.requests),
                route: self.route,
            },
            None if !self.exchanges.is_empty() && self.set_aside > 0 => Failure::StaleBroadcasts {
                count: self.set_aside,
            },
            None if !self.exchanges.is_empty() => Failure::NoPairableBroadcast,
            None => Failure::NoUsableReply {
                problems: self.problems.clone(),
                more: self.more_problems,
            },
        };
        self.set_aside = 0;
        if matches!(
            failure,
            Failure::DelayTooLarge { .. }
                | Failure::SlowerThanUnicast { .. }
                | Failure::StaleBroadcasts { .. }
        ) {
            self.too_large = Some(failure.clone());
        }
        self.failures.push(failure.clone());
        if attempt < self.config.retries {
            // Backoff: 16 s, 32 s, 64 s ... after the failed volley.
            let backoff = Duration::from_secs(16u64 << attempt.min(6));
            self.exchanges.clear();
            self.phase = Phase::Waiting {
                at: now + backoff,
                attempt: attempt + 1,
            };
        } else if let Some(failure) = self.too_large.clone() {
            // The stream and the server's unicast time disagreed: tracking
            // it on a made-up delay would follow whatever sent it.
            self.phase = Phase::Untrusted { failure };
        } else {
            let tries = u32::from(attempt) + 1;
            self.phase = Phase::Fallback {
                one_way: self.fallback(),
                reason: FallbackReason::Failed {
                    failure,
                    volleys: Some(tries),
                },
            };
        }
    }

    /// The one-way delay from the exchanges and broadcasts so far: the way
    /// out (T2 - T1) of the lowest-delay half of the exchanges, each carried
    /// along our drift ([`Calibration::trend`]) to a broadcast's arrival, minus our
    /// own adjustments in between, less the broadcast's T3 - T4, halved; the
    /// median over the broadcasts within one volley span plus 2 minutes of
    /// the replies.
    fn estimate(&self) -> Option<NtpDuration> {
        let mut best: Vec<&Exchange> = self.exchanges.iter().collect();
        best.sort_by_key(|e| e.delay);
        best.truncate(best.len().div_ceil(2).max(1));
        let reference_at = best.first()?.at;
        let trend = self.trend();
        let window = Duration::from_secs(120);
        let mut delays: Vec<NtpDuration> = self
            .broadcasts
            .iter()
            .filter(|b| b.at.abs_diff(reference_at) <= window)
            .map(|b| {
                // θ + d at the broadcast's arrival, back into the clock as
                // it was at that moment; minus θ - d, halved.
                let forward = best
                    .iter()
                    .map(|e| e.free_forward() + trend * signed_secs(b.at, e.at))
                    .sum::<f64>()
                    / best.len() as f64;
                let forward_then = NtpDuration::from_seconds_f64(forward) - b.adjustment;
                (forward_then - b.apparent_offset) / 2
            })
            .collect();
        if delays.is_empty() {
            return None;
        }
        delays.sort();
        let mid = delays.len() / 2;
        let median = *delays.get(mid)?;
        // A negative one-way delay is measurement noise: clamp to zero.
        Some(if median.is_negative() {
            NtpDuration::ZERO
        } else {
            median
        })
    }

    /// How fast θ moves (s/s, our frequency error against the server's),
    /// from the way out of all the exchanges: the median of the slopes
    /// between pairs at least a second apart (Theil-Sen), so one reply
    /// delayed by a busy host cannot tilt it as it would a line through
    /// the first and last replies. Zero when the exchanges span less than
    /// 4 s, too little to tell drift from noise.
    fn trend(&self) -> f64 {
        let (Some(first), Some(last)) = (
            self.exchanges.iter().map(|e| e.at).min(),
            self.exchanges.iter().map(|e| e.at).max(),
        ) else {
            return 0.0;
        };
        if last - first < Duration::from_secs(4) {
            return 0.0;
        }
        let mut slopes = Vec::new();
        for (i, a) in self.exchanges.iter().enumerate() {
            for b in self.exchanges.iter().skip(i + 1) {
                let dt = signed_secs(b.at, a.at);
                if dt.abs() >= 1.0 {
                    slopes.push((b.free_forward() - a.free_forward()) / dt);
                }
            }
        }
        slopes.sort_by(f64::total_cmp);
        // The median: the middle slope, or the mean of the two middle ones.
        let n = slopes.len();
        let (Some(low), Some(high)) = (slopes.get((n.max(1) - 1) / 2), slopes.get(n / 2)) else {
            return 0.0;
        };
        ((low + high) / 2.0).clamp(-500e-6, 500e-6)
    }
}

/// The least allowance over half the best round trip: the broadcasts'
/// own queueing on a busy LAN (their delay is a median, the round trip a
/// minimum), asymmetry and the server's send latency.
const SLOWER_MARGIN_US: i64 = 1000;

/// Whether a one-way delay `d` is more than the best round trip `r`
/// allows: half of it, plus half of it again or [`SLOWER_MARGIN_US`],
/// whichever is more.
fn slower_than_unicast(d: NtpDuration, r: NtpDuration) -> bool {
    let half = r / 2;
    d > half + half.max(NtpDuration::from_micros(SLOWER_MARGIN_US))
}

fn signed_secs(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() - b.as_secs_f64()
}

/// Offset and delay of a client/server exchange (RFC 5905 section 8).
pub use mcast_proto::time::exchange;

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::NtpTimestamp;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn ms(m: f64) -> NtpDuration {
        NtpDuration::from_seconds_f64(m / 1e3)
    }

    /// How long before a reply leaves the server reads its transmit
    /// timestamp, in ms (tens of microseconds on a busy host).
    const SEND_LATENCY: f64 = 0.04;

    /// Drives calibration to its end, answering every request at once
    /// with the same exchange (0.6 ms round trip).
    fn answer_every_request(
        c: &mut Calibration,
        offset: NtpDuration,
        forward: NtpDuration,
        adjustment: NtpDuration,
    ) {
        let mut t = 0.0;
        loop {
            match c.poll(secs(t)) {
                Step::SendRequest => {
                    c.request_sent(secs(t));
                    c.reply(Exchange {
                        offset,
                        delay: ms(0.6),
                        forward,
                        at: secs(t),
                        adjustment,
                    });
                }
                Step::WaitUntil(at) => t = at.as_secs_f64(),
                Step::Done => return,
            }
        }
    }

    /// Drives one volley where the true offset is `theta` ms and the
    /// broadcast one-way delay is `one_way` ms.
    fn run_volley(c: &mut Calibration, start: f64, theta: f64, one_way: f64) -> f64 {
        let mut t = start;
        c.observe_broadcast(BroadcastObservation {
            apparent_offset: ms(theta - one_way),
            at: secs(start),
            adjustment: NtpDuration::ZERO,
        });
        loop {
            match c.poll(secs(t)) {
                Step::SendRequest => {
                    c.request_sent(secs(t));
                    // The server reads its reply's transmit timestamp
                    // `SEND_LATENCY` ms before the reply leaves: the
                    // exchange's offset is low by half of it, its delay
                    // high by all of it; the way out is exact.
                    c.reply(Exchange {
                        offset: ms(theta - SEND_LATENCY / 2.0),
                        delay: ms(2.0 * one_way + SEND_LATENCY),
                        forward: ms(theta + one_way),
                        at: secs(t + 0.001),
                        adjustment: NtpDuration::ZERO,
                    });
                }
                Step::WaitUntil(at) => t = at.as_secs_f64(),
                Step::Done => return t,
            }
            if t > start + 1000.0 {
                panic!("calibration did not finish");
            }
        }
    }

    /// A volley measures the one-way delay exactly although every reply's
    /// transmit timestamp was read `SEND_LATENCY` before it left (ntpd's
    /// formula, which uses the reply's offset, would be off by half of it).
    #[test]
    fn a_volley_measures_the_one_way_delay() {
        let mut c = Calibration::new(CalibrationConfig::default(), secs(100.0), u32::MAX / 2);
        assert!(
            matches!(c.poll(secs(100.0)), Step::WaitUntil(at) if at > secs(102.0) && at < secs(103.0))
        );
        run_volley(&mut c, 100.0, 5.0, 0.3);
        match c.phase() {
            Phase::Calibrated { one_way, exchanges } => {
                assert!(
                    (one_way.as_seconds_f64() - 0.0003).abs() < 1e-8,
                    "{one_way}"
                );
                assert_eq!(*exchanges, 6);
            }
            other => panic!("expected calibrated, got {other:?}"),
        }
        assert_eq!(c.requests_sent(), 6);
        assert_eq!(c.poll(secs(10_000.0)), Step::Done, "never any more unicast");
    }

    /// A busy host delays some replies' requests on their way out (here
    /// the first by 15 us and the last by 100 us), and our clock drifts
    /// 50 ppm against the server's. The trend must come from the replies
    /// that agree, so the delay is still right to within a microsecond for
    /// a broadcast late in the volley, not tilted by the two late replies.
    #[test]
    fn replies_delayed_by_a_busy_host_do_not_tilt_the_drift() {
        let drift = 50e-6; // s/s
        let one_way = 0.03; // ms
        let theta = |t: f64| 2.0 + drift * t * 1e3; // ms
        let mut c = Calibration::new(CalibrationConfig::default(), secs(0.0), 0);
        let mut t = 0.0;
        let mut n = 0;
        loop {
            match c.poll(secs(t)) {
                Step::SendRequest => {
                    c.request_sent(secs(t));
                    let late = match n {
                        0 => 0.015,
                        5 => 0.1,
                        _ => 0.0,
                    };
                    n += 1;
                    c.reply(Exchange {
                        offset: ms(theta(t) + late / 2.0),
                        delay: ms(2.0 * one_way + late),
                        forward: ms(theta(t) + one_way + late),
                        at: secs(t),
                        adjustment: NtpDuration::ZERO,
                    });
                    if n == 5 {
                        c.observe_broadcast(BroadcastObservation {
                            apparent_offset: ms(theta(t + 0.5) - one_way),
                            at: secs(t + 0.5),
                            adjustment: NtpDuration::ZERO,
                        });
                    }
                }
                Step::WaitUntil(at) => t = at.as_secs_f64(),
                Step::Done => break,
            }
        }
        match c.phase() {
            Phase::Calibrated { one_way: got, .. } => {
                let err_us = (got.as_seconds_f64() - one_way / 1e3) * 1e6;
                assert!(err_us.abs() < 1.0, "one-way delay off by {err_us:.2} us");
            }
            other => panic!("expected calibrated, got {other:?}"),
        }
    }

    #[test]
    fn no_reply_retries_with_backoff_then_falls_back() {
        let cfg = CalibrationConfig::default();
        let mut c = Calibration::new(cfg, secs(0.0), 0);
        let mut t = 0.0;
        let mut sent_at = Vec::new();
        loop {
            match c.poll(secs(t)) {
                Step::SendRequest => {
                    sent_at.push(t);
                    c.request_sent(secs(t));
                }
                Step::WaitUntil(at) => t = at.as_secs_f64(),
                Step::Done => break,
            }
            assert!(t < 10_000.0, "bounded");
        }
        assert_eq!(
            sent_at.len(),
            4 * 6,
            "one volley and three retries of six requests"
        );
        match c.phase() {
            Phase::Fallback { one_way, reason } => {
                assert_eq!(*one_way, NtpDuration::from_millis(4));
                assert!(
                    matches!(
                        reason,
                        FallbackReason::Failed {
                            failure: Failure::NoReply { requests: 6, .. },
                            volleys: Some(4),
                        }
                    ),
                    "{reason:?}"
                );
            }
            other => panic!("expected the fallback, got {other:?}"),
        }
        // Backoff between volleys grows.
        let gaps: Vec<f64> = sent_at
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g > 3.0)
            .collect();
        assert_eq!(gaps.len(), 3);
        assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "{gaps:?}");
    }

    #[test]
    fn a_delay_over_the_bound_is_rejected() {
        let cfg = CalibrationConfig {
            retries: 0,
            ..CalibrationConfig::default()
        };
        let mut c = Calibration::new(cfg, secs(0.0), 0);
        run_volley(&mut c, 0.0, 1.0, 30.0); // 60 ms round trip > 50 ms
        match c.phase() {
            Phase::Untrusted { failure } => {
                assert!(
                    matches!(
                        failure,
                        Failure::DelayTooLarge { round_trip, bound }
                            if *bound == Duration::from_millis(50)
                                && (round_trip.as_seconds_f64() - 0.060).abs() < 1e-6
                    ),
                    "{failure:?}"
                )
            }
            other => panic!("expected untrusted, got {other:?}"),
        }
        assert_eq!(c.one_way_delay(), None, "never the fallback delay");
        assert_eq!(c.poll(secs(10_000.0)), Step::Done, "and no more unicast");
    }

    /// Broadcasts held back 5 ms on the path while unicast is not: the
    /// one-way delay (about 5 ms) is far more than the 0.6 ms round trip
    /// allows, so the stream is untrusted, not tracked 5 ms late.
    #[test]
    fn a_one_way_delay_over_the_best_round_trip_is_untrusted() {
        let cfg = CalibrationConfig {
            retries: 0,
            ..CalibrationConfig::default()
        };
        let mut c = Calibration::new(cfg, secs(0.0), 0);
        c.observe_broadcast(BroadcastObservation {
            apparent_offset: ms(-0.3 - 5.0),
            at: secs(0.0),
            adjustment: NtpDuration::ZERO,
        });
        answer_every_request(&mut c, ms(0.0), ms(0.3), NtpDuration::ZERO);
        match c.phase() {
            Phase::Untrusted {
                failure: Failure::SlowerThanUnicast { .. },
            } => {}
            other => panic!("expected untrusted, got {other:?}"),
        }
        assert!(!slower_than_unicast(ms(0.3), ms(0.6)));
        assert!(!slower_than_unicast(ms(1.2), ms(0.6)), "within 1 ms");
        assert!(slower_than_unicast(ms(1.4), ms(0.6)));
        assert!(!slower_than_unicast(ms(5.0), ms(10.0)));
    }

    #[test]
    fn deny_stops_unicast_at_once() {
        let mut c = Calibration::new(CalibrationConfig::default(), secs(0.0), 0);
        assert_eq!(c.poll(secs(0.0)), Step::SendRequest);
        c.request_sent(secs(0.0));
        assert_eq!(
            c.kiss_of_death(KissCode::Deny, secs(0.01)),
            ReplyEffect::Refused
        );
        assert_eq!(c.poll(secs(1.0)), Step::Done);
        assert_eq!(c.requests_sent(), 1);
    }

    #[test]
    fn rate_kod_spaces_requests_further() {
        let mut c = Calibration::new(CalibrationConfig::default(), secs(0.0), 0);
        assert_eq!(c.poll(secs(0.0)), Step::SendRequest);
        c.request_sent(secs(0.0));
        assert_eq!(
            c.kiss_of_death(KissCode::Rate, secs(0.01)),
            ReplyEffect::BackedOff
        );
        assert_eq!(c.poll(secs(0.02)), Step::WaitUntil(secs(4.01)));
    }

    #[test]
    fn our_own_step_during_calibration_does_not_bias_it() {
        // True offset 5 ms, one-way 0.3 ms. We step our clock by +100 ms
        // between the broadcast and the replies: replies see offset -95 ms.
        let mut c = Calibration::new(CalibrationConfig::default(), secs(0.0), 0);
        c.observe_broadcast(BroadcastObservation {
            apparent_offset: ms(5.0 - 0.3),
            at: secs(0.0),
            adjustment: NtpDuration::ZERO,
        });
        answer_every_request(&mut c, ms(-95.0), ms(-95.0 + 0.3), ms(100.0));
        match c.phase() {
            Phase::Calibrated { one_way, .. } => {
                assert!(
                    (one_way.as_seconds_f64() - 0.0003).abs() < 1e-6,
                    "{one_way}"
                )
            }
            other => panic!("expected calibrated, got {other:?}"),
        }
    }

    #[test]
    fn exchange_arithmetic() {
        let t1 = NtpTimestamp::from_unix(1_000, 0);
        let t2 = t1 + ms(10.0 + 1.0); // offset +10 ms, path 1 ms each way
        let t3 = t2 + ms(0.1);
        let t4 = t3 - ms(10.0) + ms(1.0);
        let (off, del) = exchange(t1, t2, t3, t4);
        assert!((off.as_seconds_f64() - 0.010).abs() < 1e-9, "{off}");
        assert!((del.as_seconds_f64() - 0.002).abs() < 1e-9, "{del}");
    }
}
