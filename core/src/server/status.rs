//! What `mcast-server status --json` prints: plain, typed structs the shell
//! fills from the cores and serializes. Their field names are the stable,
//! versioned JSON of `status` (schema [`SCHEMA_VERSION`], shared with the
//! client; docs/status-json.md); figures and identifiers only, the shell
//! makes the words.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use crate::client::status::SCHEMA_VERSION;
use crate::server::broadcaster::Silence;
use crate::server::responder::ResponderCounters;
use crate::server::sync::Unsync;
use crate::server::upstream::UpstreamReport;

/// Status of one destination, as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DestinationStatus {
    /// Group or broadcast address.
    pub address: IpAddr,
    /// Interface name.
    pub interface: String,
    /// Source address the packets leave from.
    pub source: IpAddr,
    /// Poll exponent.
    pub poll: i8,
    /// Key id the last packet was signed with (before the first: `key`;
    /// after `next-key-from`: `next-key`), if signed.
    pub key: Option<u16>,
    /// Packets sent.
    pub sent: u64,
    /// Intervals skipped (not synchronized, key missing, send error).
    pub skipped: u64,
    /// Why the last interval was skipped, if it was.
    pub last_problem: Option<Silence>,
}

/// What `mcast-server status --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// [`SCHEMA_VERSION`] of this document.
    pub schema: u32,
    /// Program version.
    pub version: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Whether we vouch for our time.
    pub synchronized: bool,
    /// Why not, when not.
    pub unsynchronized: Option<Unsync>,
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
    pub upstream: Option<UpstreamReport>,
}

/// One source in the MRU table.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
