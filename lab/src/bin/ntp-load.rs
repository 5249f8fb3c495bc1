//! `ntp-load`: a bounded, batched NTP client-mode load generator for the
//! calibration-responder benchmark (`bench/responder.sh`).
//!
//! It sends NTP mode-3 requests (48 bytes unauthenticated, or signed with
//! MD5 key 1 / AES-CMAC key 3 of the lab keys file) to one server on
//! loopback with `sendmmsg(2)`, spread over `--sockets` UDP sockets
//! (source ports) and `--sources` source addresses in 127.0.0.0/8 (chosen
//! per batch with `IP_PKTINFO`), at a paced rate for a bounded time, reads
//! the replies with `recvmmsg(2)` and counts the valid ones: mode 4, origin
//! = one of our transmit timestamps, stratum 1..=15, leap not 3 and, for
//! signed requests, a MAC that verifies with the same key. It prints one
//! JSON object: `{sent, replies, replies_per_s, duration, ...}`.
//!
//! `--distinct N` instead sends one request from each of N distinct source
//! addresses (127.16.0.1 upwards): it fills a server's per-source table.
//!
//! `--junk` sends malformed datagrams instead (1 to 53 bytes, none of which
//! frames as NTP), to flood a server's port 123 in the lab tests; every
//! datagram that comes back counts as `invalid` (there should be none).
//!
//! Bounds: `--seconds` at most 60, `--rate` at most 2,000,000 requests/s,
//! `--window` limits requests in flight, destination and sources always
//! in 127.0.0.0/8; a lab server in 198.18.0.0/15 (run inside the test's
//! own network namespace) only with `--sources 1`, sent from the host's
//! own address. Anything else is refused.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Parser, ValueEnum};
use mcast_keys::{KeyId, KeyStore, MacVerdict, PacketAuth, packet};
use mcast_proto::{Datagram, Header, LeapIndicator, Log2Seconds, Mode, NtpTimestamp};
use nix::errno::Errno;
use nix::libc;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg, sendmsg,
};
use nix::sys::time::TimeValLike;
use socket2::{Domain, Protocol, Socket, Type};

/// Distinct requests (transmit timestamps) prepared in advance and sent in
/// turn; a reply's origin field tells which one it answers.
const POOL: usize = 4096;
/// First source address of the load (`--sources` addresses from here).
const LOAD_SOURCE_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);
/// First source address of `--distinct` (kept apart from the load's).
const DISTINCT_SOURCE_BASE: Ipv4Addr = Ipv4Addr::new(127, 16, 0, 1);
/// How long replies are still collected after the last request.
const GRACE: Duration = Duration::from_millis(200);
/// With `--window`, requests in flight this long without any reply are
/// taken as lost, so that drops cannot stall the load.
const STALL: Duration = Duration::from_millis(2);
/// Receive buffer of each load socket, so our side drops nothing.
const RCVBUF: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Auth {
    /// 48-byte requests, no MAC.
    None,
    /// MAC with key 1 (MD5) of the keys file.
    Md5,
    /// MAC with key 3 (AES128CMAC) of the keys file.
    AesCmac,
    /// No MAC; the request field asks for a reply signed by the Ed25519 key
    /// `--public-key` names (calibration without secrets, issue 14).
    Ed25519,
    /// Both: the request field and the MAC of key 1 (MD5), the migration
    /// path; the reply must carry the signature and the MAC.
    Ed25519Md5,
}

#[derive(Parser, Debug)]
#[command(
    name = "ntp-load",
    about = "Bounded batched NTP mode-3 load generator on loopback; prints JSON"
)]
struct Args {
    /// The server (must be in 127.0.0.0/8).
    #[arg(long, default_value = "127.0.0.1:11123")]
    server: SocketAddrV4,
    /// How long to send, 1..=60 s.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second to offer, 1..=2000000.
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// At most this many requests in flight (0 = no limit, open loop).
    #[arg(long, default_value_t = 0)]
    window: u64,
    /// Source addresses (127.0.1.1 upwards, one per batch in turn), 1..=65536.
    #[arg(long, default_value_t = 64)]
    sources: u32,
    /// UDP sockets, i.e. source ports, 1..=64.
    #[arg(long, default_value_t = 4)]
    sockets: usize,
    /// Datagrams per sendmmsg/recvmmsg call, 1..=1024.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Request authentication.
    #[arg(long, value_enum, default_value_t = Auth::None)]
    auth: Auth,
    /// The keys file (ntpd format) with keys 1 (MD5) and 3 (AES128CMAC).
    #[arg(long)]
    keys: Option<PathBuf>,
    /// Count signed replies without checking their MAC.
    #[arg(long)]
    no_verify: bool,
    /// The server's public key line (`ed25519:...`), for `--auth ed25519`
    /// and `ed25519-md5`. Every reply must carry a signature field with its
    /// fingerprint; one in [`VERIFY_EVERY`] is verified in full (verifying
    /// each would make the load generator, not the server, the limit).
    #[arg(long)]
    public_key: Option<String>,
    /// The server is an echo (udp-floor): a reply is any mode-4 datagram
    /// that carries one of our transmit timestamps, wherever it is.
    #[arg(long)]
    echo: bool,
    /// Instead of a timed load: one request from each of N distinct source
    /// addresses (127.16.0.1 upwards, 1..=1000000), paced at --rate.
    #[arg(long)]
    distinct: Option<u32>,
    /// Send malformed datagrams (not NTP) instead of requests.
    #[arg(long)]
    junk: bool,
}

/// One signed reply in this many is verified in full (see `--public-key`).
const VERIFY_EVERY: u64 = 64;

/// Lab hosts' addresses (DESIGN.md): 198.18.0.0/15.
fn is_lab(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 198 && (b == 18 || b == 19)
}

/// Lengths of the junk datagrams, in turn: shorter than an NTP header, or
/// a header followed by a trailer that is not a whole number of words.
const JUNK_LENGTHS: [usize; 8] = [1, 12, 20, 47, 49, 50, 51, 53];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(why) = check(&args) {
        eprintln!("ntp-load: {why}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ntp-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(a: &Args) -> Result<(), String> {
    let lab = is_lab(*a.server.ip());
    if !a.server.ip().is_loopback() && !lab {
        return Err(format!(
            "server {} is neither in 127.0.0.0/8 nor a lab host in 198.18.0.0/15",
            a.server
        ));
    }
    if lab && (a.sources != 1 || a.distinct.is_some()) {
        return Err("a lab server (198.18.0.0/15) takes --sources 1 and no --distinct".into());
    }
    let bounds = [
        ("--seconds", (1..=60).contains(&a.seconds)),
        ("--rate", (1..=2_000_000).contains(&a.rate)),
        ("--window", a.window <= 1_000_000),
        ("--sources", (1..=65_536).contains(&a.sources)),
        ("--sockets", (1..=64).contains(&a.sockets)),
        ("--batch", (1..=1024).contains(&a.batch)),
        (
            "--distinct",
            a.distinct.is_none_or(|n| (1..=1_000_000).contains(&n)),
        ),
    ];
    match bounds.iter().find(|(_, ok)| !ok) {
        Some((name, _)) => Err(format!("{name} out of range (see --help)")),
        None => Ok(()),
    }
}

/// What came back, by kind.
#[derive(Debug, Default)]
struct Tally {
    /// Valid replies.
    replies: u64,
    /// Datagrams that are not an answer to one of our requests, or whose
    /// MAC failed.
    invalid: u64,
    /// Kiss-o'-Death replies (stratum 0).
    kod: u64,
    /// Replies from an unsynchronized server (leap 3 or stratum 16).
    unsynchronized: u64,
}

impl Tally {
    fn answered(&self) -> u64 {
        self.replies + self.invalid + self.kod + self.unsynchronized
    }
}

/// The prepared requests and how to check a reply to them.
struct Requests {
    packets: Vec<Vec<u8>>,
    /// Seconds field shared by all our transmit timestamps; the fraction is
    /// the request's index in `packets`.
    tag_seconds: u32,
    /// The signing key, when replies must carry a MAC with it.
    key: Option<KeyId>,
    keys: Option<KeyStore>,
    verify: bool,
    echo: bool,
    junk: bool,
    /// The key replies must be signed with (Ed25519 kinds).
    public: Option<mcast_keys::signed::PublicKey>,
    /// Signed replies seen, for the one-in-[`VERIFY_EVERY`] sample.
    signed_seen: std::cell::Cell<u64>,
}

impl Requests {
    fn new(args: &Args) -> Result<Requests, String> {
        let key_id = match args.auth {
            Auth::None => None,
            Auth::Md5 => KeyId::new(1),
            Auth::AesCmac => KeyId::new(3),
            Auth::Ed25519 => None,
            Auth::Ed25519Md5 => KeyId::new(1),
        };
        let public = match args.auth {
            Auth::Ed25519 | Auth::Ed25519Md5 => {
                let line = args
                    .public_key
                    .as_deref()
                    .ok_or("--auth ed25519 needs --public-key")?;
                Some(mcast_keys::signed::PublicKey::parse(line).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let keys = match key_id {
            None => None,
            Some(_) => {
                let path = args.keys.clone().unwrap_or_else(mcast_lab::lab::keys_file);
                Some(
                    KeyStore::load(&path)
                        .map_err(|e| format!("keys file {}: {e}", path.display()))?,
                )
            }
        };
        let signing = match (key_id, &keys) {
            (Some(id), Some(store)) => Some(
                store
                    .get(id)
                    .ok_or_else(|| format!("key {} is not in the keys file", id.get()))?,
            ),
            _ => None,
        };
        let tag_seconds = NtpTimestamp::from_system_time(SystemTime::now()).seconds();
        let mut packets = Vec::with_capacity(POOL);
        for i in 0..POOL {
            if args.junk {
                // A client-mode first byte, so only the length is wrong.
                let len = JUNK_LENGTHS
                    .get(i % JUNK_LENGTHS.len())
                    .copied()
                    .unwrap_or(1);
                let mut p: Vec<u8> = (0..len).map(|k| (k * 7 + i) as u8).collect();
                if let Some(first) = p.first_mut() {
                    *first = 0x23;
                }
                packets.push(p);
                continue;
            }
            let mut h = Header::new(Mode::Client);
            h.poll = Log2Seconds(6);
            h.precision = Log2Seconds(-20);
            h.transmit = NtpTimestamp::from_parts(tag_seconds, u32::try_from(i).unwrap_or(0));
            let mut d = Datagram::new(h);
            if let Some(pk) = &public {
                d.extensions
                    .push(mcast_keys::signed::request_field(pk.fingerprint()));
            }
            let mut out = Vec::with_capacity(172);
            match signing {
                Some(k) => packet::sign(k, &d, &mut out),
                None => d.write_signed_part(&mut out),
            }
            packets.push(out);
        }
        Ok(Requests {
            packets,
            tag_seconds,
            key: key_id,
            keys,
            verify: !args.no_verify,
            echo: args.echo,
            junk: args.junk,
            public,
            signed_seen: std::cell::Cell::new(0),
        })
    }

    fn judge(&self, bytes: &[u8], tally: &mut Tally) {
        if self.junk {
            tally.invalid += 1;
            return;
        }
        let Ok(d) = Datagram::parse(bytes) else {
            tally.invalid += 1;
            return;
        };
        let h = &d.header;
        let ours = |t: NtpTimestamp| {
            t.seconds() == self.tag_seconds && usize::try_from(t.fraction()).is_ok_and(|i| i < POOL)
        };
        if self.echo {
            if h.mode == Mode::Server && (ours(h.transmit) || ours(h.origin)) {
                tally.replies += 1;
            } else {
                tally.invalid += 1;
            }
            return;
        }
        if h.mode != Mode::Server || !ours(h.origin) {
            tally.invalid += 1;
            return;
        }
        if h.stratum == 0 {
            tally.kod += 1;
            return;
        }
        if let Some(want) = self.key {
            let ok = match (&d.mac, &self.keys) {
                (Some(mac), _) if !self.verify => mac.key_id == u32::from(want.get()),
                (Some(_), Some(store)) => matches!(
                    packet::authenticate(store, bytes, &d, None),
                    PacketAuth::Mac(MacVerdict::Valid(k)) if k == want
                ),
                _ => false,
            };
            if !ok {
                tally.invalid += 1;
                return;
            }
        }
        if let Some(pk) = &self.public {
            let n = self.signed_seen.get();
            self.signed_seen.set(n.wrapping_add(1));
            let fp = pk.fingerprint();
            let carries = d.extensions.iter().any(|f| {
                f.field_type == mcast_keys::signed::FIELD_TYPE && f.value.get(4..12) == Some(&fp.0)
            });
            let ok = carries
                && (!self.verify
                    || !n.is_multiple_of(VERIFY_EVERY)
                    || mcast_keys::signed::check_reply(pk, &d).is_ok());
            if !ok {
                tally.invalid += 1;
                return;
            }
        }
        if h.leap == LeapIndicator::Unsynchronized || h.stratum >= 16 {
            tally.unsynchronized += 1;
            return;
        }
        tally.replies += 1;
    }
}

/// The load sockets and their reusable message headers.
struct Load {
    socks: Vec<Socket>,
    server: SockaddrIn,
    batch: usize,
    tx_headers: MultiHeaders<SockaddrIn>,
    /// Source addresses chosen with IP_PKTINFO (loopback servers only).
    pktinfo: bool,
    rx_headers: MultiHeaders<SockaddrIn>,
    rx_bufs: Vec<[u8; 512]>,
    send_errors: u64,
}

fn pktinfo(source: Ipv4Addr) -> libc::in_pktinfo {
    libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(source).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    }
}

/// The `i`-th address after `base`, which must stay in 127.0.0.0/8.
fn nth_address(base: Ipv4Addr, i: u32) -> Ipv4Addr {
    let a = Ipv4Addr::from(u32::from(base).wrapping_add(i));
    if a.is_loopback() { a } else { base }
}

impl Load {
    fn new(args: &Args) -> io::Result<Load> {
        let pktinfo = args.server.ip().is_loopback();
        let mut socks = Vec::with_capacity(args.sockets);
        for _ in 0..args.sockets {
            let s = Socket::new(Domain::IPV4, Type::DGRAM.nonblocking(), Some(Protocol::UDP))?;
            // The wildcard address, so replies to every 127.x source come
            // back here; requests only ever go to the loopback server.
            s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
            s.set_recv_buffer_size(RCVBUF)?;
            s.set_send_buffer_size(RCVBUF)?;
            socks.push(s);
        }
        let n = args.batch;
        Ok(Load {
            socks,
            server: SockaddrIn::from(args.server),
            batch: n,
            // No control-message space at all without IP_PKTINFO: an
            // empty one would be handed to the kernel as a bad cmsg.
            tx_headers: if pktinfo {
                MultiHeaders::preallocate(n, Some(nix::cmsg_space!(libc::in_pktinfo)))
            } else {
                MultiHeaders::preallocate(n, None)
            },
            pktinfo,
            rx_headers: MultiHeaders::preallocate(n, None),
            rx_bufs: vec![[0u8; 512]; n],
            send_errors: 0,
        })
    }

    /// Sends requests `first..first + count` of the pool (no wrap-around)
    /// from socket `sock` with source address `source`; returns how many
    /// left.
    fn send(
        &mut self,
        slices: &[[IoSlice<'_>; 1]],
        sock: usize,
        source: Ipv4Addr,
        first: usize,
        count: usize,
    ) -> u64 {
        let Some(fd) = self.socks.get(sock).map(AsRawFd::as_raw_fd) else {
            return 0;
        };
        let Some(batch) = slices.get(first..first + count) else {
            return 0;
        };
        let addrs = vec![Some(self.server); batch.len()];
        let info = pktinfo(source);
        let with_info = [ControlMessage::Ipv4PacketInfo(&info)];
        let cmsgs: &[ControlMessage<'_>] = if self.pktinfo { &with_info } else { &[] };
        match sendmmsg(
            fd,
            &mut self.tx_headers,
            batch,
            &addrs,
            cmsgs,
            MsgFlags::empty(),
        ) {
            Ok(r) => r.count() as u64,
            Err(_) => {
                self.send_errors += 1;
                0
            }
        }
    }

    /// Reads every reply queued on every socket (without waiting).
    fn drain(&mut self, requests: &Requests, tally: &mut Tally) -> u64 {
        let mut got: u64 = 0;
        for s in &self.socks {
            let fd = s.as_raw_fd();
            loop {
                let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
                    .rx_bufs
                    .iter_mut()
                    .map(|b| [IoSliceMut::new(&mut b[..])])
                    .collect();
                let Ok(msgs) = recvmmsg(
                    fd,
                    &mut self.rx_headers,
                    iovs.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                ) else {
                    break;
                };
                let mut n = 0;
                for m in msgs {
                    n += 1;
                    let bytes = m.iovs().next().unwrap_or_default();
                    requests.judge(bytes, tally);
                }
                got += n as u64;
                if n < self.batch {
                    break;
                }
            }
        }
        got
    }

    /// Waits up to `timeout` for a reply on any socket.
    fn wait(&self, timeout: Duration) {
        let mut fds: Vec<PollFd<'_>> = self
            .socks
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(timeout.as_millis().max(1)).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(timeout),
        }
    }
}

fn cpu_seconds() -> f64 {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(|u| {
            (u.user_time().num_microseconds() + u.system_time().num_microseconds()) as f64 / 1e6
        })
        .unwrap_or(0.0)
}

fn run(args: &Args) -> Result<String, String> {
    let requests = Requests::new(args)?;
    let mut load = Load::new(args).map_err(|e| format!("sockets: {e}"))?;
    let slices: Vec<[IoSlice<'_>; 1]> =
        requests.packets.iter().map(|p| [IoSlice::new(p)]).collect();
    let mut tally = Tally::default();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    let (sent, send_window) = match args.distinct {
        Some(n) => distinct(args, n, &requests, &mut load, &mut tally),
        None => timed(args, &requests, &slices, &mut load, &mut tally),
    };
    // Collect the stragglers.
    let grace_end = Instant::now() + GRACE;
    while Instant::now() < grace_end {
        if load.drain(&requests, &mut tally) == 0 {
            load.wait(Duration::from_millis(5));
        }
    }
    let cpu = cpu_seconds() - cpu0;
    let elapsed = start.elapsed().as_secs_f64();
    let duration = send_window.as_secs_f64();
    let per_s = |n: u64| {
        if duration > 0.0 {
            n as f64 / duration
        } else {
            0.0
        }
    };
    let report = serde_json::json!({
        "sent": sent,
        "replies": tally.replies,
        "replies_per_s": (per_s(tally.replies) * 10.0).round() / 10.0,
        "duration": (duration * 1000.0).round() / 1000.0,
        "offered_rate": args.rate,
        "window": args.window,
        "auth": args.auth.to_possible_value().map(|v| v.get_name().to_owned()),
        "sources": args.distinct.unwrap_or(args.sources),
        "sockets": args.sockets,
        "junk": args.junk,
        "kod": tally.kod,
        "unsynchronized": tally.unsynchronized,
        "invalid": tally.invalid,
        "lost": sent.saturating_sub(tally.answered()),
        "send_errors": load.send_errors,
        "loadgen_cpu_s": (cpu * 1000.0).round() / 1000.0,
        "loadgen_cpu_share": if elapsed > 0.0 { ((cpu / elapsed) * 1000.0).round() / 1000.0 } else { 0.0 },
    });
    Ok(report.to_string())
}

/// The timed, paced load. Returns (requests sent, how long it sent).
fn timed(
    args: &Args,
    requests: &Requests,
    slices: &[[IoSlice<'_>; 1]],
    load: &mut Load,
    tally: &mut Tally,
) -> (u64, Duration) {
    let seconds = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let end = start + seconds;
    let mut sent: u64 = 0;
    let mut next = 0usize; // next request of the pool
    let mut turn: u64 = 0; // batches sent, to rotate sockets and sources
    let mut forgiven: u64 = 0; // requests given up as lost (window mode)
    let mut last_progress = start;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = (now - start).as_secs_f64() * args.rate as f64;
        let mut want = (due as u64).saturating_sub(sent);
        if args.window > 0 {
            let in_flight = sent.saturating_sub(tally.answered() + forgiven);
            want = want.min(args.window.saturating_sub(in_flight));
        }
        let want = usize::try_from(want)
            .unwrap_or(usize::MAX)
            .min(load.batch)
            .min(POOL - next);
        let mut did = 0;
        if want > 0 {
            let sock = usize::try_from(turn % load.socks.len() as u64).unwrap_or(0);
            let source = nth_address(
                LOAD_SOURCE_BASE,
                u32::try_from(turn % u64::from(args.sources)).unwrap_or(0),
            );
            let n = load.send(slices, sock, source, next, want);
            sent += n;
            next = (next + usize::try_from(n).unwrap_or(0)) % POOL;
            turn += 1;
            did += n;
        }
        let got = load.drain(requests, tally);
        if got > 0 {
            last_progress = now;
        }
        if did == 0 && got == 0 {
            if args.window > 0 && now.duration_since(last_progress) > STALL {
                forgiven = sent.saturating_sub(tally.answered());
                last_progress = now;
            }
            load.wait(Duration::from_millis(1));
        }
    }
    (sent, start.elapsed().min(seconds))
}

/// One request from each of `n` distinct source addresses, paced at
/// `--rate`, stopping at `--seconds` in any case.
fn distinct(
    args: &Args,
    n: u32,
    requests: &Requests,
    load: &mut Load,
    tally: &mut Tally,
) -> (u64, Duration) {
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let server = load.server;
    let mut sent: u64 = 0;
    for i in 0..n {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while (Instant::now() - start).as_secs_f64() * (args.rate as f64) < sent as f64 {
            if load.drain(requests, tally) == 0 {
                std::thread::yield_now();
            }
        }
        let source = nth_address(DISTINCT_SOURCE_BASE, i);
        let info = pktinfo(source);
        let idx = usize::try_from(i).unwrap_or(0) % POOL;
        let Some(pkt) = requests.packets.get(idx) else {
            break;
        };
        let Some(sock) = load.socks.first().map(AsRawFd::as_raw_fd) else {
            break;
        };
        match sendmsg(
            sock,
            &[IoSlice::new(pkt)],
            &[ControlMessage::Ipv4PacketInfo(&info)],
            MsgFlags::empty(),
            Some(&server),
        ) {
            Ok(_) => sent += 1,
            Err(_) => load.send_errors += 1,
        }
        if i % 64 == 0 {
            load.drain(requests, tally);
        }
    }
    (sent, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_never_frames_as_ntp_and_lab_servers_are_allowed_alone() {
        let args = Args::parse_from([
            "ntp-load",
            "--junk",
            "--server",
            "198.18.3.1:123",
            "--sources",
            "1",
        ]);
        assert_eq!(check(&args), Ok(()));
        let requests = Requests::new(&args).unwrap();
        for p in &requests.packets {
            assert!(
                Datagram::parse(p).is_err(),
                "junk of {} bytes parses",
                p.len()
            );
        }
        let many = Args::parse_from(["ntp-load", "--server", "198.18.3.1:123"]);
        assert!(check(&many).is_err(), "64 sources on a lab server");
        let outside = Args::parse_from(["ntp-load", "--server", "192.0.2.1:123", "--sources", "1"]);
        assert!(check(&outside).is_err(), "neither loopback nor lab");
    }

    #[test]
    fn sources_stay_in_loopback() {
        assert_eq!(
            nth_address(LOAD_SOURCE_BASE, 0),
            Ipv4Addr::new(127, 0, 1, 1)
        );
        assert_eq!(
            nth_address(DISTINCT_SOURCE_BASE, 99_999),
            Ipv4Addr::new(127, 17, 134, 160)
        );
        assert!(nth_address(DISTINCT_SOURCE_BASE, u32::MAX).is_loopback());
    }
}
