//! Error bound published to applications (ClockBound-style).
//!
//! Sans-I/O: [`compute`] turns what the engine knows at a clock update into an
//! [`ErrorBound`]; [`ErrorBound::at`] grows it at the maximum drift rate for a
//! later instant, and reports it void after `void_after`.
//!
//! The bound is
//! `|offset| + root_dispersion + root_delay / 2 + calibration_uncertainty`,
//! where `offset` is the residual offset (in monitor mode the full measured
//! offset, because nothing corrects it). Between updates the bound grows by
//! `elapsed * max_drift_ppb`, where `max_drift_ppb` is the configured worst
//! drift (default 15 ppm) plus the frequency error estimate.
//!
//! The shared-memory writer and the reader live in the client daemon; this
//! module only computes values (no layout, no I/O).

/// Default worst-case oscillator drift, parts per billion (15 ppm).
pub const DEFAULT_MAX_DRIFT_PPB: u32 = 15_000;

/// Clock status as published (mirrors ClockBound's Unknown / Synchronized / FreeRunning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundStatus {
    /// Nothing known yet, or the daemon stopped.
    Unknown,
    /// Updated from a selected server recently.
    Synchronized,
    /// Broadcasts stopped; bound grows at the max drift rate.
    FreeRunning,
}

/// Input at one clock update, all durations in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundInput {
    /// Monotonic time of the update, ns.
    pub mono_ns: i128,
    /// Realtime (system clock) at the update, ns since the Unix epoch.
    pub real_ns: i128,
    /// Offset not corrected by the time applications read the clock, ns
    /// (residual in discipline mode; full measured offset in monitor mode).
    pub offset_ns: f64,
    /// Root delay of the system peer, ns.
    pub root_delay_ns: f64,
    /// Root dispersion of the system peer, ns.
    pub root_dispersion_ns: f64,
    /// Uncertainty of the one-way delay calibration, ns.
    pub calibration_uncertainty_ns: f64,
    /// Frequency error estimate, ppb (its magnitude is added to the drift).
    pub frequency_error_ppb: f64,
    /// Configured worst oscillator drift, ppb.
    pub max_drift_ppb: u32,
    /// How long the bound stays valid without a new update, ns.
    pub validity_ns: i128,
}

/// The published bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorBound {
    /// Monotonic time the bound was computed, ns.
    pub as_of_mono: i128,
    /// Realtime the bound was computed, ns since the Unix epoch.
    pub as_of_real: i128,
    /// Bound at `as_of`, ns.
    pub bound: u64,
    /// Growth rate of the bound, ppb.
    pub max_drift_ppb: u32,
    /// Monotonic time after which the bound must not be used, ns.
    pub void_after: i128,
    /// Status at `as_of`.
    pub status: BoundStatus,
}

/// Bound computed at a clock update; `None` when an input is not finite.
pub fn compute(input: &BoundInput, status: BoundStatus) -> Option<ErrorBound> {
    let parts = [
        input.offset_ns.abs(),
        input.root_dispersion_ns.abs(),
        input.root_delay_ns.abs() / 2.0,
        input.calibration_uncertainty_ns.abs(),
    ];
    if parts.iter().any(|p| !p.is_finite()) || !input.frequency_error_ppb.is_finite() {
        return None;
    }
    let total: f64 = parts.iter().sum::<f64>().ceil();
    let bound = if total >= u64::MAX as f64 {
        u64::MAX
    } else {
        total as u64
    };
    let drift = f64::from(input.max_drift_ppb) + input.frequency_error_ppb.abs().ceil();
    let max_drift_ppb = if drift >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        drift as u32
    };
    Some(ErrorBound {
        as_of_mono: input.mono_ns,
        as_of_real: input.real_ns,
        bound,
        max_drift_ppb,
        void_after: input.mono_ns.saturating_add(input.validity_ns.max(0)),
        status,
    })
}

impl ErrorBound {
    /// Bound at monotonic time `mono_ns`: `None` when void (after
    /// `void_after`, before `as_of`, or status unknown).
    pub fn at(&self, mono_ns: i128) -> Option<u64> {
        if self.status == BoundStatus::Unknown
            || mono_ns < self.as_of_mono
            || mono_ns > self.void_after
        {
            return None;
        }
        let elapsed = (mono_ns - self.as_of_mono) as u128;
        // Round up so the grown bound never undershoots.
        let growth = (elapsed * u128::from(self.max_drift_ppb)).div_ceil(1_000_000_000);
        Some(
            self.bound
                .saturating_add(u64::try_from(growth).unwrap_or(u64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> BoundInput {
        BoundInput {
            mono_ns: 1_000,
            real_ns: 1_700_000_000_000_000_000,
            offset_ns: -20_000.0,
            root_delay_ns: 100_000.0,
            root_dispersion_ns: 5_000.0,
            calibration_uncertainty_ns: 3_000.0,
            frequency_error_ppb: 500.0,
            max_drift_ppb: DEFAULT_MAX_DRIFT_PPB,
            validity_ns: 60_000_000_000,
        }
    }

    #[test]
    fn bound_sums_terms() {
        let b = compute(&input(), BoundStatus::Synchronized).unwrap();
        assert_eq!(b.bound, 20_000 + 5_000 + 50_000 + 3_000);
        assert_eq!(b.max_drift_ppb, 15_500);
        assert_eq!(b.void_after, 1_000 + 60_000_000_000);
    }

    #[test]
    fn bound_grows_at_drift_and_voids() {
        let b = compute(&input(), BoundStatus::FreeRunning).unwrap();
        assert_eq!(b.at(1_000), Some(78_000));
        // 1 s later: + 15_500 ns.
        assert_eq!(b.at(1_000 + 1_000_000_000), Some(78_000 + 15_500));
        assert_eq!(b.at(b.void_after + 1), None);
        assert_eq!(b.at(0), None);
    }

    #[test]
    fn unknown_and_nonfinite() {
        let b = compute(&input(), BoundStatus::Unknown).unwrap();
        assert_eq!(b.at(1_000), None);
        let mut i = input();
        i.offset_ns = f64::NAN;
        assert_eq!(compute(&i, BoundStatus::Synchronized), None);
    }
}
