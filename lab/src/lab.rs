//! Our daemons on lab hosts: start `mcast-server` or `mcast-client` in a
//! namespace of a test's [`Lan`](crate::netns::Lan) with a generated
//! configuration, wait until it runs, read its status over its control
//! socket (a Unix socket, reachable from outside the namespace) and its
//! log. Also [`wait_for`], the one way lab tests await a condition, and
//! the parsing of captured NTP packets.
//!
//! These helpers run inside tests: a step that cannot be done fails the
//! calling test with a message saying what was expected.

#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test support: a lab step that cannot go on fails the test that called it, with the daemon's log"
)]

use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcast_core::client::status::{ClientStatus, ServerStatus};
use mcast_core::server::status::Status;
use mcast_keys::{KeyStore, PacketAuth, packet};
use mcast_proto::{Datagram, Mode};

use crate::bins;
use crate::netns::{Capture, Host, NsChild, UdpDatagram, read_pcap_udp};
use crate::probe::{ListenArgs, ListenReport, ProbeArgs, ProbeReport};

/// The multicast group of the lab tests.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
/// The site-local IPv6 NTP group.
pub const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x101);
/// The NTP port our lab daemons use.
pub const NTP_PORT: u16 = 123;
/// How long a started daemon may take to log that it runs.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Fails loudly (never skips) when the lab cannot be built.
pub fn lab_required(test: &str) {
    if let Err(e) = crate::netns::require_root() {
        panic!("{test} needs the network lab: {e}");
    }
}

/// Writes a private key file, mode 0600 from its creation (a server's
/// signing key in a test's work directory).
///
/// # Panics
/// If the file cannot be written (a broken test setup).
pub fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The public lab keys file (ntpd syntax): `tests/data/vectors/ntp.keys`,
/// the keys the reference vectors were captured with.
pub fn keys_file() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/vectors/ntp.keys"
    ))
}

/// The lab keys (`tests/data/vectors/ntp.keys`).
pub fn keys() -> KeyStore {
    KeyStore::load(&keys_file()).expect("load tests/data/vectors/ntp.keys")
}

/// The `mcast-server` binary, built once per test process.
pub fn server_bin() -> PathBuf {
    Program::Server.bin()
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

/// Which of our programs a [`Daemon`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `mcast-server`.
    Server,
    /// `mcast-client`.
    Client,
}

impl Program {
    /// The binary's name.
    pub fn name(self) -> &'static str {
        match self {
            Program::Server => "mcast-server",
            Program::Client => "mcast-client",
        }
    }

    /// Its path (built on demand).
    pub fn bin(self) -> PathBuf {
        bins::bin_path(self.name()).unwrap_or_else(|e| panic!("build {}: {e}", self.name()))
    }
}

/// One of our daemons, running in a lab host; stopped when dropped.
pub struct Daemon {
    program: Program,
    host: Host,
    child: NsChild,
    socket: PathBuf,
    log: PathBuf,
    config: PathBuf,
}

impl Daemon {
    /// Writes `<work>/<name>.toml` (the test vectors' keys, `port`, a
    /// control socket, then `body`) and starts `<program> run` in `host`;
    /// returns once it logged that it runs.
    pub fn start(
        program: Program,
        host: &Host,
        work: &Path,
        name: &str,
        port: u16,
        body: &str,
    ) -> Daemon {
        let daemon = Daemon::spawn(program, host, work, name, port, body);
        daemon.wait_running();
        daemon
    }

    /// As [`Daemon::start`], with `keys` as its keys file (a client that
    /// pins its servers by public key alone may name one that does not
    /// exist: it holds no shared secret).
    pub fn start_with_keys(
        program: Program,
        host: &Host,
        work: &Path,
        name: &str,
        port: u16,
        keys: &Path,
        body: &str,
    ) -> Daemon {
        let daemon = Daemon::spawn_with_keys(program, host, work, name, port, keys, body);
        daemon.wait_running();
        daemon
    }

    /// [`Daemon::start`] without waiting for it to log that it runs (many
    /// started at once: [`Daemon::wait_running`] each afterwards).
    pub fn spawn(
        program: Program,
        host: &Host,
        work: &Path,
        name: &str,
        port: u16,
        body: &str,
    ) -> Daemon {
        Daemon::spawn_with_keys(program, host, work, name, port, &keys_file(), body)
    }

    /// [`Daemon::spawn`] with `keys` as its keys file.
    pub fn spawn_with_keys(
        program: Program,
        host: &Host,
        work: &Path,
        name: &str,
        port: u16,
        keys: &Path,
        body: &str,
    ) -> Daemon {
        let config = work.join(format!("{name}.toml"));
        let socket = work.join(format!("{name}.sock"));
        let log = work.join(format!("{name}.log"));
        let text = format!("keys = {keys:?}\nport = {port}\ncontrol-socket = {socket:?}\n{body}");
        std::fs::write(&config, &text).expect("write daemon config");
        let bin = program.bin();
        let args = ["run".as_ref(), "-c".as_ref(), config.as_os_str()];
        let child = host
            .spawn(&bin.to_string_lossy(), &args, &log)
            .unwrap_or_else(|e| panic!("start {} in {}: {e}", program.name(), host.name()));
        Daemon {
            program,
            host: host.clone(),
            child,
            socket,
            log,
            config,
        }
    }

    /// Waits until it logs that it runs; panics (with its configuration
    /// and log) if it exits first or takes too long.
    pub fn wait_running(&self) {
        let program = self.program;
        let ready = format!("{} running", program.name());
        wait_for(
            &format!(
                "{} in {} to log {ready:?}",
                program.name(),
                self.host.name()
            ),
            START_TIMEOUT,
            Duration::from_millis(50),
            || {
                assert!(
                    self.child.is_running(),
                    "{} in {} exited at start ({:?}) with config\n{}\nlog:\n{}",
                    program.name(),
                    self.host.name(),
                    self.child.exit_status(),
                    std::fs::read_to_string(&self.config).unwrap_or_default(),
                    self.log()
                );
                self.log().contains(&ready).then_some(())
            },
            || self.log(),
        );
    }

    /// The host it runs in.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Its process.
    pub fn child(&self) -> &NsChild {
        &self.child
    }

    /// Its control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `<program> ARGS... --socket SOCKET` and returns its output.
    pub fn control(&self, args: &[&str]) -> std::process::Output {
        Command::new(self.program.bin())
            .args(args)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", self.program.name()))
    }

    /// `status --json`, parsed as `T`.
    fn status_as<T: serde::de::DeserializeOwned>(&self) -> T {
        let out = self.status_command(&["--json"]);
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "status --json of {} is not what we expect ({e}): {}",
                self.program.name(),
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// `status`: what an operator reads.
    pub fn status_text(&self) -> String {
        String::from_utf8_lossy(&self.status_command(&[])).into_owned()
    }

    fn status_command(&self, extra: &[&str]) -> Vec<u8> {
        let mut args = vec!["status"];
        args.extend_from_slice(extra);
        let out = self.control(&args);
        assert!(
            out.status.success(),
            "{} status in {} failed: {}\nlog:\n{}",
            self.program.name(),
            self.host.name(),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }

    /// A server's `status --json`.
    pub fn server_status(&self) -> Status {
        assert_eq!(self.program, Program::Server);
        self.status_as()
    }

    /// A client's `status --json`.
    pub fn client_status(&self) -> ClientStatus {
        assert_eq!(self.program, Program::Client);
        self.status_as()
    }

    /// Stops it (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop(&self) {
        let _ = self.child.stop();
    }
}

/// The status row of server `addr` in a client's status.
///
/// # Panics
/// When the status lists no such server (the status is in the message).
pub fn server_row(s: &ClientStatus, addr: Ipv4Addr) -> ServerStatus {
    s.servers
        .iter()
        .find(|r| r.remote == IpAddr::V4(addr))
        .cloned()
        .unwrap_or_else(|| panic!("status lists no server {addr}: {s:#?}"))
}

/// Packets rejected with `label`: those counted on the server's row `r`
/// plus those the client counted before it knew the server (`s`).
pub fn rejected(r: &ServerStatus, s: &ClientStatus, label: &str) -> u64 {
    r.rejected.get(label).copied().unwrap_or(0) + s.rejected.get(label).copied().unwrap_or(0)
}

/// What a failed wait on a client shows: its status table and its log.
pub fn client_diag(c: &Daemon) -> impl Fn() -> String + '_ {
    move || format!("client status:\n{}\nlog:\n{}", c.status_text(), c.log())
}

/// Waits until the client `c` tracks `addr` with a measured (calibrated)
/// delay; returns that server's row.
pub fn wait_calibrated(c: &Daemon, addr: Ipv4Addr, timeout: Duration) -> ServerStatus {
    wait_for(
        &format!("the client to track {addr} with a calibrated delay"),
        timeout,
        Duration::from_millis(200),
        || {
            let r = server_row(&c.client_status(), addr);
            (r.state == mcast_core::client::association::State::Tracking
                && r.calibrated
                && r.offset_ms.is_some())
            .then_some(r)
        },
        client_diag(c),
    )
}

/// Owned copies of `v` (a tool's arguments).
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// One of our servers in a lab host, on port 123.
pub struct OurServer(Daemon);

impl OurServer {
    /// Writes `<name>.toml` (the vector keys, port 123, a control socket in
    /// `work`, then `body`) and starts `mcast-server run` in `host`;
    /// returns once it logged that it runs.
    pub fn start(host: &Host, work: &Path, name: &str, body: &str) -> OurServer {
        OurServer(Daemon::start(
            Program::Server,
            host,
            work,
            name,
            NTP_PORT,
            body,
        ))
    }

    /// `mcast-server status --json`.
    pub fn status(&self) -> Status {
        self.0.server_status()
    }

    /// The server's address and port on the Lan.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.0.host().addr()), NTP_PORT)
    }
}

impl std::ops::Deref for OurServer {
    type Target = Daemon;

    fn deref(&self) -> &Daemon {
        &self.0
    }
}

/// A server's `[[destination]]` on the host's `eth0`, signed with `key`.
pub fn destination(address: &str, key: impl Display, poll: impl Display, extra: &str) -> String {
    format!(
        "[[destination]]\naddress = \"{address}\"\ninterface = \"eth0\"\nkey = {key}\n\
         poll = {poll}\n{extra}"
    )
}

/// A `local` time source at `stratum`.
pub fn local_source(stratum: u8) -> String {
    format!("[time-source]\nkind = \"local\"\nstratum = {stratum}\n")
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

/// A tool of this crate (`mcast-lab`, `ntp-probe`, `ntp-load`, `ntp-liar`,
/// ...), built for this run (see [`bins`]).
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

/// A running `ntp-attack` (see [`crate::attack`]) in a lab host.
pub struct Attacker {
    child: NsChild,
    log: PathBuf,
}

impl Attacker {
    /// Starts `ntp-attack ARGS..` in `host`, output to `<work>/<name>.log`;
    /// for sniffing modes, returns once it listens.
    pub fn start(host: &Host, work: &Path, name: &str, args: &[String]) -> Attacker {
        let log = work.join(format!("{name}.log"));
        let child = host
            .spawn(&tool_bin("ntp-attack"), args, &log)
            .unwrap_or_else(|e| panic!("start ntp-attack in {}: {e}", host.name()));
        let a = Attacker { child, log };
        let sniffs = matches!(
            args.first().map(String::as_str),
            Some("replay" | "kod" | "clone" | "insider-reply" | "regroup")
        );
        if sniffs {
            wait_for(
                "ntp-attack to listen",
                START_TIMEOUT,
                Duration::from_millis(20),
                || {
                    assert!(
                        a.child.is_running() || a.log_text().contains("listening"),
                        "ntp-attack exited at start: {}",
                        a.log_text()
                    );
                    a.log_text().contains("listening").then_some(())
                },
                || a.log_text(),
            );
        }
        a
    }

    /// What it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn is_running(&self) -> bool {
        self.child.is_running()
    }

    /// Waits (up to `timeout`) for it to end by its own bounds and returns
    /// its summary.
    pub fn finish(self, timeout: Duration) -> crate::attack::Summary {
        wait_for(
            "ntp-attack to end by its bounds",
            timeout,
            Duration::from_millis(100),
            || (!self.child.is_running()).then_some(()),
            || self.log_text(),
        );
        let text = self.log_text();
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("ntp-attack printed no summary: {text}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("ntp-attack summary {line:?}: {e}"))
    }
}
