//! Why a packet can never be a time sample, whatever else is true of it.

use crate::header::{Header, LeapIndicator};
use crate::kod::KissCode;
use crate::time::NtpDuration;

/// Limits for [`Header::unusable_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLimits {
    /// Packets with stratum at or above this are refused (RFC 5905: 16;
    /// ntpd 4.2.8 clients refuse 15 and up).
    pub stratum_ceiling: u8,
    /// Root distance (root delay / 2 + root dispersion) at or above this
    /// is refused. The default is RFC 5905's MAXDISP, 16 s, as in ntpd's
    /// per-packet TEST7: a server that has just started reports seconds of
    /// dispersion and is still a valid packet. Selection applies its own,
    /// tighter limit (ntpd's `maxdist`, 1.5 s) to the association.
    pub max_root_distance: NtpDuration,
}

impl Default for SampleLimits {
    fn default() -> Self {
        SampleLimits {
            stratum_ceiling: 16,
            max_root_distance: NtpDuration::from_secs(16),
        }
    }
}

/// A reason a packet is never used as time. Counted by reason, never used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// A Kiss-o'-Death.
    #[error("kiss-o'-death {0}")]
    KissOfDeath(KissCode),
    /// Transmit timestamp zero.
    #[error("transmit timestamp is zero")]
    ZeroTransmit,
    /// Leap indicator 3.
    #[error("server says it is unsynchronized (LI=3)")]
    Unsynchronized,
    /// Stratum 0 (unspecified) without a recognized kiss code.
    #[error("stratum 0 (unspecified)")]
    StratumZero,
    /// Stratum at or above the ceiling.
    #[error("stratum {stratum} is not below {ceiling}")]
    StratumTooHigh {
        /// The packet's stratum.
        stratum: u8,
        /// The ceiling in force.
        ceiling: u8,
    },
    /// Root distance at or above the limit.
    #[error("root distance {distance} s is not below the limit of {limit} s")]
    RootDistanceTooLarge {
        /// The packet's root distance.
        distance: NtpDuration,
        /// The limit in force.
        limit: NtpDuration,
    },
}

impl Header {
    /// Why this packet can never be a time sample, or `None` if nothing in
    /// the header rules it out. A KoD's zero or echoed timestamps are never
    /// time: a naive client once set its clock to 1900 from one.
    pub fn unusable_reason(&self, limits: &SampleLimits) -> Option<Unusable> {
        if let Some(code) = self.kiss_code() {
            return Some(Unusable::KissOfDeath(code));
        }
        if self.transmit.is_zero() {
            return Some(Unusable::ZeroTransmit);
        }
        if self.leap == LeapIndicator::Unsynchronized {
            return Some(Unusable::Unsynchronized);
        }
        if self.stratum == 0 {
            return Some(Unusable::StratumZero);
        }
        if self.stratum >= limits.stratum_ceiling {
            return Some(Unusable::StratumTooHigh {
                stratum: self.stratum,
                ceiling: limits.stratum_ceiling,
            });
        }
        let distance = self.root_distance();
        if distance >= limits.max_root_distance {
            return Some(Unusable::RootDistanceTooLarge {
                distance,
                limit: limits.max_root_distance,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Log2Seconds, Mode, RefId};
    use crate::time::{NtpShort, NtpTimestamp};

    fn good() -> Header {
        let mut h = Header::new(Mode::Broadcast);
        h.stratum = 2;
        h.poll = Log2Seconds(6);
        h.transmit = NtpTimestamp::from_unix(1_800_000_000, 0);
        h
    }

    #[test]
    fn each_reason() {
        let l = SampleLimits::default();
        assert_eq!(good().unusable_reason(&l), None);

        let mut h = good();
        h.transmit = NtpTimestamp::ZERO;
        assert_eq!(h.unusable_reason(&l), Some(Unusable::ZeroTransmit));

        let mut h = good();
        h.leap = LeapIndicator::Unsynchronized;
        assert_eq!(h.unusable_reason(&l), Some(Unusable::Unsynchronized));

        let mut h = good();
        h.stratum = 0;
        h.reference_id = RefId::from_code("INIT");
        assert_eq!(h.unusable_reason(&l), Some(Unusable::StratumZero));

        let mut h = good();
        h.stratum = 16;
        assert!(matches!(
            h.unusable_reason(&l),
            Some(Unusable::StratumTooHigh { stratum: 16, .. })
        ));
        let strict = SampleLimits {
            stratum_ceiling: 15,
            ..l
        };
        h.stratum = 15;
        assert!(
            h.unusable_reason(&strict).is_some(),
            "ntpd-like ceiling refuses 15"
        );

        let mut h = good();
        h.root_delay = NtpShort::from_duration(NtpDuration::from_secs(2));
        h.root_dispersion = NtpShort::from_duration(NtpDuration::from_secs(15));
        assert!(matches!(
            h.unusable_reason(&l),
            Some(Unusable::RootDistanceTooLarge { .. })
        ));
    }

    #[test]
    fn kod_is_recognized_only_in_server_mode() {
        let mut h = good();
        h.mode = Mode::Server;
        h.stratum = 0;
        h.leap = LeapIndicator::Unsynchronized;
        for (code, kiss) in [
            ("RATE", KissCode::Rate),
            ("DENY", KissCode::Deny),
            ("RSTR", KissCode::Rstr),
            ("XABC", KissCode::Experimental(*b"XABC")),
        ] {
            h.reference_id = RefId::from_code(code);
            assert_eq!(h.kiss_code(), Some(kiss));
            assert_eq!(
                h.unusable_reason(&SampleLimits::default()),
                Some(Unusable::KissOfDeath(kiss))
            );
        }
        h.reference_id = RefId::from_code("STEP");
        assert_eq!(h.kiss_code(), None, "STEP is unsynchronized, not a KoD");
        h.reference_id = RefId::from_code("RATE");
        h.mode = Mode::Broadcast;
        assert_eq!(h.kiss_code(), None, "broadcast KoDs are not recognized");
        assert!(KissCode::Deny.forbids_further_requests());
        assert!(!KissCode::Rate.forbids_further_requests());
    }
}
