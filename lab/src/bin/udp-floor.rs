//! `udp-floor`: the smallest batched UDP responder, the floor of this
//! machine for the calibration-responder benchmark (`bench/responder.sh`).
//!
//! One thread, one blocking IPv4 socket: `recvmmsg(2)` a batch (up to
//! `--batch` datagrams, returning as soon as one is there), for each one
//! copy the request, set the mode to 4 and write the kernel receive
//! timestamp into the receive field, then `sendmmsg(2)` the batch back to
//! the senders. No parsing, no validation, no rate limit, no MAC: whatever
//! an NTP server does on top of this is its own cost.
//!
//! Kernel receive timestamps (`SO_TIMESTAMPNS`) are on by default, as in
//! the NTP servers it is compared with; `--no-timestamps` turns them off.
//!
//! Safety: it only answers whoever sent to it, binds a loopback address by
//! default (anything else is refused), and exits by itself after
//! `--seconds` (at most one hour).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::cmsg_space;
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg,
    setsockopt, sockopt,
};
use nix::sys::time::{TimeSpec, TimeVal};
use socket2::{Domain, Protocol, Socket, Type};

/// Seconds between 1900 (NTP era 0) and 1970 (Unix).
const UNIX_TO_NTP_SECS: u64 = 2_208_988_800;

/// The largest datagram answered; longer ones are truncated by the kernel
/// and answered with the first bytes.
const MAX_DATAGRAM: usize = 512;

#[derive(Parser, Debug)]
#[command(
    name = "udp-floor",
    about = "Minimal batched UDP responder (recvmmsg/sendmmsg, no NTP logic): the benchmark floor"
)]
struct Args {
    /// Address to answer on (must be in 127.0.0.0/8).
    #[arg(long, default_value = "127.0.0.1:11123")]
    bind: SocketAddrV4,
    /// Datagrams per recvmmsg/sendmmsg call (1..=1024).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Exit after this many seconds (1..=3600).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Do not ask for kernel receive timestamps (SO_TIMESTAMPNS).
    #[arg(long)]
    no_timestamps: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.bind.ip().is_loopback() {
        eprintln!("udp-floor: refusing to bind {}: loopback only", args.bind);
        return ExitCode::from(2);
    }
    if !(1..=1024).contains(&args.batch) || !(1..=3600).contains(&args.seconds) {
        eprintln!("udp-floor: --batch must be 1..=1024 and --seconds 1..=3600");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(stats) => {
            println!(
                "{{\"received\":{},\"replied\":{},\"batches\":{}}}",
                stats.received, stats.replied, stats.batches
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("udp-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    received: u64,
    replied: u64,
    batches: u64,
}

/// One received datagram: its length, sender and kernel receive time.
struct Received {
    len: usize,
    from: Option<SockaddrIn>,
    rx: Option<TimeSpec>,
}

fn run(args: &Args) -> io::Result<Stats> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    sock.bind(&SocketAddr::V4(args.bind).into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", args.bind)))?;
    if !args.no_timestamps {
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true)?;
    }
    // Wake up once a second to check the deadline.
    setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(1, 0))?;
    let fd = sock.as_raw_fd();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);

    let n = args.batch;
    let mut bufs = vec![[0u8; MAX_DATAGRAM]; n];
    let mut rx_headers =
        MultiHeaders::<SockaddrIn>::preallocate(n, Some(cmsg_space!(TimeSpec, TimeSpec)));
    let mut tx_headers = MultiHeaders::<SockaddrIn>::preallocate(n, None);
    let mut got: Vec<Received> = Vec::with_capacity(n);
    let mut addrs: Vec<Option<SockaddrIn>> = Vec::with_capacity(n);
    let mut stats = Stats::default();
    let no_cmsgs: [ControlMessage<'_>; 0] = [];

    while Instant::now() < deadline {
        got.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs
                .iter_mut()
                .map(|b| [IoSliceMut::new(&mut b[..])])
                .collect();
            let msgs = match recvmmsg(
                fd,
                &mut rx_headers,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(m) => m,
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for m in msgs {
                let rx = m.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|cm| match cm {
                        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                        _ => None,
                    })
                });
                got.push(Received {
                    len: m.bytes.min(MAX_DATAGRAM),
                    from: m.address,
                    rx,
                });
            }
        }
        stats.batches += 1;
        stats.received += got.len() as u64;
        addrs.clear();
        for (buf, r) in bufs.iter_mut().zip(&got) {
            answer(buf, r);
            addrs.push(r.from);
        }
        let slices: Vec<[IoSlice<'_>; 1]> = bufs
            .iter()
            .zip(&got)
            .map(|(b, r)| [IoSlice::new(b.get(..r.len).unwrap_or_default())])
            .collect();
        // sendmmsg may stop early (a full socket buffer): send the rest.
        let mut done = 0;
        while done < slices.len() {
            let rest = slices.get(done..).unwrap_or_default();
            let rest_addrs = addrs.get(done..).unwrap_or_default();
            match sendmmsg(
                fd,
                &mut tx_headers,
                rest,
                rest_addrs,
                no_cmsgs,
                MsgFlags::empty(),
            ) {
                Ok(r) => {
                    let sent = r.count();
                    if sent == 0 {
                        break;
                    }
                    done += sent;
                }
                Err(Errno::EINTR) => {}
                // The peer went away (ICMP error) or a buffer is full: drop
                // this one and go on, as a server would.
                Err(_) => done += 1,
            }
        }
        stats.replied += done as u64;
    }
    Ok(stats)
}

/// Turns the request in `buf` into its answer: mode 4, and the kernel
/// receive time in the receive field (bytes 32..40) when the datagram is
/// long enough to have one.
fn answer(buf: &mut [u8; MAX_DATAGRAM], r: &Received) {
    if let Some(b0) = buf.first_mut() {
        *b0 = (*b0 & 0xf8) | 4;
    }
    if let (Some(ts), Some(field)) = (r.rx, buf.get_mut(32..40))
        && r.len >= 48
    {
        let secs = u64::try_from(ts.tv_sec()).unwrap_or(0) + UNIX_TO_NTP_SECS;
        let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
        let frac = (nanos << 32) / 1_000_000_000;
        field.copy_from_slice(&((secs << 32) | frac).to_be_bytes());
    }
}
