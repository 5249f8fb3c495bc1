//! A simulated client host: its clock, and the unchanged [`ClientCore`]
//! driven the way `mcast-client run` drives it (kernel receive time as the
//! host clock reads it, the daemon's monotonic clock, a tick at
//! `next_wakeup`), with clock decisions carried out on the simulated clock.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mcast_core::client::association::ServerSpec;
use mcast_core::client::association::State;
use mcast_core::client::bound::BoundStatus;
use mcast_core::client::calibration::{Calibration, Phase};
use mcast_core::client::discipline::{ClockMode, Decision, DisciplineConfig};
use mcast_core::client::engine::{
    Action, ClientCore, CoreConfig, Event as CoreEvent, Incoming, StepNowError,
};
use mcast_core::client::persist::PersistedState;
use mcast_core::client::status::{ClientStatus, status_of};
use mcast_keys::KeyStore;
use mcast_proto::NtpDuration;

use super::clock::{ClockModel, HostClock};
use super::random::Stream;
use super::server::{NTP_PORT, PRECISION, server_address, server_key_id};

/// The port clients send calibration requests from.
pub const CALIBRATION_PORT: u16 = 41230;

/// Address of client `j`: 198.18.1.(j+1) for the first 255, then on
/// through 198.18.2.0 and up (distinct for 65,000 clients, all in
/// 198.18.0.0/15; the servers are in 198.18.0.0/24).
pub fn client_address(j: usize) -> IpAddr {
    let k = j + 1;
    let third = u8::try_from(1 + k / 256).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(198, 18, third, (k % 256) as u8))
}

/// Something that happens to a client at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// SIGHUP after the keys file was updated: it takes the servers'
    /// current keys.
    ReloadKeys,
    /// An operator runs `mcast-client step-now`.
    StepNow,
}

/// A client in a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientSetup {
    /// Its clock.
    pub clock: ClockModel,
    /// What it may do to its (simulated) clock.
    pub mode: ClockMode,
    /// When the daemon starts.
    pub start: Duration,
    /// What happens to it, in time order.
    pub events: Vec<(Duration, ClientEvent)>,
    /// `[clock] unsync-after-s`.
    pub unsync_after: Duration,
    /// `[clock] first-step-max-s`.
    pub first_step_max: NtpDuration,
    /// The state directory's content at start (a previous run's).
    pub restore: Option<PersistedState>,
}

impl Default for ClientSetup {
    fn default() -> Self {
        ClientSetup {
            clock: ClockModel::default(),
            mode: ClockMode::Step,
            start: Duration::ZERO,
            events: Vec::new(),
            unsync_after: mcast_core::client::kernel::DEFAULT_UNSYNC_AFTER,
            first_step_max: mcast_core::client::discipline::DEFAULT_FIRST_STEP_MAX,
            restore: None,
        }
    }
}

/// How one server's calibration ended, as this client saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationRecord {
    /// When the association started tracking (true time).
    pub at: Duration,
    /// The one-way delay it uses from then on.
    pub one_way: Option<NtpDuration>,
    /// True when the fallback delay is in use (calibration failed).
    pub fallback: bool,
}

/// One sample of a client's state (every `sample_every` of true time).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// True time.
    pub at: Duration,
    /// The clock's true error: local minus true time, seconds.
    pub error_s: f64,
    /// Servers (bit i: server i) among the survivors of the last selection.
    pub survivors: u32,
    /// Servers the last selection called falsetickers.
    pub falsetickers: u32,
    /// Servers the last selection called truechimers (selectable).
    pub truechimers: u32,
    /// The system peer.
    pub system_peer: Option<usize>,
    /// The error bound the client would publish now (ClockBound's
    /// segment), seconds, with its status; `None` while it publishes none
    /// or the status is unknown.
    pub bound: Option<(f64, BoundStatus)>,
}

/// What a client did and how its clock fared.
#[derive(Debug, Clone, Default)]
pub struct ClientTrace {
    /// Sampled state, in time order (from the client's start).
    pub samples: Vec<Sample>,
    /// Key reloads the core refused (they would have lost a server's key).
    pub reloads_refused: u32,
    /// Clock decisions made, with their true time.
    pub decisions: Vec<(Duration, Decision)>,
    /// Steps, slews and frequency settings carried out on its clock.
    pub ops: super::clock::ClockOps,
    /// Unicast requests sent: when, to which server.
    pub unicast: Vec<(Duration, usize)>,
    /// Per server, how calibration ended (`None`: never finished).
    pub calibrations: Vec<Option<CalibrationRecord>>,
    /// Log lines of the core, with their true time.
    pub events: Vec<(Duration, CoreEvent)>,
    /// The `status` the daemon would report at the end.
    pub status: Option<ClientStatus>,
    /// What each `step-now` did: when, and the step or the refusal.
    pub step_now: Vec<(Duration, Result<NtpDuration, StepNowError>)>,
    /// What it would write to its state directory at exit.
    pub persisted: Option<PersistedState>,
    /// Re-joins of the group the core asked for: when, which attempt.
    pub rejoins: Vec<(Duration, u32)>,
}

/// Name of a decision kind, for counting.
pub fn decision_kind(d: &Decision) -> &'static str {
    match d {
        Decision::Monitor { .. } => "monitor",
        Decision::Slew { .. } => "slew",
        Decision::Step { .. } => "step",
        Decision::SpikeIgnored { .. } => "spike-ignored",
        Decision::Panic { .. } => "panic",
        Decision::WaitingForStepout { .. } => "waiting-for-stepout",
        Decision::SlewInProgress { .. } => "slew-in-progress",
    }
}

/// The core configuration a simulated client runs with: the core's
/// defaults (which are the configuration's, a test of mcast-client's
/// settings says so), the simulated servers and the setup's clock mode.
pub fn client_config(servers: usize, setup: &ClientSetup) -> CoreConfig {
    let specs = (0..servers)
        .map(|i| ServerSpec {
            address: server_address(i),
            key: server_key_id(i),
            more_keys: Vec::new(),
            name: format!("server{}", i + 1),
            interleave: false,
            public_key: None,
        })
        .collect();
    CoreConfig {
        server_port: NTP_PORT,
        precision: PRECISION,
        discipline: DisciplineConfig {
            mode: setup.mode,
            unsync_after: setup.unsync_after,
            first_step_max: setup.first_step_max,
            ..DisciplineConfig::default()
        },
        ..CoreConfig::with_servers(specs)
    }
}

/// A simulated client host.
pub(crate) struct SimClient {
    pub addr: SocketAddr,
    pub setup: ClientSetup,
    pub clock: HostClock,
    pub rng: Stream,
    /// Where its request cookies come from.
    cookies: Stream,
    config: CoreConfig,
    core: Option<ClientCore>,
    /// Host monotonic time the daemon started at.
    started: Duration,
    pub trace: ClientTrace,
}

/// A request the client sends: to whom, what.
pub(crate) type Outgoing = (SocketAddr, Vec<u8>);

impl SimClient {
    pub fn new(
        index: usize,
        setup: ClientSetup,
        config: CoreConfig,
        clock: HostClock,
        rng: Stream,
        cookies: Stream,
    ) -> Self {
        let servers = config.servers.len();
        SimClient {
            addr: SocketAddr::new(client_address(index), CALIBRATION_PORT),
            setup,
            clock,
            rng,
            cookies,
            config,
            core: None,
            started: Duration::ZERO,
            trace: ClientTrace {
                calibrations: vec![None; servers],
                ..ClientTrace::default()
            },
        }
    }

    /// Starts the daemon now with `keys`.
    pub fn start(&mut self, keys: KeyStore) {
        let mut core = ClientCore::new(self.config.clone(), keys);
        core.set_calibration_port(CALIBRATION_PORT);
        if let Some(state) = &self.setup.restore {
            let _ = core.restore(state, self.clock.read());
        }
        self.core = Some(core);
        self.started = self.clock.mono();
    }

    /// Reloads the keys; a reload the core refuses (it would lose a
    /// server's key) is counted in `reloads_refused`.
    pub fn set_keys(&mut self, keys: KeyStore) {
        if let Some(core) = self.core.as_mut()
            && core.set_keys(keys).is_err()
        {
            self.trace.reloads_refused += 1;
        }
    }

    fn mono(&self) -> Duration {
        self.clock.mono().saturating_sub(self.started)
    }

    /// An operator's `step-now` now.
    pub fn step_now(&mut self, now: Duration) {
        self.clock.advance_to(now);
        let mono = self.mono();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        let result = core.step_now(mono, &mut self.clock);
        self.trace.step_now.push((now, result));
    }

    /// A broadcast arriving on the group socket now.
    pub fn broadcast(&mut self, now: Duration, bytes: &[u8], source: SocketAddr) -> Vec<Outgoing> {
        self.receive(now, bytes, source, true)
    }

    /// A datagram arriving on the calibration socket now.
    pub fn reply(&mut self, now: Duration, bytes: &[u8], source: SocketAddr) -> Vec<Outgoing> {
        self.receive(now, bytes, source, false)
    }

    fn receive(
        &mut self,
        now: Duration,
        bytes: &[u8],
        source: SocketAddr,
        group: bool,
    ) -> Vec<Outgoing> {
        self.clock.advance_to(now);
        let inc = Incoming {
            bytes,
            source,
            rx: self.clock.read(),
            mono: self.mono(),
        };
        let random = self.rng.u32();
        let Some(core) = self.core.as_mut() else {
            return Vec::new();
        };
        let actions = if group {
            core.on_broadcast(inc, random, &mut self.clock)
        } else {
            core.on_reply(inc, &mut self.clock)
        };
        self.execute(now, actions)
    }

    /// The tick loop: a tick now; returns the requests to send and the
    /// true time of the next tick.
    pub fn tick(&mut self, now: Duration) -> (Vec<Outgoing>, Duration) {
        self.clock.advance_to(now);
        let mono = self.mono();
        let read = self.clock.read();
        let Some(core) = self.core.as_mut() else {
            return (Vec::new(), now + Duration::from_secs(1));
        };
        let cookies = &mut self.cookies;
        let actions = core.on_tick(mono, read, &mut || cookies.u64(), &mut self.clock);
        let next = core.next_wakeup(mono);
        let out = self.execute(now, actions);
        let next = next.max(mono + Duration::from_millis(10));
        (out, self.clock.when_mono(self.started + next))
    }

    /// Carries out the core's actions as the daemon does (clock decisions
    /// the core has already carried out on the simulated clock are
    /// recorded).
    fn execute(&mut self, now: Duration, actions: Vec<Action>) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let Some(core) = self.core.as_mut() else {
            return out;
        };
        for a in actions {
            match a {
                Action::Send { to, bytes, .. } => {
                    if let Some(i) = core
                        .associations()
                        .position(|a| a.spec().address == to.ip())
                    {
                        self.trace.unicast.push((now, i));
                    }
                    out.push((to, bytes));
                }
                Action::Clock(d) => self.trace.decisions.push((now, d)),
                // Recorded by the simulated clock (ClockOps::kernel).
                Action::Kernel(_) => {}
                Action::Event(e) => self.trace.events.push((now, e)),
                // The simulated network has no memberships to renew:
                // recorded only.
                Action::Rejoin { attempt } => self.trace.rejoins.push((now, attempt)),
            }
        }
        for (i, a) in core.associations().enumerate() {
            if a.state() == State::Tracking
                && let Some(slot) = self.trace.calibrations.get_mut(i)
                && slot.is_none()
            {
                *slot = Some(CalibrationRecord {
                    at: now,
                    one_way: a.calibration().and_then(Calibration::one_way_delay),
                    fallback: matches!(
                        a.calibration().map(Calibration::phase),
                        Some(Phase::Fallback { .. })
                    ),
                });
            }
        }
        out
    }

    /// Records the clock's true error and the selection now.
    pub fn sample(&mut self, now: Duration) {
        let Some(core) = self.core.as_ref() else {
            return;
        };
        self.clock.advance_to(now);
        let mono = self.mono();
        let bits = |ids: &[usize]| ids.iter().fold(0u32, |m, i| m | super::metrics::bit(*i));
        let sel = core.selection();
        self.trace.samples.push(Sample {
            at: now,
            error_s: self.clock.error_s(),
            survivors: sel.map_or(0, |s| bits(&s.survivors)),
            falsetickers: sel.map_or(0, |s| bits(&s.falsetickers)),
            truechimers: sel.map_or(0, |s| bits(&s.truechimers)),
            system_peer: sel.and_then(|s| s.system_peer),
            bound: core.error_bound(mono, self.clock.read()).and_then(|b| {
                let ns = b.at(mono)?;
                Some((ns as f64 / 1e9, b.status))
            }),
        });
    }

    /// Final status and counters.
    pub fn finish(&mut self) {
        self.trace.ops = self.clock.ops().clone();
        if let Some(core) = self.core.as_ref() {
            let mono = self.mono();
            self.trace.status = Some(status_of(core, mono, mono));
            self.trace.persisted = Some(core.persisted_at_exit());
        }
    }
}
