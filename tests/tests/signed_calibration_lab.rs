#![cfg(test)]
//! Issue 14, calibration without secrets, on a namespace LAN: a client
//! that pins our server by its Ed25519 public key alone (no `key`, no
//! shared secret for it) calibrates from signed replies and tracks; an
//! on-path insider holding the server's legacy MAC key answers every
//! calibration request first with forged replies that carry valid MACs,
//! and the client refuses every one (counted) and measures the true delay.
//! Needs root; fails loudly (never skips) without it.
//!
//! Every process runs in a namespace of the test's own Lan without
//! `CAP_SYS_TIME`, the client in monitor mode; all traffic stays on the
//! Lan (198.18.0.0/15, 224.0.1.1). The hosts share one clock, so a
//! client's offset is its error.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use mcast_core::client::association::State;
use mcast_core::client::status::{CalibrationStatus, ServerStatus};
use mcast_keys::signed::ServerKey;
use mcast_lab::lab::{
    Attacker, Daemon, GROUP, NTP_PORT, Program, client_diag as diag, destination, keys_file,
    lab_required, local_source, rejected, server_row as row, strings as args, wait_calibrated,
    wait_for, write_private,
};
use mcast_lab::netns::{Host, Lan};

/// The error a client on this LAN normally has, ms.
const NORMAL_ERROR_MS: f64 = 5.0;

/// Calibration requests of the client's one volley.
const REQUESTS: u8 = 4;

/// Our server in `host`: key 1 (for legacy clients; the insider holds it
/// too) and the Ed25519 signing key `signer`, broadcasting to `group`
/// every 8 s; `require-auth` stays on (its default).
fn signed_server(host: &Host, work: &Path, signer: &ServerKey, group: Ipv4Addr) -> Daemon {
    let key_path = work.join("server.ed25519");
    write_private(&key_path, &signer.to_file_text());
    let body = format!(
        "lab-allow-fast-poll = true\n{}{}",
        destination(
            &group.to_string(),
            1,
            3,
            &format!("signing-key = {:?}\n", key_path.display().to_string())
        ),
        local_source(2)
    );
    Daemon::start(Program::Server, host, work, "server", NTP_PORT, &body)
}

/// A monitor-mode client listening to `group` that knows `server` by its
/// public key only: its `[[server]]` has no `key`, and its keys file does
/// not exist (it holds no shared secret at all).
fn public_key_client(
    host: &Host,
    work: &Path,
    server: Ipv4Addr,
    signer: &ServerKey,
    group: Ipv4Addr,
) -> Daemon {
    let body = format!(
        "[[listen]]\ngroup = \"{group}\"\ninterface = \"eth0\"\n\
         [calibration]\nstart-delay-max-s = 1\nrequests = {REQUESTS}\nspacing-s = 2\nretries = 1\n\
         [clock]\nmode = \"monitor\"\n\
         [[server]]\naddress = \"{server}\"\npublic-key = \"{}\"\n",
        signer.public().to_line()
    );
    let no_keys = work.join("client-has-no.keys");
    Daemon::start_with_keys(
        Program::Client,
        host,
        work,
        "client",
        NTP_PORT,
        &no_keys,
        &body,
    )
}

fn one_way_ms(r: &ServerStatus) -> f64 {
    match r.calibration {
        CalibrationStatus::Calibrated {
            one_way_delay_ms, ..
        } => one_way_delay_ms,
        ref other => panic!("expected a measured delay, got {other:?}"),
    }
}

/// The refusals of a reply's signature, by reason, on `r`'s row.
const SIGNATURE_REASONS: [&str; 5] = [
    "unsigned",
    "bad-signature-field",
    "signing-key-unknown",
    "wrong-group",
    "bad-signature",
];

/// A client with only `public-key` calibrates against our server (whose
/// requests carry no MAC, and whose server has `require-auth` on) and
/// tracks it; an on-path insider holding the server's MAC key answers each
/// request at once with a forged reply 500 ms off, valid MAC and all, in
/// turn unsigned, signed by its own key, and with the server's fingerprint
/// over a garbage signature. Every forgery is refused and counted (by its
/// signature's reason, or as `bogus-origin` when the genuine reply had
/// already answered that request); the delay and offset are the truth.
#[test]
fn a_public_key_only_client_calibrates_and_refuses_an_insiders_forged_replies() {
    lab_required("a_public_key_only_client_calibrates_and_refuses_an_insiders_forged_replies");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    lan.hub_mode()
        .expect("make the bridge a hub: the insider is on path");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let signer = ServerKey::from_seed(&[41; 32]);
    let server = signed_server(&h1, work.path(), &signer, GROUP);
    let attacker = Attacker::start(
        &h3,
        work.path(),
        "insider",
        &args(&[
            "insider-reply",
            "--server",
            &h1.addr().to_string(),
            "--client",
            &h2.addr().to_string(),
            "--keys",
            &keys_file().display().to_string(),
            "--key",
            "1",
            "--public-key",
            &signer.public().to_line(),
            "--shift-ms",
            "500",
            "--count",
            "50",
            "--duration-s",
            "30",
        ]),
    );
    let c = public_key_client(&h2, work.path(), h1.addr(), &signer, GROUP);
    let r = wait_calibrated(&c, h1.addr(), Duration::from_secs(60));
    let sent = attacker.finish(Duration::from_secs(40));
    let s = c.client_status();
    let r_now = row(&s, h1.addr());
    let by_reason: Vec<(&str, u64)> = SIGNATURE_REASONS
        .iter()
        .map(|l| (*l, rejected(&r_now, &s, l)))
        .collect();
    let refused: u64 = by_reason.iter().map(|(_, n)| n).sum();
    let bogus = s.rejected.get("bogus-origin").copied().unwrap_or(0);
    let one_way = one_way_ms(&r);
    let counters = server.server_status().counters;
    eprintln!(
        "insider-reply: {} forged replies to {} requests; refused by signature {by_reason:?}, \
         bogus-origin {bogus}; one-way delay {one_way:.3} ms, offset {:?} ms; server signed {}",
        sent.sent, sent.seen, r_now.offset_ms, counters.signed_sent
    );
    assert!(
        sent.sent >= u64::from(REQUESTS),
        "the insider answered every request: {sent:?}"
    );
    assert_eq!(
        refused + bogus,
        sent.sent,
        "every forged reply is refused and counted: {by_reason:?}, bogus-origin {bogus}\n{}",
        diag(&c)()
    );
    assert!(
        refused >= 1,
        "at least one forgery beat the genuine reply and was refused by its signature \
         (else this run showed nothing): {by_reason:?}, bogus-origin {bogus}"
    );
    assert!(
        (0.0..2.0).contains(&one_way),
        "a plausible one-way delay on a namespace LAN, not the forgeries' 500 ms: {one_way} ms"
    );
    let offset = r_now.offset_ms.expect("an offset while tracking");
    assert!(
        offset.abs() < NORMAL_ERROR_MS,
        "the forged replies moved the client: offset {offset} ms\n{}",
        diag(&c)()
    );
    assert_eq!(
        r_now.unicast_sent,
        u64::from(REQUESTS),
        "one volley, no retry, never any polling"
    );
    assert!(
        counters.signed_sent >= u64::from(REQUESTS) && counters.sign_budget == 0,
        "the server signed every reply within its budget: {counters:?}"
    );
    // Tracking goes on from broadcasts: one more accepted after the volley.
    wait_for(
        "another accepted broadcast",
        Duration::from_secs(20),
        Duration::from_millis(200),
        || {
            let now = row(&c.client_status(), h1.addr());
            (now.accepted > r_now.accepted && now.state == State::Tracking).then_some(())
        },
        diag(&c),
    );
}

/// A signed broadcast recorded from group A (224.0.1.1, where our server
/// sends) and re-sent at once, byte for byte and from the server's address,
/// into group B (224.0.1.2), where the client listens and knows the server
/// by its public key: every one is refused as `wrong-group` (its signature
/// names A) and nothing changes: no broadcast accepted, no calibration, no
/// unicast sent.
#[test]
fn a_signed_broadcast_replayed_into_another_group_is_refused_as_wrong_group() {
    lab_required("a_signed_broadcast_replayed_into_another_group_is_refused_as_wrong_group");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let group_b = Ipv4Addr::new(224, 0, 1, 2);
    let signer = ServerKey::from_seed(&[42; 32]);
    let _server = signed_server(&h1, work.path(), &signer, GROUP);
    let c = public_key_client(&h2, work.path(), h1.addr(), &signer, group_b);
    let attacker = Attacker::start(
        &h3,
        work.path(),
        "regroup",
        &args(&[
            "regroup",
            "--server",
            &h1.addr().to_string(),
            "--from-group",
            &GROUP.to_string(),
            "--to-group",
            &group_b.to_string(),
            "--count",
            "3",
            "--duration-s",
            "40",
        ]),
    );
    let sent = attacker.finish(Duration::from_secs(50));
    assert_eq!(
        sent.sent, 3,
        "three broadcasts moved into group B: {sent:?}"
    );
    let s = wait_for(
        "the client to count the three replays",
        Duration::from_secs(5),
        Duration::from_millis(100),
        || {
            let s = c.client_status();
            let r = row(&s, h1.addr());
            (rejected(&r, &s, "wrong-group") == sent.sent).then_some(s)
        },
        diag(&c),
    );
    let r = row(&s, h1.addr());
    assert_eq!(
        r.rejected.values().sum::<u64>(),
        sent.sent,
        "refused as wrong-group and nothing else: {:?}",
        r.rejected
    );
    assert_eq!(
        (r.state, r.accepted, r.unicast_sent, r.offset_ms),
        (State::Listening, 0, 0, None),
        "no state change: {r:?}"
    );
}
