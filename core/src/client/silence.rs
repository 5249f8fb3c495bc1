//! Group silence: has the multicast group stopped delivering?
//!
//! Sans-I/O rule (issue 17 part 2). The shell feeds it every verified
//! broadcast's arrival ([`GroupWatch::on_broadcast`]) and ticks it with the
//! slowest configured server's poll interval ([`GroupWatch::tick`]). After
//! `silent_after_intervals` of those intervals without a broadcast it yields
//! [`GroupEvent::GroupSilent`] exactly once, then [`GroupEvent::Rejoin`] on an
//! exponential backoff while silent, and [`GroupEvent::GroupBack`] once on the
//! first broadcast after that. Times are monotonic durations passed in.

use core::time::Duration;

/// What the shell should do or report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// No broadcast since `since` for longer than the configured intervals of
    /// `expected_interval`: log once, re-join the group, raise `check`.
    GroupSilent {
        /// The last delivery (or the join).
        since: Duration,
        /// The slowest configured server's poll interval.
        expected_interval: Duration,
    },
    /// Still silent: leave and join the group again (sends an unsolicited
    /// IGMP/MLD report).
    Rejoin {
        /// 1 for the first re-join of this silence.
        attempt: u32,
    },
    /// A broadcast arrived after silence: log once that delivery is back.
    GroupBack {
        /// From the last delivery before the silence to this broadcast.
        silent_for: Duration,
    },
}

/// Default number of intervals of the slowest server's poll.
pub const DEFAULT_SILENT_AFTER_INTERVALS: u32 = 3;

/// The longest wait between two re-joins while silent.
pub const MAX_REJOIN_BACKOFF: Duration = Duration::from_secs(1024);

/// Per-group silence detector.
#[derive(Clone, Debug)]
pub struct GroupWatch {
    intervals: u32,
    last: Duration,
    silent_since: Option<Duration>,
    next_rejoin: Duration,
    backoff: Duration,
    attempts: u32,
}

impl GroupWatch {
    /// `start`: when the group was joined (counts as the last delivery).
    pub fn new(start: Duration, silent_after_intervals: u32) -> Self {
        Self {
            intervals: silent_after_intervals.max(1),
            last: start,
            silent_since: None,
            next_rejoin: Duration::ZERO,
            backoff: Duration::ZERO,
            attempts: 0,
        }
    }

    /// Whether the group is currently reported silent.
    pub fn is_silent(&self) -> bool {
        self.silent_since.is_some()
    }

    /// Last delivery (or the join) time.
    pub fn last_broadcast(&self) -> Duration {
        self.last
    }

    /// A verified broadcast arrived at `now`.
    pub fn on_broadcast(&mut self, now: Duration) -> Option<GroupEvent> {
        self.last = self.last.max(now);
        let since = self.silent_since.take()?;
        self.attempts = 0;
        Some(GroupEvent::GroupBack {
            silent_for: now.saturating_sub(since),
        })
    }

    /// Periodic check; `expected_interval` is the slowest configured server's
    /// poll interval.
    pub fn tick(&mut self, now: Duration, expected_interval: Duration) -> Option<GroupEvent> {
        match self.silent_since {
            None => {
                let limit = expected_interval.saturating_mul(self.intervals);
                if now.saturating_sub(self.last) > limit {
                    self.silent_since = Some(self.last);
                    self.backoff = expected_interval.max(Duration::from_secs(1));
                    self.next_rejoin = now;
                    return Some(GroupEvent::GroupSilent {
                        since: self.last,
                        expected_interval,
                    });
                }
                None
            }
            Some(_) if now >= self.next_rejoin => {
                self.attempts += 1;
                self.next_rejoin = now + self.backoff;
                self.backoff = self.backoff.saturating_mul(2).min(MAX_REJOIN_BACKOFF);
                Some(GroupEvent::Rejoin {
                    attempt: self.attempts,
                })
            }
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: u64) -> Duration {
        Duration::from_secs(x)
    }

    #[test]
    fn silent_after_three_intervals_once_then_rejoins_with_backoff_then_back() {
        let poll = s(64);
        let mut w = GroupWatch::new(s(0), DEFAULT_SILENT_AFTER_INTERVALS);
        assert_eq!(w.on_broadcast(s(10)), None);
        assert_eq!(
            w.tick(s(10 + 192), poll),
            None,
            "exactly 3 intervals: not yet"
        );
        assert_eq!(
            w.tick(s(10 + 193), poll),
            Some(GroupEvent::GroupSilent {
                since: s(10),
                expected_interval: poll
            })
        );
        assert!(w.is_silent());
        assert_eq!(
            w.tick(s(203), poll),
            Some(GroupEvent::Rejoin { attempt: 1 })
        );
        assert_eq!(w.tick(s(203 + 63), poll), None);
        assert_eq!(
            w.tick(s(203 + 64), poll),
            Some(GroupEvent::Rejoin { attempt: 2 })
        );
        assert_eq!(w.tick(s(267 + 127), poll), None, "backoff doubled");
        assert_eq!(
            w.tick(s(267 + 128), poll),
            Some(GroupEvent::Rejoin { attempt: 3 })
        );
        assert_eq!(
            w.on_broadcast(s(400)),
            Some(GroupEvent::GroupBack { silent_for: s(390) })
        );
        assert!(!w.is_silent());
        assert_eq!(w.on_broadcast(s(401)), None, "back is said once");
        assert_eq!(w.tick(s(402), poll), None);
    }

    #[test]
    fn steady_delivery_never_silent() {
        let poll = s(8);
        let mut w = GroupWatch::new(s(0), 3);
        for t in (0..10_000).step_by(8) {
            assert_eq!(w.on_broadcast(s(t)), None);
            assert_eq!(w.tick(s(t + 4), poll), None);
        }
    }

    #[test]
    fn backoff_is_capped() {
        let mut w = GroupWatch::new(s(0), 1);
        let mut now = s(2);
        assert!(matches!(
            w.tick(now, s(1)),
            Some(GroupEvent::GroupSilent { .. })
        ));
        let mut last = now;
        for _ in 0..20 {
            loop {
                if w.tick(now, s(1)).is_some() {
                    break;
                }
                now += s(1);
            }
            assert!(now - last <= MAX_REJOIN_BACKOFF);
            last = now;
        }
    }
}
