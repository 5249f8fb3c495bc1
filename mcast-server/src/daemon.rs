//! The I/O shell of `mcast-server run`: sockets, timers, signals and the
//! control socket around the sans-I/O [`Broadcaster`] and the responder's
//! [`Answerer`]s.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use mcast_config::{ServerConfig, TimeSourceKind, Unsynchronized};
use mcast_keys::KeyStore;
use mcast_proto::{Datagram, Log2Seconds, NtpTimestamp};
use mcast_sys::{EndpointOptions, RealClock, RecvBatch, RecvMeta, SendBatch, UdpEndpoint};
use serde::Serialize;
use tokio::time::Instant;

use crate::broadcaster::{BroadcastConfig, Broadcaster, Build};
use crate::ratelimit::{Mru, RateLimitConfig, RateVerdict};
use crate::responder::{Answerer, Outcome, Request, ResponderConfig, ResponderCounters, observe};
use crate::state::SyncStatus;
use crate::timesource;
use crate::upstream::{Upstream, UpstreamConfig, UpstreamReport, Verdict};

/// DSCP EF, what ntpd marks its packets with.
const TOS_EF: u8 = 0xb8;

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A socket or interface problem, with what we were doing.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The system error.
        source: std::io::Error,
    },
    /// The configuration cannot be served.
    #[error("{0}")]
    Config(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Status of one destination, as `status` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DestinationStatus {
    /// Group or broadcast address.
    pub address: IpAddr,
    /// Interface name.
    pub interface: String,
    /// Source address the packets leave from.
    pub source: IpAddr,
    /// Poll exponent.
    pub poll: i8,
    /// Key id, if signed.
    pub key: Option<u16>,
    /// Packets sent.
    pub sent: u64,
    /// Intervals skipped (not synchronized, key missing, send error).
    pub skipped: u64,
    /// Why the last interval was skipped, if it was.
    pub last_problem: Option<String>,
}

/// What `mcast-server status --json` prints.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Status {
    /// Program version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Whether we vouch for our time.
    pub synchronized: bool,
    /// Why not, when not.
    pub unsynchronized_reason: Option<String>,
    /// Stratum advertised.
    pub stratum: Option<u8>,
    /// Each destination.
    pub destinations: Vec<DestinationStatus>,
    /// Responder counters (all receive threads together).
    pub counters: ResponderCounters,
    /// Sources remembered by the rate limiter.
    pub mru_entries: usize,
    /// The busiest sources.
    pub top_clients: Vec<ClientStatus>,
    /// Clients that keep polling by unicast after their calibration volley.
    pub unicast_polling_clients: Vec<PollerStatus>,
    /// The upstream daemon queried, when `kind = "upstream"`.
    #[serde(default)]
    pub upstream: Option<UpstreamReport>,
}

/// One source in the MRU table.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ClientStatus {
    /// Address.
    pub address: IpAddr,
    /// Packets.
    pub count: u64,
    /// Average interval, seconds.
    pub average_interval_s: Option<f64>,
    /// Seconds since last seen.
    pub last_seen_ago_s: f64,
    /// Mode of the last packet.
    pub mode: u8,
    /// Key id of the last packet.
    pub key_id: Option<u32>,
}

/// A client that fell back to unicast polling.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct PollerStatus {
    /// Address.
    pub address: IpAddr,
    /// Requests.
    pub requests: u32,
    /// Average interval between them, seconds.
    pub average_interval_s: f64,
    /// Seconds since the last one.
    pub last_request_ago_s: f64,
}

struct Shared {
    start: Instant,
    keys: RwLock<Arc<KeyStore>>,
    sync: RwLock<SyncStatus>,
    /// The one rate-limit table of the server, shared by every receive
    /// thread; each takes the lock once per batch of requests.
    mru: Mutex<Mru>,
    responder: ResponderConfig,
    /// Poll floor of KoD replies (the rate limit's average interval).
    kod_average_log2: u8,
    /// Counters of each receive loop, published once per batch.
    counters: Vec<Mutex<ResponderCounters>>,
    destinations: Mutex<Vec<DestinationStatus>>,
    upstream: Option<Arc<UpstreamCell>>,
}

impl Shared {
    fn mono(&self) -> Duration {
        self.start.elapsed()
    }

    fn keys(&self) -> Arc<KeyStore> {
        self.keys
            .read()
            .map(|k| Arc::clone(&k))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    fn sync(&self) -> SyncStatus {
        self.sync
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn status(&self) -> Status {
        let sync = self.sync();
        let now = self.mono();
        let secs = |d: Duration| d.as_secs_f64();
        let mut counters = ResponderCounters::default();
        for slot in &self.counters {
            counters.add(&lock(slot));
        }
        let (mru_entries, top, pollers) = {
            let mru = lock(&self.mru);
            let top = mru
                .top(10)
                .into_iter()
                .map(|e| ClientStatus {
                    address: e.addr,
                    count: e.count,
                    average_interval_s: e.average_interval().map(secs),
                    last_seen_ago_s: secs(now.saturating_sub(e.last_seen)),
                    mode: e.last_mode,
                    key_id: e.last_key_id,
                })
                .collect();
            let pollers = mru
                .unicast_pollers(now)
                .into_iter()
                .map(|p| PollerStatus {
                    address: p.addr,
                    requests: p.requests,
                    average_interval_s: secs(p.average_interval),
                    last_request_ago_s: secs(p.last_request_ago),
                })
                .collect();
            (mru.len(), top, pollers)
        };
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: secs(now),
            synchronized: sync.header().is_some(),
            unsynchronized_reason: match &sync {
                SyncStatus::Unsynchronized { reason } => Some(reason.clone()),
                SyncStatus::Synchronized(_) => None,
            },
            stratum: sync.header().map(|h| h.stratum),
            destinations: self
                .destinations
                .lock()
                .map(|d| d.clone())
                .unwrap_or_default(),
            counters,
            mru_entries,
            top_clients: top,
            unicast_polling_clients: pollers,
            upstream: self.upstream.as_ref().map(|u| u.report()),
        }
    }
}

/// A lock whose holder panicked is still usable: every value behind these
/// locks is valid after each single update.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ntp() -> NtpTimestamp {
    NtpTimestamp::from_system_time(RealClock::now())
}

/// The `upstream` time source of this process: its sans-I/O state, shared
/// by the query task (in [`sync_loop`]), `status` and [`current_sync`].
struct UpstreamCell {
    start: Instant,
    core: Mutex<Upstream>,
}

impl UpstreamCell {
    fn with<T>(&self, f: impl FnOnce(&mut Upstream, Duration) -> T) -> T {
        let now = self.start.elapsed();
        let mut core = self.core.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut core, now)
    }

    fn sync(&self) -> SyncStatus {
        self.with(|u, now| u.status(now))
    }

    fn report(&self) -> UpstreamReport {
        self.with(|u, now| u.report(now))
    }
}

/// The running upstream source, for [`current_sync`]: the broadcast tasks
/// read the time source through `current_sync(&config)` right before each
/// send (so the dispersion is grown to that moment), and one process runs
/// one server.
static UPSTREAM: RwLock<Option<Arc<UpstreamCell>>> = RwLock::new(None);

fn current_upstream() -> Option<Arc<UpstreamCell>> {
    UPSTREAM
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

fn current_sync(config: &ServerConfig) -> SyncStatus {
    let ts = &config.time_source;
    match ts.kind {
        TimeSourceKind::Local => timesource::local(ts, now_ntp()),
        TimeSourceKind::Kernel => match mcast_sys::kernel_time_status() {
            Ok(k) => timesource::kernel(
                ts,
                &timesource::KernelSync {
                    synchronized: k.synchronized,
                    maxerror: mcast_proto::NtpDuration::from_std(k.maxerror),
                    leap: mcast_proto::LeapIndicator::NoWarning,
                },
                now_ntp(),
            ),
            Err(e) => SyncStatus::Unsynchronized {
                reason: format!("cannot read the kernel's time status: {e}"),
            },
        },
        TimeSourceKind::Upstream => match current_upstream() {
            Some(u) => u.sync(),
            None => SyncStatus::Unsynchronized {
                reason: "the upstream query task is not running".into(),
            },
        },
    }
}

/// The socket the upstream task queries from, and the state it feeds.
struct UpstreamLink {
    cell: Arc<UpstreamCell>,
    ep: UdpEndpoint,
}

/// Opens the ephemeral query socket (connected to the upstream, kernel
/// receive and transmit timestamps on) and installs the upstream state
/// for [`current_sync`].
fn start_upstream(
    config: &ServerConfig,
    precision: Log2Seconds,
    start: Instant,
) -> Result<UpstreamLink, DaemonError> {
    let ts = &config.time_source;
    let addr = ts.upstream;
    let what = format!("time-source.upstream {addr}: query socket");
    let any = if addr.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let ep = UdpEndpoint::bind(SocketAddr::new(any, 0), &EndpointOptions::new())
        .map_err(io_err(what.clone()))?;
    ep.connect(addr).map_err(io_err(what.clone()))?;
    ep.enable_rx_metadata().map_err(io_err(what.clone()))?;
    if let Err(e) = ep.enable_tx_timestamps() {
        tracing::debug!("{what}: no kernel transmit timestamps ({e}); using the clock");
    }
    let cell = Arc::new(UpstreamCell {
        start,
        core: Mutex::new(Upstream::new(
            UpstreamConfig {
                address: addr,
                query_interval: ts.query_interval,
                precision,
            },
            start.elapsed(),
        )),
    });
    *UPSTREAM.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&cell));
    Ok(UpstreamLink { cell, ep })
}

/// A socket error in words.
fn describe(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        "connection refused: nothing listens on that address and port".into()
    } else {
        e.to_string()
    }
}

impl UpstreamLink {
    /// Waits for the next event (a query due, a datagram, the 1 s tick)
    /// and handles it.
    async fn step(&self, tick: &mut tokio::time::Interval, buf: &mut [u8]) {
        let due = self.cell.start + self.cell.with(|u, _| u.due());
        tokio::select! {
            _ = tick.tick() => {
                // An ICMP "port unreachable" for a query is a pending error.
                if let Ok(Some(e)) = self.ep.socket().take_error() {
                    self.cell.with(|u, _| u.socket_error(&describe(&e)));
                }
            }
            () = tokio::time::sleep_until(due) => self.query().await,
            r = self.ep.recv(buf) => match r {
                Ok(meta) => {
                    let t4 = NtpTimestamp::from_system_time(
                        meta.kernel_rx.unwrap_or_else(RealClock::now),
                    );
                    let bytes = buf.get(..meta.len).unwrap_or_default();
                    let v = self.cell.with(|u, now| u.on_reply(meta.source, bytes, t4, now));
                    match v {
                        Verdict::Accepted(s) => tracing::debug!(
                            stratum = s.header.stratum,
                            offset = %s.offset,
                            delay = %s.delay,
                            "upstream reply"
                        ),
                        Verdict::Refused(why) => tracing::debug!("upstream reply refused: {why}"),
                        Verdict::Ignored(why) => tracing::debug!("ignored a datagram: {why}"),
                    }
                }
                Err(e) => {
                    self.cell.with(|u, _| u.socket_error(&describe(&e)));
                    // Never spin on a socket that keeps failing.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }

    /// Sends one query: a random cookie as its transmit timestamp, T1 from
    /// the kernel's transmit timestamp when there is one.
    async fn query(&self) {
        let cookie = NtpTimestamp::from_bits(rand::random::<u64>().max(1));
        let t1 = now_ntp();
        let bytes = self.cell.with(|u, now| u.query(now, cookie, t1));
        let to = self.cell.with(|u, _| u.config().address);
        if let Err(e) = self.ep.send_to(&bytes, to).await {
            let why = format!("sending a query failed: {}", describe(&e));
            self.cell.with(|u, _| u.socket_error(&why));
            return;
        }
        // The oldest queued transmit timestamp not before our clock read is
        // this query's (an older one belongs to an earlier query).
        while let Ok(Some(tx)) = self
            .ep
            .take_tx_timestamp_within(Duration::from_millis(100))
            .await
        {
            let tx = NtpTimestamp::from_system_time(tx.time);
            if tx - t1 >= mcast_proto::NtpDuration::ZERO {
                self.cell.with(|u, _| u.transmitted(cookie, tx));
                break;
            }
        }
    }
}

/// The source address of an interface for a destination's family.
fn source_address(interface: &str, v6: bool) -> Result<IpAddr, DaemonError> {
    let addrs = mcast_sys::interface_addresses(interface)
        .map_err(io_err(format!("interface {interface}")))?;
    addrs
        .into_iter()
        .find(|a| a.is_ipv6() == v6)
        .ok_or_else(|| {
            let fam = if v6 { "IPv6" } else { "IPv4" };
            DaemonError::Config(format!(
                "interface {interface} has no {fam} address to send from"
            ))
        })
}

/// A thread of its own with a single-threaded tokio runtime. Sockets are
/// registered with the runtime (bound inside [`ThreadRuntime::enter`])
/// before the thread starts, so that all of them are open before the
/// server drops its privileges.
struct ThreadRuntime {
    name: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ThreadRuntime {
    fn new(name: impl Into<String>) -> Result<Self, DaemonError> {
        let name = name.into();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err(format!("runtime of thread {name}")))?;
        Ok(ThreadRuntime {
            name,
            runtime: Some(runtime),
        })
    }

    /// Makes this runtime the current one (for `UdpEndpoint::bind`).
    fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.runtime.as_ref().map(tokio::runtime::Runtime::enter)
    }

    /// Starts the thread, running the tasks `tasks` makes until all end;
    /// `ended` hears of it when they do.
    fn start<F>(
        mut self,
        tasks: impl FnOnce() -> Vec<F> + Send + 'static,
        ended: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<(), DaemonError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        let name = self.name.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut set = tokio::task::JoinSet::new();
                    for task in tasks() {
                        set.spawn(task);
                    }
                    while set.join_next().await.is_some() {}
                });
                let _ = ended.send(name);
            })
            .map(drop)
            .map_err(io_err(format!("start thread {}", self.name)))
    }
}

impl Drop for ThreadRuntime {
    fn drop(&mut self) {
        // Not started (an error before): dropping a runtime inside the main
        // runtime's context would panic; this form does not block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Addresses the responder answers on: each destination's source address
/// (so calibration goes to the address broadcasts come from), or, without
/// destinations, the IPv4 and IPv6 wildcard addresses.
fn responder_addresses(senders: &[Sender]) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for s in senders {
        if !addrs.contains(&s.local) {
            addrs.push(s.local);
        }
    }
    addrs
}

/// One destination's broadcasts: socket, status slot, schedule.
struct Sender {
    index: usize,
    local: SocketAddr,
    ep: Arc<UdpEndpoint>,
    dest: SocketAddr,
    broadcaster: Broadcaster,
    status: DestinationStatus,
}

/// Opens the broadcast socket of destination `i` on the current runtime:
/// bound to the interface's address and the NTP port (broadcasts leave from
/// the address clients calibrate with), and *connected* to the destination,
/// so it never receives a request: requests go to the responder's
/// `SO_REUSEPORT` sockets on the same address, and the error queue holds
/// only this destination's transmit timestamps (interleaved mode).
fn open_sender(
    config: &ServerConfig,
    i: usize,
    precision: Log2Seconds,
    start: Duration,
) -> Result<Sender, DaemonError> {
    let Some(d) = config.destinations.get(i) else {
        return Err(DaemonError::Config(format!("no destination[{i}]")));
    };
    let v6 = d.address.is_ipv6();
    let ifindex = mcast_sys::interface_index(&d.interface).map_err(io_err(format!(
        "destination[{i}]: interface {}",
        d.interface
    )))?;
    let src = source_address(&d.interface, v6)?;
    let local = SocketAddr::new(src, config.port);
    let dest = SocketAddr::new(d.address, config.port);
    let opts = EndpointOptions::new().reuse_addr(true);
    let ep = UdpEndpoint::bind(local, &opts).map_err(io_err(format!(
        "destination[{i}]: bind {src} port {}",
        config.port
    )))?;
    let what = format!("destination[{i}]: socket options");
    if v6 {
        ep.set_multicast_if_v6(ifindex)
            .map_err(io_err(what.clone()))?;
        ep.set_multicast_hops_v6(u32::from(d.ttl))
            .map_err(io_err(what.clone()))?;
    } else {
        ep.set_multicast_if_v4_index(ifindex)
            .map_err(io_err(what.clone()))?;
        ep.set_multicast_ttl_v4(u32::from(d.ttl))
            .map_err(io_err(what.clone()))?;
        ep.set_broadcast(d.broadcast)
            .map_err(io_err(what.clone()))?;
        ep.set_tos(TOS_EF).map_err(io_err(what.clone()))?;
    }
    ep.set_multicast_loop(d.multicast_loop)
        .map_err(io_err(what.clone()))?;
    if d.interleave {
        ep.enable_tx_timestamps().map_err(io_err(what))?;
    }
    ep.socket()
        .connect(&dest.into())
        .map_err(io_err(format!("destination[{i}]: connect to {dest}")))?;
    let poll = i8::try_from(d.poll.log2()).unwrap_or(6);
    let broadcaster = Broadcaster::new(
        BroadcastConfig {
            poll: Log2Seconds(poll),
            key: d.key,
            interleave: d.interleave,
            send_when_unsynchronized: config.time_source.unsynchronized
                == Unsynchronized::SendAlarm,
            precision,
        },
        start,
    );
    Ok(Sender {
        index: i,
        local,
        ep: Arc::new(ep),
        dest,
        broadcaster,
        status: DestinationStatus {
            address: d.address,
            interface: d.interface.clone(),
            source: src,
            poll,
            key: d.key.map(|k| k.get()),
            sent: 0,
            skipped: 0,
            last_problem: None,
        },
    })
}

/// Opens one responder socket on `addr` for the current runtime:
/// `SO_REUSEPORT`, so each receive thread has its own and the kernel
/// spreads clients among them (a client's requests, same address and
/// port, always reach the same one).
fn open_responder_socket(addr: SocketAddr) -> std::io::Result<UdpEndpoint> {
    let opts = EndpointOptions::new()
        .reuse_addr(true)
        .reuse_port(true)
        .v6_only(true);
    let ep = UdpEndpoint::bind(addr, &opts)?;
    if addr.ip().is_unspecified() {
        // Replies must leave from each request's destination address.
        ep.enable_rx_metadata()?;
    } else {
        // Every request's destination is the bound address, which replies
        // leave from anyway: no IP_PKTINFO either way, just timestamps.
        ep.enable_rx_timestamps()?;
    }
    ep.set_tos(TOS_EF)?;
    Ok(ep)
}

/// Runs the server until SIGTERM or SIGINT.
///
/// Threads: the main runtime (signals, control socket, time source); one
/// thread for all broadcasts, so that no load on the responder can delay
/// them; and `responder.workers` receive threads, each with its own socket
/// on every responder address, receiving and answering requests in batches
/// of up to [`mcast_sys::MAX_BATCH`].
pub async fn run(config: ServerConfig, keys: KeyStore) -> Result<(), DaemonError> {
    let precision = Log2Seconds(mcast_sys::measure_precision(64));
    let start = Instant::now();

    let broadcast_rt = ThreadRuntime::new("mcast-broadcast")?;
    let mut senders = Vec::new();
    {
        let _in_rt = broadcast_rt.enter();
        for i in 0..config.destinations.len() {
            senders.push(open_sender(&config, i, precision, start.elapsed())?);
        }
    }

    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let workers = if config.responder.enabled {
        config.responder.workers_for(cpus)
    } else {
        0
    };
    let mut worker_rts = Vec::new();
    // Per worker, its sockets.
    let mut worker_eps: Vec<Vec<Arc<UdpEndpoint>>> = Vec::new();
    let addrs = if senders.is_empty() {
        vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), config.port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), config.port),
        ]
    } else {
        responder_addresses(&senders)
    };
    for w in 0..workers {
        let rt = ThreadRuntime::new(format!("mcast-resp-{w}"))?;
        let mut eps = Vec::new();
        {
            let _in_rt = rt.enter();
            for addr in &addrs {
                match open_responder_socket(*addr) {
                    Ok(ep) => eps.push(Arc::new(ep)),
                    // A host without IPv6 still answers IPv4 (wildcard
                    // sockets of a responder-only server).
                    Err(e) if senders.is_empty() && addr.is_ipv6() => {
                        if w == 0 {
                            tracing::info!("no IPv6 responder socket ({e}); answering IPv4 only");
                        }
                    }
                    Err(e) => {
                        return Err(DaemonError::Io {
                            what: format!("responder: bind {addr}"),
                            source: e,
                        });
                    }
                }
            }
        }
        worker_rts.push(rt);
        worker_eps.push(eps);
    }

    let rate = &config.rate_limit;
    let mru = Mru::new(RateLimitConfig {
        min_interval: rate.min_interval,
        average_log2: rate.average_interval_log2,
        capacity: rate.mru_size,
        kod: rate.kod,
        ..RateLimitConfig::default()
    });
    let loops: usize = worker_eps.iter().map(Vec::len).sum();
    let upstream = match config.time_source.kind {
        TimeSourceKind::Upstream => Some(start_upstream(&config, precision, start)?),
        TimeSourceKind::Kernel | TimeSourceKind::Local => None,
    };
    let shared = Arc::new(Shared {
        start,
        keys: RwLock::new(Arc::new(keys)),
        sync: RwLock::new(current_sync(&config)),
        mru: Mutex::new(mru),
        responder: ResponderConfig {
            require_auth: config.responder.require_auth,
            precision,
        },
        kod_average_log2: rate.average_interval_log2,
        counters: (0..loops)
            .map(|_| Mutex::new(ResponderCounters::default()))
            .collect(),
        destinations: Mutex::new(senders.iter().map(|s| s.status.clone()).collect()),
        upstream: upstream.as_ref().map(|u| Arc::clone(&u.cell)),
    });

    let control = mcast_sys::bind_control(&config.control_socket).map_err(io_err(format!(
        "control socket {}",
        config.control_socket.display()
    )))?;
    if let Some(user) = &config.user {
        // Every socket is bound: the server needs no capability any more.
        let p = mcast_sys::drop_privileges(Some(user), &[])
            .map_err(|e| DaemonError::Config(format!("user {user}: {e}")))?;
        tracing::info!(user, uid = p.uid, gid = p.gid, "dropped privileges");
    }

    let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
    let mut slot = 0;
    for (rt, eps) in worker_rts.into_iter().zip(worker_eps) {
        let first = slot;
        slot += eps.len();
        let shared = Arc::clone(&shared);
        rt.start(
            move || {
                eps.into_iter()
                    .enumerate()
                    .map(|(k, ep)| responder_loop(Arc::clone(&shared), ep, first + k))
                    .collect()
            },
            ended_tx.clone(),
        )?;
    }
    {
        let shared = Arc::clone(&shared);
        let config = config.clone();
        broadcast_rt.start(
            move || {
                senders
                    .into_iter()
                    .map(|s| {
                        broadcast_loop(
                            Arc::clone(&shared),
                            config.clone(),
                            s.index,
                            s.ep,
                            s.dest,
                            s.broadcaster,
                        )
                    })
                    .collect()
            },
            ended_tx.clone(),
        )?;
    }
    tracing::info!(
        destinations = config.destinations.len(),
        port = config.port,
        precision = precision.0,
        workers,
        "mcast-server running"
    );

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(sync_loop(Arc::clone(&shared), config.clone(), upstream));
    let for_control = Arc::clone(&shared);
    tasks.spawn(mcast_sys::serve_control(
        control,
        Arc::new(move |command: &str| match command {
            "status" => serde_json::to_string(&for_control.status()).unwrap_or_default(),
            other => {
                serde_json::json!({ "error": format!("unknown command {other:?}") }).to_string()
            }
        }),
    ));

    let result = tokio::select! {
        r = wait_for_signals(&shared, &config) => r,
        Some(name) = ended.recv() => Err(DaemonError::Config(format!(
            "thread {name} stopped unexpectedly"
        ))),
    };
    tasks.abort_all();
    let _ = std::fs::remove_file(&config.control_socket);
    tracing::info!("mcast-server stopped");
    result
}

async fn wait_for_signals(shared: &Shared, config: &ServerConfig) -> Result<(), DaemonError> {
    mcast_sys::wait_for_stop(|| match config.load_keys() {
        Ok(k) => {
            tracing::info!(keys = %k.path().display(), count = k.len(), "SIGHUP: keys reloaded");
            if let Ok(mut slot) = shared.keys.write() {
                *slot = Arc::new(k);
            }
        }
        Err(e) => tracing::error!("SIGHUP: keeping the old keys: {e}"),
    })
    .await
    .map_err(io_err("signal handlers"))
}

/// Keeps `shared.sync` current (every second, and after every upstream
/// event) and logs each change of synchronization, stratum, leap warning
/// or reason. With an upstream source it also runs the queries.
async fn sync_loop(shared: Arc<Shared>, config: ServerConfig, upstream: Option<UpstreamLink>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    let mut last_logged = None;
    loop {
        match &upstream {
            Some(link) => link.step(&mut tick, &mut buf).await,
            None => {
                tick.tick().await;
            }
        }
        let s = current_sync(&config);
        let key = match &s {
            SyncStatus::Synchronized(h) => (true, h.stratum, h.leap.to_bits(), String::new()),
            SyncStatus::Unsynchronized { reason } => (false, 16, 3, reason.clone()),
        };
        if last_logged.as_ref() != Some(&key) {
            match &s {
                SyncStatus::Synchronized(h) => tracing::info!(
                    stratum = h.stratum,
                    refid = %h.reference_id.display(h.stratum),
                    leap = h.leap.to_bits(),
                    "time source synchronized"
                ),
                SyncStatus::Unsynchronized { reason } => {
                    tracing::warn!("not synchronized: {reason}")
                }
            }
            last_logged = Some(key);
        }
        if let Ok(mut slot) = shared.sync.write() {
            *slot = s;
        }
    }
}

async fn broadcast_loop(
    shared: Arc<Shared>,
    config: ServerConfig,
    index: usize,
    ep: Arc<UdpEndpoint>,
    dest: SocketAddr,
    mut b: Broadcaster,
) {
    let mut buf = Vec::with_capacity(72);
    loop {
        tokio::time::sleep_until(shared.start + b.due()).await;
        // Fresh state right before the send.
        let sync = current_sync(&config);
        let keys = shared.keys();
        let problem = match b.build(&sync, &keys, now_ntp, &mut buf) {
            Build::Send => match ep.send_to(&buf, dest).await {
                Ok(_) => None,
                Err(e) => Some(format!("send to {dest} failed: {e}")),
            },
            Build::Silent(why) => Some(why),
        };
        let kernel_tx = if b.config().interleave && problem.is_none() {
            ep.take_tx_timestamp()
                .await
                .ok()
                .flatten()
                .map(NtpTimestamp::from_system_time)
        } else {
            None
        };
        b.advance(
            shared.mono(),
            problem.is_none(),
            rand::random::<u16>(),
            kernel_tx,
        );
        if let Some(p) = &problem {
            tracing::warn!(destination = %dest, "skipped a broadcast: {p}");
        }
        if let Ok(mut list) = shared.destinations.lock()
            && let Some(d) = list.get_mut(index)
        {
            d.sent = b.sent();
            d.skipped = b.silent_intervals();
            d.last_problem = problem;
        }
    }
}

/// Datagram buffer per request: larger requests are cut (and then fail to
/// parse or verify).
const MAX_REQUEST: usize = 2048;

/// One receive loop: a batch of requests per `recvmmsg`, the shared rate
/// limiter locked once per batch, MAC checks and signing outside that
/// lock, and all replies in one `sendmmsg`, each from the address its
/// request was sent to. Its counters go to `shared.counters[slot]`.
async fn responder_loop(shared: Arc<Shared>, ep: Arc<UdpEndpoint>, slot: usize) {
    let mut rx = RecvBatch::new(mcast_sys::MAX_BATCH, MAX_REQUEST);
    let mut tx = SendBatch::new(mcast_sys::MAX_BATCH);
    let mut answerer = Answerer::new(shared.responder, shared.kod_average_log2);
    let mut parsed: Vec<Option<Datagram>> = Vec::with_capacity(mcast_sys::MAX_BATCH);
    let mut verdicts: Vec<RateVerdict> = Vec::with_capacity(mcast_sys::MAX_BATCH);
    loop {
        if let Err(e) = ep.recv_batch(&mut rx).await {
            tracing::debug!("receive error: {e}");
            continue;
        }
        let monotonic = shared.mono();
        let sync = shared.sync();
        let keys = shared.keys();
        let request = |meta: &RecvMeta, bytes| Request {
            bytes,
            source: meta.source,
            received_at: NtpTimestamp::from_system_time(
                meta.kernel_rx.unwrap_or_else(RealClock::now),
            ),
            monotonic,
        };
        parsed.clear();
        parsed.extend(
            rx.iter()
                .map(|(meta, bytes)| answerer.parse(&request(meta, bytes))),
        );
        verdicts.clear();
        {
            let mut mru = lock(&shared.mru);
            for ((meta, bytes), d) in rx.iter().zip(&parsed) {
                verdicts.push(match d {
                    Some(d) => observe(&mut mru, &request(meta, bytes), d),
                    None => RateVerdict::Allowed,
                });
            }
        }
        tx.clear();
        for (((meta, bytes), d), rate) in rx.iter().zip(&parsed).zip(&verdicts) {
            let (Some(d), Some(out)) = (d, tx.next_payload()) else {
                continue;
            };
            let req = request(meta, bytes);
            if let Outcome::Reply(_) = answerer.answer(&req, d, *rate, &sync, &keys, now_ntp, out) {
                // From the address the request went to (known on wildcard
                // sockets only; the others are bound to it); a request to
                // a group (a wildcard socket sees those) is answered from
                // whatever address routing picks.
                let from = meta.dest.filter(|ip| !ip.is_multicast());
                if let Err(e) = tx.commit(meta.source, from) {
                    tracing::debug!(to = %meta.source, "reply not queued: {e}");
                }
            }
        }
        if let Some(c) = shared.counters.get(slot) {
            *lock(c) = *answerer.counters();
        }
        if !tx.is_empty() {
            let sent = ep.send_batch(&tx).await;
            if let Some(e) = sent.last_error {
                tracing::debug!(failed = sent.failed, "replies not sent: {e}");
            }
        }
    }
}

/// Asks a running server for its status over the control socket.
pub fn query_status(socket: &std::path::Path) -> std::io::Result<Status> {
    let text = mcast_sys::control_request(socket, "status")?;
    serde_json::from_str(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Human-readable status, like `ntpq -c sysstats` plus the destinations.
pub fn format_status(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "mcast-server {} up {:.0} s", s.version, s.uptime_s);
    match (&s.unsynchronized_reason, s.stratum) {
        (None, Some(st)) => {
            let _ = writeln!(o, "synchronized, stratum {st}");
        }
        (Some(r), _) => {
            let _ = writeln!(o, "NOT synchronized: {r}");
        }
        _ => {}
    }
    if let Some(u) = &s.upstream {
        let addr = u.address.map_or_else(|| "?".to_string(), |a| a.to_string());
        let _ = write!(
            o,
            "upstream {addr}: {} queries, {} replies, every {:.0} s",
            u.queries, u.replies, u.query_interval_s
        );
        match (u.last_reply_ago_s, u.stratum, u.offset_s, u.delay_s) {
            (Some(age), Some(st), Some(off), Some(delay)) => {
                let _ = writeln!(
                    o,
                    "; last usable reply {age:.0} s ago: stratum {st}, offset {:+.6} s, \
                     delay {:.6} s",
                    off, delay
                );
            }
            _ => {
                let _ = writeln!(o, "; no usable reply yet");
            }
        }
        if let Some(p) = &u.last_problem {
            let _ = writeln!(o, "  last problem: {p}");
        }
    }
    let _ = writeln!(
        o,
        "\n{:<24} {:<10} {:<18} {:>4} {:>4} {:>8} {:>8}  problem",
        "destination", "interface", "source", "poll", "key", "sent", "skipped"
    );
    for d in &s.destinations {
        let key = d.key.map_or("-".to_string(), |k| k.to_string());
        let _ = writeln!(
            o,
            "{:<24} {:<10} {:<18} {:>4} {:>4} {:>8} {:>8}  {}",
            d.address.to_string(),
            d.interface,
            d.source.to_string(),
            d.poll,
            key,
            d.sent,
            d.skipped,
            d.last_problem.as_deref().unwrap_or("")
        );
    }
    let c = &s.counters;
    let rows: BTreeMap<usize, (&str, u64)> = [
        ("packets received", c.received),
        ("current version", c.current_version),
        ("older version", c.older_version),
        ("bad length or format", c.bad_format),
        ("authentication failed", c.auth_failed),
        ("declined", c.declined),
        ("restricted", c.restricted),
        ("rate limited", c.rate_limited),
        ("KoD responses", c.kod_sent),
        ("replies sent", c.replies_sent),
        ("crypto-NAKs sent", c.crypto_naks_sent),
    ]
    .into_iter()
    .enumerate()
    .collect();
    let _ = writeln!(o);
    for (label, n) in rows.values() {
        let _ = writeln!(o, "{:<24} {n}", format!("{label}:"));
    }
    let _ = writeln!(o, "{:<24} {}", "sources remembered:", s.mru_entries);
    if !s.unicast_polling_clients.is_empty() {
        let _ = writeln!(o, "\nclients polling by unicast after their volley:");
        for p in &s.unicast_polling_clients {
            let _ = writeln!(
                o,
                "  {:<40} {:>6} requests, every {:.0} s, last {:.0} s ago",
                p.address.to_string(),
                p.requests,
                p.average_interval_s,
                p.last_request_ago_s
            );
        }
    }
    if !s.top_clients.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<40} {:>8} {:>8} {:>8} {:>4} {:>5}",
            "top sources", "count", "avgint", "lstint", "mode", "key"
        );
        for t in &s.top_clients {
            let _ = writeln!(
                o,
                "{:<40} {:>8} {:>8} {:>8.0} {:>4} {:>5}",
                t.address.to_string(),
                t.count,
                t.average_interval_s
                    .map_or("-".to_string(), |a| format!("{a:.0}")),
                t.last_seen_ago_s,
                t.mode,
                t.key_id.map_or("-".to_string(), |k| k.to_string())
            );
        }
    }
    o
}
