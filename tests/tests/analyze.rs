#![cfg(test)]
//! `mcast-client analyze` on the reference captures in
//! `tests/data/vectors` (what each holds is in its README and
//! `manifest.json`), on pcapng copies of them, and on captures a
//! namespace lab makes of a running `mcast-server` (Ethernet on the
//! bridge, Linux cooked SLL and SLL2 from `tcpdump -i any`).
//!
//! Expected values come from the manifest or from an independent reading
//! of the same file (`netns::read_pcap_udp`, the lab harness's own pcap
//! reader, and `Datagram::parse`), never from the analyzer itself.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mcast_diag::analyze::{self, Settings};
use mcast_keys::KeyStore;
use mcast_lab::bins;
use mcast_lab::lab::tool_bin;
use mcast_lab::netns::{self, Host, Lan, UdpDatagram, read_pcap_udp};
use mcast_lab::probe::{ProbeArgs, ProbeReport};
use mcast_proto::Datagram;
use mcast_tests::pcapng::{self, PcapngLayout};
use mcast_tests::vectors;
use serde_json::Value;

const NTP_PORT: u16 = 123;
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x101);

fn client_bin() -> PathBuf {
    bins::bin_path("mcast-client").expect("build mcast-client")
}

fn vector(name: &str) -> PathBuf {
    vectors::dir().join(name)
}

/// Runs `mcast-client analyze ARGS`.
fn run_analyze<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(client_bin())
        .arg("analyze")
        .args(args)
        .output()
        .expect("run mcast-client analyze")
}

/// `mcast-client analyze --json [--keys ntp.keys] FILE`, parsed; the run
/// must succeed.
fn analyze_json(file: &Path, with_keys: bool) -> Value {
    let mut args: Vec<&OsStr> = vec!["--json".as_ref()];
    let keys = vectors::keys_file();
    if with_keys {
        args.extend(["--keys".as_ref(), keys.as_os_str()]);
    }
    args.push(file.as_os_str());
    let out = run_analyze(&args);
    assert!(
        out.status.success(),
        "mcast-client analyze {} failed ({}): {}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "analyze --json output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn manifest_value() -> Value {
    let text = std::fs::read_to_string(vector("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// The NTP-port datagrams of a capture, read by the lab harness's reader.
fn ntp_datagrams(file: &Path) -> Vec<UdpDatagram> {
    read_pcap_udp(file)
        .unwrap_or_else(|e| panic!("independent read of {}: {e}", file.display()))
        .into_iter()
        .filter(|d| d.src.port() == NTP_PORT || d.dst.port() == NTP_PORT)
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {v}"))
}

/// The pair `src -> dst` of a JSON report.
fn pair<'a>(report: &'a Value, src: &str, dst: &str) -> &'a Value {
    report["pairs"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| str_of(&p["source"]) == src && str_of(&p["destination"]) == dst)
        })
        .unwrap_or_else(|| panic!("no pair {src} -> {dst} in {:#}", report["pairs"]))
}

/// The packets of one mode in a `modes` list.
fn mode_packets(modes: &Value, mode: u64) -> u64 {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["mode"] == mode)
        .map_or(0, |m| u64_of(&m["packets"]))
}

/// The MAC row of `source` and `key`.
fn mac_row<'a>(report: &'a Value, source: &str, key: u64) -> &'a Value {
    report["mac"]["rows"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| str_of(&r["source"]) == source && r["key_id"] == key)
        })
        .unwrap_or_else(|| panic!("no MAC row for {source} key {key}: {:#}", report["mac"]))
}

fn failures(row: &Value) -> u64 {
    ["bad_mac", "bad_length", "unknown_key", "source_not_allowed"]
        .iter()
        .map(|k| u64_of(&row[*k]))
        .sum()
}

// ---------------------------------------------------------------------------
// Reference captures.
// ---------------------------------------------------------------------------

#[test]
fn calib_fail_shows_the_multicast_client_stuck_polling_by_unicast() {
    let manifest = manifest_value();
    let fail = &manifest["calibration_exchange"]["failure_variant"];
    assert_eq!(str_of(&fail["pcap"]), "calib-fail.pcap");
    let times: Vec<f64> = fail["request_times_rel_first_broadcast_s"]
        .as_array()
        .expect("request times")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let expected_interval = gaps.iter().sum::<f64>() / gaps.len() as f64;

    let file = vector("calib-fail.pcap");
    let r = analyze_json(&file, true);
    assert_eq!(r["broadcasts_seen"], true);
    let pollers = r["unicast_pollers"].as_array().expect("pollers list");
    assert_eq!(
        pollers.len(),
        1,
        "exactly the stuck client is flagged: {pollers:#?}"
    );
    let p = &pollers[0];
    assert_eq!(str_of(&p["client"]), "198.18.0.2", "client h2 is flagged");
    assert_eq!(str_of(&p["server"]), "198.18.0.1", "for server h1");
    assert_eq!(p["requests"], fail["mode3_requests"]);
    assert_eq!(p["replies"], fail["mode4_replies"]);
    assert_eq!(
        p["poll_interval"]["log2"], 3,
        "ntpd polls every 2^ppoll = 8 s: {p:#}"
    );
    let mean = p["poll_interval"]["mean_s"].as_f64().expect("mean");
    assert!(
        (mean - expected_interval).abs() < 0.01,
        "polling interval {mean} s, the manifest's requests are {expected_interval} s apart"
    );
    // Every request is MAC'd with the broadcast's key, and verifies.
    let key = u64_of(&fail["request_keyids"][0]);
    let row = mac_row(&r, "198.18.0.2", key);
    assert_eq!(row["ok"], fail["mode3_requests"], "{row:#}");
    assert_eq!(failures(row), 0, "{row:#}");

    // The text report says it too, in its own section.
    let out = run_analyze(&[file.as_os_str()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let section = text
        .split("multicast clients polling by unicast\n")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_else(|| panic!("no poller section in:\n{text}"));
    let line = section
        .lines()
        .find(|l| l.contains("198.18.0.2") && l.contains("198.18.0.1"))
        .unwrap_or_else(|| panic!("h2 -> h1 not listed in:\n{section}"));
    assert!(line.contains("(2^3)"), "interval shown as 2^3: {line}");
}

#[test]
fn calibration_volleys_are_not_flagged() {
    for name in ["calib-md5.pcap", "mcast-auth.pcap", "calib-bdelay.pcap"] {
        let file = vector(name);
        let r = analyze_json(&file, false);
        assert_eq!(r["broadcasts_seen"], true, "{name} holds broadcasts");
        assert_eq!(
            r["unicast_pollers"].as_array().map(Vec::len),
            Some(0),
            "{name}: a calibration volley is not polling: {:#}",
            r["unicast_pollers"]
        );
    }
    // calib-md5: the volley's requests show in the pair, 2 s apart.
    let file = vector("calib-md5.pcap");
    let r = analyze_json(&file, false);
    let requests = ntp_datagrams(&file)
        .iter()
        .filter(|d| {
            d.src.ip() == IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2))
                && Datagram::parse(&d.payload).is_ok_and(|p| p.header.mode.to_bits() == 3)
        })
        .count() as u64;
    let p = pair(&r, "198.18.0.2", "198.18.0.1");
    assert_eq!(mode_packets(&p["modes"], 3), requests);
    let buckets: Vec<(i64, u64)> = p["intervals"]
        .as_array()
        .expect("intervals")
        .iter()
        .map(|b| (b["log2"].as_i64().unwrap_or(99), u64_of(&b["count"])))
        .collect();
    assert_eq!(buckets, vec![(1, requests - 1)], "requests every 2 s");
}

#[test]
fn kod_capture_lists_every_kod_and_the_crypto_nak() {
    let file = vector("kod.pcap");
    // Independently: KoDs per (from, to, code) and crypto-NAKs.
    let mut kods: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    let mut naks = 0u64;
    for d in ntp_datagrams(&file) {
        let Ok(p) = Datagram::parse(&d.payload) else {
            continue;
        };
        if let Some(code) = p.header.kiss_code() {
            let e = kods
                .entry((
                    d.src.ip().to_string(),
                    d.dst.ip().to_string(),
                    code.to_string(),
                ))
                .or_default();
            e.0 += 1;
            e.1 += u64::from(p.mac.as_ref().is_some_and(|m| !m.is_crypto_nak()));
        }
        naks += u64::from(p.is_crypto_nak());
    }
    // The manifest's KoD vectors come from this capture: a RATE without
    // and one with a MAC.
    let manifest = vectors::manifest().expect("manifest");
    let with_code: Vec<_> = manifest
        .vectors
        .iter()
        .filter(|v| v.expected.kiss_code.is_some())
        .collect();
    assert!(with_code.len() >= 2, "the manifest lists KoD vectors");
    let r = analyze_json(&file, true);
    let got: BTreeMap<(String, String, String), (u64, u64)> = r["kods"]
        .as_array()
        .expect("kods")
        .iter()
        .map(|k| {
            (
                (
                    str_of(&k["from"]).to_owned(),
                    str_of(&k["to"]).to_owned(),
                    str_of(&k["code"]).to_owned(),
                ),
                (u64_of(&k["packets"]), u64_of(&k["with_mac"])),
            )
        })
        .collect();
    assert_eq!(
        got, kods,
        "KoDs as listed by the analyzer vs an independent count"
    );
    for v in &with_code {
        let from = v.src.rsplit_once(':').map(|(a, _)| a).unwrap_or_default();
        let to = v.dst.rsplit_once(':').map(|(a, _)| a).unwrap_or_default();
        let code = v.expected.kiss_code.clone().unwrap_or_default();
        assert!(
            got.contains_key(&(from.to_owned(), to.to_owned(), code.clone())),
            "vector {} ({code} from {from} to {to}) is in the KoD list {got:?}",
            v.name
        );
    }
    assert!(
        got.values().any(|&(_, with_mac)| with_mac > 0),
        "the authenticated KoD is counted as carrying a MAC"
    );
    let nak_total: u64 = r["crypto_naks"]
        .as_array()
        .expect("crypto_naks")
        .iter()
        .map(|n| u64_of(&n["packets"]))
        .sum();
    assert_eq!(nak_total, naks);
    assert!(naks >= 1, "kod.pcap holds a crypto-NAK");
    assert_eq!(r["broadcasts_seen"], false);
}

#[test]
fn mcast_auth_macs_verify_with_each_servers_key() {
    let file = vector("mcast-auth.pcap");
    let keys = KeyStore::load(&vectors::keys_file()).expect("keys");
    // Independently: packets per (source, key id).
    let mut expected: BTreeMap<(String, u64), u64> = BTreeMap::new();
    for d in ntp_datagrams(&file) {
        if let Ok(p) = Datagram::parse(&d.payload)
            && let Some(m) = &p.mac
        {
            *expected
                .entry((d.src.ip().to_string(), u64::from(m.key_id)))
                .or_default() += 1;
        }
    }
    assert!(expected.len() >= 18, "9 servers and a client using 9 keys");
    let r = analyze_json(&file, true);
    assert_eq!(
        r["mac"]["rows"].as_array().map(Vec::len),
        Some(expected.len()),
        "one row per source and key: {:#}",
        r["mac"]
    );
    for ((source, key), count) in &expected {
        let row = mac_row(&r, source, *key);
        assert_eq!(
            u64_of(&row["ok"]),
            *count,
            "{source} key {key}: every MAC verifies"
        );
        assert_eq!(failures(row), 0, "{row:#}");
        // Session A: server hN uses key N.
        if source != "198.18.0.10" {
            assert_eq!(source.rsplit('.').next(), Some(key.to_string().as_str()));
        }
    }
    assert!(keys.len() >= 9);
    // The client h10 sent requests only, the servers broadcasts and replies.
    let h10 = r["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["address"] == "198.18.0.10"))
        .expect("h10 listed");
    assert_eq!(
        u64_of(&h10["sent_packets"]),
        mode_packets(&h10["modes_sent"], 3)
    );
    assert_eq!(
        h10["keys_used"].as_array().map(Vec::len),
        Some(9),
        "h10 used the 9 servers' keys"
    );
}

/// Every capture in the vectors folder reads without a warning, and its
/// totals agree with an independent reader; each single-packet capture
/// gets the mode and MAC verdict its manifest entry states.
#[test]
fn every_vector_capture_agrees_with_the_manifest_and_an_independent_reader() {
    let keys = KeyStore::load(&vectors::keys_file()).expect("keys");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [vectors::dir(), vectors::dir().join("pkt")] {
        for entry in std::fs::read_dir(&dir).expect("list vectors") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "pcap") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 50, "the vectors hold 50+ captures: {files:?}");
    for file in &files {
        let r = analyze::analyze_file(file, Some(&keys), Settings::default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(r.capture.stopped_early, None, "{}", file.display());
        let datagrams = ntp_datagrams(file);
        assert_eq!(
            r.counts.ntp_packets,
            datagrams.len() as u64,
            "{}: NTP packets",
            file.display()
        );
        let malformed = datagrams
            .iter()
            .filter(|d| Datagram::parse(&d.payload).is_err())
            .count() as u64;
        assert_eq!(r.counts.malformed, malformed, "{}", file.display());
    }

    let manifest = vectors::manifest().expect("manifest");
    let mut checked = 0;
    for v in &manifest.vectors {
        let file = vector(&format!("pkt/{}.pcap", v.name));
        if !file.is_file() {
            continue;
        }
        let r = analyze::analyze_file(&file, Some(&keys), Settings::default())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let json = serde_json::to_value(&r).expect("report to JSON");
        assert_eq!(
            mode_packets(&json["modes"], u64::from(v.expected.mode)),
            1,
            "{}: one packet of mode {}",
            v.name,
            v.expected.mode
        );
        let rows = &r.mac.as_ref().expect("keys given").rows;
        let one = |f: fn(&analyze::report::MacRow) -> u64| rows.iter().map(f).sum::<u64>();
        let (ok, bad, unknown) = (one(|r| r.ok), one(|r| r.bad_mac), one(|r| r.unknown_key));
        match v.expected_verdict.as_str() {
            "valid" => assert_eq!((ok, bad, unknown), (1, 0, 0), "{}", v.name),
            "invalid-mac" => assert_eq!((ok, bad), (0, 1), "{}", v.name),
            "unknown-key" => assert_eq!((ok, unknown), (0, 1), "{}", v.name),
            "no-mac" => assert!(rows.is_empty(), "{}: {rows:?}", v.name),
            "crypto-nak" => {
                assert!(rows.is_empty(), "{}", v.name);
                assert_eq!(r.crypto_naks.len(), 1, "{}", v.name);
            }
            other => panic!("{}: unknown verdict {other}", v.name),
        }
        let kod_codes: Vec<&str> = r.kods.iter().map(|k| k.code.as_str()).collect();
        assert_eq!(
            kod_codes,
            v.expected
                .kiss_code
                .as_deref()
                .into_iter()
                .collect::<Vec<_>>(),
            "{}",
            v.name
        );
        checked += 1;
    }
    assert!(
        checked >= 40,
        "only {checked} single-packet captures checked"
    );
}

/// The same frames in pcapng (little-endian microseconds, big-endian
/// nanoseconds) give the same report as the classic pcap.
#[test]
fn pcapng_copies_give_the_same_report() {
    let keys = KeyStore::load(&vectors::keys_file()).expect("keys");
    let work = tempfile::tempdir().expect("temp dir");
    for name in ["mcast-auth.pcap", "kod.pcap", "calib-fail.pcap"] {
        let file = vector(name);
        let bytes = std::fs::read(&file).expect("read pcap");
        let (link_type, frames) = pcapng::classic_frames(&bytes).expect("classic pcap");
        let classic =
            analyze::analyze_file(&file, Some(&keys), Settings::default()).expect("analyze pcap");
        for layout in [
            PcapngLayout::default(),
            PcapngLayout {
                big_endian: true,
                nanos: true,
            },
        ] {
            let ng = work.path().join(format!("{name}.{layout:?}.pcapng"));
            std::fs::write(&ng, pcapng::write_pcapng(link_type, &frames, layout))
                .expect("write pcapng");
            let report = analyze::analyze_file(&ng, Some(&keys), Settings::default())
                .unwrap_or_else(|e| panic!("{}: {e}", ng.display()));
            assert_eq!(report.capture.format, Some(analyze::Format::Pcapng));
            assert_eq!(report.capture.stopped_early, None);
            let strip = |r: &analyze::Report| {
                let mut v = serde_json::to_value(r).expect("to JSON");
                v["capture"]["file"] = Value::Null;
                v["capture"]["format"] = Value::Null;
                v
            };
            assert_eq!(
                strip(&report),
                strip(&classic),
                "{name} as pcapng ({layout:?}) reads the same as the pcap"
            );
        }
    }
    // And through the command line.
    let bytes = std::fs::read(vector("calib-fail.pcap")).expect("read");
    let (lt, frames) = pcapng::classic_frames(&bytes).expect("classic");
    let ng = work.path().join("calib-fail.pcapng");
    std::fs::write(
        &ng,
        pcapng::write_pcapng(lt, &frames, PcapngLayout::default()),
    )
    .expect("w");
    let r = analyze_json(&ng, false);
    assert_eq!(r["capture"]["format"], "pcapng");
    assert_eq!(str_of(&r["unicast_pollers"][0]["client"]), "198.18.0.2");
}

#[test]
fn a_file_that_is_not_a_capture_exits_2_naming_it() {
    let work = tempfile::tempdir().expect("temp dir");
    let empty = work.path().join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    let missing = work.path().join("missing.pcap");
    for (file, why) in [
        (vector("manifest.json"), "not a pcap or pcapng capture"),
        (vector("ntp.keys"), "not a pcap or pcapng capture"),
        (empty.clone(), "empty"),
        (missing.clone(), "No such file"),
    ] {
        let out = run_analyze(&[file.as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(why),
            "the error names {} and says {why:?}: {stderr}",
            file.display()
        );
        assert!(out.stdout.is_empty(), "nothing on stdout");
    }
    // A bad keys file: exit 2, file:line.
    let bad_keys = work.path().join("bad.keys");
    std::fs::write(&bad_keys, "1 MD5\n").expect("write");
    let out = run_analyze(&[
        "--keys".as_ref(),
        bad_keys.as_os_str(),
        vector("kod.pcap").as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.keys:1"), "{stderr}");
    // A capture cut short (tcpdump killed mid-write): read up to the cut,
    // exit 0, with a warning.
    let bytes = std::fs::read(vector("mcast-auth.pcap")).expect("read");
    let cut = work.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let out = run_analyze(&["--json".as_ref(), cut.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("read stopped early"));
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let whole = ntp_datagrams(&vector("mcast-auth.pcap")).len() as u64;
    let got = u64_of(&r["counts"]["ntp_packets"]);
    assert!(
        got > 0 && got < whole,
        "{got} of {whole} packets before the cut"
    );
    assert!(r["capture"]["stopped_early"].is_string());
}

#[test]
fn help_says_what_it_prints_with_an_example() {
    let out = run_analyze(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "pcapng",
        "multicast clients polling by unicast",
        "Kiss-o'-Death",
        "--keys",
        "--json",
        "--port",
        "Examples:",
        "mcast-client analyze ntp.pcap",
        "Exit status",
    ] {
        assert!(help.contains(needle), "--help mentions {needle:?}:\n{help}");
    }
}

// ---------------------------------------------------------------------------
// Captures made by a namespace lab.
// ---------------------------------------------------------------------------

fn lab_required(test: &str) {
    if let Err(e) = netns::require_root() {
        panic!("{test} needs the network lab: {e}");
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + timeout;
    loop {
        let Some(state) = done() else { return };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_server(h1: &Host, work: &Path, poll: u8) -> (netns::NsChild, PathBuf) {
    let config = work.join("server.toml");
    let log = work.join("server.log");
    let text = format!(
        "keys = {keys:?}\nport = {NTP_PORT}\ncontrol-socket = {sock:?}\nlab-allow-fast-poll = true\n\
         [[destination]]\naddress = \"{GROUP}\"\ninterface = \"eth0\"\nkey = 3\npoll = {poll}\n\
         [[destination]]\naddress = \"{GROUP6}\"\ninterface = \"eth0\"\nkey = 3\npoll = {poll}\n\
         [time-source]\nkind = \"local\"\nstratum = 2\n",
        keys = vectors::keys_file(),
        sock = work.join("server.sock"),
    );
    std::fs::write(&config, &text).expect("write server config");
    let bin = bins::bin_path("mcast-server").expect("build mcast-server");
    let child = h1
        .spawn(
            &bin.to_string_lossy(),
            &["run".as_ref(), "-c".as_ref(), config.as_os_str()],
            &log,
        )
        .expect("start mcast-server");
    wait_for("mcast-server to run", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(child.is_running(), "mcast-server exited:\n{text}");
        (!text.contains("mcast-server running")).then(|| format!("log:\n{text}"))
    });
    (child, log)
}

/// A server broadcasting every 2 s to an IPv4 and an IPv6 group and a
/// host polling it by unicast every second, captured on the bridge
/// (Ethernet) and in the polling host with `tcpdump -i any` (SLL2, and
/// SLL with `-y LINUX_SLL`): each capture's report shows the broadcasts'
/// 2^1 s interval and poll field, flags the poller with its 2^0 s interval,
/// matches the probe's view of replies and KoDs, and verifies every MAC.
#[test]
fn lab_captures_show_the_broadcast_interval_and_flag_the_unicast_poller() {
    lab_required("lab_captures_show_the_broadcast_interval_and_flag_the_unicast_poller");
    const POLL: u8 = 1;
    const REQUESTS: u32 = 12;
    const MIN_BROADCASTS: usize = 10;
    let work = tempfile::tempdir().expect("temp dir");
    let lan = Lan::new(2).expect("build a 2-host LAN");
    let (h1, h2) = (lan.host(1), lan.host(2));
    let captures = [
        (
            "Ethernet",
            lan.capture_switch(NTP_PORT, &work.path().join("br0.pcap"))
                .expect("tcpdump on br0"),
        ),
        (
            "Linux cooked v2 (SLL2)",
            h2.capture_any(NTP_PORT, &work.path().join("any.pcap"), None)
                .expect("tcpdump -i any in h2"),
        ),
        (
            "Linux cooked (SLL)",
            h2.capture_any(
                NTP_PORT,
                &work.path().join("any-sll.pcap"),
                Some("LINUX_SLL"),
            )
            .expect("tcpdump -i any -y LINUX_SLL in h2"),
        ),
    ];
    let (server, server_log) = start_server(&h1, work.path(), POLL);

    let probe_args = ProbeArgs {
        target: SocketAddr::new(IpAddr::V4(h1.addr()), NTP_PORT),
        keys: vectors::keys_file(),
        key: Some(3),
        sources: vec![IpAddr::V4(h2.addr())],
        source_port: 0,
        count: REQUESTS,
        spacing: Duration::from_secs(1),
        wait: Duration::from_secs(1),
        poll: 0,
    };
    let out = h2
        .exec(&tool_bin("ntp-probe"), &probe_args.to_args())
        .expect("run ntp-probe");
    assert!(
        out.status.success(),
        "ntp-probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe: ProbeReport = serde_json::from_slice(&out.stdout).expect("probe report");
    let source = &probe.sources[0];
    assert_eq!(source.sent.len(), REQUESTS as usize, "{:?}", source.errors);

    // Enough broadcasts in every capture (tcpdump -U writes each packet).
    let bcasts = |file: &Path| {
        read_pcap_udp(file)
            .unwrap_or_default()
            .iter()
            .filter(|d| d.dst.ip() == IpAddr::V4(GROUP))
            .count()
    };
    for (_, c) in &captures {
        wait_for("broadcasts in the capture", Duration::from_secs(40), || {
            let n = bcasts(c.path());
            (n < MIN_BROADCASTS).then(|| format!("{} has {n} broadcasts", c.path().display()))
        });
    }
    server.stop().expect("stop mcast-server");
    let server_text = std::fs::read_to_string(&server_log).unwrap_or_default();

    let replies = source.replies.iter().filter(|r| r.mode == 4).count() as u64;
    let kods = source.replies.iter().filter(|r| r.kiss.is_some()).count() as u64;
    let (h1a, h2a) = (h1.addr().to_string(), h2.addr().to_string());
    let mut per_capture: Vec<(u64, u64)> = Vec::new();
    for (link, c) in captures {
        let file = c.stop().expect("stop tcpdump");
        let r = analyze_json(&file, true);
        let ctx = format!("{} ({link})", file.display());
        assert_eq!(
            r["capture"]["link_types"],
            serde_json::json!([link]),
            "{ctx}"
        );
        let independent = ntp_datagrams(&file);
        assert_eq!(
            u64_of(&r["counts"]["ntp_packets"]),
            independent.len() as u64,
            "{ctx}: packet count"
        );
        assert_eq!(u64_of(&r["counts"]["malformed"]), 0, "{ctx}");

        // The broadcasts: every interval in bucket 2^POLL, poll field POLL.
        let b = pair(&r, &h1a, &GROUP.to_string());
        let n = mode_packets(&b["modes"], 5);
        assert_eq!(n, bcasts(&file) as u64, "{ctx}: broadcasts");
        assert_eq!(
            b["poll_field"],
            serde_json::json!([{"log2": POLL, "packets": n}]),
            "{ctx}"
        );
        let buckets = b["intervals"].as_array().expect("intervals");
        assert_eq!(
            buckets
                .iter()
                .map(|x| (&x["log2"], u64_of(&x["count"])))
                .collect::<Vec<_>>(),
            vec![(&Value::from(POLL), n - 1)],
            "{ctx}: broadcasts every 2^{POLL} s: {buckets:#?}\nserver log:\n{server_text}"
        );
        let six = r["pairs"]
            .as_array()
            .expect("pairs")
            .iter()
            .find(|p| p["destination"] == GROUP6.to_string())
            .unwrap_or_else(|| panic!("{ctx}: no IPv6 broadcasts to {GROUP6}"));
        assert_eq!(six["intervals"][0]["log2"], POLL, "{ctx}: {six:#}");

        // The unicast poller h2 -> h1, every second.
        let pollers = r["unicast_pollers"].as_array().expect("pollers");
        assert_eq!(pollers.len(), 1, "{ctx}: {pollers:#?}");
        let p = &pollers[0];
        assert_eq!(
            (str_of(&p["client"]), str_of(&p["server"])),
            (h2a.as_str(), h1a.as_str())
        );
        assert_eq!(u64_of(&p["requests"]), u64::from(REQUESTS), "{ctx}");
        assert_eq!(
            u64_of(&p["replies"]),
            replies,
            "{ctx}: replies as the probe got them"
        );
        assert_eq!(
            p["poll_interval"]["log2"], 0,
            "{ctx}: polls every 2^0 s: {p:#}"
        );

        // KoDs, as the probe saw them.
        let kod_total: u64 = r["kods"]
            .as_array()
            .expect("kods")
            .iter()
            .map(|k| {
                assert_eq!(str_of(&k["code"]), "RATE", "{ctx}");
                assert_eq!(
                    (str_of(&k["from"]), str_of(&k["to"])),
                    (h1a.as_str(), h2a.as_str())
                );
                u64_of(&k["packets"])
            })
            .sum();
        assert_eq!(kod_total, kods, "{ctx}: KoDs");

        // MACs: everything h1 and h2 sent is signed with key 3 and verifies.
        for (host, sent) in [(&h1a, None), (&h2a, Some(u64::from(REQUESTS)))] {
            let row = mac_row(&r, host, 3);
            assert_eq!(failures(row), 0, "{ctx}: {row:#}");
            let h = r["hosts"]
                .as_array()
                .and_then(|hs| hs.iter().find(|x| str_of(&x["address"]) == host.as_str()))
                .expect("host listed");
            assert_eq!(
                u64_of(&row["ok"]),
                u64_of(&h["sent_packets"]),
                "{ctx}: {host}"
            );
            if let Some(s) = sent {
                assert_eq!(u64_of(&row["ok"]), s, "{ctx}");
            }
        }
        per_capture.push((
            u64_of(&p["requests"]),
            u64_of(&pair(&r, &h1a, &h2a)["packets"]),
        ));
    }
    // For the log: the bridge capture as a person reads it.
    let out = run_analyze(&[work.path().join("br0.pcap")]);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("mcast-client analyze br0.pcap:\n{text}");
    assert!(
        text.contains(&format!("2^{POLL}:")),
        "the text shows the 2^{POLL} s interval bucket:\n{text}"
    );
    // The three views agree on the unicast exchange.
    assert!(
        per_capture.windows(2).all(|w| w[0] == w[1]),
        "bridge and host captures agree: {per_capture:?}"
    );
}
