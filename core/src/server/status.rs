//! What `mcast-server status --json` prints: plain structs the shell fills
//! from the cores and serializes (their field names are the stable JSON of
//! `status` and the metrics).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::server::responder::ResponderCounters;
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
