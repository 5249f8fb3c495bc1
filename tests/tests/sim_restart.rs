//! What a restarted client takes back from its state directory, through the
//! `Clock` trait on simulated clocks only: the frequency (like ntpd's
//! driftfile), so it stays closer than one that starts from zero on the
//! same clock; and each server's calibration while younger than the reuse
//! age, so it tracks from the first broadcast with no volley.
#![cfg(test)]

use std::time::Duration;

use mcast_core::client::discipline::Ppm;
use mcast_core::client::status::CalibrationStatus;
use mcast_proto::NtpDuration;
use mcast_tests::sim::client::ClientTrace;
use mcast_tests::sim::{self, ClientSetup, ClockModel, SimConfig};

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn run(client: ClientSetup, duration: Duration) -> ClientTrace {
    let mut config = SimConfig::new(6, 3, 1, duration);
    config.clients = vec![client];
    let mut report = sim::run(&config).expect("runs");
    report.clients.pop().expect("one client")
}

/// Largest |error| from `from` on, seconds.
fn worst_after(c: &ClientTrace, from: Duration) -> f64 {
    c.samples
        .iter()
        .filter(|s| s.at >= from)
        .fold(0.0, |m, s| m.max(s.error_s.abs()))
}

#[test]
fn a_restarted_client_starts_from_its_persisted_frequency() {
    // +80 ppm, 2 ms off at each start (a reboot resets the kernel's
    // frequency correction; the host clock model starts without one).
    let clock = ClockModel::off(NtpDuration::from_millis(2), Ppm(80.0));
    let first = run(
        ClientSetup {
            clock: clock.clone(),
            ..ClientSetup::default()
        },
        hours(6),
    );
    let mut state = first.persisted.clone().expect("a state at exit");
    // The second run starts at the same simulated time as the first: the
    // replay floors of the first (6 h later) would hold every broadcast
    // back. Real time moves on; only the frequency matters here.
    state.servers.clear();
    let f = state.frequency_ppm.expect("a frequency after 6 h in SYNC");
    assert!((f + 80.0).abs() < 1.0, "persisted {f} ppm, want about -80");

    let warm = run(
        ClientSetup {
            clock: clock.clone(),
            restore: Some(state),
            ..ClientSetup::default()
        },
        hours(2),
    );
    let cold = run(
        ClientSetup {
            clock,
            ..ClientSetup::default()
        },
        hours(2),
    );
    // After the first update (the 2 ms is slewed away in seconds).
    let from = Duration::from_secs(120);
    let (w, c) = (worst_after(&warm, from), worst_after(&cold, from));
    eprintln!(
        "[driftfile] worst |error| after 2 min: restored {:.1} us, from zero {:.1} us",
        w * 1e6,
        c * 1e6
    );
    assert!(w < 1e-3, "restored: {w} s");
    assert!(c > 10.0 * w, "from zero it drifts further: {c} s vs {w} s");
    assert!(
        warm.steps().is_empty() && cold.steps().is_empty(),
        "no steps"
    );
}

#[test]
fn monitor_mode_persists_no_frequency() {
    let c = run(
        ClientSetup {
            clock: ClockModel::off(NtpDuration::ZERO, Ppm(30.0)),
            mode: mcast_core::client::discipline::ClockMode::Monitor,
            ..ClientSetup::default()
        },
        hours(2),
    );
    let state = c.persisted.expect("a state");
    assert_eq!(state.frequency_ppm, None);
    assert!(!state.servers.is_empty(), "the replay floors are kept");
}

/// A first hour, then a restart `later` (the second run's simulated time
/// starts that much after the first's).
fn restarted_after(later: Duration) -> (ClientTrace, ClientTrace) {
    let first = run(ClientSetup::default(), hours(1));
    let state = first.persisted.clone().expect("a state at exit");
    assert_eq!(state.servers.len(), 3);
    assert!(
        state.servers.iter().all(|s| s.calibration.is_some()),
        "every server's calibration persists: {state:?}"
    );
    let mut config = SimConfig::new(7, 3, 1, hours(1));
    config.epoch = config.epoch + NtpDuration::from_std(later);
    config.clients = vec![ClientSetup {
        restore: Some(state),
        ..ClientSetup::default()
    }];
    let mut report = sim::run(&config).expect("runs");
    (first, report.clients.pop().expect("one client"))
}

#[test]
fn a_calibration_younger_than_the_reuse_age_is_reused_without_a_volley() {
    let (first, second) = restarted_after(hours(2));
    assert!(
        first.unicast.len() >= 3 * 6,
        "the first run calibrated: {}",
        first.unicast.len()
    );
    assert_eq!(second.unicast, Vec::new(), "no volley after the restart");
    let status = second.status.clone().expect("status");
    for s in &status.servers {
        assert_eq!(s.state, mcast_core::client::association::State::Tracking);
        assert!(
            matches!(
                s.calibration,
                CalibrationStatus::Calibrated { restored: true, .. }
            ),
            "{:?}",
            s.calibration
        );
    }
    let tracked_at = second
        .calibrations
        .iter()
        .map(|c| c.map(|c| c.at))
        .collect::<Vec<_>>();
    assert!(
        tracked_at
            .iter()
            .all(|t| t.is_some_and(|t| t <= Duration::from_secs(70))),
        "tracked from the first broadcast: {tracked_at:?}"
    );
    let worst = worst_after(&second, Duration::from_secs(600));
    assert!(worst < 200e-6, "on time: {worst} s");
}

#[test]
fn an_older_calibration_is_measured_again() {
    let (_, second) = restarted_after(hours(30));
    let volleys = second.unicast.len();
    assert!(volleys >= 3 * 6, "a volley per server: {volleys}");
    let status = second.status.clone().expect("status");
    assert!(
        status.servers.iter().all(|s| {
            !matches!(
                s.calibration,
                CalibrationStatus::Calibrated { restored: true, .. }
            )
        }),
        "{:?}",
        status
            .servers
            .iter()
            .map(|s| &s.calibration)
            .collect::<Vec<_>>()
    );
}
