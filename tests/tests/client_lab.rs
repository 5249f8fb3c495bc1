#![cfg(test)]
//! `mcast-client run` on namespace LANs: several of our servers with
//! different keys, reference ntpd 4.2.8p15 broadcast servers, a server that
//! dies, a forged server one second off, calibration replies dropped by a
//! firewall, and the interface deleted and recreated. Needs root and
//! `scripts/install-deps`; fails loudly (never skips) without them.
//!
//! Every process runs in a namespace of the test's own Lan without
//! `CAP_SYS_TIME`, the client in monitor mode (it never touches the
//! clock); all traffic stays on the Lan's bridge (198.18.0.0/15,
//! 224.0.1.1). The hosts share one clock, so a client's offset is its
//! error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mcast_core::client::association::State;
use mcast_core::client::status::{ClientStatus, ServerStatus};
use mcast_lab::lab::{
    Daemon, GROUP, Ntp, Program, destination, lab_required, local_source, parse_all, tool_bin,
    wait_for,
};
use mcast_lab::netns::{Host, Lan, read_pcap_udp};
use mcast_lab::refntpd::RefNtpd;
use mcast_proto::Mode;
use mcast_tests::vectors;

const NTP_PORT: u16 = 123;

/// Starts one of our servers in `host`, broadcasting to the lab group
/// every 2^`poll` s signed with `key`.
fn our_server(host: &Host, work: &Path, key: u32, poll: i8) -> Daemon {
    let fast = if poll < 3 {
        "lab-allow-fast-poll = true\n"
    } else {
        ""
    };
    let body = format!(
        "{fast}{}{}",
        destination(&GROUP.to_string(), key, poll, ""),
        local_source(3)
    );
    Daemon::start(
        Program::Server,
        host,
        work,
        &format!("server-{}", host.name()),
        NTP_PORT,
        &body,
    )
}

/// One of our servers in each of hosts 1, 2, ... signing with `keys` in
/// order; also (address, key) of each, for the client's configuration.
fn our_servers(
    lan: &Lan,
    work: &Path,
    keys: &[u32],
    poll: i8,
) -> (Vec<Daemon>, Vec<(IpAddr, u32)>) {
    keys.iter()
        .enumerate()
        .map(|(i, &k)| {
            let host = lan.host(i + 1);
            (
                our_server(&host, work, k, poll),
                (IpAddr::V4(host.addr()), k),
            )
        })
        .unzip()
}

/// Client settings a test varies.
struct ClientPlan<'a> {
    /// (server address, key id).
    servers: &'a [(IpAddr, u32)],
    requests: u8,
    retries: u8,
    min_agreeing: usize,
}

impl ClientPlan<'_> {
    fn body(&self) -> String {
        let mut s = format!(
            "[[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
             [calibration]\nstart-delay-max-s = 1\nrequests = {}\nspacing-s = 2\n\
             retries = {}\n\
             [selection]\nmin-agreeing = {}\n\
             [clock]\nmode = \"monitor\"\n",
            self.requests, self.retries, self.min_agreeing
        );
        for (addr, key) in self.servers {
            s.push_str(&format!(
                "[[server]]\naddress = \"{addr}\"\nkey = {key}\nname = \"k{key}\"\n"
            ));
        }
        s
    }

    fn start(&self, host: &Host, work: &Path) -> Daemon {
        Daemon::start(
            Program::Client,
            host,
            work,
            "client",
            NTP_PORT,
            &self.body(),
        )
    }
}

fn server_row(s: &ClientStatus, addr: IpAddr) -> &ServerStatus {
    s.servers
        .iter()
        .find(|r| r.remote == addr)
        .unwrap_or_else(|| panic!("status lists no server {addr}: {s:#?}"))
}

fn diag(client: &Daemon) -> impl Fn() -> String + '_ {
    move || {
        format!(
            "client status:\n{}\nclient log:\n{}",
            String::from_utf8_lossy(&client.control(&["status"]).stdout),
            client.log()
        )
    }
}

/// Waits until every server in `addrs` is tracked (t = b) with a filled
/// filter, and something is selected; returns that status.
fn wait_tracking_all(client: &Daemon, addrs: &[IpAddr], timeout: Duration) -> ClientStatus {
    wait_for(
        &format!("the client to track {addrs:?} and select"),
        timeout,
        Duration::from_millis(250),
        || {
            let s = client.client_status();
            let all = addrs.iter().all(|&a| {
                let r = server_row(&s, a);
                r.state == State::Tracking && r.offset_ms.is_some() && r.reach != 0
            });
            (all && s.offset_ms.is_some()).then_some(s)
        },
        diag(client),
    )
}

/// Unicast packets (mode 3 from `client` or mode 4 to it) per server
/// address, with their capture times.
fn unicast_by_server(
    packets: &[Ntp<'_>],
    client: IpAddr,
) -> BTreeMap<IpAddr, Vec<(Duration, Mode)>> {
    let mut out: BTreeMap<IpAddr, Vec<(Duration, Mode)>> = BTreeMap::new();
    for Ntp { udp: u, d } in packets {
        let server = match d.header.mode {
            Mode::Client if u.src.ip() == client => u.dst.ip(),
            Mode::Server if u.dst.ip() == client => u.src.ip(),
            _ => continue,
        };
        out.entry(server).or_default().push((u.time, d.header.mode));
    }
    out
}

// ---------------------------------------------------------------------------

#[test]
fn four_servers_with_different_keys_are_tracked_with_one_calibration_volley_each() {
    lab_required("four_servers_with_different_keys_are_tracked_with_one_calibration_volley_each");
    const POLL: i8 = 0;
    const INTERVALS: usize = 100;
    const REQUESTS: u8 = 6;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(5).expect("build a 5-host LAN");
    let capture = lan
        .capture_switch(NTP_PORT, &work.path().join("four.pcap"))
        .expect("start tcpdump on the bridge");
    // MD5, SHA1, AES-128-CMAC and SHA256 keys.
    let keys = [1u32, 2, 3, 6];
    let (servers, plan) = our_servers(&lan, work.path(), &keys, POLL);
    let addrs: Vec<IpAddr> = plan.iter().map(|p| p.0).collect();
    let client_host = lan.host(5);
    let client = ClientPlan {
        servers: &plan,
        requests: REQUESTS,
        retries: 3,
        min_agreeing: 3,
    }
    .start(&client_host, work.path());

    let tracking = wait_tracking_all(&client, &addrs, Duration::from_secs(60));
    for &a in &addrs {
        let r = server_row(&tracking, a);
        assert!(
            r.calibration.is_calibrated(),
            "{a} should be calibrated, not {:?}",
            r.calibration
        );
        assert!(
            r.delay_ms.is_some_and(|d| d < 5.0),
            "{a}: a bridge LAN has a sub-ms path, yet delay {:?}",
            r.delay_ms
        );
    }
    assert!(
        tracking.servers.iter().any(|r| r.tally == '*'),
        "one server is the system peer: {tracking:#?}"
    );

    // Keep listening until every server has sent INTERVALS broadcasts.
    let sent = |s: &Daemon| -> u64 { s.server_status().destinations.first().map_or(0, |d| d.sent) };
    let base: Vec<u64> = servers.iter().map(sent).collect();
    wait_for(
        &format!("{INTERVALS} more broadcasts from every server"),
        Duration::from_secs(INTERVALS as u64 * 2 + 60),
        Duration::from_secs(1),
        || {
            servers
                .iter()
                .zip(&base)
                .all(|(s, b)| sent(s) >= b + INTERVALS as u64)
                .then_some(())
        },
        diag(&client),
    );
    let end = client.client_status();
    drop(client);
    drop(servers);
    let pcap = capture.stop().expect("stop capture");
    let udp = read_pcap_udp(&pcap).expect("read capture");
    let packets = parse_all(&udp);
    let client_addr = IpAddr::V4(client_host.addr());

    // Every server: at least INTERVALS broadcasts on the wire, exactly one
    // calibration volley (<= REQUESTS requests within one volley's span,
    // each answered), and nothing else unicast.
    let unicast = unicast_by_server(&packets, client_addr);
    for &a in &addrs {
        let broadcasts = packets
            .iter()
            .filter(|n| n.udp.src.ip() == a && n.mode() == Mode::Broadcast)
            .count();
        assert!(
            broadcasts >= INTERVALS,
            "{a}: {broadcasts} broadcasts captured, expected >= {INTERVALS}"
        );
        let exchange = unicast.get(&a).cloned().unwrap_or_default();
        let requests: Vec<Duration> = exchange
            .iter()
            .filter(|(_, m)| *m == Mode::Client)
            .map(|(t, _)| *t)
            .collect();
        let replies = exchange.len() - requests.len();
        assert!(
            (1..=usize::from(REQUESTS)).contains(&requests.len()),
            "{a}: one volley of at most {REQUESTS} requests, got {} ({exchange:?})",
            requests.len()
        );
        let span = requests
            .last()
            .zip(requests.first())
            .map(|(l, f)| l.saturating_sub(*f))
            .unwrap_or_default();
        assert!(
            span <= Duration::from_secs(2 * u64::from(REQUESTS) + 2),
            "{a}: the requests form one volley, yet span {span:?}: {exchange:?}"
        );
        assert_eq!(replies, requests.len(), "{a}: every request answered");
        assert_eq!(
            server_row(&end, a).unicast_sent,
            requests.len() as u64,
            "{a}: status counts what the wire shows"
        );
    }
    let other: Vec<String> = packets
        .iter()
        .filter(|Ntp { udp: u, d }| {
            let volley = (d.header.mode == Mode::Client && u.src.ip() == client_addr)
                || (d.header.mode == Mode::Server && u.dst.ip() == client_addr);
            d.header.mode != Mode::Broadcast && !volley
        })
        .map(|n| format!("{} -> {} mode {:?}", n.udp.src, n.udp.dst, n.mode()))
        .collect();
    assert!(other.is_empty(), "no other NTP traffic: {other:?}");
    assert!(
        end.servers.iter().all(|r| r.reach == 0o377),
        "all reach 377 at the end: {end:#?}"
    );
    assert!(
        end.offset_ms.is_some_and(|o| o.abs() < 5.0),
        "hosts share one clock: selected offset {:?} ms",
        end.offset_ms
    );
}

#[test]
fn reference_ntpd_broadcast_servers_are_calibrated_against_and_tracked() {
    lab_required("reference_ntpd_broadcast_servers_are_calibrated_against_and_tracked");
    const POLL: u8 = 3;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(4).expect("build a 4-host LAN");
    let keys_file = vectors::keys_file();
    // MD5, SHA1, AES128CMAC.
    let plan: Vec<(IpAddr, u32)> = [1u16, 2, 3]
        .iter()
        .enumerate()
        .map(|(i, &k)| (IpAddr::V4(lan.host(i + 1).addr()), u32::from(k)))
        .collect();
    let servers: Vec<RefNtpd> = [1u16, 2, 3]
        .iter()
        .enumerate()
        .map(|(i, &k)| {
            RefNtpd::server(
                &lan.host(i + 1),
                &keys_file,
                Some(k),
                IpAddr::V4(GROUP),
                POLL,
                "",
            )
            .unwrap_or_else(|e| panic!("start reference ntpd server with key {k}: {e}"))
        })
        .collect();
    let addrs: Vec<IpAddr> = plan.iter().map(|p| p.0).collect();
    let client = ClientPlan {
        servers: &plan,
        requests: 6,
        retries: 3,
        min_agreeing: 2,
    }
    .start(&lan.host(4), work.path());
    // ntpd needs a few polls of its LOCAL clock before it is synchronized
    // and broadcasts with LI != 3; then one volley and a few broadcasts.
    let s = wait_tracking_all(&client, &addrs, Duration::from_secs(180));
    for (&a, ntpd) in addrs.iter().zip(&servers) {
        let r = server_row(&s, a);
        assert!(
            r.calibration.is_calibrated(),
            "{a} (ntpd, log:\n{}) should be calibrated against ntpd's unicast service, \
             not {:?}",
            ntpd.log(),
            r.calibration
        );
        assert_eq!(r.t, 'b');
        assert_eq!(
            r.stratum,
            Some(2),
            "ntpd serves its LOCAL clock at stratum 2"
        );
        assert!(r.unicast_sent <= 6, "{a}: one volley only: {r:?}");
        assert!(
            r.rejected.values().sum::<u64>() == 0,
            "{a}: nothing from ntpd is rejected: {r:?}"
        );
    }
    assert!(
        s.offset_ms.is_some_and(|o| o.abs() < 5.0),
        "selected offset {:?} ms on one shared clock",
        s.offset_ms
    );
}

#[test]
fn a_killed_server_is_replaced_as_system_peer_within_two_intervals() {
    lab_required("a_killed_server_is_replaced_as_system_peer_within_two_intervals");
    const POLL: i8 = 2;
    let interval = Duration::from_secs(1 << POLL);
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(4).expect("build a 4-host LAN");
    let keys = [1u32, 2, 3];
    let (servers, plan) = our_servers(&lan, work.path(), &keys, POLL);
    let addrs: Vec<IpAddr> = plan.iter().map(|p| p.0).collect();
    let client = ClientPlan {
        servers: &plan,
        requests: 2,
        retries: 3,
        min_agreeing: 1,
    }
    .start(&lan.host(4), work.path());
    let s = wait_tracking_all(&client, &addrs, Duration::from_secs(60));
    let peer = |s: &ClientStatus| s.servers.iter().find(|r| r.tally == '*').map(|r| r.remote);
    let victim = peer(&s).unwrap_or_else(|| panic!("a system peer: {s:#?}"));
    let index = addrs.iter().position(|&a| a == victim).unwrap_or(0);
    let killed_at = Instant::now();
    servers
        .get(index)
        .map(Daemon::stop)
        .expect("the victim is one of ours");
    let new_peer = wait_for(
        "another system peer",
        interval * 4,
        Duration::from_millis(100),
        || {
            let s = client.client_status();
            peer(&s).filter(|&p| p != victim).map(|p| (p, s))
        },
        diag(&client),
    );
    let took = killed_at.elapsed();
    eprintln!(
        "system peer {victim} killed; {} took over after {took:?}",
        new_peer.0
    );
    assert!(
        took <= interval * 2,
        "the client should replace a dead system peer within two intervals ({:?}), took \
         {took:?}",
        interval * 2
    );
    assert!(
        new_peer.1.offset_ms.is_some(),
        "still selecting: {:#?}",
        new_peer.1
    );
}

#[test]
fn a_forged_server_one_second_off_is_excluded_as_a_falseticker() {
    lab_required("a_forged_server_one_second_off_is_excluded_as_a_falseticker");
    const POLL: i8 = 2;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(5).expect("build a 5-host LAN");
    let honest = [1u32, 2, 3];
    let (_servers, mut plan) = our_servers(&lan, work.path(), &honest, POLL);
    // The liar signs with a valid trusted key (MD5 key 4), answers the
    // calibration volley consistently, and is 1 s ahead in every field.
    let liar_host = lan.host(4);
    let liar_addr = IpAddr::V4(liar_host.addr());
    let liar_log = work.path().join("liar.log");
    let liar_args: Vec<String> = [
        "--bind",
        &liar_host.addr().to_string(),
        "--keys",
        &vectors::keys_file().to_string_lossy(),
        "--key",
        "4",
        "--poll",
        &POLL.to_string(),
        "--offset-ms",
        "1000",
        "--seconds",
        "300",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let _liar = liar_host
        .spawn(&tool_bin("ntp-liar"), &liar_args, &liar_log)
        .expect("start ntp-liar");
    plan.push((liar_addr, 4));
    let addrs: Vec<IpAddr> = plan.iter().map(|p| p.0).collect();
    let client = ClientPlan {
        servers: &plan,
        requests: 2,
        retries: 3,
        min_agreeing: 2,
    }
    .start(&lan.host(5), work.path());
    wait_tracking_all(&client, &addrs, Duration::from_secs(60));
    let s = wait_for(
        "the liar to be marked a falseticker",
        Duration::from_secs(30),
        Duration::from_millis(250),
        || {
            let s = client.client_status();
            (server_row(&s, liar_addr).tally == 'x').then_some(s)
        },
        || {
            format!(
                "{}\nliar log:\n{}",
                diag(&client)(),
                std::fs::read_to_string(&liar_log).unwrap_or_default()
            )
        },
    );
    let liar = server_row(&s, liar_addr);
    assert!(
        liar.offset_ms.is_some_and(|o| (o - 1000.0).abs() < 5.0),
        "the liar is measured 1 s ahead: {liar:?}"
    );
    assert!(
        liar.calibration.is_calibrated(),
        "it answered its volley like a real server: {liar:?}"
    );
    for r in s.servers.iter().filter(|r| r.remote != liar_addr) {
        assert!(
            matches!(r.tally, '*' | '+'),
            "honest {} selected: {r:?}",
            r.remote
        );
    }
    assert!(
        s.offset_ms.is_some_and(|o| o.abs() < 5.0),
        "the liar does not pull the selected offset: {:?} ms",
        s.offset_ms
    );
}

#[test]
fn dropped_calibration_replies_end_in_fallback_and_no_further_unicast() {
    lab_required("dropped_calibration_replies_end_in_fallback_and_no_further_unicast");
    const POLL: i8 = 1;
    const REQUESTS: u8 = 2;
    const RETRIES: u8 = 1;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let server_host = lan.host(1);
    let client_host = lan.host(2);
    let server_addr = IpAddr::V4(server_host.addr());
    let _server = our_server(&server_host, work.path(), 3, POLL);
    // The replies never reach the client (as behind a firewall that drops
    // replies to its port); the multicast broadcasts still do.
    drop_unicast_to(&server_host, &client_host);
    let capture = client_host
        .capture(NTP_PORT, &work.path().join("dropped.pcap"))
        .expect("start tcpdump in the client's host");
    let client = ClientPlan {
        servers: &[(server_addr, 3)],
        requests: REQUESTS,
        retries: RETRIES,
        min_agreeing: 1,
    }
    .start(&client_host, work.path());
    let s = wait_for(
        "calibration to give up and fall back",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let s = client.client_status();
            let r = server_row(&s, server_addr);
            (r.state == State::Tracking && r.calibration.is_fallback()).then_some(s)
        },
        diag(&client),
    );
    let r = server_row(&s, server_addr);
    let total = u64::from(REQUESTS) * (u64::from(RETRIES) + 1);
    assert_eq!(r.unicast_sent, total, "bounded: {r:?}");
    let words = mcast_client::text::calibration_words(&r.calibration);
    assert!(
        words.contains(&format!("no reply from {server_addr}:123"))
            && words.contains("sent from port")
            && words.contains("check that UDP replies to that port are allowed"),
        "the reason names the missing replies and the port: {words}"
    );
    assert_eq!(r.t, 'b', "tracking from broadcasts with the fallback delay");
    // Twenty more intervals: broadcasts go on being used, no unicast.
    let reach_before = r.reach;
    std::thread::sleep(Duration::from_secs(20 << POLL));
    let later = client.client_status();
    let lr = server_row(&later, server_addr);
    assert_eq!(lr.unicast_sent, total, "no unicast after fallback: {lr:?}");
    assert!(
        lr.offset_ms.is_some() && lr.reach == 0xff,
        "still tracking: {lr:?} (before: {reach_before:o})"
    );
    drop(client);
    let pcap = capture.stop().expect("stop capture");
    let udp = read_pcap_udp(&pcap).expect("read capture");
    let requests: Vec<_> = parse_all(&udp)
        .into_iter()
        .filter(|n| n.mode() == Mode::Client && n.udp.dst.ip() == server_addr)
        .collect();
    assert_eq!(
        requests.len() as u64,
        total,
        "the wire shows the same bounded count"
    );
    // Each volley leaves from a fresh source port (no `source-port` set):
    // the requests of one volley share a port, the next volley's differ.
    let ports: Vec<u16> = requests.iter().map(|n| n.udp.src.port()).collect();
    let volleys: Vec<&[u16]> = ports.chunks(usize::from(REQUESTS)).collect();
    assert!(
        volleys
            .iter()
            .all(|v| v.iter().all(|p| Some(p) == v.first())),
        "one port per volley: {ports:?}"
    );
    assert!(
        volleys.windows(2).all(|w| w[0].first() != w[1].first()),
        "a fresh port per volley: {ports:?}"
    );
}

/// In `server`: a blackhole route to `client`'s address, so every unicast
/// reply to it is dropped (broadcasts go to the group and still pass).
fn drop_unicast_to(server: &Host, client: &Host) {
    let args = [
        "route",
        "add",
        "blackhole",
        &format!("{}/32", client.addr()),
    ]
    .map(String::from);
    let out = server.exec("ip", &args).expect("run ip route");
    assert!(
        out.status.success(),
        "ip {args:?} in {}: {}",
        server.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_client_rejoins_when_its_interface_is_deleted_and_recreated() {
    lab_required("the_client_rejoins_when_its_interface_is_deleted_and_recreated");
    const POLL: i8 = 1;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let server_addr = IpAddr::V4(lan.host(1).addr());
    let _server = our_server(&lan.host(1), work.path(), 2, POLL);
    let client_host = lan.host(2);
    let client = ClientPlan {
        servers: &[(server_addr, 2)],
        requests: 2,
        retries: 3,
        min_agreeing: 1,
    }
    .start(&client_host, work.path());
    wait_tracking_all(&client, &[server_addr], Duration::from_secs(60));
    let received = |s: &ClientStatus| server_row(s, server_addr).when_s;

    // Link down and up: the membership survives; broadcasts resume.
    client_host.link_down().expect("link down");
    std::thread::sleep(Duration::from_secs(3 << POLL));
    client_host.link_up().expect("link up");
    await_fresh_broadcast(&client, server_addr, "after link down/up");

    // Deleted and recreated with a new ifindex: the client re-joins.
    client_host
        .delete_and_recreate_interface()
        .expect("recreate eth0");
    let rejoined_at = Instant::now();
    wait_for(
        "the client to log that it re-joined the group",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || client.log().contains("re-joined the group").then_some(()),
        diag(&client),
    );
    await_fresh_broadcast(&client, server_addr, "after the interface was recreated");
    eprintln!(
        "re-joined and receiving {:?} after the recreate",
        rejoined_at.elapsed()
    );
    let s = client.client_status();
    assert_eq!(
        server_row(&s, server_addr).unicast_sent,
        2,
        "no new calibration"
    );
    assert!(received(&s).is_some());
}

/// Waits until a broadcast newer than now arrives from `server`.
fn await_fresh_broadcast(client: &Daemon, server: IpAddr, what: &str) {
    let since = Instant::now();
    wait_for(
        &format!("a broadcast from {server} {what}"),
        Duration::from_secs(15),
        Duration::from_millis(200),
        || {
            let s = client.client_status();
            server_row(&s, server)
                .when_s
                .filter(|&w| w < since.elapsed().as_secs_f64())
                .map(drop)
        },
        diag(client),
    );
}
