//! The error-bound segment of a real client on loopback (monitor mode,
//! without CAP_SYS_TIME, traffic on lo only), read by an independent
//! reader: the example `mcast-client/examples/clockbound_now.rs`, written
//! from ClockBound's protocol v2 layout with no code of this project. And
//! `mcast-client now`'s words and exit codes.
#![cfg(test)]

use std::time::Duration;

use mcast_tests::loopback::{LoopbackLab, tool, wait_until};

#[path = "../../mcast-client/examples/clockbound_now.rs"]
mod independent;

fn clock_ns(id: nix::time::ClockId) -> i128 {
    let t = nix::time::clock_gettime(id).expect("clock_gettime");
    i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
}

/// The independent reader's interval now.
fn read_now(path: &str) -> Result<independent::Interval, String> {
    let real = clock_ns(nix::time::ClockId::CLOCK_REALTIME);
    let mono = clock_ns(nix::time::ClockId::CLOCK_MONOTONIC);
    independent::read_interval(path, real, mono)
}

#[test]
fn the_published_bound_is_read_by_an_independent_reader_and_by_now() {
    let lab = LoopbackLab::new();
    let segment = lab.dir.path().join("shm0");
    let shown = segment.to_string_lossy().into_owned();
    let _client = lab.start_client(&format!(
        "[clock-bound]\nenabled = true\npath = {shown:?}\n"
    ));

    // Before any server: the segment exists and says unknown; `now` fails.
    let unknown = wait_until("the segment says unknown", Duration::from_secs(20), || {
        read_now(&shown)
    });
    assert_eq!(unknown.status, 0, "nothing is known yet: {unknown:?}");
    let out = tool(&lab.client_bin)
        .args(["now", "--path", &shown])
        .output()
        .expect("now runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("status    unknown"), "{text}");

    let _server = lab.start_server();
    let status = lab.wait_until_tracked();
    let synchronized = wait_until(
        "the segment says synchronized",
        Duration::from_secs(30),
        || match read_now(&shown)? {
            i if i.status == 1 => Ok(i),
            i => Err(format!("{i:?}")),
        },
    );
    // The server is this host's own clock: true time (as the server has
    // it) is this host's clock, which must lie inside the interval.
    let real = clock_ns(nix::time::ClockId::CLOCK_REALTIME);
    let width = synchronized.latest_ns - synchronized.earliest_ns;
    assert!(
        synchronized.earliest_ns <= real && real - synchronized.latest_ns < 1_000_000,
        "{synchronized:?} does not hold {real}"
    );
    // And it is a bound worth having on loopback: well under 100 ms wide,
    // and no narrower than the offset the client measured.
    assert!(width > 0 && width < 200_000_000, "{synchronized:?}");
    let offset_ms = status
        .pointer("/servers/0/offset_ms")
        .and_then(|v| v.as_f64())
        .expect("offset in status");
    assert!(
        (width as f64 / 2.0) >= offset_ms.abs() * 1e6,
        "half-width {} ns under the measured offset {offset_ms} ms",
        width / 2
    );

    let out = tool(&lab.client_bin)
        .args(["now", "--path", &shown, "--json"])
        .output()
        .expect("now runs");
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["status"], "synchronized", "{json}");
    let earliest: i128 = json["earliest_ns"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("earliest");
    let latest: i128 = json["latest_ns"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("latest");
    let now: i128 = json["now_ns"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("now");
    assert!(earliest < now && now < latest, "{json}");
    // Both readers agree on the bound within the time between the reads
    // (at most a few ms of drift growth and the one-second updates).
    let ours = latest - earliest;
    assert!(
        (ours - width).abs() < width / 2 + 2_000_000,
        "now says {ours} ns wide, the independent reader {width} ns"
    );
    let out = tool(&lab.client_bin)
        .args(["now", "--path", &shown])
        .output()
        .expect("now runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("earliest  ")
            && text.contains("latest    ")
            && text.contains("status    synchronized"),
        "{text}"
    );
}

#[test]
fn a_missing_or_foreign_segment_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foreign = dir.path().join("not-a-segment");
    std::fs::write(&foreign, [7u8; 80]).expect("write");
    let bin = LoopbackLab::new().client_bin;
    for (path, words) in [
        (dir.path().join("missing"), "No such file"),
        (foreign, "not a ClockBound v2 segment: wrong magic number"),
    ] {
        let out = tool(&bin)
            .arg("now")
            .arg("--path")
            .arg(&path)
            .output()
            .expect("now runs");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&*path.to_string_lossy()) && err.contains(words),
            "{err}"
        );
    }
}
