//! The kernel's NTP state (`clock_adjtime(2)`): reading it, and — for the
//! client's real clock control only — changing the clock.

use std::io;
use std::time::Duration;

use crate::ffi;

/// The kernel clock's NTP state as reported by `adjtimex`/`ntp_adjtime` with
/// `modes = 0` (see `adjtimex(2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelTimeStatus {
    /// Something (ntpd, chrony, ...) disciplines the clock: `STA_UNSYNC` is
    /// clear and the clock state is not `TIME_ERROR`.
    pub synchronized: bool,
    /// Maximum error bound (`timex.maxerror`); the kernel grows it by 500 ppm
    /// while nobody refreshes it. Usable as root dispersion.
    pub maxerror: Duration,
    /// Estimated error (`timex.esterror`), as set by the disciplining daemon.
    pub esterror: Duration,
    /// The raw `timex.status` bits (`STA_PLL`, `STA_UNSYNC`, `STA_INS`, ...).
    pub status_bits: i32,
    /// The clock state returned by the call: `TIME_OK` (0), `TIME_INS` (1),
    /// `TIME_DEL` (2), `TIME_OOP` (3), `TIME_WAIT` (4) or `TIME_ERROR` (5).
    pub state: i32,
}

/// A leap second the kernel has been told about (`STA_INS`/`STA_DEL`), or
/// is carrying out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelLeap {
    /// None pending.
    #[default]
    None,
    /// A second is inserted at the end of the UTC day.
    Insert,
    /// A second is deleted at the end of the UTC day.
    Delete,
}

impl KernelTimeStatus {
    /// The leap second pending, from the status bits and the clock state:
    /// `STA_INS` or `TIME_INS`, and `TIME_OOP` (the leap second is under
    /// way) read as an insertion; `STA_DEL` or `TIME_DEL` as a deletion;
    /// `TIME_WAIT` (the leap is done, the bit not yet cleared) as none.
    pub fn leap(&self) -> KernelLeap {
        if self.state == libc::TIME_WAIT {
            KernelLeap::None
        } else if self.status_bits & libc::STA_INS != 0
            || self.state == libc::TIME_INS
            || self.state == libc::TIME_OOP
        {
            KernelLeap::Insert
        } else if self.status_bits & libc::STA_DEL != 0 || self.state == libc::TIME_DEL {
            KernelLeap::Delete
        } else {
            KernelLeap::None
        }
    }

    /// Whether a kernel PLL or FLL disciplines the clock (`STA_PLL` or
    /// `STA_FLL`): some other daemon (ntpd) uses the kernel discipline.
    pub fn kernel_discipline(&self) -> bool {
        self.status_bits & (libc::STA_PLL | libc::STA_FLL) != 0
    }

    fn from_timex(state: libc::c_int, tx: &libc::timex) -> Self {
        let micros = |v: libc::c_long| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Self {
            synchronized: tx.status & libc::STA_UNSYNC == 0 && state != libc::TIME_ERROR,
            maxerror: micros(tx.maxerror),
            esterror: micros(tx.esterror),
            status_bits: tx.status,
            state,
        }
    }
}

/// Read the kernel's NTP state. Read-only (`modes = 0`): needs no privilege
/// and changes nothing.
///
/// # Errors
/// The OS error of `clock_adjtime(2)` (not expected on Linux).
pub fn kernel_time_status() -> io::Result<KernelTimeStatus> {
    let (state, tx) = ffi::adjtime_read()?;
    Ok(KernelTimeStatus::from_timex(state, &tx))
}

/// A change to the system clock, for [`adjust_clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockAdjustment {
    /// Step the clock by `offset_ns` nanoseconds at once (positive = forward),
    /// `ADJ_SETOFFSET | ADJ_NANO`. Relative, so no time is lost between
    /// reading the clock and setting it.
    Step {
        /// Signed offset in nanoseconds.
        offset_ns: i64,
    },
    /// Slew the clock by `offset_ns` nanoseconds (rounded to microseconds)
    /// the way `adjtime(3)` does: `ADJ_OFFSET_SINGLESHOT`, the kernel runs
    /// the clock 500 ppm fast or slow until the offset is absorbed (2 ms per
    /// second). Replaces any slew still in progress. The kernel PLL
    /// (`ADJ_OFFSET` with `STA_PLL`) is deliberately not offered: the client
    /// disciplines in user space.
    Slew {
        /// Signed offset in nanoseconds.
        offset_ns: i64,
    },
    /// Set the frequency correction (`ADJ_FREQUENCY`) in the kernel's unit:
    /// parts per million scaled by 2^16; the kernel limits it to ±500 ppm.
    Frequency {
        /// Frequency offset, ppm × 65536.
        scaled_ppm: i64,
    },
    /// Tell the kernel the clock's state (`ADJ_STATUS | ADJ_MAXERROR |
    /// ADJ_ESTERROR`): `STA_UNSYNC` set unless `synchronized`, `STA_INS` /
    /// `STA_DEL` from `leap`; every other status bit is kept as read just
    /// before.
    KernelState {
        /// Clear `STA_UNSYNC`.
        synchronized: bool,
        /// `timex.maxerror`, microseconds.
        maxerror_us: i64,
        /// `timex.esterror`, microseconds.
        esterror_us: i64,
        /// `STA_INS` / `STA_DEL`.
        leap: KernelLeap,
    },
}

/// The status word `current` with `STA_UNSYNC`, `STA_INS` and `STA_DEL`
/// set as asked and every other bit kept.
fn status_word(current: i32, synchronized: bool, leap: KernelLeap) -> i32 {
    let mut s = current & !(libc::STA_UNSYNC | libc::STA_INS | libc::STA_DEL);
    if !synchronized {
        s |= libc::STA_UNSYNC;
    }
    match leap {
        KernelLeap::None => {}
        KernelLeap::Insert => s |= libc::STA_INS,
        KernelLeap::Delete => s |= libc::STA_DEL,
    }
    s
}

/// Change the system clock (`clock_adjtime(CLOCK_REALTIME, ...)`).
///
/// **This changes the clock of the whole machine** (every network namespace
/// shares `CLOCK_REALTIME`). It needs `CAP_SYS_TIME` and is meant only for
/// the client's real clock control outside monitor-only mode. No test calls
/// it, and nothing may call it from a test.
///
/// Returns the kernel state after the change.
///
/// # Errors
/// `EPERM` without `CAP_SYS_TIME`; `EINVAL` for values the kernel rejects.
pub fn adjust_clock(adjustment: ClockAdjustment) -> io::Result<KernelTimeStatus> {
    let mut tx = ffi::new_timex();
    match adjustment {
        ClockAdjustment::Step { offset_ns } => {
            // The kernel wants tv_usec (here nanoseconds) in 0..1e9, with the
            // sign carried by tv_sec.
            tx.modes = libc::ADJ_SETOFFSET | libc::ADJ_NANO;
            tx.time.tv_sec = offset_ns.div_euclid(1_000_000_000);
            tx.time.tv_usec = offset_ns.rem_euclid(1_000_000_000);
        }
        ClockAdjustment::Slew { offset_ns } => {
            tx.modes = libc::ADJ_OFFSET_SINGLESHOT;
            tx.offset = round_div(offset_ns, 1_000);
        }
        ClockAdjustment::Frequency { scaled_ppm } => {
            tx.modes = libc::ADJ_FREQUENCY;
            tx.freq = scaled_ppm;
        }
        ClockAdjustment::KernelState {
            synchronized,
            maxerror_us,
            esterror_us,
            leap,
        } => {
            let (_, current) = ffi::adjtime_read()?;
            tx.modes = libc::ADJ_STATUS | libc::ADJ_MAXERROR | libc::ADJ_ESTERROR;
            tx.status = status_word(current.status, synchronized, leap);
            tx.maxerror = maxerror_us;
            tx.esterror = esterror_us;
        }
    }
    let state = ffi::adjtime_write(&mut tx)?;
    Ok(KernelTimeStatus::from_timex(state, &tx))
}

/// `n / d` rounded to nearest, ties away from zero (`d > 0`).
fn round_div(n: i64, d: i64) -> i64 {
    let q = n / d;
    let r = n % d;
    if r.abs() * 2 >= d { q + r.signum() } else { q }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_microseconds() {
        assert_eq!(round_div(1_499, 1_000), 1);
        assert_eq!(round_div(1_500, 1_000), 2);
        assert_eq!(round_div(-1_500, 1_000), -2);
        assert_eq!(round_div(-1_499, 1_000), -1);
        assert_eq!(round_div(0, 1_000), 0);
    }

    #[test]
    fn status_from_timex() {
        let mut tx = ffi::new_timex();
        tx.status = libc::STA_UNSYNC;
        tx.maxerror = 16_000_000;
        tx.esterror = 1_500;
        let s = KernelTimeStatus::from_timex(libc::TIME_OK, &tx);
        assert!(!s.synchronized, "STA_UNSYNC must read as unsynchronized");
        assert_eq!(s.maxerror, Duration::from_secs(16));
        assert_eq!(s.esterror, Duration::from_micros(1_500));

        tx.status = libc::STA_PLL;
        assert!(KernelTimeStatus::from_timex(libc::TIME_OK, &tx).synchronized);
        assert!(!KernelTimeStatus::from_timex(libc::TIME_ERROR, &tx).synchronized);
    }

    /// A fake kernel reading (never this host's): leap bits and states.
    #[test]
    fn leap_from_a_kernel_reading() {
        let mut tx = ffi::new_timex();
        let read = |state, status: i32, tx: &mut libc::timex| {
            tx.status = status;
            KernelTimeStatus::from_timex(state, tx).leap()
        };
        assert_eq!(read(libc::TIME_OK, 0, &mut tx), KernelLeap::None);
        assert_eq!(
            read(libc::TIME_OK, libc::STA_INS, &mut tx),
            KernelLeap::Insert
        );
        assert_eq!(
            read(libc::TIME_INS, libc::STA_INS, &mut tx),
            KernelLeap::Insert
        );
        assert_eq!(
            read(libc::TIME_OOP, libc::STA_INS, &mut tx),
            KernelLeap::Insert,
            "the leap second itself"
        );
        assert_eq!(
            read(libc::TIME_WAIT, libc::STA_INS, &mut tx),
            KernelLeap::None,
            "after the leap"
        );
        assert_eq!(
            read(libc::TIME_DEL, libc::STA_DEL, &mut tx),
            KernelLeap::Delete
        );
        assert_eq!(
            read(libc::TIME_OK, libc::STA_DEL, &mut tx),
            KernelLeap::Delete
        );
        tx.status = libc::STA_FLL;
        assert!(KernelTimeStatus::from_timex(libc::TIME_OK, &tx).kernel_discipline());
        tx.status = libc::STA_UNSYNC;
        assert!(!KernelTimeStatus::from_timex(libc::TIME_OK, &tx).kernel_discipline());
    }

    #[test]
    fn status_word_keeps_other_bits() {
        let pll = libc::STA_PLL | libc::STA_NANO;
        assert_eq!(
            status_word(pll | libc::STA_UNSYNC, true, KernelLeap::Insert),
            pll | libc::STA_INS
        );
        assert_eq!(
            status_word(pll | libc::STA_INS, false, KernelLeap::None),
            pll | libc::STA_UNSYNC
        );
        assert_eq!(
            status_word(libc::STA_INS, true, KernelLeap::Delete),
            libc::STA_DEL
        );
    }
}
