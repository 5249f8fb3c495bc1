//! One key.

use crate::mac::{self, Digest};
use crate::{KeyId, KeyType, SourcePrefix};
use std::net::IpAddr;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// One symmetric key: id, type, secret and optional allowed-source list.
///
/// The secret is zeroized when the key is dropped and is never shown: `Debug`
/// prints only the id, the type and the address list, and there is no accessor
/// for the secret bytes.
#[derive(Clone)]
pub struct Key {
    id: KeyId,
    key_type: KeyType,
    secret: Zeroizing<Vec<u8>>,
    sources: Vec<SourcePrefix>,
}

impl Key {
    /// A key with this secret (copied) and no address restriction.
    pub fn new(id: KeyId, key_type: KeyType, secret: &[u8]) -> Key {
        Key::from_parts(id, key_type, Zeroizing::new(secret.to_vec()), Vec::new())
    }

    pub(crate) fn from_parts(
        id: KeyId,
        key_type: KeyType,
        secret: Zeroizing<Vec<u8>>,
        sources: Vec<SourcePrefix>,
    ) -> Key {
        Key {
            id,
            key_type,
            secret,
            sources,
        }
    }

    /// The same key restricted to these sources (an empty list allows everyone).
    pub fn with_allowed_sources(mut self, sources: Vec<SourcePrefix>) -> Key {
        self.sources = sources;
        self
    }

    /// The key id.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The MAC algorithm.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether this key may be used by (or for) `addr`, per the keys file's fourth field:
    /// true when the list is empty or any entry contains `addr`
    /// (IPv4-mapped IPv6 addresses match IPv4 entries).
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|p| p.contains(addr))
    }

    /// The allowed-source list as written in the keys file (empty: no restriction).
    pub fn allowed_sources(&self) -> &[SourcePrefix] {
        &self.sources
    }

    /// Digest length in bytes (without the 4-byte key id).
    pub fn mac_len(&self) -> usize {
        self.key_type.mac_len()
    }

    /// The digest of `message` (header plus extension fields; never the key id word).
    pub fn compute(&self, message: &[u8]) -> Digest {
        mac::compute(self.key_type, &self.secret, message)
    }

    /// Whether `digest` is the right digest of `message`, compared in constant time.
    /// A digest of the wrong length is simply not valid.
    pub fn verify(&self, message: &[u8], digest: &[u8]) -> bool {
        let expected = self.compute(message);
        digest.len() == expected.len()
            && !expected.is_empty()
            && bool::from(expected.as_bytes().ct_eq(digest))
    }

    /// Appends the MAC trailer for `message` to `out`: key id (u32 big-endian) || digest.
    pub fn sign_into(&self, message: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_wire());
        out.extend_from_slice(self.compute(message).as_bytes());
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id.get())
            .field("type", &self.key_type.name())
            .field(
                "allowed_sources",
                &self
                    .sources
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = b"TopSecretKeyText";
        let key = Key::new(KeyId::new(42).unwrap(), KeyType::Md5, secret)
            .with_allowed_sources(vec!["198.18.0.0/24".parse().unwrap()]);
        for shown in [format!("{key:?}"), format!("{key:#?}")] {
            assert!(shown.contains("42"), "id missing from {shown}");
            assert!(shown.contains("MD5"), "type missing from {shown}");
            assert!(
                shown.contains("198.18.0.0/24"),
                "sources missing from {shown}"
            );
            assert!(!shown.contains("TopSecret"), "secret text leaked: {shown}");
            assert!(
                !shown.contains(&hex::encode(secret)),
                "secret hex leaked: {shown}"
            );
            assert!(
                !shown.contains(&format!("{:?}", &secret[..4])),
                "secret bytes leaked"
            );
            assert!(
                !shown.contains("84, 111, 112"),
                "secret bytes leaked: {shown}"
            );
        }
    }

    #[test]
    fn sign_into_appends_keyid_then_digest() {
        let key = Key::new(KeyId::new(258).unwrap(), KeyType::Sha1, b"abc");
        let mut out = b"prefix".to_vec();
        key.sign_into(b"msg", &mut out);
        assert_eq!(out.len(), 6 + 4 + 20);
        assert_eq!(&out[6..10], &[0, 0, 1, 2]);
        assert_eq!(&out[10..], key.compute(b"msg").as_bytes());
        assert!(key.verify(b"msg", &out[10..]));
        assert!(!key.verify(b"msg", &out[10..29]), "short digest must fail");
        assert!(!key.verify(b"msg", &[]), "empty digest must fail");
    }

    #[test]
    fn allows_with_and_without_list() {
        let key = Key::new(KeyId::new(1).unwrap(), KeyType::Md5, b"k");
        assert!(
            key.allows("203.0.113.5".parse().unwrap()),
            "empty list allows all"
        );
        let key = key.with_allowed_sources(vec![
            "198.18.0.1".parse().unwrap(),
            "2001:db8::/48".parse().unwrap(),
        ]);
        assert!(key.allows("198.18.0.1".parse().unwrap()));
        assert!(key.allows("::ffff:198.18.0.1".parse().unwrap()));
        assert!(key.allows("2001:db8:0:1::9".parse().unwrap()));
        assert!(!key.allows("198.18.0.2".parse().unwrap()));
        assert!(!key.allows("2001:db9::1".parse().unwrap()));
    }
}
