//! The client's protocol core, sans-I/O: broadcasts and calibration replies
//! come in with their arrival times, timer ticks come in with the current
//! time, and out come actions (send this request, this is the clock
//! decision). The daemon and the simulator drive the same code.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mcast_keys::signed::{self, Fingerprint, PublicKey};
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{
    Datagram, Header, KissCode, Log2Seconds, Mode, NtpDuration, NtpTimestamp, SampleLimits,
};

use crate::client::association::{Anchor, Arrival, Association, CheckOutcome, ServerSpec, State};
use crate::client::bound::{BoundConfig, BoundTracker, Clocks, ErrorBound, PeerTerms, Update};
use crate::client::calibration::{
    self, BroadcastObservation, CalibrationConfig, Exchange, Phase, ReplyProblem, Step,
};
use crate::client::discipline::{
    Clock, ClockMode, Decision, Discipline, DisciplineConfig, LoopState, Ppm,
};
use crate::client::filter::{ClockFilter, FilterResult, Sample};
use crate::client::kernel::{
    KernelInput, KernelState, KernelTracker, LeapPending, Selected, leap_of,
};
use crate::client::select::{Candidate, SelectOutcome, SelectParams, select};
use crate::client::silence::{DEFAULT_SILENT_AFTER_INTERVALS, GroupEvent, GroupWatch};
use crate::exchange::{Exchanges, Kiss, Ticket, kiss};

/// Settings of the core (from the client configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// Configured servers.
    pub servers: Vec<ServerSpec>,
    /// Accept new sources that sign with a trusted key, binding them to it
    /// (one address per key).
    pub discover: bool,
    /// Most associations discovery may add.
    pub discover_max: usize,
    /// The key ids discovery may bind (`None`: any key of the store).
    pub discover_keys: Option<Vec<KeyId>>,
    /// The groups (or broadcast addresses) and port this client listens
    /// on: a signed broadcast must name one of them.
    pub groups: Vec<SocketAddr>,
    /// Calibration settings.
    pub calibration: CalibrationConfig,
    /// Selection settings.
    pub select: SelectParams,
    /// Intervals of silence after which a server leaves selection.
    pub silent_intervals: u32,
    /// Per-packet sanity limits.
    pub limits: SampleLimits,
    /// Port the servers answer calibration requests on.
    pub server_port: u16,
    /// Our clock's precision.
    pub precision: Log2Seconds,
    /// Clock discipline settings.
    pub discipline: DisciplineConfig,
    /// Intervals of the slowest server's poll without an authenticated
    /// broadcast from any server after which the group is reported silent
    /// and re-joined (`group-silent-intervals`).
    pub group_silent_intervals: u32,
    /// The error bound published to applications.
    pub bound: BoundConfig,
}

impl CoreConfig {
    /// The defaults of the configuration file for these servers (port 123,
    /// a microsecond precision): the start of tests and simulations.
    pub fn with_servers(servers: Vec<ServerSpec>) -> Self {
        CoreConfig {
            servers,
            discover: false,
            discover_max: DEFAULT_DISCOVER_MAX,
            discover_keys: None,
            groups: Vec::new(),
            calibration: CalibrationConfig::default(),
            select: SelectParams::default(),
            silent_intervals: 8,
            limits: SampleLimits::default(),
            server_port: 123,
            precision: Log2Seconds(-20),
            discipline: DisciplineConfig::default(),
            group_silent_intervals: DEFAULT_SILENT_AFTER_INTERVALS,
            bound: BoundConfig::default(),
        }
    }
}

/// Most associations discovery adds unless configured otherwise.
pub const DEFAULT_DISCOVER_MAX: usize = 8;

/// Requests of one unicast check (the first valid reply ends it).
const CHECK_REQUESTS: u8 = 3;

/// Wait after a check that changed nothing before the next may be sent;
/// it doubles with each such check, up to a day.
const CHECK_GAP: Duration = Duration::from_secs(1024);

/// Most checks of one server in any 24 hours, whatever asks for them.
const MAX_CHECKS_PER_DAY: usize = 24;

const DAY: Duration = Duration::from_secs(86_400);

/// A random 64-bit value as a fraction in [0, 1).
fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Event {
    /// The name of the server it is about, if it is about one.
    pub fn server(&self) -> Option<&str> {
        match self {
            Event::Calibrating { server }
            | Event::Unpaired { server, .. }
            | Event::KissOfDeath { server, .. }
            | Event::CalibrationDone { server, .. }
            | Event::Checking { server, .. }
            | Event::CheckUnanswered { server, .. }
            | Event::SteppedBack { server }
            | Event::BackstepRefuted { server } => Some(server),
            Event::ClockAdjustmentFailed { .. }
            | Event::GroupSilent { .. }
            | Event::GroupBack { .. } => None,
        }
    }
}

/// A datagram handed to the core.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Who sent it.
    pub source: SocketAddr,
    /// Arrival time on our clock (kernel receive timestamp where possible).
    pub rx: NtpTimestamp,
    /// Arrival on the monotonic clock.
    pub mono: Duration,
}

/// What the core asks the shell to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a calibration request from the calibration socket.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
        /// Give its kernel transmit time back with this
        /// ([`ClientCore::request_transmitted`]).
        ticket: Ticket,
        /// The volley or check it belongs to: a new burst should leave from
        /// a fresh source port (unless a fixed one is configured), so an
        /// off-path host cannot learn where replies go from earlier ones.
        burst: u64,
    },
    /// The clock decision of this update, already carried out on the clock
    /// the core was given (monitor mode: `Decision::Monitor`, nothing done).
    /// For the shell to report, never to carry out.
    Clock(Decision),
    /// The kernel clock state just handed to the clock
    /// ([`Clock::set_kernel_state`]; never in monitor mode). For the shell
    /// to report, never to carry out.
    Kernel(KernelState),
    /// Something worth a log line (the shell words it).
    Event(Event),
    /// The group has been silent (see [`Event::GroupSilent`]): leave and
    /// join every configured multicast group again on its interface, which
    /// makes the kernel send a fresh unsolicited IGMP/MLD report (what a
    /// snooping switch that aged the membership out needs to forward again).
    Rejoin {
        /// 1 for the first re-join of this silence; they back off from one
        /// interval, doubling, to at most 1024 s.
        attempt: u32,
    },
}

/// What happened to a server that an operator should hear about. Typed, so
/// the shell words it and tests match on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The first authenticated broadcast from `server`: calibration starts.
    Calibrating {
        /// The server's name.
        server: String,
    },
    /// An interleaved server sent `count` broadcasts in a row whose origin
    /// is not the previous broadcast's send time.
    Unpaired {
        /// The server's name.
        server: String,
        /// How many in a row.
        count: u32,
    },
    /// The server answered a calibration request with a Kiss-o'-Death.
    KissOfDeath {
        /// The server's name.
        server: String,
        /// The kiss code.
        code: KissCode,
    },
    /// Calibration of `server` finished (calibrated or on the fallback).
    CalibrationDone {
        /// The server's name.
        server: String,
        /// Where the requests went.
        to: SocketAddr,
        /// Our source port, when a fixed one was used.
        local_port: Option<u16>,
        /// The outcome.
        phase: Phase,
    },
    /// A unicast check of `server` starts (a few authenticated requests
    /// with fresh cookies; never polling).
    Checking {
        /// The server's name.
        server: String,
        /// Why.
        why: CheckReason,
    },
    /// A check got no usable reply; the server stays unselectable and the
    /// next check waits `retry_in`.
    CheckUnanswered {
        /// The server's name.
        server: String,
        /// Until the next check may be sent.
        retry_in: Duration,
    },
    /// The server's clock went back: consistent packets behind the last
    /// accepted one, no newer packet since, and a unicast check agreed
    /// with their time. The association follows it.
    SteppedBack {
        /// The server's name.
        server: String,
    },
    /// Packets behind the last accepted one looked like a backward step
    /// but the unicast check contradicted them (a replay): dropped.
    BackstepRefuted {
        /// The server's name.
        server: String,
    },
    /// The clock refused an adjustment the discipline decided.
    ClockAdjustmentFailed {
        /// What the clock said.
        error: String,
    },
    /// No authenticated broadcast from any server for more than
    /// `intervals` of `expected_interval` (the slowest server's poll): the
    /// group stopped delivering. Said once per silence; re-joins follow
    /// ([`Action::Rejoin`]).
    GroupSilent {
        /// `group-silent-intervals`.
        intervals: u32,
        /// Monotonic time of the last delivery (or of the start).
        since: Duration,
        /// How long it has been silent.
        silent_for: Duration,
        /// The slowest server's poll interval it was judged by.
        expected_interval: Duration,
        /// Datagrams that did reach the group socket since the last
        /// delivery but did not count (unauthenticated, another key,
        /// replayed, unknown source, malformed): when not 0 the path works
        /// and keys or a forger are the likelier cause.
        ignored: u64,
    },
    /// An authenticated broadcast arrived after a silence. Said once.
    GroupBack {
        /// From the last delivery before the silence to this broadcast.
        silent_for: Duration,
        /// Re-joins sent during the silence.
        rejoins: u32,
    },
}

/// Why `step-now` did not step the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepNowError {
    /// Monitor mode never touches the clock.
    Monitor,
    /// No server is selected: there is no time to step to.
    NothingSelected,
    /// The clock refused the step.
    Clock(String),
}

/// The keys one configured server is bound to, for
/// [`ClientCore::rebind_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// The server's address.
    pub address: IpAddr,
    /// The key that signs calibration requests (the first listed).
    pub key: Option<KeyId>,
    /// Further keys its packets may verify with.
    pub more_keys: Vec<KeyId>,
}

/// A server whose key a reload would lose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLoss {
    /// The server's name.
    pub server: String,
    /// The key it is bound to.
    pub key: KeyId,
    /// What the new keys file does to it.
    pub why: KeyLossReason,
}

/// How a reload would lose a server's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLossReason {
    /// The key id is not in the new keys file.
    Missing,
    /// The key's new address list does not allow the server's address.
    AddressNotAllowed,
}

/// Why a server is checked by unicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckReason {
    /// Its packets went behind the last accepted one, consistently.
    Backstep,
    /// Its packets disagree with the last measured offset.
    Stale,
    /// The configured rare spot check (`spot-check-hours`).
    Spot,
}

/// The unicast checks of one server.
#[derive(Debug, Clone, Default)]
struct Checks {
    /// The check under way: requests sent and when the next is due.
    active: Option<(u8, Duration)>,
    /// No new check before this.
    allowed_at: Duration,
    /// Wait after the next check that changes nothing.
    gap: Duration,
    /// When recent checks started (the last 24 h).
    recent: VecDeque<Duration>,
    /// The next spot check, once the server is calibrated (if configured).
    spot_at: Option<Duration>,
    /// Why the check under way (or the last one) was sent.
    reason: Option<CheckReason>,
}

impl Checks {
    /// Whether a new check may start at `now`.
    fn may_start(&mut self, now: Duration) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= DAY)
        {
            self.recent.pop_front();
        }
        self.active.is_none() && now >= self.allowed_at && self.recent.len() < MAX_CHECKS_PER_DAY
    }

    /// The check ended at `now`; `changed` when it moved what the server
    /// is judged by (so asking again soon is reasonable).
    fn ended(&mut self, now: Duration, changed: bool) -> Duration {
        self.active = None;
        if changed {
            self.gap = CHECK_GAP;
            self.allowed_at = now;
        } else {
            self.gap = self.gap.max(CHECK_GAP);
            self.allowed_at = now + self.gap;
            self.gap = (self.gap * 2).min(DAY);
        }
        self.allowed_at.saturating_sub(now)
    }
}

#[derive(Debug, Clone)]
struct Peer {
    assoc: Association,
    filter: ClockFilter,
    /// Calibration requests in flight.
    exchanges: Exchanges,
    /// Offset of the last accepted sample (for status).
    last_offset: Option<NtpDuration>,
    /// Interleaved servers: the last accepted broadcast, waiting for the
    /// next one to bring its kernel transmit time.
    pending: Option<Pending>,
    /// Interleaved servers: accepted broadcasts in a row whose origin did
    /// not pair with the broadcast before.
    unpaired: u32,
    /// Unicast checks.
    checks: Checks,
    /// The burst (volley or check) its requests now belong to.
    burst: u64,
}

impl Peer {
    fn new(spec: ServerSpec, calibration: CalibrationConfig, precision: NtpDuration) -> Self {
        Peer {
            assoc: Association::new(spec, calibration),
            filter: ClockFilter::new(precision),
            exchanges: Exchanges::new(),
            last_offset: None,
            pending: None,
            unpaired: 0,
            checks: Checks::default(),
            burst: 0,
        }
    }
}

/// What every unicast request to one server carries.
struct RequestSpec {
    to: SocketAddr,
    poll: i8,
    key: Option<KeyId>,
    /// The server's pinned key: the request asks for a reply signed with it.
    signer: Option<Fingerprint>,
    precision: Log2Seconds,
    clock_now: NtpTimestamp,
    mono: Duration,
}

impl Peer {
    /// One authenticated mode-3 request with a fresh random cookie.
    fn request(&mut self, r: &RequestSpec, keys: &KeyStore, random: u64) -> Action {
        let mut h = Header::new(Mode::Client);
        h.poll = Log2Seconds(r.poll);
        h.precision = r.precision;
        let (cookie, ticket) = self.exchanges.send(random, r.clock_now, r.mono);
        h.transmit = cookie;
        let mut d = Datagram::new(h);
        if let Some(fp) = r.signer {
            // Calibration without secrets: the cookie stays in transmit
            // (the reply echoes it as origin, under its signature); the
            // field names the key to sign with and pads the request to
            // the signed reply's length.
            d.extensions.push(signed::request_field(fp));
        }
        let mut bytes = Vec::with_capacity(72);
        match r.key.and_then(|k| keys.get(k)) {
            Some(k) => packet::sign(k, &d, &mut bytes),
            None => d.write_signed_part(&mut bytes),
        }
        self.assoc.count_unicast();
        Action::Send {
            to: r.to,
            bytes,
            ticket,
            burst: self.burst,
        }
    }

    /// Starts a unicast check when the association needs one and the
    /// limits allow it, and sends its requests (at the calibration
    /// spacing, at most [`CHECK_REQUESTS`]); gives up when none was
    /// answered.
    fn drive_check(
        &mut self,
        r: &RequestSpec,
        keys: &KeyStore,
        spacing: Duration,
        random: &mut dyn FnMut() -> u64,
        next_burst: &mut u64,
        spot: Option<Duration>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let now = r.mono;
        let why = if self.assoc.needs_check() {
            Some(if self.assoc.backstep_pending() {
                CheckReason::Backstep
            } else {
                CheckReason::Stale
            })
        } else if let Some(period) = spot
            && self.assoc.state() == State::Tracking
        {
            // At a random time within each configured period.
            let at = *self
                .checks
                .spot_at
                .get_or_insert_with(|| now + period.mul_f64(unit(random())));
            (now >= at).then_some(CheckReason::Spot)
        } else {
            None
        };
        if let Some(why) = why
            && self.checks.active.is_none()
            && self.checks.may_start(now)
        {
            if let (CheckReason::Spot, Some(period)) = (why, spot) {
                self.checks.spot_at = Some(now + period.mul_f64(0.5 + unit(random())));
            }
            self.checks.active = Some((0, now));
            self.checks.reason = Some(why);
            *next_burst += 1;
            self.burst = *next_burst;
            self.checks.recent.push_back(now);
            actions.push(Action::Event(Event::Checking {
                server: self.assoc.spec().name.clone(),
                why,
            }));
        }
        let Some((sent, next_at)) = self.checks.active else {
            return actions;
        };
        if now < next_at {
            return actions;
        }
        if sent < CHECK_REQUESTS {
            actions.push(self.request(r, keys, random()));
            self.checks.active = Some((sent + 1, now + spacing));
        } else {
            self.exchanges.clear();
            let retry_in = self.checks.ended(now, false);
            actions.push(Action::Event(Event::CheckUnanswered {
                server: self.assoc.spec().name.clone(),
                retry_in,
            }));
        }
        actions
    }
}

/// An accepted broadcast of an interleaved server, as it arrived.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Its transmit field (the server's clock read before sending).
    transmit: NtpTimestamp,
    /// T4 on our clock.
    rx: NtpTimestamp,
    /// Arrival, monotonic.
    mono: Duration,
    /// Our cumulative clock adjustment at arrival.
    adjustment: NtpDuration,
}

/// The longest a server may take to send a broadcast after reading its
/// transmit timestamp, in ms: an interleaved origin further than this after
/// the previous packet's transmit field is not that packet's send time.
const MAX_SEND_LAG_MS: i64 = 100;

/// Unpaired interleaved broadcasts in a row before the client says so.
const UNPAIRED_WARNING: u32 = 3;

/// Our own corrections to the clock as they take effect, so a measurement
/// can be taken free of them (calibration pairs replies and broadcasts
/// seconds apart). Steps act at once; a slew runs at `max_slew_ppm`, as
/// the kernel's `adjtime` does, and a new one replaces the one in
/// progress; a frequency correction adds up over time.
#[derive(Debug, Clone, Copy)]
struct Adjustments {
    /// Slew rate, seconds per second.
    slew_rate: f64,
    /// Steps, finished or replaced slews, and frequency corrections up to
    /// `frequency_since`.
    settled: NtpDuration,
    /// The slew in progress: when it was started and how much it was asked
    /// to do.
    slew: Option<(Duration, NtpDuration)>,
    /// Frequency correction in force (seconds per second) and since when.
    frequency: f64,
    frequency_since: Duration,
}

impl Adjustments {
    fn new(slew_rate: f64) -> Self {
        Adjustments {
            slew_rate: slew_rate.abs(),
            settled: NtpDuration::ZERO,
            slew: None,
            frequency: 0.0,
            frequency_since: Duration::ZERO,
        }
    }

    /// How much of the slew in progress is done at `at`.
    fn slewed(&self, at: Duration) -> NtpDuration {
        let Some((start, amount)) = self.slew else {
            return NtpDuration::ZERO;
        };
        if self.slew_rate <= 0.0 {
            return amount;
        }
        let limit = self.slew_rate * at.saturating_sub(start).as_secs_f64();
        if amount.abs().as_seconds_f64() <= limit {
            amount
        } else {
            let done = NtpDuration::from_seconds_f64(limit);
            if amount.is_negative() { -done } else { done }
        }
    }

    fn drifted(&self, at: Duration) -> NtpDuration {
        let elapsed = at.saturating_sub(self.frequency_since).as_secs_f64();
        NtpDuration::from_seconds_f64(self.frequency * elapsed)
    }

    /// Everything we had added to our clock by `at`.
    fn at(&self, at: Duration) -> NtpDuration {
        self.settled + self.slewed(at) + self.drifted(at)
    }

    /// Ends the slew in progress at `at` (what it did so far stays).
    fn settle_slew(&mut self, at: Duration) {
        self.settled += self.slewed(at);
        self.slew = None;
    }

    fn step(&mut self, at: Duration, amount: NtpDuration) {
        self.settle_slew(at);
        self.settled += amount;
    }

    fn slew(&mut self, at: Duration, amount: NtpDuration) {
        self.settle_slew(at);
        self.slew = Some((at, amount));
    }

    fn set_frequency(&mut self, at: Duration, ppm: Ppm) {
        self.settled += self.drifted(at);
        self.frequency = ppm.as_rate();
        self.frequency_since = at;
    }
}

/// Why a packet was dropped before it could be tied to a server (the
/// global `rejected` counters of `status`). Counted, never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GlobalRejection {
    /// Did not parse.
    BadFormat,
    /// Not mode 5 on a broadcast socket.
    NotBroadcast,
    /// From an address that is no configured (or discovered) server.
    UnknownSource,
    /// Discovery: signed with a key another address already uses.
    DiscoveryKeyBound,
    /// Discovery: the packet verified with a key not in `discover-keys`.
    DiscoveryKeyNotAllowed,
    /// Discovery: `discover-max` servers found already.
    DiscoveryFull,
    /// A reply on the calibration socket from an address that is no server.
    ReplyFromUnknownSource,
    /// Not a mode 4 reply from the server port on the calibration socket.
    NotAReply,
    /// A reply that answers no request in flight.
    BogusOrigin,
    /// An authentic KoD that does not echo our cookie.
    BogusKod,
    /// A KoD not as authentic as a reply must be.
    UnauthenticatedKod,
    /// Arrived on another interface than configured (counted by the I/O
    /// layer through [`ClientCore::count_dropped`]).
    WrongInterface,
}

impl GlobalRejection {
    /// Every reason (metrics show each one, at 0 until it happens).
    pub const ALL: [GlobalRejection; 12] = [
        GlobalRejection::BadFormat,
        GlobalRejection::NotBroadcast,
        GlobalRejection::UnknownSource,
        GlobalRejection::DiscoveryKeyBound,
        GlobalRejection::DiscoveryKeyNotAllowed,
        GlobalRejection::DiscoveryFull,
        GlobalRejection::ReplyFromUnknownSource,
        GlobalRejection::NotAReply,
        GlobalRejection::BogusOrigin,
        GlobalRejection::BogusKod,
        GlobalRejection::UnauthenticatedKod,
        GlobalRejection::WrongInterface,
    ];

    /// Label for counters and status.
    pub fn label(self) -> &'static str {
        match self {
            GlobalRejection::BadFormat => "bad-format",
            GlobalRejection::NotBroadcast => "not-broadcast",
            GlobalRejection::UnknownSource => "unknown-source",
            GlobalRejection::DiscoveryKeyBound => "discovery-key-bound",
            GlobalRejection::DiscoveryKeyNotAllowed => "discovery-key-not-allowed",
            GlobalRejection::DiscoveryFull => "discovery-full",
            GlobalRejection::ReplyFromUnknownSource => "reply-from-unknown-source",
            GlobalRejection::NotAReply => "not-a-reply",
            GlobalRejection::BogusOrigin => "bogus-origin",
            GlobalRejection::BogusKod => "bogus-kod",
            GlobalRejection::UnauthenticatedKod => "unauthenticated-kod",
            GlobalRejection::WrongInterface => "wrong-interface",
        }
    }
}

/// The client core.
#[derive(Debug)]
pub struct ClientCore {
    config: CoreConfig,
    keys: KeyStore,
    peers: Vec<Peer>,
    global_rejects: BTreeMap<&'static str, u64>,
    discipline: Discipline,
    /// What the kernel is told about the clock.
    kernel: KernelTracker,
    /// The error bound published to applications.
    bound: BoundTracker,
    /// Everything we have added to our clock since start, as it takes effect.
    adjustments: Adjustments,
    /// Monotonic time of the last clock decision (when it is carried out).
    decided_at: Duration,
    selection: Option<SelectOutcome>,
    last_decision: Option<Decision>,
    calibration_port: Option<u16>,
    /// Associations discovery added.
    discovered: usize,
    /// The last burst (volley or check) number given out.
    next_burst: u64,
    /// The frequency to persist (restored, or taken at most every
    /// [`FREQUENCY_SAVE_EVERY`] while the loop is in SYNC) and when it was
    /// taken.
    saved_frequency: Option<(Ppm, Duration)>,
    /// Whether the group still delivers (created on the first tick or
    /// broadcast).
    group: Option<GroupState>,
}

/// The group-silence watch and what it counted.
#[derive(Debug, Clone)]
struct GroupState {
    watch: GroupWatch,
    /// Silences since start.
    silences: u64,
    /// Re-joins since start.
    rejoins: u64,
    /// Re-joins of the silence under way.
    rejoins_now: u32,
    /// Datagrams since the last delivery that did not count as one.
    ignored: u64,
}

/// The group's delivery as `status` shows it ([`ClientCore::group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupReport {
    /// Reported silent now.
    pub silent: bool,
    /// The last delivery (or the start), monotonic.
    pub last_delivery: Duration,
    /// Silence is declared after this long without a delivery.
    pub silent_after: Duration,
    /// Silences since start.
    pub silences: u64,
    /// Re-joins since start.
    pub rejoins: u64,
}

/// The poll interval assumed for a server whose poll is not known yet.
const UNKNOWN_POLL_INTERVAL: Duration = Duration::from_secs(64);

/// The persisted frequency is taken at most this often (ntpd writes its
/// driftfile hourly), and at exit.
pub const FREQUENCY_SAVE_EVERY: Duration = Duration::from_secs(3600);

impl ClientCore {
    /// A core with one association per configured server, all listening.
    pub fn new(config: CoreConfig, keys: KeyStore) -> Self {
        let precision = config.precision.to_duration();
        let peers = config
            .servers
            .iter()
            .map(|s| Peer::new(s.clone(), config.calibration, precision))
            .collect();
        let discipline = Discipline::new(config.discipline);
        let kernel = KernelTracker::new(config.discipline.unsync_after);
        let bound = BoundTracker::new(config.bound);
        let adjustments = Adjustments::new(config.discipline.max_slew_ppm.as_rate());
        ClientCore {
            config,
            keys,
            peers,
            global_rejects: BTreeMap::new(),
            discipline,
            kernel,
            bound,
            adjustments,
            decided_at: Duration::ZERO,
            selection: None,
            last_decision: None,
            calibration_port: None,
            discovered: 0,
            next_burst: 0,
            saved_frequency: None,
            group: None,
        }
    }

    /// Replaces the keys (SIGHUP). Associations keep their bound key ids.
    /// Refused, changing nothing, when the new keys would lose a key an
    /// association is bound to or no longer allow its address: the client
    /// would then send unsigned requests and reject every broadcast.
    pub fn set_keys(&mut self, keys: KeyStore) -> Result<(), Vec<KeyLoss>> {
        self.rebind_keys(keys, &[]).map(|_| ())
    }

    /// Replaces the keys and the key ids configured servers are bound to
    /// (SIGHUP after a `keys = [old, new]` edit), keeping what each
    /// association measured: no recalibration. `bindings` gives, per
    /// server address, its new `key` (which signs calibration requests)
    /// and further accepted keys; a server not listed keeps its binding,
    /// an address no association has is skipped (a new server needs a
    /// restart). Refused, changing nothing, as [`set_keys`](Self::set_keys)
    /// is, when any key a server would be bound to is missing from `keys`
    /// or does not allow its address. Returns how many servers were rebound.
    pub fn rebind_keys(
        &mut self,
        keys: KeyStore,
        bindings: &[KeyBinding],
    ) -> Result<usize, Vec<KeyLoss>> {
        let binding = |spec: &ServerSpec| {
            bindings
                .iter()
                .find(|b| b.address == spec.address)
                .map_or_else(
                    || (spec.key, spec.more_keys.clone()),
                    |b| (b.key, b.more_keys.clone()),
                )
        };
        let mut lost = Vec::new();
        for p in &self.peers {
            let spec = p.assoc.spec();
            let (key, more) = binding(spec);
            for id in key.into_iter().chain(more) {
                let why = match keys.get(id) {
                    None => KeyLossReason::Missing,
                    Some(k) if !k.allows(spec.address) => KeyLossReason::AddressNotAllowed,
                    Some(_) => continue,
                };
                lost.push(KeyLoss {
                    server: spec.name.clone(),
                    key: id,
                    why,
                });
            }
        }
        if !lost.is_empty() {
            return Err(lost);
        }
        let mut rebound = 0;
        for p in &mut self.peers {
            let (key, more) = binding(p.assoc.spec());
            if (key, &more) != (p.assoc.spec().key, &p.assoc.spec().more_keys) {
                p.assoc.rebind(key, more);
                rebound += 1;
            }
        }
        self.keys = keys;
        Ok(rebound)
    }

    /// Tells the core which local port calibration requests leave from, so
    /// failures can name it.
    pub fn set_calibration_port(&mut self, port: u16) {
        self.calibration_port = Some(port);
    }

    /// The associations.
    pub fn associations(&self) -> impl Iterator<Item = &Association> {
        self.peers.iter().map(|p| &p.assoc)
    }

    /// Packets dropped before they could be tied to a server, by reason.
    pub fn global_rejects(&self) -> &BTreeMap<&'static str, u64> {
        &self.global_rejects
    }

    /// The last selection.
    pub fn selection(&self) -> Option<&SelectOutcome> {
        self.selection.as_ref()
    }

    /// The clock mode it was configured with.
    pub fn clock_mode(&self) -> ClockMode {
        self.discipline.config().mode
    }

    /// The last clock decision, if any update was made.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.last_decision.as_ref()
    }

    /// Synchronized, as readiness (`READY=1`) and `wait-sync` mean it: a
    /// server is selected and, outside monitor mode, the last clock update
    /// slewed an offset within the step threshold (after a step, the next
    /// update says whether the step landed). In monitor mode a selection is
    /// enough: the clock is not ours to bring close.
    pub fn synchronized(&self) -> bool {
        if self.selection.as_ref().and_then(|s| s.offset).is_none() {
            return false;
        }
        match self.last_decision {
            Some(Decision::Monitor { .. }) => self.config.discipline.mode == ClockMode::Monitor,
            Some(Decision::Slew { offset, .. }) => offset.abs() <= self.discipline.step_threshold(),
            _ => false,
        }
    }

    /// Our cumulative clock adjustment at monotonic time `mono`: steps,
    /// slews as far as they have run (at `max_slew_ppm`) and frequency
    /// corrections as they have added up.
    pub fn adjustment(&self, mono: Duration) -> NtpDuration {
        self.adjustments.at(mono)
    }

    fn count(&mut self, reason: GlobalRejection) {
        *self.global_rejects.entry(reason.label()).or_insert(0) += 1;
    }

    /// Truechimers selection requires (`selection.min-agreeing`).
    pub fn min_agreeing(&self) -> usize {
        self.config.select.min_agreeing.max(1)
    }

    /// The frequency correction in effect, ppm (0 in monitor mode and until
    /// the discipline sets one).
    pub fn frequency_ppm(&self) -> f64 {
        self.adjustments.frequency * 1e6
    }

    /// The kernel's transmit time `at` of the request sent with `ticket`:
    /// it replaces the clock reading taken when the request was built as
    /// T1, so time spent between building and sending does not count as
    /// path delay (nor bias the calibration). Ignored unless that request is
    /// still in flight and `at` lies within a second after its build time.
    pub fn request_transmitted(&mut self, ticket: Ticket, at: NtpTimestamp) {
        for peer in &mut self.peers {
            if peer.exchanges.transmitted(ticket, at) {
                return;
            }
        }
    }

    /// Counts a packet the I/O layer dropped before it reached the core
    /// (for example one that arrived on another interface than configured:
    /// [`GlobalRejection::WrongInterface`]'s label, `wrong-interface`).
    pub fn count_dropped(&mut self, reason: &'static str) {
        *self.global_rejects.entry(reason).or_insert(0) += 1;
    }

    fn peer_index(&self, addr: IpAddr) -> Option<usize> {
        self.peers
            .iter()
            .position(|p| p.assoc.spec().address == addr)
    }

    /// A broadcast arrived on a multicast (or subnet broadcast) socket.
    /// `random` seeds the calibration start.
    pub fn on_broadcast(
        &mut self,
        inc: Incoming<'_>,
        random: u32,
        clock: &mut dyn Clock,
    ) -> Vec<Action> {
        // Only a packet that moved an association's last acceptance on
        // counts as the group delivering: it passed authentication (MAC or
        // signature), the replay floor, the freshness bound and the rate
        // check (an unusable but authentic one counts too: the path works).
        // Anything else a LAN host can send, or replay, so counting it
        // would let an attacker's junk hide that the real servers' packets
        // no longer arrive.
        let before = self.newest_acceptance();
        let mut actions = self.broadcast(inc, random, clock);
        if self.newest_acceptance() != before {
            actions.extend(self.group_delivered(inc.mono));
        } else {
            let g = self.group_state(inc.mono);
            g.ignored = g.ignored.saturating_add(1);
        }
        actions
    }

    /// The newest acceptance of any association (monotonic).
    fn newest_acceptance(&self) -> Option<Duration> {
        self.peers
            .iter()
            .filter_map(|p| p.assoc.last_accepted())
            .max()
    }

    /// The slowest known poll interval of the servers (64 s while none is
    /// known): what the group's silence is judged by.
    fn slowest_interval(&self) -> Duration {
        self.peers
            .iter()
            .filter(|p| p.assoc.poll().is_some())
            .map(|p| p.assoc.interval())
            .max()
            .unwrap_or(UNKNOWN_POLL_INTERVAL)
    }

    fn group_state(&mut self, now: Duration) -> &mut GroupState {
        let intervals = self.config.group_silent_intervals;
        self.group.get_or_insert_with(|| GroupState {
            watch: GroupWatch::new(now, intervals),
            silences: 0,
            rejoins: 0,
            rejoins_now: 0,
            ignored: 0,
        })
    }

    /// The group delivered an authenticated broadcast at `now`.
    fn group_delivered(&mut self, now: Duration) -> Vec<Action> {
        let g = self.group_state(now);
        g.ignored = 0;
        match g.watch.on_broadcast(now) {
            Some(GroupEvent::GroupBack { silent_for }) => {
                let rejoins = std::mem::take(&mut g.rejoins_now);
                vec![Action::Event(Event::GroupBack {
                    silent_for,
                    rejoins,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// The group watch's tick: a silence is reported once, then re-joins.
    fn group_tick(&mut self, now: Duration) -> Vec<Action> {
        let expected = self.slowest_interval();
        let intervals = self.config.group_silent_intervals.max(1);
        let g = self.group_state(now);
        let mut actions = Vec::new();
        // A silence gives its event and its first re-join on the same tick.
        for _ in 0..2 {
            match g.watch.tick(now, expected) {
                Some(GroupEvent::GroupSilent {
                    since,
                    expected_interval,
                }) => {
                    g.silences += 1;
                    g.rejoins_now = 0;
                    actions.push(Action::Event(Event::GroupSilent {
                        intervals,
                        since,
                        silent_for: now.saturating_sub(since),
                        expected_interval,
                        ignored: g.ignored,
                    }));
                }
                Some(GroupEvent::Rejoin { attempt }) => {
                    g.rejoins += 1;
                    g.rejoins_now = attempt;
                    actions.push(Action::Rejoin { attempt });
                    break;
                }
                Some(GroupEvent::GroupBack { .. }) | None => break,
            }
        }
        actions
    }

    /// The group's delivery (`None` before the first tick or broadcast).
    pub fn group(&self) -> Option<GroupReport> {
        let g = self.group.as_ref()?;
        Some(GroupReport {
            silent: g.watch.is_silent(),
            last_delivery: g.watch.last_broadcast(),
            silent_after: self
                .slowest_interval()
                .saturating_mul(self.config.group_silent_intervals.max(1)),
            silences: g.silences,
            rejoins: g.rejoins,
        })
    }

    fn broadcast(&mut self, inc: Incoming<'_>, random: u32, clock: &mut dyn Clock) -> Vec<Action> {
        let Ok(d) = Datagram::parse(inc.bytes) else {
            self.count(GlobalRejection::BadFormat);
            return Vec::new();
        };
        if d.header.mode != Mode::Broadcast {
            self.count(GlobalRejection::NotBroadcast);
            return Vec::new();
        }
        let src = inc.source.ip();
        let idx = match self.peer_index(src) {
            Some(i) => i,
            None => match self.discover(src, inc.bytes, &d) {
                Some(i) => i,
                None => return Vec::new(),
            },
        };
        let limits = self.config.limits;
        let adjustment = self.adjustments.at(inc.mono);
        let Some(peer) = self.peers.get_mut(idx) else {
            return Vec::new();
        };
        let arrival = Arrival {
            rx: inc.rx,
            mono: inc.mono,
            adjustment,
            frequency: self.adjustments.frequency,
        };
        let Ok(acc) = peer.assoc.check_broadcast(
            inc.bytes,
            &d,
            &self.keys,
            arrival,
            &limits,
            &self.config.groups,
        ) else {
            // Consistent packets behind the replay floor restored from
            // before a restart, and none newer: calibrate, and let its
            // first authenticated reply decide whether to follow them.
            if peer.assoc.behind_restored_floor() {
                peer.assoc.start_calibration(inc.mono, random);
                return vec![Action::Event(Event::Calibrating {
                    server: peer.assoc.spec().name.clone(),
                })];
            }
            // A check it may now need is sent from the next tick.
            return Vec::new();
        };
        let mut actions = Vec::new();
        if peer.assoc.state() == State::Listening {
            peer.assoc.start_calibration(inc.mono, random);
            actions.push(Action::Event(Event::Calibrating {
                server: peer.assoc.spec().name.clone(),
            }));
        }
        // What this broadcast measures: T3 - T4 of itself, or for an
        // interleaved server, of the broadcast before it, with T3 the
        // kernel transmit time this one's origin carries.
        let measured = if peer.assoc.spec().interleave {
            let this = Pending {
                transmit: acc.header.transmit,
                rx: inc.rx,
                mono: inc.mono,
                adjustment,
            };
            let origin = acc.header.origin;
            let pair = peer.pending.replace(this).filter(|prev| {
                let lag = origin - prev.transmit;
                !origin.is_zero()
                    && !lag.is_negative()
                    && lag <= NtpDuration::from_millis(MAX_SEND_LAG_MS)
            });
            match pair {
                Some(prev) => {
                    peer.unpaired = 0;
                    Some((origin - prev.rx, prev.mono, prev.adjustment))
                }
                None => {
                    peer.unpaired += 1;
                    if peer.unpaired == UNPAIRED_WARNING {
                        actions.push(Action::Event(Event::Unpaired {
                            server: peer.assoc.spec().name.clone(),
                            count: UNPAIRED_WARNING,
                        }));
                    }
                    None
                }
            }
        } else {
            Some((acc.apparent_offset, inc.mono, adjustment))
        };
        let Some((apparent_offset, at, adjustment_then)) = measured else {
            return actions;
        };
        if let Some(c) = peer.assoc.calibration_mut() {
            c.observe_broadcast(BroadcastObservation {
                apparent_offset,
                at,
                adjustment: adjustment_then,
            });
        }
        if let Some(one_way) = peer
            .assoc
            .calibration()
            .and_then(calibration::Calibration::one_way_delay)
        {
            // Measured at `at`; our own corrections since then move it.
            let sample = Sample {
                offset: apparent_offset + one_way - (adjustment - adjustment_then),
                delay: one_way * 2,
                dispersion: acc.header.precision.to_duration()
                    + self.config.precision.to_duration(),
                time: inc.mono,
            };
            peer.last_offset = Some(sample.offset);
            let fresh = matches!(peer.filter.add(sample), FilterResult::Accepted(_));
            actions.extend(self.update_clock(inc.mono, fresh, clock));
        }
        actions
    }

    /// Discovery: a new source signing with a trusted key is bound to it.
    fn discover(&mut self, src: IpAddr, raw: &[u8], d: &Datagram) -> Option<usize> {
        if !self.config.discover {
            self.count(GlobalRejection::UnknownSource);
            return None;
        }
        match packet::authenticate(&self.keys, raw, d, Some(src)) {
            PacketAuth::Mac(MacVerdict::Valid(key)) => {
                // One address per key: a second source signing with a key
                // already in use is the same server's packets relayed from
                // a spoofed address, never a new server.
                if self
                    .config
                    .discover_keys
                    .as_ref()
                    .is_some_and(|l| !l.contains(&key))
                {
                    self.count(GlobalRejection::DiscoveryKeyNotAllowed);
                    return None;
                }
                if self.peers.iter().any(|p| p.assoc.spec().accepts(key)) {
                    self.count(GlobalRejection::DiscoveryKeyBound);
                    return None;
                }
                if self.discovered >= self.config.discover_max {
                    self.count(GlobalRejection::DiscoveryFull);
                    return None;
                }
                self.discovered += 1;
                let spec = ServerSpec::new(src, Some(key));
                let precision = self.config.precision.to_duration();
                self.peers
                    .push(Peer::new(spec, self.config.calibration, precision));
                Some(self.peers.len() - 1)
            }
            _ => {
                self.count(GlobalRejection::UnknownSource);
                None
            }
        }
    }

    /// A datagram arrived on the calibration socket.
    pub fn on_reply(&mut self, inc: Incoming<'_>, clock: &mut dyn Clock) -> Vec<Action> {
        let Ok(d) = Datagram::parse(inc.bytes) else {
            self.count(GlobalRejection::BadFormat);
            return Vec::new();
        };
        let Some(idx) = self.peer_index(inc.source.ip()) else {
            self.count(GlobalRejection::ReplyFromUnknownSource);
            return Vec::new();
        };
        if d.header.mode != Mode::Server || inc.source.port() != self.config.server_port {
            self.count(GlobalRejection::NotAReply);
            return Vec::new();
        }
        let keys = &self.keys;
        let Some(peer) = self.peers.get_mut(idx) else {
            return Vec::new();
        };
        let origin = d.header.origin;
        // The request stays outstanding until a reply to it is used: a
        // forged reply that fails authentication cannot use it up and make
        // the genuine one arrive as `bogus-origin`.
        let Some(out) = peer.exchanges.find(origin) else {
            self.count(GlobalRejection::BogusOrigin);
            return Vec::new();
        };
        let name = peer.assoc.spec().name.clone();
        let want = peer.assoc.spec().key;
        let accepted: Vec<KeyId> = peer.assoc.spec().keys().collect();
        if peer.assoc.calibration().is_none() {
            peer.exchanges.complete(origin);
            return Vec::new();
        }
        // A server with a public key: the reply's signature, checked only
        // now that its origin is one of our cookies, decides before
        // anything else (its MAC, its kiss code). A failure is counted by
        // reason on the association and noted for the words of a failed
        // volley, like a bad MAC; nothing else changes: the request stays
        // outstanding for the genuine reply.
        if let Err(why) = peer.assoc.check_reply_signature(&d, inc.mono) {
            if let Some(cal) = peer.assoc.calibration_mut() {
                cal.unusable_reply(ReplyProblem::Signature(why));
            }
            return Vec::new();
        }
        let Some(cal) = peer.assoc.calibration_mut() else {
            return Vec::new();
        };
        let auth = packet::authenticate(keys, inc.bytes, &d, Some(inc.source.ip()));
        let ok = match (want, auth) {
            (Some(_), PacketAuth::Mac(MacVerdict::Valid(got))) => accepted.contains(&got),
            (None, PacketAuth::NoMac | PacketAuth::Mac(MacVerdict::Valid(_))) => true,
            _ => false,
        };
        // A KoD counts only when it echoes our cookie in all three fields
        // and is as authentic as a reply must be: an unsigned KoD from a LAN
        // host cannot end the calibration of a keyed server.
        match kiss(&d.header, out.cookie, ok) {
            Kiss::Counts(code) => {
                peer.exchanges.complete(origin);
                cal.kiss_of_death(code, inc.mono);
                return vec![Action::Event(Event::KissOfDeath { server: name, code })];
            }
            Kiss::Bogus => {
                self.count(if ok {
                    GlobalRejection::BogusKod
                } else {
                    GlobalRejection::UnauthenticatedKod
                });
                return Vec::new();
            }
            Kiss::NotKiss => {}
        }
        if !ok {
            let why = match (auth, want) {
                (PacketAuth::CryptoNak, Some(key)) => ReplyProblem::CryptoNak { key },
                (PacketAuth::NoMac, _) => ReplyProblem::Unsigned,
                (other, _) => ReplyProblem::Authentication(other),
            };
            cal.unusable_reply(why);
            return Vec::new();
        }
        peer.exchanges.complete(origin);
        if let Some(r) = d.header.unusable_reason(&self.config.limits) {
            cal.unusable_reply(ReplyProblem::UnusableTime(r));
            return Vec::new();
        }
        let (offset, delay) =
            calibration::exchange(out.t1, d.header.receive, d.header.transmit, inc.rx);
        let adjustment = self.adjustments.at(inc.mono);
        let anchor = Anchor {
            theta_free: offset + adjustment,
            at: inc.mono,
            slack: delay.abs() / 2,
            rate: self.adjustments.frequency,
        };
        let mut actions = Vec::new();
        if cal.is_done() {
            // The answer to a unicast check.
            peer.exchanges.clear();
            let outcome = peer.assoc.resolve_check(anchor);
            // A spot check that finds nothing wrong is no reason to wait
            // longer before the next check the broadcasts may call for.
            let spot = peer.checks.reason == Some(CheckReason::Spot);
            peer.checks.ended(
                inc.mono,
                spot || matches!(outcome, CheckOutcome::SteppedBack | CheckOutcome::Moved),
            );
            match outcome {
                CheckOutcome::SteppedBack => {
                    // Its samples were of the clock it left.
                    peer.filter.clear();
                    peer.pending = None;
                    actions.push(Action::Event(Event::SteppedBack {
                        server: name.clone(),
                    }));
                }
                CheckOutcome::Refuted => actions.push(Action::Event(Event::BackstepRefuted {
                    server: name.clone(),
                })),
                CheckOutcome::Moved | CheckOutcome::Confirmed => {}
            }
        } else {
            cal.reply(Exchange {
                offset,
                delay,
                forward: d.header.receive - out.t1,
                at: inc.mono,
                adjustment,
            });
            // An authenticated measurement: what broadcasts must agree
            // with from now on, and what those collected so far are judged by.
            peer.assoc.anchor_to(anchor);
            peer.assoc.prune_calibration();
            if peer.assoc.backstep_pending() {
                match peer.assoc.resolve_check(anchor) {
                    CheckOutcome::SteppedBack => actions.push(Action::Event(Event::SteppedBack {
                        server: name.clone(),
                    })),
                    CheckOutcome::Refuted => actions.push(Action::Event(Event::BackstepRefuted {
                        server: name.clone(),
                    })),
                    CheckOutcome::Moved | CheckOutcome::Confirmed => {}
                }
            }
        }
        // The exchange is a real measurement: it feeds the clock filter like
        // ntpd's volley does, so the server is selectable right after the
        // volley instead of after eight broadcast intervals.
        let sample = Sample {
            offset,
            delay: if delay.is_negative() {
                NtpDuration::ZERO
            } else {
                delay
            },
            dispersion: d.header.precision.to_duration() + self.config.precision.to_duration(),
            time: inc.mono,
        };
        peer.last_offset = Some(offset);
        if peer.assoc.last_header().is_some() && peer.assoc.state() != State::Untrusted {
            let fresh = matches!(peer.filter.add(sample), FilterResult::Accepted(_));
            actions.extend(self.update_clock(inc.mono, fresh, clock));
        }
        actions
    }

    /// Timer tick at monotonic `mono`, with our clock reading `clock_now`
    /// (T1 of any request sent now); `random` gives each request its
    /// 64-bit cookie (see [`crate::exchange`]).
    pub fn on_tick(
        &mut self,
        mono: Duration,
        clock_now: NtpTimestamp,
        random: &mut dyn FnMut() -> u64,
        clock: &mut dyn Clock,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let port = self.config.server_port;
        let spacing = self.config.calibration.spacing;
        let local_port = self.calibration_port;
        for peer in &mut self.peers {
            peer.assoc.tick_reach(mono);
            // Requests unanswered for two spacings are lost.
            peer.exchanges.expire(mono, spacing * 2);
            let was_done = peer
                .assoc
                .calibration()
                .is_some_and(calibration::Calibration::is_done);
            let poll = peer.assoc.poll().unwrap_or(6);
            let key = peer.assoc.spec().key;
            let signer = peer
                .assoc
                .spec()
                .public_key
                .as_ref()
                .map(PublicKey::fingerprint);
            let to = SocketAddr::new(peer.assoc.spec().address, port);
            let request = RequestSpec {
                to,
                poll,
                key,
                signer,
                precision: self.config.precision,
                clock_now,
                mono,
            };
            while let Some(cal) = peer.assoc.calibration_mut() {
                if let Some(local) = local_port {
                    cal.set_route(to, local);
                }
                match cal.poll(mono) {
                    Step::SendRequest => {
                        if matches!(cal.phase(), Phase::Volley { sent: 0, .. }) {
                            self.next_burst += 1;
                            peer.burst = self.next_burst;
                        }
                        cal.request_sent(mono);
                        actions.push(peer.request(&request, &self.keys, random()));
                    }
                    Step::WaitUntil(_) | Step::Done => break,
                }
            }
            if was_done {
                actions.extend(peer.drive_check(
                    &request,
                    &self.keys,
                    spacing,
                    random,
                    &mut self.next_burst,
                    self.config.calibration.spot_check,
                ));
            }
            let done = peer
                .assoc
                .calibration()
                .is_some_and(calibration::Calibration::is_done);
            if done && !was_done {
                peer.exchanges.clear();
                peer.assoc.calibration_finished(clock_now);
                if let Some(c) = peer.assoc.calibration() {
                    actions.push(Action::Event(Event::CalibrationDone {
                        server: peer.assoc.spec().name.clone(),
                        to,
                        local_port,
                        phase: c.phase().clone(),
                    }));
                }
            }
        }
        if self.selection.is_some() {
            actions.extend(self.update_clock(mono, false, clock));
        }
        actions.extend(self.group_tick(mono));
        if self.discipline.state() == LoopState::Sync
            && self
                .saved_frequency
                .is_none_or(|(_, at)| mono.saturating_sub(at) >= FREQUENCY_SAVE_EVERY)
        {
            self.saved_frequency = Some((self.discipline.frequency(), mono));
        }
        actions
    }

    /// The frequency to persist: at exit the loop's current one when it is
    /// in SYNC (a settled estimate), otherwise the one last taken (at most
    /// hourly) or restored; `None` when there is none (monitor mode, or not
    /// yet in SYNC).
    pub(crate) fn frequency_to_persist(&self, at_exit: bool) -> Option<Ppm> {
        if at_exit && self.discipline.state() == LoopState::Sync {
            return Some(self.discipline.frequency());
        }
        self.saved_frequency.map(|(f, _)| f)
    }

    /// Starts the discipline from a persisted frequency (before the first
    /// update; not in monitor mode). Returns whether it was taken.
    pub(crate) fn restore_frequency(&mut self, ppm: Ppm) -> bool {
        if self.config.discipline.mode == ClockMode::Monitor
            || !self.discipline.restore_frequency(ppm)
        {
            return false;
        }
        self.saved_frequency = Some((self.discipline.frequency(), Duration::ZERO));
        true
    }

    /// When the next tick is needed (monotonic), at the latest.
    pub fn next_wakeup(&self, mono: Duration) -> Duration {
        let mut next = mono + Duration::from_secs(1);
        for p in &self.peers {
            if let Some(c) = p.assoc.calibration()
                && let Some(at) = c.next_event()
            {
                next = next.min(at.max(mono));
            }
        }
        next
    }

    /// Reruns calibration for a server on request.
    pub fn recalibrate(&mut self, server: IpAddr, mono: Duration) -> Result<(), String> {
        let idx = self
            .peer_index(server)
            .ok_or_else(|| format!("{server} is not a configured server"))?;
        let peer = self.peers.get_mut(idx).ok_or("no such server")?;
        match peer.assoc.calibration_mut() {
            Some(c) => {
                c.restart(mono);
                Ok(())
            }
            None => Err(format!(
                "{server} has not been heard yet; it calibrates on its first broadcast"
            )),
        }
    }

    /// An operator's step (`mcast-client step-now`): steps `clock` by the
    /// selected offset at once, whatever the step and panic thresholds, and
    /// returns it. Refused in monitor mode and while nothing is selected.
    /// Allowed in slew mode too: it is an explicit request. The filters
    /// start over (their samples were of the old clock), so the next
    /// updates select from fresh samples.
    pub fn step_now(
        &mut self,
        mono: Duration,
        clock: &mut dyn Clock,
    ) -> Result<NtpDuration, StepNowError> {
        if self.config.discipline.mode == ClockMode::Monitor {
            return Err(StepNowError::Monitor);
        }
        let offset = self
            .selection
            .as_ref()
            .and_then(|s| s.offset)
            .ok_or(StepNowError::NothingSelected)?;
        let decision = self.discipline.step_now(offset, mono);
        self.decided_at = mono;
        self.last_decision = Some(decision);
        let before = clock.now();
        self.apply(&decision, clock).map_err(StepNowError::Clock)?;
        if let Some(selection) = self.selection.clone() {
            self.note_bound(mono, (before, clock.now()), &decision, true, &selection);
        }
        Ok(offset)
    }

    /// Hands a clock decision to the error bound, with the system peer's
    /// part of it. `applied`: the clock was changed as decided (or, in
    /// monitor mode, nothing was to be).
    fn note_bound(
        &mut self,
        mono: Duration,
        (before, after): (NtpTimestamp, NtpTimestamp),
        decision: &Decision,
        applied: bool,
        selection: &SelectOutcome,
    ) {
        let Some(p) = selection.system_peer.and_then(|i| self.peers.get(i)) else {
            return;
        };
        let survivors = || {
            selection
                .survivors
                .iter()
                .filter_map(|i| self.peers.get(*i))
        };
        let combined = selection.offset.unwrap_or(p.filter.offset());
        let Some(h) = p.assoc.last_header() else {
            return;
        };
        let terms = PeerTerms {
            root_delay: h.root_delay.to_duration(),
            root_dispersion: h.root_dispersion.to_duration(),
            dispersion: p.filter.dispersion(mono),
            jitter: p.filter.jitter(),
            // Without a delay in use (never, while tracking) the whole
            // round trip of the sample.
            calibration: p
                .assoc
                .calibration()
                .and_then(calibration::Calibration::uncertainty)
                .unwrap_or_else(|| p.filter.delay().abs()),
            // True time is in a truechimer's interval, which may be any
            // survivor's: the combined offset may be this far from it.
            spread: survivors()
                .map(|s| (s.filter.offset() - combined).abs())
                .max()
                .unwrap_or(NtpDuration::ZERO),
        };
        let update = match *decision {
            Decision::Monitor { offset } => Update::Measured { offset },
            Decision::Slew { offset, .. } if applied => Update::Measured { offset },
            Decision::Step { .. } if applied => Update::Stepped,
            other => Update::Ignored {
                offset: other.offset(),
            },
        };
        let clocks = Clocks {
            mono,
            before,
            after,
            frequency_known: self.discipline.state() == LoopState::Sync,
            monitor: self.config.discipline.mode == ClockMode::Monitor,
        };
        // The oldest sample the combined offset rests on.
        let sample_at = survivors()
            .filter_map(|s| s.filter.last_update())
            .min()
            .unwrap_or(mono);
        self.bound.update(clocks, sample_at, update, terms);
    }

    /// The bound on the system clock's error at monotonic time `mono`, when
    /// the system clock reads `now`, as published to applications (`None`
    /// before the first clock update).
    pub fn error_bound(&self, mono: Duration, now: NtpTimestamp) -> Option<ErrorBound> {
        let selected = self
            .selection
            .as_ref()
            .is_some_and(|s| s.system_peer.is_some());
        self.bound.at(
            mono,
            now,
            self.adjustments.slewed(mono),
            selected && self.synchronized(),
        )
    }

    /// Carries out a clock decision on `clock` and records what was done to
    /// it (never called in monitor mode, where decisions are only reported).
    /// The decision is taken to be carried out at the time it was made.
    fn apply(&mut self, decision: &Decision, clock: &mut dyn Clock) -> Result<(), String> {
        self.discipline.apply(decision, clock)?;
        let at = self.decided_at;
        match decision {
            Decision::Step { offset } => self.clock_adjusted(*offset, true),
            Decision::Slew {
                correction,
                frequency_ppm,
                ..
            } => {
                self.adjustments.set_frequency(at, *frequency_ppm);
                self.adjustments.slew(at, *correction);
            }
            _ => {}
        }
        Ok(())
    }

    /// Records that the shell changed our clock by `amount` at once, at the
    /// time of the last decision (a step; any slew in progress ends).
    /// Filters are cleared on a step: their samples were measured against
    /// the old clock.
    pub fn clock_adjusted(&mut self, amount: NtpDuration, stepped: bool) {
        self.adjustments.step(self.decided_at, amount);
        if stepped {
            for p in &mut self.peers {
                p.filter.clear();
            }
        }
    }

    /// Reruns selection (every sample and every tick, so a server that
    /// falls silent or whose distance shrinks is reflected at once); only a
    /// fresh filter output feeds the clock discipline.
    fn update_clock(&mut self, mono: Duration, fresh: bool, clock: &mut dyn Clock) -> Vec<Action> {
        let silent = self.config.silent_intervals;
        let candidates: Vec<Candidate> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                !p.assoc.is_silent(mono, silent)
                    && !p.filter.is_empty()
                    && !p.assoc.is_suspect()
                    && p.assoc.state() != State::Untrusted
            })
            .filter_map(|(i, p)| {
                let h = p.assoc.last_header()?;
                Some(Candidate {
                    id: i,
                    offset: p.filter.offset(),
                    root_distance: p.filter.root_distance(
                        h.root_delay.to_duration(),
                        h.root_dispersion.to_duration(),
                        mono,
                    ),
                    jitter: p.filter.jitter(),
                    stratum: h.stratum,
                    overdue: p.assoc.is_overdue(mono),
                })
            })
            .collect();
        let outcome = select(&candidates, &self.config.select);
        let mut actions = Vec::new();
        let monitor = self.config.discipline.mode == ClockMode::Monitor;
        let mut disciplined = false;
        if fresh && let Some(offset) = outcome.offset {
            let decision = self.discipline.update(offset, outcome.jitter, mono);
            self.decided_at = mono;
            self.last_decision = Some(decision);
            actions.push(Action::Clock(decision));
            // Monitor mode never touches the clock, whatever clock it was given.
            let mut applied = monitor;
            let before = clock.now();
            if !monitor {
                match self.apply(&decision, clock) {
                    Ok(()) => {
                        applied = true;
                        disciplined =
                            matches!(decision, Decision::Slew { .. } | Decision::Step { .. });
                    }
                    Err(error) => {
                        actions.push(Action::Event(Event::ClockAdjustmentFailed { error }));
                    }
                }
            }
            self.note_bound(mono, (before, clock.now()), &decision, applied, &outcome);
        }
        if !monitor {
            let selected = self.selected(&outcome, &candidates);
            actions.extend(self.tell_kernel(mono, disciplined, selected, clock));
        }
        self.selection = Some(outcome);
        actions
    }

    /// The selection as the kernel state needs it: the system peer's root
    /// distance and the survivors' leap indicators.
    fn selected(&self, outcome: &SelectOutcome, candidates: &[Candidate]) -> Option<Selected> {
        let peer = outcome.system_peer?;
        let offset = outcome.offset?;
        let root_distance = candidates.iter().find(|c| c.id == peer)?.root_distance;
        let leaps: Vec<LeapPending> = outcome
            .survivors
            .iter()
            .filter_map(|i| self.peers.get(*i)?.assoc.last_header())
            .map(|h| leap_of(h.leap))
            .collect();
        Some(Selected {
            root_distance,
            offset,
            jitter: outcome.jitter,
            servers: outcome.survivors.len(),
            insert: leaps.iter().filter(|l| **l == LeapPending::Insert).count(),
            delete: leaps.iter().filter(|l| **l == LeapPending::Delete).count(),
        })
    }

    /// Hands the kernel clock state the tracker wants to `clock`, if it
    /// wants one now (never called in monitor mode).
    fn tell_kernel(
        &mut self,
        mono: Duration,
        disciplined: bool,
        selected: Option<Selected>,
        clock: &mut dyn Clock,
    ) -> Vec<Action> {
        let input = KernelInput {
            mono,
            utc: clock.now(),
            disciplined,
            selected,
        };
        let Some(state) = self.kernel.update(&input) else {
            return Vec::new();
        };
        let mut actions = vec![Action::Kernel(state)];
        if let Err(error) = clock.set_kernel_state(state) {
            actions.push(Action::Event(Event::ClockAdjustmentFailed { error }));
        }
        actions
    }

    /// The kernel clock state last handed to the clock (`None`: never, as
    /// in monitor mode).
    pub fn kernel_state(&self) -> Option<&KernelState> {
        self.kernel.last()
    }

    /// Offset of a server's last sample.
    pub fn last_offset(&self, server: IpAddr) -> Option<NtpDuration> {
        self.peer_index(server)
            .and_then(|i| self.peers.get(i))
            .and_then(|p| p.last_offset)
    }

    /// A server's filter (offset, delay, jitter).
    pub fn filter(&self, server: IpAddr) -> Option<&ClockFilter> {
        self.peer_index(server)
            .and_then(|i| self.peers.get(i))
            .map(|p| &p.filter)
    }

    /// Restores one server's replay floor (see [`crate::client::persist`]):
    /// false when no configured server has that address and key.
    pub(crate) fn restore_last_transmit(
        &mut self,
        address: IpAddr,
        key: Option<u16>,
        bits: u64,
    ) -> bool {
        let Some(peer) = self.peers.iter_mut().find(|p| {
            p.assoc.spec().address == address && p.assoc.spec().key.map(KeyId::get) == key
        }) else {
            return false;
        };
        peer.assoc
            .restore_last_transmit(NtpTimestamp::from_bits(bits));
        true
    }

    /// Restores one server's calibration measured at `measured_at`: false
    /// when no configured server has that address and key.
    pub(crate) fn restore_calibration(
        &mut self,
        address: IpAddr,
        key: Option<u16>,
        one_way: NtpDuration,
        exchanges: usize,
        measured_at: NtpTimestamp,
    ) -> bool {
        let Some(peer) = self.peers.iter_mut().find(|p| {
            p.assoc.spec().address == address && p.assoc.spec().key.map(KeyId::get) == key
        }) else {
            return false;
        };
        peer.assoc
            .restore_calibration(one_way, exchanges, measured_at);
        true
    }

    /// The calibration settings.
    pub(crate) fn calibration_config(&self) -> &CalibrationConfig {
        &self.config.calibration
    }

    /// The key a server is bound to.
    pub fn key_of(&self, server: IpAddr) -> Option<KeyId> {
        self.peer_index(server)
            .and_then(|i| self.peers.get(i))
            .and_then(|p| p.assoc.spec().key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn ms(m: f64) -> NtpDuration {
        NtpDuration::from_seconds_f64(m / 1e3)
    }

    fn close(a: NtpDuration, b: NtpDuration) -> bool {
        (a - b).abs() < NtpDuration::from_nanos(10)
    }

    #[test]
    fn adjustments_take_effect_as_the_kernel_carries_them_out() {
        let mut a = Adjustments::new(500e-6);
        // A 16 ms slew at 100 s runs at 500 ppm: 1 ms after 2 s, all of it after 32 s.
        a.slew(secs(100.0), ms(16.0));
        assert!(close(a.at(secs(100.0)), NtpDuration::ZERO));
        assert!(close(a.at(secs(102.0)), ms(1.0)), "{}", a.at(secs(102.0)));
        assert!(close(a.at(secs(200.0)), ms(16.0)));
        // A new slew replaces the one in progress: what was done stays.
        a.slew(secs(110.0), ms(-2.0));
        assert!(close(a.at(secs(110.0)), ms(5.0)));
        assert!(close(a.at(secs(114.0)), ms(3.0)));
        // A step acts at once and ends the slew.
        a.step(secs(111.0), ms(100.0));
        assert!(close(a.at(secs(111.0)), ms(104.5)));
        assert!(close(a.at(secs(500.0)), ms(104.5)));
        // A frequency correction adds up: +10 ppm for 100 s is 1 ms.
        a.set_frequency(secs(600.0), Ppm(10.0));
        assert!(close(a.at(secs(700.0)), ms(105.5)));
        a.set_frequency(secs(700.0), Ppm(-10.0));
        assert!(close(a.at(secs(800.0)), ms(104.5)));
    }

    /// Calibration subtracts our own corrections from each measurement; a
    /// slew counted in full when it is started (the kernel needs 32 s for
    /// 16 ms) corrupted the one-way delay of servers calibrated meanwhile.
    #[test]
    fn a_slew_counts_only_as_far_as_it_has_run() {
        let mut core = ClientCore::new(
            CoreConfig {
                servers: Vec::new(),
                discover: false,
                discover_max: DEFAULT_DISCOVER_MAX,
                discover_keys: None,
                groups: Vec::new(),
                calibration: CalibrationConfig::default(),
                select: SelectParams::default(),
                silent_intervals: 8,
                limits: SampleLimits::default(),
                server_port: 123,
                precision: Log2Seconds(-20),
                discipline: DisciplineConfig {
                    mode: crate::client::discipline::ClockMode::Step,
                    ..DisciplineConfig::default()
                },
                group_silent_intervals: 3,
                bound: BoundConfig::default(),
            },
            KeyStore::from_keys(std::path::Path::new("none"), []).expect("empty store"),
        );
        struct Kernel;
        impl Clock for Kernel {
            fn now(&self) -> NtpTimestamp {
                NtpTimestamp::ZERO
            }
            fn step(&mut self, _: NtpDuration) -> Result<(), String> {
                Ok(())
            }
            fn slew(&mut self, _: NtpDuration) -> Result<(), String> {
                Ok(())
            }
            fn set_frequency_ppm(&mut self, _: Ppm) -> Result<(), String> {
                Ok(())
            }
            fn set_kernel_state(
                &mut self,
                _: crate::client::kernel::KernelState,
            ) -> Result<(), String> {
                Ok(())
            }
        }
        let d = core.discipline.update(ms(16.0), ms(0.1), secs(100.0));
        core.decided_at = secs(100.0);
        assert!(
            matches!(d, Decision::Slew { correction, .. } if close(correction, ms(16.0))),
            "{d:?}"
        );
        core.apply(&d, &mut Kernel).expect("applied");
        assert!(close(core.adjustment(secs(100.0)), NtpDuration::ZERO));
        assert!(close(core.adjustment(secs(102.0)), ms(1.0)));
        assert!(close(core.adjustment(secs(140.0)), ms(16.0)));
        core.decided_at = secs(104.0);
        core.apply(&Decision::Step { offset: ms(-300.0) }, &mut Kernel)
            .expect("applied");
        assert!(close(core.adjustment(secs(200.0)), ms(2.0 - 300.0)));
    }
}
