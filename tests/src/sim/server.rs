//! A simulated server host: its clock, and the unchanged server cores
//! ([`Broadcaster`] and [`Responder`]) driven the way `mcast-server run`
//! drives them, plus the ways a real server misbehaves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use mcast_core::server::broadcaster::{BroadcastConfig, Broadcaster, Build};
use mcast_core::server::ratelimit::{Mru, RateLimitConfig};
use mcast_core::server::responder::{
    Outcome, Request, Responder, ResponderConfig, ResponderCounters,
};
use mcast_core::server::sync::SyncStatus;
use mcast_core::server::timesource;
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{LeapIndicator, Log2Seconds, NtpDuration, RefId};

use super::clock::{ClockModel, HostClock};
use super::random::Stream;

/// Our precision, on both ends (about 1 us).
pub const PRECISION: Log2Seconds = Log2Seconds(-20);

/// Port the servers send from and answer on.
pub const NTP_PORT: u16 = 123;

/// Address of server `i`: 198.18.0.(i+1).
pub fn server_address(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        198,
        18,
        0,
        u8::try_from(i + 1).unwrap_or(u8::MAX),
    ))
}

/// Key id server `i` signs with: i+1.
pub fn server_key_id(i: usize) -> Option<KeyId> {
    KeyId::new(u32::try_from(i + 1).ok()?)
}

/// Something that happens to a server at a given time.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// Its time source loses synchronization (it goes silent, or sends
    /// LI=3 with `send_when_unsynchronized`).
    Unsynchronized,
    /// Its time source is synchronized again.
    Synchronized,
    /// Its clock jumps (it starts lying, or is corrected).
    ClockJump(NtpDuration),
    /// The daemon stops, and starts again after `downtime` with fresh
    /// state; its clock jumps by `clock_jump` while it is down (a restart
    /// that corrects a bad clock makes its transmit timestamps go back).
    Restart {
        /// How long it is down.
        downtime: Duration,
        /// Jump of its clock during the restart.
        clock_jump: NtpDuration,
    },
    /// Its key gets a new secret (same id) and the daemon reloads its keys
    /// file; clients must reload theirs to follow.
    RotateKey,
}

/// A server in a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSetup {
    /// Its clock. A falseticker is a server whose clock is off while it
    /// says it is synchronized.
    pub clock: ClockModel,
    /// Broadcast poll exponent (6: every 64 s).
    pub poll: i8,
    /// Stratum it announces.
    pub stratum: u8,
    /// When the daemon starts; `None`: at a random time within the first
    /// interval.
    pub start: Option<Duration>,
    /// While unsynchronized it sends broadcasts with the alarm (LI=3,
    /// stratum 16) instead of falling silent (the core's
    /// `send_when_unsynchronized`).
    pub send_when_unsynchronized: bool,
    /// What happens to it, in time order.
    pub events: Vec<(Duration, ServerEvent)>,
    /// The leap indicator it announces while synchronized.
    pub leap: LeapIndicator,
}

impl Default for ServerSetup {
    fn default() -> Self {
        ServerSetup {
            clock: ClockModel::perfect(),
            poll: 6,
            stratum: 1,
            start: None,
            send_when_unsynchronized: false,
            events: Vec::new(),
            leap: LeapIndicator::NoWarning,
        }
    }
}

/// What a server did over the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTrace {
    /// Broadcasts sent.
    pub broadcasts: u64,
    /// Intervals it stayed silent (unsynchronized, missing key).
    pub silent: u64,
    /// Responder counters, summed over restarts.
    pub responder: ResponderCounters,
    /// Restarts.
    pub restarts: u32,
    /// Requests received in each second of true time (index: second).
    pub requests_by_second: Vec<u32>,
}

impl ServerTrace {
    /// The most requests received in any one second.
    pub fn peak_requests_per_second(&self) -> u32 {
        self.requests_by_second.iter().copied().max().unwrap_or(0)
    }
}

/// One run of the daemon (restarts begin a new one).
struct Process {
    broadcaster: Broadcaster,
    responder: Responder,
    /// Host monotonic time it started at.
    started: Duration,
    generation: u64,
}

/// A simulated server host.
pub(crate) struct SimServer {
    pub addr: SocketAddr,
    pub setup: ServerSetup,
    pub clock: HostClock,
    pub keys: KeyStore,
    pub rng: Stream,
    process: Option<Process>,
    generation: u64,
    synchronized: bool,
    /// Counters of processes that ended.
    finished: ResponderCounters,
    pub trace: ServerTrace,
}

fn add_counters(a: &mut ResponderCounters, b: &ResponderCounters) {
    a.received += b.received;
    a.current_version += b.current_version;
    a.older_version += b.older_version;
    a.bad_format += b.bad_format;
    a.auth_failed += b.auth_failed;
    a.declined += b.declined;
    a.restricted += b.restricted;
    a.rate_limited += b.rate_limited;
    a.kod_sent += b.kod_sent;
    a.replies_sent += b.replies_sent;
    a.crypto_naks_sent += b.crypto_naks_sent;
}

impl SimServer {
    pub fn new(
        index: usize,
        setup: ServerSetup,
        keys: KeyStore,
        clock: HostClock,
        rng: Stream,
    ) -> Self {
        SimServer {
            addr: SocketAddr::new(server_address(index), NTP_PORT),
            setup,
            clock,
            keys,
            rng,
            process: None,
            generation: 0,
            synchronized: true,
            finished: ResponderCounters::default(),
            trace: ServerTrace::default(),
        }
    }

    /// Starts the daemon at the current time; returns the generation its
    /// broadcast events carry.
    pub fn start(&mut self, index: usize) -> u64 {
        self.generation += 1;
        let started = self.clock.mono();
        let broadcaster = Broadcaster::new(
            BroadcastConfig {
                poll: Log2Seconds(self.setup.poll),
                key: server_key_id(index),
                next_key: None,
                interleave: false,
                send_when_unsynchronized: self.setup.send_when_unsynchronized,
                precision: PRECISION,
            },
            Duration::ZERO,
        );
        let responder = Responder::new(
            ResponderConfig {
                require_auth: true,
                precision: PRECISION,
            },
            Mru::new(RateLimitConfig::default()),
        );
        self.process = Some(Process {
            broadcaster,
            responder,
            started,
            generation: self.generation,
        });
        self.generation
    }

    /// Stops the daemon (its state is lost).
    pub fn stop(&mut self) {
        if let Some(p) = self.process.take() {
            add_counters(&mut self.finished, p.responder.counters());
            self.trace.restarts += 1;
        }
    }

    pub fn set_synchronized(&mut self, yes: bool) {
        self.synchronized = yes;
    }

    /// The daemon's monotonic clock (zero when it started).
    fn process_mono(&self, p: &Process) -> Duration {
        self.clock.mono().saturating_sub(p.started)
    }

    /// What the time source says now (a `local` source: the host's clock is
    /// taken as the reference, so a wrong clock makes a falseticker).
    fn sync(&self) -> SyncStatus {
        if !self.synchronized {
            return SyncStatus::Unsynchronized {
                reason: mcast_core::server::sync::Unsync::ReferenceLost,
            };
        }
        let source = timesource::Advertised {
            stratum: Some(self.setup.stratum),
            refid: Some(RefId(*b"GPS\0")),
        };
        match timesource::local(&source, self.clock.read()) {
            SyncStatus::Synchronized(mut h) => {
                h.leap = self.setup.leap;
                SyncStatus::Synchronized(h)
            }
            unsynchronized @ SyncStatus::Unsynchronized { .. } => unsynchronized,
        }
    }

    /// The broadcast due now for process `generation`, as the daemon's
    /// broadcast loop does it: build (clock read for the transmit time),
    /// send, advance with a random jitter. Returns the packet, if one was
    /// sent, and the true time the next one is due; `None` when that
    /// process is gone.
    pub fn broadcast(
        &mut self,
        now: Duration,
        generation: u64,
    ) -> Option<(Option<Rc<[u8]>>, Duration)> {
        self.clock.advance_to(now);
        let sync = self.sync();
        let random = self.rng.u16();
        let clock = &self.clock;
        let p = self
            .process
            .as_mut()
            .filter(|p| p.generation == generation)?;
        let mut buf = Vec::with_capacity(72);
        let sent = match p
            .broadcaster
            .build(&sync, &self.keys, || clock.read(), &mut buf)
        {
            Build::Send => {
                self.trace.broadcasts += 1;
                Some(Rc::from(buf))
            }
            Build::Silent(_) => {
                self.trace.silent += 1;
                None
            }
        };
        let mono = clock.mono().saturating_sub(p.started);
        p.broadcaster.advance(mono, sent.is_some(), random, None);
        let next = clock.when_mono(p.started + p.broadcaster.due());
        Some((sent, next))
    }

    /// A calibration request arriving now from `source`; the reply to send
    /// back, if any (the daemon's responder loop).
    pub fn request(&mut self, now: Duration, bytes: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
        self.clock.advance_to(now);
        let second = usize::try_from(now.as_secs()).unwrap_or(usize::MAX);
        if second < 1 << 24 {
            let per = &mut self.trace.requests_by_second;
            if per.len() <= second {
                per.resize(second + 1, 0);
            }
            if let Some(n) = per.get_mut(second) {
                *n += 1;
            }
        }
        let sync = self.sync();
        let p = self.process.as_ref()?;
        let monotonic = self.process_mono(p);
        let req = Request {
            bytes,
            source,
            received_at: self.clock.read(),
            monotonic,
        };
        let clock = &self.clock;
        let p = self.process.as_mut()?;
        let mut out = Vec::with_capacity(72);
        match p
            .responder
            .handle(&req, &sync, &self.keys, || clock.read(), &mut out)
        {
            Outcome::Reply(_) => Some(out),
            Outcome::Dropped(_) => None,
        }
    }

    /// Final counters.
    pub fn finish(&mut self) {
        let mut total = self.finished;
        if let Some(p) = &self.process {
            add_counters(&mut total, p.responder.counters());
        }
        self.trace.responder = total;
    }
}
