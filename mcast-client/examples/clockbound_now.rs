//! Reading the error bound `mcast-client` publishes with `[clock-bound]
//! enabled = true`, from AWS ClockBound's documented segment layout
//! (protocol v2) alone: no code of this project, only the standard library
//! and `clock_gettime`. Applications that already use ClockBound's client
//! library need none of this: it reads the same file.
//!
//! ```sh
//! cargo run -p mcast-client --example clockbound_now [-- /var/run/clockbound/shm0]
//! ```
//!
//! Prints `earliest latest status` (nanoseconds since the Unix epoch).

use std::os::unix::fs::FileExt;

/// Where ClockBound's protocol v2 segment lives unless configured.
const DEFAULT_PATH: &str = "/var/run/clockbound/shm0";

/// What a reader gets: true time is within `[earliest_ns, latest_ns]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    /// The system clock less the bound, ns since the Unix epoch.
    pub earliest_ns: i128,
    /// The system clock plus the bound.
    pub latest_ns: i128,
    /// 0 unknown, 1 synchronized, 2 free running (as published, aged as
    /// ClockBound's reader ages it).
    pub status: i32,
}

/// `N` bytes of `b` at `at`.
fn field<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], String> {
    b.get(at..at + N)
        .and_then(|f| f.try_into().ok())
        .ok_or_else(|| format!("no field at byte {at}"))
}

fn ne_u16(b: &[u8], at: usize) -> Result<u16, String> {
    field(b, at).map(u16::from_ne_bytes)
}

fn ne_u32(b: &[u8], at: usize) -> Result<u32, String> {
    field(b, at).map(u32::from_ne_bytes)
}

fn ne_i64(b: &[u8], at: usize) -> Result<i64, String> {
    field(b, at).map(i64::from_ne_bytes)
}

/// A timespec at `at` (seconds, nanoseconds) as nanoseconds.
fn timespec_ns(b: &[u8], at: usize) -> Result<i128, String> {
    Ok(i128::from(ne_i64(b, at)?) * 1_000_000_000 + i128::from(ne_i64(b, at + 8)?))
}

/// The interval from the segment at `path`, for the system clock reading
/// `real_ns` (ns since the epoch) and the monotonic clock `mono_ns`, read
/// in that order.
pub fn read_interval(path: &str, real_ns: i128, mono_ns: i128) -> Result<Interval, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut seg = [0u8; 80];
    for _ in 0..1000 {
        file.read_exact_at(&mut seg, 0)
            .map_err(|e| format!("{path}: {e}"))?;
        if [ne_u32(&seg, 0)?, ne_u32(&seg, 4)?] != [0x414D_5A4E, 0x4342_0200] {
            return Err("not a ClockBound segment".into());
        }
        if ne_u32(&seg, 8)? < 80 || ne_u16(&seg, 12)? != 2 {
            return Err("not a protocol v2 segment (or not written yet)".into());
        }
        let generation = ne_u16(&seg, 14)?;
        let mut again = [0u8; 2];
        file.read_exact_at(&mut again, 14)
            .map_err(|e| format!("{path}: {e}"))?;
        if generation == 0 || generation % 2 == 1 || u16::from_ne_bytes(again) != generation {
            // Not written yet, or being written: read again.
            std::thread::yield_now();
            continue;
        }
        let as_of = timespec_ns(&seg, 16)?;
        let void_after = timespec_ns(&seg, 32)?;
        let bound = i128::from(ne_i64(&seg, 48)?);
        let max_drift_ppb = i128::from(ne_u32(&seg, 64)?);
        let published = i32::from_ne_bytes(field(&seg, 68)?);
        let status = if published == 0 || mono_ns > void_after {
            0
        } else if published == 1 && mono_ns > as_of + 5_000_000_000 {
            2
        } else {
            published
        };
        // Rounded up: the grown bound never undershoots.
        let grown =
            bound + ((mono_ns - as_of).max(0) * max_drift_ppb + 999_999_999) / 1_000_000_000;
        return Ok(Interval {
            earliest_ns: real_ns - grown,
            latest_ns: real_ns + grown,
            status,
        });
    }
    Err("the segment changed on every read".into())
}

fn clock_ns(id: nix::time::ClockId) -> Result<i128, String> {
    let t = nix::time::clock_gettime(id).map_err(|e| format!("clock_gettime: {e}"))?;
    Ok(i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
}

#[allow(dead_code)]
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let interval = clock_ns(nix::time::ClockId::CLOCK_REALTIME).and_then(|real| {
        let mono = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC)?;
        read_interval(&path, real, mono)
    });
    match interval {
        Ok(i) => println!("{} {} {}", i.earliest_ns, i.latest_ns, i.status),
        Err(e) => {
            eprintln!("clockbound_now: {e}");
            std::process::exit(1);
        }
    }
}
