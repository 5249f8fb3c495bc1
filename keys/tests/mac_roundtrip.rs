//! Sign/verify round trips for every key type, and single-bit tampering.

#![cfg(test)]

use mcast_keys::{Key, KeyId, KeyStore, KeyType, MacVerdict};
use proptest::prelude::*;
use std::path::Path;

fn key_type() -> impl Strategy<Value = KeyType> {
    proptest::sample::select(KeyType::ALL.to_vec())
}

proptest! {
    #[test]
    fn sign_then_verify_and_any_flipped_bit_fails(
        ty in key_type(),
        raw_id in 1u32..=65535,
        secret in proptest::collection::vec(any::<u8>(), 1..40),
        message in proptest::collection::vec(any::<u8>(), 0..120),
        flip in any::<prop::sample::Index>(),
    ) {
        let id = KeyId::new(raw_id).unwrap();
        let key = Key::new(id, ty, &secret);
        let mut packet = message.clone();
        key.sign_into(&message, &mut packet);
        prop_assert_eq!(packet.len(), message.len() + 4 + ty.mac_len());
        let (msg, trailer) = packet.split_at(message.len());
        prop_assert_eq!(&trailer[..4], &raw_id.to_be_bytes()[..], "key id word, big-endian");
        let digest = &trailer[4..];
        prop_assert!(key.verify(msg, digest), "{} failed to verify its own MAC", ty);

        let store = KeyStore::from_keys(Path::new("mem"), [key.clone()]).unwrap();
        prop_assert_eq!(store.check(raw_id, msg, digest, None), MacVerdict::Valid(id));

        // Flip one bit anywhere in message || digest (never the key id word).
        let mut tampered = [msg, digest].concat();
        let bit = flip.index(tampered.len() * 8);
        tampered[bit / 8] ^= 1 << (bit % 8);
        let (m2, d2) = tampered.split_at(msg.len());
        prop_assert!(!key.verify(m2, d2), "{}: bit {} flipped but still verified", ty, bit);
        prop_assert_eq!(store.check(raw_id, m2, d2, None), MacVerdict::InvalidMac(id));
    }

    #[test]
    fn wrong_length_digests_never_verify(
        ty in key_type(),
        len in 0usize..40,
    ) {
        let key = Key::new(KeyId::new(1).unwrap(), ty, b"secret");
        let mut digest = key.compute(b"m").as_bytes().to_vec();
        digest.resize(len, 0);
        prop_assert_eq!(key.verify(b"m", &digest), len == ty.mac_len());
    }
}

#[test]
fn every_type_round_trips_through_a_parsed_keys_file() {
    let text = "1 MD5 md5-secret\n2 SHA1 sha1-secret\n3 SHA256 s256\n4 SHA384 s384\n\
                5 SHA512 s512\n6 AES128CMAC 000102030405060708090a0b0c0d0e0f\n\
                7 HMAC-SHA256 hmac-secret\n";
    let store = KeyStore::parse(text, Path::new("all.keys")).unwrap();
    assert_eq!(store.len(), KeyType::ALL.len());
    for (key, ty) in store.iter().zip(KeyType::ALL) {
        assert_eq!(key.key_type(), ty);
        let mut out = Vec::new();
        key.sign_into(b"header", &mut out);
        let wire = u32::from_be_bytes(out[..4].try_into().unwrap());
        assert_eq!(
            store.check(wire, b"header", &out[4..], None),
            MacVerdict::Valid(key.id())
        );
        assert_eq!(
            store.check(wire, b"header", &out[4..out.len() - 1], None),
            MacVerdict::BadLength {
                key_id: key.id(),
                expected: ty.mac_len(),
                got: ty.mac_len() - 1
            }
        );
    }
    // Distinct types give distinct digests for the same secret and message.
    let digests: std::collections::BTreeSet<Vec<u8>> = KeyType::ALL
        .iter()
        .map(|&t| {
            Key::new(KeyId::new(1).unwrap(), t, b"same")
                .compute(b"m")
                .as_bytes()
                .to_vec()
        })
        .collect();
    assert_eq!(digests.len(), KeyType::ALL.len());
}
