//! Property tests: the codec is lossless, and time arithmetic is right
//! across the 2036 era boundary.
#![cfg(test)]

use mcast_proto::{
    Datagram, ExtensionField, Header, LeapIndicator, Log2Seconds, Mac, Mode, NtpDuration, NtpShort,
    NtpTimestamp, RefId,
};
use proptest::prelude::*;

fn mode() -> impl Strategy<Value = Mode> {
    (1u8..=7).prop_map(|m| Mode::from_bits(m).expect("1..=7 are modes"))
}

fn timestamp() -> impl Strategy<Value = NtpTimestamp> {
    any::<u64>().prop_map(NtpTimestamp::from_bits)
}

prop_compose! {
    fn header()(
        leap in 0u8..4, version in 1u8..=4, mode in mode(), stratum in any::<u8>(),
        poll in any::<i8>(), precision in any::<i8>(), rd in any::<u32>(), rdisp in any::<u32>(),
        refid in any::<[u8; 4]>(), reference in timestamp(), origin in timestamp(),
        receive in timestamp(), transmit in timestamp(),
    ) -> Header {
        Header {
            leap: LeapIndicator::from_bits(leap), version, mode, stratum,
            poll: Log2Seconds(poll), precision: Log2Seconds(precision),
            root_delay: NtpShort::from_bits(rd), root_dispersion: NtpShort::from_bits(rdisp),
            reference_id: RefId(refid), reference, origin, receive, transmit,
        }
    }
}

prop_compose! {
    /// RFC 7822 fields: at least 16 bytes, whole words.
    fn extension()(field_type in any::<u16>(), words in 3usize..16, fill in any::<u8>()) -> ExtensionField {
        ExtensionField { field_type, value: vec![fill; words * 4] }
    }
}

prop_compose! {
    fn mac()(key_id in any::<u32>(), digest_words in 0usize..=5, fill in any::<u8>()) -> Mac {
        Mac { key_id, digest: vec![fill; digest_words * 4] }
    }
}

/// A datagram ntpd's framing reads back as the same structure: every
/// extension field starts a remainder longer than 24 bytes.
fn unambiguous(d: &Datagram) -> bool {
    let mac_len = d.mac.as_ref().map_or(0, |m| 4 + m.digest.len());
    let mut rest: usize = d
        .extensions
        .iter()
        .map(ExtensionField::wire_len)
        .sum::<usize>()
        + mac_len;
    for ef in &d.extensions {
        if rest <= 24 {
            return false;
        }
        rest -= ef.wire_len();
    }
    true
}

proptest! {
    #[test]
    fn header_round_trips(h in header()) {
        prop_assert_eq!(Header::parse(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn datagram_round_trips(
        h in header(),
        exts in proptest::collection::vec(extension(), 0..4),
        mac in proptest::option::of(mac()),
    ) {
        let d = Datagram { header: h, extensions: exts, mac };
        prop_assume!(unambiguous(&d));
        let bytes = d.to_bytes();
        prop_assert_eq!(Datagram::parse(&bytes), Ok(d.clone()));
        prop_assert_eq!(d.signed_len(), bytes.len() - d.mac.as_ref().map_or(0, |m| 4 + m.digest.len()));
    }

    /// Whatever the parser accepts, it reproduces byte for byte; whatever
    /// it rejects, it rejects without panicking.
    #[test]
    fn arbitrary_bytes_parse_losslessly_or_fail(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(d) = Datagram::parse(&bytes) {
            prop_assert_eq!(d.to_bytes(), bytes);
        }
    }

    /// Any Unix time from 1900 to 2172 survives the wire in the era nearest
    /// a pivot up to 60 years away, across the 2036 boundary.
    #[test]
    fn unix_time_survives_era_resolution(
        secs in -2_208_988_800i64..6_400_000_000,
        nanos in 0u32..1_000_000_000,
        pivot_shift in -1_900_000_000i64..1_900_000_000,
    ) {
        let ts = NtpTimestamp::from_unix(secs, nanos);
        prop_assert_eq!(ts.to_unix_near(secs + pivot_shift), (secs, nanos));
    }

    /// Differences are right whenever the instants are within 68 years,
    /// even when the wire values straddle the wrap.
    #[test]
    fn differences_across_the_wrap(
        a in -2_208_988_800i64..6_400_000_000,
        delta_ms in -2_000_000_000_000i64..2_000_000_000_000,
    ) {
        let ta = NtpTimestamp::from_unix(a, 0);
        let b_ms = a * 1000 + delta_ms;
        let tb = NtpTimestamp::from_unix(b_ms.div_euclid(1000), (b_ms.rem_euclid(1000) * 1_000_000) as u32);
        let diff = tb - ta;
        prop_assert!((diff.as_nanos() - delta_ms * 1_000_000).abs() <= 1, "diff {} for {} ms", diff, delta_ms);
        prop_assert_eq!(ta + diff, tb);
    }

    #[test]
    fn duration_nanos_round_trip(n in -2_000_000_000_000_000_000i64..2_000_000_000_000_000_000) {
        prop_assert_eq!(NtpDuration::from_nanos(n).as_nanos(), n);
    }
}
