//! The per-association clock filter (RFC 5905 section 10).
//!
//! The filter keeps the last [`NSTAGE`] samples of one server and picks, for
//! each new sample, the one with the lowest round-trip delay (plus its
//! dispersion, which grows with age) among those still valid: on a path
//! with queueing, the lowest-delay sample is the one least distorted by it.
//! In broadcast mode the delay is the calibrated constant, so every sample
//! has the same delay and the newest wins; the filter then acts as a jitter
//! estimator and a spike suppressor.
//!
//! Sans-I/O: every method takes the time it should act at; nothing here
//! reads a clock.
//!
//! After the system clock has been stepped, every stored offset is wrong by
//! the step: call [`ClockFilter::clear`] on every association (ntpd's
//! `clear_all()` does the same).

use std::collections::VecDeque;
use std::time::Duration;

use mcast_proto::NtpDuration;

/// Number of filter stages (RFC 5905 section 10, `NSTAGE`).
pub const NSTAGE: usize = 8;

/// Frequency tolerance: dispersion grows by this many seconds per second
/// (RFC 5905 section 7.3, `PHI` = 15 ppm). A rate, not seconds, so a bare
/// `f64` is fine.
pub const PHI: f64 = 15e-6;

/// Maximum dispersion (RFC 5905 section 7.3, `MAXDISP` = 16 s). An empty
/// filter stage counts as this much.
pub const MAXDISP: NtpDuration = NtpDuration::from_secs(16);

/// Spike gate multiplier (RFC 5905 appendix A.5.2, `SGATE` = 3): an offset
/// more than this many jitters away from the last one is an outlier.
pub const POPCORN_GATE: i64 = 3;

/// Lower bound of the spike gate: 0.5 ms (2,147,484 in 2^-32 s). A quiet LAN
/// can show a jitter of a few microseconds; without a floor, ordinary
/// wander and the client's own slewing would count as spikes.
pub const POPCORN_FLOOR: NtpDuration = NtpDuration::from_bits(2_147_484);

/// How many outliers in a row the spike suppressor drops. The next one in
/// the run is accepted, so a real, persistent change gets through on its
/// third sample.
pub const POPCORN_MAX_SUPPRESSED: u32 = 2;

/// Smallest root distance reported (ntpd 4.2.8's `mindist`, 1 ms). Without
/// it, LAN servers with microsecond distances but a few hundred microseconds
/// of path asymmetry would never intersect (RFC 5905 section 11.2.1 floors
/// the delay term at `MINDISP` for the same reason).
pub const MIN_ROOT_DISTANCE: NtpDuration = NtpDuration::from_bits(4_294_967);

/// `PHI` times an elapsed time, as a duration.
pub(crate) fn phi_times(elapsed: Duration) -> NtpDuration {
    NtpDuration::from_seconds_f64(PHI * elapsed.as_secs_f64())
}

/// One measurement of a server (RFC 5905 section 8): clock offset
/// (server minus local, positive when the local clock is behind), round-trip
/// delay, dispersion (the sample's own error budget) and the monotonic time
/// it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Clock offset θ: server time minus local time.
    pub offset: NtpDuration,
    /// Round-trip delay δ (in broadcast mode, twice the calibrated one-way delay).
    pub delay: NtpDuration,
    /// Sample dispersion ε (precisions plus `PHI` times the measurement interval).
    pub dispersion: NtpDuration,
    /// Monotonic time the sample was taken.
    pub time: Duration,
}

/// The filter's estimate after an accepted sample (RFC 5905 section 10:
/// peer offset, delay, dispersion and jitter, and the sample's time `t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterOutput {
    /// Offset of the selected (lowest-delay) sample.
    pub offset: NtpDuration,
    /// Delay of the selected sample.
    pub delay: NtpDuration,
    /// Filter dispersion: Σ εᵢ / 2^(i+1) over the stages sorted by delay,
    /// empty or invalid stages counting as [`MAXDISP`].
    pub dispersion: NtpDuration,
    /// RMS of the offset differences between the selected sample and the
    /// other valid ones, at least the precision.
    pub jitter: NtpDuration,
    /// Monotonic time of the selected sample.
    pub time: Duration,
}

/// What [`ClockFilter::add`] did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterResult {
    /// The filter has a new estimate.
    Accepted(FilterOutput),
    /// The spike suppressor (RFC 5905 appendix A.5.2, "popcorn spike")
    /// dropped the selected sample: its offset is further than
    /// max(3 × jitter, [`POPCORN_FLOOR`]) from the last accepted offset and
    /// fewer than [`POPCORN_MAX_SUPPRESSED`] outliers in a row have been
    /// dropped before it. The sample keeps its stage, marked as a spike.
    Popcorn {
        /// The dropped offset.
        offset: NtpDuration,
        /// The gate it exceeded (distance allowed from the last offset).
        gate: NtpDuration,
        /// Outliers dropped in a row, this one included.
        consecutive: u32,
    },
    /// The lowest-delay sample is not newer than the one last used, so there
    /// is nothing new to report (RFC 5905 section 10: a sample is used only
    /// once, and never one older than the last used). Also returned when no
    /// stage is valid (every dispersion [`MAXDISP`] or more).
    Stale,
}

/// One filter stage: a sample, and whether the spike suppressor dropped it.
#[derive(Debug, Clone, Copy)]
struct Stage {
    sample: Sample,
    spike: bool,
}

/// The clock filter of one association (RFC 5905 section 10).
#[derive(Debug, Clone)]
pub struct ClockFilter {
    precision: NtpDuration,
    /// Newest first, at most [`NSTAGE`].
    stages: VecDeque<Stage>,
    output: Option<FilterOutput>,
    /// Outliers in the current run (reset by an accepted in-gate sample).
    outliers: u32,
}

impl ClockFilter {
    /// An empty filter. `precision` is the local clock's reading precision
    /// (RFC 5905 section 7.3, `sys.precision`); the jitter never goes below it.
    pub fn new(precision: NtpDuration) -> Self {
        ClockFilter {
            precision: precision.abs(),
            stages: VecDeque::with_capacity(NSTAGE),
            output: None,
            outliers: 0,
        }
    }

    /// Shift a sample into the filter and recompute (RFC 5905 section 10,
    /// appendix A.5.2 `clock_filter()`).
    ///
    /// The stages are aged to the sample's time (each stage's dispersion
    /// grows by `PHI` times its age), the valid ones (aged dispersion below
    /// [`MAXDISP`], and not a dropped spike) are sorted by delay plus aged
    /// dispersion (as ntpd 4.2.8 `clock_filter()` ranks aged samples),
    /// newest first among equal ranks, and the first is the candidate. It is used
    /// only if it is newer than the last one used and passes the spike
    /// suppressor:
    ///
    /// * an *outlier* is a candidate whose offset differs from the last
    ///   accepted offset by more than max(3 × last jitter, [`POPCORN_FLOOR`]);
    /// * an outlier is dropped ([`FilterResult::Popcorn`]) while fewer than
    ///   [`POPCORN_MAX_SUPPRESSED`] outliers in a row have been dropped; the
    ///   next outlier of the run, and every later one, is accepted;
    /// * an accepted candidate inside the gate ends the run.
    ///
    /// A dropped spike stays in its stage but takes no part in selection,
    /// dispersion or jitter (so it cannot inflate the jitter and open the
    /// gate for the next spike) unless its run is accepted, which makes the
    /// run's samples ordinary again.
    ///
    /// So a lone spike, or two in a row, never reaches the clock, while a
    /// step in a server's time is followed from its third sample.
    pub fn add(&mut self, s: Sample) -> FilterResult {
        self.stages.push_front(Stage {
            sample: s,
            spike: false,
        });
        self.stages.truncate(NSTAGE);
        let Some(selected) = self.evaluate(s.time) else {
            return FilterResult::Stale;
        };

        if let Some(last) = self.output {
            if selected.time <= last.time {
                // RFC 5905 A.5.2: the peer's dispersion and jitter are
                // refreshed with every sample; only the clock must not see
                // the same sample twice ("use a sample only once").
                self.output = Some(selected);
                return FilterResult::Stale;
            }
            let gate = (last.jitter * POPCORN_GATE).max(POPCORN_FLOOR);
            if selected.offset.saturating_sub(last.offset).abs() > gate {
                if self.outliers < POPCORN_MAX_SUPPRESSED {
                    self.outliers += 1;
                    for st in &mut self.stages {
                        if st.sample.time == selected.time {
                            st.spike = true;
                        }
                    }
                    return FilterResult::Popcorn {
                        offset: selected.offset,
                        gate,
                        consecutive: self.outliers,
                    };
                }
                // A persistent change: its earlier samples were real too.
                if self.stages.iter().any(|st| st.spike) {
                    for st in &mut self.stages {
                        st.spike = false;
                    }
                    return self.accept(s.time);
                }
            } else {
                self.outliers = 0;
            }
        }
        FilterResult::Accepted(self.commit(selected))
    }

    /// Recompute from the current stages and accept the result.
    fn accept(&mut self, now: Duration) -> FilterResult {
        match self.evaluate(now) {
            Some(out) => FilterResult::Accepted(self.commit(out)),
            None => FilterResult::Stale,
        }
    }

    fn commit(&mut self, out: FilterOutput) -> FilterOutput {
        self.output = Some(out);
        out
    }

    /// The filter's estimate from the current stages at time `now`: the
    /// lowest-delay valid stage, the filter dispersion and the jitter.
    fn evaluate(&self, now: Duration) -> Option<FilterOutput> {
        // Age every stage to now; keep the valid ones, sorted by delay plus
        // aged dispersion (ntpd's ranking of aged samples): a sample's error
        // bound now, so a reply of the calibration volley cannot outrank
        // every broadcast that follows it for eight intervals (broadcast
        // samples carry the calibrated delay, a median, usually above the
        // volley's best round trip, while the clock moves on). The stages
        // are newest first and the sort is stable, so among equal ranks the
        // newest comes first.
        let mut valid: Vec<(Sample, NtpDuration)> = self
            .stages
            .iter()
            .filter(|st| !st.spike)
            .map(|st| {
                let age = now.saturating_sub(st.sample.time);
                (
                    st.sample,
                    st.sample.dispersion.abs().saturating_add(phi_times(age)),
                )
            })
            .filter(|(_, disp)| *disp < MAXDISP)
            .collect();
        valid.sort_by_key(|(st, disp)| st.delay.abs().saturating_add(*disp));
        let &(best, _) = valid.first()?;

        // ε = Σ εᵢ / 2^(i+1), missing stages counting as MAXDISP.
        let dispersion = (0..NSTAGE)
            .map(|i| {
                let disp = valid.get(i).map_or(MAXDISP, |(_, d)| *d);
                NtpDuration::from_bits(disp.to_bits() >> (i + 1))
            })
            .fold(NtpDuration::ZERO, NtpDuration::saturating_add);

        // ψ = sqrt(Σ (θ₀ - θⱼ)² / (m - 1)) over the other valid stages.
        let others = valid.len().saturating_sub(1);
        let jitter = if others == 0 {
            self.precision
        } else {
            let best_s = best.offset.as_seconds_f64();
            let sum: f64 = valid
                .iter()
                .skip(1)
                .map(|(st, _)| (st.offset.as_seconds_f64() - best_s).powi(2))
                .sum();
            NtpDuration::from_seconds_f64((sum / others as f64).sqrt()).max(self.precision)
        };

        Some(FilterOutput {
            offset: best.offset,
            delay: best.delay,
            dispersion,
            jitter,
            time: best.time,
        })
    }

    /// The last accepted estimate, if any.
    pub fn output(&self) -> Option<FilterOutput> {
        self.output
    }

    /// Peer offset θ (RFC 5905 section 10); zero before the first estimate.
    pub fn offset(&self) -> NtpDuration {
        self.output.map_or(NtpDuration::ZERO, |o| o.offset)
    }

    /// Peer delay δ (RFC 5905 section 10); zero before the first estimate.
    pub fn delay(&self) -> NtpDuration {
        self.output.map_or(NtpDuration::ZERO, |o| o.delay)
    }

    /// Peer dispersion ε at `now` (RFC 5905 section 10 and 11.2.1): the
    /// filter dispersion plus `PHI` times the time since the selected sample,
    /// at most [`MAXDISP`]; [`MAXDISP`] before the first estimate.
    pub fn dispersion(&self, now: Duration) -> NtpDuration {
        match self.output {
            Some(o) => o
                .dispersion
                .saturating_add(phi_times(now.saturating_sub(o.time)))
                .min(MAXDISP),
            None => MAXDISP,
        }
    }

    /// Peer jitter ψ (RFC 5905 section 10); the precision before the first
    /// estimate.
    pub fn jitter(&self) -> NtpDuration {
        self.output.map_or(self.precision, |o| o.jitter)
    }

    /// Monotonic time of the sample behind the current estimate (RFC 5905's
    /// `p.t`), if any.
    pub fn last_update(&self) -> Option<Duration> {
        self.output.map(|o| o.time)
    }

    /// Samples held (at most [`NSTAGE`]).
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Forget every sample and the estimate (after a clock step, or when an
    /// association is reset).
    pub fn clear(&mut self) {
        self.stages.clear();
        self.output = None;
        self.outliers = 0;
    }

    /// Root synchronization distance λ at `now` (RFC 5905 section 11.2.1,
    /// appendix A.5.5.2 `root_dist()`):
    ///
    /// λ = (δ_R + δ) / 2 + ε_R + ε + φ·(now − t) + ψ
    ///
    /// where `root_delay` δ_R and `root_dispersion` ε_R come from the
    /// server's packet and ε + φ·(now − t) is [`ClockFilter::dispersion`].
    /// The result is at least [`MIN_ROOT_DISTANCE`]; before the first
    /// estimate it is at least [`MAXDISP`].
    pub fn root_distance(
        &self,
        root_delay: NtpDuration,
        root_dispersion: NtpDuration,
        now: Duration,
    ) -> NtpDuration {
        let half_delay = NtpDuration::from_bits(
            root_delay
                .abs()
                .saturating_add(self.delay().abs())
                .to_bits()
                / 2,
        );
        half_delay
            .saturating_add(root_dispersion.abs())
            .saturating_add(self.dispersion(now))
            .saturating_add(self.jitter())
            .max(MIN_ROOT_DISTANCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: i64) -> NtpDuration {
        NtpDuration::from_micros(n)
    }

    fn ms(n: i64) -> NtpDuration {
        NtpDuration::from_millis(n)
    }

    #[test]
    fn dispersion_falls_with_each_sample_even_when_the_first_has_the_lowest_delay() {
        // The volley's first reply has the lowest delay; every later sample
        // is "stale" for the clock, yet the peer's dispersion must shrink,
        // or the server stays "too far" for selection for ever.
        let mut f = ClockFilter::new(NtpDuration::from_micros(1));
        let mut last = NtpDuration::MAX;
        for i in 0..8u64 {
            let delay = NtpDuration::from_micros(200 + 10 * i as i64);
            f.add(sample(NtpDuration::from_micros(50), delay, 2 * i));
            let d = f.dispersion(Duration::from_secs(2 * i));
            assert!(
                d < last,
                "sample {i}: dispersion {d} did not fall below {last}"
            );
            last = d;
        }
        assert!(last < NtpDuration::from_millis(10), "eight samples: {last}");
    }

    fn sample(offset: NtpDuration, delay: NtpDuration, t: u64) -> Sample {
        Sample {
            offset,
            delay,
            dispersion: us(2),
            time: Duration::from_secs(t),
        }
    }

    fn accepted(r: FilterResult) -> FilterOutput {
        match r {
            FilterResult::Accepted(o) => o,
            other => panic!("expected the sample to be accepted, got {other:?}"),
        }
    }

    #[test]
    fn first_sample_is_accepted_with_large_dispersion() {
        let mut f = ClockFilter::new(us(1));
        let out = accepted(f.add(sample(ms(3), ms(1), 10)));
        assert_eq!(out.offset, ms(3));
        assert_eq!(out.jitter, us(1), "one sample: jitter is the precision");
        // 7 empty stages at MAXDISP: 16 * (1/4 + ... + 1/256) ≈ 7.94 s.
        let d = out.dispersion.as_seconds_f64();
        assert!(
            (7.9..8.0).contains(&d),
            "dispersion of a 1-sample filter was {d}"
        );
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn dispersion_falls_as_stages_fill_and_grows_with_age() {
        let mut f = ClockFilter::new(us(1));
        for t in 0..8 {
            f.add(sample(ms(1), ms(1), t * 64));
        }
        assert_eq!(f.len(), NSTAGE);
        let at_update = f.dispersion(Duration::from_secs(7 * 64));
        assert!(
            at_update < ms(20),
            "a full filter's dispersion should be small, was {at_update}"
        );
        let later = f.dispersion(Duration::from_secs(7 * 64 + 1000));
        let grown = (later - at_update).as_seconds_f64();
        assert!(
            (grown - 0.015).abs() < 1e-6,
            "dispersion should grow by 15 ppm (15 ms in 1000 s), grew {grown}"
        );
    }

    #[test]
    fn selects_minimum_delay_sample() {
        let mut f = ClockFilter::new(us(1));
        accepted(f.add(sample(us(100), ms(5), 0)));
        let out = accepted(f.add(sample(us(300), ms(1), 1)));
        assert_eq!(out.offset, us(300), "the lower-delay sample must win");
        // A newer sample with a larger delay: the selected one is still the
        // one already used, so nothing new.
        assert_eq!(f.add(sample(us(200), ms(3), 2)), FilterResult::Stale);
        assert_eq!(f.offset(), us(300));
        assert_eq!(f.delay(), ms(1));
    }

    /// Replies of the calibration volley have lower delays than the
    /// broadcast samples after it (whose delay is twice the calibrated
    /// one-way delay); ranked by delay alone the best reply stayed the
    /// filter's pick for eight broadcasts, freezing the server's offset
    /// while the clock moved on.
    #[test]
    fn broadcasts_after_the_volley_are_used_at_once() {
        let mut f = ClockFilter::new(us(1));
        for t in 0..6 {
            f.add(sample(us(-5_000), us(280 + 10 * t as i64), 10 + 2 * t));
        }
        for (k, off) in [-4_800i64, -4_600, -4_400, -4_200].into_iter().enumerate() {
            let t = 64 * (k as u64 + 1);
            let out = accepted(f.add(sample(us(off), us(330), t)));
            assert_eq!(out.offset, us(off), "broadcast at {t} s not used");
        }
    }

    #[test]
    fn equal_delays_pick_the_newest() {
        let mut f = ClockFilter::new(us(1));
        for (t, off) in [10, 20, 30, 40].into_iter().enumerate() {
            let out = accepted(f.add(sample(us(off), ms(2), t as u64)));
            assert_eq!(out.offset, us(off));
        }
    }

    #[test]
    fn jitter_is_rms_of_differences() {
        let mut f = ClockFilter::new(us(1));
        // Oldest to newest: 0, +100 us, -100 us, 0. All delays are equal, so
        // the newest (0) is selected; the others differ by -100, +100, 0.
        for (t, off) in [0, 100, -100, 0].into_iter().enumerate() {
            f.add(sample(us(off), ms(2), t as u64));
        }
        // sqrt(((1e-4)² + (1e-4)² + 0) / 3)
        let j = f.jitter().as_seconds_f64();
        let want = (2.0e-8_f64 / 3.0).sqrt();
        assert!((j - want).abs() < 1e-9, "jitter {j}, expected {want}");
    }

    #[test]
    fn jitter_is_floored_at_precision() {
        let mut f = ClockFilter::new(us(4));
        for t in 0..8 {
            f.add(sample(us(7), ms(2), t));
        }
        assert_eq!(f.jitter(), us(4));
    }

    #[test]
    fn single_spike_is_suppressed() {
        let mut f = ClockFilter::new(us(1));
        for t in 0..6 {
            accepted(f.add(sample(us(10 * (t as i64 % 2)), ms(2), t)));
        }
        let r = f.add(sample(ms(132), ms(2), 6));
        assert!(
            matches!(r, FilterResult::Popcorn { consecutive: 1, .. }),
            "a lone 132 ms spike must be suppressed, got {r:?}"
        );
        assert_eq!(f.offset(), us(10), "the estimate must not move");
        // Back to normal: accepted, and the run is over.
        let out = accepted(f.add(sample(us(5), ms(2), 7)));
        assert_eq!(out.offset, us(5));
        let r = f.add(sample(ms(132), ms(2), 8));
        assert!(
            matches!(r, FilterResult::Popcorn { consecutive: 1, .. }),
            "a new run starts at 1, got {r:?}"
        );
    }

    #[test]
    fn persistent_change_gets_through_on_the_third_sample() {
        let mut f = ClockFilter::new(us(1));
        for t in 0..8 {
            accepted(f.add(sample(NtpDuration::ZERO, ms(2), t)));
        }
        assert!(matches!(
            f.add(sample(ms(20), ms(2), 8)),
            FilterResult::Popcorn { consecutive: 1, .. }
        ));
        assert!(matches!(
            f.add(sample(ms(20), ms(2), 9)),
            FilterResult::Popcorn { consecutive: 2, .. }
        ));
        let out = accepted(f.add(sample(ms(20), ms(2), 10)));
        assert_eq!(out.offset, ms(20), "the third outlier in a row is accepted");
        // The new level is now normal.
        let out = accepted(f.add(sample(ms(20), ms(2), 11)));
        assert_eq!(out.offset, ms(20));
    }

    #[test]
    fn small_changes_below_floor_are_not_spikes() {
        let mut f = ClockFilter::new(NtpDuration::from_nanos(100));
        for t in 0..8 {
            accepted(f.add(sample(NtpDuration::ZERO, ms(2), t)));
        }
        // Jitter is 100 ns, so 3 × jitter is tiny; the 0.5 ms floor applies.
        accepted(f.add(sample(us(400), ms(2), 8)));
    }

    #[test]
    fn old_samples_expire() {
        let mut f = ClockFilter::new(us(1));
        accepted(f.add(sample(ms(1), ms(1), 0)));
        // 16 s of dispersion at 15 ppm takes ~12.3 days; a sample a month
        // later sees the first as invalid, and the filter is as if fresh.
        let out = accepted(f.add(sample(ms(1), ms(2), 30 * 86_400)));
        assert_eq!(out.delay, ms(2));
        assert_eq!(out.jitter, us(1));
    }

    #[test]
    fn clear_forgets_everything() {
        let mut f = ClockFilter::new(us(1));
        f.add(sample(ms(1), ms(1), 0));
        f.clear();
        assert!(f.is_empty());
        assert_eq!(f.last_update(), None);
        assert_eq!(f.dispersion(Duration::from_secs(5)), MAXDISP);
        // After a clear a very different offset is accepted at once.
        accepted(f.add(sample(ms(500), ms(1), 1)));
    }

    #[test]
    fn root_distance_formula() {
        let mut f = ClockFilter::new(us(1));
        for t in 0..8 {
            f.add(sample(NtpDuration::ZERO, ms(4), t));
        }
        let now = Duration::from_secs(7);
        let got = f.root_distance(ms(10), ms(3), now);
        let want = ms(7) + ms(3) + f.dispersion(now) + f.jitter();
        assert_eq!(got, want);
        let later = f.root_distance(ms(10), ms(3), now + Duration::from_secs(100));
        let grown = (later - got).as_seconds_f64();
        assert!(
            (grown - 15e-6 * 100.0).abs() < 1e-9,
            "grew by {grown}, expected 1.5 ms"
        );
        // Before any estimate the distance is huge, so the server is unusable.
        let empty = ClockFilter::new(us(1));
        assert!(empty.root_distance(ms(1), ms(1), now) > NtpDuration::from_secs(16));
        // And never below the floor.
        let mut tiny = ClockFilter::new(NtpDuration::ZERO);
        for t in 0..8 {
            tiny.add(Sample {
                offset: NtpDuration::ZERO,
                delay: NtpDuration::ZERO,
                dispersion: NtpDuration::ZERO,
                time: Duration::from_secs(t),
            });
        }
        assert_eq!(
            tiny.root_distance(NtpDuration::ZERO, NtpDuration::ZERO, Duration::from_secs(7)),
            MIN_ROOT_DISTANCE
        );
    }
}
