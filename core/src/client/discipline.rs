//! Clock discipline: what to do with the system offset (RFC 5905 section
//! 12, ntpd's `local_clock()`), behind a [`Clock`] trait.
//!
//! [`Discipline::update`] takes each new system offset and returns a
//! [`Decision`]; [`Discipline::apply`] carries a decision out on a
//! [`Clock`]. The simulator and the real clock (`clock_adjtime`, in the
//! binary) implement [`Clock`]; nothing here touches a real clock, and in
//! [`ClockMode::Monitor`] nothing touches any clock at all.
//!
//! # State machine (ntpd 4.2.8 `local_clock()`)
//!
//! | state | offset ≤ step threshold | offset > step threshold |
//! |---|---|---|
//! | NSET (no update yet) | slew it, go FREQ | step mode: step, go FREQ; slew mode: slew at the bounded rate (SLEW) |
//! | FREQ (acquiring) | loop update | go SPIK, ignore (the first is [`Decision::SpikeIgnored`]) |
//! | SYNC | loop update | go SPIK, ignore |
//! | SPIK | back to FREQ/SYNC, loop update | ignore ([`Decision::WaitingForStepout`]) until `stepout` has passed since the spike began; then step mode steps (go FREQ), slew mode goes SLEW |
//! | SLEW (large slew) | back to SYNC, loop update | slew at the bounded rate, frequency held |
//!
//! Before any of this, an offset over the panic threshold is refused in every
//! state ([`Decision::Panic`]): nothing changes, not even the state.
//! A single spike therefore never moves the clock, whatever its size.
//!
//! # The loop
//!
//! A type II phase-locked loop (proportional phase + integrated frequency),
//! computed for whatever interval Δ has passed since the last update. With
//! time constant τ and r = e^(−Δ/τ), each update slews the clock by
//! Kp·θ and changes the frequency by Ki·θ/Δ, with Kp = 1 − r² and
//! Ki = (1 − r)². These gains put both closed-loop poles at r: critically
//! damped for any Δ/τ, so the loop neither rings nor goes unstable however
//! irregular the updates are. A constant frequency error is driven to zero
//! offset; the phase error decays like (1 + t/τ)·e^(−t/τ).
//!
//! τ starts at [`TAU_MIN`] (256 s, 4 updates at 64 s) and adapts like
//! ntpd's: each update with |θ| below [`PGATE`] × jitter counts +1, any other
//! −2; at +[`TAU_COUNT_LIMIT`] τ doubles (up to [`TAU_MAX`], 2048 s), at
//! −[`TAU_COUNT_LIMIT`] it halves. Long τ averages out measurement noise,
//! short τ follows frequency changes. During FREQ ([`FREQ_DURATION`] after
//! the first update or a step) τ stays at [`TAU_MIN`].
//!
//! Phase corrections are bounded to what the clock can slew in half an
//! interval at `max_slew_ppm` (so they finish before the next measurement);
//! when a correction is cut to that bound the frequency is not updated
//! (anti-windup). The frequency stays within ±[`MAX_FREQUENCY`].
//!
//! A slew replaces the one in progress ([`Clock::slew`] has `adjtime`
//! semantics), and an offset measured while a slew runs still contains what
//! is left of it. So until the last slew is done (at `max_slew_ppm`),
//! updates that would slew are not used ([`Decision::SlewInProgress`]);
//! spike detection and the stepout still run, and a step cancels the slew
//! first. This is what lets the caller feed every new selection, from any
//! server, without the loop correcting the same offset twice.
//!
//! # After a step
//!
//! Every clock filter holds offsets measured against the old clock: the
//! caller must clear them ([`crate::client::filter::ClockFilter::clear`]).

use std::fmt;
use std::time::Duration;

use mcast_proto::{NtpDuration, NtpTimestamp};

pub use crate::client::kernel::{KernelState, LeapPending};

/// A frequency in parts per million. Positive: the clock runs fast (gains
/// time); as a correction, positive makes the clock run faster.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Ppm(pub f64);

impl Ppm {
    /// No frequency offset.
    pub const ZERO: Ppm = Ppm(0.0);

    /// As a dimensionless rate (seconds per second).
    pub fn as_rate(self) -> f64 {
        self.0 * 1e-6
    }

    /// How far a clock off by this frequency drifts in `elapsed`.
    pub fn over(self, elapsed: Duration) -> NtpDuration {
        NtpDuration::from_seconds_f64(self.as_rate() * elapsed.as_secs_f64())
    }
}

impl fmt::Display for Ppm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} ppm", self.0)
    }
}

/// The system clock as the discipline sees it. Implemented by the simulator
/// and by the real clock (`clock_adjtime`, needs `CAP_SYS_TIME`); tests on
/// this machine never use the real one. Offsets have the sign of a measured
/// offset (server minus local): a positive offset moves the clock forward.
pub trait Clock {
    /// The clock's current time.
    fn now(&self) -> NtpTimestamp;
    /// Set the clock forward by `offset` at once (negative: back).
    fn step(&mut self, offset: NtpDuration) -> Result<(), String>;
    /// Change the clock by `offset` gradually, the way `adjtime(3)` /
    /// `ADJ_OFFSET_SINGLESHOT` does (at most 500 ppm on Linux). A new call
    /// replaces any slew still in progress.
    fn slew(&mut self, offset: NtpDuration) -> Result<(), String>;
    /// Set the frequency correction (absolute, not added to the previous
    /// one). Positive makes the clock run faster.
    fn set_frequency_ppm(&mut self, ppm: Ppm) -> Result<(), String>;
    /// Tell the kernel the clock's state: synchronized or not
    /// (`STA_UNSYNC`), maximum and estimated error, and a leap second
    /// pending at the end of the current UTC day (`STA_INS`/`STA_DEL`),
    /// as `adjtimex` `ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR` does. Other
    /// status bits are left as they are. Never called in monitor mode.
    fn set_kernel_state(&mut self, state: KernelState) -> Result<(), String>;
}

/// What the client may do to the clock (config `clock.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClockMode {
    /// Measure and report; never touch the clock.
    #[default]
    Monitor,
    /// Slew only; never step.
    Slew,
    /// Slew, and step an offset over the step threshold that persists for
    /// the stepout time (or at start-up).
    Step,
}

/// Step threshold in slew-only mode after start-up, as ntpd `-x`: 600 s.
pub const SLEW_ONLY_STEP_THRESHOLD: NtpDuration = NtpDuration::from_secs(600);
/// Largest frequency correction (ntpd's `NTP_MAXFREQ`, the kernel's limit).
pub const MAX_FREQUENCY: Ppm = Ppm(500.0);
/// Shortest loop time constant (256 s).
pub const TAU_MIN: Duration = Duration::from_secs(256);
/// Longest loop time constant (2048 s).
pub const TAU_MAX: Duration = Duration::from_secs(2048);
/// An update with |offset| < `PGATE` × jitter counts toward a longer time
/// constant (ntpd's `PGATE`).
pub const PGATE: f64 = 4.0;
/// Count at which the time constant doubles (or, negative, halves).
pub const TAU_COUNT_LIMIT: i32 = 8;
/// How long the loop stays in FREQ, with τ = [`TAU_MIN`], after the first
/// update or a step.
pub const FREQ_DURATION: Duration = Duration::from_secs(1024);
/// Interval assumed for the first update, when there is no previous one.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(64);
/// Part of the interval a loop phase correction may take at `max_slew_ppm`.
const SLEW_BUDGET: f64 = 0.5;

/// Clock control settings (config `[clock]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DisciplineConfig {
    /// Monitor, slew or step.
    pub mode: ClockMode,
    /// Offsets above this are spikes, stepped (step mode) or slewed at the
    /// bounded rate (slew mode) once they persist (default 0.128 s).
    pub step_threshold: NtpDuration,
    /// How long offsets over the step threshold must persist before they
    /// are acted on (default 900 s, RFC 5905's `WATCH`).
    pub stepout: Duration,
    /// Offsets above this are refused and reported, never corrected
    /// (default 1000 s; zero turns the check off).
    pub panic_threshold: NtpDuration,
    /// Like ntpd `-x`: after start-up the step threshold is 600 s and the
    /// clock is never stepped, only slewed. At start-up (the first update)
    /// step mode may still step once over `step_threshold`.
    pub slew_only: bool,
    /// Fastest slew (default 500 ppm, the kernel's `adjtime` rate).
    pub max_slew_ppm: Ppm,
    /// With no server selected for longer than this, the kernel is told
    /// the clock is unsynchronized again (`STA_UNSYNC`; default an hour,
    /// [`crate::client::kernel::DEFAULT_UNSYNC_AFTER`]).
    pub unsync_after: Duration,
    /// Step mode, like ntpd `-g`: until the first clock update after start
    /// the panic threshold does not apply to offsets up to this; such an
    /// offset is stepped at once (default a day,
    /// [`DEFAULT_FIRST_STEP_MAX`]; zero: the panic threshold applies from
    /// the start). Slew mode never steps, so it is not affected.
    pub first_step_max: NtpDuration,
}

/// Default `first_step_max`: a day, enough for an RTC kept in local time
/// or a host that booted after weeks off; a clock further off is refused
/// by the panic threshold and left to an operator (`mcast-client
/// step-now`).
pub const DEFAULT_FIRST_STEP_MAX: NtpDuration = NtpDuration::from_secs(86_400);

impl Default for DisciplineConfig {
    fn default() -> Self {
        DisciplineConfig {
            mode: ClockMode::Monitor,
            step_threshold: NtpDuration::from_millis(128),
            stepout: Duration::from_secs(900),
            panic_threshold: NtpDuration::from_secs(1000),
            slew_only: false,
            max_slew_ppm: Ppm(500.0),
            unsync_after: crate::client::kernel::DEFAULT_UNSYNC_AFTER,
            first_step_max: DEFAULT_FIRST_STEP_MAX,
        }
    }
}

/// What [`Discipline::update`] decided (carried out by [`Discipline::apply`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Monitor mode: the offset is reported, the clock is never touched.
    Monitor {
        /// The system offset.
        offset: NtpDuration,
    },
    /// Slew the clock by `correction` and set its frequency correction.
    Slew {
        /// The system offset.
        offset: NtpDuration,
        /// The phase correction to slew now (part of `offset`).
        correction: NtpDuration,
        /// The frequency correction to set (absolute).
        frequency_ppm: Ppm,
    },
    /// Step the clock by `offset`. Every clock filter must be cleared after.
    Step {
        /// The system offset, stepped away.
        offset: NtpDuration,
    },
    /// The first offset over the step threshold after normal ones: a spike,
    /// ignored (SPIK state). A single spike is never acted on.
    SpikeIgnored {
        /// The ignored offset.
        offset: NtpDuration,
        /// Monotonic time the spike began (now).
        since: Duration,
    },
    /// Offsets over the panic threshold are refused: nothing happens to the
    /// clock or to the discipline; set the clock by hand.
    Panic {
        /// The refused offset.
        offset: NtpDuration,
    },
    /// The offset has been over the step threshold since a spike began;
    /// still ignored until the stepout has passed.
    WaitingForStepout {
        /// The ignored offset.
        offset: NtpDuration,
        /// Time left until the stepout.
        remaining: Duration,
    },
    /// The last slew has not finished (at `max_slew_ppm`), so the offset
    /// still contains part of it: the update is not used, and the clock is
    /// left alone (a new slew would cancel the one in progress).
    SlewInProgress {
        /// The offset not used.
        offset: NtpDuration,
        /// Time until the slew in progress is done.
        remaining: Duration,
    },
}

impl Decision {
    /// Every [`Decision::name`], in declaration order.
    pub const NAMES: [&'static str; 7] = [
        "monitor",
        "slew",
        "step",
        "spike-ignored",
        "panic",
        "waiting-for-stepout",
        "slew-in-progress",
    ];

    /// A short name for status and metrics labels: `monitor`, `slew`,
    /// `step`, `spike-ignored`, `panic`, `waiting-for-stepout`,
    /// `slew-in-progress`.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Monitor { .. } => "monitor",
            Decision::Slew { .. } => "slew",
            Decision::Step { .. } => "step",
            Decision::SpikeIgnored { .. } => "spike-ignored",
            Decision::Panic { .. } => "panic",
            Decision::WaitingForStepout { .. } => "waiting-for-stepout",
            Decision::SlewInProgress { .. } => "slew-in-progress",
        }
    }

    /// The system offset the decision was made on.
    pub fn offset(&self) -> NtpDuration {
        match *self {
            Decision::Monitor { offset }
            | Decision::Slew { offset, .. }
            | Decision::Step { offset }
            | Decision::SpikeIgnored { offset, .. }
            | Decision::Panic { offset }
            | Decision::WaitingForStepout { offset, .. }
            | Decision::SlewInProgress { offset, .. } => offset,
        }
    }
}

/// The discipline's state (ntpd `local_clock()` states, plus SLEW).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopState {
    /// No update yet (`NSET`).
    Nset,
    /// Acquiring the frequency after start-up or a step (`FREQ`).
    Freq,
    /// Tracking (`SYNC`).
    Sync,
    /// Offsets over the step threshold, ignored until the stepout (`SPIK`).
    Spike,
    /// Slew mode: a persistent offset over the step threshold is being
    /// slewed away at the bounded rate.
    Slewing,
}

impl fmt::Display for LoopState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoopState::Nset => "NSET",
            LoopState::Freq => "FREQ",
            LoopState::Sync => "SYNC",
            LoopState::Spike => "SPIK",
            LoopState::Slewing => "SLEW",
        })
    }
}

/// Internal state, with what each state needs to remember.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Nset,
    Freq {
        since: Duration,
    },
    Sync,
    /// `resume`: the state to go back to when the offsets return.
    Spike {
        since: Duration,
        resume: Resume,
    },
    Slewing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Resume {
    Freq { since: Duration },
    Sync,
}

/// The clock discipline (RFC 5905 section 12; ntpd `local_clock()`).
#[derive(Debug, Clone)]
pub struct Discipline {
    config: DisciplineConfig,
    state: State,
    /// The state before a step decided but not yet applied, restored if the
    /// step fails.
    before_step: Option<State>,
    /// Time of the last update that reached the loop or slewed (the loop's
    /// interval runs from here).
    last_update: Option<Duration>,
    /// Time of the last update of any kind but monitor, panic and
    /// slew-in-progress (the slew bound uses the spacing of updates).
    last_seen: Option<Duration>,
    /// When the last slew requested will be done, at `max_slew_ppm`.
    slew_until: Option<Duration>,
    /// A step was decided while a slew was in progress: cancel it first.
    cancel_slew_before_step: bool,
    frequency: Ppm,
    /// The frequency came from a previous run (the driftfile): the first
    /// update goes to SYNC, not FREQ.
    frequency_restored: bool,
    /// Loop time constant, seconds.
    tau: f64,
    tau_count: i32,
}

impl Discipline {
    /// A discipline in NSET with no frequency correction.
    pub fn new(config: DisciplineConfig) -> Self {
        Discipline {
            config,
            state: State::Nset,
            before_step: None,
            last_update: None,
            last_seen: None,
            slew_until: None,
            cancel_slew_before_step: false,
            frequency: Ppm::ZERO,
            frequency_restored: false,
            tau: TAU_MIN.as_secs_f64(),
            tau_count: 0,
        }
    }

    /// The settings.
    pub fn config(&self) -> &DisciplineConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> LoopState {
        match self.state {
            State::Nset => LoopState::Nset,
            State::Freq { .. } => LoopState::Freq,
            State::Sync => LoopState::Sync,
            State::Spike { .. } => LoopState::Spike,
            State::Slewing => LoopState::Slewing,
        }
    }

    /// The frequency correction the loop wants on the clock.
    pub fn frequency(&self) -> Ppm {
        self.frequency
    }

    /// Starts the loop from a frequency measured by a previous run (ntpd's
    /// driftfile): the first update sets it on the clock, and the loop goes
    /// straight to SYNC instead of measuring the frequency again in FREQ.
    /// Only before the first update; clamped to ±[`MAX_FREQUENCY`]; a value
    /// that is not finite is ignored. Returns whether it was taken.
    pub fn restore_frequency(&mut self, ppm: Ppm) -> bool {
        if self.state != State::Nset || !ppm.0.is_finite() {
            return false;
        }
        self.frequency = Ppm(ppm.0.clamp(-MAX_FREQUENCY.0, MAX_FREQUENCY.0));
        self.frequency_restored = true;
        true
    }

    /// The state after the first update or a step: FREQ, or SYNC when the
    /// frequency was restored and this is the first update.
    fn acquiring(&mut self, now: Duration) -> State {
        if std::mem::take(&mut self.frequency_restored) {
            State::Sync
        } else {
            State::Freq { since: now }
        }
    }

    /// The loop's current time constant τ.
    pub fn time_constant(&self) -> Duration {
        Duration::from_secs_f64(self.tau)
    }

    /// The step threshold in force now: [`SLEW_ONLY_STEP_THRESHOLD`] in
    /// slew-only mode after start-up (unless the configured one is larger),
    /// the configured one otherwise.
    pub fn step_threshold(&self) -> NtpDuration {
        if self.config.slew_only && self.state != State::Nset {
            self.config.step_threshold.max(SLEW_ONLY_STEP_THRESHOLD)
        } else {
            self.config.step_threshold
        }
    }

    /// Whether this decision point may step the clock.
    fn may_step(&self) -> bool {
        self.config.mode == ClockMode::Step && !(self.config.slew_only && self.state != State::Nset)
    }

    /// Decide what to do with a new system `offset` (server minus local)
    /// with system `jitter`, at monotonic time `now`. See the module
    /// documentation for the state machine and the loop.
    pub fn update(&mut self, offset: NtpDuration, jitter: NtpDuration, now: Duration) -> Decision {
        if self.config.mode == ClockMode::Monitor {
            return Decision::Monitor { offset };
        }
        let first_step = self.state == State::Nset
            && self.config.mode == ClockMode::Step
            && offset.abs() <= self.config.first_step_max;
        if !first_step
            && self.config.panic_threshold > NtpDuration::ZERO
            && offset.abs() > self.config.panic_threshold
        {
            return Decision::Panic { offset };
        }
        self.before_step = None;
        let big = offset.abs() > self.step_threshold();
        // Spike detection and stepout run even while a slew is in progress
        // (a step cancels the slew); anything that would slew waits for it.
        let watching = big
            && matches!(
                self.state,
                State::Freq { .. } | State::Sync | State::Spike { .. }
            );
        if !watching
            && let Some(until) = self.slew_until
            && until > now
        {
            return Decision::SlewInProgress {
                offset,
                remaining: until - now,
            };
        }
        let since = |t: Option<Duration>| {
            t.map_or(DEFAULT_INTERVAL, |t| now.saturating_sub(t))
                .max(Duration::from_secs(1))
        };
        let interval = since(self.last_update);
        let spacing = since(self.last_seen);
        self.last_seen = Some(now);

        match self.state {
            State::Nset if big => {
                if self.may_step() {
                    self.step(offset, now)
                } else {
                    self.state = State::Slewing;
                    self.slew_large(offset, spacing, now)
                }
            }
            State::Nset => {
                // The first correction is the whole offset (ntpd: "set the
                // clock" by slewing), within the slew bound.
                self.state = self.acquiring(now);
                self.last_update = Some(now);
                let correction = self.bounded(offset, spacing, SLEW_BUDGET).0;
                self.slew(offset, correction, now)
            }
            State::Freq { since } if big => {
                self.state = State::Spike {
                    since: now,
                    resume: Resume::Freq { since },
                };
                Decision::SpikeIgnored { offset, since: now }
            }
            State::Sync if big => {
                self.state = State::Spike {
                    since: now,
                    resume: Resume::Sync,
                };
                Decision::SpikeIgnored { offset, since: now }
            }
            State::Freq { .. } | State::Sync => {
                self.run_loop(offset, jitter, interval, spacing, now)
            }
            State::Spike { resume, .. } if !big => {
                self.state = match resume {
                    Resume::Freq { since } => State::Freq { since },
                    Resume::Sync => State::Sync,
                };
                self.run_loop(offset, jitter, interval, spacing, now)
            }
            State::Spike { since, .. } => {
                let elapsed = now.saturating_sub(since);
                if elapsed < self.config.stepout {
                    Decision::WaitingForStepout {
                        offset,
                        remaining: self.config.stepout - elapsed,
                    }
                } else if self.may_step() {
                    self.step(offset, now)
                } else {
                    self.state = State::Slewing;
                    self.slew_large(offset, spacing, now)
                }
            }
            State::Slewing if big => self.slew_large(offset, spacing, now),
            State::Slewing => {
                self.state = State::Sync;
                self.run_loop(offset, jitter, interval, spacing, now)
            }
        }
    }

    /// Carry out `d` on `clock`. Monitor mode never touches the clock,
    /// whatever `d` says. If a step fails, the discipline goes back to the
    /// state it stepped from, so the next update tries again.
    pub fn apply(&mut self, d: &Decision, clock: &mut dyn Clock) -> Result<(), String> {
        if self.config.mode == ClockMode::Monitor {
            return Ok(());
        }
        match *d {
            Decision::Slew {
                correction,
                frequency_ppm,
                ..
            } => {
                clock.set_frequency_ppm(frequency_ppm)?;
                clock.slew(correction)
            }
            Decision::Step { offset } => {
                if std::mem::take(&mut self.cancel_slew_before_step) {
                    // The offset measured includes what that slew had yet
                    // to do; left running it would be applied twice.
                    clock.slew(NtpDuration::ZERO)?;
                }
                let result = clock.step(offset);
                if result.is_err()
                    && let Some(previous) = self.before_step.take()
                {
                    self.state = previous;
                }
                result
            }
            Decision::Monitor { .. }
            | Decision::SpikeIgnored { .. }
            | Decision::Panic { .. }
            | Decision::WaitingForStepout { .. }
            | Decision::SlewInProgress { .. } => Ok(()),
        }
    }

    /// An operator's step (`mcast-client step-now`): step by `offset` at
    /// once, whatever the thresholds, and start over in FREQ as after any
    /// step. Carried out by [`Discipline::apply`].
    pub fn step_now(&mut self, offset: NtpDuration, now: Duration) -> Decision {
        self.before_step = None;
        self.step(offset, now)
    }

    fn step(&mut self, offset: NtpDuration, now: Duration) -> Decision {
        self.before_step = Some(self.state);
        self.cancel_slew_before_step = self.slew_until.is_some_and(|t| t > now);
        self.slew_until = None;
        self.state = self.acquiring(now);
        self.last_update = Some(now);
        self.tau = TAU_MIN.as_secs_f64();
        self.tau_count = 0;
        Decision::Step { offset }
    }

    /// `offset` cut to what `max_slew_ppm` allows in `budget` × `interval`;
    /// `true` when it was cut.
    fn bounded(&self, offset: NtpDuration, interval: Duration, budget: f64) -> (NtpDuration, bool) {
        let limit = NtpDuration::from_seconds_f64(
            self.config.max_slew_ppm.as_rate().abs() * interval.as_secs_f64() * budget,
        );
        if offset.abs() > limit {
            let cut = if offset.is_negative() { -limit } else { limit };
            (cut, true)
        } else {
            (offset, false)
        }
    }

    /// Slew a large offset at the bounded rate (a whole update spacing's
    /// worth), frequency held.
    fn slew_large(&mut self, offset: NtpDuration, spacing: Duration, now: Duration) -> Decision {
        self.last_update = Some(now);
        let correction = self.bounded(offset, spacing, 1.0).0;
        self.slew(offset, correction, now)
    }

    /// A slew decision; notes when the slew will be done.
    fn slew(&mut self, offset: NtpDuration, correction: NtpDuration, now: Duration) -> Decision {
        let rate = self.config.max_slew_ppm.as_rate().abs();
        self.slew_until = (rate > 0.0)
            .then(|| Duration::try_from_secs_f64(correction.abs().as_seconds_f64() / rate).ok())
            .flatten()
            .map(|d| now.saturating_add(d));
        Decision::Slew {
            offset,
            correction,
            frequency_ppm: self.frequency,
        }
    }

    /// One loop update (see the module documentation). `interval`: since
    /// the last loop update (sets the gains); `spacing`: since the last
    /// update of any kind (sets the slew bound).
    fn run_loop(
        &mut self,
        offset: NtpDuration,
        jitter: NtpDuration,
        interval: Duration,
        spacing: Duration,
        now: Duration,
    ) -> Decision {
        let dt = interval.as_secs_f64();
        let y = offset.as_seconds_f64();
        let r = (-dt / self.tau).exp();
        let kp = 1.0 - r * r;
        let ki = (1.0 - r) * (1.0 - r);

        let (correction, saturated) =
            self.bounded(NtpDuration::from_seconds_f64(kp * y), spacing, SLEW_BUDGET);
        if !saturated {
            let f = self.frequency.0 + ki * y / dt * 1e6;
            self.frequency = Ppm(f.clamp(-MAX_FREQUENCY.0, MAX_FREQUENCY.0));
        }

        match self.state {
            State::Freq { since } => {
                if now.saturating_sub(since) >= FREQ_DURATION {
                    self.state = State::Sync;
                }
            }
            State::Sync => self.adapt_tau(y, jitter),
            State::Nset | State::Spike { .. } | State::Slewing => {}
        }
        self.last_update = Some(now);
        self.slew(offset, correction, now)
    }

    /// ntpd-style time-constant adaptation (see the module documentation).
    fn adapt_tau(&mut self, y: f64, jitter: NtpDuration) {
        if y.abs() < PGATE * jitter.abs().as_seconds_f64() {
            self.tau_count += 1;
            if self.tau_count >= TAU_COUNT_LIMIT {
                self.tau = (self.tau * 2.0).min(TAU_MAX.as_secs_f64());
                self.tau_count = 0;
            }
        } else {
            self.tau_count -= 2;
            if self.tau_count <= -TAU_COUNT_LIMIT {
                self.tau = (self.tau / 2.0).max(TAU_MIN.as_secs_f64());
                self.tau_count = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: i64) -> NtpDuration {
        NtpDuration::from_millis(n)
    }

    fn us(n: i64) -> NtpDuration {
        NtpDuration::from_micros(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn config(mode: ClockMode) -> DisciplineConfig {
        DisciplineConfig {
            mode,
            ..DisciplineConfig::default()
        }
    }

    #[test]
    fn decision_names_are_distinct_and_listed() {
        let o = ms(1);
        let all = [
            Decision::Monitor { offset: o },
            Decision::Slew {
                offset: o,
                correction: o,
                frequency_ppm: Ppm(0.0),
            },
            Decision::Step { offset: o },
            Decision::SpikeIgnored {
                offset: o,
                since: secs(1),
            },
            Decision::Panic { offset: o },
            Decision::WaitingForStepout {
                offset: o,
                remaining: secs(1),
            },
            Decision::SlewInProgress {
                offset: o,
                remaining: secs(1),
            },
        ];
        let names: Vec<&str> = all.iter().map(Decision::name).collect();
        assert_eq!(names, Decision::NAMES);
    }

    /// Records every call; the offset it reports is whatever the test says.
    #[derive(Default)]
    struct FakeClock {
        steps: Vec<NtpDuration>,
        slews: Vec<NtpDuration>,
        freqs: Vec<Ppm>,
        kernel: Vec<KernelState>,
    }

    impl FakeClock {
        fn calls(&self) -> usize {
            self.steps.len() + self.slews.len() + self.freqs.len()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> NtpTimestamp {
            NtpTimestamp::ZERO
        }
        fn step(&mut self, offset: NtpDuration) -> Result<(), String> {
            self.steps.push(offset);
            Ok(())
        }
        fn slew(&mut self, offset: NtpDuration) -> Result<(), String> {
            self.slews.push(offset);
            Ok(())
        }
        fn set_frequency_ppm(&mut self, ppm: Ppm) -> Result<(), String> {
            self.freqs.push(ppm);
            Ok(())
        }
        fn set_kernel_state(&mut self, s: KernelState) -> Result<(), String> {
            self.kernel.push(s);
            Ok(())
        }
    }

    /// Any call fails the test.
    struct UntouchableClock;

    impl Clock for UntouchableClock {
        fn now(&self) -> NtpTimestamp {
            NtpTimestamp::ZERO
        }
        fn step(&mut self, _: NtpDuration) -> Result<(), String> {
            panic!("monitor mode must never step the clock")
        }
        fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
            panic!("monitor mode must never slew the clock")
        }
        fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
            panic!("monitor mode must never set the frequency")
        }
        fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
            panic!("monitor mode must never touch the kernel's clock state")
        }
    }

    /// A simulated clock: intrinsic frequency error, the frequency
    /// correction, adjtime-style slews at 500 ppm (a new one replaces the
    /// old), steps. `error` is local minus true time, in seconds.
    struct SimClock {
        error: f64,
        intrinsic_ppm: f64,
        correction_ppm: f64,
        slew_left: f64,
        steps: usize,
        /// Apply slews at once instead of at 500 ppm.
        instant_slew: bool,
    }

    impl SimClock {
        fn new(error: f64, intrinsic_ppm: f64) -> Self {
            SimClock {
                error,
                intrinsic_ppm,
                correction_ppm: 0.0,
                slew_left: 0.0,
                steps: 0,
                instant_slew: false,
            }
        }

        fn advance(&mut self, dt: f64) {
            self.error += (self.intrinsic_ppm + self.correction_ppm) * 1e-6 * dt;
            let max = 500e-6 * dt;
            let done = self.slew_left.clamp(-max, max);
            self.error += done;
            self.slew_left -= done;
        }

        /// The offset a perfect server would measure (server − local).
        fn offset(&self) -> f64 {
            -self.error
        }
    }

    impl Clock for SimClock {
        fn now(&self) -> NtpTimestamp {
            NtpTimestamp::ZERO
        }
        fn step(&mut self, offset: NtpDuration) -> Result<(), String> {
            self.error += offset.as_seconds_f64();
            self.steps += 1;
            Ok(())
        }
        fn slew(&mut self, offset: NtpDuration) -> Result<(), String> {
            if self.instant_slew {
                self.error += offset.as_seconds_f64();
            } else {
                self.slew_left = offset.as_seconds_f64();
            }
            Ok(())
        }
        fn set_frequency_ppm(&mut self, ppm: Ppm) -> Result<(), String> {
            self.correction_ppm = ppm.0;
            Ok(())
        }
        fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
            Ok(())
        }
    }

    /// Deterministic Gaussian noise (xorshift64* + Box-Muller).
    struct Noise(u64);

    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn gauss(&mut self, sigma: f64) -> f64 {
            let (u, v) = (self.uniform(), self.uniform());
            sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        }
    }

    /// Runs `n` updates `interval` s apart on a simulated clock; measurement
    /// noise `sigma` s. Returns the true offsets after each update's
    /// interval (what a perfect observer would see) and the decisions.
    fn simulate(
        d: &mut Discipline,
        clock: &mut SimClock,
        n: usize,
        interval: u64,
        sigma: f64,
    ) -> (Vec<f64>, Vec<Decision>) {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let mut errs = Vec::with_capacity(n);
        let mut decisions = Vec::with_capacity(n);
        for k in 0..n {
            let now = secs(interval * (k as u64 + 1));
            clock.advance(interval as f64);
            errs.push(clock.offset());
            let measured = NtpDuration::from_seconds_f64(clock.offset() + noise.gauss(sigma));
            let jitter = NtpDuration::from_seconds_f64((sigma * 1.4).max(1e-6));
            let dec = d.update(measured, jitter, now);
            d.apply(&dec, clock).expect("sim clock never fails");
            decisions.push(dec);
        }
        (errs, decisions)
    }

    fn rms(v: &[f64]) -> f64 {
        (v.iter().map(|x| x * x).sum::<f64>() / v.len().max(1) as f64).sqrt()
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    #[test]
    fn single_132ms_spike_never_steps() {
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = FakeClock::default();
        for t in 0..5 {
            let dec = d.update(us(50), us(100), secs(64 * t));
            d.apply(&dec, &mut clock).expect("fake clock");
        }
        let dec = d.update(ms(132), us(100), secs(64 * 5));
        assert_eq!(
            dec,
            Decision::SpikeIgnored {
                offset: ms(132),
                since: secs(320)
            }
        );
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(d.state(), LoopState::Spike);
        for t in 6..30 {
            let dec = d.update(us(30), us(100), secs(64 * t));
            assert!(matches!(dec, Decision::Slew { .. }), "{dec:?}");
            d.apply(&dec, &mut clock).expect("fake clock");
        }
        assert!(
            clock.steps.is_empty(),
            "a single spike must never step the clock"
        );
        assert!(
            clock.slews.iter().all(|s| s.abs() < ms(1)),
            "the spike must not be slewed either: {:?}",
            clock.slews
        );
        assert_eq!(d.state(), LoopState::Sync);
    }

    #[test]
    fn persistent_200ms_steps_only_after_stepout() {
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = FakeClock::default();
        let dec = d.update(us(100), us(100), secs(0));
        d.apply(&dec, &mut clock).expect("fake clock");
        let start = 64;
        let mut stepped_at = None;
        for k in 0..30 {
            let now = start + 64 * k;
            let dec = d.update(ms(200), us(100), secs(now));
            d.apply(&dec, &mut clock).expect("fake clock");
            match dec {
                Decision::SpikeIgnored { since, .. } => {
                    assert_eq!(k, 0, "only the first outlier is a spike");
                    assert_eq!(since, secs(start));
                }
                Decision::WaitingForStepout { remaining, .. } => {
                    assert!(now - start < 900);
                    assert_eq!(remaining, secs(900 - (now - start)));
                }
                Decision::Step { offset } => {
                    assert_eq!(offset, ms(200));
                    stepped_at = Some(now);
                    break;
                }
                other => panic!("unexpected decision at {now} s: {other:?}"),
            }
        }
        let at = stepped_at.expect("a persistent offset must step after the stepout");
        assert_eq!(
            at - start,
            960,
            "first update at or after 900 s since the spike"
        );
        assert_eq!(clock.steps, vec![ms(200)], "exactly one step");
        assert_eq!(d.state(), LoopState::Freq);
    }

    #[test]
    fn first_update_steps_an_hour_under_first_step_max_and_only_then() {
        let hour = NtpDuration::from_secs(3600);
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = FakeClock::default();
        let dec = d.update(hour, us(100), secs(0));
        assert_eq!(dec, Decision::Step { offset: hour });
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(clock.steps, vec![hour]);
        // After the first update the panic threshold applies again.
        for k in 1..40 {
            let dec = d.update(hour, us(100), secs(64 * k));
            assert_eq!(dec, Decision::Panic { offset: hour });
        }
        // Over first-step-max: refused from the start.
        let mut d = Discipline::new(DisciplineConfig {
            first_step_max: NtpDuration::from_secs(1800),
            ..config(ClockMode::Step)
        });
        assert_eq!(
            d.update(hour, us(100), secs(0)),
            Decision::Panic { offset: hour }
        );
        // Slew mode never steps: the panic threshold applies.
        let mut d = Discipline::new(config(ClockMode::Slew));
        assert_eq!(
            d.update(hour, us(100), secs(0)),
            Decision::Panic { offset: hour }
        );
    }

    #[test]
    fn a_restored_frequency_is_set_at_the_first_update_and_skips_freq() {
        let mut d = Discipline::new(config(ClockMode::Step));
        assert!(d.restore_frequency(Ppm(-42.5)));
        let mut clock = FakeClock::default();
        let dec = d.update(us(50), us(100), secs(0));
        assert!(
            matches!(dec, Decision::Slew { frequency_ppm, .. } if frequency_ppm == Ppm(-42.5)),
            "{dec:?}"
        );
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(clock.freqs, vec![Ppm(-42.5)]);
        assert_eq!(
            d.state(),
            LoopState::Sync,
            "no second frequency measurement"
        );
        assert!(
            !d.restore_frequency(Ppm(1.0)),
            "only before the first update"
        );
        // Without one: FREQ, from zero.
        let mut d = Discipline::new(config(ClockMode::Step));
        let dec = d.update(us(50), us(100), secs(0));
        assert!(matches!(dec, Decision::Slew { frequency_ppm, .. } if frequency_ppm == Ppm::ZERO));
        assert_eq!(d.state(), LoopState::Freq);
        let mut d = Discipline::new(config(ClockMode::Step));
        assert!(!d.restore_frequency(Ppm(f64::NAN)));
        assert!(d.restore_frequency(Ppm(900.0)));
        assert_eq!(d.frequency(), MAX_FREQUENCY);
    }

    #[test]
    fn step_mode_steps_at_startup() {
        let mut d = Discipline::new(config(ClockMode::Step));
        assert_eq!(
            d.update(ms(500), us(100), secs(0)),
            Decision::Step { offset: ms(500) }
        );
    }

    #[test]
    fn failed_step_is_retried() {
        struct Refuses;
        impl Clock for Refuses {
            fn now(&self) -> NtpTimestamp {
                NtpTimestamp::ZERO
            }
            fn step(&mut self, _: NtpDuration) -> Result<(), String> {
                Err("EPERM".to_owned())
            }
            fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
                Ok(())
            }
            fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
                Ok(())
            }
            fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
                Ok(())
            }
        }
        let mut d = Discipline::new(config(ClockMode::Step));
        let dec = d.update(ms(500), us(100), secs(0));
        assert!(d.apply(&dec, &mut Refuses).is_err());
        assert_eq!(d.state(), LoopState::Nset);
        assert_eq!(
            d.update(ms(500), us(100), secs(64)),
            Decision::Step { offset: ms(500) }
        );
    }

    #[test]
    fn panic_offset_is_refused_and_clock_untouched() {
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = FakeClock::default();
        // Over first-step-max too (a day), so refused at start-up.
        let huge = NtpDuration::from_secs(2 * 86_400);
        let dec = d.update(huge, us(100), secs(0));
        assert_eq!(dec, Decision::Panic { offset: huge });
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(clock.calls(), 0, "a panic offset must not touch the clock");
        assert_eq!(d.state(), LoopState::Nset);
        // In SYNC too, and for negative offsets, even after the stepout.
        let dec = d.update(us(10), us(100), secs(64));
        d.apply(&dec, &mut clock).expect("fake clock");
        let calls = clock.calls();
        for k in 0..40 {
            let dec = d.update(-huge, us(100), secs(128 + 64 * k));
            assert_eq!(dec, Decision::Panic { offset: -huge });
            d.apply(&dec, &mut clock).expect("fake clock");
        }
        assert_eq!(clock.calls(), calls);
        // Zero turns the check off.
        let mut d = Discipline::new(DisciplineConfig {
            panic_threshold: NtpDuration::ZERO,
            ..config(ClockMode::Step)
        });
        assert_eq!(
            d.update(huge, us(100), secs(0)),
            Decision::Step { offset: huge }
        );
    }

    #[test]
    fn monitor_mode_never_touches_the_clock() {
        let mut d = Discipline::new(DisciplineConfig::default());
        let mut clock = UntouchableClock;
        for (k, off) in [
            us(10),
            ms(200),
            ms(200),
            NtpDuration::from_secs(5000),
            ms(-3),
        ]
        .into_iter()
        .cycle()
        .take(100)
        .enumerate()
        {
            let dec = d.update(off, us(100), secs(64 * k as u64));
            assert_eq!(dec, Decision::Monitor { offset: off });
            d.apply(&dec, &mut clock).expect("nothing to do");
        }
        // Even a decision from elsewhere is not carried out in monitor mode.
        d.apply(&Decision::Step { offset: ms(200) }, &mut clock)
            .expect("nothing to do");
        assert_eq!(d.state(), LoopState::Nset);
    }

    #[test]
    fn slew_mode_with_persistent_200ms_never_steps() {
        let mut d = Discipline::new(config(ClockMode::Slew));
        let mut clock = FakeClock::default();
        let dec = d.update(us(10), us(100), secs(0));
        d.apply(&dec, &mut clock).expect("fake clock");
        for k in 1..200 {
            let dec = d.update(ms(200), us(100), secs(64 * k));
            assert!(
                !matches!(dec, Decision::Step { .. }),
                "slew mode stepped: {dec:?}"
            );
            d.apply(&dec, &mut clock).expect("fake clock");
        }
        assert!(clock.steps.is_empty());
        // Acted on only after the stepout, then at most 500 ppm × 64 s = 32 ms per update.
        let slewed_big: Vec<_> = clock.slews.iter().filter(|s| **s > ms(1)).collect();
        assert!(
            !slewed_big.is_empty(),
            "after the stepout slew mode must slew"
        );
        assert!(slewed_big.iter().all(|s| **s <= ms(32)), "{slewed_big:?}");
        assert_eq!(d.state(), LoopState::Slewing);
        assert_eq!(
            d.frequency(),
            Ppm::ZERO,
            "a large slew must not wind up the frequency"
        );
    }

    #[test]
    fn slew_mode_removes_200ms_without_stepping() {
        let mut d = Discipline::new(config(ClockMode::Slew));
        let mut clock = SimClock::new(-0.2, 0.0);
        let (errs, decisions) = simulate(&mut d, &mut clock, 120, 64, 0.0);
        assert_eq!(clock.steps, 0);
        assert!(
            decisions
                .iter()
                .all(|d| !matches!(d, Decision::Step { .. }))
        );
        let last = errs.last().copied().unwrap_or(f64::MAX);
        assert!(
            last.abs() < 1e-4,
            "200 ms should be slewed away; left {last}"
        );
        // 200 ms at 500 ppm takes 400 s: 7 updates of 64 s.
        let first_small = errs
            .iter()
            .position(|e| e.abs() < 0.128)
            .unwrap_or(usize::MAX);
        assert!(
            first_small <= 7,
            "below the step threshold after {first_small} updates"
        );
    }

    #[test]
    fn slew_only_steps_at_most_at_startup() {
        let mut d = Discipline::new(DisciplineConfig {
            slew_only: true,
            ..config(ClockMode::Step)
        });
        assert_eq!(
            d.update(ms(300), us(100), secs(0)),
            Decision::Step { offset: ms(300) }
        );
        assert_eq!(d.step_threshold(), SLEW_ONLY_STEP_THRESHOLD);
        for k in 1..100 {
            let dec = d.update(ms(300), us(100), secs(64 * k));
            assert!(matches!(dec, Decision::Slew { .. }), "{dec:?}");
        }
        let big = NtpDuration::from_secs(700);
        assert!(matches!(
            d.update(big, us(100), secs(64 * 100)),
            Decision::SpikeIgnored { .. }
        ));
        for k in 101..200 {
            let dec = d.update(big, us(100), secs(64 * k));
            assert!(!matches!(dec, Decision::Step { .. }), "{dec:?}");
        }
    }

    /// Updates until the true offset stays below `limit` for good.
    fn settled_after(errs: &[f64], limit: f64) -> usize {
        errs.iter()
            .rposition(|e| e.abs() >= limit)
            .map_or(0, |i| i + 1)
    }

    #[test]
    fn plus_50_ppm_converges() {
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = SimClock::new(0.0, 50.0);
        let (errs, _) = simulate(&mut d, &mut clock, 200, 64, 0.0);
        let n = settled_after(&errs, 1e-3);
        let n100 = settled_after(&errs, 1e-4);
        let peak = max_abs(&errs);
        eprintln!(
            "+50 ppm, 64 s, no noise: peak {:.3} ms, < 1 ms after {n}, < 100 us after {n100} \
             updates, frequency {}",
            peak * 1e3,
            d.frequency()
        );
        assert!(
            n <= 25,
            "offset should stay below 1 ms after 25 updates, took {n}"
        );
        assert!(
            (d.frequency().0 + 50.0).abs() < 0.1,
            "frequency {}",
            d.frequency()
        );
        assert!(clock.steps == 0);
    }

    #[test]
    fn frequency_errors_up_to_100_ppm_converge_under_noise() {
        for ppm in [-100.0, -50.0, 10.0, 50.0, 100.0] {
            let mut d = Discipline::new(config(ClockMode::Step));
            let mut clock = SimClock::new(0.0, ppm);
            let (errs, decisions) = simulate(&mut d, &mut clock, 400, 64, 100e-6);
            assert!(decisions.iter().all(|d| matches!(d, Decision::Slew { .. })));
            let n = settled_after(&errs, 1e-3);
            let tail = errs.get(100..).unwrap_or_default();
            let (r, m) = (rms(tail), max_abs(tail));
            eprintln!(
                "{ppm:+} ppm, 100 us noise: peak {:.3} ms, < 1 ms after {n} updates, \
                 then RMS {:.1} us, max {:.1} us; tau {:?}, freq {}",
                max_abs(&errs) * 1e3,
                r * 1e6,
                m * 1e6,
                d.time_constant(),
                d.frequency()
            );
            assert!(n <= 30, "{ppm} ppm: below 1 ms only after {n} updates");
            assert!(r < 60e-6, "{ppm} ppm: RMS {r} after convergence");
            assert!(m < 200e-6, "{ppm} ppm: max {m} after convergence");
        }
    }

    #[test]
    fn updates_during_a_slew_do_not_cancel_it() {
        let mut d = Discipline::new(config(ClockMode::Step));
        let mut clock = FakeClock::default();
        // First update: slew 10 ms, done after 20 s at 500 ppm.
        let dec = d.update(ms(10), us(100), secs(100));
        assert!(matches!(dec, Decision::Slew { correction, .. } if correction == ms(10)));
        d.apply(&dec, &mut clock).expect("fake clock");
        // Other servers' updates at the same moment and 5 s later are held.
        let dec = d.update(ms(10), us(100), secs(100));
        assert!(
            matches!(dec, Decision::SlewInProgress { remaining, .. }
                if remaining.abs_diff(secs(20)) < Duration::from_micros(1)),
            "{dec:?}"
        );
        let dec = d.update(ms(8), us(100), secs(105));
        assert!(
            matches!(dec, Decision::SlewInProgress { remaining, .. }
                if remaining.abs_diff(secs(15)) < Duration::from_micros(1)),
            "{dec:?}"
        );
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(
            clock.slews,
            vec![ms(10)],
            "the slew in progress must not be replaced"
        );
        // Once it is done the loop runs again.
        assert!(matches!(
            d.update(us(50), us(100), secs(164)),
            Decision::Slew { .. }
        ));
    }

    #[test]
    fn a_step_cancels_the_slew_in_progress() {
        let mut d = Discipline::new(DisciplineConfig {
            stepout: secs(1),
            ..config(ClockMode::Step)
        });
        let mut clock = FakeClock::default();
        let dec = d.update(ms(100), us(100), secs(0));
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(clock.slews.len(), 1);
        let first = clock.slews.first().copied().unwrap_or_default();
        assert!(
            (first - ms(16)).abs() < us(1),
            "500 ppm x half of 64 s, got {first}"
        );
        let dec = d.update(ms(300), us(100), secs(1));
        assert!(matches!(dec, Decision::SpikeIgnored { .. }), "{dec:?}");
        let dec = d.update(ms(300), us(100), secs(3));
        assert_eq!(dec, Decision::Step { offset: ms(300) });
        d.apply(&dec, &mut clock).expect("fake clock");
        assert_eq!(
            clock.slews.get(1),
            Some(&NtpDuration::ZERO),
            "slew cancelled first"
        );
        assert_eq!(clock.steps, vec![ms(300)]);
    }

    #[test]
    fn converges_on_a_clock_that_slews_instantly() {
        for ppm in [-100.0, 50.0] {
            let mut d = Discipline::new(config(ClockMode::Step));
            let mut clock = SimClock::new(0.0, ppm);
            clock.instant_slew = true;
            let (errs, _) = simulate(&mut d, &mut clock, 400, 64, 100e-6);
            let n = settled_after(&errs, 1e-3);
            let tail = errs.get(100..).unwrap_or_default();
            eprintln!(
                "{ppm:+} ppm, instant slews: < 1 ms after {n} updates, then RMS {:.1} us, max {:.1} us",
                rms(tail) * 1e6,
                max_abs(tail) * 1e6
            );
            assert!(n <= 30, "{ppm} ppm: below 1 ms only after {n} updates");
            assert!(rms(tail) < 60e-6 && max_abs(tail) < 200e-6);
        }
    }
}
