//! The lab keys file and captured ntpd 4.2.8p15 packets (tests/data/vectors).

#![cfg(test)]

use mcast_keys::{Key, KeyId, KeyStore, KeyType, MacVerdict};
use serde_json::Value;
use std::path::Path;

const KEYS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/vectors/ntp.keys"
);
const NTPKEYGEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/vectors/ntpkey_MD5key_vm.4004301057"
);
const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/data/vectors/manifest.json"
);

fn store(path: &str) -> KeyStore {
    let text = std::fs::read_to_string(path).unwrap();
    KeyStore::parse(&text, Path::new(path)).unwrap_or_else(|e| panic!("{path} should parse: {e}"))
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(MANIFEST).unwrap()).unwrap()
}

fn id(n: u64) -> KeyId {
    KeyId::new(u32::try_from(n).unwrap()).unwrap()
}

/// Several messages of different lengths: equal MACs on all of them mean equal key bytes.
fn same_key_bytes(a: &Key, b: &Key) -> bool {
    let msgs: [&[u8]; 3] = [
        b"",
        &[0x23; 48],
        b"a somewhat longer message, 45 bytes long....",
    ];
    msgs.iter()
        .all(|m| a.compute(m).as_bytes() == b.compute(m).as_bytes())
}

#[test]
fn lab_keys_file_has_the_nine_manifest_keys() {
    let store = store(KEYS);
    assert!(
        store.warnings().is_empty(),
        "unexpected warnings: {:?}",
        store.warnings()
    );
    let m = manifest();
    let keys = m["keys"].as_array().unwrap();
    assert_eq!(store.len(), 9, "ntp.keys should hold 9 keys");
    assert_eq!(keys.len(), 9);
    for k in keys {
        let kid = id(k["id"].as_u64().unwrap());
        let key = store
            .get(kid)
            .unwrap_or_else(|| panic!("key {kid} missing"));
        let ty = KeyType::from_name(k["type"].as_str().unwrap()).unwrap();
        assert_eq!(key.key_type(), ty, "key {kid}: type");
        assert_eq!(
            key.mac_len() as u64,
            k["mac_len"].as_u64().unwrap(),
            "key {kid}: mac_len"
        );
        let bytes = hex::decode(k["key_hex"].as_str().unwrap()).unwrap();
        let reference = Key::new(kid, ty, &bytes);
        assert!(
            same_key_bytes(key, &reference),
            "key {kid}: parsed secret differs from manifest key_hex ({} encoding)",
            k["encoding"]
        );
        assert!(key.allowed_sources().is_empty());
    }
    // Key 7: 20 hex-looking characters are ASCII, not 10 bytes of hex.
    let as_hex = Key::new(
        id(7),
        KeyType::Md5,
        &hex::decode("0123456789abcdef0123").unwrap(),
    );
    assert!(
        !same_key_bytes(store.get(id(7)).unwrap(), &as_hex),
        "key 7 must be read as ASCII"
    );
}

#[test]
fn real_ntp_keygen_file_has_10_md5_and_10_sha1_keys() {
    let real = store(NTPKEYGEN);
    assert!(real.warnings().is_empty(), "{:?}", real.warnings());
    let types: Vec<(u16, KeyType)> = real.iter().map(|k| (k.id().get(), k.key_type())).collect();
    let expected: Vec<(u16, KeyType)> = (1..=20)
        .map(|i| (i, if i <= 10 { KeyType::Md5 } else { KeyType::Sha1 }))
        .collect();
    assert_eq!(
        types, expected,
        "ntp-keygen -M writes ids 1-10 MD5, 11-20 SHA1"
    );
    // ntp.keys keys 8 and 9 are copies of this file's keys 1 and 11.
    let lab = store(KEYS);
    assert!(same_key_bytes(
        real.get(id(1)).unwrap(),
        lab.get(id(8)).unwrap()
    ));
    assert!(same_key_bytes(
        real.get(id(11)).unwrap(),
        lab.get(id(9)).unwrap()
    ));
}

#[test]
fn manifest_vectors_give_the_expected_verdicts() {
    let store = store(KEYS);
    let m = manifest();
    let mut checked = 0;
    for v in m["vectors"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let verdict = v["expected_verdict"].as_str().unwrap();
        if v["key"].is_null() || !matches!(verdict, "valid" | "invalid-mac" | "unknown-key") {
            continue;
        }
        let payload = hex::decode(v["udp_payload_hex"].as_str().unwrap()).unwrap();
        let mac_len = match v["key"]["mac_len"].as_u64() {
            Some(n) => usize::try_from(n).unwrap(),
            None => payload.len() - 48 - 4, // unknown key: no extension fields here
        };
        let split = payload.len() - 4 - mac_len;
        assert_eq!(split, 48, "{name}: vectors have no extension fields");
        let (message, trailer) = payload.split_at(split);
        let wire_id = u32::from_be_bytes(trailer[..4].try_into().unwrap());
        let digest = &trailer[4..];
        assert_eq!(
            u64::from(wire_id),
            v["key"]["id"].as_u64().unwrap(),
            "{name}: key id"
        );
        assert_eq!(
            hex::encode(digest),
            v["expected"]["mac"].as_str().unwrap(),
            "{name}: mac"
        );

        let got = store.check(wire_id, message, digest, None);
        let expected = match verdict {
            "valid" => MacVerdict::Valid(KeyId::new(wire_id).unwrap()),
            "invalid-mac" => MacVerdict::InvalidMac(KeyId::new(wire_id).unwrap()),
            _ => MacVerdict::UnknownKey(wire_id),
        };
        assert_eq!(got, expected, "{name}: expected {verdict}");

        if verdict == "valid" {
            // We produce byte-identical trailers to ntpd.
            let key = store.get(KeyId::new(wire_id).unwrap()).unwrap();
            let mut out = message.to_vec();
            key.sign_into(message, &mut out);
            assert_eq!(out, payload, "{name}: our signature differs from ntpd's");
        }
        checked += 1;
    }
    assert_eq!(checked, 44, "number of MAC vectors checked");
}

#[test]
fn check_reports_length_and_source_problems() {
    let lab = store(KEYS);
    let m = manifest();
    let v = m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "mcast5-md5-ascii-k1")
        .unwrap();
    let payload = hex::decode(v["udp_payload_hex"].as_str().unwrap()).unwrap();
    let (msg, digest) = (&payload[..48], &payload[52..]);
    let k1 = KeyId::new(1).unwrap();
    assert_eq!(
        lab.check(1, msg, &digest[..15], None),
        MacVerdict::BadLength {
            key_id: k1,
            expected: 16,
            got: 15
        }
    );
    assert_eq!(lab.check(0, msg, digest, None), MacVerdict::UnknownKey(0));
    assert_eq!(
        lab.check(65537, msg, digest, None),
        MacVerdict::UnknownKey(65537)
    );

    let src: std::net::SocketAddr = v["src"].as_str().unwrap().parse().unwrap();
    let src = src.ip();
    let restricted = format!("1 MD5 LabMd5Key-0001 {src}\n");
    let store = KeyStore::parse(&restricted, Path::new("r.keys")).unwrap();
    assert_eq!(
        store.check(1, msg, digest, Some(src)),
        MacVerdict::Valid(k1)
    );
    let other: std::net::IpAddr = "198.18.0.250".parse().unwrap();
    assert_eq!(
        store.check(1, msg, digest, Some(other)),
        MacVerdict::SourceNotAllowed {
            key: k1,
            source: other
        }
    );
    // The address check only happens after the MAC verified.
    let mut bad = digest.to_vec();
    bad[0] ^= 1;
    assert_eq!(
        store.check(1, msg, &bad, Some(other)),
        MacVerdict::InvalidMac(k1)
    );
}
