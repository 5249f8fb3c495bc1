//! What `mcast-client status --json` prints, taken from a [`ClientCore`]:
//! a plain struct the shell only serializes (its field names and words are
//! the stable JSON of `status`, metrics and `check`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use mcast_proto::NtpDuration;
use serde::{Deserialize, Serialize};

use crate::client::association::State;
use crate::client::calibration::{Calibration, Phase};
use crate::client::engine::ClientCore;

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
    /// `b` tracking, `u` calibrating, `-` listening.
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
    /// Calibration result or failure reason.
    pub calibration: String,
    /// Unicast packets sent to it since start.
    pub unicast_sent: u64,
    /// Packets rejected, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// `*` system peer, `+` survivor, `x` falseticker, `-` excluded, ` ` not a candidate.
    pub tally: char,
    /// The key id its packets must verify with (`None`: unauthenticated).
    #[serde(default)]
    pub key: Option<u16>,
    /// Root synchronization distance (RFC 5905 section 11.2.1), ms, as
    /// selection judges it.
    #[serde(default)]
    pub root_distance_ms: Option<f64>,
    /// Broadcasts accepted (passed every check).
    #[serde(default)]
    pub accepted: u64,
    /// One-way delay its samples use (calibrated or fallback), ms.
    #[serde(default)]
    pub one_way_delay_ms: Option<f64>,
    /// True when the delay was measured (false while calibrating and when
    /// the fallback delay is in use).
    #[serde(default)]
    pub calibrated: bool,
}

/// What `mcast-client status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientStatus {
    /// Program version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Clock mode.
    pub clock_mode: String,
    /// Selected (combined) offset, ms.
    pub offset_ms: Option<f64>,
    /// Why nothing is selected, when nothing is.
    pub selection_problem: Option<String>,
    /// Seconds since the newest accepted broadcast from any server.
    pub freshest_s: Option<f64>,
    /// Last clock decision, in words.
    pub last_decision: Option<String>,
    /// Name of the last clock decision (`monitor`, `slew`, `step`, ...;
    /// see [`Decision::name`]).
    #[serde(default)]
    pub decision: Option<String>,
    /// Each server.
    pub servers: Vec<ServerStatus>,
    /// Packets dropped before they could be tied to a server, by reason.
    pub rejected: BTreeMap<String, u64>,
}

/// A status snapshot of a core.
pub fn status_of(
    core: &ClientCore,
    mono: Duration,
    uptime: Duration,
    clock_mode: &str,
) -> ClientStatus {
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
            calibration: a.calibration_summary(),
            unicast_sent: a.unicast_sent(),
            rejected: a
                .rejected()
                .iter()
                .map(|(r, n)| (r.label().to_string(), *n))
                .collect(),
            tally,
            key: a.spec().key.map(mcast_keys::KeyId::get),
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
        });
    }
    let freshest = core
        .associations()
        .filter_map(|a| a.last_accepted())
        .map(|t| mono.saturating_sub(t).as_secs_f64())
        .reduce(f64::min);
    ClientStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: uptime.as_secs_f64(),
        clock_mode: clock_mode.into(),
        offset_ms: selection.and_then(|s| s.offset).map(ms),
        selection_problem: selection.and_then(|s| s.reason.clone()),
        freshest_s: freshest,
        last_decision: core.last_decision().map(|d| format!("{d:?}")),
        decision: core.last_decision().map(|d| d.name().to_string()),
        servers,
        rejected: core
            .global_rejects()
            .iter()
            .map(|(r, n)| ((*r).to_string(), *n))
            .collect(),
    }
}
