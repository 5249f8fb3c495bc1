//! Value types that carry their unit, and the serde helpers that read them.
//!
//! Durations are written in the file as a number (integer or float) whose
//! unit is the suffix of the field name: `spacing-s = 2`,
//! `max-round-trip-ms = 50`. Negative, NaN and infinite values are refused.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use mcast_keys::KeyId;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A poll interval as a log2 exponent of seconds (RFC 5905 §7.3, "poll"):
/// 6 means 2^6 = 64 s between broadcasts.
///
/// Values 0..=17 can be represented; the configuration accepts 3..=17 unless
/// `lab-allow-fast-poll = true`, because ntpd 4.2.8 clients abort on a poll
/// field of 1 or 2 and drop packets that arrive sooner than 2^poll s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Poll(u8);

impl Poll {
    /// The smallest poll exponent that ntpd accepts (8 s).
    pub const MIN_COMPATIBLE: Poll = Poll(3);
    /// The largest poll exponent (2^17 s, about 36 h; RFC 5905 `MAXPOLL`).
    pub const MAX: Poll = Poll(17);
    /// The default poll exponent (64 s), as ntpd's `broadcast` default.
    pub const DEFAULT: Poll = Poll(6);

    /// A poll exponent; `None` above 17.
    pub const fn new(log2: u8) -> Option<Poll> {
        if log2 <= Self::MAX.0 {
            Some(Poll(log2))
        } else {
            None
        }
    }

    /// The exponent.
    pub const fn log2(self) -> u8 {
        self.0
    }

    /// The interval, 2^poll seconds.
    pub fn interval(self) -> Duration {
        Duration::from_secs(1u64 << self.0)
    }

    /// Whether this poll is below what ntpd clients accept (0..=2).
    pub fn is_lab_only(self) -> bool {
        self < Self::MIN_COMPATIBLE
    }
}

impl Default for Poll {
    fn default() -> Self {
        Poll::DEFAULT
    }
}

impl fmt::Display for Poll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Poll {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        u8::try_from(n).ok().and_then(Poll::new).ok_or_else(|| {
            de::Error::custom("must be 3..17 (log2 seconds: 8 s to 36 h between packets)")
        })
    }
}

/// A reference identifier as sent in the refid field (RFC 5905 §7.3): a code
/// of up to four ASCII characters (stratum 1, e.g. `GPS`) or an IPv4 address
/// (the server's own upstream, stratum 2 and above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefId {
    /// An ASCII code, zero-padded to four bytes.
    Code([u8; 4]),
    /// An IPv4 address.
    Address(Ipv4Addr),
}

impl RefId {
    /// A refid from its text form: an IPv4 address, or 1..=4 printable ASCII
    /// characters.
    pub fn parse(text: &str) -> Option<RefId> {
        if let Ok(addr) = text.parse::<Ipv4Addr>() {
            return Some(RefId::Address(addr));
        }
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > 4 || !bytes.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut code = [0u8; 4];
        for (slot, b) in code.iter_mut().zip(bytes) {
            *slot = *b;
        }
        Some(RefId::Code(code))
    }

    /// The four bytes of the refid field.
    pub fn to_bytes(self) -> [u8; 4] {
        match self {
            RefId::Code(code) => code,
            RefId::Address(addr) => addr.octets(),
        }
    }
}

impl fmt::Display for RefId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefId::Code(code) => {
                for &b in code.iter().take_while(|&&b| b != 0) {
                    write!(f, "{}", char::from(b))?;
                }
                Ok(())
            }
            RefId::Address(addr) => write!(f, "{addr}"),
        }
    }
}

impl<'de> Deserialize<'de> for RefId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RefId::parse(&text).ok_or_else(|| {
            de::Error::custom(
                "must be 1 to 4 printable ASCII characters (e.g. \"GPS\") or an IPv4 address",
            )
        })
    }
}

struct SecondsVisitor;

impl Visitor<'_> for SecondsVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
}

fn duration_from<E: de::Error>(secs: f64, unit: &str) -> Result<Duration, E> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| E::custom(format!("must be a non-negative, finite number of {unit}")))
}

/// Reads a duration written as a number of seconds (integer or float).
pub(crate) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = d.deserialize_any(SecondsVisitor)?;
    duration_from(v, "seconds")
}

/// Reads a duration written as a number of milliseconds (integer or float).
pub(crate) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = d.deserialize_any(SecondsVisitor)?;
    if !v.is_finite() || v < 0.0 {
        return Err(de::Error::custom(
            "must be a non-negative, finite number of milliseconds",
        ));
    }
    duration_from(v / 1000.0, "milliseconds")
}

/// Reads an integer that must lie in `LO..=HI`.
pub(crate) fn ranged<'de, D, T, const LO: i64, const HI: i64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let n = i64::deserialize(d)?;
    if (LO..=HI).contains(&n) {
        T::try_from(n).map_err(|_| de::Error::custom(format!("must be {LO}..{HI}")))
    } else {
        Err(de::Error::custom(format!("must be {LO}..{HI}")))
    }
}

/// Reads an optional key id (1..=65535).
pub(crate) fn opt_key_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeyId>, D::Error> {
    let n = i64::deserialize(d)?;
    u32::try_from(n)
        .ok()
        .and_then(KeyId::new)
        .map(Some)
        .ok_or_else(|| de::Error::custom("must be a key id 1..65535 from the keys file"))
}

/// Reads an optional RFC 3339 UTC time, e.g. `"2026-12-03T20:00:00Z"`.
pub(crate) fn opt_rfc3339<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::SystemTime>, D::Error> {
    let s = String::deserialize(d)?;
    let t: jiff::Timestamp = s.parse().map_err(|e| {
        de::Error::custom(format!(
            "must be an RFC 3339 time in UTC such as \"2026-12-03T20:00:00Z\" ({e})"
        ))
    })?;
    Ok(Some(std::time::SystemTime::from(t)))
}

/// Reads an optional list of key ids (each 1..=65535).
pub(crate) fn opt_key_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<KeyId>>, D::Error> {
    Vec::<i64>::deserialize(d)?
        .into_iter()
        .map(|n| {
            u32::try_from(n)
                .ok()
                .and_then(KeyId::new)
                .ok_or_else(|| de::Error::custom("must be key ids 1..65535 from the keys file"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Reads an optional Ed25519 public key (`ed25519:` and 64 hex digits).
pub(crate) fn opt_public_key<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<mcast_keys::signed::PublicKey>, D::Error> {
    let text = String::deserialize(d)?;
    mcast_keys::signed::PublicKey::parse(&text)
        .map(Some)
        .map_err(|e| de::Error::custom(format!("{e} (mcast-keygen public-key prints it)")))
}

/// Reads an optional stratum (1..=14).
pub(crate) fn opt_stratum<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let n = i64::deserialize(d)?;
    if (1..=14).contains(&n) {
        Ok(u8::try_from(n).ok())
    } else {
        Err(de::Error::custom(
            "must be 1..14 (ntpd clients refuse stratum 15 and above; 16 means unsynchronized)",
        ))
    }
}

/// Formats a duration as seconds the way it would be written in the file.
pub(crate) fn show_secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// Formats a duration as milliseconds the way it would be written in the file.
pub(crate) fn show_millis(d: Duration) -> String {
    format!("{}", d.as_secs_f64() * 1000.0)
}
