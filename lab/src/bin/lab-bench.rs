//! `lab-bench`: the client benchmarks of BENCHMARKS.md, on a LAN of network
//! namespaces built for the run (needs root and `scripts/install-deps`).
//!
//! - `lab-bench accuracy [--minutes M] [--poll P] [--basic]`: three of our
//!   servers (MD5, SHA1 and AES-CMAC keys), sending interleaved broadcasts
//!   unless `--basic`; our client and the reference ntpd 4.2.8p15
//!   `multicastclient` listen to the same broadcasts (ntpd switches to
//!   interleave by itself when it sees a nonzero origin). All hosts
//!   share one clock, so every offset a client reports is its error. After
//!   both track all servers, both are sampled every 2 s for M minutes:
//!   median, p99 and max |offset| of each per-server offset, and of our
//!   combined offset.
//! - `lab-bench footprint [--servers N] [--minutes M]`: N of our servers and
//!   our client: time from start to the first selected server, then RSS
//!   and CPU of the client while it tracks all N.
//! - `lab-bench storm [--clients N] [--poll P]`: a calibration storm, as
//!   after a mass reboot: one of our servers, then N of our clients (each in
//!   its own namespace on the one bridge, at most 253) started within about
//!   a second. How long until every client tracks, the requests, replies
//!   and KoDs the server counted, its CPU, and every client's calibrated
//!   one-way delay by the order the clients joined the bridge.
//!
//! Every process runs without CAP_SYS_TIME and the clients never touch
//! the clock (monitor mode, ntpd with `disable ntp`). Prints a Markdown
//! table for BENCHMARKS.md.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use mcast_core::client::association::State;
use mcast_lab::lab::{self, Daemon, GROUP, Program, destination, local_source, wait_for};
use mcast_lab::netns::{self, Host, Lan};
use mcast_lab::refntpd::RefNtpd;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Client accuracy and footprint benchmarks on a namespace LAN"
)]
struct Args {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// Our client against ntpd's multicastclient, same servers, same run.
    Accuracy {
        /// Minutes of sampling after both clients track every server.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Servers' poll exponent (ntpd clients need 3 or more).
        #[arg(long, default_value_t = 3)]
        poll: i8,
        /// Basic broadcasts instead of interleaved ones (`interleave =
        /// false` on the servers and our client; ntpd follows the servers).
        #[arg(long)]
        basic: bool,
    },
    /// Ed25519 cost per broadcast on this machine: signing (server) and
    /// checking (client), and the packet sizes (no LAN, no root).
    Signatures {
        /// Packets to sign and check.
        #[arg(long, default_value_t = 20_000)]
        count: u32,
    },
    /// A calibration storm: N clients started at once against one server.
    Storm {
        /// Clients (1 to 253).
        #[arg(long, default_value_t = 200)]
        clients: usize,
        /// The server's poll exponent.
        #[arg(long, default_value_t = 3)]
        poll: i8,
    },
    /// Time to first selection, RSS and CPU of our client with N servers.
    Footprint {
        /// Servers.
        #[arg(long, default_value_t = 8)]
        servers: usize,
        /// Minutes of measuring CPU while tracking.
        #[arg(long, default_value_t = 5)]
        minutes: u64,
        /// Servers' poll exponent.
        #[arg(long, default_value_t = 3)]
        poll: i8,
    },
}

/// Keys the servers sign with, in host order (all types the keys file has).
const KEYS: [u32; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Bench::Signatures { count } = args.command {
        signatures(count.max(1));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = netns::require_root() {
        eprintln!("lab-bench: {e}");
        return ExitCode::from(2);
    }
    let result = match args.command {
        Bench::Accuracy {
            minutes,
            poll,
            basic,
        } => accuracy(minutes, poll, !basic),
        Bench::Footprint {
            servers,
            minutes,
            poll,
        } => footprint(servers.clamp(1, KEYS.len()), minutes, poll),
        Bench::Storm { clients, poll } => storm(clients.clamp(1, 253), poll),
        Bench::Signatures { .. } => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Signs and checks `count` broadcasts, one at a time as the daemons do,
/// and prints the cost of each and the packet sizes.
fn signatures(count: u32) {
    use mcast_keys::signed::{ServerKey, check_field};
    use mcast_proto::{Datagram, Header, Mode, NtpTimestamp};
    let key = ServerKey::from_seed(&[42; 32]);
    let group: std::net::SocketAddr = "224.0.1.1:123".parse().unwrap_or_else(|_| unreachable!());
    let mut packets = Vec::with_capacity(count as usize);
    let start = std::time::Instant::now();
    for i in 0..count {
        let mut h = Header::new(Mode::Broadcast);
        h.transmit = NtpTimestamp::from_bits(u64::from(i) << 20);
        let mut d = Datagram::new(h);
        d.extensions.push(key.sign_field(&h.to_bytes(), group));
        packets.push(d);
    }
    let sign = start.elapsed();
    let start = std::time::Instant::now();
    let ok = packets
        .iter()
        .filter(|d| check_field(key.public(), d, &[group]).is_ok())
        .count();
    let check = start.elapsed();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / f64::from(count);
    println!(
        "signatures: {count} packets; sign {:.1} us/packet, check {:.1} us/packet ({ok} valid); \
         sizes: MAC only 68 B (MD5) / 72 B (SHA1), signed + MAC 168 B (MD5) / 172 B (SHA1), \
         signed only 148 B",
        per(sign),
        per(check)
    );
}

fn lan_with(hosts: usize) -> Result<(tempfile::TempDir, Lan), String> {
    let work = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let lan = Lan::new(hosts).map_err(|e| format!("build a {hosts}-host LAN: {e}"))?;
    Ok((work, lan))
}

fn start_servers(
    lan: &Lan,
    work: &Path,
    n: usize,
    poll: i8,
    interleave: bool,
) -> Vec<(Daemon, IpAddr, u32)> {
    let extra = if interleave {
        "interleave = true\n"
    } else {
        ""
    };
    KEYS.iter()
        .take(n)
        .enumerate()
        .map(|(i, &key)| {
            let host = lan.host(i + 1);
            let body = format!(
                "{}{}",
                destination(&GROUP.to_string(), key, poll, extra),
                local_source(2)
            );
            let d = Daemon::start(
                Program::Server,
                &host,
                work,
                &format!("server{}", i + 1),
                123,
                &body,
            );
            (d, IpAddr::V4(host.addr()), key)
        })
        .collect()
}

fn start_client(
    host: &Host,
    work: &Path,
    servers: &[(Daemon, IpAddr, u32)],
    interleave: bool,
) -> Daemon {
    let mut body = format!(
        "[[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n[clock]\nmode = \"monitor\"\n\
         [selection]\nmin-agreeing = 1\n"
    );
    for (_, addr, key) in servers {
        body.push_str(&format!(
            "[[server]]\naddress = \"{addr}\"\nkey = {key}\ninterleave = {interleave}\n"
        ));
    }
    Daemon::start(Program::Client, host, work, "client", 123, &body)
}

fn tracking_all(client: &Daemon, n: usize) -> bool {
    let s = client.client_status();
    s.servers
        .iter()
        .filter(|r| r.state == State::Tracking && r.offset_ms.is_some())
        .count()
        == n
}

/// Median, p99 and max of |x|, in microseconds.
fn summary(ms: &[f64]) -> (f64, f64, f64, usize) {
    let mut v: Vec<f64> = ms.iter().map(|x| x.abs() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        let i = ((v.len().saturating_sub(1)) as f64 * q).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), at(1.0), v.len())
}

fn accuracy(minutes: u64, poll: i8, interleave: bool) -> Result<(), String> {
    let (work, lan) = lan_with(5)?;
    let servers = start_servers(&lan, work.path(), 3, poll, interleave);
    let ours = start_client(&lan.host(4), work.path(), &servers, interleave);
    let trusted: Vec<u16> = servers.iter().map(|s| s.2 as u16).collect();
    let ntpd = RefNtpd::multicast_client(
        &lan.host(5),
        &lab::keys_file(),
        &trusted,
        IpAddr::V4(GROUP),
        "",
    )
    .map_err(|e| format!("start reference ntpd multicastclient: {e}"))?;
    let addrs: Vec<String> = servers.iter().map(|s| s.1.to_string()).collect();
    eprintln!("lab-bench: waiting until both clients track all three servers");
    wait_for(
        "both clients to track every server",
        Duration::from_secs(300),
        Duration::from_secs(1),
        || {
            let theirs = ntpd.lpeers().ok()?;
            let ntpd_ok = addrs.iter().all(|a| {
                theirs
                    .iter()
                    .any(|r| &r.remote == a && r.kind == 'b' && r.reach.count_ones() >= 4)
            });
            (ntpd_ok && tracking_all(&ours, servers.len())).then_some(())
        },
        || format!("ntpd log:\n{}\nour log:\n{}", ntpd.log(), ours.log()),
    );
    eprintln!("lab-bench: sampling for {minutes} min");
    let (mut our_peer, mut our_combined, mut their_peer) = (Vec::new(), Vec::new(), Vec::new());
    let end = Instant::now() + Duration::from_secs(minutes * 60);
    while Instant::now() < end {
        let s = ours.client_status();
        our_peer.extend(s.servers.iter().filter_map(|r| r.offset_ms));
        our_combined.extend(s.offset_ms);
        if let Ok(rows) = ntpd.lpeers() {
            their_peer.extend(
                rows.iter()
                    .filter(|r| r.kind == 'b' && addrs.contains(&r.remote))
                    .map(|r| r.offset_ms),
            );
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    eprintln!("lab-bench: our client at the end:\n{}", ours.status_text());
    if std::env::var_os("LAB_BENCH_LOG").is_some() {
        eprintln!("client log:\n{}", ours.log());
    }
    if let Ok(rows) = ntpd.lpeers() {
        eprintln!("lab-bench: ntpd at the end: {rows:#?}");
    }
    println!(
        "| client | samples | median abs offset (us) | p99 (us) | max (us) |\n|---|---|---|---|---|"
    );
    for (name, v) in [
        ("mcast-client, per server", &our_peer),
        ("mcast-client, combined", &our_combined),
        ("ntpd 4.2.8p15 multicastclient, per server", &their_peer),
    ] {
        let (median, p99, max, n) = summary(v);
        println!("| {name} | {n} | {median:.1} | {p99:.1} | {max:.1} |");
    }
    println!(
        "\n{minutes} min, 3 servers (keys 1 MD5, 2 SHA1, 3 AES-CMAC), poll {poll}, {}, \
         one bridge LAN",
        if interleave {
            "interleaved broadcasts"
        } else {
            "basic broadcasts"
        }
    );
    Ok(())
}

/// (utime + stime) of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> f64 {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 after ')'.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    (ticks(11) + ticks(12)) / hz
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn storm(n: usize, poll: i8) -> Result<(), String> {
    eprintln!("lab-bench: building a LAN of {} hosts", n + 1);
    let (work, lan) = lan_with(n + 1)?;
    let servers = start_servers(&lan, work.path(), 1, poll, false);
    let server = &servers.first().ok_or("no server")?.0;
    let server_cpu0 = cpu_seconds(server.child().pid());
    let body = |servers: &[(Daemon, IpAddr, u32)]| {
        let mut body = format!(
            "[[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n[clock]\nmode = \"monitor\"\n"
        );
        for (_, addr, key) in servers {
            body.push_str(&format!("[[server]]\naddress = \"{addr}\"\nkey = {key}\n"));
        }
        body
    };
    let text = body(&servers);
    // Built (or found) before the clock starts: a first build can take
    // minutes.
    let _ = Program::Client.bin();
    let started = Instant::now();
    let clients: Vec<Daemon> = (0..n)
        .map(|j| {
            Daemon::spawn(
                Program::Client,
                &lan.host(j + 2),
                work.path(),
                &format!("client{}", j + 1),
                123,
                &text,
            )
        })
        .collect();
    let spawned = started.elapsed();
    for c in &clients {
        c.wait_running();
    }
    eprintln!(
        "lab-bench: {n} clients spawned in {:.2} s, all running after {:.2} s",
        spawned.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let tracking_at = std::cell::RefCell::new(vec![None; n]);
    wait_for(
        "every client tracking",
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let mut at = tracking_at.borrow_mut();
            for (slot, c) in at.iter_mut().zip(&clients) {
                if slot.is_none() && tracking_all(c, 1) {
                    *slot = Some(started.elapsed());
                }
            }
            at.iter().all(Option::is_some).then_some(())
        },
        || {
            let late = tracking_at.borrow().iter().filter(|t| t.is_none()).count();
            format!("{late} clients not tracking")
        },
    );
    let tracking_at = tracking_at.into_inner();
    let all_tracking = started.elapsed();
    let server_cpu = cpu_seconds(server.child().pid()) - server_cpu0;
    let counters = server.server_status().counters;
    let statuses: Vec<_> = clients.iter().map(Daemon::client_status).collect();
    let delays: Vec<f64> = statuses
        .iter()
        .filter_map(|s| s.servers.first().and_then(|r| r.one_way_delay_ms))
        .collect();
    let sent: u64 = statuses
        .iter()
        .filter_map(|s| s.servers.first().map(|r| r.unicast_sent))
        .sum();
    let fallback = statuses
        .iter()
        .filter(|s| {
            s.servers.first().is_some_and(|r| {
                matches!(
                    r.calibration,
                    mcast_core::client::status::CalibrationStatus::Fallback { .. }
                )
            })
        })
        .count();
    let mut tracked: Vec<f64> = tracking_at
        .iter()
        .flatten()
        .map(Duration::as_secs_f64)
        .collect();
    tracked.sort_by(f64::total_cmp);
    let (d_median, d_p99, d_max, _) = summary(&delays);
    println!(
        "| clients | all tracking (s) | median tracking (s) | requests sent | server received | \
         replies | KoD | rate-limited | fallback | server CPU (s) |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    println!(
        "| {n} | {:.1} | {:.1} | {sent} | {} | {} | {} | {} | {fallback} | {server_cpu:.2} |",
        all_tracking.as_secs_f64(),
        tracked.get(tracked.len() / 2).copied().unwrap_or(f64::NAN),
        counters.received,
        counters.replies_sent,
        counters.kod_sent,
        counters.rate_limited,
    );
    // The delay by bridge order: the bridge floods each broadcast to its
    // ports one after another, so later ports hear it later.
    let tenth = n.div_ceil(10).max(1);
    println!(
        "\ncalibrated one-way delay (ms): median {:.3}, p99 {:.3}, max {:.3} (summary() of us)\n",
        d_median / 1e3,
        d_p99 / 1e3,
        d_max / 1e3
    );
    // All hosts share one clock: a client's offset is its error.
    println!(
        "| clients (bridge order) | median one-way delay (us) | median offset (us) |\n|---|---|---|"
    );
    for (k, chunk) in statuses.chunks(tenth).enumerate() {
        let delay: Vec<f64> = chunk
            .iter()
            .filter_map(|s| s.servers.first().and_then(|r| r.one_way_delay_ms))
            .collect();
        let mut offset: Vec<f64> = chunk
            .iter()
            .filter_map(|s| s.servers.first().and_then(|r| r.offset_ms))
            .map(|ms| ms * 1e3)
            .collect();
        offset.sort_by(f64::total_cmp);
        let (median, _, _, _) = summary(&delay);
        println!(
            "| {}-{} | {median:.1} | {:+.1} |",
            k * tenth + 1,
            (k * tenth + chunk.len()).min(n),
            offset.get(offset.len() / 2).copied().unwrap_or(f64::NAN)
        );
    }
    println!("\npoll {poll}, one server (key 1), one bridge LAN, all clients in monitor mode");
    Ok(())
}

fn footprint(n: usize, minutes: u64, poll: i8) -> Result<(), String> {
    let (work, lan) = lan_with(n + 1)?;
    let servers = start_servers(&lan, work.path(), n, poll, false);
    let started = Instant::now();
    let client = start_client(&lan.host(n + 1), work.path(), &servers, false);
    let first = wait_for(
        "a first selected server",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let s = client.client_status();
            s.offset_ms.map(|_| started.elapsed())
        },
        || client.log(),
    );
    wait_for(
        "every server tracked",
        Duration::from_secs(300),
        Duration::from_millis(500),
        || tracking_all(&client, n).then_some(()),
        || client.log(),
    );
    let all = started.elapsed();
    if std::env::var_os("LAB_BENCH_LOG").is_some() {
        eprintln!("client log:\n{}", client.log());
    }
    let pid = client.child().pid();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(minutes * 60));
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "| servers | first selection (s) | all tracked (s) | RSS (kB) | peak RSS (kB) | CPU while \
         tracking (% of one core) |\n|---|---|---|---|---|---|"
    );
    println!(
        "| {n} | {:.2} | {:.1} | {} | {} | {:.3} |",
        first.as_secs_f64(),
        all.as_secs_f64(),
        status_kb(pid, "VmRSS:"),
        status_kb(pid, "VmHWM:"),
        cpu / wall * 100.0
    );
    println!("\npoll {poll}, CPU over {minutes} min after all were tracked");
    Ok(())
}
