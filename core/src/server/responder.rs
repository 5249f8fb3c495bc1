//! Answers clients' calibration requests (mode 3 -> mode 4), sans-I/O.
//!
//! The order of checks follows what keeps the server cheap and safe under
//! abuse: parse, then the per-source rate limit (before any crypto), then
//! the MAC. A reply is never larger than its request, there is no mode 6/7
//! service, and modes other than 3 are never answered (no KoD for mode 4
//! or 5 packets).

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{Datagram, Header, LeapIndicator, Log2Seconds, Mode, NtpTimestamp, RefId};

use crate::server::ratelimit::{Mru, Observation, RateVerdict};
use crate::server::sync::SyncStatus;

/// Counters like `ntpq -c sysstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResponderCounters {
    /// Every packet handed to the responder.
    pub received: u64,
    /// NTPv4 packets that parsed.
    pub current_version: u64,
    /// NTPv1-3 packets that parsed.
    pub older_version: u64,
    /// Packets that did not parse (length, version, mode 0, framing).
    pub bad_format: u64,
    /// Requests whose MAC failed or named a key we lack (answered with a crypto-NAK).
    pub auth_failed: u64,
    /// Packets of modes we do not answer (1, 2, 4, 5).
    pub declined: u64,
    /// Packets refused by policy: mode 6/7, no MAC where one is required,
    /// a key not allowed for the source, crypto-NAKs.
    pub restricted: u64,
    /// Packets over the rate limit.
    pub rate_limited: u64,
    /// KoD RATE packets sent.
    pub kod_sent: u64,
    /// Normal replies sent.
    pub replies_sent: u64,
    /// Crypto-NAKs sent.
    pub crypto_naks_sent: u64,
}

impl ResponderCounters {
    /// Adds `other`'s counts to these (several receive threads' counters
    /// make the server's).
    pub fn add(&mut self, other: &ResponderCounters) {
        self.received += other.received;
        self.current_version += other.current_version;
        self.older_version += other.older_version;
        self.bad_format += other.bad_format;
        self.auth_failed += other.auth_failed;
        self.declined += other.declined;
        self.restricted += other.restricted;
        self.rate_limited += other.rate_limited;
        self.kod_sent += other.kod_sent;
        self.replies_sent += other.replies_sent;
        self.crypto_naks_sent += other.crypto_naks_sent;
    }
}

/// Responder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponderConfig {
    /// Requests without a MAC get nothing.
    pub require_auth: bool,
    /// Our clock's precision.
    pub precision: Log2Seconds,
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send the bytes left in the output buffer back to the source.
    Reply(ReplyKind),
    /// Send nothing.
    Dropped(DropReason),
}

/// Kind of answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// A time reply, signed with this key (or unsigned).
    Time(Option<KeyId>),
    /// A KoD RATE.
    KissOfDeath,
    /// A crypto-NAK (the request's MAC failed).
    CryptoNak,
}

/// Why nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Did not parse.
    BadFormat,
    /// Not a mode-3 request.
    NotARequest,
    /// Mode 6 or 7.
    ControlMode,
    /// Over the rate limit, KoD already sent.
    RateLimited,
    /// No MAC where one is required.
    Unauthenticated,
    /// A crypto-NAK sent to us.
    CryptoNak,
    /// The answer would be larger than the request.
    WouldAmplify,
    /// The batch had no room left for a reply.
    NoRoom,
}

/// A received request, with what the socket layer knows of it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The datagram.
    pub bytes: &'a [u8],
    /// Who sent it.
    pub source: SocketAddr,
    /// When it arrived (kernel receive timestamp where available).
    pub received_at: NtpTimestamp,
    /// Monotonic time of arrival, for the rate limiter.
    pub monotonic: Duration,
}

/// The calibration responder of one thread: the single-threaded
/// composition of an [`Answerer`] and its own rate-limit table. The daemon,
/// with several receive threads, shares one [`Mru`] among their
/// [`Answerer`]s instead (see [`Answerer`]).
#[derive(Debug)]
pub struct Responder {
    answerer: Answerer,
    mru: Mutex<Mru>,
    scratch: BatchScratch,
}

impl Responder {
    /// A responder with an empty MRU table.
    pub fn new(config: ResponderConfig, mru: Mru) -> Self {
        Responder {
            answerer: Answerer::new(config, mru.config().average_log2),
            mru: Mutex::new(mru),
            scratch: BatchScratch::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &ResponderCounters {
        self.answerer.counters()
    }

    /// The MRU table.
    pub fn mru(&self) -> MutexGuard<'_, Mru> {
        lock(&self.mru)
    }

    /// Handles one datagram: [`Answerer::handle_batch`] with a batch of
    /// one. On [`Outcome::Reply`] the answer is in `out`. `clock` is read
    /// once, as late as possible, for the transmit timestamp.
    pub fn handle(
        &mut self,
        req: &Request<'_>,
        sync: &SyncStatus,
        keys: &KeyStore,
        clock: impl FnOnce() -> NtpTimestamp,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let mut clock = Some(clock);
        let mut read = || clock.take().map_or(NtpTimestamp::ZERO, |c| c());
        let mut sink = One { out, used: false };
        let mut outcome = Outcome::Dropped(DropReason::BadFormat);
        self.answerer.handle_batch(
            &mut self.scratch,
            &self.mru,
            std::slice::from_ref(req),
            &Context { sync, keys },
            &mut read,
            &mut sink,
            &mut |_, o| outcome = o,
        );
        if !matches!(outcome, Outcome::Reply(_)) {
            sink.out.clear();
        }
        outcome
    }
}

/// A lock whose holder panicked is still usable: the table is valid after
/// each single update.
fn lock(m: &Mutex<Mru>) -> MutexGuard<'_, Mru> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the replies of a batch are written: the daemon's send batch, or
/// one buffer.
pub trait Replies {
    /// A cleared buffer for the next reply; `None` when there is no room
    /// (the request then gets no answer).
    fn next(&mut self) -> Option<&mut Vec<u8>>;
    /// The bytes written into the last buffer answer request `index` of
    /// the batch: send them.
    fn commit(&mut self, index: usize);
}

struct One<'a> {
    out: &'a mut Vec<u8>,
    used: bool,
}

impl Replies for One<'_> {
    fn next(&mut self) -> Option<&mut Vec<u8>> {
        if self.used {
            return None;
        }
        self.out.clear();
        Some(self.out)
    }

    fn commit(&mut self, _index: usize) {
        self.used = true;
    }
}

/// What every request of a batch is answered against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The server's sync state now.
    pub sync: &'a SyncStatus,
    /// The keys now.
    pub keys: &'a KeyStore,
}

/// Buffers [`Answerer::handle_batch`] reuses from one batch to the next.
#[derive(Debug, Default)]
pub struct BatchScratch {
    parsed: Vec<Option<Datagram>>,
    verdicts: Vec<RateVerdict>,
}

/// The rate limiter's verdict on a parsed datagram, which it also records
/// (step 2 of 3; see [`Answerer`]). Every parsed packet counts, whatever
/// its mode, as in ntpd's `ntp_monitor()`.
fn observe(mru: &mut Mru, req: &Request<'_>, d: &Datagram) -> RateVerdict {
    mru.observe(
        Observation {
            addr: req.source.ip(),
            port: req.source.port(),
            mode: d.header.mode.to_bits(),
            version: d.header.version,
            key_id: d.mac.as_ref().map(|m| m.key_id),
        },
        req.monotonic,
    )
}

/// Everything of the responder but the rate-limit table: settings,
/// counters and the reply logic. A request goes through three steps:
/// [`Answerer::parse`], [`observe`] (the one step that needs the shared
/// [`Mru`], so a thread takes its lock once for a whole batch of requests),
/// and [`Answerer::answer`] (MAC checks and signing, outside that lock).
#[derive(Debug, Clone)]
pub struct Answerer {
    config: ResponderConfig,
    /// Poll floor of a KoD (the rate limit's average interval, log2 s).
    kod_average_log2: u8,
    counters: ResponderCounters,
}

impl Answerer {
    /// An answerer whose KoDs advertise `kod_average_log2` as poll floor.
    pub fn new(config: ResponderConfig, kod_average_log2: u8) -> Self {
        Answerer {
            config,
            kod_average_log2,
            counters: ResponderCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> &ResponderCounters {
        &self.counters
    }

    /// The one entry point of the responder, for a batch of requests
    /// received together: each is parsed, the shared rate-limit table is
    /// locked **once** for the whole batch to record and judge them, and the
    /// answers (MAC checks and signing) are made outside that lock. Each
    /// reply goes to `replies`; `outcome` hears every request's outcome by
    /// index. `clock` is read once per time reply, as late as possible.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_batch(
        &mut self,
        scratch: &mut BatchScratch,
        mru: &Mutex<Mru>,
        requests: &[Request<'_>],
        ctx: &Context<'_>,
        clock: &mut dyn FnMut() -> NtpTimestamp,
        replies: &mut dyn Replies,
        outcome: &mut dyn FnMut(usize, Outcome),
    ) {
        scratch.parsed.clear();
        scratch
            .parsed
            .extend(requests.iter().map(|req| self.parse(req)));
        scratch.verdicts.clear();
        {
            let mut table = lock(mru);
            for (req, d) in requests.iter().zip(&scratch.parsed) {
                scratch.verdicts.push(match d {
                    Some(d) => observe(&mut table, req, d),
                    None => RateVerdict::Allowed,
                });
            }
        }
        for (i, ((req, d), rate)) in requests
            .iter()
            .zip(&scratch.parsed)
            .zip(&scratch.verdicts)
            .enumerate()
        {
            let Some(d) = d else {
                outcome(i, Outcome::Dropped(DropReason::BadFormat));
                continue;
            };
            let Some(out) = replies.next() else {
                outcome(i, Outcome::Dropped(DropReason::NoRoom));
                continue;
            };
            let o = self.answer(req, d, *rate, ctx.sync, ctx.keys, &mut *clock, out);
            if let Outcome::Reply(_) = o {
                replies.commit(i);
            }
            outcome(i, o);
        }
    }

    /// Step 1: counts the datagram and parses it; `None` (counted as bad
    /// format) when it does not parse.
    fn parse(&mut self, req: &Request<'_>) -> Option<Datagram> {
        self.counters.received += 1;
        let Ok(d) = Datagram::parse(req.bytes) else {
            self.counters.bad_format += 1;
            return None;
        };
        if d.header.version == 4 {
            self.counters.current_version += 1;
        } else {
            self.counters.older_version += 1;
        }
        Some(d)
    }

    /// Step 3: the answer to a parsed datagram given the rate limiter's
    /// verdict. On [`Outcome::Reply`] it is in `out`. `clock` is read once,
    /// as late as possible, for the transmit timestamp. A request over the
    /// limit that gets no KoD costs no MAC computation.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        req: &Request<'_>,
        d: &Datagram,
        rate: RateVerdict,
        sync: &SyncStatus,
        keys: &KeyStore,
        clock: impl FnOnce() -> NtpTimestamp,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        match d.header.mode {
            Mode::Client => {}
            Mode::Control | Mode::Private => {
                self.counters.restricted += 1;
                return Outcome::Dropped(DropReason::ControlMode);
            }
            _ => {
                self.counters.declined += 1;
                return Outcome::Dropped(DropReason::NotARequest);
            }
        }
        if rate == RateVerdict::LimitedSilent {
            self.counters.rate_limited += 1;
            return Outcome::Dropped(DropReason::RateLimited);
        }
        let auth = packet::authenticate(keys, req.bytes, d, Some(req.source.ip()));
        // Which key the answer is signed with, or why there is no answer
        // (and whether that is an `auth_failed` rather than `restricted`).
        // Counted once, below: a request over the limit counts as that.
        let signing: Result<Option<KeyId>, (bool, Outcome)> = match auth {
            PacketAuth::Mac(MacVerdict::Valid(k)) => Ok(Some(k)),
            PacketAuth::NoMac if !self.config.require_auth => Ok(None),
            PacketAuth::NoMac => Err((false, Outcome::Dropped(DropReason::Unauthenticated))),
            PacketAuth::CryptoNak => Err((false, Outcome::Dropped(DropReason::CryptoNak))),
            PacketAuth::Mac(MacVerdict::SourceNotAllowed { .. }) => {
                Err((false, Outcome::Reply(ReplyKind::CryptoNak)))
            }
            PacketAuth::Mac(
                MacVerdict::UnknownKey(_)
                | MacVerdict::InvalidMac(_)
                | MacVerdict::BadLength { .. },
            ) => Err((true, Outcome::Reply(ReplyKind::CryptoNak))),
        };
        if rate == RateVerdict::LimitedKod {
            self.counters.rate_limited += 1;
            // Only a request we would answer gets a KoD; a forged one gets nothing.
            let Ok(key) = signing else {
                return Outcome::Dropped(DropReason::RateLimited);
            };
            let kod = kod_rate(&d.header, self.kod_average_log2);
            return self.finish(req, kod, key, keys, ReplyKind::KissOfDeath, out);
        }
        let key = match signing {
            Ok(k) => k,
            Err((auth_failed, outcome)) => {
                if auth_failed {
                    self.counters.auth_failed += 1;
                } else {
                    self.counters.restricted += 1;
                }
                if outcome != Outcome::Reply(ReplyKind::CryptoNak) {
                    return outcome;
                }
                let reply = self.time_reply(&d.header, req, sync, None);
                packet::crypto_nak(&Datagram::new(reply), out);
                return self.check_size(req, ReplyKind::CryptoNak, out);
            }
        };
        let mut reply = self.time_reply(&d.header, req, sync, None);
        reply.transmit = clock();
        self.finish(req, reply, key, keys, ReplyKind::Time(key), out)
    }

    fn time_reply(
        &self,
        request: &Header,
        req: &Request<'_>,
        sync: &SyncStatus,
        transmit: Option<NtpTimestamp>,
    ) -> Header {
        let mut h = sync.fill(Mode::Server, request.poll, self.config.precision);
        h.version = request.version;
        // ntpd clients put their previous exchange in origin and receive:
        // only the request's transmit timestamp is echoed.
        h.origin = request.transmit;
        h.receive = req.received_at;
        h.transmit = transmit.unwrap_or(NtpTimestamp::ZERO);
        h
    }

    fn finish(
        &mut self,
        req: &Request<'_>,
        header: Header,
        key: Option<KeyId>,
        keys: &KeyStore,
        kind: ReplyKind,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let d = Datagram::new(header);
        match key.and_then(|k| keys.get(k)) {
            Some(k) => packet::sign(k, &d, out),
            None => {
                out.clear();
                d.write_signed_part(out);
            }
        }
        self.check_size(req, kind, out)
    }

    fn check_size(&mut self, req: &Request<'_>, kind: ReplyKind, out: &mut Vec<u8>) -> Outcome {
        if out.len() > req.bytes.len() {
            out.clear();
            return Outcome::Dropped(DropReason::WouldAmplify);
        }
        match kind {
            ReplyKind::Time(_) => self.counters.replies_sent += 1,
            ReplyKind::KissOfDeath => self.counters.kod_sent += 1,
            ReplyKind::CryptoNak => self.counters.crypto_naks_sent += 1,
        }
        Outcome::Reply(kind)
    }
}

/// A KoD RATE as ntpd sends it: LI 3, stratum 0, refid RATE, the request's
/// version, precision, root delay and dispersion and reference time; poll
/// at least our average interval; origin = receive = transmit = the
/// request's transmit timestamp.
fn kod_rate(request: &Header, average_log2: u8) -> Header {
    let mut h = Header::new(Mode::Server);
    h.leap = LeapIndicator::Unsynchronized;
    h.version = request.version;
    h.stratum = 0;
    h.reference_id = RefId::from_code("RATE");
    let min_poll = i8::try_from(average_log2).unwrap_or(i8::MAX);
    h.poll = Log2Seconds(request.poll.0.max(min_poll));
    h.precision = request.precision;
    h.root_delay = request.root_delay;
    h.root_dispersion = request.root_dispersion;
    h.reference = request.reference;
    h.origin = request.transmit;
    h.receive = request.transmit;
    h.transmit = request.transmit;
    h
}
