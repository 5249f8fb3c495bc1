//! The I/O shell of `mcast-server run`: sockets, timers, signals and the
//! control socket around the sans-I/O [`Broadcaster`] and the responder's
//! [`Answerer`]s.

mod loops;
mod sockets;
mod threads;
mod upstream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcast_config::{ServerConfig, TimeSourceKind};
use mcast_core::server::ratelimit::Mru;
use mcast_core::server::responder::{ResponderConfig, ResponderCounters};
use mcast_core::server::status::{
    ClientStatus, DestinationStatus, PollerStatus, SCHEMA_VERSION, Status,
};
use mcast_core::server::sync::SyncStatus;
use mcast_keys::KeyStore;
use mcast_proto::{Log2Seconds, NtpTimestamp};
use mcast_sys::{RealClock, UdpEndpoint};
use tokio::time::Instant;

use loops::{broadcast_loop, responder_loop, sync_loop};
use sockets::{open_responder_socket, open_sender, responder_addresses};
use threads::ThreadRuntime;
use upstream::{UpstreamCell, current_sync, start_upstream};

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

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

pub(crate) struct Shared {
    start: Instant,
    keys: RwLock<Arc<KeyStore>>,
    sync: RwLock<SyncStatus>,
    /// The one rate-limit table of the server, shared by every receive
    /// thread; each takes the lock once per batch of requests.
    mru: Mutex<Mru>,
    responder: ResponderConfig,
    /// Poll floor of KoD replies (the rate limit's average interval).
    kod_average_log2: u8,
    /// The destinations' signing keys: a calibration request that names
    /// one's fingerprint gets a reply signed with it.
    signers: Vec<Arc<mcast_keys::signed::ServerKey>>,
    /// Counters of each receive loop, published once per batch.
    counters: Vec<Mutex<ResponderCounters>>,
    destinations: Mutex<Vec<DestinationStatus>>,
    upstream: Option<Arc<UpstreamCell>>,
    /// The directed broadcast addresses of this host's interfaces (read at
    /// start and every 30 s): requests sent to one are dropped.
    broadcasts: RwLock<Arc<Vec<IpAddr>>>,
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

    fn broadcast_addresses(&self) -> Arc<Vec<IpAddr>> {
        self.broadcasts
            .read()
            .map(|b| Arc::clone(&b))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    fn refresh_broadcast_addresses(&self) {
        match mcast_sys::interface_broadcast_addresses() {
            Ok(list) => {
                if let Ok(mut slot) = self.broadcasts.write() {
                    *slot = Arc::new(list);
                }
            }
            Err(e) => tracing::debug!("cannot list the interfaces' broadcast addresses: {e}"),
        }
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
            schema: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: secs(now),
            synchronized: sync.header().is_some(),
            unsynchronized: match &sync {
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
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn now_ntp() -> NtpTimestamp {
    NtpTimestamp::from_system_time(RealClock::now())
}

/// Runs the server until SIGTERM or SIGINT.
///
/// Threads: the main runtime (signals, control socket, time source); one
/// thread for all broadcasts, so that no load on the responder can delay
/// them; and `responder.workers` receive threads, each with its own socket
/// on every responder address, receiving and answering requests in batches
/// of up to [`mcast_sys::MAX_BATCH`].
///
/// Must run on a single-threaded runtime (`mcast_sys::run_daemon_single_threaded`):
/// the sockets are bound and the privileges dropped while the process has
/// only the calling thread, and only then are the broadcast and receive
/// threads started, so that every thread holds the dropped capability sets
/// (capabilities, and the bounding set, are per thread on Linux); the
/// result is checked for every thread through `/proc/self/task`.
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

    let mru = Mru::new(crate::settings::rate_limit(&config));
    // Each distinct signing key once: a calibration request names the one
    // it wants by fingerprint.
    let mut signers: Vec<Arc<mcast_keys::signed::ServerKey>> = Vec::new();
    for k in senders.iter().filter_map(|s| s.broadcaster.signer()) {
        if !signers.iter().any(|have| have.public() == k.public()) {
            signers.push(Arc::clone(k));
        }
    }
    let loops: usize = worker_eps.iter().map(Vec::len).sum();
    let upstream = match config.time_source.kind {
        TimeSourceKind::Upstream => Some(start_upstream(&config, precision, start)?),
        TimeSourceKind::Kernel | TimeSourceKind::Local => None,
    };
    let shared = Arc::new(Shared {
        start,
        keys: RwLock::new(Arc::new(keys)),
        sync: RwLock::new(current_sync(&config, upstream.as_ref().map(|u| &*u.cell))),
        mru: Mutex::new(mru),
        responder: ResponderConfig {
            require_auth: config.responder.require_auth,
            precision,
        },
        kod_average_log2: config.rate_limit.average_interval_log2,
        signers,
        counters: (0..loops)
            .map(|_| Mutex::new(ResponderCounters::default()))
            .collect(),
        destinations: Mutex::new(senders.iter().map(|s| s.status.clone()).collect()),
        upstream: upstream.as_ref().map(|u| Arc::clone(&u.cell)),
        broadcasts: RwLock::new(Arc::new(Vec::new())),
    });
    shared.refresh_broadcast_addresses();

    let control = mcast_sys::bind_control(&config.control_socket).map_err(io_err(format!(
        "control socket {}",
        config.control_socket.display()
    )))?;
    let metrics = match config.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io_err(format!("metrics address {addr}")))?,
        ),
        None => None,
    };
    if let Some(user) = &config.user {
        // Every socket is bound: the server needs no capability any more.
        // The process has one thread here (the main runtime runs on this
        // thread; the broadcast and receive threads start below), so the
        // drop, per thread on Linux, holds for every thread: each one
        // starts with this thread's dropped sets (see mcast_sys::privileges).
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
    // A responder-only server has no broadcast thread: a thread whose
    // tasks all ended would be taken for one that stopped unexpectedly.
    if !senders.is_empty() {
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
    // Every thread is running: none may hold what this one gave up.
    let threads = mcast_sys::check_every_thread()
        .map_err(|e| DaemonError::Config(format!("privileges: {e}")))?;
    tracing::debug!(
        threads,
        "every thread holds no more capabilities than the main one"
    );
    tracing::info!(
        destinations = config.destinations.len(),
        port = config.port,
        precision = precision.0,
        workers,
        "mcast-server running"
    );

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(sync_loop(Arc::clone(&shared), config.clone(), upstream));
    if let Some(listener) = metrics {
        let for_metrics = Arc::clone(&shared);
        tasks.spawn(mcast_sys::serve_metrics(
            listener,
            Arc::new(move || crate::metrics::format_metrics(&for_metrics.status())),
        ));
    }
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
    mcast_sys::wait_for_stop(|| {
        crate::cli::reload_log_level(config.file());
        reload_keys(shared, config);
    })
    .await
    .map_err(io_err("signal handlers"))
}

fn reload_keys(shared: &Shared, config: &ServerConfig) {
    match config.load_keys() {
        Ok(k) => {
            tracing::info!(keys = %k.path().display(), count = k.len(), "SIGHUP: keys reloaded");
            if let Ok(mut slot) = shared.keys.write() {
                *slot = Arc::new(k);
            }
        }
        Err(e) => tracing::error!("SIGHUP: keeping the old keys: {e}"),
    }
}
