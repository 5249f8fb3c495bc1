//! The server's side of the trust hardening (issue 13), against the real
//! `mcast-server` in a namespace Lan:
//!
//! - started as root with `user = "nobody"`, **every** thread of the
//!   process (main, broadcast, every receive worker; with destinations and
//!   responder-only) holds no capability in any set, the bounding set
//!   included, read from `/proc/PID/task/*/status`;
//! - unsigned requests in a keyed client's name (attack 5: two a second,
//!   from the client's own address) do not lock that client out: each of
//!   its signed requests gets a signed time reply, the forgery is counted
//!   as `unverified-limited`, and nobody gets a KoD;
//! - a responder-only server (wildcard sockets) does not answer a request
//!   sent to a multicast group its host has joined (a spoofed one would make
//!   every such server reply to one victim): it counts it as
//!   `multicast-destination`, and answers the same request sent to its own
//!   address.
//!
//! The forger of the lockout test sends from the victim's own host and
//! address (another port): the server tells traffic apart by source address
//! only, so this is what a spoofing host achieves, without raw sockets.
//!
//! Needs root (fails loudly without it). Every process runs under
//! `setpriv --bounding-set=-sys_time` (the lab's spawn), traffic stays in
//! the test's own namespaces (198.18.0.0/15).
#![cfg(test)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use mcast_lab::lab::{
    GROUP, NTP_PORT, OurServer, destination, lab_required, local_source, probe, tool_bin, wait_for,
};
use mcast_lab::netns::Lan;
use mcast_lab::probe::{ListenArgs, ProbeArgs, ProbeReport};
use mcast_tests::vectors;

/// The uid of `user` from /etc/passwd.
fn passwd_uid(user: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| f.get(2)?.parse().ok())
        .unwrap_or_else(|| panic!("this test needs a user {user:?} in /etc/passwd"))
}

/// The value of `field:` in a /proc status file, whitespace-normalized.
fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| panic!("no {name} in\n{status}"))
}

/// Checks every task of `pid`: nobody's uids, and all five capability sets
/// empty. Returns the thread names.
fn assert_every_task_dropped_everything(label: &str, pid: u32, uid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("list the threads");
    let mut names = Vec::new();
    for task in tasks {
        let path = task.expect("thread entry").path();
        let Ok(status) = std::fs::read_to_string(path.join("status")) else {
            continue; // a thread that just ended
        };
        let name = format!(
            "{label}: thread {} ({})",
            field(&status, "Name"),
            path.display()
        );
        assert_eq!(
            field(&status, "Uid"),
            format!("{uid} {uid} {uid} {uid}"),
            "{name}: every uid is nobody's"
        );
        for cap in ["CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"] {
            assert_eq!(
                field(&status, cap),
                "0000000000000000",
                "{name}: {cap} must be empty (the server keeps no capability; a full \
                 bounding set means this thread existed before the drop)"
            );
        }
        names.push(field(&status, "Name"));
    }
    names
}

#[test]
fn every_thread_of_a_root_started_server_gives_up_every_capability() {
    lab_required("every_thread_of_a_root_started_server_gives_up_every_capability");
    let uid = passwd_uid("nobody");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    let body = format!(
        "user = \"nobody\"\nlab-allow-fast-poll = true\n{}{}[responder]\nworkers = 2\n",
        destination(&GROUP.to_string(), 1, 1, ""),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    assert!(
        server.log().contains("dropped privileges"),
        "the log says so:\n{}",
        server.log()
    );
    let names =
        assert_every_task_dropped_everything("with a destination", server.child().pid(), uid);
    assert!(
        names.len() >= 4,
        "main, broadcast and two receive threads, all checked: {names:?}"
    );
    assert!(
        names.iter().filter(|n| n.starts_with("mcast-resp")).count() == 2
            && names.iter().any(|n| n.starts_with("mcast-broadcast")),
        "the broadcast and receive threads are among them: {names:?}"
    );

    // It still answers, as nobody.
    let report = probe(
        &h2,
        &ProbeArgs::signed(
            server.addr(),
            IpAddr::V4(h2.addr()),
            1,
            Duration::from_millis(10),
        ),
    );
    let replies = &report.sources[0].replies;
    assert!(
        replies.len() == 1 && replies[0].is_valid_time_reply(),
        "a signed request is answered after the drop: {replies:?}\n{}",
        server.status_text()
    );
}

#[test]
fn every_thread_of_a_responder_only_server_gives_up_every_capability() {
    lab_required("every_thread_of_a_responder_only_server_gives_up_every_capability");
    let uid = passwd_uid("nobody");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    // No destination: wildcard sockets (IPv4 and IPv6) per worker.
    let body = format!(
        "user = \"nobody\"\n{}[responder]\nworkers = 2\n",
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    let names = assert_every_task_dropped_everything("responder only", server.child().pid(), uid);
    assert!(
        names.iter().filter(|n| n.starts_with("mcast-resp")).count() == 2,
        "both receive threads checked: {names:?}"
    );
    let report = probe(
        &h2,
        &ProbeArgs::signed(
            SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT),
            IpAddr::V4(h2.addr()),
            1,
            Duration::from_millis(10),
        ),
    );
    let replies = &report.sources[0].replies;
    assert!(
        replies.len() == 1 && replies[0].is_valid_time_reply(),
        "a responder-only server answers after the drop: {replies:?}"
    );
    assert!(
        server.child().is_running(),
        "still running:\n{}",
        server.log()
    );
}

/// The JSON report `ntp-probe` printed into `log`.
fn probe_report(log: &Path) -> ProbeReport {
    let text = std::fs::read_to_string(log).expect("read the forger's log");
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report in the forger's log:\n{text}"));
    serde_json::from_str(line).expect("ntp-probe prints a ProbeReport")
}

#[test]
fn unsigned_requests_in_a_keyed_clients_name_do_not_lock_it_out() {
    lab_required("unsigned_requests_in_a_keyed_clients_name_do_not_lock_it_out");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    // Keyless clients are served (require-auth = false): the forgery could
    // get unsigned replies, within its budget.
    let body = format!(
        "{}{}[responder]\nrequire-auth = false\n",
        destination(&GROUP.to_string(), 1, 6, ""),
        local_source(2)
    );
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    let target = server.addr();
    let victim = IpAddr::V4(h2.addr());

    // The forger: 2 unsigned requests a second from the victim's address,
    // for 20 s (bounded), from its own port.
    let forger_log = work.path().join("forger.log");
    let forger_args = ProbeArgs {
        target,
        keys: vectors::keys_file(),
        key: None,
        sources: vec![victim],
        source_port: 40_123,
        count: 40,
        spacing: Duration::from_millis(500),
        wait: Duration::from_secs(1),
        poll: 6,
    };
    let forger = h2
        .spawn(&tool_bin("ntp-probe"), &forger_args.to_args(), &forger_log)
        .expect("start the forger");
    // The attack is on once the server has seen a few of its packets.
    wait_for(
        "the forger's first requests",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || (server.status().counters.received >= 4).then_some(()),
        || server.log(),
    );

    // The keyed client's calibration volley: 6 signed requests 2 s apart.
    let volley = probe(
        &h2,
        &ProbeArgs::signed(target, victim, 6, Duration::from_secs(2)),
    );
    let src = &volley.sources[0];
    let good = src
        .replies
        .iter()
        .filter(|r| r.is_valid_time_reply() && r.from == target)
        .count();
    assert_eq!(
        (src.sent.len(), good, src.replies.len()),
        (6, 6, 6),
        "every signed request of the volley gets a signed time reply despite the forgery: {:#?}\n{}",
        src.replies,
        server.status_text()
    );

    wait_for(
        "the forger to finish",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || (!forger.is_running()).then_some(()),
        || std::fs::read_to_string(&forger_log).unwrap_or_default(),
    );
    let forged = probe_report(&forger_log);
    let fsrc = &forged.sources[0];
    assert!(
        fsrc.replies.iter().all(|r| r.kiss.is_none()),
        "no KoD goes to an address we cannot authenticate: {:#?}",
        fsrc.replies
    );
    assert!(
        fsrc.replies.len() < fsrc.sent.len() / 2,
        "the forgery is held to its unverified budget: {} answers to {} requests",
        fsrc.replies.len(),
        fsrc.sent.len()
    );

    let st = server.status();
    let c = &st.counters;
    assert_eq!(
        (c.kod_sent, c.rate_limited),
        (0, 0),
        "no KoD, no verified request limited: {c:?}"
    );
    assert!(
        c.unverified_limited >= 10,
        "the forgery is counted as unverified-limited: {c:?}"
    );
    let text = server.status_text();
    assert!(
        text.lines().any(
            |l| l.starts_with("unverified-limited:") && l.trim_end() != "unverified-limited: 0"
        ) && text.contains("multicast-destination:"),
        "the status shows the counters:\n{text}"
    );
}

#[test]
fn a_request_sent_to_a_multicast_group_gets_no_answer_and_is_counted() {
    lab_required("a_request_sent_to_a_multicast_group_gets_no_answer_and_is_counted");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    // One receive worker: each SO_REUSEPORT socket gets its own copy of a
    // group datagram, so with one the count is exact.
    let body = format!("{}[responder]\nworkers = 1\n", local_source(2));
    let server = OurServer::start(&h1, work.path(), "h1", &body);
    // Something on h1 joins the group (a listener on another port), so the
    // kernel delivers the group's datagrams to the server's wildcard socket
    // on port 123 too (IP_MULTICAST_ALL).
    let listen = ListenArgs {
        bind: IpAddr::V4(GROUP),
        port: 5123,
        group: Some(IpAddr::V4(GROUP)),
        iface: "eth0".into(),
        keys: vectors::keys_file(),
        duration: Duration::from_secs(20),
        max_broadcasts: None,
    };
    let mut args = vec!["listen".to_owned()];
    args.extend(listen.to_args());
    let listener = h1
        .spawn(
            &tool_bin("ntp-probe"),
            &args,
            &work.path().join("listener.log"),
        )
        .expect("start a group member in h1");
    wait_for(
        "h1 to join 224.0.1.1",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let out = h1
                .exec("ip", &["maddr", "show", "dev", "eth0"])
                .expect("ip maddr");
            String::from_utf8_lossy(&out.stdout)
                .contains(&GROUP.to_string())
                .then_some(())
        },
        || server.log(),
    );

    let to_group = probe(
        &h2,
        &ProbeArgs::signed(
            SocketAddr::new(IpAddr::V4(GROUP), NTP_PORT),
            IpAddr::V4(h2.addr()),
            2,
            Duration::from_millis(100),
        ),
    );
    assert_eq!(to_group.sources[0].sent.len(), 2, "{to_group:?}");
    assert!(
        to_group.sources[0].replies.is_empty(),
        "no answer to a request sent to a group: {:?}",
        to_group.sources[0].replies
    );
    let st = server.status();
    assert_eq!(
        (st.counters.multicast_destination, st.counters.replies_sent),
        (2, 0),
        "both counted as multicast-destination, none answered: {:?}",
        st.counters
    );

    // The same request to the server's own address is answered.
    let unicast = probe(
        &h2,
        &ProbeArgs::signed(
            SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT),
            IpAddr::V4(h2.addr()),
            1,
            Duration::from_millis(10),
        ),
    );
    let replies = &unicast.sources[0].replies;
    assert!(
        replies.len() == 1 && replies[0].is_valid_time_reply(),
        "answered when sent to h1 itself: {replies:?}"
    );
    let text = server.status_text();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["multicast-destination:", "2"]),
        "the status shows the count:\n{text}"
    );
    let _ = listener.stop();
}
