#![cfg(test)]
//! End-to-end check of the lab harness: a reference ntpd 4.2.8p15 MD5
//! multicast server and multicast client on a namespace LAN, watched by a
//! capture on the bridge. Needs root and `scripts/install-deps`; fails
//! loudly (never skips) without them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use mcast_lab::netns::{self, Lan, read_pcap_udp};
use mcast_lab::refntpd::{PeerRow, RefNtpd};
use mcast_tests::vectors;

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);

fn ntp_mode(payload: &[u8]) -> Option<u8> {
    payload.first().map(|b| b & 7)
}

fn namespaces() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("run ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn reference_multicast_server_and_client_on_a_namespace_lan() {
    if let Err(e) = netns::require_root() {
        panic!("lab_smoke needs the network lab: {e}");
    }
    let started = Instant::now();
    let work = tempfile::tempdir().expect("temp dir");
    let keys = vectors::keys_file();
    let prefix;
    {
        let lan = Lan::new(3).expect("build a 3-host LAN");
        prefix = lan.prefix().to_owned();
        let (h1, h2) = (lan.host(1), lan.host(2));

        let capture = lan
            .capture_switch(123, &work.path().join("lab.pcap"))
            .expect("start tcpdump on the bridge");
        let server = RefNtpd::server(&h1, &keys, Some(1), IpAddr::V4(GROUP), 3, "")
            .expect("start reference multicast server in h1");
        let client = RefNtpd::multicast_client(&h2, &keys, &[1], IpAddr::V4(GROUP), "")
            .expect("start reference multicast client in h2");

        // The client first calibrates by unicast (association type `u`),
        // then listens to the broadcasts (type `b`).
        let server_addr = h1.addr().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last: Vec<PeerRow> = Vec::new();
        let row = loop {
            last = client.lpeers().unwrap_or(last);
            if let Some(row) = last
                .iter()
                .find(|r| r.remote == server_addr && r.kind == 'b' && r.reach > 0)
            {
                break row.clone();
            }
            assert!(
                Instant::now() < deadline,
                "within 60 s the client in h2 should list {server_addr} as a broadcast \
                 association (t = b) with reach > 0; last lpeers: {last:?}\n\
                 server log:\n{}\nclient log:\n{}",
                server.log(),
                client.log()
            );
            std::thread::sleep(Duration::from_secs(1));
        };
        assert_eq!(row.stratum, 2, "server serves the LOCAL clock at stratum 2");
        let sysvars = server.sysvars().expect("server rv 0");
        assert_eq!(
            sysvars.get("leap").map(String::as_str),
            Some("00"),
            "orphan mode should make the server synchronized: {sysvars:?}"
        );
        // The dropped capability is what keeps ntpd off the shared clock.
        assert!(
            client.log().contains("Operation not permitted"),
            "ntpd's start-up ntp_adjtime should fail with EPERM; log:\n{}",
            client.log()
        );

        let pcap = capture.stop().expect("stop tcpdump");
        let packets = read_pcap_udp(&pcap).expect("read the capture");
        let h1_ntp = SocketAddr::new(IpAddr::V4(h1.addr()), 123);
        let broadcasts = packets
            .iter()
            .filter(|p| {
                p.src == h1_ntp
                    && p.dst == SocketAddr::new(IpAddr::V4(GROUP), 123)
                    && ntp_mode(&p.payload) == Some(5)
            })
            .count();
        let requests: Vec<_> = packets
            .iter()
            .filter(|p| {
                p.src.ip() == IpAddr::V4(h2.addr())
                    && p.dst == h1_ntp
                    && ntp_mode(&p.payload) == Some(3)
            })
            .collect();
        assert!(
            broadcasts > 0,
            "capture should hold mode-5 broadcasts from {h1_ntp} to {GROUP}; got {packets:?}"
        );
        assert!(
            !requests.is_empty(),
            "capture should hold the client's mode-3 calibration requests from {} to {h1_ntp}",
            h2.addr()
        );
        // MD5 with key 1: 48-byte header, 4-byte key id, 16-byte digest.
        assert!(
            requests
                .iter()
                .all(|p| p.payload.len() == 68 && p.payload.get(48..52) == Some(&[0, 0, 0, 1][..])),
            "calibration requests should carry an MD5 MAC with key id 1"
        );
        eprintln!(
            "lab_smoke: {broadcasts} broadcasts, {} calibration requests, b-association after {:?}",
            requests.len(),
            started.elapsed()
        );
        drop(client);
        drop(server);
    }
    let left = namespaces();
    assert!(
        !left.contains(&prefix),
        "dropping the Lan should delete its namespaces ({prefix}-*); left: {left}"
    );
}

fn run_in(host: &netns::Host, args: &[&str]) -> String {
    let out = host.exec("ip", args).expect("ip in host namespace");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn caps_of(pid: u32) -> Vec<(String, u64)> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read status")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            matches!(k, "CapPrm" | "CapEff" | "CapBnd")
                .then(|| (k.to_owned(), u64::from_str_radix(v.trim(), 16).unwrap()))
        })
        .collect()
}

#[test]
fn lan_helpers_and_cleanup() {
    if let Err(e) = netns::require_root() {
        panic!("lab_smoke needs the network lab: {e}");
    }
    let work = tempfile::tempdir().expect("temp dir");

    // A namespace left by a dead run (pid above any pid_max) is removed
    // (by this call, or by a concurrent test's Lan::new).
    let stale = format!("mn99999999x{}-sw", std::process::id());
    // A concurrent test's Lan::new may remove the name while `ip netns add`
    // is still making it (the bind mount then fails): make it again.
    let mut attempts = 0;
    loop {
        let out = Command::new("ip")
            .args(["netns", "add", &stale])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        attempts += 1;
        assert!(attempts < 5, "ip netns add {stale}: {out:?}");
    }
    netns::cleanup_stale().expect("cleanup_stale");
    assert!(
        !namespaces().lines().any(|l| l.starts_with(stale.as_str())),
        "stale namespace {stale} should be removed"
    );

    // A panic while a Lan is alive still deletes its namespaces.
    let mut prefix = String::new();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lan = Lan::new(1).expect("Lan");
        prefix = lan.prefix().to_owned();
        panic!("deliberate panic: a Lan must be cleaned up while unwinding");
    }));
    assert!(unwound.is_err());
    assert!(
        !prefix.is_empty() && !namespaces().contains(prefix.as_str()),
        "namespaces of a panicked test remain: {}",
        namespaces()
    );

    let lan = Lan::new(2).expect("Lan");
    let (h1, h2) = (lan.host(1), lan.host(2));
    assert_eq!(h1.iface(), "eth0");
    let addrs = run_in(&h1, &["-br", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains(&format!("{}/24", h1.addr())), "{addrs}");
    assert!(addrs.contains(&format!("{}/64", h1.addr6())), "{addrs}");
    assert!(
        addrs.contains("fe80::"),
        "link-local present at once (no DAD): {addrs}"
    );
    let routes6 = run_in(&h1, &["-6", "route", "show", "table", "local"]);
    assert!(routes6.contains("multicast ff00::/8 dev eth0"), "{routes6}");

    // A spawned process runs without CAP_SYS_TIME, in the namespace.
    let sleeper = h1
        .spawn("sleep", &["60"], &work.path().join("sleep.log"))
        .expect("spawn sleep");
    for (name, v) in caps_of(sleeper.pid()) {
        assert_eq!(
            (v >> 25) & 1,
            0,
            "{name} of the spawned process has CAP_SYS_TIME"
        );
    }
    let ns_pids = Command::new("ip")
        .args(["netns", "pids", h1.name()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ns_pids.stdout)
            .split_whitespace()
            .any(|p| p == sleeper.pid().to_string()),
        "spawned process runs in {}",
        h1.name()
    );

    // bond0 (a real bond where the kernel has bonding, else the renamed veth).
    let kind = lan.with_bond(1).expect("with_bond");
    eprintln!("with_bond: {kind:?}");
    assert_eq!(h1.iface(), "bond0");
    let show = |h: &netns::Host| run_in(h, &["-br", "link", "show", "dev", &h.iface()]);
    h1.link_down().unwrap();
    assert!(show(&h1).contains("DOWN"), "{}", show(&h1));
    h1.link_up().unwrap();
    assert!(run_in(&h1, &["route"]).contains("224.0.0.0/4 dev bond0"));
    h2.carrier_down().unwrap();
    assert!(show(&h2).contains("NO-CARRIER"), "{}", show(&h2));
    h2.carrier_up().unwrap();
    let index = |h: &netns::Host| {
        run_in(h, &["-o", "link", "show", "dev", &h.iface()])
            .split(':')
            .next()
            .unwrap()
            .to_owned()
    };
    let before = index(&h1);
    h1.delete_and_recreate_interface().unwrap();
    assert_ne!(before, index(&h1), "recreated interface has a new ifindex");
    let addrs = run_in(&h1, &["-br", "addr", "show", "dev", "bond0"]);
    assert!(addrs.contains(&format!("{}/24", h1.addr())), "{addrs}");

    // A host capture starts (tcpdump listening) and stops cleanly.
    let cap = h2
        .capture(9, &work.path().join("h2.pcap"))
        .expect("capture");
    let pcap = cap.stop().expect("stop capture");
    assert_eq!(read_pcap_udp(&pcap).expect("read pcap"), vec![]);

    // Dropping the Lan kills what still runs in it and deletes everything.
    let pid = sleeper.pid();
    let prefix = lan.prefix().to_owned();
    drop(lan);
    assert!(!sleeper.is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default()
                != "sleep\n",
        "the Lan's child {pid} should be gone"
    );
    drop(sleeper);
    assert!(!namespaces().contains(&prefix), "{}", namespaces());
}
