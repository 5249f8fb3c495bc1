//! `up`: builds a lab (state file first, keys, bridge and veths, optional
//! blackhole routes, the bridge capture) and starts its hosts, servers
//! first.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::config::{ntpd_config, our_client_config, our_server_config};
use super::process::{ip, is_running, ns_output, ntpq, spawn_detached, tail, tool};
use super::state::{now_unix, state_file};
use super::{
    Bins, HostRecord, Kind, LabState, ProcRecord, START_TIMEOUT, SUBNET, UpOptions, check_name,
    down, ns_prefix, state_dir,
};
use crate::netns;
use crate::refntpd::Install;

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
pub(super) fn plan(
    name: &str,
    dir: &Path,
    opts: &UpOptions,
    install: Option<&Install>,
) -> LabState {
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
pub(super) fn write_keys(state: &LabState) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
