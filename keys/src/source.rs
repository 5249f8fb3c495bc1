//! The allowed-source list of a key (the keys file's fourth field).

use std::net::IpAddr;
use std::str::FromStr;

/// One entry of a key's allowed-source list: an address with a prefix length.
///
/// Written in a keys file as `ADDR` (a single host) or `ADDR/BITS`.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match the corresponding IPv4
/// entries and the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourcePrefix {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a text is not a valid [`SourcePrefix`].
///
/// The message never repeats the text unless its address part parsed as an
/// address (so a stray piece of a secret is never echoed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseSourcePrefixError(String);

fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

impl SourcePrefix {
    /// An entry covering `addr/prefix_len`; `None` when the prefix length is longer
    /// than the address (32 bits for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<SourcePrefix> {
        (prefix_len <= max_len(addr)).then_some(SourcePrefix { addr, prefix_len })
    }

    /// An entry matching exactly one address.
    pub fn host(addr: IpAddr) -> SourcePrefix {
        SourcePrefix {
            addr,
            prefix_len: max_len(addr),
        }
    }

    /// The address as written.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `addr` lies inside this prefix (bits past the prefix length are ignored,
    /// on both sides; IPv4-mapped IPv6 addresses are treated as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        let (net, len) = match self.addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.prefix_len >= 96 => (IpAddr::V4(v4), self.prefix_len - 96),
                _ => (self.addr, self.prefix_len),
            },
            IpAddr::V4(_) => (self.addr, self.prefix_len),
        };
        match (net, addr.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = mask32(len);
                u32::from(n) & m == u32::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = mask128(len);
                u128::from(n) & m == u128::from(a) & m
            }
            (IpAddr::V6(n), IpAddr::V4(a)) => {
                let m = mask128(len);
                u128::from(n) & m == u128::from(a.to_ipv6_mapped()) & m
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

impl std::fmt::Display for SourcePrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix_len == max_len(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix_len)
        }
    }
}

impl FromStr for SourcePrefix {
    type Err = ParseSourcePrefixError;

    /// Parses `ADDR` or `ADDR/BITS` (IPv4 dotted quad or IPv6, no zone index).
    fn from_str(s: &str) -> Result<SourcePrefix, ParseSourcePrefixError> {
        let (addr_text, bits_text) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        if addr_text.is_empty() {
            return Err(ParseSourcePrefixError("empty address".to_owned()));
        }
        let Ok(addr) = addr_text.parse::<IpAddr>() else {
            let hint = if addr_text.contains(['.', ':']) {
                ""
            } else {
                " (note: a secret cannot contain spaces, tabs or '#')"
            };
            return Err(ParseSourcePrefixError(format!(
                "not an IPv4 or IPv6 address{hint}"
            )));
        };
        let Some(bits_text) = bits_text else {
            return Ok(SourcePrefix::host(addr));
        };
        let max = max_len(addr);
        if bits_text.is_empty() || !bits_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseSourcePrefixError(format!(
                "{addr}/...: the prefix length after '/' must be a number 0..{max}"
            )));
        }
        match bits_text.parse::<u8>().ok().filter(|&b| b <= max) {
            Some(bits) => Ok(SourcePrefix {
                addr,
                prefix_len: bits,
            }),
            None => Err(ParseSourcePrefixError(format!(
                "{addr}/{bits_text}: prefix length must be 0..{max} for an {} address",
                if max == 32 { "IPv4" } else { "IPv6" }
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SourcePrefix {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_and_prefix_matching() {
        assert!(p("198.18.0.1").contains(ip("198.18.0.1")));
        assert!(!p("198.18.0.1").contains(ip("198.18.0.2")));
        assert!(p("198.18.0.0/24").contains(ip("198.18.0.200")));
        assert!(!p("198.18.0.0/24").contains(ip("198.18.1.1")));
        assert!(
            p("10.1.2.3/8").contains(ip("10.200.0.1")),
            "host bits ignored"
        );
        assert!(p("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!p("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(p("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!p("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(p("::/0").contains(ip("fe80::1")));
    }

    #[test]
    fn mapped_addresses_match_ipv4_entries() {
        assert!(p("198.18.0.0/24").contains(ip("::ffff:198.18.0.7")));
        assert!(p("::ffff:198.18.0.7").contains(ip("198.18.0.7")));
        assert!(p("::ffff:198.18.0.0/120").contains(ip("198.18.0.9")));
        assert!(p("::ffff:0:0/96").contains(ip("8.8.8.8")));
        assert!(!p("2001:db8::/32").contains(ip("198.18.0.7")));
    }

    #[test]
    fn display_omits_full_length() {
        assert_eq!(p("198.18.0.1").to_string(), "198.18.0.1");
        assert_eq!(p("198.18.0.1/32").to_string(), "198.18.0.1");
        assert_eq!(p("198.18.0.0/24").to_string(), "198.18.0.0/24");
        assert_eq!(p("2001:db8::/32").to_string(), "2001:db8::/32");
    }

    #[test]
    fn bad_entries_are_rejected_with_words() {
        let e = |s: &str| s.parse::<SourcePrefix>().unwrap_err().to_string();
        assert_eq!(
            e("10.0.0.0/33"),
            "10.0.0.0/33: prefix length must be 0..32 for an IPv4 address"
        );
        assert!(e("::1/129").contains("0..128"), "{}", e("::1/129"));
        assert!(
            e("10.0.0.0/").contains("must be a number"),
            "{}",
            e("10.0.0.0/")
        );
        assert!(e("10.0.0.0/x").contains("must be a number"));
        assert!(e("10.0.0.300").contains("not an IPv4 or IPv6 address"));
        assert!(
            !e("hunter2").contains("hunter2"),
            "the text must not be echoed"
        );
        assert_eq!(e(""), "empty address");
        assert_eq!(SourcePrefix::new(ip("1.2.3.4"), 33), None);
    }
}
