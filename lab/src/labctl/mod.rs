//! The persistent lab behind `scripts/lab` (binary `mcast-lab`): a LAN of
//! network namespaces that outlives the command that built it, running our
//! servers and clients and reference ntpd 4.2.8p15 ones, with a live table
//! of every association's mode and unicast traffic. It exists to reproduce
//! the multicast/unicast failures of older daemons on one machine.
//!
//! | what        | value                                                    |
//! |-------------|----------------------------------------------------------|
//! | namespaces  | `mlab-<name>-sw` (bridge `br0`), `mlab-<name>-h<i>`     |
//! | IPv4        | `198.18.0.<i>/24` on `eth0`, route `224.0.0.0/4 dev eth0` |
//! | group       | `224.0.1.1`, port 123                                    |
//! | state       | `/run/mcast-lab/<name>/` (`state.json`, configs, logs, keys, pcap) |
//!
//! Hosts are numbered servers first (ours, then ntpd), then clients (ours,
//! then ntpd). Each lab is its own bridge, so labs of different names never
//! see each other even though their addresses repeat; the test harness
//! (`netns.rs`, prefix `mn`, subnets 198.18.1.0 and up) never touches
//! names starting with `mlab-`, and this module touches no other names.
//!
//! Safety (DESIGN.md): every process runs through `ip netns exec NS setpriv
//! --bounding-set=-sys_time --inh-caps=-sys_time`, is checked in
//! `/proc/PID/status` once it runs its program and killed at once if it
//! still holds `CAP_SYS_TIME`; our clients run in monitor mode and ntpd
//! with `disable ntp` and `disable kernel`. Each process is recorded in the
//! state file with its PID *and* its start time before anything else
//! happens, and `down` signals a PID only while its start time still
//! matches, so a PID reused by another program is never touched.
//!
//! The daemons are detached (own process group, no parent-death signal):
//! they run until `down`. The state file is written before each step of
//! `up`, so `down` also cleans up after an `up` that failed half way.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mcast_client::association::State;
use mcast_client::daemon::ClientStatus;
use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use crate::netns::{self, UdpDatagram};
use crate::refntpd::{self, Install};
use crate::{bins, lab};

/// Every namespace a lab makes starts with this (never `mn`, the test
/// harness's prefix).
pub const NS_PREFIX: &str = "mlab-";
/// Where labs keep their state, one directory per lab name.
pub const STATE_ROOT: &str = "/run/mcast-lab";
/// The multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 1);
/// The lab's /24: slot 0 of 198.18.0.0/15, the one the test harness leaves
/// to hand-built labs.
const SUBNET: [u8; 3] = [198, 18, 0];
const NTP_PORT: u16 = 123;
/// Hosts per lab (the /24 has 254 addresses).
const MAX_HOSTS: usize = 250;
/// How long a started program may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `down` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// The environment variable naming the directory of prebuilt
/// `mcast-server` and `mcast-client` (set by `scripts/lab`).
pub const BIN_DIR_ENV: &str = "MCAST_LAB_BIN_DIR";

/// Which keys the servers sign with: one key per server, of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    /// MD5 (20-byte secrets), what most ntpd sites use.
    Md5,
    /// SHA1 (20-byte secrets).
    Sha1,
    /// AES-128-CMAC (RFC 8573).
    Cmac,
    /// AES-128-CMAC, MD5 and SHA1 in turn.
    Mixed,
}

impl KeyType {
    /// The keys-file type name and secret length (bytes, written as hex)
    /// for the key of server number `n` (1-based).
    fn for_server(self, n: usize) -> (&'static str, usize) {
        let one = match self {
            KeyType::Mixed => match n.saturating_sub(1) % 3 {
                0 => KeyType::Cmac,
                1 => KeyType::Md5,
                _ => KeyType::Sha1,
            },
            other => other,
        };
        match one {
            KeyType::Md5 => ("MD5", 20),
            KeyType::Sha1 => ("SHA1", 20),
            KeyType::Cmac | KeyType::Mixed => ("AES128CMAC", 16),
        }
    }
}

/// What `up` builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpOptions {
    /// Our servers (`mcast-server`).
    pub servers: usize,
    /// Reference ntpd 4.2.8p15 broadcast servers.
    pub ref_servers: usize,
    /// Our clients (`mcast-client`, monitor mode).
    pub clients: usize,
    /// Reference ntpd 4.2.8p15 multicast clients (`disable ntp`).
    pub ref_clients: usize,
    /// Broadcast poll exponent of our servers (0..=17; below 3 only with
    /// `lab-allow-fast-poll`); ntpd servers use at least 3.
    pub poll: u8,
    /// Blackhole routes in every server's namespace to every client, so no
    /// unicast reply (calibration) ever arrives; broadcasts still do.
    pub drop_replies: bool,
    /// The servers' key type.
    pub key_type: KeyType,
    /// Our clients' calibration: requests per volley.
    pub cal_requests: u8,
    /// Our clients' calibration: further volleys after a failed one.
    pub cal_retries: u8,
    /// Our clients' calibration: random wait before the first request, up
    /// to this many seconds.
    pub cal_start_delay_s: u32,
    /// Lines appended to every reference ntpd client's `ntpd.conf`.
    pub ref_client_conf: Vec<String>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            servers: 1,
            ref_servers: 0,
            clients: 1,
            ref_clients: 1,
            poll: 3,
            drop_replies: false,
            key_type: KeyType::Mixed,
            cal_requests: 6,
            cal_retries: 3,
            cal_start_delay_s: 5,
            ref_client_conf: Vec::new(),
        }
    }
}

impl UpOptions {
    /// Checks counts and ranges; the message says what to change.
    pub fn check(&self) -> Result<(), String> {
        let servers = self.servers + self.ref_servers;
        let hosts = servers + self.clients + self.ref_clients;
        if servers == 0 {
            return Err("a lab needs at least one server (--servers or --ref-servers)".into());
        }
        if hosts > MAX_HOSTS {
            return Err(format!("{hosts} hosts: a lab has at most {MAX_HOSTS}"));
        }
        if servers > usize::from(u16::MAX) {
            return Err("too many servers for distinct key ids".into());
        }
        if self.poll > 17 {
            return Err(format!("--poll {}: must be 0..17", self.poll));
        }
        if !(1..=8).contains(&self.cal_requests) {
            return Err(format!(
                "--cal-requests {}: must be 1..8",
                self.cal_requests
            ));
        }
        if self.cal_retries > 10 {
            return Err(format!("--cal-retries {}: must be 0..10", self.cal_retries));
        }
        if let Some(line) = self.ref_client_conf.iter().find(|l| l.contains('\n')) {
            return Err(format!("--ref-conf {line:?}: one line per option"));
        }
        Ok(())
    }
}

/// What a lab host runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `mcast-server`.
    OurServer,
    /// ntpd 4.2.8p15 `broadcast`.
    RefServer,
    /// `mcast-client`.
    OurClient,
    /// ntpd 4.2.8p15 `multicastclient`.
    RefClient,
}

impl Kind {
    /// `server` or `client`.
    pub fn role(self) -> &'static str {
        if self.is_server() { "server" } else { "client" }
    }

    /// Whether it is a server.
    pub fn is_server(self) -> bool {
        matches!(self, Kind::OurServer | Kind::RefServer)
    }

    /// The program, as the table shows it.
    pub fn program(self) -> String {
        match self {
            Kind::OurServer => "mcast-server".into(),
            Kind::OurClient => "mcast-client".into(),
            Kind::RefServer | Kind::RefClient => format!("ntpd {}", refntpd::VERSION),
        }
    }
}

/// A process the lab started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// Its PID.
    pub pid: u32,
    /// Its start time (`/proc/PID/stat` field 22, clock ticks since boot):
    /// with the PID, what identifies it.
    pub start_time: u64,
    /// The program it runs.
    pub program: PathBuf,
}

/// One host of a lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostRecord {
    /// `h<i>`.
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address on `eth0`.
    pub addr: Ipv4Addr,
    /// What it runs.
    pub kind: Kind,
    /// The key a server signs with.
    pub key: Option<u16>,
    /// The program's configuration file.
    pub config: PathBuf,
    /// The program's log (ntpd: its `logfile`).
    pub log: PathBuf,
    /// The program's stdout and stderr.
    pub out: PathBuf,
    /// Our programs' control socket.
    pub socket: Option<PathBuf>,
    /// The process, once started.
    pub process: Option<ProcRecord>,
}

/// Everything a lab made, as `state.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    /// The lab's name.
    pub name: String,
    /// Its state directory.
    pub dir: PathBuf,
    /// When `up` started (Unix seconds).
    pub created_unix_s: u64,
    /// What was asked for.
    pub options: UpOptions,
    /// The switch namespace.
    pub switch_ns: String,
    /// Namespaces created (or about to be: recorded before `ip netns add`).
    pub namespaces: Vec<String>,
    /// The hosts.
    pub hosts: Vec<HostRecord>,
    /// The keys file.
    pub keys: PathBuf,
    /// tcpdump on the bridge (unicast NTP only).
    pub capture: Option<ProcRecord>,
    /// Its pcap file.
    pub pcap: PathBuf,
    /// `ntpq`, when the lab runs reference ntpd.
    pub ntpq: Option<PathBuf>,
    /// `LD_LIBRARY_PATH` for ntpd and ntpq.
    pub ntpd_libdir: Option<PathBuf>,
    /// Whether `up` finished.
    pub complete: bool,
}

/// Checks a lab name: 1 to 12 lowercase letters and digits.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=12).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "lab name {name:?}: use 1 to 12 lowercase letters and digits"
        ))
    }
}

/// The start of every namespace name of lab `name`.
pub fn ns_prefix(name: &str) -> String {
    format!("{NS_PREFIX}{name}-")
}

/// The state directory of lab `name`.
pub fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl LabState {
    /// Reads lab `name`'s state file.
    pub fn load(name: &str) -> Result<LabState, String> {
        let path = state_file(&state_dir(name));
        let text = fs::read_to_string(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                format!("no lab {name:?} is up ({} does not exist)", path.display())
            } else {
                format!("{}: {e}", path.display())
            }
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the state file (atomically: a reader never sees half of it).
    fn save(&self) -> Result<(), String> {
        let path = state_file(&self.dir);
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("state: {e}"))?;
        fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The server hosts.
    pub fn servers(&self) -> impl Iterator<Item = &HostRecord> {
        self.hosts.iter().filter(|h| h.kind.is_server())
    }
}

/// Where our binaries are.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `mcast-server`.
    pub server: PathBuf,
    /// `mcast-client`.
    pub client: PathBuf,
}

impl Bins {
    /// From `$MCAST_LAB_BIN_DIR` (what `scripts/lab` built), otherwise
    /// built now with cargo in the profile of this executable.
    pub fn locate() -> Result<Bins, String> {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
            let dir = PathBuf::from(dir);
            let server = dir.join("mcast-server");
            let client = dir.join("mcast-client");
            for p in [&server, &client] {
                if !p.is_file() {
                    return Err(format!(
                        "{} missing (from ${BIN_DIR_ENV}); build it first",
                        p.display()
                    ));
                }
            }
            return Ok(Bins { server, client });
        }
        let server = bins::bin_path("mcast-server").map_err(|e| e.to_string())?;
        let client = bins::bin_path("mcast-client").map_err(|e| e.to_string())?;
        Ok(Bins { server, client })
    }
}

// ---- processes --------------------------------------------------------------

/// State letter and start time of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the command name (which may hold spaces and parentheses):
/// state is field 3, start time field 22.
fn parse_stat(text: &str) -> Option<(char, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Whether the recorded process still runs (a zombie has exited: on a
/// machine whose init does not reap, a lab's exited daemons stay zombies).
pub fn is_running(p: &ProcRecord) -> bool {
    proc_stat(p.pid)
        .is_some_and(|(state, start)| start == p.start_time && !matches!(state, 'Z' | 'X' | 'x'))
}

/// Signals a recorded process if it still is that process.
fn signal(p: &ProcRecord, sig: Signal) -> bool {
    if !is_running(p) {
        return false;
    }
    let Some(pid) = i32::try_from(p.pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    kill_process(pid, sig).is_ok()
}

fn tool(name: &str) -> Result<PathBuf, String> {
    netns::find_program(name).ok_or_else(|| format!("`{name}` not found: run scripts/install-deps"))
}

/// `ip netns exec NS setpriv <no CAP_SYS_TIME> PROGRAM`.
fn ns_command(ns: &str, program: &Path) -> Result<Command, String> {
    let mut cmd = Command::new(tool("ip")?);
    cmd.args(["netns", "exec", ns])
        .arg(tool("setpriv")?)
        .args(netns::DROP_SYS_TIME)
        .arg(program);
    Ok(cmd)
}

/// Runs a program in a namespace (without `CAP_SYS_TIME`) and waits.
fn ns_output(
    ns: &str,
    program: &Path,
    args: &[&str],
    envs: &[(&str, &OsStr)],
) -> Result<Output, String> {
    let mut cmd = ns_command(ns, program)?;
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output()
        .map_err(|e| format!("in {ns}: {}: {e}", program.display()))
}

/// Starts `program ARGS` in `ns` without `CAP_SYS_TIME`, detached (own
/// process group, stdout and stderr to `out`), and returns its record
/// once it runs its program without the capability (killed otherwise).
/// `record` is called with the process before anything else happens, so
/// the caller can write it to the state file.
#[allow(
    clippy::zombie_processes,
    reason = "the daemon outlives this command on purpose; `down` ends it by PID and start time"
)]
fn spawn_detached(
    ns: &str,
    program: &Path,
    args: &[OsString],
    envs: &[(&str, &OsStr)],
    out: &Path,
    record: &mut dyn FnMut(&ProcRecord) -> Result<(), String>,
) -> Result<ProcRecord, String> {
    let log = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", out.display()))?;
    let mut cmd = ns_command(ns, program)?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Not in the terminal's job: Ctrl-C on a later command never
        // reaches the lab's daemons.
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("start {} in {ns}: {e}", program.display()))?;
    // Unreaped until this process exits, so the PID cannot be reused
    // before its start time is read.
    let pid = child.id();
    let start_time = proc_stat(pid).map(|(_, s)| s).ok_or_else(|| {
        format!(
            "{} in {ns} (pid {pid}) vanished at start",
            program.display()
        )
    })?;
    let rec = ProcRecord {
        pid,
        start_time,
        program: program.to_owned(),
    };
    record(&rec)?;
    verify_no_sys_time(&rec, ns)?;
    Ok(rec)
}

/// Waits until the process has passed `ip` and `setpriv` and checks that
/// `CAP_SYS_TIME` is in none of its permitted, effective and bounding sets;
/// SIGKILLs it otherwise.
fn verify_no_sys_time(p: &ProcRecord, ns: &str) -> Result<(), String> {
    let want = fs::canonicalize(&p.program).unwrap_or_else(|_| p.program.clone());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !is_running(p) {
            // Exited already: it holds nothing any more.
            return Ok(());
        }
        let exe = fs::read_link(format!("/proc/{}/exe", p.pid)).ok();
        if exe.as_deref() == Some(want.as_path()) {
            let caps = netns::read_caps(p.pid);
            if caps.len() == 3 {
                if let Some((name, v)) = caps.iter().find(|(_, v)| netns::has_sys_time(*v)) {
                    signal(p, Signal::KILL);
                    return Err(format!(
                        "SAFETY: {} in {ns} (pid {}) held CAP_SYS_TIME in {name} ({v:x}); killed it",
                        p.program.display(),
                        p.pid
                    ));
                }
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            signal(p, Signal::KILL);
            return Err(format!(
                "{} in {ns} (pid {}) did not reach its program within {START_TIMEOUT:?}; killed it",
                p.program.display(),
                p.pid
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

// ---- up ---------------------------------------------------------------------

/// Builds lab `name` and starts everything in it; returns its state.
/// Refuses (changing nothing) when a lab of that name is up. If a step
/// fails, what was built is removed again (the logs are kept for reading)
/// unless `keep_on_failure`, which leaves it for `down`.
pub fn up(
    name: &str,
    opts: &UpOptions,
    bins: &Bins,
    keep_on_failure: bool,
) -> Result<LabState, String> {
    check_name(name)?;
    opts.check()?;
    netns::require_root()?;
    tool("tcpdump")?;
    let install = if opts.ref_servers + opts.ref_clients > 0 {
        Some(Install::locate().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let dir = state_dir(name);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The state file is the lock: one `up` per name. (The directory may
    // hold the logs of an earlier lab, kept by `down --keep-files`.)
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(state_file(&dir))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                format!(
                    "lab {name:?} is up already (state in {}): `lab status` shows it, \
                     `lab down` removes it",
                    dir.display()
                )
            } else {
                format!("{}: {e}", dir.display())
            }
        })?;
    let prefix = ns_prefix(name);
    let existing: Vec<String> = netns::list_namespaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if !existing.is_empty() {
        let _ = fs::remove_file(state_file(&dir));
        return Err(format!(
            "namespaces of lab {name:?} exist without its state ({}): `lab down` removes them",
            existing.join(" ")
        ));
    }
    match build(name, &dir, opts, bins, install.as_ref()) {
        Ok(state) => Ok(state),
        Err(e) if keep_on_failure => Err(format!(
            "{e}\nthe half-built lab is left in place (logs in {}); `lab down` removes it",
            dir.display()
        )),
        Err(e) => {
            let cleanup = match down(name, true) {
                Ok(_) => format!(
                    "removed what was built; logs kept in {} (`lab down` removes them)",
                    dir.display()
                ),
                Err(d) => format!("cleaning up failed too: {d}; run `lab down`"),
            };
            Err(format!("{e}\n{cleanup}"))
        }
    }
}

/// The steps of `up` once it holds the lock.
fn build(
    name: &str,
    dir: &Path,
    opts: &UpOptions,
    bins: &Bins,
    install: Option<&Install>,
) -> Result<LabState, String> {
    let mut state = plan(name, dir, opts, install);
    state.save()?;
    write_keys(&state)?;
    build_lan(&mut state)?;
    if opts.drop_replies {
        drop_replies(&state)?;
    }
    start_capture(&mut state)?;
    // Servers first: clients find them broadcasting from the start.
    let mut order: Vec<(bool, usize)> = state
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (!h.kind.is_server(), i))
        .collect();
    order.sort_unstable();
    for (_, i) in order {
        start_host(&mut state, i, bins, install)?;
    }
    state.complete = true;
    state.save()?;
    Ok(state)
}

/// The hosts and files of a lab, nothing made yet.
fn plan(name: &str, dir: &Path, opts: &UpOptions, install: Option<&Install>) -> LabState {
    let prefix = ns_prefix(name);
    let kinds = std::iter::repeat_n(Kind::OurServer, opts.servers)
        .chain(std::iter::repeat_n(Kind::RefServer, opts.ref_servers))
        .chain(std::iter::repeat_n(Kind::OurClient, opts.clients))
        .chain(std::iter::repeat_n(Kind::RefClient, opts.ref_clients));
    let mut key = 0u16;
    let hosts = kinds
        .enumerate()
        .map(|(i, kind)| {
            let n = i + 1;
            let h = format!("h{n}");
            let last = u8::try_from(n).unwrap_or(u8::MAX);
            let ours = matches!(kind, Kind::OurServer | Kind::OurClient);
            let host_key = kind.is_server().then(|| {
                key += 1;
                key
            });
            HostRecord {
                ns: format!("{prefix}{h}"),
                addr: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], last),
                kind,
                key: host_key,
                config: dir.join(if ours {
                    format!("{h}.toml")
                } else {
                    format!("{h}.ntpd.conf")
                }),
                log: dir.join(format!("{h}.log")),
                out: dir.join(if ours {
                    format!("{h}.log")
                } else {
                    format!("{h}.out")
                }),
                socket: ours.then(|| dir.join(format!("{h}.sock"))),
                process: None,
                name: h,
            }
        })
        .collect();
    LabState {
        name: name.to_owned(),
        dir: dir.to_owned(),
        created_unix_s: now_unix(),
        options: opts.clone(),
        switch_ns: format!("{prefix}sw"),
        namespaces: Vec::new(),
        hosts,
        keys: dir.join("ntp.keys"),
        capture: None,
        pcap: dir.join("unicast.pcap"),
        ntpq: install.map(Install::ntpq),
        ntpd_libdir: install.map(|i| i.libdir.clone()),
        complete: false,
    }
}

/// One key per server, fresh random secrets, mode 0600.
fn write_keys(state: &LabState) -> Result<(), String> {
    let mut text = format!(
        "# keys of mcast-lab {:?}: one per server (ntpd's keys file format)\n",
        state.name
    );
    for (n, h) in state.servers().enumerate() {
        let Some(id) = h.key else { continue };
        let (kind, len) = state.options.key_type.for_server(n + 1);
        let mut secret = vec![0u8; len];
        File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut secret))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
        let _ = writeln!(
            text,
            "{id} {kind} {}  # {} {}",
            hex::encode(secret),
            h.name,
            h.addr
        );
    }
    // A fresh file, so the mode is ours whatever an old one had.
    let _ = fs::remove_file(&state.keys);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&state.keys)
        .map_err(|e| format!("{}: {e}", state.keys.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", state.keys.display()))
}

fn ip(args: &[&str]) -> Result<String, String> {
    netns::run_ip(args).map_err(|e| e.to_string())
}

/// Records a namespace in the state file, then creates it.
fn add_namespace(state: &mut LabState, ns: &str) -> Result<(), String> {
    state.namespaces.push(ns.to_owned());
    state.save()?;
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"]).map(drop)
}

/// The bridge and one veth per host, as `netns::Lan` builds them.
fn build_lan(state: &mut LabState) -> Result<(), String> {
    let sw = state.switch_ns.clone();
    add_namespace(state, &sw)?;
    crate::netns::add_bridge(&sw).map_err(|e| format!("bridge in {sw}: {e}"))?;
    let sh = tool("sh")?;
    for (i, h) in state.hosts.clone().iter().enumerate() {
        add_namespace(state, &h.ns)?;
        // Multicast from any source is taken (no reverse-path filter).
        let out = ns_output(
            &h.ns,
            &sh,
            &[
                "-c",
                "for f in all default; do echo 0 > /proc/sys/net/ipv4/conf/$f/rp_filter || exit 1; done",
            ],
            &[],
        )?;
        if !out.status.success() {
            return Err(format!(
                "in {}: rp_filter: {}",
                h.ns,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let port = format!("p{}", i + 1);
        let mac = format!("02:00:c6:00:00:{:02x}", i + 1);
        ip(&[
            "link", "add", "name", "eth0", "netns", &h.ns, "address", &mac, "type", "veth", "peer",
            "name", &port, "netns", &sw,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", &sw, "link", "set", &port, "up"])?;
        ip(&["-n", &h.ns, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &h.ns,
            "addr",
            "add",
            &format!("{}/24", h.addr),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
    }
    Ok(())
}

/// In every server: a blackhole route to every client, so unicast replies
/// never leave (as behind a firewall that drops them); the broadcasts go
/// to the group and still arrive.
fn drop_replies(state: &LabState) -> Result<(), String> {
    for s in state.servers() {
        for c in state.hosts.iter().filter(|h| !h.kind.is_server()) {
            ip(&[
                "-n",
                &s.ns,
                "route",
                "add",
                "blackhole",
                &format!("{}/32", c.addr),
            ])?;
        }
    }
    Ok(())
}

/// tcpdump on the bridge for unicast NTP (requests and replies; the
/// broadcasts are left out so the file stays small).
fn start_capture(state: &mut LabState) -> Result<(), String> {
    let tcpdump = tool("tcpdump")?;
    let log = state.dir.join("unicast.pcap.log");
    let args: Vec<OsString> = [
        "-i",
        "br0",
        "-n",
        // Stay root: the drop to user `tcpdump` could not write here.
        "-Z",
        "root",
        "--immediate-mode",
        "-U",
        "-s",
        "256",
        "-w",
    ]
    .iter()
    .map(OsString::from)
    .chain([state.pcap.as_os_str().to_owned()])
    .chain(
        [
            "udp",
            "port",
            "123",
            "and",
            "not",
            "dst",
            "net",
            "224.0.0.0/4",
        ]
        .iter()
        .map(OsString::from),
    )
    .collect();
    let sw = state.switch_ns.clone();
    let rec = spawn_detached(&sw, &tcpdump, &args, &[], &log, &mut |p| {
        state.capture = Some(p.clone());
        state.save()
    })?;
    wait_ready(&format!("tcpdump on {sw}/br0"), &rec, &log, || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("listening on")
    })
}

/// Polls `ready` until it holds; fails with the log if the process exits
/// or the time is up.
fn wait_ready(
    what: &str,
    p: &ProcRecord,
    log: &Path,
    mut ready: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if ready() {
            return Ok(());
        }
        if !is_running(p) {
            return Err(format!(
                "{what} exited at start; {}:\n{}",
                log.display(),
                tail(log, 20)
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{what} not ready within {START_TIMEOUT:?}; {}:\n{}",
                log.display(),
                tail(log, 20)
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Our server's configuration.
fn our_server_config(state: &LabState, h: &HostRecord) -> String {
    let poll = state.options.poll;
    let fast = if poll < 3 {
        "lab-allow-fast-poll = true\n"
    } else {
        ""
    };
    format!(
        "# mcast-lab {lab:?} {name} ({addr})\nkeys = {keys:?}\nport = {NTP_PORT}\n\
         control-socket = {sock:?}\n{fast}{dest}{source}",
        lab = state.name,
        name = h.name,
        addr = h.addr,
        keys = state.keys,
        sock = h.socket.clone().unwrap_or_default(),
        dest = lab::destination(
            &GROUP.to_string(),
            u32::from(h.key.unwrap_or(0)),
            i8::try_from(poll).unwrap_or(i8::MAX),
            ""
        ),
        source = lab::local_source(2),
    )
}

/// Our client's configuration: every server of the lab, each with its key.
fn our_client_config(state: &LabState, h: &HostRecord) -> String {
    let o = &state.options;
    let servers = state.servers().count();
    let mut s = format!(
        "# mcast-lab {lab:?} {name} ({addr})\nkeys = {keys:?}\nport = {NTP_PORT}\n\
         control-socket = {sock:?}\n\
         [[listen]]\ngroup = \"{GROUP}\"\ninterface = \"eth0\"\n\
         [calibration]\nstart-delay-max-s = {delay}\nrequests = {req}\nspacing-s = 2\n\
         retries = {ret}\n\
         [selection]\nmin-agreeing = {agree}\n\
         [clock]\n# Never touch the clock: it is shared by every namespace.\nmode = \"monitor\"\n",
        lab = state.name,
        name = h.name,
        addr = h.addr,
        keys = state.keys,
        sock = h.socket.clone().unwrap_or_default(),
        delay = o.cal_start_delay_s,
        req = o.cal_requests,
        ret = o.cal_retries,
        agree = if servers >= 3 { 2 } else { 1 },
    );
    for srv in state.servers() {
        let _ = write!(
            s,
            "[[server]]\naddress = \"{}\"\nkey = {}\nname = \"{}\"\n",
            srv.addr,
            srv.key.unwrap_or(0),
            srv.name
        );
    }
    s
}

/// A reference ntpd's configuration.
fn ntpd_config(state: &LabState, h: &HostRecord) -> Result<String, String> {
    let label = format!("{} of mcast-lab {:?}", h.name, state.name);
    let conf = if h.kind == Kind::RefServer {
        let key = h.key.unwrap_or(0);
        let poll = state.options.poll.max(3);
        let body =
            refntpd::server_body(IpAddr::V4(GROUP), Some(key), poll).map_err(|e| e.to_string())?;
        refntpd::config_text(&label, &state.keys, &[key], &h.log, &body, "")
    } else {
        let trusted: Vec<u16> = state.servers().filter_map(|s| s.key).collect();
        refntpd::config_text(
            &label,
            &state.keys,
            &trusted,
            &h.log,
            &refntpd::client_body(IpAddr::V4(GROUP)),
            &state.options.ref_client_conf.join("\n"),
        )
    };
    conf.map_err(|e| e.to_string())
}

/// Writes host `i`'s configuration, starts its program, waits until it is
/// ready.
fn start_host(
    state: &mut LabState,
    i: usize,
    bins: &Bins,
    install: Option<&Install>,
) -> Result<(), String> {
    let h = state
        .hosts
        .get(i)
        .cloned()
        .ok_or_else(|| format!("no host {i}"))?;
    let what = format!("{} in {} ({})", h.kind.program(), h.name, h.ns);
    let (program, args, envs, text) = match h.kind {
        Kind::OurServer | Kind::OurClient => {
            let (bin, text) = if h.kind == Kind::OurServer {
                (&bins.server, our_server_config(state, &h))
            } else {
                (&bins.client, our_client_config(state, &h))
            };
            let args: Vec<OsString> = vec!["run".into(), "-c".into(), h.config.clone().into()];
            (bin.clone(), args, Vec::new(), text)
        }
        Kind::RefServer | Kind::RefClient => {
            let install = install.ok_or_else(|| "reference ntpd is not installed".to_owned())?;
            let args: Vec<OsString> = vec!["-n".into(), "-c".into(), h.config.clone().into()];
            let envs = vec![("LD_LIBRARY_PATH", install.libdir.clone().into_os_string())];
            (install.ntpd(), args, envs, ntpd_config(state, &h)?)
        }
    };
    fs::write(&h.config, &text).map_err(|e| format!("{}: {e}", h.config.display()))?;
    if h.kind == Kind::OurServer {
        mcast_config::ServerConfig::load_with_keys(&h.config).map_err(|e| e.to_string())?;
    } else if h.kind == Kind::OurClient {
        mcast_config::ClientConfig::load_with_keys(&h.config).map_err(|e| e.to_string())?;
    }
    let env_refs: Vec<(&str, &OsStr)> = envs.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let rec = spawn_detached(&h.ns, &program, &args, &env_refs, &h.out, &mut |p| {
        if let Some(host) = state.hosts.get_mut(i) {
            host.process = Some(p.clone());
        }
        state.save()
    })?;
    match h.kind {
        Kind::OurServer | Kind::OurClient => {
            let ready = format!(
                "{} running",
                if h.kind == Kind::OurServer {
                    "mcast-server"
                } else {
                    "mcast-client"
                }
            );
            wait_ready(&what, &rec, &h.log, || {
                fs::read_to_string(&h.log)
                    .unwrap_or_default()
                    .contains(&ready)
            })
        }
        Kind::RefServer | Kind::RefClient => wait_ready(&what, &rec, &h.log, || {
            ntpq(state, &h.ns, &["-c", "rv 0 version"]).is_ok_and(|o| o.contains("version="))
        }),
    }
}

/// Runs `ntpq ARGS 127.0.0.1` in a namespace (1 s timeout per query).
fn ntpq(state: &LabState, ns: &str, args: &[&str]) -> Result<String, String> {
    let ntpq = state
        .ntpq
        .as_deref()
        .ok_or_else(|| "this lab has no ntpq".to_owned())?;
    let mut all = vec!["-c", "timeout 1000"];
    all.extend_from_slice(args);
    all.push("127.0.0.1");
    let lib = state.ntpd_libdir.clone().unwrap_or_default();
    let out = ns_output(ns, ntpq, &all, &[("LD_LIBRARY_PATH", lib.as_os_str())])?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && !stdout.contains("timed out") {
        Ok(stdout)
    } else {
        Err(format!(
            "ntpq {} in {ns}: {}{}",
            args.join(" "),
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

// ---- status -----------------------------------------------------------------

/// One row of the status table: a server, or one client's view of one
/// server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `h<i>`.
    pub host: String,
    /// `server` or `client`.
    pub role: String,
    /// `mcast-server`, `mcast-client` or `ntpd 4.2.8p15`.
    pub program: String,
    /// The host's address.
    pub address: Ipv4Addr,
    /// For a client row: the server this row is about.
    pub server: Option<Ipv4Addr>,
    /// ntpq's `t`: `b` broadcast client, `u` unicast client, `-` nothing
    /// yet, `M` multicast server.
    pub t: String,
    /// Ours: `listening`, `calibrating`, `tracking`; ntpd: `unicast` (t =
    /// u: its calibration volley, or polling by unicast), `broadcast`, or
    /// `no association`; servers: `sending` or `silent`; `exited` when the
    /// process is gone.
    pub mode: String,
    /// Ours: tracking with the fallback delay after calibration failed.
    pub fallback: bool,
    /// Reach register.
    pub reach: Option<u8>,
    /// Clients: unicast requests the program says it sent to this server
    /// (ours: `unicast_sent`; ntpd: the association's `sent`). Our
    /// servers: replies sent.
    pub unicast_sent: Option<u64>,
    /// The same on the wire, counted in the bridge capture: clients'
    /// mode-3 requests to this server, servers' mode-4 replies.
    pub wire: u64,
    /// Offset, ms.
    pub offset_ms: Option<f64>,
    /// Whether the process runs.
    pub running: bool,
    /// Calibration result, the servers' unicast pollers, or why the
    /// process exited.
    pub note: String,
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The lab's name.
    pub lab: String,
    /// Seconds since `up`.
    pub up_s: u64,
    /// What was asked for.
    pub options: UpOptions,
    /// Whether `up` finished.
    pub complete: bool,
    /// Hosts.
    pub hosts: usize,
    /// The switch namespace.
    pub switch_ns: String,
    /// The rows, servers first.
    pub rows: Vec<Row>,
}

/// Unicast NTP packets on the bridge, by (source, destination, mode).
#[derive(Debug, Default)]
struct Wire(BTreeMap<(IpAddr, IpAddr, u8), u64>);

impl Wire {
    fn from_packets(packets: &[UdpDatagram]) -> Wire {
        let mut map = BTreeMap::new();
        for p in packets {
            if p.payload.len() < 48 {
                continue;
            }
            let mode = p.payload.first().map_or(0, |b| b & 7);
            *map.entry((p.src.ip(), p.dst.ip(), mode)).or_insert(0) += 1;
        }
        Wire(map)
    }

    /// Mode-3 requests from `client` to `server`.
    fn requests(&self, client: Ipv4Addr, server: Ipv4Addr) -> u64 {
        self.0
            .get(&(IpAddr::V4(client), IpAddr::V4(server), 3))
            .copied()
            .unwrap_or(0)
    }

    /// Mode-4 replies from `server` to anyone.
    fn replies(&self, server: Ipv4Addr) -> u64 {
        self.0
            .iter()
            .filter(|((src, _, mode), _)| *src == IpAddr::V4(server) && *mode == 4)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Reads every host's state: the rows of the table.
pub fn status(name: &str) -> Result<Report, String> {
    check_name(name)?;
    let state = LabState::load(name)?;
    let packets = netns::read_growing_pcap_udp(&state.pcap).unwrap_or_default();
    let wire = Wire::from_packets(&packets);
    let servers: Vec<Ipv4Addr> = state.servers().map(|s| s.addr).collect();
    let mut rows = Vec::new();
    for h in &state.hosts {
        let running = h.process.as_ref().is_some_and(is_running);
        let base = Row {
            host: h.name.clone(),
            role: h.kind.role().into(),
            program: h.kind.program(),
            address: h.addr,
            server: None,
            t: "-".into(),
            mode: "-".into(),
            fallback: false,
            reach: None,
            unicast_sent: None,
            wire: 0,
            offset_ms: None,
            running,
            note: String::new(),
        };
        if !running {
            let note = if h.process.is_none() {
                "not started".to_owned()
            } else {
                exit_reason(h)
            };
            let mode = if h.process.is_none() { "-" } else { "exited" };
            if h.kind.is_server() {
                rows.push(Row {
                    mode: mode.into(),
                    wire: wire.replies(h.addr),
                    note,
                    ..base
                });
            } else {
                for &s in &servers {
                    rows.push(Row {
                        server: Some(s),
                        mode: mode.into(),
                        wire: wire.requests(h.addr, s),
                        note: note.clone(),
                        ..base.clone()
                    });
                }
            }
            continue;
        }
        match h.kind {
            Kind::OurServer => rows.push(our_server_row(h, base, &wire)),
            Kind::RefServer => rows.push(ref_server_row(&state, h, base, &wire)),
            Kind::OurClient => rows.extend(our_client_rows(h, &base, &servers, &wire)),
            Kind::RefClient => rows.extend(ref_client_rows(&state, h, &base, &servers, &wire)),
        }
    }
    Ok(Report {
        lab: state.name.clone(),
        up_s: now_unix().saturating_sub(state.created_unix_s),
        options: state.options.clone(),
        complete: state.complete,
        hosts: state.hosts.len(),
        switch_ns: state.switch_ns.clone(),
        rows,
    })
}

/// Why a process is gone: the lines of its logs that say so (ntpd's
/// assertion failures), else the last line; without syslog-style prefixes
/// and each once (ntpd writes them to its log file and to stderr).
fn exit_reason(h: &HostRecord) -> String {
    let mut text = fs::read_to_string(&h.log).unwrap_or_default();
    if h.out != h.log {
        text.push_str(&fs::read_to_string(&h.out).unwrap_or_default());
    }
    let messages: Vec<&str> = text
        .lines()
        .map(|l| l.split_once("]: ").map_or(l, |(_, m)| m).trim())
        .filter(|l| !l.is_empty())
        .collect();
    let mut telling: Vec<&str> = Vec::new();
    for m in &messages {
        let l = m.to_ascii_lowercase();
        let says = [
            "insist",
            "assertion",
            "require",
            "error",
            "exiting",
            "fatal",
        ]
        .iter()
        .any(|w| l.contains(w));
        if says && !telling.contains(m) {
            telling.push(m);
        }
    }
    let picked = if telling.is_empty() {
        messages.last().copied().unwrap_or_default().to_owned()
    } else {
        telling.join(" | ")
    };
    format!("exited: {picked}")
}

fn our_server_row(h: &HostRecord, base: Row, wire: &Wire) -> Row {
    let socket = h.socket.clone().unwrap_or_default();
    let status = mcast_sys::control_request(&socket, "status")
        .map_err(|e| e.to_string())
        .and_then(|t| {
            serde_json::from_str::<mcast_server::daemon::Status>(&t).map_err(|e| e.to_string())
        });
    let wire_replies = wire.replies(h.addr);
    match status {
        Ok(s) => {
            let sent: u64 = s.destinations.iter().map(|d| d.sent).sum();
            let mut note = format!("{sent} broadcasts");
            if !s.unicast_polling_clients.is_empty() {
                let who: Vec<String> = s
                    .unicast_polling_clients
                    .iter()
                    .map(|p| {
                        format!(
                            "{} ({} requests, every {:.0} s)",
                            p.address, p.requests, p.average_interval_s
                        )
                    })
                    .collect();
                let _ = write!(note, "; polling by unicast: {}", who.join(", "));
            }
            let (mode, why) = if s.synchronized {
                ("sending", String::new())
            } else {
                (
                    "silent",
                    s.unsynchronized_reason
                        .map(|r| format!("; {r}"))
                        .unwrap_or_default(),
                )
            };
            Row {
                t: "M".into(),
                mode: mode.into(),
                unicast_sent: Some(s.counters.replies_sent),
                wire: wire_replies,
                note: note + &why,
                ..base
            }
        }
        Err(e) => Row {
            mode: "?".into(),
            wire: wire_replies,
            note: format!("status: {e}"),
            ..base
        },
    }
}

fn ref_server_row(state: &LabState, h: &HostRecord, base: Row, wire: &Wire) -> Row {
    let wire_replies = wire.replies(h.addr);
    match ntpq(state, &h.ns, &["-c", "rv 0 leap,stratum"]) {
        Ok(text) => {
            let vars = refntpd::parse_vars(&text);
            let leap = vars.get("leap").map_or("?", String::as_str);
            let (mode, note) = if leap == "11" || leap == "3" {
                (
                    "silent",
                    "unsynchronized (LOCAL clock not yet selected): no broadcasts".to_owned(),
                )
            } else {
                (
                    "sending",
                    format!(
                        "stratum {}",
                        vars.get("stratum").map_or("?", String::as_str)
                    ),
                )
            };
            Row {
                t: "M".into(),
                mode: mode.into(),
                wire: wire_replies,
                note,
                ..base
            }
        }
        Err(e) => Row {
            mode: "?".into(),
            wire: wire_replies,
            note: e,
            ..base
        },
    }
}

fn our_client_rows(h: &HostRecord, base: &Row, servers: &[Ipv4Addr], wire: &Wire) -> Vec<Row> {
    let socket = h.socket.clone().unwrap_or_default();
    let status = mcast_sys::control_request(&socket, "status")
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str::<ClientStatus>(&t).map_err(|e| e.to_string()));
    servers
        .iter()
        .map(|&s| {
            let row = Row {
                server: Some(s),
                wire: wire.requests(h.addr, s),
                ..base.clone()
            };
            let st = match &status {
                Ok(st) => st,
                Err(e) => {
                    return Row {
                        mode: "?".into(),
                        note: format!("status: {e}"),
                        ..row
                    };
                }
            };
            let Some(r) = st.servers.iter().find(|r| r.remote == IpAddr::V4(s)) else {
                return Row {
                    mode: "not configured".into(),
                    ..row
                };
            };
            let mode = match r.state {
                State::Listening => "listening",
                State::Calibrating => "calibrating",
                State::Tracking => "tracking",
            };
            Row {
                t: r.t.to_string(),
                mode: mode.into(),
                fallback: r.state == State::Tracking && r.calibration.starts_with("UNCALIBRATED"),
                reach: Some(r.reach),
                unicast_sent: Some(r.unicast_sent),
                offset_ms: r.offset_ms,
                note: r.calibration.clone(),
                ..row
            }
        })
        .collect()
}

/// ntpd's association ids, from `ntpq -c lassociations` (`associations`
/// leaves out a volley association that never got a reply).
fn parse_assids(text: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.next()?.parse::<u32>().ok()?;
            w.next()?.parse::<u32>().ok()
        })
        .collect()
}

/// Each association's variables, from `ntpq -c "rv ASSID srcadr,..."`
/// run for several associations at once: ntpq prints no association id
/// when given a variable list, so a block starts at each `srcadr=`.
fn parse_rv_blocks(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("srcadr=") {
            blocks.push(String::new());
        }
        if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks.iter().map(|b| refntpd::parse_vars(b)).collect()
}

/// ntpq's `t` for a peer's `hmode`.
fn hmode_t(hmode: &str) -> &'static str {
    match hmode {
        "1" | "2" => "s",
        "3" => "u",
        "5" => "M",
        "6" => "b",
        _ => "?",
    }
}

fn ref_client_rows(
    state: &LabState,
    h: &HostRecord,
    base: &Row,
    servers: &[Ipv4Addr],
    wire: &Wire,
) -> Vec<Row> {
    let peers = ntpq(state, &h.ns, &["-n", "-c", "lassociations"]).and_then(|text| {
        let ids = parse_assids(&text);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let cmds: Vec<String> = ids
            .iter()
            .map(|id| format!("rv {id} srcadr,hmode,reach,unreach,hpoll,offset,sent"))
            .collect();
        let mut args: Vec<&str> = Vec::new();
        for c in &cmds {
            args.extend(["-c", c.as_str()]);
        }
        ntpq(state, &h.ns, &args).map(|t| parse_rv_blocks(&t))
    });
    servers
        .iter()
        .map(|&s| {
            let row = Row {
                server: Some(s),
                wire: wire.requests(h.addr, s),
                ..base.clone()
            };
            let peers = match &peers {
                Ok(p) => p,
                Err(e) => {
                    return Row {
                        mode: "?".into(),
                        note: e.clone(),
                        ..row
                    };
                }
            };
            let Some(v) = peers
                .iter()
                .find(|v| v.get("srcadr").is_some_and(|a| a == &s.to_string()))
            else {
                return Row {
                    mode: "no association".into(),
                    ..row
                };
            };
            let t = hmode_t(v.get("hmode").map_or("", String::as_str));
            let mode = match t {
                "u" => "unicast",
                "b" => "broadcast",
                other => other,
            };
            let reach = v.get("reach").and_then(|r| u8::from_str_radix(r, 8).ok());
            let note = if t == "u" {
                let every = v
                    .get("hpoll")
                    .and_then(|p| p.parse::<u32>().ok())
                    .and_then(|p| 1u64.checked_shl(p))
                    .map_or_else(|| "?".to_owned(), |s| s.to_string());
                format!(
                    "client mode (calibration volley): a request every {every} s, {} unanswered polls",
                    v.get("unreach").map_or("?", String::as_str)
                )
            } else {
                String::new()
            };
            Row {
                t: t.into(),
                mode: mode.into(),
                reach,
                note,
                unicast_sent: v.get("sent").and_then(|x| x.parse().ok()),
                // ntpd shows 0 for an association without a sample.
                offset_ms: v
                    .get("offset")
                    .and_then(|x| x.parse().ok())
                    .filter(|_| reach != Some(0)),
                ..row
            }
        })
        .collect()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| x.to_string())
}

fn human_duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The table `status` prints.
pub fn render(r: &Report) -> String {
    let o = &r.options;
    let mut out = format!(
        "lab {:?}: {} hosts on br0 in {}, 198.18.0.0/24, group {GROUP}, poll {} ({} s), \
         keys {}, calibration replies {}, up {}{}\n\n",
        r.lab,
        r.hosts,
        r.switch_ns,
        o.poll,
        1u64 << o.poll,
        format!("{:?}", o.key_type).to_lowercase(),
        if o.drop_replies {
            "DROPPED"
        } else {
            "delivered"
        },
        human_duration(r.up_s),
        if r.complete {
            ""
        } else {
            " (INCOMPLETE: `up` did not finish)"
        },
    );
    let header = [
        "HOST",
        "ROLE",
        "PROGRAM",
        "ADDRESS",
        "SERVER",
        "T",
        "MODE",
        "REACH",
        "UNICAST",
        "WIRE",
        "OFFSET ms",
        "NOTE",
    ];
    let mut cells: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    let mut last_host = String::new();
    for row in &r.rows {
        let first = row.host != last_host;
        last_host.clone_from(&row.host);
        let show = |s: String| if first { s } else { String::new() };
        let mode = if row.fallback {
            format!("{} (fallback)", row.mode)
        } else {
            row.mode.clone()
        };
        cells.push(vec![
            show(row.host.clone()),
            show(row.role.clone()),
            show(row.program.clone()),
            show(row.address.to_string()),
            opt(row.server),
            row.t.clone(),
            mode,
            row.reach.map_or_else(|| "-".into(), |r| format!("{r:o}")),
            opt(row.unicast_sent),
            row.wire.to_string(),
            row.offset_ms
                .map_or_else(|| "-".into(), |x| format!("{x:+.3}")),
            row.note.clone(),
        ]);
    }
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            cells
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &cells {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let w = widths.get(c).copied().unwrap_or(0);
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(
        "\nUNICAST: clients' unicast requests to that server as the program counts them \
         (ours: unicast_sent; ntpd: the association's `sent`), our servers' replies sent.\n\
         WIRE: the same seen on the bridge (requests from the client to the server; \
         replies leaving the server).\n",
    );
    out
}

// ---- down -------------------------------------------------------------------

/// Stops every process lab `name` recorded, deletes its namespaces and its
/// state directory (`keep_files`: everything but `state.json`). Idempotent;
/// also cleans up after an `up` that failed half way. Returns what it did.
pub fn down(name: &str, keep_files: bool) -> Result<Vec<String>, String> {
    check_name(name)?;
    let mut done = Vec::new();
    let dir = state_dir(name);
    let state = match LabState::load(name) {
        Ok(s) => Some(s),
        Err(e) if state_file(&dir).exists() => {
            done.push(format!(
                "state file unreadable ({e}); removing by name only"
            ));
            None
        }
        Err(_) => None,
    };
    // Clients first, then servers, then the capture (it sees the end).
    let mut procs: Vec<(String, ProcRecord)> = Vec::new();
    if let Some(s) = &state {
        let mut hosts: Vec<&HostRecord> = s.hosts.iter().collect();
        hosts.sort_by_key(|h| h.kind.is_server());
        for h in hosts {
            if let Some(p) = &h.process {
                procs.push((format!("{} in {}", h.kind.program(), h.name), p.clone()));
            }
        }
        if let Some(p) = &s.capture {
            procs.push(("tcpdump".into(), p.clone()));
        }
    }
    let mut stopping = Vec::new();
    for (label, p) in &procs {
        if signal(p, Signal::TERM) {
            stopping.push((label.clone(), p.clone()));
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while stopping.iter().any(|(_, p)| is_running(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (label, p) in &stopping {
        if signal(p, Signal::KILL) {
            done.push(format!(
                "killed {label} (pid {}) after {STOP_GRACE:?}",
                p.pid
            ));
        } else {
            done.push(format!("stopped {label} (pid {})", p.pid));
        }
    }
    // A process that exited may stay a zombie (reparented to an init that
    // does not reap): it no longer runs, which is what counts.
    if let Some((label, p)) = procs.iter().find(|(_, p)| is_running(p)) {
        return Err(format!(
            "{label} (pid {}) still runs after SIGKILL; namespaces left in place",
            p.pid
        ));
    }
    // Every namespace of this lab: recorded ones and, should the state be
    // lost, any with the lab's prefix. Hosts first, the switch last.
    let prefix = ns_prefix(name);
    let mut names: Vec<String> = state
        .as_ref()
        .map(|s| s.namespaces.clone())
        .unwrap_or_default();
    let present = netns::list_namespaces().map_err(|e| e.to_string())?;
    for n in &present {
        if n.starts_with(&prefix) && !names.contains(n) {
            names.push(n.clone());
        }
    }
    names.sort_by_key(|n| n.ends_with("-sw"));
    for ns in names.iter().filter(|n| present.contains(n)) {
        let pids = netns::run_ip(&["netns", "pids", ns]).unwrap_or_default();
        if !pids.trim().is_empty() {
            done.push(format!(
                "processes the lab did not start remain in {ns}: {} (left alone; deleting the name only)",
                pids.split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
        ip(&["netns", "del", ns])?;
        done.push(format!("deleted namespace {ns}"));
    }
    if dir.exists() {
        if keep_files {
            let _ = fs::remove_file(state_file(&dir));
            done.push(format!("kept files in {}", dir.display()));
        } else {
            fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            done.push(format!("removed {}", dir.display()));
        }
    }
    if done.is_empty() {
        done.push(format!("lab {name:?} is not up; nothing to do"));
    }
    Ok(done)
}

/// Names of the labs with a state directory.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(STATE_ROOT)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("state.json").exists())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_plain() {
        assert!(check_name("lab").is_ok());
        assert!(check_name("t12345").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a-b").is_err());
        assert!(check_name("Lab").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("abcdefghijklm").is_err());
        assert_eq!(ns_prefix("lab"), "mlab-lab-");
        assert!(!ns_prefix("x").starts_with(netns::NAME_PREFIX));
    }

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
        assert_eq!(parse_stat("1 (x) Z"), None);
    }

    #[test]
    fn mixed_keys_cycle_through_the_types() {
        let t: Vec<&str> = (1..=4).map(|n| KeyType::Mixed.for_server(n).0).collect();
        assert_eq!(t, ["AES128CMAC", "MD5", "SHA1", "AES128CMAC"]);
        assert_eq!(KeyType::Md5.for_server(2), ("MD5", 20));
        assert_eq!(KeyType::Cmac.for_server(1), ("AES128CMAC", 16));
    }

    #[test]
    fn options_are_checked() {
        let ok = UpOptions::default();
        assert!(ok.check().is_ok());
        let none = UpOptions {
            servers: 0,
            ..UpOptions::default()
        };
        assert!(none.check().unwrap_err().contains("at least one server"));
        let big = UpOptions {
            clients: 300,
            ..UpOptions::default()
        };
        assert!(big.check().unwrap_err().contains("at most"));
        let poll = UpOptions {
            poll: 18,
            ..UpOptions::default()
        };
        assert!(poll.check().is_err());
    }

    #[test]
    fn plan_numbers_servers_first_with_one_key_each() {
        let opts = UpOptions {
            servers: 2,
            ref_servers: 1,
            clients: 1,
            ref_clients: 2,
            ..UpOptions::default()
        };
        let s = plan("x", Path::new("/run/mcast-lab/x"), &opts, None);
        let kinds: Vec<Kind> = s.hosts.iter().map(|h| h.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::OurServer,
                Kind::OurServer,
                Kind::RefServer,
                Kind::OurClient,
                Kind::RefClient,
                Kind::RefClient
            ]
        );
        let keys: Vec<Option<u16>> = s.hosts.iter().map(|h| h.key).collect();
        assert_eq!(keys, [Some(1), Some(2), Some(3), None, None, None]);
        assert_eq!(s.hosts[3].addr, Ipv4Addr::new(198, 18, 0, 4));
        assert_eq!(s.hosts[3].ns, "mlab-x-h4");
        assert_eq!(s.switch_ns, "mlab-x-sw");
        assert!(s.hosts[0].socket.is_some() && s.hosts[2].socket.is_none());
    }

    #[test]
    fn generated_configs_are_valid_and_never_touch_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let opts = UpOptions {
            servers: 2,
            ref_servers: 1,
            clients: 1,
            ref_clients: 1,
            poll: 1,
            ..UpOptions::default()
        };
        let s = plan("x", dir.path(), &opts, None);
        write_keys(&s).unwrap();
        let server = our_server_config(&s, &s.hosts[0]);
        assert!(server.contains("lab-allow-fast-poll = true"), "{server}");
        fs::write(&s.hosts[0].config, &server).unwrap();
        mcast_config::ServerConfig::load_with_keys(&s.hosts[0].config).unwrap();
        let client = our_client_config(&s, &s.hosts[3]);
        assert!(client.contains("mode = \"monitor\""));
        assert_eq!(client.matches("[[server]]").count(), 3, "{client}");
        fs::write(&s.hosts[3].config, &client).unwrap();
        let (c, _) = mcast_config::ClientConfig::load_with_keys(&s.hosts[3].config).unwrap();
        assert_eq!(c.servers.len(), 3);
        let ntpd_server = ntpd_config(&s, &s.hosts[2]).unwrap();
        assert!(
            ntpd_server.contains("broadcast 224.0.1.1 key 3 minpoll 3"),
            "ntpd servers broadcast at 8 s or slower: {ntpd_server}"
        );
        let ntpd_client = ntpd_config(&s, &s.hosts[4]).unwrap();
        assert!(ntpd_client.contains("trustedkey 1 2 3"), "{ntpd_client}");
        assert!(ntpd_client.contains("disable ntp\ndisable kernel"));
        let keys = fs::read_to_string(&s.keys).unwrap();
        assert_eq!(keys.lines().filter(|l| !l.starts_with('#')).count(), 3);
    }

    #[test]
    fn ntpq_association_output_is_parsed() {
        let as_text = "
ind assid status  conf reach auth condition  last_event cnt
===========================================================
  1 51234  8011   yes    no  none    reject    mobilize  1
  2 51235  f63a   yes   yes   ok   sys.peer   sys_peer  3
";
        assert_eq!(parse_assids(as_text), [51234, 51235]);
        // As ntpq 4.2.8p15 prints two `rv ASSID srcadr,...` in one run.
        let rv = "srcadr=198.18.0.1, hmode=3, reach=000, offset=0.000, sent=9
srcadr=198.18.0.2, hmode=6, reach=377, offset=-0.021,
sent=5
";
        let blocks = parse_rv_blocks(rv);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0]["srcadr"], "198.18.0.1");
        assert_eq!(blocks[0]["sent"], "9");
        assert_eq!(hmode_t(&blocks[0]["hmode"]), "u");
        assert_eq!(hmode_t(&blocks[1]["hmode"]), "b");
        assert_eq!(blocks[1]["offset"], "-0.021");
    }

    #[test]
    fn wire_counts_requests_and_replies() {
        let pkt = |src: &str, dst: &str, mode: u8| UdpDatagram {
            time: Duration::ZERO,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            payload: {
                let mut p = vec![0u8; 48];
                p[0] = 0x20 | mode;
                p
            },
        };
        let w = Wire::from_packets(&[
            pkt("198.18.0.3:123", "198.18.0.1:123", 3),
            pkt("198.18.0.3:123", "198.18.0.1:123", 3),
            pkt("198.18.0.1:123", "198.18.0.3:123", 4),
            pkt("198.18.0.4:40000", "198.18.0.1:123", 3),
        ]);
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(w.requests(a("198.18.0.3"), a("198.18.0.1")), 2);
        assert_eq!(w.requests(a("198.18.0.4"), a("198.18.0.1")), 1);
        assert_eq!(w.requests(a("198.18.0.4"), a("198.18.0.2")), 0);
        assert_eq!(w.replies(a("198.18.0.1")), 1);
    }

    #[test]
    fn the_table_groups_a_clients_rows_and_marks_fallback() {
        let row = |host: &str, server: Option<&str>, mode: &str, fallback: bool| Row {
            host: host.into(),
            role: if server.is_some() { "client" } else { "server" }.into(),
            program: "mcast-client".into(),
            address: Ipv4Addr::new(198, 18, 0, 3),
            server: server.map(|s| s.parse().unwrap()),
            t: "b".into(),
            mode: mode.into(),
            fallback,
            reach: Some(0o377),
            unicast_sent: Some(4),
            wire: 4,
            offset_ms: Some(0.0123),
            running: true,
            note: "UNCALIBRATED (using 4.000 ms): no reply".into(),
        };
        let report = Report {
            lab: "lab".into(),
            up_s: 75,
            options: UpOptions::default(),
            complete: true,
            hosts: 3,
            switch_ns: "mlab-lab-sw".into(),
            rows: vec![
                row("h3", Some("198.18.0.1"), "tracking", true),
                row("h3", Some("198.18.0.2"), "calibrating", false),
            ],
        };
        let text = render(&report);
        assert!(text.contains("up 1m15s"), "{text}");
        assert!(text.contains("tracking (fallback)"), "{text}");
        assert!(text.contains("+0.012"), "{text}");
        assert!(text.contains(" 377 "), "{text}");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("198.18.0.") && !l.starts_with("lab "))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("h3"));
        assert!(
            lines[1].starts_with(' '),
            "second row of a host is grouped: {text}"
        );
    }
}
