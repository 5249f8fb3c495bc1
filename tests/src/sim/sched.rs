//! The one event queue of the simulator: events in order of virtual true
//! time, ties in the order they were scheduled, so a run is a pure function
//! of its configuration and seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

struct Entry<E> {
    at: Duration,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}

impl<E> Eq for Entry<E> {}

impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<E> Ord for Entry<E> {
    /// Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A discrete-event queue over virtual true time (time since the start of
/// the simulation).
pub struct Scheduler<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: Duration,
}

impl<E> Scheduler<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        Scheduler {
            heap: BinaryHeap::new(),
            seq: 0,
            now: Duration::ZERO,
        }
    }

    /// The time of the event being handled.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Schedules `event` at `at`; a time in the past means now.
    pub fn at(&mut self, at: Duration, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at: at.max(self.now),
            seq: self.seq,
            event,
        });
    }

    /// Schedules `event` `delay` from now.
    pub fn after(&mut self, delay: Duration, event: E) {
        self.at(self.now + delay, event);
    }

    /// The next event up to `end`, advancing the clock to it.
    pub fn next_until(&mut self, end: Duration) -> Option<E> {
        if self.heap.peek().is_none_or(|e| e.at > end) {
            return None;
        }
        let e = self.heap.pop()?;
        self.now = e.at;
        Some(e.event)
    }
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_time_order_and_ties_in_scheduling_order() {
        let mut s = Scheduler::new();
        s.at(Duration::from_secs(5), "c");
        s.at(Duration::from_secs(1), "a");
        s.at(Duration::from_secs(5), "d");
        s.at(Duration::from_secs(2), "b");
        s.at(Duration::from_secs(9), "late");
        let mut got = Vec::new();
        while let Some(e) = s.next_until(Duration::from_secs(8)) {
            got.push((s.now().as_secs(), e));
        }
        assert_eq!(got, vec![(1, "a"), (2, "b"), (5, "c"), (5, "d")]);
        // An event scheduled in the past runs now, never before.
        s.at(Duration::from_secs(1), "past");
        assert_eq!(s.next_until(Duration::from_secs(8)), Some("past"));
        assert_eq!(s.now(), Duration::from_secs(5));
    }
}
