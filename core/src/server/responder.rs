//! Answers clients' calibration requests (mode 3 -> mode 4), sans-I/O.
//!
//! The order of checks keeps the server cheap and keeps spoofed traffic
//! from hurting the clients it claims to come from (issue 13):
//!
//! 1. parse; a request sent to a multicast or broadcast address is dropped
//!    and counted (`multicast_destination`) before anything else: answering
//!    it would make every server on the LAN reply to one (spoofed) victim;
//! 2. the MAC of a mode-3 request, at most **one** verification per request
//!    whatever its content (one key id, one digest; a failure is never
//!    retried with other keys), and none for other modes;
//! 3. the per-source rate limit, with the budget that verification chose
//!    ([`Budget`]): only a request that verified under a key of the keys
//!    file charges its source's verified bucket; everything else goes to
//!    the source's unverified budget;
//! 4. the answer; a request that asks for a signed reply
//!    ([`mcast_keys::signed::request_field`]) also needs a token of the
//!    global signing budget ([`crate::server::ratelimit::SignBudget`]),
//!    taken under the same lock as step 3.
//!
//! Calibration without secrets (issue 14): a request that carries the
//! request field naming one of our signing keys' fingerprints gets a time
//! reply signed with that key ([`ServerKey::sign_reply_field`], the
//! broadcast's field format with [`mcast_keys::signed::REPLY_CONTEXT`] and
//! the unicast marker as destination), whether or not it has a MAC, and
//! even with `require-auth`: the reply's signature, not a shared key,
//! authenticates it, and it answers only the request whose cookie (its
//! transmit timestamp) it echoes as origin. Such a request without a MAC
//! is charged to its source's unverified budget; with a valid MAC (the
//! migration path) to the verified one, and its reply is signed and then
//! MAC'd over the signature field too. A request field naming a key we do
//! not hold, or a malformed one, gets nothing (`sign-key-unknown`): an
//! unsigned answer would be refused by the client anyway. The field is as
//! long as the signature field, so a signed reply is never larger than its
//! request.
//!
//! What traffic we cannot authenticate gets (the policy, chosen so that
//! keyless ntpd clients keep working and a forger gains nothing):
//!
//! - an unsigned request, when authentication is not required: an unsigned
//!   time reply within the unverified budget (what a keyless ntpd client
//!   needs), silence over it;
//! - a request with a MAC that fails (unknown key, bad digest or length,
//!   key not allowed from that address): a crypto-NAK within the
//!   unverified budget (ntpd clients log it and keep polling), silence over
//!   it;
//! - never a KoD: a KoD to an address we cannot authenticate is a weapon
//!   against that address (it makes the victim back off, or stop), so over
//!   the unverified budget there is only silence. A KoD RATE goes only to a
//!   request that verified, signed with its key.
//!
//! The verification is not skipped for a source whose unverified budget is
//! spent: that would let a forger spend it in a client's name and so lock
//! the client's signed requests out again. The crypto work stays bounded
//! all the same: one verification per received request, and signing only
//! for a request that verified and is within its verified budget (KoDs
//! included). Over the verified budget nothing is signed.
//!
//! A reply is never larger than its request, there is no mode 6/7
//! service, and modes other than 3 are never answered (no KoD for mode 4
//! or 5 packets).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mcast_keys::signed::{self, ServerKey, SignatureWish};
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{Datagram, Header, LeapIndicator, Log2Seconds, Mode, NtpTimestamp, RefId};

use crate::server::ratelimit::{Budget, Mru, Observation, RateVerdict};
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
    /// Requests sent to a multicast or broadcast address: dropped.
    #[serde(default)]
    pub multicast_destination: u64,
    /// Packets we could not authenticate (no MAC, a failing MAC, other
    /// modes) over their source's unverified budget: dropped, silently.
    #[serde(default)]
    pub unverified_limited: u64,
    /// Time replies (KoDs too) signed with an Ed25519 key.
    #[serde(default)]
    pub signed_sent: u64,
    /// Requests for a signed reply over the global signing budget:
    /// dropped, silently.
    #[serde(default)]
    pub sign_budget: u64,
    /// Requests for a signed reply naming a key we do not hold (or with a
    /// malformed request field): dropped.
    #[serde(default)]
    pub sign_key_unknown: u64,
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
        self.multicast_destination += other.multicast_destination;
        self.unverified_limited += other.unverified_limited;
        self.signed_sent += other.signed_sent;
        self.sign_budget += other.sign_budget;
        self.sign_key_unknown += other.sign_key_unknown;
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
    /// A verified request over the rate limit, KoD already sent (or KoDs
    /// off).
    RateLimited,
    /// An unverified packet over its source's unverified budget.
    UnverifiedLimited,
    /// Sent to a multicast or broadcast address.
    MulticastDestination,
    /// No MAC where one is required.
    Unauthenticated,
    /// A crypto-NAK sent to us.
    CryptoNak,
    /// The answer would be larger than the request.
    WouldAmplify,
    /// The batch had no room left for a reply.
    NoRoom,
    /// A request for a signed reply over the global signing budget.
    SignBudget,
    /// A request for a signed reply naming a key we do not hold, or a
    /// malformed request field.
    SigningKeyUnknown,
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

/// Where a request was sent, as far as the socket layer knows
/// (`IP_PKTINFO` / `IPV6_RECVPKTINFO`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Destination {
    /// Not known (a socket without packet info): taken as unicast.
    #[default]
    Unknown,
    /// This address.
    Address(IpAddr),
    /// A directed broadcast address of this host's interfaces (the shell
    /// knows those; the core does not).
    InterfaceBroadcast(IpAddr),
}

impl Destination {
    /// Whether this is a multicast or broadcast destination: 224.0.0.0/4,
    /// 255.255.255.255, ff00::/8 (also as IPv4-mapped IPv6), or an
    /// interface's directed broadcast.
    pub fn is_group(&self) -> bool {
        match *self {
            Destination::Unknown => false,
            Destination::InterfaceBroadcast(_) => true,
            Destination::Address(ip) => is_group_address(ip),
        }
    }
}

/// Whether `ip` is a multicast or the limited broadcast address.
pub fn is_group_address(ip: IpAddr) -> bool {
    let v4 = |a: std::net::Ipv4Addr| a.is_multicast() || a.is_broadcast();
    match ip {
        IpAddr::V4(a) => v4(a),
        IpAddr::V6(a) => a.is_multicast() || a.to_ipv4_mapped().is_some_and(v4),
    }
}

/// A received request and the address it was sent to.
#[derive(Debug, Clone, Copy)]
pub struct Addressed<'a> {
    /// The request.
    pub request: Request<'a>,
    /// Its destination address.
    pub destination: Destination,
}

/// What the responder is handed per datagram: a [`Request`] (destination
/// unknown, so unicast) or an [`Addressed`] one.
pub trait Incoming<'a> {
    /// The request.
    fn request(&self) -> &Request<'a>;
    /// Where it was sent.
    fn destination(&self) -> Destination;
}

impl<'a> Incoming<'a> for Request<'a> {
    fn request(&self) -> &Request<'a> {
        self
    }

    fn destination(&self) -> Destination {
        Destination::Unknown
    }
}

impl<'a> Incoming<'a> for Addressed<'a> {
    fn request(&self) -> &Request<'a> {
        &self.request
    }

    fn destination(&self) -> Destination {
        self.destination
    }
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
    signers: Vec<std::sync::Arc<ServerKey>>,
}

impl Responder {
    /// A responder with an empty MRU table.
    pub fn new(config: ResponderConfig, mru: Mru) -> Self {
        Responder {
            answerer: Answerer::new(config, mru.config().average_log2),
            mru: Mutex::new(mru),
            scratch: BatchScratch::default(),
            signers: Vec::new(),
        }
    }

    /// The signing keys requests may ask for (the destinations'
    /// `signing-key`s).
    pub fn with_signers(mut self, signers: Vec<std::sync::Arc<ServerKey>>) -> Self {
        self.signers = signers;
        self
    }

    /// Counters so far.
    pub fn counters(&self) -> &ResponderCounters {
        self.answerer.counters()
    }

    /// The MRU table.
    pub fn mru(&self) -> MutexGuard<'_, Mru> {
        lock(&self.mru)
    }

    /// Handles one datagram (a [`Request`], or an [`Addressed`] one):
    /// [`Answerer::handle_batch`] with a batch of one. On
    /// [`Outcome::Reply`] the answer is in `out`. `clock` is read once, as
    /// late as possible, for the transmit timestamp.
    pub fn handle<'a, R: Incoming<'a>>(
        &mut self,
        req: &R,
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
            &Context {
                sync,
                keys,
                signers: &self.signers,
            },
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
    /// The signing keys a request may ask for, by fingerprint.
    pub signers: &'a [std::sync::Arc<ServerKey>],
}

/// Buffers [`Answerer::handle_batch`] reuses from one batch to the next.
#[derive(Debug, Default)]
pub struct BatchScratch {
    parsed: Vec<Step>,
    verdicts: Vec<RateVerdict>,
    /// Whether each request got a token of the signing budget.
    tokens: Vec<bool>,
}

/// A request after step 1 (parse, destination, MAC).
#[derive(Debug)]
enum Step {
    /// Answered already: this outcome, and no rate-limit entry.
    Done(Outcome),
    /// For the rate limiter, then [`Answerer::answer`].
    Judge(Datagram, Option<PacketAuth>, Wish),
}

/// Whether a request asks for a signed reply, and with which of our keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wish {
    /// No request field.
    Plain,
    /// Signed with `signers[i]`.
    Signer(usize),
    /// A key we do not hold, or a malformed field.
    Unknown,
}

impl Wish {
    fn of(d: &Datagram, signers: &[std::sync::Arc<ServerKey>]) -> Wish {
        match signed::requested_key(d) {
            SignatureWish::None => Wish::Plain,
            SignatureWish::Malformed => Wish::Unknown,
            SignatureWish::Key(fp) => signers
                .iter()
                .position(|k| k.public().fingerprint() == fp)
                .map_or(Wish::Unknown, Wish::Signer),
        }
    }

    /// Whether the answer to this request will be signed, should its rate
    /// allow one: a wish we can grant, with no MAC or a valid one.
    fn signs(self, auth: Option<&PacketAuth>) -> bool {
        matches!(self, Wish::Signer(_))
            && matches!(
                auth,
                Some(PacketAuth::NoMac | PacketAuth::Mac(MacVerdict::Valid(_)))
            )
    }
}

/// The rate limiter's verdict on a parsed datagram, which it also records
/// (step 3 of 4; see [`Answerer`]). Every parsed packet counts, whatever
/// its mode, as in ntpd's `ntp_monitor()`; only a mode-3 request whose MAC
/// verified is charged to the verified budget.
fn observe(
    mru: &mut Mru,
    req: &Request<'_>,
    d: &Datagram,
    auth: Option<&PacketAuth>,
) -> RateVerdict {
    let budget = match auth {
        Some(PacketAuth::Mac(MacVerdict::Valid(_))) => Budget::Verified,
        _ => Budget::Unverified,
    };
    mru.observe(
        Observation {
            addr: req.source.ip(),
            port: req.source.port(),
            mode: d.header.mode.to_bits(),
            version: d.header.version,
            key_id: d.mac.as_ref().map(|m| m.key_id),
            budget,
        },
        req.monotonic,
    )
}

/// Everything of the responder but the rate-limit table: settings,
/// counters and the reply logic. A request goes through these steps:
/// [`Answerer::parse`] (parse, destination, the one MAC verification),
/// [`observe`] (the one step that needs the shared [`Mru`], so a thread
/// takes its lock once for a whole batch of requests), and
/// [`Answerer::answer`] (signing, outside that lock).
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
    /// received together (each a [`Request`] or an [`Addressed`] one): each
    /// is parsed and its MAC checked, the shared rate-limit table is locked
    /// **once** for the whole batch to record and judge them, and the
    /// answers (signing) are made outside that lock. Each reply goes to
    /// `replies`; `outcome` hears every request's outcome by index. `clock`
    /// is read once per time reply, as late as possible.
    #[allow(clippy::too_many_arguments)]
    pub fn handle_batch<'a, R: Incoming<'a>>(
        &mut self,
        scratch: &mut BatchScratch,
        mru: &Mutex<Mru>,
        requests: &[R],
        ctx: &Context<'_>,
        clock: &mut dyn FnMut() -> NtpTimestamp,
        replies: &mut dyn Replies,
        outcome: &mut dyn FnMut(usize, Outcome),
    ) {
        scratch.parsed.clear();
        scratch.parsed.extend(
            requests
                .iter()
                .map(|r| self.parse(r, ctx.keys, ctx.signers)),
        );
        scratch.verdicts.clear();
        scratch.tokens.clear();
        {
            let mut table = lock(mru);
            for (r, step) in requests.iter().zip(&scratch.parsed) {
                let (verdict, token) = match step {
                    Step::Judge(d, auth, wish) => {
                        let v = observe(&mut table, r.request(), d, auth.as_ref());
                        let token = wish.signs(auth.as_ref())
                            && v != RateVerdict::LimitedSilent
                            && table.take_signature(r.request().monotonic);
                        (v, token)
                    }
                    Step::Done(_) => (RateVerdict::Allowed, false),
                };
                scratch.verdicts.push(verdict);
                scratch.tokens.push(token);
            }
        }
        for (i, (((r, step), rate), token)) in requests
            .iter()
            .zip(&scratch.parsed)
            .zip(&scratch.verdicts)
            .zip(&scratch.tokens)
            .enumerate()
        {
            let (d, auth, wish) = match step {
                Step::Done(o) => {
                    outcome(i, *o);
                    continue;
                }
                Step::Judge(d, auth, wish) => (d, auth, *wish),
            };
            let signer = match wish {
                Wish::Signer(k) if *token => ctx.signers.get(k).map(|k| &**k),
                _ => None,
            };
            let Some(out) = replies.next() else {
                outcome(i, Outcome::Dropped(DropReason::NoRoom));
                continue;
            };
            let o = self.answer(
                r.request(),
                d,
                (auth.as_ref(), wish, signer),
                *rate,
                ctx.sync,
                ctx.keys,
                &mut *clock,
                out,
            );
            if let Outcome::Reply(_) = o {
                replies.commit(i);
            }
            outcome(i, o);
        }
    }

    /// Step 1: counts the datagram, parses it, drops it when it was sent
    /// to a group address, and checks the MAC of a mode-3 request (the one
    /// verification it costs). A datagram that does not parse (counted as
    /// bad format) or went to a group is not recorded in the MRU table.
    fn parse<'a>(
        &mut self,
        r: &impl Incoming<'a>,
        keys: &KeyStore,
        signers: &[std::sync::Arc<ServerKey>],
    ) -> Step {
        let req = r.request();
        self.counters.received += 1;
        let Ok(d) = Datagram::parse(req.bytes) else {
            self.counters.bad_format += 1;
            return Step::Done(Outcome::Dropped(DropReason::BadFormat));
        };
        if d.header.version == 4 {
            self.counters.current_version += 1;
        } else {
            self.counters.older_version += 1;
        }
        if r.destination().is_group() {
            self.counters.multicast_destination += 1;
            return Step::Done(Outcome::Dropped(DropReason::MulticastDestination));
        }
        let auth = (d.header.mode == Mode::Client)
            .then(|| packet::authenticate(keys, req.bytes, &d, Some(req.source.ip())));
        let wish = if d.header.mode == Mode::Client {
            Wish::of(&d, signers)
        } else {
            Wish::Plain
        };
        Step::Judge(d, auth, wish)
    }

    /// Step 4: the answer to a parsed datagram given its authentication
    /// (mode 3 only) and the rate limiter's verdict. On [`Outcome::Reply`]
    /// it is in `out`. `clock` is read once, as late as possible, for the
    /// transmit timestamp. Nothing over a budget is signed. `signer` is
    /// the key to sign with when the request wished for it and got a token
    /// of the signing budget.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        req: &Request<'_>,
        d: &Datagram,
        (auth, wish, signer): (Option<&PacketAuth>, Wish, Option<&ServerKey>),
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
        let Some(auth) = auth else {
            // Step 1 checks every mode-3 request.
            self.counters.restricted += 1;
            return Outcome::Dropped(DropReason::Unauthenticated);
        };
        if wish == Wish::Unknown {
            // Rate-recorded like any request; never answered unsigned.
            self.counters.sign_key_unknown += 1;
            return Outcome::Dropped(DropReason::SigningKeyUnknown);
        }
        if let PacketAuth::Mac(MacVerdict::Valid(k)) = *auth {
            // The verified budget: time reply, KoD RATE (once per burst)
            // or silence, each answer signed with the request's key.
            return match rate {
                RateVerdict::Allowed | RateVerdict::LimitedKod
                    if wish.signs(Some(auth)) && signer.is_none() =>
                {
                    self.counters.sign_budget += 1;
                    Outcome::Dropped(DropReason::SignBudget)
                }
                RateVerdict::Allowed => {
                    let mut reply = self.time_reply(&d.header, req, sync, None);
                    reply.transmit = clock();
                    let kind = ReplyKind::Time(Some(k));
                    self.finish(req, reply, (Some(k), signer), keys, kind, out)
                }
                RateVerdict::LimitedKod => {
                    self.counters.rate_limited += 1;
                    let kod = kod_rate(&d.header, self.kod_average_log2);
                    let kind = ReplyKind::KissOfDeath;
                    self.finish(req, kod, (Some(k), signer), keys, kind, out)
                }
                RateVerdict::LimitedSilent => {
                    self.counters.rate_limited += 1;
                    Outcome::Dropped(DropReason::RateLimited)
                }
            };
        }
        // The unverified budget: over it, silence and nothing else (never
        // a KoD: see the module documentation).
        if rate != RateVerdict::Allowed {
            self.counters.unverified_limited += 1;
            return Outcome::Dropped(DropReason::UnverifiedLimited);
        }
        match auth {
            PacketAuth::NoMac if wish.signs(Some(auth)) => match signer {
                // Signed with the key it asked for: no MAC needed, whatever
                // `require-auth` says (see the module documentation).
                Some(signer) => {
                    let mut reply = self.time_reply(&d.header, req, sync, None);
                    reply.transmit = clock();
                    let kind = ReplyKind::Time(None);
                    self.finish(req, reply, (None, Some(signer)), keys, kind, out)
                }
                None => {
                    self.counters.sign_budget += 1;
                    Outcome::Dropped(DropReason::SignBudget)
                }
            },
            PacketAuth::NoMac if !self.config.require_auth => {
                let mut reply = self.time_reply(&d.header, req, sync, None);
                reply.transmit = clock();
                self.finish(req, reply, (None, None), keys, ReplyKind::Time(None), out)
            }
            PacketAuth::NoMac => {
                self.counters.restricted += 1;
                Outcome::Dropped(DropReason::Unauthenticated)
            }
            PacketAuth::CryptoNak => {
                self.counters.restricted += 1;
                Outcome::Dropped(DropReason::CryptoNak)
            }
            PacketAuth::Mac(v) => {
                if matches!(v, MacVerdict::SourceNotAllowed { .. }) {
                    self.counters.restricted += 1;
                } else {
                    self.counters.auth_failed += 1;
                }
                let reply = self.time_reply(&d.header, req, sync, None);
                packet::crypto_nak(&Datagram::new(reply), out);
                self.check_size(req, ReplyKind::CryptoNak, out)
            }
        }
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
        (key, signer): (Option<KeyId>, Option<&ServerKey>),
        keys: &KeyStore,
        kind: ReplyKind,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let mut d = Datagram::new(header);
        if let Some(signer) = signer {
            // The signature covers the header as sent (its origin is the
            // request's cookie); the MAC, if any, then covers the field too.
            d.extensions
                .push(signer.sign_reply_field(&header.to_bytes()));
        }
        match key.and_then(|k| keys.get(k)) {
            Some(k) => packet::sign(k, &d, out),
            None => {
                out.clear();
                d.write_signed_part(out);
            }
        }
        let o = self.check_size(req, kind, out);
        if signer.is_some() && matches!(o, Outcome::Reply(_)) {
            self.counters.signed_sent += 1;
        }
        o
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ratelimit::RateLimitConfig;
    use crate::server::sync::SystemHeader;
    use mcast_proto::NtpShort;
    use std::path::Path;

    const TX: NtpTimestamp = NtpTimestamp::from_parts(0xeeac_d097, 0x2000_0000);

    fn keys() -> KeyStore {
        KeyStore::parse(
            "1 MD5 ResponderTestKey1\n2 SHA1 0123456789abcdef0123456789abcdef01234567\n",
            Path::new("test.keys"),
        )
        .expect("keys")
    }

    fn synced() -> SyncStatus {
        SyncStatus::Synchronized(SystemHeader {
            leap: LeapIndicator::NoWarning,
            stratum: 2,
            reference_id: RefId::from_code("GPS"),
            root_delay: NtpShort::from_bits(0x100),
            root_dispersion: NtpShort::from_bits(0x200),
            reference_time: NtpTimestamp::from_parts(0xeeac_d000, 0),
        })
    }

    fn responder(require_auth: bool) -> Responder {
        Responder::new(
            ResponderConfig {
                require_auth,
                precision: Log2Seconds(-20),
            },
            Mru::new(RateLimitConfig::default()),
        )
    }

    /// A mode-3 request with transmit `n`: unsigned, signed with `key`, or
    /// signed with `key` and then one digest bit flipped.
    fn request(n: u32, key: Option<u16>, corrupt: bool) -> Vec<u8> {
        let mut h = Header::new(Mode::Client);
        h.poll = Log2Seconds(6);
        h.transmit = NtpTimestamp::from_parts(0xeeac_d100, n);
        let d = Datagram::new(h);
        let mut out = Vec::new();
        match key.and_then(|k| keys().get(KeyId::new(u32::from(k))?).cloned()) {
            Some(k) => packet::sign(&k, &d, &mut out),
            None => d.write_signed_part(&mut out),
        }
        if corrupt && let Some(b) = out.last_mut() {
            *b ^= 1;
        }
        out
    }

    fn at<'a>(bytes: &'a [u8], from: &str, secs: f64) -> Request<'a> {
        Request {
            bytes,
            source: from.parse().expect("socket address"),
            received_at: TX,
            monotonic: Duration::from_secs_f64(secs),
        }
    }

    fn ask(r: &mut Responder, req: &impl Incoming<'static>, out: &mut Vec<u8>) -> Outcome {
        r.handle(req, &synced(), &keys(), || TX, out)
    }

    #[test]
    fn spoofed_unsigned_requests_do_not_lock_out_a_keyed_clients_volley() {
        // Attack 5: two unsigned requests a second in the client's name
        // for a minute; its six signed requests, 2 s apart, all get a
        // signed time reply.
        let mut r = responder(false);
        let mut out = Vec::new();
        let spoofed = Box::leak(request(7, None, false).into_boxed_slice());
        let mut answered = Vec::new();
        for i in 0..120u32 {
            let t = 100.0 + 0.5 * f64::from(i);
            ask(&mut r, &at(spoofed, "198.18.0.2:123", t), &mut out);
            if i % 4 == 1 && answered.len() < 6 {
                let signed = Box::leak(request(i, Some(1), false).into_boxed_slice());
                answered.push(ask(
                    &mut r,
                    &at(signed, "198.18.0.2:123", t + 0.2),
                    &mut out,
                ));
            }
        }
        let time = Outcome::Reply(ReplyKind::Time(KeyId::new(1)));
        assert_eq!(answered, vec![time; 6], "every signed request answered");
        let c = r.counters();
        assert_eq!((c.kod_sent, c.rate_limited), (0, 0), "{c:?}");
        assert!(c.unverified_limited >= 90, "the forgery is limited: {c:?}");
    }

    #[test]
    fn over_the_unverified_budget_a_forger_gets_silence_never_a_kod() {
        for (label, bytes) in [
            ("unsigned", request(1, None, false)),
            ("bad MAC", request(1, Some(2), true)),
            ("unknown key", {
                let mut b = request(1, Some(1), false);
                if let Some(id) = b.get_mut(48..52) {
                    id.copy_from_slice(&77u32.to_be_bytes());
                }
                b
            }),
        ] {
            let mut r = responder(false);
            let mut out = Vec::new();
            let bytes = Box::leak(bytes.into_boxed_slice());
            let outcomes: Vec<Outcome> = (0..10)
                .map(|i| {
                    let t = 5.0 + 0.01 * f64::from(i);
                    ask(&mut r, &at(bytes, "198.18.0.9:123", t), &mut out)
                })
                .collect();
            let first = if label == "unsigned" {
                Outcome::Reply(ReplyKind::Time(None))
            } else {
                Outcome::Reply(ReplyKind::CryptoNak)
            };
            assert_eq!(outcomes[0], first, "{label}: one answer within the budget");
            assert!(
                outcomes[1..]
                    .iter()
                    .all(|o| *o == Outcome::Dropped(DropReason::UnverifiedLimited)),
                "{label}: then silence: {outcomes:?}"
            );
            let c = r.counters();
            assert_eq!((c.kod_sent, c.unverified_limited), (0, 9), "{label}: {c:?}");
            let e = r.mru().get("198.18.0.9".parse().expect("ip")).cloned();
            let e = e.expect("recorded");
            assert_eq!(e.verified_bucket(), Default::default(), "{label}");
        }
    }

    #[test]
    fn a_signed_burst_still_gets_a_signed_kod_then_silence() {
        let mut r = responder(true);
        let mut out = Vec::new();
        let bytes = Box::leak(request(3, Some(1), false).into_boxed_slice());
        let outcomes: Vec<Outcome> = (0..5)
            .map(|i| {
                ask(
                    &mut r,
                    &at(bytes, "198.18.0.5:123", 1.0 + 0.05 * f64::from(i)),
                    &mut out,
                )
            })
            .collect();
        assert_eq!(outcomes[0], Outcome::Reply(ReplyKind::Time(KeyId::new(1))));
        assert_eq!(outcomes[1], Outcome::Reply(ReplyKind::KissOfDeath));
        assert!(
            outcomes[2..]
                .iter()
                .all(|o| *o == Outcome::Dropped(DropReason::RateLimited)),
            "{outcomes:?}"
        );
    }

    #[test]
    fn requests_to_a_group_or_broadcast_address_are_dropped_and_counted() {
        let mut r = responder(false);
        let mut out = Vec::new();
        let bytes = Box::leak(request(1, Some(1), false).into_boxed_slice());
        let groups = [
            Destination::Address("224.0.1.1".parse().expect("ip")),
            Destination::Address("239.255.255.250".parse().expect("ip")),
            Destination::Address("255.255.255.255".parse().expect("ip")),
            Destination::Address("ff02::101".parse().expect("ip")),
            Destination::Address("::ffff:224.0.1.1".parse().expect("ip")),
            Destination::InterfaceBroadcast("198.18.0.255".parse().expect("ip")),
        ];
        for (i, destination) in groups.into_iter().enumerate() {
            let a = Addressed {
                request: at(bytes, "198.18.0.7:123", 10.0 * i as f64),
                destination,
            };
            assert_eq!(
                ask(&mut r, &a, &mut out),
                Outcome::Dropped(DropReason::MulticastDestination),
                "{destination:?}"
            );
            assert!(out.is_empty());
        }
        assert_eq!(r.counters().multicast_destination, 6);
        assert!(r.mru().is_empty(), "not recorded either");
        // Unicast and unknown destinations are answered.
        for (t, destination) in [
            (
                100.0,
                Destination::Address("198.18.0.1".parse().expect("ip")),
            ),
            (
                200.0,
                Destination::Address("2001:db8::1".parse().expect("ip")),
            ),
            (300.0, Destination::Unknown),
        ] {
            let a = Addressed {
                request: at(bytes, "198.18.0.8:123", t),
                destination,
            };
            assert_eq!(
                ask(&mut r, &a, &mut out),
                Outcome::Reply(ReplyKind::Time(KeyId::new(1))),
                "{destination:?}"
            );
        }
    }

    fn signer(n: u8) -> std::sync::Arc<ServerKey> {
        std::sync::Arc::new(ServerKey::from_seed(&[n; 32]))
    }

    /// A request for a reply signed by `wants`, MAC'd with `key` if any.
    fn signed_request(n: u32, wants: &ServerKey, key: Option<u16>) -> &'static [u8] {
        let mut h = Header::new(Mode::Client);
        h.poll = Log2Seconds(6);
        h.transmit = NtpTimestamp::from_parts(0xeeac_d100, n);
        let mut d = Datagram::new(h);
        d.extensions
            .push(signed::request_field(wants.public().fingerprint()));
        let mut out = Vec::new();
        match key.and_then(|k| keys().get(KeyId::new(u32::from(k))?).cloned()) {
            Some(k) => packet::sign(&k, &d, &mut out),
            None => d.write_signed_part(&mut out),
        }
        Box::leak(out.into_boxed_slice())
    }

    fn signing_responder(
        rate: u32,
        burst: u32,
        signers: Vec<std::sync::Arc<ServerKey>>,
    ) -> Responder {
        Responder::new(
            ResponderConfig {
                require_auth: true,
                precision: Log2Seconds(-20),
            },
            Mru::new(RateLimitConfig {
                sign_rate: rate,
                sign_burst: burst,
                ..RateLimitConfig::default()
            }),
        )
        .with_signers(signers)
    }

    #[test]
    fn requests_for_signed_replies_from_many_sources_share_one_signing_budget() {
        let key = signer(1);
        let mut r = signing_responder(2, 3, vec![std::sync::Arc::clone(&key)]);
        let mut out = Vec::new();
        let outcomes: Vec<Outcome> = (0..10u8)
            .map(|i| {
                let from = format!("198.18.1.{i}:123");
                ask(
                    &mut r,
                    &at(signed_request(u32::from(i), &key, None), &from, 5.0),
                    &mut out,
                )
            })
            .collect();
        let signed_reply = Outcome::Reply(ReplyKind::Time(None));
        let over = Outcome::Dropped(DropReason::SignBudget);
        assert_eq!(outcomes[..3], [signed_reply; 3], "the burst");
        assert_eq!(outcomes[3..], [over; 7], "then silence");
        assert_eq!((r.counters().signed_sent, r.counters().sign_budget), (3, 7));
        // Half a second refills one signature (2 per second).
        let later = at(signed_request(99, &key, None), "198.18.2.1:123", 5.5);
        assert_eq!(ask(&mut r, &later, &mut out), signed_reply);
        let d = Datagram::parse(&out).expect("reply parses");
        assert_eq!(signed::check_reply(key.public(), &d), Ok(()));
        assert_eq!(d.header.origin, NtpTimestamp::from_parts(0xeeac_d100, 99));
        // Plain requests are not charged to it.
        let plain = Box::leak(request(1, Some(1), false).into_boxed_slice());
        let plain_outcome = ask(&mut r, &at(plain, "198.18.2.2:123", 5.5), &mut out);
        assert_eq!(
            plain_outcome,
            Outcome::Reply(ReplyKind::Time(KeyId::new(1)))
        );
    }

    #[test]
    fn a_request_naming_a_key_we_do_not_hold_gets_nothing() {
        let mut r = signing_responder(200, 400, vec![signer(1)]);
        let mut out = Vec::new();
        let other = signer(2);
        for (i, key) in [None, Some(1)].into_iter().enumerate() {
            let req = at(
                signed_request(1, &other, key),
                "198.18.0.3:123",
                10.0 * i as f64,
            );
            assert_eq!(
                ask(&mut r, &req, &mut out),
                Outcome::Dropped(DropReason::SigningKeyUnknown),
                "MAC {key:?}"
            );
        }
        assert_eq!(r.counters().sign_key_unknown, 2);
        assert_eq!(r.counters().replies_sent, 0);
    }

    #[test]
    fn a_macd_request_for_a_signed_reply_gets_one_signed_and_macd_of_its_length() {
        let key = signer(1);
        let mut r = signing_responder(200, 400, vec![signer(3), std::sync::Arc::clone(&key)]);
        let mut out = Vec::new();
        let bytes = signed_request(5, &key, Some(2));
        let outcome = ask(&mut r, &at(bytes, "198.18.0.4:123", 1.0), &mut out);
        assert_eq!(outcome, Outcome::Reply(ReplyKind::Time(KeyId::new(2))));
        assert_eq!(out.len(), bytes.len());
        let d = Datagram::parse(&out).expect("parses");
        assert_eq!(signed::check_reply(key.public(), &d), Ok(()));
        assert!(matches!(
            packet::authenticate(&keys(), &out, &d, None),
            PacketAuth::Mac(MacVerdict::Valid(k)) if k.get() == 2
        ));
    }
}
