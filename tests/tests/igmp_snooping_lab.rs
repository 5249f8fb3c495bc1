#![cfg(test)]
//! Issue 17 part 2: a switch that snoops IGMP, its querier, and what the
//! client does when the querier is lost.
//!
//! The LAN's bridge snoops IGMP (`mcast_snooping 1`) and forwards the group
//! only to the ports that reported membership, which it forgets after
//! `mcast_membership_interval` without a report. The querier is host h3's
//! own bridge (one host's querier, as on a LAN whose router is the
//! querier), asking every 2 s. A permanent entry for the group on h3's port
//! stands for the other receivers a datacenter group always has: the group
//! stays registered, so traffic goes to member ports only (a Linux bridge
//! floods a group no port is a member of, and any group while it knows no
//! querier; both fail open, which is why the querier is a host here, whose
//! loss the switch remembers for its querier interval of 255 s).
//!
//! (a) Querier on: the client's kernel answers the queries, the switch
//! keeps its membership (12 s, far shorter than the run), and the client
//! tracks our server (poll 1, every 2 s) through at least 10 query intervals
//! without losing one. (b) Querier off: the membership ages out, the
//! broadcasts stop reaching the client; the client reports the group silent
//! (status, metrics-side status object, `check` CRITICAL naming it) within
//! `group-silent-intervals` (3) x 2 s of the last broadcast, re-joins, and
//! its unsolicited report makes the switch forward again: status tracking
//! and not silent, `check` OK, without anyone touching it.
//!
//! The client's `igmp-version = 2` is applied to its interface in its own
//! namespace (never on this host's interfaces). Needs root; fails loudly
//! (never skips) without it or without a bridge that snoops. Every process
//! runs in the test's own Lan without `CAP_SYS_TIME`, the client in monitor
//! mode; traffic stays on the Lan (198.18.0.0/15, 224.0.1.1).

use std::time::{Duration, Instant};

use mcast_core::client::association::State;
use mcast_core::client::status::{ClientStatus, GroupStatus};
use mcast_lab::lab::{
    Daemon, GROUP, NTP_PORT, Program, destination, lab_required, local_source, server_row as row,
    wait_for,
};
use mcast_lab::netns::{Host, Lan};

/// The querier's query interval, s.
const QUERY_INTERVAL_S: u64 = 2;
/// The switch's membership interval, s: 3 query intervals, twice the
/// silence threshold (so the window after a re-join is long enough to see).
const MEMBERSHIP_S: u64 = 12;
/// The server's poll: 2^1 s.
const POLL_S: u64 = 2;
/// `group-silent-intervals` of the client.
const SILENT_INTERVALS: u64 = 3;

fn ok(out: std::io::Result<std::process::Output>, what: &str) {
    let out = out.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes host `h` the LAN's IGMP querier: its eth0 goes into a bridge of
/// its own that snoops and queries every [`QUERY_INTERVAL_S`] (from
/// 0.0.0.0, as a querier without an address does). Its startup queries are
/// 1 s apart: the kernel's default (a quarter of the default query
/// interval, 31 s) left the client's first 30 s without a query.
fn make_querier(h: &Host) {
    let qi = (QUERY_INTERVAL_S * 100).to_string();
    for args in [
        vec![
            "link",
            "add",
            "brq",
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "1",
            "mcast_querier",
            "1",
            "mcast_startup_query_interval",
            "100",
            "mcast_query_interval",
            &qi,
            "mcast_query_response_interval",
            "100",
        ],
        vec!["addr", "flush", "dev", "eth0"],
        vec!["link", "set", "eth0", "master", "brq"],
        vec!["link", "set", "brq", "up"],
    ] {
        ok(
            h.exec("ip", &args),
            &format!("querier host: ip {}", args.join(" ")),
        );
    }
}

/// Turns the querier of host `h` (see [`make_querier`]) on or off.
fn set_querier(h: &Host, on: bool) {
    let v = if on { "1" } else { "0" };
    ok(
        h.exec(
            "ip",
            &["link", "set", "brq", "type", "bridge", "mcast_querier", v],
        ),
        &format!("querier host: mcast_querier {v}"),
    );
}

fn client(h: &Host, work: &std::path::Path, server: std::net::Ipv4Addr) -> Daemon {
    let body = format!(
        "group-silent-intervals = {SILENT_INTERVALS}\n\
         [[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\nigmp-version = 2\n\
         [calibration]\nstart-delay-max-s = 1\nrequests = 4\nspacing-s = 2\nretries = 1\n\
         [clock]\nmode = \"monitor\"\n\
         [[server]]\naddress = \"{server}\"\nkey = 1\n"
    );
    Daemon::start(Program::Client, h, work, "client", NTP_PORT, &body)
}

fn group(s: &ClientStatus) -> GroupStatus {
    s.group
        .unwrap_or_else(|| panic!("status has no group object: {s:#?}"))
}

/// `mcast-client check`: exit code and its line.
fn check(c: &Daemon) -> (i32, String) {
    let out = c.control(&["check"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_client_behind_a_snooping_switch_notices_the_lost_querier_rejoins_and_recovers() {
    lab_required("a_client_behind_a_snooping_switch_notices_the_lost_querier_rejoins_and_recovers");
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(3).expect("build a 3-host LAN");
    let (h1, h2, h3) = (lan.host(1), lan.host(2), lan.host(3));

    // The switch snoops; it is no querier itself.
    let membership = (MEMBERSHIP_S * 100).to_string();
    lan.bridge_set(&[
        "mcast_snooping",
        "1",
        "mcast_querier",
        "0",
        "mcast_membership_interval",
        &membership,
    ])
    .unwrap_or_else(|e| {
        panic!("this kernel's bridge cannot snoop IGMP (CONFIG_BRIDGE_IGMP_SNOOPING): {e}")
    });
    let details = lan.bridge_details().expect("ip -d link show br0");
    assert!(
        details.contains("mcast_snooping 1")
            && details.contains(&format!("mcast_membership_interval {membership}")),
        "the bridge did not take the snooping options:\n{details}"
    );
    let grp = GROUP.to_string();
    lan.bridge_tool(&[
        "mdb",
        "add",
        "dev",
        "br0",
        "port",
        "p3",
        "grp",
        &grp,
        "permanent",
    ])
    .expect("a permanent member port for the group (the other receivers)");
    make_querier(&h3);

    let server = Daemon::start(
        Program::Server,
        &h1,
        work.path(),
        "server",
        NTP_PORT,
        &format!(
            "lab-allow-fast-poll = true\n{}{}",
            destination(&grp, 1, 1, ""),
            local_source(2)
        ),
    );
    let c = client(&h2, work.path(), h1.addr());
    let mdb = || {
        lan.bridge_tool(&["mdb", "show"])
            .unwrap_or_else(|e| e.to_string())
    };
    let diag = || {
        format!(
            "client status:\n{}\nclient log:\n{}\nserver log:\n{}\nswitch mdb:\n{}",
            c.status_text(),
            c.log(),
            server.log(),
            mdb()
        )
    };
    // igmp-version, in the client's own namespace only.
    let forced = h2
        .exec("cat", &["/proc/sys/net/ipv4/conf/eth0/force_igmp_version"])
        .expect("read force_igmp_version");
    assert_eq!(
        String::from_utf8_lossy(&forced.stdout).trim(),
        "2",
        "igmp-version = 2 applied to the client's eth0\n{}",
        c.log()
    );

    // (a) Querier on: tracked through at least 10 query intervals.
    let started = Instant::now();
    wait_for(
        "the client to track the server",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let r = row(&c.client_status(), h1.addr());
            (r.state == State::Tracking && r.calibrated).then_some(())
        },
        diag,
    );
    let tracking_after = started.elapsed();
    let first = row(&c.client_status(), h1.addr()).accepted;
    let a_start = Instant::now();
    let a_len = Duration::from_secs(10 * QUERY_INTERVAL_S + 2);
    while a_start.elapsed() < a_len {
        let s = c.client_status();
        assert!(
            !group(&s).silent,
            "silent while the querier runs\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = c.client_status();
    let r = row(&s, h1.addr());
    let expected = a_start.elapsed().as_secs() / POLL_S;
    assert!(
        r.accepted - first + 1 >= expected,
        "{} broadcasts accepted in {:?} at poll {POLL_S} s: intervals were lost\n{}",
        r.accepted - first,
        a_start.elapsed(),
        diag()
    );
    assert_eq!(r.reach, 0xff, "every interval reached: {r:#?}");
    assert_eq!(r.state, State::Tracking);
    assert_eq!(group(&s).silences, 0);
    assert!(
        mdb().contains(&format!("port p2 grp {grp} temp")),
        "the switch forwards to the client by its reported membership\n{}",
        mdb()
    );
    let (code, line) = check(&c);
    assert_eq!(code, 0, "check OK while delivering: {line}\n{}", diag());

    // (b) The querier is lost.
    set_querier(&h3, false);
    let lost = Instant::now();
    let silent = wait_for(
        "the client to report the group silent",
        Duration::from_secs(MEMBERSHIP_S + SILENT_INTERVALS * POLL_S + 10),
        Duration::from_millis(100),
        || {
            let s = c.client_status();
            group(&s).silent.then_some(s)
        },
        diag,
    );
    let silent_at = lost.elapsed();
    let g = group(&silent);
    assert!(
        g.last_delivery_s > (SILENT_INTERVALS * POLL_S) as f64
            && g.last_delivery_s < (SILENT_INTERVALS * POLL_S + 2) as f64,
        "silent after {} s without a broadcast, not within {SILENT_INTERVALS} x {POLL_S} s: {g:?}",
        g.last_delivery_s
    );
    assert_eq!(g.silent_after_s, (SILENT_INTERVALS * POLL_S) as f64);
    let aged_after = silent_at.as_secs_f64() - g.last_delivery_s;
    let (code, line) = check(&c);
    assert!(
        code == 2 && line.contains("multicast group silent"),
        "check CRITICAL naming the silent group, got {code}: {line}"
    );
    let text = c.status_text();
    assert!(text.contains("group SILENT"), "status says so:\n{text}");
    let log = c.log();
    let said = log
        .matches("no authenticated broadcast from any server")
        .count();
    assert_eq!(said, 1, "the silence is logged once:\n{log}");
    for words in [
        &format!("group {grp} on eth0"),
        "querier",
        "snooping",
        "TTL",
        "interface",
    ] {
        assert!(log.contains(words), "the log names {words:?}:\n{log}");
    }

    // ... and recovers by itself: its re-join's report registers it again.
    let back = wait_for(
        "the client to hear the group again after its re-join",
        Duration::from_secs(3 * POLL_S + 2),
        Duration::from_millis(100),
        || {
            let s = c.client_status();
            (!group(&s).silent).then_some(s)
        },
        diag,
    );
    let recovered_after = lost.elapsed() - silent_at;
    let g = group(&back);
    assert!(g.rejoins >= 1, "{g:?}");
    assert!(
        mdb().contains(&format!("port p2 grp {grp} temp")),
        "the re-join registered the client's port again\n{}",
        mdb()
    );
    let ok_check = wait_for(
        "check to be OK again",
        Duration::from_secs(3 * POLL_S),
        Duration::from_millis(200),
        || {
            let (code, line) = check(&c);
            (code == 0).then_some(line)
        },
        diag,
    );
    let s = c.client_status();
    assert_eq!(row(&s, h1.addr()).state, State::Tracking, "{}", diag());
    assert!(
        c.log().contains("authenticated broadcasts are back after"),
        "recovery is logged:\n{}",
        c.log()
    );
    eprintln!(
        "igmp snooping lab: tracking {:.1} s after start; (a) {:.0} s with the querier, {} \
         broadcasts accepted, reach {:#04x}; (b) querier off -> last broadcast {:.1} s later \
         (membership aged), silence reported {:.1} s after it ({:.1} s after the querier went), \
         delivery back {:.1} s after that ({} re-join(s)); check: {ok_check}",
        tracking_after.as_secs_f64(),
        a_len.as_secs_f64(),
        r.accepted - first,
        r.reach,
        aged_after,
        silent_at.as_secs_f64() - aged_after,
        silent_at.as_secs_f64(),
        recovered_after.as_secs_f64(),
        g.rejoins
    );
}
