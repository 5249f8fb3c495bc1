//! One configured (or discovered) server: the trust checks its broadcasts
//! must pass, its calibration, and what tracking it has learnt.
//!
//! Order of checks (security model R2-R6): parse, source address, MAC with
//! *this server's* key id and address list; only then poll consistency,
//! replay (strictly increasing transmit), freshness (the apparent offset
//! agrees with the last authenticated measurement, within a bound that
//! grows at the maximum drift rate) and rate (one packet per 2^poll, with
//! an allowance); and only a packet that passed all of them updates the
//! state those checks compare against. A rejected packet is counted by
//! reason and changes nothing else.
//!
//! A host without the key can only re-send old packets (or, on path, hold
//! genuine ones back). So a packet behind the last accepted one is never
//! accepted on packet count alone: consecutive ones that are spaced like a
//! real stream only make a *candidate* backward step, which any accepted
//! packet of the newer stream cancels and which is adopted only when an
//! authenticated unicast check with a fresh cookie agrees with its time
//! ([`Association::resolve_check`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mcast_keys::signed::{self, PublicKey, SignatureProblem};
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{Datagram, Header, Mode, NtpDuration, NtpTimestamp, SampleLimits};

use crate::client::calibration::{Calibration, CalibrationConfig, Phase};

/// How a server is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Its address (the source address of its broadcasts).
    pub address: IpAddr,
    /// The key its packets must be signed with, the first of its `keys`
    /// (calibration requests are signed with it); `None` when
    /// authentication is explicitly off for it, or when `public_key` alone
    /// authenticates it.
    pub key: Option<KeyId>,
    /// Further keys its packets may verify with (a key rollover: the
    /// others of `keys = [old, new]`).
    pub more_keys: Vec<KeyId>,
    /// Display name.
    pub name: String,
    /// The server sends interleaved broadcasts (its `interleave = true`):
    /// each packet's origin field is the kernel transmit time of the one
    /// before, which is then used instead of that packet's own transmit
    /// field. Set by configuration only, never inferred from packets.
    pub interleave: bool,
    /// The server's Ed25519 public key (`public-key`): when set, a packet
    /// without a valid signature from it is rejected whatever its MAC says,
    /// and so is a calibration reply (its requests ask for signed replies
    /// with [`mcast_keys::signed::request_field`]).
    pub public_key: Option<PublicKey>,
}

impl ServerSpec {
    /// A server named by its address, sending basic (not interleaved)
    /// broadcasts signed with `key`.
    pub fn new(address: IpAddr, key: Option<KeyId>) -> Self {
        ServerSpec {
            address,
            key,
            more_keys: Vec::new(),
            name: address.to_string(),
            interleave: false,
            public_key: None,
        }
    }

    /// Every key its packets may verify with, `key` first.
    pub fn keys(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.key.into_iter().chain(self.more_keys.iter().copied())
    }

    /// Whether a packet verified with `key` is this server's.
    pub fn accepts(&self, key: KeyId) -> bool {
        self.keys().any(|k| k == key)
    }
}

/// Why a packet from this server was not used. Counted, never acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rejection {
    /// No MAC, and this server requires one.
    Unauthenticated,
    /// A crypto-NAK.
    CryptoNak,
    /// Signed with a key id other than this server's.
    WrongKey,
    /// A key id the keys file does not have.
    UnknownKey,
    /// The MAC did not verify (or had the wrong length).
    BadMac,
    /// The key's address list does not include this source.
    SourceNotAllowed,
    /// Transmit timestamp not later than the last accepted one.
    Replay,
    /// Sooner than 2^poll after the last accepted packet.
    TooEarly,
    /// Poll field differs from the one this server has been sending.
    PollChanged,
    /// Never time: zero transmit, LI 3, stratum 0/16, root distance.
    Unusable,
    /// The apparent offset disagrees with the last authenticated
    /// measurement by more than the freshness bound: an old recording,
    /// a packet held back on the path, or a clock that jumped.
    Stale,
    /// A candidate backward step of the server's clock that the unicast
    /// check contradicted (counted once per candidate).
    BackstepRefuted,
    /// No signature field, and this server has a public key.
    Unsigned,
    /// A signature field that is not well formed.
    BadSignatureField,
    /// Signed with another key than the pinned one.
    SigningKeyUnknown,
    /// Signed for a group this client does not listen to.
    WrongGroup,
    /// The signature does not verify.
    BadSignature,
    /// More signatures to check than the per-server budget allows: not
    /// checked, not used.
    VerifyBudget,
}

impl Rejection {
    /// Every reason, in declaration order (metrics show each one, at 0
    /// until it happens).
    pub const ALL: [Rejection; 18] = [
        Rejection::Unauthenticated,
        Rejection::CryptoNak,
        Rejection::WrongKey,
        Rejection::UnknownKey,
        Rejection::BadMac,
        Rejection::SourceNotAllowed,
        Rejection::Replay,
        Rejection::TooEarly,
        Rejection::PollChanged,
        Rejection::Unusable,
        Rejection::Stale,
        Rejection::BackstepRefuted,
        Rejection::Unsigned,
        Rejection::BadSignatureField,
        Rejection::SigningKeyUnknown,
        Rejection::WrongGroup,
        Rejection::BadSignature,
        Rejection::VerifyBudget,
    ];

    /// Label for counters and status.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Unauthenticated => "unauthenticated",
            Rejection::CryptoNak => "crypto-nak",
            Rejection::WrongKey => "wrong-key",
            Rejection::UnknownKey => "unknown-key",
            Rejection::BadMac => "bad-mac",
            Rejection::SourceNotAllowed => "source-not-allowed",
            Rejection::Replay => "replay",
            Rejection::TooEarly => "too-early",
            Rejection::PollChanged => "poll-changed",
            Rejection::Unusable => "unusable",
            Rejection::Stale => "stale",
            Rejection::BackstepRefuted => "backstep-refuted",
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignatureField => "bad-signature-field",
            Rejection::SigningKeyUnknown => "signing-key-unknown",
            Rejection::WrongGroup => "wrong-group",
            Rejection::BadSignature => "bad-signature",
            Rejection::VerifyBudget => "verify-budget",
        }
    }
}

/// The association's mode, as status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Configured, nothing verified heard yet.
    Listening,
    /// Heard; measuring the path delay by unicast (ntpq's `u`).
    Calibrating,
    /// Tracking from broadcasts alone (ntpq's `b`). Never goes back to unicast.
    Tracking,
    /// Calibration measured a round trip over the bound: the stream does
    /// not agree with the server's unicast time (an old recording, or a
    /// path too slow to trust). Never selected, never tracked on the
    /// fallback delay; `recalibrate` measures again.
    Untrusted,
}

/// A broadcast that passed every check, ready to become a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Its header.
    pub header: Header,
    /// T3 - T4.
    pub apparent_offset: NtpDuration,
}

/// Consecutive verified packets that must agree before a changed poll or a
/// backward step of the server's clock is believed (the step also needs a
/// unicast check).
const CONFIRMATIONS: u8 = 4;

/// The freshness bound's fixed part: send latency, scheduling and the
/// server's own error.
const FRESHNESS_FLOOR_MS: i64 = 20;

/// The freshness bound grows at the largest drift rate between two clocks
/// that the discipline allows (500 ppm each way).
const MAX_DRIFT: f64 = 1000e-6;

/// Consecutive stale packets after which the association asks for a
/// unicast check (one alone is a spike, and is only rejected).
const STALE_RUN_FOR_CHECK: u32 = 2;

/// What a unicast check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The candidate backward step agreed with it: followed.
    SteppedBack,
    /// The candidate backward step disagreed with it: dropped (a replay).
    Refuted,
    /// The offset moved from the last measurement (a clock jumped):
    /// broadcasts are judged by the new one.
    Moved,
    /// The offset is where it was: the stale packets were held back or
    /// spikes.
    Confirmed,
}

/// When and where this packet arrived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// T4 on our clock.
    pub rx: NtpTimestamp,
    /// Monotonic arrival.
    pub mono: Duration,
    /// Our cumulative clock adjustment at arrival (what our steps and
    /// slews added), so an offset can be taken free of our corrections.
    pub adjustment: NtpDuration,
    /// Our frequency correction in force (s/s): how fast an offset free of
    /// our corrections moves while the discipline holds the clock.
    pub frequency: f64,
}

/// The last authenticated measurement of the server's offset, free of our
/// own corrections: what a fresh broadcast must agree with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    /// Offset (server minus client) plus our cumulative adjustment.
    pub theta_free: NtpDuration,
    /// When it was measured (monotonic).
    pub at: Duration,
    /// Its own uncertainty (half the round trip of an exchange).
    pub slack: NtpDuration,
    /// Our frequency correction then (s/s): the free offset moves at this
    /// rate while the discipline holds the clock, so it is carried along.
    pub rate: f64,
}

impl Anchor {
    /// The offset free of our corrections expected at `at`.
    pub fn expected(&self, at: Duration) -> NtpDuration {
        self.theta_free + NtpDuration::from_seconds_f64(self.rate * signed_secs(at, self.at))
    }
}

fn signed_secs(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() - b.as_secs_f64()
}

/// A run of packets behind the last accepted one that look like the
/// server's clock went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Backstep {
    /// Transmit of the newest candidate packet.
    transmit: NtpTimestamp,
    /// Its arrival (monotonic).
    at: Duration,
    /// Its apparent offset free of our corrections.
    apparent_free: NtpDuration,
    /// Packets in the run.
    count: u8,
}

/// One server.
#[derive(Debug, Clone)]
pub struct Association {
    spec: ServerSpec,
    calibration_config: CalibrationConfig,
    calibration: Option<Calibration>,
    /// Transmit timestamp of the last accepted packet.
    last_transmit: Option<NtpTimestamp>,
    /// Monotonic arrival of the last accepted packet.
    last_accepted: Option<Duration>,
    /// Monotonic arrival of the last packet that was usable time (not
    /// LI=3, stratum 0/16 ...): what silence is judged by.
    last_usable: Option<Duration>,
    /// Poll the server has been sending.
    poll: Option<i8>,
    /// A different poll seen in consecutive verified packets, and how often.
    poll_candidate: Option<(i8, u8)>,
    /// Verified packets behind `last_transmit`, spaced like a stream and
    /// increasing among themselves, with no accepted packet since: a
    /// server clock that may have stepped back.
    backstep: Option<Backstep>,
    /// What fresh broadcasts must agree with.
    anchor: Option<Anchor>,
    /// `last_transmit` came from a persisted state, not from a packet.
    restored_floor: bool,
    /// Our clock when the calibration in use was measured.
    calibrated_at: Option<NtpTimestamp>,
    /// The calibration in use was measured before a restart.
    calibration_restored: bool,
    /// Consecutive stale packets.
    stale_run: u32,
    /// A stale packet came since the last accepted one or check: not
    /// selectable, and judged by the freshness bound as it was then (so a
    /// stream held back on the path cannot wait until the bound has grown
    /// around it).
    suspect: Option<NtpDuration>,
    reach: u8,
    /// Monotonic time the reach register last shifted.
    reach_shifted_at: Option<Duration>,
    rejected: BTreeMap<Rejection, u64>,
    accepted: u64,
    last_header: Option<Header>,
    last_key: Option<KeyId>,
    unicast_sent: u64,
    /// Signature checks left, and when the budget was last refilled.
    verify_budget: (f64, Option<Duration>),
}

/// Signature checks per second per server (a broadcast stream needs at
/// most one a second; the rest is room for loss of the budget to forgeries).
pub const VERIFY_RATE: f64 = 32.0;
/// Signature checks that may be spent at once.
pub const VERIFY_BURST: f64 = 64.0;

impl Association {
    /// A new association in the Listening state.
    pub fn new(spec: ServerSpec, calibration_config: CalibrationConfig) -> Self {
        Association {
            spec,
            calibration_config,
            calibration: None,
            last_transmit: None,
            last_accepted: None,
            last_usable: None,
            poll: None,
            poll_candidate: None,
            backstep: None,
            anchor: None,
            restored_floor: false,
            calibrated_at: None,
            calibration_restored: false,
            stale_run: 0,
            suspect: None,
            reach: 0,
            reach_shifted_at: None,
            rejected: BTreeMap::new(),
            accepted: 0,
            last_header: None,
            last_key: None,
            unicast_sent: 0,
            verify_budget: (VERIFY_BURST, None),
        }
    }

    /// The configuration.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// The state.
    pub fn state(&self) -> State {
        match &self.calibration {
            None => State::Listening,
            Some(c) if matches!(c.phase(), Phase::Untrusted { .. }) => State::Untrusted,
            Some(c) if c.is_done() => State::Tracking,
            Some(_) => State::Calibrating,
        }
    }

    /// The calibration, once started.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The calibration, mutably (for the core's volley driving).
    pub fn calibration_mut(&mut self) -> Option<&mut Calibration> {
        self.calibration.as_mut()
    }

    /// The poll exponent the server sends.
    pub fn poll(&self) -> Option<i8> {
        self.poll
    }

    /// The poll interval, 2^poll (64 s until known).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(1u64 << self.poll.unwrap_or(6).clamp(0, 17))
    }

    /// Reachability register (one bit per expected interval, newest lowest).
    pub fn reach(&self) -> u8 {
        self.reach
    }

    /// Monotonic time of the last accepted packet.
    pub fn last_accepted(&self) -> Option<Duration> {
        self.last_accepted
    }

    /// Header of the last accepted packet.
    pub fn last_header(&self) -> Option<&Header> {
        self.last_header.as_ref()
    }

    /// The key the last accepted packet verified with (`None` before one,
    /// or unauthenticated).
    pub fn last_key(&self) -> Option<KeyId> {
        self.last_key
    }

    /// Replaces the keys its packets may verify with (a reload), keeping
    /// everything measured: calibration, filter, replay state.
    pub fn rebind(&mut self, key: Option<KeyId>, more_keys: Vec<KeyId>) {
        self.spec.key = key;
        self.spec.more_keys = more_keys;
    }

    /// Packets accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted
    }

    /// Packets rejected, by reason.
    pub fn rejected(&self) -> &BTreeMap<Rejection, u64> {
        &self.rejected
    }

    /// Unicast packets this client sent to this server.
    pub fn unicast_sent(&self) -> u64 {
        self.unicast_sent
    }

    /// Counts one unicast request sent.
    pub fn count_unicast(&mut self) {
        self.unicast_sent += 1;
    }

    fn reject(&mut self, r: Rejection) -> Result<Accepted, Rejection> {
        *self.rejected.entry(r).or_insert(0) += 1;
        Err(r)
    }

    /// Checks a broadcast that came from this server's address. On success
    /// the association's replay/rate/poll state moves on; on failure
    /// nothing but the rejection counter and the candidate backward step
    /// (which only a check can turn into anything) changes.
    pub fn check_broadcast(
        &mut self,
        raw: &[u8],
        d: &Datagram,
        keys: &KeyStore,
        arrival: Arrival,
        limits: &SampleLimits,
        groups: &[SocketAddr],
    ) -> Result<Accepted, Rejection> {
        debug_assert_eq!(d.header.mode, Mode::Broadcast);
        if let Some(pk) = &self.spec.public_key {
            self.check_signature(pk.clone(), d, groups, arrival.mono)?;
            if self.spec.key.is_none() {
                return self.check_authenticated(d, arrival, limits, None);
            }
        }
        let mut verified = None;
        match (
            self.spec.key,
            packet::authenticate(keys, raw, d, Some(self.spec.address)),
        ) {
            (_, PacketAuth::CryptoNak) => return self.reject(Rejection::CryptoNak),
            (Some(_), PacketAuth::Mac(MacVerdict::Valid(k))) if self.spec.accepts(k) => {
                verified = Some(k);
            }
            (Some(_), PacketAuth::Mac(MacVerdict::Valid(_))) => {
                return self.reject(Rejection::WrongKey);
            }
            (Some(_), PacketAuth::NoMac) => return self.reject(Rejection::Unauthenticated),
            (None, PacketAuth::NoMac | PacketAuth::Mac(MacVerdict::Valid(_))) => {}
            (_, PacketAuth::Mac(MacVerdict::UnknownKey(_))) => {
                return self.reject(Rejection::UnknownKey);
            }
            (_, PacketAuth::Mac(MacVerdict::InvalidMac(_) | MacVerdict::BadLength { .. })) => {
                return self.reject(Rejection::BadMac);
            }
            (_, PacketAuth::Mac(MacVerdict::SourceNotAllowed { .. })) => {
                return self.reject(Rejection::SourceNotAllowed);
            }
        }
        self.check_authenticated(d, arrival, limits, verified)
    }

    /// The signature checks, cheapest first; the one state change before
    /// the signature is verified is the budget spent on verifying it.
    fn check_signature(
        &mut self,
        pk: PublicKey,
        d: &Datagram,
        groups: &[SocketAddr],
        now: Duration,
    ) -> Result<(), Rejection> {
        self.spend_verify(now)?;
        signed::check_field(&pk, d, groups).or_else(|p| self.signature_rejected(p))
    }

    /// The signature of a calibration (or check) reply from this server,
    /// when it has a public key: [`signed::check_reply`], after the same
    /// per-server verification budget broadcasts spend. The caller has
    /// matched the reply's origin against an outstanding cookie already.
    /// A failure is counted by reason (the broadcasts' vocabulary) and
    /// changes nothing else; `Ok` without a public key.
    ///
    /// # Errors
    /// The reason the reply is not signed by the pinned key.
    pub fn check_reply_signature(&mut self, d: &Datagram, now: Duration) -> Result<(), Rejection> {
        let Some(pk) = self.spec.public_key.clone() else {
            return Ok(());
        };
        self.spend_verify(now)?;
        signed::check_reply(&pk, d).or_else(|p| self.signature_rejected(p))
    }

    /// Spends one verification of the per-server budget.
    fn spend_verify(&mut self, now: Duration) -> Result<(), Rejection> {
        let (tokens, at) = self.verify_budget;
        let refilled = at.map_or(VERIFY_BURST, |at| {
            (tokens + now.saturating_sub(at).as_secs_f64() * VERIFY_RATE).min(VERIFY_BURST)
        });
        if refilled < 1.0 {
            self.verify_budget = (refilled, Some(now));
            return self.reject(Rejection::VerifyBudget).map(drop);
        }
        self.verify_budget = (refilled - 1.0, Some(now));
        Ok(())
    }

    fn signature_rejected(&mut self, p: SignatureProblem) -> Result<(), Rejection> {
        self.reject(match p {
            SignatureProblem::Unsigned => Rejection::Unsigned,
            SignatureProblem::Malformed => Rejection::BadSignatureField,
            SignatureProblem::UnknownKey => Rejection::SigningKeyUnknown,
            SignatureProblem::WrongGroup => Rejection::WrongGroup,
            SignatureProblem::BadSignature => Rejection::BadSignature,
        })
        .map(drop)
    }

    /// The checks of an authenticated broadcast (MAC or signature verified).
    fn check_authenticated(
        &mut self,
        d: &Datagram,
        arrival: Arrival,
        limits: &SampleLimits,
        verified: Option<KeyId>,
    ) -> Result<Accepted, Rejection> {
        // Authenticated from here on. Each check compares against state
        // that only authenticated, accepted packets (or checks) have set.
        let h = d.header;
        let now = arrival.mono;
        let apparent = h.transmit - arrival.rx;
        let apparent_free = apparent + arrival.adjustment;
        let mut adopt_poll = false;
        if let Some(p) = self.poll
            && h.poll.0 != p
        {
            let seen = match self.poll_candidate {
                Some((c, n)) if c == h.poll.0 => n + 1,
                _ => 1,
            };
            if seen < CONFIRMATIONS {
                self.poll_candidate = Some((h.poll.0, seen));
                return self.reject(Rejection::PollChanged);
            }
            adopt_poll = true;
        }
        if self.poll == Some(h.poll.0) {
            self.poll_candidate = None;
        }
        if let Some(last) = self.last_transmit
            && h.transmit - last <= NtpDuration::ZERO
        {
            if h.transmit != last {
                self.note_backstep(h.transmit, now, apparent_free);
            }
            return self.reject(Rejection::Replay);
        }
        if let Err(bound) = self.freshness(apparent_free, now) {
            self.stale_run = self.stale_run.saturating_add(1);
            self.suspect.get_or_insert(bound);
            return self.reject(Rejection::Stale);
        }
        if let Some(prev) = self.last_accepted {
            let interval = Duration::from_secs(1u64 << h.poll.0.clamp(0, 17));
            let allowance = (interval / 8).max(Duration::from_millis(250));
            if now.saturating_sub(prev) + allowance < interval {
                return self.reject(Rejection::TooEarly);
            }
        }
        // The newer stream continues: no backward step is under way.
        self.backstep = None;
        self.stale_run = 0;
        self.suspect = None;
        if h.unusable_reason(limits).is_some() {
            // Verified, so it may move the replay state on, but it is never time.
            self.last_transmit = Some(h.transmit);
            self.restored_floor = false;
            self.last_accepted = Some(now);
            return self.reject(Rejection::Unusable);
        }
        if adopt_poll || self.poll.is_none() {
            self.poll = Some(h.poll.0);
            self.poll_candidate = None;
        }
        self.last_transmit = Some(h.transmit);
        self.restored_floor = false;
        self.last_accepted = Some(now);
        self.last_usable = Some(now);
        self.last_header = Some(h);
        self.last_key = verified;
        self.accepted += 1;
        self.mark_reach(now);
        if let Some(one_way) = self.settled_one_way() {
            self.anchor = Some(Anchor {
                theta_free: apparent_free + one_way,
                at: now,
                slack: NtpDuration::ZERO,
                rate: arrival.frequency,
            });
        }
        Ok(Accepted {
            header: h,
            apparent_offset: apparent,
        })
    }

    /// The one-way delay once it is known (calibrated, or the fallback
    /// after no reply), for the freshness bound.
    fn settled_one_way(&self) -> Option<NtpDuration> {
        self.calibration
            .as_ref()
            .filter(|c| c.is_done())
            .and_then(Calibration::one_way_delay)
    }

    /// Drops the broadcasts calibration collected that disagree with the
    /// anchor (an old recording that arrived before the first reply), so
    /// they cannot make the delay look too large or pair with replies.
    pub fn prune_calibration(&mut self) {
        let Some(mut cal) = self.calibration.take() else {
            return;
        };
        cal.retain_broadcasts(|b| self.is_fresh(b.apparent_offset + b.adjustment, b.at));
        self.calibration = Some(cal);
    }

    /// Whether an apparent offset (free of our corrections) agrees with the
    /// anchor: within 20 ms, twice the one-way delay, the anchor's own
    /// uncertainty and the drift since it was taken. Before the one-way
    /// delay is known it may be anywhere up to the largest round trip
    /// calibration accepts. Without an anchor (nothing authenticated by
    /// unicast yet) every packet is fresh: the calibration that follows
    /// is what judges the stream.
    fn is_fresh(&self, apparent_free: NtpDuration, now: Duration) -> bool {
        self.freshness(apparent_free, now).is_ok()
    }

    /// [`Association::is_fresh`], with the bound it was judged by when not.
    fn freshness(&self, apparent_free: NtpDuration, now: Duration) -> Result<(), NtpDuration> {
        let Some(anchor) = self.anchor else {
            return Ok(());
        };
        let elapsed = now.saturating_sub(anchor.at).as_secs_f64();
        let mut tol = NtpDuration::from_millis(FRESHNESS_FLOOR_MS)
            + anchor.slack.abs()
            + NtpDuration::from_seconds_f64(MAX_DRIFT * elapsed);
        if let Some(frozen) = self.suspect {
            tol = tol.min(frozen);
        }
        let theta = anchor.expected(now);
        let fresh = match self.settled_one_way() {
            Some(d) => (apparent_free - (theta - d)).abs() <= tol + d * 2,
            None => {
                let max_one_way = NtpDuration::from_std(self.calibration_config.max_round_trip);
                let low = theta - max_one_way - tol;
                let high = theta + tol;
                apparent_free >= low && apparent_free <= high
            }
        };
        if fresh { Ok(()) } else { Err(tol) }
    }

    /// Records a packet behind the last accepted one in the candidate
    /// backward step: it advances the run only when it is newer than the
    /// run's last packet, arrived at least an interval (less the
    /// allowance) after it, and its transmit moved on as far as its
    /// arrival did; a run with nothing new for two intervals starts over.
    fn note_backstep(&mut self, transmit: NtpTimestamp, now: Duration, apparent_free: NtpDuration) {
        let interval = self.interval();
        let allowance = (interval / 8).max(Duration::from_millis(250));
        let fresh_run = Backstep {
            transmit,
            at: now,
            apparent_free,
            count: 1,
        };
        self.backstep = match self.backstep {
            None => Some(fresh_run),
            Some(b) => {
                let spacing = now.saturating_sub(b.at);
                let advanced = transmit - b.transmit;
                let consistent = advanced > NtpDuration::ZERO
                    && spacing + allowance >= interval
                    && (advanced - NtpDuration::from_std(spacing)).abs()
                        <= NtpDuration::from_std(allowance);
                if consistent {
                    Some(Backstep {
                        transmit,
                        at: now,
                        apparent_free,
                        count: b.count.saturating_add(1),
                    })
                } else if spacing > interval * 2 {
                    Some(fresh_run)
                } else {
                    Some(b)
                }
            }
        };
    }

    /// Whether enough consistent packets behind the last accepted one came,
    /// with none of the newer stream since, that a unicast check should
    /// decide whether the server's clock went back.
    pub fn backstep_pending(&self) -> bool {
        self.backstep.is_some_and(|b| b.count >= CONFIRMATIONS)
    }

    /// Whether the association needs a unicast check: a confirmed
    /// candidate backward step, or a run of stale packets after
    /// calibration.
    pub fn needs_check(&self) -> bool {
        self.calibration.as_ref().is_some_and(Calibration::is_done)
            && !matches!(self.state(), State::Untrusted)
            && (self.backstep_pending() || self.stale_run >= STALE_RUN_FOR_CHECK)
    }

    /// Transmit timestamp of the last accepted packet (the replay floor).
    pub fn last_transmit(&self) -> Option<NtpTimestamp> {
        self.last_transmit
    }

    /// Takes back a calibration measured before a restart at `measured_at`
    /// (our clock), before anything was heard: the server is tracked from
    /// its first broadcast with that delay.
    pub fn restore_calibration(
        &mut self,
        one_way: NtpDuration,
        exchanges: usize,
        measured_at: NtpTimestamp,
    ) {
        if self.calibration.is_none() {
            self.calibration = Some(Calibration::restored(
                self.calibration_config,
                one_way,
                exchanges,
            ));
            self.calibrated_at = Some(measured_at);
            self.calibration_restored = true;
        }
    }

    /// A calibration just finished at `at` (our clock).
    pub fn calibration_finished(&mut self, at: NtpTimestamp) {
        self.calibrated_at = Some(at);
        self.calibration_restored = false;
    }

    /// When the calibration in use was measured (our clock), if it was.
    pub fn calibrated_at(&self) -> Option<NtpTimestamp> {
        self.calibrated_at
    }

    /// Whether the calibration in use was measured before a restart.
    pub fn calibration_restored(&self) -> bool {
        self.calibration_restored
    }

    /// Sets the replay floor from a persisted state (before any packet).
    pub fn restore_last_transmit(&mut self, transmit: NtpTimestamp) {
        if self.last_transmit.is_none() {
            self.last_transmit = Some(transmit);
            self.restored_floor = true;
        }
    }

    /// Whether packets behind a replay floor restored from before a
    /// restart, and none newer, have made a candidate backward step before
    /// anything was accepted: calibration's first reply must decide.
    pub fn behind_restored_floor(&self) -> bool {
        self.restored_floor && self.state() == State::Listening && self.backstep_pending()
    }

    /// Whether a stale packet came since the last accepted one or check:
    /// such a server is not selectable.
    pub fn is_suspect(&self) -> bool {
        self.suspect.is_some()
    }

    /// The anchor fresh broadcasts are judged against.
    pub fn anchor(&self) -> Option<Anchor> {
        self.anchor
    }

    /// Records an authenticated unicast measurement of the server's offset
    /// (a calibration reply): the new anchor.
    pub fn anchor_to(&mut self, anchor: Anchor) {
        self.anchor = Some(anchor);
    }

    /// The answer to a unicast check: the exchange's offset free of our
    /// corrections becomes the anchor, and a candidate backward step is
    /// adopted when its time agrees with it (the server's clock went back:
    /// follow it), else dropped and counted.
    pub fn resolve_check(&mut self, anchor: Anchor) -> CheckOutcome {
        let previous = self.anchor.replace(anchor);
        self.stale_run = 0;
        let one_way = self.settled_one_way().unwrap_or(NtpDuration::ZERO);
        let agrees = |theta_free: NtpDuration, at: Duration| {
            let elapsed = at.abs_diff(anchor.at).as_secs_f64();
            let tol = NtpDuration::from_millis(FRESHNESS_FLOOR_MS)
                + anchor.slack.abs()
                + one_way * 2
                + NtpDuration::from_seconds_f64(MAX_DRIFT * elapsed);
            (theta_free - anchor.expected(at)).abs() <= tol
        };
        if let Some(b) = self.backstep.take().filter(|b| b.count >= CONFIRMATIONS) {
            if agrees(b.apparent_free + one_way, b.at) {
                self.suspect = None;
                // The next packet of the stepped-back stream is new.
                self.last_transmit = Some(b.transmit);
                return CheckOutcome::SteppedBack;
            }
            *self.rejected.entry(Rejection::BackstepRefuted).or_insert(0) += 1;
            return CheckOutcome::Refuted;
        }
        match previous {
            Some(p) if !agrees(p.theta_free, p.at) => {
                // The offset moved (a clock jumped): the stale broadcasts
                // were right to disagree with the old measurement.
                self.suspect = None;
                CheckOutcome::Moved
            }
            // The server is where it was: its broadcasts are what is
            // wrong (held back, or spikes), so it stays unselectable until
            // one agrees again.
            _ => CheckOutcome::Confirmed,
        }
    }

    /// Starts calibration after the first accepted broadcast (`random`
    /// picks the start within the configured window). No-op afterwards.
    pub fn start_calibration(&mut self, now: Duration, random: u32) {
        if self.calibration.is_none() {
            self.calibration = Some(Calibration::new(self.calibration_config, now, random));
        }
    }

    /// Uses a fixed delay instead of calibrating (no responder to ask).
    pub fn skip_calibration(&mut self, one_way: NtpDuration) {
        self.calibration = Some(Calibration::fixed(self.calibration_config, one_way));
    }

    /// Shifts zeros into the reachability register for each expected
    /// interval that passed without a packet (judged half an interval late,
    /// so a server's send jitter never reads as a loss).
    pub fn tick_reach(&mut self, now: Duration) {
        let interval = self.interval();
        let Some(mut at) = self.reach_shifted_at else {
            return;
        };
        while now.saturating_sub(at) > interval + interval / 2 {
            self.reach <<= 1;
            at += interval;
        }
        self.reach_shifted_at = Some(at);
    }

    /// Records an accepted packet in the reachability register.
    fn mark_reach(&mut self, now: Duration) {
        let interval = self.interval().as_secs_f64().max(1e-3);
        if let Some(at) = self.reach_shifted_at {
            let gaps = (now.saturating_sub(at).as_secs_f64() / interval).round() as u32;
            if gaps > 0 {
                self.reach = self.reach.checked_shl(gaps).unwrap_or(0);
            }
        }
        self.reach |= 1;
        self.reach_shifted_at = Some(now);
    }

    /// Whether it has sent no usable time for `intervals` of its poll
    /// interval. A server that keeps sending with the alarm (LI=3, stratum
    /// 16) is as silent as one that stopped: its last samples must not
    /// steer the clock for ever.
    pub fn is_silent(&self, now: Duration, intervals: u32) -> bool {
        match self.last_usable {
            Some(t) => now.saturating_sub(t) > self.interval() * intervals,
            None => true,
        }
    }

    /// Whether its next usable broadcast is late by more than half an
    /// interval (jitter is at most 1/16 of one), a sign that the server
    /// stopped or lost its time.
    pub fn is_overdue(&self, now: Duration) -> bool {
        match self.last_usable {
            Some(t) => now.saturating_sub(t) > self.interval() * 3 / 2,
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcast_proto::{LeapIndicator, Log2Seconds, RefId};

    fn arrive(rx: NtpTimestamp, mono: Duration) -> Arrival {
        Arrival {
            rx,
            mono,
            adjustment: NtpDuration::ZERO,
            frequency: 0.0,
        }
    }

    fn packet(t: u64, synchronized: bool) -> (Vec<u8>, Datagram) {
        let mut h = Header::new(Mode::Broadcast);
        h.poll = Log2Seconds(6);
        if synchronized {
            h.stratum = 2;
            h.reference_id = RefId::from_code("GPS");
        } else {
            h.leap = LeapIndicator::Unsynchronized;
            h.stratum = 16;
            h.reference_id = RefId::from_code("INIT");
        }
        h.transmit = NtpTimestamp::from_unix(1_800_000_000 + t as i64, 0);
        let d = Datagram::new(h);
        (d.to_bytes(), d)
    }

    /// A server whose reference fails may keep sending with the alarm
    /// (LI=3); those packets were verified, so they moved the "last heard"
    /// time on and the server never went silent: its stale samples stayed
    /// in the selection for as long as it sent alarms.
    #[test]
    fn a_server_sending_only_alarms_falls_silent() {
        let spec = ServerSpec::new("198.18.0.1".parse().expect("address"), None);
        let keys = KeyStore::from_keys(std::path::Path::new("none"), []).expect("empty store");
        let limits = SampleLimits::default();
        let mut a = Association::new(spec, CalibrationConfig::default());
        let at = |t: u64| Duration::from_secs(t);
        let rx = NtpTimestamp::from_unix(1_800_000_000, 0);
        for t in [0, 64, 128] {
            let (raw, d) = packet(t, true);
            assert!(
                a.check_broadcast(&raw, &d, &keys, arrive(rx, at(t)), &limits, &[])
                    .is_ok()
            );
        }
        for k in 1..=10 {
            let t = 128 + 64 * k;
            let (raw, d) = packet(t, false);
            assert_eq!(
                a.check_broadcast(&raw, &d, &keys, arrive(rx, at(t)), &limits, &[]),
                Err(Rejection::Unusable)
            );
        }
        assert!(
            !a.is_silent(at(128 + 64 * 8), 8),
            "8 intervals after the last usable packet"
        );
        assert!(
            a.is_silent(at(128 + 64 * 8 + 1), 8),
            "alarms only for more than 8 intervals: silent"
        );
        // Usable time again ends the silence.
        let (raw, d) = packet(128 + 64 * 11, true);
        assert!(
            a.check_broadcast(&raw, &d, &keys, arrive(rx, at(128 + 64 * 11)), &limits, &[])
                .is_ok()
        );
        assert!(!a.is_silent(at(128 + 64 * 11), 8));
    }
}
