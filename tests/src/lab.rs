//! What the server lab tests (`tests/tests/server_*.rs`) share: starting
//! `mcast-server run` in a lab host and asking it for its status, the
//! configuration snippets, running `ntp-probe` and `ntp-load` in a host,
//! parsing captured NTP packets, and waiting for a condition with a
//! deadline.
//!
//! These helpers fail the calling test (panic, with what was expected and
//! the server's log) instead of returning errors: they are only for tests.

// Failing the test with a message is what these helpers are for.
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing
)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcast_keys::{KeyStore, PacketAuth, packet};
use mcast_proto::{Datagram, Mode};
use mcast_server::daemon::Status;

use crate::netns::{self, Capture, Host, NsChild, UdpDatagram, read_pcap_udp};
use crate::probe::{ListenArgs, ListenReport, ProbeArgs, ProbeReport};
use crate::{bins, vectors};

/// The IANA NTP group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
/// The site-local IPv6 NTP group.
pub const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x101);
/// The port every lab server uses.
pub const NTP_PORT: u16 = 123;
/// How long a started server may take to log "mcast-server running".
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Fails the test `test` loudly when the lab cannot be built here.
pub fn lab_required(test: &str) {
    if let Err(e) = netns::require_root() {
        panic!("{test} needs the network lab: {e}");
    }
}

/// The lab keys (`tests/data/vectors/ntp.keys`).
pub fn keys() -> KeyStore {
    KeyStore::load(&vectors::keys_file()).expect("load tests/data/vectors/ntp.keys")
}

/// The `mcast-server` binary, built for this test run.
pub fn server_bin() -> PathBuf {
    bins::bin_path("mcast-server").expect("build mcast-server")
}

/// Wall-clock time since 1970 (what pcap timestamps are).
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
    /// The host it runs in.
    pub host: Host,
    /// The process.
    pub child: NsChild,
    /// Its control socket.
    pub socket: PathBuf,
    /// Its stderr.
    pub log: PathBuf,
}

impl OurServer {
    /// Writes `<name>.toml` (keys, port 123, control socket, then `body`)
    /// and starts `mcast-server run` in `host`; returns once it logged
    /// that it runs.
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

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The server's address and port on the Lan.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.host.addr()), NTP_PORT)
    }

    /// `mcast-server status --json --socket PATH` (a Unix socket: reachable
    /// from outside the network namespace).
    pub fn status(&self) -> Status {
        let out = Command::new(server_bin())
            .args(["status", "--json", "--socket"])
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
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json is not a Status ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// `[[destination]]` text on `eth0`.
pub fn destination(address: &str, key: u16, poll: u8, extra: &str) -> String {
    format!(
        "[[destination]]\naddress = \"{address}\"\ninterface = \"eth0\"\nkey = {key}\n\
         poll = {poll}\n{extra}"
    )
}

/// `[time-source]` text: the local clock at `stratum`.
pub fn local_source(stratum: u8) -> String {
    format!("[time-source]\nkind = \"local\"\nstratum = {stratum}\n")
}

/// A test-crate binary (`ntp-probe`, `ntp-load`), built for this run.
pub fn tool_bin(name: &str) -> String {
    bins::bin_path(name)
        .unwrap_or_else(|e| panic!("build {name}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Runs `ntp-probe` (send mode) in `host`.
pub fn probe(host: &Host, args: &ProbeArgs) -> ProbeReport {
    let out = host
        .exec(&tool_bin("ntp-probe"), &args.to_args())
        .expect("run ntp-probe");
    assert!(
        out.status.success(),
        "ntp-probe in {} failed: {}",
        host.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ntp-probe prints a ProbeReport")
}

/// Runs `ntp-probe listen` in `host`.
pub fn listen(host: &Host, args: &ListenArgs) -> ListenReport {
    let mut all = vec!["listen".to_owned()];
    all.extend(args.to_args());
    let out = host
        .exec(&tool_bin("ntp-probe"), &all)
        .expect("run ntp-probe listen");
    assert!(
        out.status.success(),
        "ntp-probe listen in {} failed: {}",
        host.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ntp-probe listen prints a ListenReport")
}

/// Stops `capture` and returns the UDP datagrams it saw.
pub fn stop_capture(capture: Capture) -> Vec<UdpDatagram> {
    let pcap = capture.stop().expect("stop tcpdump");
    read_pcap_udp(&pcap).expect("read the capture")
}

/// A captured NTP packet, parsed.
pub struct Ntp<'a> {
    /// The datagram as captured.
    pub udp: &'a UdpDatagram,
    /// Its NTP content.
    pub d: Datagram,
}

impl Ntp<'_> {
    /// Its mode.
    pub fn mode(&self) -> Mode {
        self.d.header.mode
    }

    /// The key id of its MAC.
    pub fn key_id(&self) -> Option<u32> {
        self.d.mac.as_ref().map(|m| m.key_id)
    }

    /// Its MAC checked with `keys`, as from its source address.
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

/// The broadcasts (mode 5) from `from` to `to` among `packets`.
pub fn broadcasts<'p, 'a>(
    packets: &'p [Ntp<'a>],
    from: SocketAddr,
    to: SocketAddr,
) -> Vec<&'p Ntp<'a>> {
    packets
        .iter()
        .filter(|p| p.udp.src == from && p.udp.dst == to && p.mode() == Mode::Broadcast)
        .collect()
}

/// Checks the spacing of a destination's broadcasts: never sooner than
/// 2^poll (ntpd drops early ones), at most 2^poll + 1/16 jitter +
/// `slack` (scheduling and capture).
pub fn assert_intervals_within(what: &str, times: &[Duration], poll: u8, slack: Duration) {
    let interval = Duration::from_secs(1 << poll);
    let max = interval + interval / 16 + slack;
    for w in times.windows(2) {
        let gap = w[1].saturating_sub(w[0]);
        assert!(
            gap + Duration::from_millis(20) >= interval && gap <= max,
            "{what}: broadcasts {gap:?} apart; expected 2^{poll} s .. {max:?} (all: {times:?})"
        );
    }
}

/// [`assert_intervals_within`] with 300 ms of slack.
pub fn assert_intervals(what: &str, times: &[Duration], poll: u8) {
    assert_intervals_within(what, times, poll, Duration::from_millis(300));
}
