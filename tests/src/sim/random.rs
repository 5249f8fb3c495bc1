//! Seeded randomness. Every component (a link, a clock, a host) draws from
//! its own stream derived from the run's seed, so changing one part of a
//! scenario does not reshuffle the others, and a seed reproduces a run
//! exactly (Xoshiro256++ is portable across platforms and rand versions).

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A component's random stream.
#[derive(Debug, Clone)]
pub struct Stream(Xoshiro256PlusPlus);

/// Which kind of component a stream belongs to (keeps streams apart).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A host clock's wander.
    Clock = 1,
    /// A link between a server and a client.
    Link = 2,
    /// A server's own draws (broadcast jitter, start time).
    Server = 3,
    /// A client's own draws (calibration start).
    Client = 4,
    /// A client's request cookies (apart, so they shift no other draw).
    Cookie = 5,
}

impl Stream {
    /// Stream `index` of `kind` for the run seeded with `seed`.
    pub fn new(seed: u64, kind: Kind, index: usize) -> Self {
        let k = (kind as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let i = (index as u64)
            .wrapping_add(1)
            .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        Stream(Xoshiro256PlusPlus::seed_from_u64(
            seed ^ k ^ i.rotate_left(17),
        ))
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Standard normal (Box-Muller).
    pub fn gauss(&mut self) -> f64 {
        let u = 1.0 - self.unit();
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// Exponential with mean `mean`.
    pub fn exponential(&mut self, mean: Duration) -> Duration {
        let u = 1.0 - self.unit();
        mean.mul_f64(-u.ln())
    }

    /// Uniform in [0, `max`).
    pub fn upto(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.unit())
    }

    /// A random `u16` (the broadcaster's send jitter).
    pub fn u16(&mut self) -> u16 {
        self.0.random::<u16>()
    }

    /// A random `u64` (a client's request cookies).
    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// A random `u32` (the client's calibration start).
    pub fn u32(&mut self) -> u32 {
        self.0.random::<u32>()
    }
}
