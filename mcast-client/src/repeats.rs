//! A rate limit on repeated log lines: the same line (an attacker can make
//! the client say the same thing as often as it sends packets) is written
//! at most once a minute; the next one says how many were held back.
//! Time comes in as an argument, so tests need no clock.

use std::collections::HashMap;
use std::time::Duration;

/// How long the same line is held back after it was written.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Distinct lines remembered; beyond this the oldest is forgotten.
const MAX_LINES: usize = 256;

/// The longest line written (longer ones are cut, and say so).
pub const MAX_LEN: usize = 1024;

/// Lines recently written, with when and how many were held back since.
#[derive(Debug, Default)]
pub struct Repeats {
    lines: HashMap<String, (Duration, u64)>,
}

impl Repeats {
    /// An empty limiter.
    pub fn new() -> Self {
        Repeats::default()
    }

    /// The text to write for `line` at `now`, or `None` to hold it back.
    pub fn admit(&mut self, line: &str, now: Duration) -> Option<String> {
        let line = cut(line);
        match self.lines.get_mut(&line) {
            Some((at, held)) if now.saturating_sub(*at) < WINDOW => {
                *held += 1;
                None
            }
            Some((at, held)) => {
                let text = if *held > 0 {
                    format!(
                        "{line} (and {held} more times in {} s)",
                        now.saturating_sub(*at).as_secs()
                    )
                } else {
                    line.clone()
                };
                *at = now;
                *held = 0;
                Some(text)
            }
            None => {
                if self.lines.len() >= MAX_LINES
                    && let Some(oldest) = self
                        .lines
                        .iter()
                        .min_by_key(|(_, (at, _))| *at)
                        .map(|(l, _)| l.clone())
                {
                    self.lines.remove(&oldest);
                }
                self.lines.insert(line.clone(), (now, 0));
                Some(line)
            }
        }
    }
}

fn cut(line: &str) -> String {
    if line.len() <= MAX_LEN {
        return line.to_string();
    }
    let mut end = MAX_LEN;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... (cut)", line.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_same_line_is_written_once_a_minute_with_the_count_held_back() {
        let mut r = Repeats::new();
        assert_eq!(r.admit("a", s(0)).as_deref(), Some("a"));
        for t in 1..=59 {
            assert_eq!(r.admit("a", s(t)), None, "at {t} s");
        }
        assert_eq!(
            r.admit("b", s(30)).as_deref(),
            Some("b"),
            "another line is not held"
        );
        assert_eq!(
            r.admit("a", s(61)).as_deref(),
            Some("a (and 59 more times in 61 s)")
        );
        assert_eq!(r.admit("a", s(200)).as_deref(), Some("a"));
    }

    #[test]
    fn lines_are_bounded_in_length_and_in_number() {
        let mut r = Repeats::new();
        let long = "é".repeat(MAX_LEN);
        let got = r.admit(&long, s(0)).expect("written");
        assert!(
            got.len() <= MAX_LEN + 16 && got.ends_with("(cut)"),
            "{}",
            got.len()
        );
        for i in 0..10 * MAX_LINES {
            assert!(r.admit(&format!("line {i}"), s(1)).is_some());
        }
        assert!(r.lines.len() <= MAX_LINES);
    }
}
