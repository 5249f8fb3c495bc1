//! `mcast-server` and `mcast-client` together on loopback, as the quick
//! start runs them: the client calibrates once, tracks from broadcasts,
//! selects the server, and `status` and `check` say so. Both processes run
//! without CAP_SYS_TIME; the client is in monitor mode. Traffic stays on lo.
#![cfg(test)]

use std::time::{Duration, Instant};

use mcast_lab::bins;
use mcast_tests::loopback::{LoopbackLab, tool};

#[test]
fn client_calibrates_once_then_tracks_and_selects_the_server() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let _client = lab.start_client("");

    let s = lab.wait_until_tracked();
    let v = &s["servers"][0];
    assert_eq!(v["state"], "tracking");
    assert!(
        v["calibration"]
            .as_str()
            .unwrap_or("")
            .starts_with("calibrated"),
        "{v}"
    );
    assert_eq!(
        v["unicast_sent"], 4,
        "exactly one volley of four requests: {v}"
    );
    assert!(
        v["rejected"].as_object().is_some_and(|m| m.is_empty()),
        "nothing rejected: {v}"
    );
    // Same machine, same clock: the offset is the error, well under 1 ms.
    let offset = s["offset_ms"].as_f64().expect("an offset is selected");
    assert!(offset.abs() < 1.0, "offset {offset} ms");

    // Tracking never sends unicast again: a few more intervals, same count.
    let later = Instant::now() + Duration::from_secs(7);
    let mut last = s;
    while Instant::now() < later {
        std::thread::sleep(Duration::from_millis(500));
        last = lab.client_status().expect("status answers");
    }
    assert_eq!(
        last["servers"][0]["unicast_sent"], 4,
        "no unicast after calibration: {last:#}"
    );
    assert!(
        last["servers"][0]["reach"].as_u64().unwrap_or(0) >= 7,
        "{last:#}"
    );

    let check = tool(&lab.client_bin)
        .args(["check", "-w", "0.005", "-c", "0.05", "--socket"])
        .arg(lab.client_socket())
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{text}");
    assert!(text.starts_with("MCAST-NTP OK - offset"), "{text}");
}

#[test]
fn check_is_unknown_when_no_client_answers() {
    let client_bin = bins::bin_path("mcast-client").expect("mcast-client builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tool(&client_bin)
        .args(["check", "-w", "0.005", "-c", "0.05", "--socket"])
        .arg(dir.path().join("absent.sock"))
        .output()
        .expect("check runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("MCAST-NTP UNKNOWN"));
}

/// With a state directory, the client writes each server's replay floor
/// when it stops (SIGTERM, as systemd stops it), and a restart over a
/// corrupt state file starts anyway (reported, never fatal).
#[test]
fn the_replay_floor_is_persisted_at_exit_and_a_corrupt_file_is_not_fatal() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let state = tempfile::tempdir().expect("tempdir");
    let extra = format!("state-directory = {:?}", state.path());
    let client = lab.start_client(&extra);
    lab.wait_until_tracked();
    let status = client.terminate();
    assert!(status.success(), "{status:?}");
    let file = state.path().join("client-state.json");
    let text = std::fs::read_to_string(&file).expect("state written at exit");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let s = &v["servers"][0];
    assert_eq!(s["address"], "127.0.0.1", "{v}");
    assert_eq!(s["key"], 3, "{v}");
    assert!(s["last_transmit"].as_u64().unwrap_or(0) > 0, "{v}");

    std::fs::write(&file, "{ not json").expect("corrupt it");
    let _client = lab.start_client(&extra);
    lab.wait_until_tracked();
}
