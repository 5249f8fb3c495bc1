//! `mcast-server` and `mcast-client` together on loopback, as the quick
//! start runs them: the client calibrates once, tracks from broadcasts,
//! selects the server, and `status` and `check` say so. Both processes run
//! without CAP_SYS_TIME; the client is in monitor mode. Traffic stays on lo.
#![cfg(test)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcast_tests::{bins, vectors};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(bin: &Path, config: &Path, ready: &str) -> Daemon {
    let mut child = Command::new("setpriv")
        .args(["--bounding-set=-sys_time", "--inh-caps=-sys_time"])
        .arg(bin)
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv starts the daemon");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains(ready) => break,
            Some(Ok(l)) => seen.push(l),
            other => panic!(
                "{} did not start ({other:?}):\n{}",
                bin.display(),
                seen.join("\n")
            ),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Daemon(child)
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn status(client: &Path, socket: &Path) -> serde_json::Value {
    let out = Command::new(client)
        .args(["status", "--json", "--socket"])
        .arg(socket)
        .output()
        .expect("status runs");
    assert!(out.status.success(), "status failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("status prints JSON")
}

#[test]
fn client_calibrates_once_then_tracks_and_selects_the_server() {
    let server_bin = bins::bin_path("mcast-server").expect("mcast-server builds");
    let client_bin = bins::bin_path("mcast-client").expect("mcast-client builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let keys: PathBuf = vectors::keys_file();
    let server_conf = dir.path().join("server.toml");
    let client_conf = dir.path().join("client.toml");
    let server_sock = dir.path().join("server.sock");
    let client_sock = dir.path().join("client.sock");
    std::fs::write(
        &server_conf,
        format!(
            "keys = {keys:?}\nport = {port}\ncontrol-socket = {server_sock:?}\nlab-allow-fast-poll = true\n\
             [[destination]]\naddress = \"224.0.1.1\"\ninterface = \"lo\"\nkey = 3\npoll = 1\n\
             [time-source]\nkind = \"local\"\nstratum = 3\n"
        ),
    )
    .expect("server config");
    std::fs::write(
        &client_conf,
        format!(
            "keys = {keys:?}\nport = {port}\ncontrol-socket = {client_sock:?}\n\
             [[listen]]\ngroup = \"224.0.1.1\"\ninterface = \"lo\"\n\
             [[server]]\naddress = \"127.0.0.1\"\nkey = 3\nname = \"lo-server\"\n\
             [calibration]\nstart-delay-max-s = 0.5\nrequests = 4\n"
        ),
    )
    .expect("client config");

    let _server = start(&server_bin, &server_conf, "mcast-server running");
    let _client = start(&client_bin, &client_conf, "mcast-client running");

    // Wait (bounded) until the server is tracked and selected.
    let deadline = Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = status(&client_bin, &client_sock);
        let v = &s["servers"][0];
        if v["t"] == "b" && v["tally"] == "*" && v["reach"].as_u64().unwrap_or(0) >= 3 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not tracking and selected within 60 s:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
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
        last = status(&client_bin, &client_sock);
    }
    assert_eq!(
        last["servers"][0]["unicast_sent"], 4,
        "no unicast after calibration: {last:#}"
    );
    assert!(
        last["servers"][0]["reach"].as_u64().unwrap_or(0) >= 7,
        "{last:#}"
    );

    let check = Command::new(&client_bin)
        .args(["check", "-w", "0.005", "-c", "0.05", "--socket"])
        .arg(&client_sock)
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
    let out = Command::new(&client_bin)
        .args(["check", "-w", "0.005", "-c", "0.05", "--socket"])
        .arg(dir.path().join("absent.sock"))
        .output()
        .expect("check runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("MCAST-NTP UNKNOWN"));
}
