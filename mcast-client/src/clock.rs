//! The clocks the client core is given: the real system clock
//! (`clock_adjtime`, slew and step modes) and monitor mode's, which refuses
//! every change.

use mcast_core::client::discipline::{Clock, KernelState, LeapPending, Ppm};
use mcast_proto::{NtpDuration, NtpTimestamp};
use mcast_sys::{ClockAdjustment, KernelLeap};

use crate::daemon::now_ntp;

/// The real system clock (`clock_adjtime`, needs `CAP_SYS_TIME`). Only
/// used in slew and step modes; tests never run it on this machine.
pub(crate) struct SystemClock;

/// Monitor mode's clock: reads the time, refuses every change.
pub(crate) struct MonitorOnly;

impl Clock for MonitorOnly {
    fn now(&self) -> NtpTimestamp {
        now_ntp()
    }

    fn step(&mut self, _: NtpDuration) -> Result<(), String> {
        Err("monitor mode: the clock is never stepped".into())
    }

    fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
        Err("monitor mode: the clock is never slewed".into())
    }

    fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
        Err("monitor mode: the frequency is never set".into())
    }

    fn set_kernel_state(&mut self, _: KernelState) -> Result<(), String> {
        Err("monitor mode: the kernel's clock state is never set".into())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> NtpTimestamp {
        now_ntp()
    }

    fn step(&mut self, offset: NtpDuration) -> Result<(), String> {
        mcast_sys::adjust_clock(ClockAdjustment::Step {
            offset_ns: offset.as_nanos(),
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn slew(&mut self, offset: NtpDuration) -> Result<(), String> {
        mcast_sys::adjust_clock(ClockAdjustment::Slew {
            offset_ns: offset.as_nanos(),
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    fn set_frequency_ppm(&mut self, ppm: Ppm) -> Result<(), String> {
        // The kernel's frequency is ppm scaled by 2^16; our correction is the
        // negative of the measured error, as the discipline computes it.
        let scaled_ppm = (ppm.0 * 65536.0).round() as i64;
        mcast_sys::adjust_clock(ClockAdjustment::Frequency { scaled_ppm })
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn set_kernel_state(&mut self, s: KernelState) -> Result<(), String> {
        let micros = |d: NtpDuration| (d.abs().as_nanos() / 1_000).max(0);
        mcast_sys::adjust_clock(ClockAdjustment::KernelState {
            synchronized: s.synchronized,
            maxerror_us: micros(s.maxerror),
            esterror_us: micros(s.esterror),
            leap: match s.leap {
                LeapPending::None => KernelLeap::None,
                LeapPending::Insert => KernelLeap::Insert,
                LeapPending::Delete => KernelLeap::Delete,
            },
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// The log line of a kernel clock state the core has handed to the clock.
pub(crate) fn report_kernel_state(s: &KernelState) {
    tracing::debug!(
        synchronized = s.synchronized,
        maxerror = %s.maxerror,
        esterror = %s.esterror,
        leap = ?s.leap,
        "kernel clock state set"
    );
}
