//! Why a datagram could not be read.

/// A datagram that is not a well-formed NTP packet. Every variant is a
/// reason to count and drop the packet, never to panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the 48-byte header.
    #[error("{len} bytes is shorter than the 48-byte NTP header")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// Version outside 1..=4.
    #[error("NTP version {0} is not supported (1 to 4 are)")]
    UnsupportedVersion(u8),
    /// Mode 0 is reserved.
    #[error("mode 0 is reserved")]
    ReservedMode,
    /// The data after the header is not a whole number of 32-bit words.
    #[error("{len} bytes after the header is not a multiple of 4")]
    TrailerNotAligned {
        /// Bytes after the header.
        len: usize,
    },
    /// An extension field's length is below 4 or not a multiple of 4.
    #[error("extension field at byte {offset} has a bad length {length}")]
    ExtensionFieldLength {
        /// Where the field starts.
        offset: usize,
        /// Its stated length.
        length: usize,
    },
    /// An extension field runs past the end of the datagram.
    #[error("extension field at byte {offset} is {length} bytes but only {remaining} remain")]
    ExtensionFieldOverrun {
        /// Where the field starts.
        offset: usize,
        /// Its stated length.
        length: usize,
        /// Bytes left in the datagram.
        remaining: usize,
    },
}
