//! Steps the lab tests of our daemons share: waiting for a condition with
//! a deadline, running `mcast-server` in a [`Lan`](crate::netns::Lan) host
//! and asking it for its status, and reading captured NTP packets.
//!
//! These helpers run inside tests: a step that cannot be done fails the
//! calling test with a message saying what was expected.
#![allow(clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcast_keys::{KeyStore, PacketAuth, packet};
use mcast_proto::{Datagram, Mode};
use mcast_server::daemon::Status;

use crate::netns::{self, Host, NsChild, UdpDatagram};
use crate::{bins, vectors};

/// The NTP port our lab servers use.
pub const NTP_PORT: u16 = 123;

/// How long a started server may take to log "mcast-server running".
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Fails `test` loudly when the network lab cannot run here (never skips).
pub fn lab_required(test: &str) {
    if let Err(e) = netns::require_root() {
        panic!("{test} needs the network lab: {e}");
    }
}

/// The `mcast-server` binary, built once per test process.
pub fn server_bin() -> PathBuf {
    bins::bin_path("mcast-server").expect("build mcast-server")
}

/// Wall-clock time since the Unix epoch (the time base of captures).
pub fn epoch_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
}

/// Polls `check` every `every` until it gives a value or `timeout` passes;
/// then panics with `what` and `diag()`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
    diag: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            diag()
        );
        std::thread::sleep(every);
    }
}

/// One of our servers, running in a lab host.
pub struct OurServer {
    host: Host,
    child: NsChild,
    socket: PathBuf,
    log: PathBuf,
}

impl OurServer {
    /// Writes `<name>.toml` (the vector keys, port 123, a control socket in
    /// `work`, then `body`) and starts `mcast-server run` in `host`;
    /// returns once it logged that it runs.
    pub fn start(host: &Host, work: &Path, name: &str, body: &str) -> OurServer {
        let config = work.join(format!("{name}.toml"));
        let socket = work.join(format!("{name}.sock"));
        let log = work.join(format!("{name}.log"));
        let text = format!(
            "keys = {keys:?}\nport = {NTP_PORT}\ncontrol-socket = {socket:?}\n{body}",
            keys = vectors::keys_file()
        );
        std::fs::write(&config, &text).expect("write server config");
        let bin = server_bin();
        let args = ["run".as_ref(), "-c".as_ref(), config.as_os_str()];
        let child = host
            .spawn(&bin.to_string_lossy(), &args, &log)
            .unwrap_or_else(|e| panic!("start mcast-server in {}: {e}", host.name()));
        let server = OurServer {
            host: host.clone(),
            child,
            socket,
            log,
        };
        wait_for(
            &format!(
                "mcast-server in {} to log \"mcast-server running\"",
                host.name()
            ),
            START_TIMEOUT,
            Duration::from_millis(50),
            || {
                assert!(
                    server.child.is_running(),
                    "mcast-server in {} exited at start ({:?}) with config\n{text}\nlog:\n{}",
                    host.name(),
                    server.child.exit_status(),
                    server.log()
                );
                server.log().contains("mcast-server running").then_some(())
            },
            || server.log(),
        );
        server
    }

    /// Its log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `mcast-server status --json --socket PATH` (a Unix socket: reachable
    /// from outside the network namespace).
    pub fn status(&self) -> Status {
        let out = self.status_command(&["--json"]);
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "status --json is not a Status ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// `mcast-server status --socket PATH`: what an operator reads.
    pub fn status_text(&self) -> String {
        String::from_utf8_lossy(&self.status_command(&[])).into_owned()
    }

    fn status_command(&self, extra: &[&str]) -> Vec<u8> {
        let out = Command::new(server_bin())
            .arg("status")
            .args(extra)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .expect("run mcast-server status");
        assert!(
            out.status.success(),
            "mcast-server status for {} failed: {}\nserver log:\n{}",
            self.host.name(),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }
}

/// `[[destination]]` text: `address` on `eth0`, signed with `key`.
pub fn destination(address: &str, key: u16, poll: u8, extra: &str) -> String {
    format!(
        "[[destination]]\naddress = \"{address}\"\ninterface = \"eth0\"\nkey = {key}\n\
         poll = {poll}\n{extra}"
    )
}

/// A captured NTP packet, parsed.
pub struct Ntp<'a> {
    /// The UDP datagram as captured.
    pub udp: &'a UdpDatagram,
    /// Its NTP content.
    pub d: Datagram,
}

impl Ntp<'_> {
    /// The packet's mode.
    pub fn mode(&self) -> Mode {
        self.d.header.mode
    }

    /// The key id of its MAC, if it has one.
    pub fn key_id(&self) -> Option<u32> {
        self.d.mac.as_ref().map(|m| m.key_id)
    }

    /// Its MAC checked against `keys`.
    pub fn auth(&self, keys: &KeyStore) -> PacketAuth {
        packet::authenticate(keys, &self.udp.payload, &self.d, Some(self.udp.src.ip()))
    }
}

/// The captured datagrams that parse as NTP.
pub fn parse_all(packets: &[UdpDatagram]) -> Vec<Ntp<'_>> {
    packets
        .iter()
        .filter_map(|udp| Datagram::parse(&udp.payload).ok().map(|d| Ntp { udp, d }))
        .collect()
}
