//! Every vector's MAC verdict, checked on whole datagrams with the lab keys
//! file, agrees with what reference ntpd 4.2.8p15 decided.
#![cfg(test)]

use mcast_keys::{KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::Datagram;
use mcast_tests::vectors;

fn verdict_name(a: &PacketAuth) -> &'static str {
    match a {
        PacketAuth::NoMac => "no-mac",
        PacketAuth::CryptoNak => "crypto-nak",
        PacketAuth::Mac(MacVerdict::Valid(_)) => "valid",
        PacketAuth::Mac(MacVerdict::UnknownKey(_)) => "unknown-key",
        PacketAuth::Mac(MacVerdict::InvalidMac(_) | MacVerdict::BadLength { .. }) => "invalid-mac",
        PacketAuth::Mac(MacVerdict::SourceNotAllowed { .. }) => "source-not-allowed",
    }
}

#[test]
fn every_vector_has_the_expected_verdict() {
    let store = KeyStore::load(&vectors::keys_file()).expect("lab keys file parses");
    let m = vectors::manifest().expect("manifest.json readable");
    let mut seen = std::collections::BTreeMap::new();
    for v in &m.vectors {
        let raw = v.payload();
        let d = Datagram::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let got = packet::authenticate(&store, &raw, &d, None);
        assert_eq!(
            verdict_name(&got),
            v.expected_verdict,
            "{}: verdict ({got})",
            v.name
        );
        *seen.entry(v.expected_verdict.clone()).or_insert(0) += 1;
    }
    for verdict in [
        "valid",
        "invalid-mac",
        "unknown-key",
        "no-mac",
        "crypto-nak",
    ] {
        assert!(
            seen.contains_key(verdict),
            "no vector exercised the verdict {verdict}"
        );
    }
}

#[test]
fn re_signing_a_captured_packet_reproduces_ntpds_mac() {
    let store = KeyStore::load(&vectors::keys_file()).expect("lab keys file parses");
    let m = vectors::manifest().expect("manifest.json readable");
    let mut count = 0;
    for v in m.vectors.iter().filter(|v| v.expected_verdict == "valid") {
        let raw = v.payload();
        let d = Datagram::parse(&raw).expect("parses");
        let id = mcast_keys::KeyId::new(d.mac.as_ref().expect("has a MAC").key_id).expect("key id");
        let key = store.get(id).expect("key in the lab file");
        let mut out = Vec::new();
        packet::sign(key, &d, &mut out);
        assert_eq!(out, raw, "{}: our MAC differs from ntpd's", v.name);
        count += 1;
    }
    assert!(
        count >= 30,
        "expected at least 30 valid vectors, got {count}"
    );
}

#[test]
fn a_key_bound_to_another_address_is_refused() {
    // Key 1 restricted to 198.18.0.1: the same valid packet from .2 is refused.
    let text = "1 MD5 LabMd5Key-0001 198.18.0.1\n";
    let store = KeyStore::parse(text, std::path::Path::new("bound.keys")).expect("parses");
    let m = vectors::manifest().expect("manifest.json readable");
    let v = m
        .vectors
        .iter()
        .find(|v| v.name == "mcast5-md5-ascii-k1")
        .expect("vector present");
    let raw = v.payload();
    let d = Datagram::parse(&raw).expect("parses");
    let from = |s: &str| Some(s.parse().expect("address"));
    assert!(packet::authenticate(&store, &raw, &d, from("198.18.0.1")).is_valid());
    assert!(matches!(
        packet::authenticate(&store, &raw, &d, from("198.18.0.2")),
        PacketAuth::Mac(MacVerdict::SourceNotAllowed { .. })
    ));
}
