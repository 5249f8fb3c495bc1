//! NTP wire format and time arithmetic for mcast-ntp.
//!
//! Sans-I/O: nothing here opens a socket or reads a clock. Time comes in as
//! values; bytes come in as slices.
//!
//! - [`time`]: timestamps, signed durations and the short format, with Unix
//!   conversion that is right across the 2036 era boundary (RFC 5905 section 6),
//!   and the offset and delay of a client/server exchange (section 8).
//! - [`header`]: the 48-byte header (RFC 5905 section 7.3).
//! - [`datagram`]: framing of extension fields (RFC 7822) and the legacy MAC
//!   the way ntpd 4.2.8 reads it.
//! - [`kod`] and [`sanity`]: Kiss-o'-Death recognition and the reasons a
//!   packet can never be a time sample.
#![forbid(unsafe_code)]

pub mod datagram;
pub mod error;
pub mod header;
pub mod kod;
pub mod sanity;
pub mod time;

pub use datagram::{Datagram, ExtensionField, Mac};
pub use error::ParseError;
pub use header::{HEADER_LEN, Header, LeapIndicator, Log2Seconds, Mode, RefId, RefIdKind};
pub use kod::KissCode;
pub use sanity::{SampleLimits, Unusable};
pub use time::{NtpDuration, NtpShort, NtpTimestamp, UtcTime};
