//! `ntp-probe`: sends signed mode-3 requests from given source addresses
//! to a server and reports, as JSON, every answer that came back. Run it
//! inside a lab host (`Host::exec` on `lab::tool_bin("ntp-probe")`) so
//! its traffic stays in the namespace LAN.
//!
//! Bounded by construction: at most [`MAX_SOURCES`] sources, at most
//! [`MAX_COUNT`] requests per source, spacing at least 1 ms, and the wait
//! for answers is capped at [`MAX_WAIT`].
//!
//! Rounds: every source sends its request `k` before any source sends
//! request `k + 1`; round `k` starts `k * spacing` after the first.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use mcast_keys::{KeyId, KeyStore, packet};
use mcast_proto::{Datagram, Header, Log2Seconds, Mode, NtpTimestamp};
use serde::{Deserialize, Serialize};

/// Most source addresses one probe run may use.
pub const MAX_SOURCES: usize = 1024;
/// Most requests per source.
pub const MAX_COUNT: u32 = 100;
/// Longest wait for answers after the last request.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// What to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeArgs {
    /// The server's address and port.
    pub target: SocketAddr,
    /// The keys file.
    pub keys: PathBuf,
    /// Key id to sign with (`None`: unsigned requests).
    pub key: Option<u16>,
    /// Local addresses to send from, one socket each.
    pub sources: Vec<IpAddr>,
    /// Local port (0 = ephemeral).
    pub source_port: u16,
    /// Requests per source.
    pub count: u32,
    /// Time between rounds.
    pub spacing: Duration,
    /// How long to keep listening after the last request.
    pub wait: Duration,
    /// Poll exponent put in the requests.
    pub poll: i8,
}

/// One request as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRequest {
    /// Milliseconds after the probe's first send.
    pub at_ms: u64,
    /// The transmit timestamp it carried (raw 64 bits).
    pub transmit: u64,
}

/// One datagram received on a source's socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReply {
    /// Milliseconds after the probe's first send.
    pub at_ms: u64,
    /// Sender.
    pub from: SocketAddr,
    /// Datagram length.
    pub len: usize,
    /// The datagram in hex.
    pub hex: String,
    /// Whether it parsed as NTP.
    pub parsed: bool,
    /// Leap indicator bits.
    pub leap: u8,
    /// NTP version.
    pub version: u8,
    /// Mode bits.
    pub mode: u8,
    /// Stratum.
    pub stratum: u8,
    /// Poll exponent.
    pub poll: i8,
    /// Reference id as ASCII where printable, else dotted quad.
    pub refid: String,
    /// Origin timestamp (raw).
    pub origin: u64,
    /// Receive timestamp (raw).
    pub receive: u64,
    /// Transmit timestamp (raw).
    pub transmit: u64,
    /// `valid`, `no MAC`, `crypto-NAK`, or the MAC verdict.
    pub auth: String,
    /// Key id of the MAC, if any.
    pub key_id: Option<u32>,
    /// The kiss code, for a Kiss-o'-Death.
    pub kiss: Option<String>,
    /// Whether origin equals the transmit timestamp of one of this
    /// source's requests.
    pub origin_matches_request: bool,
}

impl ProbeReply {
    /// A normal (non-KoD) reply whose MAC verified and whose origin echoes
    /// one of our requests.
    pub fn is_valid_time_reply(&self) -> bool {
        self.parsed
            && self.mode == 4
            && self.kiss.is_none()
            && self.auth == "valid"
            && self.origin_matches_request
            && self.transmit != 0
    }
}

/// What one source sent and got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The socket's local address.
    pub local: SocketAddr,
    /// Requests sent.
    pub sent: Vec<SentRequest>,
    /// Datagrams received, in arrival order.
    pub replies: Vec<ProbeReply>,
    /// Send errors, if any.
    pub errors: Vec<String>,
}

/// The probe's JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The server probed.
    pub target: SocketAddr,
    /// One entry per source, in the order given.
    pub sources: Vec<SourceReport>,
    /// Milliseconds from the first send to the last.
    pub send_span_ms: u64,
}

impl ProbeArgs {
    /// `count` requests from `from`, `spacing` apart, signed with key 1 of
    /// the lab keys ([`crate::lab::keys_file`]), poll 6, listening 2 s
    /// after the last: the probe most tests make.
    pub fn signed(target: SocketAddr, from: IpAddr, count: u32, spacing: Duration) -> ProbeArgs {
        ProbeArgs {
            target,
            keys: crate::lab::keys_file(),
            key: Some(1),
            sources: vec![from],
            source_port: 0,
            count,
            spacing,
            wait: Duration::from_secs(2),
            poll: 6,
        }
    }

    /// Parses `--target A:P --keys FILE [--key ID] (--source IP |
    /// --source-range IP-IP)... [--source-port P] [--count N]
    /// [--spacing-ms MS] [--wait-ms MS] [--poll P]`.
    pub fn parse(args: &[String]) -> Result<ProbeArgs, String> {
        let mut target = None;
        let mut keys = None;
        let mut key = None;
        let mut sources = Vec::new();
        let mut source_port = 0;
        let mut count = 1;
        let mut spacing = Duration::from_secs(1);
        let mut wait = Duration::from_secs(2);
        let mut poll = 6;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            let bad = |v: &str| format!("{flag}: bad value {v:?}");
            match flag.as_str() {
                "--target" => {
                    let v = value()?;
                    target = Some(v.parse().map_err(|_| bad(&v))?);
                }
                "--keys" => keys = Some(PathBuf::from(value()?)),
                "--key" => {
                    let v = value()?;
                    key = Some(v.parse().map_err(|_| bad(&v))?);
                }
                "--source" => {
                    let v = value()?;
                    sources.push(v.parse().map_err(|_| bad(&v))?);
                }
                "--source-range" => {
                    let v = value()?;
                    sources.extend(parse_range(&v).ok_or_else(|| bad(&v))?);
                }
                "--source-port" => {
                    let v = value()?;
                    source_port = v.parse().map_err(|_| bad(&v))?;
                }
                "--count" => {
                    let v = value()?;
                    count = v.parse().map_err(|_| bad(&v))?;
                }
                "--spacing-ms" => {
                    let v = value()?;
                    spacing = Duration::from_millis(v.parse().map_err(|_| bad(&v))?);
                }
                "--wait-ms" => {
                    let v = value()?;
                    wait = Duration::from_millis(v.parse().map_err(|_| bad(&v))?);
                }
                "--poll" => {
                    let v = value()?;
                    poll = v.parse().map_err(|_| bad(&v))?;
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let parsed = ProbeArgs {
            target: target.ok_or("--target is required")?,
            keys: keys.ok_or("--keys is required")?,
            key,
            sources,
            source_port,
            count,
            spacing,
            wait,
            poll,
        };
        parsed.check()?;
        Ok(parsed)
    }

    /// The command line [`ProbeArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--target".to_owned(),
            self.target.to_string(),
            "--keys".to_owned(),
            self.keys.display().to_string(),
            "--source-port".to_owned(),
            self.source_port.to_string(),
            "--count".to_owned(),
            self.count.to_string(),
            "--spacing-ms".to_owned(),
            self.spacing.as_millis().to_string(),
            "--wait-ms".to_owned(),
            self.wait.as_millis().to_string(),
            "--poll".to_owned(),
            self.poll.to_string(),
        ];
        if let Some(k) = self.key {
            a.extend(["--key".to_owned(), k.to_string()]);
        }
        for s in &self.sources {
            a.extend(["--source".to_owned(), s.to_string()]);
        }
        a
    }

    fn check(&self) -> Result<(), String> {
        if self.sources.is_empty() || self.sources.len() > MAX_SOURCES {
            return Err(format!("1..={MAX_SOURCES} sources needed"));
        }
        if !(1..=MAX_COUNT).contains(&self.count) {
            return Err(format!("--count must be 1..={MAX_COUNT}"));
        }
        if self.spacing < Duration::from_millis(1) || self.spacing > Duration::from_secs(60) {
            return Err("--spacing-ms must be 1..=60000".into());
        }
        if self.wait > MAX_WAIT {
            return Err(format!(
                "--wait-ms must be at most {}",
                MAX_WAIT.as_millis()
            ));
        }
        Ok(())
    }
}

/// `198.18.1.20-198.18.1.219` (IPv4, same /24 order, at most
/// [`MAX_SOURCES`] addresses).
fn parse_range(s: &str) -> Option<Vec<IpAddr>> {
    let (a, b) = s.split_once('-')?;
    let a: std::net::Ipv4Addr = a.parse().ok()?;
    let b: std::net::Ipv4Addr = b.parse().ok()?;
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a || (b - a) as usize >= MAX_SOURCES {
        return None;
    }
    Some(
        (a..=b)
            .map(|n| IpAddr::V4(std::net::Ipv4Addr::from(n)))
            .collect(),
    )
}

/// Sends the requests and collects the answers.
pub fn run(args: &ProbeArgs) -> Result<ProbeReport, String> {
    args.check()?;
    let keys = KeyStore::load(&args.keys).map_err(|e| e.to_string())?;
    let key = match args.key {
        Some(id) => {
            let kid = KeyId::new(u32::from(id)).ok_or_else(|| format!("bad key id {id}"))?;
            Some(
                keys.get(kid)
                    .ok_or_else(|| format!("key {id} not in {}", args.keys.display()))?
                    .clone(),
            )
        }
        None => None,
    };
    let mut sockets = Vec::with_capacity(args.sources.len());
    for src in &args.sources {
        let s = UdpSocket::bind(SocketAddr::new(*src, args.source_port))
            .map_err(|e| format!("bind {src}:{}: {e}", args.source_port))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        sockets.push(s);
    }
    let start = Instant::now();
    let ms = move |t: Instant| u64::try_from(t.duration_since(start).as_millis()).unwrap_or(0);
    let total = args.spacing * args.count.saturating_sub(1) + args.wait;
    let deadline = start + total.min(Duration::from_secs(60 * 10));

    // One receiver per socket; each reports what it got over a channel.
    let (tx, rx) = mpsc::channel::<(usize, SocketAddr, Vec<u8>, u64)>();
    let mut readers = Vec::new();
    for (i, s) in sockets.iter().enumerate() {
        let s = s.try_clone().map_err(|e| e.to_string())?;
        let tx = tx.clone();
        let reader = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut buf = [0u8; 1024];
                while Instant::now() < deadline {
                    if let Ok((n, from)) = s.recv_from(&mut buf) {
                        let bytes = buf.get(..n).unwrap_or_default().to_vec();
                        if tx.send((i, from, bytes, ms(Instant::now()))).is_err() {
                            break;
                        }
                    }
                }
            })
            .map_err(|e| format!("receiver thread: {e}"))?;
        readers.push(reader);
    }
    drop(tx);

    let mut reports: Vec<SourceReport> = sockets
        .iter()
        .map(|s| SourceReport {
            local: s
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
            sent: Vec::new(),
            replies: Vec::new(),
            errors: Vec::new(),
        })
        .collect();
    let mut last_send = start;
    let mut buf = Vec::with_capacity(128);
    for round in 0..args.count {
        let due = start + args.spacing * round;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        for (s, report) in sockets.iter().zip(reports.iter_mut()) {
            let mut h = Header::new(Mode::Client);
            h.poll = Log2Seconds(args.poll);
            h.precision = Log2Seconds(-20);
            h.transmit = NtpTimestamp::from_system_time(SystemTime::now());
            let d = Datagram::new(h);
            match &key {
                Some(k) => packet::sign(k, &d, &mut buf),
                None => {
                    buf.clear();
                    d.write_signed_part(&mut buf);
                }
            }
            let now = Instant::now();
            match s.send_to(&buf, args.target) {
                Ok(_) => report.sent.push(SentRequest {
                    at_ms: ms(now),
                    transmit: h.transmit.to_bits(),
                }),
                Err(e) => report.errors.push(format!("send at {} ms: {e}", ms(now))),
            }
            last_send = now;
        }
    }
    for (i, from, bytes, at_ms) in rx {
        let Some(report) = reports.get_mut(i) else {
            continue;
        };
        let reply = describe(&keys, &report.sent, from, &bytes, at_ms);
        report.replies.push(reply);
    }
    for r in readers {
        let _ = r.join();
    }
    Ok(ProbeReport {
        target: args.target,
        sources: reports,
        send_span_ms: ms(last_send),
    })
}

fn describe(
    keys: &KeyStore,
    sent: &[SentRequest],
    from: SocketAddr,
    bytes: &[u8],
    at_ms: u64,
) -> ProbeReply {
    let mut r = ProbeReply {
        at_ms,
        from,
        len: bytes.len(),
        hex: hex::encode(bytes),
        parsed: false,
        leap: 0,
        version: 0,
        mode: 0,
        stratum: 0,
        poll: 0,
        refid: String::new(),
        origin: 0,
        receive: 0,
        transmit: 0,
        auth: String::new(),
        key_id: None,
        kiss: None,
        origin_matches_request: false,
    };
    let Ok(d) = Datagram::parse(bytes) else {
        return r;
    };
    let h = &d.header;
    r.parsed = true;
    r.leap = h.leap.to_bits();
    r.version = h.version;
    r.mode = h.mode.to_bits();
    r.stratum = h.stratum;
    r.poll = h.poll.0;
    r.refid = h
        .reference_id
        .as_ascii()
        .unwrap_or_else(|| std::net::Ipv4Addr::from(h.reference_id.0).to_string());
    r.origin = h.origin.to_bits();
    r.receive = h.receive.to_bits();
    r.transmit = h.transmit.to_bits();
    let auth = packet::authenticate(keys, bytes, &d, Some(from.ip()));
    r.auth = if auth.is_valid() {
        "valid".to_owned()
    } else {
        auth.to_string()
    };
    r.key_id = d.mac.as_ref().map(|m| m.key_id);
    r.kiss = h.kiss_code().map(|k| k.to_string());
    r.origin_matches_request = sent.iter().any(|s| s.transmit == r.origin);
    r
}

/// Most time one listen run may take.
pub const MAX_LISTEN: Duration = Duration::from_secs(120);

/// What to listen for (`ntp-probe listen ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenArgs {
    /// Address to bind (a group, a broadcast address's wildcard `0.0.0.0`,
    /// or `::`).
    pub bind: IpAddr,
    /// Port to bind.
    pub port: u16,
    /// Multicast group to join, if any.
    pub group: Option<IpAddr>,
    /// Interface to join the group on.
    pub iface: String,
    /// The keys file the packets are checked with.
    pub keys: PathBuf,
    /// How long to listen at most.
    pub duration: Duration,
    /// Stop early once this many mode-5 packets have arrived.
    pub max_broadcasts: Option<usize>,
}

/// What a listen run received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenReport {
    /// The socket's local address.
    pub local: SocketAddr,
    /// Every datagram, in arrival order (`at_ms` after the socket was ready).
    pub packets: Vec<ProbeReply>,
    /// How long it listened, in milliseconds.
    pub listened_ms: u64,
}

impl ListenArgs {
    /// Parses `--bind IP --port P [--group IP] --iface NAME --keys FILE
    /// --duration-ms MS [--max-broadcasts N]`.
    pub fn parse(args: &[String]) -> Result<ListenArgs, String> {
        let mut bind = None;
        let mut port = 123;
        let mut group = None;
        let mut iface = None;
        let mut keys = None;
        let mut duration = Duration::from_secs(10);
        let mut max_broadcasts = None;
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let v = it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?;
            let bad = || format!("{flag}: bad value {v:?}");
            match flag.as_str() {
                "--bind" => bind = Some(v.parse().map_err(|_| bad())?),
                "--port" => port = v.parse().map_err(|_| bad())?,
                "--group" => group = Some(v.parse().map_err(|_| bad())?),
                "--iface" => iface = Some(v),
                "--keys" => keys = Some(PathBuf::from(v)),
                "--duration-ms" => {
                    duration = Duration::from_millis(v.parse().map_err(|_| bad())?);
                }
                "--max-broadcasts" => max_broadcasts = Some(v.parse().map_err(|_| bad())?),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let parsed = ListenArgs {
            bind: bind.ok_or("--bind is required")?,
            port,
            group,
            iface: iface.ok_or("--iface is required")?,
            keys: keys.ok_or("--keys is required")?,
            duration,
            max_broadcasts,
        };
        if parsed.duration > MAX_LISTEN {
            return Err(format!(
                "--duration-ms must be at most {}",
                MAX_LISTEN.as_millis()
            ));
        }
        Ok(parsed)
    }

    /// The command line (after `listen`) [`ListenArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--bind".to_owned(),
            self.bind.to_string(),
            "--port".to_owned(),
            self.port.to_string(),
            "--iface".to_owned(),
            self.iface.clone(),
            "--keys".to_owned(),
            self.keys.display().to_string(),
            "--duration-ms".to_owned(),
            self.duration.as_millis().to_string(),
        ];
        if let Some(g) = self.group {
            a.extend(["--group".to_owned(), g.to_string()]);
        }
        if let Some(n) = self.max_broadcasts {
            a.extend(["--max-broadcasts".to_owned(), n.to_string()]);
        }
        a
    }
}

/// Binds, joins, and records what arrives (verifying MACs with the keys
/// file and the sender's address).
pub fn listen(args: &ListenArgs) -> Result<ListenReport, String> {
    let keys = KeyStore::load(&args.keys).map_err(|e| e.to_string())?;
    let sock = UdpSocket::bind(SocketAddr::new(args.bind, args.port))
        .map_err(|e| format!("bind {}:{}: {e}", args.bind, args.port))?;
    match args.group {
        Some(IpAddr::V4(g)) => {
            let local = mcast_sys::interface_addresses(&args.iface)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find_map(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
                .ok_or_else(|| format!("{} has no IPv4 address", args.iface))?;
            sock.join_multicast_v4(&g, &local)
                .map_err(|e| format!("join {g} on {}: {e}", args.iface))?;
        }
        Some(IpAddr::V6(g)) => {
            let index = mcast_sys::interface_index(&args.iface).map_err(|e| e.to_string())?;
            sock.join_multicast_v6(&g, index)
                .map_err(|e| format!("join {g} on {}: {e}", args.iface))?;
        }
        None => {}
    }
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut packets = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let at_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
        let bytes = buf.get(..n).unwrap_or_default();
        packets.push(describe(&keys, &[], from, bytes, at_ms));
        let broadcasts = packets.iter().filter(|p| p.parsed && p.mode == 5).count();
        if args.max_broadcasts.is_some_and(|m| broadcasts >= m) {
            break;
        }
    }
    Ok(ListenReport {
        local: sock
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        packets,
        listened_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = ProbeArgs {
            target: "198.18.1.1:123".parse().unwrap(),
            keys: PathBuf::from("/tmp/ntp.keys"),
            key: Some(1),
            sources: vec!["198.18.1.2".parse().unwrap()],
            source_port: 0,
            count: 20,
            spacing: Duration::from_millis(10),
            wait: Duration::from_secs(2),
            poll: 6,
        };
        assert_eq!(ProbeArgs::parse(&a.to_args()).unwrap(), a);
        let r = parse_range("198.18.1.20-198.18.1.219").unwrap();
        assert_eq!(r.len(), 200);
        assert!(ProbeArgs::parse(&["--target".into(), "x".into()]).is_err());
    }
}
