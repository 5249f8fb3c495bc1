//! Reading the real clocks, and measuring how finely the system clock ticks.

use std::time::{Duration, Instant, SystemTime};

use nix::time::{ClockId, clock_gettime};

/// The machine's real clocks, read-only.
///
/// The protocol cores never read a clock themselves; the binaries pass them
/// readings from here (and the simulator passes simulated ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RealClock;

impl RealClock {
    /// `CLOCK_REALTIME`: wall-clock time, the clock NTP disciplines.
    pub fn now() -> SystemTime {
        SystemTime::now()
    }

    /// `CLOCK_MONOTONIC` as a duration since an arbitrary fixed point (boot on
    /// Linux). Never steps; slewed by the kernel's frequency correction.
    ///
    /// `clock_gettime` cannot fail for this clock on Linux; if it ever did,
    /// this returns [`Duration::ZERO`] rather than panic.
    pub fn monotonic_now() -> Duration {
        clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(Duration::ZERO, Duration::from)
    }
}

/// Upper bound on the time [`measure_precision`] spends looking.
const MEASURE_WINDOW: Duration = Duration::from_millis(100);

/// The system clock precision as an NTP `log2` seconds value (RFC 5905
/// section 7.3, "Precision"), measured the way ntpd does by default: read the
/// clock repeatedly, keep the smallest non-zero step between successive
/// readings, and return `floor(log2(step in seconds))`.
///
/// `samples` is how many non-zero steps to observe (ntpd uses a few dozen);
/// the measurement also stops after 100 ms. On a modern machine with a
/// nanosecond clock the result is around -24 (a few tens of nanoseconds per
/// reading); the value is clamped to `-30..=0`.
pub fn measure_precision(samples: usize) -> i8 {
    let started = Instant::now();
    let mut smallest: Option<Duration> = None;
    let mut seen = 0usize;
    let mut last = SystemTime::now();
    while seen < samples.max(1) && started.elapsed() < MEASURE_WINDOW {
        let now = SystemTime::now();
        if let Ok(step) = now.duration_since(last)
            && !step.is_zero()
        {
            smallest = Some(smallest.map_or(step, |s| s.min(step)));
            seen += 1;
        }
        last = now;
    }
    // No tick at all within the window: the clock is at best that coarse.
    let step = smallest.unwrap_or(MEASURE_WINDOW);
    log2_floor(step)
}

/// `floor(log2(d in seconds))`, clamped to `-30..=0`.
fn log2_floor(d: Duration) -> i8 {
    let secs = d.as_secs_f64();
    if secs <= 0.0 {
        return -30;
    }
    let exponent = secs.log2().floor().clamp(-30.0, 0.0);
    // In -30..=0 after the clamp, so the conversion is exact.
    exponent as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_floor_matches_ntpd_convention() {
        // 30 ns: 2^-25 = 29.8 ns <= 30 ns < 2^-24.
        assert_eq!(log2_floor(Duration::from_nanos(30)), -25);
        assert_eq!(log2_floor(Duration::from_micros(1)), -20);
        assert_eq!(log2_floor(Duration::from_millis(4)), -8);
        assert_eq!(log2_floor(Duration::from_nanos(1)), -30);
        assert_eq!(log2_floor(Duration::from_secs(5)), 0);
    }

    #[test]
    fn monotonic_advances() {
        let a = RealClock::monotonic_now();
        let b = RealClock::monotonic_now();
        assert!(a > Duration::ZERO, "CLOCK_MONOTONIC read as zero");
        assert!(b >= a, "CLOCK_MONOTONIC went backwards: {a:?} then {b:?}");
    }
}
