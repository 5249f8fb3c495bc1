//! Stable kebab-case identifiers for typed outcomes that come from the
//! lower crates (proto's sanity checks, keys' MAC verdicts), as status JSON
//! and metrics labels carry them. Identifiers, not words: the shells make
//! the words.

use mcast_keys::{MacVerdict, PacketAuth};
use mcast_proto::Unusable;

/// `no-mac`, `crypto-nak`, `wrong-key` (a valid MAC with another key),
/// `unknown-key`, `bad-length`, `invalid-mac` or `source-not-allowed`.
pub fn auth(a: &PacketAuth) -> &'static str {
    match a {
        PacketAuth::NoMac => "no-mac",
        PacketAuth::CryptoNak => "crypto-nak",
        PacketAuth::Mac(MacVerdict::Valid(_)) => "wrong-key",
        PacketAuth::Mac(MacVerdict::UnknownKey(_)) => "unknown-key",
        PacketAuth::Mac(MacVerdict::BadLength { .. }) => "bad-length",
        PacketAuth::Mac(MacVerdict::InvalidMac(_)) => "invalid-mac",
        PacketAuth::Mac(MacVerdict::SourceNotAllowed { .. }) => "source-not-allowed",
    }
}

/// `kiss-of-death`, `zero-transmit`, `unsynchronized`, `stratum-zero`,
/// `stratum-too-high` or `root-distance-too-large`.
pub fn unusable(u: &Unusable) -> &'static str {
    match u {
        Unusable::KissOfDeath(_) => "kiss-of-death",
        Unusable::ZeroTransmit => "zero-transmit",
        Unusable::Unsynchronized => "unsynchronized",
        Unusable::StratumZero => "stratum-zero",
        Unusable::StratumTooHigh { .. } => "stratum-too-high",
        Unusable::RootDistanceTooLarge { .. } => "root-distance-too-large",
    }
}
