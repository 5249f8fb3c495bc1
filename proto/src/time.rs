//! Time types with units: NTP timestamps, signed NTP durations and the 16.16
//! short format (RFC 5905 section 6).
//!
//! An [`NtpTimestamp`] is the 64-bit on-wire value: 32 bits of seconds since
//! the start of the current *era* and 32 bits of fraction. Era 0 began on
//! 1900-01-01T00:00:00Z, era 1 begins on 2036-02-07T06:28:16Z. Differences
//! are computed modulo 2^64 and read as signed, so they are right whenever the
//! two instants are less than 68 years apart, across the era boundary too
//! (RFC 5905 section 6, "the 2036 problem").

use std::fmt;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub, SubAssign};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from the NTP prime epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const UNIX_OFFSET_SECS: i64 = 2_208_988_800;

const NANOS_PER_SEC: u64 = 1_000_000_000;
const FRAC_PER_SEC: u128 = 1 << 32;

/// `n / d` rounded to the nearest, halves away from zero (`d` > 0).
fn div_round(n: i128, d: i128) -> i128 {
    if n >= 0 {
        (n + d / 2) / d
    } else {
        (n - d / 2) / d
    }
}

/// Converts nanoseconds (0..1e9) to a 32-bit binary fraction of a second, rounded.
fn nanos_to_frac(nanos: u32) -> u32 {
    let f = ((u128::from(nanos) << 32) + u128::from(NANOS_PER_SEC / 2)) / u128::from(NANOS_PER_SEC);
    // nanos < 1e9 keeps f <= 2^32 - 1 except for rounding at the very top;
    // saturate rather than wrap into the next second.
    u32::try_from(f).unwrap_or(u32::MAX)
}

/// Converts a 32-bit binary fraction of a second to nanoseconds, rounded.
fn frac_to_nanos(frac: u32) -> u32 {
    let n = (u128::from(frac) * u128::from(NANOS_PER_SEC) + FRAC_PER_SEC / 2) >> 32;
    u32::try_from(n.min(u128::from(NANOS_PER_SEC - 1))).unwrap_or(0)
}

/// A 64-bit NTP timestamp (RFC 5905 section 6): seconds of the era in the
/// high 32 bits, binary fraction in the low 32 bits. Zero means "unset".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(u64);

impl NtpTimestamp {
    /// The zero timestamp, which NTP uses to mean "not set".
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// From the raw 64-bit wire value.
    pub const fn from_bits(bits: u64) -> Self {
        NtpTimestamp(bits)
    }

    /// The raw 64-bit wire value.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// From era seconds and fraction.
    pub const fn from_parts(seconds: u32, fraction: u32) -> Self {
        NtpTimestamp(((seconds as u64) << 32) | fraction as u64)
    }

    /// Seconds within the era.
    pub const fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Binary fraction of a second.
    pub const fn fraction(self) -> u32 {
        self.0 as u32
    }

    /// Whether this is the zero ("unset") timestamp.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The timestamp of a Unix time (seconds may be negative; nanoseconds
    /// must be below 10^9 and are clamped otherwise). The era is dropped, as
    /// on the wire.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let nanos = nanos.min(999_999_999);
        let ntp_secs = secs.wrapping_add(UNIX_OFFSET_SECS).rem_euclid(1 << 32);
        let ntp_secs = u32::try_from(ntp_secs).unwrap_or(0);
        NtpTimestamp::from_parts(ntp_secs, nanos_to_frac(nanos))
    }

    /// The timestamp of a `SystemTime` (converting a given value; this
    /// crate never reads the clock).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => {
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                NtpTimestamp::from_unix(secs, d.subsec_nanos())
            }
            Err(e) => {
                let d = e.duration();
                let mut secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                let mut nanos = d.subsec_nanos();
                if nanos > 0 {
                    secs -= 1;
                    nanos = 1_000_000_000 - nanos;
                }
                NtpTimestamp::from_unix(secs, nanos)
            }
        }
    }

    /// The Unix time `(seconds, nanoseconds)` this timestamp stands for,
    /// choosing the era that puts it within 68 years of `pivot_unix_secs`
    /// (typically "now" as the caller knows it). Correct across the 2036
    /// era boundary.
    pub fn to_unix_near(self, pivot_unix_secs: i64) -> (i64, u32) {
        let pivot = NtpTimestamp::from_unix(pivot_unix_secs, 0);
        let diff = self - pivot;
        let whole = diff.to_bits() >> 32; // arithmetic shift: floor
        let frac = (diff.to_bits() & 0xFFFF_FFFF) as u32;
        (pivot_unix_secs.saturating_add(whole), frac_to_nanos(frac))
    }

    /// The `SystemTime` this timestamp stands for, in the era nearest to `pivot`.
    pub fn to_system_time_near(self, pivot: SystemTime) -> SystemTime {
        let pivot_secs = match pivot.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        };
        let (secs, nanos) = self.to_unix_near(pivot_secs);
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(u64::from(nanos))
        }
    }
}

impl fmt::Display for NtpTimestamp {
    /// `seconds.fraction` in hex, as ntpq and tcpdump print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}.{:08x}", self.seconds(), self.fraction())
    }
}

/// `later - earlier`, read as a signed difference (right within ±68 years,
/// across era boundaries).
impl Sub for NtpTimestamp {
    type Output = NtpDuration;
    fn sub(self, rhs: NtpTimestamp) -> NtpDuration {
        NtpDuration(self.0.wrapping_sub(rhs.0).cast_signed())
    }
}

impl Add<NtpDuration> for NtpTimestamp {
    type Output = NtpTimestamp;
    fn add(self, rhs: NtpDuration) -> NtpTimestamp {
        NtpTimestamp(self.0.wrapping_add(rhs.0.cast_unsigned()))
    }
}

impl Sub<NtpDuration> for NtpTimestamp {
    type Output = NtpTimestamp;
    fn sub(self, rhs: NtpDuration) -> NtpTimestamp {
        NtpTimestamp(self.0.wrapping_sub(rhs.0.cast_unsigned()))
    }
}

/// A signed time difference in NTP's 32.32 fixed point (about ±68 years,
/// resolution 2^-32 s). Offsets, delays and dispersions are of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpDuration(i64);

impl NtpDuration {
    /// No time.
    pub const ZERO: NtpDuration = NtpDuration(0);
    /// The largest representable duration.
    pub const MAX: NtpDuration = NtpDuration(i64::MAX);
    /// The smallest (most negative) representable duration.
    pub const MIN: NtpDuration = NtpDuration(i64::MIN);
    /// One second.
    pub const ONE_SECOND: NtpDuration = NtpDuration(1 << 32);

    /// From the raw signed 32.32 value.
    pub const fn from_bits(bits: i64) -> Self {
        NtpDuration(bits)
    }

    /// The raw signed 32.32 value.
    pub const fn to_bits(self) -> i64 {
        self.0
    }

    /// Whole seconds.
    pub const fn from_secs(secs: i32) -> Self {
        NtpDuration((secs as i64) << 32)
    }

    /// From nanoseconds, rounded to the nearest 2^-32 s, saturating.
    pub fn from_nanos(nanos: i64) -> Self {
        let bits = div_round(i128::from(nanos) << 32, i128::from(NANOS_PER_SEC));
        NtpDuration(i64::try_from(bits).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX }))
    }

    /// From milliseconds, saturating.
    pub fn from_millis(millis: i64) -> Self {
        NtpDuration::from_nanos(millis.saturating_mul(1_000_000))
    }

    /// From microseconds, saturating.
    pub fn from_micros(micros: i64) -> Self {
        NtpDuration::from_nanos(micros.saturating_mul(1_000))
    }

    /// Nanoseconds, rounded to the nearest.
    pub fn as_nanos(self) -> i64 {
        let n = div_round(i128::from(self.0) * i128::from(NANOS_PER_SEC), 1 << 32);
        i64::try_from(n).unwrap_or(if self.0 < 0 { i64::MIN } else { i64::MAX })
    }

    /// From floating-point seconds (for display, statistics and config
    /// edges), saturating; NaN gives zero.
    pub fn from_seconds_f64(secs: f64) -> Self {
        if secs.is_nan() {
            return NtpDuration::ZERO;
        }
        // `as` saturates for floats out of range.
        NtpDuration((secs * FRAC_PER_SEC as f64) as i64)
    }

    /// As floating-point seconds.
    pub fn as_seconds_f64(self) -> f64 {
        self.0 as f64 / FRAC_PER_SEC as f64
    }

    /// From a `std::time::Duration`, rounded, saturating at the maximum.
    pub fn from_std(d: Duration) -> Self {
        let nanos = i128::try_from(d.as_nanos()).unwrap_or(i128::MAX >> 40);
        let bits = div_round(nanos << 32, i128::from(NANOS_PER_SEC));
        NtpDuration(i64::try_from(bits).unwrap_or(i64::MAX))
    }

    /// As a `std::time::Duration`, rounded to the nanosecond; `None` when negative.
    pub fn to_std(self) -> Option<Duration> {
        let nanos = u64::try_from(self.as_nanos()).ok()?;
        Some(Duration::from_nanos(nanos))
    }

    /// Absolute value, saturating at `MAX`.
    pub const fn abs(self) -> Self {
        NtpDuration(self.0.saturating_abs())
    }

    /// Whether this is below zero.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    /// Saturating addition.
    pub const fn saturating_add(self, rhs: NtpDuration) -> Self {
        NtpDuration(self.0.saturating_add(rhs.0))
    }

    /// Saturating subtraction.
    pub const fn saturating_sub(self, rhs: NtpDuration) -> Self {
        NtpDuration(self.0.saturating_sub(rhs.0))
    }

    /// 2^exp seconds, for poll intervals and precisions; saturates at the
    /// representable range (exp above 30 gives `MAX`, below -32 gives zero).
    pub fn from_log2(exp: i8) -> Self {
        match exp {
            e if e > 30 => NtpDuration::MAX,
            e if e < -32 => NtpDuration::ZERO,
            e => NtpDuration(1i64 << (32 + i32::from(e))),
        }
    }
}

/// Offset and round-trip delay of a client/server exchange (RFC 5905
/// section 8): T1 request sent (client clock), T2 request received and T3
/// reply sent (server clock), T4 reply received (client clock).
/// offset = ((T2 - T1) + (T3 - T4)) / 2 is the server's clock minus the
/// client's; delay = (T4 - T1) - (T3 - T2).
pub fn exchange(
    t1: NtpTimestamp,
    t2: NtpTimestamp,
    t3: NtpTimestamp,
    t4: NtpTimestamp,
) -> (NtpDuration, NtpDuration) {
    let offset = ((t2 - t1) + (t3 - t4)) / 2;
    let delay = (t4 - t1) - (t3 - t2);
    (offset, delay)
}

impl fmt::Display for NtpDuration {
    /// Seconds with nine decimals, e.g. `-0.001250000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.as_nanos();
        let sign = if nanos < 0 { "-" } else { "" };
        let n = nanos.unsigned_abs();
        write!(f, "{sign}{}.{:09}", n / NANOS_PER_SEC, n % NANOS_PER_SEC)
    }
}

impl Add for NtpDuration {
    type Output = NtpDuration;
    fn add(self, rhs: NtpDuration) -> NtpDuration {
        NtpDuration(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for NtpDuration {
    fn add_assign(&mut self, rhs: NtpDuration) {
        *self = *self + rhs;
    }
}

impl Sub for NtpDuration {
    type Output = NtpDuration;
    fn sub(self, rhs: NtpDuration) -> NtpDuration {
        NtpDuration(self.0.saturating_sub(rhs.0))
    }
}

impl SubAssign for NtpDuration {
    fn sub_assign(&mut self, rhs: NtpDuration) {
        *self = *self - rhs;
    }
}

impl Neg for NtpDuration {
    type Output = NtpDuration;
    fn neg(self) -> NtpDuration {
        NtpDuration(self.0.saturating_neg())
    }
}

impl Mul<i64> for NtpDuration {
    type Output = NtpDuration;
    fn mul(self, rhs: i64) -> NtpDuration {
        NtpDuration(self.0.saturating_mul(rhs))
    }
}

impl Div<i64> for NtpDuration {
    type Output = NtpDuration;
    /// Division rounding toward zero; dividing by zero gives zero.
    fn div(self, rhs: i64) -> NtpDuration {
        NtpDuration(self.0.checked_div(rhs).unwrap_or(0))
    }
}

/// NTP short format (RFC 5905 section 6): unsigned 16.16 fixed-point
/// seconds, used for root delay and root dispersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpShort(u32);

impl NtpShort {
    /// Zero.
    pub const ZERO: NtpShort = NtpShort(0);

    /// From the raw 32-bit wire value.
    pub const fn from_bits(bits: u32) -> Self {
        NtpShort(bits)
    }

    /// The raw 32-bit wire value.
    pub const fn to_bits(self) -> u32 {
        self.0
    }

    /// As a signed NTP duration (always non-negative).
    pub const fn to_duration(self) -> NtpDuration {
        NtpDuration((self.0 as i64) << 16)
    }

    /// From a duration, saturating: negative gives zero, more than 65535.99 s
    /// gives the maximum. Sub-resolution parts (below 15.3 us) round up, so a
    /// small nonzero dispersion never reads as zero.
    pub fn from_duration(d: NtpDuration) -> Self {
        if d.0 <= 0 {
            return NtpShort(0);
        }
        let bits = d.0.saturating_add(0xFFFF) >> 16;
        NtpShort(u32::try_from(bits).unwrap_or(u32::MAX))
    }

    /// As floating-point seconds (display).
    pub fn as_seconds_f64(self) -> f64 {
        f64::from(self.0) / 65536.0
    }
}

impl fmt::Display for NtpShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.to_duration().fmt(f)
    }
}

/// A calendar date and time of day in UTC (proleptic Gregorian), for
/// showing timestamps to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime {
    /// Year (may be before 1970 or after 9999).
    pub year: i64,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=59 (leap seconds are not represented, as in Unix time).
    pub second: u8,
    /// Nanoseconds, 0..1e9.
    pub nanos: u32,
}

impl UtcTime {
    /// From Unix time: `secs` since 1970-01-01T00:00:00Z plus `nanos`.
    pub fn from_unix(secs: i64, nanos: u32) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let small = |v: i64| u8::try_from(v).unwrap_or(0);
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: small(month),
            day: small(day),
            hour: small(rem / 3600),
            minute: small(rem % 3600 / 60),
            second: small(rem % 60),
            nanos: nanos.min(999_999_999),
        }
    }

    /// From a `SystemTime`.
    pub fn from_system_time(t: SystemTime) -> Self {
        let (secs, nanos) = NtpTimestamp::from_system_time(t).to_unix_near(unix_secs_of(t));
        UtcTime::from_unix(secs, nanos)
    }

    /// From an NTP timestamp, in the era nearest to `pivot` (see
    /// [`NtpTimestamp::to_unix_near`]).
    pub fn from_ntp_near(t: NtpTimestamp, pivot: SystemTime) -> Self {
        let (secs, nanos) = t.to_unix_near(unix_secs_of(pivot));
        UtcTime::from_unix(secs, nanos)
    }
}

fn unix_secs_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl fmt::Display for UtcTime {
    /// RFC 3339 with microseconds, e.g. `2026-11-22T01:50:57.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.nanos / 1000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2036-02-07T06:28:16Z, the first second of NTP era 1.
    const ERA1_UNIX: i64 = (1 << 32) - UNIX_OFFSET_SECS;

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        let t = NtpTimestamp::from_unix(0, 0);
        assert_eq!(t.seconds(), 2_208_988_800);
        assert_eq!(t.fraction(), 0);
    }

    #[test]
    fn era_boundary_converts_both_ways() {
        let t = NtpTimestamp::from_unix(ERA1_UNIX, 0);
        assert_eq!(t.to_bits(), 0, "2036-02-07T06:28:16Z is era 1 second 0");
        // Zero on the wire is read as 2036 when the pivot is near 2036 ...
        assert_eq!(t.to_unix_near(ERA1_UNIX - 3600).0, ERA1_UNIX);
        // ... and as 1900 when the pivot is near 1900.
        assert_eq!(t.to_unix_near(-UNIX_OFFSET_SECS + 10).0, -UNIX_OFFSET_SECS);
        let last = NtpTimestamp::from_unix(ERA1_UNIX - 1, 500_000_000);
        assert_eq!(last.seconds(), u32::MAX);
        assert_eq!(
            last.to_unix_near(ERA1_UNIX + 86_400),
            (ERA1_UNIX - 1, 500_000_000)
        );
    }

    #[test]
    fn difference_straddling_the_wrap_is_small() {
        let before = NtpTimestamp::from_parts(u32::MAX, 0x8000_0000); // ...:15.5 era 0
        let after = NtpTimestamp::from_parts(0, 0x8000_0000); // ...:16.5 era 1
        assert_eq!(after - before, NtpDuration::ONE_SECOND);
        assert_eq!(before - after, -NtpDuration::ONE_SECOND);
        assert_eq!(before + NtpDuration::ONE_SECOND, after);
    }

    #[test]
    fn nanos_survive_the_round_trip() {
        for n in [0u32, 1, 2, 499_999_999, 500_000_000, 999_999_999] {
            assert_eq!(frac_to_nanos(nanos_to_frac(n)), n, "nanos {n}");
        }
    }

    #[test]
    fn system_time_before_1970() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        let ts = NtpTimestamp::from_system_time(t);
        assert_eq!(ts.to_unix_near(0), (-2, 500_000_000));
        assert_eq!(ts.to_system_time_near(UNIX_EPOCH), t);
    }

    #[test]
    fn duration_conversions() {
        assert_eq!(NtpDuration::from_millis(1500).as_seconds_f64(), 1.5);
        assert_eq!(
            NtpDuration::from_std(Duration::from_millis(250)).as_nanos(),
            250_000_000
        );
        assert_eq!(NtpDuration::from_millis(-1).to_std(), None);
        assert_eq!(
            NtpDuration::from_micros(1250).to_std(),
            Some(Duration::from_micros(1250))
        );
        assert_eq!(NtpDuration::from_millis(-1250).to_string(), "-1.250000000");
        assert_eq!(NtpDuration::from_log2(6), NtpDuration::from_secs(64));
        assert_eq!(NtpDuration::from_log2(-1), NtpDuration::from_millis(500));
        assert_eq!(NtpDuration::from_log2(100), NtpDuration::MAX);
        assert_eq!(NtpDuration::from_seconds_f64(f64::NAN), NtpDuration::ZERO);
        assert_eq!(NtpDuration::from_seconds_f64(1e30), NtpDuration::MAX);
    }

    #[test]
    fn short_format() {
        let s = NtpShort::from_bits(0x0000_0297);
        assert!((s.as_seconds_f64() - 0.010_116_577).abs() < 1e-9);
        assert_eq!(NtpShort::from_duration(s.to_duration()), s);
        assert_eq!(
            NtpShort::from_duration(NtpDuration::from_nanos(1)).to_bits(),
            1
        );
        assert_eq!(
            NtpShort::from_duration(-NtpDuration::ONE_SECOND),
            NtpShort::ZERO
        );
        assert_eq!(
            NtpShort::from_duration(NtpDuration::MAX).to_bits(),
            u32::MAX
        );
    }

    #[test]
    fn utc_calendar() {
        let t = UtcTime::from_unix(0, 0);
        assert_eq!(t.to_string(), "1970-01-01T00:00:00.000000Z");
        let t = UtcTime::from_unix(951_782_400 + 3_723, 123_456_789);
        assert_eq!(t.to_string(), "2000-02-29T01:02:03.123456Z");
        assert_eq!(
            UtcTime::from_unix(1_795_312_257, 0).to_string(),
            "2026-11-22T01:50:57.000000Z"
        );
        assert_eq!(
            UtcTime::from_unix(-1, 0).to_string(),
            "1969-12-31T23:59:59.000000Z"
        );
        // NTP era 1 starts 2036-02-07T06:28:16Z; a zero timestamp read near then.
        let pivot = UNIX_EPOCH + Duration::from_secs(2_085_978_000);
        assert_eq!(
            UtcTime::from_ntp_near(NtpTimestamp::ZERO, pivot).to_string(),
            "2036-02-07T06:28:16.000000Z"
        );
        let st = UNIX_EPOCH + Duration::new(1_795_312_257, 5_000);
        assert_eq!(
            UtcTime::from_system_time(st).to_string(),
            "2026-11-22T01:50:57.000005Z"
        );
    }
}
