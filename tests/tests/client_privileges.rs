//! The client's privilege model, read from `/proc/PID/status` of the
//! running daemon:
//!
//! - started as root with `user = "nobody"` in monitor mode, it binds its
//!   sockets, switches to nobody and keeps no capability at all (every
//!   thread), and still calibrates and tracks a server;
//! - in slew mode without `CAP_SYS_TIME` (these tests always take it away
//!   with setpriv) it refuses to start and says why, rather than running
//!   and failing each adjustment;
//! - started as the user with `CAP_NET_BIND_SERVICE` in its ambient set (as
//!   the systemd unit does), it binds port 123 in a network namespace and
//!   then gives the capability up; without the capability the bind fails.
//!
//! Safety: every process runs under `setpriv --bounding-set=-sys_time`, so
//! none can change the clock; traffic stays on loopback or in the test's
//! own namespaces.
#![cfg(test)]
// Test helpers outside #[test] functions fail the test on purpose.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcast_lab::bins;
use mcast_lab::netns::{self, Lan};
use mcast_tests::vectors;

const NOBODY: u32 = 65534;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;
const CAP_SYS_TIME: u64 = 1 << 25;

/// The credential lines of one `/proc/PID[/task/TID]/status`.
#[derive(Debug)]
struct Creds {
    uid: Vec<u32>,
    gid: Vec<u32>,
    groups: Vec<u32>,
    cap_inh: u64,
    cap_prm: u64,
    cap_eff: u64,
    cap_bnd: u64,
    cap_amb: u64,
}

fn creds(status_path: &Path) -> Creds {
    let text = std::fs::read_to_string(status_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", status_path.display()));
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no {name} in {}", status_path.display()))
            .trim()
            .to_owned()
    };
    let ids = |name: &str| -> Vec<u32> {
        field(name)
            .split_whitespace()
            .map(|v| v.parse().expect("numeric id"))
            .collect()
    };
    let hex = |name: &str| u64::from_str_radix(&field(name), 16).expect("hex capability set");
    Creds {
        uid: ids("Uid"),
        gid: ids("Gid"),
        groups: ids("Groups"),
        cap_inh: hex("CapInh"),
        cap_prm: hex("CapPrm"),
        cap_eff: hex("CapEff"),
        cap_bnd: hex("CapBnd"),
        cap_amb: hex("CapAmb"),
    }
}

/// The process and every one of its threads.
fn all_threads(pid: u32) -> Vec<(String, Creds)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .map(|t| {
            let t = t.expect("task entry").path();
            let name = t.display().to_string();
            (name, creds(&t.join("status")))
        })
        .collect()
}

struct Daemon {
    child: Child,
    log: Vec<String>,
    /// Lines logged after `ready`.
    later: Option<std::sync::mpsc::Receiver<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `setpriv <no CAP_SYS_TIME> BIN run -c CONFIG`, waiting for `ready` on
/// stderr (or the end of stderr, when the process exits).
fn start(bin: &Path, config: &Path, ready: &str) -> (Daemon, bool) {
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
    let mut log = Vec::new();
    let mut ready_seen = false;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        let done = line.contains(ready);
        log.push(line);
        if done {
            ready_seen = true;
            break;
        }
    }
    let mut later = None;
    if ready_seen {
        let (tx, rx) = std::sync::mpsc::channel();
        later = Some(rx);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (Daemon { child, log, later }, ready_seen)
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

fn client_config(keys: &Path, port: u16, socket: &Path, iface: &str, extra: &str) -> String {
    format!(
        "keys = {keys:?}\nport = {port}\ncontrol-socket = {socket:?}\n{extra}\n\
         [[listen]]\ngroup = \"224.0.1.1\"\ninterface = \"{iface}\"\n\
         [[server]]\naddress = \"127.0.0.1\"\nkey = 3\nname = \"lo-server\"\n\
         [calibration]\nstart-delay-max-s = 0.5\nrequests = 2\n"
    )
}

#[test]
fn root_client_in_monitor_mode_runs_as_nobody_with_no_capabilities() {
    netns::require_root().unwrap_or_else(|e| panic!("{e}"));
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
        client_config(&keys, port, &client_sock, "lo", "user = \"nobody\""),
    )
    .expect("client config");

    let (server, up) = start(&server_bin, &server_conf, "mcast-server running");
    assert!(up, "server did not start: {:?}", server.log);
    let (client, up) = start(&client_bin, &client_conf, "mcast-client running");
    assert!(up, "client did not start:\n{}", client.log.join("\n"));
    assert!(
        client.log.iter().any(|l| l.contains("dropped privileges")),
        "the client logs the drop:\n{}",
        client.log.join("\n")
    );

    let pid = client.child.id();
    let threads = all_threads(pid);
    assert!(!threads.is_empty());
    for (name, c) in &threads {
        assert_eq!(
            c.uid,
            vec![NOBODY; 4],
            "{name}: real/effective/saved/fs uid"
        );
        assert_eq!(c.gid, vec![NOBODY; 4], "{name}: gids are nobody's group");
        assert_eq!(c.groups, vec![NOBODY], "{name}: no supplementary groups");
        assert_eq!(c.cap_eff, 0, "{name}: monitor mode keeps no capability");
        assert_eq!(c.cap_prm, 0, "{name}: nothing permitted either");
        assert_eq!(c.cap_inh, 0, "{name}");
        assert_eq!(c.cap_amb, 0, "{name}");
    }
    let main = creds(Path::new(&format!("/proc/{pid}/status")));
    assert_eq!(
        main.cap_bnd, 0,
        "the bounding set is emptied too: nothing can be regained"
    );

    // It still does its job as nobody: calibrates once, then tracks.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&client_bin, &client_sock);
        let v = &s["servers"][0];
        if v["t"] == "b" && v["reach"].as_u64().unwrap_or(0) >= 2 {
            assert!(v["calibration"]["phase"] == "calibrated", "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not tracking within 60 s after dropping privileges:\n{s:#}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }

    // `systemctl reload` = SIGHUP: the keys file is read again, as nobody.
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    let later = client.later.as_ref().expect("log lines after start");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match later.recv_timeout(left) {
            Ok(line) if line.contains("SIGHUP: keys reloaded") => break,
            Ok(line) => assert!(
                !line.contains("keeping the old keys"),
                "reload failed after the drop: {line}"
            ),
            Err(e) => panic!("no reload within 10 s of SIGHUP: {e}"),
        }
    }

    // Operations have their own socket, which only root and the user who
    // started the client may use; the status socket answers none, and
    // the user the client runs as (nobody, shared with other daemons) may
    // not operate it even when the socket's mode would let it connect.
    let ops = dir.path().join("client-ops.sock");
    let mode = std::fs::metadata(&ops)
        .expect("operations socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "operations socket mode {mode:o}");
    let unicast = |s: &serde_json::Value| s["servers"][0]["unicast_sent"].as_u64().unwrap_or(0);
    let before = unicast(&status(&client_bin, &client_sock));
    let on_status =
        mcast_sys::control_request(&client_sock, "recalibrate 127.0.0.1").expect("answer");
    assert!(on_status.contains("client-ops.sock"), "{on_status}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&ops, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&client_bin)
        .args(["recalibrate", "127.0.0.1", "--socket"])
        .arg(&client_sock)
        .output()
        .expect("setpriv runs");
    assert!(!as_nobody.status.success(), "{as_nobody:?}");
    assert!(
        String::from_utf8_lossy(&as_nobody.stderr).contains("uid 65534 may not operate"),
        "refused by its credentials: {as_nobody:?}"
    );
    assert_eq!(
        unicast(&status(&client_bin, &client_sock)),
        before,
        "no request was sent for a refused operation"
    );
    let as_root = Command::new(&client_bin)
        .args(["recalibrate", "127.0.0.1", "--socket"])
        .arg(&client_sock)
        .output()
        .expect("recalibrate runs");
    assert!(as_root.status.success(), "{as_root:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while unicast(&status(&client_bin, &client_sock)) == before {
        assert!(
            Instant::now() < deadline,
            "root's recalibrate sent nothing in 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn client_in_slew_mode_without_cap_sys_time_refuses_to_start() {
    netns::require_root().unwrap_or_else(|e| panic!("{e}"));
    let client_bin = bins::bin_path("mcast-client").expect("mcast-client builds");
    let keys: PathBuf = vectors::keys_file();
    for (label, user) in [("user = nobody", "user = \"nobody\""), ("root", "")] {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("client.toml");
        let sock = dir.path().join("client.sock");
        let text =
            client_config(&keys, free_port(), &sock, "lo", user) + "[clock]\nmode = \"slew\"\n";
        std::fs::write(&conf, text).expect("client config");
        let (mut client, up) = start(&client_bin, &conf, "mcast-client running");
        assert!(
            !up,
            "{label}: a slew-mode client without CAP_SYS_TIME must not run:\n{}",
            client.log.join("\n")
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(s) = client.child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "{label}: still running");
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = client.log.join("\n");
        assert!(!exit.success(), "{label}: exit status {exit}:\n{log}");
        assert!(
            log.contains("clock mode \"slew\" needs CAP_SYS_TIME")
                && log.contains("mode = \"monitor\""),
            "{label}: the error names the missing capability and the way out:\n{log}"
        );
    }
}

/// Makes `dir` usable by nobody (tempdirs are root-only).
fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn client_started_as_nobody_with_ambient_net_bind_service_binds_123_then_keeps_nothing() {
    netns::require_root().unwrap_or_else(|e| panic!("{e}"));
    let client_bin = bins::bin_path("mcast-client").expect("mcast-client builds");
    let lan = Lan::new(1).expect("one-host lan");
    let host = lan.host(1);
    let dir = tempfile::tempdir().expect("tempdir");
    open_up(dir.path());
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("run dir");
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let keys = dir.path().join("ntp.keys");
    std::fs::copy(vectors::keys_file(), &keys).expect("keys");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let conf = dir.path().join("client.toml");
    let sock = run_dir.join("client.sock");
    std::fs::write(
        &conf,
        client_config(&keys, 123, &sock, &host.iface(), "user = \"nobody\""),
    )
    .expect("client config");

    let as_nobody = |ambient: bool| -> Vec<String> {
        let mut args: Vec<String> = ["--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            .map(String::from)
            .to_vec();
        if ambient {
            args.push("--inh-caps=+net_bind_service".into());
            args.push("--ambient-caps=+net_bind_service".into());
        }
        args.extend([
            client_bin.display().to_string(),
            "run".into(),
            "-c".into(),
            conf.display().to_string(),
        ]);
        args
    };

    // Without the capability, port 123 cannot be bound: the capability is
    // what the unit's AmbientCapabilities= is for.
    let denied_log = dir.path().join("denied.log");
    let denied = host
        .spawn("setpriv", &as_nobody(false), &denied_log)
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while denied.is_running() {
        assert!(
            Instant::now() < deadline,
            "bound port 123 without the capability?"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&denied_log).unwrap_or_default();
    assert!(
        text.contains("port 123") && text.contains("Permission denied"),
        "expected a bind error for port 123:\n{text}"
    );

    let log_path = dir.path().join("client.log");
    let client = host
        .spawn("setpriv", &as_nobody(true), &log_path)
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    while !log.contains("mcast-client running") {
        assert!(
            client.is_running() && Instant::now() < deadline,
            "the client did not start:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
        log.clear();
        if let Ok(mut f) = std::fs::File::open(&log_path) {
            let _ = f.read_to_string(&mut log);
        }
    }
    let pid = client.pid();
    for (name, c) in all_threads(pid) {
        assert_eq!(c.uid, vec![NOBODY; 4], "{name}");
        assert_eq!(
            c.cap_eff, 0,
            "{name}: CAP_NET_BIND_SERVICE given up after binding"
        );
        assert_eq!(c.cap_prm, 0, "{name}");
        assert_eq!(c.cap_amb, 0, "{name}: nothing passed on to children");
        assert_eq!(c.cap_inh, 0, "{name}");
        assert_eq!(c.cap_bnd & CAP_SYS_TIME, 0, "{name}: test safety");
        assert_ne!(
            c.cap_bnd & CAP_NET_BIND_SERVICE,
            0,
            "{name}: an unprivileged process cannot shrink its bounding set \
             (systemd's CapabilityBoundingSet= does)"
        );
    }
    // The control socket works.
    let s = status(&client_bin, &sock);
    assert_eq!(s["clock_mode"], "monitor", "{s:#}");
    client.stop().expect("stop");
}
