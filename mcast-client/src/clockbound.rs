//! The error bound for applications, in AWS ClockBound's shared-memory
//! segment (protocol version 2), so ClockBound's client libraries (Rust, C,
//! and the others that read its segment) work unchanged.
//!
//! The segment is 80 bytes in the CPU's own byte order:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: `0x414D5A4E`, `0x43420200` (two u32) |
//! | 8 | 4 | segment size (80) |
//! | 12 | 2 | version (2) |
//! | 14 | 2 | generation: odd while the writer updates, even after; never 0 once written |
//! | 16 | 16 | as-of: `CLOCK_MONOTONIC` timespec (i64 s, i64 ns) |
//! | 32 | 16 | void-after: `CLOCK_MONOTONIC` timespec |
//! | 48 | 8 | bound on the error of `CLOCK_REALTIME` at as-of, ns (i64) |
//! | 56 | 8 | disruption marker (u64; 0, no VMClock here) |
//! | 64 | 4 | max drift, ppb (u32): the rate the bound grows at after as-of |
//! | 68 | 4 | clock status (i32): 0 unknown, 1 synchronized, 2 free running |
//! | 72 | 1 | clock disruption support (u8; 0) |
//! | 73 | 7 | padding |
//!
//! A reader takes the generation, copies the rest, and takes the
//! generation again: the copy is good when both are the same even number.
//! Its bound at monotonic time `t` is `bound + max_drift × (t − as_of)`,
//! and `[now − bound, now + bound]` holds true time.
//!
//! The writer updates the file with positioned writes rather than a
//! mapping (no `unsafe` outside the system-call crate): readers map the
//! same page-cache page, so each write is visible to them once it returns,
//! and a fence between the three writes keeps them in order.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{Ordering, fence};
use std::time::{Duration, SystemTime};

use mcast_core::client::bound::{BoundStatus, ErrorBound, drift_over};

/// Size of the segment, bytes.
pub const SEGMENT_SIZE: usize = 80;

/// The magic number, as two native-endian u32 (what ClockBound's readers
/// compare).
const MAGIC: [u32; 2] = [0x414D_5A4E, 0x4342_0200];

/// The layout version written.
pub const VERSION: u16 = 2;

const GENERATION_AT: u64 = 14;
const BODY_AT: usize = 16;

/// What one segment says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    /// `CLOCK_MONOTONIC` time the bound is for.
    pub as_of: Duration,
    /// `CLOCK_MONOTONIC` time after which it must not be used.
    pub void_after: Duration,
    /// The bound at `as_of`, ns.
    pub bound_ns: i64,
    /// Growth rate after `as_of`, ppb.
    pub max_drift_ppb: u32,
    /// The clock status.
    pub status: BoundStatus,
}

impl Contents {
    /// The segment's contents for the core's `bound` (`None`: nothing
    /// known, status unknown), with the core's monotonic times moved onto
    /// `CLOCK_MONOTONIC` by `mono_base` (its reading when the core's clock
    /// was zero) at `mono` (the core's time now).
    pub fn of(
        bound: Option<&ErrorBound>,
        mono_base: Duration,
        mono: Duration,
        validity: Duration,
    ) -> Self {
        match bound {
            Some(b) => Contents {
                as_of: mono_base + b.as_of,
                void_after: mono_base + b.void_after,
                bound_ns: i64::try_from(b.bound_ns).unwrap_or(i64::MAX),
                max_drift_ppb: b.max_drift_ppb,
                status: b.status,
            },
            None => Contents {
                as_of: mono_base + mono,
                void_after: mono_base + mono + validity,
                bound_ns: 0,
                max_drift_ppb: 0,
                status: BoundStatus::Unknown,
            },
        }
    }

    /// The bound at `CLOCK_MONOTONIC` time `mono`, ns, as ClockBound's
    /// reader computes it; `None` when unknown or void.
    pub fn bound_at(&self, mono: Duration) -> Option<u64> {
        if self.status == BoundStatus::Unknown || mono > self.void_after {
            return None;
        }
        let growth = drift_over(
            mono.saturating_sub(self.as_of),
            u64::from(self.max_drift_ppb),
        );
        let bound = u64::try_from(self.bound_ns.max(0)).unwrap_or(0);
        Some(bound.saturating_add(growth))
    }
}

/// What a reader makes of a segment at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The system clock read.
    pub now: SystemTime,
    /// The bound at that instant, ns (`None`: unknown or void).
    pub bound_ns: Option<u64>,
    /// The published status, as a reader should take it: free running
    /// once the segment is over 5 s old (ClockBound's grace for a
    /// restarting daemon), unknown once void.
    pub status: BoundStatus,
    /// How long ago the bound was written.
    pub age: Duration,
    /// Its growth rate, ppb.
    pub max_drift_ppb: u32,
}

impl Reading {
    /// The reading of `c` with the system clock at `now` and the
    /// monotonic clock at `mono`.
    pub fn at(c: &Contents, now: SystemTime, mono: Duration) -> Self {
        let age = mono.saturating_sub(c.as_of);
        let bound_ns = c.bound_at(mono);
        let status = match (bound_ns, c.status) {
            (None, _) => BoundStatus::Unknown,
            (Some(_), BoundStatus::Synchronized) if age > Duration::from_secs(5) => {
                BoundStatus::FreeRunning
            }
            (Some(_), s) => s,
        };
        Reading {
            now,
            bound_ns,
            status,
            age,
            max_drift_ppb: c.max_drift_ppb,
        }
    }

    /// `now - bound` and `now + bound`.
    pub fn interval(&self) -> Option<(SystemTime, SystemTime)> {
        let b = Duration::from_nanos(self.bound_ns?);
        Some((self.now.checked_sub(b)?, self.now.checked_add(b)?))
    }
}

fn timespec(d: Duration) -> [u8; 16] {
    let mut out = [0u8; 16];
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    out[..8].copy_from_slice(&secs.to_ne_bytes());
    out[8..].copy_from_slice(&i64::from(d.subsec_nanos()).to_ne_bytes());
    out
}

fn from_timespec(b: &[u8]) -> Option<Duration> {
    let secs = i64::from_ne_bytes(b.get(..8)?.try_into().ok()?);
    let nanos = i64::from_ne_bytes(b.get(8..16)?.try_into().ok()?);
    if secs < 0 || !(0..1_000_000_000).contains(&nanos) {
        return None;
    }
    Some(Duration::new(
        secs.cast_unsigned(),
        u32::try_from(nanos).ok()?,
    ))
}

/// The header with `generation`.
fn header(generation: u16) -> [u8; BODY_AT] {
    let mut h = [0u8; BODY_AT];
    h[..4].copy_from_slice(&MAGIC[0].to_ne_bytes());
    h[4..8].copy_from_slice(&MAGIC[1].to_ne_bytes());
    h[8..12].copy_from_slice(&(SEGMENT_SIZE as u32).to_ne_bytes());
    h[12..14].copy_from_slice(&VERSION.to_ne_bytes());
    h[14..16].copy_from_slice(&generation.to_ne_bytes());
    h
}

/// The bytes after the header.
fn body(c: &Contents) -> [u8; SEGMENT_SIZE - BODY_AT] {
    let mut b = [0u8; SEGMENT_SIZE - BODY_AT];
    b[..16].copy_from_slice(&timespec(c.as_of));
    b[16..32].copy_from_slice(&timespec(c.void_after));
    b[32..40].copy_from_slice(&c.bound_ns.to_ne_bytes());
    // 40..48: disruption marker, 0. 56: disruption support, 0.
    b[48..52].copy_from_slice(&c.max_drift_ppb.to_ne_bytes());
    b[52..56].copy_from_slice(&c.status.code().to_ne_bytes());
    b
}

/// Why a segment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not a ClockBound segment, or one of another layout.
    #[error("not a ClockBound v2 segment: {0}")]
    Malformed(&'static str),
    /// The writer has created it but not written a bound yet.
    #[error("no bound written yet")]
    NotInitialized,
    /// The writer was updating it on every try.
    #[error("the segment changed on every read")]
    Busy,
}

/// Decodes a segment's bytes (one consistent copy).
pub fn decode(bytes: &[u8]) -> Result<(u16, Contents), ReadError> {
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
    };
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_ne_bytes)
    };
    if bytes.len() < SEGMENT_SIZE {
        return Err(ReadError::Malformed("shorter than 80 bytes"));
    }
    if [u32_at(0), u32_at(4)] != [Some(MAGIC[0]), Some(MAGIC[1])] {
        return Err(ReadError::Malformed("wrong magic number"));
    }
    if u32_at(8).is_none_or(|s| (s as usize) < SEGMENT_SIZE) {
        return Err(ReadError::Malformed("segment size under 80"));
    }
    match u16_at(12) {
        Some(0) => return Err(ReadError::NotInitialized),
        Some(VERSION) => {}
        _ => return Err(ReadError::Malformed("a version other than 2")),
    }
    let generation = u16_at(GENERATION_AT as usize).unwrap_or(0);
    if generation == 0 {
        return Err(ReadError::NotInitialized);
    }
    let b = bytes
        .get(BODY_AT..SEGMENT_SIZE)
        .ok_or(ReadError::Malformed("shorter than 80 bytes"))?;
    let field = |at: usize| -> Option<[u8; 8]> { b.get(at..at + 8)?.try_into().ok() };
    let contents = (|| {
        Some(Contents {
            as_of: from_timespec(b.get(..16)?)?,
            void_after: from_timespec(b.get(16..32)?)?,
            bound_ns: i64::from_ne_bytes(field(32)?),
            max_drift_ppb: u32::from_ne_bytes(b.get(48..52)?.try_into().ok()?),
            status: BoundStatus::from_code(i32::from_ne_bytes(b.get(52..56)?.try_into().ok()?)),
        })
    })()
    .ok_or(ReadError::Malformed("a timestamp out of range"))?;
    Ok((generation, contents))
}

/// Reads a consistent copy of the segment at `path`.
pub fn read(path: &Path) -> Result<Contents, ReadError> {
    let file = File::open(path)?;
    let mut buf = [0u8; SEGMENT_SIZE];
    for _ in 0..1000 {
        file.read_exact_at(&mut buf, 0)?;
        let (generation, contents) = decode(&buf)?;
        let mut again = [0u8; 2];
        file.read_exact_at(&mut again, GENERATION_AT)?;
        if generation % 2 == 0 && u16::from_ne_bytes(again) == generation {
            return Ok(contents);
        }
        std::thread::yield_now();
    }
    Err(ReadError::Busy)
}

/// The one writer of a segment.
#[derive(Debug)]
pub struct Writer {
    file: File,
    generation: u16,
}

impl Writer {
    /// Creates (or takes over) the segment at `path`, mode 0644: a fresh
    /// header with version 0 and generation 0, which readers take for "not
    /// written yet" until the first [`Writer::write`].
    pub fn create(path: &Path) -> io::Result<Writer> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)?;
        // Every application may read it, whatever the daemon's umask.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        // Readers that already mapped it keep their mapping: keep the size,
        // blank the header, then the body.
        file.set_len(SEGMENT_SIZE as u64)?;
        let mut blank = header(0);
        blank[12..14].copy_from_slice(&0u16.to_ne_bytes());
        file.write_all_at(&blank, 0)?;
        file.write_all_at(&[0u8; SEGMENT_SIZE - BODY_AT], BODY_AT as u64)?;
        Ok(Writer {
            file,
            generation: 0,
        })
    }

    /// Publishes `c`: generation to odd, the body, generation to the next
    /// even number (2 after a wrap, never 0).
    pub fn write(&mut self, c: &Contents) -> io::Result<()> {
        let odd = self.generation.wrapping_add(1) | 1;
        if self.generation == 0 {
            // The first write also writes the header's version.
            self.file.write_all_at(&header(odd), 0)?;
        } else {
            self.file.write_all_at(&odd.to_ne_bytes(), GENERATION_AT)?;
        }
        fence(Ordering::SeqCst);
        self.file.write_all_at(&body(c), BODY_AT as u64)?;
        fence(Ordering::SeqCst);
        let even = match odd.wrapping_add(1) {
            0 => 2,
            g => g,
        };
        self.file.write_all_at(&even.to_ne_bytes(), GENERATION_AT)?;
        self.generation = even;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Contents {
        Contents {
            as_of: Duration::new(1000, 5),
            void_after: Duration::new(1060, 5),
            bound_ns: 123_456,
            max_drift_ppb: 15_000,
            status: BoundStatus::Synchronized,
        }
    }

    #[test]
    fn a_written_segment_reads_back_with_clockbounds_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shm0");
        let mut w = Writer::create(&path).expect("create");
        assert!(matches!(read(&path), Err(ReadError::NotInitialized)));
        w.write(&sample()).expect("write");
        assert_eq!(read(&path).expect("read"), sample());
        let bytes = std::fs::read(&path).expect("bytes");
        assert_eq!(bytes.len(), SEGMENT_SIZE);
        // The fields where ClockBound's readers look for them.
        assert_eq!(bytes[..4], 0x414D_5A4Eu32.to_ne_bytes());
        assert_eq!(bytes[12..14], 2u16.to_ne_bytes());
        assert_eq!(bytes[14..16], 2u16.to_ne_bytes());
        assert_eq!(bytes[16..24], 1000i64.to_ne_bytes());
        assert_eq!(bytes[48..56], 123_456i64.to_ne_bytes());
        assert_eq!(bytes[64..68], 15_000u32.to_ne_bytes());
        assert_eq!(bytes[68..72], 1i32.to_ne_bytes());
    }

    #[test]
    fn the_generation_skips_zero_when_it_wraps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shm0");
        let mut w = Writer::create(&path).expect("create");
        w.write(&sample()).expect("write");
        w.generation = u16::MAX - 1;
        w.write(&sample()).expect("write");
        assert_eq!(w.generation, 2);
        assert_eq!(read(&path).expect("read"), sample());
    }

    #[test]
    fn bad_segments_are_named() {
        assert!(matches!(decode(&[0u8; 10]), Err(ReadError::Malformed(_))));
        let mut bytes = [0u8; SEGMENT_SIZE];
        assert!(matches!(decode(&bytes), Err(ReadError::Malformed(_))));
        bytes[..BODY_AT].copy_from_slice(&header(2));
        bytes[12..14].copy_from_slice(&1u16.to_ne_bytes());
        assert!(matches!(decode(&bytes), Err(ReadError::Malformed(_))));
    }

    #[test]
    fn the_bound_grows_at_the_drift_and_voids() {
        let c = sample();
        assert_eq!(c.bound_at(c.as_of), Some(123_456));
        assert_eq!(c.bound_at(c.as_of + Duration::from_secs(2)), Some(153_456));
        assert_eq!(c.bound_at(c.void_after + Duration::from_nanos(1)), None);
    }
}
