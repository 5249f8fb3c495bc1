//! `ntp-liar`: a forged multicast NTP server for lab tests. It signs with a
//! valid key, sends mode-5 broadcasts every 2^poll s and answers
//! calibration requests, exactly as `mcast-server` does (it drives the same
//! [`Broadcaster`] and [`Responder`] cores), except that every timestamp it
//! sends is off by `--offset-ms`: the falseticker a client must exclude.
//!
//! For lab hosts only: run it inside a namespace of a test's own LAN. It
//! stops by itself after `--seconds` (bounded), or when killed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use mcast_core::server::broadcaster::{BroadcastConfig, Broadcaster, Build};
use mcast_core::server::ratelimit::{Mru, RateLimitConfig};
use mcast_core::server::responder::{Outcome, Request, Responder, ResponderConfig};
use mcast_core::server::sync::{SyncStatus, SystemHeader};
use mcast_keys::{KeyId, KeyStore};
use mcast_proto::{Log2Seconds, NtpDuration, NtpTimestamp};
use socket2::{Domain, Protocol, Socket, Type};

/// Forged multicast NTP server whose clock is off by a fixed amount.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to send from and answer on (the host's LAN address).
    #[arg(long)]
    bind: Ipv4Addr,
    /// Multicast group to send to.
    #[arg(long, default_value = "224.0.1.1")]
    group: Ipv4Addr,
    /// UDP port (source and destination).
    #[arg(long, default_value_t = 123)]
    port: u16,
    /// Keys file (ntpd format).
    #[arg(long)]
    keys: std::path::PathBuf,
    /// Key id to sign with.
    #[arg(long)]
    key: u32,
    /// Poll exponent: one broadcast every 2^poll s.
    #[arg(long, default_value_t = 3)]
    poll: i8,
    /// How far every timestamp sent is off, in milliseconds.
    #[arg(long, allow_hyphen_values = true)]
    offset_ms: i64,
    /// Stratum advertised.
    #[arg(long, default_value_t = 2)]
    stratum: u8,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ntp-liar: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let keys = KeyStore::load(&args.keys).map_err(|e| e.to_string())?;
    let key = KeyId::new(args.key).ok_or("key id 0 is not a key")?;
    if keys.get(key).is_none() {
        return Err(format!("key {key} is not in {}", args.keys.display()));
    }
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuse_address(true)
        .and_then(|()| socket.bind(&SocketAddr::new(IpAddr::V4(args.bind), args.port).into()))
        .and_then(|()| socket.set_multicast_if_v4(&args.bind))
        .and_then(|()| socket.set_multicast_ttl_v4(1))
        .and_then(|()| socket.set_multicast_loop_v4(false))
        .map_err(|e| format!("bind {}:{}: {e}", args.bind, args.port))?;
    let socket: UdpSocket = socket.into();

    let offset = NtpDuration::from_millis(args.offset_ms);
    let now = move || NtpTimestamp::from_system_time(SystemTime::now()) + offset;
    let precision = Log2Seconds(-20);
    let start = Instant::now();
    let stop = Duration::from_secs(args.seconds);
    let mut broadcaster = Broadcaster::new(
        BroadcastConfig {
            poll: Log2Seconds(args.poll),
            key: Some(key),
            next_key: None,
            interleave: false,
            send_when_unsynchronized: false,
            precision,
        },
        Duration::ZERO,
    );
    let mut responder = Responder::new(
        ResponderConfig {
            require_auth: true,
            precision,
        },
        Mru::new(RateLimitConfig::default()),
    );
    let group = SocketAddr::new(IpAddr::V4(args.group), args.port);
    let mut out = Vec::with_capacity(72);
    let mut buf = [0u8; 1024];
    let mut jitter_seed: u32 = 0x9e37_79b9;
    eprintln!(
        "ntp-liar: sending to {group} from {} every 2^{} s, {} ms off",
        args.bind, args.poll, args.offset_ms
    );
    while start.elapsed() < stop {
        let sync = SyncStatus::Synchronized(SystemHeader {
            leap: mcast_proto::LeapIndicator::NoWarning,
            stratum: args.stratum,
            reference_id: mcast_proto::RefId::from_code("LIAR"),
            root_delay: mcast_proto::NtpShort::ZERO,
            root_dispersion: mcast_proto::NtpShort::from_duration(NtpDuration::from_micros(20)),
            reference_time: now(),
        });
        let mono = start.elapsed();
        if mono >= broadcaster.due() {
            let sent = match broadcaster.build(&sync, &keys, now, &mut out) {
                Build::Send => socket.send_to(&out, group).is_ok(),
                Build::Silent(_) => false,
            };
            // A small xorshift: the jitter needs no quality, only variety.
            jitter_seed ^= jitter_seed << 13;
            jitter_seed ^= jitter_seed >> 17;
            jitter_seed ^= jitter_seed << 5;
            broadcaster.advance(mono, sent, jitter_seed as u16, None);
        }
        let wait = broadcaster
            .due()
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("set_read_timeout: {e}"))?;
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(_) => continue,
        };
        let req = Request {
            bytes: buf.get(..len).unwrap_or_default(),
            source: from,
            received_at: now(),
            monotonic: start.elapsed(),
        };
        if let Outcome::Reply(_) = responder.handle(&req, &sync, &keys, now, &mut out) {
            let _ = socket.send_to(&out, from);
        }
    }
    Ok(())
}
