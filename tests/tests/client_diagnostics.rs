//! The client's diagnostics on loopback, as an operator uses them:
//! `mcast-client listen` next to a running server (right keys, wrong keys,
//! a silent group), and the Prometheus endpoint of a running client. Every
//! process runs without CAP_SYS_TIME, the client in monitor mode; traffic
//! stays on lo.
#![cfg(test)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use mcast_tests::loopback::{LoopbackLab, free_port, free_tcp_port, http_get, tool, wait_until};

/// `mcast-client listen` on lo, at most `timeout_s` seconds.
fn listen(lab: &LoopbackLab, group: &str, port: u16, extra: &[&str], timeout_s: u32) -> Output {
    tool(&lab.client_bin)
        .args(["listen", "--group", group, "--interface", "lo", "--port"])
        .arg(port.to_string())
        .args(["--timeout-s", &timeout_s.to_string()])
        .args(extra)
        .output()
        .expect("listen runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn keys_file(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("keys file");
    path.to_string_lossy().into_owned()
}

#[test]
fn listen_with_the_servers_key_reports_its_broadcasts_verified() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let keys = lab.keys().to_string_lossy().into_owned();

    let out = listen(
        &lab,
        "224.0.1.1",
        lab.port,
        &["--keys", &keys, "--count", "2", "--json"],
        30,
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "exit 0 when a packet verified:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "--count 2: {stdout}");
    for p in &lines {
        assert_eq!(p["source"], format!("127.0.0.1:{}", lab.port), "{p}");
        assert_eq!(p["interface"], "lo", "{p}");
        assert_eq!(p["mac"], "ok", "{p}");
        assert_eq!(p["key"], 3, "{p}");
        assert_eq!(p["mode"], 5, "{p}");
        assert_eq!(p["stratum"], 3, "{p}");
        assert_eq!(p["poll"], 1, "{p}");
        assert_eq!(p["length"], 68, "{p}");
        assert!(p["unusable"].is_null() && p["error"].is_null(), "{p}");
        // Same machine, same clock: transmit minus arrival is tiny.
        let off = p["offset_s"].as_f64().expect("an offset");
        assert!(off.abs() < 0.01, "offset {off} s: {p}");
    }
    assert!(lines[0]["interval_s"].is_null(), "{}", lines[0]);
    let gap = lines[1]["interval_s"].as_f64().expect("an interval");
    assert!(
        (1.0..4.0).contains(&gap),
        "broadcasts every 2 s, got {gap}: {stdout}"
    );
    assert!(
        text(&out.stderr).contains("heard 2 packets from 1 address, 2 verified"),
        "{}",
        text(&out.stderr)
    );

    // The text form says the same in words.
    let out = listen(
        &lab,
        "224.0.1.1",
        lab.port,
        &["--keys", &keys, "--count", "1"],
        30,
    );
    let line = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{line}");
    assert!(
        line.contains(&format!(
            "127.0.0.1:{} on lo, 68 bytes: v4 mode 5 (broadcast) stratum 3 poll 1 LI 0",
            lab.port
        )) && line.contains(", key 3 MAC ok, transmit "),
        "{line}"
    );
}

#[test]
fn listen_with_wrong_keys_reports_bad_mac_or_unknown_key_and_exits_1() {
    let lab = LoopbackLab::new();
    let _server = lab.start_server();
    let dir = lab.dir.path();
    // Key 3 with another secret: the MAC does not verify.
    let wrong_secret = keys_file(
        dir,
        "wrong-secret.keys",
        "3 AES128CMAC 00112233445566778899aabbccddeeff\n",
    );
    // No key 3 at all.
    let no_key_3 = keys_file(dir, "no-key-3.keys", "1 MD5 LabMd5Key-0001\n");
    for (keys, verdict, words) in [
        (&wrong_secret, "bad-mac", ", key 3 bad MAC, "),
        (&no_key_3, "unknown-key", ", key 3 unknown key, "),
    ] {
        let out = listen(
            &lab,
            "224.0.1.1",
            lab.port,
            &["--keys", keys, "--count", "1", "--json"],
            30,
        );
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "heard but nothing verified: {stdout}\n{}",
            text(&out.stderr)
        );
        let p: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
        assert_eq!(p["mac"], verdict, "{p}");
        assert_eq!(p["key"], 3, "{p}");
        let out = listen(
            &lab,
            "224.0.1.1",
            lab.port,
            &["--keys", keys, "--count", "1"],
            30,
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(text(&out.stdout).contains(words), "{}", text(&out.stdout));
    }
}

#[test]
fn listen_on_a_silent_group_exits_3_at_the_timeout() {
    let lab = LoopbackLab::new();
    let start = Instant::now();
    let out = listen(&lab, "239.255.77.77", free_port(), &[], 1);
    assert_eq!(
        out.status.code(),
        Some(3),
        "nothing heard: {}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("heard 0 packets"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "stopped at the timeout, took {:?}",
        start.elapsed()
    );
}

/// Samples of a Prometheus text page by series (name and labels).
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, v) = l.rsplit_once(' ').expect("series and value");
            (series.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn metrics_show_the_tracked_server_with_a_real_offset_and_404_elsewhere() {
    let lab = LoopbackLab::new();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
        .parse()
        .expect("address");
    let _server = lab.start_server();
    let _client = lab.start_client(&format!("metrics = \"{metrics}\""));

    let status = lab.wait_until_tracked();
    let l = r#"server="127.0.0.1",name="lo-server",key="3""#;
    let (answer, m) = wait_until("scraped after calibration", Duration::from_secs(30), || {
        let a = http_get(metrics, "/metrics").map_err(|e| e.to_string())?;
        let m = samples(&a.body);
        let tracking = m.get(&format!(
            "mcast_client_server_state{{{l},state=\"tracking\"}}"
        ));
        if tracking == Some(&1.0) {
            Ok((a, m))
        } else {
            Err(a.body)
        }
    });
    assert_eq!(answer.code, 200, "{}", answer.head);
    assert!(
        answer
            .head
            .contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    assert!(answer.head.contains("Connection: close"), "{}", answer.head);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("{series} missing:\n{}", answer.body))
    };
    for state in ["listening", "calibrating"] {
        assert_eq!(
            get(&format!(
                "mcast_client_server_state{{{l},state=\"{state}\"}}"
            )),
            0.0
        );
    }
    // A real offset: present, and on one machine well under a millisecond.
    let offset = get(&format!("mcast_client_server_offset_seconds{{{l}}}"));
    assert!(offset.abs() < 0.001, "offset {offset} s");
    let status_offset = status["servers"][0]["offset_ms"].as_f64().expect("offset") / 1e3;
    assert!(
        (offset - status_offset).abs() < 0.001,
        "metrics {offset} s vs status {status_offset} s"
    );
    assert!(get(&format!("mcast_client_server_delay_seconds{{{l}}}")) > 0.0);
    assert!(get(&format!("mcast_client_server_jitter_seconds{{{l}}}")) >= 0.0);
    assert!(get(&format!("mcast_client_server_root_distance_seconds{{{l}}}")) > 0.0);
    assert!(get(&format!("mcast_client_server_reach{{{l}}}")) >= 3.0);
    assert_eq!(get(&format!("mcast_client_server_calibrated{{{l}}}")), 1.0);
    assert!(get(&format!("mcast_client_server_one_way_delay_seconds{{{l}}}")) > 0.0);
    assert_eq!(get(&format!("mcast_client_server_system_peer{{{l}}}")), 1.0);
    assert_eq!(get(&format!("mcast_client_server_falseticker{{{l}}}")), 0.0);
    assert_eq!(
        get(&format!("mcast_client_server_unicast_sent_total{{{l}}}")),
        4.0
    );
    assert!(
        get(&format!(
            "mcast_client_server_packets_received_total{{{l}}}"
        )) >= 3.0
    );
    assert_eq!(get("mcast_client_clock_mode{mode=\"monitor\"}"), 1.0);
    assert!(get("mcast_client_last_verified_broadcast_age_seconds") < 10.0);
    assert!(get("mcast_client_offset_seconds").abs() < 0.001);
    assert_eq!(get("mcast_client_synchronized"), 1.0);
    assert_eq!(get("mcast_client_frequency_ppm"), 0.0, "monitor mode");
    // The server is stratum 3: the client, tracking it, is stratum 4.
    assert_eq!(get(&format!("mcast_client_server_stratum{{{l}}}")), 3.0);
    assert_eq!(get("mcast_client_stratum"), 4.0);
    assert_eq!(get(&format!("mcast_client_server_leap{{{l}}}")), 0.0);
    assert_eq!(get("mcast_client_leap"), 0.0);
    assert!(get("mcast_client_root_distance_seconds") > 0.0);
    assert_eq!(
        get(&format!(
            "mcast_client_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // Every reason is there before it happens.
    assert_eq!(
        get(&format!(
            "mcast_client_server_packets_rejected_total{{{l},reason=\"bad-mac\"}}"
        )),
        0.0
    );
    assert_eq!(
        get("mcast_client_packets_rejected_total{reason=\"unknown-source\"}"),
        0.0
    );

    let other = http_get(metrics, "/").expect("GET /");
    assert_eq!(other.code, 404, "{other:?}");
    let other = http_get(metrics, "/metrics/extra").expect("GET /metrics/extra");
    assert_eq!(other.code, 404, "{other:?}");
}
