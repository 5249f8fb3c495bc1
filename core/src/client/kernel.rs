//! The kernel's clock state as the client keeps it (what ntpd and chronyd
//! tell the kernel through `adjtimex`): synchronized or not (`STA_UNSYNC`),
//! the maximum and estimated error (`maxerror`, `esterror`) and a pending
//! leap second (`STA_INS`/`STA_DEL`).
//!
//! [`KernelTracker::update`] decides, from what the core knows at each
//! selection, which [`KernelState`] the kernel should hold; the core hands
//! it to [`crate::client::discipline::Clock::set_kernel_state`] (the shell's
//! clock writes it with `adjtimex`). Sans-I/O and deterministic: the UTC
//! date comes from the clock reading passed in. In monitor mode the core
//! never runs the tracker, so the kernel is never told anything.
//!
//! Rules:
//! - **Synchronized** once a slew or step decided by the discipline has
//!   been carried out; unsynchronized again once no server has been
//!   selected for longer than `unsync_after` (`[clock] unsync-after-s`).
//!   Before the first discipline nothing is written at all (the kernel
//!   starts unsynchronized).
//! - **maxerror** is the system peer's root distance (RFC 5905 §11.2.1),
//!   refreshed at each clock update; between updates the kernel grows it by
//!   500 ppm itself. When unsynchronized: [`MAX_ERROR`] (16 s, ntpd's
//!   `MAXDISPERSE`).
//! - **esterror** is |system offset| + system jitter at the last update:
//!   what the loop had yet to remove plus the measurement noise, the
//!   statistical error of the clock at that moment (ntpd puts its clock
//!   jitter there; we add the offset because the loop removes it only
//!   gradually).
//! - **Leap**: as ntpd does it, only on the last day of a UTC month (a
//!   leap second is always at the end of a month; the kernel acts at the
//!   end of the current UTC day), and only when more than half of the
//!   selected servers announce the same leap (2 of 3 arms it, 1 of 3 does
//!   not). Once armed it stays armed for the rest of that day while the
//!   clock stays synchronized, even if the servers fall silent; it is
//!   cleared on the first update of the next day (after the leap), when the
//!   majority withdraws it, or when the clock becomes unsynchronized.

use std::time::Duration;

use mcast_proto::{LeapIndicator, NtpDuration, NtpTimestamp};

/// maxerror when unsynchronized (16 s, ntpd's `MAXDISPERSE`).
pub const MAX_ERROR: NtpDuration = NtpDuration::from_secs(16);

/// Default `[clock] unsync-after-s`: an hour without a selected server.
pub const DEFAULT_UNSYNC_AFTER: Duration = Duration::from_secs(3600);

/// A leap second the kernel is told to insert or delete at the end of the
/// current UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LeapPending {
    /// None (`STA_INS` and `STA_DEL` clear).
    #[default]
    None,
    /// Insert one (`STA_INS`): 23:59:60.
    Insert,
    /// Delete one (`STA_DEL`): 23:59:58 is followed by 00:00:00.
    Delete,
}

/// What the kernel should hold (`adjtimex` `ADJ_STATUS`, `ADJ_MAXERROR`,
/// `ADJ_ESTERROR`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelState {
    /// `STA_UNSYNC` clear.
    pub synchronized: bool,
    /// Maximum error.
    pub maxerror: NtpDuration,
    /// Estimated error.
    pub esterror: NtpDuration,
    /// The leap second pending at the end of today (UTC).
    pub leap: LeapPending,
}

/// What the core knows at one selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelInput {
    /// Monotonic time now.
    pub mono: Duration,
    /// Our clock's reading now (for the UTC date).
    pub utc: NtpTimestamp,
    /// A slew or step decided by the discipline was just carried out.
    pub disciplined: bool,
    /// Something is selected: the system peer's root distance, the system
    /// offset and jitter; `None` when nothing is.
    pub selected: Option<Selected>,
}

/// The selection, as far as the kernel state needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selected {
    /// The system peer's root distance.
    pub root_distance: NtpDuration,
    /// The system offset.
    pub offset: NtpDuration,
    /// The system jitter.
    pub jitter: NtpDuration,
    /// Survivors (servers combined into the system offset).
    pub servers: usize,
    /// Of those, how many announce a leap second to insert.
    pub insert: usize,
    /// And how many one to delete.
    pub delete: usize,
}

impl Selected {
    /// The leap the majority of the selected servers announces.
    pub fn majority_leap(&self) -> LeapPending {
        if self.insert * 2 > self.servers {
            LeapPending::Insert
        } else if self.delete * 2 > self.servers {
            LeapPending::Delete
        } else {
            LeapPending::None
        }
    }
}

/// The leap pending announced by one server's leap indicator.
pub fn leap_of(li: LeapIndicator) -> LeapPending {
    match li {
        LeapIndicator::AddSecond => LeapPending::Insert,
        LeapIndicator::DeleteSecond => LeapPending::Delete,
        LeapIndicator::NoWarning | LeapIndicator::Unsynchronized => LeapPending::None,
    }
}

/// Decides the kernel's clock state (see the module documentation).
#[derive(Debug, Clone)]
pub struct KernelTracker {
    unsync_after: Duration,
    synchronized: bool,
    last_selected: Option<Duration>,
    /// The day (days since 1970-01-01, UTC) a leap was armed for.
    leap: Option<(LeapPending, i64)>,
    /// What was last handed out.
    last: Option<KernelState>,
}

impl KernelTracker {
    /// A tracker that has told the kernel nothing.
    pub fn new(unsync_after: Duration) -> Self {
        KernelTracker {
            unsync_after,
            synchronized: false,
            last_selected: None,
            leap: None,
            last: None,
        }
    }

    /// The state last handed out (`None`: the kernel was never told).
    pub fn last(&self) -> Option<&KernelState> {
        self.last.as_ref()
    }

    /// The state the kernel should be given now, if it should be given one:
    /// at each clock update (maxerror and esterror refreshed), and whenever
    /// synchronization or the pending leap changes.
    pub fn update(&mut self, input: &KernelInput) -> Option<KernelState> {
        if input.selected.is_some() {
            self.last_selected = Some(input.mono);
        }
        if input.disciplined && input.selected.is_some() {
            self.synchronized = true;
        }
        let lost_for = self
            .last_selected
            .map_or(Duration::MAX, |t| input.mono.saturating_sub(t));
        if self.synchronized && lost_for > self.unsync_after {
            self.synchronized = false;
        }
        let (day, last_of_month) = utc_day(input.utc);
        let leap = if !self.synchronized || !last_of_month {
            LeapPending::None
        } else if let Some(sel) = &input.selected {
            sel.majority_leap()
        } else {
            // Servers silent: keep what was armed for today.
            self.leap
                .filter(|(_, d)| *d == day)
                .map_or(LeapPending::None, |(l, _)| l)
        };
        self.leap = (leap != LeapPending::None).then_some((leap, day));
        if self.last.is_none() && !self.synchronized {
            return None;
        }
        let state = match (&input.selected, self.synchronized) {
            (Some(sel), true) if input.disciplined => KernelState {
                synchronized: true,
                maxerror: sel.root_distance.min(MAX_ERROR),
                esterror: (sel.offset.abs() + sel.jitter.abs()).min(MAX_ERROR),
                leap,
            },
            (_, true) => KernelState {
                leap,
                ..self.last.unwrap_or(KernelState {
                    synchronized: true,
                    maxerror: MAX_ERROR,
                    esterror: MAX_ERROR,
                    leap,
                })
            },
            (_, false) => KernelState {
                synchronized: false,
                maxerror: MAX_ERROR,
                esterror: MAX_ERROR,
                leap: LeapPending::None,
            },
        };
        let changed = self
            .last
            .is_none_or(|l| l.synchronized != state.synchronized || l.leap != state.leap);
        if !(changed || (input.disciplined && state.synchronized)) {
            return None;
        }
        self.last = Some(state);
        Some(state)
    }
}

/// A reading's UTC day (days since 1970-01-01) and whether it is the last
/// day of its month. Era-safe within 68 years of 2026.
pub fn utc_day(t: NtpTimestamp) -> (i64, bool) {
    const PIVOT_2026: i64 = 1_767_225_600;
    let (secs, _) = t.to_unix_near(PIVOT_2026);
    let day = secs.div_euclid(86_400);
    let (_, m, _) = civil_from_days(day);
    let (_, m_next, _) = civil_from_days(day + 1);
    (day, m != m_next)
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix: i64) -> NtpTimestamp {
        NtpTimestamp::from_unix(unix, 0)
    }

    #[test]
    fn dates() {
        // 2016-12-31 (a leap second day) and 2017-01-01.
        assert_eq!(civil_from_days(17_166), (2016, 12, 31));
        assert!(utc_day(at(1_483_228_799)).1, "2016-12-31 23:59:59");
        assert!(!utc_day(at(1_483_228_800)).1, "2017-01-01 00:00:00");
        // 2024-02-28 is not the last day of February, 2024-02-29 is.
        assert!(!utc_day(at(1_709_121_600)).1);
        assert!(utc_day(at(1_709_208_000)).1);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn majority() {
        let s = |servers, insert, delete| Selected {
            root_distance: NtpDuration::ZERO,
            offset: NtpDuration::ZERO,
            jitter: NtpDuration::ZERO,
            servers,
            insert,
            delete,
        };
        assert_eq!(s(3, 2, 0).majority_leap(), LeapPending::Insert);
        assert_eq!(s(3, 1, 0).majority_leap(), LeapPending::None);
        assert_eq!(s(2, 1, 0).majority_leap(), LeapPending::None);
        assert_eq!(s(1, 0, 1).majority_leap(), LeapPending::Delete);
    }
}
