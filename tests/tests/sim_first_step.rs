//! The first step (`[clock] first-step-max-s`, like ntpd -g) and an
//! operator's `step-now`, through the `Clock` trait on simulated clocks
//! only: the unchanged client core in the simulator.
#![cfg(test)]

use std::time::Duration;

use mcast_core::client::discipline::{ClockMode, Decision};
use mcast_core::client::engine::StepNowError;
use mcast_proto::NtpDuration;
use mcast_tests::sim::client::ClientTrace;
use mcast_tests::sim::{self, ClientEvent, ClientSetup, ClockModel, SimConfig};

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const HOUR: NtpDuration = NtpDuration::from_secs(3600);

fn run(client: ClientSetup, duration: Duration) -> ClientTrace {
    let mut config = SimConfig::new(5, 3, 1, duration);
    config.clients = vec![client];
    let mut report = sim::run(&config).expect("runs");
    report.clients.pop().expect("one client")
}

fn last_error(c: &ClientTrace) -> f64 {
    c.samples.last().map_or(f64::MAX, |s| s.error_s)
}

#[test]
fn an_hour_off_is_stepped_once_at_the_first_update() {
    let c = run(
        ClientSetup {
            clock: ClockModel::off(HOUR, mcast_core::client::discipline::Ppm(20.0)),
            ..ClientSetup::default()
        },
        mins(60),
    );
    let steps = c.steps();
    assert_eq!(steps.len(), 1, "exactly one step: {steps:?}");
    let (at, by) = steps.first().copied().expect("one");
    assert!(
        (by + HOUR).abs() < NtpDuration::from_millis(5),
        "stepped back by the hour: {by}"
    );
    let first = c.decisions.first().map(|(t, d)| (*t, *d));
    assert!(
        matches!(first, Some((t, Decision::Step { .. })) if t == at),
        "the first decision is the step: {first:?}"
    );
    assert_eq!(c.decisions_of("panic"), 0);
    assert!(
        last_error(&c).abs() < 1e-3,
        "on time after: {} s",
        last_error(&c)
    );
}

#[test]
fn over_first_step_max_it_is_refused_until_step_now() {
    let c = run(
        ClientSetup {
            clock: ClockModel::off(HOUR, mcast_core::client::discipline::Ppm(0.0)),
            first_step_max: NtpDuration::from_secs(1800),
            events: vec![(mins(30), ClientEvent::StepNow)],
            ..ClientSetup::default()
        },
        mins(60),
    );
    let before: Vec<&Decision> = c
        .decisions
        .iter()
        .filter(|(t, _)| *t < mins(30))
        .map(|(_, d)| d)
        .collect();
    assert!(before.len() > 10, "{} updates", before.len());
    assert!(
        before.iter().all(|d| matches!(d, Decision::Panic { .. })),
        "refused by the panic threshold: {before:?}"
    );
    let steps = c.steps();
    assert_eq!(steps.len(), 1, "only the operator's step: {steps:?}");
    let (at, by) = steps.first().copied().expect("one");
    assert_eq!(at, mins(30), "stepped when asked");
    assert!((by + HOUR).abs() < NtpDuration::from_millis(5), "{by}");
    assert!(
        matches!(c.step_now.as_slice(), [(_, Ok(s))] if *s == by),
        "{:?}",
        c.step_now
    );
    assert!(
        last_error(&c).abs() < 1e-3,
        "on time after: {} s",
        last_error(&c)
    );
}

#[test]
fn step_now_is_refused_in_monitor_mode_and_with_nothing_selected() {
    let c = run(
        ClientSetup {
            clock: ClockModel::off(HOUR, mcast_core::client::discipline::Ppm(0.0)),
            mode: ClockMode::Monitor,
            events: vec![(mins(20), ClientEvent::StepNow)],
            ..ClientSetup::default()
        },
        mins(30),
    );
    assert_eq!(c.step_now, vec![(mins(20), Err(StepNowError::Monitor))]);
    assert_eq!(c.ops.total(), 0, "the clock is untouched");

    // Step mode, asked a second after start: no server heard yet.
    let c = run(
        ClientSetup {
            clock: ClockModel::off(HOUR, mcast_core::client::discipline::Ppm(0.0)),
            first_step_max: NtpDuration::from_secs(1800),
            events: vec![(Duration::from_secs(1), ClientEvent::StepNow)],
            ..ClientSetup::default()
        },
        mins(10),
    );
    assert_eq!(
        c.step_now,
        vec![(Duration::from_secs(1), Err(StepNowError::NothingSelected))]
    );
    assert!(c.steps().is_empty());
}
