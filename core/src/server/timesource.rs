//! Where the server's time comes from, turned into the header fields it
//! advertises ([`SyncStatus`]): the `kernel` and `local` sources. Sans-I/O:
//! the caller reads the kernel and hands the result in. The `upstream`
//! source is [`crate::server::upstream`].

use mcast_proto::{LeapIndicator, NtpDuration, NtpShort, NtpTimestamp, RefId};

use crate::server::sync::{MAX_ADVERTISED_STRATUM, SyncStatus, SystemHeader, Unsync};

/// The kernel's view of its synchronization, as adjtimex(2) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSync {
    /// False when STA_UNSYNC is set or adjtimex returned TIME_ERROR.
    pub synchronized: bool,
    /// Maximum error, which becomes our root dispersion.
    pub maxerror: NtpDuration,
    /// Pending leap second from the kernel status bits.
    pub leap: LeapIndicator,
}

/// What the configuration (`[time-source]`) sets for the header a source
/// advertises; `None` takes the source's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Advertised {
    /// Stratum (default 8 for `local`, 2 for `kernel`).
    pub stratum: Option<u8>,
    /// Reference id (default `LOCL` for `local`, `KERN` for `kernel`).
    pub refid: Option<RefId>,
}

fn refid_of(source: &Advertised, default: &str) -> RefId {
    source.refid.unwrap_or_else(|| RefId::from_code(default))
}

/// The status of a `local` (lab) time source: always synchronized at the
/// configured stratum, reference time `now`.
pub fn local(source: &Advertised, now: NtpTimestamp) -> SyncStatus {
    SyncStatus::Synchronized(SystemHeader {
        leap: LeapIndicator::NoWarning,
        stratum: source.stratum.unwrap_or(8).min(MAX_ADVERTISED_STRATUM),
        reference_id: refid_of(source, "LOCL"),
        root_delay: NtpShort::ZERO,
        root_dispersion: NtpShort::from_duration(NtpDuration::from_micros(10)),
        reference_time: now,
    })
}

/// The status of a `kernel` time source from a read of adjtimex(2).
pub fn kernel(source: &Advertised, k: &KernelSync, now: NtpTimestamp) -> SyncStatus {
    if !k.synchronized {
        return SyncStatus::Unsynchronized {
            reason: Unsync::KernelUnsynchronized,
        };
    }
    SyncStatus::Synchronized(SystemHeader {
        leap: k.leap,
        stratum: source.stratum.unwrap_or(2).min(MAX_ADVERTISED_STRATUM),
        reference_id: refid_of(source, "KERN"),
        root_delay: NtpShort::ZERO,
        root_dispersion: NtpShort::from_duration(k.maxerror),
        reference_time: now,
    })
}
