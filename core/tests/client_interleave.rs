//! Interleaved broadcasts through the client core. A server reads each
//! packet's transmit timestamp before it signs and sends it; the time that
//! takes (its send latency) is invisible to a basic-mode client and turns
//! into an offset error of half of it. With `interleave = true` on both
//! sides, every broadcast also carries the kernel transmit time of the one
//! before, and the client measures with that instead.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::calibration::CalibrationConfig;
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Event, Incoming};
use mcast_core::client::status::{CalibrationStatus, FailureStatus};
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{Datagram, Mode, NtpDuration, NtpTimestamp};
use support::packets::{NoClock, server_header, sign};
use support::vectors;

const SERVER: &str = "198.18.0.1:123";
/// The server's clock is this far ahead of ours (s).
const THETA: f64 = 0.005;
/// One-way path delay (s).
const PATH: f64 = 200e-6;
/// From reading a transmit timestamp to the packet leaving the server (s).
const SEND_LATENCY: f64 = 40e-6;
/// Broadcast interval: poll 3.
const INTERVAL: f64 = 8.0;

fn at(t: f64) -> NtpTimestamp {
    NtpTimestamp::from_unix(1_800_000_000, 0) + NtpDuration::from_seconds_f64(t)
}

fn mono(t: f64) -> Duration {
    Duration::from_secs_f64(t)
}

struct Run {
    core: ClientCore,
    events: Vec<Event>,
    server: SocketAddr,
}

/// Ten minutes of a server `THETA` ahead with `SEND_LATENCY`, which sends
/// interleaved broadcasts when `server_interleaves`, and our client
/// configured with `client_interleave`. Broadcasts listed in `lost` never
/// arrive. Times are true times; our clock is true.
fn run(client_interleave: bool, server_interleaves: bool, lost: &[u32]) -> Run {
    let keys = KeyStore::load(&vectors::keys_file()).expect("lab keys");
    let server: SocketAddr = SERVER.parse().expect("addr");
    let spec = ServerSpec {
        interleave: client_interleave,
        ..ServerSpec::new(server.ip(), KeyId::new(1))
    };
    let mut core = ClientCore::new(
        CoreConfig {
            calibration: CalibrationConfig {
                start_delay_max: Duration::ZERO,
                requests: 3,
                retries: 1,
                ..CalibrationConfig::default()
            },
            ..CoreConfig::with_servers(vec![spec])
        },
        keys.clone(),
    );
    let mut events = Vec::new();
    let mut record = |actions: Vec<Action>, core: &mut ClientCore, now: f64| {
        for a in actions {
            match a {
                Action::Event(e) => events.push(e),
                Action::Send {
                    to, bytes, ticket, ..
                } => {
                    // The request leaves at `now` (the kernel says so), the
                    // server reads T3 10 us after T2 and sends it
                    // SEND_LATENCY later.
                    core.request_transmitted(ticket, at(now));
                    let request = Datagram::parse(&bytes).expect("our request parses");
                    let mut r = server_header(Mode::Server);
                    r.origin = request.header.transmit;
                    r.receive = at(now + PATH + THETA);
                    r.transmit = at(now + PATH + THETA + 10e-6);
                    let reply = sign(&keys, Some(1), r);
                    let arrives = now + PATH + 10e-6 + SEND_LATENCY + PATH;
                    let more = core.on_reply(
                        Incoming {
                            bytes: &reply,
                            source: to,
                            rx: at(arrives),
                            mono: mono(arrives),
                        },
                        &mut NoClock,
                    );
                    events.extend(more.into_iter().filter_map(|a| match a {
                        Action::Event(e) => Some(e),
                        _ => None,
                    }));
                }
                Action::Clock(_) | Action::Kernel(_) | Action::Rejoin { .. } => {}
            }
        }
    };
    let mut previous_send: Option<f64> = None;
    let mut k = 0u32;
    let mut t = 0.0;
    while t < 600.0 {
        let next_broadcast = f64::from(k) * INTERVAL + 1.0;
        if next_broadcast <= t {
            let mut b = server_header(Mode::Broadcast);
            b.transmit = at(next_broadcast + THETA);
            if server_interleaves && let Some(sent) = previous_send {
                b.origin = at(sent + THETA);
            }
            let sent = next_broadcast + SEND_LATENCY;
            previous_send = Some(sent);
            if !lost.contains(&k) {
                let bytes = sign(&keys, Some(1), b);
                let arrives = sent + PATH;
                let actions = core.on_broadcast(
                    Incoming {
                        bytes: &bytes,
                        source: server,
                        rx: at(arrives),
                        mono: mono(arrives),
                    },
                    0,
                    &mut NoClock,
                );
                record(actions, &mut core, arrives);
            }
            k += 1;
        }
        let actions = core.on_tick(mono(t), at(t), &mut rand::random::<u64>, &mut NoClock);
        record(actions, &mut core, t);
        t += 0.25;
    }
    Run {
        core,
        events,
        server,
    }
}

fn error_us(r: &Run) -> f64 {
    let offset = r.core.last_offset(r.server.ip()).expect("a sample");
    (offset.as_seconds_f64() - THETA) * 1e6
}

#[test]
fn interleaved_broadcasts_remove_the_servers_send_latency() {
    let basic = run(false, false, &[]);
    let interleaved = run(true, true, &[]);
    let basic_error = error_us(&basic);
    let interleaved_error = error_us(&interleaved);
    // Basic mode: the broadcasts' T3 is early by the send latency, and the
    // calibration (which pairs them with the requests' way out) absorbs
    // half of it: the error is half the latency.
    assert!(
        (basic_error + SEND_LATENCY * 1e6 / 2.0).abs() < 1.0,
        "basic mode is off by half the send latency (-20 us): {basic_error:.3} us"
    );
    assert!(
        interleaved_error.abs() < 0.1,
        "interleaved mode measures the true offset: {interleaved_error:.3} us"
    );
    let filter = interleaved
        .core
        .filter(interleaved.server.ip())
        .expect("filter");
    assert!(
        ((filter.offset().as_seconds_f64() - THETA) * 1e6).abs() < 0.1,
        "the filter's offset too: {}",
        filter.offset()
    );
    let cal = CalibrationStatus::of_association(
        interleaved.core.associations().next().expect("association"),
    );
    assert!(
        cal.measured_one_way_delay_ms()
            .is_some_and(|d| (d - 0.200).abs() < 0.0005),
        "the calibrated one-way delay is the path: {cal:?}"
    );
    assert!(
        !interleaved
            .events
            .iter()
            .any(|e| matches!(e, Event::Unpaired { .. })),
        "no interleave warning when both sides agree: {:?}",
        interleaved.events
    );
}

#[test]
fn lost_broadcasts_cost_samples_and_nothing_else() {
    let whole = run(true, true, &[]);
    let lossy = run(true, true, &[20, 21, 40]);
    let accepted = |r: &Run| {
        r.core
            .associations()
            .next()
            .expect("association")
            .accepted()
    };
    assert_eq!(
        accepted(&whole) - accepted(&lossy),
        3,
        "three broadcasts lost"
    );
    let error = error_us(&lossy);
    assert!(
        error.abs() < 0.1,
        "after losses the offset is still the true one: {error:.3} us"
    );
    assert!(
        !lossy
            .events
            .iter()
            .any(|e| matches!(e, Event::Unpaired { .. })),
        "isolated losses are no reason to warn: {:?}",
        lossy.events
    );
}

#[test]
fn a_client_expecting_interleave_from_a_basic_server_says_so() {
    let r = run(true, false, &[]);
    let warnings: Vec<&Event> = r
        .events
        .iter()
        .filter(|e| matches!(e, Event::Unpaired { .. }))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning that the server does not interleave: {:?}",
        r.events
    );
    // No broadcast sample was taken: without the send time of the previous
    // packet there is nothing to measure with, and the mode is never guessed.
    let a = r.core.associations().next().expect("association");
    let cal = CalibrationStatus::of_association(a);
    assert!(
        matches!(
            cal,
            CalibrationStatus::Fallback {
                failure: Some(FailureStatus::NoPairableBroadcast),
                ..
            }
        ),
        "calibration cannot pair replies with broadcasts: {cal:?}"
    );
}
