//! A deterministic simulator for mcast-ntp: the unchanged server cores
//! (`Broadcaster`, `Responder`) and client core (`ClientCore` with its
//! discipline) run against virtual time, a modelled network and modelled
//! clocks, so a day of drift, jitter, loss, spikes, steps and lying
//! servers runs in seconds and never touches a real clock.
//!
//! - [`sched`]: the one event queue over virtual true time.
//! - [`clock`]: host clocks (offset, frequency error, wander, injected
//!   steps and spikes; steps, slews and frequency corrections by the
//!   client's discipline through its `Clock` trait).
//! - [`link`]: per server-client path: delay, jitter, asymmetry, loss,
//!   duplication, reordering.
//! - [`server`], [`client`]: hosts driving the cores as the daemons do.
//! - [`metrics`]: what a run measured ([`Report`]).
//! - [`scenarios`]: the named scenarios of the test suite and `ntp-sim`.
//!
//! A run is a pure function of its [`SimConfig`] (seed included).

pub mod client;
pub mod clock;
pub mod link;
pub mod metrics;
mod random;
pub mod scenarios;
mod sched;
pub mod server;

use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use mcast_keys::{Key, KeyStore, KeyType, SourcePrefix};

pub use client::{ClientEvent, ClientSetup};
pub use clock::{ClockModel, Spike};
pub use link::{Jitter, LinkModel};
pub use metrics::Report;
pub use server::{ServerEvent, ServerSetup};

use client::{SimClient, client_config};
use clock::HostClock;
use link::{Direction, Link};
use random::{Kind, Stream};
use sched::Scheduler;
use server::{SimServer, server_address, server_key_id};

/// Someone on the LAN who captures a server's broadcasts and sends them
/// again later from the server's address (the MAC still verifies).
#[derive(Debug, Clone, PartialEq)]
pub struct Replayer {
    /// Whose broadcasts.
    pub server: usize,
    /// Active from this time.
    pub from: Duration,
    /// How long after the original each copy is sent.
    pub delay: Duration,
    /// Whether the originals are kept from the clients (a man in the
    /// middle delaying the stream) or reach them too (a plain replay).
    pub suppress_original: bool,
}

/// A path that behaves differently from [`SimConfig::link`].
#[derive(Debug, Clone, PartialEq)]
pub struct LinkOverride {
    /// The server end (`None`: every server).
    pub server: Option<usize>,
    /// The client end (`None`: every client).
    pub client: Option<usize>,
    /// How it behaves.
    pub model: LinkModel,
}

/// Everything a run depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Simulated (true) time to run.
    pub duration: Duration,
    /// How often each client's true clock error and selection are sampled.
    pub sample_every: Duration,
    /// The servers (at most 32).
    pub servers: Vec<ServerSetup>,
    /// The clients.
    pub clients: Vec<ClientSetup>,
    /// How every server-client path behaves, unless overridden.
    pub link: LinkModel,
    /// Paths that behave differently (later entries win).
    pub link_overrides: Vec<LinkOverride>,
    /// Replay attackers.
    pub replayers: Vec<Replayer>,
    /// UTC at true time zero (default [`clock::epoch`], 2027-01-15).
    pub epoch: mcast_proto::NtpTimestamp,
}

impl SimConfig {
    /// `servers` good servers and `clients` clients in step mode with
    /// perfect clocks on a quiet LAN, sampled every 4 s.
    pub fn new(seed: u64, servers: usize, clients: usize, duration: Duration) -> Self {
        SimConfig {
            seed,
            duration,
            sample_every: Duration::from_secs(4),
            servers: vec![ServerSetup::default(); servers],
            clients: vec![ClientSetup::default(); clients],
            link: LinkModel::lan(),
            link_overrides: Vec::new(),
            replayers: Vec::new(),
            epoch: clock::epoch(),
        }
    }

    /// The model of the path between server `s` and client `c`.
    pub fn link_model(&self, s: usize, c: usize) -> LinkModel {
        self.link_overrides
            .iter()
            .rfind(|o| o.server.is_none_or(|x| x == s) && o.client.is_none_or(|x| x == c))
            .map_or(self.link, |o| o.model)
    }
}

/// Where a datagram is delivered.
#[derive(Debug, Clone, Copy)]
enum Dest {
    /// A client's group socket.
    Group(usize),
    /// A client's calibration socket.
    Calibration(usize),
    /// A server's NTP socket.
    Server(usize),
}

enum Event {
    ServerStart(usize),
    Broadcast {
        server: usize,
        generation: u64,
    },
    ServerChange {
        server: usize,
        change: ServerEvent,
    },
    ClientStart(usize),
    ClientTick(usize),
    ClientChange {
        client: usize,
        change: ClientEvent,
    },
    Deliver {
        to: Dest,
        from: SocketAddr,
        bytes: Rc<[u8]>,
    },
    Replay {
        server: usize,
        bytes: Rc<[u8]>,
    },
    Sample,
}

/// The simulator's state during a run.
struct Sim {
    config: SimConfig,
    sched: Scheduler<Event>,
    servers: Vec<SimServer>,
    clients: Vec<SimClient>,
    /// `links[s][c]`.
    links: Vec<Vec<Link>>,
    /// Current secret generation of each server's key.
    key_generation: Vec<u32>,
}

/// Schedules a host's timed events.
fn schedule_all<T: Clone>(
    sched: &mut Scheduler<Event>,
    events: &[(Duration, T)],
    event: impl Fn(T) -> Event,
) {
    for (at, change) in events {
        sched.at(*at, event(change.clone()));
    }
}

/// The key server `i` signs with, in generation `generation`: AES-CMAC.
fn server_key(seed: u64, i: usize, generation: u32) -> Option<Key> {
    let secret = format!("sim{seed:x}.{i}.{generation}");
    let mut bytes = [0u8; 16];
    for (b, s) in bytes.iter_mut().zip(secret.bytes().cycle()) {
        *b = s;
    }
    Some(Key::new(server_key_id(i)?, KeyType::Aes128Cmac, &bytes))
}

impl Sim {
    fn new(config: SimConfig) -> Result<Self, String> {
        if config.servers.len() > 32 {
            return Err("at most 32 servers".into());
        }
        let seed = config.seed;
        let key_generation = vec![0; config.servers.len()];
        let mut sim = Sim {
            sched: Scheduler::new(),
            servers: Vec::new(),
            clients: Vec::new(),
            links: Vec::new(),
            key_generation,
            config,
        };
        for (i, setup) in sim.config.servers.iter().enumerate() {
            let clock = HostClock::new(&setup.clock, Stream::new(seed, Kind::Clock, i))
                .starting_at(sim.config.epoch);
            let mut rng = Stream::new(seed, Kind::Server, i);
            let start = setup
                .start
                .unwrap_or_else(|| rng.upto(Duration::from_secs(1u64 << setup.poll.clamp(0, 17))));
            sim.sched.at(start, Event::ServerStart(i));
            schedule_all(&mut sim.sched, &setup.events, |change| {
                Event::ServerChange { server: i, change }
            });
            let keys = sim.server_keys(i)?;
            sim.servers
                .push(SimServer::new(i, setup.clone(), keys, clock, rng));
        }
        let n = sim.config.servers.len();
        for (j, setup) in sim.config.clients.iter().enumerate() {
            let core_config = client_config(n, setup);
            let clock = HostClock::new(&setup.clock, Stream::new(seed, Kind::Clock, 1000 + j))
                .starting_at(sim.config.epoch);
            let rng = Stream::new(seed, Kind::Client, j);
            sim.sched.at(setup.start, Event::ClientStart(j));
            schedule_all(&mut sim.sched, &setup.events, |change| {
                Event::ClientChange { client: j, change }
            });
            let cookies = Stream::new(seed, Kind::Cookie, j);
            sim.clients.push(SimClient::new(
                j,
                setup.clone(),
                core_config,
                clock,
                rng,
                cookies,
            ));
        }
        sim.links = (0..n)
            .map(|s| {
                (0..sim.clients.len())
                    .map(|c| {
                        Link::new(
                            sim.config.link_model(s, c),
                            Stream::new(seed, Kind::Link, s * 1000 + c),
                        )
                    })
                    .collect()
            })
            .collect();
        sim.sched.at(Duration::ZERO, Event::Sample);
        Ok(sim)
    }

    fn server_keys(&self, i: usize) -> Result<KeyStore, String> {
        let generation = self.key_generation.get(i).copied().unwrap_or(0);
        KeyStore::from_keys(
            Path::new("sim-server.keys"),
            server_key(self.config.seed, i, generation),
        )
        .map_err(|e| e.to_string())
    }

    /// Every server's current key, each allowed only from its server's
    /// address: what a client's keys file holds.
    fn client_keys(&self) -> Result<KeyStore, String> {
        let keys = self.key_generation.iter().enumerate().filter_map(|(i, g)| {
            let key = server_key(self.config.seed, i, *g)?;
            Some(key.with_allowed_sources(vec![SourcePrefix::host(server_address(i))]))
        });
        KeyStore::from_keys(Path::new("sim.keys"), keys).map_err(|e| e.to_string())
    }

    fn run(mut self) -> Report {
        let end = self.config.duration;
        while let Some(event) = self.sched.next_until(end) {
            let now = self.sched.now();
            self.handle(now, event);
        }
        for s in &mut self.servers {
            s.finish();
        }
        for c in &mut self.clients {
            c.clock.advance_to(end);
            c.finish();
        }
        Report {
            duration: end,
            clients: self.clients.into_iter().map(|c| c.trace).collect(),
            servers: self.servers.into_iter().map(|s| s.trace).collect(),
        }
    }

    fn handle(&mut self, now: Duration, event: Event) {
        match event {
            Event::ServerStart(i) => self.start_server(i),
            Event::Broadcast { server, generation } => {
                let Some(s) = self.servers.get_mut(server) else {
                    return;
                };
                let Some((sent, next)) = s.broadcast(now, generation) else {
                    return;
                };
                self.sched.at(next, Event::Broadcast { server, generation });
                if let Some(bytes) = sent {
                    self.capture(server, &bytes);
                    if !self.suppressed(server, now) {
                        self.multicast(server, bytes);
                    }
                }
            }
            Event::Replay { server, bytes } => self.multicast(server, bytes),
            Event::ServerChange { server, change } => self.server_change(server, change),
            Event::ClientStart(j) => {
                if let Ok(keys) = self.client_keys()
                    && let Some(c) = self.clients.get_mut(j)
                {
                    c.clock.advance_to(now);
                    c.start(keys);
                    self.sched.at(now, Event::ClientTick(j));
                }
            }
            Event::ClientTick(j) => {
                let Some(c) = self.clients.get_mut(j) else {
                    return;
                };
                let (out, next) = c.tick(now);
                self.sched.at(next, Event::ClientTick(j));
                self.send_requests(j, out);
            }
            Event::ClientChange { client, change } => match change {
                ClientEvent::ReloadKeys => {
                    if let Ok(keys) = self.client_keys()
                        && let Some(c) = self.clients.get_mut(client)
                    {
                        c.set_keys(keys);
                    }
                }
                ClientEvent::StepNow => {
                    if let Some(c) = self.clients.get_mut(client) {
                        c.step_now(now);
                    }
                }
            },
            Event::Deliver { to, from, bytes } => self.deliver(now, to, from, &bytes),
            Event::Sample => {
                for c in &mut self.clients {
                    c.sample(now);
                }
                self.sched.after(self.config.sample_every, Event::Sample);
            }
        }
    }

    fn start_server(&mut self, i: usize) {
        let now = self.sched.now();
        let Some(s) = self.servers.get_mut(i) else {
            return;
        };
        s.clock.advance_to(now);
        let generation = s.start(i);
        self.sched.at(
            now,
            Event::Broadcast {
                server: i,
                generation,
            },
        );
    }

    fn server_change(&mut self, i: usize, change: ServerEvent) {
        let now = self.sched.now();
        let Some(s) = self.servers.get_mut(i) else {
            return;
        };
        s.clock.advance_to(now);
        match change {
            ServerEvent::Unsynchronized => s.set_synchronized(false),
            ServerEvent::Synchronized => s.set_synchronized(true),
            ServerEvent::ClockJump(d) => s.clock.jump(d),
            ServerEvent::Restart {
                downtime,
                clock_jump,
            } => {
                s.stop();
                s.clock.jump(clock_jump);
                self.sched.after(downtime, Event::ServerStart(i));
            }
            ServerEvent::RotateKey => {
                if let Some(g) = self.key_generation.get_mut(i) {
                    *g += 1;
                }
                if let Ok(keys) = self.server_keys(i)
                    && let Some(s) = self.servers.get_mut(i)
                {
                    s.keys = keys;
                }
            }
        }
    }

    /// Whether a replayer keeps server `s`'s broadcasts from the clients now.
    fn suppressed(&self, s: usize, now: Duration) -> bool {
        self.config
            .replayers
            .iter()
            .any(|r| r.server == s && r.suppress_original && now >= r.from)
    }

    /// Replayers capture the broadcast and schedule their copy.
    fn capture(&mut self, s: usize, bytes: &Rc<[u8]>) {
        let now = self.sched.now();
        let delays: Vec<Duration> = self
            .config
            .replayers
            .iter()
            .filter(|r| r.server == s && now >= r.from)
            .map(|r| r.delay)
            .collect();
        for d in delays {
            self.sched.after(
                d,
                Event::Replay {
                    server: s,
                    bytes: Rc::clone(bytes),
                },
            );
        }
    }

    /// Sends a datagram from server `s` to every client's group socket.
    fn multicast(&mut self, s: usize, bytes: Rc<[u8]>) {
        let Some(from) = self.servers.get(s).map(|x| x.addr) else {
            return;
        };
        for c in 0..self.clients.len() {
            self.transmit(s, c, Direction::ToClient, Dest::Group(c), from, &bytes);
        }
    }

    /// Routes a client's calibration requests to the servers.
    fn send_requests(&mut self, c: usize, out: Vec<client::Outgoing>) {
        let Some(from) = self.clients.get(c).map(|x| x.addr) else {
            return;
        };
        for (to, bytes) in out {
            let Some(s) = self.servers.iter().position(|x| x.addr == to) else {
                continue;
            };
            let bytes: Rc<[u8]> = Rc::from(bytes);
            self.transmit(s, c, Direction::ToServer, Dest::Server(s), from, &bytes);
        }
    }

    fn transmit(
        &mut self,
        s: usize,
        c: usize,
        dir: Direction,
        to: Dest,
        from: SocketAddr,
        bytes: &Rc<[u8]>,
    ) {
        let Some(link) = self.links.get_mut(s).and_then(|l| l.get_mut(c)) else {
            return;
        };
        for d in link.transit(dir) {
            self.sched.after(
                d,
                Event::Deliver {
                    to,
                    from,
                    bytes: Rc::clone(bytes),
                },
            );
        }
    }

    fn deliver(&mut self, now: Duration, to: Dest, from: SocketAddr, bytes: &[u8]) {
        match to {
            Dest::Group(c) | Dest::Calibration(c) => {
                let Some(client) = self.clients.get_mut(c) else {
                    return;
                };
                let out = if matches!(to, Dest::Group(_)) {
                    client.broadcast(now, bytes, from)
                } else {
                    client.reply(now, bytes, from)
                };
                self.send_requests(c, out);
            }
            Dest::Server(s) => {
                let Some(server) = self.servers.get_mut(s) else {
                    return;
                };
                let Some(reply) = server.request(now, bytes, from) else {
                    return;
                };
                let Some(c) = self.clients.iter().position(|x| x.addr == from) else {
                    return;
                };
                let server_addr = server.addr;
                self.transmit(
                    s,
                    c,
                    Direction::ToClient,
                    Dest::Calibration(c),
                    server_addr,
                    &Rc::from(reply),
                );
            }
        }
    }
}

/// Runs a scenario to the end and reports what it measured.
pub fn run(config: &SimConfig) -> Result<Report, String> {
    Ok(Sim::new(config.clone())?.run())
}
