//! Group silence over real time scales, in the simulator (the unchanged
//! client core): every server loses its reference for an hour and falls
//! silent (poll 6). The client reports the group silent once, 3 intervals
//! (192 s) after the last broadcast, asks for re-joins at once and then
//! after 64, 128, 256, 512 and 1024 s (capped), and reports the group back
//! once, right after the first broadcast; nothing of that happens while
//! any server keeps sending, even one whose broadcasts are never time.
#![cfg(test)]

use std::time::Duration;

use mcast_core::client::engine::Event;
use mcast_tests::sim::{self, ServerEvent, SimConfig};

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

#[test]
fn an_hour_without_any_server_is_one_silence_with_capped_rejoins_and_one_return() {
    let mut config = SimConfig::new(7, 3, 1, hours(4));
    for s in &mut config.servers {
        s.events = vec![
            (hours(1), ServerEvent::Unsynchronized),
            (hours(2), ServerEvent::Synchronized),
        ];
    }
    let report = sim::run(&config).expect("runs");
    let client = report.clients.first().expect("one client");
    let silences: Vec<_> = client
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::GroupSilent {
                since,
                silent_for,
                expected_interval,
                ..
            } => Some((*t, *since, *silent_for, *expected_interval)),
            _ => None,
        })
        .collect();
    let [(at, _, silent_for, interval)] = silences[..] else {
        panic!("one silence: {silences:?}");
    };
    assert_eq!(interval, Duration::from_secs(64));
    assert!(
        silent_for > Duration::from_secs(192) && silent_for <= Duration::from_secs(194),
        "declared 3 x 64 s after the last broadcast, on the next tick: {silent_for:?}"
    );
    assert!(
        at > hours(1) + Duration::from_secs(128) && at < hours(1) + Duration::from_secs(260),
        "{at:?}"
    );
    let gaps: Vec<u64> = client
        .rejoins
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).as_secs())
        .collect();
    assert_eq!(
        client.rejoins.first().map(|r| r.0),
        Some(at),
        "the first re-join comes with the silence"
    );
    assert_eq!(
        gaps,
        vec![64, 128, 256, 512, 1024, 1024],
        "{:?}",
        client.rejoins
    );
    let backs: Vec<_> = client
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            Event::GroupBack { rejoins, .. } => Some((*t, *rejoins)),
            _ => None,
        })
        .collect();
    let [(back_at, rejoins)] = backs[..] else {
        panic!("one return: {backs:?}");
    };
    assert!(
        back_at > hours(2) && back_at < hours(2) + Duration::from_secs(70),
        "{back_at:?}"
    );
    assert_eq!(rejoins as usize, client.rejoins.len());
    assert!(client.rejoins.iter().all(|(t, _)| *t < back_at));
    let g = client
        .status
        .as_ref()
        .and_then(|s| s.group)
        .expect("status has the group");
    assert!(!g.silent);
    assert_eq!((g.silences, g.rejoins), (1, client.rejoins.len() as u64));
}

#[test]
fn one_server_sending_alarms_keeps_the_group_delivering() {
    let mut config = SimConfig::new(8, 3, 1, hours(3));
    for (i, s) in config.servers.iter_mut().enumerate() {
        s.events = vec![(hours(1), ServerEvent::Unsynchronized)];
        // Server 3 keeps sending, LI=3: never time, but authentic.
        s.send_when_unsynchronized = i == 2;
    }
    let report = sim::run(&config).expect("runs");
    let client = report.clients.first().expect("one client");
    let group_events: Vec<_> = client
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::GroupSilent { .. } | Event::GroupBack { .. }))
        .collect();
    assert!(group_events.is_empty(), "{group_events:?}");
    assert!(client.rejoins.is_empty(), "{:?}", client.rejoins);
}
