//! MACs on whole NTP datagrams: the glue between the wire format
//! ([`mcast_proto::Datagram`]) and the keys.

use std::net::IpAddr;

use mcast_proto::Datagram;

use crate::{Key, KeyStore, MacVerdict};

/// What a received datagram's trailer says about its authenticity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketAuth {
    /// No MAC at all (a 48-byte packet, or extension fields only).
    NoMac,
    /// A crypto-NAK (key id 0, no digest). Unauthenticated by nature: it
    /// must never change any state.
    CryptoNak,
    /// A MAC, with the verdict of checking it.
    Mac(MacVerdict),
}

impl PacketAuth {
    /// True only for a MAC that verified (and whose source was allowed).
    pub fn is_valid(&self) -> bool {
        matches!(self, PacketAuth::Mac(v) if v.is_valid())
    }
}

impl std::fmt::Display for PacketAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketAuth::NoMac => f.write_str("no MAC"),
            PacketAuth::CryptoNak => f.write_str("crypto-NAK"),
            PacketAuth::Mac(v) => v.fmt(f),
        }
    }
}

/// Checks the MAC of a received datagram. `raw` is the datagram as
/// received and `parsed` its parse; the digest covers `raw[..signed_len]`
/// (header and extension fields). The source address is checked against
/// the key's address list only after the digest verified.
pub fn authenticate(
    store: &KeyStore,
    raw: &[u8],
    parsed: &Datagram,
    source: Option<IpAddr>,
) -> PacketAuth {
    let Some(mac) = &parsed.mac else {
        return PacketAuth::NoMac;
    };
    if mac.is_crypto_nak() {
        return PacketAuth::CryptoNak;
    }
    let message = raw.get(..parsed.signed_len()).unwrap_or_default();
    PacketAuth::Mac(store.check(mac.key_id, message, &mac.digest, source))
}

/// Serializes `datagram` into `out` (cleared first) with a MAC made with
/// `key`, replacing any MAC it had.
pub fn sign(key: &Key, datagram: &Datagram, out: &mut Vec<u8>) {
    out.clear();
    datagram.write_signed_part(out);
    let digest = key.compute(out);
    out.extend_from_slice(&key.id().to_wire());
    out.extend_from_slice(digest.as_bytes());
}

/// Serializes `datagram` with a crypto-NAK trailer (key id 0, no digest),
/// what a server answers to a request whose MAC failed.
pub fn crypto_nak(datagram: &Datagram, out: &mut Vec<u8>) {
    out.clear();
    datagram.write_signed_part(out);
    out.extend_from_slice(&0u32.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KeyId, KeyType};
    use mcast_proto::{Header, Mode, NtpTimestamp};
    use std::path::Path;

    fn store() -> KeyStore {
        let key = Key::new(
            KeyId::new(5).expect("5 is a key id"),
            KeyType::Aes128Cmac,
            b"0123456789abcdef",
        );
        KeyStore::from_keys(Path::new("test.keys"), [key]).expect("one key")
    }

    #[test]
    fn sign_then_authenticate() {
        let store = store();
        let key = store.get(KeyId::new(5).expect("id")).expect("key 5");
        let mut h = Header::new(Mode::Broadcast);
        h.transmit = NtpTimestamp::from_unix(1_800_000_000, 5);
        let mut buf = Vec::new();
        sign(key, &Datagram::new(h), &mut buf);
        assert_eq!(buf.len(), 68);
        let d = Datagram::parse(&buf).expect("parses");
        assert_eq!(
            authenticate(&store, &buf, &d, None),
            PacketAuth::Mac(MacVerdict::Valid(key.id()))
        );
        let mut bad = buf.clone();
        bad[40] ^= 1;
        let d = Datagram::parse(&bad).expect("parses");
        assert_eq!(
            authenticate(&store, &bad, &d, None),
            PacketAuth::Mac(MacVerdict::InvalidMac(key.id()))
        );
        crypto_nak(&Datagram::new(h), &mut buf);
        let d = Datagram::parse(&buf).expect("parses");
        assert_eq!(authenticate(&store, &buf, &d, None), PacketAuth::CryptoNak);
        let plain = Datagram::new(h).to_bytes();
        let d = Datagram::parse(&plain).expect("parses");
        assert_eq!(authenticate(&store, &plain, &d, None), PacketAuth::NoMac);
    }
}
