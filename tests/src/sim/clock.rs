//! Simulated host clocks: what a host's `CLOCK_REALTIME` and
//! `CLOCK_MONOTONIC` read at each moment of true time.
//!
//! The clock runs at `1 + (frequency error + wander + frequency correction)`
//! seconds per true second; an `adjtime`-style slew adds at most 500 ppm
//! (the Linux kernel's `ADJ_OFFSET_SINGLESHOT` rate, which the discipline
//! assumes) until it is done, and a new slew replaces the one in progress.
//! Steps move the reading at once. The monotonic clock runs at the same
//! rate, slews included, but is not moved by steps (as on Linux).
//!
//! Disturbances are part of the model, applied at their exact time however
//! often the clock is read: injected steps (a VM migration, someone running
//! `date`), spikes (the clock is off by an amount for a while, then back:
//! the ~132 ms bumps VMs show) and a random-walk frequency wander.

use std::time::Duration;

use mcast_core::client::discipline::{Clock, KernelState, Ppm};
use mcast_proto::{NtpDuration, NtpTimestamp};

use super::random::Stream;

/// Kernel slew rate of `adjtime(3)`: 500 ppm.
pub const SLEW_RATE: f64 = 500e-6;

/// The wander takes a random step this often.
const WANDER_STEP: Duration = Duration::from_secs(16);

/// NTP time at the start of every simulation (true time zero): 2027-01-15.
pub fn epoch() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0)
}

/// A transient bump: the clock is off by `amount` from `at` for `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    /// When it starts (true time since the start).
    pub at: Duration,
    /// How far the clock jumps (positive: ahead).
    pub amount: NtpDuration,
    /// How long until it jumps back.
    pub duration: Duration,
}

/// How a host's clock behaves (a scenario's description of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockModel {
    /// Error at start: local minus true time (positive: ahead).
    pub offset: NtpDuration,
    /// Frequency error (positive: runs fast), e.g. up to ±100 ppm.
    pub frequency: Ppm,
    /// Random-walk wander of the frequency: standard deviation of its
    /// change over one hour.
    pub wander_per_hour: Ppm,
    /// Injected steps of the clock: when, and by how much.
    pub steps: Vec<(Duration, NtpDuration)>,
    /// Injected spikes.
    pub spikes: Vec<Spike>,
}

impl ClockModel {
    /// A perfect clock (a server disciplined by its reference).
    pub fn perfect() -> Self {
        ClockModel::default()
    }

    /// Off by `offset`, running off by `frequency`.
    pub fn off(offset: NtpDuration, frequency: Ppm) -> Self {
        ClockModel {
            offset,
            frequency,
            ..ClockModel::default()
        }
    }
}

/// What the discipline did to a simulated clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClockOps {
    /// Steps: when (true time) and by how much.
    pub steps: Vec<(Duration, NtpDuration)>,
    /// Slews requested.
    pub slews: u64,
    /// Frequency corrections set.
    pub frequency_sets: u64,
    /// Kernel clock states set (synchronized, error bounds, leap): when
    /// (true time) and what.
    pub kernel: Vec<(Duration, KernelState)>,
}

impl ClockOps {
    /// Every call that changed the clock.
    pub fn total(&self) -> u64 {
        self.steps.len() as u64 + self.slews + self.frequency_sets + self.kernel.len() as u64
    }
}

/// A host's clock as time passes. Implements the client's [`Clock`] trait,
/// acting at the true time it was last advanced to.
#[derive(Debug, Clone)]
pub struct HostClock {
    /// What the clock reads, error aside, at true time zero.
    base: NtpTimestamp,
    now: Duration,
    /// Local minus true time, seconds.
    error: f64,
    /// Monotonic minus true elapsed time, seconds (the error without steps).
    drift: f64,
    frequency_ppm: f64,
    wander_ppm: f64,
    correction_ppm: f64,
    slew_left: f64,
    /// Pending injected jumps, sorted by time.
    jumps: Vec<(Duration, f64)>,
    next_wander: Duration,
    wander_sigma_ppm: f64,
    rng: Stream,
    ops: ClockOps,
}

impl HostClock {
    /// A clock following `model`, with its own random stream.
    pub fn new(model: &ClockModel, rng: Stream) -> Self {
        let mut jumps: Vec<(Duration, f64)> = model
            .steps
            .iter()
            .map(|(at, d)| (*at, d.as_seconds_f64()))
            .collect();
        for s in &model.spikes {
            let a = s.amount.as_seconds_f64();
            jumps.push((s.at, a));
            jumps.push((s.at + s.duration, -a));
        }
        // Latest first: due jumps are popped from the end.
        jumps.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        let step_hours = WANDER_STEP.as_secs_f64() / 3600.0;
        HostClock {
            base: epoch(),
            now: Duration::ZERO,
            error: model.offset.as_seconds_f64(),
            drift: 0.0,
            frequency_ppm: model.frequency.0,
            wander_ppm: 0.0,
            correction_ppm: 0.0,
            slew_left: 0.0,
            jumps,
            next_wander: WANDER_STEP,
            wander_sigma_ppm: model.wander_per_hour.0 * step_hours.sqrt(),
            rng,
            ops: ClockOps::default(),
        }
    }

    /// The same clock, with true time zero at `base` instead of [`epoch`].
    pub fn starting_at(mut self, base: NtpTimestamp) -> Self {
        self.base = base;
        self
    }

    /// Moves the clock on to true time `t` (never backwards).
    pub fn advance_to(&mut self, t: Duration) {
        while self.now < t {
            let mut until = t;
            if self.wander_sigma_ppm > 0.0 {
                until = until.min(self.next_wander);
            }
            if let Some((at, _)) = self.jumps.last() {
                until = until.min(*at);
            }
            self.run_for((until - self.now).as_secs_f64());
            self.now = until;
            self.apply_due();
        }
        self.apply_due();
    }

    fn apply_due(&mut self) {
        while let Some(&(at, amount)) = self.jumps.last()
            && at <= self.now
        {
            self.error += amount;
            self.jumps.pop();
        }
        if self.wander_sigma_ppm > 0.0 && self.next_wander <= self.now {
            self.wander_ppm += self.wander_sigma_ppm * self.rng.gauss();
            self.next_wander += WANDER_STEP;
        }
    }

    fn run_for(&mut self, dt: f64) {
        let free = self.rate() * dt;
        let max = SLEW_RATE * dt;
        let slewed = self.slew_left.clamp(-max, max);
        self.slew_left -= slewed;
        self.error += free + slewed;
        self.drift += free + slewed;
    }

    /// Frequency offset from true time now, slews aside (seconds per second).
    fn rate(&self) -> f64 {
        (self.frequency_ppm + self.wander_ppm + self.correction_ppm) * 1e-6
    }

    /// True time the clock was last advanced to.
    pub fn true_now(&self) -> Duration {
        self.now
    }

    /// The clock's error now: local minus true time, seconds.
    pub fn error_s(&self) -> f64 {
        self.error
    }

    /// What `CLOCK_REALTIME` reads now.
    pub fn read(&self) -> NtpTimestamp {
        let elapsed =
            NtpDuration::from_nanos(i64::try_from(self.now.as_nanos()).unwrap_or(i64::MAX));
        self.base + elapsed + NtpDuration::from_seconds_f64(self.error)
    }

    /// What `CLOCK_MONOTONIC` reads now (zero at true time zero).
    pub fn mono(&self) -> Duration {
        let d = Duration::from_secs_f64(self.drift.abs());
        if self.drift < 0.0 {
            self.now.saturating_sub(d)
        } else {
            self.now + d
        }
    }

    /// The true time at which the monotonic clock will read `mono`, at the
    /// current rate (never before now).
    pub fn when_mono(&self, mono: Duration) -> Duration {
        let current = self.mono();
        if mono <= current {
            return self.now;
        }
        let ahead = (mono - current).as_secs_f64() / (1.0 + self.rate());
        self.now + Duration::from_secs_f64(ahead).max(Duration::from_nanos(1))
    }

    /// Jumps the clock now by `amount` (a disturbance, not a discipline
    /// step: not counted in [`HostClock::ops`]).
    pub fn jump(&mut self, amount: NtpDuration) {
        self.error += amount.as_seconds_f64();
    }

    /// What the discipline did to this clock.
    pub fn ops(&self) -> &ClockOps {
        &self.ops
    }
}

impl Clock for HostClock {
    fn now(&self) -> NtpTimestamp {
        self.read()
    }

    fn step(&mut self, offset: NtpDuration) -> Result<(), String> {
        self.error += offset.as_seconds_f64();
        self.ops.steps.push((self.now, offset));
        Ok(())
    }

    fn slew(&mut self, offset: NtpDuration) -> Result<(), String> {
        self.slew_left = offset.as_seconds_f64();
        self.ops.slews += 1;
        Ok(())
    }

    fn set_frequency_ppm(&mut self, ppm: Ppm) -> Result<(), String> {
        self.correction_ppm = ppm.0;
        self.ops.frequency_sets += 1;
        Ok(())
    }

    fn set_kernel_state(&mut self, state: KernelState) -> Result<(), String> {
        self.ops.kernel.push((self.now, state));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::Kind;

    fn clock(model: &ClockModel) -> HostClock {
        HostClock::new(model, Stream::new(1, Kind::Clock, 0))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn frequency_error_accumulates_and_monotonic_follows_the_rate() {
        let mut c = clock(&ClockModel::off(NtpDuration::from_millis(5), Ppm(100.0)));
        c.advance_to(secs(1000));
        // 5 ms + 100 ppm x 1000 s = 105 ms.
        assert!((c.error_s() - 0.105).abs() < 1e-9, "{}", c.error_s());
        let expect = epoch() + NtpDuration::from_secs(1000) + NtpDuration::from_millis(105);
        assert!((c.read() - expect).abs() < NtpDuration::from_nanos(2));
        assert!(c.mono().abs_diff(Duration::from_millis(1_000_100)) < Duration::from_nanos(2));
        // Reads are consistent: the true time mono will read 1100.1 s is 100 s on.
        let t = c.when_mono(Duration::from_millis(1_100_110));
        assert!(t.abs_diff(secs(1100)) < Duration::from_micros(1), "{t:?}");
    }

    #[test]
    fn slews_run_at_500_ppm_and_replace_each_other_steps_are_at_once() {
        let mut c = clock(&ClockModel::perfect());
        c.slew(NtpDuration::from_millis(10)).expect("sim");
        c.advance_to(secs(10));
        assert!((c.error_s() - 0.005).abs() < 1e-9, "5 ms after 10 s");
        c.slew(NtpDuration::from_millis(-1)).expect("sim");
        c.advance_to(secs(100));
        assert!(
            (c.error_s() - 0.004).abs() < 1e-9,
            "the first slew was replaced"
        );
        let mono = c.mono();
        c.step(NtpDuration::from_millis(-4)).expect("sim");
        assert!(c.error_s().abs() < 1e-9);
        assert_eq!(c.mono(), mono, "a step does not move the monotonic clock");
        assert_eq!(c.ops().steps.len(), 1);
        assert_eq!(c.ops().slews, 2);
    }

    #[test]
    fn injected_steps_and_spikes_happen_at_their_time_however_the_clock_is_read() {
        let model = ClockModel {
            steps: vec![(secs(50), NtpDuration::from_millis(200))],
            spikes: vec![Spike {
                at: secs(20),
                amount: NtpDuration::from_millis(132),
                duration: secs(10),
            }],
            ..ClockModel::default()
        };
        let mut coarse = clock(&model);
        let mut fine = clock(&model);
        for (t, want_ms) in [(19, 0.0), (20, 132.0), (29, 132.0), (30, 0.0), (60, 200.0)] {
            coarse.advance_to(secs(t));
            assert!((coarse.error_s() * 1e3 - want_ms).abs() < 1e-6, "at {t} s");
        }
        for ms in 0..=60_000 {
            fine.advance_to(Duration::from_millis(ms));
        }
        assert_eq!(fine.read(), coarse.read());
        assert_eq!(
            fine.ops().total(),
            0,
            "injected jumps are not discipline steps"
        );
    }

    #[test]
    fn wander_is_a_random_walk_of_the_set_size_and_reproducible() {
        let model = ClockModel {
            wander_per_hour: Ppm(1.0),
            ..ClockModel::default()
        };
        let mut changes = Vec::new();
        for seed in 0..200 {
            let mut c = HostClock::new(&model, Stream::new(seed, Kind::Clock, 0));
            c.advance_to(secs(3600));
            changes.push(c.wander_ppm);
        }
        let rms = (changes.iter().map(|w| w * w).sum::<f64>() / changes.len() as f64).sqrt();
        assert!(
            (0.8..1.2).contains(&rms),
            "RMS change over an hour {rms} ppm, want ~1"
        );
        let mut a = HostClock::new(&model, Stream::new(7, Kind::Clock, 0));
        let mut b = HostClock::new(&model, Stream::new(7, Kind::Clock, 0));
        a.advance_to(secs(7200));
        b.advance_to(secs(3600));
        b.advance_to(secs(7200));
        assert_eq!(a.read(), b.read(), "same seed, same clock");
    }
}
