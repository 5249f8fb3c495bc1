//! Every vector captured from ntpd 4.2.8p15 and chronyd decodes to the
//! fields the manifest lists, and re-encodes to the same bytes.
#![cfg(test)]

use mcast_proto::{Datagram, KissCode, NtpTimestamp, RefIdKind};
use mcast_tests::vectors;

/// 2026-11-22, when the vectors were captured: the era pivot.
const CAPTURE_UNIX: i64 = 1_795_300_000;

fn ts_hex(t: NtpTimestamp) -> String {
    t.to_string()
}

fn unix_f64(t: NtpTimestamp) -> f64 {
    let (s, n) = t.to_unix_near(CAPTURE_UNIX);
    s as f64 + f64::from(n) / 1e9
}

#[test]
fn every_vector_decodes_to_the_manifest_fields() {
    let m = vectors::manifest().expect("manifest.json readable");
    assert_eq!(m.format, "ntp-multicast-lab-vectors/1");
    assert!(
        m.vectors.len() >= 50,
        "expected the full set of vectors, got {}",
        m.vectors.len()
    );
    for v in &m.vectors {
        let bytes = v.payload();
        let d =
            Datagram::parse(&bytes).unwrap_or_else(|e| panic!("{}: does not parse: {e}", v.name));
        let h = &d.header;
        let e = &v.expected;
        let n = &v.name;
        assert_eq!(h.leap.to_bits(), e.li, "{n}: LI");
        assert_eq!(h.version, e.vn, "{n}: VN");
        assert_eq!(h.mode.to_bits(), e.mode, "{n}: mode");
        assert_eq!(h.stratum, e.stratum, "{n}: stratum");
        assert_eq!(h.poll.0, e.poll, "{n}: poll");
        assert_eq!(h.precision.0, e.precision, "{n}: precision");
        assert_eq!(
            format!("{:08x}", h.root_delay.to_bits()),
            e.root_delay_raw,
            "{n}: root delay"
        );
        assert_eq!(
            format!("{:08x}", h.root_dispersion.to_bits()),
            e.root_dispersion_raw,
            "{n}: root dispersion"
        );
        assert!(
            (h.root_delay.as_seconds_f64() - e.root_delay_s).abs() < 1e-6,
            "{n}: root delay s"
        );
        assert!(
            (h.root_dispersion.as_seconds_f64() - e.root_dispersion_s).abs() < 1e-6,
            "{n}: root dispersion s"
        );
        assert_eq!(hex::encode(h.reference_id.0), e.refid_hex, "{n}: refid");
        match h.reference_id.kind(h.stratum) {
            RefIdKind::Address(b) => {
                let want = e
                    .refid_ipv4
                    .as_deref()
                    .unwrap_or_else(|| panic!("{n}: manifest has no refid_ipv4"));
                assert_eq!(
                    std::net::Ipv4Addr::from(b).to_string(),
                    want,
                    "{n}: refid address"
                );
            }
            RefIdKind::KissCode(b) | RefIdKind::ClockCode(b) => {
                let want = e
                    .refid_ascii
                    .as_deref()
                    .unwrap_or_else(|| panic!("{n}: manifest has no refid_ascii"));
                let got: String = b
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| char::from(c))
                    .collect();
                assert_eq!(got, want, "{n}: refid code");
            }
        }
        assert_eq!(ts_hex(h.reference), e.reference_ts, "{n}: reference ts");
        assert_eq!(ts_hex(h.origin), e.origin_ts, "{n}: origin ts");
        assert_eq!(ts_hex(h.receive), e.receive_ts, "{n}: receive ts");
        assert_eq!(ts_hex(h.transmit), e.transmit_ts, "{n}: transmit ts");
        if let Some(want) = e.transmit_unix {
            assert!(
                (unix_f64(h.transmit) - want).abs() < 1e-6,
                "{n}: transmit as Unix time"
            );
        }
        if let Some(want) = e.reference_unix {
            assert!(
                (unix_f64(h.reference) - want).abs() < 1e-6,
                "{n}: reference as Unix time"
            );
        }
        match (&d.mac, e.keyid) {
            (Some(mac), Some(id)) => {
                assert_eq!(mac.key_id, id, "{n}: key id");
                assert_eq!(Some(hex::encode(&mac.digest)), e.mac, "{n}: MAC digest");
            }
            (None, None) => {}
            (got, want) => panic!("{n}: MAC trailer {got:?}, manifest key id {want:?}"),
        }
        assert_eq!(
            d.is_crypto_nak(),
            e.crypto_nak == Some(true),
            "{n}: crypto-NAK"
        );
        assert_eq!(
            d.is_crypto_nak(),
            v.expected_verdict == "crypto-nak",
            "{n}: verdict vs crypto-NAK"
        );
        assert_eq!(
            d.mac.is_none(),
            v.expected_verdict == "no-mac",
            "{n}: verdict vs MAC presence"
        );
        let kiss = h.kiss_code().map(|k| k.to_string());
        assert_eq!(kiss, e.kiss_code, "{n}: kiss code");
        assert_eq!(d.to_bytes(), bytes, "{n}: re-encoding changed the bytes");
    }
}

#[test]
fn kod_vectors_are_never_time() {
    let m = vectors::manifest().expect("manifest.json readable");
    let limits = mcast_proto::SampleLimits::default();
    let mut kods = 0;
    for v in m.vectors.iter().filter(|v| v.expected.kiss_code.is_some()) {
        let d = Datagram::parse(&v.payload()).expect("KoD parses");
        assert_eq!(
            d.header.unusable_reason(&limits),
            Some(mcast_proto::Unusable::KissOfDeath(KissCode::Rate)),
            "{}: a RATE KoD must be refused as time",
            v.name
        );
        // ntpd's KoD echoes the request's transmit into all three fields.
        assert_eq!(d.header.origin, d.header.transmit, "{}", v.name);
        assert_eq!(d.header.receive, d.header.transmit, "{}", v.name);
        kods += 1;
    }
    assert_eq!(
        kods, 2,
        "the manifest has a plain and an authenticated KoD RATE"
    );
}

#[test]
fn broadcast_vectors_from_ntpd_are_usable_time() {
    let m = vectors::manifest().expect("manifest.json readable");
    let limits = mcast_proto::SampleLimits::default();
    for v in m
        .vectors
        .iter()
        .filter(|v| v.name.starts_with("mcast5-") && v.source == "captured")
    {
        let d = Datagram::parse(&v.payload()).expect("parses");
        assert_eq!(
            d.header.unusable_reason(&limits),
            None,
            "{}: a good ntpd broadcast (young servers report seconds of dispersion)",
            v.name
        );
    }
}
