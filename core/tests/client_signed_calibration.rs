//! Calibration without secrets (issue 14): a server pinned by its public
//! key alone is calibrated from replies it signs; requests carry a random
//! cookie and no MAC. Every forged reply is refused by reason and changes
//! nothing, so the genuine reply that follows is still used.
#![cfg(test)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Incoming};
use mcast_core::server::ratelimit::{Mru, RateLimitConfig};
use mcast_core::server::responder::{
    Outcome, ReplyKind, Request, Responder, ResponderConfig, ResponderCounters,
};
use mcast_core::server::sync::{SyncStatus, SystemHeader};
use mcast_keys::signed::{self, ServerKey};
use mcast_keys::{KeyId, KeyStore, packet};
use mcast_proto::{
    Datagram, HEADER_LEN, LeapIndicator, Log2Seconds, Mode, NtpDuration, NtpShort, NtpTimestamp,
    RefId,
};
use support::packets::{NoClock, deliver_broadcast, epoch, server_header};
use support::vectors;

const S1: &str = "198.18.0.1:123";
const GROUP: &str = "224.0.1.1:123";

fn lab_keys() -> KeyStore {
    KeyStore::load(&vectors::keys_file()).expect("lab keys")
}

fn server_ip() -> IpAddr {
    S1.parse::<SocketAddr>().expect("addr").ip()
}

/// A client core with one server pinned by `public`, and MAC key `key`
/// beside it (the migration path) or none.
fn pinned_core(public: &ServerKey, key: Option<u16>) -> ClientCore {
    let spec = ServerSpec {
        public_key: Some(public.public().clone()),
        ..ServerSpec::new(server_ip(), key.and_then(|k| KeyId::new(u32::from(k))))
    };
    ClientCore::new(
        CoreConfig {
            groups: vec![GROUP.parse().expect("group")],
            ..CoreConfig::with_servers(vec![spec])
        },
        lab_keys(),
    )
}

/// The key's datagram on the wire: `d` with the MAC of `key`, or none.
fn wire(d: &Datagram, key: Option<u16>) -> Vec<u8> {
    let keys = lab_keys();
    match key.and_then(|id| keys.get(KeyId::new(u32::from(id))?).cloned()) {
        Some(k) => {
            let mut out = Vec::new();
            packet::sign(&k, d, &mut out);
            out
        }
        None => d.to_bytes(),
    }
}

/// The server's signed broadcast at `t` s, MAC'd with `key` if any: the
/// calibration starts on it.
fn start(core: &mut ClientCore, server: &ServerKey, key: Option<u16>) {
    let mut h = server_header(Mode::Broadcast);
    h.poll = Log2Seconds(6);
    h.transmit = epoch();
    let mut d = Datagram::new(h);
    d.extensions
        .push(server.sign_field(&h.to_bytes(), GROUP.parse().expect("group")));
    let rx = epoch() + NtpDuration::from_micros(200);
    deliver_broadcast(core, S1, &wire(&d, key), rx, 0.0);
}

/// The first calibration request's bytes (the tick 6 s after start).
fn first_request(core: &mut ClientCore) -> Vec<u8> {
    core.on_tick(
        Duration::from_secs(6),
        epoch() + NtpDuration::from_secs(6),
        &mut || 0x5eed_c00c_1e00_0001,
        &mut NoClock,
    )
    .into_iter()
    .find_map(|a| match a {
        Action::Send { bytes, .. } => Some(bytes),
        _ => None,
    })
    .expect("a calibration request within the 5 s start window")
}

fn deliver_reply(core: &mut ClientCore, bytes: &[u8]) {
    let rx = epoch() + NtpDuration::from_secs(6) + NtpDuration::from_micros(400);
    core.on_reply(
        Incoming {
            bytes,
            source: S1.parse().expect("addr"),
            rx,
            mono: Duration::from_secs_f64(6.001),
        },
        &mut NoClock,
    );
}

/// Makes a signature field for a reply header.
type FieldMaker<'a> = &'a dyn Fn(&[u8; HEADER_LEN]) -> mcast_proto::ExtensionField;

/// A reply as our responder would build it for `cookie`: the header, then
/// the signature field `field` makes from it (if any); [`wire`] adds the
/// MAC.
fn reply(cookie: NtpTimestamp, field: Option<FieldMaker<'_>>) -> Datagram {
    let mut h = server_header(Mode::Server);
    h.poll = Log2Seconds(6);
    h.origin = cookie;
    h.receive = epoch() + NtpDuration::from_secs(6) + NtpDuration::from_micros(200);
    h.transmit = h.receive + NtpDuration::from_micros(10);
    let mut d = Datagram::new(h);
    if let Some(f) = field {
        d.extensions.push(f(&h.to_bytes()));
    }
    d
}

/// Everything about the association a reply could change.
fn snapshot(core: &ClientCore) -> String {
    let a = core.associations().next().expect("association");
    format!(
        "{:?} unicast={} cal={:?} offset={:?}",
        a.state(),
        a.unicast_sent(),
        a.calibration().map(|c| c.phase()),
        core.last_offset(server_ip()),
    )
}

fn rejected(core: &ClientCore, label: &str) -> u64 {
    let a = core.associations().next().expect("association");
    a.rejected()
        .iter()
        .filter(|(r, _)| r.label() == label)
        .map(|(_, n)| *n)
        .sum()
}

fn synced() -> SyncStatus {
    SyncStatus::Synchronized(SystemHeader {
        leap: LeapIndicator::NoWarning,
        stratum: 2,
        reference_id: RefId::from_code("GPS"),
        root_delay: NtpShort::from_bits(0x100),
        root_dispersion: NtpShort::from_bits(0x200),
        reference_time: epoch(),
    })
}

/// A public-key-only client's request has no MAC, carries the cookie in
/// transmit and the request field naming the pinned key, and is as long
/// as the signed reply; our responder (with `require-auth`, no MAC key in
/// play) answers it signed, and the client takes that reply.
#[test]
fn a_public_key_alone_calibrates_from_signed_replies_to_unsigned_requests() {
    let server = ServerKey::from_seed(&[31; 32]);
    let mut core = pinned_core(&server, None);
    start(&mut core, &server, None);
    let request = first_request(&mut core);
    let d = Datagram::parse(&request).expect("request parses");
    assert_eq!(d.mac, None, "no MAC: the client holds no secret");
    assert_eq!(
        d.header.transmit.to_bits(),
        0x5eed_c00c_1e00_0001,
        "the cookie"
    );
    assert_eq!(
        signed::requested_key(&d),
        signed::SignatureWish::Key(server.public().fingerprint())
    );
    assert_eq!(request.len(), HEADER_LEN + 4 + signed::FIELD_VALUE_LEN);

    let mut responder = Responder::new(
        ResponderConfig {
            require_auth: true,
            precision: Log2Seconds(-20),
        },
        Mru::new(RateLimitConfig::default()),
    )
    .with_signers(vec![
        Arc::new(ServerKey::from_seed(&[32; 32])),
        Arc::new(server),
    ]);
    let mut out = Vec::new();
    let rx = epoch() + NtpDuration::from_secs(6) + NtpDuration::from_micros(200);
    let outcome = responder.handle(
        &Request {
            bytes: &request,
            source: "198.18.0.9:40123".parse().expect("addr"),
            received_at: rx,
            monotonic: Duration::from_secs(6),
        },
        &synced(),
        &lab_keys(),
        || rx + NtpDuration::from_micros(10),
        &mut out,
    );
    assert_eq!(outcome, Outcome::Reply(ReplyKind::Time(None)));
    assert_eq!(out.len(), request.len(), "never larger than the request");
    assert_eq!(
        *responder.counters(),
        ResponderCounters {
            received: 1,
            current_version: 1,
            replies_sent: 1,
            signed_sent: 1,
            ..ResponderCounters::default()
        }
    );
    deliver_reply(&mut core, &out);
    assert!(
        core.last_offset(server_ip()).is_some(),
        "the signed reply is used; rejects {:?}",
        core.associations().next().map(|a| a.rejected().clone())
    );
}

/// Cookie mismatch, a signature by another key, an unsigned reply, a
/// truncated field, a bad signature and a broadcast's field moved into a
/// reply: each refused by its reason, with a valid MAC from an insider
/// where the server has one, and none changes anything; the genuine reply
/// after them is used.
#[test]
fn forged_calibration_replies_are_refused_by_reason_and_change_nothing() {
    let server = ServerKey::from_seed(&[31; 32]);
    let insider = ServerKey::from_seed(&[33; 32]);
    let by_server = |h: &[u8; HEADER_LEN]| server.sign_reply_field(h);
    let by_insider = |h: &[u8; HEADER_LEN]| insider.sign_reply_field(h);
    let group: SocketAddr = GROUP.parse().expect("group");
    let as_broadcast = |h: &[u8; HEADER_LEN]| server.sign_field(h, group);
    let genuine = |c: NtpTimestamp| reply(c, Some(&by_server));
    for mac in [None, Some(1)] {
        let mut core = pinned_core(&server, mac);
        start(&mut core, &server, mac);
        let request = first_request(&mut core);
        let cookie = Datagram::parse(&request).expect("request").header.transmit;
        let before = snapshot(&core);

        let other_cookie = genuine(NtpTimestamp::from_bits(cookie.to_bits() ^ 1));
        deliver_reply(&mut core, &wire(&other_cookie, mac));
        assert_eq!(
            core.global_rejects().get("bogus-origin"),
            Some(&1),
            "mac {mac:?}: a reply to no request of ours"
        );
        assert_eq!(snapshot(&core), before, "mac {mac:?}: cookie mismatch");

        let mut truncated = genuine(cookie);
        if let Some(f) = truncated.extensions.first_mut() {
            f.value.truncate(signed::FIELD_VALUE_LEN - 4);
        }
        let mut flipped = genuine(cookie);
        if let Some(f) = flipped.extensions.first_mut()
            && let Some(b) = f.value.last_mut()
        {
            *b ^= 1;
        }
        let cases: [(Datagram, &str); 5] = [
            (reply(cookie, Some(&by_insider)), "signing-key-unknown"),
            (reply(cookie, None), "unsigned"),
            (truncated, "bad-signature-field"),
            (flipped, "bad-signature"),
            (reply(cookie, Some(&as_broadcast)), "wrong-group"),
        ];
        for (forged, label) in &cases {
            // An insider holding the MAC key makes the MAC valid.
            deliver_reply(&mut core, &wire(forged, mac.or(Some(1))));
            assert_eq!(rejected(&core, label), 1, "mac {mac:?}: {label}");
            assert_eq!(
                snapshot(&core),
                before,
                "mac {mac:?}: {label} changed state"
            );
        }
        deliver_reply(&mut core, &wire(&genuine(cookie), mac));
        assert!(
            core.last_offset(server_ip()).is_some(),
            "mac {mac:?}: the genuine reply is still used"
        );
    }
}

/// A volley whose only replies are unsigned (a server that does not sign,
/// such as ntpd, behind a client that pins a public key) ends in the
/// fallback with words that say why: no usable reply, the signature
/// refused as `unsigned`, not "no reply".
#[test]
fn a_volley_of_unsigned_replies_fails_saying_the_replies_were_unsigned() {
    use mcast_core::client::association::Rejection;
    use mcast_core::client::calibration::{
        CalibrationConfig, Failure, FallbackReason, Phase, ReplyProblem,
    };
    let server = ServerKey::from_seed(&[31; 32]);
    let spec = ServerSpec {
        public_key: Some(server.public().clone()),
        ..ServerSpec::new(server_ip(), None)
    };
    let mut core = ClientCore::new(
        CoreConfig {
            groups: vec![GROUP.parse().expect("group")],
            calibration: CalibrationConfig {
                requests: 1,
                retries: 0,
                ..CalibrationConfig::default()
            },
            ..CoreConfig::with_servers(vec![spec])
        },
        lab_keys(),
    );
    start(&mut core, &server, None);
    let request = first_request(&mut core);
    let cookie = Datagram::parse(&request).expect("request").header.transmit;
    deliver_reply(&mut core, &wire(&reply(cookie, None), None));
    core.on_tick(
        Duration::from_secs(60),
        epoch() + NtpDuration::from_secs(60),
        &mut || 7,
        &mut NoClock,
    );
    let a = core.associations().next().expect("association");
    match a.calibration().map(|c| c.phase()) {
        Some(Phase::Fallback {
            reason:
                FallbackReason::Failed {
                    failure: Failure::NoUsableReply { problems, .. },
                    ..
                },
            ..
        }) => assert_eq!(
            problems,
            &vec![ReplyProblem::Signature(Rejection::Unsigned)],
            "the words name the refused signature"
        ),
        other => panic!("expected the fallback for unusable replies, got {other:?}"),
    }
}
