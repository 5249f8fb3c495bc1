//! `mcast-server` and `mcast-client` on the loopback interface, as the
//! quick start runs them: an unprivileged port, the lab keys, the client in
//! monitor mode, every process without `CAP_SYS_TIME`. Traffic stays on lo.
//!
//! [`LoopbackLab`] writes the two configurations into a temporary folder and
//! starts the daemons; [`tool`] runs the binaries' one-shot commands under
//! the same restrictions.

#![allow(
    clippy::panic,
    clippy::expect_used,
    reason = "test support: a lab step that cannot go on fails the test that called it"
)]

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mcast_lab::{bins, lab};

use crate::vectors;

/// `setpriv` arguments: no `CAP_SYS_TIME`, and SIGKILL when the test
/// thread that started the process ends.
const SETPRIV: [&str; 3] = [
    "--bounding-set=-sys_time",
    "--inh-caps=-sys_time",
    "--pdeathsig=KILL",
];

/// A running daemon, killed when dropped.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// The process id (of `setpriv`, which execs the daemon: the same).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends it SIGHUP (reload), as `systemctl reload` does.
    pub fn hangup(&self) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0))
            .expect("a running daemon has a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    }

    /// Stops it as systemd does (SIGTERM) and waits for its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.0.id()).unwrap_or(0));
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.0.wait().unwrap_or_else(|e| panic!("wait: {e}"))
    }
}

/// A command running `bin` without `CAP_SYS_TIME`.
pub fn tool(bin: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(SETPRIV).arg(bin);
    c
}

/// Starts `bin run -c config` and returns once its log has a line
/// containing `ready` (panics with the log if it exits first).
pub fn start(bin: &Path, config: &Path, ready: &str) -> Daemon {
    start_with_env(bin, config, ready, &[])
}

/// [`start`] with extra environment variables (e.g. `NOTIFY_SOCKET`).
pub fn start_with_env(
    bin: &Path,
    config: &Path,
    ready: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> Daemon {
    let mut child = tool(bin)
        .args(["run", "-c"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
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

/// Starts `bin run -c config` with no `RUST_LOG` (the configuration's
/// `log-level` rules) and gives every line of its stderr, from the first.
pub fn start_logging(bin: &Path, config: &Path) -> (Daemon, std::sync::mpsc::Receiver<String>) {
    let mut child = tool(bin)
        .args(["run", "-c"])
        .arg(config)
        .env_remove("RUST_LOG")
        // Inherited from a unit whose stream this stderr is not: plain text.
        .env("JOURNAL_STREAM", "1:1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv starts the daemon");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    (Daemon(child), rx)
}

/// A UDP port no one is bound to on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

/// A TCP port no one listens on at 127.0.0.1 right now.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free TCP port")
        .port()
}

/// Calls `check` every 200 ms until it gives `Ok`; once `timeout` has
/// passed, fails with `what` and the last `Err` it gave (via
/// [`lab::wait_for`]).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let last = RefCell::new(String::new());
    lab::wait_for(
        what,
        timeout,
        Duration::from_millis(200),
        || check().map_err(|e| *last.borrow_mut() = e).ok(),
        || format!("last seen:\n{}", last.borrow()),
    )
}

/// An HTTP answer: status code, head and body.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub code: u16,
    /// Status line and headers.
    pub head: String,
    /// The body.
    pub body: String,
}

/// `GET path` from `addr` with HTTP/1.1 (5 s timeouts).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<HttpAnswer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no blank line in {text:?}")))?;
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(HttpAnswer {
        code,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A server and a client on lo, configured in a temporary folder.
pub struct LoopbackLab {
    /// The folder holding configurations and sockets.
    pub dir: tempfile::TempDir,
    /// The NTP port (a free one).
    pub port: u16,
    /// The `mcast-server` binary.
    pub server_bin: PathBuf,
    /// The `mcast-client` binary.
    pub client_bin: PathBuf,
}

impl Default for LoopbackLab {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopbackLab {
    /// A lab on a free port (builds the binaries if needed).
    pub fn new() -> Self {
        LoopbackLab {
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
            server_bin: bins::bin_path("mcast-server").expect("mcast-server builds"),
            client_bin: bins::bin_path("mcast-client").expect("mcast-client builds"),
        }
    }

    /// The lab keys file.
    pub fn keys(&self) -> PathBuf {
        vectors::keys_file()
    }

    /// The client's control socket.
    pub fn client_socket(&self) -> PathBuf {
        self.dir.path().join("client.sock")
    }

    /// Starts a server sending to 224.0.1.1 on lo every 2 s (poll 1),
    /// stratum 3, signed with lab key 3, answering calibration requests.
    pub fn start_server(&self) -> Daemon {
        self.start_server_with("")
    }

    /// [`start_server`](Self::start_server) with `extra` top-level settings
    /// (e.g. `metrics = ...`).
    pub fn start_server_with(&self, extra: &str) -> Daemon {
        self.start_server_configured(extra, "")
    }

    /// [`start_server_with`](Self::start_server_with), with `tables`
    /// appended to the configuration (e.g. `[responder]\nenabled = false`).
    pub fn start_server_configured(&self, extra: &str, tables: &str) -> Daemon {
        let conf = self.dir.path().join("server.toml");
        let sock = self.dir.path().join("server.sock");
        std::fs::write(
            &conf,
            format!(
                "keys = {keys:?}\nport = {port}\ncontrol-socket = {sock:?}\n{extra}\n\
                 lab-allow-fast-poll = true\n\
                 [[destination]]\naddress = \"224.0.1.1\"\ninterface = \"lo\"\nkey = 3\npoll = 1\n\
                 [time-source]\nkind = \"local\"\nstratum = 3\n{tables}\n",
                keys = self.keys(),
                port = self.port,
            ),
        )
        .expect("server config");
        start(&self.server_bin, &conf, "mcast-server running")
    }

    /// Starts a client of the server (key 3, named `lo-server`, a volley of
    /// 4 requests), with `extra` top-level settings (e.g. `metrics = ...`).
    pub fn start_client(&self, extra: &str) -> Daemon {
        self.start_client_configured(extra, "start-delay-max-s = 0.5\nrequests = 4", &[])
    }

    /// [`start_client`](Self::start_client) with `calibration` as the
    /// `[calibration]` table's settings.
    pub fn start_client_calibrating(&self, extra: &str, calibration: &str) -> Daemon {
        self.start_client_configured(extra, calibration, &[])
    }

    /// [`LoopbackLab::start_client`] with extra environment variables.
    pub fn start_client_with_env(&self, extra: &str, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        self.start_client_configured(extra, "start-delay-max-s = 0.5\nrequests = 4", env)
    }

    /// The lab's client with `extra` at the top level, `calibration` as the
    /// `[calibration]` settings and `env` in its environment.
    pub fn start_client_configured(
        &self,
        extra: &str,
        calibration: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Daemon {
        let conf = self.write_client_config(extra, calibration);
        start_with_env(&self.client_bin, &conf, "mcast-client running", env)
    }

    /// Writes the configuration [`start_client_calibrating`](Self::start_client_calibrating)
    /// runs the client with; returns its path.
    pub fn write_client_config(&self, extra: &str, calibration: &str) -> PathBuf {
        let conf = self.dir.path().join("client.toml");
        std::fs::write(
            &conf,
            format!(
                "keys = {keys:?}\nport = {port}\ncontrol-socket = {sock:?}\n{extra}\n\
                 [[listen]]\ngroup = \"224.0.1.1\"\ninterface = \"lo\"\n\
                 [[server]]\naddress = \"127.0.0.1\"\nkey = 3\nname = \"lo-server\"\n\
                 [calibration]\n{calibration}\n",
                keys = self.keys(),
                port = self.port,
                sock = self.client_socket(),
            ),
        )
        .expect("client config");
        conf
    }

    /// `mcast-client status --json` of the lab's client.
    pub fn client_status(&self) -> Result<serde_json::Value, String> {
        let out = tool(&self.client_bin)
            .args(["status", "--json", "--socket"])
            .arg(self.client_socket())
            .output()
            .map_err(|e| format!("status does not run: {e}"))?;
        if !out.status.success() {
            return Err(format!("status failed: {out:?}"));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("status is not JSON: {e}"))
    }

    /// Waits (at most 60 s) until the client tracks the server, has
    /// selected it and heard at least 3 of its broadcasts; returns that status.
    pub fn wait_until_tracked(&self) -> serde_json::Value {
        wait_until("tracking and selected", Duration::from_secs(60), || {
            let s = self.client_status()?;
            let field = |name: &str| s.pointer(&format!("/servers/0/{name}")).cloned();
            let reach = field("reach").and_then(|r| r.as_u64()).unwrap_or(0);
            if field("t") == Some("b".into()) && field("tally") == Some("*".into()) && reach >= 3 {
                Ok(s)
            } else {
                Err(format!("{s:#}"))
            }
        })
    }
}
