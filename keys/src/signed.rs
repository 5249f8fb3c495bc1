//! Signed broadcasts: each server's own Ed25519 key, so that no client, and
//! nobody holding a shared MAC key, can forge a server.
//!
//! A signed packet is the 48-byte header, then one RFC 7822 extension field
//! of type [`FIELD_TYPE`], then optionally the legacy MAC (key id and
//! digest) computed over the header and the field, exactly as ntpd computes
//! MACs over everything before them. ntpd 4.2.8 clients skip the field and
//! check the MAC, so one stream serves them and our clients at once.
//!
//! The field's value ([`FIELD_VALUE_LEN`] bytes, 100 on the wire with the
//! type and length, within the 28 to 120 bytes ntpd 4.2.8p15 accepts):
//!
//! | bytes | content |
//! |---|---|
//! | 4 | magic and version, `MCS1` |
//! | 8 | fingerprint of the signing key ([`Fingerprint`]) |
//! | 16 | destination address the server sent to (IPv4 as v4-mapped IPv6) |
//! | 2 | destination port |
//! | 2 | zero |
//! | 64 | Ed25519 signature |
//!
//! The signature covers [`CONTEXT`], the header, and the field's value up to
//! the signature. A packet replayed into a group its receiver does not
//! listen to is refused before the signature is checked ([`check_field`]
//! is given the groups); a packet with any byte of header or field changed
//! fails the signature.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use mcast_proto::{Datagram, ExtensionField, HEADER_LEN};
use sha2::{Digest as _, Sha256};

/// Extension field type of the signature field. Not assigned by IANA (the
/// NTP extension field registry has no experimental range); chosen from
/// the unassigned space, to be registered.
pub const FIELD_TYPE: u16 = 0xF5A5;
/// Magic and version at the start of the field's value.
pub const MAGIC: [u8; 4] = *b"MCS1";
/// Length of the field's value.
pub const FIELD_VALUE_LEN: usize = 4 + 8 + 16 + 2 + 2 + 64;
/// What every signature begins with, so that a signature made for
/// anything else never verifies as a broadcast.
pub const CONTEXT: &[u8] = b"mcast-ntp signed broadcast v1\0";
/// What every signature of a calibration reply begins with: a reply can
/// never pass as a broadcast, nor a broadcast as a reply.
pub const REPLY_CONTEXT: &[u8] = b"mcast-ntp signed reply v1\0";
/// The destination a signed reply names in its field: the unspecified
/// address `[::]:0`, a fixed "unicast" marker, not the client's address.
/// The client's address and port as the server sees them are not what the
/// client knows (a wildcard socket, NAT, a second address), and nothing is
/// gained by naming them: the reply's origin field is the request's random
/// 64-bit cookie, covered by the signature with the rest of the header, so
/// a signed reply answers exactly one request and is worth nothing to
/// anyone else. No group is ever `[::]:0`, so a reply can never pass the
/// group check of a broadcast either.
pub const UNICAST_MARKER: SocketAddr = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
/// Extension field type of a calibration request that asks for a signed
/// reply (see [`request_field`]). Unassigned space beside [`FIELD_TYPE`].
pub const REQUEST_FIELD_TYPE: u16 = 0xF5A6;
/// Magic and version at the start of a request field's value.
pub const REQUEST_MAGIC: [u8; 4] = *b"MCQ1";
/// Prefix of a public key line (`ed25519:` and 64 hex digits).
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// First word of the private key file's key line.
pub const SECRET_WORD: &str = "ed25519-secret";

const SIG_AT: usize = FIELD_VALUE_LEN - 64;

/// The short name of a public key: the first 8 bytes of SHA-256 over
/// `mcast-ntp key fingerprint\0` and the key, shown as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A server's public key, as clients pin it.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    fingerprint: Fingerprint,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint)
    }
}

/// Why a key text or file was refused. Never contains secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Not `ed25519:` and 64 hex digits.
    #[error("a public key is \"ed25519:\" followed by 64 hex digits")]
    PublicSyntax,
    /// 32 bytes that are not a valid Ed25519 point.
    #[error("not a valid Ed25519 public key")]
    PublicInvalid,
    /// The private key file could not be read.
    #[error("{path}: cannot read: {error}")]
    Read {
        /// The file.
        path: String,
        /// The system's error.
        error: String,
    },
    /// The private key file may be read by others.
    #[error("{path}: mode {mode:04o} lets others read the private key: chmod 600 it")]
    Permissions {
        /// The file.
        path: String,
        /// Its mode bits.
        mode: u32,
    },
    /// No `ed25519-secret` line with 64 hex digits.
    #[error("{path}: line {line}: expected \"ed25519-secret\" and 64 hex digits")]
    SecretSyntax {
        /// The file.
        path: String,
        /// 1-based line (0: no key line at all).
        line: usize,
    },
}

impl PublicKey {
    /// Parses `ed25519:` and 64 hex digits.
    ///
    /// # Errors
    /// Any other text, or bytes that are no Ed25519 key.
    pub fn parse(text: &str) -> Result<PublicKey, KeyFormatError> {
        let hex_part = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(KeyFormatError::PublicSyntax)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes).map_err(|_| KeyFormatError::PublicSyntax)?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyFormatError::PublicInvalid)?;
        Ok(PublicKey::from_verifying(key))
    }

    fn from_verifying(key: VerifyingKey) -> PublicKey {
        let mut h = Sha256::new();
        h.update(b"mcast-ntp key fingerprint\0");
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        PublicKey {
            key,
            fingerprint: Fingerprint(fp),
        }
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The one line to paste into a client configuration.
    pub fn to_line(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", hex::encode(self.key.as_bytes()))
    }
}

/// A server's signing key. Its secret never leaves this type: no `Debug`
/// of it, no accessor; it is wiped when dropped.
pub struct ServerKey {
    key: SigningKey,
    public: PublicKey,
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerKey({})", self.public.fingerprint)
    }
}

impl PartialEq for ServerKey {
    fn eq(&self, other: &ServerKey) -> bool {
        self.public == other.public
    }
}

impl ServerKey {
    /// A key from 32 random bytes (`mcast-keygen` draws them).
    pub fn from_seed(seed: &[u8; 32]) -> ServerKey {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying(key.verifying_key());
        ServerKey { key, public }
    }

    /// Its public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The private key file's text: a comment naming the public key, then
    /// `ed25519-secret` and the seed in hex.
    pub fn to_file_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!(
            "# mcast-ntp server signing key (keep it mode 0600, never share it)\n\
             # public: {}\n# fingerprint: {}\n{SECRET_WORD} {}\n",
            self.public.to_line(),
            self.public.fingerprint,
            hex::encode(self.key.to_bytes())
        ))
    }

    /// Reads a private key file. It must not be readable by group or
    /// others.
    ///
    /// # Errors
    /// Unreadable, too open, or no key line; the message names the file and
    /// line and never shows any of the secret.
    pub fn load(path: &Path) -> Result<ServerKey, KeyFormatError> {
        use std::os::unix::fs::PermissionsExt as _;
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| KeyFormatError::Read {
            path: shown.clone(),
            error: e.to_string(),
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFormatError::Permissions { path: shown, mode });
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            KeyFormatError::Read {
                path: shown.clone(),
                error: e.to_string(),
            }
        })?);
        ServerKey::parse(&text, &shown)
    }

    /// Parses the text of a private key file (`path` only names it in
    /// errors).
    ///
    /// # Errors
    /// No `ed25519-secret` line with 64 hex digits.
    pub fn parse(text: &str, path: &str) -> Result<ServerKey, KeyFormatError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || KeyFormatError::SecretSyntax {
                path: path.to_owned(),
                line: i + 1,
            };
            let mut words = line.split_whitespace();
            if words.next() != Some(SECRET_WORD) {
                return Err(bad());
            }
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(words.next().ok_or_else(bad)?, seed.as_mut())
                .map_err(|_| bad())?;
            if words.next().is_some() {
                return Err(bad());
            }
            return Ok(ServerKey::from_seed(&seed));
        }
        Err(KeyFormatError::SecretSyntax {
            path: path.to_owned(),
            line: 0,
        })
    }

    /// The signature field for a broadcast with header `header` sent to
    /// `destination`.
    pub fn sign_field(&self, header: &[u8; HEADER_LEN], destination: SocketAddr) -> ExtensionField {
        self.field(CONTEXT, header, destination)
    }

    /// The signature field of a calibration reply with header `header`
    /// (whose origin is the request's cookie): [`REPLY_CONTEXT`] and
    /// [`UNICAST_MARKER`] instead of a group.
    pub fn sign_reply_field(&self, header: &[u8; HEADER_LEN]) -> ExtensionField {
        self.field(REPLY_CONTEXT, header, UNICAST_MARKER)
    }

    fn field(
        &self,
        context: &[u8],
        header: &[u8; HEADER_LEN],
        destination: SocketAddr,
    ) -> ExtensionField {
        let mut value = Vec::with_capacity(FIELD_VALUE_LEN);
        value.extend_from_slice(&MAGIC);
        value.extend_from_slice(&self.public.fingerprint.0);
        value.extend_from_slice(&v6(destination.ip()).octets());
        value.extend_from_slice(&destination.port().to_be_bytes());
        value.extend_from_slice(&[0, 0]);
        let sig = self.key.sign(&message(context, header, &value));
        value.extend_from_slice(&sig.to_bytes());
        ExtensionField {
            field_type: FIELD_TYPE,
            value,
        }
    }
}

/// Why a packet did not carry a valid signature from the pinned key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureProblem {
    /// No signature field at all.
    Unsigned,
    /// A signature field of the wrong length, magic or padding, or more
    /// than one.
    Malformed,
    /// Signed by another key (the fingerprint is not the pinned key's).
    UnknownKey,
    /// Sent to a group and port this client does not listen to (replayed
    /// from another group).
    WrongGroup,
    /// The signature does not verify.
    BadSignature,
}

/// The signature field of `d`, checked in order of cost: present once and
/// well formed, the pinned key's fingerprint, a destination among `groups`,
/// then the signature over the header and the field.
///
/// # Errors
/// The first check that fails.
pub fn check_field(
    key: &PublicKey,
    d: &Datagram,
    groups: &[SocketAddr],
) -> Result<(), SignatureProblem> {
    check(key, d, CONTEXT, |dest, port| {
        groups
            .iter()
            .any(|g| v6(g.ip()) == dest && g.port() == port)
    })
}

/// The signature field of a calibration reply `d`, checked like
/// [`check_field`] with [`REPLY_CONTEXT`]; the destination must be
/// [`UNICAST_MARKER`] ([`SignatureProblem::WrongGroup`] otherwise: a
/// broadcast's field moved into a reply). That the reply answers our
/// request is the caller's check: its origin is our cookie, and the
/// signature covers the header that holds it.
///
/// # Errors
/// The first check that fails.
pub fn check_reply(key: &PublicKey, d: &Datagram) -> Result<(), SignatureProblem> {
    check(key, d, REPLY_CONTEXT, |dest, port| {
        dest == v6(UNICAST_MARKER.ip()) && port == UNICAST_MARKER.port()
    })
}

fn check(
    key: &PublicKey,
    d: &Datagram,
    context: &[u8],
    destination_ok: impl Fn(Ipv6Addr, u16) -> bool,
) -> Result<(), SignatureProblem> {
    let mut fields = d.extensions.iter().filter(|f| f.field_type == FIELD_TYPE);
    let field = fields.next().ok_or(SignatureProblem::Unsigned)?;
    if fields.next().is_some() {
        return Err(SignatureProblem::Malformed);
    }
    let v = field.value.as_slice();
    if v.len() != FIELD_VALUE_LEN
        || v.get(..4) != Some(&MAGIC[..])
        || v.get(30..32) != Some(&[0, 0])
    {
        return Err(SignatureProblem::Malformed);
    }
    if v.get(4..12) != Some(&key.fingerprint.0[..]) {
        return Err(SignatureProblem::UnknownKey);
    }
    let mut ip = [0u8; 16];
    ip.copy_from_slice(v.get(12..28).ok_or(SignatureProblem::Malformed)?);
    let port = u16::from_be_bytes([
        v.get(28).copied().unwrap_or(0),
        v.get(29).copied().unwrap_or(0),
    ]);
    if !destination_ok(Ipv6Addr::from(ip), port) {
        return Err(SignatureProblem::WrongGroup);
    }
    let sig_bytes: [u8; 64] = v
        .get(SIG_AT..)
        .and_then(|s| s.try_into().ok())
        .ok_or(SignatureProblem::Malformed)?;
    let sig = Signature::from_bytes(&sig_bytes);
    let header = d.header.to_bytes();
    let signed = v.get(..SIG_AT).ok_or(SignatureProblem::Malformed)?;
    key.key
        .verify_strict(&message(context, &header, signed), &sig)
        .map_err(|_| SignatureProblem::BadSignature)
}

/// The field a calibration request carries to ask for a signed reply: its
/// value is [`REQUEST_MAGIC`], the fingerprint of the key the client pins
/// (the responder signs with that key, or not at all), and zeros up to
/// [`FIELD_VALUE_LEN`], so that the request is exactly as long as the
/// signed reply: the responder never answers with more bytes than it was
/// sent (no amplification).
///
/// The request's cookie is not in this field: it is the request's transmit
/// timestamp, as in every mode-3 request we send (`mcast_core::exchange`).
/// A server copies it into the reply's origin field (RFC 5905), the reply's
/// signature covers that header, and the client matches it against its
/// outstanding requests before it verifies anything, so no second cookie
/// and no new echo rule is needed.
pub fn request_field(fingerprint: Fingerprint) -> ExtensionField {
    let mut value = vec![0u8; FIELD_VALUE_LEN];
    if let Some(head) = value.get_mut(..4) {
        head.copy_from_slice(&REQUEST_MAGIC);
    }
    if let Some(fp) = value.get_mut(4..12) {
        fp.copy_from_slice(&fingerprint.0);
    }
    ExtensionField {
        field_type: REQUEST_FIELD_TYPE,
        value,
    }
}

/// What a request asks for, as far as signatures go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureWish {
    /// No request field: an ordinary request.
    None,
    /// A well-formed request field naming this key.
    Key(Fingerprint),
    /// A request field of the wrong length or magic, or more than one.
    Malformed,
}

/// The request field of `d` ([`request_field`]), if any.
pub fn requested_key(d: &Datagram) -> SignatureWish {
    let mut fields = d
        .extensions
        .iter()
        .filter(|f| f.field_type == REQUEST_FIELD_TYPE);
    let Some(field) = fields.next() else {
        return SignatureWish::None;
    };
    if fields.next().is_some() {
        return SignatureWish::Malformed;
    }
    let v = field.value.as_slice();
    if v.len() != FIELD_VALUE_LEN || v.get(..4) != Some(&REQUEST_MAGIC[..]) {
        return SignatureWish::Malformed;
    }
    let mut fp = [0u8; 8];
    match v.get(4..12) {
        Some(b) => fp.copy_from_slice(b),
        None => return SignatureWish::Malformed,
    }
    SignatureWish::Key(Fingerprint(fp))
}

fn message(context: &[u8], header: &[u8; HEADER_LEN], field_head: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + HEADER_LEN + field_head.len());
    m.extend_from_slice(context);
    m.extend_from_slice(header);
    m.extend_from_slice(field_head);
    m
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::{Header, Mode};

    fn key(n: u8) -> ServerKey {
        ServerKey::from_seed(&[n; 32])
    }

    fn group() -> SocketAddr {
        "224.0.1.1:123".parse().expect("group")
    }

    fn signed(k: &ServerKey, to: SocketAddr) -> Datagram {
        let mut h = Header::new(Mode::Broadcast);
        h.stratum = 2;
        let mut d = Datagram::new(h);
        d.extensions.push(k.sign_field(&h.to_bytes(), to));
        d
    }

    #[test]
    fn a_signed_broadcast_verifies_and_round_trips_the_wire() {
        let k = key(1);
        let d = signed(&k, group());
        let wire = d.to_bytes();
        assert_eq!(wire.len(), HEADER_LEN + 4 + FIELD_VALUE_LEN);
        assert_eq!(wire.len() - HEADER_LEN, 100, "within ntpd's 28..120");
        let back = Datagram::parse(&wire).expect("parses");
        assert_eq!(check_field(k.public(), &back, &[group()]), Ok(()));
    }

    #[test]
    fn every_forgery_is_refused_by_its_own_check() {
        let k = key(1);
        let d = signed(&k, group());
        let other_group: SocketAddr = "224.0.1.2:123".parse().expect("group");
        assert_eq!(
            check_field(k.public(), &Datagram::new(d.header), &[group()]),
            Err(SignatureProblem::Unsigned)
        );
        assert_eq!(
            check_field(key(2).public(), &d, &[group()]),
            Err(SignatureProblem::UnknownKey)
        );
        assert_eq!(
            check_field(k.public(), &d, &[other_group]),
            Err(SignatureProblem::WrongGroup),
            "replayed into another group"
        );
        let mut changed = d.clone();
        changed.header.stratum = 1;
        assert_eq!(
            check_field(k.public(), &changed, &[group()]),
            Err(SignatureProblem::BadSignature)
        );
        let mut truncated = d.clone();
        if let Some(f) = truncated.extensions.first_mut() {
            f.value.truncate(FIELD_VALUE_LEN - 4);
        }
        assert_eq!(
            check_field(k.public(), &truncated, &[group()]),
            Err(SignatureProblem::Malformed)
        );
        let mut twice = d.clone();
        twice.extensions.push(d.extensions[0].clone());
        assert_eq!(
            check_field(k.public(), &twice, &[group()]),
            Err(SignatureProblem::Malformed)
        );
        // A signature moved to another key's fingerprint fails too.
        let mut relabelled = d;
        if let Some(f) = relabelled.extensions.first_mut() {
            f.value[4..12].copy_from_slice(&key(2).public().fingerprint().0);
        }
        assert_eq!(
            check_field(key(2).public(), &relabelled, &[group()]),
            Err(SignatureProblem::BadSignature)
        );
    }

    #[test]
    fn a_signed_reply_verifies_only_as_a_reply() {
        let k = key(1);
        let mut h = Header::new(Mode::Server);
        h.origin = mcast_proto::NtpTimestamp::from_bits(0x1234_5678_9abc_def0);
        let mut reply = Datagram::new(h);
        reply.extensions.push(k.sign_reply_field(&h.to_bytes()));
        let back = Datagram::parse(&reply.to_bytes()).expect("parses");
        assert_eq!(check_reply(k.public(), &back), Ok(()));
        assert_eq!(
            check_field(k.public(), &back, &[group(), UNICAST_MARKER]),
            Err(SignatureProblem::BadSignature),
            "a reply is no broadcast, whatever groups are listened to"
        );
        let mut other_cookie = back.clone();
        other_cookie.header.origin = mcast_proto::NtpTimestamp::from_bits(7);
        assert_eq!(
            check_reply(k.public(), &other_cookie),
            Err(SignatureProblem::BadSignature),
            "the cookie is signed"
        );
        let broadcast = signed(&k, group());
        assert_eq!(
            check_reply(k.public(), &broadcast),
            Err(SignatureProblem::WrongGroup)
        );
    }

    #[test]
    fn a_request_field_names_the_key_and_is_as_long_as_a_signature_field() {
        let k = key(1);
        let f = request_field(k.public().fingerprint());
        assert_eq!(f.wire_len(), 4 + FIELD_VALUE_LEN);
        let mut d = Datagram::new(Header::new(Mode::Client));
        assert_eq!(requested_key(&d), SignatureWish::None);
        d.extensions.push(f.clone());
        let back = Datagram::parse(&d.to_bytes()).expect("parses");
        assert_eq!(
            requested_key(&back),
            SignatureWish::Key(k.public().fingerprint())
        );
        let mut short = d.clone();
        if let Some(f) = short.extensions.first_mut() {
            f.value.truncate(FIELD_VALUE_LEN - 8);
        }
        assert_eq!(requested_key(&short), SignatureWish::Malformed);
        d.extensions.push(f);
        assert_eq!(requested_key(&d), SignatureWish::Malformed, "twice");
    }

    #[test]
    fn key_texts_round_trip_and_never_show_the_secret_in_errors() {
        let k = key(7);
        let line = k.public().to_line();
        assert_eq!(PublicKey::parse(&line).expect("parses"), *k.public());
        assert_eq!(
            PublicKey::parse("ed25519:zz"),
            Err(KeyFormatError::PublicSyntax)
        );
        let text = k.to_file_text();
        let back = ServerKey::parse(&text, "server.key").expect("parses");
        assert_eq!(back, k);
        let secret = hex::encode([7u8; 32]);
        let broken = text.replace(&secret, &format!("{}x", &secret[..63]));
        let e = ServerKey::parse(&broken, "server.key").expect_err("bad hex");
        assert!(!e.to_string().contains(&secret[..8]), "{e}");
        assert!(!format!("{k:?}").contains(&secret[..8]));
    }

    #[test]
    fn a_private_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("server.key");
        std::fs::write(&path, key(3).to_file_text().as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            ServerKey::load(&path),
            Err(KeyFormatError::Permissions { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(ServerKey::load(&path).expect("loads"), key(3));
    }
}
