//! Datagram framing as ntpd 4.2.8 reads it: the header, then RFC 7822
//! extension fields, then an optional legacy MAC.
//!
//! After the 48-byte header, ntpd looks at what remains: a remainder of at
//! most 24 bytes is a MAC (a 4-byte key id, then 0 to 20 bytes of digest;
//! key id 0 with no digest is a crypto-NAK); a longer remainder starts with
//! an extension field (type 16 bits, length 16 bits counting the whole
//! field, a multiple of 4), which is skipped before looking again. We read
//! the same way, so a packet means the same to us as to ntpd, and keep every
//! byte so that serializing a parsed datagram reproduces it exactly.

use crate::error::ParseError;
use crate::header::{HEADER_LEN, Header};

/// Largest trailer read as a legacy MAC (ntpd `MAX_MAC_LEN`): key id + 20 bytes.
pub const MAX_MAC_LEN: usize = 24;
/// Longest digest in a legacy MAC.
pub const MAX_DIGEST_LEN: usize = 20;

/// An RFC 7822 extension field, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExtensionField {
    /// Field type.
    pub field_type: u16,
    /// Value, including any padding; its length is a multiple of 4.
    pub value: Vec<u8>,
}

impl ExtensionField {
    /// Length on the wire: 4 bytes of type and length, then the value.
    pub fn wire_len(&self) -> usize {
        4 + self.value.len()
    }
}

/// A legacy MAC trailer: key id and digest (RFC 5905 section 7.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mac {
    /// Key id as sent (symmetric keys are 1..=65535; 0 only in a crypto-NAK).
    pub key_id: u32,
    /// The digest, 0 to 20 bytes as sent.
    pub digest: Vec<u8>,
}

impl Mac {
    /// A crypto-NAK: key id 0 and no digest.
    pub fn crypto_nak() -> Self {
        Mac {
            key_id: 0,
            digest: Vec::new(),
        }
    }

    /// Whether this is a crypto-NAK.
    pub fn is_crypto_nak(&self) -> bool {
        self.key_id == 0 && self.digest.is_empty()
    }
}

/// A whole NTP datagram.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Datagram {
    /// The 48-byte header.
    pub header: Header,
    /// Extension fields, in order.
    pub extensions: Vec<ExtensionField>,
    /// The MAC trailer, if any.
    pub mac: Option<Mac>,
}

impl Datagram {
    /// A datagram of just a header.
    pub fn new(header: Header) -> Self {
        Datagram {
            header,
            extensions: Vec::new(),
            mac: None,
        }
    }

    /// Parses a datagram the way ntpd's `receive()` frames it.
    pub fn parse(buf: &[u8]) -> Result<Self, ParseError> {
        let header = Header::parse(buf)?;
        let mut extensions = Vec::new();
        let mut offset = HEADER_LEN;
        loop {
            let rest = buf.get(offset..).unwrap_or_default();
            if rest.is_empty() {
                return Ok(Datagram {
                    header,
                    extensions,
                    mac: None,
                });
            }
            if rest.len() % 4 != 0 {
                return Err(ParseError::TrailerNotAligned {
                    len: buf.len() - HEADER_LEN,
                });
            }
            // `rest` is a non-empty multiple of 4 here, so it has a first word.
            let Some((word, after)) = rest.split_first_chunk::<4>() else {
                return Err(ParseError::TrailerNotAligned {
                    len: buf.len() - HEADER_LEN,
                });
            };
            if rest.len() <= MAX_MAC_LEN {
                let mac = Mac {
                    key_id: u32::from_be_bytes(*word),
                    digest: after.to_vec(),
                };
                return Ok(Datagram {
                    header,
                    extensions,
                    mac: Some(mac),
                });
            }
            let [t0, t1, l0, l1] = *word;
            let field_type = u16::from_be_bytes([t0, t1]);
            let length = usize::from(u16::from_be_bytes([l0, l1]));
            if length < 4 || length % 4 != 0 {
                return Err(ParseError::ExtensionFieldLength { offset, length });
            }
            let field = rest
                .get(4..length)
                .ok_or(ParseError::ExtensionFieldOverrun {
                    offset,
                    length,
                    remaining: rest.len(),
                })?;
            extensions.push(ExtensionField {
                field_type,
                value: field.to_vec(),
            });
            offset += length;
        }
    }

    /// Number of leading bytes a MAC covers: the header and every extension
    /// field (the key id is not covered).
    pub fn signed_len(&self) -> usize {
        HEADER_LEN
            + self
                .extensions
                .iter()
                .map(ExtensionField::wire_len)
                .sum::<usize>()
    }

    /// Appends the bytes a MAC covers (header and extension fields) to `out`.
    pub fn write_signed_part(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header.to_bytes());
        for ef in &self.extensions {
            out.extend_from_slice(&ef.field_type.to_be_bytes());
            // A field longer than 65535 bytes cannot be framed; its length
            // is written truncated, as the wire format allows nothing else.
            let len = u16::try_from(ef.wire_len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&ef.value);
        }
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.signed_len() + MAX_MAC_LEN);
        self.write_signed_part(&mut out);
        if let Some(mac) = &self.mac {
            out.extend_from_slice(&mac.key_id.to_be_bytes());
            out.extend_from_slice(&mac.digest);
        }
        out
    }

    /// Whether the trailer is a crypto-NAK.
    pub fn is_crypto_nak(&self) -> bool {
        self.mac.as_ref().is_some_and(Mac::is_crypto_nak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Mode;

    fn with_trailer(trailer: &[u8]) -> Vec<u8> {
        let mut b = Header::new(Mode::Broadcast).to_bytes().to_vec();
        b.extend_from_slice(trailer);
        b
    }

    #[test]
    fn plain_header() {
        let d = Datagram::parse(&with_trailer(&[])).unwrap();
        assert_eq!(d.mac, None);
        assert!(d.extensions.is_empty());
    }

    #[test]
    fn crypto_nak_is_four_zero_bytes() {
        let d = Datagram::parse(&with_trailer(&[0; 4])).unwrap();
        assert!(d.is_crypto_nak());
        assert_eq!(d.to_bytes().len(), 52);
    }

    #[test]
    fn trailers_up_to_24_bytes_are_macs() {
        for len in [4usize, 8, 12, 16, 20, 24] {
            let mut t = vec![0xAB; len];
            t[..4].copy_from_slice(&7u32.to_be_bytes());
            let d = Datagram::parse(&with_trailer(&t)).unwrap();
            let mac = d.mac.as_ref().expect("a trailer of <= 24 bytes is a MAC");
            assert_eq!(mac.key_id, 7);
            assert_eq!(mac.digest.len(), len - 4);
            assert_eq!(d.signed_len(), HEADER_LEN);
        }
    }

    #[test]
    fn misaligned_trailer() {
        assert_eq!(
            Datagram::parse(&with_trailer(&[0; 6])),
            Err(ParseError::TrailerNotAligned { len: 6 })
        );
        assert_eq!(
            Datagram::parse(&with_trailer(&[0; 2])),
            Err(ParseError::TrailerNotAligned { len: 2 })
        );
    }

    #[test]
    fn extension_field_then_mac() {
        let mut t = vec![0x01, 0x04, 0x00, 0x10];
        t.extend_from_slice(&[0x55; 12]);
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&[0x99; 16]);
        let buf = with_trailer(&t);
        let d = Datagram::parse(&buf).unwrap();
        assert_eq!(d.extensions.len(), 1);
        assert_eq!(d.extensions[0].field_type, 0x0104);
        assert_eq!(d.signed_len(), 64);
        assert_eq!(d.mac.as_ref().map(|m| m.key_id), Some(1));
        assert_eq!(d.to_bytes(), buf);
    }

    #[test]
    fn short_last_field_without_mac_reads_as_mac_like_ntpd() {
        // 28 bytes: one 28-byte field. 24 bytes would be read as a MAC.
        let mut t = vec![0x02, 0x00, 0x00, 0x1c];
        t.extend_from_slice(&[0; 24]);
        let d = Datagram::parse(&with_trailer(&t)).unwrap();
        assert_eq!((d.extensions.len(), d.mac), (1, None));
        let mut t = vec![0x02, 0x00, 0x00, 0x18];
        t.extend_from_slice(&[0; 20]);
        let d = Datagram::parse(&with_trailer(&t)).unwrap();
        assert!(d.extensions.is_empty());
        assert_eq!(d.mac.map(|m| m.key_id), Some(0x0200_0018));
    }

    #[test]
    fn bad_extension_fields() {
        let mut t = vec![0x01, 0x00, 0x00, 0x02];
        t.extend_from_slice(&[0; 24]);
        assert_eq!(
            Datagram::parse(&with_trailer(&t)),
            Err(ParseError::ExtensionFieldLength {
                offset: 48,
                length: 2
            })
        );
        let mut t = vec![0x01, 0x00, 0x01, 0x00];
        t.extend_from_slice(&[0; 24]);
        assert_eq!(
            Datagram::parse(&with_trailer(&t)),
            Err(ParseError::ExtensionFieldOverrun {
                offset: 48,
                length: 256,
                remaining: 28
            })
        );
    }
}
