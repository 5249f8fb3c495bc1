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
    assert!(v["calibration"]["phase"] == "calibrated", "{v}");
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
        .args(["check", "-w", "0.005", "-C", "0.05", "--socket"])
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
        .args(["check", "-w", "0.005", "-C", "0.05", "--socket"])
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

/// `check` on a live monitor-mode client whose server answers no
/// calibration request: the client tracks on the fallback delay, and the
/// plugin says WARNING with every performance figure; then each threshold
/// option, a stopped server (stale multicast) and an unreadable
/// configuration (UNKNOWN with its cause).
#[test]
fn check_warns_about_the_fallback_delay_stale_multicast_and_names_unknown_causes() {
    let lab = LoopbackLab::new();
    let server = lab.start_server_configured("", "[responder]\nenabled = false");
    let _client = lab.start_client_calibrating(
        "",
        "start-delay-max-s = 0.5\nrequests = 1\nretries = 0\nfallback-delay-ms = 1",
    );
    mcast_tests::loopback::wait_until("on the fallback delay", Duration::from_secs(60), || {
        let s = lab.client_status()?;
        let v = &s["servers"][0];
        if v["state"] == "tracking" && v["calibrated"] == false && v["tally"] == "*" {
            Ok(())
        } else {
            Err(format!("{s:#}"))
        }
    });
    let check = |extra: &[&str]| {
        let out = tool(&lab.client_bin)
            .args(["check", "-w", "0.05", "-C", "0.5", "--socket"])
            .arg(lab.client_socket())
            .args(extra)
            .output()
            .expect("check runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        )
    };
    let (code, text) = check(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.starts_with(
            "MCAST-NTP WARNING - lo-server (127.0.0.1) is tracked on the fallback delay \
             (1.000 ms assumed, uncalibrated); offset "
        ),
        "{text}"
    );
    let perf = text.split_once('|').map(|(_, p)| p).unwrap_or_default();
    let figure = |name: &str| -> String {
        perf.split(' ')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    assert!(
        figure("offset").starts_with(|c: char| c == '-' || c.is_ascii_digit()),
        "{text}"
    );
    assert!(figure("jitter").ends_with("s;0.002"), "{text}");
    assert_eq!(figure("selected"), "1;1:;;0", "{text}");
    assert!(
        figure("age").ends_with("s;8;16;0"),
        "poll 1 (2 s) x 4 and x 8: {text}"
    );
    assert_eq!(figure("stratum"), "4;5;;0;16", "{text}");

    let (code, text) = check(&["--stratum", "3", "--min-agreeing", "2"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("1 servers selected, min-agreeing is 2"),
        "{text}"
    );
    assert!(text.contains("stratum 4 above 3"), "{text}");
    assert!(text.contains("selected=1;2:;;0"), "{text}");

    // The server stops: the multicast goes stale (one interval: 2 s).
    drop(server);
    let text =
        mcast_tests::loopback::wait_until("stale", Duration::from_secs(30), || {
            match check(&[
                "--stale-intervals",
                "1",
                "--stale-critical-intervals",
                "100",
            ]) {
                (Some(1), t) if t.contains("no authenticated broadcast for") => Ok(t),
                (_, t) => Err(t),
            }
        });
    assert!(text.contains("(limit 2 s)"), "{text}");

    // UNKNOWN names the cause: a configuration that cannot be read.
    let missing = lab.dir.path().join("absent.toml");
    let out = tool(&lab.client_bin)
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.starts_with("MCAST-NTP UNKNOWN - configuration unreadable: ")
            && text.contains("absent.toml"),
        "{text}"
    );
    assert!(
        text.contains("|offset=Us;"),
        "perfdata on UNKNOWN too: {text}"
    );
    let broken = lab.dir.path().join("broken.toml");
    std::fs::write(&broken, "port = \"not a number\"\n").expect("write");
    let out = tool(&lab.client_bin)
        .args(["check", "--config"])
        .arg(&broken)
        .output()
        .expect("check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("broken.toml") && text.contains("port"),
        "{text}"
    );
}

/// A restart within the reuse age (a day) takes back the calibration: the
/// restarted client tracks from the first broadcast and sends no volley,
/// and its replay floor is kept.
#[test]
fn a_restart_reuses_the_calibration_without_a_second_volley() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let state = tempfile::tempdir().expect("tempdir");
    let extra = format!("state-directory = {:?}", state.path());
    let client = lab.start_client(&extra);
    let first = lab.wait_until_tracked();
    assert_eq!(first["servers"][0]["unicast_sent"], 4, "{first:#}");
    assert!(client.terminate().success());
    let text =
        std::fs::read_to_string(state.path().join("client-state.json")).expect("state written");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert!(
        v["servers"][0]["calibration"]["one_way_ns"].is_i64(),
        "the calibration persists: {v}"
    );

    let _client = lab.start_client(&extra);
    let s = lab.wait_until_tracked();
    let server = &s["servers"][0];
    assert_eq!(server["unicast_sent"], 0, "no second volley: {s:#}");
    assert!(
        server["calibration"]["phase"] == "calibrated" && server["calibration"]["restored"] == true,
        "{s:#}"
    );
    assert!(
        server["rejected"].as_object().is_some_and(|m| m.is_empty()),
        "nothing rejected: {s:#}"
    );
    let offset = s["offset_ms"].as_f64().expect("an offset is selected");
    assert!(offset.abs() < 1.0, "offset {offset} ms");
}
