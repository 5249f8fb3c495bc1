//! The error bound published to applications (AWS ClockBound's protocol v2
//! segment; the writer and the reader live in the client daemon).
//!
//! Sans-I/O: the engine hands [`BoundTracker`] each clock update, and
//! [`BoundTracker::at`] gives the bound on the system clock's error at any
//! later monotonic instant, as ClockBound publishes it: a bound at `as_of`,
//! the rate it grows at, a void-after time and a status.
//!
//! At the last clock update (monotonic time `u`, system offset θ) the
//! bound at time `t` is
//!
//! ```text
//! max(|θ − slewed(t)|, ignored spike) + foreign steps
//!     + root delay / 2 + root dispersion + peer dispersion(u) + peer jitter
//!     + calibration uncertainty + survivor spread
//!     + max drift × (t − s)
//! ```
//!
//! where `s` is the time of the oldest sample the update rests on.
//!
//! - `slewed(t)` is how much of the correction started at `u` the kernel
//!   has carried out by `t` (nothing in monitor mode; all of it after a
//!   step);
//! - root delay and root dispersion are the system peer's (what it says of
//!   its own distance from true time);
//! - the peer dispersion (which already grows at 15 ppm from the sample's
//!   age) and jitter are its clock filter's;
//! - the calibration uncertainty is how far the one-way delay in use may be
//!   from the true one ([`crate::client::calibration::Calibration::uncertainty`]);
//! - the survivor spread is how far the farthest survivor's offset is from
//!   the combined one: true time is in some truechimer's interval, not
//!   necessarily the system peer's;
//! - foreign steps are steps of the system clock the engine did not make,
//!   seen as a change of the system clock against the monotonic clock,
//!   until a sample taken after them has measured them;
//! - the max drift is the configured worst oscillator drift once the
//!   frequency is known (the loop in SYNC), else the kernel's 500 ppm
//!   limit; in monitor mode the drift seen between updates is added,
//!   because nothing corrects it.
//!
//! The assumptions this rests on are stated in `docs/clock-bound.md`.

use std::time::Duration;

use mcast_proto::{NtpDuration, NtpTimestamp};

/// Default worst-case oscillator drift once the frequency is known, parts
/// per billion (15 ppm, RFC 5905's PHI).
pub const DEFAULT_MAX_DRIFT_PPB: u32 = 15_000;

/// Drift assumed while the frequency is not known yet: the kernel's
/// largest frequency correction (500 ppm).
pub const UNKNOWN_DRIFT_PPB: u32 = 500_000;

/// RFC 5905's PHI, the drift the clock filter's dispersion already grows
/// at, ppb.
const PHI_PPB: u64 = 15_000;

/// How far a clock drifting at `ppb` may move in `elapsed`, ns, rounded
/// up so a bound grown by it never undershoots (what every reader of the
/// segment adds to its bound).
pub fn drift_over(elapsed: Duration, ppb: u64) -> u64 {
    let ns = (elapsed.as_nanos() * u128::from(ppb)).div_ceil(1_000_000_000);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Default time a published bound stays usable without a newer one.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(60);

/// Settings of the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundConfig {
    /// Worst oscillator drift once the frequency is known, ppb.
    pub max_drift_ppb: u32,
    /// How long a published bound stays usable (its void-after time).
    pub validity: Duration,
}

impl Default for BoundConfig {
    fn default() -> Self {
        BoundConfig {
            max_drift_ppb: DEFAULT_MAX_DRIFT_PPB,
            validity: DEFAULT_VALIDITY,
        }
    }
}

/// Clock status as published (ClockBound's Unknown / Synchronized /
/// FreeRunning, values 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundStatus {
    /// Nothing known yet, or the daemon stopped.
    Unknown,
    /// A server is selected and the clock was updated from it.
    Synchronized,
    /// No server is selected now: the bound grows at the max drift.
    FreeRunning,
}

impl BoundStatus {
    /// ClockBound's number for it.
    pub fn code(self) -> i32 {
        match self {
            BoundStatus::Unknown => 0,
            BoundStatus::Synchronized => 1,
            BoundStatus::FreeRunning => 2,
        }
    }

    /// The status of ClockBound's number (3, disrupted, and anything
    /// unknown read as [`BoundStatus::Unknown`]).
    pub fn from_code(code: i32) -> Self {
        match code {
            1 => BoundStatus::Synchronized,
            2 => BoundStatus::FreeRunning,
            _ => BoundStatus::Unknown,
        }
    }
}

/// What the system peer contributes to the bound at a clock update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTerms {
    /// Its root delay (header).
    pub root_delay: NtpDuration,
    /// Its root dispersion (header).
    pub root_dispersion: NtpDuration,
    /// Its clock filter's dispersion at the update.
    pub dispersion: NtpDuration,
    /// Its clock filter's jitter.
    pub jitter: NtpDuration,
    /// How far its one-way delay may be off.
    pub calibration: NtpDuration,
    /// How far the farthest survivor's offset is from the combined one.
    pub spread: NtpDuration,
}

impl PeerTerms {
    /// Their sum as it enters the bound (root delay halved).
    fn total(&self) -> NtpDuration {
        NtpDuration::from_bits(self.root_delay.abs().to_bits() / 2)
            .saturating_add(self.root_dispersion.abs())
            .saturating_add(self.dispersion.abs())
            .saturating_add(self.jitter.abs())
            .saturating_add(self.calibration.abs())
            .saturating_add(self.spread.abs())
    }
}

/// What a clock update did to the clock, as far as the bound cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The offset was measured and a slew of part of it started (slew and
    /// step modes), or only reported (monitor mode).
    Measured {
        /// The system offset.
        offset: NtpDuration,
    },
    /// The clock was stepped by the system offset.
    Stepped,
    /// The offset was measured but not acted on (a spike, waiting for the
    /// stepout, over the panic threshold): the clock may be that far off.
    Ignored {
        /// The offset not acted on.
        offset: NtpDuration,
    },
}

/// The last clock update the bound starts from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Anchor {
    at: Duration,
    /// The offset left to correct just after the update.
    offset: NtpDuration,
    /// The peer's terms, summed.
    terms: NtpDuration,
    /// Growth rate, ppb.
    drift_ppb: u64,
}

/// A reading of both clocks. The system clock less the monotonic clock
/// changes only by a step (both run at the rate the kernel is told), so a
/// change between two readings that the engine did not make is someone
/// else's step.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Readings {
    mono: Duration,
    read: NtpTimestamp,
}

impl Readings {
    /// How much the system clock was stepped between these readings and
    /// `(mono, now)` (zero below the noise of reading two clocks).
    fn stepped_until(&self, mono: Duration, now: NtpTimestamp) -> NtpDuration {
        let d = ((now - self.read) - NtpDuration::from_std(mono.saturating_sub(self.mono))).abs();
        if d < STEP_NOISE { NtpDuration::ZERO } else { d }
    }
}

/// A change of the system clock against the monotonic clock below this is
/// taken for the time between the two readings, not a step.
const STEP_NOISE: NtpDuration = NtpDuration::from_bits(1 << 12); // ~1 us

/// The clocks at a clock update, and what the discipline knows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clocks {
    /// Monotonic time of the update.
    pub mono: Duration,
    /// The system clock before the update was carried out.
    pub before: NtpTimestamp,
    /// The system clock after (a step of ours in between).
    pub after: NtpTimestamp,
    /// The loop is in SYNC: the frequency is known (slew and step modes).
    pub frequency_known: bool,
    /// Monitor mode: nothing corrects the clock.
    pub monitor: bool,
}

/// The published bound at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorBound {
    /// Monotonic time the bound is for (the daemon's clock, from start).
    pub as_of: Duration,
    /// The bound on the system clock's error at `as_of`, ns.
    pub bound_ns: u64,
    /// Rate the bound grows at after `as_of`, ppb.
    pub max_drift_ppb: u32,
    /// Monotonic time after which the bound must not be used.
    pub void_after: Duration,
    /// Status at `as_of`.
    pub status: BoundStatus,
}

impl ErrorBound {
    /// The bound at monotonic time `mono`, grown at the max drift: `None`
    /// when void (after `void_after`, before `as_of`, or status unknown).
    pub fn at(&self, mono: Duration) -> Option<u64> {
        if self.status == BoundStatus::Unknown || mono < self.as_of || mono > self.void_after {
            return None;
        }
        let growth = drift_over(mono - self.as_of, u64::from(self.max_drift_ppb));
        Some(self.bound_ns.saturating_add(growth))
    }
}

/// Follows the clock updates and gives the bound at any instant.
#[derive(Debug, Clone, Default)]
pub struct BoundTracker {
    config: BoundConfig,
    anchor: Option<Anchor>,
    /// The largest offset measured but not acted on since the anchor.
    ignored: NtpDuration,
    /// Both clocks just after the last update (ours, if any, carried out).
    readings: Option<Readings>,
    /// Steps of the system clock someone else made, seen at updates and
    /// not yet measured by a sample taken after they were seen: their
    /// sum, and the update they were last seen at.
    foreign: NtpDuration,
    foreign_seen: Duration,
    /// Monitor mode: the previous update (time, offset) and the drift rate
    /// seen between the last two, ppb.
    monitored: Option<(Duration, NtpDuration)>,
    monitor_drift_ppb: Option<u64>,
}

impl BoundTracker {
    /// A tracker with nothing known yet.
    pub fn new(config: BoundConfig) -> Self {
        BoundTracker {
            config,
            ..BoundTracker::default()
        }
    }

    /// A clock update at monotonic time `at` from the system peer's sample
    /// taken at `sample_at`, with its `terms`; the system clock read
    /// `before` the update was carried out and `after`.
    /// `frequency_known`: the loop is in SYNC (slew and step modes).
    /// `monitor`: nothing corrects the clock.
    pub fn update(&mut self, at: Clocks, sample_at: Duration, update: Update, terms: PeerTerms) {
        let Clocks {
            mono: at,
            before,
            after,
            frequency_known,
            monitor,
        } = at;
        if let Some(r) = self.readings {
            let stepped = r.stepped_until(at, before);
            if stepped > NtpDuration::ZERO {
                self.foreign = self.foreign.saturating_add(stepped);
                self.foreign_seen = at;
            }
        }
        self.readings = Some(Readings {
            mono: at,
            read: after,
        });
        let offset = match update {
            Update::Measured { offset } => offset,
            Update::Stepped => NtpDuration::ZERO,
            Update::Ignored { offset } => {
                // The slew in progress goes on; the clock may be this far off.
                self.ignored = self.ignored.max(offset.abs());
                return;
            }
        };
        // A sample taken after a foreign step was seen has measured it.
        if sample_at > self.foreign_seen {
            self.foreign = NtpDuration::ZERO;
        }
        let base = u64::from(self.config.max_drift_ppb);
        let drift_ppb = if monitor {
            // What the clock was seen to drift between the last two
            // updates, on top of the worst drift; until then the kernel's
            // limit.
            if let Some((then, before)) = self.monitored
                && at > then
            {
                let rate = ((offset - before).as_seconds_f64() / (at - then).as_secs_f64()).abs();
                if rate.is_finite() {
                    self.monitor_drift_ppb = Some((rate * 1e9).ceil().min(1e12) as u64);
                }
            }
            self.monitored = Some((at, offset));
            self.monitor_drift_ppb
                .map_or(u64::from(UNKNOWN_DRIFT_PPB), |seen| {
                    base.saturating_add(seen)
                })
        } else if frequency_known {
            base
        } else {
            base.max(u64::from(UNKNOWN_DRIFT_PPB))
        };
        self.ignored = NtpDuration::ZERO;
        // The samples were taken before the update: the clock drifted
        // meanwhile at up to the rate below, of which the peer dispersion
        // already holds RFC 5905's PHI.
        let aged = drift_over(
            at.saturating_sub(sample_at),
            drift_ppb.saturating_sub(PHI_PPB),
        );
        let aged = NtpDuration::from_nanos(i64::try_from(aged).unwrap_or(i64::MAX));
        self.anchor = Some(Anchor {
            at,
            offset,
            terms: terms.total().saturating_add(aged),
            drift_ppb,
        });
    }

    /// The bound at monotonic time `mono`, when the system clock reads
    /// `now`. `slewed`: how much of the correction started at the last
    /// update has been carried out by then. `synchronized`: a server is
    /// selected now. `None` before the first update.
    ///
    /// A step of the system clock since the update that the engine did not
    /// make (an operator's `date -s`, another daemon) is added whole: the
    /// clock may now be off by that much more, until the next update
    /// measures it.
    pub fn at(
        &self,
        mono: Duration,
        now: NtpTimestamp,
        slewed: NtpDuration,
        synchronized: bool,
    ) -> Option<ErrorBound> {
        let a = self.anchor?;
        let stepped = self
            .readings
            .map_or(NtpDuration::ZERO, |r| r.stepped_until(mono, now));
        let residual = (a.offset - slewed)
            .abs()
            .max(self.ignored)
            .saturating_add(self.foreign)
            .saturating_add(stepped);
        let growth = drift_over(mono.saturating_sub(a.at), a.drift_ppb);
        let fixed = residual.saturating_add(a.terms).as_seconds_f64() * 1e9;
        if !fixed.is_finite() {
            return None;
        }
        let bound_ns = (fixed.ceil().max(0.0) as u64).saturating_add(growth);
        Some(ErrorBound {
            as_of: mono,
            bound_ns,
            max_drift_ppb: u32::try_from(a.drift_ppb).unwrap_or(u32::MAX),
            void_after: mono.saturating_add(self.config.validity),
            status: if synchronized {
                BoundStatus::Synchronized
            } else {
                BoundStatus::FreeRunning
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: i64) -> NtpDuration {
        NtpDuration::from_micros(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// The system clock reading at monotonic `mono` when nobody steps it.
    fn ts(mono: Duration) -> NtpTimestamp {
        NtpTimestamp::from_bits(0xE000_0000_0000_0000) + NtpDuration::from_std(mono)
    }

    /// Both clocks at `mono`, nobody stepping.
    fn clocks(mono: Duration, frequency_known: bool, monitor: bool) -> Clocks {
        Clocks {
            mono,
            before: ts(mono),
            after: ts(mono),
            frequency_known,
            monitor,
        }
    }

    fn terms() -> PeerTerms {
        PeerTerms {
            root_delay: us(100),
            root_dispersion: us(5),
            dispersion: us(10),
            jitter: us(2),
            calibration: us(30),
            spread: us(0),
        }
    }

    /// The terms' sum: 50 + 5 + 10 + 2 + 30 us.
    const TERMS_NS: u64 = 97_000;

    fn measured(offset: NtpDuration) -> Update {
        Update::Measured { offset }
    }

    /// Within a nanosecond or two of rounding.
    fn near(got: u64, want: u64) -> bool {
        got.abs_diff(want) <= 2
    }

    #[test]
    fn bound_sums_the_terms_and_grows_at_the_drift() {
        let mut t = BoundTracker::new(BoundConfig::default());
        assert_eq!(t.at(secs(0), ts(secs(0)), NtpDuration::ZERO, false), None);
        let u = secs(100);
        t.update(clocks(u, true, false), u, measured(us(-20)), terms());
        let b = t.at(u, ts(u), NtpDuration::ZERO, true).expect("bound");
        assert!(near(b.bound_ns, 20_000 + TERMS_NS), "{b:?}");
        assert_eq!(b.status, BoundStatus::Synchronized);
        assert_eq!(b.max_drift_ppb, 15_000);
        assert_eq!(b.void_after, u + DEFAULT_VALIDITY);
        // 10 s on, with the slew done: the offset is gone, 150 us of drift.
        let later = t
            .at(u + secs(10), ts(u + secs(10)), us(-20), false)
            .expect("bound");
        assert!(near(later.bound_ns, TERMS_NS + 150_000), "{later:?}");
        assert_eq!(later.status, BoundStatus::FreeRunning);
        // The reader's growth matches the tracker's own.
        assert_eq!(b.at(u + secs(10)), Some(b.bound_ns + 150_000));
        assert_eq!(b.at(b.void_after + Duration::from_nanos(1)), None);
        assert_eq!(b.at(u - Duration::from_nanos(1)), None);
    }

    #[test]
    fn unknown_frequency_and_monitor_mode_grow_faster() {
        let mut t = BoundTracker::new(BoundConfig::default());
        t.update(
            clocks(secs(0), false, false),
            secs(0),
            measured(us(0)),
            terms(),
        );
        let b = t
            .at(secs(0), ts(secs(0)), NtpDuration::ZERO, true)
            .expect("bound");
        assert_eq!(b.max_drift_ppb, UNKNOWN_DRIFT_PPB);

        // Monitor mode: 640 us more offset in 64 s is 10 ppm seen.
        let mut m = BoundTracker::new(BoundConfig::default());
        m.update(
            clocks(secs(0), false, true),
            secs(0),
            measured(us(100)),
            terms(),
        );
        let b = m
            .at(secs(0), ts(secs(0)), NtpDuration::ZERO, true)
            .expect("bound");
        assert_eq!(b.max_drift_ppb, UNKNOWN_DRIFT_PPB);
        let u = secs(64);
        m.update(clocks(u, false, true), u, measured(us(740)), terms());
        let b = m.at(u, ts(u), NtpDuration::ZERO, true).expect("bound");
        assert_eq!(b.max_drift_ppb, 25_000);
        assert!(near(b.bound_ns, 740_000 + TERMS_NS), "{b:?}");
    }

    #[test]
    fn ignored_offsets_and_our_steps_count() {
        let mut t = BoundTracker::new(BoundConfig::default());
        t.update(
            clocks(secs(0), true, false),
            secs(0),
            measured(us(10)),
            terms(),
        );
        let spike = Update::Ignored {
            offset: NtpDuration::from_millis(-300),
        };
        t.update(clocks(secs(1), true, false), secs(1), spike, terms());
        let b = t
            .at(secs(1), ts(secs(1)), NtpDuration::ZERO, true)
            .expect("bound");
        assert!(near(b.bound_ns, 300_000_000 + TERMS_NS + 15_000), "{b:?}");
        // Our own step of 300 ms: not someone else's.
        let step = NtpDuration::from_millis(-300);
        let ours = Clocks {
            after: ts(secs(2)) + step,
            ..clocks(secs(2), false, false)
        };
        t.update(ours, secs(2), Update::Stepped, terms());
        let b = t
            .at(secs(2), ts(secs(2)) + step, NtpDuration::ZERO, true)
            .expect("bound");
        assert!(near(b.bound_ns, TERMS_NS), "{b:?}");
    }

    #[test]
    fn a_step_by_someone_else_counts_until_a_later_sample_measures_it() {
        let mut t = BoundTracker::new(BoundConfig::default());
        let jump = NtpDuration::from_millis(132);
        t.update(
            clocks(secs(0), true, false),
            secs(0),
            measured(us(0)),
            terms(),
        );
        // Seen at once by a reader.
        let b = t
            .at(secs(1), ts(secs(1)) + jump, NtpDuration::ZERO, true)
            .expect("bound");
        assert!(near(b.bound_ns, 132_000_000 + TERMS_NS + 15_000), "{b:?}");
        // An update from a sample older than the step does not clear it.
        let stepped = |mono: Duration| Clocks {
            before: ts(mono) + jump,
            after: ts(mono) + jump,
            ..clocks(mono, true, false)
        };
        t.update(stepped(secs(64)), secs(0), measured(us(0)), terms());
        let b = t
            .at(secs(64), ts(secs(64)) + jump, NtpDuration::ZERO, true)
            .expect("bound");
        assert!(b.bound_ns >= 132_000_000, "{b:?}");
        // A sample taken after it was seen has measured it (the sample's
        // 28 s of age at 15 ppm are in the peer dispersion).
        t.update(stepped(secs(128)), secs(100), measured(us(0)), terms());
        let b = t
            .at(secs(128), ts(secs(128)) + jump, NtpDuration::ZERO, true)
            .expect("bound");
        assert!(near(b.bound_ns, TERMS_NS), "{b:?}");
        // Before the frequency is known the sample's age counts at 500 ppm,
        // 485 of them beyond the peer dispersion.
        let unsure = Clocks {
            frequency_known: false,
            ..stepped(secs(200))
        };
        t.update(unsure, secs(190), measured(us(0)), terms());
        let b = t
            .at(secs(200), ts(secs(200)) + jump, NtpDuration::ZERO, true)
            .expect("bound");
        assert!(near(b.bound_ns, TERMS_NS + 4_850_000), "{b:?}");
    }
}
