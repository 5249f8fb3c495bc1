//! The kernel clock state the client keeps (`STA_UNSYNC`, maxerror,
//! esterror, `STA_INS`/`STA_DEL`), through the `Clock` trait on simulated
//! clocks only: the unchanged client core in the simulator, what it hands
//! to `Clock::set_kernel_state` recorded with its true time.
#![cfg(test)]

use std::time::Duration;

use mcast_core::client::discipline::{ClockMode, KernelState, LeapPending};
use mcast_proto::{LeapIndicator, NtpDuration, NtpTimestamp};
use mcast_tests::sim::{self, ClientSetup, ServerEvent, SimConfig};

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

/// 2026-12-31 12:00:00 UTC: the last day of a month, 12 h before a leap
/// second would be inserted.
fn noon_before_new_year() -> NtpTimestamp {
    NtpTimestamp::from_unix(1_798_761_600 - 12 * 3600, 0)
}

fn kernel_states(config: &SimConfig) -> Vec<(Duration, KernelState)> {
    let report = sim::run(config).expect("runs");
    report
        .clients
        .first()
        .expect("one client")
        .ops
        .kernel
        .clone()
}

#[test]
fn unsync_is_cleared_after_the_first_discipline_and_set_after_loss() {
    let mut config = SimConfig::new(1, 3, 1, hours(4));
    config.clients = vec![ClientSetup {
        mode: ClockMode::Step,
        unsync_after: mins(20),
        ..ClientSetup::default()
    }];
    for s in &mut config.servers {
        s.events = vec![(hours(2), ServerEvent::Unsynchronized)];
    }
    let states = kernel_states(&config);
    let (first_at, first) = *states.first().expect("the kernel is told something");
    assert!(first.synchronized, "first state: {first:?}");
    assert!(
        first_at < mins(2),
        "STA_UNSYNC cleared at the first discipline, not at {first_at:?}"
    );
    let (_, settled) = *states
        .iter()
        .rfind(|(at, s)| *at < hours(2) && s.synchronized)
        .expect("synchronized before the loss");
    assert!(
        first.maxerror >= settled.maxerror,
        "the root distance shrinks as the filters fill: {} then {}",
        first.maxerror,
        settled.maxerror
    );
    assert!(
        settled.maxerror > NtpDuration::ZERO && settled.maxerror < NtpDuration::from_millis(10),
        "maxerror is the root distance on a LAN: {}",
        settled.maxerror
    );
    assert!(
        settled.esterror < NtpDuration::from_millis(1),
        "esterror: {}",
        settled.esterror
    );
    let synced: Vec<_> = states.iter().filter(|(_, s)| s.synchronized).collect();
    assert!(
        synced.len() > 10,
        "maxerror and esterror are refreshed at each update ({} times)",
        synced.len()
    );
    let (lost_at, lost) = *states
        .iter()
        .find(|(_, s)| !s.synchronized)
        .expect("STA_UNSYNC set again after the servers are lost");
    assert_eq!(lost.maxerror, NtpDuration::from_secs(16));
    // The servers go silent at 2 h; they leave selection after 8 silent
    // intervals (512 s), then 20 minutes pass.
    assert!(
        lost_at > hours(2) + mins(20) && lost_at < hours(2) + mins(20) + mins(12),
        "unsynchronized at {lost_at:?}"
    );
    assert!(
        states
            .iter()
            .all(|(at, s)| *at <= lost_at || !s.synchronized),
        "nothing claims synchronization after the loss"
    );
    assert_eq!(
        states.last().map(|(_, s)| s.synchronized),
        Some(false),
        "told once, the kernel stays unsynchronized: {:?}",
        states.last()
    );
}

/// 3 servers, `announcing` of them with LI = 1, from noon on the last day of
/// the year to 03:00 the next day.
fn leap_run(announcing: usize) -> Vec<(Duration, KernelState)> {
    let mut config = SimConfig::new(2, 3, 1, hours(15));
    config.epoch = noon_before_new_year();
    for s in config.servers.iter_mut().take(announcing) {
        s.leap = LeapIndicator::AddSecond;
    }
    kernel_states(&config)
}

#[test]
fn two_of_three_servers_arm_the_leap_second_and_it_is_cleared_after() {
    let states = leap_run(2);
    let midnight = hours(12);
    let (armed_at, _) = *states
        .iter()
        .find(|(_, s)| s.leap == LeapPending::Insert)
        .expect("STA_INS set from 2 of 3 servers");
    assert!(armed_at < hours(1), "armed at {armed_at:?}");
    assert!(
        states
            .iter()
            .filter(|(at, _)| *at >= armed_at && *at < midnight)
            .all(|(_, s)| s.leap == LeapPending::Insert && s.synchronized),
        "armed until midnight"
    );
    let (cleared_at, _) = *states
        .iter()
        .find(|(at, s)| *at >= midnight && s.leap == LeapPending::None)
        .expect("STA_INS cleared after the leap");
    assert!(
        cleared_at < midnight + mins(5),
        "cleared at {cleared_at:?}, right after midnight"
    );
    assert!(
        states
            .iter()
            .filter(|(at, _)| *at >= midnight)
            .all(|(_, s)| s.leap == LeapPending::None),
        "never armed again on the 1st although the servers still announce it"
    );
}

#[test]
fn one_of_three_servers_does_not_arm_the_leap_second() {
    let states = leap_run(1);
    assert!(states.iter().any(|(_, s)| s.synchronized), "disciplined");
    assert!(
        states.iter().all(|(_, s)| s.leap == LeapPending::None),
        "1 of 3 is no majority"
    );
}

#[test]
fn a_leap_announced_before_the_last_day_of_the_month_is_not_armed() {
    // 2027-01-15 (the default epoch): every server announces it, too early.
    let mut config = SimConfig::new(3, 3, 1, hours(2));
    for s in &mut config.servers {
        s.leap = LeapIndicator::AddSecond;
    }
    let states = kernel_states(&config);
    assert!(states.iter().any(|(_, s)| s.synchronized));
    assert!(states.iter().all(|(_, s)| s.leap == LeapPending::None));
}

#[test]
fn monitor_mode_records_nothing() {
    let mut config = SimConfig::new(4, 3, 1, hours(3));
    config.epoch = noon_before_new_year();
    config.clients = vec![ClientSetup {
        mode: ClockMode::Monitor,
        unsync_after: mins(5),
        ..ClientSetup::default()
    }];
    for s in &mut config.servers {
        s.leap = LeapIndicator::AddSecond;
        s.events = vec![(hours(2), ServerEvent::Unsynchronized)];
    }
    let report = sim::run(&config).expect("runs");
    let client = report.clients.first().expect("one client");
    assert!(
        client
            .decisions
            .iter()
            .any(|(_, d)| matches!(d, mcast_core::client::discipline::Decision::Monitor { .. })),
        "the client measured"
    );
    assert_eq!(client.ops.kernel, Vec::new(), "nothing told to the kernel");
    assert_eq!(client.ops.total(), 0, "nothing done to the clock");
}
