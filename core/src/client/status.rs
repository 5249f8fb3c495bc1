//! What `mcast-client status --json` prints, taken from a [`ClientCore`]:
//! plain, typed structs the shell only serializes. Their field names are the
//! stable, versioned JSON of `status` (see [`SCHEMA_VERSION`] and
//! docs/status-json.md), read by metrics, `check` and the lab. They hold
//! figures and kebab-case identifiers only, never sentences: the shell's
//! text module makes the words.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mcast_proto::NtpDuration;
use serde::{Deserialize, Serialize};

use crate::client::association::{Association, State};
use crate::client::calibration::{Calibration, Failure, FallbackReason, Phase, ReplyProblem};
use crate::client::discipline::{ClockMode, Decision};
use crate::client::engine::ClientCore;
use crate::client::select::NoSelection;
use crate::labels;

/// Version of the `status --json` schema of both daemons. Raise it with any
/// change a reader could notice (a field renamed, removed or retyped, a new
/// enum value); adding an optional field is a change too. The test
/// `status_schema` fails when the shape changes and this does not.
pub const SCHEMA_VERSION: u32 = 2;

fn ms(d: NtpDuration) -> f64 {
    d.as_seconds_f64() * 1e3
}

/// One server as `status` shows it (an ntpq-like row plus our details).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Address.
    pub remote: IpAddr,
    /// Configured name.
    pub name: String,
    /// Reference id as ntpq shows it.
    pub refid: String,
    /// Stratum.
    pub stratum: Option<u8>,
    /// `b` tracking, `u` calibrating, `-` listening, `!` untrusted (the
    /// legend in `mcast-client status --help`).
    pub t: char,
    /// Seconds since the last accepted broadcast.
    pub when_s: Option<f64>,
    /// Poll interval, seconds.
    pub poll_s: u64,
    /// Reach register.
    pub reach: u8,
    /// Round-trip delay used for its samples, ms.
    pub delay_ms: Option<f64>,
    /// Filtered offset, ms.
    pub offset_ms: Option<f64>,
    /// Jitter, ms.
    pub jitter_ms: Option<f64>,
    /// Listening, calibrating or tracking.
    pub state: State,
    /// Where its calibration stands, and its result or failure.
    pub calibration: CalibrationStatus,
    /// Unicast packets sent to it since start.
    pub unicast_sent: u64,
    /// Packets rejected, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// `*` system peer, `+` survivor, `x` falseticker, `-` excluded, ` ` not a candidate.
    pub tally: char,
    /// The key id its packets must verify with (`None`: unauthenticated);
    /// during a rollover the first of its `keys`, which signs calibration
    /// requests.
    pub key: Option<u16>,
    /// Every key id its packets may verify with, `key` first (`keys = [old,
    /// new]` during a rollover; empty: unauthenticated).
    pub keys: Vec<u16>,
    /// The key id its last accepted broadcast verified with (null before
    /// the first, or unauthenticated).
    pub last_key: Option<u16>,
    /// Root synchronization distance (RFC 5905 section 11.2.1), ms, as
    /// selection judges it.
    pub root_distance_ms: Option<f64>,
    /// Broadcasts accepted (passed every check).
    pub accepted: u64,
    /// One-way delay its samples use (calibrated or fallback), ms.
    pub one_way_delay_ms: Option<f64>,
    /// True when the delay was measured (false while calibrating and when
    /// the fallback delay is in use).
    pub calibrated: bool,
    /// Leap indicator of its last accepted broadcast (0 none, 1 insert,
    /// 2 delete, 3 unsynchronized; `None` before the first).
    pub leap: Option<u8>,
}

/// Where a server's calibration stands (`phase`), as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum CalibrationStatus {
    /// No authenticated broadcast from it yet, so no calibration either.
    AwaitingBroadcast,
    /// Waiting for the start of volley `attempt` (0 for the first).
    Waiting {
        /// Volley number, 0 for the first.
        attempt: u8,
    },
    /// A volley is under way.
    Volley {
        /// Volley number, 0 for the first.
        attempt: u8,
        /// Requests sent so far in it.
        sent: u8,
    },
    /// The one-way delay was measured.
    Calibrated {
        /// The delay, ms.
        one_way_delay_ms: f64,
        /// Exchanges it rests on.
        exchanges: usize,
        /// Measured before a restart and reused from the state directory.
        restored: bool,
    },
    /// The fallback delay is in use.
    Fallback {
        /// The delay assumed, ms.
        one_way_delay_ms: f64,
        /// Why: `None` when a fixed delay is configured.
        failure: Option<FailureStatus>,
        /// Volleys sent before giving up (`None`: refused at once, or fixed).
        volleys: Option<u32>,
    },
    /// The stream disagrees with the server's unicast time: not used.
    Untrusted {
        /// What was measured.
        failure: FailureStatus,
    },
}

/// Why a calibration failed (`kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FailureStatus {
    /// No reply at all.
    NoReply {
        /// Requests sent.
        requests: u32,
        /// Where they went, when sent from a fixed port.
        server: Option<std::net::SocketAddr>,
        /// The local port they were sent from, when fixed.
        source_port: Option<u16>,
    },
    /// The round trip is over the bound.
    DelayTooLarge {
        /// Measured, ms.
        round_trip_ms: f64,
        /// The bound, ms.
        bound_ms: f64,
    },
    /// Broadcasts take longer than the best unicast round trip allows.
    SlowerThanUnicast {
        /// The broadcasts' one-way delay, ms.
        one_way_delay_ms: f64,
        /// The best round trip, ms.
        round_trip_ms: f64,
    },
    /// The broadcasts heard disagree with the unicast time (a replay?).
    StaleBroadcasts {
        /// How many were set aside.
        count: u32,
    },
    /// No broadcast close enough in time to pair with the replies.
    NoPairableBroadcast,
    /// Replies came, none usable.
    NoUsableReply {
        /// The distinct problems (at most four).
        problems: Vec<ReplyProblemStatus>,
        /// Distinct problems beyond those.
        more: u32,
    },
    /// The server refused with a Kiss-o'-Death.
    Refused {
        /// `DENY` or `RSTR`.
        kiss_code: String,
    },
}

/// Why one reply was unusable (`kind`, with `detail` an identifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ReplyProblemStatus {
    /// A crypto-NAK: the server does not accept this key.
    CryptoNak {
        /// Our key id.
        key: u16,
    },
    /// No MAC.
    Unsigned,
    /// The MAC did not verify: `detail` is `unknown-key`, `bad-length`,
    /// `invalid-mac`, `source-not-allowed`, `wrong-key` or `crypto-nak`;
    /// or, for a server pinned by its public key, the signature was
    /// refused: `unsigned`, `bad-signature-field`, `signing-key-unknown`,
    /// `wrong-group`, `bad-signature` or `verify-budget`.
    Authentication {
        /// Which check failed.
        detail: String,
    },
    /// Not usable time: `detail` is `kiss-of-death`, `zero-transmit`,
    /// `unsynchronized`, `stratum-zero`, `stratum-too-high` or
    /// `root-distance-too-large`.
    UnusableTime {
        /// Which sanity check failed.
        detail: String,
    },
}

/// The last clock decision: its `kind` ([`Decision::NAMES`]) and figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionStatus {
    /// `monitor`, `slew`, `step`, `spike-ignored`, `panic`,
    /// `waiting-for-stepout` or `slew-in-progress`.
    pub kind: String,
    /// The system offset it was made on, ms.
    pub offset_ms: f64,
    /// Slew: the phase correction slewed now, ms.
    pub correction_ms: Option<f64>,
    /// Slew: the frequency correction set, ppm.
    pub frequency_ppm: Option<f64>,
    /// Waiting for the stepout or for a slew: seconds left.
    pub remaining_s: Option<f64>,
}

/// The clock mode, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockModeStatus {
    /// Never touches the clock.
    Monitor,
    /// Slews only.
    Slew,
    /// Slews and steps.
    Step,
}

impl From<ClockMode> for ClockModeStatus {
    fn from(m: ClockMode) -> Self {
        match m {
            ClockMode::Monitor => ClockModeStatus::Monitor,
            ClockMode::Slew => ClockModeStatus::Slew,
            ClockMode::Step => ClockModeStatus::Step,
        }
    }
}

impl ClockModeStatus {
    /// Every mode, in order.
    pub const ALL: [ClockModeStatus; 3] = [
        ClockModeStatus::Monitor,
        ClockModeStatus::Slew,
        ClockModeStatus::Step,
    ];

    /// The configuration's word for it.
    pub fn name(self) -> &'static str {
        match self {
            ClockModeStatus::Monitor => "monitor",
            ClockModeStatus::Slew => "slew",
            ClockModeStatus::Step => "step",
        }
    }
}

impl CalibrationStatus {
    /// The status of a calibration phase (`None`: not started).
    pub fn of(phase: Option<&Phase>) -> Self {
        match phase {
            None => CalibrationStatus::AwaitingBroadcast,
            Some(Phase::Waiting { attempt, .. }) => {
                CalibrationStatus::Waiting { attempt: *attempt }
            }
            Some(Phase::Volley { attempt, sent, .. }) => CalibrationStatus::Volley {
                attempt: *attempt,
                sent: *sent,
            },
            Some(Phase::Calibrated { one_way, exchanges }) => CalibrationStatus::Calibrated {
                one_way_delay_ms: ms(*one_way),
                exchanges: *exchanges,
                restored: false,
            },
            Some(Phase::Fallback { one_way, reason }) => {
                let (failure, volleys) = match reason {
                    FallbackReason::Fixed => (None, None),
                    FallbackReason::Failed { failure, volleys } => {
                        (Some(FailureStatus::of(failure)), *volleys)
                    }
                };
                CalibrationStatus::Fallback {
                    one_way_delay_ms: ms(*one_way),
                    failure,
                    volleys,
                }
            }
            Some(Phase::Untrusted { failure }) => CalibrationStatus::Untrusted {
                failure: FailureStatus::of(failure),
            },
        }
    }

    /// Its calibration, from an association.
    pub fn of_association(a: &Association) -> Self {
        match Self::of(a.calibration().map(Calibration::phase)) {
            CalibrationStatus::Calibrated {
                one_way_delay_ms,
                exchanges,
                ..
            } => CalibrationStatus::Calibrated {
                one_way_delay_ms,
                exchanges,
                restored: a.calibration_restored(),
            },
            other => other,
        }
    }

    /// The measured delay, ms, once calibrated.
    pub fn measured_one_way_delay_ms(&self) -> Option<f64> {
        match self {
            CalibrationStatus::Calibrated {
                one_way_delay_ms, ..
            } => Some(*one_way_delay_ms),
            _ => None,
        }
    }

    /// True once the delay was measured.
    pub fn is_calibrated(&self) -> bool {
        matches!(self, CalibrationStatus::Calibrated { .. })
    }

    /// True while the fallback delay stands in for a measurement.
    pub fn is_fallback(&self) -> bool {
        matches!(self, CalibrationStatus::Fallback { .. })
    }
}

impl FailureStatus {
    /// The status of a calibration failure.
    pub fn of(f: &Failure) -> Self {
        match f {
            Failure::NoReply { requests, route } => FailureStatus::NoReply {
                requests: *requests,
                server: route.map(|(server, _)| server),
                source_port: route.map(|(_, port)| port),
            },
            Failure::DelayTooLarge { round_trip, bound } => FailureStatus::DelayTooLarge {
                round_trip_ms: ms(*round_trip),
                bound_ms: bound.as_secs_f64() * 1e3,
            },
            Failure::SlowerThanUnicast {
                one_way,
                round_trip,
            } => FailureStatus::SlowerThanUnicast {
                one_way_delay_ms: ms(*one_way),
                round_trip_ms: ms(*round_trip),
            },
            Failure::StaleBroadcasts { count } => FailureStatus::StaleBroadcasts { count: *count },
            Failure::NoPairableBroadcast => FailureStatus::NoPairableBroadcast,
            Failure::NoUsableReply { problems, more } => FailureStatus::NoUsableReply {
                problems: problems.iter().map(ReplyProblemStatus::of).collect(),
                more: *more,
            },
            Failure::Refused(code) => FailureStatus::Refused {
                kiss_code: code.to_string(),
            },
        }
    }
}

impl ReplyProblemStatus {
    /// The status of one reply problem.
    pub fn of(p: &ReplyProblem) -> Self {
        match p {
            ReplyProblem::CryptoNak { key } => ReplyProblemStatus::CryptoNak { key: key.get() },
            ReplyProblem::Unsigned => ReplyProblemStatus::Unsigned,
            ReplyProblem::Authentication(auth) => ReplyProblemStatus::Authentication {
                detail: labels::auth(auth).into(),
            },
            ReplyProblem::Signature(r) => ReplyProblemStatus::Authentication {
                detail: r.label().into(),
            },
            ReplyProblem::UnusableTime(u) => ReplyProblemStatus::UnusableTime {
                detail: labels::unusable(u).into(),
            },
        }
    }
}

impl DecisionStatus {
    /// The status of a clock decision.
    pub fn of(d: &Decision) -> Self {
        let mut s = DecisionStatus {
            kind: d.name().into(),
            offset_ms: ms(d.offset()),
            correction_ms: None,
            frequency_ppm: None,
            remaining_s: None,
        };
        match *d {
            Decision::Slew {
                correction,
                frequency_ppm,
                ..
            } => {
                s.correction_ms = Some(ms(correction));
                s.frequency_ppm = Some(frequency_ppm.0);
            }
            Decision::WaitingForStepout { remaining, .. }
            | Decision::SlewInProgress { remaining, .. } => {
                s.remaining_s = Some(remaining.as_secs_f64());
            }
            _ => {}
        }
        s
    }
}

/// What `mcast-client status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientStatus {
    /// [`SCHEMA_VERSION`] of this document.
    pub schema: u32,
    /// Program version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Clock mode.
    pub clock_mode: ClockModeStatus,
    /// Selected (combined) offset, ms.
    pub offset_ms: Option<f64>,
    /// Why nothing is selected, when nothing is.
    pub selection_problem: Option<NoSelection>,
    /// Seconds since the newest accepted broadcast from any server.
    pub freshest_s: Option<f64>,
    /// The last clock decision.
    pub decision: Option<DecisionStatus>,
    /// Synchronized ([`ClientCore::synchronized`]): what `wait-sync` waits
    /// for and what makes the daemon send `READY=1`.
    pub synchronized: bool,
    /// Each server.
    pub servers: Vec<ServerStatus>,
    /// Packets dropped before they could be tied to a server, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// The frequency correction in effect, ppm (0 in monitor mode).
    pub frequency_ppm: f64,
    /// System jitter of the selection, ms (`None` when nothing is selected).
    pub jitter_ms: Option<f64>,
    /// Servers that must agree before anything is selected
    /// (`selection.min-agreeing` of the running client).
    pub min_agreeing: Option<usize>,
    /// Whether the multicast group still delivers (schema 2; `None`
    /// before the client's first tick).
    pub group: Option<GroupStatus>,
}

/// The group's delivery: authenticated broadcasts from any server, judged
/// over every `[[listen]]` entry together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// No authenticated broadcast for longer than `silent_after_s`: the
    /// client is re-joining (IGMP/MLD report) on a backoff.
    pub silent: bool,
    /// Seconds since the last authenticated broadcast (or the start).
    pub last_delivery_s: f64,
    /// Silence is declared after this many seconds without one
    /// (`group-silent-intervals` of the slowest server's poll).
    pub silent_after_s: f64,
    /// Silences since start.
    pub silences: u64,
    /// Re-joins since start.
    pub rejoins: u64,
}

/// A status snapshot of a core.
pub fn status_of(core: &ClientCore, mono: Duration, uptime: Duration) -> ClientStatus {
    let selection = core.selection();
    let mut servers = Vec::new();
    for (i, a) in core.associations().enumerate() {
        let addr = a.spec().address;
        let h = a.last_header();
        let filter = core.filter(addr).filter(|f| !f.is_empty());
        let one_way = a.calibration().and_then(Calibration::one_way_delay);
        let tally = match selection {
            Some(s) if s.system_peer == Some(i) => '*',
            Some(s) if s.survivors.contains(&i) => '+',
            Some(s) if s.falsetickers.contains(&i) => 'x',
            Some(s) if s.too_far.contains(&i) || s.truechimers.contains(&i) => '-',
            _ => ' ',
        };
        servers.push(ServerStatus {
            remote: addr,
            name: a.spec().name.clone(),
            refid: h.map_or_else(
                || ".INIT.".to_string(),
                |h| h.reference_id.display(h.stratum),
            ),
            stratum: h.map(|h| h.stratum),
            t: match a.state() {
                State::Tracking => 'b',
                State::Calibrating => 'u',
                State::Listening => '-',
                State::Untrusted => '!',
            },
            when_s: a
                .last_accepted()
                .map(|t| mono.saturating_sub(t).as_secs_f64()),
            poll_s: a.interval().as_secs(),
            reach: a.reach(),
            delay_ms: one_way.map(|d| ms(d * 2)),
            offset_ms: filter.map(|f| ms(f.offset())),
            jitter_ms: filter.map(|f| ms(f.jitter())),
            state: a.state(),
            calibration: CalibrationStatus::of_association(a),
            unicast_sent: a.unicast_sent(),
            rejected: a
                .rejected()
                .iter()
                .map(|(r, n)| (r.label().to_string(), *n))
                .collect(),
            tally,
            key: a.spec().key.map(mcast_keys::KeyId::get),
            keys: a.spec().keys().map(mcast_keys::KeyId::get).collect(),
            last_key: a.last_key().map(mcast_keys::KeyId::get),
            root_distance_ms: filter.zip(h).map(|(f, h)| {
                ms(f.root_distance(
                    h.root_delay.to_duration(),
                    h.root_dispersion.to_duration(),
                    mono,
                ))
            }),
            accepted: a.accepted(),
            one_way_delay_ms: one_way.map(ms),
            calibrated: matches!(
                a.calibration().map(Calibration::phase),
                Some(Phase::Calibrated { .. })
            ),
            leap: h.map(|h| h.leap.to_bits()),
        });
    }
    let freshest = core
        .associations()
        .filter_map(|a| a.last_accepted())
        .map(|t| mono.saturating_sub(t).as_secs_f64())
        .reduce(f64::min);
    ClientStatus {
        schema: SCHEMA_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: uptime.as_secs_f64(),
        clock_mode: core.clock_mode().into(),
        offset_ms: selection.and_then(|s| s.offset).map(ms),
        selection_problem: selection.and_then(|s| s.reason),
        freshest_s: freshest,
        decision: core.last_decision().map(DecisionStatus::of),
        synchronized: core.synchronized(),
        servers,
        rejected: core
            .global_rejects()
            .iter()
            .map(|(r, n)| ((*r).to_string(), *n))
            .collect(),
        frequency_ppm: core.frequency_ppm(),
        jitter_ms: selection
            .filter(|s| s.offset.is_some())
            .map(|s| ms(s.jitter)),
        min_agreeing: Some(core.min_agreeing()),
        group: core.group().map(|g| GroupStatus {
            silent: g.silent,
            last_delivery_s: mono.saturating_sub(g.last_delivery).as_secs_f64(),
            silent_after_s: g.silent_after.as_secs_f64(),
            silences: g.silences,
            rejoins: g.rejoins,
        }),
    }
}
