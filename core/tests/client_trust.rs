//! The client's trust rules (security-model R2-R6), each with forged
//! packets against the sans-I/O core: a packet that fails any check is
//! counted by reason and changes nothing else.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::association::State;
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Event, Incoming};
use mcast_keys::signed::ServerKey;
use mcast_keys::{KeyId, KeyStore, packet};
use mcast_proto::{Datagram, LeapIndicator, Log2Seconds, Mode, NtpTimestamp};
use support::packets::{NoClock, deliver_broadcast, epoch, server_header, sign};
use support::vectors;

const S1: &str = "198.18.0.1:123";
const S2: &str = "198.18.0.2:123";

fn lab_keys() -> KeyStore {
    KeyStore::load(&vectors::keys_file()).expect("lab keys")
}

fn core_with(keys: KeyStore, servers: &[(&str, Option<u16>)], discover: bool) -> ClientCore {
    let servers = servers
        .iter()
        .map(|(a, k)| ServerSpec {
            name: (*a).to_string(),
            ..ServerSpec::new(
                a.parse::<SocketAddr>().expect("addr").ip(),
                k.and_then(|k| KeyId::new(u32::from(k))),
            )
        })
        .collect();
    ClientCore::new(
        CoreConfig {
            discover,
            ..CoreConfig::with_servers(servers)
        },
        keys,
    )
}

fn core() -> ClientCore {
    core_with(lab_keys(), &[(S1, Some(1)), (S2, Some(3))], false)
}

/// A mode-5 packet sent at `t` seconds (poll 6), signed with `key` if any.
fn bcast(keys: &KeyStore, key: Option<u16>, t: f64, poll: i8) -> Vec<u8> {
    let mut h = server_header(Mode::Broadcast);
    h.poll = Log2Seconds(poll);
    h.transmit = epoch() + mcast_proto::NtpDuration::from_seconds_f64(t);
    sign(keys, key, h)
}

/// The cookie of the first calibration request `core` sends on its tick
/// 6 s after start (clock reading `now`).
fn first_request_cookie(core: &mut ClientCore, now: NtpTimestamp) -> NtpTimestamp {
    let request = core
        .on_tick(
            Duration::from_secs(6),
            now,
            &mut rand::random::<u64>,
            &mut NoClock,
        )
        .into_iter()
        .find_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes),
            _ => None,
        })
        .expect("a calibration request within the 5 s start window");
    Datagram::parse(&request).expect("request").header.transmit
}

fn deliver(core: &mut ClientCore, from: &str, bytes: &[u8], t: f64) -> Vec<Action> {
    let rx = epoch() + mcast_proto::NtpDuration::from_seconds_f64(t + 0.0002);
    deliver_broadcast(core, from, bytes, rx, t)
}

/// Everything about an association that a packet could change.
fn snapshot(core: &ClientCore, i: usize) -> String {
    let a = core.associations().nth(i).expect("association");
    format!(
        "{:?} accepted={} reach={} poll={:?} unicast={} cal={:?} hdr={:?}",
        a.state(),
        a.accepted(),
        a.reach(),
        a.poll(),
        a.unicast_sent(),
        a.calibration().map(|c| c.phase()),
        a.last_header().map(|h| h.transmit)
    )
}

fn rejected(core: &ClientCore, i: usize, label: &str) -> u64 {
    let a = core.associations().nth(i).expect("association");
    a.rejected()
        .iter()
        .filter(|(r, _)| r.label() == label)
        .map(|(_, n)| *n)
        .sum()
}

#[test]
fn a_valid_packet_is_accepted_and_starts_calibration() {
    let keys = lab_keys();
    let mut c = core();
    let actions = deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Event(Event::Calibrating { .. })))
    );
    assert_eq!(
        c.associations().next().map(|a| a.state()),
        Some(State::Calibrating)
    );
}

#[test]
fn a_packet_signed_with_another_trusted_key_is_rejected() {
    // CVE-2015-7974 / CVE-2016-1567: key 3 is trusted, but it is server 2's key.
    let keys = lab_keys();
    let mut c = core();
    let before = snapshot(&c, 0);
    assert!(deliver(&mut c, S1, &bcast(&keys, Some(3), 0.0, 6), 0.0).is_empty());
    assert_eq!(snapshot(&c, 0), before);
    assert_eq!(rejected(&c, 0, "wrong-key"), 1);
}

#[test]
fn a_key_from_a_source_its_address_list_does_not_allow_is_rejected() {
    let keys =
        KeyStore::parse("1 MD5 LabMd5Key-0001 198.18.0.9\n", Path::new("acl.keys")).expect("keys");
    let mut c = core_with(keys.clone(), &[(S1, Some(1))], false);
    let before = snapshot(&c, 0);
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    assert_eq!(snapshot(&c, 0), before);
    assert_eq!(rejected(&c, 0, "source-not-allowed"), 1);
}

#[test]
fn unauthenticated_packets_are_rejected_unless_auth_is_off_for_that_server() {
    let keys = lab_keys();
    let mut c = core();
    deliver(&mut c, S1, &bcast(&keys, None, 0.0, 6), 0.0);
    assert_eq!(rejected(&c, 0, "unauthenticated"), 1);
    assert_eq!(
        c.associations().next().map(|a| a.state()),
        Some(State::Listening)
    );
    let mut open = core_with(keys.clone(), &[(S1, None)], false);
    deliver(&mut open, S1, &bcast(&keys, None, 0.0, 6), 0.0);
    assert_eq!(
        open.associations().next().map(|a| a.state()),
        Some(State::Calibrating)
    );
}

#[test]
fn bad_garbled_and_crypto_nak_packets_change_nothing() {
    // CVE-2015-7979, CVE-2018-7185: nothing unauthenticated may reset,
    // re-calibrate or remove an association.
    let keys = lab_keys();
    let mut c = core();
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let before = snapshot(&c, 0);
    let mut bad_mac = bcast(&keys, Some(1), 64.0, 6);
    let last = bad_mac.len() - 1;
    bad_mac[last] ^= 0x55;
    let mut nak = bcast(&keys, None, 64.0, 6);
    nak.extend_from_slice(&[0, 0, 0, 0]);
    let unknown_key = {
        let mut b = bcast(&keys, Some(1), 64.0, 6);
        b[48..52].copy_from_slice(&99u32.to_be_bytes());
        b
    };
    for (i, p) in [bad_mac, nak, unknown_key, vec![0x25; 30], vec![0x25; 50]]
        .iter()
        .enumerate()
    {
        assert!(
            deliver(&mut c, S1, p, 64.0 + i as f64).is_empty(),
            "packet {i} produced actions"
        );
        assert_eq!(
            snapshot(&c, 0),
            before,
            "packet {i} changed the association"
        );
    }
    assert_eq!(rejected(&c, 0, "bad-mac"), 1);
    assert_eq!(rejected(&c, 0, "crypto-nak"), 1);
    assert_eq!(rejected(&c, 0, "unknown-key"), 1);
    assert_eq!(c.global_rejects().get("bad-format"), Some(&2));
}

#[test]
fn replays_are_rejected_after_authentication() {
    let keys = lab_keys();
    let mut c = core();
    let first = bcast(&keys, Some(1), 0.0, 6);
    deliver(&mut c, S1, &first, 0.0);
    let before = snapshot(&c, 0);
    // The same packet again, and an older one, an interval later.
    deliver(&mut c, S1, &first, 64.5);
    deliver(&mut c, S1, &bcast(&keys, Some(1), -64.0, 6), 65.0);
    assert_eq!(snapshot(&c, 0), before);
    assert_eq!(rejected(&c, 0, "replay"), 2);
    // The real next packet is still accepted.
    deliver(&mut c, S1, &bcast(&keys, Some(1), 64.7, 6), 66.0);
    assert_eq!(c.associations().next().map(|a| a.accepted()), Some(2));
}

#[test]
fn forged_packets_do_not_move_the_replay_or_rate_state() {
    // CVE-2016-7427/7428: a forged packet with a far-future transmit time
    // or an early arrival must not lock the real server out.
    let keys = lab_keys();
    let mut c = core();
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let mut forged = bcast(&keys, Some(1), 100_000.0, 6);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    deliver(&mut c, S1, &forged, 10.0);
    deliver(&mut c, S1, &bcast(&keys, Some(1), 64.2, 6), 64.2);
    assert_eq!(
        c.associations().next().map(|a| a.accepted()),
        Some(2),
        "real server not locked out"
    );
}

#[test]
fn packets_sooner_than_the_poll_interval_and_poll_changes_are_rejected() {
    let keys = lab_keys();
    let mut c = core();
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    deliver(&mut c, S1, &bcast(&keys, Some(1), 10.0, 6), 10.0);
    assert_eq!(rejected(&c, 0, "too-early"), 1);
    deliver(&mut c, S1, &bcast(&keys, Some(1), 64.0, 4), 64.0);
    assert_eq!(rejected(&c, 0, "poll-changed"), 1);
    deliver(&mut c, S1, &bcast(&keys, Some(1), 64.5, 6), 64.5);
    assert_eq!(c.associations().next().map(|a| a.accepted()), Some(2));
}

#[test]
fn never_time_packets_are_counted_and_not_used() {
    let keys = lab_keys();
    let mut c = core();
    let mut h = Datagram::parse(&bcast(&keys, None, 0.0, 6))
        .expect("parses")
        .header;
    h.leap = LeapIndicator::Unsynchronized;
    let mut out = Vec::new();
    packet::sign(
        keys.get(KeyId::new(1).expect("id")).expect("key"),
        &Datagram::new(h),
        &mut out,
    );
    deliver(&mut c, S1, &out, 0.0);
    assert_eq!(rejected(&c, 0, "unusable"), 1);
    assert_eq!(
        c.associations().next().map(|a| a.state()),
        Some(State::Listening)
    );
}

#[test]
fn unknown_sources_are_ignored_unless_discovery_binds_them() {
    let keys = lab_keys();
    let mut c = core();
    deliver(
        &mut c,
        "198.18.0.7:123",
        &bcast(&keys, Some(5), 0.0, 6),
        0.0,
    );
    assert_eq!(c.global_rejects().get("unknown-source"), Some(&1));
    assert_eq!(c.associations().count(), 2);

    let mut d = core_with(keys.clone(), &[], true);
    deliver(
        &mut d,
        "198.18.0.7:123",
        &bcast(&keys, Some(5), 0.0, 6),
        0.0,
    );
    assert_eq!(d.associations().count(), 1);
    let ip = "198.18.0.7".parse().expect("ip");
    assert_eq!(
        d.key_of(ip),
        KeyId::new(5),
        "bound to the key it first signed with"
    );
    // From now on only key 5 is accepted from it.
    deliver(
        &mut d,
        "198.18.0.7:123",
        &bcast(&keys, Some(1), 64.0, 6),
        64.0,
    );
    assert_eq!(rejected(&d, 0, "wrong-key"), 1);
    // An unsigned packet from a new source does not create an association.
    deliver(&mut d, "198.18.0.8:123", &bcast(&keys, None, 0.0, 6), 0.0);
    assert_eq!(d.associations().count(), 1);
}

/// A forged reply that echoes our request (an on-path attacker sees its
/// transmit timestamp) but fails authentication must not use the request
/// up: the genuine reply that follows is still taken.
#[test]
fn a_forged_reply_does_not_use_up_the_request_it_echoes() {
    let keys = lab_keys();
    let mut core = core();
    deliver(&mut core, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let now = NtpTimestamp::from_unix(1_800_000_006, 0);
    let cookie = first_request_cookie(&mut core, now);
    let reply = |key: Option<u16>| {
        let mut h = server_header(Mode::Server);
        h.poll = Log2Seconds(0);
        h.origin = cookie;
        h.receive = cookie + mcast_proto::NtpDuration::from_micros(100);
        h.transmit = h.receive + mcast_proto::NtpDuration::from_micros(10);
        sign(&keys, key, h)
    };
    let deliver_reply = |core: &mut ClientCore, bytes: &[u8]| {
        core.on_reply(
            Incoming {
                bytes,
                source: S1.parse().expect("addr"),
                rx: cookie + mcast_proto::NtpDuration::from_micros(220),
                mono: Duration::from_secs_f64(6.001),
            },
            &mut NoClock,
        )
    };
    let server = S1.parse::<SocketAddr>().expect("addr").ip();
    for forged in [reply(None), reply(Some(3))] {
        deliver_reply(&mut core, &forged);
        assert_eq!(core.last_offset(server), None, "a forged reply is not used");
    }
    deliver_reply(&mut core, &reply(Some(1)));
    assert!(
        core.last_offset(server).is_some(),
        "the genuine reply is used; rejects: {:?}",
        core.global_rejects()
    );
    assert_eq!(core.global_rejects().get("bogus-origin"), None);
}

/// The request's transmit field is a random cookie, not our clock: an
/// off-path host cannot guess what a reply must echo.
#[test]
fn calibration_requests_carry_random_cookies_not_the_clock() {
    let keys = lab_keys();
    let mut core = core();
    deliver(&mut core, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let now = NtpTimestamp::from_unix(1_800_000_006, 0);
    let mut given = Vec::new();
    let requests: Vec<Vec<u8>> = core
        .on_tick(
            Duration::from_secs(6),
            now,
            &mut || {
                let r = rand::random::<u64>();
                given.push(r);
                r
            },
            &mut NoClock,
        )
        .into_iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert!(!requests.is_empty(), "a calibration request at 6 s");
    for r in &requests {
        let transmit = Datagram::parse(r).expect("request").header.transmit;
        assert_ne!(transmit, now, "the clock reading is not on the wire");
        assert!(
            given
                .iter()
                .any(|g| NtpTimestamp::from_bits(*g) == transmit),
            "the transmit field is a cookie the core was given"
        );
    }
}

/// An unsigned Kiss-o'-Death from the server's address that echoes the
/// request's cookie everywhere (an on-path host can read it) must not end
/// the calibration of a keyed server: it is counted and dropped, and the
/// genuine signed reply is still taken.
#[test]
fn an_unsigned_kiss_o_death_does_not_end_a_keyed_calibration() {
    let keys = lab_keys();
    let mut core = core();
    deliver(&mut core, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let now = NtpTimestamp::from_unix(1_800_000_006, 0);
    let cookie = first_request_cookie(&mut core, now);
    let server = S1.parse::<SocketAddr>().expect("addr");
    fn at(bytes: &[u8], source: SocketAddr, now: NtpTimestamp) -> Incoming<'_> {
        Incoming {
            bytes,
            source,
            rx: now + mcast_proto::NtpDuration::from_micros(220),
            mono: Duration::from_secs_f64(6.001),
        }
    }
    for code in ["DENY", "RSTR", "RATE"] {
        let mut kod = server_header(Mode::Server);
        kod.stratum = 0;
        kod.reference_id = mcast_proto::RefId::from_code(code);
        kod.origin = cookie;
        kod.receive = cookie;
        kod.transmit = cookie;
        let forged = sign(&keys, None, kod);
        let actions = core.on_reply(at(&forged, server, now), &mut NoClock);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, Action::Event(Event::KissOfDeath { .. }))),
            "an unsigned {code} is not a kiss-o'-death: {actions:?}"
        );
    }
    assert_eq!(
        core.global_rejects().get("unauthenticated-kod"),
        Some(&3),
        "each forged KoD is counted: {:?}",
        core.global_rejects()
    );
    let a = core.associations().next().expect("association");
    assert_eq!(a.state(), State::Calibrating, "still calibrating");
    let mut h = server_header(Mode::Server);
    h.poll = Log2Seconds(0);
    h.origin = cookie;
    h.receive = now + mcast_proto::NtpDuration::from_micros(100);
    h.transmit = h.receive + mcast_proto::NtpDuration::from_micros(10);
    let genuine = sign(&keys, Some(1), h);
    core.on_reply(at(&genuine, server, now), &mut NoClock);
    assert!(
        core.last_offset(server.ip()).is_some(),
        "the genuine reply is used"
    );
}

/// A reload (SIGHUP) whose keys file lost a server's key, or no longer
/// allows its address, is refused as a whole: the client keeps the old
/// keys, so it neither sends unsigned requests nor rejects the server.
#[test]
fn a_reload_that_would_lose_a_servers_key_is_refused() {
    use mcast_core::client::engine::KeyLossReason;
    let keys = lab_keys();
    let mut c = core();
    let without_1 = KeyStore::from_keys(
        Path::new("new.keys"),
        keys.iter().filter(|k| k.id().get() != 1).cloned(),
    )
    .expect("store");
    let lost = c.set_keys(without_1).expect_err("refused");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].key.get(), 1);
    assert_eq!(lost[0].why, KeyLossReason::Missing);
    assert_eq!(lost[0].server, S1);
    // The old keys are still in force: S1's signed broadcast is accepted.
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    assert_eq!(c.associations().next().map(|a| a.accepted()), Some(1));

    let elsewhere = KeyStore::from_keys(
        Path::new("new.keys"),
        keys.iter().map(|k| {
            if k.id().get() == 3 {
                k.clone()
                    .with_allowed_sources(vec![mcast_keys::SourcePrefix::host(
                        "198.18.9.9".parse().expect("ip"),
                    )])
            } else {
                k.clone()
            }
        }),
    )
    .expect("store");
    let lost = c.set_keys(elsewhere).expect_err("refused");
    assert_eq!(lost[0].why, KeyLossReason::AddressNotAllowed, "{lost:?}");
    assert!(c.set_keys(lab_keys()).is_ok(), "the same keys reload");
}

/// `discover-keys` (ntpd's trustedkey): discovery binds only the listed
/// key ids; a source signing with another key of the store stays unknown.
#[test]
fn discovery_binds_only_the_keys_it_is_allowed() {
    let keys = lab_keys();
    let mut c = ClientCore::new(
        CoreConfig {
            discover: true,
            discover_keys: Some(vec![KeyId::new(1).expect("key id")]),
            ..CoreConfig::with_servers(Vec::new())
        },
        keys.clone(),
    );
    deliver(
        &mut c,
        "198.18.0.7:123",
        &bcast(&keys, Some(5), 0.0, 6),
        0.0,
    );
    assert_eq!(c.associations().count(), 0, "key 5 is not in discover-keys");
    assert_eq!(
        c.global_rejects().get("discovery-key-not-allowed"),
        Some(&1)
    );
    deliver(
        &mut c,
        "198.18.0.8:123",
        &bcast(&keys, Some(1), 1.0, 6),
        1.0,
    );
    let ip = "198.18.0.8".parse().expect("ip");
    assert_eq!(
        c.key_of(ip),
        KeyId::new(1),
        "key 1 is, and binds its source"
    );
}

/// A mode-5 packet sent at `t` (poll 6) to `group`, with the signature
/// field of `signer` (if any), then the MAC of `key` (if any) over both.
fn signed_bcast(
    keys: &KeyStore,
    signer: Option<&ServerKey>,
    key: Option<u16>,
    t: f64,
    group: &str,
) -> Vec<u8> {
    let mut h = server_header(Mode::Broadcast);
    h.poll = Log2Seconds(6);
    h.transmit = epoch() + mcast_proto::NtpDuration::from_seconds_f64(t);
    let mut d = Datagram::new(h);
    if let Some(s) = signer {
        d.extensions
            .push(s.sign_field(&h.to_bytes(), group.parse().expect("group")));
    }
    match key {
        Some(id) => {
            let k = keys
                .get(KeyId::new(u32::from(id)).expect("id"))
                .expect("key in the lab keys");
            let mut out = Vec::new();
            packet::sign(k, &d, &mut out);
            out
        }
        None => d.to_bytes(),
    }
}

fn signed_core(keys: KeyStore, public: &ServerKey, key: Option<u16>) -> ClientCore {
    let spec = ServerSpec {
        public_key: Some(public.public().clone()),
        ..ServerSpec::new(
            S1.parse::<SocketAddr>().expect("addr").ip(),
            key.and_then(|k| KeyId::new(u32::from(k))),
        )
    };
    ClientCore::new(
        CoreConfig {
            groups: vec![GROUP.parse().expect("group")],
            ..CoreConfig::with_servers(vec![spec])
        },
        keys,
    )
}

const GROUP: &str = "224.0.1.1:123";
const HEADER: usize = mcast_proto::HEADER_LEN;

/// With a public key pinned, only the server's signature makes a packet
/// authentic: an insider holding the shared MAC key cannot forge it, and a
/// signature for another group or key, or none, is refused by reason.
#[test]
fn a_pinned_public_key_refuses_what_the_shared_key_alone_would_accept() {
    let keys = lab_keys();
    let server = ServerKey::from_seed(&[11; 32]);
    let insider = ServerKey::from_seed(&[12; 32]);
    for mac in [None, Some(1)] {
        let mut c = signed_core(keys.clone(), &server, mac);
        let cases: [(Vec<u8>, &str); 4] = [
            (signed_bcast(&keys, None, Some(1), 0.0, GROUP), "unsigned"),
            (
                signed_bcast(&keys, Some(&insider), Some(1), 1.0, GROUP),
                "signing-key-unknown",
            ),
            (
                signed_bcast(&keys, Some(&server), Some(1), 2.0, "224.0.1.2:123"),
                "wrong-group",
            ),
            (
                {
                    let mut b = signed_bcast(&keys, Some(&server), mac, 3.0, GROUP);
                    // Flip a bit of the signature itself.
                    b[HEADER + 60] ^= 1;
                    if let Some(id) = mac {
                        // Re-MAC it, as an insider can: only the signature is wrong.
                        let d = Datagram::parse(&b).expect("parses");
                        let k = keys
                            .get(KeyId::new(u32::from(id)).expect("id"))
                            .expect("key");
                        let mut out = Vec::new();
                        packet::sign(k, &Datagram { mac: None, ..d }, &mut out);
                        b = out;
                    }
                    b
                },
                "bad-signature",
            ),
        ];
        for (bytes, label) in &cases {
            deliver(&mut c, S1, bytes, 0.0);
            assert_eq!(rejected(&c, 0, label), 1, "mac {mac:?}: {label}");
        }
        // A garbled field (wrong magic), and one whose length overruns the
        // packet (never parsed: dropped before any association sees it).
        let mut garbled = signed_bcast(&keys, Some(&server), None, 3.5, GROUP);
        garbled[HEADER + 4] ^= 0xff;
        deliver(&mut c, S1, &garbled, 0.0);
        assert_eq!(rejected(&c, 0, "bad-signature-field"), 1, "mac {mac:?}");
        let mut overrun = signed_bcast(&keys, Some(&server), None, 3.6, GROUP);
        overrun[HEADER + 3] = 200;
        deliver(&mut c, S1, &overrun, 0.0);
        assert_eq!(
            c.global_rejects().get("bad-format"),
            Some(&1),
            "mac {mac:?}"
        );
        assert_eq!(c.associations().next().expect("one").accepted(), 0);
        assert_eq!(
            c.associations().next().expect("one").state(),
            State::Listening,
            "nothing forged moved it"
        );
        deliver(
            &mut c,
            S1,
            &signed_bcast(&keys, Some(&server), mac, 4.0, GROUP),
            4.0,
        );
        assert_eq!(
            c.associations().next().expect("one").state(),
            State::Calibrating,
            "mac {mac:?}: the genuine signed packet is accepted"
        );
    }
}

/// A flood of forged signatures costs at most the per-server budget of
/// checks; the rest are refused unchecked and counted.
#[test]
fn forged_signatures_beyond_the_budget_are_not_checked() {
    let keys = lab_keys();
    let server = ServerKey::from_seed(&[11; 32]);
    let insider = ServerKey::from_seed(&[12; 32]);
    let mut c = signed_core(keys.clone(), &server, None);
    let forged = signed_bcast(&keys, Some(&insider), None, 0.0, GROUP);
    for _ in 0..200 {
        deliver(&mut c, S1, &forged, 0.0);
    }
    let checked = rejected(&c, 0, "signing-key-unknown");
    let refused = rejected(&c, 0, "verify-budget");
    assert_eq!(checked + refused, 200);
    assert_eq!(
        checked,
        mcast_core::client::association::VERIFY_BURST as u64,
        "a burst of checks, then none until the budget refills"
    );
}

/// A rollover: server 1 rebound (a reload, no recalibration) to keys
/// [1, 2] accepts broadcasts signed with either, still refuses server 2's
/// key 3, and signs its calibration with the first; a rebinding to a key
/// the keys file lacks is refused and changes nothing.
#[test]
fn a_server_rebound_to_two_keys_accepts_either_and_keeps_its_state() {
    use mcast_core::client::engine::KeyBinding;
    let keys = lab_keys();
    let mut c = core();
    deliver(&mut c, S1, &bcast(&keys, Some(1), 0.0, 6), 0.0);
    let accepted = |c: &ClientCore| c.associations().next().map(|a| a.accepted());
    assert_eq!(accepted(&c), Some(1));
    let s1 = S1.parse::<SocketAddr>().expect("addr").ip();
    let binding = |more: u32| KeyBinding {
        address: s1,
        key: KeyId::new(1),
        more_keys: vec![KeyId::new(more).expect("id")],
    };
    let lost = c
        .rebind_keys(lab_keys(), &[binding(999)])
        .expect_err("key 999 is not in the keys file");
    assert_eq!(lost.len(), 1);
    assert_eq!(lost.first().map(|l| l.key.get()), Some(999));
    assert!(
        c.associations()
            .next()
            .is_some_and(|a| a.spec().more_keys.is_empty())
    );

    let state = c.associations().next().map(|a| a.state());
    assert_eq!(c.rebind_keys(lab_keys(), &[binding(2)]), Ok(1));
    assert_eq!(
        c.associations().next().map(|a| a.state()),
        state,
        "no recalibration"
    );
    deliver(&mut c, S1, &bcast(&keys, Some(2), 64.0, 6), 64.0);
    assert_eq!(accepted(&c), Some(2), "the new key verifies");
    assert_eq!(
        c.associations()
            .next()
            .and_then(|a| a.last_key())
            .map(KeyId::get),
        Some(2)
    );
    deliver(&mut c, S1, &bcast(&keys, Some(1), 128.0, 6), 128.0);
    assert_eq!(accepted(&c), Some(3), "the old key still does");
    deliver(&mut c, S1, &bcast(&keys, Some(3), 192.0, 6), 192.0);
    assert_eq!(accepted(&c), Some(3));
    assert_eq!(
        rejected(&c, 0, "wrong-key"),
        1,
        "another server's key still is not"
    );
    // The same bindings again (a SIGHUP with nothing edited) rebind nothing.
    assert_eq!(c.rebind_keys(lab_keys(), &[binding(2)]), Ok(0));
}
