//! Key (MAC algorithm) types.

/// The MAC algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// MD5(secret || message), 16 bytes.
    Md5,
    /// SHA1(secret || message), 20 bytes.
    Sha1,
    /// SHA256(secret || message) truncated to 20 bytes.
    Sha256,
    /// SHA384(secret || message) truncated to 20 bytes.
    Sha384,
    /// SHA512(secret || message) truncated to 20 bytes.
    Sha512,
    /// AES-128-CMAC (RFC 8573), 16 bytes.
    Aes128Cmac,
    /// HMAC-SHA256 truncated to 20 bytes (mcast-ntp only; ntpd cannot read it).
    ///
    /// ntpd 4.2.8p15 does not know this type: it logs the line and skips that key
    /// (without rejecting the rest of the file), so a keys file shared with ntpd may
    /// contain such keys, but ntpd peers can never use them.
    HmacSha256,
}

impl KeyType {
    /// Every key type, in the order used in messages.
    pub const ALL: [KeyType; 7] = [
        KeyType::Md5,
        KeyType::Sha1,
        KeyType::Sha256,
        KeyType::Sha384,
        KeyType::Sha512,
        KeyType::Aes128Cmac,
        KeyType::HmacSha256,
    ];

    /// The name used in keys files (`MD5`, `SHA1`, ..., `AES128CMAC`, `HMAC-SHA256`).
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Md5 => "MD5",
            KeyType::Sha1 => "SHA1",
            KeyType::Sha256 => "SHA256",
            KeyType::Sha384 => "SHA384",
            KeyType::Sha512 => "SHA512",
            KeyType::Aes128Cmac => "AES128CMAC",
            KeyType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// The key type with exactly this name, ignoring ASCII case.
    ///
    /// This does not apply ntpd's "anything starting with M is MD5" rule; the keys
    /// file reader does that.
    pub fn from_name(name: &str) -> Option<KeyType> {
        KeyType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// Digest length in bytes on the wire, without the 4-byte key id
    /// (16 for MD5 and AES128CMAC, 20 for everything else).
    pub fn mac_len(self) -> usize {
        match self {
            KeyType::Md5 | KeyType::Aes128Cmac => 16,
            KeyType::Sha1
            | KeyType::Sha256
            | KeyType::Sha384
            | KeyType::Sha512
            | KeyType::HmacSha256 => 20,
        }
    }

    /// Whether ntpd 4.2.8p15 (built with OpenSSL and CMAC) can use keys of this type.
    pub fn ntpd_compatible(self) -> bool {
        self != KeyType::HmacSha256
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for t in KeyType::ALL {
            assert_eq!(KeyType::from_name(t.name()), Some(t));
            assert_eq!(KeyType::from_name(&t.name().to_lowercase()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!(
            KeyType::from_name("M"),
            None,
            "the M rule lives in the reader"
        );
    }

    #[test]
    fn mac_lengths_match_ntpd() {
        let lens: Vec<usize> = KeyType::ALL.iter().map(|t| t.mac_len()).collect();
        assert_eq!(lens, [16, 20, 20, 20, 20, 16, 20]);
    }
}
