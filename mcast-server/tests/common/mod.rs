//! Helpers shared by the loopback tests: start `mcast-server run` without
//! `CAP_SYS_TIME`, pick free ports, listen to the group on lo, ask for the
//! status. Traffic stays on 127.0.0.1.
#![cfg(test)]
#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);

pub fn keys_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/vectors/ntp.keys")
}

pub struct Server {
    pub child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server and waits for its "running" log line.
pub fn start(config: &Path) -> Server {
    let mut child = Command::new("setpriv")
        .args(["--bounding-set=-sys_time", "--inh-caps=-sys_time"])
        .arg(env!("CARGO_BIN_EXE_mcast-server"))
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv and mcast-server start");
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("mcast-server running") => break,
            Some(Ok(l)) => seen.push(l),
            other => panic!(
                "server did not start ({other:?}); it said:\n{}",
                seen.join("\n")
            ),
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child }
}

pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A socket that receives the group's packets on `port` over lo.
pub fn group_listener(port: u16) -> UdpSocket {
    let listener = UdpSocket::bind((GROUP, port)).expect("bind listener to the group");
    listener
        .join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST)
        .expect("join 224.0.1.1 on lo");
    listener
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    listener
}

/// `mcast-server status [ARGS] --socket SOCKET`: its standard output.
pub fn status_output(socket: &Path, args: &[&str]) -> String {
    let status = Command::new(env!("CARGO_BIN_EXE_mcast-server"))
        .arg("status")
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .expect("status runs");
    assert!(status.status.success(), "{status:?}");
    String::from_utf8_lossy(&status.stdout).into_owned()
}

/// `mcast-server status --json`, parsed.
pub fn status_json(socket: &Path) -> serde_json::Value {
    serde_json::from_str(&status_output(socket, &["--json"])).expect("status is JSON")
}
