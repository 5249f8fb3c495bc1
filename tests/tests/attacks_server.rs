#![cfg(test)]
//! Issue 13, the server side: a LAN host without any key must not be able
//! to lock a client out of its server, nor turn servers into reflectors.
//! Each test plays one attack with `ntp-attack` (raw sockets, spoofed
//! sources, no key) against the real `mcast-server` (and a monitor-mode
//! `mcast-client`) and asserts what the victim sees. Needs root; fails
//! loudly (never skips) without it.
//!
//! All traffic stays on the test's own Lan (198.18.0.0/15, 224.0.1.1);
//! every process runs without `CAP_SYS_TIME`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mcast_core::client::association::State;
use mcast_lab::lab::{
    Attacker, Daemon, GROUP, NTP_PORT, OurServer, Program, destination, lab_required, local_source,
    parse_all, probe, stop_capture, strings as args, wait_for,
};
use mcast_lab::netns::Lan;
use mcast_lab::probe::ProbeArgs;
use mcast_proto::Mode;

/// A counter of the server's `status --json` by name (kebab or snake case),
/// read as raw JSON: counters the daemon does not have yet read as absent.
fn counter(server: &Daemon, name: &str) -> Option<u64> {
    let out = server.control(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let c = v.get("counters")?;
    c.get(name)
        .or_else(|| c.get(name.replace('-', "_")))
        .and_then(serde_json::Value::as_u64)
}

// Attack 5 (lockout at the server): two unsigned mode-3 requests a second
// with the client's address as source, for the whole calibration. Asserts
// the client still calibrates with a measured delay (its signed requests
// are answered), and a signed probe from the victim afterwards gets a
// normal reply, not silence or a RATE KoD.
#[test]
fn spoofed_unsigned_requests_do_not_lock_a_client_out() {
    lab_required("spoofed_unsigned_requests_do_not_lock_a_client_out");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));
    let server = OurServer::start(
        &h1,
        work.path(),
        "server",
        &format!(
            "lab-allow-fast-poll = true\n{}{}",
            destination(&GROUP.to_string(), 1, 1, ""),
            local_source(2)
        ),
    );
    let attacker = Attacker::start(
        &h3,
        work.path(),
        "attack",
        &args(&[
            "lockout",
            "--server",
            &h1.addr().to_string(),
            "--victim",
            &h2.addr().to_string(),
            "--rate",
            "2",
            "--count",
            "120",
            "--duration-s",
            "60",
        ]),
    );
    let body = format!(
        "[[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
         [calibration]\nstart-delay-max-s = 1\nrequests = 4\nspacing-s = 2\nretries = 1\n\
         [clock]\nmode = \"monitor\"\n[[server]]\naddress = \"{}\"\nkey = 1\n",
        h1.addr()
    );
    let c = Daemon::start(Program::Client, &h2, work.path(), "client", NTP_PORT, &body);
    let r = wait_for(
        "the client's calibration to end",
        Duration::from_secs(55),
        Duration::from_millis(200),
        || {
            let s = c.client_status();
            s.servers
                .iter()
                .find(|r| r.remote == IpAddr::V4(h1.addr()))
                .filter(|r| r.state == State::Tracking)
                .cloned()
        },
        || format!("{}\n{}", c.status_text(), c.log()),
    );
    assert!(
        attacker.is_running(),
        "the attack must last the whole calibration"
    );
    let probe_report = probe(
        &h2,
        &ProbeArgs::signed(
            server.addr(),
            IpAddr::V4(h2.addr()),
            1,
            Duration::from_millis(10),
        ),
    );
    let sent = attacker.finish(Duration::from_secs(65));
    let status = server.status();
    assert!(sent.sent >= 20, "the attacker sent too little: {sent:?}");
    assert!(
        r.calibrated,
        "{} spoofed unsigned requests in the client's name left it uncalibrated: {:?} \
         (server counters {:?})",
        sent.sent, r.calibration, status.counters
    );
    let replies = &probe_report.sources[0].replies;
    let normal = replies.iter().any(|p| {
        hex::decode(&p.hex)
            .ok()
            .is_some_and(|b| b.len() >= 48 && b[0] & 7 == 4 && b[1] != 0)
    });
    assert!(
        normal,
        "the victim's signed request got {} (silence or KoD) during a spoofed lockout: {replies:?}",
        if replies.is_empty() {
            "no reply"
        } else {
            "no normal reply"
        }
    );
}

// Code finding (requests to a multicast or broadcast destination): the
// attacker sends spoofed requests in the victim's name to the group and to
// the subnet broadcast address, where two servers listen that also serve
// unsigned (SNTP, keyless ntpd) clients (`require-auth = false`). Asserts the
// victim receives no reply from either server and a signed request of the
// victim's own is still answered.
#[test]
fn requests_to_a_multicast_or_broadcast_destination_are_not_answered() {
    lab_required("requests_to_a_multicast_or_broadcast_destination_are_not_answered");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(4).expect("build a 4-host LAN");
    let (h1, h2, victim, h4) = (lan.host(1), lan.host(2), lan.host(3), lan.host(4));
    let net = lan.subnet().octets();
    let bcast = Ipv4Addr::new(net[0], net[1], net[2], 255);
    let servers: Vec<OurServer> = [(&h1, "s1"), (&h2, "s2")]
        .iter()
        .map(|(h, name)| {
            OurServer::start(
                h,
                work.path(),
                name,
                &format!(
                    "{}{}{}[responder]\nrequire-auth = false\n",
                    destination(&GROUP.to_string(), 1, 3, ""),
                    destination(&bcast.to_string(), 1, 3, "broadcast = true\n"),
                    local_source(2)
                ),
            )
        })
        .collect();
    let capture = victim
        .capture(NTP_PORT, &work.path().join("victim.pcap"))
        .expect("tcpdump on the victim");
    let attacker = Attacker::start(
        &h4,
        work.path(),
        "attack",
        &args(&[
            "mcast-request",
            "--victim",
            &victim.addr().to_string(),
            "--to",
            &GROUP.to_string(),
            "--to",
            &bcast.to_string(),
            "--count",
            "10",
            "--interval-ms",
            "300",
            "--duration-s",
            "10",
        ]),
    );
    let sent = attacker.finish(Duration::from_secs(15));
    assert!(sent.sent >= 10, "the attacker sent too little: {sent:?}");
    // A signed request of the victim's own to each server; its reply comes
    // after any reply to the attack.
    for s in &servers {
        let p = probe(
            &victim,
            &ProbeArgs::signed(
                s.addr(),
                IpAddr::V4(victim.addr()),
                1,
                Duration::from_millis(10),
            ),
        );
        assert!(
            !p.sources[0].replies.is_empty(),
            "{} no longer answers the victim's signed request",
            s.addr()
        );
    }
    let packets = stop_capture(capture);
    let ntp = parse_all(&packets);
    let reflected: Vec<_> = ntp
        .iter()
        .filter(|p| {
            p.mode() == Mode::Server
                && p.udp.dst.ip() == IpAddr::V4(victim.addr())
                && p.udp.dst.port() == NTP_PORT
        })
        .map(|p| p.udp.src)
        .collect();
    let counted: Vec<Option<u64>> = servers
        .iter()
        .map(|s| counter(s, "multicast-destination"))
        .collect();
    assert!(
        reflected.is_empty(),
        "{} spoofed requests to {GROUP} and {bcast} made servers answer the victim {} times: {reflected:?}",
        sent.sent,
        reflected.len()
    );
    // Servers that only send to the group are not members, and they answer
    // on their unicast addresses, so here the kernel delivers them neither
    // copy: nothing reaches the responder to count. Where a group member on
    // the host makes the kernel deliver group datagrams to port 123,
    // server_trust.rs shows each one counted as `multicast-destination`.
    assert!(
        counted.iter().all(Option::is_some),
        "every server shows the multicast-destination counter: {counted:?}"
    );
}
