//! Kiss-o'-Death packets (RFC 5905 section 7.4).

use crate::header::{Header, Mode};

/// A kiss code that asks the client to act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KissCode {
    /// `RATE`: the client polls too fast; back off.
    Rate,
    /// `DENY`: access denied; stop sending to this server.
    Deny,
    /// `RSTR`: access restricted; stop sending to this server.
    Rstr,
    /// A code starting with `X`: experimental; never time, no action.
    Experimental([u8; 4]),
}

impl KissCode {
    /// The four wire bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        match self {
            KissCode::Rate => *b"RATE",
            KissCode::Deny => *b"DENY",
            KissCode::Rstr => *b"RSTR",
            KissCode::Experimental(b) => b,
        }
    }

    /// Whether the client must stop sending to the server (DENY, RSTR).
    pub fn forbids_further_requests(self) -> bool {
        matches!(self, KissCode::Deny | KissCode::Rstr)
    }
}

impl std::fmt::Display for KissCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_bytes().escape_ascii())
    }
}

impl Header {
    /// The kiss code, if this is a Kiss-o'-Death: a server-mode (4) packet
    /// with stratum 0 whose reference id is `RATE`, `DENY`, `RSTR` or starts
    /// with `X`, as ntpd 4.2.8 recognizes them. Other stratum-0 codes
    /// (`INIT`, `STEP`, ...) only mean "unsynchronized"; KoDs in other
    /// modes are not recognized. LI is not required to be 3 (RFC 5905 does
    /// not require it; ntpd does), which only makes more packets "never time".
    pub fn kiss_code(&self) -> Option<KissCode> {
        if self.mode != Mode::Server || self.stratum != 0 {
            return None;
        }
        match &self.reference_id.0 {
            b"RATE" => Some(KissCode::Rate),
            b"DENY" => Some(KissCode::Deny),
            b"RSTR" => Some(KissCode::Rstr),
            b @ [b'X', ..] => Some(KissCode::Experimental(*b)),
            _ => None,
        }
    }
}
