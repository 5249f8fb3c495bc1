//! The 48-byte NTP packet header (RFC 5905 section 7.3).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::time::{NtpDuration, NtpShort, NtpTimestamp};

/// Length of the NTP header in bytes.
pub const HEADER_LEN: usize = 48;

/// Leap indicator (RFC 5905 figure 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeapIndicator {
    /// No leap second pending.
    NoWarning,
    /// The last minute of the day has 61 seconds.
    AddSecond,
    /// The last minute of the day has 59 seconds.
    DeleteSecond,
    /// The clock is unsynchronized (LI = 3): never time.
    Unsynchronized,
}

impl LeapIndicator {
    /// From the two-bit wire value.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 3 {
            0 => LeapIndicator::NoWarning,
            1 => LeapIndicator::AddSecond,
            2 => LeapIndicator::DeleteSecond,
            _ => LeapIndicator::Unsynchronized,
        }
    }

    /// The two-bit wire value.
    pub const fn to_bits(self) -> u8 {
        match self {
            LeapIndicator::NoWarning => 0,
            LeapIndicator::AddSecond => 1,
            LeapIndicator::DeleteSecond => 2,
            LeapIndicator::Unsynchronized => 3,
        }
    }
}

/// Association mode (RFC 5905 figure 10). Mode 0 is reserved and rejected
/// by the parser, as ntpd counts it as a bad format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 1: symmetric active.
    SymmetricActive,
    /// 2: symmetric passive.
    SymmetricPassive,
    /// 3: client (our calibration requests).
    Client,
    /// 4: server (calibration replies, KoD).
    Server,
    /// 5: broadcast (and multicast).
    Broadcast,
    /// 6: NTP control message (ntpq); never served by mcast-ntp.
    Control,
    /// 7: private (ntpdc); never served by mcast-ntp.
    Private,
}

impl Mode {
    /// From the three-bit wire value; `None` for the reserved mode 0.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits & 7 {
            1 => Mode::SymmetricActive,
            2 => Mode::SymmetricPassive,
            3 => Mode::Client,
            4 => Mode::Server,
            5 => Mode::Broadcast,
            6 => Mode::Control,
            7 => Mode::Private,
            _ => return None,
        })
    }

    /// The three-bit wire value.
    pub const fn to_bits(self) -> u8 {
        match self {
            Mode::SymmetricActive => 1,
            Mode::SymmetricPassive => 2,
            Mode::Client => 3,
            Mode::Server => 4,
            Mode::Broadcast => 5,
            Mode::Control => 6,
            Mode::Private => 7,
        }
    }
}

/// A signed base-2 logarithm of seconds: the unit of the poll and precision
/// fields (RFC 5905 section 7.3). Poll 6 is 64 s; precision -20 is about 1 us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Log2Seconds(pub i8);

impl Log2Seconds {
    /// The interval 2^n seconds (saturating).
    pub fn to_duration(self) -> NtpDuration {
        NtpDuration::from_log2(self.0)
    }
}

impl fmt::Display for Log2Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The 32-bit reference identifier. Its meaning depends on the stratum
/// (RFC 5905 section 7.3): a kiss code at stratum 0, a reference-clock code
/// at stratum 1, the upstream server's IPv4 address or the first four bytes
/// of the MD5 hash of its IPv6 address above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RefId(pub [u8; 4]);

/// How to read a reference id, given the packet's stratum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefIdKind {
    /// Stratum 0: a four-character kiss code (`RATE`, `INIT`, ...).
    KissCode([u8; 4]),
    /// Stratum 1: a reference-clock code (`GPS`, `PPS`, `LOCL`, ...).
    ClockCode([u8; 4]),
    /// Stratum 2 and up: an IPv4 address, or for an IPv6 upstream the
    /// first four bytes of the MD5 of its address (indistinguishable on the wire).
    Address([u8; 4]),
}

impl RefId {
    /// From an ASCII code of at most four bytes, NUL-padded (`"GPS"`, `"LOCL"`).
    pub fn from_code(code: &str) -> Self {
        let mut b = [0u8; 4];
        for (dst, src) in b.iter_mut().zip(code.bytes()) {
            *dst = src;
        }
        RefId(b)
    }

    /// An IPv4 upstream's reference id.
    pub fn from_ipv4(addr: Ipv4Addr) -> Self {
        RefId(addr.octets())
    }

    /// An IPv6 upstream's reference id: the first four bytes of the MD5
    /// digest of its 16-byte address (RFC 5905 section 7.3). `md5` is the
    /// caller's digest function, so this crate stays free of crypto.
    pub fn from_ipv6(addr: Ipv6Addr, md5: impl FnOnce(&[u8]) -> [u8; 16]) -> Self {
        let d = md5(&addr.octets());
        RefId([d[0], d[1], d[2], d[3]])
    }

    /// Interpretation at the given stratum.
    pub const fn kind(self, stratum: u8) -> RefIdKind {
        match stratum {
            0 => RefIdKind::KissCode(self.0),
            1 => RefIdKind::ClockCode(self.0),
            _ => RefIdKind::Address(self.0),
        }
    }

    /// The value as four ASCII characters with trailing NULs removed, if
    /// every byte is printable ASCII.
    pub fn as_ascii(&self) -> Option<String> {
        let trimmed: Vec<u8> = self.0.iter().copied().take_while(|&b| b != 0).collect();
        if self.0.iter().skip(trimmed.len()).any(|&b| b != 0) {
            return None;
        }
        if trimmed.iter().all(|b| b.is_ascii_graphic()) {
            String::from_utf8(trimmed).ok()
        } else {
            None
        }
    }

    /// How ntpq shows it: `.CODE.` at strata 0 and 1 (non-printable bytes
    /// escaped), a dotted quad above.
    pub fn display(&self, stratum: u8) -> String {
        match self.kind(stratum) {
            RefIdKind::KissCode(_) | RefIdKind::ClockCode(_) => match self.as_ascii() {
                Some(s) => format!(".{s}."),
                None => format!(".{}.", self.0.escape_ascii()),
            },
            RefIdKind::Address(b) => Ipv4Addr::from(b).to_string(),
        }
    }
}

/// The NTP packet header, every field kept as sent so that serializing a
/// parsed header gives the same 48 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Leap indicator.
    pub leap: LeapIndicator,
    /// Version number, 1..=4 accepted; we send 4.
    pub version: u8,
    /// Association mode.
    pub mode: Mode,
    /// Stratum (0 = unspecified or KoD, 1 = primary, 2..=15 secondary, 16 = unsynchronized).
    pub stratum: u8,
    /// Maximum interval between successive messages, log2 seconds.
    pub poll: Log2Seconds,
    /// Precision of the sender's clock, log2 seconds.
    pub precision: Log2Seconds,
    /// Total round-trip delay to the reference clock.
    pub root_delay: NtpShort,
    /// Total dispersion to the reference clock.
    pub root_dispersion: NtpShort,
    /// Reference identifier.
    pub reference_id: RefId,
    /// When the sender's clock was last set or corrected.
    pub reference: NtpTimestamp,
    /// T1: in a reply, the request's transmit timestamp; in interleaved
    /// broadcast, the previous packet's kernel transmit time.
    pub origin: NtpTimestamp,
    /// T2: when the request arrived at the server.
    pub receive: NtpTimestamp,
    /// T3: when this packet left the sender.
    pub transmit: NtpTimestamp,
}

/// The version we send.
pub const NTP_VERSION: u8 = 4;

impl Header {
    /// A header with the given mode and everything else zero, version 4,
    /// leap "no warning".
    pub const fn new(mode: Mode) -> Self {
        Header {
            leap: LeapIndicator::NoWarning,
            version: NTP_VERSION,
            mode,
            stratum: 0,
            poll: Log2Seconds(0),
            precision: Log2Seconds(0),
            root_delay: NtpShort::ZERO,
            root_dispersion: NtpShort::ZERO,
            reference_id: RefId([0; 4]),
            reference: NtpTimestamp::ZERO,
            origin: NtpTimestamp::ZERO,
            receive: NtpTimestamp::ZERO,
            transmit: NtpTimestamp::ZERO,
        }
    }

    /// Parses the first 48 bytes of `buf` (anything after is ignored here).
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let b: &[u8; HEADER_LEN] = buf
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(ParseError::TooShort { len: buf.len() })?;
        let [b0, stratum, poll, precision, ..] = *b;
        let version = (b0 >> 3) & 7;
        if !(1..=4).contains(&version) {
            return Err(ParseError::UnsupportedVersion(version));
        }
        let mode = Mode::from_bits(b0).ok_or(ParseError::ReservedMode)?;
        let word = |i: usize| -> [u8; 4] {
            b.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .unwrap_or_default()
        };
        let u32_at = |i: usize| u32::from_be_bytes(word(i));
        let ts_at = |i: usize| {
            NtpTimestamp::from_bits((u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4)))
        };
        Ok(Header {
            leap: LeapIndicator::from_bits(b0 >> 6),
            version,
            mode,
            stratum,
            poll: Log2Seconds(poll.cast_signed()),
            precision: Log2Seconds(precision.cast_signed()),
            root_delay: NtpShort::from_bits(u32_at(4)),
            root_dispersion: NtpShort::from_bits(u32_at(8)),
            reference_id: RefId(word(12)),
            reference: ts_at(16),
            origin: ts_at(24),
            receive: ts_at(32),
            transmit: ts_at(40),
        })
    }

    /// The 48 wire bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Writer(&mut out, 0);
        w.put(&[
            (self.leap.to_bits() << 6) | ((self.version & 7) << 3) | self.mode.to_bits(),
            self.stratum,
            self.poll.0.cast_unsigned(),
            self.precision.0.cast_unsigned(),
        ]);
        w.put(&self.root_delay.to_bits().to_be_bytes());
        w.put(&self.root_dispersion.to_bits().to_be_bytes());
        w.put(&self.reference_id.0);
        for ts in [self.reference, self.origin, self.receive, self.transmit] {
            w.put(&ts.to_bits().to_be_bytes());
        }
        out
    }

    /// Root distance as the packet states it: root delay / 2 + root dispersion.
    pub fn root_distance(&self) -> NtpDuration {
        self.root_delay.to_duration() / 2 + self.root_dispersion.to_duration()
    }
}

/// Sequential writer into a fixed buffer; the header layout fills it exactly.
struct Writer<'a>(&'a mut [u8; HEADER_LEN], usize);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.0.get_mut(self.1..self.1 + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.1 += bytes.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refid_display() {
        assert_eq!(RefId::from_code("RATE").display(0), ".RATE.");
        assert_eq!(RefId::from_code("GPS").display(1), ".GPS.");
        assert_eq!(RefId([0x7f, 0x7f, 1, 0]).display(2), "127.127.1.0");
        assert_eq!(
            RefId([0x7f, 0x7f, 1, 1]).display(1),
            ".\\x7f\\x7f\\x01\\x01."
        );
        assert_eq!(RefId::from_code("GPS").as_ascii().as_deref(), Some("GPS"));
        assert_eq!(RefId([b'A', 0, b'B', 0]).as_ascii(), None);
    }

    #[test]
    fn too_short_and_bad_version_are_typed_errors() {
        assert_eq!(
            Header::parse(&[0x23; 47]),
            Err(ParseError::TooShort { len: 47 })
        );
        let mut b = [0u8; 48];
        b[0] = 0x05; // version 0
        assert_eq!(Header::parse(&b), Err(ParseError::UnsupportedVersion(0)));
        b[0] = 0x20; // version 4, mode 0
        assert_eq!(Header::parse(&b), Err(ParseError::ReservedMode));
        b[0] = 0x3d; // version 7
        assert_eq!(Header::parse(&b), Err(ParseError::UnsupportedVersion(7)));
    }

    #[test]
    fn versions_one_to_four_are_accepted() {
        for v in 1..=4u8 {
            let mut b = [0u8; 48];
            b[0] = (v << 3) | 3;
            assert_eq!(Header::parse(&b).map(|h| h.version), Ok(v));
        }
    }
}
