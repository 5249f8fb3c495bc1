//! LANs of network namespaces for lab tests and benchmarks.
//!
//! A [`Lan`] is a switch namespace holding a bridge (`br0`: multicast
//! snooping off, STP off, forward delay 0) and hosts `h1..hN`, each a
//! namespace whose `eth0` is a veth plugged into the bridge:
//!
//! | what          | value                                              |
//! |---------------|----------------------------------------------------|
//! | namespaces    | `mn<pid>x<n>-sw`, `mn<pid>x<n>-h<i>`               |
//! | IPv4          | `198.18.<slot>.<i>/24` (slots 256.. use 198.19.x)  |
//! | IPv6          | `fd00:198:18:<slot hex>::<i>/64` + link-local      |
//! | MAC           | `02:00:c6:<slot hi>:<slot lo>:<i>`                 |
//! | routes        | `224.0.0.0/4 dev eth0`; IPv6 `ff00::/8` is automatic |
//!
//! The slot is claimed per Lan through a file in `/run/mcast-ntp-lab`, so
//! Lans of concurrent tests and processes never share a subnet.
//!
//! Safety (see DESIGN.md): every command this module runs, configuration
//! included, runs under `setpriv --bounding-set=-sys_time
//! --inh-caps=-sys_time`; a spawned process is checked in
//! `/proc/PID/status` and killed at once if it still holds `CAP_SYS_TIME`.
//! Processes are only ever signalled by the PID of a child this module
//! started and has not yet reaped. Dropping a [`Lan`] kills its remaining
//! children and deletes its namespaces (their veths go with them), also
//! while a test panics; if the test process itself is killed, its children
//! die with it (parent-death signal) and [`cleanup_stale`] (called by every
//! [`Lan::new`]) removes the namespaces it left.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

/// Every name this module gives a namespace starts with this.
pub const NAME_PREFIX: &str = "mn";

/// The capability a lab process must never hold (`CAP_SYS_TIME`).
const CAP_SYS_TIME_BIT: u32 = 25;

/// `setpriv` arguments that take `CAP_SYS_TIME` away for good.
pub(crate) const DROP_SYS_TIME: [&str; 2] = ["--bounding-set=-sys_time", "--inh-caps=-sys_time"];

/// Where Lans record the subnet slot they use.
const SLOT_DIR: &str = "/run/mcast-ntp-lab";

/// Subnet slots (third octet, extended into 198.19.0.0/16). Slot 0 is left
/// to hand-built labs (`198.18.0.0/24`).
const SLOTS: std::ops::RangeInclusive<u16> = 1..=511;

/// How long a spawned process may take to get from `ip netns exec` to its
/// own program.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `stop` waits after a polite signal before it kills.
const STOP_GRACE: Duration = Duration::from_secs(5);

static LAN_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Checks that this process can build Lans: root, and `ip` and `setpriv`
/// installed. Tests that need namespaces call this and fail loudly with the
/// message (never skip).
pub fn require_root() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("this test builds network namespaces and must run as root \
                    (sudo -E cargo test ...); on a fresh machine run scripts/install-deps first"
            .into());
    }
    for tool in ["ip", "setpriv"] {
        if find_program(tool).is_none() {
            return Err(format!(
                "`{tool}` not found (iproute2 / util-linux): run scripts/install-deps"
            ));
        }
    }
    Ok(())
}

/// Removes namespaces (and subnet slots) left by Lans whose creating process
/// is gone, e.g. a test run that was killed. Processes still inside such a
/// namespace are not ours to end; they are named on stderr. Returns the
/// namespaces deleted.
pub fn cleanup_stale() -> io::Result<Vec<String>> {
    let mut removed = Vec::new();
    for ns in list_namespaces()? {
        let Some(pid) = creator_pid(&ns) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let pids = run_ip(&["netns", "pids", &ns]).unwrap_or_default();
        if !pids.trim().is_empty() {
            eprintln!(
                "netns: stale namespace {ns} still holds processes {}; deleting the name only",
                pids.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
        match run_ip(&["netns", "del", &ns]) {
            Ok(_) => removed.push(ns),
            // Another process cleaning up at the same time got it first.
            Err(_) if !list_namespaces()?.contains(&ns) => {}
            Err(e) => return Err(e),
        }
    }
    if let Ok(entries) = fs::read_dir(SLOT_DIR) {
        for entry in entries.flatten() {
            let owner = fs::read_to_string(entry.path()).ok();
            let dead = owner
                .and_then(|s| s.trim().parse::<u32>().ok())
                .is_some_and(|pid| !pid_alive(pid));
            if dead {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(removed)
}

/// Which kind of `bond0` [`Lan::with_bond`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BondKind {
    /// A real bonding device (mode active-backup) with `eth0` enslaved.
    Bonding,
    /// The kernel has no bonding driver: the veth itself was renamed
    /// `bond0`. Interface-name, flap and recreate tests still apply; tests of
    /// bonding failover itself do not.
    RenamedVeth,
}

/// A LAN of network namespaces; see the module documentation.
pub struct Lan {
    shared: Arc<Shared>,
    created: Vec<String>,
    slot_file: Option<PathBuf>,
}

/// A host of a [`Lan`] (cheap to clone; valid while any clone of its Lan's
/// state lives, but its namespace is gone once the [`Lan`] is dropped).
#[derive(Clone)]
pub struct Host {
    shared: Arc<Shared>,
    index: usize,
}

/// A process started in a namespace. Dropping it kills it (SIGKILL, by the
/// PID of the child this module still holds unreaped).
pub struct NsChild {
    shared: Arc<Shared>,
    pid: u32,
    label: String,
}

/// A running `tcpdump` writing a pcap file; [`Capture::stop`] ends it
/// cleanly (SIGINT) and returns the file.
pub struct Capture {
    child: Option<NsChild>,
    path: PathBuf,
    reader: Option<JoinHandle<()>>,
}

/// One UDP datagram read back from a pcap file by [`read_pcap_udp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpDatagram {
    /// Capture time since the Unix epoch.
    pub time: Duration,
    /// Sender address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

struct Shared {
    prefix: String,
    slot: u16,
    switch_ns: String,
    hosts: Vec<HostInfo>,
    children: Mutex<HashMap<u32, Child>>,
}

struct HostInfo {
    ns: String,
    index: usize,
    addr: Ipv4Addr,
    addr6: Ipv6Addr,
    mac: String,
    port: String,
    iface: Mutex<IfaceState>,
}

#[derive(Clone)]
struct IfaceState {
    name: String,
    bonded: bool,
}

impl Lan {
    /// Builds a LAN of `hosts` hosts (1 to 254). Anything half-built is torn
    /// down again if a step fails.
    pub fn new(hosts: usize) -> io::Result<Lan> {
        if !(1..=254).contains(&hosts) {
            return Err(invalid(format!("a Lan has 1 to 254 hosts, not {hosts}")));
        }
        if let Err(e) = cleanup_stale() {
            eprintln!("netns: cleaning up stale namespaces failed: {e}");
        }
        let n = LAN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("{NAME_PREFIX}{pid}x{n}");
        let (slot, slot_file) = claim_slot(pid, n)?;
        let net = slot_net(slot);
        let mut infos = Vec::with_capacity(hosts);
        for i in 1..=hosts {
            // `i` is at most 254, so these conversions cannot fail.
            let last = u8::try_from(i).map_err(|_| invalid("host index".into()))?;
            let [a, b, c, _] = net.octets();
            let ip6_last = u16::from(last);
            infos.push(HostInfo {
                ns: format!("{prefix}-h{i}"),
                index: i,
                addr: Ipv4Addr::new(a, b, c, last),
                addr6: Ipv6Addr::new(0xfd00, 0x198, 0x18, slot, 0, 0, 0, ip6_last),
                mac: format!("02:00:c6:{:02x}:{:02x}:{last:02x}", slot >> 8, slot & 0xff),
                port: format!("p{i}"),
                iface: Mutex::new(IfaceState {
                    name: "eth0".into(),
                    bonded: false,
                }),
            });
        }
        let mut lan = Lan {
            shared: Arc::new(Shared {
                switch_ns: format!("{prefix}-sw"),
                prefix,
                slot,
                hosts: infos,
                children: Mutex::new(HashMap::new()),
            }),
            created: Vec::new(),
            slot_file: Some(slot_file),
        };
        lan.build()?;
        Ok(lan)
    }

    fn build(&mut self) -> io::Result<()> {
        let sw = self.shared.switch_ns.clone();
        run_ip(&["netns", "add", &sw])?;
        self.created.push(sw.clone());
        run_ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        add_bridge(&sw)?;
        let shared = Arc::clone(&self.shared);
        for info in &shared.hosts {
            run_ip(&["netns", "add", &info.ns])?;
            self.created.push(info.ns.clone());
            run_ip(&["-n", &info.ns, "link", "set", "lo", "up"])?;
            // Defaults first, so every interface made later inherits them:
            // no reverse-path filter (multicast from any source is taken),
            // no duplicate address detection (IPv6 addresses usable at once).
            in_ns_sh(
                &info.ns,
                "for f in net/ipv4/conf/all/rp_filter net/ipv4/conf/default/rp_filter \
                 net/ipv6/conf/all/accept_dad net/ipv6/conf/default/accept_dad; \
                 do echo 0 > /proc/sys/$f || exit 1; done",
            )?;
            self.shared.make_veth(info, "eth0")?;
        }
        Ok(())
    }

    /// Host `i` (1-based, as in `h1`). Panics if there is no such host.
    pub fn host(&self, i: usize) -> Host {
        assert!(
            (1..=self.shared.hosts.len()).contains(&i),
            "this Lan has hosts 1..={}, not {i}",
            self.shared.hosts.len()
        );
        Host {
            shared: Arc::clone(&self.shared),
            index: i,
        }
    }

    /// All hosts, `h1` first.
    pub fn hosts(&self) -> Vec<Host> {
        (1..=self.host_count()).map(|i| self.host(i)).collect()
    }

    /// How many hosts the Lan has.
    pub fn host_count(&self) -> usize {
        self.shared.hosts.len()
    }

    /// The common start of this Lan's namespace names (`mn<pid>x<n>`).
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// The switch namespace (holds bridge `br0` and ports `p1..pN`).
    pub fn switch_ns(&self) -> &str {
        &self.shared.switch_ns
    }

    /// The IPv4 subnet (network address; prefix length 24).
    pub fn subnet(&self) -> Ipv4Addr {
        slot_net(self.shared.slot)
    }

    /// Names of every namespace this Lan has created and not yet deleted.
    pub fn namespaces(&self) -> &[String] {
        &self.created
    }

    /// Gives host `i` an interface named `bond0` carrying its addresses:
    /// a real active-backup bond over `eth0` where the kernel has bonding,
    /// otherwise the veth renamed (see [`BondKind`]).
    pub fn with_bond(&self, i: usize) -> io::Result<BondKind> {
        let host = self.host(i);
        let info = host.info();
        let state = lock(&info.iface).clone();
        if state.name != "eth0" || state.bonded {
            return Err(invalid(format!("{} already has {}", info.ns, state.name)));
        }
        let ns = info.ns.as_str();
        match run_ip(&[
            "-n",
            ns,
            "link",
            "add",
            "bond0",
            "type",
            "bond",
            "mode",
            "active-backup",
            "miimon",
            "100",
        ]) {
            Ok(_) => {
                run_ip(&["-n", ns, "addr", "flush", "dev", "eth0"])?;
                run_ip(&["-n", ns, "link", "set", "eth0", "down"])?;
                run_ip(&["-n", ns, "link", "set", "eth0", "master", "bond0"])?;
                run_ip(&["-n", ns, "link", "set", "eth0", "up"])?;
                *lock(&info.iface) = IfaceState {
                    name: "bond0".into(),
                    bonded: true,
                };
                self.shared.configure_l3(info, "bond0")?;
                Ok(BondKind::Bonding)
            }
            Err(e) if e.to_string().contains("Unknown device type") => {
                run_ip(&["-n", ns, "link", "set", "eth0", "down"])?;
                run_ip(&["-n", ns, "link", "set", "eth0", "name", "bond0"])?;
                *lock(&info.iface) = IfaceState {
                    name: "bond0".into(),
                    bonded: false,
                };
                self.shared.configure_l3(info, "bond0")?;
                Ok(BondKind::RenamedVeth)
            }
            Err(e) => Err(e),
        }
    }

    /// Makes the bridge a hub: it learns no addresses (ageing time 0), so
    /// every frame, unicast included, reaches every host. An attacker host
    /// is then on-path, as on a shared segment or a mirrored port.
    pub fn hub_mode(&self) -> io::Result<()> {
        let sw = self.shared.switch_ns.as_str();
        run_ip(&[
            "-n",
            sw,
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "ageing_time",
            "0",
        ])
        .map(drop)
    }

    /// Sets options of the switch bridge: `ip link set br0 type bridge
    /// ARGS` (multicast snooping and its querier and timers:
    /// `mcast_snooping 1`, `mcast_querier 1`, `mcast_query_interval 200`,
    /// `mcast_membership_interval 600`; intervals in centiseconds).
    pub fn bridge_set(&self, args: &[&str]) -> io::Result<()> {
        let sw = self.shared.switch_ns.as_str();
        let mut all = vec!["-n", sw, "link", "set", "br0", "type", "bridge"];
        all.extend_from_slice(args);
        run_ip(&all).map(drop)
    }

    /// Runs iproute2's `bridge ARGS` in the switch namespace (`mdb show`,
    /// `mdb add dev br0 port p3 grp 224.0.1.1 permanent`, `link set dev p2
    /// mcast_flood off`) and gives its stdout.
    pub fn bridge_tool(&self, args: &[&str]) -> io::Result<String> {
        let out = ns_command(&self.shared.switch_ns, "bridge")
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "bridge {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// `ip -d link show br0` in the switch namespace: the bridge's
    /// options as the kernel has them.
    pub fn bridge_details(&self) -> io::Result<String> {
        run_ip(&["-n", &self.shared.switch_ns, "-d", "link", "show", "br0"])
    }

    /// Starts `tcpdump` on the bridge `br0` in the switch namespace, which
    /// sees every host's traffic (unicast included: tcpdump makes the
    /// bridge promiscuous), for UDP port `port`, into `path`.
    pub fn capture_switch(&self, port: u16, path: &Path) -> io::Result<Capture> {
        Capture::start(&self.shared, &self.shared.switch_ns, "br0", &[], port, path)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.shared.kill_all();
        // Hosts first, then the switch (created first).
        for ns in self.created.drain(..).rev() {
            let pids = run_ip(&["netns", "pids", &ns]).unwrap_or_default();
            if !pids.trim().is_empty() {
                eprintln!(
                    "netns: processes not started by this Lan remain in {ns}: {}",
                    pids.split_whitespace().collect::<Vec<_>>().join(" ")
                );
            }
            if let Err(e) = run_ip(&["netns", "del", &ns]) {
                eprintln!("netns: deleting namespace {ns} failed: {e}");
            }
        }
        if let Some(file) = self.slot_file.take() {
            let _ = fs::remove_file(file);
        }
    }
}

impl Host {
    fn info(&self) -> &HostInfo {
        // `Lan::host` checked the index; hosts are never removed.
        let found = self.shared.hosts.iter().find(|h| h.index == self.index);
        match found {
            Some(info) => info,
            None => unreachable!("host index checked by Lan::host"),
        }
    }

    /// The namespace name (use with `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.info().ns
    }

    /// The host number `i` of `h<i>`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The IPv4 address of its LAN interface.
    pub fn addr(&self) -> Ipv4Addr {
        self.info().addr
    }

    /// The IPv6 unique-local address of its LAN interface.
    pub fn addr6(&self) -> Ipv6Addr {
        self.info().addr6
    }

    /// The MAC address of its LAN interface (`02:00:c6:..`).
    pub fn mac(&self) -> &str {
        &self.info().mac
    }

    /// The LAN interface's name: `eth0`, or `bond0` after
    /// [`Lan::with_bond`].
    pub fn iface(&self) -> String {
        lock(&self.info().iface).name.clone()
    }

    /// Runs `program args..` in the namespace (without `CAP_SYS_TIME`) and
    /// waits for it.
    pub fn exec<S: AsRef<OsStr>>(&self, program: &str, args: &[S]) -> io::Result<Output> {
        self.exec_env(program, args, &[])
    }

    /// As [`Host::exec`], with extra environment variables.
    pub fn exec_env<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        envs: &[(&str, &OsStr)],
    ) -> io::Result<Output> {
        let mut cmd = ns_command(self.name(), program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output()
    }

    /// Starts `program args..` in the namespace without `CAP_SYS_TIME`,
    /// stdout and stderr to `log_path`. Fails (and kills it) if the process
    /// still holds `CAP_SYS_TIME` once it runs its program.
    ///
    /// The process also gets SIGKILL when the *thread* that started it
    /// ends (`setpriv --pdeathsig`), so a killed test run leaves no daemon
    /// behind; start long-lived processes from the test's own thread.
    pub fn spawn<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        log_path: &Path,
    ) -> io::Result<NsChild> {
        self.spawn_env(program, args, &[], log_path)
    }

    /// As [`Host::spawn`], with extra environment variables.
    pub fn spawn_env<S: AsRef<OsStr>>(
        &self,
        program: &str,
        args: &[S],
        envs: &[(&str, &OsStr)],
        log_path: &Path,
    ) -> io::Result<NsChild> {
        let log = File::create(log_path)?;
        let log2 = log.try_clone()?;
        let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let (child, _) = self.shared.spawn_in(
            self.name(),
            program,
            &args,
            envs,
            Stdio::from(log),
            Stdio::from(log2),
        )?;
        Ok(child)
    }

    /// Sets the LAN interface administratively down.
    pub fn link_down(&self) -> io::Result<()> {
        run_ip(&["-n", self.name(), "link", "set", &self.iface(), "down"]).map(drop)
    }

    /// Sets the LAN interface up again and restores its addresses and the
    /// multicast route (which the kernel drops while it is down).
    pub fn link_up(&self) -> io::Result<()> {
        let info = self.info();
        self.shared.configure_l3(info, &self.iface())
    }

    /// Pulls the "cable": takes the switch-side port down, so the host's
    /// interface stays up but loses carrier.
    pub fn carrier_down(&self) -> io::Result<()> {
        let sw = self.shared.switch_ns.as_str();
        run_ip(&["-n", sw, "link", "set", &self.info().port, "down"]).map(drop)
    }

    /// Plugs the "cable" back in (see [`Host::carrier_down`]).
    pub fn carrier_up(&self) -> io::Result<()> {
        let sw = self.shared.switch_ns.as_str();
        run_ip(&["-n", sw, "link", "set", &self.info().port, "up"]).map(drop)
    }

    /// Deletes the LAN interface and makes it again with the same name,
    /// MAC, addresses and route (its ifindex changes), as when a bond or
    /// a driver is reloaded.
    pub fn delete_and_recreate_interface(&self) -> io::Result<()> {
        let info = self.info();
        let state = lock(&info.iface).clone();
        let ns = info.ns.as_str();
        run_ip(&["-n", ns, "link", "del", &state.name])?;
        if state.bonded {
            // eth0 is released (and stays); bond it again.
            run_ip(&[
                "-n",
                ns,
                "link",
                "add",
                "bond0",
                "type",
                "bond",
                "mode",
                "active-backup",
                "miimon",
                "100",
            ])?;
            run_ip(&["-n", ns, "link", "set", "eth0", "down"])?;
            run_ip(&["-n", ns, "link", "set", "eth0", "master", "bond0"])?;
            run_ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            self.shared.configure_l3(info, "bond0")
        } else {
            self.shared.make_veth(info, &state.name)
        }
    }

    /// Starts `tcpdump` on this host's LAN interface for UDP port `port`,
    /// into `path` (sees only this host's traffic and multicast).
    pub fn capture(&self, port: u16, path: &Path) -> io::Result<Capture> {
        Capture::start(&self.shared, self.name(), &self.iface(), &[], port, path)
    }

    /// Starts `tcpdump -i any` in this host's namespace for UDP port
    /// `port`, into `path`: every interface, in Linux cooked framing (SLL2
    /// by default with libpcap 1.10; `link_type` picks another, e.g.
    /// `LINUX_SLL` for the original cooked header).
    pub fn capture_any(
        &self,
        port: u16,
        path: &Path,
        link_type: Option<&str>,
    ) -> io::Result<Capture> {
        let extra: Vec<&str> = link_type.map(|l| vec!["-y", l]).unwrap_or_default();
        Capture::start(&self.shared, self.name(), "any", &extra, port, path)
    }

    /// Adds secondary addresses to the LAN interface (`/prefix_len` each),
    /// all in one `ip -batch` run. Addresses must lie in this Lan's subnet
    /// (DESIGN.md: hosts stay in 198.18.0.0/15).
    pub fn add_ipv4_addresses(&self, addrs: &[Ipv4Addr], prefix_len: u8) -> io::Result<()> {
        let net = slot_net(self.shared.slot).octets();
        if let Some(a) = addrs.iter().find(|a| a.octets().get(..3) != net.get(..3)) {
            return Err(invalid(format!(
                "{a} is outside this Lan's subnet {}/24",
                slot_net(self.shared.slot)
            )));
        }
        let iface = self.iface();
        let mut batch = tempfile::NamedTempFile::new()?;
        for a in addrs {
            writeln!(batch, "addr add {a}/{prefix_len} dev {iface}")?;
        }
        batch.flush()?;
        let path = batch.path().to_string_lossy().into_owned();
        run_ip(&["-n", self.name(), "-batch", &path]).map(drop)
    }
}

impl NsChild {
    /// The PID (that of the program itself: `ip netns exec` and `setpriv`
    /// exec rather than fork).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What was started, for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        let mut map = lock(&self.shared.children);
        match map.get_mut(&self.pid) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Its exit status, if it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        let mut map = lock(&self.shared.children);
        map.get_mut(&self.pid)
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Ends it: SIGTERM, then SIGKILL if it has not exited within 5 s.
    /// Returns its exit status (`None` if it had already been reaped).
    pub fn stop(&self) -> io::Result<Option<ExitStatus>> {
        self.shared.stop_child(self.pid, Signal::TERM, STOP_GRACE)
    }

    fn interrupt(&self) -> io::Result<Option<ExitStatus>> {
        self.shared.stop_child(self.pid, Signal::INT, STOP_GRACE)
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.shared.kill_child(self.pid);
    }
}

impl Capture {
    fn start(
        shared: &Arc<Shared>,
        ns: &str,
        iface: &str,
        extra: &[&str],
        port: u16,
        path: &Path,
    ) -> io::Result<Capture> {
        let tcpdump = find_program("tcpdump").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "tcpdump not found: run scripts/install-deps",
            )
        })?;
        let log_path = PathBuf::from(format!("{}.log", path.display()));
        let mut log = File::create(&log_path)?;
        let args: Vec<OsString> = extra
            .iter()
            .chain(&[
                "-i",
                iface,
                "-n",
                // Stay root: the default drop to user `tcpdump` could not
                // write into a root-only temporary directory.
                "-Z",
                "root",
                "--immediate-mode",
                "-U",
                "-w",
            ])
            .map(OsString::from)
            .chain([path.as_os_str().to_owned()])
            .chain(
                ["udp", "port", &port.to_string()]
                    .iter()
                    .map(OsString::from),
            )
            .collect();
        let program = tcpdump.to_string_lossy().into_owned();
        let (child, stderr) =
            shared.spawn_in(ns, &program, &args, &[], Stdio::null(), Stdio::piped())?;
        let stderr = stderr.ok_or_else(|| io::Error::other("tcpdump stderr not piped"))?;
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || forward_stderr(stderr, &mut log, &tx));
        let mut capture = Capture {
            child: Some(child),
            path: path.to_owned(),
            reader: Some(reader),
        };
        // tcpdump says "listening on" once the socket and filter are in
        // place: from then on no packet is missed.
        match rx.recv_timeout(EXEC_TIMEOUT) {
            Ok(()) => Ok(capture),
            Err(_) => {
                capture.finish();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                Err(io::Error::other(format!(
                    "tcpdump on {ns}/{iface} did not start listening: {}",
                    log.trim()
                )))
            }
        }
    }

    /// The pcap file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops tcpdump (SIGINT, so it flushes and closes the file) and
    /// returns the pcap path. tcpdump's own messages are in `<path>.log`.
    pub fn stop(mut self) -> io::Result<PathBuf> {
        let status = match self.child.take() {
            Some(child) => child.interrupt()?,
            None => None,
        };
        self.finish();
        match status {
            Some(s) if !s.success() && s.code().is_some() => Err(io::Error::other(format!(
                "tcpdump exited with {s}; see {}.log",
                self.path.display()
            ))),
            _ => Ok(self.path.clone()),
        }
    }

    fn finish(&mut self) {
        drop(self.child.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.finish();
    }
}

fn forward_stderr(stderr: ChildStderr, log: &mut File, ready: &mpsc::Sender<()>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if line.contains("listening on") {
            let _ = ready.send(());
        }
    }
}

impl Shared {
    /// Starts `program` in `ns` under setpriv, registers the child, and
    /// verifies its capabilities once it runs its program.
    fn spawn_in(
        self: &Arc<Self>,
        ns: &str,
        program: &str,
        args: &[OsString],
        envs: &[(&str, &OsStr)],
        stdout: Stdio,
        stderr: Stdio,
    ) -> io::Result<(NsChild, Option<ChildStderr>)> {
        let mut cmd = ns_command(ns, program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let stderr = child.stderr.take();
        lock(&self.children).insert(pid, child);
        let guard = NsChild {
            shared: Arc::clone(self),
            pid,
            label: format!("{program} in {ns}"),
        };
        // On error the guard's drop kills it.
        self.verify_no_sys_time(&guard)?;
        Ok((guard, stderr))
    }

    /// Waits until the child has passed `ip` and `setpriv` and checks that
    /// `CAP_SYS_TIME` is in none of its permitted, effective and bounding
    /// sets; kills it at once otherwise.
    fn verify_no_sys_time(&self, child: &NsChild) -> io::Result<()> {
        let ip = find_program("ip").and_then(|p| fs::canonicalize(p).ok());
        let setpriv = find_program("setpriv").and_then(|p| fs::canonicalize(p).ok());
        let deadline = Instant::now() + EXEC_TIMEOUT;
        loop {
            if !child.is_running() {
                // Exited already: it holds nothing any more.
                return Ok(());
            }
            let exe = fs::read_link(format!("/proc/{}/exe", child.pid)).ok();
            let caps = read_caps(child.pid);
            let bnd_has = caps
                .iter()
                .any(|(name, v)| name == "CapBnd" && has_sys_time(*v));
            let in_setpriv = exe.is_some() && exe == setpriv;
            // Still `ip netns exec` (a target program `ip` is recognised by
            // its bounding set, which setpriv has already cut).
            let in_ip = exe.is_some() && exe == ip && bnd_has;
            if exe.is_some() && !in_setpriv && !in_ip && caps.len() == 3 {
                if let Some((name, v)) = caps.iter().find(|(_, v)| has_sys_time(*v)) {
                    self.kill_child(child.pid);
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!(
                            "SAFETY: {} (pid {}) held CAP_SYS_TIME in {name} ({v:x}); killed it",
                            child.label, child.pid
                        ),
                    ));
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill_child(child.pid);
                return Err(io::Error::other(format!(
                    "{} (pid {}) did not reach its program within {EXEC_TIMEOUT:?}; killed it",
                    child.label, child.pid
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `sig` if the child is still ours and running, waits up to
    /// `grace`, then kills. Returns the exit status.
    fn stop_child(&self, pid: u32, sig: Signal, grace: Duration) -> io::Result<Option<ExitStatus>> {
        {
            let mut map = lock(&self.children);
            let Some(child) = map.get_mut(&pid) else {
                return Ok(None);
            };
            if child.try_wait()?.is_none() {
                // Unreaped, so the PID is still this child's.
                kill_process(to_pid(pid)?, sig)?;
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            {
                let mut map = lock(&self.children);
                let Some(child) = map.get_mut(&pid) else {
                    return Ok(None);
                };
                if let Some(status) = child.try_wait()? {
                    map.remove(&pid);
                    return Ok(Some(status));
                }
            }
            if Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(self.kill_child(pid))
    }

    /// SIGKILLs and reaps a child if it is still registered.
    fn kill_child(&self, pid: u32) -> Option<ExitStatus> {
        let child = lock(&self.children).remove(&pid);
        child.and_then(|mut c| {
            let _ = c.kill();
            c.wait().ok()
        })
    }

    fn kill_all(&self) {
        let children: Vec<Child> = lock(&self.children).drain().map(|(_, c)| c).collect();
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Makes the veth `name` (host side) / `p<i>` (switch side) and
    /// configures it.
    fn make_veth(&self, info: &HostInfo, name: &str) -> io::Result<()> {
        // Both ends are created directly in their namespaces: no name is
        // ever taken in the root namespace.
        run_ip(&[
            "link",
            "add",
            "name",
            name,
            "netns",
            &info.ns,
            "address",
            &info.mac,
            "type",
            "veth",
            "peer",
            "name",
            &info.port,
            "netns",
            &self.switch_ns,
        ])?;
        let sw = self.switch_ns.as_str();
        run_ip(&["-n", sw, "link", "set", &info.port, "master", "br0"])?;
        run_ip(&["-n", sw, "link", "set", &info.port, "up"])?;
        self.configure_l3(info, name)
    }

    /// Brings `iface` up with the host's addresses and the IPv4 multicast
    /// route (idempotent).
    fn configure_l3(&self, info: &HostInfo, iface: &str) -> io::Result<()> {
        let ns = info.ns.as_str();
        run_ip(&["-n", ns, "link", "set", iface, "up"])?;
        let v4 = format!("{}/24", info.addr);
        run_ip(&["-n", ns, "addr", "replace", &v4, "dev", iface])?;
        let v6 = format!("{}/64", info.addr6);
        run_ip(&[
            "-n", ns, "-6", "addr", "replace", &v6, "dev", iface, "nodad",
        ])?;
        run_ip(&["-n", ns, "route", "replace", "224.0.0.0/4", "dev", iface])?;
        // IPv6 needs no route of ours: the kernel adds `multicast ff00::/8
        // dev <iface> table local` when the interface comes up.
        Ok(())
    }
}

/// Reads the UDP datagrams (IPv4 and IPv6, unfragmented) of a classic pcap
/// file with Ethernet, Linux-cooked (v1/v2) or raw-IP link type; other
/// frames are skipped.
pub fn read_pcap_udp(path: &Path) -> io::Result<Vec<UdpDatagram>> {
    let data = fs::read(path)?;
    parse_pcap_udp(&data, false).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// As [`read_pcap_udp`], for a file a running `tcpdump` is still writing:
/// a truncated last record (caught in the middle of a write) is left out.
pub fn read_growing_pcap_udp(path: &Path) -> io::Result<Vec<UdpDatagram>> {
    let data = fs::read(path)?;
    parse_pcap_udp(&data, true).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

fn parse_pcap_udp(data: &[u8], growing: bool) -> Result<Vec<UdpDatagram>, String> {
    let magic = data.get(..4).ok_or("shorter than a pcap header")?;
    let (big_endian, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (false, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (false, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (true, true),
        _ => return Err("not a classic pcap file (pcapng is not supported)".into()),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let linktype = u32_at(20).ok_or("truncated pcap header")?;
    let mut out = Vec::new();
    let mut at = 24usize;
    while at < data.len() {
        let (Some(sec), Some(frac), Some(caplen)) = (u32_at(at), u32_at(at + 4), u32_at(at + 8))
        else {
            if growing {
                break;
            }
            return Err(format!("truncated record header at byte {at}"));
        };
        let start = at + 16;
        let end = start + caplen as usize;
        let Some(frame) = data.get(start..end) else {
            if growing {
                break;
            }
            return Err(format!("truncated record at byte {at}"));
        };
        at = end;
        let time = Duration::from_secs(u64::from(sec))
            + if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
        if let Some((src, dst, payload)) = frame_udp(linktype, frame) {
            out.push(UdpDatagram {
                time,
                src,
                dst,
                payload: payload.to_vec(),
            });
        }
    }
    Ok(out)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The network-layer packet and its ethertype, per link type.
fn frame_udp(linktype: u32, frame: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let (mut ethertype, mut rest) = match linktype {
        1 => (be16(frame, 12)?, frame.get(14..)?),
        113 => (be16(frame, 14)?, frame.get(16..)?),
        276 => (be16(frame, 0)?, frame.get(20..)?),
        101 => match frame.first()? >> 4 {
            4 => (0x0800, frame),
            6 => (0x86dd, frame),
            _ => return None,
        },
        _ => return None,
    };
    while ethertype == 0x8100 {
        ethertype = be16(rest, 2)?;
        rest = rest.get(4..)?;
    }
    let (src_ip, dst_ip, udp): (IpAddr, IpAddr, &[u8]) = match ethertype {
        0x0800 => {
            let ihl = usize::from(rest.first()? & 0x0f) * 4;
            let total = usize::from(be16(rest, 2)?);
            let frag = be16(rest, 6)? & 0x3fff;
            if *rest.get(9)? != 17 || frag != 0 {
                return None;
            }
            let src: [u8; 4] = rest.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = rest.get(16..20)?.try_into().ok()?;
            (src.into(), dst.into(), rest.get(ihl..total)?)
        }
        0x86dd => {
            if *rest.get(6)? != 17 {
                return None;
            }
            let len = usize::from(be16(rest, 4)?);
            let src: [u8; 16] = rest.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = rest.get(24..40)?.try_into().ok()?;
            (src.into(), dst.into(), rest.get(40..40 + len)?)
        }
        _ => return None,
    };
    let sport = be16(udp, 0)?;
    let dport = be16(udp, 2)?;
    let ulen = usize::from(be16(udp, 4)?);
    let payload = udp.get(8..ulen)?;
    Some((
        SocketAddr::new(src_ip, sport),
        SocketAddr::new(dst_ip, dport),
        payload,
    ))
}

// ---- helpers ---------------------------------------------------------------

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn to_pid(pid: u32) -> io::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| invalid(format!("bad pid {pid}")))
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

pub(crate) fn has_sys_time(caps: u64) -> bool {
    (caps >> CAP_SYS_TIME_BIT) & 1 == 1
}

/// CapPrm, CapEff and CapBnd of a process (fewer if it is gone).
pub(crate) fn read_caps(pid: u32) -> Vec<(String, u64)> {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            if !matches!(name, "CapPrm" | "CapEff" | "CapBnd") {
                return None;
            }
            let v = u64::from_str_radix(value.trim(), 16).ok()?;
            Some((name.to_owned(), v))
        })
        .collect()
}

/// Finds a program in `PATH`, then in the sbin directories (often missing
/// from a non-login root `PATH`).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `setpriv <drop CAP_SYS_TIME> <program>`: every command this module runs
/// goes through this.
fn setpriv_command(program: &str) -> Command {
    let setpriv = find_program("setpriv").unwrap_or_else(|| PathBuf::from("setpriv"));
    let mut cmd = Command::new(setpriv);
    cmd.args(DROP_SYS_TIME).arg(program);
    cmd
}

/// `ip netns exec NS setpriv <drop CAP_SYS_TIME> <program>`.
fn ns_command(ns: &str, program: &str) -> Command {
    let ip = find_program("ip").unwrap_or_else(|| PathBuf::from("ip"));
    let setpriv = find_program("setpriv").unwrap_or_else(|| PathBuf::from("setpriv"));
    let program = find_program(program).unwrap_or_else(|| PathBuf::from(program));
    let mut cmd = Command::new(ip);
    // --pdeathsig: should this process die (even by SIGKILL), what it
    // started dies too instead of running on in a forgotten namespace.
    cmd.args(["netns", "exec", ns])
        .arg(setpriv)
        .args(["--pdeathsig", "SIGKILL"])
        .args(DROP_SYS_TIME)
        .arg(program);
    cmd
}

/// Runs `ip ARGS` (without `CAP_SYS_TIME`); its stdout, or an error with
/// Makes the switch `br0` in namespace `ns` (no STP, no forward delay, no
/// multicast snooping: every host hears every group) and sets it up.
pub(crate) fn add_bridge(ns: &str) -> io::Result<()> {
    run_ip(&[
        "-n",
        ns,
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    run_ip(&["-n", ns, "link", "set", "br0", "up"]).map(drop)
}

/// its stderr.
pub(crate) fn run_ip(args: &[&str]) -> io::Result<String> {
    let ip = find_program("ip").unwrap_or_else(|| PathBuf::from("ip"));
    let out = setpriv_command(&ip.to_string_lossy())
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a shell snippet inside `ns` (without `CAP_SYS_TIME`).
fn in_ns_sh(ns: &str, script: &str) -> io::Result<()> {
    let out = ns_command(ns, "sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "in {ns}: sh -c {script:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

pub(crate) fn list_namespaces() -> io::Result<Vec<String>> {
    let out = run_ip(&["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The creating PID encoded in a name `mn<pid>x<n>-...`, if it is one of
/// ours.
fn creator_pid(ns: &str) -> Option<u32> {
    let rest = ns.strip_prefix(NAME_PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let (n, _) = rest.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// The `/24` network of a slot: 198.18.1.0 .. 198.19.255.0.
fn slot_net(slot: u16) -> Ipv4Addr {
    let [hi, lo] = slot.to_be_bytes();
    Ipv4Addr::new(198, 18 + hi, lo, 0)
}

/// Claims a free subnet slot by creating `/run/mcast-ntp-lab/slot-<n>`
/// (holding our PID); slots of dead processes are taken over.
fn claim_slot(pid: u32, counter: usize) -> io::Result<(u16, PathBuf)> {
    fs::create_dir_all(SLOT_DIR)?;
    let count = usize::from(SLOTS.end() - SLOTS.start()) + 1;
    let first = (pid as usize).wrapping_mul(31).wrapping_add(counter) % count;
    for k in 0..count {
        let off = u16::try_from((first + k) % count).map_err(|_| invalid("slot".into()))?;
        let slot = SLOTS.start() + off;
        let path = Path::new(SLOT_DIR).join(format!("slot-{slot}"));
        for _attempt in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    writeln!(f, "{pid}")?;
                    return Ok((slot, path));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).ok();
                    let dead = owner
                        .and_then(|s| s.trim().parse::<u32>().ok())
                        .is_some_and(|p| !pid_alive(p));
                    if !dead {
                        break;
                    }
                    let _ = fs::remove_file(&path);
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(io::Error::other(format!(
        "no free Lan subnet slot in {SLOT_DIR}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_pid_only_matches_our_names() {
        assert_eq!(creator_pid("mn1234x0-h1"), Some(1234));
        assert_eq!(creator_pid("mn1234x12-sw"), Some(1234));
        assert_eq!(creator_pid("mnx0-h1"), None);
        assert_eq!(creator_pid("sw"), None);
        assert_eq!(creator_pid("mn12x-h1"), None);
        assert_eq!(creator_pid("h1"), None);
    }

    #[test]
    fn slots_stay_in_the_benchmark_range() {
        assert_eq!(slot_net(1), Ipv4Addr::new(198, 18, 1, 0));
        assert_eq!(slot_net(255), Ipv4Addr::new(198, 18, 255, 0));
        assert_eq!(slot_net(256), Ipv4Addr::new(198, 19, 0, 0));
        assert_eq!(slot_net(511), Ipv4Addr::new(198, 19, 255, 0));
    }

    #[test]
    fn sys_time_bit() {
        assert!(has_sys_time(0x1ff_ffff_ffff));
        assert!(!has_sys_time(0x1ff_fcff_ffff));
        assert!(!has_sys_time(0));
    }

    #[test]
    fn pcap_reader_reads_an_ethernet_ipv4_udp_frame() {
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        pcap.extend([0; 8]);
        pcap.extend(65535u32.to_le_bytes());
        pcap.extend(1u32.to_le_bytes());
        let payload = [0x25u8; 48];
        let mut frame = vec![0u8; 12];
        frame.extend([0x08, 0x00]);
        let ip_len = 20 + 8 + payload.len();
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 1, 17, 0, 0];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip.extend([198, 18, 1, 1, 224, 0, 1, 1]);
        frame.extend(ip);
        frame.extend(123u16.to_be_bytes());
        frame.extend(123u16.to_be_bytes());
        frame.extend(((8 + payload.len()) as u16).to_be_bytes());
        frame.extend([0, 0]);
        frame.extend(payload);
        pcap.extend(7u32.to_le_bytes());
        pcap.extend(5u32.to_le_bytes());
        pcap.extend((frame.len() as u32).to_le_bytes());
        pcap.extend((frame.len() as u32).to_le_bytes());
        pcap.extend(&frame);
        let got = parse_pcap_udp(&pcap, false).unwrap();
        // A record cut short by a write in progress: an error for a
        // finished file, left out of a growing one.
        let mut cut = pcap.clone();
        cut.extend(&pcap[24..40]);
        cut.extend(&frame[..10]);
        assert!(parse_pcap_udp(&cut, false).is_err());
        assert_eq!(parse_pcap_udp(&cut, true).unwrap(), got);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].src, "198.18.1.1:123".parse().unwrap());
        assert_eq!(got[0].dst, "224.0.1.1:123".parse().unwrap());
        assert_eq!(got[0].payload, payload);
        assert_eq!(got[0].time, Duration::new(7, 5000));
    }
}
