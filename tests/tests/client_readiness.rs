//! Readiness of a real client on loopback (monitor mode, without
//! CAP_SYS_TIME, traffic on lo only): the `sd_notify` datagrams it sends
//! to a `NOTIFY_SOCKET` the test made, and `mcast-client wait-sync`'s exit
//! codes.
#![cfg(test)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use mcast_tests::loopback::{LoopbackLab, tool};

/// Every datagram that arrives within `within`, until `stop` says enough.
fn collect(sock: &UnixDatagram, within: Duration, stop: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !stop(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only these notifications arrived: {got:#?}"
        );
        sock.set_read_timeout(Some(left)).expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => got.push(String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into()),
            Err(e) => panic!("no notification ({e}); so far: {got:#?}"),
        }
    }
    got
}

#[test]
fn ready_is_sent_after_selection_with_status_lines() {
    let lab = LoopbackLab::new();
    let path = lab.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&path).expect("bind the notify socket");
    // The client first, so it starts with nothing to select.
    let _client = lab.start_client_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", path.as_os_str()),
            ("WATCHDOG_USEC", std::ffi::OsStr::new("2000000")),
        ],
    );
    let before = collect(&notify, Duration::from_secs(10), |g| !g.is_empty());
    let first = before.first().expect("one");
    assert!(
        !first.contains("READY=1"),
        "not ready before a server is heard: {first}"
    );
    assert!(
        first.contains("STATUS=no server selected"),
        "the first status says why: {first}"
    );
    let _server = lab.start_server();
    let all = collect(&notify, Duration::from_secs(60), |g| {
        g.iter().any(|m| m.lines().any(|l| l == "READY=1"))
    });
    let ready = all
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .expect("READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=synchronized to lo-server (127.0.0.1), offset")),
        "READY=1 comes with the status that says why: {ready}"
    );
    let status = lab.client_status().expect("status answers");
    assert_eq!(status["synchronized"], true, "{status:#}");
    assert_eq!(status["servers"][0]["tally"], "*", "{status:#}");
    // The watchdog: WATCHDOG_USEC 2 s asks for a ping at least every second.
    let pings = collect(&notify, Duration::from_secs(10), |g| {
        g.iter()
            .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
            .count()
            >= 3
    });
    assert!(
        pings.iter().all(|m| !m.contains("READY=1")),
        "READY=1 is sent once: {pings:#?}"
    );
}

fn wait_sync(lab: &LoopbackLab, args: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = tool(&lab.client_bin)
        .arg("wait-sync")
        .args(args)
        .arg("--socket")
        .arg(lab.client_socket())
        .output()
        .expect("wait-sync runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, started.elapsed())
}

#[test]
fn wait_sync_exits_1_on_timeout_with_nothing_selected_and_0_once_synchronized() {
    let lab = LoopbackLab::new();
    // No client at all: asked again until the timeout.
    let (code, text, took) = wait_sync(&lab, &["--timeout", "2"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no answer from"), "{text}");
    assert!(took >= Duration::from_secs(1), "{took:?}");

    // A client with no server: it answers, nothing is selected.
    let _client = lab.start_client("");
    let (code, text, _) = wait_sync(&lab, &["--timeout", "3"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("not synchronized after") && text.contains("no server selected"),
        "{text}"
    );

    let _server = lab.start_server();
    let (code, text, _) = wait_sync(&lab, &["--timeout", "60"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("synchronized after"), "{text}");
    // Same host, same clock: far under a second, but not under zero.
    let (code, text, _) = wait_sync(&lab, &["--timeout", "30", "--max-offset", "1"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text, _) = wait_sync(&lab, &["--timeout", "2", "--max-offset", "0"]);
    assert_eq!(
        code,
        Some(1),
        "an offset of exactly zero is not expected: {text}"
    );
    assert!(text.contains("over --max-offset"), "{text}");

    let (code, text, _) = wait_sync(&lab, &["--timeout", "-1"]);
    assert_eq!(code, Some(2), "usage error: {text}");
}

#[test]
fn step_now_is_refused_by_a_monitor_mode_client() {
    let lab = LoopbackLab::new();
    let _client = lab.start_client("");
    let out = tool(&lab.client_bin)
        .args(["step-now", "--socket"])
        .arg(lab.client_socket())
        .output()
        .expect("step-now runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("step-now refused: the client is in monitor mode"),
        "{stderr}"
    );
    // No client: no answer, exit 1 too.
    let out = tool(&lab.client_bin)
        .args(["step-now", "--socket"])
        .arg(lab.dir.path().join("absent.sock"))
        .output()
        .expect("step-now runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no answer"));
}
