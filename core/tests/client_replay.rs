//! Replays, backward steps, held-back packets and cloned sources against
//! the sans-I/O client core (issue 13, attacks 1, 2 and 6 and the freshness
//! rule), with a server that answers the core's unicast requests as a real
//! one would. The namespace tests in attacks_client.rs play the same
//! attacks against the daemons; these pin the rules themselves, and what
//! the victim does: its offset, its state, its counters, its unicast.
#![cfg(test)]

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mcast_core::client::association::{ServerSpec, State};
use mcast_core::client::calibration::Phase;
use mcast_core::client::engine::{Action, CheckReason, ClientCore, CoreConfig, Event, Incoming};
use mcast_core::client::status::CalibrationStatus;
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{Datagram, Log2Seconds, Mode, NtpDuration, NtpTimestamp};
use support::packets::{NoClock, deliver_broadcast, epoch, server_header, sign};
use support::vectors;

const SERVER: &str = "198.18.0.1:123";
/// The path's one-way delay, both ways.
const ONE_WAY: f64 = 0.000_2;
/// Broadcast interval (poll 6).
const POLL: f64 = 64.0;

fn d(s: f64) -> NtpDuration {
    NtpDuration::from_seconds_f64(s)
}

/// What a keyless attacker sends just before a genuine broadcast sent at
/// a time: a packet and the source address it claims.
type Attacker<'a> = dyn FnMut(&World, f64) -> Option<(String, Vec<u8>)> + 'a;

/// A client core, the server it trusts, and the wire between them. Time
/// `t` is true time in seconds; the server's clock reads `t + server_off`
/// and ours `t + client_off`.
struct World {
    core: ClientCore,
    keys: KeyStore,
    t: f64,
    server_off: f64,
    client_off: f64,
    /// The server answers unicast requests.
    answers: bool,
    /// Genuine broadcasts reach the client (an on-path host may drop them).
    delivered: bool,
    /// Genuine broadcasts are held back this long on the way.
    held_back: f64,
    /// ... plus this much more per second from `walk_from` on (an on-path
    /// host walking the offset slowly).
    walk_rate: f64,
    walk_from: f64,
    /// Every genuine broadcast sent, with its true send time.
    recording: Vec<(f64, Vec<u8>)>,
    events: Vec<Event>,
    unicast: usize,
}

impl World {
    fn new(discover: bool, servers: Vec<ServerSpec>) -> World {
        World::with_config(CoreConfig {
            discover,
            ..CoreConfig::with_servers(servers)
        })
    }

    fn with_config(config: CoreConfig) -> World {
        let keys = KeyStore::load(&vectors::keys_file()).expect("lab keys");
        let core = ClientCore::new(config, keys.clone());
        World {
            core,
            keys,
            t: 0.0,
            server_off: 0.0,
            client_off: 0.0,
            answers: true,
            delivered: true,
            held_back: 0.0,
            walk_rate: 0.0,
            walk_from: 0.0,
            recording: Vec::new(),
            events: Vec::new(),
            unicast: 0,
        }
    }

    fn one_server() -> World {
        let ip: IpAddr = SERVER.parse::<SocketAddr>().expect("addr").ip();
        World::new(false, vec![ServerSpec::new(ip, KeyId::new(1))])
    }

    fn client_clock(&self, t: f64) -> NtpTimestamp {
        epoch() + d(t + self.client_off)
    }

    fn broadcast(&self, t: f64) -> Vec<u8> {
        let mut h = server_header(Mode::Broadcast);
        h.poll = Log2Seconds(6);
        h.transmit = epoch() + d(t + self.server_off);
        sign(&self.keys, Some(1), h)
    }

    /// A packet from `from` arriving at true time `t`.
    fn arrive(&mut self, from: &str, bytes: &[u8], t: f64) {
        let rx = self.client_clock(t);
        let actions = deliver_broadcast(&mut self.core, from, bytes, rx, t);
        self.take(actions);
    }

    fn take(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send { to, bytes, .. } => {
                    self.unicast += 1;
                    if self.answers {
                        self.answer(to, &bytes);
                    }
                }
                Action::Event(e) => self.events.push(e),
                Action::Clock(_) | Action::Kernel(_) | Action::Rejoin { .. } => {}
            }
        }
    }

    /// The server's signed reply to a request sent now.
    fn answer(&mut self, to: SocketAddr, request: &[u8]) {
        let req = Datagram::parse(request).expect("request");
        let mut h = server_header(Mode::Server);
        h.poll = Log2Seconds(6);
        h.origin = req.header.transmit;
        h.receive = epoch() + d(self.t + ONE_WAY + self.server_off);
        h.transmit = h.receive + d(0.000_01);
        let arrives = self.t + 2.0 * ONE_WAY + 0.000_01;
        let bytes = sign(&self.keys, Some(1), h);
        let rx = self.client_clock(arrives);
        let actions = self.core.on_reply(
            Incoming {
                bytes: &bytes,
                source: to,
                rx,
                mono: Duration::from_secs_f64(arrives),
            },
            &mut NoClock,
        );
        self.take(actions);
    }

    /// Runs to true time `until`, a tick every second, the server
    /// broadcasting every 64 s at k·64 + 0.5; `attacker(t)` may send one
    /// packet (from an address) just before each genuine broadcast.
    fn run(&mut self, until: f64, attacker: &mut Attacker<'_>) {
        while self.t < until {
            let t = self.t;
            let phase = t.rem_euclid(POLL);
            if (phase - 0.0).abs() < 1e-9 {
                let sent = t + 0.5;
                if let Some((from, bytes)) = attacker(self, sent) {
                    self.arrive(&from, &bytes, sent + ONE_WAY - 0.01);
                }
                let bytes = self.broadcast(sent);
                self.recording.push((sent, bytes.clone()));
                if self.delivered {
                    let walked = self.walk_rate * (sent - self.walk_from).max(0.0);
                    self.arrive(SERVER, &bytes, sent + ONE_WAY + self.held_back + walked);
                }
            }
            let tick = t + 1.0;
            let now = self.client_clock(tick);
            self.t = tick;
            let actions = self.core.on_tick(
                Duration::from_secs_f64(tick),
                now,
                &mut rand::random::<u64>,
                &mut NoClock,
            );
            self.take(actions);
        }
    }

    fn quiet(&mut self, until: f64) {
        self.run(until, &mut |_, _| None);
    }

    fn server(&self) -> &mcast_core::client::association::Association {
        self.core.associations().next().expect("association")
    }

    fn rejected(&self, label: &str) -> u64 {
        self.server()
            .rejected()
            .iter()
            .filter(|(r, _)| r.label() == label)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The selected offset, in seconds.
    fn offset(&self) -> Option<f64> {
        self.core
            .selection()
            .and_then(|s| s.offset)
            .map(NtpDuration::as_seconds_f64)
    }

    fn stepped_back(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::SteppedBack { .. }))
            .count()
    }
}

/// The recorded broadcast sent `age` seconds before `t` (the newest one
/// at least that old).
fn recorded(w: &World, t: f64, age: f64) -> Option<(String, Vec<u8>)> {
    w.recording
        .iter()
        .rev()
        .find(|(sent, _)| *sent <= t - age)
        .map(|(_, b)| (SERVER.to_string(), b.clone()))
}

fn calibrated(w: &World) -> bool {
    matches!(
        w.server().calibration().map(|c| c.phase()),
        Some(Phase::Calibrated { .. })
    )
}

/// Attack 1: a host that recorded the server's broadcasts re-sends old
/// ones in increasing order, each just before the next genuine broadcast.
/// They are replays; the genuine stream keeps being accepted; the offset
/// never moves; nothing is "stepped back".
#[test]
fn a_replayed_recording_never_takes_over_a_tracking_client() {
    let mut w = World::one_server();
    w.quiet(640.0);
    assert!(
        calibrated(&w),
        "{:?}",
        CalibrationStatus::of_association(w.server())
    );
    let accepted = w.server().accepted();
    let unicast = w.unicast;
    w.run(640.0 + 20.0 * POLL, &mut |w, t| recorded(w, t, 320.0));
    assert_eq!(w.stepped_back(), 0, "{:?}", w.events);
    assert!(
        w.rejected("replay") >= 19,
        "replays counted: {:?}",
        w.server().rejected()
    );
    assert!(
        w.server().accepted() >= accepted + 19,
        "every genuine broadcast still accepted ({} -> {})",
        accepted,
        w.server().accepted()
    );
    assert_eq!(
        w.rejected("too-early"),
        0,
        "genuine ones are never 'too early'"
    );
    let off = w.offset().expect("selected");
    assert!(off.abs() < 0.001, "offset {off} s");
    assert_eq!(
        w.unicast, unicast,
        "no unicast while the genuine stream continues"
    );
}

/// Attack 1 with the genuine stream cut (an on-path host drops it): the
/// consistent old stream makes a candidate backward step, the unicast
/// check contradicts it, and it is dropped; the client never follows it.
#[test]
fn a_replay_with_the_genuine_stream_cut_is_refuted_by_the_check() {
    let mut w = World::one_server();
    w.quiet(640.0);
    assert!(calibrated(&w));
    let unicast = w.unicast;
    w.delivered = false;
    w.run(640.0 + 20.0 * POLL, &mut |w, t| recorded(w, t, 320.0));
    assert_eq!(w.stepped_back(), 0, "{:?}", w.events);
    assert!(
        w.events.iter().any(|e| matches!(
            e,
            Event::Checking {
                why: CheckReason::Backstep,
                ..
            }
        )),
        "{:?}",
        w.events
    );
    assert!(
        w.rejected("backstep-refuted") >= 1,
        "{:?}",
        w.server().rejected()
    );
    assert!(
        w.offset().is_none_or(|o| o.abs() < 0.001),
        "offset {:?}",
        w.offset()
    );
    let checks = w.unicast - unicast;
    assert!(
        (1..=6).contains(&checks),
        "a few check requests in 20 intervals, not polling: {checks}"
    );
}

/// A real backward step of the server's clock (its operator corrected
/// it): broadcasts and unicast agree, so the client follows it. A step
/// smaller than the interval leaves its packets newer than the last one,
/// but stale: a check confirms the new offset. A larger one puts them
/// behind the last one: after four consistent packets and a check the
/// client follows the stepped-back stream.
#[test]
fn a_real_backward_step_is_followed_after_a_check() {
    for (step, stepped_back) in [(5.0, 0), (300.0, 1)] {
        let mut w = World::one_server();
        w.quiet(640.0);
        w.server_off = -step;
        w.quiet(640.0 + 10.0 * POLL);
        assert_eq!(w.stepped_back(), stepped_back, "{step} s: {:?}", w.events);
        let off = w.offset().expect("selected");
        assert!((off + step).abs() < 0.001, "{step} s: offset {off} s");
        assert_eq!(w.server().state(), State::Tracking);
        assert!(
            w.unicast <= 6 + 3,
            "{step} s: {} unicast requests",
            w.unicast
        );
    }
}

/// Attack 2: a recording fed to a client that has just started, each old
/// packet just before the genuine one. The first authenticated reply
/// shows the old stream is stale; calibration completes on the genuine
/// stream, never on the fallback and never tracking the old one.
#[test]
fn a_replay_at_startup_is_not_tracked_and_calibration_completes() {
    let mut w = World::one_server();
    // The recording an attacker made earlier (the server's packets of a
    // run that ended before this client started).
    let mut old = World::one_server();
    old.server_off = -320.0;
    old.quiet(1200.0);
    let tape = old.recording.clone();
    let mut next = 0;
    w.run(1800.0, &mut |_, _| {
        let p = tape.get(next).cloned();
        next += 1;
        p.map(|(_, b)| (SERVER.to_string(), b))
    });
    assert!(
        calibrated(&w),
        "{:?}",
        CalibrationStatus::of_association(w.server())
    );
    assert_eq!(w.server().state(), State::Tracking);
    assert!(
        w.rejected("stale") >= 1 && w.rejected("replay") >= 10,
        "the old stream is stale once a reply came, a replay once the genuine one is accepted: {:?}",
        w.server().rejected()
    );
    let off = w.offset().expect("selected");
    assert!(off.abs() < 0.001, "offset {off} s");
}

/// A calibration whose round trip is out of bounds (here every reply
/// stream looks 60 ms older than the unicast time) never leads to tracking that stream on
/// the fallback delay: the server is untrusted and never selected.
#[test]
fn a_calibration_over_the_round_trip_bound_is_untrusted_not_the_fallback() {
    let mut w = World::one_server();
    // Broadcasts held back 60 ms on the way: the stream looks 60 ms older
    // than the unicast time, a 120 ms round trip against the 50 ms bound.
    w.held_back = 0.06;
    w.quiet(1200.0);
    assert_eq!(
        w.server().state(),
        State::Untrusted,
        "{:?}",
        CalibrationStatus::of_association(w.server())
    );
    assert!(
        matches!(
            CalibrationStatus::of_association(w.server()),
            CalibrationStatus::Untrusted { .. }
        ),
        "{:?}",
        CalibrationStatus::of_association(w.server())
    );
    assert_eq!(w.offset(), None, "never selected");
}

/// Broadcasts held back 200 ms by an on-path host after calibration:
/// stale, so the server leaves selection at once; one check finds the
/// server where it was, and later checks back off (no polling).
#[test]
fn packets_held_back_after_calibration_make_the_server_unselectable() {
    let mut w = World::one_server();
    w.quiet(640.0);
    assert!(w.offset().is_some());
    let unicast = w.unicast;
    w.held_back = 0.2;
    w.quiet(640.0 + 30.0 * POLL);
    assert!(w.rejected("stale") >= 25, "{:?}", w.server().rejected());
    assert_eq!(
        w.offset(),
        None,
        "not selectable while its packets are stale"
    );
    let sent = w.unicast - unicast;
    assert!(
        (1..=6).contains(&sent),
        "checks back off over 32 min: {sent} requests"
    );
    // Delivery returns to normal: the server is selectable again.
    w.held_back = 0.0;
    w.quiet(640.0 + 33.0 * POLL);
    let off = w.offset().expect("selectable again");
    assert!(off.abs() < 0.001, "offset {off} s");
}

/// Our own clock jumps 2 s (someone set it by hand): every broadcast is
/// stale; the unicast check confirms the new offset and tracking goes on.
#[test]
fn our_own_clock_jump_is_confirmed_by_a_check_and_tracked() {
    let mut w = World::one_server();
    w.quiet(640.0);
    w.client_off = 2.0;
    w.quiet(640.0 + 6.0 * POLL);
    assert!(w.events.iter().any(|e| matches!(
        e,
        Event::Checking {
            why: CheckReason::Stale,
            ..
        }
    )));
    let off = w.offset().expect("selected");
    assert!((off + 2.0).abs() < 0.001, "offset {off} s");
}

/// Attack 6: with discovery on, one real server's packets relayed from
/// five spoofed addresses. The key binds one address; the clones make no
/// associations, send no unicast, and cannot outvote anything.
#[test]
fn relayed_clones_of_a_discovered_server_make_no_associations() {
    let mut w = World::new(true, Vec::new());
    w.run(640.0, &mut |w, t| {
        if t < POLL {
            return None;
        }
        let n = (t / POLL) as u32 % 5 + 10;
        Some((format!("198.18.0.{n}:123"), w.broadcast(t)))
    });
    let n = w.core.associations().count();
    assert_eq!(n, 1, "one association for the one key");
    assert!(
        w.core
            .global_rejects()
            .get("discovery-key-bound")
            .copied()
            .unwrap_or(0)
            >= 5,
        "{:?}",
        w.core.global_rejects()
    );
    let clones_unicast: u64 = w
        .core
        .associations()
        .filter(|a| a.spec().address != SERVER.parse::<SocketAddr>().expect("addr").ip())
        .map(|a| a.unicast_sent())
        .sum();
    assert_eq!(clones_unicast, 0);
}

/// The replay floor survives a restart: a client restarted with the state
/// its previous run persisted rejects a recording of that run as replays
/// from the first packet (not even stale), and tracks the genuine stream.
#[test]
fn a_restarted_client_rejects_a_recording_of_its_previous_run() {
    let mut before = World::one_server();
    before.quiet(640.0);
    let state = before.core.persisted();
    assert_eq!(state.servers.len(), 1, "{state:?}");
    let tape = before.recording.clone();
    let mut after = World::one_server();
    // Our clock at zero: the persisted calibration looks measured in the
    // future and is measured again; these tests are about the replay floor.
    let restored = after
        .core
        .restore(&state, mcast_proto::NtpTimestamp::ZERO)
        .expect("same version");
    assert_eq!(restored.calibrations, 0);
    assert_eq!((restored.servers, restored.ignored), (1, 0));
    after.t = 704.0;
    let mut next = 0;
    after.run(704.0 + 15.0 * POLL, &mut |_, _| {
        let p = tape.get(next).cloned();
        next += 1;
        p.map(|(_, b)| (SERVER.to_string(), b))
    });
    assert!(
        calibrated(&after),
        "{:?}",
        CalibrationStatus::of_association(after.server())
    );
    assert!(
        after.rejected("replay") >= 10,
        "{:?}",
        after.server().rejected()
    );
    assert_eq!(
        after.rejected("stale"),
        0,
        "{:?}",
        after.server().rejected()
    );
    let off = after.offset().expect("selected");
    assert!(off.abs() < 0.001, "offset {off} s");
}

/// A server whose clock went back 3000 s while the client was down: its
/// packets are behind the restored floor, so after four consistent ones
/// the client calibrates, its first authenticated reply agrees with them,
/// and it follows the server. A state entry for another key is ignored.
#[test]
fn a_restarted_client_follows_a_server_that_went_back_meanwhile() {
    let mut before = World::one_server();
    before.quiet(640.0);
    let mut state = before.core.persisted();
    let mut other = state.servers[0].clone();
    other.key = Some(2);
    state.servers.push(other);
    let mut after = World::one_server();
    // Our clock at zero: the persisted calibration looks measured in the
    // future and is measured again; these tests are about the replay floor.
    let restored = after
        .core
        .restore(&state, mcast_proto::NtpTimestamp::ZERO)
        .expect("same version");
    assert_eq!(restored.calibrations, 0);
    assert_eq!((restored.servers, restored.ignored), (1, 1));
    after.server_off = -3000.0;
    after.t = 704.0;
    after.quiet(704.0 + 15.0 * POLL);
    assert_eq!(after.stepped_back(), 1, "{:?}", after.events);
    assert!(
        calibrated(&after),
        "{:?}",
        CalibrationStatus::of_association(after.server())
    );
    let off = after.offset().expect("selected");
    assert!((off + 3000.0).abs() < 0.001, "offset {off} s");
}

/// The same two restarts with the calibration reused (restored at the
/// client's clock at restart, well within a day of the measurement): no
/// volley, the recording is still rejected as replays from the first
/// packet, and a server that went back 3000 s is followed only after a
/// unicast check agreed with it.
#[test]
fn with_a_reused_calibration_the_recording_is_rejected_and_a_backstep_is_checked() {
    let mut before = World::one_server();
    before.quiet(640.0);
    let state = before.core.persisted();
    assert!(state.servers[0].calibration.is_some(), "{state:?}");
    let tape = before.recording.clone();
    let mut after = World::one_server();
    let now = after.client_clock(704.0);
    let restored = after.core.restore(&state, now).expect("same version");
    assert_eq!((restored.servers, restored.calibrations), (1, 1));
    after.t = 704.0;
    let mut next = 0;
    after.run(704.0 + 15.0 * POLL, &mut |_, _| {
        let p = tape.get(next).cloned();
        next += 1;
        p.map(|(_, b)| (SERVER.to_string(), b))
    });
    assert_eq!(after.server().unicast_sent(), 0, "no volley");
    assert!(
        after.rejected("replay") >= 10,
        "{:?}",
        after.server().rejected()
    );
    let off = after.offset().expect("selected");
    assert!(off.abs() < 0.001, "offset {off} s");

    let mut after = World::one_server();
    let restored = after
        .core
        .restore(&state, after.client_clock(704.0))
        .expect("same version");
    assert_eq!(restored.calibrations, 1);
    after.server_off = -3000.0;
    after.t = 704.0;
    after.quiet(704.0 + 15.0 * POLL);
    assert_eq!(after.stepped_back(), 1, "{:?}", after.events);
    assert!(
        after.server().unicast_sent() > 0,
        "followed back only after a unicast check"
    );
    let off = after.offset().expect("selected");
    assert!((off + 3000.0).abs() < 0.001, "offset {off} s");
}

/// An on-path host walks the broadcasts' delay up by 2 ms an interval,
/// each step inside the freshness bound. Without spot checks the client
/// follows the walk (what authentication cannot stop, docs/SECURITY.md);
/// with `spot-check-hours = 1` a spot check finds the server's unicast
/// time far from its broadcasts within about 1.5 h, and the server leaves
/// selection, for one unicast request an hour.
#[test]
fn spot_checks_bound_a_slow_walk_of_the_broadcast_delay() {
    let ip: IpAddr = SERVER.parse::<SocketAddr>().expect("addr").ip();
    let spec = || vec![ServerSpec::new(ip, KeyId::new(1))];
    let hours = 4.0 * 3600.0;
    let run = |spot: Option<Duration>| {
        let mut config = CoreConfig::with_servers(spec());
        config.calibration.spot_check = spot;
        let mut w = World::with_config(config);
        w.quiet(640.0);
        let calibrated_unicast = w.unicast;
        w.walk_from = 640.0;
        w.walk_rate = 0.002 / POLL;
        w.quiet(640.0 + hours);
        (
            w.offset(),
            w.unicast - calibrated_unicast,
            w.rejected("stale"),
        )
    };
    let (off, unicast, _) = run(None);
    let walked = 0.002 * hours / POLL;
    assert!(
        off.is_some_and(|o| (o + walked).abs() < 0.05),
        "without spot checks the walk is followed: {off:?} (walked {walked} s)"
    );
    assert_eq!(unicast, 0);
    let (off, unicast, stale) = run(Some(Duration::from_secs(3600)));
    assert_eq!(
        off, None,
        "a walked server is not selectable after a spot check"
    );
    assert!(stale > 0);
    assert!(
        (1..=3 * 24).contains(&unicast),
        "spot checks, and the checks the stale packets then call for, stay rare: {unicast}"
    );
}
