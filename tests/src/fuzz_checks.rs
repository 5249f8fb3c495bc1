//! The properties the fuzz targets check, one function per target.
//!
//! Each function takes the fuzzer's raw bytes and panics, with a message
//! naming the property, when the code under test breaks it. The cargo-fuzz
//! targets in `fuzz/fuzz_targets/` do nothing but call these; the replay test
//! `tests/tests/fuzz_corpus.rs` runs every file of the committed corpus
//! (`fuzz/corpus/<target>/`) through them under plain `cargo test`, so the
//! properties are checked on stable in CI without cargo-fuzz. See
//! `docs/FUZZING.md`.

// Panicking when a property is violated is what these functions are for: the
// fuzzer records a panic as a crash, the replay test as a failure.
#![allow(clippy::panic)]

mod client_packet;
mod server_request;

pub use client_packet::client_packet;
pub use server_request::server_request;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::LazyLock;

use mcast_config::{ClientConfig, ConfigError, ConfigErrorKind, ServerConfig};
use mcast_keys::{KeyId, KeyStore, KeysFileError, MacVerdict, packet};
use mcast_proto::{Datagram, HEADER_LEN, Header, ParseError, SampleLimits, Unusable};

/// Most bytes of an input quoted in a panic message (the whole input is in
/// the fuzzer's crash artifact anyway).
const QUOTE_MAX: usize = 96;

/// `data` in hex, cut after [`QUOTE_MAX`] bytes, for panic messages.
fn quote(data: &[u8]) -> String {
    let head = data.get(..QUOTE_MAX).unwrap_or(data);
    let mut s = hex::encode(head);
    if data.len() > QUOTE_MAX {
        s.push_str(&format!("... ({} bytes)", data.len()));
    }
    s
}

/// Datagram framing: `Datagram::parse` never panics on any bytes; when it
/// accepts them,
///
/// * `to_bytes()` gives back exactly the input, and parsing that again gives
///   an equal `Datagram` (lossless round trip);
/// * `signed_len()` is at most the input length, `write_signed_part` writes
///   exactly the first `signed_len()` input bytes, and what follows them is
///   the MAC trailer (key id + at most 20 digest bytes) or nothing;
/// * `Header::parse` of the same bytes gives the same header;
/// * `kiss_code()` and `unusable_reason()` do not panic, and a recognized
///   kiss code is reported as the reason the packet is unusable.
///
/// When it refuses them, the error is `TooShort` exactly for inputs shorter
/// than the header, and its `Display` is not empty.
pub fn datagram_round_trip(data: &[u8]) {
    let parsed = Datagram::parse(data);
    if data.len() < HEADER_LEN {
        match &parsed {
            Err(ParseError::TooShort { len }) if *len == data.len() => {}
            other => panic!(
                "datagram: {} bytes (< {HEADER_LEN}) must be TooShort {{ len: {} }}, got {other:?}; input {}",
                data.len(),
                data.len(),
                quote(data)
            ),
        }
    }
    let datagram = match parsed {
        Ok(d) => d,
        Err(e) => {
            if matches!(e, ParseError::TooShort { .. }) && data.len() >= HEADER_LEN {
                panic!(
                    "datagram: {} bytes reported TooShort ({e:?}); input {}",
                    data.len(),
                    quote(data)
                );
            }
            if e.to_string().is_empty() {
                panic!("datagram: empty Display for {e:?}; input {}", quote(data));
            }
            return;
        }
    };

    let bytes = datagram.to_bytes();
    if bytes != data {
        panic!(
            "datagram: round trip changed the bytes\n input  {}\n output {}\n parsed {datagram:?}",
            quote(data),
            quote(&bytes)
        );
    }
    match Datagram::parse(&bytes) {
        Ok(again) if again == datagram => {}
        other => panic!(
            "datagram: re-parsing to_bytes() gave {other:?}, first parse {datagram:?}; input {}",
            quote(data)
        ),
    }

    let signed_len = datagram.signed_len();
    if signed_len > data.len() || signed_len < HEADER_LEN {
        panic!(
            "datagram: signed_len() {signed_len} outside {HEADER_LEN}..={}; input {}",
            data.len(),
            quote(data)
        );
    }
    let mut signed = Vec::new();
    datagram.write_signed_part(&mut signed);
    if data.get(..signed_len) != Some(signed.as_slice()) {
        panic!(
            "datagram: write_signed_part() is not the first signed_len() = {signed_len} input bytes; input {}",
            quote(data)
        );
    }
    let trailer_len = data.len() - signed_len;
    match &datagram.mac {
        None if trailer_len == 0 => {}
        Some(mac) if trailer_len == 4 + mac.digest.len() && mac.digest.len() <= 20 => {}
        other => panic!(
            "datagram: {trailer_len} bytes after the signed part but MAC {other:?}; input {}",
            quote(data)
        ),
    }

    let header = &datagram.header;
    if Header::parse(data).as_ref() != Ok(header) {
        panic!(
            "datagram: Header::parse disagrees with Datagram::parse; input {}",
            quote(data)
        );
    }
    let reason = header.unusable_reason(&SampleLimits::default());
    if let Some(code) = header.kiss_code()
        && reason != Some(Unusable::KissOfDeath(code))
    {
        panic!(
            "datagram: kiss code {code} but unusable_reason() is {reason:?}; input {}",
            quote(data)
        );
    }
    // Formatting must not panic either (it is what gets logged).
    let _ = (
        reason.map(|r| r.to_string()),
        header.reference_id.display(header.stratum),
        header.transmit.to_string(),
        header.root_distance().to_string(),
        header.poll.to_string(),
    );
}

/// The name the fuzzed keys files and configurations are parsed under; every
/// error and warning must name it.
const ORIGIN: &str = "/fuzz/input";

/// Keys-file reader: `KeyStore::parse` never panics on any text (the input is
/// read as UTF-8, invalid sequences replaced). When it refuses the text,
/// the error names `origin` (its `path` field, and its `Display` starts with
/// `origin:line: `) and its line is one of the text's lines
/// (`1..=text.lines().count()`; 0 is only for files that cannot be read).
/// When it accepts it, every warning starts with `origin:`, and every key
/// verifies its own digest through `KeyStore::check` and refuses that digest
/// with one bit flipped.
pub fn keys_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new(ORIGIN);
    match KeyStore::parse(&text, origin) {
        Err(e) => check_keys_error(&e, &text, data),
        Ok(store) => {
            if store.path() != origin {
                panic!(
                    "keys_file: store path {} is not the origin; input {}",
                    store.path().display(),
                    quote(data)
                );
            }
            if let Some(w) = store.warnings().iter().find(|w| !w.starts_with(ORIGIN)) {
                panic!(
                    "keys_file: warning {w:?} does not name the file; input {}",
                    quote(data)
                );
            }
            let message = data.get(..HEADER_LEN).unwrap_or(data);
            for key in &store {
                let id = key.id();
                let digest = key.compute(message);
                if digest.len() != key.mac_len() {
                    panic!(
                        "keys_file: key {id} computed a {}-byte digest, mac_len() is {}; input {}",
                        digest.len(),
                        key.mac_len(),
                        quote(data)
                    );
                }
                let wire = u32::from(id.get());
                let verdict = store.check(wire, message, digest.as_bytes(), None);
                if verdict != MacVerdict::Valid(id) {
                    panic!(
                        "keys_file: key {id} refused its own digest ({verdict:?}); input {}",
                        quote(data)
                    );
                }
                let mut flipped = digest.as_bytes().to_vec();
                if let Some(b) = flipped.first_mut() {
                    *b ^= 1;
                }
                let verdict = store.check(wire, message, &flipped, None);
                if verdict.is_valid() {
                    panic!(
                        "keys_file: key {id} accepted a digest with a flipped bit; input {}",
                        quote(data)
                    );
                }
            }
        }
    }
}

fn check_keys_error(e: &KeysFileError, text: &str, data: &[u8]) {
    let shown = e.to_string();
    let lines = text.lines().count();
    if e.path != Path::new(ORIGIN) {
        panic!(
            "keys_file: error path {} is not the origin ({shown}); input {}",
            e.path.display(),
            quote(data)
        );
    }
    if !shown.starts_with(&format!("{ORIGIN}:{}: ", e.line)) {
        panic!(
            "keys_file: error {shown:?} does not start with \"{ORIGIN}:{}: \"; input {}",
            e.line,
            quote(data)
        );
    }
    if !(1..=lines).contains(&e.line) {
        panic!(
            "keys_file: error on line {} but the text has {lines} lines ({shown}); input {}",
            e.line,
            quote(data)
        );
    }
}

/// The lab keys (`tests/data/vectors/ntp.keys`), parsed once.
static LAB_KEYS: LazyLock<KeyStore> = LazyLock::new(|| {
    let text = include_str!("../data/vectors/ntp.keys");
    KeyStore::parse(text, Path::new("tests/data/vectors/ntp.keys"))
        .unwrap_or_else(|e| panic!("mac_check: the lab keys file does not parse: {e}"))
});

/// The lab keys plus key 13, whose address list allows only 198.18.0.10
/// and 198.18.0.2 (the lab file has no address lists): what the protocol
/// targets ([`client_packet`], [`server_request`]) verify and sign with, so
/// that a MAC that verifies from a source the key does not allow is reached.
static NET_KEYS: LazyLock<KeyStore> = LazyLock::new(|| {
    let mut text = include_str!("../data/vectors/ntp.keys").to_owned();
    text.push_str("\n13 MD5 FuzzRestricted13 198.18.0.10,198.18.0.2\n");
    KeyStore::parse(&text, Path::new("tests/data/vectors/ntp.keys + key 13"))
        .unwrap_or_else(|e| panic!("the lab keys with key 13 do not parse: {e}"))
});

/// Takes a time step from `rest` on a rough log scale, so one byte covers
/// both the milliseconds of a round trip and the minutes between
/// broadcasts: 0..=99 is that many ms, 100..=199 is (b - 99) x 100 ms
/// (0.1 s to 10 s), 200..=255 is (b - 199) x 2 s (2 s to 112 s).
fn take_advance(rest: &mut &[u8]) -> std::time::Duration {
    use std::time::Duration;
    match take_byte(rest) {
        b @ 0..=99 => Duration::from_millis(u64::from(b)),
        b @ 100..=199 => Duration::from_millis(u64::from(b - 99) * 100),
        b => Duration::from_secs(u64::from(b - 199) * 2),
    }
}

/// Takes a length byte L and then L bytes (fewer if the input ends first).
fn take_datagram<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let len = usize::from(take_byte(rest)).min(rest.len());
    let (datagram, tail) = rest.split_at(len);
    *rest = tail;
    datagram
}

/// Signs `d` with key `id`, or, for a key the store lacks, appends the id
/// and 16 zero bytes as the digest.
fn sign_with(keys: &KeyStore, id: u32, d: &Datagram, out: &mut Vec<u8>) {
    match KeyId::new(id).and_then(|k| keys.get(k)) {
        Some(key) => packet::sign(key, d, out),
        None => {
            out.clear();
            d.write_signed_part(out);
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&[0; 16]);
        }
    }
}

/// Flips bit `bit` (modulo the digest's bits) of the digest of `signed`, a
/// datagram whose signed part is `signed_len` bytes; nothing without one.
fn flip_digest_bit(signed: &mut [u8], signed_len: usize, bit: usize) {
    let digest_at = signed_len + 4;
    let bits = signed.len().saturating_sub(digest_at) * 8;
    if bits > 0 {
        let bit = bit % bits;
        if let Some(b) = signed.get_mut(digest_at + bit / 8) {
            *b ^= 1 << (bit % 8);
        }
    }
}

/// Takes the first byte of `rest`, or 0 when it is empty.
fn take_byte(rest: &mut &[u8]) -> u8 {
    match rest.split_first() {
        Some((b, tail)) => {
            *rest = tail;
            *b
        }
        None => 0,
    }
}

/// The server signing key of the signed-packet property.
static SIGNER: LazyLock<mcast_keys::signed::ServerKey> =
    LazyLock::new(|| mcast_keys::signed::ServerKey::from_seed(&[0x5a; 32]));

/// Signed broadcasts: [`mcast_keys::signed::check_field`] never panics, never
/// accepts a packet the property did not sign (nobody forges Ed25519 by
/// fuzzing), always accepts one it did, and refuses it again once any one
/// bit of it is flipped (every byte of header and field is covered).
///
/// The same holds for signed calibration replies
/// ([`mcast_keys::signed::check_reply`]), and a broadcast's field never
/// passes as a reply's nor a reply's as a broadcast's; the request-field
/// parser ([`mcast_keys::signed::requested_key`]) never panics.
///
/// Input layout: a flags byte. Bit 0 clear: the rest is parsed as a
/// datagram and checked as it is. Bit 0 set: a flip byte (255: no flip;
/// else the byte index, mod the packet length, and bits 1-3 of the flags
/// the bit), then up to 48 bytes of header, which is signed (for
/// 224.0.1.1:123, or as a reply when bit 4 is set) and serialized before
/// the flip.
pub fn signed_packet(data: &[u8]) {
    use mcast_keys::signed::{check_field, check_reply, requested_key};
    let key = &*SIGNER;
    let group: std::net::SocketAddr =
        std::net::SocketAddr::new(Ipv4Addr::new(224, 0, 1, 1).into(), 123);
    let mut rest = data;
    let flags = take_byte(&mut rest);
    if flags & 1 == 0 {
        if let Ok(d) = Datagram::parse(rest) {
            let _ = requested_key(&d);
            if check_field(key.public(), &d, &[group]).is_ok()
                || check_reply(key.public(), &d).is_ok()
            {
                panic!(
                    "signed_packet: an input the property did not sign verified: {}",
                    quote(data)
                );
            }
        }
        return;
    }
    let as_reply = flags & 0x10 != 0;
    let flip = take_byte(&mut rest);
    let mut raw = [0u8; mcast_proto::HEADER_LEN];
    for (slot, b) in raw.iter_mut().zip(rest) {
        *slot = *b;
    }
    let Ok(h) = mcast_proto::Header::parse(&raw) else {
        return;
    };
    let mut d = Datagram::new(h);
    d.extensions.push(if as_reply {
        key.sign_reply_field(&h.to_bytes())
    } else {
        key.sign_field(&h.to_bytes(), group)
    });
    let mut wire = d.to_bytes();
    let flipped = (flip != 255).then(|| usize::from(flip) % wire.len());
    if let Some(i) = flipped
        && let Some(b) = wire.get_mut(i)
    {
        *b ^= 1 << ((flags >> 1) & 7);
    }
    let check = |p: &Datagram| {
        if as_reply {
            check_reply(key.public(), p)
        } else {
            check_field(key.public(), p, &[group])
        }
    };
    let crossed = |p: &Datagram| {
        if as_reply {
            check_field(key.public(), p, &[group])
        } else {
            check_reply(key.public(), p)
        }
    };
    if let Ok(p) = Datagram::parse(&wire)
        && crossed(&p).is_ok()
    {
        panic!(
            "signed_packet: a {} verified as the other kind; input {}",
            if as_reply { "reply" } else { "broadcast" },
            quote(data)
        );
    }
    let verdict = Datagram::parse(&wire).map(|p| check(&p));
    match (flipped, verdict) {
        (None, Ok(Ok(()))) | (Some(_), Err(_) | Ok(Err(_))) => {}
        (None, other) => panic!(
            "signed_packet: a packet signed here was refused: {other:?}; input {}",
            quote(data)
        ),
        (Some(i), Ok(Ok(()))) => panic!(
            "signed_packet: byte {i} flipped and the signature still verified; input {}",
            quote(data)
        ),
    }
}

/// MAC check against the lab keys: `KeyStore::check` never panics on any
/// key id, message, digest and source, and never reports `Valid` for a
/// digest it did not compute: `Valid(id)` only when `id` is the key id on the
/// wire, that key exists, `digest` equals `key.compute(message)` and the
/// source (if any) is allowed. A digest it computed itself is `Valid` with
/// no source, and not `Valid` once one bit of it is flipped.
///
/// Input layout: flags byte (bits 0-1: source none / 198.18.0.N / ::1 /
/// IPv4-mapped 198.18.0.N; bit 2: sign the message with the named key and
/// then flip the digest bit chosen by the next byte, bit value 255 meaning
/// no flip; bit 3: a 4-byte raw key id instead of one byte taken mod 16),
/// the key id, a host byte N, then (unless signing) a length byte L and L
/// digest bytes (L taken mod 33), then the message.
pub fn mac_check(data: &[u8]) {
    let store = &*LAB_KEYS;
    let mut rest = data;
    let flags = take_byte(&mut rest);
    let key_id_wire = if flags & 8 != 0 {
        u32::from_be_bytes([
            take_byte(&mut rest),
            take_byte(&mut rest),
            take_byte(&mut rest),
            take_byte(&mut rest),
        ])
    } else {
        u32::from(take_byte(&mut rest) % 16)
    };
    let host = take_byte(&mut rest);
    let source = match flags & 3 {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, host))),
        2 => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => Some(IpAddr::V6(Ipv4Addr::new(198, 18, 0, host).to_ipv6_mapped())),
    };
    let key = KeyId::new(key_id_wire).and_then(|id| store.get(id));

    if flags & 4 != 0 {
        let flip = take_byte(&mut rest);
        let message = rest;
        let Some(key) = key else {
            return;
        };
        let mut digest = key.compute(message).as_bytes().to_vec();
        let verdict = store.check(key_id_wire, message, &digest, None);
        if verdict != MacVerdict::Valid(key.id()) {
            panic!(
                "mac_check: key {} refused its own digest ({verdict:?}); input {}",
                key.id(),
                quote(data)
            );
        }
        if flip == u8::MAX {
            return;
        }
        let bits = digest.len() * 8;
        if let Some(b) = digest.get_mut(usize::from(flip) % bits.max(1) / 8) {
            *b ^= 1 << (flip % 8);
        }
        let verdict = store.check(key_id_wire, message, &digest, source);
        if verdict.is_valid() {
            panic!(
                "mac_check: key {} accepted its digest with bit {flip} flipped; input {}",
                key.id(),
                quote(data)
            );
        }
        return;
    }

    let len = usize::from(take_byte(&mut rest) % 33);
    let (digest, message) = rest.split_at(len.min(rest.len()));
    let verdict = store.check(key_id_wire, message, digest, source);
    match verdict {
        MacVerdict::Valid(id) => {
            let computed = key.map(|k| k.compute(message));
            let allowed = match (key, source) {
                (Some(k), Some(addr)) => k.allows(addr),
                _ => true,
            };
            if u32::from(id.get()) != key_id_wire
                || computed.as_ref().map(|d| d.as_bytes()) != Some(digest)
                || !allowed
            {
                panic!(
                    "mac_check: Valid({id}) for key id {key_id_wire}, digest {} (computed {computed:?}), source {source:?}; input {}",
                    hex::encode(digest),
                    quote(data)
                );
            }
        }
        MacVerdict::UnknownKey(wire) => {
            if wire != key_id_wire || key.is_some() {
                panic!(
                    "mac_check: UnknownKey({wire}) for key id {key_id_wire}; input {}",
                    quote(data)
                );
            }
        }
        other => {
            if key.is_none() {
                panic!(
                    "mac_check: {other:?} for key id {key_id_wire}, which is not in the store; input {}",
                    quote(data)
                );
            }
        }
    }
}

/// Checks what both configuration parsers promise of an error: it names
/// the file, any line is one of the text's (`1..=` the number of
/// newline-separated pieces, so a syntax error at the very end counts), it
/// is not a read or keys error (parse does no I/O and reads no keys file),
/// its `Display` starts with the file name and its excerpt, if any, is that
/// line of the text with the caret on it.
fn check_config_error(what: &str, e: &ConfigError, text: &str, data: &[u8]) {
    let shown = e.to_string();
    let pieces = text.split('\n').count();
    if e.file != Path::new(ORIGIN) || !shown.starts_with(ORIGIN) {
        panic!(
            "{what}: error does not name the file {ORIGIN}: {shown:?}; input {}",
            quote(data)
        );
    }
    if let Some(line) = e.line
        && !(1..=pieces).contains(&line)
    {
        panic!(
            "{what}: error on line {line} but the text has {pieces} lines ({shown}); input {}",
            quote(data)
        );
    }
    if matches!(e.kind, ConfigErrorKind::Read | ConfigErrorKind::Keys) {
        panic!(
            "{what}: parse() reported a {:?} error: {shown}; input {}",
            e.kind,
            quote(data)
        );
    }
    // The excerpt is the error's own line of the text, and the caret stays
    // on it.
    if let (Some(x), Some(line)) = (&e.excerpt, e.line) {
        let own = text
            .split('\n')
            .nth(line - 1)
            .map(|l| l.trim_end_matches('\r'));
        if own != Some(x.text.as_str()) || x.column + x.width > x.text.chars().count().max(1) + 1 {
            panic!(
                "{what}: excerpt {x:?} is not line {line} of the text ({own:?}); input {}",
                quote(data)
            );
        }
    }
}

/// Server configuration: `ServerConfig::parse` never panics on any text
/// (the input is read as UTF-8, invalid sequences replaced), and its errors
/// are well formed (see `check_config_error`: file named, line within the
/// text, no read or keys errors from a parse).
pub fn server_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ServerConfig::parse(&text, Path::new(ORIGIN)) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(e) => check_config_error("server_config", &e, &text, data),
    }
}

/// Client configuration: `ClientConfig::parse` never panics on any text
/// (the input is read as UTF-8, invalid sequences replaced), and its errors
/// are well formed (as for [`server_config`]).
pub fn client_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match ClientConfig::parse(&text, Path::new(ORIGIN)) {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(e) => check_config_error("client_config", &e, &text, data),
    }
}

/// Link types a raw frame is tried under in [`capture_analysis`].
const FRAME_LINK_TYPES: [u32; 9] = [0, 1, 12, 14, 101, 108, 113, 228, 276];

/// Capture analysis (`mcast-client analyze`): any bytes, read as a capture
/// file and also pushed as one frame of a link type picked by the first
/// byte, never panic, and the report adds up:
///
/// * reading either fails with an error naming the file, or reports as many
///   frames as it handed to the analyzer;
/// * every frame lands in exactly one category (NTP, other UDP, not UDP,
///   fragments, undecodable, unsupported link type);
/// * every NTP-port datagram is malformed or counted under one mode, and
///   is sent by one host and received by one, in one host pair;
/// * the text and JSON renderings do not panic.
pub fn capture_analysis(data: &[u8]) {
    use mcast_diag::analyze::{self, Analyzer, Frame, Report, Settings};

    let keys = &*LAB_KEYS;
    let settings = Settings::default();
    let mut analyzer = Analyzer::new(settings, Some(keys));
    let mut handed = 0u64;
    let read = analyze::capture::read(data, Path::new(ORIGIN), |f| {
        handed += 1;
        analyzer.push(f);
    });
    let report = analyzer.finish(Some("lab.keys".into()));
    match read {
        Ok(summary) => {
            if summary.frames != handed || report.counts.frames != handed {
                panic!(
                    "capture: summary says {} frames, {handed} handed over, report {}; input {}",
                    summary.frames,
                    report.counts.frames,
                    quote(data)
                );
            }
        }
        Err(e) => {
            if !e.to_string().starts_with(ORIGIN) {
                panic!(
                    "capture: error does not name the file: {e}; input {}",
                    quote(data)
                );
            }
        }
    }
    check_report(&report, data);

    if let Some((&selector, frame)) = data.split_first() {
        let link_type = FRAME_LINK_TYPES
            .get(usize::from(selector) % FRAME_LINK_TYPES.len())
            .copied()
            .unwrap_or(1);
        let report: Report = analyze::analyze(
            [Frame {
                time: std::time::Duration::from_secs(u64::from(selector)),
                link_type,
                data: frame,
            }],
            Some(keys),
            settings,
        );
        if report.counts.frames != 1 {
            panic!(
                "capture: one frame pushed, {} counted",
                report.counts.frames
            );
        }
        check_report(&report, data);
    }
}

fn check_report(r: &mcast_diag::analyze::Report, data: &[u8]) {
    let c = &r.counts;
    let categories = c.ntp_packets
        + c.other_udp
        + c.not_udp
        + c.fragmented_ntp
        + c.later_fragments
        + c.undecodable
        + c.unsupported_link_type;
    if categories != c.frames {
        panic!(
            "capture: {} frames but {categories} in categories ({c:?}); input {}",
            c.frames,
            quote(data)
        );
    }
    let moded: u64 = r.modes.iter().map(|m| m.packets).sum();
    let sent: u64 = r.hosts.iter().map(|h| h.sent_packets).sum();
    let received: u64 = r.hosts.iter().map(|h| h.received_packets).sum();
    let paired: u64 = r.pairs.iter().map(|p| p.packets).sum();
    if moded + c.malformed != c.ntp_packets
        || sent != c.ntp_packets
        || received != c.ntp_packets
        || paired != c.ntp_packets
    {
        panic!(
            "capture: {} NTP packets, but {moded} by mode + {} malformed, {sent} sent, \
             {received} received, {paired} in pairs; input {}",
            c.ntp_packets,
            c.malformed,
            quote(data)
        );
    }
    if r.to_text().is_empty() || serde_json::to_string(r).is_err() {
        panic!("capture: the report does not render; input {}", quote(data));
    }
}

/// ntp.conf import: `client_from_ntp_conf` and `server_from_ntp_conf` never
/// panic on any text (lossy UTF-8); every note's line is within the text
/// and the notes come in line order; a result that says it is ready parses
/// with that program's own configuration parser.
pub fn ntp_conf_import(data: &[u8]) {
    use mcast_config::import::{ImportOptions, client_from_ntp_conf, server_from_ntp_conf};
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let opts = ImportOptions {
        interface: Some("bond0".into()),
        ..ImportOptions::default()
    };
    let client = client_from_ntp_conf(&text, &opts);
    let server = server_from_ntp_conf(&text, &opts);
    for (name, import) in [("client", &client), ("server", &server)] {
        for n in &import.notes {
            assert!(
                n.line <= lines,
                "ntp_conf_import: {name} note on line {} of a {lines}-line text: {}; input {}",
                n.line,
                n.message,
                quote(data)
            );
        }
        assert!(
            import.notes.is_sorted_by_key(|n| n.line),
            "ntp_conf_import: {name} notes out of line order; input {}",
            quote(data)
        );
    }
    if client.ready.is_ok()
        && let Err(e) = ClientConfig::parse(&client.toml, Path::new(ORIGIN))
    {
        panic!(
            "ntp_conf_import: a ready client import does not parse: {e}\n{}\ninput {}",
            client.toml,
            quote(data)
        );
    }
    if server.ready.is_ok()
        && let Err(e) = ServerConfig::parse(&server.toml, Path::new(ORIGIN))
    {
        panic!(
            "ntp_conf_import: a ready server import does not parse: {e}\n{}\ninput {}",
            server.toml,
            quote(data)
        );
    }
}
