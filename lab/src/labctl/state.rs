//! What a lab is made of, as `state.json` records it, where it lives, and
//! where our binaries are.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{BIN_DIR_ENV, NS_PREFIX, STATE_ROOT, UpOptions};
use crate::{bins, refntpd};

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

pub(super) fn state_file(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

pub(super) fn now_unix() -> u64 {
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
    pub(super) fn save(&self) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns;

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
}
