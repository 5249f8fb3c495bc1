//! The network between a server and a client: per-packet delay (a base
//! plus random queueing jitter), asymmetry between the two directions,
//! loss, duplication and reordering.

use std::time::Duration;

use super::random::Stream;

/// Random extra delay of each packet on top of the base delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Every packet takes exactly the base delay.
    None,
    /// Exponential with this mean (queueing: never negative, long tail).
    Exponential(Duration),
    /// Normal with this standard deviation (cut at zero total delay).
    Normal(Duration),
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Server to client: broadcasts and calibration replies.
    ToClient,
    /// Client to server: calibration requests.
    ToServer,
}

/// How one server-client path behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkModel {
    /// One-way delay from server to client before jitter.
    pub delay: Duration,
    /// Extra delay of the client-to-server direction (asymmetry): a
    /// calibration exchange assumes both directions equal and is off by
    /// half of it.
    pub asymmetry: Duration,
    /// Random extra delay per packet.
    pub jitter: Jitter,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet arrives twice (the copy with its own delay).
    pub duplicate: f64,
    /// Probability a packet is held back by up to `reorder_by`, so packets
    /// sent after it can overtake it.
    pub reorder: f64,
    /// How long a reordered packet is held back at most.
    pub reorder_by: Duration,
}

impl LinkModel {
    /// A quiet LAN: 150 us each way, 20 us exponential jitter, nothing lost.
    pub fn lan() -> Self {
        LinkModel {
            delay: Duration::from_micros(150),
            asymmetry: Duration::ZERO,
            jitter: Jitter::Exponential(Duration::from_micros(20)),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_by: Duration::from_millis(5),
        }
    }

    /// The mean one-way delay in `dir` (what a perfect calibration of a
    /// symmetric path would find, give or take the jitter's skew).
    pub fn mean_delay(&self, dir: Direction) -> Duration {
        let base = match dir {
            Direction::ToClient => self.delay,
            Direction::ToServer => self.delay + self.asymmetry,
        };
        match self.jitter {
            Jitter::Exponential(m) => base + m,
            Jitter::None | Jitter::Normal(_) => base,
        }
    }
}

/// One path with its own random stream.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its behaviour.
    pub model: LinkModel,
    rng: Stream,
}

impl Link {
    /// A path behaving as `model`.
    pub fn new(model: LinkModel, rng: Stream) -> Self {
        Link { model, rng }
    }

    fn one_delay(&mut self, dir: Direction) -> Duration {
        let m = &self.model;
        let base = match dir {
            Direction::ToClient => m.delay,
            Direction::ToServer => m.delay + m.asymmetry,
        };
        let mut d = match m.jitter {
            Jitter::None => base,
            Jitter::Exponential(mean) => base + self.rng.exponential(mean),
            Jitter::Normal(sigma) => {
                let x = base.as_secs_f64() + sigma.as_secs_f64() * self.rng.gauss();
                Duration::from_secs_f64(x.max(0.0))
            }
        };
        if self.rng.chance(m.reorder) {
            d += self.rng.upto(m.reorder_by);
        }
        d
    }

    /// The delays after which copies of one packet sent now arrive: none
    /// (lost), one, or two (duplicated).
    pub fn transit(&mut self, dir: Direction) -> impl Iterator<Item = Duration> + use<> {
        let first = (!self.rng.chance(self.model.loss)).then(|| self.one_delay(dir));
        let copy =
            (first.is_some() && self.rng.chance(self.model.duplicate)).then(|| self.one_delay(dir));
        [first, copy].into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::random::Kind;

    #[test]
    fn loss_duplication_and_delays_match_the_model() {
        let model = LinkModel {
            delay: Duration::from_micros(200),
            asymmetry: Duration::from_micros(100),
            jitter: Jitter::Exponential(Duration::from_micros(50)),
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.0,
            reorder_by: Duration::ZERO,
        };
        let mut link = Link::new(model, Stream::new(3, Kind::Link, 0));
        let n = 100_000;
        let (mut arrived, mut copies, mut sum) = (0u32, 0u32, 0.0);
        for _ in 0..n {
            let d: Vec<Duration> = link.transit(Direction::ToServer).collect();
            arrived += u32::from(!d.is_empty());
            copies += u32::from(d.len() == 2);
            if let Some(first) = d.first() {
                assert!(*first >= Duration::from_micros(300));
                sum += first.as_secs_f64();
            }
        }
        let lost = 1.0 - f64::from(arrived) / f64::from(n);
        let dup = f64::from(copies) / f64::from(arrived);
        let mean_us = sum / f64::from(arrived) * 1e6;
        assert!((lost - 0.3).abs() < 0.01, "lost {lost}");
        assert!((dup - 0.1).abs() < 0.01, "duplicated {dup}");
        assert!((mean_us - 350.0).abs() < 2.0, "mean delay {mean_us} us");
        assert_eq!(
            model.mean_delay(Direction::ToServer),
            Duration::from_micros(350)
        );
    }
}
