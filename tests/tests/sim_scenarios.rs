//! Simulator scenarios with numeric pass limits (like chrony's clknetsim
//! tests): the unchanged client and server cores on virtual time, modelled
//! clocks and a modelled network (`mcast_tests::sim`). Clients in step and
//! slew modes act on simulated clocks only.
//!
//! Each test prints its figures as `[sim] scenario: what = value (limit)`
//! (`cargo test -p mcast-tests --test sim_scenarios -- --nocapture`); the
//! limits and measured values are in BENCHMARKS.md ("Simulator
//! scenarios"). Runs are deterministic; `SIM_SEED=N` reruns every scenario
//! with another seed, to check that a limit is not tuned to one run.
#![cfg(test)]

use std::time::Duration;

use mcast_tests::sim::client::{ClientTrace, Sample, decision_kind};
use mcast_tests::sim::link::Direction;
use mcast_tests::sim::scenarios;
use mcast_tests::sim::{self, Report, SimConfig};

fn seed() -> u64 {
    std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

fn run(name: &str) -> (SimConfig, Report) {
    let scenario = scenarios::by_name(name).unwrap_or_else(|| panic!("no scenario {name}"));
    let config = (scenario.build)(seed());
    let report = sim::run(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
    (config, report)
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The figures of one scenario: each is printed and checked against its
/// limit; the test fails at the end with every figure that missed.
struct Checks {
    scenario: &'static str,
    failed: Vec<String>,
}

impl Checks {
    fn new(scenario: &'static str) -> Self {
        Checks {
            scenario,
            failed: Vec::new(),
        }
    }

    fn check(&mut self, what: &str, value: f64, ok: bool, limit: String) {
        let line = format!("{}: {what} = {value:.3} ({limit})", self.scenario);
        eprintln!("[sim] {line}");
        if !ok {
            self.failed.push(line);
        }
    }

    /// `value` must be at most `limit` (in `unit`).
    fn at_most(&mut self, what: &str, value: f64, limit: f64, unit: &str) {
        self.check(
            &format!("{what} [{unit}]"),
            value,
            value <= limit,
            format!("limit <= {limit}"),
        );
    }

    /// `value` must be at least `limit` (in `unit`).
    fn at_least(&mut self, what: &str, value: f64, limit: f64, unit: &str) {
        self.check(
            &format!("{what} [{unit}]"),
            value,
            value >= limit,
            format!("limit >= {limit}"),
        );
    }

    /// A condition that must hold.
    fn holds(&mut self, what: &str, ok: bool) {
        self.check(what, f64::from(u8::from(ok)), ok, "must hold".into());
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "seed {}: figures outside their limits:\n{}",
            seed(),
            self.failed.join("\n")
        );
    }
}

/// Seconds from `from` to `at` (infinite when there is no `at`).
fn since(from: Duration, at: Option<Duration>) -> f64 {
    at.map_or(f64::INFINITY, |t| secs(t.saturating_sub(from)))
}

/// Seconds from `from` until `holds` is true for every client and stays
/// true until `to` (the slowest client); infinite if some client never
/// gets there.
fn all_settle(r: &Report, from: Duration, to: Duration, holds: impl Fn(&Sample) -> bool) -> f64 {
    r.clients
        .iter()
        .map(|c| since(from, c.settles(from, to, &holds)))
        .fold(0.0, f64::max)
}

/// Every association calibrated (not the fallback delay), in every client.
fn all_calibrated(r: &Report) -> bool {
    r.clients.iter().all(|c| {
        c.calibrations
            .iter()
            .all(|x| x.is_some_and(|x| !x.fallback))
    })
}

/// Largest distance of a calibrated one-way delay from the path's true
/// mean one-way delay, microseconds.
fn worst_calibration_error_us(config: &SimConfig, r: &Report) -> f64 {
    let mut worst = 0.0f64;
    for (j, c) in r.clients.iter().enumerate() {
        for (s, cal) in c.calibrations.iter().enumerate() {
            let truth = config.link_model(s, j).mean_delay(Direction::ToClient);
            let measured = cal
                .and_then(|x| x.one_way)
                .map_or(f64::INFINITY, |d| d.as_seconds_f64());
            worst = worst.max((measured - truth.as_secs_f64()).abs() * 1e6);
        }
    }
    worst
}

/// Steps after `from`, all clients.
fn steps_after(r: &Report, from: Duration) -> usize {
    r.clients
        .iter()
        .map(|c| c.steps().iter().filter(|(at, _)| *at >= from).count())
        .sum()
}

/// RMS and max error of all clients over `[from, end)`, and no step.
fn steady(k: &mut Checks, r: &Report, from: Duration, rms_us: f64, max_us: f64) {
    let st = r.stats(from, r.duration);
    let window = format!("from {:.1} h", secs(from) / 3600.0);
    k.at_most(&format!("RMS error {window}"), st.rms_us, rms_us, "us");
    k.at_most(&format!("max error {window}"), st.max_us, max_us, "us");
}

#[test]
fn convergence_from_100_ms_and_100_ppm() {
    let (_, r) = run("convergence");
    let mut k = Checks::new("convergence");
    k.at_most(
        "slowest client below 1 ms for good after",
        all_settle(&r, Duration::ZERO, r.duration, |s| s.error_s.abs() < 1e-3),
        5400.0,
        "s",
    );
    steady(&mut k, &r, mins(90), 150.0, 1000.0);
    k.at_most(
        "steps (all offsets below the step threshold)",
        r.steps() as f64,
        0.0,
        "",
    );
    k.finish();
}

#[test]
fn rms_and_max_error_under_100_us_jitter() {
    let (_, r) = run("jitter");
    let mut k = Checks::new("jitter");
    steady(&mut k, &r, hours(2), 250.0, 600.0);
    k.at_most("steps", r.steps() as f64, 0.0, "");
    k.finish();
}

#[test]
fn a_single_132_ms_spike_never_steps_the_clock() {
    let (config, r) = run("spike");
    let mut k = Checks::new("spike");
    k.at_most("steps", r.steps() as f64, 0.0, "");
    for (j, c) in r.clients.iter().enumerate() {
        let spike = config.clients[j].clock.spikes[0];
        // Had the clock chased the spike, it would be milliseconds off after it.
        k.at_most(
            &format!(
                "client {} ({} s spike): max error after the spike",
                j + 1,
                spike.duration.as_secs()
            ),
            c.stats(spike.at + spike.duration, r.duration).max_us,
            300.0,
            "us",
        );
    }
    // The long spike reached the discipline, which saw it and held off.
    k.at_least(
        "client 2: spikes the discipline saw and ignored",
        r.clients[1].decisions_of("spike-ignored") as f64,
        1.0,
        "",
    );
    k.finish();
}

#[test]
fn a_persistent_200_ms_offset_steps_only_after_the_stepout() {
    let (_, r) = run("stepout");
    let mut k = Checks::new("stepout");
    let jump = hours(2);
    let step_mode = &r.clients[0];
    k.at_most("step mode: steps", step_mode.steps().len() as f64, 1.0, "");
    let (at, amount) = step_mode.steps().first().copied().unzip();
    let delay = since(jump, at);
    k.at_least(
        "step mode: step after the offset appeared",
        delay,
        900.0,
        "s",
    );
    k.at_most(
        "step mode: step after the offset appeared",
        delay,
        1200.0,
        "s",
    );
    k.at_most(
        "step mode: size of the step minus 200 ms",
        amount.map_or(f64::INFINITY, |a| (a.as_seconds_f64() + 0.2).abs() * 1e6),
        1000.0,
        "us",
    );
    k.at_most(
        "step mode: below 1 ms for good after the step",
        at.map_or(f64::INFINITY, |at| {
            since(at, step_mode.settled_at(1e-3, at, r.duration))
        }),
        300.0,
        "s",
    );
    let slew_mode = &r.clients[1];
    k.at_most("slew mode: steps", slew_mode.steps().len() as f64, 0.0, "");
    k.at_most(
        "slew mode: below 1 ms for good after the offset appeared",
        since(jump, slew_mode.settled_at(1e-3, jump, r.duration)),
        10800.0,
        "s",
    );
    k.finish();
}

#[test]
fn an_offset_over_the_panic_threshold_is_refused() {
    let (config, r) = run("panic");
    let mut k = Checks::new("panic");
    let born_off = &r.clients[0];
    k.at_most(
        "client 1 (starts 2 days ahead): adjustments of its clock",
        born_off.ops.total() as f64,
        0.0,
        "",
    );
    let panics = born_off.decisions_of("panic");
    k.at_least(
        "client 1: updates refused as panic",
        panics as f64,
        100.0,
        "",
    );
    k.holds(
        "client 1: every update refused",
        panics == born_off.decisions.len(),
    );
    // Untouched, the clock is where its own drift took it.
    let end = |c: &ClientTrace| c.samples.last().map_or(0.0, |s| s.error_s);
    let untouched = 2.0 * 86_400.0 + config.clients[0].clock.frequency.as_rate() * secs(r.duration);
    k.at_most(
        "client 1: clock error at the end minus that of an untouched clock",
        (end(born_off) - untouched).abs() * 1e3,
        1.0,
        "ms",
    );

    let jumped = &r.clients[1];
    k.at_most(
        "client 2 (jumps 2000 s back at 1 h): steps",
        jumped.steps().len() as f64,
        0.0,
        "",
    );
    let after: Vec<&str> = jumped
        .decisions
        .iter()
        .filter(|(at, _)| *at >= hours(1) + mins(10))
        .map(|(_, d)| decision_kind(d))
        .collect();
    k.at_least(
        "client 2: updates after the jump",
        after.len() as f64,
        100.0,
        "",
    );
    k.holds(
        "client 2: every update 10 min after the jump refused",
        after.iter().all(|d| *d == "panic"),
    );
    // Nothing moved it back: a slew at 500 ppm for the 2 h would have.
    k.at_most(
        "client 2: clock error at the end plus 2000 s",
        (end(jumped) + 2000.0).abs() * 1e3,
        1000.0,
        "ms",
    );
    k.finish();
}

#[test]
fn a_falseticker_is_excluded() {
    let (_, r) = run("falseticker");
    let mut k = Checks::new("falseticker");
    let liar = 3;
    for (j, c) in r.clients.iter().enumerate() {
        k.at_least(
            &format!(
                "client {}: share of samples after 30 min with server 4 a falseticker",
                j + 1
            ),
            c.falseticker_share(liar, mins(30), r.duration),
            0.99,
            "",
        );
        k.at_most(
            &format!(
                "client {}: share after 30 min with server 4 a survivor",
                j + 1
            ),
            c.survivor_share(liar, mins(30), r.duration),
            0.0,
            "",
        );
    }
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.at_most("steps", r.steps() as f64, 0.0, "");
    k.finish();
}

#[test]
fn thirty_percent_loss_is_tolerated() {
    let (_, r) = run("loss");
    let mut k = Checks::new("loss");
    k.holds(
        "every server calibrated despite the loss",
        all_calibrated(&r),
    );
    k.at_most(
        "unicast after calibration",
        r.unicast_after_calibration() as f64,
        0.0,
        "",
    );
    steady(&mut k, &r, hours(1), 600.0, 2000.0);
    k.at_most("steps", r.steps() as f64, 0.0, "");
    k.finish();
}

#[test]
fn no_unicast_after_calibration_over_a_whole_day() {
    let (config, r) = run("day");
    let mut k = Checks::new("day");
    k.holds("a whole day simulated", r.duration == hours(24));
    k.holds("every server calibrated", all_calibrated(&r));
    k.at_most(
        "unicast after calibration",
        r.unicast_after_calibration() as f64,
        0.0,
        "",
    );
    let per_pair = r
        .clients
        .iter()
        .flat_map(|c| {
            (0..config.servers.len()).map(|s| c.unicast.iter().filter(|(_, x)| *x == s).count())
        })
        .max()
        .unwrap_or(0);
    // At most the configured volleys (one and three retries of six): a
    // volley whose one-way delay the best round trip cannot explain (one
    // broadcast paired, queued far longer than the replies) is measured
    // again rather than kept (seed 4: 1.5 ms against a 0.32 ms round trip).
    let cal = mcast_core::client::calibration::CalibrationConfig::default();
    k.at_most(
        "most unicast requests one client sent one server",
        per_pair as f64,
        f64::from(cal.requests) * (f64::from(cal.retries) + 1.0),
        "",
    );
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.at_most("steps", r.steps() as f64, 0.0, "");
    k.finish();
}

#[test]
fn path_asymmetry_shows_as_half_its_size() {
    let (_, r) = run("asymmetry");
    let mut k = Checks::new("asymmetry");
    let mean = |j: usize| r.clients[j].stats(hours(1), r.duration).mean_us;
    k.at_most(
        "client 1 (symmetric paths): |mean error|",
        mean(0).abs(),
        20.0,
        "us",
    );
    k.at_least(
        "client 2 (200 us asymmetry): mean error",
        mean(1),
        80.0,
        "us",
    );
    k.at_most(
        "client 2 (200 us asymmetry): mean error",
        mean(1),
        120.0,
        "us",
    );
    k.finish();
}

#[test]
fn calibration_is_unaffected_by_the_clients_own_steps() {
    let (config, r) = run("calibration-step");
    let mut k = Checks::new("calibration-step");
    for (j, c) in r.clients.iter().enumerate() {
        k.at_most(
            &format!("client {}: steps", j + 1),
            c.steps().len() as f64,
            1.0,
            "",
        );
        let Some(&(at, _)) = c.steps().first() else {
            k.holds(&format!("client {}: stepped at start-up", j + 1), false);
            continue;
        };
        k.at_most(
            &format!("client {}: start-up step at", j + 1),
            secs(at),
            120.0,
            "s",
        );
        // The step fell inside at least one server's calibration: after its
        // first request, before its calibration ended.
        let overlapped = (0..config.servers.len()).any(|s| {
            let first = c.unicast.iter().find(|(_, x)| *x == s).map(|(t, _)| *t);
            let done = c.calibrations[s].map(|x| x.at);
            matches!((first, done), (Some(f), Some(d)) if f < at && at < d)
        });
        k.holds(
            &format!(
                "client {}: the step happened during a calibration volley",
                j + 1
            ),
            overlapped,
        );
    }
    k.holds("every server calibrated", all_calibrated(&r));
    k.at_most(
        "worst calibrated one-way delay minus the path's mean",
        worst_calibration_error_us(&config, &r),
        150.0,
        "us",
    );
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.finish();
}

#[test]
fn a_replayed_stream_is_outvoted() {
    let (_, r) = run("replay");
    let mut k = Checks::new("replay");
    let (delayed, replayed) = (2, 1);
    let from = hours(1) + mins(15);
    for (j, c) in r.clients.iter().enumerate() {
        let n = j + 1;
        // Its broadcasts disagree with its unicast time by the 200 ms they
        // are held back: stale, so it is not even a candidate.
        k.at_most(
            &format!("client {n}: share after 1 h 15 min with the delayed server selectable"),
            c.share(from, r.duration, |s| s.selectable(delayed)),
            0.0,
            "",
        );
        k.at_most(
            &format!("client {n}: share after 1 h 15 min with the delayed server a survivor"),
            c.survivor_share(delayed, from, r.duration),
            0.0,
            "",
        );
        // Stale copies of server 2's broadcasts are rejected as replays
        // (about one per broadcast in the 3 h), and it stays in use.
        k.at_least(
            &format!("client {n}: stale copies rejected as replays"),
            c.rejected(replayed, "replay") as f64,
            150.0,
            "",
        );
        k.at_least(
            &format!("client {n}: share after 1 h with server 2 selectable"),
            c.share(hours(1), r.duration, |s| s.selectable(replayed)),
            0.99,
            "",
        );
    }
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.at_most("steps", r.steps() as f64, 0.0, "");
    k.finish();
}

#[test]
fn servers_recover_after_a_restart() {
    let (_, r) = run("restart");
    let mut k = Checks::new("restart");
    k.holds("server 1 restarted once", r.servers[0].restarts == 1);
    k.at_most(
        "server 1 (down 15 min) selectable again after its return",
        all_settle(&r, hours(2) + mins(15), r.duration, |s| s.selectable(0)),
        180.0,
        "s",
    );
    // Server 2 ran 5 s ahead until a restart corrected its clock, so its
    // transmit timestamps went back about 5 s.
    let corrected = hours(3);
    for (j, c) in r.clients.iter().enumerate() {
        k.at_least(
            &format!(
                "client {}: share before the restart with server 2 a falseticker",
                j + 1
            ),
            c.falseticker_share(1, mins(30), corrected),
            0.99,
            "",
        );
    }
    k.at_most(
        "server 2 (clock corrected back 5 s) selectable again after its restart",
        all_settle(&r, corrected, r.duration, |s| s.selectable(1)),
        900.0,
        "s",
    );
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.at_most("steps after 1 h", steps_after(&r, hours(1)) as f64, 0.0, "");
    k.finish();
}

#[test]
fn unsynchronized_servers_leave_selection_and_come_back() {
    let (_, r) = run("unsynchronized");
    let mut k = Checks::new("unsynchronized");
    for (s, mode) in [(1, "silent"), (2, "sending alarms")] {
        let n = s + 1;
        k.at_most(
            &format!("server {n} ({mode}): out of selection after losing its reference"),
            all_settle(&r, hours(1), hours(2), |x| !x.selectable(s)),
            600.0,
            "s",
        );
        k.at_most(
            &format!("server {n} ({mode}): selectable again after its reference returned"),
            all_settle(&r, hours(2), r.duration, |x| x.selectable(s)),
            180.0,
            "s",
        );
    }
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    k.finish();
}

#[test]
fn a_key_change_is_followed_once_clients_reload_their_keys() {
    let (_, r) = run("key-rotation");
    let mut k = Checks::new("key-rotation");
    let reload = hours(1) + mins(20);
    for (j, c) in r.clients.iter().enumerate() {
        let n = j + 1;
        // 20 min at one broadcast per 64 s.
        k.at_least(
            &format!("client {n}: broadcasts failing the MAC before the reload"),
            c.rejected(0, "bad-mac") as f64,
            17.0,
            "",
        );
        k.holds(
            &format!(
                "client {n}: server 1 not used between 10 min after the change and the reload"
            ),
            c.first(hours(1) + mins(10), |s| s.selectable(0))
                .is_none_or(|t| t >= reload),
        );
    }
    k.at_most(
        "server 1 selectable again after the clients reloaded their keys",
        all_settle(&r, reload, r.duration, |s| s.selectable(0)),
        180.0,
        "s",
    );
    steady(&mut k, &r, hours(1), 200.0, 1500.0);
    for (j, c) in r.clients.iter().enumerate() {
        k.at_most(
            &format!("client {}: key reloads refused", j + 1),
            f64::from(c.reloads_refused),
            0.0,
            "",
        );
    }
    k.finish();
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let mut config = (scenarios::by_name("day").expect("day").build)(seed());
    config.duration = mins(30);
    config.clients.truncate(3);
    let a = sim::run(&config).expect("run");
    let b = sim::run(&config).expect("run");
    for (x, y) in a.clients.iter().zip(&b.clients) {
        assert_eq!(x.samples, y.samples, "same seed, same clock errors");
        assert_eq!(x.decisions, y.decisions, "same seed, same decisions");
        assert_eq!(x.events, y.events, "same seed, same log");
    }
    config.seed += 1;
    let c = sim::run(&config).expect("run");
    assert_ne!(
        a.clients[0].samples, c.clients[0].samples,
        "another seed must give another run"
    );
}
