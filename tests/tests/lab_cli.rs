#![cfg(test)]
//! `mcast-lab` (what `scripts/lab` runs) end to end, as a user reproducing
//! a bug drives it: `up`, `status` until the failure shows, `down`. Needs
//! root and `scripts/install-deps` (reference ntpd); fails loudly without.
//!
//! Every lab here has its own name (`t<pid><letter>`), so its namespaces
//! (`mlab-<name>-*`) and state directory never meet a user's lab or
//! another test's; a guard runs `down` even when an assertion fails.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::Duration;

use mcast_lab::lab::{lab_required, tool_bin, wait_for};
use mcast_lab::labctl::{self, LabState, ProcRecord, Report, Row};

/// `mcast-lab`, a binary of another package: built for this run.
fn lab_bin() -> String {
    tool_bin("mcast-lab")
}

fn run(name: &str, args: &[&str]) -> Output {
    let lab = lab_bin();
    Command::new(&lab)
        .arg("--name")
        .arg(name)
        .args(args)
        // Our daemons are built fresh by the lab itself (bins.rs).
        .env_remove(labctl::BIN_DIR_ENV)
        .output()
        .unwrap_or_else(|e| panic!("run {lab} {args:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A lab that is taken down when the test ends, pass or fail.
struct Lab {
    name: String,
}

impl Lab {
    fn up(suffix: char, args: &[&str]) -> (Lab, Output) {
        let name = format!("t{}{suffix}", std::process::id());
        let lab = Lab { name };
        let mut all = vec!["up"];
        all.extend_from_slice(args);
        let out = run(&lab.name, &all);
        (lab, out)
    }

    fn status(&self) -> Report {
        let out = run(&self.name, &["status", "--json"]);
        assert!(out.status.success(), "status --json: {}", text(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not a report ({e}): {}", text(&out)))
    }

    fn table(&self) -> String {
        text(&run(&self.name, &["status"]))
    }

    /// Every process the state file records.
    fn processes(&self) -> Vec<ProcRecord> {
        let state = LabState::load(&self.name).expect("the lab's state file");
        state
            .hosts
            .iter()
            .filter_map(|h| h.process.clone())
            .chain(state.capture)
            .collect()
    }

    fn namespaces(&self) -> BTreeSet<String> {
        let out = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list");
        let prefix = labctl::ns_prefix(&self.name);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    }

    /// `down`, then checks that nothing of the lab is left.
    fn down_and_check(&self, procs: &[ProcRecord]) {
        let out = run(&self.name, &["down"]);
        assert!(out.status.success(), "down: {}", text(&out));
        assert!(
            self.namespaces().is_empty(),
            "down leaves no namespace: {:?}",
            self.namespaces()
        );
        let running: Vec<&ProcRecord> = procs.iter().filter(|p| labctl::is_running(p)).collect();
        assert!(running.is_empty(), "down ends every process: {running:?}");
        assert!(
            !labctl::state_dir(&self.name).exists(),
            "down removes the state directory"
        );
        let again = run(&self.name, &["down"]);
        assert!(
            again.status.success() && text(&again).contains("nothing to do"),
            "down is idempotent: {}",
            text(&again)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = run(&self.name, &["down"]);
        if !out.status.success() {
            eprintln!("lab_cli: down of {} failed: {}", self.name, text(&out));
        }
    }
}

/// Whether CAP_SYS_TIME (bit 25) is in the process's bounding,
/// permitted or effective set.
fn holds_sys_time(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().any(|l| {
        let Some((name, v)) = l.split_once(':') else {
            return false;
        };
        matches!(name, "CapBnd" | "CapPrm" | "CapEff")
            && u64::from_str_radix(v.trim(), 16).is_ok_and(|c| (c >> 25) & 1 == 1)
    })
}

fn client_row<'a>(r: &'a Report, program: &str) -> &'a Row {
    r.rows
        .iter()
        .find(|row| row.role == "client" && row.program.starts_with(program))
        .unwrap_or_else(|| panic!("no {program} client row: {r:#?}"))
}

#[test]
fn dropped_replies_leave_ntpd_polling_by_unicast_while_ours_falls_back() {
    lab_required("dropped_replies_leave_ntpd_polling_by_unicast_while_ours_falls_back");
    const REQUESTS: u64 = 2;
    const RETRIES: u64 = 1;
    let (lab, out) = Lab::up(
        'a',
        &[
            "--servers",
            "1",
            "--clients",
            "1",
            "--ref-clients",
            "1",
            "--drop-replies",
            "--poll",
            "3",
            "--key-type",
            "md5",
            "--cal-requests",
            &REQUESTS.to_string(),
            "--cal-retries",
            &RETRIES.to_string(),
            "--cal-start-delay",
            "1",
        ],
    );
    assert!(out.status.success(), "up: {}", text(&out));
    let procs = lab.processes();
    assert_eq!(procs.len(), 4, "3 daemons and tcpdump: {procs:?}");
    for p in &procs {
        assert!(
            labctl::is_running(p) && !holds_sys_time(p.pid),
            "every lab process runs without CAP_SYS_TIME: {p:?}"
        );
    }
    assert_eq!(lab.namespaces().len(), 4, "switch and 3 hosts");

    // A second `up` of the same lab is refused and changes nothing.
    let twice = run(&lab.name, &["up"]);
    assert!(
        !twice.status.success() && text(&twice).contains("up already"),
        "{}",
        text(&twice)
    );

    // Ours gives up calibrating (bounded) and tracks with the fallback
    // delay; ntpd's volley association stays in client mode (t = u).
    let first = wait_for(
        "our client in fallback and ntpd's client polling by unicast",
        Duration::from_secs(90),
        Duration::from_secs(1),
        || {
            let r = lab.status();
            let ours = client_row(&r, "mcast-client");
            let ntpd = client_row(&r, "ntpd");
            (ours.mode == "tracking" && ours.fallback && ntpd.t == "u" && ntpd.wire >= 2)
                .then_some(r)
        },
        || lab.table(),
    );
    let ours = client_row(&first, "mcast-client").clone();
    let total = REQUESTS * (RETRIES + 1);
    assert_eq!(ours.unicast_sent, Some(total), "bounded volleys: {ours:?}");
    assert_eq!(ours.wire, total, "the wire agrees: {ours:?}");
    assert!(
        ours.note.contains("no reply from 198.18.0.1:123"),
        "says why: {ours:?}"
    );
    let ntpd_before = client_row(&first, "ntpd").wire;

    // Three more broadcast intervals: ntpd sends a request in each, ours
    // sends nothing.
    let later = wait_for(
        "ntpd's client to send 3 more unicast requests",
        Duration::from_secs(60),
        Duration::from_secs(1),
        || {
            let r = lab.status();
            (client_row(&r, "ntpd").wire >= ntpd_before + 3).then_some(r)
        },
        || lab.table(),
    );
    let ours_later = client_row(&later, "mcast-client");
    assert_eq!(
        (ours_later.unicast_sent, ours_later.wire),
        (Some(total), total),
        "ours stays multicast-only after the fallback: {ours_later:?}"
    );
    assert_eq!(ours_later.t, "b");
    let ntpd = client_row(&later, "ntpd");
    assert_eq!(
        (ntpd.t.as_str(), ntpd.mode.as_str(), ntpd.reach),
        ("u", "unicast", Some(0)),
        "ntpd never leaves client mode: {ntpd:?}"
    );
    assert!(
        ntpd.unicast_sent.is_some_and(|s| s >= ntpd_before + 3),
        "ntpd's own counter grows with the wire: {ntpd:?}"
    );
    assert_eq!(ntpd.server, Some(Ipv4Addr::new(198, 18, 0, 1)));
    let server = later
        .rows
        .iter()
        .find(|r| r.role == "server")
        .expect("server row");
    assert_eq!(server.wire, 0, "no reply leaves the server: {server:?}");

    let table = lab.table();
    assert!(
        table.contains("tracking (fallback)") && table.contains("unicast"),
        "the table shows both modes:\n{table}"
    );
    lab.down_and_check(&procs);
}

#[test]
fn ntpd_clients_abort_on_a_broadcast_poll_of_2_while_ours_track() {
    lab_required("ntpd_clients_abort_on_a_broadcast_poll_of_2_while_ours_track");
    let (lab, out) = Lab::up(
        'b',
        &[
            "--servers",
            "1",
            "--clients",
            "1",
            "--ref-clients",
            "1",
            "--poll",
            "2",
            "--cal-requests",
            "2",
            "--cal-start-delay",
            "1",
        ],
    );
    assert!(out.status.success(), "up: {}", text(&out));
    let procs = lab.processes();
    let r = wait_for(
        "ntpd's client to exit and ours to track",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || {
            let r = lab.status();
            let ours = client_row(&r, "mcast-client");
            let ntpd = client_row(&r, "ntpd");
            (ours.mode == "tracking" && ntpd.mode == "exited").then_some(r)
        },
        || lab.table(),
    );
    let ntpd = client_row(&r, "ntpd");
    assert!(
        !ntpd.running && ntpd.note.contains("INSIST(3 <= p && 17 >= p) failed"),
        "ntpd 4.2.8p15's assertion on the poll field is shown: {ntpd:?}"
    );
    let ours = client_row(&r, "mcast-client");
    assert!(
        !ours.fallback && ours.note.starts_with("calibrated"),
        "{ours:?}"
    );
    lab.down_and_check(&procs);
}

#[test]
fn down_removes_a_lab_whose_up_failed_half_way() {
    lab_required("down_removes_a_lab_whose_up_failed_half_way");
    // The ntpd client's config would let it discipline the clock: refused
    // after the LAN, the server and our client are up.
    let (lab, out) = Lab::up(
        'c',
        &[
            "--servers",
            "1",
            "--clients",
            "1",
            "--ref-clients",
            "1",
            "--ref-conf",
            "enable ntp",
            "--keep-on-failure",
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("SAFETY"),
        "up refuses: {}",
        text(&out)
    );
    let procs = lab.processes();
    assert!(
        procs.iter().filter(|p| labctl::is_running(p)).count() >= 2,
        "tcpdump, server and our client were running: {procs:?}"
    );
    assert!(!lab.namespaces().is_empty());
    let status = lab.table();
    assert!(status.contains("INCOMPLETE"), "{status}");
    lab.down_and_check(&procs);
}
