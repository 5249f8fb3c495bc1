//! The server's sans-I/O core against real requests captured from ntpd
//! 4.2.8p15 clients: what a client on the wire would see.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mcast_core::server::broadcaster::{BroadcastConfig, Broadcaster, Build, NextKey, Silence};
use mcast_core::server::ratelimit::{Mru, RateLimitConfig};
use mcast_core::server::responder::{
    DropReason, Outcome, ReplyKind, Request, Responder, ResponderConfig,
};
use mcast_core::server::sync::{SyncStatus, SystemHeader, Unsync};
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{
    Datagram, KissCode, LeapIndicator, Log2Seconds, Mode, NtpDuration, NtpShort, NtpTimestamp,
    RefId,
};
use support::vectors;

fn keys() -> KeyStore {
    KeyStore::load(&vectors::keys_file()).expect("lab keys")
}

fn payload(name: &str) -> Vec<u8> {
    let m = vectors::manifest().expect("manifest");
    m.vectors
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no vector {name}"))
        .payload()
}

fn synced() -> SyncStatus {
    SyncStatus::Synchronized(SystemHeader {
        leap: LeapIndicator::NoWarning,
        stratum: 2,
        reference_id: RefId::from_ipv4("198.18.0.100".parse().expect("addr")),
        root_delay: NtpShort::from_bits(0x0000_0100),
        root_dispersion: NtpShort::from_bits(0x0000_0297),
        reference_time: NtpTimestamp::from_unix(1_795_313_000, 0),
    })
}

fn responder(require_auth: bool) -> Responder {
    Responder::new(
        ResponderConfig {
            require_auth,
            precision: Log2Seconds(-24),
        },
        Mru::new(RateLimitConfig::default()),
    )
}

const RX: NtpTimestamp = NtpTimestamp::from_parts(0xeeac_d097, 0x1000_0000);
const TX: NtpTimestamp = NtpTimestamp::from_parts(0xeeac_d097, 0x2000_0000);

fn ask(r: &mut Responder, bytes: &[u8], from: &str, at_secs: f64, out: &mut Vec<u8>) -> Outcome {
    let req = Request {
        bytes,
        source: from.parse::<SocketAddr>().expect("socket address"),
        received_at: RX,
        monotonic: Duration::from_secs_f64(at_secs),
    };
    r.handle(&req, &synced(), &keys(), || TX, out)
}

#[test]
fn every_captured_ntpd_request_gets_a_signed_reply_with_its_key() {
    let m = vectors::manifest().expect("manifest");
    let store = keys();
    let mut n = 0;
    for v in m
        .vectors
        .iter()
        .filter(|v| v.name.starts_with("calib-req-") && v.expected_verdict == "valid")
    {
        let mut r = responder(true);
        let raw = v.payload();
        let request = Datagram::parse(&raw).expect("request parses");
        let mut out = Vec::new();
        let outcome = ask(&mut r, &raw, "198.18.0.10:123", 10.0, &mut out);
        let key = KeyId::new(request.mac.as_ref().expect("MAC").key_id).expect("key id");
        assert_eq!(
            outcome,
            Outcome::Reply(ReplyKind::Time(Some(key))),
            "{}",
            v.name
        );
        assert_eq!(
            out.len(),
            raw.len(),
            "{}: reply has the request's length",
            v.name
        );
        let reply = Datagram::parse(&out).expect("reply parses");
        assert_eq!(
            packet::authenticate(&store, &out, &reply, None),
            PacketAuth::Mac(MacVerdict::Valid(key)),
            "{}: reply verifies with the request's key",
            v.name
        );
        let h = reply.header;
        assert_eq!(h.mode, Mode::Server);
        assert_eq!(h.version, request.header.version);
        assert_eq!(
            h.origin, request.header.transmit,
            "{}: origin echoes the request's transmit",
            v.name
        );
        assert_eq!((h.receive, h.transmit), (RX, TX), "{}", v.name);
        assert_eq!((h.stratum, h.poll), (2, request.header.poll), "{}", v.name);
        assert_eq!(
            h.unusable_reason(&mcast_proto::SampleLimits::default()),
            None,
            "{}",
            v.name
        );
        n += 1;
    }
    assert!(
        n >= 9,
        "expected the nine captured calibration requests, got {n}"
    );
}

#[test]
fn unknown_key_gets_a_crypto_nak_like_ntpd() {
    let mut r = responder(true);
    let mut out = Vec::new();
    let raw = payload("unicast-req-unknownkey-k10");
    let outcome = ask(&mut r, &raw, "198.18.0.10:40000", 1.0, &mut out);
    assert_eq!(outcome, Outcome::Reply(ReplyKind::CryptoNak));
    assert_eq!(out.len(), 52, "header + 4 zero bytes");
    let d = Datagram::parse(&out).expect("parses");
    assert!(d.is_crypto_nak());
    assert_eq!(r.counters().auth_failed, 1);
}

#[test]
fn unauthenticated_requests_get_nothing_unless_auth_is_off() {
    let raw = payload("unicast-req-plain");
    let mut out = Vec::new();
    let mut strict = responder(true);
    assert_eq!(
        ask(&mut strict, &raw, "198.18.0.10:40000", 1.0, &mut out),
        Outcome::Dropped(DropReason::Unauthenticated)
    );
    assert!(out.is_empty());
    let mut open = responder(false);
    assert_eq!(
        ask(&mut open, &raw, "198.18.0.10:40000", 1.0, &mut out),
        Outcome::Reply(ReplyKind::Time(None))
    );
    assert_eq!(out.len(), 48);
}

#[test]
fn a_burst_gets_kod_rate_then_silence() {
    let raw = payload("kod-rate-md5-k1-request");
    let request = Datagram::parse(&raw).expect("parses");
    let mut r = responder(true);
    let mut kinds = Vec::new();
    let mut kod_bytes = Vec::new();
    for i in 0..10 {
        let mut out = Vec::new();
        kinds.push(ask(
            &mut r,
            &raw,
            "198.18.0.20:123",
            5.0 + 0.05 * f64::from(i),
            &mut out,
        ));
        if kinds.last() == Some(&Outcome::Reply(ReplyKind::KissOfDeath)) {
            kod_bytes = out;
        }
    }
    assert_eq!(kinds[0], Outcome::Reply(ReplyKind::Time(KeyId::new(1))));
    assert_eq!(kinds[1], Outcome::Reply(ReplyKind::KissOfDeath));
    assert!(
        kinds[2..]
            .iter()
            .all(|k| *k == Outcome::Dropped(DropReason::RateLimited)),
        "{kinds:?}"
    );
    let kod = Datagram::parse(&kod_bytes).expect("KoD parses");
    assert_eq!(kod.header.kiss_code(), Some(KissCode::Rate));
    assert_eq!(kod.header.leap, LeapIndicator::Unsynchronized);
    let t = request.header.transmit;
    assert_eq!(
        (kod.header.origin, kod.header.receive, kod.header.transmit),
        (t, t, t)
    );
    assert!(
        packet::authenticate(&keys(), &kod_bytes, &kod, None).is_valid(),
        "KoD signed with the request's key"
    );
    assert_eq!((r.counters().kod_sent, r.counters().rate_limited), (1, 9));
}

#[test]
fn broadcasts_and_replies_from_others_are_never_answered() {
    let mut r = responder(true);
    let mut out = Vec::new();
    for name in [
        "mcast5-md5-ascii-k1",
        "calib-resp-md5-ascii-k1",
        "kod-rate-noauth",
    ] {
        let outcome = ask(&mut r, &payload(name), "198.18.0.30:123", 1.0, &mut out);
        assert_eq!(outcome, Outcome::Dropped(DropReason::NotARequest), "{name}");
        assert!(out.is_empty(), "{name}: nothing sent");
    }
    let mut ctl = payload("unicast-req-plain");
    ctl[0] = (ctl[0] & !7) | 6;
    assert_eq!(
        ask(&mut r, &ctl, "198.18.0.31:123", 1.0, &mut out),
        Outcome::Dropped(DropReason::ControlMode)
    );
    assert_eq!(
        ask(&mut r, &[0x23; 20], "198.18.0.32:123", 1.0, &mut out),
        Outcome::Dropped(DropReason::BadFormat)
    );
    let c = r.counters();
    assert_eq!(
        (
            c.received,
            c.declined,
            c.restricted,
            c.bad_format,
            c.replies_sent
        ),
        (5, 3, 1, 1, 0)
    );
}

#[test]
fn a_key_not_allowed_for_the_source_gets_a_crypto_nak() {
    let store = KeyStore::parse(
        "1 MD5 LabMd5Key-0001 198.18.0.1\n",
        std::path::Path::new("t.keys"),
    )
    .expect("keys");
    let raw = payload("calib-req-md5-ascii-k1");
    let mut r = responder(true);
    let mut out = Vec::new();
    let req = Request {
        bytes: &raw,
        source: "198.18.0.99:123".parse().expect("addr"),
        received_at: RX,
        monotonic: Duration::from_secs(1),
    };
    assert_eq!(
        r.handle(&req, &synced(), &store, || TX, &mut out),
        Outcome::Reply(ReplyKind::CryptoNak)
    );
    assert_eq!(r.counters().restricted, 1);
}

#[test]
fn an_unsynchronized_server_replies_with_li3() {
    let raw = payload("calib-req-md5-ascii-k1");
    let mut r = responder(true);
    let mut out = Vec::new();
    let req = Request {
        bytes: &raw,
        source: "198.18.0.10:123".parse().expect("addr"),
        received_at: RX,
        monotonic: Duration::from_secs(1),
    };
    let unsync = SyncStatus::Unsynchronized {
        reason: Unsync::KernelUnsynchronized,
    };
    r.handle(&req, &unsync, &keys(), || TX, &mut out);
    let d = Datagram::parse(&out).expect("parses");
    assert_eq!(d.header.leap, LeapIndicator::Unsynchronized);
    assert!(
        d.header
            .unusable_reason(&mcast_proto::SampleLimits::default())
            .is_some()
    );
}

fn bcast(key: u16, interleave: bool, send_unsync: bool) -> Broadcaster {
    Broadcaster::new(
        BroadcastConfig {
            poll: Log2Seconds(6),
            key: KeyId::new(u32::from(key)),
            next_key: None,
            interleave,
            send_when_unsynchronized: send_unsync,
            precision: Log2Seconds(-24),
        },
        Duration::from_secs(1),
    )
}

#[test]
fn broadcasts_verify_and_carry_the_fields_ntpd_clients_expect() {
    let store = keys();
    for key in [1u16, 2, 3, 6] {
        let mut b = bcast(key, false, false);
        let mut out = Vec::new();
        assert_eq!(b.build(&synced(), &store, || TX, &mut out), Build::Send);
        let d = Datagram::parse(&out).expect("parses");
        assert_eq!(
            packet::authenticate(&store, &out, &d, None),
            PacketAuth::Mac(MacVerdict::Valid(KeyId::new(u32::from(key)).expect("id")))
        );
        let h = d.header;
        assert_eq!(
            (h.mode, h.version, h.poll, h.stratum),
            (Mode::Broadcast, 4, Log2Seconds(6), 2)
        );
        assert_eq!(
            (h.origin, h.receive, h.transmit),
            (NtpTimestamp::ZERO, NtpTimestamp::ZERO, TX)
        );
    }
}

/// With a signing key, every broadcast carries the signature field for its
/// destination, and the MAC covers header and field, so a MAC-only (ntpd)
/// client and a public-key client both verify the same bytes.
#[test]
fn signed_broadcasts_verify_by_signature_and_by_mac() {
    let store = keys();
    let signer = std::sync::Arc::new(mcast_keys::signed::ServerKey::from_seed(&[5; 32]));
    let group: std::net::SocketAddr = "224.0.1.1:123".parse().expect("group");
    let mut b = bcast(1, false, false).with_signer(std::sync::Arc::clone(&signer), group);
    let mut out = Vec::new();
    assert_eq!(b.build(&synced(), &store, || TX, &mut out), Build::Send);
    let d = Datagram::parse(&out).expect("parses");
    assert_eq!(d.extensions.len(), 1);
    assert_eq!(
        out.len(),
        mcast_proto::HEADER_LEN + 100 + 4 + 16,
        "header, the 100-byte field, key id and MD5 digest"
    );
    assert_eq!(
        packet::authenticate(&store, &out, &d, None),
        PacketAuth::Mac(MacVerdict::Valid(KeyId::new(1).expect("id"))),
        "the MAC covers the field, as ntpd computes it"
    );
    assert_eq!(
        mcast_keys::signed::check_field(signer.public(), &d, &[group]),
        Ok(())
    );
}

#[test]
fn the_schedule_is_never_sooner_than_two_to_the_poll() {
    let mut b = bcast(1, false, false);
    let mut now = b.due();
    let mut previous: Option<Duration> = None;
    for random in [0u16, 65535, 1, 30000, 12345, 0] {
        if let Some(p) = previous {
            let gap = now - p;
            assert!(gap >= Duration::from_secs(64), "gap {gap:?}");
            assert!(
                gap < Duration::from_secs(64 + 4 + 1),
                "jitter stays small: {gap:?}"
            );
        }
        previous = Some(now);
        b.advance(now, true, random, None);
        now = b.due();
    }
    assert_eq!(b.sent(), 6);
}

#[test]
fn unsynchronized_means_silence_or_an_alarm_as_configured() {
    let store = keys();
    let unsync = SyncStatus::Unsynchronized {
        reason: Unsync::UpstreamNotRunning,
    };
    let mut out = Vec::new();
    let mut quiet = bcast(1, false, false);
    match quiet.build(&unsync, &store, || TX, &mut out) {
        Build::Silent(why) => assert_eq!(
            why,
            Silence::NotSynchronized {
                reason: Unsync::UpstreamNotRunning
            }
        ),
        Build::Send => panic!("an unsynchronized server must stay silent by default"),
    }
    assert!(out.is_empty());
    let mut loud = bcast(1, false, true);
    assert_eq!(loud.build(&unsync, &store, || TX, &mut out), Build::Send);
    let d = Datagram::parse(&out).expect("parses");
    assert_eq!(
        (d.header.leap, d.header.stratum),
        (LeapIndicator::Unsynchronized, 16)
    );
}

#[test]
fn a_missing_key_silences_rather_than_sending_unauthenticated() {
    let store = keys();
    let mut b = bcast(42, false, false);
    let mut out = Vec::new();
    assert!(matches!(
        b.build(&synced(), &store, || TX, &mut out),
        Build::Silent(_)
    ));
    assert!(out.is_empty());
}

/// A rollover: packets stamped before `next-key-from` are signed with the
/// old key, those at or after it with the new one; a new key missing from
/// the keys file silences the destination rather than falling back.
#[test]
fn next_key_signs_from_its_time_on() {
    let store = keys();
    let from = TX + NtpDuration::from_seconds_f64(10.0);
    let rollover = |next: u16| {
        let mut b = bcast(1, false, false);
        let mut c = *b.config();
        c.next_key = Some(NextKey {
            key: KeyId::new(u32::from(next)).expect("id"),
            from,
        });
        b = Broadcaster::new(c, Duration::from_secs(1));
        b
    };
    let mut b = rollover(2);
    let signer = |b: &mut Broadcaster, at: NtpTimestamp| {
        let mut out = Vec::new();
        assert_eq!(b.build(&synced(), &store, || at, &mut out), Build::Send);
        let d = Datagram::parse(&out).expect("parses");
        match packet::authenticate(&store, &out, &d, None) {
            PacketAuth::Mac(MacVerdict::Valid(k)) => k.get(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(b.signing_key().map(KeyId::get), Some(1));
    let just_before = from - NtpDuration::from_nanos(1);
    assert_eq!(signer(&mut b, just_before), 1);
    assert_eq!(b.signing_key().map(KeyId::get), Some(1));
    assert_eq!(signer(&mut b, from), 2);
    assert_eq!(b.signing_key().map(KeyId::get), Some(2));
    assert_eq!(
        signer(&mut b, from + NtpDuration::from_seconds_f64(64.0)),
        2
    );

    let mut missing = rollover(42);
    assert_eq!(signer(&mut missing, just_before), 1);
    let mut out = Vec::new();
    assert_eq!(
        missing.build(&synced(), &store, || from, &mut out),
        Build::Silent(Silence::KeyMissing { key: 42 })
    );
    assert!(out.is_empty());
}

#[test]
fn interleaved_origin_carries_the_previous_kernel_transmit_time() {
    let store = keys();
    let mut b = bcast(3, true, false);
    let mut out = Vec::new();
    b.build(&synced(), &store, || TX, &mut out);
    assert_eq!(
        Datagram::parse(&out).expect("parses").header.origin,
        NtpTimestamp::ZERO
    );
    let kernel_tx = NtpTimestamp::from_parts(0xeeac_d097, 0x2000_1000);
    b.advance(b.due(), true, 0, Some(kernel_tx));
    b.build(&synced(), &store, || TX, &mut out);
    assert_eq!(
        Datagram::parse(&out).expect("parses").header.origin,
        kernel_tx
    );
}

/// The batch entry point the daemon calls with each `recvmmsg` batch:
/// every request gets its own outcome by index, replies go where their
/// request came from, junk in the middle changes nothing for the others,
/// and a full send batch drops the rest as `NoRoom`.
#[test]
fn a_batch_answers_each_request_by_index_and_drops_what_does_not_fit() {
    use mcast_core::server::responder::{Answerer, BatchScratch, Context, Replies};
    use std::sync::Mutex;

    struct Sink {
        bufs: Vec<Vec<u8>>,
        room: usize,
        committed: Vec<usize>,
    }
    impl Replies for Sink {
        fn next(&mut self) -> Option<&mut Vec<u8>> {
            if self.committed.len() >= self.room {
                return None;
            }
            if self.bufs.len() == self.committed.len() {
                self.bufs.push(Vec::new());
            }
            let b = self.bufs.last_mut()?;
            b.clear();
            Some(b)
        }
        fn commit(&mut self, index: usize) {
            self.committed.push(index);
        }
    }

    let m = vectors::manifest().expect("manifest");
    let request = m
        .vectors
        .iter()
        .find(|v| v.name.starts_with("calib-req-") && v.expected_verdict == "valid")
        .expect("a keyed ntpd request")
        .payload();
    let junk = [0u8; 7];
    let sources = [
        "198.18.0.11:123",
        "198.18.0.12:123",
        "198.18.0.13:123",
        "198.18.0.14:123",
    ];
    let bytes = [&request[..], &junk[..], &request[..], &request[..]];
    let requests: Vec<Request<'_>> = bytes
        .iter()
        .zip(sources.iter().cycle())
        .map(|(b, s)| Request {
            bytes: b,
            source: s.parse().expect("address"),
            received_at: RX,
            monotonic: Duration::from_secs(1),
        })
        .collect();
    let mut answerer = Answerer::new(
        ResponderConfig {
            require_auth: false,
            precision: Log2Seconds(-24),
        },
        RateLimitConfig::default().average_log2,
    );
    let mru = Mutex::new(Mru::new(RateLimitConfig::default()));
    let store = keys();
    let sync = synced();
    let mut sink = Sink {
        bufs: Vec::new(),
        room: 2,
        committed: Vec::new(),
    };
    let mut outcomes = Vec::new();
    answerer.handle_batch(
        &mut BatchScratch::default(),
        &mru,
        &requests,
        &Context {
            sync: &sync,
            keys: &store,
            signers: &[],
        },
        &mut || TX,
        &mut sink,
        &mut |i, o| outcomes.push((i, o)),
    );
    let kinds: Vec<(usize, bool)> = outcomes
        .iter()
        .map(|(i, o)| (*i, matches!(o, Outcome::Reply(ReplyKind::Time(Some(_))))))
        .collect();
    assert_eq!(
        kinds,
        vec![(0, true), (1, false), (2, true), (3, false)],
        "outcomes by index: {outcomes:?}"
    );
    assert_eq!(
        outcomes.get(1).map(|o| o.1),
        Some(Outcome::Dropped(DropReason::BadFormat))
    );
    assert_eq!(
        outcomes.get(3).map(|o| o.1),
        Some(Outcome::Dropped(DropReason::NoRoom))
    );
    assert_eq!(sink.committed, vec![0, 2], "replies to requests 0 and 2");
    for reply in &sink.bufs {
        let d = Datagram::parse(reply).expect("reply parses");
        assert_eq!(d.header.mode, Mode::Server);
        assert_eq!(
            d.header.transmit, TX,
            "the clock read for its transmit time"
        );
    }
    assert_eq!(answerer.counters().received, 4);
    assert_eq!(answerer.counters().bad_format, 1);
    assert_eq!(
        mru.lock().expect("mru").len(),
        3,
        "every parsed source is in the table, answered or not"
    );
}
