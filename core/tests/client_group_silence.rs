//! Group silence through the client core (issue 17 part 2): the group is
//! judged by authenticated broadcasts only. A silence of the real servers
//! is reported once, re-joins follow on a backoff, and the first genuine
//! broadcast after it is reported once as the group being back; forged,
//! unsigned and replayed packets in between change none of that.
#![cfg(test)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::engine::{Action, ClientCore, CoreConfig, Event};
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{Log2Seconds, Mode, NtpDuration};
use support::packets::{NoClock, deliver_broadcast, epoch, server_header, sign};
use support::vectors;

const S1: &str = "198.18.0.1:123";

fn keys() -> KeyStore {
    KeyStore::load(&vectors::keys_file()).expect("lab keys")
}

fn core(keys: &KeyStore) -> ClientCore {
    let addr = S1.parse::<SocketAddr>().expect("addr").ip();
    ClientCore::new(
        CoreConfig::with_servers(vec![ServerSpec::new(addr, KeyId::new(1))]),
        keys.clone(),
    )
}

/// A broadcast of poll 1 (every 2 s) sent at `t`, signed with `key`.
fn bcast(keys: &KeyStore, key: Option<u16>, t: f64) -> Vec<u8> {
    let mut h = server_header(Mode::Broadcast);
    h.poll = Log2Seconds(1);
    h.transmit = epoch() + NtpDuration::from_seconds_f64(t);
    sign(keys, key, h)
}

fn deliver(core: &mut ClientCore, bytes: &[u8], t: f64) -> Vec<Action> {
    let rx = epoch() + NtpDuration::from_seconds_f64(t + 0.0002);
    deliver_broadcast(core, S1, bytes, rx, t)
}

fn tick(core: &mut ClientCore, t: f64) -> Vec<Action> {
    core.on_tick(
        Duration::from_secs_f64(t),
        epoch() + NtpDuration::from_seconds_f64(t),
        &mut rand::random::<u64>,
        &mut NoClock,
    )
}

/// The group events and re-joins among `actions`, with the time they came.
fn group_actions(actions: Vec<Action>, t: f64, out: &mut Vec<(f64, Action)>) {
    for a in actions {
        if matches!(
            a,
            Action::Rejoin { .. }
                | Action::Event(Event::GroupSilent { .. } | Event::GroupBack { .. })
        ) {
            out.push((t, a));
        }
    }
}

#[test]
fn forged_and_replayed_packets_do_not_hide_a_silent_group_which_is_rejoined_and_comes_back() {
    let keys = keys();
    let mut c = core(&keys);
    let mut seen = Vec::new();
    // Delivery every 2 s for 40 s: never silent.
    let mut last = Vec::new();
    for step in 0..=40 {
        let t = f64::from(step);
        if step % 2 == 0 {
            last = bcast(&keys, Some(1), t);
            group_actions(deliver(&mut c, &last, t), t, &mut seen);
        }
        group_actions(tick(&mut c, t + 0.5), t + 0.5, &mut seen);
    }
    assert!(seen.is_empty(), "steady delivery: {seen:?}");
    let g = c.group().expect("watched");
    assert!(!g.silent);
    assert_eq!(g.silent_after, Duration::from_secs(6), "3 x the 2 s poll");
    assert_eq!(c.associations().next().expect("server").accepted(), 21);

    // The server's packets stop; a LAN host keeps sending unsigned copies,
    // copies signed with another key, and replays of the last genuine one.
    for step in 41..=60 {
        let t = f64::from(step);
        for junk in [
            bcast(&keys, None, t),
            bcast(&keys, Some(3), t),
            last.clone(),
        ] {
            group_actions(deliver(&mut c, &junk, t), t, &mut seen);
        }
        group_actions(tick(&mut c, t + 0.5), t + 0.5, &mut seen);
    }
    let silent: Vec<_> = seen
        .iter()
        .filter(|(_, a)| matches!(a, Action::Event(Event::GroupSilent { .. })))
        .collect();
    assert_eq!(silent.len(), 1, "said once: {seen:?}");
    let (
        at,
        Action::Event(Event::GroupSilent {
            intervals,
            since,
            silent_for,
            expected_interval,
            ignored,
        }),
    ) = silent[0]
    else {
        unreachable!()
    };
    assert_eq!(
        *at, 46.5,
        "first tick more than 6 s after the last genuine packet at 40 s"
    );
    assert_eq!(*intervals, 3);
    assert_eq!(*since, Duration::from_secs(40));
    assert_eq!(*silent_for, Duration::from_secs_f64(6.5));
    assert_eq!(*expected_interval, Duration::from_secs(2));
    assert_eq!(*ignored, 18, "3 junk datagrams a second from 41 s to 46 s");
    let rejoins: Vec<(f64, u32)> = seen
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Rejoin { attempt } => Some((*t, *attempt)),
            _ => None,
        })
        .collect();
    // At once, then after 2 s, 4 s, 8 s: one interval, doubling.
    assert_eq!(rejoins, vec![(46.5, 1), (48.5, 2), (52.5, 3), (60.5, 4)]);
    let g = c.group().expect("watched");
    assert!(g.silent);
    assert_eq!((g.silences, g.rejoins), (1, 4));
    assert_eq!(g.last_delivery, Duration::from_secs(40));

    // The real server is heard again: back, once.
    seen.clear();
    for step in [62, 64] {
        let t = f64::from(step);
        group_actions(deliver(&mut c, &bcast(&keys, Some(1), t), t), t, &mut seen);
        group_actions(tick(&mut c, t + 0.5), t + 0.5, &mut seen);
    }
    assert_eq!(
        seen,
        vec![(
            62.0,
            Action::Event(Event::GroupBack {
                silent_for: Duration::from_secs(22),
                rejoins: 4
            })
        )]
    );
    let g = c.group().expect("watched");
    assert!(!g.silent);
    assert_eq!((g.silences, g.rejoins), (1, 4));
}

#[test]
fn a_group_never_heard_is_silent_after_three_default_intervals() {
    let keys = keys();
    let mut c = core(&keys);
    let mut seen = Vec::new();
    for step in 0..=200 {
        let t = f64::from(step);
        group_actions(tick(&mut c, t), t, &mut seen);
    }
    // No poll known: 64 s assumed, silent after 192 s.
    assert!(
        matches!(
            seen.first(),
            Some((193.0, Action::Event(Event::GroupSilent { expected_interval, .. })))
                if *expected_interval == Duration::from_secs(64)
        ),
        "{seen:?}"
    );
}
