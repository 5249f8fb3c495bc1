//! Digest computation (ntpd `make_mac()` / `MD5authencrypt()`) and verdicts.

use crate::{KeyId, KeyType};
use digest::{KeyInit as _, Mac as _};
use std::net::IpAddr;

/// The longest digest on the wire (ntpd `MAX_MD5_LEN`): 20 bytes.
pub const MAX_DIGEST_LEN: usize = 20;

/// A computed digest (the MAC without its key id word), at most 20 bytes.
///
/// Not secret. Deliberately not `PartialEq`: compare received digests with
/// [`crate::Key::verify`], which runs in constant time.
#[derive(Clone, Copy)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: u8,
}

impl Digest {
    /// Keeps at most the first 20 bytes of `full`.
    fn truncated(full: &[u8]) -> Digest {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let mut len = 0u8;
        for (dst, src) in bytes.iter_mut().zip(full) {
            *dst = *src;
            len += 1;
        }
        Digest { bytes, len }
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True only for a digest that could not be computed (never for a real key).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({})", hex::encode(self.as_bytes()))
    }
}

/// Computes the digest of `message` with a key of type `key_type` and `secret`.
pub(crate) fn compute(key_type: KeyType, secret: &[u8], message: &[u8]) -> Digest {
    fn prefix_hash<H: digest::Digest>(secret: &[u8], message: &[u8]) -> Digest {
        let mut h = H::new();
        h.update(secret);
        h.update(message);
        Digest::truncated(&h.finalize())
    }
    match key_type {
        KeyType::Md5 => prefix_hash::<md5::Md5>(secret, message),
        KeyType::Sha1 => prefix_hash::<sha1::Sha1>(secret, message),
        KeyType::Sha256 => prefix_hash::<sha2::Sha256>(secret, message),
        KeyType::Sha384 => prefix_hash::<sha2::Sha384>(secret, message),
        KeyType::Sha512 => prefix_hash::<sha2::Sha512>(secret, message),
        KeyType::Aes128Cmac => {
            // First 16 bytes of the secret, zero-padded when shorter (ntpd, RFC 8573).
            let mut key = zeroize::Zeroizing::new([0u8; 16]);
            for (dst, src) in key.iter_mut().zip(secret) {
                *dst = *src;
            }
            let mut mac = cmac::Cmac::<aes::Aes128>::new(&(*key).into());
            mac.update(message);
            Digest::truncated(&mac.finalize().into_bytes())
        }
        KeyType::HmacSha256 => {
            // HMAC accepts keys of any length, so this never fails; if it ever did,
            // an empty digest fails closed (it never verifies).
            match hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) {
                Ok(mut mac) => {
                    mac.update(message);
                    Digest::truncated(&mac.finalize().into_bytes())
                }
                Err(_) => Digest::truncated(&[]),
            }
        }
    }
}

/// The result of checking a received MAC with [`crate::KeyStore::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacVerdict {
    /// The digest is right (and the source, if given, is allowed).
    Valid(KeyId),
    /// The key id on the wire is 0, above 65535, or not in the keys file.
    UnknownKey(u32),
    /// The digest has the wrong length for this key's type.
    BadLength {
        /// The key named on the wire.
        key_id: KeyId,
        /// The digest length the key type produces.
        expected: usize,
        /// The digest length received.
        got: usize,
    },
    /// The digest does not match.
    InvalidMac(KeyId),
    /// The digest matches, but the key's address list does not include the source.
    SourceNotAllowed {
        /// The key.
        key: KeyId,
        /// The source address that is not on the key's list.
        source: IpAddr,
    },
}

impl MacVerdict {
    /// True for [`MacVerdict::Valid`] only.
    pub fn is_valid(&self) -> bool {
        matches!(self, MacVerdict::Valid(_))
    }
}

impl std::fmt::Display for MacVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MacVerdict::Valid(k) => write!(f, "valid MAC (key {k})"),
            MacVerdict::UnknownKey(k) => write!(f, "unknown key {k}"),
            MacVerdict::BadLength {
                key_id,
                expected,
                got,
            } => write!(
                f,
                "key {key_id}: MAC length error: digest is {got} bytes, expected {expected}"
            ),
            MacVerdict::InvalidMac(k) => write!(f, "key {k}: MAC does not verify"),
            MacVerdict::SourceNotAllowed { key, source } => {
                write!(
                    f,
                    "key {key}: valid MAC, but {source} is not allowed to use this key"
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(t: KeyType, secret: &[u8], msg: &[u8]) -> String {
        hex::encode(compute(t, secret, msg).as_bytes())
    }

    /// Reference values computed independently with Python hashlib/hmac
    /// over message = bytes(range(48)), secret = b"LabMd5Key-0001".
    #[test]
    fn digests_match_python_reference() {
        let secret = b"LabMd5Key-0001";
        let msg: Vec<u8> = (0u8..48).collect();
        assert_eq!(
            hx(KeyType::Md5, secret, &msg),
            "11f10c2abff4c0cd24abd44583baa612"
        );
        assert_eq!(
            hx(KeyType::Sha256, secret, &msg),
            "f3601ac79f7d7a6d287ffc2187d7de6f24ee3db7"
        );
        assert_eq!(
            hx(KeyType::Sha384, secret, &msg),
            "b6304022ef363ed22e4158c5528dd5f185ab5a5e"
        );
        assert_eq!(
            hx(KeyType::Sha512, secret, &msg),
            "68d7a45b5aba33f64d9fb11a8b8b6d10ebb78212"
        );
        assert_eq!(
            hx(KeyType::HmacSha256, secret, &msg),
            "95e9d12f7b83980cf1c7d431ab80a520ae895a1b",
            "HMAC-SHA256 is real HMAC, not H(secret || message)"
        );
    }

    /// RFC 4493 example 1 (empty message) and the zero-padding/truncation rule.
    #[test]
    fn cmac_rfc4493_and_key_shaping() {
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        assert_eq!(
            hx(KeyType::Aes128Cmac, &key, b""),
            "bb1d6929e95937287fa37d129b756746"
        );
        let mut long = key.clone();
        long.extend_from_slice(b"ignored tail");
        assert_eq!(
            hx(KeyType::Aes128Cmac, &long, b"x"),
            hx(KeyType::Aes128Cmac, &key, b"x")
        );
        let mut padded = b"short".to_vec();
        padded.resize(16, 0);
        assert_eq!(
            hx(KeyType::Aes128Cmac, b"short", b"x"),
            hx(KeyType::Aes128Cmac, &padded, b"x"),
            "a short CMAC key is zero-padded to 16 bytes"
        );
    }

    #[test]
    fn lengths_follow_key_type() {
        for t in KeyType::ALL {
            assert_eq!(compute(t, b"k", b"m").len(), t.mac_len(), "{t}");
        }
    }
}
