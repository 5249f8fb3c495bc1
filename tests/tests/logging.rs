//! `log-level` of a running client changed by SIGHUP: debug lines appear
//! in its stderr after a reload to `debug` and stop after a reload back to
//! `info`; `RUST_LOG` is unset, and the inherited `JOURNAL_STREAM` does not
//! match the piped stderr, so the log is plain text. On loopback; the
//! client in monitor mode without CAP_SYS_TIME.
#![cfg(test)]

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mcast_tests::loopback::{LoopbackLab, start_logging};

const CALIBRATION: &str = "start-delay-max-s = 0.5\nrequests = 4";

/// The lines up to and including the first containing `marker`.
fn lines_until(rx: &Receiver<String>, marker: &str, timeout: Duration) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(marker);
                seen.push(l);
                if done {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {marker:?} ({e}); got:\n{}", seen.join("\n")),
        }
    }
}

fn debug_lines(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains("DEBUG")).collect()
}

#[test]
fn sighup_changes_the_log_level_of_a_running_client() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let conf = lab.write_client_config("log-level = \"info\"", CALIBRATION);
    let (client, rx) = start_logging(&lab.client_bin, &conf);
    let start = lines_until(&rx, "mcast-client running", Duration::from_secs(30));
    assert!(
        start.iter().all(|l| !l.contains('\u{1b}')),
        "plain text, no colours on a pipe: {start:?}"
    );
    assert!(
        start.iter().any(|l| l.contains(" INFO ")),
        "info lines at info: {start:?}"
    );
    lab.wait_until_tracked();

    // To debug: the reload's own debug line, then the daemon's per-decision ones.
    lab.write_client_config("log-level = \"debug\"", CALIBRATION);
    client.hangup();
    let after = lines_until(&rx, "SIGHUP: keys reloaded", Duration::from_secs(10));
    assert!(
        after
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("level=\"debug\"")),
        "the reload to debug logs at debug: {after:?}"
    );
    // Broadcasts every 2 s: within a few intervals debug lines of the daemon itself.
    let more = lines_until(&rx, "DEBUG", Duration::from_secs(10));
    assert!(!debug_lines(&more).is_empty());

    // Back to info: no more debug lines, however long we listen, until the
    // next reload (to debug again) logs its own.
    lab.write_client_config("log-level = \"info\"", CALIBRATION);
    client.hangup();
    lines_until(&rx, "SIGHUP: keys reloaded", Duration::from_secs(10));
    let quiet_since = Instant::now();
    lab.wait_until_tracked();
    // At least three more broadcasts tracked at info (each one logged a
    // debug line at debug).
    let reach = |s: &serde_json::Value| s["servers"][0]["accepted"].as_u64().unwrap_or(0);
    let first = reach(&lab.client_status().expect("status"));
    mcast_tests::loopback::wait_until("three more broadcasts", Duration::from_secs(20), || {
        let s = lab.client_status()?;
        if reach(&s) >= first + 3 {
            Ok(())
        } else {
            Err(format!("{s:#}"))
        }
    });
    lab.write_client_config("log-level = \"debug\"", CALIBRATION);
    client.hangup();
    let quiet = lines_until(&rx, "SIGHUP: keys reloaded", Duration::from_secs(10));
    let (before_reload, _) = quiet.split_at(
        quiet
            .iter()
            .position(|l| l.contains("level=\"debug\""))
            .expect("the reload to debug is logged"),
    );
    assert!(
        debug_lines(before_reload).is_empty(),
        "no debug line at info for {:?}: {before_reload:?}",
        quiet_since.elapsed()
    );
}
