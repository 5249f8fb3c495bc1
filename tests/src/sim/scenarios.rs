//! The named scenarios of the test suite (`tests/tests/sim_scenarios.rs`)
//! and of `ntp-sim`: each builds a [`SimConfig`] from a seed. The tests
//! hold the pass limits; `ntp-sim` prints the figures.

use std::time::Duration;

use mcast_core::client::discipline::ClockMode;
use mcast_core::client::discipline::Ppm;
use mcast_proto::NtpDuration;

use super::{
    ClientEvent, ClientSetup, ClockModel, Jitter, LinkModel, LinkOverride, Replayer, ServerEvent,
    SimConfig, Spike,
};

/// A named scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Name (`ntp-sim --scenario NAME`).
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// Builds its configuration for a seed.
    pub build: fn(u64) -> SimConfig,
    /// Clock error statistics are taken from here on (after start-up).
    pub measure_from: Duration,
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

const fn hours(h: u64) -> Duration {
    Duration::from_secs(h * 3600)
}

fn ms(m: i64) -> NtpDuration {
    NtpDuration::from_millis(m)
}

/// `k`-th of `n` values spread evenly over `[lo, hi]`.
fn spread(k: usize, n: usize, lo: f64, hi: f64) -> f64 {
    if n < 2 {
        return (lo + hi) / 2.0;
    }
    lo + (hi - lo) * k as f64 / (n - 1) as f64
}

/// `n` step-mode clients whose clocks start up to `offset_ms` off (both
/// signs, interleaved) and run -100 .. +100 ppm off, with `wander` ppm per
/// hour, started a few seconds apart.
fn clients(n: usize, offset_ms: f64, wander: f64) -> Vec<ClientSetup> {
    (0..n)
        .map(|j| {
            // Interleave offsets and frequencies so they are not correlated.
            let off = spread((j * 7) % n.max(1), n, -offset_ms, offset_ms);
            ClientSetup {
                clock: ClockModel {
                    offset: NtpDuration::from_seconds_f64(off / 1e3),
                    frequency: Ppm(spread(j, n, -100.0, 100.0)),
                    wander_per_hour: Ppm(wander),
                    ..ClockModel::default()
                },
                start: Duration::from_secs(3 * j as u64),
                ..ClientSetup::default()
            }
        })
        .collect()
}

/// A datacenter LAN: 150 us each way, 50 us mean queueing jitter, 1 % loss,
/// 0.5 % duplicates, 1 % reordered by up to 5 ms.
fn busy_lan() -> LinkModel {
    LinkModel {
        jitter: Jitter::Exponential(Duration::from_micros(50)),
        loss: 0.01,
        duplicate: 0.005,
        reorder: 0.01,
        ..LinkModel::lan()
    }
}

/// A day: 4 servers, 10 clients (±50 ms, ±100 ppm, wander) on a busy LAN.
pub fn day(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(24));
    c.clients = clients(10, 50.0, 0.1);
    c.link = busy_lan();
    c
}

/// Two clients on jitter-free paths; client 2's requests take 200 us
/// longer than the way back (asymmetry, which no NTP exchange can see).
pub fn asymmetry(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(3));
    c.clients = clients(2, 10.0, 0.0);
    c.link.jitter = Jitter::None;
    c.link_overrides.push(LinkOverride {
        server: None,
        client: Some(1),
        model: LinkModel {
            asymmetry: Duration::from_micros(200),
            ..c.link
        },
    });
    c
}

/// Convergence from ±100 ms and ±100 ppm (slewed, below the step threshold).
pub fn convergence(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(3));
    c.clients = clients(10, 100.0, 0.0);
    c
}

/// 100 us mean queueing jitter on every path.
pub fn jitter(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(8));
    c.clients = clients(4, 10.0, 0.1);
    c.link.jitter = Jitter::Exponential(Duration::from_micros(100));
    c
}

/// 132 ms bumps of the client's clock at 2 h: 10 s on client 1, 5 min
/// on client 2 (still shorter than the 900 s stepout).
pub fn spike(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(5));
    c.clients = clients(2, 0.0, 0.0);
    for (client, secs) in c.clients.iter_mut().zip([10, 300]) {
        client.clock.spikes.push(Spike {
            at: hours(2),
            amount: ms(132),
            duration: Duration::from_secs(secs),
        });
    }
    c
}

/// The clients' clocks jump 200 ms at 2 h and stay there: client 1 in
/// step mode, client 2 in slew mode.
pub fn stepout(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(6));
    c.clients = clients(2, 0.0, 0.0);
    for client in &mut c.clients {
        client.clock.steps.push((hours(2), ms(200)));
    }
    if let Some(slew) = c.clients.get_mut(1) {
        slew.mode = ClockMode::Slew;
    }
    c
}

/// Offsets over the 1000 s panic threshold: client 1 starts 2 days ahead
/// (over first-step-max, a day, so even its first update is refused),
/// client 2's clock jumps 2000 s back at 1 h.
pub fn panic(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(3));
    c.clients = clients(2, 0.0, 0.0);
    if let Some(a) = c.clients.get_mut(0) {
        a.clock.offset = NtpDuration::from_secs(2 * 86_400);
    }
    if let Some(b) = c.clients.get_mut(1) {
        b.clock
            .steps
            .push((hours(1), NtpDuration::from_secs(-2000)));
    }
    c
}

/// Server 4 says it is synchronized but is 20 ms ahead.
pub fn falseticker(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(4));
    c.clients = clients(3, 20.0, 0.0);
    if let Some(s) = c.servers.get_mut(3) {
        s.clock = ClockModel::off(ms(20), Ppm::ZERO);
    }
    c
}

/// 30 % loss each way on every path.
pub fn loss(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(6));
    c.clients = clients(4, 20.0, 0.1);
    c.link.loss = 0.3;
    c
}

/// Clients start 0.5 s off in step mode, so their first update steps the
/// clock while the calibration volleys are under way; the path is 300 us
/// each way.
pub fn calibration_step(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(2));
    c.clients = clients(4, 500.0, 0.0);
    c.link.delay = Duration::from_micros(300);
    c
}

/// From 1 h a man in the middle holds server 3's broadcasts back 200 ms
/// (the originals never arrive), and someone replays server 2's
/// broadcasts 10 s late (the originals arrive too).
pub fn replay(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(4));
    c.clients = clients(3, 10.0, 0.0);
    c.replayers = vec![
        Replayer {
            server: 2,
            from: hours(1),
            delay: Duration::from_millis(200),
            suppress_original: true,
        },
        Replayer {
            server: 1,
            from: hours(1),
            delay: Duration::from_secs(10),
            suppress_original: false,
        },
    ];
    c
}

/// Server 1 restarts at 2 h and is down 15 min; server 2 runs 5 s ahead
/// until a restart at 3 h (down 2 s) corrects its clock, so its transmit
/// timestamps go back.
pub fn restart(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(5));
    c.clients = clients(3, 10.0, 0.0);
    if let Some(s) = c.servers.get_mut(0) {
        s.events.push((
            hours(2),
            ServerEvent::Restart {
                downtime: mins(15),
                clock_jump: NtpDuration::ZERO,
            },
        ));
    }
    if let Some(s) = c.servers.get_mut(1) {
        s.clock = ClockModel::off(NtpDuration::from_secs(5), Ppm::ZERO);
        s.events.push((
            hours(3),
            ServerEvent::Restart {
                downtime: Duration::from_secs(2),
                clock_jump: NtpDuration::from_secs(-5),
            },
        ));
    }
    c
}

/// Servers 2 and 3 lose their reference from 1 h to 2 h: server 2 goes
/// silent, server 3 keeps sending with the alarm (LI=3, stratum 16).
pub fn unsynchronized(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(3));
    c.clients = clients(3, 10.0, 0.0);
    for (i, alarm) in [(1, false), (2, true)] {
        if let Some(s) = c.servers.get_mut(i) {
            s.send_when_unsynchronized = alarm;
            s.events.push((hours(1), ServerEvent::Unsynchronized));
            s.events.push((hours(2), ServerEvent::Synchronized));
        }
    }
    c
}

/// Server 1 gets a new key secret at 1 h; the clients' keys files follow
/// 20 min later.
pub fn key_rotation(seed: u64) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(3));
    c.clients = clients(3, 10.0, 0.0);
    if let Some(s) = c.servers.get_mut(0) {
        s.events.push((hours(1), ServerEvent::RotateKey));
    }
    for client in &mut c.clients {
        client
            .events
            .push((hours(1) + mins(20), ClientEvent::ReloadKeys));
    }
    c
}

/// Every scenario.
pub fn all() -> Vec<Scenario> {
    let s = |name, about, build, measure_from| Scenario {
        name,
        about,
        build,
        measure_from,
    };
    vec![
        s(
            "day",
            "a day: 4 servers, 10 clients (±50 ms, ±100 ppm, wander), busy LAN with loss, duplicates, reordering",
            day as fn(u64) -> SimConfig,
            hours(1),
        ),
        s(
            "asymmetry",
            "a path 200 us longer one way shows as a 100 us offset",
            asymmetry,
            hours(1),
        ),
        s(
            "convergence",
            "10 clients converge from ±100 ms and ±100 ppm",
            convergence,
            mins(90),
        ),
        s(
            "jitter",
            "100 us mean queueing jitter on every path",
            jitter,
            hours(2),
        ),
        s(
            "spike",
            "132 ms bumps of the clients' clocks (10 s and 5 min) never step",
            spike,
            hours(1),
        ),
        s(
            "stepout",
            "a persistent 200 ms offset: step mode steps after the stepout, slew mode slews",
            stepout,
            hours(1),
        ),
        s(
            "panic",
            "offsets over the panic threshold are refused",
            panic,
            Duration::ZERO,
        ),
        s(
            "falseticker",
            "a server 20 ms off is excluded",
            falseticker,
            hours(1),
        ),
        s("loss", "30 % loss each way on every path", loss, hours(1)),
        s(
            "calibration-step",
            "calibration unaffected by the clients' own start-up steps",
            calibration_step,
            mins(30),
        ),
        s(
            "replay",
            "a delayed (replayed) stream is outvoted; stale copies are rejected",
            replay,
            hours(1),
        ),
        s(
            "restart",
            "servers restart, one with its clock corrected backwards",
            restart,
            hours(1),
        ),
        s(
            "unsynchronized",
            "servers lose their reference for an hour (silent / alarm)",
            unsynchronized,
            hours(1),
        ),
        s(
            "key-rotation",
            "a server's key changes; clients follow 20 min later",
            key_rotation,
            hours(1),
        ),
    ]
}

/// `n` clients, 4 servers, an hour, every client started at the same
/// instant (a mass reboot: every calibration volley at once) on the busy
/// LAN; sampled every minute.
pub fn fleet(seed: u64, n: usize) -> SimConfig {
    let mut c = SimConfig::new(seed, 4, 0, hours(1));
    c.clients = clients(n, 5.0, 0.0)
        .into_iter()
        .map(|setup| ClientSetup {
            start: Duration::ZERO,
            ..setup
        })
        .collect();
    c.link = busy_lan();
    c.sample_every = Duration::from_secs(60);
    c
}

fn fleet_10k(seed: u64) -> SimConfig {
    fleet(seed, 10_000)
}

fn fleet_1k(seed: u64) -> SimConfig {
    fleet(seed, 1_000)
}

/// Scale runs: too big for the test suite, run by `ntp-sim` for
/// BENCHMARKS.md and SCALING.md.
pub fn scale() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "fleet-10k",
            about: "10,000 clients and 4 servers for an hour, all started at once",
            build: fleet_10k,
            measure_from: mins(45),
        },
        Scenario {
            name: "fleet-1k",
            about: "1,000 clients and 4 servers for an hour, all started at once",
            build: fleet_1k,
            measure_from: mins(45),
        },
    ]
}

/// The scenario called `name` (the test suite's or a scale run).
pub fn by_name(name: &str) -> Option<Scenario> {
    all().into_iter().chain(scale()).find(|s| s.name == name)
}
