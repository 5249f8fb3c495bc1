//! `mcast-client` configuration: which groups to join on which interfaces,
//! which servers to trust with which key, and how calibration, selection and
//! clock control behave.
//!
//! The annotated reference is `config/examples/client.toml`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcast_keys::signed::PublicKey;
use mcast_keys::{KeyId, KeyStore};
use serde::Deserialize;

use crate::common::{self, DEFAULT_GROUP_V4};
use crate::error::{ConfigError, ConfigErrorKind};
use crate::locate::Origin;
use crate::units::{self, show_millis, show_secs};

fn default_discover_max() -> usize {
    8
}

fn default_group_silent_intervals() -> u32 {
    3
}

/// Default control socket of the client.
pub const DEFAULT_CLIENT_CONTROL_SOCKET: &str = "/run/mcast-ntp/client.sock";

/// The whole client configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClientConfig {
    /// The ntpd-format keys file (`keys`, default `/etc/mcast-ntp/ntp.keys`);
    /// a relative path is resolved against the configuration file's directory.
    #[serde(default = "common::default_keys")]
    pub keys: PathBuf,
    /// UDP port broadcasts arrive on and calibration requests go to
    /// (`port`, default 123).
    #[serde(default = "common::default_port")]
    pub port: u16,
    /// Groups to join, one per `[[listen]]` table (at least one).
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// Trusted servers, one per `[[server]]` table.
    #[serde(default, rename = "server")]
    pub servers: Vec<Server>,
    /// Also track servers that are not listed (`discover`, default false):
    /// a packet from an unlisted address is accepted when it verifies with a
    /// key whose keys-file address list allows that address, and the first
    /// key id that verifies binds the address.
    #[serde(default)]
    pub discover: bool,
    /// With `discover`, also accept keys whose keys-file line lists no
    /// addresses or whole subnets (`discover-any-address`, default false).
    /// Off, start-up is refused over such a key: any host could relay a
    /// server's packets from a spoofed address in the subnet.
    #[serde(default)]
    pub discover_any_address: bool,
    /// Most servers discovery adds (`discover-max`, default 8).
    #[serde(default = "default_discover_max")]
    pub discover_max: usize,
    /// With `discover`, the key ids discovery may bind (`discover-keys`,
    /// like ntpd's `trustedkey`); unset: every key of the keys file not
    /// bound to a `[[server]]`.
    #[serde(default, deserialize_with = "units::opt_key_ids")]
    pub discover_keys: Option<Vec<KeyId>>,
    /// `[calibration]`: the one-time unicast volley that measures the delay
    /// to each server.
    #[serde(default)]
    pub calibration: Calibration,
    /// `[selection]`: which servers may steer the clock.
    #[serde(default)]
    pub selection: Selection,
    /// `[clock]`: what the client may do to the system clock.
    #[serde(default)]
    pub clock: Clock,
    /// `[clock-bound]`: the bound on the clock's error, published for
    /// applications in AWS ClockBound's shared-memory format.
    #[serde(default)]
    pub clock_bound: ClockBound,
    /// Unix socket of the control interface (`control-socket`, default
    /// `/run/mcast-ntp/client.sock`); relative paths as for `keys`.
    #[serde(default = "default_control_socket")]
    pub control_socket: PathBuf,
    /// Unix socket of the operations that change what the client does
    /// (`recalibrate`): `operations-socket`, default the control socket's
    /// name with `-ops` (`/run/mcast-ntp/client-ops.sock`). Mode 0600, and
    /// only root or the user who started the client may use it.
    #[serde(default)]
    pub operations_socket: Option<PathBuf>,
    /// Folder for what survives a restart (`state-directory`; default
    /// systemd's `StateDirectory=`, else nothing persists): per server the
    /// transmit time of the last packet accepted, so a restarted client is
    /// never fed older ones. Must be writable by `user`.
    #[serde(default)]
    pub state_directory: Option<PathBuf>,
    /// Address to serve metrics on (`metrics`); `None` (the default) serves none.
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// User to switch to after the sockets are open (`user`); `None` keeps
    /// the starting user. The client keeps `CAP_SYS_TIME` across the switch
    /// only when `[clock] mode` is not `monitor`.
    #[serde(default)]
    pub user: Option<String>,
    /// How much to log (`log-level`, default `info`); a SIGHUP applies a
    /// changed value. `RUST_LOG`, when set, overrides it.
    #[serde(default)]
    pub log_level: common::LogLevel,
    /// No authenticated broadcast from any server for this many of the
    /// slowest server's poll intervals and the group is silent: the client
    /// logs it once with the likely causes, re-joins on a backoff (a fresh
    /// IGMP/MLD report) and `check` is CRITICAL until broadcasts return
    /// (`group-silent-intervals`, 2..=1000, default 3).
    #[serde(
        default = "default_group_silent_intervals",
        deserialize_with = "units::ranged::<_, u32, 2, 1000>"
    )]
    pub group_silent_intervals: u32,
    #[serde(skip)]
    origin: Origin,
}

/// One `[[listen]]`: a group joined on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Listen {
    /// The multicast group (`group`, default 224.0.1.1), or with
    /// `broadcast = true` the IPv4 broadcast address to receive on
    /// (e.g. `"198.18.0.255"`).
    #[serde(default = "default_group")]
    pub group: IpAddr,
    /// The interface to join on, by name (`interface`, required).
    pub interface: String,
    /// Receive IPv4 subnet broadcasts instead of joining a group
    /// (`broadcast`, default false).
    #[serde(default)]
    pub broadcast: bool,
    /// IPv4 groups: the IGMP version the interface speaks (`igmp-version`,
    /// 2 or 3); unset (the default) leaves the kernel's choice. Set, the
    /// client writes it to `/proc/sys/net/ipv4/conf/<interface>/force_igmp_version`
    /// at start (root or CAP_NET_ADMIN, and kernel settings writable: meant
    /// for a client in its own network namespace or container); where it
    /// cannot, it warns and names the sysctl to set instead.
    #[serde(default)]
    pub igmp_version: Option<u8>,
    /// IPv6 groups: the MLD version (`mld-version`, 1 or 2), as
    /// `igmp-version` through `/proc/sys/net/ipv6/conf/<interface>/force_mld_version`.
    #[serde(default)]
    pub mld_version: Option<u8>,
}

/// One `[[server]]`: a server whose broadcasts are trusted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Server {
    /// The server's unicast source address (`address`, required).
    pub address: IpAddr,
    /// The key id its packets must verify with (`key`); `None` only when
    /// `authentication = false` was set explicitly.
    #[serde(default, deserialize_with = "units::opt_key_id")]
    pub key: Option<KeyId>,
    /// Instead of `key`, several key ids its packets may verify with
    /// (`keys = [1, 2]`: the old and the new during a rollover); the first
    /// signs calibration requests.
    #[serde(default, deserialize_with = "units::opt_key_ids")]
    pub keys: Option<Vec<KeyId>>,
    /// `authentication` (default true): must be set to false, explicitly, to
    /// accept unauthenticated packets from this server.
    #[serde(default = "common::yes")]
    pub authentication: bool,
    /// A name for logs and status (`name`, optional).
    #[serde(default)]
    pub name: Option<String>,
    /// The server sends interleaved broadcasts (`interleave`, default false).
    /// Fixed by configuration, never inferred from packets.
    #[serde(default)]
    pub interleave: bool,
    /// The server's Ed25519 public key (`public-key = "ed25519:<hex>"`, as
    /// `mcast-keygen signing-key` prints it): every broadcast must carry a
    /// valid signature from it, whatever its MAC says, and so must every
    /// calibration reply (the requests carry no MAC, only a random cookie
    /// and the key's fingerprint). Alone it needs no secret on the client;
    /// with `key` beside it (a migration from shared keys) the MAC must
    /// verify as well.
    #[serde(default, deserialize_with = "units::opt_public_key")]
    pub public_key: Option<PublicKey>,
}

impl Server {
    /// Every key id its packets may verify with: `key`, or `keys` in order.
    pub fn key_ids(&self) -> Vec<KeyId> {
        match &self.keys {
            Some(list) => list.clone(),
            None => self.key.into_iter().collect(),
        }
    }

    /// The key that signs calibration requests (the first listed).
    pub fn signing_key(&self) -> Option<KeyId> {
        self.key_ids().first().copied()
    }
}

/// `[calibration]`: one short authenticated unicast volley per server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Calibration {
    /// Random delay before the first request, up to this (`start-delay-max-s`,
    /// default 5), so clients started together do not request together.
    #[serde(rename = "start-delay-max-s", deserialize_with = "units::secs")]
    pub start_delay_max: Duration,
    /// Requests per volley (`requests`, 1..=8, default 6).
    #[serde(deserialize_with = "units::ranged::<_, u8, 1, 8>")]
    pub requests: u8,
    /// Time between requests (`spacing-s`, at least 2, default 2: servers
    /// rate-limit closer requests).
    #[serde(rename = "spacing-s", deserialize_with = "units::secs")]
    pub spacing: Duration,
    /// Replies with a longer round trip are discarded (`max-round-trip-ms`,
    /// default 50, as ntpd's `broadcastdelay` cutoff).
    #[serde(rename = "max-round-trip-ms", deserialize_with = "units::millis")]
    pub max_round_trip: Duration,
    /// Further volleys after a failed one (`retries`, 0..=10, default 3).
    #[serde(deserialize_with = "units::ranged::<_, u8, 0, 10>")]
    pub retries: u8,
    /// One-way delay assumed when calibration fails (`fallback-delay-ms`,
    /// default 4, ntpd 4.2.4's `broadcastdelay`).
    #[serde(rename = "fallback-delay-ms", deserialize_with = "units::millis")]
    pub fallback_delay: Duration,
    /// Source port of the requests (`source-port`): 0 (default) for an
    /// ephemeral port, 123 where a firewall only passes NTP port to port.
    pub source_port: u16,
    /// A rare authenticated unicast spot check of each server's offset
    /// against its broadcasts (`spot-check-hours`, default 0: off; at
    /// least 1), at a random time within each such period: a delay added
    /// to broadcasts only then shows. One exchange, never polling.
    #[serde(rename = "spot-check-hours")]
    pub spot_check_hours: u32,
    /// With a state directory, a server's calibration younger than this
    /// is reused after a restart: tracked from its first broadcast, no
    /// volley (`reuse-max-age-s`, default 86400, a day; 0: always measure
    /// again).
    #[serde(rename = "reuse-max-age-s", deserialize_with = "units::secs")]
    pub reuse_max_age: Duration,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            start_delay_max: Duration::from_secs(5),
            requests: 6,
            spacing: Duration::from_secs(2),
            max_round_trip: Duration::from_millis(50),
            retries: 3,
            fallback_delay: Duration::from_millis(4),
            source_port: 0,
            spot_check_hours: 0,
            reuse_max_age: Duration::from_secs(86_400),
        }
    }
}

/// `[selection]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Selection {
    /// Servers that must agree before the clock is moved (`min-agreeing`,
    /// default 1).
    #[serde(deserialize_with = "units::ranged::<_, usize, 1, 64>")]
    pub min_agreeing: usize,
    /// Servers with a larger root distance (RFC 5905 §11.2.1) are not
    /// selectable (`max-root-distance-s`, default 1.5).
    #[serde(rename = "max-root-distance-s", deserialize_with = "units::secs")]
    pub max_root_distance: Duration,
    /// A server silent for this many of its poll intervals ages out
    /// (`silent-intervals`, 1..=1000, default 8).
    #[serde(deserialize_with = "units::ranged::<_, u32, 1, 1000>")]
    pub silent_intervals: u32,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            min_agreeing: 1,
            max_root_distance: Duration::from_millis(1500),
            silent_intervals: 8,
        }
    }
}

/// Default segment of `[clock-bound]`: where ClockBound's own daemon
/// writes it, so its client libraries find it unchanged.
pub const DEFAULT_CLOCK_BOUND_PATH: &str = "/var/run/clockbound/shm0";

/// `[clock-bound]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClockBound {
    /// Publish the bound (`enabled`, default false).
    pub enabled: bool,
    /// The segment file (`path`, default `/var/run/clockbound/shm0`,
    /// ClockBound's protocol v2 path; relative paths as for `keys`). Its
    /// folder must exist and be writable by `user`; nothing else may write
    /// to it (stop ClockBound's own daemon).
    pub path: PathBuf,
    /// Worst drift of this host's oscillator once the frequency is known,
    /// in ppm (`max-drift-ppm`, 1..=500, default 15): the rate the bound
    /// grows at between updates.
    #[serde(
        rename = "max-drift-ppm",
        deserialize_with = "units::ranged::<_, u32, 1, 500>"
    )]
    pub max_drift_ppm: u32,
    /// How long a bound stays usable if the client stops updating it
    /// (`void-after-s`, 2..=3600, default 60).
    #[serde(
        rename = "void-after-s",
        deserialize_with = "units::ranged::<_, u32, 2, 3600>"
    )]
    pub void_after_s: u32,
}

impl Default for ClockBound {
    fn default() -> Self {
        ClockBound {
            enabled: false,
            path: PathBuf::from(DEFAULT_CLOCK_BOUND_PATH),
            max_drift_ppm: 15,
            void_after_s: 60,
        }
    }
}

/// What the client may do to the system clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockMode {
    /// Measure and report only; never touch the clock (the default).
    #[default]
    Monitor,
    /// Discipline the clock by slewing only; never step.
    Slew,
    /// Slew, and step when an offset above the step threshold persists for
    /// the stepout time.
    Step,
}

/// `[clock]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Clock {
    /// `mode = "monitor" | "slew" | "step"` (default monitor).
    pub mode: ClockMode,
    /// Offsets above this are stepped rather than slewed in `step` mode
    /// (`step-threshold-s`, default 0.128, as ntpd).
    #[serde(rename = "step-threshold-s", deserialize_with = "units::secs")]
    pub step_threshold: Duration,
    /// How long an offset above the step threshold must persist before a
    /// step (`stepout-s`, default 900): a single spike never steps.
    #[serde(rename = "stepout-s", deserialize_with = "units::secs")]
    pub stepout: Duration,
    /// Offsets above this are never corrected; the client reports and waits
    /// for an operator (`panic-threshold-s`, default 1000).
    #[serde(rename = "panic-threshold-s", deserialize_with = "units::secs")]
    pub panic_threshold: Duration,
    /// In `step` mode, step at most once, at start-up, and only slew
    /// afterwards (`slew-only`, default false). No effect in other modes.
    pub slew_only: bool,
    /// In slew and step modes, the kernel is told the clock is
    /// unsynchronized again (`STA_UNSYNC`, what `timedatectl` and
    /// node_exporter show) once no server has been selected for this long
    /// (`unsync-after-s`, default 3600).
    #[serde(rename = "unsync-after-s", deserialize_with = "units::secs")]
    pub unsync_after: Duration,
    /// In `step` mode, like ntpd `-g`: the first clock update after start
    /// steps any offset up to this, whatever the panic threshold
    /// (`first-step-max-s`, default 86400, a day; 0: the panic threshold
    /// applies from the start). Further off, `mcast-client step-now`.
    #[serde(rename = "first-step-max-s", deserialize_with = "units::secs")]
    pub first_step_max: Duration,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            mode: ClockMode::Monitor,
            step_threshold: Duration::from_millis(128),
            stepout: Duration::from_secs(900),
            panic_threshold: Duration::from_secs(1000),
            slew_only: false,
            unsync_after: Duration::from_secs(3600),
            first_step_max: Duration::from_secs(86_400),
        }
    }
}

/// The operations socket beside a control socket: `client.sock` gives
/// `client-ops.sock` in the same folder.
pub fn operations_socket_for(control: &Path) -> PathBuf {
    let stem = control
        .file_stem()
        .map_or_else(|| "control".into(), |s| s.to_string_lossy().into_owned());
    let name = match control.extension() {
        Some(ext) => format!("{stem}-ops.{}", ext.to_string_lossy()),
        None => format!("{stem}-ops"),
    };
    control.with_file_name(name)
}

fn default_control_socket() -> PathBuf {
    PathBuf::from(DEFAULT_CLIENT_CONTROL_SOCKET)
}

fn default_group() -> IpAddr {
    IpAddr::V4(DEFAULT_GROUP_V4)
}

impl ClientConfig {
    /// Reads, parses and fully validates a client configuration file,
    /// including the keys file it names and the keys it references.
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        Self::load_with_keys(path).map(|(config, _)| config)
    }

    /// As [`ClientConfig::load`], and also returns the loaded keys file.
    pub fn load_with_keys(path: &Path) -> Result<(ClientConfig, KeyStore), ConfigError> {
        let text = common::read(path)?;
        let config = Self::parse(&text, path)?;
        let keys = config.load_keys()?;
        config.validate_with_keys(&keys)?;
        Ok((config, keys))
    }

    /// Parses and validates configuration text without touching the file
    /// system: TOML syntax, schema, and self-consistency. `path` names the
    /// file in errors and anchors relative paths (`keys`, `control-socket`).
    pub fn parse(text: &str, path: &Path) -> Result<ClientConfig, ConfigError> {
        let (mut config, origin) = common::deserialize::<ClientConfig>(text, path)?;
        config.origin = origin;
        config.keys = common::resolve(path, &config.keys);
        config.control_socket = common::resolve(path, &config.control_socket);
        config.clock_bound.path = common::resolve(path, &config.clock_bound.path);
        config.operations_socket = config
            .operations_socket
            .as_ref()
            .map(|p| common::resolve(path, p));
        config.state_directory = config
            .state_directory
            .as_ref()
            .map(|p| common::resolve(path, p));
        config.validate()?;
        Ok(config)
    }

    /// What `check-config` warns about: valid, but risky or bound to fail on
    /// this host (an interface or `user` it does not have; discovery over
    /// keys any address may use, accepted with `discover-any-address`).
    pub fn warnings(&self, keys: &KeyStore, host: &common::Host<'_>) -> Vec<ConfigError> {
        let interfaces: Vec<(String, &str)> = self
            .listen
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("listen[{i}].interface"), l.interface.as_str()))
            .collect();
        let mut out = common::host_warnings(&self.origin, &interfaces, self.user.as_deref(), host);
        if self.discover && self.discover_any_address {
            let bound: HashSet<KeyId> = self.servers.iter().flat_map(Server::key_ids).collect();
            let allowed = |id: KeyId| self.discover_keys.as_ref().is_none_or(|l| l.contains(&id));
            let open: Vec<String> = keys
                .iter()
                .filter(|k| !bound.contains(&k.id()) && allowed(k.id()))
                .filter(|k| {
                    let s = k.allowed_sources();
                    s.is_empty()
                        || s.iter().any(|p| match p.addr() {
                            IpAddr::V4(_) => p.prefix_len() < 32,
                            IpAddr::V6(_) => p.prefix_len() < 128,
                        })
                })
                .map(|k| k.id().to_string())
                .collect();
            if !open.is_empty() {
                out.push(self.origin.error(
                    "discover-any-address",
                    "true",
                    format!(
                        "discovery may bind keys {} from any address their lines allow: a LAN \
                         host relaying a server's packets from spoofed addresses can claim \
                         them; list host addresses on their lines in {}",
                        open.join(", "),
                        keys.path().display()
                    ),
                ));
            }
        }
        out
    }

    /// Loads the keys file this configuration names; errors point at the
    /// `keys` line.
    ///
    /// A client whose servers are all pinned by `public-key` alone (none
    /// has `key`/`keys`, no discovery) holds no shared secret and needs no
    /// keys file: when the file does not exist it gets an empty store. A
    /// file that exists is read (and must be valid) all the same.
    pub fn load_keys(&self) -> Result<KeyStore, ConfigError> {
        if !self.needs_keys() && !self.keys.exists() {
            return KeyStore::from_keys(&self.keys, []).map_err(|e| {
                let mut err = self.origin.error(
                    "keys",
                    format!("{:?}", self.keys.display().to_string()),
                    format!("cannot use the keys file: {e}"),
                );
                err.kind = ConfigErrorKind::Keys;
                err
            });
        }
        common::load_keys(&self.origin, &self.keys)
    }

    /// Whether any server (or discovery) authenticates with a key of the
    /// keys file.
    fn needs_keys(&self) -> bool {
        self.discover || self.servers.iter().any(|s| s.signing_key().is_some())
    }

    /// Checks that every server's key exists in `keys` and that the keys
    /// file allows it for that server's address.
    pub fn validate_with_keys(&self, keys: &KeyStore) -> Result<(), ConfigError> {
        for (i, id) in self.discover_keys.iter().flatten().enumerate() {
            if keys.get(*id).is_none() {
                return Err(self.origin.labelled(
                    &format!("discover-keys[{i}]"),
                    "discover-keys",
                    format!("key {id} is not in {}", keys.path().display()),
                    ConfigErrorKind::Keys,
                ));
            }
        }
        if self.discover && !self.discover_any_address {
            self.validate_discovery_keys(keys)?;
        }
        for (i, s) in self.servers.iter().enumerate() {
            for id in s.key_ids() {
                let field = if s.keys.is_some() {
                    format!("server[{i}].keys")
                } else {
                    format!("server[{i}].key")
                };
                let label = format!("server {}", s.address);
                match keys.get(id) {
                    None => {
                        return Err(self.origin.labelled(
                            &field,
                            label,
                            format!("key {id} is not in {}", keys.path().display()),
                            ConfigErrorKind::Keys,
                        ));
                    }
                    Some(key) if !key.allows(s.address) => {
                        return Err(self.origin.labelled(
                            &field,
                            label,
                            format!(
                                "key {id} may not be used by this address: its line in {} \
                             lists other addresses",
                                keys.path().display()
                            ),
                            ConfigErrorKind::Keys,
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    /// Discovery binds a new address to the first key that verifies its
    /// packets; a key that any address of a subnet may use lets a LAN host
    /// mint servers by relaying one real server's packets from spoofed
    /// addresses. So every key discovery could use (those not already
    /// bound to a `[[server]]`) must list host addresses only.
    fn validate_discovery_keys(&self, keys: &KeyStore) -> Result<(), ConfigError> {
        let bound: HashSet<KeyId> = self.servers.iter().flat_map(Server::key_ids).collect();
        let allowed = |id: KeyId| self.discover_keys.as_ref().is_none_or(|l| l.contains(&id));
        for key in keys
            .iter()
            .filter(|k| !bound.contains(&k.id()) && allowed(k.id()))
        {
            let sources = key.allowed_sources();
            let host_only = !sources.is_empty()
                && sources.iter().all(|p| match p.addr() {
                    IpAddr::V4(_) => p.prefix_len() == 32,
                    IpAddr::V6(_) => p.prefix_len() == 128,
                });
            if !host_only {
                return Err(self.origin.labelled(
                    "discover",
                    "discover",
                    format!(
                        "key {} in {} lists {}: with discover = true every key not bound to a \
                         [[server]] must list host addresses (/32, /128) on its line, or set \
                         discover-any-address = true to accept the risk",
                        key.id(),
                        keys.path().display(),
                        if sources.is_empty() {
                            "no addresses"
                        } else {
                            "a subnet"
                        }
                    ),
                    ConfigErrorKind::Keys,
                ));
            }
        }
        Ok(())
    }

    /// The operations socket: as configured, else derived from the
    /// control socket.
    pub fn operations_socket(&self) -> PathBuf {
        self.operations_socket
            .clone()
            .unwrap_or_else(|| operations_socket_for(&self.control_socket))
    }

    /// The configuration file this came from.
    pub fn file(&self) -> &Path {
        &self.origin.file
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        common::check_path(o, "keys", &self.keys)?;
        common::check_path(o, "control-socket", &self.control_socket)?;
        if let Some(ops) = &self.operations_socket {
            common::check_path(o, "operations-socket", ops)?;
            if *ops == self.control_socket {
                return Err(o.error(
                    "operations-socket",
                    ops.display(),
                    "must differ from control-socket: operations have a socket of their own",
                ));
            }
        }
        if self.port == 0 {
            return Err(o.error("port", self.port, "must be 1..65535"));
        }
        if let Some(m) = self.metrics
            && m.port() == 0
        {
            return Err(o.error(
                "metrics",
                format!("\"{m}\""),
                "needs a port (e.g. \"127.0.0.1:9124\"): a scraper cannot find a port the \
                 system picked",
            ));
        }
        common::check_user(o, self.user.as_deref())?;
        if self.listen.is_empty() {
            return Err(o.labelled(
                "listen",
                "listen",
                "at least one [[listen]] entry (group and interface) is required",
                ConfigErrorKind::Invalid,
            ));
        }
        let mut seen = HashSet::new();
        for (i, l) in self.listen.iter().enumerate() {
            self.validate_listen(i, l)?;
            if !seen.insert((l.group, l.interface.as_str())) {
                return Err(o.error(
                    &format!("listen[{i}].group"),
                    l.group,
                    format!(
                        "is already listened to on interface {} by an earlier entry",
                        l.interface
                    ),
                ));
            }
        }
        self.validate_servers()?;
        self.validate_calibration()?;
        self.validate_selection()?;
        self.validate_clock()
    }

    fn validate_listen(&self, i: usize, l: &Listen) -> Result<(), ConfigError> {
        let o = &self.origin;
        common::check_interface(o, &format!("listen[{i}].interface"), &l.interface)?;
        let field = format!("listen[{i}].group");
        if let Some(v) = l.igmp_version {
            let f = format!("listen[{i}].igmp-version");
            if !(2..=3).contains(&v) {
                return Err(o.error(
                    &f,
                    v,
                    "must be 2 or 3 (leave it out for the kernel's choice)",
                ));
            }
            if l.broadcast || !l.group.is_ipv4() {
                return Err(o.error(
                    &f,
                    v,
                    "applies to IPv4 multicast groups only (IPv6 groups: mld-version)",
                ));
            }
        }
        if let Some(v) = l.mld_version {
            let f = format!("listen[{i}].mld-version");
            if !(1..=2).contains(&v) {
                return Err(o.error(
                    &f,
                    v,
                    "must be 1 or 2 (leave it out for the kernel's choice)",
                ));
            }
            if !l.group.is_ipv6() {
                return Err(o.error(
                    &f,
                    v,
                    "applies to IPv6 groups only (IPv4 groups: igmp-version)",
                ));
            }
        }
        match (l.group, l.broadcast) {
            (g, false) if g.is_multicast() => Ok(()),
            (g, false) => Err(o.error(
                &field,
                g,
                "is not a multicast group; to receive IPv4 subnet broadcasts set \
                 broadcast = true and group to the broadcast address",
            )),
            (IpAddr::V4(g), true) if !g.is_multicast() && !g.is_unspecified() => Ok(()),
            (g, true) => Err(o.error(
                &field,
                g,
                "must be an IPv4 broadcast address (e.g. \"198.18.0.255\") with broadcast = true",
            )),
        }
    }

    fn validate_servers(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        if self.discover_keys.is_some() && !self.discover {
            return Err(o.error(
                "discover-keys",
                "[...]",
                "is only used with discover = true",
            ));
        }
        if self.discover_keys.as_ref().is_some_and(Vec::is_empty) {
            return Err(o.error(
                "discover-keys",
                "[]",
                "lists no key: leave it out, or set discover = false",
            ));
        }
        if self.servers.is_empty() && !self.discover {
            return Err(o.labelled(
                "server",
                "server",
                "no [[server]] entries and discover = false: there is nothing to track",
                ConfigErrorKind::Invalid,
            ));
        }
        let mut addresses = HashSet::new();
        let mut names = HashSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let f = |name: &str| format!("server[{i}].{name}");
            let a = s.address;
            let broadcast_all = a == IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
            if a.is_unspecified() || a.is_multicast() || broadcast_all {
                return Err(o.error(
                    &f("address"),
                    a,
                    "must be the server's unicast address (the source of its broadcasts)",
                ));
            }
            if !addresses.insert(a) {
                return Err(o.error(&f("address"), a, "is listed more than once"));
            }
            let family_heard = self.listen.iter().any(|l| l.group.is_ipv4() == a.is_ipv4());
            if !family_heard {
                let family = if a.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(o.error(
                    &f("address"),
                    a,
                    format!(
                        "is {family} but no [[listen]] entry receives {family}: its broadcasts \
                         would never arrive"
                    ),
                ));
            }
            match (&s.keys, s.key) {
                (Some(_), Some(k)) => {
                    return Err(o.error(
                        &f("keys"),
                        "[...]",
                        format!("contradicts key = {k}: give key or keys, not both"),
                    ));
                }
                (Some(list), None) if list.is_empty() => {
                    return Err(o.error(&f("keys"), "[]", "must list at least one key id"));
                }
                (Some(list), None) => {
                    let mut seen = HashSet::new();
                    if let Some(dup) = list.iter().find(|k| !seen.insert(**k)) {
                        return Err(o.error(&f("keys"), dup, "is listed twice"));
                    }
                }
                (None, _) => {}
            }
            match (s.signing_key(), s.authentication) {
                (Some(_), true) | (None, false) => {}
                // The public key alone authenticates broadcasts and the
                // calibration replies (signed by the server, no shared
                // secret on this host); `key` beside it is the migration
                // path (signed and MAC'd).
                (None, true) if s.public_key.is_some() => {}
                (None, true) => {
                    return Err(o.labelled(
                        &format!("server[{i}]"),
                        format!("server {a}"),
                        "key is required: each server's packets must verify with that \
                         server's key (set authentication = false on this server to accept \
                         unauthenticated packets)",
                        ConfigErrorKind::Invalid,
                    ));
                }
                (Some(k), false) => {
                    return Err(o.error(
                        &f("authentication"),
                        false,
                        format!("contradicts key = {k}: remove one of them"),
                    ));
                }
            }
            if let Some(name) = &s.name {
                if name.trim().is_empty() {
                    return Err(o.error(&f("name"), "\"\"", "must not be empty"));
                }
                if !names.insert(name.as_str()) {
                    return Err(o.error(
                        &f("name"),
                        format!("{name:?}"),
                        "is used by an earlier server",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_calibration(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        let c = &self.calibration;
        if c.spot_check_hours > 24 * 30 {
            return Err(o.error(
                "calibration.spot-check-hours",
                c.spot_check_hours,
                "must be 0 (off) or 1..720",
            ));
        }
        if c.start_delay_max > Duration::from_secs(3600) {
            return Err(o.error(
                "calibration.start-delay-max-s",
                show_secs(c.start_delay_max),
                "must be at most 3600",
            ));
        }
        if c.spacing < Duration::from_secs(2) || c.spacing > Duration::from_secs(64) {
            return Err(o.error(
                "calibration.spacing-s",
                show_secs(c.spacing),
                "must be 2..64: servers rate-limit requests closer than 2 s (ntpd's discard \
                 minimum)",
            ));
        }
        if c.max_round_trip.is_zero() || c.max_round_trip > Duration::from_secs(1) {
            return Err(o.error(
                "calibration.max-round-trip-ms",
                show_millis(c.max_round_trip),
                "must be more than 0 and at most 1000",
            ));
        }
        if c.fallback_delay > Duration::from_secs(1) {
            return Err(o.error(
                "calibration.fallback-delay-ms",
                show_millis(c.fallback_delay),
                "must be at most 1000",
            ));
        }
        Ok(())
    }

    fn validate_selection(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        let s = &self.selection;
        if !self.discover && s.min_agreeing > self.servers.len() {
            return Err(o.error(
                "selection.min-agreeing",
                s.min_agreeing,
                format!(
                    "is more than the {} configured server(s): the clock could never be moved",
                    self.servers.len()
                ),
            ));
        }
        if s.max_root_distance.is_zero() || s.max_root_distance > Duration::from_secs(16) {
            return Err(o.error(
                "selection.max-root-distance-s",
                show_secs(s.max_root_distance),
                "must be more than 0 and at most 16",
            ));
        }
        Ok(())
    }

    fn validate_clock(&self) -> Result<(), ConfigError> {
        let o = &self.origin;
        let c = &self.clock;
        for (field, value) in [
            ("clock.step-threshold-s", c.step_threshold),
            ("clock.stepout-s", c.stepout),
            ("clock.panic-threshold-s", c.panic_threshold),
            ("clock.unsync-after-s", c.unsync_after),
        ] {
            if value.is_zero() {
                return Err(o.error(field, show_secs(value), "must be more than 0"));
            }
        }
        if c.step_threshold >= c.panic_threshold {
            // Blame whichever of the two was written (the step threshold if both).
            let (field, value, other, other_value) =
                if o.has("clock.step-threshold-s") || !o.has("clock.panic-threshold-s") {
                    (
                        "clock.step-threshold-s",
                        c.step_threshold,
                        "panic-threshold-s",
                        c.panic_threshold,
                    )
                } else {
                    (
                        "clock.panic-threshold-s",
                        c.panic_threshold,
                        "step-threshold-s",
                        c.step_threshold,
                    )
                };
            let relation = if field == "clock.step-threshold-s" {
                "less"
            } else {
                "more"
            };
            return Err(o.error(
                field,
                show_secs(value),
                format!(
                    "must be {relation} than {other} = {}",
                    show_secs(other_value)
                ),
            ));
        }
        Ok(())
    }
}
