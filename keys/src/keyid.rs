//! Key ids.

/// A symmetric key id, 1..=65535 (ntpd's `NTP_MAXKEY`).
///
/// On the wire the id is a 32-bit big-endian word; ids above 65535 are Autokey
/// session keys in ntpd and 0 means "no key", so neither can be a `KeyId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(u16);

impl KeyId {
    /// A key id from a number; `None` for 0 or anything above 65535.
    pub fn new(n: u32) -> Option<KeyId> {
        u16::try_from(n).ok().filter(|&v| v != 0).map(KeyId)
    }
    /// The id as a number.
    pub fn get(self) -> u16 {
        self.0
    }
    /// The id as the 4-byte big-endian word that precedes the digest on the wire.
    pub fn to_wire(self) -> [u8; 4] {
        u32::from(self.0).to_be_bytes()
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl From<KeyId> for u32 {
    fn from(id: KeyId) -> u32 {
        u32::from(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_1_to_65535() {
        assert_eq!(KeyId::new(0), None, "0 means 'no key'");
        assert_eq!(KeyId::new(1).map(KeyId::get), Some(1));
        assert_eq!(KeyId::new(65535).map(KeyId::get), Some(65535));
        assert_eq!(KeyId::new(65536), None, "ids above 65535 are Autokey ids");
        assert_eq!(KeyId::new(u32::MAX), None);
    }

    #[test]
    fn wire_form_is_big_endian_u32() {
        let id = KeyId::new(0x1234).unwrap();
        assert_eq!(id.to_wire(), [0, 0, 0x12, 0x34]);
        assert_eq!(u32::from(id), 0x1234);
        assert_eq!(id.to_string(), "4660");
    }
}
