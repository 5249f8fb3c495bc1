//! What the server says about its own clock: the header fields every
//! broadcast and reply carries, or why it cannot vouch for its time.

use std::net::SocketAddr;

use mcast_proto::{Header, LeapIndicator, Log2Seconds, Mode, NtpShort, NtpTimestamp, RefId};
use serde::{Deserialize, Serialize};

use crate::server::upstream::UpstreamProblem;

/// The fields that describe the server's synchronization (RFC 5905
/// section 7.3 system variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemHeader {
    /// Leap warning (never `Unsynchronized` here: that is [`SyncStatus::Unsynchronized`]).
    pub leap: LeapIndicator,
    /// Stratum we advertise, 1..=14.
    pub stratum: u8,
    /// Reference id.
    pub reference_id: RefId,
    /// Root delay.
    pub root_delay: NtpShort,
    /// Root dispersion.
    pub root_dispersion: NtpShort,
    /// When our clock was last set or checked.
    pub reference_time: NtpTimestamp,
}

/// Whether the server can vouch for its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStatus {
    /// Synchronized, with these header fields.
    Synchronized(SystemHeader),
    /// Not synchronized, and why.
    Unsynchronized {
        /// Why.
        reason: Unsync,
    },
}

/// Why the server cannot vouch for its time (`kind`; status JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Unsync {
    /// The kernel reports the clock unsynchronized (`STA_UNSYNC` or
    /// `TIME_ERROR`): nothing disciplines it.
    KernelUnsynchronized,
    /// The kernel's time status could not be read.
    KernelUnreadable {
        /// The system's error.
        error: String,
    },
    /// The time source lost its reference (simulated sources).
    ReferenceLost,
    /// `kind = "upstream"` but the query task is not running.
    UpstreamNotRunning,
    /// No usable reply from the upstream yet.
    UpstreamNoSampleYet {
        /// The upstream daemon.
        upstream: SocketAddr,
        /// The latest problem, if any (none: waiting for the first reply).
        problem: Option<UpstreamProblem>,
    },
    /// The last usable reply is older than `after_s`.
    UpstreamStale {
        /// The upstream daemon.
        upstream: SocketAddr,
        /// Seconds without a usable reply that make the sample stale.
        after_s: u64,
        /// Query intervals that is.
        intervals: u32,
        /// The latest problem.
        problem: UpstreamProblem,
    },
    /// The upstream answered with something that is not usable time.
    UpstreamRefused {
        /// The upstream daemon.
        upstream: SocketAddr,
        /// What it answered.
        problem: UpstreamProblem,
    },
}

/// The highest stratum we ever advertise: ntpd 4.2.8 clients refuse 15.
pub const MAX_ADVERTISED_STRATUM: u8 = 14;

impl SyncStatus {
    /// The synchronized header fields, if any.
    pub fn header(&self) -> Option<&SystemHeader> {
        match self {
            SyncStatus::Synchronized(h) => Some(h),
            SyncStatus::Unsynchronized { .. } => None,
        }
    }

    /// A header of the given mode carrying these fields (transmit and the
    /// other timestamps are the caller's). Unsynchronized gives LI=3,
    /// stratum 16 and refid `INIT`, which every client refuses as time.
    pub fn fill(&self, mode: Mode, poll: Log2Seconds, precision: Log2Seconds) -> Header {
        let mut h = Header::new(mode);
        h.poll = poll;
        h.precision = precision;
        match self {
            SyncStatus::Synchronized(s) => {
                h.leap = s.leap;
                h.stratum = s.stratum.min(MAX_ADVERTISED_STRATUM);
                h.reference_id = s.reference_id;
                h.root_delay = s.root_delay;
                h.root_dispersion = s.root_dispersion;
                h.reference = s.reference_time;
            }
            SyncStatus::Unsynchronized { .. } => {
                h.leap = LeapIndicator::Unsynchronized;
                h.stratum = 16;
                h.reference_id = RefId::from_code("INIT");
            }
        }
        h
    }
}
