//! The I/O shell of `mcast-client run`: multicast and calibration sockets,
//! the timer, interface supervision, clock control and the control socket
//! around the sans-I/O [`ClientCore`].

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mcast_config::{ClientConfig, ClockMode as ConfigClockMode};
use mcast_keys::KeyStore;
use mcast_proto::{Log2Seconds, NtpTimestamp};
use mcast_sys::{EndpointOptions, RealClock, UdpEndpoint};
use tokio::time::Instant;

use mcast_core::client::discipline::{Clock, Decision};
use mcast_core::client::engine::{Action, ClientCore, Event, Incoming};

use crate::calsock::{CalPair, CalSocket, CalSockets};
use crate::clock::{MonitorOnly, SystemClock};
use crate::control;
use crate::settings::core_config;

/// Why the daemon could not start.
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
    /// Privileges could not be dropped, or the clock mode needs a
    /// capability the process does not have.
    #[error("{0}")]
    Privileges(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

struct Shared {
    start: Instant,
    /// `CLOCK_MONOTONIC` read just before `start` (for ClockBound's
    /// segment, whose times are on that clock).
    mono_base: Duration,
    core: Mutex<ClientCore>,
    clock_mode: ConfigClockMode,
    /// The calibration sockets (a fresh port per burst unless fixed).
    cal: CalSockets,
    /// Repeated log lines held back.
    repeats: Mutex<crate::repeats::Repeats>,
    /// The group sockets, for re-joins.
    listeners: Vec<Arc<Listener>>,
}

impl Shared {
    fn mono(&self) -> Duration {
        self.start.elapsed()
    }

    /// The clock the core is given: the system clock in slew and step
    /// modes; in monitor mode one that refuses every change (the core never
    /// asks it to, this makes sure).
    fn clock(&self) -> Box<dyn Clock + Send> {
        match self.clock_mode {
            ConfigClockMode::Monitor => Box::new(MonitorOnly),
            ConfigClockMode::Slew | ConfigClockMode::Step => Box::new(SystemClock),
        }
    }
}

pub(crate) fn now_ntp() -> NtpTimestamp {
    NtpTimestamp::from_system_time(RealClock::now())
}

/// A multicast (or broadcast) listening socket and what it is bound to.
struct Listener {
    ep: Arc<UdpEndpoint>,
    group: IpAddr,
    interface: String,
    ifindex: Mutex<u32>,
}

/// Opens a socket that receives what is sent to `group` (a multicast group,
/// or with `broadcast` an IPv4 broadcast address) on port `port`, joined on
/// `interface` by index, with arrival metadata (kernel receive timestamp,
/// arrival interface) on. Returns it with the interface index it joined on.
/// Used by `run` for each `[[listen]]` entry and by `listen`.
pub fn open_group_socket(
    group: IpAddr,
    interface: &str,
    port: u16,
    broadcast: bool,
) -> Result<(UdpEndpoint, u32), DaemonError> {
    // The system error names the interface.
    let ifindex =
        mcast_sys::interface_index(interface).map_err(io_err(format!("group {group}")))?;
    let opts = EndpointOptions::new().reuse_addr(true).reuse_port(true);
    let ep = UdpEndpoint::bind(SocketAddr::new(group, port), &opts)
        .map_err(io_err(format!("bind {group} port {port}")))?;
    ep.enable_rx_metadata()
        .map_err(io_err("receive metadata"))?;
    if !broadcast {
        match group {
            IpAddr::V4(g) => {
                ep.set_multicast_all_v4(false)
                    .map_err(io_err("IP_MULTICAST_ALL"))?;
                ep.join_v4(g, ifindex)
                    .map_err(io_err(format!("join {g} on {interface}")))?;
            }
            IpAddr::V6(g) => {
                ep.set_multicast_all_v4(false)
                    .map_err(io_err("IPV6_MULTICAST_ALL"))?;
                ep.join_v6(g, ifindex)
                    .map_err(io_err(format!("join {g} on {interface}")))?;
            }
        }
    } else {
        ep.set_broadcast(true).map_err(io_err("SO_BROADCAST"))?;
    }
    Ok((ep, ifindex))
}

fn open_listener(
    group: IpAddr,
    interface: &str,
    port: u16,
    broadcast: bool,
) -> Result<Listener, DaemonError> {
    let (ep, ifindex) = open_group_socket(group, interface, port, broadcast)?;
    Ok(Listener {
        ep: Arc::new(ep),
        group,
        interface: interface.to_string(),
        ifindex: Mutex::new(ifindex),
    })
}

/// Runs the client until SIGTERM or SIGINT.
pub async fn run(config: ClientConfig, keys: KeyStore) -> Result<(), DaemonError> {
    let precision = Log2Seconds(mcast_sys::measure_precision(64));
    let mut core = ClientCore::new(core_config(&config, precision), keys);
    // Before the joins, so their reports already speak that version.
    crate::igmp::apply_versions(&config.listen);
    let mut listeners = Vec::new();
    for l in &config.listen {
        listeners.push(Arc::new(open_listener(
            l.group,
            &l.interface,
            config.port,
            l.broadcast,
        )?));
    }
    let state_dir = crate::state::directory(config.state_directory.as_deref());
    if let Some(dir) = &state_dir {
        let _ = std::fs::create_dir_all(dir);
        crate::state::load(dir, &mut core);
    }
    let cal_port = config.calibration.source_port;
    let (cal, first_pair) = CalSockets::open(cal_port)
        .map_err(io_err(format!("calibration socket, port {cal_port}")))?;
    if cal.is_fixed() {
        core.set_calibration_port(first_pair.port);
    }
    let local_port = cal.is_fixed().then_some(first_pair.port);

    let mode_name = format!("{:?}", config.clock.mode).to_lowercase();
    let bound_writer = match config.clock_bound.enabled {
        true => Some(
            crate::clockbound::Writer::create(&config.clock_bound.path).map_err(io_err(
                format!(
                    "ClockBound segment {} ([clock-bound] path)",
                    config.clock_bound.path.display()
                ),
            ))?,
        ),
        false => None,
    };
    let mono_base = mcast_sys::RealClock::monotonic_now();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        mono_base,
        core: Mutex::new(core),
        clock_mode: config.clock.mode,
        cal,
        repeats: Mutex::new(crate::repeats::Repeats::new()),
        listeners: listeners.clone(),
    });
    let control = mcast_sys::bind_control(&config.control_socket).map_err(io_err(format!(
        "control socket {}",
        config.control_socket.display()
    )))?;
    let operations_path = config.operations_socket();
    let operations = mcast_sys::bind_private(&operations_path).map_err(io_err(format!(
        "operations socket {}",
        operations_path.display()
    )))?;
    // Root, and whoever started the client, may change what it does; the
    // user it switches to (often shared with other daemons) may not.
    let operator = mcast_sys::real_uid();
    let metrics = match config.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io_err(format!("metrics address {addr}")))?,
        ),
        None => None,
    };
    drop_privileges(&config)?;
    tracing::info!(
        servers = config.servers.len(),
        listen = config.listen.len(),
        calibration_port = local_port.map_or("fresh per volley".to_string(), |p| p.to_string()),
        clock = %mode_name,
        "mcast-client running"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for l in &listeners {
        tasks.spawn(listen_loop(Arc::clone(&shared), Arc::clone(l)));
        tasks.spawn(supervise_interface(Arc::clone(l)));
    }
    spawn_reply_loops(&shared, &first_pair);
    tasks.spawn(tick_loop(Arc::clone(&shared)));
    if let Some(listener) = metrics {
        let for_metrics = Arc::clone(&shared);
        tasks.spawn(mcast_sys::serve_metrics(
            listener,
            Arc::new(move || control::metrics_text(&for_metrics.core, for_metrics.mono())),
        ));
    }
    let for_control = Arc::clone(&shared);
    let ops_shown = operations_path.display().to_string();
    tasks.spawn(mcast_sys::serve_control(
        control,
        Arc::new(move |command: &str| {
            control::control_command(&for_control.core, for_control.mono(), command, &ops_shown)
        }),
    ));
    let for_operations = Arc::clone(&shared);
    tasks.spawn(mcast_sys::serve_control_with_peer(
        operations,
        Arc::new(move |command: &str, peer: Option<mcast_sys::Peer>| {
            control::operation(
                &for_operations.core,
                for_operations.mono(),
                command,
                peer,
                operator,
                &mut *for_operations.clock(),
            )
        }),
    ));

    if let Some(dir) = state_dir.clone() {
        tasks.spawn(persist_loop(Arc::clone(&shared), dir));
    }
    if let Some(writer) = bound_writer {
        let validity = Duration::from_secs(u64::from(config.clock_bound.void_after_s));
        tasks.spawn(bound_loop(Arc::clone(&shared), writer, validity));
    }

    let result = wait_for_signals(&shared, &config).await;
    crate::readiness::stopping();
    tasks.abort_all();
    if let Some(dir) = &state_dir {
        crate::state::write(&shared.core, dir, true);
    }
    let _ = std::fs::remove_file(&config.control_socket);
    let _ = std::fs::remove_file(&operations_path);
    tracing::info!("mcast-client stopped");
    result
}

/// Every socket is bound: switch to `user` (if set) keeping `CAP_SYS_TIME`
/// only when the clock mode adjusts the clock, and refuse to run a clock
/// mode whose adjustments would fail for want of it. Runs on the thread
/// that later adjusts the clock (the client's runtime has one thread), so
/// the kept capability is where it is used.
fn drop_privileges(config: &ClientConfig) -> Result<(), DaemonError> {
    let adjusts = config.clock.mode != ConfigClockMode::Monitor;
    let keep: &[mcast_sys::Capability] = if adjusts {
        &[mcast_sys::Capability::SysTime]
    } else {
        &[]
    };
    let p = mcast_sys::drop_privileges(config.user.as_deref(), keep).map_err(|e| {
        DaemonError::Privileges(match &config.user {
            Some(user) => format!("user {user}: {e}"),
            None => e.to_string(),
        })
    })?;
    if p.switched_user || p.reduced {
        tracing::info!(
            uid = p.uid,
            gid = p.gid,
            kept = ?p.kept.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "dropped privileges"
        );
    }
    if adjusts && !p.has(mcast_sys::Capability::SysTime) {
        let mode = format!("{:?}", config.clock.mode).to_lowercase();
        return Err(DaemonError::Privileges(format!(
            "clock mode \"{mode}\" needs CAP_SYS_TIME, which this process does not have \
             (it is not in its permitted or bounding set): start it as root, or under systemd \
             with AmbientCapabilities=CAP_SYS_TIME, or set [clock] mode = \"monitor\" in {}",
            config.file().display()
        )));
    }
    Ok(())
}

async fn wait_for_signals(shared: &Shared, config: &ClientConfig) -> Result<(), DaemonError> {
    mcast_sys::wait_for_stop(|| {
        crate::cli::reload_log_level(config.file());
        reload_keys(shared, config);
    })
    .await
    .map_err(io_err("signal handlers"))
}

/// SIGHUP: the keys file and each server's `key`/`keys` again, from the
/// configuration file as it is now; nothing is recalibrated.
fn reload_keys(shared: &Shared, config: &ClientConfig) {
    match ClientConfig::load_with_keys(config.file()) {
        Ok((now, k)) => {
            let path = k.path().display().to_string();
            let bindings = crate::settings::key_bindings(&now);
            if let Ok(mut core) = shared.core.lock() {
                match core.rebind_keys(k, &bindings) {
                    Ok(rebound) => {
                        tracing::info!(keys = %path, rebound, "SIGHUP: keys reloaded");
                    }
                    Err(lost) => tracing::error!(
                        keys = %path,
                        "SIGHUP: keeping the old keys: {}",
                        crate::text::key_loss(&lost)
                    ),
                }
            }
        }
        Err(e) => tracing::error!("SIGHUP: keeping the old keys: {e}"),
    }
}

async fn execute(shared: &Arc<Shared>, actions: Vec<Action>) {
    for a in actions {
        match a {
            Action::Send {
                to,
                bytes,
                ticket,
                burst,
            } => {
                let Some((pair, fresh)) = shared.cal.for_burst(burst).await else {
                    tracing::warn!(to = %to, "calibration request not sent: no socket");
                    continue;
                };
                if fresh {
                    spawn_reply_loops(shared, &pair);
                    if let Ok(mut core) = shared.core.lock() {
                        core.set_calibration_port(pair.port);
                    }
                }
                let Some(sock) = pair.for_destination(to) else {
                    continue;
                };
                let mut next_id = sock.next_id.lock().await;
                if let Err(e) = sock.ep.send_to(&bytes, to).await {
                    tracing::warn!(to = %to, "calibration request not sent: {e}");
                    continue;
                }
                let id = *next_id;
                *next_id = id.wrapping_add(1);
                if let Some(at) = crate::calsock::kernel_tx_time(&sock.ep, id).await
                    && let Ok(mut core) = shared.core.lock()
                {
                    core.request_transmitted(ticket, NtpTimestamp::from_system_time(at));
                }
            }
            Action::Event(e @ (Event::GroupSilent { .. } | Event::GroupBack { .. })) => {
                // Said once per silence by the core: never held back.
                let joined: Vec<(IpAddr, String)> = shared
                    .listeners
                    .iter()
                    .map(|l| (l.group, l.interface.clone()))
                    .collect();
                if matches!(e, Event::GroupSilent { .. }) {
                    tracing::warn!("{}", crate::text::group_silent_line(&e, &joined));
                } else {
                    tracing::info!("{}", crate::text::group_back_line(&e, &joined));
                }
            }
            Action::Rejoin { attempt } => {
                for l in &shared.listeners {
                    rejoin(l, attempt);
                }
            }
            Action::Event(e) => {
                let line = crate::text::event_line(&e);
                let admitted = match shared.repeats.lock() {
                    Ok(mut r) => r.admit(&line, shared.mono()),
                    Err(_) => Some(line),
                };
                match (admitted, &e) {
                    (None, _) => {}
                    (Some(l), Event::ClockAdjustmentFailed { .. }) => tracing::error!("{l}"),
                    (Some(l), _) => tracing::info!("{l}"),
                }
            }
            Action::Clock(decision) => report_decision(&decision),
            Action::Kernel(state) => crate::clock::report_kernel_state(&state),
        }
    }
}

/// Writes the persisted state every few minutes.
async fn persist_loop(shared: Arc<Shared>, dir: std::path::PathBuf) {
    loop {
        tokio::time::sleep(crate::state::EVERY).await;
        crate::state::write(&shared.core, &dir, false);
    }
}

/// Starts the reply loops of a calibration socket pair.
fn spawn_reply_loops(shared: &Arc<Shared>, pair: &Arc<CalPair>) {
    for sock in std::iter::once(&pair.v4).chain(pair.v6.as_ref()) {
        tokio::spawn(reply_loop(
            Arc::clone(shared),
            Arc::clone(pair),
            Arc::clone(sock),
        ));
    }
}

/// The log line of a clock decision the core has carried out.
fn report_decision(decision: &Decision) {
    match decision {
        Decision::Panic { offset } => {
            tracing::error!(offset = %offset, "{}", crate::text::PANIC_LINE);
        }
        Decision::Step { offset } => tracing::warn!(offset = %offset, "stepped the clock"),
        _ => tracing::debug!("clock: {decision:?}"),
    }
}

async fn listen_loop(shared: Arc<Shared>, l: Arc<Listener>) {
    let mut buf = vec![0u8; 2048];
    loop {
        let meta = match l.ep.recv(&mut buf).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("receive error on {}: {e}", l.interface);
                continue;
            }
        };
        // Only packets that arrived on the configured interface count.
        let want = l.ifindex.lock().map(|i| *i).unwrap_or(0);
        if meta.ifindex.is_some_and(|i| i != want) {
            if let Ok(mut core) = shared.core.lock() {
                core.count_dropped("wrong-interface");
            }
            continue;
        }
        let rx = NtpTimestamp::from_system_time(meta.kernel_rx.unwrap_or_else(RealClock::now));
        let bytes = buf.get(..meta.len).unwrap_or_default();
        let actions = match shared.core.lock() {
            Ok(mut core) => core.on_broadcast(
                Incoming {
                    bytes,
                    source: meta.source,
                    rx,
                    mono: shared.mono(),
                },
                rand::random::<u32>(),
                &mut *shared.clock(),
            ),
            Err(_) => continue,
        };
        execute(&shared, actions).await;
    }
}

/// Receives the replies on one calibration socket until its pair closes.
async fn reply_loop(shared: Arc<Shared>, pair: Arc<CalPair>, sock: Arc<CalSocket>) {
    let mut buf = vec![0u8; 2048];
    while !pair.closed(Instant::now()) {
        let Ok(Ok(meta)) =
            tokio::time::timeout(Duration::from_secs(1), sock.ep.recv(&mut buf)).await
        else {
            continue;
        };
        let rx = NtpTimestamp::from_system_time(meta.kernel_rx.unwrap_or_else(RealClock::now));
        let bytes = buf.get(..meta.len).unwrap_or_default();
        let actions = match shared.core.lock() {
            Ok(mut core) => core.on_reply(
                Incoming {
                    bytes,
                    source: meta.source,
                    rx,
                    mono: shared.mono(),
                },
                &mut *shared.clock(),
            ),
            Err(_) => continue,
        };
        // A reply can produce a clock decision (the volley's samples feed
        // the filter), carried out by the core. Replies never ask to send.
        execute(&shared, actions).await;
    }
}

/// Publishes the error bound in ClockBound's segment every second (its
/// readers take a segment older than 5 s for a stopped daemon).
async fn bound_loop(
    shared: Arc<Shared>,
    mut writer: crate::clockbound::Writer,
    validity: Duration,
) {
    let mut failing = false;
    loop {
        let mono = shared.mono();
        let bound = match shared.core.lock() {
            Ok(core) => core.error_bound(mono, now_ntp()),
            Err(_) => return,
        };
        let contents =
            crate::clockbound::Contents::of(bound.as_ref(), shared.mono_base, mono, validity);
        match writer.write(&contents) {
            Err(error) if !failing => {
                tracing::warn!(%error, "cannot write the ClockBound segment");
                failing = true;
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn tick_loop(shared: Arc<Shared>) {
    let mut readiness = crate::readiness::Readiness::from_env();
    loop {
        let mono = shared.mono();
        let (actions, next) = match shared.core.lock() {
            Ok(mut core) => {
                let a = core.on_tick(
                    mono,
                    now_ntp(),
                    &mut rand::random::<u64>,
                    &mut *shared.clock(),
                );
                (a, core.next_wakeup(shared.mono()))
            }
            Err(_) => return,
        };
        execute(&shared, actions).await;
        if let Ok(core) = shared.core.lock() {
            readiness.after_tick(&core, shared.mono());
        }
        tokio::time::sleep_until(shared.start + next.max(mono + Duration::from_millis(10))).await;
    }
}

/// Drops and adds the membership of a multicast listener on its
/// interface: the kernel sends a fresh unsolicited IGMP/MLD report, which a
/// snooping switch that aged the membership out needs to forward the group
/// to this port again. Subnet-broadcast listeners have no membership.
fn rejoin(l: &Listener, attempt: u32) {
    let idx = l.ifindex.lock().map(|i| *i).unwrap_or(0);
    let joined = match l.group {
        IpAddr::V4(g) if g.is_multicast() => {
            let _ = l.ep.leave_v4(g, idx);
            l.ep.join_v4(g, idx)
        }
        IpAddr::V6(g) => {
            let _ = l.ep.leave_v6(g, idx);
            l.ep.join_v6(g, idx)
        }
        IpAddr::V4(_) => return,
    };
    match joined {
        Ok(()) => {
            tracing::debug!(group = %l.group, interface = %l.interface, attempt, "re-joined the group")
        }
        Err(e) => tracing::warn!(
            "{}",
            crate::text::rejoin_failed(l.group, &l.interface, attempt, &e.to_string())
        ),
    }
}

/// Re-joins the group when the interface is recreated with a new index
/// (what a bond reconfiguration does), within a few seconds.
async fn supervise_interface(l: Arc<Listener>) {
    let mut missing_logged = false;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let current = l.ifindex.lock().map(|i| *i).unwrap_or(0);
        match mcast_sys::interface_index(&l.interface) {
            Ok(idx) if idx != current => {
                let joined = match l.group {
                    IpAddr::V4(g) if g.is_multicast() => {
                        let _ = l.ep.leave_v4(g, current);
                        l.ep.join_v4(g, idx)
                    }
                    IpAddr::V6(g) => {
                        let _ = l.ep.leave_v6(g, current);
                        l.ep.join_v6(g, idx)
                    }
                    IpAddr::V4(_) => Ok(()),
                };
                match joined {
                    Ok(()) => {
                        tracing::warn!(interface = %l.interface, old = current, new = idx, group = %l.group, "interface recreated: re-joined the group");
                        if let Ok(mut i) = l.ifindex.lock() {
                            *i = idx;
                        }
                        missing_logged = false;
                    }
                    Err(e) => {
                        tracing::warn!(interface = %l.interface, "re-join failed, will retry: {e}")
                    }
                }
            }
            Ok(_) => missing_logged = false,
            Err(e) if !missing_logged => {
                tracing::warn!(interface = %l.interface, "interface is gone ({e}); waiting for it to return");
                missing_logged = true;
            }
            Err(_) => {}
        }
    }
}
